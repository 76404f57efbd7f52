//! Services through the node's proxy, with real pods: a Deployment's
//! ClusterIP from the host and from another pod, spread over the replicas;
//! NodePort on 127.0.0.1 and the node's address; a pod that goes stops
//! getting traffic; a Service without endpoints refuses connections. The
//! proxy's table and route are gone after the node is cleaned up.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{BUSYBOX, Cluster};

/// Two replicas of busybox httpd answering with their pod name.
fn web_manifest() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {BUSYBOX}
        command: ["sh", "-c", "mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  selector: {{app: nobody}}
  ports: [{{port: 80}}]
"#
    )
}

/// One HTTP GET; the body's first line.
fn get(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

/// Retries `get` until it answers (rules follow the EndpointSlice within a second or so).
fn get_eventually(address: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(address) {
            Ok(body) if !body.is_empty() => return body,
            other if Instant::now() > deadline => panic!("{address}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn cluster_ip_and_node_port_reach_the_ready_pods() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &web_manifest());
    c.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let cluster_ip = c.ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let node_port = c.ok(&["get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let node_ip = c.ok(&[
        "get",
        "node",
        c.node_name(),
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    let pods: HashSet<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(pods.len(), 2);

    // From the host: the ClusterIP, spread over both replicas.
    let service: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
    get_eventually(service);
    let answers: HashSet<String> = (0..40).filter_map(|_| get(service).ok()).collect();
    assert_eq!(answers, pods, "40 requests should reach both replicas");

    // NodePort on loopback and on the node's address.
    for host in ["127.0.0.1", node_ip.as_str()] {
        let address: SocketAddr = format!("{host}:{node_port}").parse().unwrap();
        assert!(pods.contains(&get_eventually(address)), "{address}");
    }

    // From another pod.
    let client = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{cluster_ip}/ && exit 0; sleep 1; done; exit 1\"]\n"
    );
    c.ok_in(&["apply", "-f", "-"], &client);
    let deadline = Instant::now() + Duration::from_secs(60);
    let phase = loop {
        let phase = c.ok(&["get", "pod", "client", "-o", "jsonpath={.status.phase}"]);
        if matches!(phase.as_str(), "Succeeded" | "Failed") || Instant::now() > deadline {
            break phase;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(phase, "Succeeded", "{}", c.ok(&["logs", "client"]));
    assert!(pods.contains(c.ok(&["logs", "client"]).trim()));

    // A Service without endpoints refuses at once.
    let nobody = c.ok(&["get", "service", "nobody", "-o", "jsonpath={.spec.clusterIP}"]);
    let refused = get(format!("{nobody}:80").parse().unwrap()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");

    // Scale to one: the removed pod stops getting traffic once it leaves the slice.
    c.ok(&["scale", "deployment", "web", "--replicas=1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let remaining = loop {
        let slice = c.get_json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
        let ready: Vec<String> = slice["items"][0]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"] == true)
            .filter_map(|e| e["targetRef"]["name"].as_str().map(str::to_string))
            .collect();
        if ready.len() == 1 || Instant::now() > deadline {
            break ready;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(remaining.len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let after: HashSet<String> = (0..20).filter_map(|_| get(service).ok()).collect();
    assert_eq!(after, remaining.into_iter().collect::<HashSet<_>>());
}
