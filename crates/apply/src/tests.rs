//! Behaviour tests, against upstream's documented examples and outputs.

use serde_json::{Value, json};

use super::*;

const DEPLOYMENT: Gvk<'static> = ("apps", "v1", "Deployment");
const CONFIG_MAP: Gvk<'static> = ("", "v1", "ConfigMap");
const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:00:01Z";
const T2: &str = "2024-05-01T10:00:02Z";

fn applier<'a>(name: &'a str, time: &'static str) -> Manager<'a> {
    Manager::new(name, Operation::Apply, "apps/v1", time).with_reset_fields(&[&["status"]])
}

fn updater<'a>(name: &'a str, time: &'static str) -> Manager<'a> {
    Manager::new(name, Operation::Update, "apps/v1", time).with_reset_fields(&[&["status"]])
}

/// The Deployment of upstream's server-side-apply docs (`application/ssa/nginx-deployment.yaml`).
fn nginx(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

/// A Deployment configuration setting only `spec.replicas`.
fn replicas_only(replicas: i64) -> Value {
    let mut config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"}});
    config["spec"] = json!({ "replicas": replicas });
    config
}

const SCALE_CONFLICT: &str = concat!(
    "Apply failed with 1 conflict: ",
    r#"conflict with "kubectl-scale" with subresource "scale" using apps/v1: .spec.replicas"#
);

fn entries(object: &Value) -> &Vec<Value> {
    object["metadata"]["managedFields"].as_array().expect("managedFields")
}

fn entry<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    entries(object).iter().find(|e| e["manager"] == manager)
}

fn owned(object: &Value, manager: &str) -> Vec<String> {
    let fields = entry(object, manager).map_or(json!({}), |e| e["fieldsV1"].clone());
    FieldSet::from_fields_v1(&fields).unwrap().path_strings()
}

fn with_managed_fields(object: &Value, entries: Vec<Value>) -> Value {
    let mut object = object.clone();
    object["metadata"]["managedFields"] = Value::Array(entries);
    object
}

/// `new` written by a non-apply write of `manager` over `old`.
fn write(old: Option<&Value>, new: &Value, gvk: Gvk<'_>, manager: &Manager<'_>) -> Value {
    let entries = update_managed_fields(old, new, gvk, manager).unwrap();
    with_managed_fields(new, entries)
}

fn conflict_text(result: Result<Value, ApplyError>) -> String {
    match result {
        Err(err @ ApplyError::Conflicts(_)) => err.to_string(),
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn deployment_apply_entry_matches_upstream() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("kubectl", T0), false).unwrap();
    let fields = json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}}
            }
        }
    });
    let expected = json!({
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields,
        "manager": "kubectl", "operation": "Apply", "time": T0
    });
    assert_eq!(entries(&live), &vec![expected]);
    let set = FieldSet::from_fields_v1(&fields).unwrap();
    assert_eq!(set.to_fields_v1(), fields);
    assert!(
        set.path_strings().contains(
            &r#".spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"].containerPort"#
                .to_string()
        )
    );
}

#[test]
fn apply_creates_the_object() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("kubectl", T0), false).unwrap();
    let mut without = live.clone();
    without["metadata"].as_object_mut().unwrap().remove("managedFields");
    assert_eq!(without, nginx(3));
}

#[test]
fn fields_of_lists_what_an_object_specifies() {
    let set = fields_of(&nginx(3), DEPLOYMENT);
    let paths = set.path_strings();
    assert!(paths.contains(&".spec.selector".to_string()));
    assert!(paths.contains(&".metadata.name".to_string()));
    assert!(
        !paths.iter().any(|p| p.starts_with(".spec.selector.")),
        "LabelSelector is atomic"
    );
    let finalizers = fields_of(&json!({"metadata": {"finalizers": ["a", "b"]}}), CONFIG_MAP);
    assert_eq!(
        finalizers.path_strings(),
        [r#".metadata.finalizers[="a"]"#, r#".metadata.finalizers[="b"]"#]
    );
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let mut config = nginx(3);
    config["metadata"]["labels"]["tier"] = json!("web");
    config["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    let live = apply(None, &config, DEPLOYMENT, &applier("kubectl", T0), false).unwrap();
    let live = apply(Some(&live), &nginx(3), DEPLOYMENT, &applier("kubectl", T1), false).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"app": "nginx"}));
    assert!(live["spec"]["template"]["spec"]["containers"][0].get("env").is_none());
    assert_eq!(entries(&live).len(), 1);
    assert_eq!(entry(&live, "kubectl").unwrap()["time"], T1);
}

#[test]
fn removal_keeps_fields_other_managers_own() {
    let mut config = nginx(3);
    config["metadata"]["labels"]["tier"] = json!("web");
    let live = apply(None, &config, DEPLOYMENT, &applier("kubectl", T0), false).unwrap();
    let mut shared = replicas_only(0);
    shared.as_object_mut().unwrap().remove("spec");
    shared["metadata"]["labels"] = json!({"tier": "web"});
    let live = apply(Some(&live), &shared, DEPLOYMENT, &applier("labeler", T1), false).unwrap();
    let live = apply(Some(&live), &nginx(3), DEPLOYMENT, &applier("kubectl", T2), false).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"app": "nginx", "tier": "web"}));
    assert_eq!(owned(&live, "labeler"), [".metadata.labels.tier"]);
}

#[test]
fn conflicting_appliers() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("alice", T0), false).unwrap();
    let err = apply(Some(&live), &nginx(5), DEPLOYMENT, &applier("bob", T1), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#
    );
    let status = err.status();
    assert_eq!(
        (status["code"].clone(), status["reason"].clone()),
        (json!(409), json!("Conflict"))
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"type": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"}])
    );
}

#[test]
fn force_moves_ownership() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("alice", T0), false).unwrap();
    let replicas = replicas_only(5);
    let live = apply(Some(&live), &replicas, DEPLOYMENT, &applier("bob", T1), true).unwrap();
    assert_eq!(live["spec"]["replicas"], 5);
    assert_eq!(owned(&live, "bob"), [".spec.replicas"]);
    assert!(!owned(&live, "alice").contains(&".spec.replicas".to_string()));
    // Alice dropping replicas now leaves bob's value alone.
    let mut without = nginx(3);
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let live = apply(Some(&live), &without, DEPLOYMENT, &applier("alice", T2), false).unwrap();
    assert_eq!(live["spec"]["replicas"], 5);
}

#[test]
fn identical_values_share_ownership() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("alice", T0), false).unwrap();
    let replicas = replicas_only(3);
    let live = apply(Some(&live), &replicas, DEPLOYMENT, &applier("bob", T1), false).unwrap();
    assert!(owned(&live, "alice").contains(&".spec.replicas".to_string()));
    assert_eq!(owned(&live, "bob"), [".spec.replicas"]);
    // The object did not change, so bob's new entry carries no time (as upstream).
    assert!(entry(&live, "bob").unwrap().get("time").is_none());
    // Any change of the shared field now conflicts, for either applier.
    let err = apply(Some(&live), &nginx(4), DEPLOYMENT, &applier("alice", T2), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "bob": .spec.replicas"#
    );
    // Giving up a shared field keeps the value.
    let mut without = nginx(3);
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let live = apply(Some(&live), &without, DEPLOYMENT, &applier("alice", T2), false).unwrap();
    assert_eq!(live["spec"]["replicas"], 3);
}

#[test]
fn update_managers_conflict_with_appliers() {
    let created = write(None, &nginx(3), DEPLOYMENT, &updater("kubectl-client-side-apply", T0));
    let config = replicas_only(2);
    let err = apply(Some(&created), &config, DEPLOYMENT, &applier("my-manager", T1), false).unwrap_err();
    let expected =
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#;
    assert_eq!(err.to_string(), expected);

    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(10);
    let scale = updater("kubectl-scale", T1)
        .with_subresource("scale")
        .with_reset_fields(&[]);
    let scaled = write(Some(&created), &scaled, DEPLOYMENT, &scale);
    assert_eq!(owned(&scaled, "kubectl-scale"), [".spec.replicas"]);
    assert_eq!(entry(&scaled, "kubectl-scale").unwrap()["subresource"], "scale");
    assert!(!owned(&scaled, "kubectl-client-side-apply").contains(&".spec.replicas".to_string()));
    let result = apply(Some(&scaled), &config, DEPLOYMENT, &applier("my-manager", T2), false);
    assert_eq!(conflict_text(result), SCALE_CONFLICT);

    let mut edited = scaled.clone();
    edited["spec"]["replicas"] = json!(7);
    let edited = write(Some(&scaled), &edited, DEPLOYMENT, &updater("kubectl-edit", T2));
    let result = apply(Some(&edited), &config, DEPLOYMENT, &applier("my-manager", T2), false);
    assert!(conflict_text(result).contains(r#"conflict with "kubectl-edit" using apps/v1: .spec.replicas"#));
    // Forcing takes the field from the updater, whose entry then disappears.
    let forced = apply(Some(&edited), &config, DEPLOYMENT, &applier("my-manager", T2), true).unwrap();
    assert!(entry(&forced, "kubectl-edit").is_none());
    assert_eq!(owned(&forced, "my-manager"), [".spec.replicas"]);
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = apply(None, &nginx(3), DEPLOYMENT, &applier("alice", T0), false).unwrap();
    let mut config = nginx(5);
    config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let err = apply(Some(&live), &config, DEPLOYMENT, &applier("bob", T1), false).unwrap_err();
    let expected = "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n\
                    - .spec.template.spec.containers[name=\"nginx\"].image";
    assert_eq!(err.to_string(), expected);
    let ApplyError::Conflicts(conflicts) = err else {
        unreachable!()
    };
    assert_eq!(conflict_message(&conflicts), expected);
}

fn pod_template(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": containers}}}
    })
}

fn containers(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"]
}

#[test]
fn list_maps_merge_by_key() {
    let alice = pod_template(json!([{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}]));
    let live = apply(None, &alice, DEPLOYMENT, &applier("alice", T0), false).unwrap();
    let bob = pod_template(json!([
        {"name": "app", "env": [{"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "proxy:1"}
    ]));
    let live = apply(Some(&live), &bob, DEPLOYMENT, &applier("bob", T1), false).unwrap();
    let expected = json!([
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "proxy:1"}
    ]);
    assert_eq!(containers(&live), &expected);
    assert!(
        owned(&live, "bob").contains(&r#".spec.template.spec.containers[name="app"].env[name="B"].value"#.to_string())
    );
    // Bob leaves: his env var and sidecar go, alice's container stays.
    let live = apply(
        Some(&live),
        &pod_template(json!([])),
        DEPLOYMENT,
        &applier("bob", T2),
        false,
    )
    .unwrap();
    assert_eq!(
        containers(&live),
        &json!([{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}])
    );
}

#[test]
fn atomic_lists_are_replaced_whole() {
    let alice = pod_template(json!([{"name": "app", "args": ["a", "b"]}]));
    let live = apply(None, &alice, DEPLOYMENT, &applier("alice", T0), false).unwrap();
    assert!(owned(&live, "alice").contains(&r#".spec.template.spec.containers[name="app"].args"#.to_string()));
    let bob = pod_template(json!([{"name": "app", "args": ["c"]}]));
    let result = apply(Some(&live), &bob, DEPLOYMENT, &applier("bob", T1), false);
    let expected = r#"conflict with "alice": .spec.template.spec.containers[name="app"].args"#;
    assert!(conflict_text(result).contains(expected));
    let live = apply(Some(&live), &bob, DEPLOYMENT, &applier("bob", T1), true).unwrap();
    assert_eq!(containers(&live)[0]["args"], json!(["c"]));
}

#[test]
fn sets_merge_by_value() {
    let meta = |finalizers: Value| {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        cm["metadata"]["finalizers"] = finalizers;
        cm
    };
    let cm = |time| Manager::new("alice", Operation::Apply, "v1", time);
    let live = apply(None, &meta(json!(["a"])), CONFIG_MAP, &cm(T0), false).unwrap();
    let bob = Manager::new("bob", Operation::Apply, "v1", T1);
    let live = apply(Some(&live), &meta(json!(["b"])), CONFIG_MAP, &bob, false).unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
    let live = apply(Some(&live), &meta(json!([])), CONFIG_MAP, &cm(T2), false).unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn update_entries_match_upstream_for_creates() {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"key": "v"}});
    cm["metadata"] = json!({"name": "test-cm", "namespace": "default", "labels": {"app": "x"}});
    let create = Manager::new("kubectl-create", Operation::Update, "v1", T0);
    let entries = update_managed_fields(None, &cm, CONFIG_MAP, &create).unwrap();
    let expected = json!([{
        "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl-create", "operation": "Update", "time": T0,
        "fieldsV1": {"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
    }]);
    assert_eq!(Value::Array(entries), expected);

    let mut deployment = nginx(1);
    deployment["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
    let entries = update_managed_fields(None, &deployment, DEPLOYMENT, &updater("kubectl-create", T0)).unwrap();
    let fields = &entries[0]["fieldsV1"]["f:spec"];
    assert_eq!(
        fields["f:strategy"],
        json!({"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}})
    );
    assert_eq!(fields["f:selector"], json!({}));
    let containers = &fields["f:template"]["f:spec"]["f:containers"];
    assert!(containers.get(".").is_none());
    assert_eq!(containers["k:{\"name\":\"nginx\"}"]["f:ports"]["."], json!({}));
}

#[test]
fn update_bookkeeping() {
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let first = Manager::new("first", Operation::Update, "v1", T0);
    let created = write(None, &cm(json!({"a": "1", "b": "2"})), CONFIG_MAP, &first);
    // A field removed by another writer leaves the first writer's entry.
    let second = Manager::new("second", Operation::Update, "v1", T1);
    let next = write(Some(&created), &cm(json!({"a": "1", "c": "3"})), CONFIG_MAP, &second);
    assert_eq!(owned(&next, "first"), [".data", ".data.a"]);
    assert_eq!(owned(&next, "second"), [".data.c"]);
    // Taking every remaining field drops the first entry.
    let last = write(
        Some(&next),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        CONFIG_MAP,
        &second,
    );
    assert!(entry(&last, "first").is_none());
    assert!(entry(&last, "second").is_none(), "second's field was removed too");
    assert!(
        update_managed_fields(Some(&last), &last, CONFIG_MAP, &second)
            .unwrap()
            .is_empty()
    );
    // A write that changes nothing keeps entries and their times.
    let same = update_managed_fields(
        Some(&next),
        &next,
        CONFIG_MAP,
        &Manager::new("third", Operation::Update, "v1", T2),
    )
    .unwrap();
    assert_eq!(&same, entries(&next));
    // `[{}]` clears managedFields, `[]` too; writing other entries keeps them.
    let cleared = update_managed_fields(
        Some(&next),
        &with_managed_fields(&next, vec![json!({})]),
        CONFIG_MAP,
        &second,
    )
    .unwrap();
    assert!(cleared.is_empty());
}

#[test]
fn status_is_not_owned_through_the_main_resource() {
    let mut config = nginx(3);
    config["status"] = json!({"replicas": 99});
    let live = apply(None, &config, DEPLOYMENT, &applier("kubectl", T0), false).unwrap();
    assert!(live.get("status").is_none(), "status is reset on create");
    assert!(!owned(&live, "kubectl").iter().any(|p| p.starts_with(".status")));
    let mut with_status = live.clone();
    with_status["status"] = json!({"replicas": 3});
    let status = Manager::new("kube-controller-manager", Operation::Update, "apps/v1", T1)
        .with_subresource("status")
        .with_reset_fields(reset_fields_for(DEPLOYMENT, Some("status")));
    let with_status = write(Some(&live), &with_status, DEPLOYMENT, &status);
    assert_eq!(owned(&with_status, "kube-controller-manager"), [".status.replicas"]);
    let live = apply(Some(&with_status), &config, DEPLOYMENT, &applier("kubectl", T2), false).unwrap();
    assert_eq!(live["status"], json!({"replicas": 3}));
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let mut csa = nginx(3);
    let annotation = last_applied::ANNOTATION;
    let config_text = serde_json::to_string(&nginx(3)).unwrap();
    csa["metadata"]["annotations"] = json!({ annotation: config_text });
    let created = write(None, &csa, DEPLOYMENT, &updater("kubectl-client-side-apply", T0));
    let live = apply(Some(&created), &nginx(4), DEPLOYMENT, &applier("kubectl", T1), false).unwrap();
    assert_eq!(live["spec"]["replicas"], 4);
    assert_eq!(
        owned(&live, "kubectl").first().map(String::as_str),
        Some(".metadata.labels.app")
    );
    let refreshed: Value = serde_json::from_str(live["metadata"]["annotations"][annotation].as_str().unwrap()).unwrap();
    assert_eq!(refreshed, nginx(4));
    // Another manager gets no such pass.
    let err = apply(Some(&created), &nginx(4), DEPLOYMENT, &applier("other", T1), false).unwrap_err();
    assert!(matches!(err, ApplyError::Conflicts(_)));
}

#[test]
fn kubectl_still_conflicts_on_fields_changed_since_client_side_apply() {
    let mut csa = nginx(3);
    csa["metadata"]["annotations"] = json!({ last_applied::ANNOTATION: serde_json::to_string(&nginx(3)).unwrap() });
    let created = write(None, &csa, DEPLOYMENT, &updater("kubectl-client-side-apply", T0));
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(10);
    let scale = updater("kubectl-scale", T1).with_subresource("scale");
    let scaled = write(Some(&created), &scaled, DEPLOYMENT, &scale);
    let result = apply(Some(&scaled), &nginx(4), DEPLOYMENT, &applier("kubectl", T2), false);
    assert_eq!(conflict_text(result), SCALE_CONFLICT);
}

#[test]
fn bad_requests() {
    let kubectl = applier("kubectl", T0);
    let mut with_fields = nginx(3);
    with_fields["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &with_fields, DEPLOYMENT, &kubectl, false).unwrap_err();
    assert_eq!(
        (err.code(), err.to_string()),
        (400, "metadata.managedFields must be nil".to_string())
    );
    let err = apply(None, &nginx(3), ("apps", "v1", "StatefulSet"), &kubectl, false).unwrap_err();
    assert_eq!(err.to_string(), "invalid object type: apps/v1, Kind=Deployment");
    let err = apply(None, &nginx(3), DEPLOYMENT, &applier("", T0), false).unwrap_err();
    assert_eq!(err.code(), 422);
    assert_eq!(err.status()["reason"], "Invalid");
    let no_key = pod_template(json!([{"image": "x"}]));
    let err = apply(None, &no_key, DEPLOYMENT, &kubectl, false).unwrap_err();
    assert_eq!(err.code(), 500);
    assert!(err.to_string().contains(r#"omits key field "name""#), "{err}");
    let mut broken = replicas_only(1);
    broken["metadata"]["managedFields"] = json!([{"operation": "Patch"}]);
    let err = apply(Some(&broken), &nginx(3), DEPLOYMENT, &kubectl, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to decode managed fields: operation must be `Apply` or `Update`"
    );
}

#[test]
fn custom_resources_treat_keys_as_fields_and_lists_as_atomic() {
    let gvk = ("example.com", "v1", "Widget");
    let widget = |items: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
                                      "spec": {"size": 1, "items": items}})
    };
    let m = Manager::new("m", Operation::Apply, "example.com/v1", T0);
    let live = apply(None, &widget(json!([1, 2])), gvk, &m, false).unwrap();
    assert_eq!(
        entries(&live)[0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:items": {}, "f:size": {}}})
    );
}

#[test]
fn never_panics_on_odd_input() {
    let m = applier("m", T0);
    let odd = [
        json!(null),
        json!([]),
        json!("x"),
        json!({"apiVersion": 1, "kind": []}),
        json!({"metadata": []}),
    ];
    for value in &odd {
        let _ = apply(Some(value), value, DEPLOYMENT, &m, false);
        let _ = apply(None, value, DEPLOYMENT, &m, true);
        let _ = update_managed_fields(Some(value), value, DEPLOYMENT, &m);
        let _ = fields_of(value, DEPLOYMENT);
    }
    let mut deep = json!("leaf");
    for _ in 0..400 {
        deep = json!({ "x": deep });
    }
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": deep});
    let _ = apply(None, &config, DEPLOYMENT, &m, false);
    let weird = pod_template(json!([{"name": "a", "ports": [{"containerPort": 1}, {"containerPort": 1}]}, 7, null]));
    let _ = apply(None, &weird, DEPLOYMENT, &m, false);
    let _ = update_managed_fields(None, &weird, DEPLOYMENT, &m);
    let bad_fields = json!({"metadata": {"managedFields": [{"manager": "x", "operation": "Apply", "apiVersion": "v1",
                                                         "fieldsType": "FieldsV1", "fieldsV1": {"k:nope": {}}}]}});
    assert!(apply(Some(&bad_fields), &nginx(1), DEPLOYMENT, &m, false).is_err());
}

/// Ports of structured-merge-diff's `TestMultipleAppliersNestedType`, with
/// containers for the outer list and their env for the inner one.
mod nested_lists {
    use super::*;

    const POD: Gvk<'static> = ("", "v1", "Pod");

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn env(names: &[&str]) -> Value {
        Value::Array(names.iter().map(|n| json!({ "name": n })).collect())
    }

    fn step(live: Option<&Value>, config: Value, name: &str) -> Value {
        apply(
            live,
            &pod(config),
            POD,
            &Manager::new(name, Operation::Apply, "v1", T0),
            false,
        )
        .unwrap()
    }

    #[test]
    fn remove_one_keep_one_with_two_sub_items() {
        let live = step(
            None,
            json!([{"name": "a"}, {"name": "b", "env": env(&["c"])}]),
            "apply-one",
        );
        let live = step(Some(&live), json!([{"name": "b", "env": env(&["d"])}]), "apply-two");
        let live = step(Some(&live), json!([{"name": "a"}]), "apply-one");
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b", "env": env(&["d"])}])
        );
        assert_eq!(
            owned(&live, "apply-one"),
            [r#".spec.containers[name="a"]"#, r#".spec.containers[name="a"].name"#]
        );
    }

    #[test]
    fn remove_one_keep_one_with_dangling_subitem() {
        let live = step(
            None,
            json!([{"name": "a"}, {"name": "b", "env": env(&["c"])}]),
            "apply-one",
        );
        let live = step(Some(&live), json!([{"name": "b", "env": env(&["d"])}]), "apply-two");
        let mut updated = live.clone();
        updated["spec"]["containers"] = json!([{"name": "a"}, {"name": "b", "env": env(&["c", "d", "e"])}]);
        let live = write(
            Some(&live),
            &updated,
            POD,
            &Manager::new("controller", Operation::Update, "v1", T1),
        );
        let live = step(Some(&live), json!([{"name": "a"}]), "apply-one");
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b", "env": env(&["d", "e"])}])
        );
        let controller = [
            r#".spec.containers[name="b"].env[name="e"]"#,
            r#".spec.containers[name="b"].env[name="e"].name"#,
        ];
        assert_eq!(owned(&live, "controller"), controller);
    }

    #[test]
    fn remove_one_with_dangling_subitem_keep_one() {
        let live = step(
            None,
            json!([{"name": "a"}, {"name": "b", "env": env(&["c"])}]),
            "apply-one",
        );
        let live = step(Some(&live), json!([{"name": "a", "env": env(&["b"])}]), "apply-two");
        let mut updated = live.clone();
        updated["spec"]["containers"] =
            json!([{"name": "a", "env": env(&["b"])}, {"name": "b", "env": env(&["c", "d"])}]);
        let live = write(
            Some(&live),
            &updated,
            POD,
            &Manager::new("controller", Operation::Update, "v1", T1),
        );
        let live = step(Some(&live), json!([{"name": "a"}]), "apply-one");
        assert_eq!(live["spec"]["containers"], json!([{"name": "a", "env": env(&["b"])}]));
        assert!(entry(&live, "controller").is_none());
    }
}

/// Port of structured-merge-diff's `unset_scalar_shared_with_updater`.
#[test]
fn unsetting_a_field_an_updater_shares_keeps_it() {
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let updater = Manager::new("updater", Operation::Update, "v1", T0);
    let live = write(None, &cm(json!({"name": "a", "scalar": "a"})), CONFIG_MAP, &updater);
    let applier = Manager::new("applier", Operation::Apply, "v1", T1);
    let live = apply(
        Some(&live),
        &cm(json!({"name": "a", "scalar": "a"})),
        CONFIG_MAP,
        &applier,
        false,
    )
    .unwrap();
    let live = apply(Some(&live), &cm(json!({"name": "a"})), CONFIG_MAP, &applier, false).unwrap();
    assert_eq!(live["data"], json!({"name": "a", "scalar": "a"}));
    assert_eq!(owned(&live, "applier"), [".data.name"]);
    assert_eq!(owned(&live, "updater"), [".data", ".data.name", ".data.scalar"]);
}
