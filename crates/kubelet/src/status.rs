//! The status of a real pod (upstream `generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`, `getPhase` and `status/generate.go`):
//! computed from what CRI reports about the pod's containers, the reasons
//! the last sync could not start some (upstream's reason cache), probe
//! results and the sandbox's network. Pure, so that comparing it with the
//! pod's current status says whether anything needs writing.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::jiff::Timestamp;

use crate::container::{RuntimeContainer, State};
use crate::podstatus::{normalized_image, time, unready_gates};

/// Why a container is waiting, when the last sync could not start it
/// (`ErrImagePull`, `CrashLoopBackOff`, `CreateContainerConfigError` …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Probe verdicts of one running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    pub ready: bool,
    pub started: bool,
}

/// Everything the status is computed from.
#[derive(Debug, Default)]
pub struct Observed {
    pub host_ip: String,
    pub pod_ips: Vec<String>,
    /// The newest sandbox is ready (its network set up).
    pub sandbox_ready: bool,
    /// The pod's containers, newest first.
    pub containers: Vec<RuntimeContainer>,
    /// The reason cache, by container name.
    pub waiting: HashMap<String, Waiting>,
    /// Probe verdicts by container ID; a running container without an
    /// entry has no probes (ready and started).
    pub probes: HashMap<String, Probed>,
    /// `containerd` in `containerd://<id>`.
    pub runtime_name: String,
    pub start_time: Option<Timestamp>,
    /// The pod's containers are being (or were) stopped for good.
    pub terminating: bool,
}

/// The status to report for `pod` at `now`.
pub fn build(pod: &Pod, observed: &Observed, now: Timestamp) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut status = pod.status.clone().unwrap_or_default();
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let has_init = !init_containers.is_empty();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_statuses: Vec<ContainerStatus> = init_containers
        .iter()
        .map(|c| {
            // Init containers are only restarted when they fail.
            let init_policy = if policy == "Never" { "Never" } else { "OnFailure" };
            container_status(c, observed, has_init, init_policy)
        })
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, observed, has_init, policy))
        .collect();
    let phase = phase(&init_containers, &init_statuses, &statuses, policy);
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.clone())
        .collect();
    let old = status.conditions.take().unwrap_or_default();
    let incomplete: Vec<&str> = init_containers
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| !init_done(c, s))
        .map(|(c, _)| c.name.as_str())
        .collect();
    let sandbox_ready = observed.sandbox_ready && !observed.terminating;
    status.conditions = Some(conditions(
        old,
        phase,
        sandbox_ready,
        &incomplete,
        &statuses,
        &gates,
        now,
    ));
    status.phase = Some(phase.to_string());
    status.container_statuses = Some(statuses);
    status.init_container_statuses = has_init.then_some(init_statuses);
    status.host_ip = Some(observed.host_ip.clone());
    status.host_ips = Some(vec![HostIP {
        ip: observed.host_ip.clone(),
    }]);
    if !observed.pod_ips.is_empty() {
        status.pod_ip = observed.pod_ips.first().cloned();
        status.pod_ips = Some(observed.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect());
    }
    if status.start_time.is_none() {
        status.start_time = Some(time(observed.start_time.unwrap_or(now)));
    }
    status
}

/// Whether an init container is done: exited 0, or a sidecar that started.
fn init_done(container: &Container, status: &ContainerStatus) -> bool {
    let state = status.state.as_ref();
    if container.restart_policy.as_deref() == Some("Always") {
        return status.started == Some(true);
    }
    state
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

/// Upstream's `ShouldContainerBeRestarted` for an exited container.
pub fn restarts(policy: &str, exit_code: i32) -> bool {
    policy == "Always" || (policy == "OnFailure" && exit_code != 0)
}

fn container_status(container: &Container, observed: &Observed, has_init: bool, policy: &str) -> ContainerStatus {
    let mut runs = observed.containers.iter().filter(|c| c.name == container.name);
    let latest = runs.next();
    let previous = runs.next();
    let default_waiting = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut status = ContainerStatus {
        name: container.name.clone(),
        image: container
            .image
            .clone()
            .map(|i| normalized_image(&i))
            .unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        started: Some(false),
        restart_count: 0,
        state: Some(waiting(default_waiting, None)),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    };
    if let Some(run) = latest {
        status.container_id = Some(container_id(observed, run));
        if !run.image.is_empty() {
            status.image = run.image.clone();
        }
        status.image_id = run.image_ref.clone();
        status.restart_count = run.restart_count as i32;
        status.state = Some(state(observed, run));
        if let Some(prev) = previous.filter(|p| p.state == State::Exited) {
            status.last_state = Some(terminated(observed, prev));
        }
        if run.state == State::Running {
            let probed = observed.probes.get(&run.id).copied().unwrap_or(Probed {
                ready: true,
                started: true,
            });
            status.started = Some(probed.started);
            status.ready = probed.started && probed.ready && !observed.terminating;
        }
    }
    if let Some(why) = observed.waiting.get(&container.name) {
        // Only a container that will be (re)started waits; one that exited
        // for good stays terminated.
        let waits = match latest.map(|r| (r.state, r.exit_code)) {
            None => true,
            Some((State::Exited, code)) => restarts(policy, code),
            Some((State::Running, _)) => false,
            Some(_) => true,
        };
        if waits {
            if let Some(run) = latest.filter(|r| r.state == State::Exited) {
                status.last_state = Some(terminated(observed, run));
            }
            status.state = Some(waiting(&why.reason, Some(&why.message)));
        }
    }
    status
}

fn container_id(observed: &Observed, run: &RuntimeContainer) -> String {
    format!("{}://{}", observed.runtime_name, run.id)
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..ContainerState::default()
    }
}

fn state(observed: &Observed, run: &RuntimeContainer) -> ContainerState {
    match run.state {
        State::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: run.started_at.map(time),
            }),
            ..ContainerState::default()
        },
        State::Exited => terminated(observed, run),
        State::Created | State::Unknown => waiting("ContainerCreating", None),
    }
}

fn terminated(observed: &Observed, run: &RuntimeContainer) -> ContainerState {
    let reason = if run.reason.is_empty() {
        if run.exit_code == 0 { "Completed" } else { "Error" }.to_string()
    } else {
        run.reason.clone()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: run.exit_code,
            reason: Some(reason),
            message: (!run.message.is_empty()).then(|| run.message.clone()),
            started_at: run.started_at.map(time),
            finished_at: run.finished_at.map(time),
            container_id: Some(container_id(observed, run)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

/// Upstream's `getPhase`.
fn phase(
    inits: &[Container],
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    policy: &str,
) -> &'static str {
    let (mut pending_init, mut failed_init) = (0, 0);
    for (c, s) in inits.iter().zip(init_statuses) {
        if c.restart_policy.as_deref() == Some("Always") {
            if s.started != Some(true) {
                pending_init += 1;
            }
            continue;
        }
        let state = s.state.clone().unwrap_or_default();
        let last_failed = s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some_and(|t| t.exit_code != 0);
        match (&state.running, &state.terminated, &state.waiting) {
            (Some(_), _, _) => pending_init += 1,
            (_, Some(t), _) if t.exit_code == 0 => {}
            (_, Some(_), _) => failed_init += 1,
            (_, _, Some(_)) if last_failed => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().and_then(|l| l.terminated.as_ref()).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match policy {
        "Always" => "Running",
        "OnFailure" if stopped == succeeded => "Succeeded",
        "OnFailure" => "Running",
        _ if stopped == succeeded => "Succeeded",
        _ => "Failed",
    }
}

/// The kubelet's four conditions, then `PodScheduled` and others' conditions as they were.
fn conditions(
    old: Vec<PodCondition>,
    phase: &str,
    sandbox_ready: bool,
    incomplete_init: &[&str],
    statuses: &[ContainerStatus],
    gates: &[String],
    now: Timestamp,
) -> Vec<PodCondition> {
    type Verdict = (bool, Option<&'static str>, Option<String>);
    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let containers_ready: Verdict = match phase {
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
    let ready: Verdict = if containers_ready.0 && !gates_unready.is_empty() {
        (false, Some("ReadinessGatesNotReady"), Some(gates_unready.join(", ")))
    } else {
        containers_ready.clone()
    };
    let initialized: Verdict = if !incomplete_init.is_empty() {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete_init.join(" ")
            )),
        )
    } else {
        (true, (phase == "Succeeded").then_some("PodCompleted"), None)
    };
    let computed: [(&str, Verdict); 4] = [
        ("PodReadyToStartContainers", (sandbox_ready, None, None)),
        ("Initialized", initialized),
        ("Ready", ready),
        ("ContainersReady", containers_ready),
    ];
    let mut conditions: Vec<PodCondition> = computed
        .into_iter()
        .map(|(kind, (ok, reason, message))| {
            let status = if ok { "True" } else { "False" };
            let previous = old.iter().find(|c| c.type_ == kind && c.status == status);
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
    let kubelet = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"];
    let scheduled = old.iter().find(|c| c.type_ == "PodScheduled").cloned();
    conditions.push(scheduled.unwrap_or_else(|| PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(time(now)),
        ..PodCondition::default()
    }));
    conditions.extend(
        old.into_iter()
            .filter(|c| c.type_ != "PodScheduled" && !kubelet.contains(&c.type_.as_str())),
    );
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d", "uid": "u"}, "spec": spec})).unwrap()
    }

    fn run(name: &str, id: &str, count: u32, state: State, exit: i32) -> RuntimeContainer {
        RuntimeContainer {
            id: id.into(),
            name: name.into(),
            sandbox_id: "s".into(),
            restart_count: count,
            state,
            created_at: t(0),
            started_at: Some(t(1)),
            finished_at: (state == State::Exited).then(|| t(2)),
            exit_code: exit,
            reason: match (state, exit) {
                (State::Exited, 0) => "Completed".into(),
                (State::Exited, _) => "Error".into(),
                _ => String::new(),
            },
            message: String::new(),
            image: "docker.io/library/busybox:latest".into(),
            image_ref: "sha256:abc".into(),
            hash: String::new(),
            log_path: String::new(),
        }
    }

    fn observed(containers: Vec<RuntimeContainer>) -> Observed {
        Observed {
            host_ip: "192.0.2.1".into(),
            pod_ips: vec!["10.42.0.7".into()],
            sandbox_ready: true,
            containers,
            runtime_name: "containerd".into(),
            ..Observed::default()
        }
    }

    fn condition<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions.iter().flatten().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn a_new_pod_waits_in_container_creating() {
        let p = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let mut o = observed(vec![]);
        o.sandbox_ready = false;
        o.pod_ips.clear();
        let s = build(&p, &o, t(5));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(a.image, "docker.io/library/busybox:latest");
        assert_eq!(condition(&s, "PodReadyToStartContainers").status, "False");
        assert_eq!(condition(&s, "Initialized").status, "True");
        assert_eq!(s.pod_ip, None);
    }

    #[test]
    fn running_containers_make_a_running_ready_pod() {
        let p = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let s = build(&p, &observed(vec![run("a", "c1", 0, State::Running, 0)]), t(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.container_id.as_deref(), Some("containerd://c1"));
        assert_eq!((a.ready, a.started), (true, Some(true)));
        assert_eq!(condition(&s, "Ready").status, "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.7"));
        // Readiness probes hold Ready back.
        let mut o = observed(vec![run("a", "c1", 0, State::Running, 0)]);
        o.probes.insert(
            "c1".into(),
            Probed {
                ready: false,
                started: true,
            },
        );
        let s = build(&p, &o, t(5));
        assert_eq!(
            condition(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [a]")
        );
    }

    #[test]
    fn crash_loops_wait_with_the_last_termination() {
        let p = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let mut o = observed(vec![
            run("a", "c2", 1, State::Exited, 2),
            run("a", "c1", 0, State::Exited, 2),
        ]);
        o.waiting.insert(
            "a".into(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container=a pod=p_d(u)".into(),
            },
        );
        let s = build(&p, &o, t(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.restart_count, 1);
        assert_eq!(
            a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.container_id.as_deref()),
            (2, Some("containerd://c2"))
        );
    }

    #[test]
    fn finished_pods_succeed_or_fail_by_policy() {
        let p = pod(json!({"restartPolicy": "Never", "containers": [{"name": "a"}, {"name": "b"}]}));
        let s = build(
            &p,
            &observed(vec![
                run("a", "1", 0, State::Exited, 0),
                run("b", "2", 0, State::Exited, 0),
            ]),
            t(5),
        );
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(condition(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(condition(&s, "Initialized").reason.as_deref(), Some("PodCompleted"));
        let s = build(
            &p,
            &observed(vec![
                run("a", "1", 0, State::Exited, 0),
                run("b", "2", 0, State::Exited, 1),
            ]),
            t(5),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let b = &s.container_statuses.as_ref().unwrap()[1];
        assert_eq!(
            b.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(),
            Some("Error")
        );
        let on_failure = pod(json!({"restartPolicy": "OnFailure", "containers": [{"name": "a"}]}));
        let s = build(&on_failure, &observed(vec![run("a", "1", 0, State::Exited, 1)]), t(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn start_failures_wait_only_when_the_container_restarts() {
        let mut failed = run("a", "1", 0, State::Exited, 128);
        failed.reason = "StartError".into();
        let why = Waiting {
            reason: "RunContainerError".into(),
            message: "exec: no such file".into(),
        };
        let never = pod(json!({"restartPolicy": "Never", "containers": [{"name": "a"}]}));
        let mut o = observed(vec![failed.clone()]);
        o.waiting.insert("a".into(), why.clone());
        let s = build(&never, &o, t(5));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(),
            Some("StartError")
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let always = pod(json!({"containers": [{"name": "a"}]}));
        let s = build(&always, &o, t(5));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
            Some("RunContainerError")
        );
        assert_eq!(
            a.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code,
            128
        );
    }

    #[test]
    fn init_containers_hold_the_pod_in_pending() {
        let p = pod(json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}));
        let s = build(&p, &observed(vec![run("i1", "1", 0, State::Running, 0)]), t(5));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = condition(&s, "Initialized");
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
            Some("PodInitializing")
        );
        let never =
            pod(json!({"restartPolicy": "Never", "initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}));
        let s = build(&never, &observed(vec![run("i1", "1", 0, State::Exited, 3)]), t(5));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }
}
