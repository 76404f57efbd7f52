//! `ObjectMeta`, labels, annotations and label selectors
//! (upstream's `apimachinery/pkg/api/validation/objectmeta.go` and
//! `apis/meta/v1/validation`).

use std::collections::{BTreeMap, BTreeSet};

use super::field::{
    Errs, child, forbidden, go_quote, go_slice, go_string_map, go_string_slice, index, invalid, raw, required, too_long,
};
use super::formats;
use super::json::Node;

/// The total size of all annotation keys and values.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// How a kind's names are validated (upstream's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: Namespace, StatefulSet, ...
    Label,
    /// DNS-1035 label: Service.
    Dns1035,
    /// Any single URL path segment: RBAC kinds and the generic fallback.
    PathSegment,
}

/// Upstream's `maskTrailingDash`: a generateName may end in `-`.
fn mask_trailing_dash(name: &str) -> String {
    if !name.ends_with('-') {
        return name.to_string();
    }
    let keep = &name.as_bytes()[..name.len().saturating_sub(2)];
    format!("{}a", String::from_utf8_lossy(keep))
}

/// The explanations why `name` is not a valid name under `rule`.
pub(super) fn name_errors(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && rule != NameRule::PathSegment {
        masked = mask_trailing_dash(name);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Subdomain => formats::is_dns1123_subdomain(name),
        NameRule::Label => formats::is_dns1123_label(name),
        NameRule::Dns1035 => formats::is_dns1035_label(name),
        NameRule::PathSegment => formats::path_segment_name(name, prefix),
    }
}

/// Validates a name-like field against `rule`, reporting each reason at `node`.
pub(super) fn validate_name_field(node: &Node, rule: NameRule, value: &str, errs: &mut Errs) {
    for msg in name_errors(rule, value, false) {
        errs.push(invalid(&node.path, value, &msg));
    }
}

/// Which parts of `ObjectMeta` validation a kind gets.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetaRules {
    pub name: NameRule,
    /// Core's extra finalizer rule: unqualified names must be standard ones.
    pub kube_finalizers: bool,
}

impl MetaRules {
    pub const fn kube(name: NameRule) -> MetaRules {
        MetaRules {
            name,
            kube_finalizers: true,
        }
    }

    pub const fn generic(name: NameRule) -> MetaRules {
        MetaRules {
            name,
            kube_finalizers: false,
        }
    }
}

/// `ValidateObjectMeta` on create. `metadata` is the object's `metadata` node.
pub(super) fn validate_object_meta(metadata: &Node, rules: MetaRules, errs: &mut Errs) {
    let metadata = metadata.object(errs);
    let generate_name = metadata.field("generateName").string(errs);
    if !generate_name.is_empty() {
        for msg in name_errors(rules.name, generate_name, true) {
            errs.push(invalid(&metadata.field("generateName").path, generate_name, &msg));
        }
    }
    let name_node = metadata.field("name");
    let name = name_node.string(errs);
    if name.is_empty() {
        errs.push(required(&name_node.path, "name or generateName is required"));
    } else {
        for msg in name_errors(rules.name, name, false) {
            errs.push(invalid(&name_node.path, name, &msg));
        }
    }
    let namespace_node = metadata.field("namespace");
    let namespace = namespace_node.string(errs);
    if !namespace.is_empty() {
        for msg in formats::is_dns1123_label(namespace) {
            errs.push(invalid(&namespace_node.path, namespace, &msg));
        }
    }
    let generation = metadata.field("generation");
    if let Some(g) = generation.int(errs) {
        validate_nonnegative(&generation.path, g, errs);
    }
    validate_meta_common(&metadata, rules, errs);
}

/// The checks shared by create and update.
fn validate_meta_common(metadata: &Node, rules: MetaRules, errs: &mut Errs) {
    validate_labels(&metadata.field("labels"), errs);
    validate_annotations(&metadata.field("annotations"), errs);
    validate_owner_references(&metadata.field("ownerReferences"), errs);
    let finalizers = metadata.field("finalizers");
    validate_finalizers(&finalizers, errs);
    validate_managed_fields(&metadata.field("managedFields"), errs);
    if rules.kube_finalizers {
        for item in finalizers.peek_items() {
            validate_kube_finalizer_name(item.peek_str(), &item.path, errs);
        }
    }
}

/// `ValidateObjectMetaUpdate`: what may not change, plus the common checks.
/// Server-managed fields (uid, timestamps, generation, resourceVersion) are the
/// server's to set; only user-visible immutability is reported here.
pub(super) fn validate_object_meta_update(new: &Node, old: &Node, rules: MetaRules, errs: &mut Errs) {
    let new = new.object(errs);
    if !old.field("deletionTimestamp").peek_str().is_empty() {
        let old_finalizers: BTreeSet<&str> = old.field("finalizers").peek_strings().into_iter().collect();
        let added: BTreeSet<&str> = new
            .field("finalizers")
            .peek_strings()
            .into_iter()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            let added: Vec<&str> = added.into_iter().collect();
            errs.push(forbidden(
                &new.field("finalizers").path,
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(Some(&added))
                ),
            ));
        }
    }
    for field in ["name", "namespace", "uid"] {
        let now = new.field(field).peek_str();
        let before = old.field(field).peek_str();
        if !now.is_empty() && !before.is_empty() && now != before {
            errs.push(invalid(&new.field(field).path, now, "field is immutable"));
        }
    }
    validate_meta_common(&new, rules, errs);
}

pub(super) fn validate_nonnegative(path: &str, value: i64, errs: &mut Errs) {
    if value < 0 {
        errs.push(invalid(path, value, "must be greater than or equal to 0"));
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; errors at the map's path.
pub(super) fn validate_labels(node: &Node, errs: &mut Errs) {
    let Some(labels) = node.string_map(errs) else { return };
    validate_label_map(&node.path, &labels, errs);
}

pub(super) fn validate_label_map(path: &str, labels: &BTreeMap<&str, &str>, errs: &mut Errs) {
    for (k, v) in labels {
        validate_label_name(path, k, errs);
        for msg in formats::is_label_value(v) {
            errs.push(invalid(path, *v, &msg));
        }
    }
}

/// `ValidateLabelName`: a qualified name.
pub(super) fn validate_label_name(path: &str, name: &str, errs: &mut Errs) {
    for msg in formats::is_qualified_name(name) {
        errs.push(invalid(path, name, &msg));
    }
}

/// `ValidateAnnotations`: qualified keys (case-insensitive) and a total size limit.
pub(super) fn validate_annotations(node: &Node, errs: &mut Errs) {
    let Some(annotations) = node.string_map(errs) else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in &annotations {
        for msg in formats::is_qualified_name(&k.to_lowercase()) {
            errs.push(invalid(&node.path, *k, &msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(&node.path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn go_owner_reference(item: &Node) -> String {
    let s = |f: &str| go_quote(item.field(f).peek_str());
    let ptr = |f: &str| match item.field(f).value.and_then(serde_json::Value::as_bool) {
        Some(_) => "(*bool)(0xc000000000)".to_string(),
        None => "(*bool)(nil)".to_string(),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        s("apiVersion"),
        s("kind"),
        s("name"),
        s("uid"),
        ptr("controller"),
        ptr("blockOwnerDeletion")
    )
}

/// `ValidateOwnerReferences`: errors are reported at the list's path, not the item's.
fn validate_owner_references(node: &Node, errs: &mut Errs) {
    let items = node.items(errs);
    let mut first_controller: Option<String> = None;
    for item in &items {
        let item = item.object(errs);
        let api_version = item.field("apiVersion").string(errs);
        let kind = item.field("kind").string(errs);
        let version = match api_version.matches('/').count() {
            0 => api_version,
            1 => api_version.split_once('/').map(|(_, v)| v).unwrap_or(""),
            _ => "",
        };
        if version.is_empty() {
            errs.push(invalid(
                &child(&node.path, "apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(invalid(&child(&node.path, "kind"), kind, "must not be empty"));
        }
        for field in ["name", "uid"] {
            if item.field(field).string(errs).is_empty() {
                errs.push(invalid(&child(&node.path, field), "", "must not be empty"));
            }
        }
        let group = match api_version.split_once('/') {
            Some((g, _)) if api_version.matches('/').count() == 1 => g,
            _ => "",
        };
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(invalid(
                &node.path,
                raw(go_owner_reference(&item)),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if item.field("controller").bool(errs) == Some(true) {
            let name = format!("{kind}/{}", item.field("name").peek_str());
            match &first_controller {
                Some(first) => {
                    let all: Vec<String> = items.iter().map(go_owner_reference).collect();
                    errs.push(invalid(
                        &node.path,
                        raw(go_slice("v1.OwnerReference", Some(all))),
                        &format!(
                            "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {name}"
                        ),
                    ));
                }
                None => first_controller = Some(name),
            }
        }
    }
}

/// `ValidateFinalizers`: qualified names, reported at the list's path; orphan and foreground exclusive.
fn validate_finalizers(node: &Node, errs: &mut Errs) {
    let finalizers = node.strings(errs);
    for f in &finalizers {
        for msg in formats::is_qualified_name(f) {
            errs.push(invalid(&node.path, *f, &msg));
        }
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        errs.push(invalid(
            &node.path,
            raw(go_string_slice(Some(&finalizers))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// Core's rule: a finalizer without a `/` must be a standard one.
pub(super) fn validate_kube_finalizer_name(name: &str, path: &str, errs: &mut Errs) {
    if !name.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&name) {
        errs.push(invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// A finalizer name as core validates `spec.finalizers` of a Namespace.
pub(super) fn validate_finalizer_name(name: &str, path: &str, errs: &mut Errs) {
    for msg in formats::is_qualified_name(name) {
        errs.push(invalid(path, name, &msg));
    }
    validate_kube_finalizer_name(name, path, errs);
}

fn validate_managed_fields(node: &Node, errs: &mut Errs) {
    for item in node.items(errs) {
        let item = item.object(errs);
        let operation = item.field("operation");
        let op = operation.string(errs);
        if op != "Apply" && op != "Update" {
            errs.push(invalid(&operation.path, op, "must be `Apply` or `Update`"));
        }
        let fields_type = item.field("fieldsType");
        let ft = fields_type.string(errs);
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(invalid(&fields_type.path, ft, "must be `FieldsV1`"));
        }
        let manager = item.field("manager");
        let m = manager.string(errs);
        if m.len() > 128 {
            errs.push(too_long(&manager.path, 128));
        }
        for (i, c) in m.char_indices() {
            if c.is_control() {
                errs.push(invalid(
                    &manager.path,
                    m,
                    &format!("invalid character U+{:04X} (at position {i})", c as u32),
                ));
            }
        }
        let sub = item.field("subresource");
        if sub.string(errs).len() > 256 {
            errs.push(too_long(&sub.path, 256));
        }
    }
}

/// `ValidateQualifiedName` at a path.
pub(super) fn validate_qualified_name(value: &str, path: &str, errs: &mut Errs) {
    for msg in formats::is_qualified_name(value) {
        errs.push(invalid(path, value, &msg));
    }
}

/// `ValidateDNS1123Label` at a path.
pub(super) fn validate_dns_label(value: &str, path: &str, errs: &mut Errs) {
    for msg in formats::is_dns1123_label(value) {
        errs.push(invalid(path, value, &msg));
    }
}

/// `ValidateDNS1123Subdomain` at a path.
pub(super) fn validate_dns_subdomain(value: &str, path: &str, errs: &mut Errs) {
    for msg in formats::is_dns1123_subdomain(value) {
        errs.push(invalid(path, value, &msg));
    }
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// A `metav1.LabelSelector`, kept as written (to compare and to print as upstream does).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Selector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<Requirement>>,
    /// Whether `LabelSelectorAsSelector` would fail on it.
    pub unparseable: bool,
}

impl Selector {
    /// Reads a selector without reporting errors (see [`validate_label_selector`]).
    pub fn read(node: &Node) -> Option<Selector> {
        node.value?;
        let match_labels = node.field("matchLabels").peek_string_map().map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        });
        let exprs = node.field("matchExpressions");
        let match_expressions = exprs.present().then(|| {
            exprs
                .peek_items()
                .iter()
                .map(|e| Requirement {
                    key: e.field("key").peek_str().to_string(),
                    operator: e.field("operator").peek_str().to_string(),
                    values: e
                        .field("values")
                        .present()
                        .then(|| e.field("values").peek_strings().iter().map(|s| s.to_string()).collect()),
                })
                .collect::<Vec<_>>()
        });
        let unparseable = match_labels
            .iter()
            .flatten()
            .any(|(k, v)| !formats::is_qualified_name(k).is_empty() || !formats::is_label_value(v).is_empty())
            || match_expressions.iter().flatten().any(requirement_unparseable);
        Some(Selector {
            match_labels,
            match_expressions,
            unparseable,
        })
    }

    /// No requirements at all: `LabelSelectorAsSelector` gives "everything".
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && self.match_expressions.as_ref().is_none_or(Vec::is_empty)
    }

    /// Whether the selector matches a label set.
    pub fn matches(&self, labels: &BTreeMap<&str, &str>) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k.as_str()) == Some(&v.as_str()));
        labels_ok
            && self.match_expressions.iter().flatten().all(|r| {
                let values = r.values.as_deref().unwrap_or(&[]);
                let actual = labels.get(r.key.as_str());
                match r.operator.as_str() {
                    "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
                    "NotIn" => actual.is_none_or(|a| values.iter().all(|v| v != a)),
                    "Exists" => actual.is_some(),
                    "DoesNotExist" => actual.is_none(),
                    _ => false,
                }
            })
    }

    /// The selector as Go's `%#v` prints a `v1.LabelSelector`.
    pub fn go_repr(&self) -> String {
        let labels = self.match_labels.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<BTreeMap<_, _>>()
        });
        let exprs = self.match_expressions.as_ref().map(|list| {
            list.iter()
                .map(|r| {
                    let values: Option<Vec<&str>> = r.values.as_ref().map(|v| v.iter().map(String::as_str).collect());
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(&r.key),
                        go_quote(&r.operator),
                        go_string_slice(values.as_deref())
                    )
                })
                .collect()
        });
        format!(
            "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
            go_string_map(labels.as_ref()),
            go_slice("v1.LabelSelectorRequirement", exprs)
        )
    }
}

fn requirement_unparseable(r: &Requirement) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let operator_ok = match r.operator.as_str() {
        "In" | "NotIn" => !values.is_empty(),
        "Exists" | "DoesNotExist" => values.is_empty(),
        _ => false,
    };
    !operator_ok
        || !formats::is_qualified_name(&r.key).is_empty()
        || values.iter().any(|v| !formats::is_label_value(v).is_empty())
}

/// `ValidateLabelSelector` (strict about label values, as upstream is for new objects).
pub(super) fn validate_label_selector(node: &Node, errs: &mut Errs) {
    let node = node.object(errs);
    if !node.present() {
        return;
    }
    validate_labels(&node.field("matchLabels"), errs);
    let exprs = node.field("matchExpressions");
    for item in exprs.items(errs) {
        let item = item.object(errs);
        let operator = item.field("operator");
        let op = operator.string(errs);
        let values_node = item.field("values");
        let values = values_node.strings(errs);
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        &values_node.path,
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        &values_node.path,
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(invalid(&operator.path, op, "not a valid selector operator")),
        }
        let key = item.field("key");
        validate_label_name(&key.path, key.string(errs), errs);
        for (i, v) in values.iter().enumerate() {
            for msg in formats::is_label_value(v) {
                errs.push(invalid(&index(&values_node.path, i), *v, &msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_renders_like_go() {
        let v = json!({"matchLabels": {"app": "x"}});
        let s = Selector::read(&Node::root(&v)).unwrap();
        assert_eq!(
            s.go_repr(),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
        let labels: BTreeMap<&str, &str> = [("app", "x"), ("b", "c")].into_iter().collect();
        assert!(s.matches(&labels));
        assert_eq!(mask_trailing_dash("abc-"), "aba");
        assert!(name_errors(NameRule::Subdomain, "web-", true).is_empty());
    }
}
