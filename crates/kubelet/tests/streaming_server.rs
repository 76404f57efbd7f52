//! The kubelet's HTTPS server against the real containerd: logs, exec (WebSocket v5 and SPDY, exit codes,
//! stdin, TTY and resize), attach, port-forward (SPDY and SPDY tunnelled in WebSocket), stats and the
//! client-certificate check — called exactly as the API server calls it, with its kubelet client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use capstan_apiserver::pki::{Pki, PkiOptions};
use capstan_apiserver::proxy::KubeletClient;
use capstan_containerd::archive::{self, BUSYBOX_APPLETS};
use capstan_containerd::killall::{KillallOptions, killall};
use capstan_containerd::{Containerd, ContainerdConfig, import_images, pause};
use capstan_kubelet::cri;
use capstan_kubelet::server::{self, CgroupLayout, ServerOptions, ServerTls};
use capstan_streaming::remotecommand::{self, Event, Options, StreamType};
use capstan_streaming::{portforward, spdy, websocket};
use futures::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// This suite's CNI bridge and subnet, distinct from other suites running containerd at the same time.
const BRIDGE: &str = "cap-st0";
const SUBNET: &str = "10.199.3.0/24";
const IMAGE: &str = "docker.io/capstan-test/busybox:streaming";

/// The data dir and cgroup root of this test; Drop runs `killall` (containerd, sandboxes, mounts, netns,
/// cgroups, the bridge, CNI rules), also when the test panics.
struct Node {
    dir: Option<tempfile::TempDir>,
    cgroup_root: String,
}

impl Node {
    fn new() -> Node {
        Node {
            dir: Some(tempfile::Builder::new().prefix("capstan-st-").tempdir().unwrap()),
            cgroup_root: format!("/capstan-st-{}", std::process::id()),
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn killall_options(&self) -> KillallOptions {
        KillallOptions {
            data_dir: self.data_dir().to_path_buf(),
            cgroup_root: self.cgroup_root.clone(),
            cni_bridge: BRIDGE.into(),
        }
    }

    fn write_cni_config(&self) {
        let dir = self.data_dir().join("agent/etc/cni/net.d");
        std::fs::create_dir_all(&dir).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "cap-st-test",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
                "ipam": { "type": "host-local", "dataDir": self.data_dir().join("agent/cni/networks"),
                          "ranges": [[{ "subnet": SUBNET }]] }
            }]
        });
        std::fs::write(dir.join("10-cap-st.conflist"), conflist.to_string()).unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let options = self.killall_options();
        let result = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(killall(&options))
        })
        .join();
        if !matches!(result, Ok(Ok(_))) {
            eprintln!("killall in the test guard failed: {result:?}");
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Runs the pod `default/p` (uid `uid-st`) with containers `c` (prints to stdout and stderr, serves HTTP on
/// 8080, ticks), and `echo` (a `cat` with stdin open, for attach).
async fn run_pod(runtime: &mut RuntimeServiceClient<tonic::transport::Channel>, node: &Node) -> (String, PathBuf) {
    let log_dir = node.data_dir().join("agent/pods/uid-st");
    std::fs::create_dir_all(&log_dir).unwrap();
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-st".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "p".into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/poduid-st", node.cgroup_root),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox_id = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let script = "mkdir -p /tmp/www && echo hello-port-forward > /tmp/www/index.html && \
                  echo started && echo oops >&2 && httpd -p 8080 -h /tmp/www && \
                  i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    let containers = [
        ("c", vec!["sh".to_string(), "-c".to_string(), script.to_string()], false),
        ("echo", vec!["cat".to_string()], true),
    ];
    for (name, command, stdin) in containers {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command,
            stdin,
            log_path: format!("{name}/0.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        };
        let id = runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        runtime
            .start_container(StartContainerRequest { container_id: id })
            .await
            .expect("StartContainer");
    }
    (sandbox_id, log_dir)
}

struct Kubelet {
    client: KubeletClient,
    port: u16,
}

impl Kubelet {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = self
            .client
            .send("127.0.0.1", self.port, request)
            .await
            .expect("kubelet answers");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends an upgrade request; returns the upgraded connection and the response headers.
    async fn upgrade(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (TokioIo<hyper::upgrade::Upgraded>, http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(path).header("host", "127.0.0.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = self
            .client
            .send("127.0.0.1", self.port, request.body(Empty::<Bytes>::new()).unwrap())
            .await
            .expect("kubelet answers");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS, "upgrade of {path}");
        let headers = response.headers().clone();
        let upgraded = hyper::upgrade::on(&mut response).await.expect("upgraded");
        (TokioIo::new(upgraded), headers)
    }

    async fn websocket(&self, path: &str, protocol: &str) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
        let (io, headers) = self
            .upgrade(
                "GET",
                path,
                &[
                    ("connection", "Upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-version", "13"),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("sec-websocket-protocol", protocol),
                ],
            )
            .await;
        assert_eq!(headers["sec-websocket-protocol"], protocol);
        assert_eq!(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        WebSocketStream::from_raw_socket(io, Role::Client, None).await
    }

    async fn spdy(&self, path: &str, protocols: &[&str]) -> spdy::Connection {
        let mut headers = vec![("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
        headers.extend(protocols.iter().map(|p| ("x-stream-protocol-version", *p)));
        let (io, response) = self.upgrade("POST", path, &headers).await;
        assert!(protocols.contains(&response["x-stream-protocol-version"].to_str().unwrap()));
        spdy::Connection::new(io, spdy::Role::Client).0
    }
}

/// Reads a WebSocket exec session to its end: output per channel.
async fn websocket_output(ws: &mut WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> [Vec<u8>; 5] {
    let mut out: [Vec<u8>; 5] = Default::default();
    let reading = async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Binary(data) = message
                && let Some((&channel, rest)) = data.split_first()
                && (channel as usize) < out.len()
            {
                out[channel as usize].extend_from_slice(rest);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("session ends");
    out
}

async fn endpoint_output(endpoint: &mut remotecommand::Endpoint) -> [Vec<u8>; 5] {
    let mut out: [Vec<u8>; 5] = Default::default();
    let reading = async {
        while let Some(event) = endpoint.events.recv().await {
            if let Event::Data(kind, data) = event {
                out[kind.channel() as usize].extend_from_slice(&data);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("session ends");
    out
}

fn status(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("status JSON {:?}: {e}", String::from_utf8_lossy(bytes)))
}

async fn http_through_port_forward(connection: &spdy::Connection, request_id: &str) -> String {
    let headers = |kind: &str| {
        vec![
            (portforward::STREAM_TYPE_HEADER.to_string(), kind.to_string()),
            (portforward::PORT_HEADER.to_string(), "8080".to_string()),
            (portforward::REQUEST_ID_HEADER.to_string(), request_id.to_string()),
        ]
    };
    let mut error = connection.open_stream(headers("error")).await.expect("error stream");
    error.writer.close().await.unwrap();
    let mut data = connection.open_stream(headers("data")).await.expect("data stream");
    data.writer.write(b"GET /index.html HTTP/1.0\r\n\r\n").await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), data.reader.read_to_end(1 << 20))
        .await
        .expect("the pod answers");
    let errors = error.reader.read_to_end(1 << 16).await;
    assert!(
        errors.is_empty(),
        "port-forward error: {}",
        String::from_utf8_lossy(&errors)
    );
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_server_streams_through_containerd() {
    let node = Node::new();
    node.write_cni_config();
    let mut config = ContainerdConfig::for_data_dir(node.data_dir());
    config.sandbox_image = pause::IMAGE.into();
    let containerd = Containerd::start(config).await.expect("containerd starts");
    let images = node.data_dir().join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    let mut applets = BUSYBOX_APPLETS.to_vec();
    applets.push("stty");
    archive::busybox(IMAGE, std::fs::read("/bin/busybox").unwrap(), &applets)
        .write_to(&images.join("bb.tar"))
        .unwrap();
    import_images(containerd.endpoint(), &images).await.unwrap();
    let cri = cri::connect(containerd.endpoint()).await.unwrap();
    let mut runtime = cri.runtime.clone();
    let (_sandbox, log_dir) = run_pod(&mut runtime, &node).await;

    // The cluster PKI, as the API server creates it, and the kubelet's serving certificate from it.
    let pki = Pki::load_or_create(&PkiOptions::new(node.data_dir().join("server/tls"))).unwrap();
    let (serving_cert, serving_key) = pki.issue_serving_cert("node-st", &["127.0.0.1".into()]).unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(
        ServerOptions {
            addr: ([127, 0, 0, 1], port).into(),
            tls: ServerTls {
                cert_pem: serving_cert,
                key_pem: serving_key,
                client_ca_pem: pki.ca_pem().to_string(),
            },
            runtime: cri.runtime.clone(),
            cgroups: CgroupLayout {
                mount: "/sys/fs/cgroup".into(),
                root: node.cgroup_root.clone(),
            },
            node_name: "node-st".into(),
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let (cert, key) = pki.kubelet_client_pem();
    let kubelet = Kubelet {
        client: KubeletClient::new(pki.ca_pem(), cert, key).unwrap(),
        port,
    };
    // Wait for the listener and the container's first output.
    let mut ready = false;
    for _ in 0..50 {
        if std::fs::read_to_string(log_dir.join("c/0.log")).is_ok_and(|l| l.contains("tick 2")) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "container c is running and logging");
    assert_eq!(kubelet.get("/healthz").await, (StatusCode::OK, "ok".to_string()));

    // Only the API server's identity is accepted.
    let (other_cert, other_key) = pki.issue_client_cert("system:admin", &["system:masters"]).unwrap();
    let other = KubeletClient::new(pki.ca_pem(), &other_cert, &other_key).unwrap();
    let request = Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let refused = other.send("127.0.0.1", port, request).await.expect("an answer");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Logs: both streams, in order; tail, timestamps, limit; unknown container.
    let (code, body) = kubelet.get("/containerLogs/default/p/c").await;
    assert_eq!(code, StatusCode::OK);
    // stdout and stderr are separate pipes: the runtime logs them in no particular order relative to each other.
    assert!(body.lines().any(|l| l == "oops"), "{body}");
    let stdout: Vec<&str> = body.lines().filter(|l| *l != "oops").take(3).collect();
    assert_eq!(stdout, ["started", "tick 0", "tick 1"], "{body}");
    let (_, tail) = kubelet.get("/containerLogs/default/p/c?tailLines=2").await;
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("tick ")), "{tail}");
    let (_, stamped) = kubelet
        .get("/containerLogs/default/p/c?tailLines=1&timestamps=true")
        .await;
    let (stamp, line) = stamped.trim_end().split_once(' ').unwrap();
    assert!(stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{stamped}");
    assert!(line.starts_with("tick "), "{stamped}");
    assert_eq!(
        kubelet.get("/containerLogs/default/p/c?limitBytes=5").await.1,
        body[..5]
    );
    let (code, body) = kubelet.get("/containerLogs/default/p/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, "container \"nope\" in pod \"default/p\" not found");
    let (code, body) = kubelet.get("/containerLogs/default/p/c?previous=true").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // Follow: new lines arrive while the request is open.
    let request = Request::get("/containerLogs/default/p/c?follow=true&tailLines=1")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = kubelet.client.send("127.0.0.1", port, request).await.unwrap();
    let mut body = response.into_body();
    let mut followed = String::new();
    let following = async {
        while followed.matches("tick").count() < 4 {
            let frame = body.frame().await.expect("more log").expect("a frame");
            if let Ok(data) = frame.into_data() {
                followed.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), following)
        .await
        .expect("followed lines arrive");
    drop(body);

    // Exec over WebSocket v5: stdout, stderr and the exit code in the status.
    let mut ws = kubelet
        .websocket(
            "/exec/default/p/c?command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203&output=1&error=1",
            websocket::V5_CHANNEL,
        )
        .await;
    let out = websocket_output(&mut ws).await;
    assert_eq!(out[1], b"out\n");
    assert_eq!(out[2], b"err\n");
    let failure = status(&out[3]);
    assert_eq!(failure["status"], "Failure");
    assert_eq!(failure["reason"], "NonZeroExitCode");
    assert_eq!(failure["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(failure["details"]["causes"][0]["message"], "3");

    // Exec over WebSocket v5 with stdin, closed with the v5 CLOSE signal.
    let mut ws = kubelet
        .websocket(
            "/exec/default/p/c?command=cat&input=1&output=1&error=1",
            websocket::V5_CHANNEL,
        )
        .await;
    ws.send(Message::Binary(Bytes::from_static(b"\x00piped input\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.unwrap();
    let out = websocket_output(&mut ws).await;
    assert_eq!(out[1], b"piped input\n");
    assert_eq!(status(&out[3])["status"], "Success");

    // Exec with a TTY: the resize reaches the terminal.
    let mut ws = kubelet
        .websocket(
            "/exec/default/p/c?command=sh&input=1&output=1&tty=1",
            websocket::V5_CHANNEL,
        )
        .await;
    ws.send(Message::Binary(Bytes::from_static(
        b"\x04{\"Width\":123,\"Height\":45}",
    )))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::Binary(Bytes::from_static(b"\x00stty size; exit 7\n")))
        .await
        .unwrap();
    let out = websocket_output(&mut ws).await;
    let terminal = String::from_utf8_lossy(&out[1]);
    assert!(terminal.contains("45 123"), "terminal: {terminal:?}");
    assert_eq!(status(&out[3])["details"]["causes"][0]["message"], "7");

    // Exec over SPDY (kubectl's fallback), v4: the same exit code path.
    let connection = kubelet
        .spdy(
            "/exec/default/p/c?command=sh&command=-c&command=echo%20spdy%3B%20exit%205&output=1&error=1",
            &["v5.channel.k8s.io", "v4.channel.k8s.io"],
        )
        .await;
    let options = Options {
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let mut endpoint = remotecommand::spdy_client(connection, options)
        .await
        .expect("streams accepted");
    let out = endpoint_output(&mut endpoint).await;
    assert_eq!(out[StreamType::Stdout.channel() as usize], b"spdy\n");
    assert_eq!(status(&out[3])["details"]["causes"][0]["message"], "5");

    // Attach to `cat`: what goes in comes out.
    let mut ws = kubelet
        .websocket("/attach/default/p/echo?input=1&output=1&error=1", websocket::V5_CHANNEL)
        .await;
    ws.send(Message::Binary(Bytes::from_static(b"\x00attached\n")))
        .await
        .unwrap();
    let mut echoed = Vec::new();
    let reading = async {
        while !echoed.ends_with(b"attached\n") {
            match ws.next().await {
                Some(Ok(Message::Binary(data))) if data.first() == Some(&1) => echoed.extend_from_slice(&data[1..]),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("attach echoes");
    assert_eq!(echoed, b"attached\n");
    drop(ws);

    // Port-forward: plain SPDY, then SPDY tunnelled in WebSocket.
    let connection = kubelet.spdy("/portForward/default/p", &[portforward::PROTOCOL]).await;
    let answer = http_through_port_forward(&connection, "0").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("hello-port-forward\n"), "{answer}");
    let answer = http_through_port_forward(&connection, "1").await;
    assert!(answer.ends_with("hello-port-forward\n"), "{answer}");
    connection.close().await;

    let ws = kubelet
        .websocket("/portForward/default/p", websocket::PORT_FORWARD_TUNNEL)
        .await;
    let (tunnelled, _) = spdy::Connection::new(websocket::Tunnel::new(ws), spdy::Role::Client);
    let answer = http_through_port_forward(&tunnelled, "0").await;
    assert!(answer.ends_with("hello-port-forward\n"), "{answer}");
    tunnelled.close().await;

    // Port-forward over the WebSocket channel protocol (older clients): the port prefix on both channels, then
    // the answer on the data channel.
    let mut ws = kubelet
        .websocket("/portForward/default/p?port=8080", websocket::V4_CHANNEL)
        .await;
    ws.send(Message::Binary(Bytes::from_static(
        b"\x00GET /index.html HTTP/1.0\r\n\r\n",
    )))
    .await
    .unwrap();
    let out = websocket_output(&mut ws).await;
    assert!(out[0].starts_with(&8080u16.to_le_bytes()), "{:?}", out[0]);
    let answer = String::from_utf8_lossy(&out[0][2..]).into_owned();
    assert!(answer.ends_with("hello-port-forward\n"), "{answer}");
    assert_eq!(out[1], 8080u16.to_le_bytes(), "no error, just the port");

    // Stats: the pod and its containers, with cpu and memory.
    let (code, body) = kubelet.get("/stats/summary").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["node"]["nodeName"], "node-st");
    assert!(summary["node"]["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    let pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "p")
        .expect("pod p in the summary");
    assert_eq!(pod["podRef"]["uid"], "uid-st");
    assert!(pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0, "{pod}");
    assert!(pod["cpu"]["usageNanoCores"].is_u64(), "{pod}");
    assert!(pod["memory"]["workingSetBytes"].as_u64().unwrap() > 0, "{pod}");
    let c = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "c")
        .expect("container c");
    assert!(c["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0, "{c}");
    assert!(c["memory"]["usageBytes"].as_u64().unwrap() > 0, "{c}");

    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
    containerd.stop().await;
}
