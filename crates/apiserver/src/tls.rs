//! HTTPS serving with client-certificate identity.
//!
//! kube-apiserver authenticates clients by the certificate they present during the TLS handshake: a certificate
//! that chains to the cluster CA (`--client-ca-file`) names the user in its CN and the groups in its O
//! attributes. Requesting a client certificate is therefore part of the TLS configuration, and the identity is
//! known per *connection*, before any request is read. [`serve`] does the accept loop itself (instead of
//! `axum::serve`, which knows nothing about TLS) so that it can attach that identity to every request as an
//! extension for the authentication layer.
//!
//! Design points:
//! - Client certificates are *optional* (kubectl with a token, pods with service-account tokens and anonymous
//!   `/healthz` probes present none), but a presented one must verify against the cluster CA and carry the
//!   clientAuth EKU, otherwise the handshake fails, as upstream does.
//! - Each connection gets its own task, and its handshake a 10 s deadline: a client that opens a socket and
//!   stalls cannot hold up anyone else, and a failed handshake (port scanners, clients that distrust our CA) is
//!   logged at debug and forgotten; it never ends the accept loop.
//! - HTTP/1.1 and HTTP/2 are both served (ALPN offers `h2` first, as kube-apiserver does; client-go uses h2),
//!   through hyper-util's auto builder with upgrades enabled, so WebSocket/SPDY upgrades (exec, attach,
//!   port-forward) work over HTTP/1.1, and long-running responses (watch streams) over either.
//! - On shutdown the listener is closed at once, every connection is asked to finish gracefully (HTTP/2 GOAWAY,
//!   HTTP/1.1 close after the in-flight response), and connections still open after a bounded grace period
//!   (watches never finish by themselves) are dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`serve`] waits, after `shutdown` resolved, for open connections to finish before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The identity a verified client certificate carries (user = CN, groups = O), as upstream's x509 authenticator
/// maps it. Inserted into every request's extensions as `Option<PeerIdentity>`: `None` when the client
/// presented no certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name.
    pub user: String,
    /// The subject's organization attributes, in certificate order.
    pub groups: Vec<String>,
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate (the caller has verified it). `None` if the certificate cannot
    /// be parsed or has no (or an empty) common name: upstream rejects such certificates as carrying no user.
    pub fn from_certificate(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        if user.is_empty() {
            return None;
        }
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect();
        Some(PeerIdentity { user, groups })
    }
}

/// A rustls server configuration for the API server: `cert_chain`/`key` as the serving identity, ALPN `h2`
/// then `http/1.1`, and client certificates optional but, when presented, verified against `client_ca_roots`.
/// Uses the `ring` provider explicitly, so it works whatever process-wide default is (or is not) installed.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca_roots: Vec<CertificateDer<'static>>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in client_ca_roots {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(format!("client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert_chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TLS connections on `listener` and serves `app` on each with HTTP/1.1 and HTTP/2.
///
/// A verified client certificate's identity is inserted into every request as the extension
/// `Option<PeerIdentity>` (always inserted; `None` without a certificate), for the authentication layer.
/// Runs until `shutdown` resolves; then stops accepting, lets in-flight connections finish gracefully for up to
/// [`SHUTDOWN_GRACE`], drops the rest and returns. Dropping the returned future instead aborts every
/// connection at once. Errors accepting a socket are logged and retried, never returned.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let builder = auto::Builder::new(TokioExecutor::new());
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        builder.clone(),
                        app.clone(),
                        closing_rx.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                }
                Err(e) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning, as axum::serve and hyper do.
                    tracing::error!(error = %e, "accept failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            // Reap finished connections so the set does not grow with every connection ever served.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    // Receivers only see the change; the send fails only if none is left, which is fine.
    let _ = closing_tx.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "shutting down: waiting for open connections to finish"
        );
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "shutdown grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors that concern one connection attempt only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Resolves once shutdown has begun (or [`serve`] is gone). The `watch::Ref` guard `wait_for` returns is dropped
/// here: it must not be held across the `.await`s that follow (it is not `Send`).
async fn closing_started(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Handshakes, then serves one connection until it ends or, after shutdown began, until it has finished
/// gracefully.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    app: axum::Router,
    mut closing: watch::Receiver<bool>,
) {
    // Small request/response exchanges (most API calls) should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = closing_started(&mut closing) => return,
    };

    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| PeerIdentity::from_certificate(cert));
    tracing::trace!(%peer, ?identity, "TLS connection established");

    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(identity.clone());
        app.clone().oneshot(request)
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = closing_started(&mut closing) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
