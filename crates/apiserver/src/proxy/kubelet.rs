//! The API server's HTTPS client for kubelets.
//!
//! One TLS configuration: the cluster CA as the only trust root (kubelets' serving certificates are issued by
//! it) and the `kube-apiserver-kubelet-client` certificate as the client identity. Every call opens its own
//! HTTP/1.1 connection: streaming calls hold theirs for the whole session, and upgrades need one anyway.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use capstan_apimachinery::ApiError;
use http::Request;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How long connecting (TCP and TLS) to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls kubelets.
pub struct KubeletClient {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// A client trusting `ca_pem` and presenting `cert_pem`/`key_pem`.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<KubeletClient, rustls::Error> {
        let bad = |what: &str, e: &dyn std::fmt::Display| rustls::Error::General(format!("{what}: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| bad("CA", &e))?)?;
        }
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("client certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("client key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `request` to the kubelet at `host:port` on a connection of its own that supports upgrades.
    pub async fn send(
        &self,
        host: &str,
        port: u16,
        request: Request<Empty<Bytes>>,
    ) -> Result<http::Response<Incoming>, ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| ApiError::internal(format!("error dialing backend: {e}"));
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string()).map_err(|e| unavailable(&e))?,
        };
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            self.connector.connect(server_name, tcp).await
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| unavailable(&"timed out"))?
            .map_err(|e| unavailable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        sender.send_request(request).await.map_err(|e| unavailable(&e))
    }
}
