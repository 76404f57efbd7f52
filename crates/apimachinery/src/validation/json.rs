//! A typed, never-panicking window onto the JSON form of an object.
//!
//! Validation runs on the JSON body, where any field may hold the wrong type.
//! A [`Node`] is a value (possibly absent) plus its field path; reading it as
//! the expected type yields the value or records an `Invalid value` error at
//! that path and yields nothing, so callers never panic and report every
//! problem where upstream's decoder would.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field::{Errs, child, index, invalid, key, raw};

/// A JSON value (absent or `null` is `None`) and where it sits in the object.
#[derive(Debug, Clone)]
pub(super) struct Node<'a> {
    pub value: Option<&'a Value>,
    pub path: String,
}

fn type_error(path: &str, value: &Value, expected: &str) -> crate::FieldError {
    let shown = match value {
        Value::String(s) => super::field::Bad::Str(s.clone()),
        other => raw(other.to_string()),
    };
    invalid(path, shown, &format!("must be of type {expected}"))
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value) -> Node<'a> {
        Node {
            value: Some(value),
            path: String::new(),
        }
    }

    pub fn new(value: Option<&'a Value>, path: impl Into<String>) -> Node<'a> {
        Node {
            value: value.filter(|v| !v.is_null()),
            path: path.into(),
        }
    }

    /// A field of this object (absent when this is not an object).
    pub fn field(&self, name: &str) -> Node<'a> {
        let value = self.value.and_then(Value::as_object).and_then(|m| m.get(name));
        Node::new(value, child(&self.path, name))
    }

    pub fn present(&self) -> bool {
        self.value.is_some()
    }

    /// This node if it is an object (or absent); a type error and an absent node otherwise.
    pub fn object(&self, errs: &mut Errs) -> Node<'a> {
        match self.value {
            Some(v) if !v.is_object() => {
                errs.push(type_error(&self.path, v, "object"));
                Node::new(None, self.path.clone())
            }
            _ => self.clone(),
        }
    }

    pub fn as_map(&self) -> Option<&'a Map<String, Value>> {
        self.value.and_then(Value::as_object)
    }

    pub fn str(&self, errs: &mut Errs) -> Option<&'a str> {
        match self.value {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                errs.push(type_error(&self.path, other, "string"));
                None
            }
        }
    }

    /// The string, or "" when absent or mistyped.
    pub fn string(&self, errs: &mut Errs) -> &'a str {
        self.str(errs).unwrap_or("")
    }

    /// The string without recording type errors (for a second read of a field).
    pub fn peek_str(&self) -> &'a str {
        self.value.and_then(Value::as_str).unwrap_or("")
    }

    pub fn int(&self, errs: &mut Errs) -> Option<i64> {
        match self.value {
            None => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(other) => {
                errs.push(type_error(&self.path, other, "integer"));
                None
            }
        }
    }

    pub fn peek_int(&self) -> Option<i64> {
        self.value.and_then(Value::as_i64)
    }

    pub fn bool(&self, errs: &mut Errs) -> Option<bool> {
        match self.value {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                errs.push(type_error(&self.path, other, "boolean"));
                None
            }
        }
    }

    pub fn peek_bool(&self) -> bool {
        self.value.and_then(Value::as_bool).unwrap_or(false)
    }

    /// The elements of an array, each with its indexed path.
    pub fn items(&self, errs: &mut Errs) -> Vec<Node<'a>> {
        match self.value {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Node::new(Some(v), index(&self.path, i)))
                .collect(),
            Some(other) => {
                errs.push(type_error(&self.path, other, "array"));
                Vec::new()
            }
        }
    }

    /// The elements without recording type errors.
    pub fn peek_items(&self) -> Vec<Node<'a>> {
        match self.value {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Node::new(Some(v), index(&self.path, i)))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        match self.value {
            Some(Value::Array(items)) => items.len(),
            Some(Value::Object(map)) => map.len(),
            _ => 0,
        }
    }

    /// The entries of an object, each with its keyed path (`path[key]`).
    pub fn entries(&self, errs: &mut Errs) -> Vec<(&'a str, Node<'a>)> {
        match self.value {
            None => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.as_str(), Node::new(Some(v), key(&self.path, k))))
                .collect(),
            Some(other) => {
                errs.push(type_error(&self.path, other, "object"));
                Vec::new()
            }
        }
    }

    /// A `map[string]string`; `None` when absent. Non-string values are type errors.
    pub fn string_map(&self, errs: &mut Errs) -> Option<BTreeMap<&'a str, &'a str>> {
        let map = match self.value {
            None => return None,
            Some(Value::Object(map)) => map,
            Some(other) => {
                errs.push(type_error(&self.path, other, "object"));
                return None;
            }
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            match v {
                Value::String(s) => {
                    out.insert(k.as_str(), s.as_str());
                }
                Value::Null => {
                    out.insert(k.as_str(), "");
                }
                other => errs.push(type_error(&key(&self.path, k), other, "string")),
            }
        }
        Some(out)
    }

    /// A `map[string]string` without recording type errors.
    pub fn peek_string_map(&self) -> Option<BTreeMap<&'a str, &'a str>> {
        let map = self.value?.as_object()?;
        Some(
            map.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect(),
        )
    }

    /// A `[]string`; non-string elements are type errors.
    pub fn strings(&self, errs: &mut Errs) -> Vec<&'a str> {
        self.items(errs).iter().map(|item| item.string(errs)).collect()
    }

    /// A `[]string` without recording type errors.
    pub fn peek_strings(&self) -> Vec<&'a str> {
        self.peek_items().iter().map(Node::peek_str).collect()
    }
}

/// Drops what Go's semantic equality ignores (`null`, empty lists and maps),
/// so two JSON forms compare equal when upstream's decoded objects would.
pub(super) fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = normalized(v);
                let empty = match &v {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Whether two optional JSON values are semantically equal.
pub(super) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let null = Value::Null;
    let a = normalized(a.unwrap_or(&null));
    let b = normalized(b.unwrap_or(&null));
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    (empty(&a) && empty(&b)) || a == b
}

/// A short description of how two JSON values differ, one changed leaf per line,
/// standing in for the `cmp.Diff` upstream appends to "may not change" errors.
pub(super) fn diff(old: Option<&Value>, new: Option<&Value>) -> String {
    let mut lines = Vec::new();
    let null = Value::Null;
    diff_into(
        "",
        &normalized(old.unwrap_or(&null)),
        &normalized(new.unwrap_or(&null)),
        &mut lines,
    );
    lines.join("\n")
}

fn diff_into(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_into(
                    &child(path, k),
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    lines,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&index(path, i), x, y, lines);
            }
        }
        _ => {
            if !old.is_null() {
                lines.push(format!("  - {path}: {old}"));
            }
            if !new.is_null() {
                lines.push(format!("  + {path}: {new}"));
            }
        }
    }
}
