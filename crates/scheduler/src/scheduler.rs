//! The scheduling loop (upstream `scheduler.go` / `scheduleOne`): pop a
//! pod, update the snapshot, run the algorithm, assume the pod in the cache
//! and bind it in the background — or record why it fits nowhere, try
//! preemption, and put it back in the queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

use crate::cache::{Cache, Snapshot};
use crate::events::{self, EventRecorder};
use crate::preemption::{self, Candidate};
use crate::queue::{ClusterEvent, QueuedPodInfo, SchedulingQueue};
use crate::schedule_one::{Algorithm, FitError};
use crate::types::PodInfo;
use crate::{binding, framework::Framework};

/// The scheduler's state; [`Scheduler::run`] is the loop.
pub struct Scheduler {
    pub client: kube::Client,
    pub cache: Arc<Mutex<Cache>>,
    pub queue: Arc<SchedulingQueue>,
    pub algorithm: Algorithm,
    pub snapshot: Snapshot,
    pub recorder: EventRecorder,
}

impl Scheduler {
    pub fn new(
        client: kube::Client,
        cache: Arc<Mutex<Cache>>,
        queue: Arc<SchedulingQueue>,
        options: &crate::SchedulerOptions,
    ) -> Self {
        Scheduler {
            recorder: EventRecorder::new(client.clone(), &options.scheduler_name),
            client,
            cache,
            queue,
            algorithm: Algorithm::new(Framework::default_profile(), options.percentage_of_nodes_to_score),
            snapshot: Snapshot::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules pods until the queue closes.
    pub async fn run(mut self) {
        while let Some(queued) = self.queue.pop().await {
            self.schedule_one(queued);
        }
    }

    /// One scheduling cycle; API writes happen in spawned tasks so the loop never waits on the network.
    pub fn schedule_one(&mut self, queued: QueuedPodInfo) {
        let pod = queued.pod.clone();
        {
            let cache = &mut *self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.update_snapshot(&mut self.snapshot);
        }
        match self.algorithm.schedule_pod(&pod, &self.snapshot) {
            Ok(result) => self.assume_and_bind(queued, result.node),
            Err(fit) => self.handle_failure(queued, fit),
        }
    }

    fn assume_and_bind(&mut self, queued: QueuedPodInfo, node: String) {
        let pod = queued.pod.clone();
        self.cache().assume_pod(pod.clone(), &node);
        let (client, cache, queue, recorder) = (
            self.client.clone(),
            self.cache.clone(),
            self.queue.clone(),
            self.recorder.clone(),
        );
        tokio::spawn(async move {
            match binding::bind(&client, &pod, &node).await {
                Ok(()) => {
                    queue.done(&pod.key);
                    recorder.scheduled(&pod, &node).await;
                }
                Err(e) => {
                    tracing::warn!(pod = %pod.key, node, error = %e, "binding failed");
                    cache.lock().unwrap_or_else(|e| e.into_inner()).forget_pod(&pod.key);
                    queue.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
                    let message = format!("Binding rejected: {e}");
                    queue.add_unschedulable(queued, HashSet::new());
                    recorder.failed_scheduling(&pod, &message).await;
                }
            }
        });
    }

    fn handle_failure(&mut self, queued: QueuedPodInfo, mut fit: FitError) {
        let pod = queued.pod.clone();
        let mut nomination: Option<Candidate> = None;
        if !self.snapshot.nodes.is_empty() && fit.pre_filter_msg.is_none() {
            match preemption::preempt(&self.algorithm.framework, &pod, &self.snapshot, &fit) {
                Ok(candidate) => nomination = Some(candidate),
                Err(msg) => fit.post_filter_msg = Some(msg),
            }
        }
        let message = fit.to_string();
        tracing::debug!(pod = %pod.key, %message, "unschedulable");
        self.queue.add_unschedulable(queued, fit.unschedulable_plugins());
        let (client, recorder) = (self.client.clone(), self.recorder.clone());
        tokio::spawn(async move {
            let nominated = nomination.as_ref().map(|c| c.node.as_str());
            if let Err(e) = events::update_unschedulable_condition(&client, &pod, &message, nominated).await {
                tracing::debug!(pod = %pod.key, error = %e, "could not update PodScheduled condition");
            }
            recorder.failed_scheduling(&pod, &message).await;
            if let Some(candidate) = nomination {
                evict_victims(&client, &recorder, &pod, candidate).await;
            }
        });
    }
}

/// Deletes the victims with their own grace periods and tells them why.
async fn evict_victims(client: &kube::Client, recorder: &EventRecorder, preemptor: &PodInfo, candidate: Candidate) {
    for victim in &candidate.victims {
        let api: Api<Pod> = Api::namespaced(client.clone(), &victim.namespace);
        let params = DeleteParams {
            preconditions: None,
            ..Default::default()
        };
        match api.delete(&victim.name, &params).await {
            Ok(_) => recorder.preempted(victim, preemptor, &candidate.node).await,
            Err(e) => tracing::warn!(victim = %victim.key, error = %e, "could not delete preemption victim"),
        }
    }
}
