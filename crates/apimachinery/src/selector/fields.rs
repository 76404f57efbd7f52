//! Field selectors: upstream `k8s.io/apimachinery/pkg/fields` (`selector.go`),
//! plus the per-kind tables of selectable fields.
//!
//! Upstream splits the per-kind knowledge in two: the field label conversion
//! functions registered in each API group's scheme decide which labels a
//! request may use (and word the error for the others), and each registry's
//! `ToSelectableFields` renders the values compared against. Both live in
//! the tables here, so a kind's accepted fields and their values cannot
//! drift apart.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::{SelectorError, go_quote};

/// `=` (also written `==`) or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One term of a field selector: a field, `=` or `!=`, and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
}

impl FieldRequirement {
    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a field whose value is `actual` satisfies the term.
    pub fn matches_value(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// Upstream `hasTerm`/`notHasTerm` `String()`: `field=value`, value escaped.
impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{operator}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its terms, in upstream's order (the
/// raw terms sorted). The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything (upstream `fields.Everything()`).
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Upstream `fields.ParseSelector`, the `?fieldSelector=` syntax:
    /// comma-separated `field=value`, `field==value` or `field!=value`, with
    /// `\,`, `\=` and `\\` escaping in values. Nothing is trimmed.
    pub fn parse(selector: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_term(term) else {
                let message = format!("invalid selector: '{selector}'; can't understand '{term}'");
                return Err(SelectorError::Field(message));
            };
            let value = unescape_value(raw).map_err(SelectorError::Field)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector has no terms, i.e. matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether an object with fields looked up by `get` satisfies every term.
    /// An absent field (`None`) compares as the empty string, as upstream's
    /// `fields.Set` lookups do.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(&get(&r.field).unwrap_or_default()))
    }

    /// Whether `object`, of kind `kind` in API group `group`, satisfies the
    /// selector, its fields read by [`field_value`]. Fails like
    /// [`validate_fields`] on a field the kind does not support.
    pub fn matches_object(&self, group: &str, kind: &str, object: &Value) -> Result<bool, SelectorError> {
        for requirement in &self.requirements {
            let actual = field_value(group, kind, object, &requirement.field)?;
            if !requirement.matches_value(&actual.unwrap_or_default()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The value the selector requires `field` to have, if a `=` term pins
    /// it (upstream `RequiresExactMatch`), e.g. `metadata.name` for a get-like list.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

/// Upstream `Selector.String()`: the terms, comma-separated.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(selector: &str) -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(selector)
    }
}

/// Upstream `fields.EscapeValue`: backslash-escapes `\`, `,` and `=`.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The comma-separated terms; escaped commas stay inside a term, escape included.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(selector.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(selector.get(start..).unwrap_or_default());
    terms
}

/// Splits a term at the first operator; the field cannot be escaped.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = term.get(i..).unwrap_or_default();
        if let Some((op, operator)) = OPERATORS.iter().find(|(op, _)| rest.starts_with(op)) {
            let value = term.get(i + op.len()..).unwrap_or_default();
            return Some((term.get(..i).unwrap_or_default(), *operator, value));
        }
    }
    None
}

/// Upstream `fields.UnescapeValue`, with its error messages (the unescaped
/// character prints as its code point, as Go's `%v` of a rune does).
fn unescape_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            value.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => value.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(value)
}

// ---- Per-kind selectable fields ----

/// What a field label reads in a kind's field set.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// The first present scalar among JSON pointers (several pointers cover
    /// object shapes that share one field set, e.g. core and events.k8s.io
    /// Events), rendered as upstream's field set does; `default` when absent
    /// (Go's zero value: `""`, `"0"`, `"false"`).
    Value {
        pointers: &'static [&'static str],
        default: &'static str,
    },
    /// A Pod's `status.podIP`: the first of `status.podIPs`, else `status.podIP`.
    PodIp,
    /// An Event's `source`: the source component, else the reporting controller.
    EventSource,
    /// Accepted by upstream's conversion but absent from the field set, so
    /// always compared as `""` (a Pod's `status.podIPs`).
    Unset,
}

const fn text(pointer: &'static [&'static str]) -> Field {
    Field::Value {
        pointers: pointer,
        default: "",
    }
}

const NAME: Field = text(&["/metadata/name"]);
const NAMESPACE: Field = text(&["/metadata/namespace"]);
const REASON: Field = text(&["/reason"]);
const TYPE: Field = text(&["/type"]);
const INVOLVED_KIND: Field = text(&["/involvedObject/kind", "/regarding/kind"]);
const INVOLVED_NAMESPACE: Field = text(&["/involvedObject/namespace", "/regarding/namespace"]);
const INVOLVED_NAME: Field = text(&["/involvedObject/name", "/regarding/name"]);
const INVOLVED_UID: Field = text(&["/involvedObject/uid", "/regarding/uid"]);
const INVOLVED_API_VERSION: Field = text(&["/involvedObject/apiVersion", "/regarding/apiVersion"]);
const INVOLVED_RESOURCE_VERSION: Field = text(&["/involvedObject/resourceVersion", "/regarding/resourceVersion"]);
const INVOLVED_FIELD_PATH: Field = text(&["/involvedObject/fieldPath", "/regarding/fieldPath"]);
const REPORTING: Field = text(&["/reportingComponent", "/reportingController"]);

/// How upstream words the error for a field a kind does not support.
#[derive(Debug, Clone, Copy)]
enum Unsupported {
    /// `field label not supported: <field>` (most registered conversions).
    NotSupported,
    /// batch/v1 Job's own wording.
    BatchJob,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for kinds without a
    /// registered conversion: only `metadata.name` and `metadata.namespace`.
    Default,
}

/// A kind's selectable fields: the labels a request may use, each with what
/// it reads (upstream's label conversion maps `spec.host` and the
/// events.k8s.io names onto the field set's own).
struct KindFields {
    group: &'static str,
    kind: &'static str,
    fields: &'static [(&'static str, Field)],
    unsupported: Unsupported,
}

const POD: &[(&str, Field)] = &[
    ("metadata.name", NAME),
    ("metadata.namespace", NAMESPACE),
    ("spec.nodeName", text(&["/spec/nodeName"])),
    ("spec.host", text(&["/spec/nodeName"])),
    ("spec.restartPolicy", text(&["/spec/restartPolicy"])),
    ("spec.schedulerName", text(&["/spec/schedulerName"])),
    ("spec.serviceAccountName", text(&["/spec/serviceAccountName"])),
    (
        "spec.hostNetwork",
        Field::Value {
            pointers: &["/spec/hostNetwork"],
            default: "false",
        },
    ),
    ("status.phase", text(&["/status/phase"])),
    ("status.podIP", Field::PodIp),
    ("status.podIPs", Field::Unset),
    ("status.nominatedNodeName", text(&["/status/nominatedNodeName"])),
];

const NODE: &[(&str, Field)] = &[
    ("metadata.name", NAME),
    (
        "spec.unschedulable",
        Field::Value {
            pointers: &["/spec/unschedulable"],
            default: "false",
        },
    ),
];

const REPLICATION_CONTROLLER: &[(&str, Field)] = &[
    ("metadata.name", NAME),
    ("metadata.namespace", NAMESPACE),
    (
        "status.replicas",
        Field::Value {
            pointers: &["/status/replicas"],
            default: "0",
        },
    ),
];

const EVENT: &[(&str, Field)] = &[
    ("involvedObject.kind", INVOLVED_KIND),
    ("involvedObject.namespace", INVOLVED_NAMESPACE),
    ("involvedObject.name", INVOLVED_NAME),
    ("involvedObject.uid", INVOLVED_UID),
    ("involvedObject.apiVersion", INVOLVED_API_VERSION),
    ("involvedObject.resourceVersion", INVOLVED_RESOURCE_VERSION),
    ("involvedObject.fieldPath", INVOLVED_FIELD_PATH),
    ("reason", REASON),
    ("reportingComponent", REPORTING),
    ("source", Field::EventSource),
    ("type", TYPE),
    ("metadata.namespace", NAMESPACE),
    ("metadata.name", NAME),
];

const EVENTS_K8S_IO_EVENT: &[(&str, Field)] = &[
    ("reason", REASON),
    ("regarding.kind", INVOLVED_KIND),
    ("regarding.namespace", INVOLVED_NAMESPACE),
    ("regarding.name", INVOLVED_NAME),
    ("regarding.uid", INVOLVED_UID),
    ("regarding.apiVersion", INVOLVED_API_VERSION),
    ("regarding.resourceVersion", INVOLVED_RESOURCE_VERSION),
    ("regarding.fieldPath", INVOLVED_FIELD_PATH),
    ("reportingController", REPORTING),
    ("source", Field::EventSource),
    ("type", TYPE),
    ("metadata.namespace", NAMESPACE),
    ("metadata.name", NAME),
];

const NAMESPACE_KIND: &[(&str, Field)] = &[("status.phase", text(&["/status/phase"])), ("metadata.name", NAME)];

const SECRET: &[(&str, Field)] = &[
    ("type", TYPE),
    ("metadata.namespace", NAMESPACE),
    ("metadata.name", NAME),
];

const SERVICE: &[(&str, Field)] = &[
    ("metadata.namespace", NAMESPACE),
    ("metadata.name", NAME),
    ("spec.clusterIP", text(&["/spec/clusterIP"])),
    ("spec.type", text(&["/spec/type"])),
];

const JOB: &[(&str, Field)] = &[
    ("metadata.name", NAME),
    ("metadata.namespace", NAMESPACE),
    (
        "status.successful",
        Field::Value {
            pointers: &["/status/succeeded"],
            default: "0",
        },
    ),
];

const CERTIFICATE_SIGNING_REQUEST: &[(&str, Field)] = &[
    ("metadata.name", NAME),
    ("spec.signerName", text(&["/spec/signerName"])),
];

const OBJECT_META: &[(&str, Field)] = &[("metadata.name", NAME), ("metadata.namespace", NAMESPACE)];

const fn kind(
    group: &'static str,
    kind: &'static str,
    fields: &'static [(&'static str, Field)],
    unsupported: Unsupported,
) -> KindFields {
    KindFields {
        group,
        kind,
        fields,
        unsupported,
    }
}

/// The kinds with a registered field label conversion (Kubernetes 1.33).
/// apps/v1 has none: upstream rejects even `status.replicas` on ReplicaSets.
const KINDS: &[KindFields] = &[
    kind("", "Pod", POD, Unsupported::NotSupported),
    kind("", "Node", NODE, Unsupported::NotSupported),
    kind(
        "",
        "ReplicationController",
        REPLICATION_CONTROLLER,
        Unsupported::NotSupported,
    ),
    kind("", "Event", EVENT, Unsupported::NotSupported),
    kind("", "Namespace", NAMESPACE_KIND, Unsupported::NotSupported),
    kind("", "Secret", SECRET, Unsupported::NotSupported),
    kind("", "Service", SERVICE, Unsupported::NotSupported),
    kind("batch", "Job", JOB, Unsupported::BatchJob),
    kind(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        CERTIFICATE_SIGNING_REQUEST,
        Unsupported::NotSupported,
    ),
    kind("events.k8s.io", "Event", EVENTS_K8S_IO_EVENT, Unsupported::NotSupported),
];

const DEFAULT_KIND: KindFields = kind("", "", OBJECT_META, Unsupported::Default);

impl KindFields {
    fn of(group: &str, kind: &str) -> &'static KindFields {
        KINDS
            .iter()
            .find(|k| k.group == group && k.kind == kind)
            .unwrap_or(&DEFAULT_KIND)
    }

    fn field(&self, label: &str) -> Result<Field, SelectorError> {
        match self.fields.iter().find(|(name, _)| *name == label) {
            Some((_, field)) => Ok(*field),
            None => Err(SelectorError::UnsupportedField {
                field: label.to_string(),
                message: self.unsupported_message(label),
            }),
        }
    }

    fn unsupported_message(&self, label: &str) -> String {
        match self.unsupported {
            Unsupported::NotSupported => format!("field label not supported: {label}"),
            Unsupported::BatchJob => format!("field label {} not supported for batchv1.Job", go_quote(label)),
            Unsupported::Default => format!(
                r#"{} is not a known field selector: only "metadata.name", "metadata.namespace""#,
                go_quote(label)
            ),
        }
    }
}

/// The value of `field` on `object` (of kind `kind` in API group `group`, in
/// that group's JSON shape), as upstream's field set renders it: strings as
/// is, integers in decimal, booleans `true`/`false`, an absent field as Go's
/// zero value (`""`, `"0"`, `"false"`). `None` for a field upstream accepts
/// but never sets (it compares as `""`).
///
/// Fails with upstream's message when the kind cannot be selected on
/// `field` (the API server answers 400 BadRequest with it). Kinds without a
/// registered conversion (including custom resources, which have their own
/// rules) support only `metadata.name` and `metadata.namespace`.
pub fn field_value(group: &str, kind: &str, object: &Value, field: &str) -> Result<Option<String>, SelectorError> {
    let field = KindFields::of(group, kind).field(field)?;
    Ok(render(field, object))
}

/// Rejects a selector naming a field the kind cannot be selected on, with
/// upstream's message for the first such term, before anything is listed.
pub fn validate_fields(group: &str, kind: &str, selector: &FieldSelector) -> Result<(), SelectorError> {
    let kind = KindFields::of(group, kind);
    selector
        .requirements()
        .iter()
        .try_for_each(|r| kind.field(&r.field).map(drop))
}

fn render(field: Field, object: &Value) -> Option<String> {
    match field {
        Field::Value { pointers, default } => Some(first_scalar(object, pointers).unwrap_or_else(|| default.into())),
        Field::PodIp => Some(pod_ip(object)),
        Field::EventSource => Some(event_source(object)),
        Field::Unset => None,
    }
}

fn first_scalar(object: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| object.pointer(p).and_then(scalar))
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Upstream reads the internal `PodIPs[0]`, which conversion fills from the
/// v1 `podIP` when `podIPs` is empty.
fn pod_ip(pod: &Value) -> String {
    let first = pod.pointer("/status/podIPs/0");
    let ip = match first {
        Some(first) => first.get("ip"),
        None => pod.pointer("/status/podIP"),
    };
    ip.and_then(scalar).unwrap_or_default()
}

fn event_source(event: &Value) -> String {
    let source = first_scalar(event, &["/source/component", "/deprecatedSource/component"]).unwrap_or_default();
    if !source.is_empty() {
        return source;
    }
    first_scalar(event, &["/reportingComponent", "/reportingController"]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_to_canonical_string() {
        let cases = [
            ("", ""),
            (",", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("a=", "a="),
            ("b=2,a=1", "a=1,b=2"),
            ("a=b,,c=d", "a=b,c=d"),
            (r"a=x\,y", r"a=x\,y"),
            (r"a=x\=y", r"a=x\=y"),
            (r"a=x\\y", r"a=x\\y"),
            (r"b=y,a=x\\", r"a=x\\,b=y"),
            ("metadata.name = foo", "metadata.name = foo"),
            ("a=é", "a=é"),
        ];
        for (input, want) in cases {
            match FieldSelector::parse(input) {
                Ok(selector) => assert_eq!(selector.to_string(), want, "{input:?}"),
                Err(e) => panic!("{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn parses_terms_and_unescapes_values() {
        let selector = FieldSelector::parse(r"x!=a\,b\=c\\d,metadata.name = foo").unwrap();
        let terms: Vec<(&str, FieldOperator, &str)> = selector
            .requirements()
            .iter()
            .map(|r| (r.field(), r.operator(), r.value()))
            .collect();
        assert_eq!(
            terms,
            [
                ("metadata.name ", FieldOperator::Equals, " foo"),
                ("x", FieldOperator::NotEquals, r"a,b=c\d"),
            ]
        );
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
    }

    #[test]
    fn rejects_bad_selectors_with_upstream_messages() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("a=b=c", "invalid field selector: unescaped character in value: 61"),
            ("a!=b=c", "invalid field selector: unescaped character in value: 61"),
            (r"a=b\", r"invalid field selector: invalid escape sequence: \"),
            (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
            (r"a=b\é", r"invalid field selector: invalid escape sequence: \é"),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input).unwrap_err();
            assert!(matches!(err, SelectorError::Field(_)));
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn absent_fields_compare_as_empty() {
        let get = |field: &str| (field == "present").then(|| "x".to_string());
        let cases = [
            ("", true),
            ("present=x", true),
            ("present==x", true),
            ("present!=x", false),
            ("absent=", true),
            ("absent!=", false),
            ("absent=x", false),
            ("absent!=x", true),
            ("present=x,absent=", true),
            ("present=x,absent=y", false),
        ];
        for (input, want) in cases {
            assert_eq!(FieldSelector::parse(input).unwrap().matches(get), want, "{input:?}");
        }
    }

    #[test]
    fn requires_exact_match() {
        let selector = FieldSelector::parse("metadata.name!=a,metadata.name=b,spec.x=c").unwrap();
        assert_eq!(selector.requires_exact_match("metadata.name"), Some("b"));
        assert_eq!(selector.requires_exact_match("spec.x"), Some("c"));
        assert_eq!(selector.requires_exact_match("spec.y"), None);
        assert!(FieldSelector::everything().is_empty());
    }

    fn value(group: &str, kind: &str, object: &Value, field: &str) -> Option<String> {
        field_value(group, kind, object, field).unwrap_or_else(|e| panic!("{kind} {field}: {e}"))
    }

    #[test]
    fn pod_fields() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "sa", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "nominatedNodeName": "n2"}
        });
        let cases = [
            ("metadata.name", Some("web")),
            ("metadata.namespace", Some("prod")),
            ("spec.nodeName", Some("n1")),
            ("spec.host", Some("n1")),
            ("spec.restartPolicy", Some("Always")),
            ("spec.schedulerName", Some("default-scheduler")),
            ("spec.serviceAccountName", Some("sa")),
            ("spec.hostNetwork", Some("true")),
            ("status.phase", Some("Running")),
            ("status.podIP", Some("10.0.0.1")),
            ("status.podIPs", None),
            ("status.nominatedNodeName", Some("n2")),
        ];
        for (field, want) in cases {
            assert_eq!(value("", "Pod", &pod, field).as_deref(), want, "{field}");
        }
        let bare = json!({"metadata": {"name": "p"}});
        assert_eq!(value("", "Pod", &bare, "spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(value("", "Pod", &bare, "spec.nodeName").as_deref(), Some(""));
        assert_eq!(value("", "Pod", &bare, "status.podIP").as_deref(), Some(""));
        let legacy = json!({"status": {"podIP": "10.1.1.1"}});
        assert_eq!(value("", "Pod", &legacy, "status.podIP").as_deref(), Some("10.1.1.1"));
    }

    #[test]
    fn event_fields_in_both_groups() {
        let core = json!({
            "metadata": {"name": "e1", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "web", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{c}"},
            "reason": "Started", "reportingComponent": "kubelet", "source": {"component": "kubelet-src"},
            "type": "Normal"
        });
        let events = json!({
            "metadata": {"name": "e1", "namespace": "ns"},
            "regarding": {"kind": "Pod", "namespace": "ns", "name": "web", "uid": "u1",
                          "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{c}"},
            "reason": "Started", "reportingController": "kubelet",
            "deprecatedSource": {"component": "kubelet-src"}, "type": "Normal"
        });
        let pairs = [
            ("involvedObject.kind", "regarding.kind", "Pod"),
            ("involvedObject.namespace", "regarding.namespace", "ns"),
            ("involvedObject.name", "regarding.name", "web"),
            ("involvedObject.uid", "regarding.uid", "u1"),
            ("involvedObject.apiVersion", "regarding.apiVersion", "v1"),
            ("involvedObject.resourceVersion", "regarding.resourceVersion", "42"),
            ("involvedObject.fieldPath", "regarding.fieldPath", "spec.containers{c}"),
            ("reason", "reason", "Started"),
            ("reportingComponent", "reportingController", "kubelet"),
            ("source", "source", "kubelet-src"),
            ("type", "type", "Normal"),
            ("metadata.name", "metadata.name", "e1"),
            ("metadata.namespace", "metadata.namespace", "ns"),
        ];
        for (core_field, events_field, want) in pairs {
            for object in [&core, &events] {
                assert_eq!(
                    value("", "Event", object, core_field).as_deref(),
                    Some(want),
                    "{core_field}"
                );
                let got = value("events.k8s.io", "Event", object, events_field);
                assert_eq!(got.as_deref(), Some(want), "{events_field}");
            }
        }
        let no_source = json!({"reportingController": "ctrl"});
        assert_eq!(value("", "Event", &no_source, "source").as_deref(), Some("ctrl"));
        let err = field_value("events.k8s.io", "Event", &events, "involvedObject.kind").unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: involvedObject.kind");
        let err = field_value("", "Event", &core, "regarding.kind").unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: regarding.kind");
    }

    #[test]
    fn other_kinds_fields() {
        let cases = [
            (
                "",
                "Node",
                json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable",
                "true",
            ),
            ("", "Node", json!({"spec": {}}), "spec.unschedulable", "false"),
            ("", "Node", json!({"metadata": {"name": "n1"}}), "metadata.name", "n1"),
            (
                "",
                "Namespace",
                json!({"status": {"phase": "Terminating"}}),
                "status.phase",
                "Terminating",
            ),
            (
                "",
                "Secret",
                json!({"type": "kubernetes.io/tls"}),
                "type",
                "kubernetes.io/tls",
            ),
            (
                "",
                "Service",
                json!({"spec": {"clusterIP": "None"}}),
                "spec.clusterIP",
                "None",
            ),
            (
                "",
                "Service",
                json!({"spec": {"type": "NodePort"}}),
                "spec.type",
                "NodePort",
            ),
            (
                "",
                "ReplicationController",
                json!({"status": {"replicas": 3}}),
                "status.replicas",
                "3",
            ),
            ("", "ReplicationController", json!({}), "status.replicas", "0"),
            (
                "batch",
                "Job",
                json!({"status": {"succeeded": 2}}),
                "status.successful",
                "2",
            ),
            ("batch", "Job", json!({"status": {}}), "status.successful", "0"),
            (
                "certificates.k8s.io",
                "CertificateSigningRequest",
                json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}}),
                "spec.signerName",
                "kubernetes.io/kubelet-serving",
            ),
            (
                "apps",
                "Deployment",
                json!({"metadata": {"name": "d"}}),
                "metadata.name",
                "d",
            ),
            (
                "apps",
                "Deployment",
                json!({"metadata": {"namespace": "ns"}}),
                "metadata.namespace",
                "ns",
            ),
            (
                "",
                "PersistentVolume",
                json!({"metadata": {"name": "pv"}}),
                "metadata.namespace",
                "",
            ),
        ];
        for (group, kind, object, field, want) in cases {
            assert_eq!(
                value(group, kind, &object, field).as_deref(),
                Some(want),
                "{kind} {field}"
            );
        }
    }

    #[test]
    fn unsupported_fields_use_upstream_messages() {
        let default =
            |f: &str| format!(r#""{f}" is not a known field selector: only "metadata.name", "metadata.namespace""#);
        let cases = [
            ("", "Pod", "spec.foo", "field label not supported: spec.foo".to_string()),
            (
                "",
                "Node",
                "metadata.namespace",
                "field label not supported: metadata.namespace".to_string(),
            ),
            (
                "",
                "Namespace",
                "metadata.namespace",
                "field label not supported: metadata.namespace".to_string(),
            ),
            ("", "Secret", "data", "field label not supported: data".to_string()),
            (
                "certificates.k8s.io",
                "CertificateSigningRequest",
                "metadata.namespace",
                "field label not supported: metadata.namespace".to_string(),
            ),
            (
                "batch",
                "Job",
                "status.active",
                r#"field label "status.active" not supported for batchv1.Job"#.to_string(),
            ),
            ("batch", "CronJob", "status.successful", default("status.successful")),
            ("apps", "ReplicaSet", "status.replicas", default("status.replicas")),
            ("networking.k8s.io", "Ingress", "foo.bar", default("foo.bar")),
            ("", "ConfigMap", "metadata.name ", default("metadata.name ")),
            ("example.com", "Widget", "spec.size", default("spec.size")),
        ];
        for (group, kind, field, want) in cases {
            let err = field_value(group, kind, &json!({}), field).unwrap_err();
            assert_eq!(err.to_string(), want, "{kind} {field}");
            assert_eq!(
                err,
                SelectorError::UnsupportedField {
                    field: field.to_string(),
                    message: want
                }
            );
        }
    }

    #[test]
    fn validates_and_matches_objects() {
        let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Running").unwrap();
        assert_eq!(validate_fields("", "Pod", &selector), Ok(()));
        let err = validate_fields("apps", "Deployment", &selector).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        let pending = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}});
        let running = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let elsewhere = json!({"spec": {"nodeName": "n2"}, "status": {"phase": "Pending"}});
        assert_eq!(selector.matches_object("", "Pod", &pending), Ok(true));
        assert_eq!(selector.matches_object("", "Pod", &running), Ok(false));
        assert_eq!(selector.matches_object("", "Pod", &elsewhere), Ok(false));
        assert!(selector.matches_object("", "Node", &pending).is_err());

        let unscheduled = FieldSelector::parse("spec.nodeName=").unwrap();
        assert_eq!(unscheduled.matches_object("", "Pod", &json!({"spec": {}})), Ok(true));
        let no_ips = FieldSelector::parse("status.podIPs=").unwrap();
        assert_eq!(no_ips.matches_object("", "Pod", &pending), Ok(true));
        let cordoned = FieldSelector::parse("spec.unschedulable=true").unwrap();
        assert_eq!(cordoned.matches_object("", "Node", &json!({"spec": {}})), Ok(false));
        let cluster_scoped = FieldSelector::parse("metadata.namespace=").unwrap();
        assert_eq!(
            cluster_scoped.matches_object("", "PersistentVolume", &json!({})),
            Ok(true)
        );
    }

    fn terms(selector: &FieldSelector) -> Vec<(String, String, bool)> {
        let mut terms: Vec<_> = selector
            .requirements()
            .iter()
            .map(|r| (r.field.clone(), r.value.clone(), r.operator == FieldOperator::Equals))
            .collect();
        terms.sort();
        terms
    }

    /// Hostile short inputs never panic; whatever parses prints to a
    /// selector with the same terms (upstream orders terms by their raw
    /// text, so printing may reorder them).
    #[test]
    fn never_panics_and_round_trips() {
        let alphabet = ["a", "=", "!", ",", "\\", "é", " ", "\0"];
        let mut level = vec![String::new()];
        for _ in 0..5 {
            level = level
                .iter()
                .flat_map(|prefix| alphabet.iter().map(move |piece| format!("{prefix}{piece}")))
                .collect();
            for input in &level {
                let Ok(selector) = FieldSelector::parse(input) else {
                    continue;
                };
                let printed = selector.to_string();
                let again = FieldSelector::parse(&printed).unwrap_or_else(|e| panic!("{input:?} -> {printed:?}: {e}"));
                assert_eq!(terms(&again), terms(&selector), "{input:?} -> {printed:?}");
            }
        }
    }
}
