//! Printers for workloads: `apps`, `batch`, `autoscaling` and `policy`.

use jiff::Timestamp;
use serde_json::Value;

use super::cells::{
    age, bool_at, containers, format_label_selector, format_labels, get, go_bool, human_duration, int_at,
    int_or_string, list_at, map_at, name, opt_bool, opt_int, opt_str, selector_string, since, str_at, time_at,
};
use super::core_api::desired_replicas;
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, docs, quantity};

pub(super) fn printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "ReplicaSet" => Printer::new(REPLICA_SET, replica_set),
        "DaemonSet" => Printer::new(DAEMON_SET, daemon_set),
        "StatefulSet" => Printer::new(STATEFUL_SET, stateful_set),
        "Deployment" => Printer::new(DEPLOYMENT, deployment),
        "ControllerRevision" => Printer::new(CONTROLLER_REVISION, controller_revision),
        "Job" => Printer::new(JOB, job),
        "CronJob" => Printer::new(CRON_JOB, cron_job),
        "HorizontalPodAutoscaler" => Printer::new(HPA, horizontal_pod_autoscaler),
        "PodDisruptionBudget" => Printer::new(PDB, pod_disruption_budget),
        "Scale" => Printer::new(SCALE, scale),
        _ => return None,
    })
}

/// The wide CONTAINERS and IMAGES cells of a pod template at `path`.
fn template_cells(obj: &Value, path: &[&str]) -> [Value; 2] {
    let (names, images) = containers(get(obj, path));
    [names.into(), images.into()]
}

const REPLICA_SET: &[Column] = &[
    NAME,
    Column::integer("Desired", docs::RS_SPEC_REPLICAS),
    Column::integer("Current", docs::RS_STATUS_REPLICAS),
    Column::integer("Ready", docs::RS_STATUS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::RS_SPEC_SELECTOR).wide(),
];

fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
    ];
    cells.extend(template_cells(obj, &["spec", "template", "spec"]));
    cells.push(format_label_selector(get(obj, &["spec", "selector"])).into());
    cells
}

const DAEMON_SET: &[Column] = &[
    NAME,
    Column::integer("Desired", docs::DS_DESIRED),
    Column::integer("Current", docs::DS_CURRENT),
    Column::integer("Ready", docs::DS_READY),
    Column::integer("Up-to-date", docs::DS_UPDATED),
    Column::integer("Available", docs::DS_AVAILABLE),
    Column::string("Node Selector", docs::POD_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::DS_SELECTOR).wide(),
];

fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let status = |field: &str| Value::from(int_at(obj, &["status", field]));
    let mut cells = vec![
        name(obj).into(),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        format_labels(map_at(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now).into(),
    ];
    cells.extend(template_cells(obj, &["spec", "template", "spec"]));
    cells.push(format_label_selector(get(obj, &["spec", "selector"])).into());
    cells
}

const STATEFUL_SET: &[Column] = &[
    NAME,
    Column::string("Ready", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(obj, &["status", "readyReplicas"]),
        desired_replicas(obj)
    );
    let mut cells = vec![name(obj).into(), ready.into(), age(obj, now).into()];
    cells.extend(template_cells(obj, &["spec", "template", "spec"]));
    cells
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    Column::string("Ready", "Number of the pod with ready state"),
    Column::string("Up-to-date", docs::DEPLOY_UPDATED),
    Column::string("Available", docs::DEPLOY_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::DEPLOY_SELECTOR).wide(),
];

fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(obj, &["status", "readyReplicas"]),
        desired_replicas(obj)
    );
    let selector = selector_string(get(obj, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".into());
    let mut cells = vec![
        name(obj).into(),
        ready.into(),
        int_at(obj, &["status", "updatedReplicas"]).into(),
        int_at(obj, &["status", "availableReplicas"]).into(),
        age(obj, now).into(),
    ];
    cells.extend(template_cells(obj, &["spec", "template", "spec"]));
    cells.push(selector.into());
    cells
}

const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    Column::string("Controller", "Controller of the object"),
    Column::string("Revision", docs::CONTROLLER_REVISION),
    AGE,
];

fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|owner| bool_at(owner, &["controller"]))
        .map_or_else(|| "<none>".to_string(), controller_name);
    vec![
        name(obj).into(),
        controller.into(),
        int_at(obj, &["revision"]).into(),
        age(obj, now).into(),
    ]
}

/// `kind.group/name` in lower case (`daemonset.apps/fluentd`), as upstream's
/// `formatResourceName`.
fn controller_name(owner: &Value) -> String {
    let owner_name = str_at(owner, &["name"]);
    let group = match str_at(owner, &["apiVersion"]).split('/').collect::<Vec<_>>()[..] {
        [_version] => "",
        [group, _version] => group,
        _ => return owner_name.to_string(),
    };
    let kind = str_at(owner, &["kind"]);
    let group_kind = match (group, kind) {
        ("", "") => return owner_name.to_string(),
        ("", kind) => kind.to_string(),
        (group, kind) => format!("{kind}.{group}"),
    };
    format!("{}/{owner_name}", group_kind.to_lowercase())
}

const JOB: &[Column] = &[
    NAME,
    Column::string("Status", "Status of the job."),
    Column::string("Completions", docs::JOB_SUCCEEDED),
    Column::string("Duration", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::JOB_SELECTOR).wide(),
];

fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        name(obj).into(),
        job_status(obj).into(),
        job_completions(obj).into(),
        job_duration(obj, now).into(),
        age(obj, now).into(),
    ];
    cells.extend(template_cells(obj, &["spec", "template", "spec"]));
    cells.push(format_label_selector(get(obj, &["spec", "selector"])).into());
    cells
}

/// `succeeded/completions`, or for a work-queue job `succeeded/1 of parallelism`.
fn job_completions(obj: &Value) -> String {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    if let Some(completions) = opt_int(obj, &["spec", "completions"]) {
        return format!("{succeeded}/{completions}");
    }
    match opt_int(obj, &["spec", "parallelism"]).unwrap_or(0) {
        parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
        _ => format!("{succeeded}/1"),
    }
}

/// From start to completion, or to now while running; empty before it starts.
fn job_duration(obj: &Value, now: Timestamp) -> String {
    let Some(start) = time_at(obj, &["status", "startTime"]) else {
        return String::new();
    };
    let end = time_at(obj, &["status", "completionTime"]).unwrap_or(now);
    human_duration(end.duration_since(start))
}

fn job_status(obj: &Value) -> &'static str {
    let conditions = list_at(obj, &["status", "conditions"]);
    let has = |type_: &str| {
        conditions
            .iter()
            .find(|c| str_at(c, &["type"]) == type_)
            .is_some_and(|c| str_at(c, &["status"]) == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if super::cells::is_deleting(obj) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

const CRON_JOB: &[Column] = &[
    NAME,
    Column::string("Schedule", docs::CRON_SCHEDULE),
    Column::string("Timezone", docs::CRON_TIME_ZONE),
    Column::boolean("Suspend", docs::CRON_SUSPEND),
    Column::integer("Active", docs::CRON_ACTIVE),
    Column::string("Last Schedule", docs::CRON_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::JOB_SELECTOR).wide(),
];

fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match get(obj, &["status", "lastScheduleTime"]) {
        Some(v) if !v.is_null() => since(time_at(v, &[]), now),
        _ => "<none>".into(),
    };
    // Upstream's defaulting sets an absent `suspend` to false.
    let suspend = go_bool(opt_bool(obj, &["spec", "suspend"]).unwrap_or(false));
    let job_spec = &["spec", "jobTemplate", "spec"];
    let mut cells = vec![
        name(obj).into(),
        str_at(obj, &["spec", "schedule"]).into(),
        opt_str(obj, &["spec", "timeZone"]).unwrap_or("<none>").into(),
        suspend.into(),
        super::cells::len_at(obj, &["status", "active"]).into(),
        last_schedule.into(),
        age(obj, now).into(),
    ];
    cells.extend(template_cells(
        obj,
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ));
    let selector = get(obj, job_spec).and_then(|spec| spec.get("selector"));
    cells.push(format_label_selector(selector).into());
    cells
}

const HPA: &[Column] = &[
    NAME,
    Column::string("Reference", docs::HPA_SCALE_TARGET),
    Column::string("Targets", docs::HPA_METRICS),
    Column::string("MinPods", docs::HPA_MIN_REPLICAS),
    Column::string("MaxPods", docs::HPA_MAX_REPLICAS),
    Column::string("Replicas", docs::HPA_CURRENT_REPLICAS),
    AGE,
];

fn horizontal_pod_autoscaler(obj: &Value, now: Timestamp) -> Vec<Value> {
    let target = get(obj, &["spec", "scaleTargetRef"]).unwrap_or(&Value::Null);
    let reference = format!("{}/{}", str_at(target, &["kind"]), str_at(target, &["name"]));
    // Upstream's defaulting sets an absent `minReplicas` to 1.
    let min_pods = opt_int(obj, &["spec", "minReplicas"]).unwrap_or(1);
    vec![
        name(obj).into(),
        reference.into(),
        hpa::targets(obj).into(),
        min_pods.to_string().into(),
        int_at(obj, &["spec", "maxReplicas"]).into(),
        int_at(obj, &["status", "currentReplicas"]).into(),
        age(obj, now).into(),
    ]
}

/// The TARGETS cell: `current/target` for each metric.
mod hpa {
    use serde_json::{Value, json};

    use super::quantity::{format as quantity, format_ptr as quantity_ptr};
    use crate::table::cells::{get, list_at, opt_int, str_at};

    /// The first two metrics, then `+ N more...`; `<none>` without metrics.
    pub(super) fn targets(obj: &Value) -> String {
        let (specs, statuses) = metrics(obj);
        if specs.is_empty() {
            return "<none>".into();
        }
        let list: Vec<String> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| metric(spec, statuses.get(i)))
            .collect();
        if list.len() > 2 {
            return format!("{} + {} more...", list[..2].join(", "), list.len() - 2);
        }
        list.join(", ")
    }

    /// `spec.metrics` and `status.currentMetrics`, or their `autoscaling/v1`
    /// CPU-utilization form; with neither, upstream's default of 80% CPU.
    fn metrics(obj: &Value) -> (Vec<Value>, Vec<Value>) {
        let specs = list_at(obj, &["spec", "metrics"]).to_vec();
        let statuses = list_at(obj, &["status", "currentMetrics"]).to_vec();
        if !specs.is_empty() {
            return (specs, statuses);
        }
        let target = opt_int(obj, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
        let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"averageUtilization": target}}});
        let statuses = match opt_int(obj, &["status", "currentCPUUtilizationPercentage"]) {
            Some(current) => {
                vec![json!({"type": "Resource", "resource": {"current": {"averageUtilization": current}}})]
            }
            None => statuses,
        };
        (vec![spec], statuses)
    }

    fn metric(spec: &Value, status: Option<&Value>) -> String {
        let type_ = str_at(spec, &["type"]);
        let source = match type_ {
            "External" => "external",
            "Pods" => "pods",
            "Object" => "object",
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            _ => return "<unknown type>".into(),
        };
        let spec = get(spec, &[source]).unwrap_or(&Value::Null);
        let status = status.and_then(|s| get(s, &[source])).filter(|s| !s.is_null());
        match type_ {
            "Pods" => format!(
                "{}/{}",
                current(status, "averageValue"),
                quantity_ptr(target(spec, "averageValue"))
            ),
            "Resource" | "ContainerResource" => resource_metric(spec, status),
            _ => value_metric(spec, status),
        }
    }

    fn target<'a>(spec: &'a Value, field: &str) -> Option<&'a Value> {
        get(spec, &["target", field]).filter(|v| !v.is_null())
    }

    /// The status's current `field` as a quantity; `<unknown>` without a status.
    fn current(status: Option<&Value>, field: &str) -> String {
        status.map_or_else(|| "<unknown>".into(), |s| quantity_ptr(get(s, &["current", field])))
    }

    /// External and Object metrics: an average value, else a total value.
    fn value_metric(spec: &Value, status: Option<&Value>) -> String {
        if let Some(average) = target(spec, "averageValue") {
            let current = match status.and_then(|s| get(s, &["current", "averageValue"])) {
                Some(v) if !v.is_null() => quantity(Some(v)),
                _ => "<unknown>".into(),
            };
            return format!("{current}/{} (avg)", quantity(Some(average)));
        }
        format!("{}/{}", current(status, "value"), quantity_ptr(target(spec, "value")))
    }

    /// `cpu: 40%/80%`, or `memory: 100Mi/200Mi` for an average-value target.
    fn resource_metric(spec: &Value, status: Option<&Value>) -> String {
        let resource = str_at(spec, &["name"]);
        if let Some(average) = target(spec, "averageValue") {
            return format!(
                "{resource}: {}/{}",
                current(status, "averageValue"),
                quantity(Some(average))
            );
        }
        let current = status
            .and_then(|s| opt_int(s, &["current", "averageUtilization"]))
            .map_or_else(|| "<unknown>".into(), |u| format!("{u}%"));
        let target =
            opt_int(spec, &["target", "averageUtilization"]).map_or_else(|| "<auto>".into(), |u| format!("{u}%"));
        format!("{resource}: {current}/{target}")
    }
}

const PDB: &[Column] = &[
    NAME,
    Column::string("Min Available", "The minimum number of pods that must be available."),
    Column::string("Max Unavailable", "The maximum number of pods that may be unavailable."),
    Column::integer(
        "Allowed Disruptions",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

fn pod_disruption_budget(obj: &Value, now: Timestamp) -> Vec<Value> {
    let bound = |field: &str| int_or_string(get(obj, &["spec", field])).unwrap_or_else(|| "N/A".into());
    vec![
        name(obj).into(),
        bound("minAvailable").into(),
        bound("maxUnavailable").into(),
        int_at(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now).into(),
    ]
}

const SCALE: &[Column] = &[
    Column::string("Name", docs::META_NAME),
    Column::integer("Desired", docs::SCALE_SPEC_REPLICAS),
    Column::integer("Available", docs::SCALE_STATUS_REPLICAS),
    AGE,
];

/// An `autoscaling/v1` `Scale` (the `scale` subresource).
fn scale(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        int_at(obj, &["spec", "replicas"]).into(),
        int_at(obj, &["status", "replicas"]).into(),
        age(obj, now).into(),
    ]
}
