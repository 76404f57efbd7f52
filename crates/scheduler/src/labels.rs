//! Label selectors (`metav1.LabelSelector`) and node selector requirements,
//! compiled once per pod so that filters over thousands of nodes only
//! compare strings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// One compiled requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    /// An unknown operator, which upstream rejects; it matches nothing.
    Invalid,
}

/// A compiled `metav1.LabelSelector`. A missing selector selects nothing
/// (as `LabelSelectorAsSelector(nil)` upstream); an empty one selects everything.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Nothing,
    Requirements(Vec<Requirement>),
}

impl Selector {
    pub fn new(selector: Option<&LabelSelector>) -> Self {
        let Some(selector) = selector else {
            return Selector::Nothing;
        };
        let mut reqs: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let key = expr.key.clone();
            reqs.push(match expr.operator.as_str() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                _ => Requirement::Invalid,
            });
        }
        Selector::Requirements(reqs)
    }

    /// Adds `key in (value)` requirements, as `matchLabelKeys` does.
    pub fn with_label_values(mut self, keys: &[String], labels: &Labels) -> Self {
        if let Selector::Requirements(reqs) = &mut self {
            for key in keys {
                if let Some(value) = labels.get(key) {
                    reqs.push(Requirement::In(key.clone(), vec![value.clone()]));
                }
            }
        }
        self
    }

    /// Adds `key notin (value)` requirements, as `mismatchLabelKeys` does.
    pub fn without_label_values(mut self, keys: &[String], labels: &Labels) -> Self {
        if let Selector::Requirements(reqs) = &mut self {
            for key in keys {
                if let Some(value) = labels.get(key) {
                    reqs.push(Requirement::NotIn(key.clone(), vec![value.clone()]));
                }
            }
        }
        self
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Requirements(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Invalid => false,
        }
    }
}

/// Whether a node matches one `NodeSelectorRequirement` on its labels
/// (or, for `matchFields`, on `metadata.name` given as a one-entry map).
pub fn node_requirement_matches(req: &NodeSelectorRequirement, labels: &Labels) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => compare_int(&req.operator, value, values),
        _ => false,
    }
}

/// `Gt`/`Lt`: both the label and the single value must parse as integers.
fn compare_int(op: &str, value: Option<&String>, values: &[String]) -> bool {
    let [bound] = values else { return false };
    let (Some(Ok(label)), Ok(bound)) = (value.map(|v| v.parse::<i64>()), bound.parse::<i64>()) else {
        return false;
    };
    if op == "Gt" { label > bound } else { label < bound }
}

/// Whether a node matches one term: all its expressions and fields. A term
/// with neither matches nothing, as upstream.
pub fn node_term_matches(term: &NodeSelectorTerm, labels: &Labels, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name_fields = Labels::from([("metadata.name".to_string(), node_name.to_string())]);
    exprs.iter().all(|r| node_requirement_matches(r, labels))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && node_requirement_matches(r, &name_fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let sel = |ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(labels(ml)),
            match_expressions: Some(me),
        };
        let cases = [
            (Selector::new(None), false),
            (Selector::new(Some(&LabelSelector::default())), true),
            (Selector::new(Some(&sel(&[("app", "web")], vec![]))), true),
            (Selector::new(Some(&sel(&[("app", "db")], vec![]))), false),
            (
                Selector::new(Some(&sel(&[], vec![expr("tier", "In", &["front", "back"])]))),
                true,
            ),
            (
                Selector::new(Some(&sel(&[], vec![expr("tier", "NotIn", &["front"])]))),
                false,
            ),
            (
                Selector::new(Some(&sel(&[], vec![expr("x", "NotIn", &["front"])]))),
                true,
            ),
            (Selector::new(Some(&sel(&[], vec![expr("x", "Exists", &[])]))), false),
            (
                Selector::new(Some(&sel(&[], vec![expr("x", "DoesNotExist", &[])]))),
                true,
            ),
            (Selector::new(Some(&sel(&[], vec![expr("x", "Bogus", &[])]))), false),
        ];
        for (i, (selector, want)) in cases.iter().enumerate() {
            assert_eq!(selector.matches(&l), *want, "case {i}");
        }
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let own = labels(&[("pod-template-hash", "abc")]);
        let s = Selector::new(Some(&LabelSelector::default())).with_label_values(&["pod-template-hash".into()], &own);
        assert!(s.matches(&own));
        assert!(!s.matches(&labels(&[("pod-template-hash", "def")])));
        let s =
            Selector::new(Some(&LabelSelector::default())).without_label_values(&["pod-template-hash".into()], &own);
        assert!(!s.matches(&own));
    }

    #[test]
    fn node_requirements() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let cases = [
            (req("zone", "In", &["a", "b"]), true),
            (req("zone", "NotIn", &["a"]), false),
            (req("gpu", "NotIn", &["a"]), true),
            (req("zone", "Exists", &[]), true),
            (req("zone", "DoesNotExist", &[]), false),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Lt", &["4"]), false),
            (req("zone", "Gt", &["4"]), false),
            (req("cores", "Gt", &["4", "5"]), false),
        ];
        for (i, (r, want)) in cases.iter().enumerate() {
            assert_eq!(node_requirement_matches(r, &l), *want, "case {i}");
        }
    }

    #[test]
    fn node_terms() {
        let l = labels(&[("zone", "a")]);
        let empty = NodeSelectorTerm::default();
        assert!(!node_term_matches(&empty, &l, "n1"));
        let by_name = NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec!["n1".into()]),
            }]),
            ..Default::default()
        };
        assert!(node_term_matches(&by_name, &l, "n1"));
        assert!(!node_term_matches(&by_name, &l, "n2"));
    }
}
