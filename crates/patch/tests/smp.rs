//! Table-driven tests of upstream's documented strategic merge patch behaviour.
//!
//! Sources: the Kubernetes task "Update API Objects in Place Using kubectl
//! patch", the SMP devel doc and the "Preserve Order in Strategic Merge Patch"
//! proposal (kubernetes/community), and upstream's `strategicpatch` code.
//! Where the proposal's prose and upstream's code order a list differently,
//! the expected values follow the code, which is what servers do.

use capstan_patch::{Gvk, PatchError, strategic_merge};
use serde_json::{Value, json};

const DEPLOYMENT: Gvk<'static> = ("apps", "v1", "Deployment");
const POD: Gvk<'static> = ("", "v1", "Pod");
const SERVICE: Gvk<'static> = ("", "v1", "Service");
const NODE: Gvk<'static> = ("", "v1", "Node");
const WIDGET: Gvk<'static> = ("example.com", "v1", "Widget");

struct Case {
    name: &'static str,
    gvk: Gvk<'static>,
    live: Value,
    patch: Value,
    want: Value,
}

/// A Deployment whose pod template spec is `spec`.
fn deployment(spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                 "template": {"metadata": {"labels": {"app": "demo"}}, "spec": spec}}
    })
}

/// A patch of a Deployment's pod template spec.
fn template_patch(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let got = strategic_merge(&case.live, &case.patch, case.gvk)
            .unwrap_or_else(|e| panic!("{}: unexpected error: {e}", case.name));
        assert_eq!(got, case.want, "{}:\n got {got:#}\nwant {:#}", case.name, case.want);
    }
}

#[test]
fn merging_lists() {
    run(vec![
        Case {
            name: "containers merge by name; an image change keeps the other containers and fields",
            gvk: DEPLOYMENT,
            live: deployment(json!({"containers": [
                {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent"},
                {"name": "proxy", "image": "proxy:1"}]})),
            patch: template_patch(json!({"containers": [{"name": "app", "image": "app:2"}]})),
            want: deployment(json!({"containers": [
                {"name": "app", "image": "app:2", "imagePullPolicy": "IfNotPresent"},
                {"name": "proxy", "image": "proxy:1"}]})),
        },
        Case {
            // The kubectl patch task: the new container comes first, tolerations are replaced.
            name: "kubectl patch task: add a container, replace tolerations",
            gvk: DEPLOYMENT,
            live: deployment(json!({
                "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]})),
            patch: template_patch(json!({
                "containers": [{"name": "patch-demo-ctr-2", "image": "redis"}],
                "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]})),
            want: deployment(json!({
                "containers": [{"name": "patch-demo-ctr-2", "image": "redis"}, {"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]})),
        },
        Case {
            name: "env: add one variable and delete another with $patch: delete",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "C", "value": "3"}, {"name": "B", "$patch": "delete"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "C", "value": "3"}, {"name": "A", "value": "1"}]}]}}),
        },
        Case {
            name: "container ports merge by containerPort; new ones follow the patch order",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "app", "ports": [
                {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "app", "ports": [
                {"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "app", "ports": [
                {"containerPort": 80, "protocol": "TCP", "name": "http"},
                {"containerPort": 443, "name": "https"},
                {"containerPort": 9090, "name": "metrics"}]}]}}),
        },
        Case {
            name: "service ports merge by port",
            gvk: SERVICE,
            live: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}),
            patch: json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
            want: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]}}),
        },
        Case {
            name: "a map field under a list element merges",
            gvk: DEPLOYMENT,
            live: deployment(json!({"containers": [{"name": "app", "image": "app:1",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}]})),
            patch: template_patch(json!({"containers": [{"name": "app",
                "resources": {"limits": {"cpu": "2", "memory": null}}}]})),
            want: deployment(json!({"containers": [{"name": "app", "image": "app:1",
                "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "100m"}}}]})),
        },
        Case {
            name: "volumeMounts merge by mountPath, volumes by name",
            gvk: POD,
            live: json!({"spec": {
                "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]}}),
            patch: json!({"spec": {
                "containers": [{"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "app"}}]}}),
            want: json!({"spec": {
                "containers": [{"name": "app", "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/app"}, {"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "app"}}, {"name": "data", "emptyDir": {}}]}}),
        },
        Case {
            name: "node conditions merge by type (status)",
            gvk: NODE,
            live: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}}),
            patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            want: json!({"status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}}),
        },
        Case {
            name: "node taints have no merge strategy: replaced",
            gvk: NODE,
            live: json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
            patch: json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
            want: json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
        },
        Case {
            name: "container args (no strategy) are replaced",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "app", "args": ["a", "b"]}]}}),
            patch: json!({"spec": {"containers": [{"name": "app", "args": ["c"]}]}}),
            want: json!({"spec": {"containers": [{"name": "app", "args": ["c"]}]}}),
        },
        Case {
            name: "$patch: replace in a list element replaces the whole list",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}),
            want: json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
        },
        Case {
            name: "the order in the patch wins over the live order (preserve-order proposal)",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "B"}, {"name": "C"}, {"name": "A"}]}}),
            patch: json!({"spec": {"containers": [{"name": "A", "x": 1}, {"name": "B", "x": 1}, {"name": "D"}]}}),
            want: json!({"spec": {"containers": [
                {"name": "C"}, {"name": "A", "x": 1}, {"name": "B", "x": 1}, {"name": "D"}]}}),
        },
    ]);
}

#[test]
fn maps_and_directives() {
    run(vec![
        Case {
            name: "null deletes a label, other labels stay",
            gvk: DEPLOYMENT,
            live: json!({"metadata": {"name": "d", "labels": {"app": "demo", "tier": "web"}}}),
            patch: json!({"metadata": {"labels": {"tier": null, "env": "prod"}}}),
            want: json!({"metadata": {"name": "d", "labels": {"app": "demo", "env": "prod"}}}),
        },
        Case {
            name: "$patch: replace on a map takes the map as given",
            gvk: DEPLOYMENT,
            live: json!({"spec": {"selector": {"matchLabels": {"app": "demo", "tier": "web"}}}}),
            patch: json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"app": "other"}}}}),
            want: json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
        },
        Case {
            name: "$patch: delete on a map empties it",
            gvk: DEPLOYMENT,
            live: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            patch: json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
            want: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {}}}}),
        },
        Case {
            name: "$retainKeys switches a Deployment strategy from RollingUpdate to Recreate",
            gvk: DEPLOYMENT,
            live: json!({"spec": {"strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
        },
        Case {
            name: "$retainKeys in a volume (merge,retainKeys) switches its source",
            gvk: POD,
            live: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            patch: json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"],
                "hostPath": {"path": "/x"}}]}}),
            want: json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
        },
        Case {
            name: "PodDisruptionBudget selector has patchStrategy replace",
            gvk: ("policy", "v1", "PodDisruptionBudget"),
            live: json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            patch: json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            want: json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
        },
        Case {
            name: "a value of another JSON type replaces the live one",
            gvk: DEPLOYMENT,
            live: json!({"spec": {"replicas": 2, "template": {"spec": {"containers": []}}}}),
            patch: json!({"spec": {"replicas": {"weird": true}}}),
            want: json!({"spec": {"replicas": {"weird": true}, "template": {"spec": {"containers": []}}}}),
        },
        Case {
            name: "directives inside a new value are applied, not stored",
            gvk: DEPLOYMENT,
            live: json!({"metadata": {"name": "d"}}),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}],
                "nodeSelector": {"gone": null, "disk": "ssd"}}}}}),
            want: json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {
                "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}],
                "nodeSelector": {"disk": "ssd"}}}}}),
        },
    ]);
}

#[test]
fn primitive_sets_and_order() {
    run(vec![
        Case {
            name: "finalizers are unioned",
            gvk: DEPLOYMENT,
            live: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
            want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        },
        Case {
            name: "$deleteFromPrimitiveList/finalizers",
            gvk: POD,
            live: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}),
            want: json!({"metadata": {"finalizers": ["a"]}}),
        },
        Case {
            name: "$setElementOrder/finalizers with additions and deletions (proposal example, upstream order)",
            gvk: POD,
            live: json!({"metadata": {"finalizers": ["b", "e", "a", "c", "d"]}}),
            patch: json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "f"],
                "$deleteFromPrimitiveList/finalizers": ["c"], "finalizers": ["f"]}}),
            want: json!({"metadata": {"finalizers": ["e", "a", "b", "f", "d"]}}),
        },
        Case {
            name: "$setElementOrder/containers reorders without changing contents",
            gvk: DEPLOYMENT,
            live: deployment(
                json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"},
                {"name": "c", "image": "c"}]}),
            ),
            patch: template_patch(
                json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
            ),
            want: deployment(
                json!({"containers": [{"name": "c", "image": "c"}, {"name": "a", "image": "a"},
                {"name": "b", "image": "b"}]}),
            ),
        },
        Case {
            name: "$setElementOrder/env with server-added variables (proposal example, upstream order)",
            gvk: POD,
            live: json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "ENV2", "value": "bar"}, {"name": "ENV5", "value": "server-added-2"},
                {"name": "ENV1", "value": "foo"}, {"name": "ENV3", "value": "baz"},
                {"name": "ENV4", "value": "server-added-1"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "app",
                "$setElementOrder/env": [{"name": "ENV1"}, {"name": "ENV2"}, {"name": "ENV6"}],
                "env": [{"name": "ENV3", "$patch": "delete"}, {"name": "ENV6", "value": "new-env"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "ENV5", "value": "server-added-2"}, {"name": "ENV1", "value": "foo"},
                {"name": "ENV2", "value": "bar"}, {"name": "ENV6", "value": "new-env"},
                {"name": "ENV4", "value": "server-added-1"}]}]}}),
        },
    ]);
}

#[test]
fn unknown_kinds_use_json_merge_semantics() {
    run(vec![Case {
        name: "custom resource: maps merge, lists are replaced, null deletes",
        gvk: WIDGET,
        live: json!({"spec": {"size": 1, "items": [{"name": "a"}, {"name": "b"}], "opts": {"x": 1, "y": 2}},
                     "metadata": {"finalizers": ["keep"]}}),
        patch: json!({"spec": {"items": [{"name": "c"}], "opts": {"y": null, "z": 3}},
                      "metadata": {"finalizers": ["new"]}}),
        want: json!({"spec": {"size": 1, "items": [{"name": "c"}], "opts": {"x": 1, "z": 3}},
                     "metadata": {"finalizers": ["new"]}}),
    }]);
}

/// The patch `kubectl apply` sends when a Deployment's image and env changed,
/// built by hand with upstream's three-way algorithm: changed fields only,
/// `$setElementOrder` for the merging lists it touches, deletions as
/// `$patch: delete`, and the new last-applied-configuration.
#[test]
fn kubectl_apply_three_way_patch() {
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web",
                "image": "nginx:1.27", "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "info"}],
                "ports": [{"containerPort": 80}]}]}}}});
    let mut live = applied.clone();
    live["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": format!("{applied}\n"), "deployment.kubernetes.io/revision": "1"});
    live["metadata"]["uid"] = json!("0b5c");
    let container = &mut live["spec"]["template"]["spec"]["containers"][0];
    container["imagePullPolicy"] = json!("IfNotPresent");
    container["ports"][0]["protocol"] = json!("TCP");
    live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "injected-sidecar", "image": "mesh:1"}));
    live["status"] = json!({"replicas": 2});

    let mut next = applied.clone();
    next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    next["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": "prod"}, {"name": "TRACE", "value": "1"}]);
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{next}\n")}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "MODE"}, {"name": "TRACE"}],
                "env": [{"name": "TRACE", "value": "1"}, {"$patch": "delete", "name": "LEVEL"}],
                "image": "nginx:1.28",
                "name": "web"}]}}}});

    let got = strategic_merge(&live, &patch, DEPLOYMENT).unwrap();
    let mut want = live.clone();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!(format!("{next}\n"));
    let container = &mut want["spec"]["template"]["spec"]["containers"][0];
    container["image"] = json!("nginx:1.28");
    container["env"] = json!([{"name": "MODE", "value": "prod"}, {"name": "TRACE", "value": "1"}]);
    // The sidecar the server added keeps its place after the applied container (live order).
    assert_eq!(got, want, "\n got {got:#}\nwant {want:#}");

    // Applying the same patch again changes nothing.
    assert_eq!(strategic_merge(&got, &patch, DEPLOYMENT).unwrap(), got);
}

fn error_of(gvk: Gvk<'_>, live: Value, patch: Value) -> PatchError {
    match strategic_merge(&live, &patch, gvk) {
        Ok(merged) => panic!("expected an error, merged to {merged}"),
        Err(e) => e,
    }
}

#[test]
fn errors() {
    let live = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "an env element without its merge key",
            json!({"spec": {"containers": [{"name": "app", "env": [{"value": "x"}]}]}}),
            "does not contain declared merge key: name",
        ),
        (
            "a container without its merge key",
            json!({"spec": {"containers": [{"image": "x"}]}}),
            "does not contain declared merge key: name",
        ),
        (
            "$patch: delete without the merge key",
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            "does not contain declared merge key: name",
        ),
        (
            "$patch: merge in a list",
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            "merging lists cannot yet",
        ),
        (
            "an unknown $patch in a map",
            json!({"spec": {"$patch": "shuffle"}}),
            "unknown patch type: shuffle",
        ),
        (
            "$patch: merge in a map, as upstream",
            json!({"spec": {"$patch": "merge"}}),
            "unknown patch type: merge",
        ),
        (
            "a field the patch sets but $retainKeys omits",
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            "invalid patch format of retainKeys",
        ),
        (
            "$retainKeys not a list",
            json!({"spec": {"$retainKeys": "a"}}),
            "invalid patch format of retainKeys",
        ),
        (
            "a patch list out of $setElementOrder's order",
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}]}}),
            "doesn't match $setElementOrder list",
        ),
        (
            "mixed element types in a merging list",
            json!({"metadata": {"finalizers": ["a", 1]}}),
            "list element types are not identical",
        ),
        (
            "a list of lists in a merging list",
            json!({"metadata": {"finalizers": [["a"]]}}),
            "lists of lists",
        ),
    ];
    for (name, patch, want) in cases {
        let error = error_of(POD, live.clone(), patch).to_string();
        assert!(
            error.contains(want),
            "{name}: got {error:?}, want it to contain {want:?}"
        );
    }
    assert!(matches!(
        error_of(POD, json!([]), json!({})),
        PatchError::NotAnObject(_)
    ));
    assert!(matches!(
        error_of(POD, json!({}), json!("x")),
        PatchError::NotAnObject(_)
    ));
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        json!({"spec": {"containers": "x"}}),
        json!({"spec": {"containers": [1, 2]}}),
        json!({"spec": {"containers": [null]}}),
        json!({"spec": {"containers": [{"name": {"deep": [1]}}]}}),
        json!({"spec": {"$setElementOrder/containers": "x"}}),
        json!({"spec": {"$setElementOrder/containers": [1], "containers": [{"name": "a"}]}}),
        json!({"spec": {"$setElementOrder/": [], "$deleteFromPrimitiveList/": null}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": {"a": 1}}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null}}),
        json!({"$patch": "delete"}),
        json!({"$patch": 7}),
        json!({"$retainKeys": [1, null]}),
        json!({"spec": {"volumes": [{"name": "v", "$patch": "replace"}]}}),
    ];
    let live = json!({"metadata": {"finalizers": ["a"]},
        "spec": {"containers": [{"name": "a"}, {"image": "no-name"}], "volumes": [{"name": "v"}]}});
    for patch in odd {
        let _ = strategic_merge(&live, &patch, POD);
        let _ = strategic_merge(&live, &patch, WIDGET);
    }
    let mut deep = json!("leaf");
    for _ in 0..400 {
        deep = json!({"a": deep});
    }
    assert!(matches!(
        strategic_merge(&deep, &deep, WIDGET),
        Err(PatchError::TooDeep(_))
    ));
}
