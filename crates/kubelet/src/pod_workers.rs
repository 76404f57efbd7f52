//! Pod workers (upstream `pod_workers.go`): one task per pod, so a pod that
//! is slow or failing never holds up the others. A worker gets the latest
//! version of its pod through a `watch` channel (intermediate versions are
//! skipped, as upstream), is woken by the relist when its containers
//! change, and otherwise resyncs when its sync asked to (a back-off that
//! ends, a probe due). A deleted pod is terminated gracefully, cleaned up
//! and its object finally deleted; then the worker ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::kubelet::Context;
use crate::kuberuntime::PodRuntime;

struct Worker {
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The workers of the pods on this node, by pod UID.
pub struct PodWorkers {
    ctx: Arc<Context>,
    workers: HashMap<String, Worker>,
}

impl PodWorkers {
    pub fn new(ctx: Arc<Context>) -> PodWorkers {
        PodWorkers {
            ctx,
            workers: HashMap::new(),
        }
    }

    /// A new version of a pod: to its worker, started if it has none.
    pub fn update(&mut self, pod: Pod) {
        let uid = pod.uid().unwrap_or_default();
        self.workers.retain(|_, w| !w.task.is_finished());
        let pod = Arc::new(pod);
        if let Some(worker) = self.workers.get(&uid) {
            worker.pod.send_replace(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let wake = Arc::new(Notify::new());
        let runtime = PodRuntime::new(self.ctx.clone(), uid.clone(), wake.clone());
        let task = tokio::spawn(work(runtime, rx, wake.clone()));
        self.workers.insert(uid, Worker { pod: tx, wake, task });
    }

    /// The pod is gone from the API (deleted without grace, or missed).
    pub fn removed(&mut self, uid: &str) {
        if let Some(worker) = self.workers.get(uid) {
            worker.pod.send_replace(None);
        }
    }

    /// Keeps the workers of these pods; the others' pods are gone.
    pub fn retain(&mut self, pods: &HashSet<String>) {
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|uid| !pods.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.removed(&uid);
        }
    }

    /// The runtime state of these pods changed.
    pub fn wake(&self, uids: &[String]) {
        for uid in uids {
            if let Some(worker) = self.workers.get(uid) {
                worker.wake.notify_one();
            }
        }
    }
}

impl Drop for PodWorkers {
    /// The kubelet stops: workers stop with it, their containers keep running.
    fn drop(&mut self) {
        for worker in self.workers.values() {
            worker.task.abort();
        }
    }
}

/// One pod's life: sync until deleted, then terminate.
async fn work(mut runtime: PodRuntime, mut pods: watch::Receiver<Option<Arc<Pod>>>, wake: Arc<Notify>) {
    let mut last: Option<Arc<Pod>> = None;
    loop {
        let pod = pods.borrow_and_update().clone();
        let Some(pod) = pod else {
            // Gone from the API: stop what runs, quickly.
            if let Some(pod) = last {
                runtime.terminate(&pod, Some(0)).await;
            }
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            runtime
                .terminate(&pod, pod.metadata.deletion_grace_period_seconds)
                .await;
            runtime.finish_deletion(&pod).await;
            return;
        }
        let next = runtime.sync(&pod).await;
        last = Some(pod);
        tokio::select! {
            changed = pods.changed() => if changed.is_err() { return },
            () = wake.notified() => {}
            () = tokio::time::sleep(next) => {}
        }
    }
}
