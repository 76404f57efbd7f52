//! Informers feeding the cache and the queue (upstream `eventhandlers.go`):
//! bound pods go to the cache, pending pods for this scheduler to the queue,
//! and every change that could help a waiting pod re-queues it.
//!
//! One pod watch serves both (the split upstream makes with two field
//! selectors); a re-list (`Init` … `InitDone`) removes what vanished while
//! the watch was down, since the stream is level-based.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use tokio::sync::watch;

use crate::cache::Cache;
use crate::queue::{ClusterEvent, SchedulingQueue};
use crate::types::PodInfo;

/// Shared state the handlers update.
#[derive(Clone)]
pub struct Handlers {
    pub cache: Arc<Mutex<Cache>>,
    pub queue: Arc<SchedulingQueue>,
    pub scheduler_name: String,
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Handlers {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pod was added or changed.
    pub fn on_pod(&self, pod: Pod) {
        let key = pod_key(&pod);
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if bound {
            self.queue.delete(&key);
            let known = {
                let mut cache = self.cache();
                let known = cache.has_pod(&key) && !cache.is_assumed(&key);
                cache.upsert_pod(Arc::new(pod));
                known
            };
            let event = if known {
                ClusterEvent::AssignedPodUpdate
            } else {
                ClusterEvent::AssignedPodAdd
            };
            self.queue.move_all_to_active_or_backoff(event);
            return;
        }
        let ours = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.scheduler_name;
        if !ours || is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
            self.queue.delete(&key);
            return;
        }
        if self.cache().is_assumed(&key) {
            return; // being bound right now
        }
        self.queue.add(Arc::new(PodInfo::new(Arc::new(pod))));
    }

    /// A pod was deleted.
    pub fn on_pod_delete(&self, key: &str) {
        self.queue.delete(key);
        let was_cached = {
            let mut cache = self.cache();
            let had = cache.has_pod(key);
            cache.remove_pod(key);
            had
        };
        if was_cached {
            self.queue
                .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
        }
    }

    pub fn on_node(&self, node: Node) {
        let (is_new, changed) = self.cache().upsert_node(node);
        if is_new {
            self.queue.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
        } else if changed {
            self.queue.move_all_to_active_or_backoff(ClusterEvent::NodeUpdate);
        }
    }

    pub fn on_node_delete(&self, name: &str) {
        self.cache().remove_node(name);
    }
}

/// Runs `stream` events through `apply`/`delete`, tracking keys to drop what a re-list no longer shows.
async fn drive<K, FA, FD, FK>(api: Api<K>, apply: FA, delete: FD, key: FK, synced: watch::Sender<bool>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    FA: Fn(K),
    FD: Fn(&str),
    FK: Fn(&K) -> String,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut known: HashSet<String> = HashSet::new();
    let mut relisted: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(obj)) => {
                known.insert(key(&obj));
                apply(obj);
            }
            Ok(Event::Delete(obj)) => {
                let k = key(&obj);
                known.remove(&k);
                delete(&k);
            }
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(obj)) => {
                relisted.insert(key(&obj));
                apply(obj);
            }
            Ok(Event::InitDone) => {
                for gone in known.difference(&relisted) {
                    delete(gone);
                }
                known = std::mem::take(&mut relisted);
                synced.send_replace(true);
            }
            Err(e) => tracing::warn!(error = %e, "scheduler watch failed; retrying"),
        }
    }
}

/// Watches all pods until the stream ends.
pub async fn watch_pods(client: kube::Client, handlers: Handlers, synced: watch::Sender<bool>) {
    let h = handlers.clone();
    drive(
        Api::<Pod>::all(client),
        |p| handlers.on_pod(p),
        |k| h.on_pod_delete(k),
        pod_key,
        synced,
    )
    .await;
}

/// Watches nodes until the stream ends.
pub async fn watch_nodes(client: kube::Client, handlers: Handlers, synced: watch::Sender<bool>) {
    let h = handlers.clone();
    let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
    drive(
        Api::<Node>::all(client),
        |n| handlers.on_node(n),
        |k| h.on_node_delete(k),
        name,
        synced,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use std::collections::HashSet as Set;
    use std::time::Duration;

    fn handlers() -> Handlers {
        Handlers {
            cache: Arc::new(Mutex::new(Cache::new())),
            queue: Arc::new(SchedulingQueue::new(Duration::from_millis(1), Duration::from_millis(1))),
            scheduler_name: "default-scheduler".into(),
        }
    }

    #[tokio::test]
    async fn routes_pods_between_queue_and_cache() {
        let h = handlers();
        h.on_node(node("n1", &[("cpu", "1")], &[]));
        h.on_pod(pod("pending", &[]));
        let mut other = pod("other", &[]);
        other.spec.as_mut().unwrap().scheduler_name = Some("custom".into());
        h.on_pod(other);
        assert_eq!(h.queue.lens(), (1, 0, 0), "only our scheduler's pods are queued");
        let popped = h.queue.pop().await.unwrap();
        h.queue.add_unschedulable(popped, Set::from(["NodeResourcesFit"]));
        let mut bound = pod("bound", &[("cpu", "1")]);
        bound.spec.as_mut().unwrap().node_name = Some("n1".into());
        h.on_pod(bound);
        assert_eq!(h.cache.lock().unwrap().pod_count(), 1);
        assert_eq!(h.queue.lens(), (0, 0, 1), "a new bound pod frees nothing");
        h.on_pod_delete("default/bound");
        assert_eq!(h.cache.lock().unwrap().pod_count(), 0);
        assert_eq!(h.queue.lens().2, 0, "deleting a bound pod re-queues");
    }

    #[test]
    fn node_heartbeats_do_not_requeue() {
        let h = handlers();
        h.on_node(node("n1", &[("cpu", "1")], &[]));
        let (new, changed) = h.cache.lock().unwrap().upsert_node(node("n1", &[("cpu", "1")], &[]));
        assert!(!new && !changed);
        let (_, changed) = h.cache.lock().unwrap().upsert_node(node("n1", &[("cpu", "2")], &[]));
        assert!(changed);
    }
}
