//! Pod garbage collection (upstream's podgc controller). Every pass —
//! upstream's fixed 20 s — it force-deletes (grace period 0):
//!
//! - finished pods beyond `--terminated-pod-gc-threshold`, evicted ones
//!   first, then oldest first;
//! - pods bound to a node that does not exist, once the node has been
//!   missing for the quarantine period (40 s upstream) and a live read
//!   confirms it is gone; they are first set Failed with the
//!   `DisruptionTarget` condition (reason `DeletionByPodGC`);
//! - terminating pods that were never scheduled;
//! - terminating pods on a not-ready node tainted
//!   `node.kubernetes.io/out-of-service` (upstream's non-graceful node
//!   shutdown).
//!
//! It is a periodic sweep over informer caches, as upstream's is, rather
//! than a reconciler per object: every decision is about the set of pods
//! (a threshold, an ordering) or about time passing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{ControllerManagerOptions, Error};

const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub async fn run(client: kube::Client, options: ControllerManagerOptions, pods: Store<Pod>) {
    let (nodes, nodes_reflector) = crate::reflect(Api::<Node>::all(client.clone()), watcher::Config::default());
    let collector = async {
        let _ = pods.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let mut missing_since: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(options.pod_gc_period);
        // A slow pass delays the next, as upstream's `wait.Until`; no burst to catch up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pass = Pass {
                client: &client,
                options: &options,
                pods: &pods,
                nodes: &nodes,
            };
            if let Err(error) = pass.run(&mut missing_since).await {
                tracing::warn!(%error, "pod garbage collector");
            }
        }
    };
    tokio::join!(nodes_reflector, collector);
}

struct Pass<'a> {
    client: &'a kube::Client,
    options: &'a ControllerManagerOptions,
    pods: &'a Store<Pod>,
    nodes: &'a Store<Node>,
}

impl Pass<'_> {
    async fn run(&self, missing_since: &mut HashMap<String, Instant>) -> Result<(), Error> {
        let pods = self.pods.state();
        let threshold = self.options.terminated_pod_gc_threshold as usize;
        for pod in terminated_over_threshold(&pods, threshold) {
            self.delete(pod, None).await?;
        }
        for pod in self.orphans(&pods, missing_since).await? {
            let condition = json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": Timestamp::now().to_string(),
            });
            self.delete(&pod, Some(condition)).await?;
        }
        let nodes = self.nodes.state();
        let out_of_service: HashSet<String> = nodes
            .iter()
            .filter(|n| out_of_service(n))
            .map(|n| n.name_any())
            .collect();
        for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some()) {
            let node = node_of(pod);
            if node.is_empty() || out_of_service.contains(node) {
                self.delete(pod, None).await?;
            }
        }
        Ok(())
    }

    /// Pods on nodes missing from the cache for the quarantine period and
    /// confirmed gone by a live read.
    async fn orphans(
        &self,
        pods: &[Arc<Pod>],
        missing_since: &mut HashMap<String, Instant>,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let known: HashSet<String> = self.nodes.state().iter().map(|n| n.name_any()).collect();
        let missing: HashSet<&str> = pods
            .iter()
            .map(|p| node_of(p))
            .filter(|n| !n.is_empty() && !known.contains(*n))
            .collect();
        missing_since.retain(|n, _| missing.contains(n.as_str()));
        let now = Instant::now();
        let api: Api<Node> = Api::all(self.client.clone());
        let mut gone = HashSet::new();
        for node in missing {
            let since = *missing_since.entry(node.to_string()).or_insert(now);
            if now.duration_since(since) >= self.options.pod_gc_quarantine && api.get_opt(node).await?.is_none() {
                gone.insert(node);
            }
        }
        Ok(pods.iter().filter(|p| gone.contains(node_of(p))).cloned().collect())
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`: a pod not yet
    /// finished is set Failed (with `condition`) first, then it is deleted
    /// with no grace period.
    async fn delete(&self, pod: &Pod, condition: Option<Value>) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
        if !is_terminated(pod) {
            let mut patch = json!({"status": {"phase": "Failed"}});
            if let Some(condition) = condition {
                patch["status"]["conditions"] = json!([condition]);
            }
            match api
                .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        tracing::info!(
            pod = pod.name_any(),
            namespace = pod.namespace(),
            "pod garbage collector deleting pod"
        );
        match api
            .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
            .await
        {
            Err(e) if !gone(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn is_terminated(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// A node that is not Ready and carries the out-of-service taint.
fn out_of_service(node: &Node) -> bool {
    let taints = node.spec.iter().flat_map(|s| s.taints.iter().flatten());
    let tainted = taints
        .clone()
        .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute");
    let conditions = node.status.iter().flat_map(|s| s.conditions.iter().flatten());
    let ready = conditions.clone().any(|c| c.type_ == "Ready" && c.status == "True");
    tainted && !ready
}

/// The finished pods beyond `threshold` (0 disables), in upstream's
/// order: evicted ones first, then the oldest.
fn terminated_over_threshold(pods: &[Arc<Pod>], threshold: usize) -> Vec<&Pod> {
    let mut terminated: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).filter(|p| is_terminated(p)).collect();
    if threshold == 0 || terminated.len() <= threshold {
        return Vec::new();
    }
    let evicted = |p: &Pod| p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted");
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    terminated.sort_by(|a, b| evicted(b).cmp(&evicted(a)).then(created(a).cmp(&created(b))));
    let excess = terminated.len() - threshold;
    terminated.truncate(excess);
    terminated
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    fn pod(name: &str, phase: &str, created: i64, reason: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(Into::into),
                ..PodStatus::default()
            }),
        })
    }

    fn names(pods: Vec<&Pod>) -> Vec<String> {
        pods.into_iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn deletes_the_oldest_finished_pods_beyond_the_threshold_evicted_first() {
        let pods = vec![
            pod("running-old", "Running", 1, None),
            pod("done-3", "Succeeded", 30, None),
            pod("done-1", "Succeeded", 10, None),
            pod("failed-2", "Failed", 20, None),
            pod("evicted-new", "Failed", 40, Some("Evicted")),
        ];
        assert_eq!(names(terminated_over_threshold(&pods, 2)), ["evicted-new", "done-1"]);
        assert_eq!(names(terminated_over_threshold(&pods, 4)), Vec::<String>::new());
        assert_eq!(
            names(terminated_over_threshold(&pods, 0)),
            Vec::<String>::new(),
            "0 disables"
        );
    }
}
