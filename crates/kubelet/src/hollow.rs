//! Hollow nodes: N simulated kubelets in one process (`capstan agent
//! --simulate N`), like kubemark's hollow nodes or kwok, for tests and
//! scale measurements without machines.
//!
//! Each node behaves as a kubelet seen through the API: it registers, its
//! Lease is renewed every 10 s, its status is posted on change or every
//! 5 minutes, and the pods bound to it run in the simulated runtime. What
//! makes 5,000 nodes cheap is sharing: one node watch and one pod watch
//! for all of them, writes with bounded concurrency, lease renewals spread
//! over the interval, and no write that would not change anything.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::nodelease::{self, RENEW_INTERVAL};
use crate::nodestatus::{self, NodeTemplate, STATUS_REPORT_FREQUENCY, STATUS_UPDATE_FREQUENCY};
use crate::podsync;

/// Node and lease writes in flight at once.
const CONCURRENCY: usize = 64;
/// Lease renewals are spread over this many slots of the renew interval.
const RENEW_SLOTS: usize = 10;
/// Attempts at registering one node before giving up.
const REGISTER_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct HollowOptions {
    pub template: NodeTemplate,
    pub count: u32,
}

/// A registered node.
struct Registered {
    name: String,
    uid: String,
    /// Set when the node's reported conditions drifted from ours.
    drifted: AtomicBool,
}

/// Registers the nodes, then keeps them alive and runs their pods until
/// `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    options: HollowOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(shutdown);
    let nodes = tokio::select! {
        nodes = register(&client, &options) => Arc::new(nodes?),
        () = &mut shutdown => return Ok(()),
    };
    let (store, writer) = reflector::store::<Node>();
    let (resync_tx, resync_rx) = mpsc::unbounded();
    let ctx = podsync::Context::new(client.clone(), options.template.clone(), options.count, store.clone());
    tokio::select! {
        () = &mut shutdown => {}
        () = watch_nodes(client.clone(), writer, &options, nodes.clone(), resync_tx) => {}
        () = renew_leases(client.clone(), nodes.clone()) => {}
        () = report_status(client.clone(), store, nodes) => {}
        () = podsync::run(Arc::new(ctx), resync_rx) => {}
    }
    tracing::info!("hollow nodes stopping");
    Ok(())
}

/// Creates the nodes (or takes over existing ones of the same name) and
/// their leases, `CONCURRENCY` at a time.
async fn register(client: &kube::Client, options: &HollowOptions) -> Result<Vec<Registered>, Error> {
    let started = Instant::now();
    let total = options.count;
    tracing::info!(nodes = total, prefix = %options.template.prefix, "registering hollow nodes");
    let step = (total / 10).clamp(1, 1000);
    let mut done = 0;
    let mut nodes: Vec<(u32, Registered)> = futures::stream::iter(0..total)
        .map(|index| async move { register_one(client, &options.template, index).await.map(|r| (index, r)) })
        .buffer_unordered(CONCURRENCY)
        .inspect_ok(|_| {
            done += 1;
            if done % step == 0 || done == total {
                tracing::info!(registered = done, total, elapsed = ?started.elapsed(), "registering hollow nodes");
            }
        })
        .try_collect()
        .await?;
    nodes.sort_by_key(|(index, _)| *index);
    Ok(nodes.into_iter().map(|(_, node)| node).collect())
}

async fn register_one(client: &kube::Client, template: &NodeTemplate, index: u32) -> Result<Registered, Error> {
    let name = template.name(index);
    let mut attempt = 0;
    loop {
        match try_register(client, template, index).await {
            Ok(uid) => {
                return Ok(Registered {
                    name,
                    uid,
                    drifted: AtomicBool::new(false),
                });
            }
            Err(source) if attempt + 1 >= REGISTER_ATTEMPTS => return Err(Error::Register { node: name, source }),
            Err(err) => {
                tracing::warn!(node = %name, %err, "registering node; retrying");
                tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// Creates node `index`; if it exists, brings its labels and status up to
/// date as upstream's kubelet does when it re-registers. Then its Lease.
async fn try_register(client: &kube::Client, template: &NodeTemplate, index: u32) -> kube::Result<String> {
    let api: Api<Node> = Api::all(client.clone());
    let node = template.node(index, Timestamp::now());
    let name = template.name(index);
    let registered = match api.create(&PostParams::default(), &node).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let labels = json!({"metadata": {"labels": node.metadata.labels}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&labels))
                .await?;
            let status = json!({"status": node.status});
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status))
                .await?
        }
        result => result?,
    };
    let uid = registered.uid().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), nodelease::NAMESPACE);
    nodelease::renew(&leases, &name, &uid).await?;
    Ok(uid)
}

/// One watch over all nodes: keeps the store the pod syncs read `podCIDR`
/// from, asks for our pods to be synced again when their node's range
/// changes, and flags nodes whose conditions drifted from what we report.
async fn watch_nodes(
    client: kube::Client,
    store: reflector::store::Writer<Node>,
    options: &HollowOptions,
    nodes: Arc<Vec<Registered>>,
    resync: mpsc::UnboundedSender<String>,
) {
    let api: Api<Node> = Api::all(client);
    let mut cidrs: Vec<Option<String>> = vec![None; nodes.len()];
    let events = reflector::reflector(store, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let node = match event {
            Ok(node) => node,
            Err(err) => {
                tracing::warn!(%err, "watching nodes");
                continue;
            }
        };
        let Some(index) = options.template.index_of(&node.name_any(), options.count) else {
            continue;
        };
        let registered = &nodes[index as usize];
        if nodestatus::needs_report(&node) {
            registered.drifted.store(true, Ordering::Relaxed);
        }
        let cidr = podsync::pod_cidr(&node);
        if cidr != cidrs[index as usize] {
            cidrs[index as usize] = cidr;
            let _ = resync.unbounded_send(registered.name.clone());
        }
    }
}

/// Renews every Lease each `RENEW_INTERVAL`, a tenth of the nodes at a
/// time, so that 5,000 nodes make a steady 500 writes/s, not bursts.
async fn renew_leases(client: kube::Client, nodes: Arc<Vec<Registered>>) {
    let api: Api<Lease> = Api::namespaced(client, nodelease::NAMESPACE);
    let mut tick = tokio::time::interval(RENEW_INTERVAL / RENEW_SLOTS as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0.. {
        tick.tick().await;
        let slot = round % RENEW_SLOTS;
        futures::stream::iter(nodes.iter().skip(slot).step_by(RENEW_SLOTS))
            .for_each_concurrent(CONCURRENCY, |node| {
                let api = api.clone();
                async move {
                    if let Err(err) = nodelease::renew(&api, &node.name, &node.uid).await {
                        tracing::warn!(node = %node.name, %err, "renewing the node lease");
                    }
                }
            })
            .await;
    }
}

/// Posts node status every `STATUS_REPORT_FREQUENCY` (first reports
/// spread over it) and as soon as a node's conditions drifted, checking
/// every `STATUS_UPDATE_FREQUENCY`.
async fn report_status(client: kube::Client, store: Store<Node>, nodes: Arc<Vec<Registered>>) {
    let api: Api<Node> = Api::all(client);
    let start = Instant::now();
    let count = nodes.len().max(1) as u32;
    let mut due: Vec<Instant> = (0..nodes.len() as u32)
        .map(|i| start + STATUS_REPORT_FREQUENCY + STATUS_REPORT_FREQUENCY * i / count)
        .collect();
    let mut tick = tokio::time::interval(STATUS_UPDATE_FREQUENCY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let reports: Vec<usize> = (0..nodes.len())
            .filter(|&i| due[i] <= now || nodes[i].drifted.swap(false, Ordering::Relaxed))
            .collect();
        for &i in &reports {
            due[i] = now + STATUS_REPORT_FREQUENCY;
        }
        futures::stream::iter(reports)
            .for_each_concurrent(CONCURRENCY, |i| {
                let (api, store, node) = (api.clone(), store.clone(), &nodes[i]);
                async move {
                    if let Err(err) = post_status(&api, &store, &node.name).await {
                        tracing::warn!(node = %node.name, %err, "posting node status");
                    }
                }
            })
            .await;
    }
}

/// Posts fresh conditions (a heartbeat), merged by type.
async fn post_status(api: &Api<Node>, store: &Store<Node>, name: &str) -> kube::Result<()> {
    let current = store.get(&ObjectRef::new(name));
    let old = current
        .as_ref()
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let patch = json!({"status": {"conditions": nodestatus::conditions(&old, Timestamp::now())}});
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(drop)
}
