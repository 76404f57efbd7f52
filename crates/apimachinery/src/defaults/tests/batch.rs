use serde_json::json;

use super::{Case, check_all, with_pod_spec_defaults};

/// The Job spec fields upstream always defaults for a plain job.
fn job_spec_defaults() -> serde_json::Value {
    json!({
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "manualSelector": false,
        "podReplacementPolicy": "TerminatingOrFailed",
        "suspend": false,
    })
}

fn merged(base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut base = base;
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

#[test]
fn job() {
    let template = json!({"metadata": {}, "spec": {
        "containers": [{"name": "pi", "image": "perl:5.34.0", "command": ["perl"], "resources": {}}],
        "restartPolicy": "Never",
    }});
    let defaulted_template = json!({"metadata": {}, "spec": with_pod_spec_defaults(json!({
        "containers": [{
            "name": "pi", "image": "perl:5.34.0", "command": ["perl"], "imagePullPolicy": "IfNotPresent",
            "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        }],
        "restartPolicy": "Never",
    }))});
    let empty_template = json!({"spec": with_pod_spec_defaults(json!({}))});
    check_all(
        "batch/v1",
        "Job",
        vec![
            Case {
                name: "kubectl create job pi --image=perl:5.34.0 -- perl",
                before: json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                    "spec": {"template": template}, "status": {}}),
                after: json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                    "spec": merged(job_spec_defaults(), json!({
                        "completions": 1, "parallelism": 1, "template": defaulted_template,
                    })),
                    "status": {}}),
            },
            Case {
                name: "a work queue: parallelism without completions",
                before: json!({"spec": {"parallelism": 3}}),
                after: json!({"spec": merged(job_spec_defaults(), json!({"parallelism": 3, "template": empty_template}))}),
            },
            Case {
                name: "completions without parallelism",
                before: json!({"spec": {"completions": 5}}),
                after: json!({"spec": merged(job_spec_defaults(), json!({
                    "completions": 5, "parallelism": 1, "template": empty_template,
                }))}),
            },
            Case {
                name: "per-index backoff lifts the global limit",
                before: json!({"spec": {"completions": 4, "parallelism": 2, "completionMode": "Indexed",
                    "backoffLimitPerIndex": 1}}),
                after: json!({"spec": merged(job_spec_defaults(), json!({
                    "completions": 4, "parallelism": 2, "completionMode": "Indexed", "backoffLimitPerIndex": 1,
                    "backoffLimit": 2147483647, "template": empty_template,
                }))}),
            },
            Case {
                name: "a pod failure policy replaces only failed pods",
                before: json!({"spec": {"backoffLimit": 0, "suspend": true, "podFailurePolicy": {"rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}, {"type": "X", "status": "False"}]},
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                ]}}}),
                after: json!({"spec": merged(job_spec_defaults(), json!({
                    "backoffLimit": 0, "suspend": true, "completions": 1, "parallelism": 1,
                    "podReplacementPolicy": "Failed",
                    "podFailurePolicy": {"rules": [
                        {"action": "Ignore", "onPodConditions": [
                            {"type": "DisruptionTarget", "status": "True"}, {"type": "X", "status": "False"},
                        ]},
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                    ]},
                    "template": empty_template,
                }))}),
            },
            Case {
                name: "labels from the template",
                before: json!({"metadata": {"name": "j"}, "spec": {"manualSelector": true,
                    "podReplacementPolicy": "Failed", "template": {"metadata": {"labels": {"app": "batch"}}}}}),
                after: json!({"metadata": {"name": "j", "labels": {"app": "batch"}}, "spec": merged(job_spec_defaults(), json!({
                    "completions": 1, "parallelism": 1, "manualSelector": true, "podReplacementPolicy": "Failed",
                    "template": {"metadata": {"labels": {"app": "batch"}}, "spec": with_pod_spec_defaults(json!({}))},
                }))}),
            },
        ],
    );
}

#[test]
fn cron_job() {
    check_all(
        "batch/v1",
        "CronJob",
        vec![
            Case {
                name: "kubectl create cronjob hello --image=busybox --schedule='*/1 * * * *'",
                before: json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"}, "spec": {
                    "schedule": "*/1 * * * *",
                    "jobTemplate": {"metadata": {"name": "hello"}, "spec": {"template": {"metadata": {}, "spec": {
                        "containers": [{"name": "hello", "image": "busybox", "resources": {}}],
                        "restartPolicy": "OnFailure",
                    }}}},
                }, "status": {}}),
                after: json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"}, "spec": {
                    "concurrencyPolicy": "Allow",
                    "failedJobsHistoryLimit": 1,
                    "schedule": "*/1 * * * *",
                    "successfulJobsHistoryLimit": 3,
                    "suspend": false,
                    "jobTemplate": {"metadata": {"name": "hello"}, "spec": {"template": {"metadata": {}, "spec":
                        with_pod_spec_defaults(json!({
                            "containers": [{
                                "name": "hello", "image": "busybox", "imagePullPolicy": "Always", "resources": {},
                                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                            }],
                            "restartPolicy": "OnFailure",
                        }))}}},
                }, "status": {}}),
            },
            Case {
                name: "explicit settings are kept",
                before: json!({"spec": {"concurrencyPolicy": "Forbid", "suspend": true,
                    "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0}}),
                after: json!({"spec": {"concurrencyPolicy": "Forbid", "suspend": true,
                    "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0,
                    "jobTemplate": {"spec": {"template": {"spec": with_pod_spec_defaults(json!({}))}}}}}),
            },
        ],
    );
}
