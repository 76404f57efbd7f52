//! batch/v1 (`pkg/apis/batch/v1/defaults.go`).

use super::{
    Obj, child, is_unset, items, labels_from_template, pod, present, set_if_empty, set_if_unset, template_labels,
};

pub(super) fn apply(kind: &str, object: &mut Obj) {
    match kind {
        "Job" => job(object),
        "CronJob" => cron_job(object),
        _ => {}
    }
}

/// `SetDefaults_Job`, then the template's pod spec.
fn job(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    job_spec(spec);
    let labels = present(spec, "template").and_then(|template| template_labels(template));
    pod::template(spec, "template");
    labels_from_template(object, labels.as_ref());
}

fn job_spec(spec: &mut Obj) {
    // A non-parallel job may leave both unset; then both are 1.
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        spec.insert("completions".into(), 1.into());
    }
    set_if_unset(spec, "parallelism", 1);
    // With per-index limits the global limit is effectively off.
    let backoff_limit = if is_unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX
    };
    set_if_unset(spec, "backoffLimit", backoff_limit);
    set_if_unset(spec, "completionMode", "NonIndexed");
    set_if_unset(spec, "suspend", false);
    let has_failure_policy = present(spec, "podFailurePolicy").is_some();
    if let Some(policy) = present(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                set_if_empty(pattern, "status", "True");
            }
        }
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_if_unset(spec, "podReplacementPolicy", replacement);
    set_if_unset(spec, "manualSelector", false);
}

/// `SetDefaults_CronJob`. The job template's spec gets only its pod spec
/// defaulted, not `SetDefaults_Job`: upstream defaults Job objects, and a
/// `JobTemplateSpec` is not one.
fn cron_job(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set_if_empty(spec, "concurrencyPolicy", "Allow");
    set_if_unset(spec, "suspend", false);
    set_if_unset(spec, "successfulJobsHistoryLimit", 3);
    set_if_unset(spec, "failedJobsHistoryLimit", 1);
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|template| child(template, "spec")) {
        pod::template(job_spec, "template");
    }
}
