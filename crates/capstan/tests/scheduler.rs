//! The scheduler inside `capstan server`: pods of a Deployment land on
//! nodes that fit; a pod no node fits stays Pending with upstream's
//! FailedScheduling message, and is placed once a fitting node appears.
//! Nodes here are plain Node objects (no kubelet runs).

mod common;

use std::time::{Duration, Instant};

use common::Cluster;

fn node(name: &str, cpu: &str, taint: Option<&str>) -> String {
    let taints = taint
        .map(|key| format!(r#","spec":{{"taints":[{{"key":"{key}","value":"true","effect":"NoSchedule"}}]}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","labels":{{"kubernetes.io/hostname":"{name}"}}}}{taints},
        "status":{{"capacity":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"allocatable":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},
        "conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
    )
}

fn eventually(c: &Cluster, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}:\n{}",
                c.ok(&["get", "pods,nodes", "-o", "wide"])
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pods_are_placed_on_nodes_that_fit() {
    let c = Cluster::start();
    c.ok_in(&["create", "-f", "-"], &node("small", "1", None));
    c.ok_in(&["create", "-f", "-"], &node("tainted", "8", Some("dedicated")));
    c.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]);
    eventually(&c, "three scheduled pods", || {
        let nodes = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ]);
        nodes.split_whitespace().filter(|n| *n == "small").count() == 3
    });

    // Two CPUs fit nowhere: one node is too small, the other tainted.
    let big = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"big"},"spec":{"containers":[{"name":"c","image":"busybox",
        "resources":{"requests":{"cpu":"2"}}}]}}"#;
    c.ok_in(&["create", "-f", "-"], big);
    let message = || {
        c.ok(&[
            "get",
            "pod",
            "big",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ])
    };
    eventually(&c, "a FailedScheduling condition", || !message().is_empty());
    assert!(
        message().starts_with(
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: true}."
        ),
        "{}",
        message()
    );
    c.ok_in(&["create", "-f", "-"], &node("large", "4", None));
    eventually(&c, "big placed on the new node", || {
        c.ok(&["get", "pod", "big", "-o", "jsonpath={.spec.nodeName}"]) == "large"
    });
}
