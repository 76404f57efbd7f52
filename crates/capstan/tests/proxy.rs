//! `capstan proxy` on its own, as kube-proxy runs beside a kubelet: against
//! a control-plane-only server, it sends a ClusterIP to the endpoints an
//! EndpointSlice lists, follows a change of endpoint, and takes its
//! nftables table and service route away on SIGTERM. The endpoints are
//! listeners of this test on the machine's own address (EndpointSlices may
//! not name loopback).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

/// Answers every connection with `body`, on `ip` and a free port.
fn responder(ip: IpAddr, body: &'static str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).expect("bind a responder");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(body.as_bytes());
        }
    });
    port
}

/// What the Service answers with, once it answers with `expected` (the
/// proxy syncs at most once a second), or the last thing seen after 20 s.
fn read_until(address: SocketAddr, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut body = String::new();
        last = match TcpStream::connect_timeout(&address, Duration::from_secs(1))
            .and_then(|mut s| s.read_to_string(&mut body).map(|_| body))
        {
            Ok(body) if body == expected => return body,
            Ok(body) => body,
            Err(err) => err.to_string(),
        };
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn slice(ip: IpAddr, port: u16) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: direct-1\n  labels: {{kubernetes.io/service-name: direct}}\naddressType: IPv4\nendpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\nports: [{{name: http, port: {port}, protocol: TCP}}]\n"
    )
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        common::stop_child(&mut self.0, Duration::from_secs(10));
    }
}

fn table_exists() -> bool {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "capstan-proxy"])
        .output();
    out.is_ok_and(|o| o.status.success())
}

#[test]
fn standalone_proxy_programs_services_and_cleans_up() {
    // The proxy's table and route are machine-wide: no real node may run meanwhile.
    let _lock = common::node_lock();
    let c = Cluster::start();
    let ip = capstan_kubelet::node::default_ip().expect("this machine's address");
    let (first, second) = (responder(ip, "first"), responder(ip, "second"));
    c.ok_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: direct}\nspec:\n  ports: [{name: http, port: 80}]\n",
    );
    c.ok_in(&["apply", "-f", "-"], &slice(ip, first));
    let cluster_ip = c.ok(&["get", "service", "direct", "-o", "jsonpath={.spec.clusterIP}"]);
    let service: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();

    let log = tempfile::NamedTempFile::new().unwrap();
    let proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args([
                "proxy",
                "--hostname-override",
                "proxy-test",
                "--cluster-cidr",
                "10.42.0.0/16",
            ])
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start capstan proxy"),
    );
    let logs = || std::fs::read_to_string(log.path()).unwrap_or_default();
    // No packet for the ClusterIP before the proxy routes the service range
    // onto the machine: the default route would carry it away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while service_route().is_empty() {
        assert!(Instant::now() < deadline, "no service route: {}", logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_until(service, "first"), "first", "{}", logs());

    // The endpoint moves: the ClusterIP follows.
    c.ok_in(&["apply", "-f", "-"], &slice(ip, second));
    assert_eq!(read_until(service, "second"), "second", "{}", logs());

    // SIGTERM: the table and the service route go with the proxy.
    drop(proxy);
    assert!(!table_exists(), "the proxy's table is left: {}", logs());
    assert_eq!(service_route(), "");
}

/// The route for the service range, if any.
fn service_route() -> String {
    let routes = Command::new("ip")
        .args(["route", "show", "10.43.0.0/16"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&routes.stdout).trim().to_string()
}
