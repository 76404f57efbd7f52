//! The Capstan scheduler: assigns pending pods to nodes, as upstream
//! `kube-scheduler` does with its default profile.
//!
//! Where to start:
//!
//! * [`run`] wires everything: informers ([`eventhandlers`]) fill the
//!   [`cache`] with nodes and bound pods and the [`queue`] with pending
//!   pods; the loop in [`scheduler`] pops a pod, snapshots the cache and
//!   runs the algorithm in [`schedule_one`].
//! * [`framework`] defines the plugin traits (Filter, Score with
//!   normalization) and runs the plugins of [`plugins`] — one module per
//!   upstream plugin, each pure logic over a [`cache::Snapshot`] with
//!   table-driven tests.
//! * A chosen node is *assumed* in the cache and bound in the background
//!   ([`binding`]); a pod that fits nowhere gets upstream's
//!   `0/N nodes are available: …` message on its `PodScheduled` condition
//!   and in a `FailedScheduling` Event ([`events`]), and may preempt
//!   lower-priority pods ([`preemption`]).

pub mod binding;
pub mod cache;
pub mod eventhandlers;
pub mod events;
pub mod framework;
pub mod labels;
pub mod plugins;
pub mod preemption;
pub mod quantity;
pub mod queue;
pub mod schedule_one;
pub mod scheduler;
pub mod types;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Settings, named after upstream's `KubeSchedulerConfiguration` fields.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Pods whose `spec.schedulerName` equals this are ours.
    pub scheduler_name: String,
    /// Share of nodes to find feasible before scoring; 0 means upstream's adaptive default.
    pub percentage_of_nodes_to_score: i32,
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
        }
    }
}

/// Runs the scheduler until `shutdown` resolves. Scheduling starts once the
/// pod and node informers have listed everything, so no pod is placed on a
/// partial view of the cluster.
pub async fn run(client: kube::Client, options: SchedulerOptions, shutdown: impl Future<Output = ()>) {
    let cache = Arc::new(Mutex::new(cache::Cache::new()));
    let queue = Arc::new(queue::SchedulingQueue::new(
        options.pod_initial_backoff,
        options.pod_max_backoff,
    ));
    let handlers = eventhandlers::Handlers {
        cache: cache.clone(),
        queue: queue.clone(),
        scheduler_name: options.scheduler_name.clone(),
    };
    let (pods_synced, mut pods_ready) = watch::channel(false);
    let (nodes_synced, mut nodes_ready) = watch::channel(false);
    let informers = async {
        tokio::join!(
            eventhandlers::watch_pods(client.clone(), handlers.clone(), pods_synced),
            eventhandlers::watch_nodes(client.clone(), handlers.clone(), nodes_synced),
        )
    };
    let sched = scheduler::Scheduler::new(client.clone(), cache, queue.clone(), &options);
    let scheduling = async {
        let _ = pods_ready.wait_for(|r| *r).await;
        let _ = nodes_ready.wait_for(|r| *r).await;
        tracing::info!(scheduler = %options.scheduler_name, "scheduler caches synced; scheduling");
        sched.run().await
    };
    let flusher = async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            queue.flush();
        }
    };
    tokio::select! {
        _ = informers => tracing::warn!("scheduler informers stopped"),
        _ = scheduling => tracing::warn!("scheduling loop stopped"),
        _ = flusher => {}
        _ = shutdown => {}
    }
    queue.close();
}
