//! The garbage collector: deletes objects whose owners are gone, and
//! finishes foreground and orphan deletions (upstream's garbagecollector).
//!
//! Every listable resource type is mirrored by a `DynamicObject`
//! reflector that keeps only the metadata the graph needs; any change
//! anywhere wakes one pass over the mirrors, which rebuilds the
//! owner → dependents graph and acts on it. Rebuilding per
//! pass is O(objects) rather than upstream's incremental graph: simpler,
//! and cheap at the cluster sizes Capstan targets. The mirrors may lag, so
//! an owner missing from them is confirmed absent with a live GET (uid
//! compared) before any dependent is deleted, as upstream does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use capstan_apimachinery::registry::{self, ResourceType};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::Error;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// A pass also runs this often without any change, to retry failures.
const RESYNC: Duration = Duration::from_secs(10);

pub async fn run(client: kube::Client) {
    let changed = Arc::new(Notify::new());
    let (mirrors, reflectors): (Vec<_>, Vec<_>) = registry::RESOURCES
        .iter()
        .filter(|r| collected(r))
        .map(|resource| mirror(&client, resource, changed.clone()))
        .unzip();
    // The reflectors live exactly as long as the collector: dropping it
    // (shutdown, lost leadership) stops them too.
    tokio::select! {
        _ = futures::future::join_all(reflectors) => tracing::warn!("garbage collector reflectors stopped"),
        _ = passes(&client, &mirrors, &changed) => {}
    }
}

/// Runs a collection pass on every wake-up and every resync.
async fn passes(client: &kube::Client, mirrors: &[Mirror], changed: &Notify) {
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
        // Let a burst of changes (a collection deletion) settle into one pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(error) = collect(client, mirrors).await {
            tracing::warn!(%error, "garbage collector");
            tokio::time::sleep(Duration::from_secs(1)).await;
            changed.notify_one();
        }
    }
}

/// Watchable and listable, in its group's preferred version (each
/// resource once).
fn collected(resource: &ResourceType) -> bool {
    resource.verbs.contains(&"watch")
        && resource.verbs.contains(&"list")
        && resource.verbs.contains(&"delete")
        && resource.is_preferred_version()
}

struct Mirror {
    resource: &'static ResourceType,
    store: Store<DynamicObject>,
}

/// Starts a reflector for one resource type. Only events that can need the
/// collector wake a pass — a deletion (dependents may be orphaned), an
/// object being deleted (its finalizers), the end of a relist — so a busy
/// cluster's ordinary writes cost nothing here; the periodic resync catches
/// dependents created after their owner was gone.
fn mirror(
    client: &kube::Client,
    resource: &'static ResourceType,
    changed: Arc<Notify>,
) -> (Mirror, impl std::future::Future<Output = ()>) {
    let ar = crate::api_resource(resource);
    let writer = Writer::new(ar.clone());
    let store = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .map_ok(|event| event.modify(keep_graph_fields))
        .reflect(writer);
    let reflector = stream.for_each(move |event| {
        let wake = match &event {
            Ok(watcher::Event::Delete(_) | watcher::Event::InitDone) => true,
            Ok(watcher::Event::Apply(object)) => object.meta().deletion_timestamp.is_some(),
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
            Err(error) => {
                tracing::debug!(%error, resource = resource.plural, "garbage collector watch");
                false
            }
        };
        if wake {
            changed.notify_one();
        }
        futures::future::ready(())
    });
    (Mirror { resource, store }, reflector)
}

/// Strips a mirrored object to what the graph and its writes read: its
/// identity, owners, finalizers and deletion state. Mirrors of every object
/// of every type would otherwise hold a second copy of the whole cluster
/// (upstream's collector likewise watches metadata only).
fn keep_graph_fields(object: &mut DynamicObject) {
    let meta = std::mem::take(&mut object.metadata);
    object.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        owner_references: meta.owner_references,
        finalizers: meta.finalizers,
        deletion_timestamp: meta.deletion_timestamp,
        ..ObjectMeta::default()
    };
    object.data = serde_json::Value::Null;
}

/// One object in the graph.
#[derive(Clone)]
struct Node {
    resource: &'static ResourceType,
    object: Arc<DynamicObject>,
}

impl Node {
    fn uid(&self) -> String {
        self.object.uid().unwrap_or_default()
    }
    fn deleting_with(&self, finalizer: &str) -> bool {
        self.object.meta().deletion_timestamp.is_some() && self.object.finalizers().iter().any(|f| f == finalizer)
    }
    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        object_api(client, self.resource, self.object.namespace().as_deref())
    }
}

fn object_api(client: &kube::Client, resource: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = crate::api_resource(resource);
    match namespace.filter(|_| resource.namespaced) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// The graph: every object by uid, and each owner's dependents.
struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, Vec<String>>,
}

fn build(mirrors: &[Mirror]) -> Graph {
    let mut nodes = HashMap::new();
    let mut dependents: HashMap<String, Vec<String>> = HashMap::new();
    for mirror in mirrors {
        for object in mirror.store.state() {
            let node = Node {
                resource: mirror.resource,
                object,
            };
            for owner in node.object.owner_references() {
                dependents.entry(owner.uid.clone()).or_default().push(node.uid());
            }
            nodes.insert(node.uid(), node);
        }
    }
    Graph { nodes, dependents }
}

/// One pass: orphan, then foreground, then dangling references.
async fn collect(client: &kube::Client, mirrors: &[Mirror]) -> Result<(), Error> {
    let graph = build(mirrors);
    let mut first_error = None;
    for node in graph.nodes.values() {
        let result = if node.deleting_with(ORPHAN) {
            orphan_dependents(client, &graph, node).await
        } else if node.deleting_with(FOREGROUND) {
            delete_dependents(client, &graph, node).await
        } else {
            collect_dependent(client, &graph, node).await
        };
        if let Err(error) = result {
            tracing::debug!(%error, object = node.object.name_any(), "garbage collector");
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn dependents_of<'a>(graph: &'a Graph, owner: &Node) -> impl Iterator<Item = &'a Node> {
    let uids = graph.dependents.get(&owner.uid()).cloned().unwrap_or_default();
    uids.into_iter().filter_map(|uid| graph.nodes.get(&uid))
}

/// `orphan` finalizer: drop the owner from its dependents' references,
/// then let the owner go.
async fn orphan_dependents(client: &kube::Client, graph: &Graph, owner: &Node) -> Result<(), Error> {
    let uid = owner.uid();
    for dependent in dependents_of(graph, owner) {
        let kept: Vec<OwnerReference> = dependent
            .object
            .owner_references()
            .iter()
            .filter(|r| r.uid != uid)
            .cloned()
            .collect();
        set_owner_references(client, dependent, kept).await?;
    }
    remove_finalizer(client, owner, ORPHAN).await
}

/// `foregroundDeletion` finalizer: delete the dependents (foreground in
/// turn, so grandchildren go first); once none that blocks the owner's
/// deletion is left, let the owner go.
async fn delete_dependents(client: &kube::Client, graph: &Graph, owner: &Node) -> Result<(), Error> {
    let uid = owner.uid();
    let mut blocking = 0;
    for dependent in dependents_of(graph, owner) {
        let blocks = dependent
            .object
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
        if blocks {
            blocking += 1;
        }
        if dependent.object.meta().deletion_timestamp.is_none() {
            delete(client, dependent, policy_for(graph, dependent, "Foreground")).await?;
        }
    }
    if blocking == 0 {
        remove_finalizer(client, owner, FOREGROUND).await?;
    }
    Ok(())
}

/// Upstream's `attemptToDeleteItem` for an object with owners: gone when
/// no owner is left standing; references to vanished or foreground-deleting
/// owners are dropped when some other owner still stands.
async fn collect_dependent(client: &kube::Client, graph: &Graph, node: &Node) -> Result<(), Error> {
    let refs = node.object.owner_references();
    if refs.is_empty() || node.object.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut stale = Vec::new();
    let mut waiting = false;
    for r in refs {
        match owner_state(client, graph, node, r).await? {
            Owner::Solid => solid.push(r.clone()),
            Owner::Absent => stale.push(r.uid.clone()),
            Owner::Waiting => {
                waiting = true;
                stale.push(r.uid.clone());
            }
        }
    }
    if !solid.is_empty() {
        if !stale.is_empty() {
            set_owner_references(client, node, solid).await?;
        }
        return Ok(());
    }
    let policy = if waiting { "Foreground" } else { "Background" };
    delete(client, node, policy_for(graph, node, policy)).await
}

/// Foreground only matters for an object that has dependents itself.
fn policy_for(graph: &Graph, node: &Node, wanted: &'static str) -> &'static str {
    let has_dependents = graph.dependents.get(&node.uid()).is_some_and(|d| !d.is_empty());
    if has_dependents { wanted } else { "Background" }
}

enum Owner {
    Solid,
    Absent,
    /// Being deleted in the foreground: waiting for its dependents to go.
    Waiting,
}

async fn owner_state(client: &kube::Client, graph: &Graph, node: &Node, r: &OwnerReference) -> Result<Owner, Error> {
    if let Some(owner) = graph.nodes.get(&r.uid) {
        return Ok(if owner.deleting_with(FOREGROUND) {
            Owner::Waiting
        } else {
            Owner::Solid
        });
    }
    // Not mirrored (yet): ask the API server.
    let Some(resource) = registry::lookup_kind(&r.api_version, &r.kind) else {
        return Ok(Owner::Solid);
    };
    let api = object_api(client, resource, node.object.namespace().as_deref());
    match api.get_opt(&r.name).await? {
        Some(owner) if owner.uid().as_deref() == Some(r.uid.as_str()) => Ok(Owner::Solid),
        _ => Ok(Owner::Absent),
    }
}

async fn delete(client: &kube::Client, node: &Node, policy: &str) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(match policy {
            "Foreground" => kube::api::PropagationPolicy::Foreground,
            _ => kube::api::PropagationPolicy::Background,
        }),
        preconditions: Some(Preconditions {
            uid: node.object.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    tracing::debug!(
        object = node.object.name_any(),
        kind = node.resource.kind,
        policy,
        "collecting"
    );
    match node.api(client).delete(&node.object.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Patches guarded by uid and resourceVersion: a concurrent change makes
/// the next pass look again.
async fn guarded_patch(
    client: &kube::Client,
    node: &Node,
    fields: BTreeMap<&str, serde_json::Value>,
) -> Result<(), Error> {
    let mut metadata = json!({
        "uid": node.object.uid(),
        "resourceVersion": node.object.resource_version(),
    });
    for (key, value) in fields {
        metadata[key] = value;
    }
    let patch = json!({ "metadata": metadata });
    match node
        .api(client)
        .patch(&node.object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn set_owner_references(client: &kube::Client, node: &Node, refs: Vec<OwnerReference>) -> Result<(), Error> {
    let value = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        json!(refs)
    };
    guarded_patch(client, node, BTreeMap::from([("ownerReferences", value)])).await
}

async fn remove_finalizer(client: &kube::Client, node: &Node, finalizer: &str) -> Result<(), Error> {
    let kept: Vec<&String> = node.object.finalizers().iter().filter(|f| *f != finalizer).collect();
    guarded_patch(client, node, BTreeMap::from([("finalizers", json!(kept))])).await
}
