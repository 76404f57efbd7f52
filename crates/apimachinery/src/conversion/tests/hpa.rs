use serde_json::{Value, json};

use super::super::hpa::{BEHAVIOR, CONDITIONS, CURRENT_METRICS, METRICS};
use super::{V1, V2, hpa};
use crate::conversion::{ConversionError, HPA, convert};

const TIME: &str = "2024-05-01T09:00:00Z";

fn cpu_utilization(percent: i32) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn ingress() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main-route"})
}

/// A v2 HPA as upstream stores it: the walkthrough's multi-metric example.
fn stored_v2() -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "php-apache", "namespace": "default", "annotations": {"team": "web"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {"type": "Pods", "pods": {
                    "metric": {"name": "packets-per-second"},
                    "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "Object", "object": {
                    "metric": {"name": "requests-per-second"},
                    "describedObject": ingress(),
                    "target": {"type": "Value", "value": "10k"}}},
                {"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "lastScaleTime": "2024-05-01T10:00:00Z",
            "currentReplicas": 1,
            "desiredReplicas": 1,
            "currentMetrics": [
                {"type": "Pods", "pods": {
                    "metric": {"name": "packets-per-second"}, "current": {"averageValue": "866m"}}},
                {"type": "Object", "object": {
                    "metric": {"name": "requests-per-second"},
                    "describedObject": ingress(),
                    "current": {"value": "2k"}}},
                {"type": "Resource", "resource": {
                    "name": "cpu", "current": {"averageValue": "1m", "averageUtilization": 0}}},
            ],
            "conditions": [
                {"type": "AbleToScale", "status": "True", "lastTransitionTime": TIME,
                 "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                {"type": "ScalingLimited", "status": "False", "lastTransitionTime": TIME,
                 "reason": "DesiredWithinRange", "message": "the desired count is within the acceptable range"},
            ],
        },
    })
}

const METRICS_JSON: &str = concat!(
    r#"[{"type":"Pods","pods":{"metricName":"packets-per-second","targetAverageValue":"1k"}},"#,
    r#"{"type":"Object","object":{"#,
    r#""target":{"kind":"Ingress","name":"main-route","apiVersion":"networking.k8s.io/v1"},"#,
    r#""metricName":"requests-per-second","targetValue":"10k"}}]"#
);
const CURRENT_METRICS_JSON: &str = concat!(
    r#"[{"type":"Pods","pods":{"metricName":"packets-per-second","currentAverageValue":"866m"}},"#,
    r#"{"type":"Object","object":{"#,
    r#""target":{"kind":"Ingress","name":"main-route","apiVersion":"networking.k8s.io/v1"},"#,
    r#""metricName":"requests-per-second","currentValue":"2k"}},"#,
    r#"{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":0,"currentAverageValue":"1m"}}]"#
);
const BEHAVIOR_JSON: &str = concat!(
    r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":"#,
    r#"[{"Type":"Pods","Value":4,"PeriodSeconds":15},{"Type":"Percent","Value":100,"PeriodSeconds":15}],"#,
    r#""Tolerance":null},"#,
    r#""ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Max","Policies":"#,
    r#"[{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null}}"#
);
const CONDITIONS_JSON: &str = concat!(
    r#"[{"type":"AbleToScale","status":"True","lastTransitionTime":"2024-05-01T09:00:00Z","#,
    r#""reason":"ReadyForNewScale","message":"recommended size matches current size"},"#,
    r#"{"type":"ScalingLimited","status":"False","lastTransitionTime":"2024-05-01T09:00:00Z","#,
    r#""reason":"DesiredWithinRange","message":"the desired count is within the acceptable range"}]"#
);

/// What `kubectl get hpa.v1.autoscaling php-apache -o yaml` shows upstream.
fn served_v1() -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "php-apache", "namespace": "default", "annotations": {
            "team": "web",
            METRICS: METRICS_JSON,
            CURRENT_METRICS: CURRENT_METRICS_JSON,
            BEHAVIOR: BEHAVIOR_JSON,
            CONDITIONS: CONDITIONS_JSON,
        }},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "targetCPUUtilizationPercentage": 50,
        },
        "status": {
            "observedGeneration": 1,
            "lastScaleTime": "2024-05-01T10:00:00Z",
            "currentReplicas": 1,
            "desiredReplicas": 1,
            "currentCPUUtilizationPercentage": 0,
        },
    })
}

#[test]
fn v2_reads_as_v1_with_upstreams_annotations() {
    assert_eq!(hpa(&stored_v2(), V2, V1), served_v1());
}

#[test]
fn v2_round_trips_through_v1() {
    let stored = stored_v2();
    assert_eq!(hpa(&hpa(&stored, V2, V1), V1, V2), stored);
}

#[test]
fn served_v1_round_trips_through_v2() {
    let served = served_v1();
    let stored = hpa(&served, V1, V2);
    assert_eq!(stored, stored_v2());
    assert_eq!(hpa(&stored, V2, V1), served);
}

#[test]
fn a_plain_v1_hpa_is_stored_as_upstream_stores_it() {
    let v1 = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                 "targetCPUUtilizationPercentage": 60},
        "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 40},
    });
    let expected = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "metrics": [
            cpu_utilization(60)]},
        "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]},
    });
    let stored = hpa(&v1, V1, V2);
    assert_eq!(stored, expected);
    // Read back as v1, the current metrics travel in their annotation, as upstream.
    let read = hpa(&stored, V2, V1);
    assert_eq!(read["spec"], v1["spec"]);
    assert_eq!(read["status"], v1["status"]);
    let current =
        r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":40,"currentAverageValue":"0"}}]"#;
    assert_eq!(read["metadata"]["annotations"], json!({ CURRENT_METRICS: current }));
    // From then on, the round trip is stable.
    assert_eq!(hpa(&hpa(&read, V1, V2), V2, V1), read);
}

#[test]
fn a_v1_hpa_without_target_gets_80_percent_cpu_in_conversion() {
    let v1 = json!({"metadata": {"name": "web"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
    let stored = hpa(&v1, V1, V2);
    let cpu80 = json!([cpu_utilization(80)]);
    assert_eq!(stored["spec"]["metrics"], cpu80);
    assert_eq!(stored["status"], json!({"currentMetrics": null, "desiredReplicas": 0}));
    let read = hpa(&stored, V2, V1);
    assert_eq!(read["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(read["status"], json!({"currentReplicas": 0, "desiredReplicas": 0}));
    assert!(read["metadata"].get("annotations").is_none());
    // No default when the annotation carries other metrics.
    let annotated = json!({"metadata": {"annotations": {METRICS: METRICS_JSON}}, "spec": {"maxReplicas": 5}});
    let metrics = hpa(&annotated, V1, V2)["spec"]["metrics"].clone();
    let others = Value::from(stored_v2()["spec"]["metrics"].as_array().unwrap()[..2].to_vec());
    assert_eq!(metrics, others);
}

#[test]
fn the_cpu_target_comes_back_after_the_other_metrics() {
    let mut stored = stored_v2();
    let metrics = stored["spec"]["metrics"].as_array_mut().unwrap();
    metrics.rotate_right(1); // CPU first
    let back = hpa(&hpa(&stored, V2, V1), V1, V2);
    assert_eq!(back["spec"]["metrics"], stored_v2()["spec"]["metrics"]);
}

#[test]
fn only_cpu_utilization_is_v1s_target() {
    let stored = json!({"spec": {"maxReplicas": 3, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "300m"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "Utilization", "averageUtilization": 60}}},
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
            "target": {"type": "Utilization", "averageUtilization": 90}}},
        {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
            "target": {"type": "AverageValue", "averageValue": "30"}}},
    ]}});
    let read = hpa(&stored, V2, V1);
    assert_eq!(read["spec"]["targetCPUUtilizationPercentage"], 70);
    let expected = concat!(
        r#"[{"type":"Resource","resource":{"name":"cpu","targetAverageValue":"300m"}},"#,
        r#"{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":60}},"#,
        r#"{"type":"ContainerResource","#,
        r#""containerResource":{"name":"cpu","targetAverageUtilization":90,"container":"app"}},"#,
        r#"{"type":"External","external":{"metricName":"queue","metricSelector":{"matchLabels":{"q":"jobs"}},"#,
        r#""targetAverageValue":"30"}}]"#
    );
    assert_eq!(read["metadata"]["annotations"][METRICS], expected);
    let mut back = hpa(&read, V1, V2);
    let metrics = back["spec"]["metrics"].as_array_mut().unwrap();
    let cpu = metrics.pop().unwrap();
    metrics.insert(1, cpu);
    assert_eq!(back["spec"], stored["spec"]);
}

#[test]
fn selectors_print_in_go_field_order() {
    let selector = json!({
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "Exists"}],
        "matchLabels": {"z": "1", "a": "2"},
    });
    let stored = json!({"spec": {"metrics": [{"type": "Pods", "pods": {
        "metric": {"name": "m", "selector": selector}, "target": {"type": "AverageValue", "averageValue": "1"}}}]}});
    let read = hpa(&stored, V2, V1);
    let expected = concat!(
        r#"[{"type":"Pods","pods":{"metricName":"m","targetAverageValue":"1","selector":"#,
        r#"{"matchLabels":{"a":"2","z":"1"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},"#,
        r#"{"key":"x","operator":"Exists"}]}}}]"#
    );
    assert_eq!(read["metadata"]["annotations"][METRICS], expected);
    assert_eq!(hpa(&read, V1, V2)["spec"]["metrics"][0], stored["spec"]["metrics"][0]);
}

#[test]
fn lossy_corners_are_upstreams() {
    // v1 keeps an Object target's value by value and a resource status's
    // average value by value: absent in v2, they come back as "0".
    let stored = json!({
        "spec": {"metrics": [{"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": ingress(),
            "target": {"type": "AverageValue", "averageValue": "5"}}}]},
        "status": {"desiredReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageUtilization": 30}}}]},
    });
    let back = hpa(&hpa(&stored, V2, V1), V1, V2);
    let target = json!({"type": "AverageValue", "value": "0", "averageValue": "5"});
    assert_eq!(back["spec"]["metrics"][0]["object"]["target"], target);
    let current = json!({"averageUtilization": 30, "averageValue": "0"});
    assert_eq!(back["status"]["currentMetrics"][0]["resource"]["current"], current);
    assert_eq!(back["spec"]["metrics"].as_array().unwrap().len(), 1);
}

#[test]
fn behavior_annotation_is_the_internal_go_struct() {
    let stored = json!({"spec": {"metrics": [], "behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 60, "tolerance": "50m"}}}});
    let read = hpa(&stored, V2, V1);
    let expected = concat!(
        r#"{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":null,"Policies":null,"#,
        r#""Tolerance":"50m"}}"#
    );
    assert_eq!(read["metadata"]["annotations"][BEHAVIOR], expected);
    let back = hpa(&read, V1, V2);
    assert_eq!(back["spec"]["behavior"], stored["spec"]["behavior"]);
    // Go reads keys case-insensitively; an empty behavior is no behavior.
    let handwritten = json!({"metadata": {"annotations": {
        BEHAVIOR: r#"{"scaleUp":{"selectPolicy":"Disabled","policies":[]}}"#}}});
    let behavior = json!({"scaleUp": {"selectPolicy": "Disabled"}});
    assert_eq!(hpa(&handwritten, V1, V2)["spec"]["behavior"], behavior);
    let empty = json!({"metadata": {"annotations": {BEHAVIOR: r#"{"ScaleUp":null}"#}}, "spec": {}});
    assert!(hpa(&empty, V1, V2)["spec"].get("behavior").is_none());
}

#[test]
fn annotations_escape_html_characters_like_go() {
    let stored = json!({"status": {"conditions": [{"type": "ScalingActive", "status": "False",
        "reason": "FailedGetResourceMetric", "message": "a < b && c > d \u{2028}"}]}});
    let read = hpa(&stored, V2, V1);
    let expected = concat!(
        r#"[{"type":"ScalingActive","status":"False","lastTransitionTime":null,"reason":"FailedGetResourceMetric","#,
        r#""message":"a \u003c b \u0026\u0026 c \u003e d \u2028"}]"#
    );
    assert_eq!(read["metadata"]["annotations"][CONDITIONS], expected);
    let back = hpa(&read, V1, V2);
    let condition = &back["status"]["conditions"][0];
    assert_eq!(condition["message"], stored["status"]["conditions"][0]["message"]);
    assert_eq!(condition["lastTransitionTime"], Value::Null);
}

#[test]
fn unreadable_annotations_are_ignored_and_dropped() {
    let v1 = json!({
        "metadata": {"annotations": {
            METRICS: "[{", CURRENT_METRICS: "{}", CONDITIONS: "7", BEHAVIOR: "[]", "keep": "me"}},
        "spec": {"targetCPUUtilizationPercentage": 70},
        "status": {"currentCPUUtilizationPercentage": 10},
    });
    let stored = hpa(&v1, V1, V2);
    assert_eq!(stored["metadata"]["annotations"], json!({"keep": "me"}));
    assert_eq!(stored["spec"]["metrics"], json!([cpu_utilization(70)]));
    assert!(stored["spec"].get("behavior").is_none());
    let current = json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 10}}}]);
    assert_eq!(stored["status"]["currentMetrics"], current);
    assert!(stored["status"].get("conditions").is_none());
}

#[test]
fn v2_never_shows_round_trip_annotations() {
    let mut written = stored_v2();
    written["metadata"]["annotations"][METRICS] = json!("[]");
    assert_eq!(hpa(&written, V2, V2), stored_v2());
    // Annotations left empty disappear, as Go omits an empty map.
    let bare = json!({"metadata": {"name": "x", "annotations": {CONDITIONS: "[]"}}});
    assert_eq!(
        hpa(&bare, V2, V2),
        json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "x"}})
    );
    // And v1 ignores stale ones: they are written afresh from v2's fields.
    let mut stale = stored_v2();
    stale["metadata"]["annotations"][BEHAVIOR] = json!("{}");
    stale["spec"].as_object_mut().unwrap().remove("behavior");
    let read = hpa(&stale, V2, V1);
    assert!(read["metadata"]["annotations"].get(BEHAVIOR).is_none());
}

#[test]
fn version_only_fields_from_the_wrong_version_are_dropped() {
    let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 50, "behavior": {"scaleUp": {}}, "metrics": "junk"},
                    "status": {"conditions": "junk", "currentMetrics": 1}});
    let stored = hpa(&v1, V1, V2);
    assert!(stored["spec"].get("behavior").is_none());
    assert_eq!(
        stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert!(stored["status"].get("conditions").is_none());
    assert_eq!(stored["status"]["currentMetrics"], Value::Null);
    let v2 = json!({"spec": {"targetCPUUtilizationPercentage": 50}, "status": {"currentCPUUtilizationPercentage": 9}});
    let read = hpa(&v2, V2, V1);
    assert!(read["spec"].get("targetCPUUtilizationPercentage").is_none());
    assert!(read["status"].get("currentCPUUtilizationPercentage").is_none());
}

#[test]
fn unknown_fields_pass_through() {
    let mut stored = stored_v2();
    stored["futureField"] = json!({"a": 1});
    stored["spec"]["futureSpec"] = json!(true);
    stored["status"]["futureStatus"] = json!([1]);
    let read = hpa(&stored, V2, V1);
    assert_eq!(read["futureField"], json!({"a": 1}));
    assert_eq!(read["spec"]["futureSpec"], true);
    assert_eq!(read["status"]["futureStatus"], json!([1]));
    assert_eq!(hpa(&read, V1, V2), stored);
}

#[test]
fn malformed_fields_are_errors() {
    let cases = [
        (V2, json!({"spec": "x"}), "spec"),
        (V2, json!({"spec": {"metrics": {"type": "Resource"}}}), "spec.metrics"),
        (V2, json!({"spec": {"metrics": [{"type": 1}]}}), "spec.metrics"),
        (V2, json!({"spec": {"behavior": []}}), "spec.behavior"),
        (V2, json!({"status": []}), "status"),
        (
            V2,
            json!({"status": {"currentMetrics": [{"resource": {"name": 5}}]}}),
            "status.currentMetrics",
        ),
        (
            V2,
            json!({"status": {"conditions": [{"status": true}]}}),
            "status.conditions",
        ),
        (V2, json!({"metadata": []}), "metadata"),
        (
            V2,
            json!({"metadata": {"annotations": {"a": 1}}}),
            "metadata.annotations",
        ),
        (V1, json!({"metadata": {"annotations": ["a"]}}), "metadata.annotations"),
        (
            V1,
            json!({"spec": {"targetCPUUtilizationPercentage": "50"}}),
            "spec.targetCPUUtilizationPercentage",
        ),
        (
            V1,
            json!({"spec": {"targetCPUUtilizationPercentage": 5e10}}),
            "spec.targetCPUUtilizationPercentage",
        ),
        (
            V1,
            json!({"status": {"currentCPUUtilizationPercentage": []}}),
            "status.currentCPUUtilizationPercentage",
        ),
        (V1, json!({"spec": 7}), "spec"),
    ];
    for (from, object, field) in cases {
        let to = if from == V1 { V2 } else { V1 };
        match convert(&object, from, to, HPA) {
            Err(ConversionError::Malformed { field: f, .. }) => assert_eq!(f, field, "{object}"),
            other => panic!("{object}: {other:?}"),
        }
    }
}

#[test]
fn nulls_are_unset_as_in_go() {
    let v1 = json!({"metadata": {"annotations": null}, "spec": {"targetCPUUtilizationPercentage": null},
                    "status": {"currentCPUUtilizationPercentage": null,
                               "desiredReplicas": null, "currentReplicas": null}});
    let stored = hpa(&v1, V1, V2);
    assert_eq!(
        stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(stored["status"], json!({"currentMetrics": null, "desiredReplicas": 0}));
    let stored =
        json!({"spec": {"metrics": null, "behavior": null}, "status": {"currentMetrics": null, "conditions": null}});
    let read = hpa(&stored, V2, V1);
    assert_eq!(read["spec"], json!({}));
    assert_eq!(read["status"], json!({"currentReplicas": 0, "desiredReplicas": 0}));
}
