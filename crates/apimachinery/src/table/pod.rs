//! The pod printer, whose STATUS and RESTARTS cells condense the pod's and
//! its containers' states the way upstream's `printPod` does.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::cells::{age, get, int_at, list_at, name, opt_bool, or, since, str_at, time_at};
use super::{AGE, Column, NAME, Printer, docs};

const COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::string("Status", "The aggregate status of the containers in this pod."),
    Column::string(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::string("IP", docs::POD_IP).wide(),
    Column::string("Node", docs::POD_NODE_NAME).wide(),
    Column::string("Nominated Node", docs::POD_NOMINATED_NODE).wide(),
    Column::string("Readiness Gates", docs::POD_READINESS_GATES).wide(),
];

pub(super) const PRINTER: Printer = Printer {
    columns: COLUMNS,
    cells,
    conditions,
};

fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let status = Summary::of(pod);
    let restarts = match status.last_restart {
        Some(at) if status.restarts != 0 => format!("{} ({} ago)", status.restarts, since(Some(at), now)),
        _ => status.restarts.to_string(),
    };
    vec![
        name(pod).into(),
        format!("{}/{}", status.ready, status.total).into(),
        status.reason.into(),
        restarts.into(),
        age(pod, now).into(),
        pod_ip(pod).into(),
        or(str_at(pod, &["spec", "nodeName"]), "<none>").into(),
        or(str_at(pod, &["status", "nominatedNodeName"]), "<none>").into(),
        readiness_gates(pod).into(),
    ]
}

/// A succeeded or failed pod's row is marked `Completed`.
fn conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match phase(pod) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

/// `status.phase`; upstream's create strategy sets `Pending` on every new pod.
fn phase(pod: &Value) -> &str {
    match str_at(pod, &["status", "phase"]) {
        "" => "Pending",
        phase => phase,
    }
}

/// What the READY, STATUS and RESTARTS cells condense.
#[derive(Debug)]
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

impl Summary {
    fn of(pod: &Value) -> Self {
        let mut summary = Summary {
            ready: 0,
            total: list_at(pod, &["spec", "containers"]).len() + restartable_init_containers(pod),
            reason: initial_reason(pod),
            restarts: 0,
            last_restart: None,
        };
        let sidecars = summary.init_containers(pod);
        if !sidecars.initializing || condition_is_true(pod, "Initialized") {
            summary.restarts = sidecars.restarts;
            summary.last_restart = sidecars.last_restart;
            summary.containers(pod);
        }
        summary.terminating(pod);
        summary
    }

    /// Walks the init containers until the first one not done; returns
    /// the restarts of the restartable (sidecar) ones, which count even once
    /// the pod is initialized.
    fn init_containers(&mut self, pod: &Value) -> Sidecars {
        let declared = list_at(pod, &["spec", "initContainers"]);
        let mut sidecars = Sidecars::default();
        for (i, container) in list_at(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
            let restarts = int_at(container, &["restartCount"]);
            let finished = last_termination(container);
            self.restarts += restarts;
            self.last_restart = latest(self.last_restart, finished);
            let restartable = declared
                .iter()
                .find(|c| str_at(c, &["name"]) == str_at(container, &["name"]))
                .is_some_and(is_restartable);
            if restartable {
                sidecars.restarts += restarts;
                sidecars.last_restart = latest(sidecars.last_restart, finished);
            }
            let terminated = get(container, &["state", "terminated"]).filter(|t| t.is_object());
            let waiting_reason = str_at(container, &["state", "waiting", "reason"]);
            if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
                continue;
            }
            if restartable && opt_bool(container, &["started"]) == Some(true) {
                self.ready += usize::from(opt_bool(container, &["ready"]) == Some(true));
                continue;
            }
            self.reason = match terminated {
                Some(terminated) => format!("Init:{}", termination_reason(terminated)),
                None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                    format!("Init:{waiting_reason}")
                }
                None => format!("Init:{i}/{}", declared.len()),
            };
            sidecars.initializing = true;
            break;
        }
        sidecars
    }

    /// The regular containers, last first: the first one's state wins.
    fn containers(&mut self, pod: &Value) {
        let mut has_running = false;
        for container in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
            self.restarts += int_at(container, &["restartCount"]);
            self.last_restart = latest(self.last_restart, last_termination(container));
            let waiting_reason = str_at(container, &["state", "waiting", "reason"]);
            let terminated = get(container, &["state", "terminated"]).filter(|t| t.is_object());
            if !waiting_reason.is_empty() {
                self.reason = waiting_reason.to_string();
            } else if let Some(terminated) = terminated {
                self.reason = termination_reason(terminated);
            } else if opt_bool(container, &["ready"]) == Some(true)
                && get(container, &["state", "running"]).is_some_and(Value::is_object)
            {
                has_running = true;
                self.ready += 1;
            }
        }
        if self.reason == "Completed" && has_running {
            self.reason = if condition_is_true(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    fn terminating(&mut self, pod: &Value) {
        if !super::cells::is_deleting(pod) {
            return;
        }
        if str_at(pod, &["status", "reason"]) == "NodeLost" {
            self.reason = "Unknown".into();
        } else if !matches!(phase(pod), "Failed" | "Succeeded") {
            self.reason = "Terminating".into();
        }
    }
}

#[derive(Debug, Default)]
struct Sidecars {
    initializing: bool,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

/// The phase, or the pod's reason if it has one, or `SchedulingGated`.
fn initial_reason(pod: &Value) -> String {
    let gated = list_at(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated");
    if gated {
        return "SchedulingGated".into();
    }
    or(str_at(pod, &["status", "reason"]), phase(pod))
}

/// A terminated state's reason, else `Signal:N` or `ExitCode:N`.
fn termination_reason(terminated: &Value) -> String {
    match str_at(terminated, &["reason"]) {
        "" if int_at(terminated, &["signal"]) != 0 => format!("Signal:{}", int_at(terminated, &["signal"])),
        "" => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
        reason => reason.to_string(),
    }
}

/// An init container with `restartPolicy: Always` (a sidecar).
fn is_restartable(container: &Value) -> bool {
    str_at(container, &["restartPolicy"]) == "Always"
}

fn restartable_init_containers(pod: &Value) -> usize {
    list_at(pod, &["spec", "initContainers"])
        .iter()
        .filter(|c| is_restartable(c))
        .count()
}

fn last_termination(container: &Value) -> Option<Timestamp> {
    time_at(container, &["lastState", "terminated", "finishedAt"])
}

fn latest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

/// The status of the first condition of type `type_` is `True`.
fn condition_is_true(pod: &Value, type_: &str) -> bool {
    list_at(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// The first pod IP; `podIP` stands in for `podIPs` as upstream's conversion does.
fn pod_ip(pod: &Value) -> String {
    let first = list_at(pod, &["status", "podIPs"])
        .first()
        .map_or("", |ip| str_at(ip, &["ip"]));
    let ip = if first.is_empty() {
        str_at(pod, &["status", "podIP"])
    } else {
        first
    };
    or(ip, "<none>")
}

/// `true/total` readiness gates, `<none>` without any.
fn readiness_gates(pod: &Value) -> String {
    let gates = list_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".into();
    }
    let passed = gates
        .iter()
        .filter(|gate| condition_is_true(pod, str_at(gate, &["conditionType"])))
        .count();
    format!("{passed}/{}", gates.len())
}
