//! The `PodStatus` a kubelet reports (upstream `generateAPIPodStatus` and
//! the status manager's merge): phase, the kubelet-owned conditions
//! `PodReadyToStartContainers`, `Initialized`, `Ready`, `ContainersReady`
//! (in upstream's order, `PodScheduled` after them; `Ready` also waits for
//! the pod's readiness gates), container statuses, host and pod IPs and the
//! start time.
//!
//! The result is a pure function of the pod, what its containers are doing
//! and the time, and keeps what others own (`qosClass`, `PodScheduled`,
//! conditions of other types) and unchanged conditions' transition times,
//! so comparing it with the pod's current status tells whether anything
//! needs writing. Times have whole seconds, as `metav1.Time` does on the
//! wire, for that comparison to hold.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, TimestampRound, Unit};
use sha2::{Digest, Sha256};

use crate::simruntime::{Containers, State, Termination};

/// Condition types the kubelet writes, in the order it writes them.
const KUBELET_CONDITIONS: [&str; 4] = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"];

/// Where the pod lives on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub host_ip: String,
    /// From the node's pod range; `None` until the node has one.
    pub pod_ip: Option<String>,
}

/// What the pod's containers are doing.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// When the pod started (its `status.startTime`).
    pub started: Timestamp,
    pub containers: Containers,
    /// Whether running containers pass their readiness checks.
    pub ready: bool,
}

/// The status to report for `pod` at `now`.
pub fn build(pod: &Pod, observed: &Observed, network: &Network, now: Timestamp) -> PodStatus {
    let mut status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let phase = phase(&observed.containers.state);
    let pod_ref = PodRef::of(pod);
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, &pod_ref, observed))
        .collect();
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| init_container_status(c, &pod_ref, observed))
        .collect();
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.clone())
        .collect();
    let old = status.conditions.take().unwrap_or_default();
    status.conditions = Some(conditions(old, phase, &statuses, &gates, now));
    status.phase = Some(phase.to_string());
    status.container_statuses = Some(statuses);
    status.init_container_statuses = (!init_statuses.is_empty()).then_some(init_statuses);
    status.host_ip = Some(network.host_ip.clone());
    status.host_ips = Some(vec![HostIP {
        ip: network.host_ip.clone(),
    }]);
    let pod_ip = match spec.host_network {
        Some(true) => Some(network.host_ip.clone()),
        _ => network.pod_ip.clone(),
    };
    status.pod_ips = pod_ip.clone().map(|ip| vec![PodIP { ip }]);
    status.pod_ip = pod_ip;
    status.start_time = Some(time(observed.started));
    status
}

/// `Running` while containers run or restart, else how they ended.
fn phase(state: &State) -> &'static str {
    match state {
        State::Exited(Termination { exit_code: 0, .. }) => "Succeeded",
        State::Exited(_) => "Failed",
        _ => "Running",
    }
}

/// The kubelet's conditions recomputed, then `PodScheduled` and any other
/// writer's conditions as they were.
fn conditions(
    old: Vec<PodCondition>,
    phase: &str,
    statuses: &[ContainerStatus],
    gates: &[String],
    now: Timestamp,
) -> Vec<PodCondition> {
    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let containers_ready = match phase {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ if !unready.is_empty() => (
            false,
            Some("ContainersNotReady"),
            Some(format!("containers with unready status: [{}]", unready.join(" "))),
        ),
        _ => (true, None, None),
    };
    let gates_unready = unready_gates(&old, gates);
    let ready = if containers_ready.0 && !gates_unready.is_empty() {
        (false, Some("ReadinessGatesNotReady"), Some(gates_unready.join(", ")))
    } else {
        containers_ready.clone()
    };
    let initialized = (true, (phase == "Succeeded").then_some("PodCompleted"), None);
    let computed = [(phase == "Running", None, None), initialized, ready, containers_ready];
    let mut conditions: Vec<PodCondition> = KUBELET_CONDITIONS
        .iter()
        .zip(computed)
        .map(|(kind, (ok, reason, message))| {
            let status = if ok { "True" } else { "False" };
            let previous = old.iter().find(|c| c.type_ == *kind && c.status == status);
            PodCondition {
                type_: kind.to_string(),
                status: status.to_string(),
                reason: reason.map(str::to_string),
                message,
                last_transition_time: Some(
                    previous
                        .and_then(|c| c.last_transition_time.clone())
                        .unwrap_or(time(now)),
                ),
                ..PodCondition::default()
            }
        })
        .collect();
    let scheduled = old.iter().find(|c| c.type_ == "PodScheduled").cloned();
    conditions.push(scheduled.unwrap_or_else(|| PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(time(now)),
        ..PodCondition::default()
    }));
    let others = old
        .into_iter()
        .filter(|c| c.type_ != "PodScheduled" && !KUBELET_CONDITIONS.contains(&c.type_.as_str()));
    conditions.extend(others);
    conditions
}

/// Upstream's messages for readiness gates whose condition is missing or not True.
pub(crate) fn unready_gates(conditions: &[PodCondition], gates: &[String]) -> Vec<String> {
    gates
        .iter()
        .filter_map(|gate| match conditions.iter().find(|c| &c.type_ == gate) {
            None => Some(format!(
                "corresponding condition of pod readiness gate {gate:?} does not exist."
            )),
            Some(c) if c.status != "True" => Some(format!(
                "the status of pod readiness gate {gate:?} is not \"True\", but {}",
                c.status
            )),
            Some(_) => None,
        })
        .collect()
}

/// What container IDs and messages need to name the pod.
struct PodRef {
    uid: String,
    /// Upstream's `format.Pod`: `name_namespace(uid)`.
    display: String,
}

impl PodRef {
    fn of(pod: &Pod) -> PodRef {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let display = format!(
            "{}_{}({uid})",
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or("")
        );
        PodRef { uid, display }
    }

    /// A stable `containerd://` ID for one run of a container.
    fn container_id(&self, container: &str, started: Timestamp) -> String {
        format!(
            "containerd://{}",
            hex_sha256(&format!("{}/{container}/{}", self.uid, started.as_second()))
        )
    }
}

fn container_status(container: &Container, pod: &PodRef, observed: &Observed) -> ContainerStatus {
    let containers = &observed.containers;
    let (state, current_id) = match containers.state {
        State::Running { since } => {
            let running = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(since)),
                }),
                ..ContainerState::default()
            };
            (running, pod.container_id(&container.name, since))
        }
        State::BackOff { delay } => {
            let waiting = ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(delay),
                        container.name,
                        pod.display
                    )),
                }),
                ..ContainerState::default()
            };
            let last = containers.last.map(|l| l.started_at).unwrap_or(observed.started);
            (waiting, pod.container_id(&container.name, last))
        }
        State::Exited(run) => (
            terminated(&run, pod, &container.name),
            pod.container_id(&container.name, run.started_at),
        ),
    };
    // While backing off, the run that just ended is both the current ID and the last state.
    let last_state = containers
        .last
        .map(|run| terminated(&run, pod, &container.name))
        .unwrap_or_default();
    let running = state.running.is_some();
    ContainerStatus {
        name: container.name.clone(),
        image: normalized_image(container.image.as_deref().unwrap_or("")),
        image_id: image_id(container.image.as_deref().unwrap_or("")),
        container_id: Some(current_id),
        ready: running && observed.ready,
        started: Some(running),
        restart_count: containers.restart_count,
        state: Some(state),
        last_state: Some(last_state),
        ..ContainerStatus::default()
    }
}

/// Init containers ran to completion when the pod started; sidecars
/// (`restartPolicy: Always`) keep running.
fn init_container_status(container: &Container, pod: &PodRef, observed: &Observed) -> ContainerStatus {
    let sidecar = container.restart_policy.as_deref() == Some("Always");
    let started = observed.started;
    let (state, ready) = if sidecar {
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(started)),
            }),
            ..ContainerState::default()
        };
        (running, observed.ready)
    } else {
        let run = Termination {
            started_at: started,
            finished_at: started,
            exit_code: 0,
        };
        (terminated(&run, pod, &container.name), true)
    };
    ContainerStatus {
        name: container.name.clone(),
        image: normalized_image(container.image.as_deref().unwrap_or("")),
        image_id: image_id(container.image.as_deref().unwrap_or("")),
        container_id: Some(pod.container_id(&container.name, started)),
        ready,
        started: Some(sidecar),
        restart_count: 0,
        state: Some(state),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

fn terminated(run: &Termination, pod: &PodRef, container: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: run.exit_code,
            reason: Some(if run.exit_code == 0 { "Completed" } else { "Error" }.into()),
            started_at: Some(time(run.started_at)),
            finished_at: Some(time(run.finished_at)),
            container_id: Some(pod.container_id(container, run.started_at)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

/// An image reference as the runtime reports it: `nginx` is
/// `docker.io/library/nginx:latest`.
pub fn normalized_image(image: &str) -> String {
    let repository = repository(image);
    let rest = &image[image.len() - image_suffix(image).len()..];
    if rest.is_empty() {
        format!("{repository}:latest")
    } else {
        format!("{repository}{rest}")
    }
}

/// The digest reference the runtime reports as `imageID`; hollow images
/// have a digest derived from their name.
pub fn image_id(image: &str) -> String {
    let reference = normalized_image(image);
    let digest = match reference.split_once('@') {
        Some((_, digest)) => digest.to_string(),
        None => format!("sha256:{}", hex_sha256(&reference)),
    };
    format!("{}@{digest}", repository(image))
}

/// The fully qualified repository of an image reference, without tag or digest.
fn repository(image: &str) -> String {
    let name = &image[..image.len() - image_suffix(image).len()];
    let (domain, path) = match name.split_once('/') {
        Some((domain, path)) if domain.contains(['.', ':']) || domain == "localhost" => (domain, path.to_string()),
        _ => ("docker.io", name.to_string()),
    };
    if domain == "docker.io" && !path.contains('/') {
        format!("docker.io/library/{path}")
    } else {
        format!("{domain}/{path}")
    }
}

/// The `:tag` and/or `@digest` ending an image reference (a `:` in the
/// registry's host:port is not a tag).
fn image_suffix(image: &str) -> &str {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let at = image.find('@');
    let tag = image[last_slash..].find(':').map(|i| last_slash + i);
    match (tag, at) {
        (Some(tag), Some(at)) => &image[tag.min(at)..],
        (Some(i), None) | (None, Some(i)) => &image[i..],
        (None, None) => "",
    }
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `metav1.Time`, whole seconds as on the wire.
pub fn time(at: Timestamp) -> Time {
    Time(
        at.round(
            TimestampRound::new()
                .smallest(Unit::Second)
                .mode(k8s_openapi::jiff::RoundMode::Trunc),
        )
        .unwrap_or(at),
    )
}

/// Go's `time.Duration` text for whole seconds: `10s`, `1m20s`, `5m0s`.
pub(crate) fn go_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simruntime::{RestartPolicy, Script, containers_at};
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(extra_spec: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "registry.local:5000/team/tool:v2"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra_spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1"},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T22:00:00Z"},
                {"type": "DisruptionTarget", "status": "False"}
            ]}
        }))
        .unwrap()
    }

    fn observed(script: &Script, policy: RestartPolicy, now: Timestamp) -> Observed {
        Observed {
            started: t(0),
            containers: containers_at(script, policy, t(0), now),
            ready: script.ready,
        }
    }

    fn network() -> Network {
        Network {
            host_ip: "127.1.0.1".into(),
            pod_ip: Some("10.42.0.2".into()),
        }
    }

    fn condition<'a>(status: &'a PodStatus, kind: &str) -> &'a PodCondition {
        status.conditions.iter().flatten().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn a_running_pod_is_ready_with_container_statuses() {
        let pod = pod(json!({}));
        let status = build(
            &pod,
            &observed(&Script::default(), RestartPolicy::Always, t(5)),
            &network(),
            t(5),
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let kinds: Vec<&str> = status.conditions.iter().flatten().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
                "DisruptionTarget"
            ]
        );
        assert!(status.conditions.iter().flatten().take(4).all(|c| c.status == "True"));
        assert_eq!(condition(&status, "Ready").last_transition_time, Some(time(t(5))));
        // Others' fields are kept.
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(
            condition(&status, "PodScheduled").last_transition_time,
            Some(time(t(-800)))
        );
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.2"));
        assert_eq!(status.pod_ips, Some(vec![PodIP { ip: "10.42.0.2".into() }]));
        assert_eq!(status.host_ips, Some(vec![HostIP { ip: "127.1.0.1".into() }]));
        assert_eq!(status.start_time, Some(time(t(0))));
        let app = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(app.image, "docker.io/library/nginx:latest");
        assert!(
            app.image_id.starts_with("docker.io/library/nginx@sha256:"),
            "{}",
            app.image_id
        );
        assert!(app.container_id.as_ref().unwrap().starts_with("containerd://"));
        assert_eq!((app.ready, app.started, app.restart_count), (true, Some(true), 0));
        assert_eq!(
            app.state.as_ref().unwrap().running.as_ref().unwrap().started_at,
            Some(time(t(0)))
        );
        assert_eq!(app.last_state, Some(ContainerState::default()));
        let side = &status.container_statuses.as_ref().unwrap()[1];
        assert_eq!(side.image, "registry.local:5000/team/tool:v2");
    }

    #[test]
    fn building_again_changes_nothing() {
        let mut pod = pod(json!({}));
        let observed = observed(&Script::default(), RestartPolicy::Always, t(5));
        let status = build(&pod, &observed, &network(), t(5));
        pod.status = Some(status.clone());
        assert_eq!(build(&pod, &observed, &network(), t(60)), status);
    }

    #[test]
    fn not_ready_containers_are_named() {
        let pod = pod(json!({}));
        let script = Script {
            ready: false,
            ..Script::default()
        };
        let status = build(&pod, &observed(&script, RestartPolicy::Always, t(5)), &network(), t(5));
        for kind in ["Ready", "ContainersReady"] {
            let c = condition(&status, kind);
            assert_eq!(c.status, "False");
            assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
            assert_eq!(c.message.as_deref(), Some("containers with unready status: [app side]"));
        }
        assert_eq!(status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn finished_pods_report_terminated_containers() {
        let pod = pod(json!({"restartPolicy": "Never"}));
        let script = Script {
            exit_after: Some(Duration::from_secs(3)),
            ..Script::default()
        };
        let status = build(&pod, &observed(&script, RestartPolicy::Never, t(5)), &network(), t(5));
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(condition(&status, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(
            condition(&status, "Initialized").reason.as_deref(),
            Some("PodCompleted")
        );
        assert_eq!(condition(&status, "PodReadyToStartContainers").status, "False");
        let app = &status.container_statuses.as_ref().unwrap()[0];
        let done = app.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((done.exit_code, done.reason.as_deref()), (0, Some("Completed")));
        assert_eq!(done.finished_at, Some(time(t(3))));
        assert_eq!((app.ready, app.started), (false, Some(false)));

        let failing = Script { exit_code: 1, ..script };
        let status = build(&pod, &observed(&failing, RestartPolicy::Never, t(5)), &network(), t(5));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let app = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Error")
        );
        assert_eq!(condition(&status, "Ready").reason.as_deref(), Some("PodFailed"));
        assert_eq!(
            condition(&status, "ContainersReady").reason.as_deref(),
            Some("PodFailed")
        );
    }

    #[test]
    fn readiness_gates_hold_back_ready() {
        let gates =
            json!({"readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "DisruptionTarget"}]});
        let mut pod = pod(gates);
        let observed = observed(&Script::default(), RestartPolicy::Always, t(5));
        let status = build(&pod, &observed, &network(), t(5));
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ReadinessGatesNotReady"))
        );
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist., \
                 the status of pod readiness gate \"DisruptionTarget\" is not \"True\", but False"
            )
        );
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        let conditions = pod.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conditions[1].status = "True".into();
        conditions.push(PodCondition {
            type_: "example.com/lb".into(),
            status: "True".into(),
            ..PodCondition::default()
        });
        assert_eq!(
            condition(&build(&pod, &observed, &network(), t(6)), "Ready").status,
            "True"
        );
    }

    #[test]
    fn crash_loops_wait_with_upstreams_message() {
        let pod = pod(json!({}));
        let script = Script {
            exit_after: Some(Duration::from_secs(3)),
            exit_code: 2,
            ready: true,
        };
        let status = build(
            &pod,
            &observed(&script, RestartPolicy::Always, t(10)),
            &network(),
            t(10),
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let app = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(app.restart_count, 1);
        let waiting = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            waiting.message.as_deref(),
            Some("back-off 10s restarting failed container=app pod=web_prod(u-1)")
        );
        let last = app.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.finished_at.clone()), (2, Some(time(t(6)))));
        assert_eq!(last.container_id, app.container_id);
    }

    #[test]
    fn host_network_pods_have_the_host_ip_and_init_containers_completed() {
        let pod = pod(json!({"hostNetwork": true, "initContainers": [
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
        ]}));
        let no_range = Network {
            host_ip: "127.1.0.1".into(),
            pod_ip: None,
        };
        let status = build(
            &pod,
            &observed(&Script::default(), RestartPolicy::Always, t(1)),
            &no_range,
            t(1),
        );
        assert_eq!(status.pod_ip.as_deref(), Some("127.1.0.1"));
        let init = status.init_container_statuses.unwrap();
        let setup = init[0].state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(setup.reason.as_deref(), Some("Completed"));
        assert!(init[0].ready);
        assert!(init[1].state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn image_references_are_normalized_like_the_runtime_does() {
        assert_eq!(normalized_image("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(normalized_image("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(normalized_image("localhost/app"), "localhost/app:latest");
        assert_eq!(normalized_image("quay.io/a/b@sha256:abc"), "quay.io/a/b@sha256:abc");
        assert_eq!(image_id("quay.io/a/b:v1@sha256:abc"), "quay.io/a/b@sha256:abc");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
