//! Registry mirrors and credentials, configured like k3s's
//! `registries.yaml` (`--registry-config FILE`):
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: { username: me, password: secret }
//!     tls: { insecure_skip_verify: true, ca_file: /etc/ca.pem }
//! ```
//!
//! Mirrors and TLS settings become containerd `certs.d/<host>/hosts.toml`
//! files (containerd re-reads them on every pull). Credentials are not
//! written anywhere: the kubelet hands them to `PullImage` as its
//! `AuthConfig` when no imagePullSecret matches ([`Registries::auth_for`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The parsed `registries.yaml`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Registries {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// Where to pull a registry's images from instead (tried in order, then
/// the registry itself).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Credentials and TLS settings for one registry host.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistryConfig {
    pub auth: Option<RegistryAuth>,
    pub tls: Option<RegistryTls>,
}

/// Registry credentials, as in a docker config's `auths` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "identitytoken", alias = "identity_token")]
    pub identity_token: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistryTls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Registries {
    /// Reads a `registries.yaml`.
    pub fn load(path: &Path) -> Result<Registries, Error> {
        let text = fs::read_to_string(path).map_err(|e| invalid(path, e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(Registries::default());
        }
        serde_yaml::from_str(&text).map_err(|e| invalid(path, e.to_string()))
    }

    /// The configured credentials for a registry host (`docker.io`,
    /// `127.0.0.1:5000`), if any.
    pub fn auth_for(&self, host: &str) -> Option<&RegistryAuth> {
        self.configs.get(host).and_then(|config| config.auth.as_ref())
    }

    /// `hosts.toml` files by registry host: one for every mirrored host and
    /// every host with TLS settings.
    pub fn hosts_files(&self) -> BTreeMap<String, String> {
        let mut hosts: Vec<&String> = self.mirrors.keys().collect();
        hosts.extend(self.configs.iter().filter(|(_, c)| c.tls.is_some()).map(|(h, _)| h));
        hosts.sort();
        hosts.dedup();
        hosts
            .into_iter()
            .map(|host| (dir_name(host), self.hosts_toml(host)))
            .collect()
    }

    fn hosts_toml(&self, host: &str) -> String {
        let mut s = String::new();
        if host != "*" {
            let _ = writeln!(s, "server = {}", quote(&server_url(host)));
            self.write_tls(&mut s, host, "");
        }
        for endpoint in self
            .mirrors
            .get(host)
            .map(|m| m.endpoint.as_slice())
            .unwrap_or_default()
        {
            let url = endpoint_url(endpoint);
            let _ = writeln!(s, "\n[host.{}]", quote(&url));
            let _ = writeln!(s, "  capabilities = [\"pull\", \"resolve\"]");
            self.write_tls(&mut s, url_host(&url), "  ");
        }
        s
    }

    fn write_tls(&self, s: &mut String, host: &str, indent: &str) {
        let Some(tls) = self.configs.get(host).and_then(|c| c.tls.as_ref()) else {
            return;
        };
        if tls.insecure_skip_verify {
            let _ = writeln!(s, "{indent}skip_verify = true");
        }
        if let Some(ca) = &tls.ca_file {
            let _ = writeln!(s, "{indent}ca = {}", quote(&ca.to_string_lossy()));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let _ = writeln!(
                s,
                "{indent}client = [[{}, {}]]",
                quote(&cert.to_string_lossy()),
                quote(&key.to_string_lossy())
            );
        }
    }
}

/// Rewrites `certs_dir` from the registry config (or empties it when there
/// is none), so removed mirrors disappear too.
pub fn write_hosts(registry_config: Option<&Path>, certs_dir: &Path) -> Result<(), Error> {
    let registries = match registry_config {
        Some(path) => Registries::load(path)?,
        None => Registries::default(),
    };
    if certs_dir.exists() {
        fs::remove_dir_all(certs_dir).map_err(Error::io(format!("clearing {}", certs_dir.display())))?;
    }
    fs::create_dir_all(certs_dir).map_err(Error::io(format!("creating {}", certs_dir.display())))?;
    for (dir, text) in registries.hosts_files() {
        let host_dir = certs_dir.join(dir);
        fs::create_dir_all(&host_dir).map_err(Error::io(format!("creating {}", host_dir.display())))?;
        let file = host_dir.join("hosts.toml");
        fs::write(&file, text).map_err(Error::io(format!("writing {}", file.display())))?;
    }
    Ok(())
}

/// The registry host of an image reference, as Docker resolves it:
/// `busybox` → `docker.io`, `127.0.0.1:5000/x` → `127.0.0.1:5000`.
pub fn image_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    matches!(name, "localhost" | "[::1]" | "::1") || name.starts_with("127.")
}

/// The registry's own URL: Docker Hub's API host for `docker.io`; plain
/// HTTP for loopback registries, as containerd assumes without hosts.toml.
fn server_url(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io".into(),
        _ if is_loopback(host) => format!("http://{host}"),
        _ => format!("https://{host}"),
    }
}

/// A mirror endpoint with a scheme (https unless loopback) and without a
/// trailing `/v2` (containerd appends it).
fn endpoint_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v2").unwrap_or(trimmed);
    if trimmed.contains("://") {
        trimmed.to_string()
    } else if is_loopback(trimmed.split('/').next().unwrap_or_default()) {
        format!("http://{trimmed}")
    } else {
        format!("https://{trimmed}")
    }
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

/// containerd's directory name for a host: `_default` for the wildcard.
fn dir_name(host: &str) -> String {
    if host == "*" { "_default".into() } else { host.into() }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn invalid(path: &Path, message: String) -> Error {
    Error::RegistryConfig {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Registries {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn mirrors_become_hosts_toml_with_tls_of_the_mirror_host() {
        let registries = parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["mirror.example:5000/v2", "http://127.0.0.1:5001"]
configs:
  "mirror.example:5000":
    tls: { insecure_skip_verify: true, ca_file: /ca.pem }
  "127.0.0.1:5001":
    auth: { username: u, password: p }
"#,
        );
        let files = registries.hosts_files();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["docker.io", "mirror.example:5000"]);
        let docker = &files["docker.io"];
        assert!(docker.starts_with("server = \"https://registry-1.docker.io\"\n"));
        assert!(docker.contains(
            "[host.\"https://mirror.example:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n  ca = \"/ca.pem\"\n"
        ));
        assert!(docker.contains("[host.\"http://127.0.0.1:5001\"]"));
        assert_eq!(
            files["mirror.example:5000"],
            "server = \"https://mirror.example:5000\"\nskip_verify = true\nca = \"/ca.pem\"\n"
        );
        assert_eq!(registries.auth_for("127.0.0.1:5001").unwrap().username, "u");
        assert!(registries.auth_for("docker.io").is_none());
    }

    #[test]
    fn image_hosts_resolve_like_docker() {
        assert_eq!(image_host("busybox"), "docker.io");
        assert_eq!(image_host("library/busybox:1"), "docker.io");
        assert_eq!(image_host("127.0.0.1:5000/bb:1"), "127.0.0.1:5000");
        assert_eq!(image_host("localhost/bb"), "localhost");
        assert_eq!(image_host("ghcr.io/a/b"), "ghcr.io");
    }

    #[test]
    fn writes_and_clears_certs_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("registries.yaml");
        fs::write(&config, "mirrors:\n  \"*\":\n    endpoint: [\"https://m.example\"]\n").unwrap();
        let certs = dir.path().join("certs.d");
        write_hosts(Some(&config), &certs).unwrap();
        let text = fs::read_to_string(certs.join("_default/hosts.toml")).unwrap();
        assert!(text.starts_with("\n[host.\"https://m.example\"]"));
        write_hosts(None, &certs).unwrap();
        assert_eq!(fs::read_dir(&certs).unwrap().count(), 0);
    }
}
