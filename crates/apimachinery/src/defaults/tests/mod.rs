//! Table-driven tests: typical objects as clients send them, and the
//! defaulted form upstream stores (and `kubectl get -o yaml` shows).

mod apps;
mod batch;
mod core_api;
mod other;
mod robustness;

use serde_json::Value;

use super::apply_defaults;
use crate::registry::split_api_version;

/// One defaulting case: `before` must default to exactly `after`.
struct Case {
    name: &'static str,
    before: Value,
    after: Value,
}

/// Runs every case of a table for one kind, checking each result and that
/// defaulting the result again changes nothing.
fn check_all(api_version: &str, kind: &str, cases: Vec<Case>) {
    for case in cases {
        let got = defaulted(api_version, kind, case.before);
        assert_eq!(
            got,
            case.after,
            "{kind} case {:?}:\n got: {}\nwant: {}",
            case.name,
            pretty(&got),
            pretty(&case.after)
        );
        let again = defaulted(api_version, kind, got.clone());
        assert_eq!(again, got, "{kind} case {:?} is not idempotent", case.name);
    }
}

fn defaulted(api_version: &str, kind: &str, mut object: Value) -> Value {
    let (group, version) = split_api_version(api_version);
    apply_defaults(group, version, kind, &mut object);
    object
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The pod spec fields `SetDefaults_PodSpec` adds, merged into `spec`.
fn with_pod_spec_defaults(mut spec: Value) -> Value {
    let defaults = serde_json::json!({
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    });
    if let (Some(spec), Some(defaults)) = (spec.as_object_mut(), defaults.as_object()) {
        for (key, value) in defaults {
            spec.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    spec
}
