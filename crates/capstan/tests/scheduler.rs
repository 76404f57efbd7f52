//! The scheduler inside `capstan server` and standalone: pods land on nodes
//! that fit (resources, taints, node affinity, pod anti-affinity, topology
//! spread); a pod no node fits stays Pending with upstream's
//! FailedScheduling message and is placed once a fitting node appears; a
//! high-priority pod preempts a low-priority one; two `capstan scheduler`
//! processes elect one leader and fail over. Nodes here are plain Node
//! objects: scheduling needs no kubelet.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;

fn node(name: &str, cpu: &str, taint: Option<&str>) -> String {
    node_in(name, cpu, taint, "zone-a", "")
}

/// A Ready node with `cpu` CPUs in `zone`, optionally tainted `<taint>=true:NoSchedule`,
/// with `extra_labels` (`"k": "v"` pairs, JSON).
fn node_in(name: &str, cpu: &str, taint: Option<&str>, zone: &str, extra_labels: &str) -> String {
    let taints = taint
        .map(|key| format!(r#","spec":{{"taints":[{{"key":"{key}","value":"true","effect":"NoSchedule"}}]}}"#))
        .unwrap_or_default();
    let extra = if extra_labels.is_empty() {
        String::new()
    } else {
        format!(",{extra_labels}")
    };
    format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","labels":{{"kubernetes.io/hostname":"{name}",
        "topology.kubernetes.io/zone":"{zone}"{extra}}}}}{taints},
        "status":{{"capacity":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"allocatable":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},
        "conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
    )
}

/// `pod → node` for the pods labelled `app=<app>` (unscheduled ones map to "").
fn placements(c: &Cluster, app: &str) -> Vec<(String, String)> {
    let pods = c.get_json(&["get", "pods", "-l", &format!("app={app}")]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| {
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            (name, pod["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn scheduled_message(c: &Cluster, pod: &str) -> String {
    c.ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
    ])
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

#[test]
fn taints_tolerations_and_node_affinity() {
    let c = Cluster::start();
    c.ok_in(
        &["create", "-f", "-"],
        &node_in("gpu", "4", Some("dedicated"), "zone-a", ""),
    );
    c.ok_in(
        &["create", "-f", "-"],
        &node_in("ssd", "4", None, "zone-b", r#""disk":"ssd""#),
    );
    c.ok_in(&["create", "-f", "-"], &node_in("plain", "4", None, "zone-c", ""));
    let pod = |name: &str, spec: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"{name}"}}}},
            "spec":{{"containers":[{{"name":"c","image":"busybox"}}]{spec}}}}}"#
        )
    };
    let on_gpu = r#","nodeSelector":{"kubernetes.io/hostname":"gpu"}"#;
    let toleration = r#","tolerations":[{"key":"dedicated","operator":"Equal","value":"true","effect":"NoSchedule"}]"#;
    let ssd = r#","affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[
        {"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]}]}}}"#;
    c.ok_in(
        &["create", "-f", "-"],
        &pod("tolerating", &format!("{on_gpu}{toleration}")),
    );
    c.ok_in(&["create", "-f", "-"], &pod("intolerant", on_gpu));
    c.ok_in(&["create", "-f", "-"], &pod("wants-ssd", ssd));
    eventually(&c, "the tolerating pod on the tainted node", || {
        placements(&c, "tolerating") == [("tolerating".into(), "gpu".into())]
    });
    eventually(&c, "the ssd pod on the ssd node", || {
        placements(&c, "wants-ssd") == [("wants-ssd".into(), "ssd".into())]
    });
    eventually(&c, "a FailedScheduling condition", || {
        !scheduled_message(&c, "intolerant").is_empty()
    });
    let message = scheduled_message(&c, "intolerant");
    assert!(
        message.starts_with(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: true}, \
             2 node(s) didn't match Pod's node affinity/selector."
        ),
        "{message}"
    );
    assert_eq!(placements(&c, "intolerant"), [("intolerant".into(), String::new())]);
    let events = c.ok(&["get", "events", "--field-selector", "involvedObject.name=intolerant"]);
    assert!(events.contains("FailedScheduling"), "{events}");
}

#[test]
fn required_anti_affinity_puts_one_pod_per_node() {
    let c = Cluster::start();
    for name in ["n1", "n2", "n3"] {
        c.ok_in(&["create", "-f", "-"], &node(name, "4", None));
    }
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"spread"},
        "spec":{"replicas":4,"selector":{"matchLabels":{"app":"spread"}},"template":{"metadata":{"labels":{"app":"spread"}},
        "spec":{"containers":[{"name":"c","image":"busybox"}],"affinity":{"podAntiAffinity":{
        "requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":{"app":"spread"}},
        "topologyKey":"kubernetes.io/hostname"}]}}}}}}"#;
    c.ok_in(&["create", "-f", "-"], deployment);
    eventually(&c, "three pods on three nodes and one pending", || {
        let placed = placements(&c, "spread");
        let mut nodes: Vec<_> = placed
            .iter()
            .map(|(_, node)| node.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        nodes.sort();
        placed.len() == 4 && nodes == ["n1", "n2", "n3"]
    });
    let pending = placements(&c, "spread")
        .into_iter()
        .find(|(_, node)| node.is_empty())
        .unwrap()
        .0;
    eventually(&c, "the pending pod's reason", || {
        scheduled_message(&c, &pending).contains("3 node(s) didn't match pod anti-affinity rules")
    });
}

#[test]
fn topology_spread_balances_zones() {
    let c = Cluster::start();
    for (name, zone) in [
        ("a1", "zone-a"),
        ("a2", "zone-a"),
        ("a3", "zone-a"),
        ("b1", "zone-b"),
        ("c1", "zone-c"),
    ] {
        c.ok_in(&["create", "-f", "-"], &node_in(name, "8", None, zone, ""));
    }
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"zonal"},
        "spec":{"replicas":6,"selector":{"matchLabels":{"app":"zonal"}},"template":{"metadata":{"labels":{"app":"zonal"}},
        "spec":{"containers":[{"name":"c","image":"busybox"}],"topologySpreadConstraints":[{"maxSkew":1,
        "topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"DoNotSchedule",
        "labelSelector":{"matchLabels":{"app":"zonal"}}}]}}}}"#;
    c.ok_in(&["create", "-f", "-"], deployment);
    let per_zone = || {
        let mut zones = std::collections::BTreeMap::new();
        for (_, node) in placements(&c, "zonal").iter().filter(|(_, n)| !n.is_empty()) {
            *zones.entry(node[..1].to_string()).or_insert(0) += 1;
        }
        zones
    };
    eventually(&c, "six pods spread two per zone", || {
        per_zone().values().copied().collect::<Vec<_>>() == [2, 2, 2]
    });
}

#[test]
fn high_priority_pods_preempt_low_priority_ones() {
    let c = Cluster::start();
    c.ok_in(&["create", "-f", "-"], &node("only", "1", None));
    let class = |name: &str, value: u32| {
        format!(
            r#"{{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{{"name":"{name}"}},"value":{value}}}"#
        )
    };
    c.ok_in(&["create", "-f", "-"], &class("low", 100));
    c.ok_in(&["create", "-f", "-"], &class("high", 1000));
    let pod = |name: &str, class: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"{name}"}}}},
            "spec":{{"priorityClassName":"{class}","terminationGracePeriodSeconds":0,
            "containers":[{{"name":"c","image":"busybox","resources":{{"requests":{{"cpu":"800m"}}}}}}]}}}}"#
        )
    };
    // Priority admission resolves the class; an unknown class is refused.
    let out = c.kubectl_in(&["create", "-f", "-"], Some(&pod("typo", "hihg")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"pods "typo" is forbidden: no PriorityClass with name hihg was found"#),
        "{stderr}"
    );
    c.ok_in(&["create", "-f", "-"], &pod("victim", "low"));
    eventually(&c, "the low-priority pod placed", || {
        placements(&c, "victim") == [("victim".into(), "only".into())]
    });
    assert_eq!(
        c.ok(&["get", "pod", "victim", "-o", "jsonpath={.spec.priority}"]),
        "100"
    );
    c.ok_in(&["create", "-f", "-"], &pod("vip", "high"));
    eventually(&c, "the high-priority pod placed in the victim's stead", || {
        placements(&c, "vip") == [("vip".into(), "only".into())] && placements(&c, "victim").is_empty()
    });
    assert_eq!(c.ok(&["get", "pod", "vip", "-o", "jsonpath={.spec.priority}"]), "1000");
    let events = c.ok(&["get", "events", "--field-selector", "involvedObject.name=victim"]);
    assert!(events.contains("Preempted"), "{events}");
}

/// A `capstan scheduler` process with its own log, killed by PID on drop.
struct Scheduler {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Scheduler {
    fn start(c: &Cluster, name: &str) -> Scheduler {
        let log = c.data_dir().join(format!("{name}.log"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("scheduler")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args([
                "--leader-elect-lease-duration",
                "3s",
                "--leader-elect-renew-deadline",
                "2s",
            ])
            .args(["--leader-elect-retry-period", "500ms"])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start capstan scheduler");
        Scheduler { child, log }
    }

    fn leads(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains("became leader")
    }

    fn terminate(&mut self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_schedulers_elect_one_leader_and_fail_over() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    c.ok_in(&["create", "-f", "-"], &node("n1", "4", None));
    let holder = || {
        let path = "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}";
        let out = c.kubectl(&["get", "lease", "-n", "kube-system", "kube-scheduler", "-o", path]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut first = Scheduler::start(&c, "first");
    eventually(&c, "the first scheduler to lead", || {
        first.leads() && !holder().is_empty()
    });
    let second = Scheduler::start(&c, "second");
    let (first_identity, transitions) = holder()
        .split_once(' ')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(transitions, "0");
    let pod = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"{name}"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        )
    };
    c.ok_in(&["create", "-f", "-"], &pod("before"));
    eventually(&c, "a pod scheduled by the leader", || {
        placements(&c, "before") == [("before".into(), "n1".into())]
    });
    assert!(!second.leads(), "only one scheduler may lead");

    // Abrupt death: the second takes over once the lease goes unrenewed.
    let _ = first.child.kill();
    let _ = first.child.wait();
    let killed = Instant::now();
    eventually(&c, "the second scheduler to take over", || second.leads());
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "took {:?}",
        killed.elapsed()
    );
    let (second_identity, transitions) = holder()
        .split_once(' ')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_ne!(second_identity, first_identity);
    assert_eq!(transitions, "1");
    c.ok_in(&["create", "-f", "-"], &pod("after"));
    eventually(&c, "a pod scheduled by the new leader", || {
        placements(&c, "after") == [("after".into(), "n1".into())]
    });

    // A graceful stop releases the lease for an immediate successor.
    let mut second = second;
    second.terminate();
    assert_eq!(holder(), "1");
}
