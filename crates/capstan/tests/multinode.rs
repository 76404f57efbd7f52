//! Several real nodes on one machine (see `common::multinode`): two
//! `capstan agent`s, each with its own containerd in a network namespace on
//! a test LAN. Pods on different nodes reach each other by pod IP with
//! their own addresses (host-gw routes, no masquerading between pods),
//! reach a ClusterIP whose only endpoint is on the other node, by address
//! and by name through cluster DNS (as does a NodePort client on the
//! host), and reach the world outside the cluster
//! CIDR masqueraded as their node. Routes
//! follow Node objects as they come, change and go, and come back when
//! someone removes them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::multinode::{CLUSTER_CIDR, Multinode};
use common::{BUSYBOX, Cluster, wait_pod};
use serde_json::Value;

/// busybox httpd answering `GET /cgi-bin/ip` with `from=<the client address it sees>`.
const ECHO: &str = "mkdir -p /www/cgi-bin && echo '#!/bin/sh' > /www/cgi-bin/ip && \
    echo 'echo \"Content-Type: text/plain\"; echo; echo \"from=$REMOTE_ADDR\"' >> /www/cgi-bin/ip && \
    busybox chmod 755 /www/cgi-bin/ip && exec httpd -f -p 0.0.0.0:80 -h /www";

fn pod_yaml(name: &str, node: &str, labels: &str, script: &str, restart: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  nodeName: {node}\n  restartPolicy: {restart}\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

fn running_ip(c: &Cluster, name: &str) -> String {
    let pod = wait_pod(c, name, Duration::from_secs(90), |p| {
        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
    });
    pod["status"]["podIP"].as_str().unwrap().to_string()
}

fn pod_cidr(c: &Cluster, node: &str) -> String {
    c.ok(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"])
}

/// Waits until the Service's EndpointSlice lists `ip` as ready.
fn wait_endpoint(c: &Cluster, service: &str, ip: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let selector = format!("kubernetes.io/service-name={service}");
    loop {
        let slices = c.get_json(&["get", "endpointslices", "-l", &selector]);
        let ready = slices["items"].as_array().into_iter().flatten().any(|slice| {
            slice["endpoints"].as_array().into_iter().flatten().any(|e| {
                e["addresses"].as_array().is_some_and(|a| a.iter().any(|a| a == ip))
                    && e["conditions"]["ready"] == Value::Bool(true)
            })
        });
        if ready {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no ready endpoint {ip}: {slices}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET path` from the test process, retried for up to 10 s; the whole answer.
fn http_get(address: &str, path: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2)).and_then(
            |mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            },
        );
        match attempt {
            Ok(answer) => return answer,
            Err(err) if std::time::Instant::now() > deadline => panic!("GET http://{address}{path}: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Accepts one connection on `ip` and reports the peer's address.
fn outside_listener(ip: &str) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind((ip, 0)).expect("bind on the LAN's host address");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, peer)) = listener.accept() {
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(format!("outside-saw={}\n", peer.ip()).as_bytes());
            let _ = tx.send(peer.ip().to_string());
        }
    });
    (port, rx)
}

#[test]
fn pods_on_different_nodes_reach_each_other_and_services_with_their_own_addresses() {
    let nodes = Multinode::start(2);
    let c = &nodes.cluster;
    let (a, b) = (&nodes.agents[0], &nodes.agents[1]);

    // Distinct ranges; each node routes the other's range to it, and drops the rest of the cluster CIDR.
    let (range_a, range_b) = (pod_cidr(c, &a.name), pod_cidr(c, &b.name));
    assert!(
        !range_a.is_empty() && !range_b.is_empty() && range_a != range_b,
        "{range_a} {range_b}"
    );
    for (node, other_range, other_ip) in [(a, &range_b, &b.ip), (b, &range_a, &a.ip)] {
        let routes = node.routes();
        assert!(
            routes.contains(&format!("{other_range} via {other_ip} dev eth0")),
            "{routes}"
        );
        assert!(routes.contains(&format!("blackhole {CLUSTER_CIDR}")), "{routes}");
        let ruleset = node.ruleset();
        assert!(
            ruleset.contains(&format!(
                "ip saddr {CLUSTER_CIDR} ip daddr != {CLUSTER_CIDR} ip daddr != 224.0.0.0/4 masquerade"
            )),
            "{ruleset}"
        );
    }

    // The echo server on B, behind a ClusterIP Service.
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml("echo", &b.name, "app: echo", ECHO, "Always"),
    );
    c.ok_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  type: NodePort\n  selector: {app: echo}\n  ports:\n  - port: 80\n",
    );
    let echo_ip = running_ip(c, "echo");
    let cluster_ip = c.ok(&["get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"]);
    wait_endpoint(c, "echo", &echo_ip);

    // The client on A: the pod by IP, the Service by ClusterIP and by name
    // (cluster DNS on the server, through kube-dns), then the host (outside the cluster CIDR).
    let (outside_port, outside_seen) = outside_listener(&nodes.lan.gateway());
    let fetch = |what: &str, ip: &str| {
        format!(
            "for i in $(seq 1 20); do r=$(printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80 | grep from=) && break; sleep 0.5; done; echo \"{what} $r\" >> /dev/termination-log"
        )
    };
    let script = format!(
        "{}; {}; {}; echo hello | nc -w 3 {} {outside_port} >> /dev/termination-log",
        fetch("pod", &echo_ip),
        fetch("service", &cluster_ip),
        fetch("name", "echo"),
        nodes.lan.gateway()
    );
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml("client", &a.name, "app: client", &script, "Never"),
    );
    let client = wait_pod(c, "client", Duration::from_secs(90), |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let client_ip = client["status"]["podIP"]
        .as_str()
        .expect("the client's pod IP")
        .to_string();
    let message = client["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let in_range = |ip: &str, range: &str| {
        let range: ipnet::IpNet = range.parse().expect("a podCIDR");
        range.contains(&ip.parse::<std::net::IpAddr>().expect("a pod IP"))
    };
    assert!(
        in_range(&client_ip, &range_a) && in_range(&echo_ip, &range_b),
        "{client_ip} {echo_ip}"
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            format!("pod from={client_ip}"),
            format!("service from={client_ip}"),
            format!("name from={client_ip}"),
            format!("outside-saw={}", a.ip)
        ],
        "client on {} ({range_a}), echo {echo_ip} on {} ({range_b}), service {cluster_ip}; agent A log:\n{}",
        a.name,
        b.name,
        common::tail(&a.log(), 30)
    );

    // From the host to A's NodePort: the only endpoint is on B, so A masquerades (B's reply must come back to A).
    let node_port = c.ok(&["get", "service", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let answer = http_get(&format!("{}:{node_port}", a.ip), "/cgi-bin/ip");
    assert!(answer.contains(&format!("from={}\n", a.ip)), "{answer}");

    let seen = outside_seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the host saw a connection");
    assert_eq!(
        seen, a.ip,
        "traffic leaving the cluster CIDR is masqueraded as the node"
    );
}

/// Polls `check` for up to 15 s (host-gw rechecks the kernel every 10 s);
/// prints how long it took (`--nocapture` shows it).
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = std::time::Instant::now();
    let deadline = start + Duration::from_secs(15);
    loop {
        match check() {
            Ok(()) => return eprintln!("{what}: {:?}", start.elapsed()),
            Err(last) if std::time::Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Whether every agent routes `range` via `via` (or, with `None`, not at all).
fn routed_via(nodes: &Multinode, range: &str, via: Option<&str>) -> Result<(), String> {
    for agent in &nodes.agents {
        let routes = agent.routes();
        let route = routes.lines().find(|l| l.starts_with(&format!("{range} ")));
        let expected = via.map(|ip| format!("{range} via {ip} dev eth0"));
        if route.map(|r| r.trim_end().to_string()) != expected {
            return Err(format!("{}: {routes}", agent.name));
        }
    }
    Ok(())
}

#[test]
fn routes_follow_nodes_as_they_come_change_and_go() {
    let nodes = Multinode::start(2);
    let c = &nodes.cluster;
    // A node without a kubelet: only its object matters here. Its address is on the LAN, where nothing answers.
    let address = |host: u8| format!("{}.{host}", nodes.lan.prefix);
    c.ok_in(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mn-ghost\nstatus:\n  addresses:\n  - {{type: InternalIP, address: {}}}\n",
            address(9)
        ),
    );
    let mut range = String::new();
    eventually("the ghost node gets a podCIDR", || {
        range = pod_cidr(c, "mn-ghost");
        if range.is_empty() {
            Err("none yet".into())
        } else {
            Ok(())
        }
    });
    eventually("every node routes the new range", || {
        routed_via(&nodes, &range, Some(&address(9)))
    });
    let patch = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{}"}}]}}}}"#,
        address(10)
    );
    c.ok(&[
        "patch",
        "node",
        "mn-ghost",
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    eventually("the route follows the new address", || {
        routed_via(&nodes, &range, Some(&address(10)))
    });
    c.ok(&["delete", "node", "mn-ghost"]);
    eventually("the route goes with the node", || routed_via(&nodes, &range, None));

    // A route someone else removed comes back.
    let (a, b) = (&nodes.agents[0], &nodes.agents[1]);
    let range_b = pod_cidr(c, &b.name);
    a.ip(&["route", "del", &range_b, "proto", "162"]);
    assert!(!a.routes().contains(&range_b), "{}", a.routes());
    eventually("the removed route is restored", || {
        let routes = a.routes();
        match routes.contains(&format!("{range_b} via {} dev eth0", b.ip)) {
            true => Ok(()),
            false => Err(routes),
        }
    });
}

#[test]
fn killall_removes_the_routes_and_rules_an_unclean_stop_left() {
    let mut nodes = Multinode::start(2);
    let a = &mut nodes.agents[0];
    a.kill();
    let left = a.networking_left("after SIGKILL");
    assert!(
        left.iter().any(|l| l.contains("blackhole")) && left.iter().any(|l| l.contains("table ip capstan-node")),
        "{left:?}"
    );
    a.killall().expect("capstan killall");
    assert_eq!(a.networking_left("after killall"), Vec::<String>::new());
}
