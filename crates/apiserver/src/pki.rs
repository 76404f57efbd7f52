//! Cluster PKI, created at first start under the data dir (as k3s and kubeadm do).
//!
//! A Kubernetes cluster needs a small certificate authority before anything can talk to the API server:
//! kubectl verifies the server against it, the server authenticates clients whose certificates it signed
//! (user = CN, groups = O, exactly as upstream's x509 authenticator), and service-account tokens are
//! signed with a separate key. Capstan creates all of it on first start, with no external tooling, under
//! one directory (`<data-dir>/server/tls` by convention):
//!
//! | file                  | what                                                      | lifetime |
//! |-----------------------|-----------------------------------------------------------|----------|
//! | `ca.crt`, `ca.key`    | the cluster CA (CN `capstan-ca@<unix-ts>`)                | 10 years |
//! | `serving.crt`/`.key`  | the API server's HTTPS certificate (serverAuth)           | 1 year   |
//! | `admin.crt`/`.key`    | CN=system:admin, O=system:masters (clientAuth)            | 1 year   |
//! | `kube-apiserver-kubelet-client.crt`/`.key` | the API server's identity towards kubelets (clientAuth) | 1 year |
//! | `service-account.key` | PKCS#8 P-256 key that signs service-account tokens (ES256)| forever  |
//!
//! Every key file is written with mode 0600 (the directory 0700), atomically (temporary file + rename), so a
//! crash mid-write never leaves a truncated key that would brick the next start.
//!
//! **Why ECDSA P-256 everywhere.** k3s uses ECDSA P-256 for its CAs and leaf certificates too; the keys are
//! small and fast to generate (milliseconds, which matters for a one-binary distribution that creates its
//! PKI on the first `capstan server`), every TLS stack kubectl/client-go/kube-rs use accepts them, and
//! `ring` (our only crypto provider: no aws-lc) cannot generate RSA keys at all. The service-account key is
//! P-256 as well, so tokens are signed with ES256, which kube-apiserver itself supports and which every
//! OIDC/JWKS consumer understands (k3s uses an RSA key here; nothing in-cluster depends on the algorithm).
//!
//! **What survives restarts, and what is re-issued.** Identities must be stable: nodes, kubeconfigs handed
//! out to users and tokens already minted all pin the CA or the SA key, so existing files are never replaced
//! just because the server restarted. The one exception is the serving certificate, which is *derived* data:
//! it depends on the host's current addresses and on `--tls-san`, both of which can change between starts.
//! If it lacks a SAN that is now required, expires within 90 days, was not issued by the current CA, or
//! does not match its key, it alone is re-issued from the existing CA; clients keep trusting the same CA and
//! never notice. (The admin certificate is likewise renewed when it expires within 90 days, keeping its
//! identity; k3s does the same for its client certificates. The CA and the SA key are never regenerated:
//! if only half of the CA is on disk, loading fails instead of silently minting a new trust root.)

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// File names under [`PkiOptions::dir`].
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The API server's serving certificate.
pub const SERVING_CERT: &str = "serving.crt";
/// The serving certificate's key.
pub const SERVING_KEY: &str = "serving.key";
/// The admin client certificate (CN=system:admin, O=system:masters).
pub const ADMIN_CERT: &str = "admin.crt";
/// The admin client certificate's key.
pub const ADMIN_KEY: &str = "admin.key";
/// The API server's client certificate towards kubelets (logs, exec, attach, port-forward), as kubeadm names it.
pub const KUBELET_CLIENT_CERT: &str = "kube-apiserver-kubelet-client.crt";
/// Its key.
pub const KUBELET_CLIENT_KEY: &str = "kube-apiserver-kubelet-client.key";
/// The common name kubelets accept from the API server.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// The service-account token signing key (PKCS#8 PEM, ECDSA P-256).
pub const SERVICE_ACCOUNT_KEY: &str = "service-account.key";

/// The CA lives 10 years, as kubeadm's and k3s's do: rotating a CA means redistributing trust to every client.
const CA_VALIDITY: Duration = Duration::days(3650);
/// Leaf certificates live a year (kubeadm's and k3s's default) ...
const LEAF_VALIDITY: Duration = Duration::days(365);
/// ... and are renewed at start once they are this close to expiry (k3s uses the same 90 days).
const RENEW_BEFORE: Duration = Duration::days(90);
/// `notBefore` is back-dated so that a node whose clock is slightly behind still accepts a fresh certificate.
const BACKDATE: Duration = Duration::hours(1);

/// Where the PKI lives and which names the serving certificate must cover.
#[derive(Clone, Debug)]
pub struct PkiOptions {
    /// Directory holding the PKI files, e.g. `<data-dir>/server/tls`; created (mode 0700) if missing.
    pub dir: PathBuf,
    /// Additional serving-certificate SANs (`--tls-san`): DNS names or IP addresses.
    pub extra_sans: Vec<String>,
    /// The first IP of the service CIDR (10.43.0.1 by default), the ClusterIP of `default/kubernetes`:
    /// pods reach the API server through it, so the serving certificate must name it.
    pub service_ip: IpAddr,
    /// The cluster DNS domain (`cluster.local`), for the `kubernetes.default.svc.<domain>` SAN.
    pub cluster_domain: String,
}

impl PkiOptions {
    /// Options with k3s's defaults: service IP 10.43.0.1, domain `cluster.local`, no extra SANs.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiOptions {
            dir: dir.into(),
            extra_sans: Vec::new(),
            service_ip: IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1)),
            cluster_domain: "cluster.local".to_string(),
        }
    }
}

/// Errors creating or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file exists but cannot be used (unparsable, or half of a key pair is missing).
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Key generation or certificate signing failed.
    #[error("{what}: {source}")]
    Crypto {
        /// What was being generated.
        what: &'static str,
        /// The underlying error.
        source: rcgen::Error,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A requested SAN is neither an IP address nor a valid DNS name.
    #[error("invalid subject alternative name {0:?}: not an IP address or DNS name")]
    InvalidSan(String),
    /// A client certificate request cannot be expressed (e.g. an empty common name).
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    /// Building the rustls configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Serializing a kubeconfig failed.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] serde_yaml::Error),
}

/// The loaded cluster PKI: paths and PEMs of the CA, serving and admin certificates and the SA key.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key: KeyPair,
    serving_cert_pem: String,
    serving_key_pem: String,
    admin_cert_pem: String,
    admin_key_pem: String,
    kubelet_client_cert_pem: String,
    kubelet_client_key_pem: String,
    service_account_key_pem: String,
    service_account_public_key_pem: String,
}

impl fmt::Debug for Pki {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the PKI from `opts.dir`, creating whatever is missing (CA first).
    ///
    /// Existing files are never overwritten, so restarts keep identities; but if the serving certificate lacks
    /// a SAN now required (a new host address, a new `--tls-san`), is close to expiry, or was not issued by the
    /// current CA, only the serving certificate is re-issued from the existing CA (see the module docs).
    /// Blocking (file I/O and key generation): call it at startup, or from `spawn_blocking`.
    pub fn load_or_create(opts: &PkiOptions) -> Result<Pki, PkiError> {
        let dir = opts.dir.clone();
        create_private_dir(&dir)?;
        let now = OffsetDateTime::now_utc();
        let required_sans = required_sans(opts)?;

        // The CA: both halves or neither. Replacing a CA silently would invalidate every kubeconfig and node.
        let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        let (ca_cert_pem, ca_key, ca_created) = match (read_optional(&ca_cert_path)?, read_optional(&ca_key_path)?) {
            (Some(cert), Some(key)) => {
                let key = KeyPair::from_pem(&key).map_err(|e| invalid(&ca_key_path, format!("bad key: {e}")))?;
                let der = cert_der(&ca_cert_path, &cert)?;
                let parsed = parse_cert(&ca_cert_path, &der)?;
                if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                    return Err(invalid(&ca_cert_path, format!("does not match {CA_KEY}")));
                }
                (cert, key, false)
            }
            (None, None) => {
                let (cert, key) = new_ca(now)?;
                write_private(&ca_key_path, key.serialize_pem().as_bytes()).map_err(io_err(&ca_key_path))?;
                write_private(&ca_cert_path, cert.as_bytes()).map_err(io_err(&ca_cert_path))?;
                tracing::info!(dir = %dir.display(), "created cluster CA");
                (cert, key, true)
            }
            (Some(_), None) => return Err(invalid(&ca_key_path, "missing while ca.crt exists".to_string())),
            (None, Some(_)) => return Err(invalid(&ca_cert_path, "missing while ca.key exists".to_string())),
        };
        let ca_der = cert_der(&ca_cert_path, &ca_cert_pem)?;
        let ca = Ca {
            pem: &ca_cert_pem,
            key: &ca_key,
            cert: parse_cert(&ca_cert_path, &ca_der)?,
            created: ca_created,
            now,
        };

        // The serving certificate: derived data, re-issued whenever it no longer fits.
        let serving = Leaf {
            cert: dir.join(SERVING_CERT),
            key: dir.join(SERVING_KEY),
        };
        let serving_spec = LeafSpec {
            common_name: "kube-apiserver",
            organizations: &[],
            sans: required_sans.iter().cloned().collect(),
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        };
        let (serving_cert_pem, serving_key_pem) = serving.load_or_issue(&ca, &serving_spec, |cert| {
            let present = cert_sans(cert);
            let missing: Vec<String> = required_sans.difference(&present).map(ToString::to_string).collect();
            (!missing.is_empty()).then(|| format!("missing SANs {}", missing.join(", ")))
        })?;

        // The admin client certificate: same identity forever, renewed only when close to expiry.
        let admin = Leaf {
            cert: dir.join(ADMIN_CERT),
            key: dir.join(ADMIN_KEY),
        };
        let admin_spec = LeafSpec {
            common_name: "system:admin",
            organizations: &["system:masters"],
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        };
        let (admin_cert_pem, admin_key_pem) = admin.load_or_issue(&ca, &admin_spec, |_| None)?;

        // The identity the API server presents to kubelets; kubelets accept only this common name.
        let kubelet_client = Leaf {
            cert: dir.join(KUBELET_CLIENT_CERT),
            key: dir.join(KUBELET_CLIENT_KEY),
        };
        let kubelet_client_spec = LeafSpec {
            common_name: KUBELET_CLIENT_CN,
            organizations: &["system:masters"],
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        };
        let (kubelet_client_cert_pem, kubelet_client_key_pem) =
            kubelet_client.load_or_issue(&ca, &kubelet_client_spec, |_| None)?;

        // The service-account signing key: never regenerated once it exists (it would invalidate every token).
        let sa_path = dir.join(SERVICE_ACCOUNT_KEY);
        let (service_account_key_pem, sa_key) = match read_optional(&sa_path)? {
            Some(pem) => {
                let key = KeyPair::from_pem(&pem).map_err(|e| invalid(&sa_path, format!("bad key: {e}")))?;
                (pem, key)
            }
            None => {
                let key = generate_key("service-account key")?;
                let pem = key.serialize_pem();
                write_private(&sa_path, pem.as_bytes()).map_err(io_err(&sa_path))?;
                tracing::info!(path = %sa_path.display(), "created service-account signing key");
                (pem, key)
            }
        };

        Ok(Pki {
            dir,
            ca_cert_pem,
            ca_key,
            serving_cert_pem,
            serving_key_pem,
            admin_cert_pem,
            admin_key_pem,
            kubelet_client_cert_pem,
            kubelet_client_key_pem,
            service_account_key_pem,
            service_account_public_key_pem: sa_key.public_key_pem(),
        })
    }

    /// The directory the PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the CA certificate (for `--client-ca-file`-like settings of other components).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The API server's serving certificate (PEM).
    pub fn serving_cert_pem(&self) -> &str {
        &self.serving_cert_pem
    }

    /// The rustls configuration for the API server's HTTPS listener: the serving certificate, ALPN `h2` and
    /// `http/1.1`, and client certificates optional but verified against the cluster CA when presented
    /// (see [`crate::tls::server_config`]).
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let cert = CertificateDer::from_pem_slice(self.serving_cert_pem.as_bytes())
            .map_err(|e| invalid(&self.dir.join(SERVING_CERT), e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes())
            .map_err(|e| invalid(&self.dir.join(SERVING_KEY), e.to_string()))?;
        let ca = CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes())
            .map_err(|e| invalid(&self.dir.join(CA_CERT), e.to_string()))?;
        Ok(Arc::new(crate::tls::server_config(vec![cert], key, vec![ca])?))
    }

    /// A client certificate signed by the cluster CA, valid for a year, e.g. for components
    /// (`system:kube-scheduler`; `system:node:<name>` with O=`system:nodes`). Returns (cert PEM, key PEM).
    ///
    /// The API server maps CN to the user name and each O to a group, as upstream does. At most two
    /// organizations are supported (a limitation of rcgen's distinguished-name type; every Kubernetes
    /// component identity uses one).
    pub fn issue_client_cert(&self, common_name: &str, organizations: &[&str]) -> Result<(String, String), PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::InvalidRequest("empty common name".to_string()));
        }
        let spec = LeafSpec {
            common_name,
            organizations,
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        };
        issue_leaf(&self.ca_cert_pem, &self.ca_key, OffsetDateTime::now_utc(), &spec)
    }

    /// A serving certificate signed by the cluster CA for `sans` (DNS names or IP addresses), valid for a year,
    /// e.g. for a kubelet's HTTPS server (CN = the node name). Returns (cert PEM, key PEM).
    pub fn issue_serving_cert(&self, common_name: &str, sans: &[String]) -> Result<(String, String), PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::InvalidRequest("empty common name".to_string()));
        }
        let sans = sans.iter().map(|s| San::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let spec = LeafSpec {
            common_name,
            organizations: &[],
            sans,
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        };
        issue_leaf(&self.ca_cert_pem, &self.ca_key, OffsetDateTime::now_utc(), &spec)
    }

    /// The API server's client certificate and key (PEM) for calling kubelets.
    pub fn kubelet_client_pem(&self) -> (&str, &str) {
        (&self.kubelet_client_cert_pem, &self.kubelet_client_key_pem)
    }

    /// The admin kubeconfig (YAML) for `server_url` (e.g. `https://127.0.0.1:6443`), with the CA, the persisted
    /// admin certificate and key embedded; cluster, context and user are all named `default`, as in k3s's
    /// `k3s.yaml`, so scripts written for k3s keep working.
    pub fn admin_kubeconfig(&self, server_url: &str) -> Result<String, PkiError> {
        self.kubeconfig(server_url, &self.admin_cert_pem, &self.admin_key_pem)
    }

    /// A kubeconfig (YAML) for `server_url` authenticating with the given client certificate and key (PEM),
    /// e.g. one from [`Pki::issue_client_cert`]; names as in [`Pki::admin_kubeconfig`].
    pub fn kubeconfig(&self, server_url: &str, cert_pem: &str, key_pem: &str) -> Result<String, PkiError> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let config = Kubeconfig {
            api_version: "v1",
            kind: "Config",
            clusters: vec![NamedCluster {
                name: "default",
                cluster: Cluster {
                    certificate_authority_data: b64(&self.ca_cert_pem),
                    server: server_url.to_string(),
                },
            }],
            contexts: vec![NamedContext {
                name: "default",
                context: Context {
                    cluster: "default",
                    user: "default",
                },
            }],
            current_context: "default",
            preferences: BTreeMap::new(),
            users: vec![NamedUser {
                name: "default",
                user: User {
                    client_certificate_data: b64(cert_pem),
                    client_key_data: b64(key_pem),
                },
            }],
        };
        Ok(serde_yaml::to_string(&config)?)
    }

    /// Writes the admin kubeconfig to `path` with mode 0600 (for `<data-dir>/admin.kubeconfig` and
    /// `--write-kubeconfig`): it holds cluster-admin credentials.
    pub fn write_admin_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        let yaml = self.admin_kubeconfig(server_url)?;
        write_private(path, yaml.as_bytes()).map_err(io_err(path))
    }

    /// The service-account token signing key: PKCS#8 PEM of an ECDSA P-256 key, so tokens are ES256 JWTs.
    pub fn service_account_key_pem(&self) -> &str {
        &self.service_account_key_pem
    }

    /// The public half of the service-account key (SubjectPublicKeyInfo PEM), for verifying tokens and for
    /// the OIDC discovery / JWKS endpoints.
    pub fn service_account_public_key_pem(&self) -> String {
        self.service_account_public_key_pem.clone()
    }
}

/// Creates or replaces `path` with `contents`, mode 0600, atomically: the data goes to a temporary file in the
/// same directory (created 0600, so the secret is never readable by others even briefly), is fsynced and then
/// renamed over `path`. Missing parent directories are created with mode 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = parent.join(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Persist the rename itself; best effort (some filesystems refuse fsync on directories).
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The CA as leaf issuance needs it.
struct Ca<'a> {
    pem: &'a str,
    key: &'a KeyPair,
    cert: X509Certificate<'a>,
    /// Created by this start: every leaf on disk predates it and is re-issued.
    created: bool,
    now: OffsetDateTime,
}

/// A leaf certificate's two files.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
}

/// What a leaf certificate says.
struct LeafSpec<'a> {
    common_name: &'a str,
    organizations: &'a [&'a str],
    sans: Vec<San>,
    usage: ExtendedKeyUsagePurpose,
}

impl Leaf {
    /// Returns the persisted (cert, key) PEMs, or issues and persists new ones if they are missing, unusable,
    /// close to expiry, not from the current CA, or `stale` (called with the parsed certificate) says why not.
    fn load_or_issue(
        &self,
        ca: &Ca<'_>,
        spec: &LeafSpec<'_>,
        stale: impl Fn(&X509Certificate<'_>) -> Option<String>,
    ) -> Result<(String, String), PkiError> {
        let reason = match (read_optional(&self.cert)?, read_optional(&self.key)?) {
            (Some(cert), Some(key)) if !ca.created => match self.check(&cert, &key, ca, &stale) {
                None => return Ok((cert, key)),
                Some(reason) => reason,
            },
            (Some(_), Some(_)) => "the CA was just created".to_string(),
            _ => "missing".to_string(),
        };
        let (cert, key) = issue_leaf(ca.pem, ca.key, ca.now, spec)?;
        write_private(&self.key, key.as_bytes()).map_err(io_err(&self.key))?;
        write_private(&self.cert, cert.as_bytes()).map_err(io_err(&self.cert))?;
        tracing::info!(path = %self.cert.display(), %reason, "issued certificate");
        Ok((cert, key))
    }

    /// Why the persisted pair cannot be kept, or None if it can.
    fn check(
        &self,
        cert_pem: &str,
        key_pem: &str,
        ca: &Ca<'_>,
        stale: &impl Fn(&X509Certificate<'_>) -> Option<String>,
    ) -> Option<String> {
        let der = match cert_der(&self.cert, cert_pem) {
            Ok(der) => der,
            Err(e) => return Some(e.to_string()),
        };
        let cert = match parse_cert(&self.cert, &der) {
            Ok(cert) => cert,
            Err(e) => return Some(e.to_string()),
        };
        let key = match KeyPair::from_pem(key_pem) {
            Ok(key) => key,
            Err(e) => return Some(format!("{}: {e}", self.key.display())),
        };
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Some("certificate does not match its key".to_string());
        }
        // The name alone is not proof: two CAs created in the same second share their name.
        if cert.issuer().as_raw() != ca.cert.subject().as_raw()
            || cert.verify_signature(Some(ca.cert.public_key())).is_err()
        {
            return Some("not issued by the current CA".to_string());
        }
        if cert.validity().not_after.timestamp() < (ca.now + RENEW_BEFORE).unix_timestamp() {
            return Some("expires within 90 days".to_string());
        }
        stale(&cert)
    }
}

/// A subject alternative name, normalized so that sets of them compare meaningfully.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    fn parse(s: &str) -> Result<San, PkiError> {
        let s = s.trim();
        if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(San::Ip(canonical_ip(ip)));
        }
        let dns = s.trim_end_matches('.').to_ascii_lowercase();
        if is_dns_name(&dns) {
            Ok(San::Dns(dns))
        } else {
            Err(PkiError::InvalidSan(s.to_string()))
        }
    }

    fn to_rcgen(&self) -> Result<SanType, PkiError> {
        Ok(match self {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|_| PkiError::InvalidSan(name.clone()))?,
            ),
        })
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// IPv4-mapped IPv6 addresses are the IPv4 address for our purposes.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A DNS name (optionally a leading wildcard label) as certificates carry them: ASCII letters, digits, `-`.
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Every SAN the serving certificate must carry for these options on this host.
fn required_sans(opts: &PkiOptions) -> Result<BTreeSet<San>, PkiError> {
    let mut sans = BTreeSet::new();
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ] {
        sans.insert(San::Dns(name.to_string()));
    }
    let domain = opts.cluster_domain.trim_matches('.');
    if !domain.is_empty() {
        sans.insert(San::parse(&format!("kubernetes.default.svc.{domain}"))?);
    }
    sans.insert(San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    sans.insert(San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    sans.insert(San::Ip(canonical_ip(opts.service_ip)));
    if let Some(host) = hostname() {
        sans.insert(San::Dns(host));
    }
    sans.extend(host_addresses().into_iter().map(San::Ip));
    for extra in &opts.extra_sans {
        if !extra.trim().is_empty() {
            sans.insert(San::parse(extra)?);
        }
    }
    Ok(sans)
}

/// The host name, if it is usable as a DNS SAN (lowercased: that is also how the node is named).
fn hostname() -> Option<String> {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    is_dns_name(&name).then_some(name)
}

/// Every non-loopback, non-link-local address of the host's interfaces: clients (nodes, kubectl on another
/// machine) may reach the API server on any of them. Link-local addresses are skipped because they are only
/// meaningful together with an interface, which a URL cannot carry portably.
fn host_addresses() -> BTreeSet<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifaces) => ifaces
            .iter()
            .filter(|i| !i.is_loopback() && !i.is_link_local())
            .map(|i| canonical_ip(i.ip()))
            .filter(|ip| !ip.is_unspecified())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the host's addresses; serving certificate will lack them");
            BTreeSet::new()
        }
    }
}

/// The SANs a certificate carries, normalized.
fn cert_sans(cert: &X509Certificate<'_>) -> BTreeSet<San> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(San::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| San::Ip(IpAddr::from(b))),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| San::Ip(canonical_ip(IpAddr::from(b)))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn generate_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Crypto { what, source })
}

/// A random positive 128-bit serial. rcgen's default derives the serial from the public key, which would
/// repeat if a certificate were ever re-issued for the same key; serials must be unique per CA.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keep it positive and exactly 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

/// A fresh self-signed CA: (cert PEM, key).
fn new_ca(now: OffsetDateTime) -> Result<(String, KeyPair), PkiError> {
    let key = generate_key("CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("capstan-ca@{}", now.unix_timestamp()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial()?);
    let cert = params.self_signed(&key).map_err(|source| PkiError::Crypto {
        what: "CA certificate",
        source,
    })?;
    Ok((cert.pem(), key))
}

/// Issues a leaf certificate with a fresh key from the CA: (cert PEM, PKCS#8 key PEM).
///
/// The issuer is always rebuilt from the CA certificate on disk (not from the parameters it was created
/// with), so the leaf's issuer name is byte-for-byte the CA's subject, which Go's chain building requires.
fn issue_leaf(
    ca_cert_pem: &str,
    ca_key: &KeyPair,
    now: OffsetDateTime,
    spec: &LeafSpec<'_>,
) -> Result<(String, String), PkiError> {
    let crypto = |what| move |source| PkiError::Crypto { what, source };
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(crypto("parsing the CA certificate"))?;
    let key = generate_key("certificate key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // rcgen keeps one value per attribute type; a second organization goes in under the same OID spelled as
    // a custom type, which encodes identically.
    match spec.organizations {
        [] => {}
        [o] => params.distinguished_name.push(DnType::OrganizationName, *o),
        [o1, o2] => {
            params.distinguished_name.push(DnType::OrganizationName, *o1);
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 10]), *o2);
        }
        _ => {
            return Err(PkiError::InvalidRequest(
                "at most two organizations (groups) per certificate are supported".to_string(),
            ));
        }
    }
    params.distinguished_name.push(DnType::CommonName, spec.common_name);
    params.subject_alt_names = spec.sans.iter().map(San::to_rcgen).collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![spec.usage.clone()];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(crypto("signing a certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Reads a PKI file if it exists. Key files found readable by group or others (copied around by hand, say)
/// are tightened back to 0600 with a warning rather than refused.
fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(contents) => {
            if let Ok(meta) = fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
                && path.extension().is_some_and(|e| e == "key")
            {
                tracing::warn!(path = %path.display(), "private key readable by others; setting mode 0600");
                fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
            }
            Ok(Some(contents))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn cert_der(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| invalid(path, format!("not a PEM certificate: {e}")))
}

fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| invalid(path, format!("unparsable certificate: {e}")))
}

fn invalid(path: &Path, reason: String) -> PkiError {
    PkiError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// kubeconfig v1 as kubectl writes it (field order and names as `kubectl config view` prints them).
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<NamedCluster>,
    contexts: Vec<NamedContext>,
    current_context: &'static str,
    preferences: BTreeMap<String, String>,
    users: Vec<NamedUser>,
}

#[derive(Serialize)]
struct NamedCluster {
    cluster: Cluster,
    name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    certificate_authority_data: String,
    server: String,
}

#[derive(Serialize)]
struct NamedContext {
    context: Context,
    name: &'static str,
}

#[derive(Serialize)]
struct Context {
    cluster: &'static str,
    user: &'static str,
}

#[derive(Serialize)]
struct NamedUser {
    name: &'static str,
    user: User,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: String,
    client_key_data: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::PeerIdentity;

    fn options(root: &Path) -> PkiOptions {
        PkiOptions::new(root.join("server").join("tls"))
    }

    fn read(pki: &Pki, name: &str) -> String {
        fs::read_to_string(pki.dir().join(name)).expect("read PKI file")
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn sans_of(pem: &str) -> BTreeSet<San> {
        let der = der(pem);
        cert_sans(&parse_cert(Path::new("test"), &der).expect("parse"))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn creates_every_file_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path());
        let pki = Pki::load_or_create(&opts).expect("create PKI");
        assert_eq!(mode(&opts.dir), 0o700);
        for name in [
            CA_CERT,
            CA_KEY,
            SERVING_CERT,
            SERVING_KEY,
            ADMIN_CERT,
            ADMIN_KEY,
            SERVICE_ACCOUNT_KEY,
        ] {
            assert_eq!(mode(&opts.dir.join(name)), 0o600, "{name}");
        }
        assert_eq!(pki.ca_pem(), read(&pki, CA_CERT));
        assert!(pki.service_account_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(
            pki.service_account_public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(&opts.dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let ca_der = der(pki.ca_pem());
        let ca = parse_cert(Path::new(CA_CERT), &ca_der).expect("parse CA");
        assert!(ca.is_ca());
        let cn = ca.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok());
        assert!(cn.is_some_and(|cn| cn.starts_with("capstan-ca@")), "{cn:?}");
        let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / (365 * 86400);
        assert_eq!(years, 10);
    }

    #[test]
    fn reload_keeps_every_identity() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path());
        let first = Pki::load_or_create(&opts).expect("create PKI");
        let second = Pki::load_or_create(&opts).expect("reload PKI");
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.serving_cert_pem(), second.serving_cert_pem());
        assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
        assert_eq!(first.admin_key_pem, second.admin_key_pem);
        assert_eq!(first.service_account_key_pem(), second.service_account_key_pem());
        assert_eq!(
            first.service_account_public_key_pem(),
            second.service_account_public_key_pem()
        );
    }

    #[test]
    fn serving_cert_has_every_required_san() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut opts = options(tmp.path());
        opts.extra_sans = vec![
            "API.Example.test.".to_string(),
            "192.0.2.10".to_string(),
            "[2001:db8::1]".to_string(),
        ];
        opts.cluster_domain = "corp.internal".to_string();
        let pki = Pki::load_or_create(&opts).expect("create PKI");
        let sans = sans_of(pki.serving_cert_pem());
        for dns in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.corp.internal",
            "api.example.test",
        ] {
            assert!(sans.contains(&San::Dns(dns.to_string())), "{dns} missing from {sans:?}");
        }
        for ip in ["127.0.0.1", "::1", "10.43.0.1", "192.0.2.10", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(sans.contains(&San::Ip(ip)), "{ip} missing from {sans:?}");
        }
        if let Some(host) = hostname() {
            assert!(sans.contains(&San::Dns(host)));
        }
        for ip in host_addresses() {
            assert!(sans.contains(&San::Ip(ip)), "host address {ip} missing");
        }

        let der = der(pki.serving_cert_pem());
        let cert = parse_cert(Path::new(SERVING_CERT), &der).expect("parse");
        let eku = cert.extended_key_usage().expect("EKU").expect("EKU present").value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(!cert.is_ca());
        let ca_der = self::der(pki.ca_pem());
        let ca = parse_cert(Path::new(CA_CERT), &ca_der).expect("parse CA");
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        cert.verify_signature(Some(ca.public_key())).expect("signed by the CA");
    }

    #[test]
    fn admin_cert_is_system_masters() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(&options(tmp.path())).expect("create PKI");
        let identity = PeerIdentity::from_certificate(&der(&pki.admin_cert_pem)).expect("identity");
        assert_eq!(identity.user, "system:admin");
        assert_eq!(identity.groups, vec!["system:masters".to_string()]);
        let der = der(&pki.admin_cert_pem);
        let cert = parse_cert(Path::new(ADMIN_CERT), &der).expect("parse");
        let eku = cert.extended_key_usage().expect("EKU").expect("EKU present").value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(pki.admin_cert_pem, read(&pki, ADMIN_CERT));
    }

    #[test]
    fn missing_san_reissues_only_the_serving_cert() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut opts = options(tmp.path());
        let first = Pki::load_or_create(&opts).expect("create PKI");
        let san = San::Dns("new.example.test".to_string());
        assert!(!sans_of(first.serving_cert_pem()).contains(&san));

        opts.extra_sans.push("new.example.test".to_string());
        let second = Pki::load_or_create(&opts).expect("reload with a new SAN");
        assert_ne!(first.serving_cert_pem(), second.serving_cert_pem());
        assert_ne!(first.serving_key_pem, second.serving_key_pem);
        assert!(sans_of(second.serving_cert_pem()).contains(&san));
        assert_eq!(second.serving_cert_pem(), read(&second, SERVING_CERT));
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
        assert_eq!(first.service_account_key_pem(), second.service_account_key_pem());

        // A SAN that is no longer required does not cause churn: the cert is kept until something is missing.
        opts.extra_sans.clear();
        let third = Pki::load_or_create(&opts).expect("reload without the SAN");
        assert_eq!(second.serving_cert_pem(), third.serving_cert_pem());
    }

    #[test]
    fn reissued_serving_cert_chains_to_the_existing_ca() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut opts = options(tmp.path());
        Pki::load_or_create(&opts).expect("create PKI");
        opts.extra_sans.push("10.0.0.99".to_string());
        let pki = Pki::load_or_create(&opts).expect("reload");
        let ca_der = der(pki.ca_pem());
        let ca = parse_cert(Path::new(CA_CERT), &ca_der).expect("parse CA");
        let der = der(pki.serving_cert_pem());
        let cert = parse_cert(Path::new(SERVING_CERT), &der).expect("parse");
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        cert.verify_signature(Some(ca.public_key())).expect("signed by the CA");
        pki.server_tls_config().expect("usable for TLS");
    }

    #[test]
    fn expiring_or_foreign_leaf_certs_are_renewed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path());
        let first = Pki::load_or_create(&opts).expect("create PKI");

        // A serving cert issued 300 days ago expires in 65 days: renewed at start.
        let spec = LeafSpec {
            common_name: "kube-apiserver",
            organizations: &[],
            sans: required_sans(&opts).expect("sans").into_iter().collect(),
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        };
        let old = OffsetDateTime::now_utc() - Duration::days(300);
        let (cert, key) = issue_leaf(first.ca_pem(), &first.ca_key, old, &spec).expect("issue");
        write_private(&opts.dir.join(SERVING_CERT), cert.as_bytes()).expect("write");
        write_private(&opts.dir.join(SERVING_KEY), key.as_bytes()).expect("write");
        let second = Pki::load_or_create(&opts).expect("reload");
        assert_ne!(second.serving_cert_pem(), cert);

        // An admin cert from another CA is replaced, with the same identity.
        let other = tempfile::tempdir().expect("tempdir");
        let foreign = Pki::load_or_create(&options(other.path())).expect("other PKI");
        write_private(&opts.dir.join(ADMIN_CERT), foreign.admin_cert_pem.as_bytes()).expect("write");
        write_private(&opts.dir.join(ADMIN_KEY), foreign.admin_key_pem.as_bytes()).expect("write");
        let third = Pki::load_or_create(&opts).expect("reload");
        assert_ne!(third.admin_cert_pem, foreign.admin_cert_pem);
        assert_ne!(third.admin_cert_pem, first.admin_cert_pem);
        let identity = PeerIdentity::from_certificate(&der(&third.admin_cert_pem)).expect("identity");
        assert_eq!(identity.user, "system:admin");
        assert_eq!(first.ca_pem(), third.ca_pem());
    }

    #[test]
    fn half_a_ca_is_an_error_not_a_new_ca() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path());
        Pki::load_or_create(&opts).expect("create PKI");
        fs::remove_file(opts.dir.join(CA_KEY)).expect("remove");
        let err = Pki::load_or_create(&opts).expect_err("must refuse");
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn group_readable_keys_are_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path());
        Pki::load_or_create(&opts).expect("create PKI");
        let key = opts.dir.join(ADMIN_KEY);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        Pki::load_or_create(&opts).expect("reload");
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn client_certs_carry_user_and_groups() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(&options(tmp.path())).expect("create PKI");
        let (cert, key) = pki
            .issue_client_cert("system:node:vm", &["system:nodes", "capstan:agents"])
            .expect("issue");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let identity = PeerIdentity::from_certificate(&der(&cert)).expect("identity");
        assert_eq!(identity.user, "system:node:vm");
        assert_eq!(
            identity.groups,
            vec!["system:nodes".to_string(), "capstan:agents".to_string()]
        );

        let (cert, _) = pki.issue_client_cert("system:kube-scheduler", &[]).expect("issue");
        let identity = PeerIdentity::from_certificate(&der(&cert)).expect("identity");
        assert!(identity.groups.is_empty());

        assert!(pki.issue_client_cert("", &[]).is_err());
        assert!(pki.issue_client_cert("x", &["a", "b", "c"]).is_err());
    }

    #[test]
    fn admin_kubeconfig_is_k3s_shaped_yaml() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(&options(tmp.path())).expect("create PKI");
        let yaml = pki.admin_kubeconfig("https://127.0.0.1:6443").expect("kubeconfig");
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        assert_eq!(doc["apiVersion"].as_str(), Some("v1"));
        assert_eq!(doc["kind"].as_str(), Some("Config"));
        assert_eq!(doc["current-context"].as_str(), Some("default"));
        assert_eq!(doc["contexts"][0]["context"]["cluster"].as_str(), Some("default"));
        assert_eq!(doc["contexts"][0]["context"]["user"].as_str(), Some("default"));
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"].as_str(), Some("default"));
        assert_eq!(cluster["cluster"]["server"].as_str(), Some("https://127.0.0.1:6443"));
        let decode = |v: &serde_yaml::Value| {
            let b64 = v.as_str().expect("string");
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).expect("base64")).expect("utf8")
        };
        assert_eq!(decode(&cluster["cluster"]["certificate-authority-data"]), pki.ca_pem());
        let user = &doc["users"][0];
        assert_eq!(user["name"].as_str(), Some("default"));
        assert_eq!(decode(&user["user"]["client-certificate-data"]), pki.admin_cert_pem);
        assert_eq!(decode(&user["user"]["client-key-data"]), pki.admin_key_pem);

        let path = tmp.path().join("out").join("admin.kubeconfig");
        pki.write_admin_kubeconfig(&path, "https://127.0.0.1:6443")
            .expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).expect("read"), yaml);
    }

    #[test]
    fn write_private_replaces_atomically_with_mode_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a").join("b").join("secret");
        write_private(&path, b"one").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&tmp.path().join("a").join("b")), 0o700);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, b"two").expect("overwrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read_dir(path.parent().expect("parent")).expect("read dir").count(),
            1
        );
    }

    #[test]
    fn san_parsing() {
        assert_eq!(San::parse(" Foo.Bar. ").expect("dns"), San::Dns("foo.bar".to_string()));
        assert_eq!(
            San::parse("*.apps.test").expect("wildcard"),
            San::Dns("*.apps.test".to_string())
        );
        assert_eq!(
            San::parse("::ffff:192.0.2.1").expect("mapped"),
            San::Ip("192.0.2.1".parse().expect("ip"))
        );
        for bad in ["under_score", "sp ace", "-x.test", "a..b", "é.test"] {
            assert!(San::parse(bad).is_err(), "{bad}");
        }
        let mut opts = PkiOptions::new("/nonexistent");
        opts.extra_sans = vec!["not a name".to_string()];
        assert!(matches!(required_sans(&opts), Err(PkiError::InvalidSan(_))));
    }
}
