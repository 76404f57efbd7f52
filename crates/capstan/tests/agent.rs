//! `capstan agent --simulate N`: hollow nodes register Ready with their
//! labels, zones and capacity and keep their Leases fresh until killed;
//! pods bound to them run (or finish, or crash-loop) as their annotations
//! say, get IPs from the node's podCIDR, and are deleted promptly.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

fn eventually<T>(c: &Cluster, secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}:\n{}",
                c.ok(&["get", "pods,nodes", "-A", "-o", "wide"])
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn renew_time(c: &Cluster, node: &str) -> String {
    c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        node,
        "-o",
        "jsonpath={.spec.renewTime}",
    ])
}

/// A real node needs a kubeconfig: a missing one is a clear error, not a panic.
#[test]
fn an_agent_without_a_readable_kubeconfig_says_so() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["agent", "--kubeconfig", "/nonexistent"])
        .output()
        .expect("run capstan agent");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "capstan: reading /nonexistent: No such file or directory (os error 2)"
    );
}

/// `capstan agent` runs a real node joined to a server.
#[test]
fn a_real_agent_joins_a_server_and_runs_its_pods() {
    let c = Cluster::start();
    let node = c.join_agent("joined");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"echo ran-on-$(hostname) > /dev/termination-log\"]\n",
        common::BUSYBOX
    );
    c.ok_in(&["apply", "-f", "-"], &pod);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pod = c.get_json(&["get", "pod", "done"]);
        if pod["status"]["phase"] == "Succeeded" {
            assert_eq!(pod["spec"]["nodeName"], "joined");
            let message = &pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"];
            assert_eq!(message, "ran-on-done\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}",
            pod["status"],
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hollow_nodes_register_ready_and_renew_leases_until_killed() {
    let c = Cluster::start();
    let mut nodes = c.simulate_with(&[
        "--simulate",
        "4",
        "--simulate-zones",
        "2",
        "--simulate-capacity",
        "cpu=8,memory=32Gi,pods=50",
    ]);
    let table = c.ok(&["get", "nodes"]);
    for name in nodes.names() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .expect(&table);
        assert!(row.contains(" Ready "), "{table}");
    }

    let node = c.get_json(&["get", "node", "hollow-3"]);
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "hollow-3");
    assert_eq!(labels["topology.kubernetes.io/zone"], "zone-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/arch"], "amd64");
    assert_eq!(node["status"]["capacity"]["cpu"], "8");
    assert_eq!(node["status"]["allocatable"]["pods"], "50");
    assert_eq!(node["status"]["addresses"][0]["type"], "InternalIP");
    assert_eq!(node["status"]["addresses"][0]["address"], "127.1.0.4");
    let zone0 = c.ok(&["get", "nodes", "-l", "topology.kubernetes.io/zone=zone-0", "-o", "name"]);
    assert_eq!(zone0.lines().collect::<Vec<_>>(), ["node/hollow-0", "node/hollow-2"]);

    let lease = c.get_json(&["get", "lease", "-n", "kube-node-lease", "hollow-0"]);
    assert_eq!(lease["spec"]["holderIdentity"], "hollow-0");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], node_uid(&c, "hollow-0"));

    // Renewed every 10 s ...
    let first = renew_time(&c, "hollow-0");
    let renewed = eventually(&c, 15, "a lease renewal", || {
        let now = renew_time(&c, "hollow-0");
        (now != first).then_some(now)
    });
    assert!(renewed > first, "{renewed} after {first}");
    // ... until the agent dies.
    nodes.kill();
    let last = renew_time(&c, "hollow-0");
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(renew_time(&c, "hollow-0"), last);
}

fn node_uid(c: &Cluster, name: &str) -> String {
    c.ok(&["get", "node", name, "-o", "jsonpath={.metadata.uid}"])
}

fn pod(name: &str, node: Option<&str>, annotations: &[(&str, &str)], restart: &str) -> String {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let mut pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"restartPolicy": restart, "containers": [{"name": "app", "image": "nginx:1.27"}]}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = node.into();
    }
    pod.to_string()
}

fn phase(c: &Cluster, name: &str) -> String {
    c.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"])
}

#[test]
fn bound_pods_run_and_finish_as_their_annotations_say() {
    let c = Cluster::start();
    let _nodes = c.simulate(2);
    // Bound directly, and placed by the scheduler.
    c.ok_in(&["create", "-f", "-"], &pod("direct", Some("hollow-1"), &[], "Always"));
    c.ok_in(&["create", "-f", "-"], &pod("scheduled", None, &[], "Always"));
    let exit = |code| {
        [
            ("simulate.capstan.io/exit-after", "1s"),
            ("simulate.capstan.io/exit-code", code),
        ]
    };
    c.ok_in(&["create", "-f", "-"], &pod("succeeds", None, &exit("0"), "Never"));
    c.ok_in(&["create", "-f", "-"], &pod("fails", None, &exit("1"), "Never"));
    c.ok_in(&["create", "-f", "-"], &pod("restarts", None, &exit("0"), "Always"));
    let not_ready = [("simulate.capstan.io/not-ready", "true")];
    c.ok_in(&["create", "-f", "-"], &pod("unready", None, &not_ready, "Always"));

    for name in ["direct", "scheduled"] {
        eventually(&c, 20, "a Running pod", || (phase(&c, name) == "Running").then_some(()));
        let pod = c.get_json(&["get", "pod", name]);
        let status = &pod["status"];
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready");
        assert_eq!(ready.unwrap()["status"], "True", "{status}");
        let container = &status["containerStatuses"][0];
        assert_eq!(container["name"], "app");
        assert_eq!(container["ready"], true);
        assert_eq!(container["started"], true);
        assert_eq!(container["image"], "docker.io/library/nginx:1.27");
        assert!(
            container["imageID"]
                .as_str()
                .unwrap()
                .starts_with("docker.io/library/nginx@sha256:")
        );
        assert!(container["containerID"].as_str().unwrap().starts_with("containerd://"));
        assert!(container["state"]["running"]["startedAt"].is_string(), "{status}");
        let host_ip = status["hostIP"].as_str().unwrap();
        assert!(host_ip.starts_with("127.1.0."), "{status}");
    }
    assert_eq!(
        c.ok(&["get", "pod", "direct", "-o", "jsonpath={.status.hostIP}"]),
        "127.1.0.2"
    );

    eventually(&c, 20, "Succeeded", || {
        (phase(&c, "succeeds") == "Succeeded").then_some(())
    });
    eventually(&c, 20, "Failed", || (phase(&c, "fails") == "Failed").then_some(()));
    let failed = c.get_json(&["get", "pod", "fails"]);
    let terminated = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (terminated["exitCode"].as_i64(), terminated["reason"].as_str()),
        (Some(1), Some("Error"))
    );
    eventually(&c, 20, "a restart", || {
        let count = c.ok(&[
            "get",
            "pod",
            "restarts",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ]);
        (count.parse::<i32>().unwrap_or(0) >= 1).then_some(())
    });
    assert_eq!(phase(&c, "restarts"), "Running");
    eventually(&c, 20, "a running unready pod", || {
        (phase(&c, "unready") == "Running").then_some(())
    });
    let ready = c.ok(&[
        "get",
        "pod",
        "unready",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
    ]);
    assert_eq!(ready, "ContainersNotReady");

    // Ready waits for readiness gates; a condition another writer adds is kept.
    let mut gated: Value = serde_json::from_str(&pod("gated", None, &[], "Always")).unwrap();
    gated["spec"]["readinessGates"] = serde_json::json!([{"conditionType": "example.com/lb"}]);
    c.ok_in(&["create", "-f", "-"], &gated.to_string());
    let ready_reason = || {
        c.ok(&[
            "get",
            "pod",
            "gated",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
        ])
    };
    eventually(&c, 20, "a gated pod", || {
        (ready_reason() == "ReadinessGatesNotReady").then_some(())
    });
    let condition = r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"example.com/lb","status":"True"}}]"#;
    c.ok(&[
        "patch",
        "pod",
        "gated",
        "--subresource=status",
        "--type=json",
        "-p",
        condition,
    ]);
    let ready_status = || {
        c.ok(&[
            "get",
            "pod",
            "gated",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ])
    };
    eventually(&c, 20, "the gate to open", || (ready_status() == "True").then_some(()));
    let lb = c.ok(&[
        "get",
        "pod",
        "gated",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="example.com/lb")].status}"#,
    ]);
    assert_eq!(lb, "True");

    // A graceful delete (30 s by default) completes at once: the "containers" stop immediately.
    let started = Instant::now();
    c.ok(&["delete", "pod", "direct"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "delete took {:?}",
        started.elapsed()
    );
    assert!(c.fails(&["get", "pod", "direct"]).contains("NotFound"));
}

#[test]
fn pods_get_ips_from_the_nodes_pod_cidr() {
    let c = Cluster::start();
    let _nodes = c.simulate(1);
    c.ok_in(&["create", "-f", "-"], &pod("early", Some("hollow-0"), &[], "Always"));
    eventually(&c, 20, "a Running pod", || {
        (phase(&c, "early") == "Running").then_some(())
    });
    // Node IPAM may have given the node a range already; if not, give it one.
    let mut cidr = c.ok(&["get", "node", "hollow-0", "-o", "jsonpath={.spec.podCIDR}"]);
    if cidr.is_empty() {
        assert_eq!(c.ok(&["get", "pod", "early", "-o", "jsonpath={.status.podIP}"]), "");
        cidr = "10.42.7.0/24".into();
        let patch = format!(r#"{{"spec":{{"podCIDR":"{cidr}","podCIDRs":["{cidr}"]}}}}"#);
        c.ok(&["patch", "node", "hollow-0", "-p", &patch]);
    }
    let range: ipnet::IpNet = cidr.parse().unwrap();
    c.ok_in(&["create", "-f", "-"], &pod("late", Some("hollow-0"), &[], "Always"));
    let mut ips = Vec::new();
    for name in ["early", "late"] {
        let ip = eventually(&c, 20, "a pod IP", || {
            let ip = c.ok(&["get", "pod", name, "-o", "jsonpath={.status.podIP}"]);
            (!ip.is_empty()).then_some(ip)
        });
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert!(range.contains(&ip) && ip != range.network(), "{ip} outside {range}");
        ips.push(ip);
    }
    assert_ne!(ips[0], ips[1]);
}
