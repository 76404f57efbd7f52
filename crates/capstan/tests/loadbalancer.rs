//! The built-in service load balancer (k3s's ServiceLB): LoadBalancer
//! Services get the node's address as EXTERNAL-IP and answer there; a port
//! another LoadBalancer holds, or a class of another controller, leaves a
//! Service `<pending>`; a Service that stops being a LoadBalancer loses its
//! ingress. With hollow nodes: the ingress lists every eligible node and
//! follows the enablelb label, taints and readiness; `--disable servicelb`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BUSYBOX, Cluster, http_get_eventually, wait_event};

/// Two replicas of busybox httpd answering with their pod name.
fn web_deployment() -> String {
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
"#
    )
}

/// A LoadBalancer Service for the `web` pods on `port`, with extra spec lines.
fn load_balancer(name: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  \
         selector: {{app: web}}\n  ports: [{{port: {port}, targetPort: 8080}}]\n{extra}"
    )
}

/// The EXTERNAL-IP column of `kubectl get service`.
fn external_ip(c: &Cluster, service: &str) -> String {
    let row = c.ok(&["get", "service", service, "--no-headers"]);
    row.split_whitespace().nth(3).unwrap_or_default().to_string()
}

/// Waits until the EXTERNAL-IP column reads `want`.
fn wait_external_ip(c: &Cluster, service: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = external_ip(c, service);
        if shown == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service}: EXTERNAL-IP {shown:?}, want {want:?}; {}",
            c.ok(&["get", "service", service, "-o", "yaml"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many Events with `reason` were recorded for `service`.
fn events(c: &Cluster, service: &str, reason: &str) -> usize {
    let selector = format!("involvedObject.name={service},involvedObject.kind=Service");
    let events = c.get_json(&["get", "events", "--field-selector", &selector]);
    let items = events["items"].as_array().into_iter().flatten();
    items.filter(|e| e["reason"] == reason).count()
}

#[test]
fn load_balancers_answer_on_the_node_address_one_per_port() {
    let c = Cluster::start_node();
    let node = c.node_name().to_string();
    let node_ip = c.ok(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    c.ok_in(&["apply", "-f", "-"], &web_deployment());
    c.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let pods = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);

    // `kubectl expose --type=LoadBalancer`: the node's address, served from the host.
    c.ok(&[
        "expose",
        "deployment",
        "web",
        "--type=LoadBalancer",
        "--port=80",
        "--target-port=8080",
    ]);
    wait_external_ip(&c, "web", &node_ip);
    let ingress = &c.get_json(&["get", "service", "web"])["status"]["loadBalancer"]["ingress"];
    assert_eq!(ingress[0]["ipMode"], "VIP", "{ingress}");
    let on_node = |port: u16| -> SocketAddr { format!("{node_ip}:{port}").parse().unwrap() };
    let answer = http_get_eventually(on_node(80));
    assert!(
        pods.split_whitespace().any(|p| p == answer),
        "{answer:?} not one of {pods}"
    );
    wait_event(&c, "web", "EnsuringLoadBalancer", "Ensuring load balancer");
    wait_event(&c, "web", "EnsuredLoadBalancer", "Ensured load balancer");
    let updated = format!("Updated LoadBalancer with new IPs: [] -> [{node_ip}]");
    wait_event(&c, "web", "UpdatedLoadBalancer", &updated);

    // Port 80/TCP is held on the only node: the second one waits, with a reason.
    c.ok_in(&["apply", "-f", "-"], &load_balancer("web-again", 80, ""));
    let why = format!(
        "Error syncing load balancer: failed to ensure load balancer: port 80/TCP is already used by \
         LoadBalancer service default/web on node {node}"
    );
    wait_event(&c, "web-again", "SyncLoadBalancerFailed", &why);
    assert_eq!(external_ip(&c, "web-again"), "<pending>");

    // Another controller's class is left alone; another port is served.
    let classed = load_balancer("classed", 8082, "  loadBalancerClass: example.com/other\n");
    c.ok_in(&["apply", "-f", "-"], &classed);
    c.ok_in(&["apply", "-f", "-"], &load_balancer("web-alt", 8081, ""));
    wait_external_ip(&c, "web-alt", &node_ip);
    let answer = http_get_eventually(on_node(8081));
    assert!(
        pods.split_whitespace().any(|p| p == answer),
        "{answer:?} not one of {pods}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(external_ip(&c, "classed"), "<pending>");
    assert_eq!(events(&c, "classed", "EnsuringLoadBalancer"), 0, "a class is not ours");

    // No longer a LoadBalancer: the ingress goes, and the waiting Service takes port 80.
    c.ok(&[
        "patch",
        "service",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.ok(&["get", "service", "web", "-o", "jsonpath={.status.loadBalancer}"]) != "{}" {
        assert!(
            Instant::now() < deadline,
            "{}",
            c.ok(&["get", "service", "web", "-o", "yaml"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(external_ip(&c, "web"), "<none>");
    wait_event(&c, "web", "DeletedLoadBalancer", "Deleted load balancer");
    wait_external_ip(&c, "web-again", &node_ip);
    let answer = http_get_eventually(on_node(80));
    assert!(
        pods.split_whitespace().any(|p| p == answer),
        "{answer:?} not one of {pods}"
    );
}

/// Names and InternalIPs of the hollow nodes, by name.
fn hollow_addresses(c: &Cluster) -> Vec<(String, String)> {
    let nodes = c.get_json(&["get", "nodes"]);
    let mut found: Vec<(String, String)> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?.to_string();
            let addresses = n["status"]["addresses"].as_array()?;
            let ip = addresses.iter().find(|a| a["type"] == "InternalIP")?["address"].as_str()?;
            Some((name, ip.to_string()))
        })
        .collect();
    found.sort();
    found
}

/// Waits until the Service's ingress IPs are `want`, in order (a node that
/// goes silent takes the 15 s grace period to turn NotReady).
fn wait_ingress(c: &Cluster, service: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let shown = c.ok(&[
            "get",
            "service",
            service,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ]);
        let ips: Vec<&str> = shown.split_whitespace().collect();
        if ips == want {
            return;
        }
        assert!(Instant::now() < deadline, "{service}: ingress {ips:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_ingress_follows_the_eligible_hollow_nodes() {
    // Hollow nodes renew their leases every 10 s: a shorter grace period makes them flap.
    let c = Cluster::start_with(&["--node-monitor-grace-period", "15s", "--node-monitor-period", "500ms"]);
    let mut hollow = c.simulate(3);
    let nodes = hollow_addresses(&c);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let ips: Vec<&str> = nodes.iter().map(|(_, ip)| ip.as_str()).collect();
    let ip = |i: usize| ips[i];
    let mut all = ips.clone();
    all.sort();
    let older = "apiVersion: v1\nkind: Service\nmetadata: {name: older}\nspec: {ports: [{port: 80}]}\n";
    c.ok_in(&["apply", "-f", "-"], older);
    std::thread::sleep(Duration::from_millis(1100)); // creation times count whole seconds
    c.ok_in(&["apply", "-f", "-"], &load_balancer("lb", 80, ""));
    wait_ingress(&c, "lb", &all);
    let shown = external_ip(&c, "lb");
    assert_eq!(shown.split(',').collect::<Vec<_>>(), all, "kubectl lists every address");

    // An older Service that becomes a LoadBalancer does not take ports already held.
    c.ok(&["patch", "service", "older", "-p", r#"{"spec":{"type":"LoadBalancer"}}"#]);
    let why = format!(
        "Error syncing load balancer: failed to ensure load balancer: port 80/TCP is already used by \
         LoadBalancer service default/lb on nodes {}",
        nodes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    wait_event(&c, "older", "SyncLoadBalancerFailed", &why);
    assert_eq!(external_ip(&c, "older"), "<pending>");
    c.ok(&["delete", "service", "older"]);

    // A running pod's hostPort keeps a svclb pod (so the address) off its node.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: edge}}\nspec:\n  nodeName: {}\n  containers:\n  \
         - {{name: c, image: {BUSYBOX}, ports: [{{containerPort: 9090, hostPort: 9090}}]}}\n",
        nodes[2].0
    );
    c.ok_in(&["apply", "-f", "-"], &pod);
    common::wait_pod(&c, "edge", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    c.ok_in(&["apply", "-f", "-"], &load_balancer("edge", 9090, ""));
    let mut others = vec![ip(0), ip(1)];
    others.sort();
    wait_ingress(&c, "edge", &others);
    c.ok(&["delete", "pod", "edge", "--wait=true"]);
    wait_ingress(&c, "edge", &all);
    c.ok(&["delete", "service", "edge"]);

    // Once a node carries the enablelb label only the `true` ones serve.
    let label = "svccontroller.k3s.cattle.io/enablelb";
    c.ok(&["label", "node", &nodes[1].0, &format!("{label}=true")]);
    wait_ingress(&c, "lb", &[ip(1)]);
    c.ok(&["label", "node", &nodes[1].0, &format!("{label}-")]);
    wait_ingress(&c, "lb", &all);

    // As DaemonSet pods, svclb pods stay on a cordoned node or under a
    // NoSchedule taint, but leave under an untolerated NoExecute one.
    c.ok(&["taint", "node", &nodes[0].0, "gpu=yes:NoSchedule"]);
    c.ok(&["cordon", &nodes[2].0]);
    std::thread::sleep(Duration::from_secs(1));
    wait_ingress(&c, "lb", &all);
    c.ok(&["taint", "node", &nodes[0].0, "gpu=yes:NoExecute"]);
    let mut rest = vec![ip(1), ip(2)];
    rest.sort();
    wait_ingress(&c, "lb", &rest);

    // Nodes that stop reporting are no longer Ready: nothing is left to serve.
    hollow.kill();
    wait_ingress(&c, "lb", &[]);
    wait_event(
        &c,
        "lb",
        "UnAvailableLoadBalancer",
        "There are no available nodes for LoadBalancer",
    );
    assert_eq!(external_ip(&c, "lb"), "<pending>");
    // Node changes update the balancer; only a new spec means ensuring it anew.
    assert_eq!(events(&c, "lb", "EnsuringLoadBalancer"), 1);
    assert!(events(&c, "lb", "UpdatedLoadBalancer") >= 4);
}

#[test]
fn disable_servicelb_turns_the_controller_off() {
    let c = Cluster::start_with(&["--disable", "servicelb"]);
    let _hollow = c.simulate(1);
    c.ok_in(&["apply", "-f", "-"], &load_balancer("lb", 80, ""));
    // The controller answers within milliseconds when it runs.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(external_ip(&c, "lb"), "<pending>");
    assert_eq!(events(&c, "lb", "EnsuringLoadBalancer"), 0);

    // `--controllers` takes upstream's names and aliases and refuses others.
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["controller-manager", "--kubeconfig"])
        .arg(c.kubeconfig())
        .args(["--controllers", "*,-servicelb,nosuch"])
        .output()
        .expect("run capstan controller-manager");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"nosuch\" is not in the list of known controllers"),
        "{stderr}"
    );
}
