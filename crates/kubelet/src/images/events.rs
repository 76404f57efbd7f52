//! The Events upstream's image manager posts for a pod's container
//! (`Pulling`, `Pulled`, `Failed`, `BackOff`, `ErrImageNeverPull`,
//! `InspectFailed`), shown by `kubectl describe pod`.
//!
//! Posting happens on a task of its own: an Event never delays a pod's
//! start, and a failure to post is only logged. Repeats of the same event
//! become a series (kube-runtime's `Recorder`), as upstream's correlator
//! counts them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Where image events go: nowhere until [`ImageEvents::new`] is given a client.
#[derive(Clone, Default)]
pub struct ImageEvents {
    recorder: Option<Recorder>,
}

impl ImageEvents {
    /// Events reported by the kubelet of `node`.
    pub fn new(client: kube::Client, node: &str) -> ImageEvents {
        let reporter = Reporter {
            controller: "kubelet".into(),
            instance: Some(node.to_string()),
        };
        ImageEvents {
            recorder: Some(Recorder::new(client, reporter)),
        }
    }

    pub fn normal(&self, pod: &Pod, container: &Container, reason: &str, message: String) {
        self.post(pod, container, EventType::Normal, reason, message);
    }

    pub fn warning(&self, pod: &Pod, container: &Container, reason: &str, message: String) {
        self.post(pod, container, EventType::Warning, reason, message);
    }

    fn post(&self, pod: &Pod, container: &Container, type_: EventType, reason: &str, message: String) {
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = container_reference(pod, container);
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(message),
            action: reason.into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(err) = recorder.publish(&event, &reference).await {
                tracing::warn!(reason = event.reason, %err, "cannot post an image event");
            }
        });
    }
}

/// The pod, with `fieldPath` naming the container as upstream does.
fn container_reference(pod: &Pod, container: &Container) -> ObjectReference {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|inits| inits.iter().any(|c| c.name == container.name));
    let list = if init { "initContainers" } else { "containers" };
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: Some(format!("spec.{list}{{{}}}", container.name)),
    }
}

/// Go's `time.Duration` text: `523.4ms`, `1.25s`, `2m3.5s`.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    match nanos {
        0 => "0s".into(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(nanos, 1_000)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(nanos, 1_000_000)),
        _ => {
            let secs = nanos / 1_000_000_000;
            let seconds = decimal(secs % 60 * 1_000_000_000 + nanos % 1_000_000_000, 1_000_000_000);
            match (secs / 3600, secs % 3600 / 60) {
                (0, 0) => format!("{seconds}s"),
                (0, m) => format!("{m}m{seconds}s"),
                (h, m) => format!("{h}h{m}m{seconds}s"),
            }
        }
    }
}

/// `value / unit` with the fraction's trailing zeros trimmed.
fn decimal(value: u128, unit: u128) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(523_456_789)), "523.456789ms");
        assert_eq!(go_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn references_name_the_container_list() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p", "namespace": "ns", "uid": "u" },
            "spec": { "initContainers": [{ "name": "init" }], "containers": [{ "name": "app" }] }
        }))
        .unwrap();
        let init = Container {
            name: "init".into(),
            ..Default::default()
        };
        let app = Container {
            name: "app".into(),
            ..Default::default()
        };
        assert_eq!(
            container_reference(&pod, &init).field_path.as_deref(),
            Some("spec.initContainers{init}")
        );
        assert_eq!(
            container_reference(&pod, &app).field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(container_reference(&pod, &app).namespace.as_deref(), Some("ns"));
    }
}
