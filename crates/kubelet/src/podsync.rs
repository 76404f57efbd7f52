//! The pod side of the hollow kubelet: upstream's pod workers and status
//! manager, for many nodes at once and without containers.
//!
//! One watch covers every bound pod (`spec.nodeName!=`) for all the nodes
//! of the process, instead of one per node: at 5,000 nodes that is the
//! difference between one connection and 5,000. A kube-runtime controller
//! syncs each pod of ours: it computes the status the simulated runtime
//! implies ([`crate::simruntime`], [`crate::podstatus`]) and patches
//! `pods/status` only when it differs from what the pod reports, then asks
//! to be woken when the containers' state next changes. A pod being
//! deleted has its "containers stopped" at once and is deleted with grace
//! period 0, as the kubelet does once they have. A node that gets a
//! `podCIDR` has its pods synced again, to give them addresses.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::nodestatus::{NodeTemplate, internal_ip};
use crate::podips::PodIps;
use crate::podstatus::{self, Network, Observed, time};
use crate::simruntime::{RestartPolicy, Script, State, containers_at};

/// Pods synced at once (each sync is at most one API write).
const CONCURRENCY: u16 = 64;
/// How often addresses of pods that are gone are freed (upstream's
/// housekeeping runs every 2 s; nothing here is urgent).
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing pod {pod}: {source}")]
    Write { pod: String, source: kube::Error },
}

/// What the pod syncs share.
pub struct Context {
    pub client: kube::Client,
    pub template: NodeTemplate,
    pub count: u32,
    /// The nodes as last seen, for their `podCIDR`.
    pub nodes: Store<Node>,
    ips: Mutex<PodIps>,
    /// Nodes already reported as having no `podCIDR`, to say it once.
    warned_no_cidr: Mutex<HashSet<String>>,
    /// Pods whose annotations were already reported malformed.
    warned_script: Mutex<HashSet<String>>,
}

impl Context {
    pub fn new(client: kube::Client, template: NodeTemplate, count: u32, nodes: Store<Node>) -> Context {
        Context {
            client,
            template,
            count,
            nodes,
            ips: Mutex::default(),
            warned_no_cidr: Mutex::default(),
            warned_script: Mutex::default(),
        }
    }

    /// The index of the node of ours `pod` is bound to.
    fn node_of(&self, pod: &Pod) -> Option<(String, u32)> {
        let node = pod.spec.as_ref()?.node_name.clone()?;
        let index = self.template.index_of(&node, self.count)?;
        Some((node, index))
    }

    fn ips(&self) -> std::sync::MutexGuard<'_, PodIps> {
        self.ips.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod's address from its node's range, `None` while the node has none.
    fn pod_ip(&self, node: &str, pod: &Pod) -> Option<String> {
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return None;
        }
        // A node not seen yet by the node watch is synced again once it has a range.
        let cidr = pod_cidr(&*self.nodes.get(&ObjectRef::new(node))?);
        let Some(cidr) = cidr else {
            if self
                .warned_no_cidr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(node.to_string())
            {
                tracing::info!(
                    node,
                    "node has no spec.podCIDR yet; its pods get no pod IP until it has one"
                );
            }
            return None;
        };
        let previous = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
        match self.ips().assign(node, &cidr, &pod.uid().unwrap_or_default(), previous) {
            Ok(ip) => Some(ip.to_string()),
            Err(err) => {
                tracing::warn!(node, pod = %pod.name_any(), %err, "allocating a pod IP");
                None
            }
        }
    }

    /// The pod's script; malformed annotations are reported once and ignored.
    fn script(&self, pod: &Pod) -> Script {
        Script::from_annotations(pod.annotations()).unwrap_or_else(|err| {
            let key = pod.uid().unwrap_or_default();
            if self.warned_script.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
                tracing::warn!(pod = %pod.name_any(), namespace = pod.namespace(), %err, "ignoring malformed simulation annotations");
            }
            Script::default()
        })
    }
}

/// The node's pod range (the first of `podCIDRs` if only those are set).
pub fn pod_cidr(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .clone()
        .or_else(|| spec.pod_cidrs.as_ref().and_then(|c| c.first().cloned()))
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Syncs the pods of our nodes until the future is dropped. `resync_nodes`
/// names nodes whose pods must be synced again (a `podCIDR` appeared).
pub async fn run(ctx: Arc<Context>, resync_nodes: impl Stream<Item = String> + Send + 'static) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let controller = Controller::new(pods, watcher::Config::default().fields("spec.nodeName!="));
    let store = controller.store();
    let pods_of = store.clone();
    let resync = resync_nodes.flat_map(move |node| {
        let refs: Vec<ObjectRef<Pod>> = pods_of
            .state_filter(|p| node_name(p) == Some(node.as_str()))
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    let sync = controller
        .reconcile_on(resync)
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    tokio::join!(sync, housekeeping(store, ctx));
}

/// Frees the addresses of pods that no longer exist (upstream's
/// `HandlePodCleanups`), level-based: whatever the watch missed.
async fn housekeeping(store: Store<Pod>, ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        tick.tick().await;
        let live: HashSet<String> = store.state().iter().filter_map(|p| p.uid()).collect();
        ctx.ips().retain(|uid| live.contains(uid));
    }
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some((node, index)) = ctx.node_of(&pod) else {
        return Ok(Action::await_change());
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return finish_deletion(&pod, &ctx).await;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        // Finished for good: the sandbox and its address are gone.
        ctx.ips().release(&pod.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let script = ctx.script(&pod);
    let now = Timestamp::now();
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| time(now))
        .0;
    let policy = RestartPolicy::parse(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()));
    let containers = containers_at(&script, policy, started, now);
    let network = Network {
        host_ip: internal_ip(index).to_string(),
        pod_ip: ctx.pod_ip(&node, &pod),
    };
    let observed = Observed {
        started,
        containers,
        ready: script.ready,
    };
    let status = podstatus::build(&pod, &observed, &network, now);
    if pod.status.as_ref() != Some(&status) {
        write_status(&pod, &ctx, &status).await?;
    }
    if matches!(containers.state, State::Exited(_)) {
        ctx.ips().release(&pod.uid().unwrap_or_default());
    }
    Ok(match containers.next_change {
        Some(at) => Action::requeue(at.duration_since(now).unsigned_abs()),
        None => Action::await_change(),
    })
}

/// Patches `pods/status` with `status`, computed from this version of the
/// pod: the resourceVersion precondition keeps it from overwriting what
/// others wrote since (their conditions, say).
async fn write_status(pod: &Pod, ctx: &Context, status: &PodStatus) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"resourceVersion": pod.resource_version()}, "status": status});
    match api
        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        // Deleted meanwhile: nothing left to report. Changed meanwhile: the
        // watch brings the new version, which is synced in turn.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        result => result
            .map(drop)
            .map_err(|source| Error::Write { pod: key(pod), source }),
    }
}

/// The containers stop at once; the pod object goes with grace period 0,
/// for this very pod only (a UID precondition), as upstream's status
/// manager does once a deleted pod's containers have stopped.
async fn finish_deletion(pod: &Pod, ctx: &Context) -> Result<Action, Error> {
    let uid = pod.uid().unwrap_or_default();
    ctx.ips().release(&uid);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        // Gone already, or another pod by that name now.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(source) => Err(Error::Write { pod: key(pod), source }),
        Ok(_) => Ok(Action::await_change()),
    }
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn error_policy(pod: Arc<Pod>, err: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(pod = %key(&pod), %err, "pod sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}
