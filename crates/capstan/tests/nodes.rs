//! End to end: the node and service-backend controllers inside `capstan
//! server` — Endpoints and EndpointSlices from Services and pod readiness,
//! podCIDRs from `--cluster-cidr`, node lifecycle (Unknown, taints,
//! taint-based eviction) and pod GC — driven by the real kubectl, with
//! hollow nodes (`capstan agent --simulate`) where pods must run.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::{Value, json};

/// Polls `check` until it returns `Some`, for at most `seconds`.
fn eventually<T>(c: &Cluster, seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let state = c.kubectl(&["get", "nodes,pods,endpoints,endpointslices", "-A", "-o", "yaml"]);
            panic!(
                "timed out waiting for {what}:\n{}",
                String::from_utf8_lossy(&state.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn names(list: &Value) -> Vec<String> {
    let names = items(list)
        .into_iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string());
    names.collect()
}

/// A Deployment of `replicas` pods labelled `app=<name>` and `tier=front`,
/// exposing port `http` (8080), with `annotations` and `tolerations`.
fn deployment(name: &str, replicas: u32, annotations: Value, tolerations: Value) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "front"}, "annotations": annotations},
                "spec": {
                    "tolerations": tolerations,
                    "containers": [{"name": "c", "image": "nginx:1.27",
                                    "ports": [{"name": "http", "containerPort": 8080}]}],
                },
            },
        },
    })
    .to_string()
}

/// `pod name -> (pod IP, node name)` for the running pods labelled `app`.
fn running_pods(c: &Cluster, app: &str) -> Vec<(String, String, String)> {
    let pods = c.get_json(&["get", "pods", "-l", &format!("app={app}")]);
    items(&pods)
        .iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["podIP"].is_string())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["podIP"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn endpoint_ips(endpoints: &Value, field: &str) -> Vec<String> {
    let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
    let mut ips: Vec<String> = subsets
        .iter()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    ips
}

#[test]
fn services_get_endpoints_and_slices_from_pod_readiness() {
    let c = Cluster::start();
    let _nodes = c.simulate(2);
    c.ok_in(&["apply", "-f", "-"], &deployment("web", 2, json!({}), json!([])));
    c.ok_in(
        &["apply", "-f", "-"],
        &deployment(
            "web-slow",
            1,
            json!({"simulate.capstan.io/not-ready": "true"}),
            json!([]),
        ),
    );
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "front", "labels": {"team": "a"}},
        "spec": {"selector": {"tier": "front"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    });
    c.ok_in(&["apply", "-f", "-"], &service.to_string());

    let (ready, not_ready) = eventually(&c, 40, "the pods' IPs in the Endpoints", || {
        let ready = running_pods(&c, "web");
        let slow = running_pods(&c, "web-slow");
        if ready.len() != 2 || slow.len() != 1 {
            return None;
        }
        let mut ready_ips: Vec<String> = ready.iter().map(|p| p.1.clone()).collect();
        ready_ips.sort();
        let slow_ips = vec![slow[0].1.clone()];
        let endpoints = c.get_json(&["get", "endpoints", "front"]);
        let matches = endpoint_ips(&endpoints, "addresses") == ready_ips
            && endpoint_ips(&endpoints, "notReadyAddresses") == slow_ips;
        matches.then_some((ready_ips, slow_ips))
    });
    let endpoints = c.get_json(&["get", "endpoints", "front"]);
    let subset = &endpoints["subsets"][0];
    assert_eq!(
        subset["ports"],
        json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(subset["addresses"][0]["targetRef"]["kind"], "Pod");
    assert!(subset["addresses"][0]["nodeName"].is_string());
    assert_eq!(endpoints["metadata"]["labels"]["team"], "a");
    assert!(endpoints["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"].is_string());

    // One IPv4 slice with every pod, its conditions, node and zone.
    let slices = c.get_json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=front"]);
    let slices = items(&slices);
    assert_eq!(slices.len(), 1, "{slices:#?}");
    let slice = &slices[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert!(slice["metadata"]["name"].as_str().unwrap().starts_with("front-"));
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        slice["ports"],
        json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
    );
    let endpoints = slice["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3);
    for endpoint in endpoints {
        let ip = endpoint["addresses"][0].as_str().unwrap().to_string();
        let expect_ready = ready.contains(&ip);
        assert!(expect_ready || not_ready.contains(&ip), "{ip}");
        assert_eq!(endpoint["conditions"]["ready"], expect_ready, "{endpoint}");
        assert_eq!(endpoint["conditions"]["serving"], expect_ready, "{endpoint}");
        assert_eq!(endpoint["conditions"]["terminating"], false);
        assert!(endpoint["nodeName"].is_string() && endpoint["zone"].as_str().unwrap().starts_with("zone-"));
        assert_eq!(endpoint["targetRef"]["kind"], "Pod");
    }

    // Scaled to zero: only the not-ready pod is left.
    c.ok(&["scale", "deployment/web", "--replicas=0"]);
    eventually(&c, 20, "the ready addresses to go", || {
        let endpoints = c.get_json(&["get", "endpoints", "front"]);
        endpoint_ips(&endpoints, "addresses").is_empty().then_some(())
    });

    // Endpoints of a Service without a selector are the user's.
    let manual = r#"{"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"external"},
        "subsets":[{"addresses":[{"ip":"192.0.2.10"}],"ports":[{"port":5432}]}]}"#;
    c.ok_in(&["apply", "-f", "-"], manual);
    let selectorless = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"external"},
        "spec":{"ports":[{"port":5432}]}}"#;
    c.ok_in(&["apply", "-f", "-"], selectorless);
    std::thread::sleep(Duration::from_secs(2));
    let external = c.get_json(&["get", "endpoints", "external"]);
    assert_eq!(endpoint_ips(&external, "addresses"), ["192.0.2.10"]);

    // Deleting the Service removes its Endpoints and (through the GC) its slices.
    c.ok(&["delete", "service", "front"]);
    eventually(&c, 20, "the Endpoints and slices to go", || {
        let endpoints = c.kubectl(&["get", "endpoints", "front"]);
        let slices = c.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=front",
            "-o",
            "name",
        ]);
        (!endpoints.status.success() && slices.trim().is_empty()).then_some(())
    });
}

#[test]
fn nodes_get_pod_cidrs_until_the_range_runs_out() {
    let c = Cluster::start_with(&[
        "--cluster-cidr",
        "10.99.0.0/23",
        "--node-cidr-mask-size",
        "24",
        "--node-monitor-period",
        "500ms",
    ]);
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}).to_string();
    let cidr_of = |name: &str| c.ok(&["get", "node", name, "-o", "jsonpath={.spec.podCIDRs[*]}"]);
    c.ok_in(&["create", "-f", "-"], &node("node-a"));
    c.ok_in(&["create", "-f", "-"], &node("node-b"));
    let (a, b) = eventually(&c, 20, "two podCIDRs", || {
        let (a, b) = (cidr_of("node-a"), cidr_of("node-b"));
        (!a.is_empty() && !b.is_empty()).then_some((a, b))
    });
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(both, ["10.99.0.0/24", "10.99.1.0/24"]);
    assert_eq!(c.ok(&["get", "node", "node-a", "-o", "jsonpath={.spec.podCIDR}"]), a);

    // The range is exhausted: an Event, and no CIDR.
    c.ok_in(&["create", "-f", "-"], &node("node-c"));
    eventually(&c, 20, "the CIDRNotAvailable event", || {
        let events = c.ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=CIDRNotAvailable",
            "-o",
            "json",
        ]);
        let events: Value = serde_json::from_str(&events).unwrap();
        items(&events)
            .iter()
            .any(|e| e["message"] == "Node node-c status is now: CIDRNotAvailable")
            .then_some(())
    });
    assert_eq!(cidr_of("node-c"), "");

    // Deleting a node frees its CIDR for the waiting one.
    c.ok(&["delete", "node", "node-a"]);
    let freed = eventually(&c, 30, "node-c's podCIDR", || {
        Some(cidr_of("node-c")).filter(|s| !s.is_empty())
    });
    assert_eq!(freed, a);

    // Cordoning taints the node NoSchedule (TaintNodesByCondition); uncordoning removes it.
    let taints = |name: &str| c.ok(&["get", "node", name, "-o", "jsonpath={.spec.taints[*].key}"]);
    c.ok(&["cordon", "node-b"]);
    eventually(&c, 20, "the unschedulable taint", || {
        taints("node-b")
            .contains("node.kubernetes.io/unschedulable")
            .then_some(())
    });
    c.ok(&["uncordon", "node-b"]);
    eventually(&c, 20, "the unschedulable taint to go", || {
        (!taints("node-b").contains("node.kubernetes.io/unschedulable")).then_some(())
    });
}

#[test]
fn a_silent_node_turns_unknown_is_tainted_and_recovers() {
    // No kubelet: the test posts the node's status itself.
    let c = Cluster::start_with(&["--node-monitor-grace-period", "3s", "--node-monitor-period", "500ms"]);
    let now = || k8s_openapi::jiff::Timestamp::now().to_string();
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "quiet"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
    c.ok_in(&["create", "-f", "-"], &node.to_string());
    let ready = eventually(&c, 20, "the node to turn Unknown", || {
        let node = c.get_json(&["get", "node", "quiet"]);
        let conditions = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.into_iter().find(|c| c["type"] == "Ready")?;
        (ready["status"] == "Unknown").then_some(ready)
    });
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let taints = || {
        c.ok(&[
            "get",
            "node",
            "quiet",
            "-o",
            r#"jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}"#,
        ])
    };
    eventually(&c, 10, "the unreachable NoSchedule taint", || {
        (taints().trim() == "node.kubernetes.io/unreachable:NoSchedule").then_some(())
    });
    // The only node is down, so every zone is fully disrupted: upstream then
    // blames the control plane and adds no NoExecute taint (no evictions).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(taints().trim(), "node.kubernetes.io/unreachable:NoSchedule");
    let events = c.get_json(&["get", "events", "--field-selector", "reason=NodeNotReady"]);
    assert!(
        items(&events)
            .iter()
            .any(|e| e["message"] == "Node quiet status is now: NodeNotReady"),
        "{events:#}"
    );

    // The kubelet is back: Ready again, the taints go.
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
    c.ok(&[
        "patch",
        "node",
        "quiet",
        "--subresource=status",
        "-p",
        &ready.to_string(),
    ]);
    eventually(&c, 10, "the taints to go", || {
        let taints = c.ok(&["get", "node", "quiet", "-o", "jsonpath={.spec.taints}"]);
        (!taints.contains("unreachable")).then_some(())
    });
}

#[test]
fn pods_of_a_failed_node_are_evicted_and_replaced_and_collected_with_it() {
    let c = Cluster::start_with(&[
        "--node-monitor-grace-period",
        "15s",
        "--node-monitor-period",
        "1s",
        "--pod-gc-period",
        "1s",
        "--pod-gc-quarantine",
        "2s",
    ]);
    let mut doomed = c.simulate_with(&["--simulate", "2", "--simulate-prefix", "doomed"]);
    let _healthy = c.simulate_with(&["--simulate", "2", "--simulate-prefix", "healthy"]);
    let tolerations = json!([
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
    ]);
    c.ok_in(&["apply", "-f", "-"], &deployment("app", 4, json!({}), tolerations));
    let placed = eventually(&c, 30, "four running pods on both agents", || {
        let pods = running_pods(&c, "app");
        let on = |prefix: &str| pods.iter().filter(|p| p.2.starts_with(prefix)).count();
        (pods.len() == 4 && on("doomed-") > 0 && on("healthy-") > 0).then_some(pods)
    });
    let victims: Vec<String> = placed
        .iter()
        .filter(|p| p.2.starts_with("doomed-"))
        .map(|p| p.0.clone())
        .collect();

    doomed.kill();
    eventually(&c, 30, "the doomed nodes to turn Unknown and be tainted", || {
        let nodes = c.get_json(&["get", "nodes"]);
        let doomed: Vec<Value> = items(&nodes)
            .into_iter()
            .filter(|n| n["metadata"]["name"].as_str().unwrap().starts_with("doomed-"))
            .collect();
        let unknown = |n: &Value| {
            let conditions = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
        };
        let tainted = |n: &Value| {
            let keys: Vec<String> = n["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{}:{}", t["key"].as_str().unwrap(), t["effect"].as_str().unwrap()))
                .collect();
            keys.contains(&"node.kubernetes.io/unreachable:NoSchedule".into())
                && keys.contains(&"node.kubernetes.io/unreachable:NoExecute".into())
        };
        (doomed.len() == 2 && doomed.iter().all(|n| unknown(n) && tainted(n))).then_some(())
    });

    // The pods there are evicted and replaced on the healthy agent.
    eventually(&c, 30, "four running pods on the healthy agent", || {
        let pods = running_pods(&c, "app");
        (pods.len() == 4 && pods.iter().all(|p| p.2.starts_with("healthy-"))).then_some(())
    });
    for victim in &victims {
        let pod = c.get_json(&["get", "pod", victim]);
        assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
        let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let target = conditions
            .iter()
            .find(|c| c["type"] == "DisruptionTarget")
            .expect("DisruptionTarget");
        assert_eq!(target["reason"], "DeletionByTaintManager");
        assert_eq!(target["message"], "Taint manager: deleting due to NoExecute taint");
        let events = c.get_json(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={victim}"),
        ]);
        assert!(
            items(&events).iter().any(|e| e["reason"] == "TaintManagerEviction"
                && e["message"] == format!("Marking for deletion Pod default/{victim}")),
            "{events:#}"
        );
    }

    // The dead nodes are removed: pod GC deletes the pods still bound to them.
    c.ok(&["delete", "node", "doomed-0", "doomed-1"]);
    eventually(&c, 20, "the evicted pods to be collected", || {
        let names = names(&c.get_json(&["get", "pods"]));
        victims.iter().all(|v| !names.contains(v)).then_some(())
    });
}

#[test]
fn a_node_cidr_mask_that_does_not_fit_the_cluster_cidr_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "server",
            "--cluster-cidr",
            "10.42.0.0/16",
            "--node-cidr-mask-size",
            "8",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--node-cidr-mask-size 8 must be between the cluster CIDR's prefix /16 and /32"),
        "{stderr}"
    );
}

#[test]
fn finished_pods_beyond_the_threshold_are_collected_oldest_first() {
    let c = Cluster::start_with(&["--terminated-pod-gc-threshold", "2", "--pod-gc-period", "1s"]);
    let _nodes = c.simulate(1);
    let phase = |name: &str| c.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
    for name in ["done-1", "done-2", "done-3"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"simulate.capstan.io/exit-after": "1s"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}});
        c.ok_in(&["create", "-f", "-"], &pod.to_string());
        if name != "done-3" {
            eventually(&c, 20, "the pod to finish", || {
                (phase(name) == "Succeeded").then_some(())
            });
        }
    }
    eventually(&c, 20, "the oldest finished pod to be collected", || {
        let left = names(&c.get_json(&["get", "pods"]));
        (left == ["done-2", "done-3"]).then_some(())
    });
    assert_eq!(phase("done-2"), "Succeeded", "two finished pods are kept");
}
