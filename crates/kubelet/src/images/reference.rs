//! Image references as Docker parses them (`distribution/reference`):
//! `[domain/]path[:tag][@digest]`, with Docker Hub's defaults.

use std::fmt;

/// Why a reference does not parse, in Docker's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidReference(String);

impl fmt::Display for InvalidReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io` unless the first component looks like a host.
    pub domain: String,
    /// `library/busybox` for Docker Hub's official images.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses like `ParseNormalizedNamed`.
    pub fn parse(image: &str) -> Result<Reference, InvalidReference> {
        let invalid = |why: &str| InvalidReference(format!("couldn't parse image name {image:?}: {why}"));
        if image.len() == 64 && image.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(&format!(
                "invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) if valid_digest(digest) => (rest, Some(digest.to_string())),
            Some(_) => return Err(invalid("invalid reference format")),
            None => (image, None),
        };
        // A tag follows the last ':' after the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| !valid_tag(t)) {
            return Err(invalid("invalid reference format"));
        }
        if name.is_empty() {
            return Err(invalid("repository name must have at least one component"));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(invalid("invalid reference format"));
        }
        if !path.split('/').all(valid_path_component) {
            let lower_ok = path.to_lowercase().split('/').all(valid_path_component);
            return Err(invalid(if lower_ok {
                "repository name must be lowercase"
            } else {
                "invalid reference format"
            }));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(invalid("repository name must not be more than 255 characters"));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, what credentials are matched against.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// The image with `:latest` appended when it has neither tag nor digest,
/// otherwise unchanged (not normalised), as upstream's `applyDefaultImageTag`.
pub fn with_default_tag(image: &str) -> Result<String, InvalidReference> {
    let reference = Reference::parse(image)?;
    Ok(if reference.tag.is_none() && reference.digest.is_none() {
        format!("{image}:latest")
    } else {
        image.to_string()
    })
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (domain, path)
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || domain.starts_with('[') => (host, Some(port)),
        _ => (domain, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(ipv6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex` with at least 32 hex digits.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'))
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.repository(), r.tag, r.digest),
            ("docker.io/library/busybox".into(), None, None)
        );
        let r = Reference::parse("127.0.0.1:5000/team/app:v1.2").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1.2"))
        );
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.repository(), "localhost/app");
        let r = Reference::parse("user/app:1").unwrap();
        assert_eq!(r.repository(), "docker.io/user/app");
        let digest = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/a/b@{digest}")).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(digest)));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let message = |image: &str| Reference::parse(image).unwrap_err().to_string();
        assert_eq!(
            message("Busybox"),
            "couldn't parse image name \"Busybox\": repository name must be lowercase"
        );
        assert_eq!(
            message("busybox:"),
            "couldn't parse image name \"busybox:\": invalid reference format"
        );
        assert_eq!(
            message("bad image"),
            "couldn't parse image name \"bad image\": invalid reference format"
        );
        assert_eq!(
            message("a//b"),
            "couldn't parse image name \"a//b\": invalid reference format"
        );
        assert!(message(&"a".repeat(64)).contains("cannot specify 64-byte hexadecimal strings"));
        assert!(Reference::parse("busybox@sha256:12").is_err());
    }

    #[test]
    fn default_tag_is_appended_without_normalising() {
        assert_eq!(with_default_tag("busybox").unwrap(), "busybox:latest");
        assert_eq!(
            with_default_tag("127.0.0.1:5000/bb").unwrap(),
            "127.0.0.1:5000/bb:latest"
        );
        assert_eq!(with_default_tag("bb:1").unwrap(), "bb:1");
        let digested = format!("bb@sha256:{}", "f".repeat(64));
        assert_eq!(with_default_tag(&digested).unwrap(), digested);
    }
}
