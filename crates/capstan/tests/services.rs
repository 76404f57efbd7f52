//! Services through the node's proxy, with real pods: a Deployment's
//! ClusterIP from the host and from another pod, spread over the replicas;
//! NodePort on 127.0.0.1 and the node's address; a pod that goes stops
//! getting traffic; a Service without endpoints refuses connections. The
//! proxy's table and route are gone after the node is cleaned up.
//! Pods find Services by name through cluster DNS (the `kube-dns` Service),
//! and reach the API at `https://kubernetes.default.svc` with their token.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{BUSYBOX, Cluster, http_get, http_get_eventually, wait_pod};

/// A pod template (as a YAML flow mapping) of busybox httpd on port 8080,
/// answering with its pod name, ready once it listens.
fn httpd_template(app: &str) -> String {
    let command = "mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www";
    format!(
        "{{metadata: {{labels: {{app: {app}}}}}, spec: {{terminationGracePeriodSeconds: 1, containers: [{{name: {app}, \
         image: {BUSYBOX}, command: [sh, -c, '{command}'], readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}]}}}}"
    )
}

/// Two replicas of busybox httpd answering with their pod name.
fn web_manifest() -> String {
    let template = httpd_template("web");
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template: {template}
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

/// Space-separated values of `jsonpath` over the pods labelled `app=<app>`.
fn pods_field(c: &Cluster, app: &str, jsonpath: &str) -> HashSet<String> {
    let values = c.ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        &format!("jsonpath={jsonpath}"),
    ]);
    values.split_whitespace().map(str::to_string).collect()
}

/// Applies [`web_manifest`] and waits until both replicas answer at the
/// ClusterIP from the host; their names and the Service's address.
fn deploy_web(c: &Cluster) -> (HashSet<String>, SocketAddr) {
    c.ok_in(&["apply", "-f", "-"], &web_manifest());
    c.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let pods = pods_field(c, "web", "{.items[*].metadata.name}");
    let cluster_ip = c.ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let service: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
    assert_eq!(answering(service, &pods), pods, "requests should reach both replicas");
    (pods, service)
}

/// Who answers at `address` over many requests, until all of `expected`
/// have (the proxy adds endpoints as they become ready) or 20 s pass.
fn answering(address: SocketAddr, expected: &HashSet<String>) -> HashSet<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = HashSet::new();
    while &seen != expected && Instant::now() < deadline {
        match http_get(address) {
            Ok(body) => drop(seen.insert(body)),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    seen
}

#[test]
fn cluster_ip_and_node_port_reach_the_ready_pods() {
    let c = Cluster::start_node();
    let (pods, service) = deploy_web(&c);
    let cluster_ip = service.ip().to_string();
    let node_port = c.ok(&["get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let node_ip = c.ok(&[
        "get",
        "node",
        c.node_name(),
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    assert_eq!(pods.len(), 2);

    // ClientIP affinity: once set, one client keeps landing on one replica.
    let affinity = |mode: &str| {
        let patch = format!(r#"{{"spec":{{"sessionAffinity":"{mode}"}}}}"#);
        c.ok(&["patch", "service", "web", "-p", &patch]);
        std::thread::sleep(Duration::from_millis(2500));
    };
    affinity("ClientIP");
    let sticky: HashSet<String> = (0..20).filter_map(|_| http_get(service).ok()).collect();
    assert_eq!(sticky.len(), 1, "{sticky:?}");
    affinity("None");
    assert_eq!(
        answering(service, &pods),
        pods,
        "without affinity both replicas answer again"
    );

    // NodePort on loopback and on the node's address.
    for host in ["127.0.0.1", node_ip.as_str()] {
        let address: SocketAddr = format!("{host}:{node_port}").parse().unwrap();
        assert!(pods.contains(&http_get_eventually(address)), "{address}");
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
    let refused = http_get(format!("{nobody}:80").parse().unwrap()).unwrap_err();
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
    let after: HashSet<String> = (0..20).filter_map(|_| http_get(service).ok()).collect();
    assert_eq!(after, remaining.iter().cloned().collect::<HashSet<_>>());

    // Hairpin: the last pod reaches itself through its own Service.
    let url = format!("http://{cluster_ip}/");
    let own = c.ok(&["exec", &remaining[0], "--", "wget", "-qO-", &url]);
    assert_eq!(own.trim(), remaining[0]);
}

/// Runs `script` in a pod of `image` to completion; its phase and log.
fn run_pod(c: &Cluster, name: &str, image: &str, script: &str) -> (String, String) {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image, "command": ["sh", "-c", script]}]},
    });
    c.ok_in(&["apply", "-f", "-"], &pod.to_string());
    let done = |p: &serde_json::Value| matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let pod = wait_pod(c, name, Duration::from_secs(90), done);
    let phase = pod["status"]["phase"].as_str().unwrap_or_default().to_string();
    (phase, c.ok(&["logs", name]))
}

#[test]
fn pods_resolve_services_and_reach_the_api_by_name() {
    let c = Cluster::start_node();
    let images = tempfile::tempdir().unwrap();
    let curl = images.path().join("curl.tar");
    common::write_curl_image("docker.io/capstan-e2e/curl:1", &curl);
    c.import_image(&curl);
    let (pods, _) = deploy_web(&c);

    // The full name, then the bare one through the search path; 30 more
    // requests by name spread over both replicas.
    let (phase, log) = run_pod(
        &c,
        "by-name",
        BUSYBOX,
        "set -e; wget -qO- http://web.default.svc.cluster.local/; wget -qO- http://web/; \
         for i in $(seq 30); do wget -qO- http://web.default/; done; \
         nslookup kubernetes.default.svc.cluster.local",
    );
    assert_eq!(phase, "Succeeded", "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(pods.contains(lines[0]) && pods.contains(lines[1]), "{log}");
    let spread: HashSet<String> = lines[2..32].iter().map(|l| l.to_string()).collect();
    assert_eq!(spread, pods, "30 requests by name should reach both replicas: {log}");
    let api_ip = c.ok(&["get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(log.contains(&format!("Address: {api_ip}")), "{log}");

    // An unknown name fails to resolve (NXDOMAIN), it does not hang.
    let (phase, log) = run_pod(
        &c,
        "unknown",
        BUSYBOX,
        "wget -qO- http://nothing-here.default.svc.cluster.local/",
    );
    assert_eq!(phase, "Failed", "{log}");
    assert!(log.contains("bad address"), "{log}");

    // The API through the `kubernetes` Service, authenticated by the pod's
    // token: who am I, then a read its (RBAC-less, as upstream) account may not do.
    let (phase, log) = run_pod(
        &c,
        "api-client",
        "capstan-e2e/curl:1",
        r#"cd /var/run/secrets/kubernetes.io/serviceaccount && auth="Authorization: Bearer $(cat token)" &&
           api="curl -sS --cacert ca.crt -H Content-Type:application/json" &&
           $api -H "$auth" --fail -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}' \
             https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews && echo &&
           $api -H "$auth" https://kubernetes.default.svc/api/v1/namespaces/$(cat namespace)/services/web"#,
    );
    assert_eq!(phase, "Succeeded", "{log}");
    let replies: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&log)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {log}"));
    let account = "system:serviceaccount:default:default";
    assert_eq!(replies[0]["status"]["userInfo"]["username"], account, "{log}");
    assert_eq!(replies[1]["code"], 403, "{log}");
    assert_eq!(
        replies[1]["message"],
        format!(
            "services \"web\" is forbidden: User \"{account}\" cannot get resource \"services\" in API group \"\" in the namespace \"default\""
        ),
        "{log}"
    );
}

/// A headless Service over two StatefulSet pods, and an ExternalName alias of one of them.
fn stateful_manifest() -> String {
    let template = httpd_template("db");
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: db}}}}
  template: {template}
---
apiVersion: v1
kind: Service
metadata: {{name: alias}}
spec:
  type: ExternalName
  externalName: db-1.db.default.svc.cluster.local
"#
    )
}

#[test]
fn headless_statefulset_and_external_names_resolve_in_pods() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &stateful_manifest());
    c.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    let pod_ips = pods_field(&c, "db", "{.items[*].status.podIP}");
    assert_eq!(pod_ips.len(), 2);

    // Names ending in a dot are absolute: nothing is asked outside cluster.local.
    let (phase, log) = run_pod(
        &c,
        "lookup",
        BUSYBOX,
        "set -e; wget -qO- http://db-0.db:8080/; wget -qO- http://db-1.db.default.svc.cluster.local.:8080/; \
         wget -qO- http://alias:8080/; echo ---; nslookup db.default.svc.cluster.local.; echo ---; \
         nslookup alias.default.svc.cluster.local.",
    );
    assert_eq!(phase, "Succeeded", "{log}");
    let parts: Vec<&str> = log.split("---").collect();
    let pages: Vec<&str> = parts[0].lines().collect();
    assert_eq!(pages, ["db-0", "db-1", "db-1"], "{log}");
    // The headless name answers with every ready pod's address.
    let headless: HashSet<String> = parts[1]
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .collect();
    assert_eq!(headless, pod_ips, "{log}");
    assert!(
        parts[2].contains("alias.default.svc.cluster.local\tcanonical name = db-1.db.default.svc.cluster.local"),
        "{log}"
    );
}
