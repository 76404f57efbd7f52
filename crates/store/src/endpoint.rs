//! Choosing a backend from `--datastore-endpoint`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Result, Store, StoreError};

/// Where the data lives, parsed from a k3s-style `--datastore-endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `sqlite://PATH`: the embedded single-file store.
    Sqlite(PathBuf),
    /// `etcd://HOST:PORT[,HOST:PORT...]` (or `http://` URLs): an etcd v3 cluster.
    Etcd(Vec<String>),
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| StoreError::InvalidEndpoint {
            endpoint: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("sqlite:// needs a file path"));
            }
            return Ok(Endpoint::Sqlite(PathBuf::from(path)));
        }
        let etcd_hosts = |list: &str, scheme: &str| -> Result<Endpoint> {
            let hosts: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| {
                    let h = h.strip_prefix(scheme).unwrap_or(h);
                    format!("http://{}", h.trim_start_matches("http://"))
                })
                .collect();
            if hosts.is_empty() {
                return Err(invalid("no etcd host given"));
            }
            Ok(Endpoint::Etcd(hosts))
        };
        if let Some(rest) = s.strip_prefix("etcd://") {
            return etcd_hosts(rest, "etcd://");
        }
        if s.starts_with("http://") {
            return etcd_hosts(s, "http://");
        }
        Err(invalid(
            "expected sqlite://PATH, etcd://HOST:PORT[,...] or http://HOST:PORT[,...]",
        ))
    }
}

/// Opens the store an endpoint names.
pub async fn open(endpoint: &Endpoint) -> Result<Arc<dyn Store>> {
    Ok(match endpoint {
        Endpoint::Sqlite(path) => Arc::new(crate::sqlite::SqliteStore::open(path).await?),
        Endpoint::Etcd(hosts) => Arc::new(crate::etcd::EtcdStore::connect(hosts).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_and_etcd() {
        assert_eq!(
            Endpoint::parse("sqlite:///var/lib/capstan/state.db").unwrap(),
            Endpoint::Sqlite("/var/lib/capstan/state.db".into())
        );
        assert_eq!(
            Endpoint::parse("etcd://10.0.0.1:2379,10.0.0.2:2379").unwrap(),
            Endpoint::Etcd(vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()])
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:2379").unwrap(),
            Endpoint::Etcd(vec!["http://127.0.0.1:2379".into()])
        );
    }

    #[test]
    fn rejects_unknown_schemes() {
        for bad in ["postgres://x", "sqlite://", "etcd://", "/tmp/db"] {
            assert!(
                matches!(Endpoint::parse(bad), Err(StoreError::InvalidEndpoint { .. })),
                "{bad}"
            );
        }
    }
}
