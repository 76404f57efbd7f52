//! Moving from client-side to server-side apply, as upstream does for the
//! `kubectl` field manager (`kubectl apply --server-side`):
//!
//! - conflicts on fields that the `kubectl.kubernetes.io/last-applied-configuration`
//!   annotation shows were client-side applied, with the value still live,
//!   do not stop the apply (it is retried with force);
//! - after the apply, an existing annotation is rewritten to the applied
//!   configuration, so that a later client-side apply sees what was applied.

use serde_json::Value;

use crate::fieldset::FieldSet;
use crate::path::go_json;
use crate::schema::Ty;
use crate::typed::{compare, field_set};

/// The annotation client-side `kubectl apply` keeps.
pub(crate) const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The only field manager the upgrade applies to.
pub(crate) const KUBECTL: &str = "kubectl";

fn annotation(object: &Value) -> Option<&str> {
    let value = object.get("metadata")?.get("annotations")?.get(ANNOTATION)?.as_str()?;
    (!value.is_empty()).then_some(value)
}

/// The fields the annotation on `live` claims, minus those whose live value
/// differs from it; `None` without a readable annotation for `api_version`.
pub(crate) fn allowed_conflicts(live: &Value, ty: Ty, api_version: &str) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(annotation(live)?).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = field_set(&last, ty).ok()?;
    let comparison = compare(&last, live, ty).ok()?;
    Some(
        set.difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

/// Rewrites an existing annotation on `object` to the applied configuration
/// (without the annotation itself), encoded as kubectl encodes it.
pub(crate) fn refresh(object: &mut Value, applied: &Value) {
    if annotation(object).is_none() {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(annotations)) = config.get_mut("metadata").and_then(|m| m.get_mut("annotations")) {
        annotations.remove(ANNOTATION);
    }
    let encoded = format!("{}\n", go_json(&config));
    let annotations = object
        .as_object_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_object_mut)
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut);
    if let Some(annotations) = annotations {
        annotations.insert(ANNOTATION.to_string(), Value::String(encoded));
    }
}
