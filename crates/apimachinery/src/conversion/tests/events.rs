use serde_json::{Value, json};

use super::event;
use crate::conversion::{CORE_V1, ConversionError, EVENT, EVENTS_V1, convert};

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": "default",
           "uid": "6f1c9a51-8f5e-4d3c-a2a9-1f0e2b9c7d11", "resourceVersion": "800"})
}

/// A kubelet event as `kubectl get events -o json` shows it upstream.
fn kubelet_core() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-0.17c1a2b3c4d5e6f7", "namespace": "default", "resourceVersion": "812"},
        "involvedObject": pod("web-0"),
        "reason": "Pulled",
        "message": "Container image \"nginx:1.27\" already present on machine",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T09:00:00Z",
        "lastTimestamp": "2024-05-01T09:05:00Z",
        "count": 3,
        "type": "Normal",
        "eventTime": null,
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    })
}

fn kubelet_events() -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web-0.17c1a2b3c4d5e6f7", "namespace": "default", "resourceVersion": "812"},
        "regarding": pod("web-0"),
        "reason": "Pulled",
        "note": "Container image \"nginx:1.27\" already present on machine",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2024-05-01T09:00:00Z",
        "deprecatedLastTimestamp": "2024-05-01T09:05:00Z",
        "deprecatedCount": 3,
        "type": "Normal",
        "eventTime": null,
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
    })
}

/// A scheduler event written through events.k8s.io/v1, with a series.
fn scheduler_events() -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web-1.17c1a2b3c4d5e6f8", "namespace": "default"},
        "eventTime": "2024-05-01T09:00:00.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-05-01T09:01:00.000001Z"},
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-control-plane",
        "action": "Scheduling",
        "reason": "FailedScheduling",
        "regarding": pod("web-1"),
        "related": {"kind": "Node", "name": "node-2"},
        "note": "0/3 nodes are available: 3 Insufficient cpu.",
        "type": "Warning",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": null,
        "deprecatedLastTimestamp": null,
    })
}

/// The same event as core v1: Go prints the unset source and timestamps.
fn scheduler_core() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-1.17c1a2b3c4d5e6f8", "namespace": "default"},
        "involvedObject": pod("web-1"),
        "reason": "FailedScheduling",
        "message": "0/3 nodes are available: 3 Insufficient cpu.",
        "source": {},
        "firstTimestamp": null,
        "lastTimestamp": null,
        "type": "Warning",
        "eventTime": "2024-05-01T09:00:00.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-05-01T09:01:00.000001Z"},
        "action": "Scheduling",
        "related": {"kind": "Node", "name": "node-2"},
        "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-control-plane",
    })
}

#[test]
fn core_events_read_as_events_k8s_io() {
    assert_eq!(event(&kubelet_core(), CORE_V1, EVENTS_V1), kubelet_events());
    assert_eq!(event(&scheduler_core(), CORE_V1, EVENTS_V1), scheduler_events());
}

#[test]
fn events_k8s_io_events_are_stored_as_core() {
    assert_eq!(event(&scheduler_events(), EVENTS_V1, CORE_V1), scheduler_core());
    assert_eq!(event(&kubelet_events(), EVENTS_V1, CORE_V1), kubelet_core());
}

#[test]
fn events_round_trip_both_ways() {
    for core in [kubelet_core(), scheduler_core()] {
        assert_eq!(event(&event(&core, CORE_V1, EVENTS_V1), EVENTS_V1, CORE_V1), core);
    }
    for events in [kubelet_events(), scheduler_events()] {
        assert_eq!(event(&event(&events, EVENTS_V1, CORE_V1), CORE_V1, EVENTS_V1), events);
    }
}

#[test]
fn sparse_events_gain_what_go_prints() {
    let core = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node", "name": "n"}, "message": "hi",
                      "reason": "", "count": 0, "futureField": [1]});
    let events = event(&core, CORE_V1, EVENTS_V1);
    let expected = json!({
        "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": "e"},
        "regarding": {"kind": "Node", "name": "n"},
        "note": "hi",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": null,
        "deprecatedLastTimestamp": null,
        "eventTime": null,
        "futureField": [1],
    });
    assert_eq!(events, expected);
    let back = event(&events, EVENTS_V1, CORE_V1);
    let expected = json!({
        "apiVersion": "v1",
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Node", "name": "n"},
        "message": "hi",
        "source": {},
        "firstTimestamp": null,
        "lastTimestamp": null,
        "eventTime": null,
        "reportingComponent": "",
        "reportingInstance": "",
        "futureField": [1],
    });
    assert_eq!(back, expected);
    assert_eq!(event(&event(&back, CORE_V1, EVENTS_V1), EVENTS_V1, CORE_V1), back);
}

#[test]
fn fields_of_the_other_version_are_dropped() {
    let core = json!({"note": "stray", "regarding": {"kind": "Pod"}, "deprecatedCount": 4, "message": "kept"});
    let events = event(&core, CORE_V1, EVENTS_V1);
    assert_eq!(events["note"], "kept");
    assert_eq!(events["regarding"], json!({}));
    assert!(events.get("deprecatedCount").is_none());
    let events = json!({"message": "stray", "reportingComponent": "x", "note": "kept"});
    let core = event(&events, EVENTS_V1, CORE_V1);
    assert_eq!(core["message"], "kept");
    assert_eq!(core["reportingComponent"], "");
}

#[test]
fn malformed_event_fields_are_errors() {
    let cases = [
        (CORE_V1, json!({"involvedObject": "pod/web-0"}), "involvedObject"),
        (CORE_V1, json!({"count": "3"}), "count"),
        (CORE_V1, json!({"count": 4294967296_i64}), "count"),
        (CORE_V1, json!({"firstTimestamp": 17}), "firstTimestamp"),
        (CORE_V1, json!({"message": ["a"]}), "message"),
        (EVENTS_V1, json!({"regarding": []}), "regarding"),
        (EVENTS_V1, json!({"series": 2}), "series"),
        (EVENTS_V1, json!({"deprecatedCount": 1.5}), "deprecatedCount"),
        (EVENTS_V1, json!({"eventTime": {}}), "eventTime"),
    ];
    for (from, object, field) in cases {
        let to = if from == CORE_V1 { EVENTS_V1 } else { CORE_V1 };
        match convert(&object, from, to, EVENT) {
            Err(ConversionError::Malformed { field: f, .. }) => assert_eq!(f, field, "{object}"),
            other => panic!("{object}: {other:?}"),
        }
    }
}
