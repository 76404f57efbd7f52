use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// A small HTTP/1.1 server on loopback whose answers depend on the path;
/// `/headers` echoes the request headers in its body.
async fn http_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_one(stream));
        }
    });
    (addr, task)
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        headers.push_str(&h);
    }
    let (status, extra, body) = match path.as_str() {
        "/ok" => ("200 OK", String::new(), "fine".to_string()),
        "/fail" => ("500 Internal Server Error", String::new(), "bad".to_string()),
        "/local" => ("302 Found", "Location: /ok\r\n".to_string(), String::new()),
        "/relative/a" => ("301 Moved", "Location: ../ok\r\n".to_string(), String::new()),
        "/away" => (
            "302 Found",
            "Location: http://elsewhere.cluster.local:1/\r\n".to_string(),
            "moved".to_string(),
        ),
        "/loop" => ("302 Found", "Location: /loop\r\n".to_string(), String::new()),
        "/headers" => ("200 OK", String::new(), headers.clone()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ("200 OK", String::new(), String::new())
        }
        _ => ("404 Not Found", String::new(), String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(response.as_bytes()).await;
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url {
        https: false,
        host: addr.ip().to_string(),
        port: addr.port(),
        path: path.into(),
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn http_get_outcomes() {
    let (addr, server) = http_server().await;
    assert_eq!(
        http_get(url(addr, "/ok"), &[], SECOND).await,
        Outcome::Success("fine".into())
    );
    assert_eq!(
        http_get(url(addr, "/fail"), &[], SECOND).await,
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    // Redirects on the same host are followed, also relative ones.
    assert_eq!(
        http_get(url(addr, "/local"), &[], SECOND).await,
        Outcome::Success("fine".into())
    );
    assert_eq!(
        http_get(url(addr, "/relative/a"), &[], SECOND).await,
        Outcome::Success("fine".into())
    );
    // To another host they are not: success with a warning.
    assert_eq!(
        http_get(url(addr, "/away"), &[], SECOND).await,
        Outcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
    assert_eq!(
        http_get(url(addr, "/loop"), &[], SECOND).await,
        Outcome::Failure(format!("Get \"http://{addr}/loop\": stopped after 10 redirects"))
    );
    assert_eq!(
        http_get(url(addr, "/slow"), &[], SECOND).await,
        Outcome::Failure(format!(
            "Get \"http://{addr}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    let headers: Vec<HTTPHeader> =
        serde_json::from_value(json!([{"name": "X-Probe", "value": "yes"}, {"name": "Accept", "value": "text/plain"}]))
            .unwrap();
    let Outcome::Success(echo) = http_get(url(addr, "/headers"), &headers, SECOND).await else {
        panic!()
    };
    let echo = echo.to_lowercase();
    assert!(echo.contains("user-agent: kube-probe/1.33"), "{echo}");
    assert!(echo.contains("x-probe: yes"), "{echo}");
    assert!(echo.contains("accept: text/plain"), "{echo}");
    assert!(echo.contains(&format!("host: {addr}")), "{echo}");
    server.abort();
    let _ = server.await;
    // Nothing listens any more.
    assert_eq!(
        http_get(url(addr, "/ok"), &[], SECOND).await,
        Outcome::Failure(format!(
            "Get \"http://{addr}/ok\": dial tcp {addr}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn https_without_verification() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::generate_simple_self_signed(vec!["not-the-pod.example".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                tokio::spawn(serve_one(tls));
            }
        }
    });
    let target = Url {
        https: true,
        ..url(addr, "/ok")
    };
    assert_eq!(http_get(target, &[], SECOND).await, Outcome::Success("fine".into()));
    server.abort();
}

#[tokio::test]
async fn tcp_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert!(tcp_probe(&addr, SECOND).await.is_success());
    drop(listener);
    assert_eq!(
        tcp_probe(&addr, SECOND).await,
        Outcome::Failure(format!("dial tcp {addr}: connect: connection refused"))
    );
}

#[tokio::test]
async fn grpc_health() {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("ready", ServingStatus::Serving).await;
    reporter.set_service_status("draining", ServingStatus::NotServing).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    assert_eq!(
        grpc_probe(&addr, String::new(), SECOND).await,
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        grpc_probe(&addr, "ready".into(), SECOND).await,
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        grpc_probe(&addr, "draining".into(), SECOND).await,
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    let Outcome::Failure(unknown) = grpc_probe(&addr, "nope".into(), SECOND).await else {
        panic!()
    };
    assert!(
        unknown.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
        "{unknown}"
    );
    server.abort();
    let _ = server.await;
    let Outcome::Failure(down) = grpc_probe(&addr, String::new(), SECOND).await else {
        panic!()
    };
    assert!(
        down.starts_with(&format!("error: failed to connect service at \"{addr}\"")),
        "{down}"
    );
}

#[test]
fn ports_by_number_and_name() {
    let c: Container =
        serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
    assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
    assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
    assert_eq!(
        resolve_port(&IntOrString::String("grpc".into()), &c)
            .unwrap_err()
            .to_string(),
        "port grpc not found"
    );
    assert_eq!(
        resolve_port(&IntOrString::Int(70000), &c).unwrap_err().to_string(),
        "invalid port number: 70000"
    );
}

#[test]
fn redirect_targets() {
    let base = Url {
        https: false,
        host: "10.0.0.5".into(),
        port: 8080,
        path: "/a/b?x=1".into(),
    };
    assert_eq!(base.join("/c").unwrap().to_string(), "http://10.0.0.5:8080/c");
    assert_eq!(base.join("d").unwrap().to_string(), "http://10.0.0.5:8080/a/d");
    assert_eq!(
        base.join("https://example.cluster.local/z").unwrap().to_string(),
        "https://example.cluster.local:443/z"
    );
    assert_eq!(base.join("//other:81/q").unwrap().to_string(), "http://other:81/q");
    assert_eq!(
        base.join("../up?y=2").unwrap().to_string(),
        "http://10.0.0.5:8080/up?y=2"
    );
    assert_eq!(base.join("./").unwrap().to_string(), "http://10.0.0.5:8080/a/");
}

#[test]
fn thresholds_publish_after_runs() {
    let probe: Probe = serde_json::from_value(json!({"successThreshold": 2, "failureThreshold": 3})).unwrap();
    let mut t = Thresholds::new(&probe);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(true), None); // a success breaks the failure run
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), Some(false));
    assert_eq!(t.observe(true), None);
    assert_eq!(t.observe(true), Some(true));
    assert_eq!(t.observe(true), Some(true));
    // Defaults: success 1, failure 3.
    let mut d = Thresholds::new(&Probe::default());
    assert_eq!(d.observe(true), Some(true));
}

#[test]
fn startup_gates_the_others() {
    assert!(gated(ProbeKind::Startup, false));
    assert!(!gated(ProbeKind::Startup, true));
    assert!(!gated(ProbeKind::Liveness, false));
    assert!(gated(ProbeKind::Readiness, true));
}

fn target() -> ProbeTarget {
    ProbeTarget {
        pod_ip: "127.0.0.1".into(),
        container_id: "c1".into(),
        cri: None,
    }
}

async fn wait_for(state: &mut watch::Receiver<ProbeState>, what: impl Fn(&ProbeState) -> bool) -> ProbeState {
    tokio::time::timeout(Duration::from_secs(15), state.wait_for(|s| what(s)))
        .await
        .expect("state reached in time")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn readiness_follows_the_endpoint_and_liveness_asks_for_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"terminationGracePeriodSeconds": 30, "containers": []}}),
    )
    .unwrap();
    let container: Container = serde_json::from_value(json!({"name": "web",
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1},
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 2, "terminationGracePeriodSeconds": 5}
    }))
    .unwrap();
    let mut probes = ContainerProbes::start(&pod, &container, target(), Instant::now());
    assert!(
        !probes.state.borrow().ready,
        "not ready before the first readiness success"
    );
    let state = wait_for(&mut probes.state, |s| s.ready).await;
    assert!(state.started && state.failed.is_none());

    drop(listener);
    wait_for(&mut probes.state, |s| !s.ready).await;
    let state = wait_for(&mut probes.state, |s| s.failed.is_some()).await;
    let failed = state.failed.unwrap();
    assert_eq!(failed.message, "Container web failed liveness probe");
    assert_eq!(
        failed.kill_message(true),
        "Container web failed liveness probe, will be restarted"
    );
    assert_eq!(failed.reason(), "LivenessProbe");
    assert_eq!(failed.grace_period_seconds, Some(5));
    let event = probes.events.recv().await.unwrap();
    assert_eq!(event.reason, "Unhealthy");
    assert!(
        event.message.starts_with("Readiness probe failed: dial tcp")
            || event.message.starts_with("Liveness probe failed: dial tcp"),
        "{}",
        event.message
    );
}

#[tokio::test]
async fn startup_probe_holds_back_liveness_and_initial_delay_holds_back_startup() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).unwrap();
    let container: Container = serde_json::from_value(json!({"name": "slow",
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 30, "initialDelaySeconds": 2},
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}
    }))
    .unwrap();
    let started = Instant::now();
    let mut probes = ContainerProbes::start(&pod, &container, target(), started);
    // Nothing listens: liveness would fail at once, but it waits for startup.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        probes.events.try_recv().is_err(),
        "no probe ran during the initial delay"
    );
    let state = probes.state.borrow().clone();
    assert_eq!((state.started, state.ready, state.failed.clone()), (false, false, None));
    let event = probes.events.recv().await.unwrap();
    assert!(
        event.message.starts_with("Startup probe failed: dial tcp"),
        "{}",
        event.message
    );
    assert!(started.elapsed() >= Duration::from_secs(2));

    let _listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let state = wait_for(&mut probes.state, |s| s.started).await;
    assert!(state.ready, "no readiness probe: ready once started");
    assert!(state.failed.is_none());
}
