//! Service ClusterIPs and NodePorts as the API server hands them out: from
//! the configured ranges, with upstream's errors for taken or out-of-range
//! values, never twice (also under concurrent creates and across a
//! restart), and given back when a Service goes or changes type — plus
//! what a pod needs to reach the API: its token volume and the root CA.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::Cluster;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

fn cluster_ip(c: &Cluster, name: &str) -> String {
    c.ok(&["get", "service", name, "-o", "jsonpath={.spec.clusterIP}"])
}

fn node_port(c: &Cluster, name: &str) -> u16 {
    c.ok(&["get", "service", name, "-o", "jsonpath={.spec.ports[0].nodePort}"])
        .parse()
        .expect("a node port")
}

fn service_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n{extra_spec}"
    )
}

#[test]
fn cluster_ips_come_from_the_range_once_and_go_back() {
    let c = Cluster::start();
    // The `kubernetes` Service holds the first address, recorded as an IPAddress.
    assert_eq!(cluster_ip(&c, "kubernetes"), "10.43.0.1");
    let kubernetes = c.get_json(&["get", "ipaddress", "10.43.0.1"]);
    assert_eq!(kubernetes["spec"]["parentRef"]["name"], "kubernetes");
    let cidrs = c.ok(&["get", "servicecidrs"]);
    assert!(
        cidrs.contains("kubernetes") && cidrs.contains("10.43.0.0/16"),
        "{cidrs}"
    );

    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip: Ipv4Addr = cluster_ip(&c, "web").parse().unwrap();
    assert_eq!(ip.octets()[..2], [10, 43]);
    // Dynamic addresses stay out of the static band (the first 256 of a /16).
    assert!(ip.octets()[2] >= 1, "{ip} is in the static band");
    let service = c.get_json(&["get", "service", "web"]);
    assert_eq!(service["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(service["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(service["spec"]["ipFamilyPolicy"], "SingleStack");
    let address = c.get_json(&["get", "ipaddress", &ip.to_string()]);
    assert_eq!(address["spec"]["parentRef"]["resource"], "services");
    assert_eq!(address["spec"]["parentRef"]["namespace"], "default");
    assert_eq!(address["spec"]["parentRef"]["name"], "web");

    let dup = c.kubectl_in(
        &["create", "-f", "-"],
        Some(&service_yaml("dup", &format!("  clusterIP: {ip}\n"))),
    );
    assert!(!dup.status.success());
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr).trim(),
        format!(
            "The Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
    let outside = c.kubectl_in(
        &["create", "-f", "-"],
        Some(&service_yaml("far", "  clusterIP: 10.99.0.5\n")),
    );
    assert_eq!(
        String::from_utf8_lossy(&outside.stderr).trim(),
        "The Service \"far\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.99.0.5\"}: failed to allocate IP 10.99.0.5: the provided IP (10.99.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    );
    // A fixed address in the static band is served (cluster DNS holds .10).
    assert_eq!(
        c.ok(&[
            "get",
            "ipaddress",
            "10.43.0.10",
            "-o",
            "jsonpath={.spec.parentRef.name}"
        ]),
        "kube-dns"
    );
    c.ok_in(
        &["create", "-f", "-"],
        &service_yaml("fixed", "  clusterIP: 10.43.0.20\n"),
    );
    assert_eq!(cluster_ip(&c, "fixed"), "10.43.0.20");

    // A replace without clusterIP keeps the allocated one.
    c.ok_in(&["replace", "-f", "-"], &service_yaml("fixed", ""));
    assert_eq!(cluster_ip(&c, "fixed"), "10.43.0.20");

    // Headless and ExternalName Services take no address.
    c.ok_in(&["create", "-f", "-"], &service_yaml("headless", "  clusterIP: None\n"));
    c.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=db.example.test",
    ]);
    // kubernetes, kube-dns, web and fixed: nothing for the other two.
    let addresses = c.ok(&["get", "ipaddresses", "-o", "name"]);
    assert_eq!(addresses.lines().count(), 4, "{addresses}");

    // Deleting a Service gives its address back at once.
    c.ok(&["delete", "service", "web"]);
    assert!(!c.ok(&["get", "ipaddresses", "-o", "name"]).contains(&ip.to_string()));
    c.ok_in(
        &["create", "-f", "-"],
        &service_yaml("again", &format!("  clusterIP: {ip}\n")),
    );
    assert_eq!(cluster_ip(&c, "again"), ip.to_string());
}

#[test]
fn node_ports_are_unique_in_range_and_freed_by_a_type_change() {
    let c = Cluster::start();
    c.ok(&["create", "service", "nodeport", "a", "--tcp=80", "--node-port=30080"]);
    assert_eq!(node_port(&c, "a"), 30080);
    let taken = c.fails(&["create", "service", "nodeport", "b", "--tcp=80", "--node-port=30080"]);
    assert_eq!(
        taken.trim(),
        "error: failed to create NodePort service: Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let outside = c.fails(&["create", "service", "nodeport", "b", "--tcp=80", "--node-port=8080"]);
    assert!(
        outside.contains(
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{outside}"
    );
    c.ok(&["create", "service", "nodeport", "b", "--tcp=80"]);
    let b = node_port(&c, "b");
    assert!((30000..=32767).contains(&b) && b != 30080);

    // NodePort → ClusterIP drops and frees the port; another Service takes it.
    c.ok(&["patch", "service", "a", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    let a = c.get_json(&["get", "service", "a"]);
    assert!(a["spec"]["ports"][0].get("nodePort").is_none(), "{a}");
    c.ok(&["create", "service", "nodeport", "c", "--tcp=80", "--node-port=30080"]);
    // Deleting frees too.
    c.ok(&["delete", "service", "b"]);
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "d",
        "--tcp=80",
        &format!("--node-port={b}"),
    ]);

    // LoadBalancer with externalTrafficPolicy Local gets a health-check node port.
    let lb = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {app: lb}\n  ports: [{port: 80}]\n";
    c.ok_in(&["create", "-f", "-"], lb);
    let lb = c.get_json(&["get", "service", "lb"]);
    let health = lb["spec"]["healthCheckNodePort"].as_u64().expect("healthCheckNodePort");
    let port = lb["spec"]["ports"][0]["nodePort"].as_u64().expect("nodePort");
    assert!(health != port && (30000..=32767).contains(&health), "{lb}");
}

/// 40 Services created at once on a range of 61 free addresses and 40
/// ports: all distinct, the 41st NodePort finds the range full, and after a
/// restart the stored allocations still hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_and_allocations_survive_a_restart() {
    let mut c = Cluster::start_with(&[
        "--service-cidr",
        "10.43.0.0/26",
        "--service-node-port-range",
        "30000-30039",
    ]);
    let services: Api<Service> = Api::namespaced(c.client().await, "default");
    let creates = (0..40).map(|i| {
        let services = services.clone();
        async move {
            let service: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("s{i}")},
                "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]},
            }))
            .unwrap();
            services.create(&PostParams::default(), &service).await
        }
    });
    let created: Vec<Service> = futures::future::join_all(creates)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every create succeeds");
    let ips: HashSet<String> = created
        .iter()
        .map(|s| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap())
        .collect();
    let ports: HashSet<i32> = created
        .iter()
        .map(|s| s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port.unwrap())
        .collect();
    assert_eq!(ips.len(), 40, "{ips:?}");
    assert!(!ips.contains("10.43.0.1"));
    assert_eq!(ports, (30000..30040).collect::<HashSet<i32>>());

    let full = c.fails(&["create", "service", "nodeport", "extra", "--tcp=80"]);
    assert!(
        full.contains("Internal error occurred: failed to allocate a nodePort: range is full"),
        "{full}"
    );

    c.restart();
    let some_ip = ips.iter().next().unwrap().clone();
    let dup = c.kubectl_in(
        &["create", "-f", "-"],
        Some(&service_yaml("dup", &format!("  clusterIP: {some_ip}\n"))),
    );
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("provided IP is already allocated"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    let port = c.fails(&[
        "create",
        "service",
        "nodeport",
        "extra",
        "--tcp=80",
        "--node-port=30007",
    ]);
    assert!(port.contains("provided port is already allocated"), "{port}");
    // Dynamic allocation after the restart still avoids every taken address.
    c.ok(&["create", "service", "clusterip", "late", "--tcp=80"]);
    let late = cluster_ip(&c, "late");
    assert!(!ips.contains(&late) && late != "10.43.0.1", "{late}");
}

/// What pods need to reach the API from inside: every namespace gets the
/// cluster CA as `kube-root-ca.crt`, and a new pod gets the token volume
/// mounted where client libraries look (unless it opts out).
#[test]
fn pods_get_the_service_account_token_volume_and_the_root_ca() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ca = loop {
        let out = c.kubectl(&[
            "get",
            "configmap",
            "-n",
            "team",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        if out.status.success() || std::time::Instant::now() > deadline {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let admin_ca = std::fs::read_to_string(c.data_dir().join("server/tls/ca.crt")).unwrap_or_default();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(ca.trim(), admin_ca.trim());

    c.ok(&["run", "app", "-n", "team", "--image=busybox", "--restart=Never"]);
    let pod = c.get_json(&["get", "pod", "-n", "team", "app"]);
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let volume = &pod["spec"]["volumes"][0];
    assert!(
        volume["name"].as_str().unwrap().starts_with("kube-api-access-"),
        "{volume}"
    );
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let mount = &pod["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/var/run/secrets/kubernetes.io/serviceaccount");
    assert_eq!(mount["readOnly"], true);

    c.ok(&[
        "run",
        "quiet",
        "-n",
        "team",
        "--image=busybox",
        "--restart=Never",
        "--overrides",
        r#"{"spec":{"automountServiceAccountToken":false}}"#,
    ]);
    let quiet = c.get_json(&["get", "pod", "-n", "team", "quiet"]);
    assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");

    // stringData is stored as data.
    c.ok_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n",
    );
    let secret = c.get_json(&["get", "secret", "s"]);
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert!(secret.get("stringData").is_none());
}
