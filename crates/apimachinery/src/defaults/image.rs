//! The image pull policy upstream defaults from an image reference.
//!
//! `SetDefaults_Container` asks `parsers.ParseImageName` (which uses
//! `github.com/distribution/reference.ParseNormalizedNamed`) for the image's
//! tag: `Always` when the tag is `latest` — which is also what a reference
//! without tag and digest means — and `IfNotPresent` otherwise, including for
//! digest-only references and for references that do not parse at all. So
//! the reference grammar has to be upstream's to the letter: `nginx` and
//! `localhost:5000/app` pull `Always`, `nginx@sha256:…` and `NGINX` do not.

/// `Always` or `IfNotPresent`, as upstream defaults `imagePullPolicy` for `image`.
pub fn pull_policy(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// The tag `ParseImageName` reports: the reference's tag, `latest` when it
/// has neither tag nor digest, `""` when it has only a digest, `None` when it
/// does not parse.
fn image_tag(image: &str) -> Option<String> {
    let (tag, digest) = parse_normalized(image)?;
    Some(match tag {
        Some(tag) => tag,
        None if digest => String::new(),
        None => "latest".to_string(),
    })
}

/// `ParseNormalizedNamed`: the tag (if any) and whether there is a digest.
fn parse_normalized(image: &str) -> Option<(Option<String>, bool)> {
    if is_identifier(image) {
        return None;
    }
    let (domain, remainder) = split_docker_domain(image);
    let remote = remainder.split(':').next().unwrap_or_default();
    if remote.to_lowercase() != remote {
        return None;
    }
    parse(&format!("{domain}/{remainder}"))
}

/// A bare 64-hex identifier, which is refused as a repository name.
fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `splitDockerDomain`: the registry (Docker Hub unless the first path
/// element looks like a host) and the remote name, with `library/` prefixed
/// to single-element Docker Hub names.
fn split_docker_domain(name: &str) -> (String, String) {
    const DOCKER_HUB: &str = "docker.io";
    let (domain, remote) = match name.split_once('/') {
        None => (DOCKER_HUB, name),
        Some(("localhost", rest)) => ("localhost", rest),
        Some(("index.docker.io", rest)) => (DOCKER_HUB, rest),
        Some((first, rest)) if first.contains(['.', ':']) || first.to_lowercase() != first => (first, rest),
        Some(_) => (DOCKER_HUB, name),
    };
    if domain == DOCKER_HUB && !remote.contains('/') {
        (domain.to_string(), format!("library/{remote}"))
    } else {
        (domain.to_string(), remote.to_string())
    }
}

/// `reference.Parse`: `name[:tag][@digest]`, returning the tag and whether a
/// digest is present, or `None` when the reference is invalid.
fn parse(s: &str) -> Option<(Option<String>, bool)> {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_valid_digest(d)) {
        return None;
    }
    // A tag has neither ':' nor '/'; a ':' before the last '/' is a port.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_valid_tag(t)) {
        return None;
    }
    let path = name_path(name)?;
    (path.len() <= 255).then(|| (tag.map(str::to_string), digest.is_some()))
}

/// A digest as go-digest validates it: a registered algorithm and its hex.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `[\w][\w.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len()) && word(bytes[0]) && bytes[1..].iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// The repository path of a name (`[domain[:port]/]path-component[/…]`),
/// `None` when the name is invalid.
fn name_path(name: &str) -> Option<&str> {
    if let Some((domain, path)) = name.split_once('/')
        && is_domain_and_port(domain)
        && is_remote_name(path)
    {
        return Some(path);
    }
    is_remote_name(name).then_some(name)
}

fn is_remote_name(name: &str) -> bool {
    name.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    bytes
        .split(alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|&b| b == b'-'))
}

/// A registry host: a DNS-like name or a bracketed IPv6 address, with an
/// optional `:port`.
fn is_domain_and_port(domain: &str) -> bool {
    let (host, port) = if domain.starts_with('[') {
        match domain.find(']') {
            Some(end) => domain.split_at(end + 1),
            None => return false,
        }
    } else {
        domain.split_at(domain.find(':').unwrap_or(domain.len()))
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && is_host(host)
}

fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases: &[(&str, &str)] = &[
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("library/nginx", "Always"),
            ("docker.io/nginx", "Always"),
            ("index.docker.io/library/nginx:latest", "Always"),
            ("localhost/app", "Always"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:latest", "Always"),
            ("[::1]:5000/team/app", "Always"),
            ("Registry.Example/app", "Always"),
            ("my_registry.example.com/a__b/c---d:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("nginx:Latest", "IfNotPresent"),
            ("registry.k8s.io/pause:3.10", "IfNotPresent"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("", "IfNotPresent"),
            ("NGINX", "IfNotPresent"),
            ("team/App", "IfNotPresent"),
            ("nginx:", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
            ("nginx@md5:0123456789abcdef0123456789abcdef", "IfNotPresent"),
            ("a..b", "IfNotPresent"),
            ("a_-b", "IfNotPresent"),
            ("-a", "IfNotPresent"),
            ("nginx/", "IfNotPresent"),
            ("host:port/app", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy(image), *want, "{image:?}");
        }
        assert_eq!(pull_policy(&format!("nginx@{digest}")), "IfNotPresent");
        assert_eq!(pull_policy(&format!("nginx:latest@{digest}")), "Always");
        assert_eq!(pull_policy(&format!("nginx:1.0@{digest}")), "IfNotPresent");
        assert_eq!(pull_policy(&format!("nginx@{}", digest.to_uppercase())), "IfNotPresent");
        assert_eq!(
            pull_policy(&format!("nginx@sha512:{}", "0".repeat(128))),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&"a".repeat(64)),
            "IfNotPresent",
            "bare identifiers are refused"
        );
        assert_eq!(
            pull_policy(&"g".repeat(64)),
            "Always",
            "non-hex 64-char names are names"
        );
        assert_eq!(pull_policy(&format!("x:{}", "t".repeat(129))), "IfNotPresent");
        assert_eq!(pull_policy(&format!("x/{}", "p".repeat(256))), "IfNotPresent");
    }
}
