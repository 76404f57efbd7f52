//! apiextensions.k8s.io/v1
//! (`apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go`).

use serde_json::{Value, json};

use super::{Obj, child, is_empty_list, is_empty_str, present_path, set_if_unset, str_of};

/// Names derived from the kind, no conversion, and the storage version
/// recorded as stored.
pub(super) fn crd(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    if let Some(names) = child(spec, "names") {
        let kind = str_of(names, "kind").to_string();
        if !kind.is_empty() && is_empty_str(names, "singular") {
            names.insert("singular".into(), kind.to_lowercase().into());
        }
        if !kind.is_empty() && is_empty_str(names, "listKind") {
            names.insert("listKind".into(), format!("{kind}List").into());
        }
    }
    set_if_unset(spec, "conversion", json!({"strategy": "None"}));
    if let Some(service) = present_path(spec, &["conversion", "webhook", "clientConfig", "service"]) {
        set_if_unset(service, "port", 443);
    }
    let storage_version = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|version| version.get("storage") == Some(&Value::Bool(true)))
        .map(|version| {
            version
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        });
    if let Some(name) = storage_version
        && let Some(status) = child(object, "status")
        && is_empty_list(status, "storedVersions")
    {
        status.insert("storedVersions".into(), json!([name]));
    }
}
