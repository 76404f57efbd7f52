//! End-to-end tests of the PKI and the HTTPS server: a PKI is created in a temporary directory, a tiny router
//! that echoes the client-certificate identity is served on 127.0.0.1:0, and real clients talk to it: kubectl
//! (Go's TLS and HTTP/2 stack, with the admin kubeconfig exactly as written for users), curl (OpenSSL, both
//! HTTP versions) and a rustls client for the cases that need control over the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::routing::get;
use capstan_apiserver::pki::{Pki, PkiOptions, write_private};
use capstan_apiserver::tls::{PeerIdentity, serve};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// The server under test; aborted when dropped, so a failing test never leaks a listener.
struct Server {
    addr: SocketAddr,
    task: Option<JoinHandle<std::io::Result<()>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(pki: &Pki) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let config = pki.server_tls_config().expect("TLS config");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, app(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            task: Some(task),
            stop: Some(stop),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Signals shutdown and waits for `serve` to return.
    async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
            .expect("serve result");
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn app() -> axum::Router {
    axum::Router::new()
        .route(
            "/whoami",
            get(|Extension(identity): Extension<Option<PeerIdentity>>| async move {
                let body = match identity {
                    Some(id) => serde_json::json!({ "user": id.user, "groups": id.groups }),
                    None => serde_json::Value::Null,
                };
                axum::Json(body)
            }),
        )
        // A response that trickles, like a watch: three lines 100 ms apart.
        .route(
            "/stream",
            get(|| async {
                let lines = futures::stream::unfold(0u32, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Some((Ok::<_, std::convert::Infallible>(format!("line {i}\n")), i + 1))
                });
                Body::from_stream(lines)
            }),
        )
        // A response that never ends by itself, like an idle watch.
        .route(
            "/forever",
            get(|| async {
                let first = futures::stream::once(async { Ok::<_, std::convert::Infallible>("started\n") });
                Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow done"
            }),
        )
}

fn new_pki(dir: &Path) -> Pki {
    Pki::load_or_create(&PkiOptions::new(dir.join("server").join("tls"))).expect("create PKI")
}

fn tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

async fn run(program: &Path, args: &[&str], home: &Path) -> (bool, String, String) {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finishes within 60s")
        .expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn client_config(pki: &Pki, client_cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).expect("CA PEM"))
        .expect("add root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert PEM")],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
            )
            .expect("client auth"),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One HTTP/1.1 GET over rustls; returns the raw response (headers and body) or the error.
async fn https_get(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn kubectl_with_the_admin_kubeconfig_is_system_admin() {
    let kubectl = tool("kubectl").expect("kubectl is required (the Makefile checks for it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;
    let kubeconfig = tmp.path().join("admin.kubeconfig");
    pki.write_admin_kubeconfig(&kubeconfig, &server.url())
        .expect("write kubeconfig");

    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = run(
        &kubectl,
        &["--kubeconfig", &kubeconfig, "get", "--raw", "/whoami"],
        tmp.path(),
    )
    .await;
    assert!(ok, "kubectl failed: {stderr}");
    let identity: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON from kubectl");
    assert_eq!(
        identity,
        serde_json::json!({ "user": "system:admin", "groups": ["system:masters"] })
    );

    // kubectl also reads the file as a kubeconfig (not just as something that happens to parse).
    let (ok, stdout, stderr) = run(
        &kubectl,
        &[
            "--kubeconfig",
            &kubeconfig,
            "config",
            "view",
            "-o",
            "jsonpath={.contexts[0].name}/{.users[0].name}",
        ],
        tmp.path(),
    )
    .await;
    assert!(ok, "kubectl config view failed: {stderr}");
    assert_eq!(stdout, "default/default");

    server.shutdown().await;
}

#[tokio::test]
async fn without_a_client_certificate_the_identity_is_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;

    let response = https_get(server.addr, client_config(&pki, None), "/whoami")
        .await
        .expect("request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(body(&response), "null");

    // The same client with a component certificate from the cluster CA is that component.
    let (cert, key) = pki
        .issue_client_cert("system:node:vm", &["system:nodes"])
        .expect("client cert");
    let response = https_get(server.addr, client_config(&pki, Some((&cert, &key))), "/whoami")
        .await
        .expect("request");
    let identity: serde_json::Value = serde_json::from_str(body(&response)).expect("JSON");
    assert_eq!(
        identity,
        serde_json::json!({ "user": "system:node:vm", "groups": ["system:nodes"] })
    );

    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(&tmp.path().join("ours"));
    let theirs = new_pki(&tmp.path().join("theirs"));
    let server = Server::start(&pki).await;

    let (cert, key) = theirs
        .issue_client_cert("system:admin", &["system:masters"])
        .expect("cert");
    let result = https_get(server.addr, client_config(&pki, Some((&cert, &key))), "/whoami").await;
    match result {
        Err(_) => {}
        Ok(response) => assert!(!response.contains("system:admin"), "foreign cert accepted: {response}"),
    }

    // The failed handshake did not hurt the server.
    let response = https_get(server.addr, client_config(&pki, None), "/whoami")
        .await
        .expect("request");
    assert_eq!(body(&response), "null");
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_and_garbage_handshakes_do_not_block_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;

    // One client connects and says nothing; another speaks plain HTTP to the TLS port.
    let _stalled = TcpStream::connect(server.addr).await.expect("connect");
    let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut sink)).await;

    let started = Instant::now();
    let response = https_get(server.addr, client_config(&pki, None), "/whoami")
        .await
        .expect("request");
    assert_eq!(body(&response), "null");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // Shutdown does not wait for the stalled handshake.
    let took = server.shutdown().await;
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[tokio::test]
async fn streaming_responses_over_http1_and_http2() {
    let curl = tool("curl").expect("curl is required (the Makefile installs it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;
    let ca = tmp.path().join("ca.crt");
    write_private(&ca, pki.ca_pem().as_bytes()).expect("write CA");
    let ca = ca.to_string_lossy().into_owned();

    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let url = format!("{}/stream", server.url());
        let (ok, stdout, stderr) = run(
            &curl,
            &["-sS", "-N", flag, "--cacert", &ca, "-w", "%{http_version}", &url],
            tmp.path(),
        )
        .await;
        assert!(ok, "curl {flag}: {stderr}");
        assert_eq!(stdout, format!("line 0\nline 1\nline 2\n{version}"), "curl {flag}");
    }

    // With a client certificate, over HTTP/2 (what client-go negotiates).
    let (cert, key) = pki.issue_client_cert("system:kube-scheduler", &[]).expect("cert");
    let (cert_path, key_path) = (tmp.path().join("c.crt"), tmp.path().join("c.key"));
    write_private(&cert_path, cert.as_bytes()).expect("write");
    write_private(&key_path, key.as_bytes()).expect("write");
    let url = format!("{}/whoami", server.url());
    let (ok, stdout, stderr) = run(
        &curl,
        &[
            "-sS",
            "--http2",
            "--cacert",
            &ca,
            "--cert",
            &cert_path.to_string_lossy(),
            "--key",
            &key_path.to_string_lossy(),
            &url,
        ],
        tmp.path(),
    )
    .await;
    assert!(ok, "curl: {stderr}");
    let identity: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        identity,
        serde_json::json!({ "user": "system:kube-scheduler", "groups": [] })
    );

    server.shutdown().await;
}

#[tokio::test]
async fn an_open_stream_delivers_data_before_it_ends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = TlsConnector::from(client_config(&pki, None))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.write_all(b"GET /forever HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("started") {
            let n = tls.read(&mut buf).await.expect("read");
            assert!(n > 0, "stream closed early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "first chunk not delivered: {}",
        String::from_utf8_lossy(&seen)
    );
    drop(tls);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = new_pki(tmp.path());
    let server = Server::start(&pki).await;
    let request = tokio::spawn(https_get(server.addr, client_config(&pki, None), "/slow"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let took = server.shutdown().await;
    let response = request.await.expect("task").expect("request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(body(&response), "slow done");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}
