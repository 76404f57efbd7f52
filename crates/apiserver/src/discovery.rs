//! Discovery: what the server serves, in both forms clients use.
//!
//! kubectl 1.32 asks `/api` and `/apis` for the aggregated form
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, everything in two
//! requests) and picks the format from the response `Content-Type` alone.
//! Older clients, `kubectl drain` and the scale client read the legacy
//! documents (`APIVersions`, `APIGroupList`, `APIResourceList`). Both are
//! generated from the resource registry, so they cannot disagree.

use capstan_apimachinery::registry::{self, ApiGroup};
use capstan_apimachinery::{ResourceType, Subresource};
use serde_json::{Value, json};

/// The media type of aggregated discovery, as the client asks for it.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery (v2 only;
/// v2beta1 was removed upstream in 1.33).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// A discovery document for `path`, or `None` if it is not one.
pub fn document(path: &str, aggregated: bool) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api"] if aggregated => Some(aggregated_list(true)),
        ["apis"] if aggregated => Some(aggregated_list(false)),
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [],
        })),
        ["apis"] => Some(group_list()),
        ["api", "v1"] => Some(resource_list("", "v1")),
        ["apis", group] => find_group(group).map(|g| group_document(&g)),
        ["apis", group, version] => find_group(group)
            .filter(|g| g.versions.contains(version))
            .map(|_| resource_list(group, version)),
        _ => None,
    }
}

fn find_group(name: &str) -> Option<ApiGroup> {
    registry::groups()
        .into_iter()
        .find(|g| g.name == name && !name.is_empty())
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn group_document(group: &ApiGroup) -> Value {
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group.name, v), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group.name,
        "versions": versions,
        "preferredVersion": {
            "groupVersion": group_version(group.name, group.preferred_version()),
            "version": group.preferred_version(),
        },
    })
}

fn group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(|g| {
            let mut doc = group_document(g);
            if let Some(map) = doc.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            doc
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in registry::resources_of(group, version) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in &r.subresources {
            resources.push(json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": sub.group,
                "version": sub.version,
                "kind": sub.kind,
                "verbs": sub.verbs,
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

fn aggregated_list(core: bool) -> Value {
    let items: Vec<Value> = registry::groups()
        .iter()
        .filter(|g| g.name.is_empty() == core)
        .map(aggregated_group)
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_group(group: &ApiGroup) -> Value {
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = registry::resources_of(group.name, version)
                .map(aggregated_resource)
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.name.is_empty() {
        metadata["name"] = group.name.into();
    }
    json!({"metadata": metadata, "versions": versions})
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let subresources: Vec<Value> = r.subresources.iter().map(aggregated_subresource).collect();
    let mut doc = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        doc["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        doc["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        doc["subresources"] = json!(subresources);
    }
    doc
}

fn aggregated_subresource(sub: &Subresource) -> Value {
    json!({
        "subresource": sub.name,
        "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
        "verbs": sub.verbs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_kubectl_accept_header() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn aggregated_core_has_pods_with_subresources() {
        let doc = document("/api", true).unwrap();
        let resources = doc["items"][0]["versions"][0]["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let eviction = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .unwrap();
        assert_eq!(eviction["responseKind"]["group"], "policy");
    }

    #[test]
    fn legacy_documents() {
        assert_eq!(document("/api", false).unwrap()["versions"], json!(["v1"]));
        let apps = document("/apis/apps", false).unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        let list = document("/apis/apps/v1", false).unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(document("/apis/nope", false).is_none());
        assert!(document("/apis/apps/v9", false).is_none());
    }
}
