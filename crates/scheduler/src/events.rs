//! What the scheduler tells users: `events.k8s.io/v1` Events (`Scheduled`,
//! `FailedScheduling`, `Preempted`) and the pod's `PodScheduled=False`
//! condition with upstream's wording, so `kubectl describe pod` reads as upstream.

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use crate::types::PodInfo;

/// Publishes scheduler Events; failures are logged, never fatal.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
}

impl EventRecorder {
    pub fn new(client: kube::Client, scheduler_name: &str) -> Self {
        let reporter = Reporter {
            controller: scheduler_name.to_string(),
            instance: None,
        };
        EventRecorder {
            recorder: Recorder::new(client, reporter),
        }
    }

    async fn publish(&self, pod: &Pod, type_: EventType, reason: &str, action: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "could not publish event");
        }
    }

    pub async fn scheduled(&self, pod: &PodInfo, node: &str) {
        let note = scheduled_message(pod, node);
        self.publish(&pod.pod, EventType::Normal, "Scheduled", "Binding", note)
            .await;
    }

    pub async fn failed_scheduling(&self, pod: &PodInfo, message: &str) {
        self.publish(
            &pod.pod,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            message.into(),
        )
        .await;
    }

    pub async fn preempted(&self, victim: &PodInfo, preemptor: &PodInfo, node: &str) {
        let uid = preemptor.pod.metadata.uid.as_deref().unwrap_or_default();
        let note = format!("Preempted by pod {uid} on node {node}");
        self.publish(&victim.pod, EventType::Normal, "Preempted", "Preempting", note)
            .await;
    }
}

/// Upstream's `Scheduled` message.
pub fn scheduled_message(pod: &PodInfo, node: &str) -> String {
    format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name)
}

/// The strategic-merge patch for `PodScheduled=False` (and a nomination), or
/// `None` when the pod already says exactly that.
pub fn unschedulable_patch(pod: &PodInfo, message: &str, nominated: Option<&str>) -> Option<serde_json::Value> {
    let status = pod.pod.status.as_ref();
    let current = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let same_condition = current.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
    });
    let current_nomination = status.and_then(|s| s.nominated_node_name.as_deref());
    if same_condition && (nominated.is_none() || nominated == current_nomination) {
        return None;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.as_ref().map(|t| t.0.to_string()),
        _ => None,
    }
    .unwrap_or_else(|| {
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_default()
            .to_string()
    });
    let mut patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    }]}});
    if let Some(node) = nominated {
        patch["status"]["nominatedNodeName"] = json!(node);
    }
    Some(patch)
}

/// Records on the pod why it is not scheduled (and where it is nominated to go).
pub async fn update_unschedulable_condition(
    client: &kube::Client,
    pod: &PodInfo,
    message: &str,
    nominated: Option<&str>,
) -> Result<(), kube::Error> {
    let Some(patch) = unschedulable_patch(pod, message, nominated) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    #[test]
    fn messages_and_patches() {
        let p = pod_info(pod("web", &[]));
        assert_eq!(scheduled_message(&p, "n1"), "Successfully assigned default/web to n1");
        let patch = unschedulable_patch(&p, "0/1 nodes are available: 1 Insufficient cpu.", Some("n1")).unwrap();
        let cond = &patch["status"]["conditions"][0];
        assert_eq!(cond["type"], "PodScheduled");
        assert_eq!(cond["reason"], "Unschedulable");
        assert_eq!(patch["status"]["nominatedNodeName"], "n1");

        let mut raw = pod("web", &[]);
        raw.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("same".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let p = pod_info(raw);
        assert!(
            unschedulable_patch(&p, "same", None).is_none(),
            "no write when nothing changed"
        );
        assert!(unschedulable_patch(&p, "different", None).is_some());
    }
}
