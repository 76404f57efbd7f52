//! The strategy table against the schemas: every row names a real field, and
//! a schema walk reaches the fields that matter to kubectl.

use capstan_patch::schema::{definition_names, has_property};
use capstan_patch::table::entries;
use capstan_patch::{ListStrategy, list_strategy};

#[test]
fn every_row_names_a_field_of_a_known_definition() {
    let known: std::collections::HashSet<&str> = definition_names().collect();
    for (definition, field, _) in entries() {
        assert!(
            known.contains(definition),
            "{definition} is not a definition of any served kind"
        );
        assert!(has_property(definition, field), "{definition} has no field {field}");
    }
}

#[test]
fn list_strategies_along_paths() {
    let deployment = ("apps", "v1", "Deployment");
    let pod_spec = ["spec", "template", "spec"];
    let at = |tail: &[&str]| {
        let path: Vec<&str> = pod_spec.iter().chain(tail).copied().collect();
        list_strategy(deployment, &path)
    };
    assert_eq!(at(&["containers"]), ListStrategy::Merge { key: "name" });
    assert_eq!(at(&["initContainers"]), ListStrategy::Merge { key: "name" });
    assert_eq!(
        at(&["containers", "ports"]),
        ListStrategy::Merge { key: "containerPort" }
    );
    assert_eq!(at(&["containers", "0", "env"]), ListStrategy::Merge { key: "name" });
    assert_eq!(
        at(&["containers", "*", "volumeMounts"]),
        ListStrategy::Merge { key: "mountPath" }
    );
    assert_eq!(at(&["volumes"]), ListStrategy::Merge { key: "name" });
    assert_eq!(at(&["tolerations"]), ListStrategy::Atomic);
    assert_eq!(at(&["containers", "args"]), ListStrategy::Atomic);
    assert_eq!(
        at(&["topologySpreadConstraints"]),
        ListStrategy::Merge { key: "topologyKey" }
    );
    assert_eq!(
        list_strategy(deployment, &["metadata", "finalizers"]),
        ListStrategy::Set
    );
    assert_eq!(
        list_strategy(deployment, &["metadata", "ownerReferences"]),
        ListStrategy::Merge { key: "uid" }
    );
    assert_eq!(
        list_strategy(deployment, &["status", "conditions"]),
        ListStrategy::Merge { key: "type" }
    );
    assert_eq!(
        list_strategy(("", "v1", "Service"), &["spec", "ports"]),
        ListStrategy::Merge { key: "port" }
    );
    assert_eq!(
        list_strategy(("", "v1", "Node"), &["spec", "podCIDRs"]),
        ListStrategy::Set
    );
    assert_eq!(
        list_strategy(("", "v1", "Node"), &["spec", "taints"]),
        ListStrategy::Atomic
    );
    assert_eq!(
        list_strategy(("", "v1", "Node"), &["status", "addresses"]),
        ListStrategy::Merge { key: "type" }
    );
    assert_eq!(
        list_strategy(
            ("batch", "v1", "CronJob"),
            &["spec", "jobTemplate", "spec", "template", "spec", "containers"]
        ),
        ListStrategy::Merge { key: "name" }
    );
    assert_eq!(
        list_strategy(("example.com", "v1", "Widget"), &["spec", "items"]),
        ListStrategy::Atomic
    );
    assert_eq!(
        list_strategy(deployment, &["spec", "nope", "containers"]),
        ListStrategy::Atomic
    );
}
