mod events;
mod hpa;

use serde_json::{Value, json};

use super::*;

const V1: (&str, &str) = AUTOSCALING_V1;
const V2: (&str, &str) = AUTOSCALING_V2;

fn hpa(object: &Value, from: (&str, &str), to: (&str, &str)) -> Value {
    convert(object, from, to, HPA).unwrap()
}

fn event(object: &Value, from: (&str, &str), to: (&str, &str)) -> Value {
    convert(object, from, to, EVENT).unwrap()
}

#[test]
fn storage_versions_are_upstreams() {
    assert_eq!(
        storage_version("autoscaling", "horizontalpodautoscalers"),
        Some(("autoscaling", "v2"))
    );
    assert_eq!(storage_version("", "events"), Some(("", "v1")));
    assert_eq!(storage_version("events.k8s.io", "events"), Some(("", "v1")));
    assert_eq!(storage_version("apps", "deployments"), None);
    assert_eq!(storage_version("autoscaling", "events"), None);
}

#[test]
fn equal_versions_only_set_the_api_version() {
    let object = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"weird": [1, 2]}});
    let out = convert(&object, CORE_V1, CORE_V1, "Pod").unwrap();
    let mut expected = object.clone();
    expected["apiVersion"] = json!("v1");
    assert_eq!(out, expected);
    let out = convert(&object, ("apps", "v1"), ("apps", "v1"), "Deployment").unwrap();
    assert_eq!(out["apiVersion"], "apps/v1");
}

#[test]
fn unknown_conversions_are_refused() {
    let object = json!({"metadata": {"name": "x"}});
    let err = convert(&object, ("apps", "v1"), ("apps", "v2"), "Deployment").unwrap_err();
    assert_eq!(
        err,
        ConversionError::Unsupported {
            kind: "Deployment".into(),
            from: "apps/v1".into(),
            to: "apps/v2".into()
        }
    );
    assert!(convert(&object, V1, EVENTS_V1, HPA).is_err());
    assert!(convert(&object, V1, V2, EVENT).is_err());
    assert!(convert(&object, CORE_V1, EVENTS_V1, HPA).is_err());
}

#[test]
fn non_objects_are_refused() {
    for junk in [json!(null), json!(1), json!("hpa"), json!([{}])] {
        for (from, to, kind) in [(V1, V2, HPA), (V2, V1, HPA), (V2, V2, HPA), (CORE_V1, EVENTS_V1, EVENT)] {
            let err = convert(&junk, from, to, kind).unwrap_err();
            assert!(matches!(err, ConversionError::Malformed { .. }), "{err}");
        }
    }
}

/// Whatever JSON sits wherever, conversion returns (an error or an object)
/// and does not panic.
#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(4294967296_i64),
        json!(""),
        json!("x"),
        json!([]),
        json!([null, 1, "a", {}]),
        json!({}),
        json!({"type": 1, "resource": [], "pods": "x"}),
    ];
    let pairs = [
        (V1, V2, HPA),
        (V2, V1, HPA),
        (V2, V2, HPA),
        (CORE_V1, EVENTS_V1, EVENT),
        (EVENTS_V1, CORE_V1, EVENT),
    ];
    let paths: [&[&str]; 14] = [
        &["metadata"],
        &["metadata", "annotations"],
        &["metadata", "annotations", super::hpa::METRICS],
        &["metadata", "annotations", super::hpa::BEHAVIOR],
        &["spec"],
        &["spec", "metrics"],
        &["spec", "behavior"],
        &["spec", "targetCPUUtilizationPercentage"],
        &["status"],
        &["status", "currentMetrics"],
        &["status", "conditions"],
        &["involvedObject"],
        &["regarding"],
        &["deprecatedCount"],
    ];
    for value in &junk {
        for path in paths {
            let object = nest(path, value.clone());
            for (from, to, kind) in pairs {
                let _ = convert(&object, from, to, kind);
            }
        }
        let annotated = nest(
            &["metadata", "annotations"],
            json!({ super::hpa::METRICS: value.to_string() }),
        );
        let _ = convert(&annotated, V1, V2, HPA);
    }
}

fn nest(path: &[&str], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, key| json!({ *key: inner }))
}
