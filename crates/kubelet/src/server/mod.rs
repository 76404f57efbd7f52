//! The kubelet's HTTPS server (port 10250): what the API server proxies `kubectl logs`, `exec`, `attach`,
//! `port-forward` and `top` to.
//!
//! | path                                          | what                                              |
//! |-----------------------------------------------|---------------------------------------------------|
//! | `GET /containerLogs/{ns}/{pod}/{container}`   | [`logs`]: the CRI log file, decoded and filtered  |
//! | `/exec/{ns}/{pod}/{container}?command=…`      | [`remote`]: a CRI exec session, bridged           |
//! | `/attach/{ns}/{pod}/{container}`              | [`remote`]: a CRI attach session, bridged         |
//! | `/portForward/{ns}/{pod}`                     | [`remote`]: a CRI port-forward session, relayed   |
//! | `GET /stats/summary`                          | [`stats`]: cpu and memory from the cgroups        |
//! | `GET /healthz`                                | `ok`                                              |
//!
//! Streaming requests are terminated here, not redirected: the kubelet accepts whatever the caller speaks
//! (WebSocket `v5.channel.k8s.io`/`v4…`, SPDY/3.1, SPDY tunnelled in WebSocket for port-forward), asks CRI
//! for the session's URL on containerd's streaming server, dials it as a SPDY client and bridges the two
//! (see `capstan_streaming`). So the API server can pass every upgrade through untouched, and kubectl's
//! WebSocket-first behaviour works without a translating proxy.
//!
//! Only the API server may call: the TLS handshake requires a client certificate from the cluster CA, and the
//! certificate's common name must be [`API_SERVER_CLIENT_CN`] (upstream authorizes through the API server;
//! here the API server is the only legitimate caller).

mod logs;
mod lookup;
mod remote;
mod stats;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tower::ServiceExt as _;

/// The common name of the only client certificate the server accepts: the API server's kubelet-client identity.
pub const API_SERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS material.
#[derive(Clone)]
pub struct ServerTls {
    /// The serving certificate (PEM, signed by the cluster CA; the API server verifies it).
    pub cert_pem: String,
    /// The serving certificate's key (PEM).
    pub key_pem: String,
    /// The cluster CA (PEM) that client certificates must chain to.
    pub client_ca_pem: String,
}

impl std::fmt::Debug for ServerTls {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// What the server needs.
#[derive(Clone)]
pub struct ServerOptions {
    /// Where to listen (`0.0.0.0:<--kubelet-port>`).
    pub addr: SocketAddr,
    /// Serving certificate and client CA.
    pub tls: ServerTls,
    /// The CRI runtime service.
    pub runtime: RuntimeServiceClient<Channel>,
    /// The cgroup v1 mount (`/sys/fs/cgroup`) and the pods' cgroup root under it (`--cgroup-root`, `/capstan`).
    pub cgroups: stats::CgroupLayout,
    /// The node's name, for `/stats/summary`.
    pub node_name: String,
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificates could not be loaded.
    #[error("kubelet server TLS: {0}")]
    Tls(String),
    /// The port could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

pub use stats::CgroupLayout;

/// Shared state of the handlers.
struct State {
    runtime: RuntimeServiceClient<Channel>,
    stats: stats::Sampler,
    node_name: String,
}

/// Binds the port and serves until `shutdown` resolves. Returns an error only if the server cannot start.
pub async fn serve(options: ServerOptions, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
    let tls = Arc::new(tls_config(&options)?);
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: options.addr,
            source,
        })?;
    tracing::info!(addr = %options.addr, "kubelet server listening");
    let state = Arc::new(State {
        runtime: options.runtime,
        stats: stats::Sampler::new(options.cgroups),
        node_name: options.node_name,
    });
    let app = router(state);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, acceptor.clone(), app.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Streaming sessions end with the kubelet: drop every connection.
    connections.shutdown().await;
    Ok(())
}

fn tls_config(options: &ServerOptions) -> Result<rustls::ServerConfig, ServerError> {
    let tls_err = |what: &str, e: &dyn std::fmt::Display| ServerError::Tls(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(options.tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err("serving certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(options.tls.key_pem.as_bytes()).map_err(|e| tls_err("key", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(options.tls.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| tls_err("client CA", &e))?;
        roots.add(ca).map_err(|e| tls_err("client CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_err("client verifier", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("serving certificate", &e))?;
    // HTTP/1.1 only: every streaming protocol here is an HTTP/1.1 upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let cn = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| common_name(cert));
    let authorized = cn.as_deref() == Some(API_SERVER_CLIENT_CN);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let app = app.clone();
        let cn = cn.clone();
        async move {
            if !authorized {
                tracing::debug!(%peer, user = ?cn, path = %request.uri().path(), "kubelet server: forbidden");
                let message = format!(
                    "Forbidden (user={}, path={})",
                    cn.unwrap_or_default(),
                    request.uri().path()
                );
                return Ok::<_, std::convert::Infallible>((StatusCode::FORBIDDEN, message).into_response());
            }
            app.oneshot(request.map(Body::new)).await
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %e, "kubelet server: connection ended with an error");
    }
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", any(remote::exec))
        .route("/attach/{namespace}/{pod}/{container}", any(remote::attach))
        .route("/portForward/{namespace}/{pod}", any(remote::port_forward))
        .route("/stats/summary", get(stats::summary))
        .with_state(state)
}

/// A plain-text error answer, as the kubelet gives them (the API server turns them into a `Status`).
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}
