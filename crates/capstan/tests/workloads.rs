//! End to end: DaemonSets and StatefulSets on `capstan server` with hollow
//! nodes (`capstan agent --simulate`), which run every bound pod and report
//! it Running and Ready, driven by the real kubectl — `rollout status`,
//! `set image`, `rollout history` and `rollout undo` included.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::Value;

/// Polls `check` until it returns `Some`, for at most 30 seconds.
fn eventually<T>(cluster: &Cluster, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let state = cluster.kubectl(&["get", "ds,sts,pods,controllerrevisions", "-o", "wide"]);
            panic!(
                "timed out waiting for {what}:\n{}",
                String::from_utf8_lossy(&state.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The live (not terminating) pods with label `app=<app>`.
fn pods(cluster: &Cluster, app: &str) -> Vec<Value> {
    let list = cluster.get_json(&["get", "pods", "-l", &format!("app={app}")]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn field<'a>(pod: &'a Value, pointer: &str) -> &'a str {
    pod.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn image(pod: &Value) -> &str {
    field(pod, "/spec/containers/0/image")
}

/// Node name → image of the daemon pod there.
fn images_by_node(cluster: &Cluster, app: &str) -> BTreeMap<String, String> {
    pods(cluster, app)
        .iter()
        .map(|p| (field(p, "/spec/nodeName").to_string(), image(p).to_string()))
        .collect()
}

fn rollout_status(cluster: &Cluster, what: &str) -> String {
    cluster.ok(&["rollout", "status", what, "--timeout=40s"])
}

const DAEMON_SET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {role: edge}
      containers:
      - name: c
        image: agent:1
"#;

#[test]
fn daemon_set_runs_one_pod_per_eligible_node_and_rolls_back() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(4);
    cluster.ok(&["label", "node", "hollow-0", "hollow-1", "hollow-2", "role=edge"]);
    cluster.ok(&["taint", "node", "hollow-2", "dedicated=db:NoSchedule"]);
    cluster.ok_in(&["apply", "-f", "-"], DAEMON_SET);

    // hollow-3 lacks the label, hollow-2's taint is not tolerated.
    let out = rollout_status(&cluster, "ds/agent");
    assert!(out.contains("daemon set \"agent\" successfully rolled out"), "{out}");
    let placed = images_by_node(&cluster, "agent");
    assert_eq!(placed.keys().collect::<Vec<_>>(), ["hollow-0", "hollow-1"]);
    let pod = &pods(&cluster, "agent")[0];
    let pinned = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(pinned["nodeSelectorTerms"][0]["matchFields"][0]["key"], "metadata.name");
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    let tolerations: Vec<&str> = pod["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap_or(""))
        .collect();
    assert!(
        tolerations.contains(&"node.kubernetes.io/unreachable"),
        "{tolerations:?}"
    );
    let ds = cluster.get_json(&["get", "ds", "agent"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);

    // Nodes that become eligible get a pod.
    cluster.ok(&["taint", "node", "hollow-2", "dedicated-"]);
    eventually(&cluster, "a pod on hollow-2", || {
        (images_by_node(&cluster, "agent").len() == 3).then_some(())
    });

    // A rolling update through kubectl, then back.
    cluster.ok(&["set", "image", "ds/agent", "c=agent:2"]);
    rollout_status(&cluster, "ds/agent");
    let updated = images_by_node(&cluster, "agent");
    assert!(updated.values().all(|i| i == "agent:2"), "{updated:?}");
    assert_eq!(updated.len(), 3);
    let history = cluster.ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("REVISION") && history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    let undo = cluster.ok(&["rollout", "undo", "ds/agent"]);
    assert!(undo.contains("rolled back"), "{undo}");
    rollout_status(&cluster, "ds/agent");
    let restored = images_by_node(&cluster, "agent");
    assert!(restored.values().all(|i| i == "agent:1"), "{restored:?}");
    let revisions = cluster.ok(&[
        "get",
        "controllerrevisions",
        "-o",
        "custom-columns=REV:.revision",
        "--no-headers",
    ]);
    let mut numbers: Vec<&str> = revisions.split_whitespace().collect();
    numbers.sort();
    assert_eq!(numbers, ["2", "3"], "the old template came back as revision 3");
    let skipped = cluster.ok(&["rollout", "undo", "ds/agent", "--to-revision=3"]);
    assert!(skipped.contains("skipped rollback"), "{skipped}");

    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.kind=DaemonSet"]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Created pod: agent-"),
        "{events}"
    );
    assert!(events.contains("SuccessfulDelete"), "{events}");
}

fn stateful_set(name: &str, replicas: i32, annotations: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  replicas: {replicas}
  serviceName: {name}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {annotations}
    spec:
      containers:
      - name: c
        image: nginx:1
  volumeClaimTemplates:
  - metadata: {{name: www}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// What a watch on `app=web` pods saw, in order: each pod when it first
/// appeared, with the pods that were Ready at that moment, and each pod
/// when it started terminating.
struct Observed {
    created: Vec<(String, HashSet<String>)>,
    deleted: Vec<String>,
}

/// Watches `app=web` pods until `stop`; says on `started` once the watch
/// is established.
async fn observe(
    client: kube::Client,
    started: tokio::sync::oneshot::Sender<()>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Observed {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default().labels("app=web")));
    let mut stop = std::pin::pin!(stop);
    let mut started = Some(started);
    let mut seen = Observed {
        created: Vec::new(),
        deleted: Vec::new(),
    };
    let mut ready: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            Some(Ok(event)) = events.next() => event,
            _ = &mut stop => return seen,
        };
        let (pod, gone) = match event {
            watcher::Event::InitDone => {
                started.take().map(|s| s.send(()));
                continue;
            }
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => (pod, false),
            watcher::Event::Delete(pod) => (pod, true),
            watcher::Event::Init => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !seen.created.iter().any(|(n, _)| *n == name) {
            seen.created.push((name.clone(), ready.clone()));
        }
        let terminating = gone || pod.metadata.deletion_timestamp.is_some();
        if terminating && !seen.deleted.contains(&name) {
            seen.deleted.push(name.clone());
        }
        if is_ready(&pod) && !terminating {
            ready.insert(name);
        } else {
            ready.remove(&name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stateful_set_is_ordered_scales_in_reverse_and_partitions() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(2);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (started, watching) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(observe(cluster.client().await, started, stopped));
    watching.await.unwrap();
    cluster.ok_in(&["apply", "-f", "-"], &stateful_set("web", 3, "{}"));
    let out = rollout_status(&cluster, "sts/web");
    assert!(out.contains("partitioned roll out complete: 3 new pods"), "{out}");

    // Identity and storage.
    let web1 = cluster.get_json(&["get", "pod", "web-1"]);
    assert_eq!(
        web1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(web1["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(
        (field(&web1, "/spec/hostname"), field(&web1, "/spec/subdomain")),
        ("web-1", "web")
    );
    assert_eq!(
        field(&web1, "/spec/volumes/0/persistentVolumeClaim/claimName"),
        "www-web-1"
    );
    let sts = cluster.get_json(&["get", "sts", "web"]);
    let revision = field(&sts, "/status/currentRevision").to_string();
    assert_eq!(
        web1["metadata"]["labels"]["controller-revision-hash"],
        revision.as_str()
    );
    assert_eq!(sts["status"]["readyReplicas"], 3);

    // Scale down, in reverse; the claims stay.
    cluster.ok(&["scale", "sts/web", "--replicas=1"]);
    eventually(&cluster, "one pod left", || {
        (pods(&cluster, "web").len() == 1).then_some(())
    });
    let claims = cluster.ok(&["get", "pvc", "-o", "name"]);
    for ordinal in 0..3 {
        assert!(claims.contains(&format!("www-web-{ordinal}")), "{claims}");
    }
    stop.send(()).unwrap();
    let seen = watch.await.unwrap();
    let order: Vec<&str> = seen.created.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(order, ["web-0", "web-1", "web-2"]);
    for (i, (name, ready_then)) in seen.created.iter().enumerate().skip(1) {
        let previous = format!("web-{}", i - 1);
        assert!(
            ready_then.contains(&previous),
            "{name} was created before {previous} was Ready"
        );
    }
    assert_eq!(seen.deleted, ["web-2", "web-1"]);

    // A partitioned rolling update touches only ordinals >= partition.
    cluster.ok(&["scale", "sts/web", "--replicas=3"]);
    rollout_status(&cluster, "sts/web");
    let partition = r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#;
    cluster.ok(&["patch", "sts/web", "-p", partition]);
    cluster.ok(&["set", "image", "sts/web", "c=nginx:2"]);
    let out = rollout_status(&cluster, "sts/web");
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    let images: Vec<String> = (0..3)
        .map(|i| image(&cluster.get_json(&["get", "pod", &format!("web-{i}")])).to_string())
        .collect();
    assert_eq!(images, ["nginx:1", "nginx:1", "nginx:2"]);
    let history = cluster.ok(&["rollout", "history", "sts/web"]);
    assert!(history.contains("1 ") && history.contains("2 "), "{history}");

    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.kind=StatefulSet"]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );
    assert!(
        events.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success"),
        "{events}"
    );
    assert!(
        events.contains("delete Pod web-2 in StatefulSet web successful"),
        "{events}"
    );
}

#[test]
fn ordered_stateful_set_halts_on_an_unready_pod() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(1);
    cluster.ok_in(
        &["apply", "-f", "-"],
        &stateful_set("stuck", 3, r#"{"simulate.capstan.io/not-ready": "true"}"#),
    );
    eventually(&cluster, "stuck-0 running", || {
        let pods = pods(&cluster, "stuck");
        (pods.len() == 1 && field(&pods[0], "/status/phase") == "Running").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let names: Vec<String> = pods(&cluster, "stuck")
        .iter()
        .map(|p| field(p, "/metadata/name").to_string())
        .collect();
    assert_eq!(names, ["stuck-0"], "stuck-1 waits for stuck-0 to be Ready");
    let out = cluster.kubectl(&["rollout", "status", "sts/stuck", "--timeout=2s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Waiting for 3 pods to be ready"));
}
