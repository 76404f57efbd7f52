//! Registry credentials from imagePullSecrets, matched to an image the way
//! upstream's `credentialprovider.BasicDockerKeyring` does:
//!
//! * a key is a registry host with an optional port and path prefix
//!   (`https://`, `http://`, and a leading `/v1/` or `/v2/` are dropped);
//! * a key matches an image repository when the host has as many
//!   dot-separated parts, each matching (a part may be a glob like `*`),
//!   the ports are equal, and the key's path is a prefix of the image's;
//! * keys are tried longest first; every match is returned, in that order;
//! * Docker Hub images also get the credentials of `index.docker.io`.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use crate::cri::api::AuthConfig;

/// The Docker Hub key upstream falls back to.
const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// One entry of a docker config's `auths`.
#[derive(Clone, Debug, Default, Deserialize)]
struct DockerConfigEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerConfigEntry>,
}

/// Credentials by registry key.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    /// `(key, credentials)`, in the order added.
    entries: Vec<(String, AuthConfig)>,
}

impl Keyring {
    /// Adds the credentials of a `kubernetes.io/dockerconfigjson` or
    /// `kubernetes.io/dockercfg` secret (others are ignored).
    pub fn add_secret(&mut self, secret: &Secret) {
        let data = secret.data.as_ref();
        let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice());
        let entries = match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => get(".dockerconfigjson")
                .and_then(|bytes| serde_json::from_slice::<DockerConfigJson>(bytes).ok())
                .map(|config| config.auths),
            Some("kubernetes.io/dockercfg") => get(".dockercfg").and_then(|bytes| serde_json::from_slice(bytes).ok()),
            _ => None,
        };
        for (location, entry) in entries.unwrap_or_default() {
            self.add(&location, entry);
        }
    }

    fn add(&mut self, location: &str, entry: DockerConfigEntry) {
        let Some(key) = key_of(location) else { return };
        let (mut username, mut password) = (entry.username, entry.password);
        if username.is_empty()
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(entry.auth.trim())
            && let Some((user, pass)) = String::from_utf8_lossy(&decoded).split_once(':')
        {
            username = user.to_string();
            password = pass.to_string();
        }
        let auth = AuthConfig {
            username,
            password,
            identity_token: entry.identity_token,
            registry_token: entry.registry_token,
            ..Default::default()
        };
        self.entries.push((key, auth));
    }

    /// The credentials to try for an image repository (`docker.io/library/busybox`,
    /// `127.0.0.1:5000/app`), best match first.
    pub fn lookup(&self, repository: &str) -> Vec<AuthConfig> {
        let mut keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_by(|a, b| b.cmp(a));
        keys.dedup();
        let mut found = Vec::new();
        for key in keys {
            if urls_match(key, repository) {
                found.extend(self.entries.iter().filter(|(k, _)| k == key).map(|(_, a)| a.clone()));
            }
        }
        if found.is_empty() && is_default_registry(repository) {
            found.extend(
                self.entries
                    .iter()
                    .filter(|(k, _)| k == DEFAULT_REGISTRY_HOST)
                    .map(|(_, a)| a.clone()),
            );
        }
        found
    }
}

/// `https://host:port/v1/path` → `host:port/path`.
fn key_of(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
        &path[3..]
    } else {
        path
    };
    Some(if path.is_empty() || path == "/" {
        host.to_string()
    } else {
        format!("{host}{path}")
    })
}

/// Upstream's `URLsMatchStr` on schemeless URLs.
fn urls_match(glob: &str, target: &str) -> bool {
    let (glob_host, glob_path) = split_host_path(glob);
    let (target_host, target_path) = split_host_path(target);
    let (glob_name, glob_port) = split_port(glob_host);
    let (target_name, target_port) = split_port(target_host);
    if glob_port != target_port {
        return false;
    }
    let glob_parts: Vec<&str> = glob_name.split('.').collect();
    let target_parts: Vec<&str> = target_name.split('.').collect();
    glob_parts.len() == target_parts.len()
        && glob_parts.iter().zip(&target_parts).all(|(g, t)| glob_match(g, t))
        && target_path.starts_with(glob_path)
}

fn split_host_path(url: &str) -> (&str, &str) {
    match url.find('/') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    }
}

fn split_port(host: &str) -> (&str, &str) {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, port),
        _ => (host, ""),
    }
}

/// `filepath.Match` for one host part: `*` any run, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Whether a repository is on Docker Hub.
fn is_default_registry(repository: &str) -> bool {
    match repository.split_once('/') {
        None => !repository.is_empty(),
        Some((first, _)) => {
            first == "docker.io"
                || first == DEFAULT_REGISTRY_HOST
                || (!first.contains(['.', ':']) && first != "localhost")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(kind: &str, key: &str, json: serde_json::Value) -> Secret {
        Secret {
            type_: Some(kind.into()),
            data: Some([(key.to_string(), ByteString(serde_json::to_vec(&json).unwrap()))].into()),
            ..Default::default()
        }
    }

    fn users(keyring: &Keyring, repository: &str) -> Vec<String> {
        keyring.lookup(repository).into_iter().map(|a| a.username).collect()
    }

    #[test]
    fn dockerconfigjson_matches_by_host_and_port() {
        let mut keyring = Keyring::default();
        keyring.add_secret(&secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            serde_json::json!({ "auths": {
                "127.0.0.1:5000": { "username": "local", "password": "p" },
                "https://registry.example.com/v2/": { "auth": "dTE6cDE=" },
            }}),
        ));
        assert_eq!(users(&keyring, "127.0.0.1:5000/app"), ["local"]);
        assert_eq!(users(&keyring, "127.0.0.1:5001/app"), Vec::<String>::new());
        let creds = keyring.lookup("registry.example.com/team/app");
        assert_eq!((creds[0].username.as_str(), creds[0].password.as_str()), ("u1", "p1"));
        assert!(keyring.lookup("docker.io/library/busybox").is_empty());
    }

    #[test]
    fn dockercfg_globs_paths_and_docker_hub_fallback() {
        let mut keyring = Keyring::default();
        keyring.add_secret(&secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            serde_json::json!({
                "*.example.com": { "username": "wild" },
                "registry.example.com/team": { "username": "team" },
                "https://index.docker.io/v1/": { "username": "hub" },
            }),
        ));
        // Longest (reverse-sorted) key first.
        assert_eq!(users(&keyring, "registry.example.com/team/app"), ["team", "wild"]);
        assert_eq!(users(&keyring, "registry.example.com/other/app"), ["wild"]);
        assert_eq!(users(&keyring, "a.b.example.com/app"), Vec::<String>::new());
        assert_eq!(users(&keyring, "docker.io/library/busybox"), ["hub"]);
        assert_eq!(users(&keyring, "localhost/app"), Vec::<String>::new());
    }

    #[test]
    fn other_secret_types_are_ignored() {
        let mut keyring = Keyring::default();
        keyring.add_secret(&secret(
            "Opaque",
            ".dockerconfigjson",
            serde_json::json!({ "auths": { "x.io": {} } }),
        ));
        assert!(keyring.lookup("x.io/a").is_empty());
    }
}
