//! The rules in a real kernel: two network namespaces of our own joined by
//! a veth pair (10.250.0.1 client, 10.250.0.2 backend), the proxy's table
//! applied in the client's, real TCP connections through it. Everything is
//! removed afterwards, also when an assertion fails. Needs root.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use capstan_proxy::model::{Endpoint, Protocol, ServicePort};
use capstan_proxy::nft;
use capstan_proxy::rules::{NodeInfo, Ruleset};

const TABLE: &str = "capstan-proxy-test";

struct Namespaces {
    client: String,
    backend: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        let id = std::process::id();
        let ns = Namespaces {
            client: format!("cap-px-{id}-c"),
            backend: format!("cap-px-{id}-b"),
        };
        let (a, b) = (format!("cpx{id}a"), format!("cpx{id}b"));
        for args in [
            vec!["netns", "add", &ns.client],
            vec!["netns", "add", &ns.backend],
            vec![
                "link",
                "add",
                &a,
                "netns",
                &ns.client,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &ns.backend,
            ],
            vec!["-n", &ns.client, "addr", "add", "10.250.0.1/24", "dev", &a],
            vec!["-n", &ns.backend, "addr", "add", "10.250.0.2/24", "dev", &b],
            vec!["-n", &ns.client, "link", "set", &a, "up"],
            vec!["-n", &ns.backend, "link", "set", &b, "up"],
            vec!["-n", &ns.client, "link", "set", "lo", "up"],
            vec!["-n", &ns.backend, "link", "set", "lo", "up"],
        ] {
            run("ip", &args);
        }
        // NodePorts on 127.0.0.1 need loopback addresses to be routable (as upstream sets).
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.client,
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.route_localnet=1",
            ],
        );
        ns
    }

    /// Runs `f` on a thread inside namespace `name`.
    fn within<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{name}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns file");
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns {path}"
            );
            f()
        })
        .join()
        .expect("thread in netns")
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth pair and our table with them.
        for ns in [&self.client, &self.backend] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn service(name: &str, ip: &str, node_port: Option<u16>, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ips: vec![ip.parse().unwrap()],
        node_port,
        external_ips: vec![],
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints,
    }
}

fn backend() -> Endpoint {
    Endpoint {
        ip: "10.250.0.2".parse().unwrap(),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some("node".into()),
    }
}

fn fetch(ns: &str, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    Namespaces::within(ns, move || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
}

#[test]
fn cluster_ips_and_node_ports_reach_endpoints_and_empty_services_reject() {
    let ns = Namespaces::create();
    // The backend answers every connection with a greeting.
    let listener = Namespaces::within(&ns.backend, || {
        TcpListener::bind("10.250.0.2:8080").expect("bind backend")
    });
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.write_all(b"hello from the backend");
        }
    });
    let node = NodeInfo {
        name: "node".into(),
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
    };
    let first = Ruleset::build(
        TABLE,
        &node,
        &[
            service("web", "10.43.9.9", Some(30080), vec![backend()]),
            service("empty", "10.43.9.10", Some(30081), vec![]),
        ],
    );
    let script = first.script();
    Namespaces::within(&ns.client, move || nft::apply(&script)).expect("the ruleset applies");
    Namespaces::within(&ns.client, || {
        capstan_proxy::routes::ensure("10.43.0.0/16".parse().unwrap())
    })
    .expect("the service route");

    assert_eq!(fetch(&ns.client, "10.43.9.9:80").unwrap(), "hello from the backend");
    assert_eq!(fetch(&ns.client, "10.250.0.1:30080").unwrap(), "hello from the backend");
    assert_eq!(fetch(&ns.client, "127.0.0.1:30080").unwrap(), "hello from the backend");
    let refused = fetch(&ns.client, "10.43.9.10:80").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");

    // An endpoint appears for `empty` and leaves `web`: one diff, no table rewrite.
    let second = Ruleset::build(
        TABLE,
        &node,
        &[
            service("web", "10.43.9.9", Some(30080), vec![]),
            service("empty", "10.43.9.10", Some(30081), vec![backend()]),
        ],
    );
    let diff = second.diff(&first);
    assert!(!diff.contains("delete table"), "{diff}");
    Namespaces::within(&ns.client, move || nft::apply(&diff)).expect("the diff applies");
    assert_eq!(fetch(&ns.client, "10.43.9.10:80").unwrap(), "hello from the backend");
    assert_eq!(
        fetch(&ns.client, "10.43.9.9:80").unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    // A clean shutdown leaves no table behind.
    Namespaces::within(&ns.client, || nft::delete_table(TABLE)).unwrap();
    let tables = Namespaces::within(&ns.client, || {
        Command::new("nft").args(["list", "tables"]).output().unwrap()
    });
    assert!(!String::from_utf8_lossy(&tables.stdout).contains(TABLE));
    Namespaces::within(&ns.client, capstan_proxy::routes::remove).unwrap();
    let links = Namespaces::within(&ns.client, || Command::new("ip").args(["link"]).output().unwrap());
    assert!(!String::from_utf8_lossy(&links.stdout).contains(capstan_proxy::routes::DEVICE));
}
