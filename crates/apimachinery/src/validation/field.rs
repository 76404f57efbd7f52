//! Field paths and field errors, worded as upstream's `field` package prints them.
//!
//! Upstream renders a bad value with Go's `%q` for strings, `%v` for numbers
//! and `%#v` for everything else (maps, slices, structs); since the message is
//! what kubectl shows, the Go syntax is reproduced here for the composite
//! values upstream reports (label maps, selectors, int-or-strings, ...).

use std::collections::BTreeMap;

use crate::FieldError;

/// The errors collected by one validation.
pub(super) type Errs = Vec<FieldError>;

/// `path.name`, or `name` at the root.
pub(super) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]` (upstream does not quote map keys).
pub(super) fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// A bad value, as upstream's error body prints it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bad {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Already rendered (Go `%#v` of a composite value).
    Raw(String),
}

impl Bad {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Bool(b) => b.to_string(),
            Bad::Raw(r) => r.clone(),
        }
    }
}

impl From<&str> for Bad {
    fn from(s: &str) -> Bad {
        Bad::Str(s.to_string())
    }
}

impl From<String> for Bad {
    fn from(s: String) -> Bad {
        Bad::Str(s)
    }
}

impl From<&String> for Bad {
    fn from(s: &String) -> Bad {
        Bad::Str(s.clone())
    }
}

impl From<i64> for Bad {
    fn from(i: i64) -> Bad {
        Bad::Int(i)
    }
}

impl From<bool> for Bad {
    fn from(b: bool) -> Bad {
        Bad::Bool(b)
    }
}

/// A value already rendered in Go syntax.
pub(super) fn raw(rendered: impl Into<String>) -> Bad {
    Bad::Raw(rendered.into())
}

fn with_detail(body: String, detail: &str) -> String {
    if detail.is_empty() {
        body
    } else {
        format!("{body}: {detail}")
    }
}

fn error(reason: &'static str, path: &str, detail: String) -> FieldError {
    FieldError {
        reason,
        field: path.to_string(),
        detail,
    }
}

/// `Invalid value: <bad>: <why>`.
pub(super) fn invalid(path: &str, bad: impl Into<Bad>, why: &str) -> FieldError {
    let body = format!("Invalid value: {}", bad.into().render());
    error("FieldValueInvalid", path, with_detail(body, why))
}

/// `Required value[: detail]`.
pub(super) fn required(path: &str, detail: &str) -> FieldError {
    FieldError::required(path, detail)
}

/// `Forbidden: detail`.
pub(super) fn forbidden(path: &str, detail: &str) -> FieldError {
    FieldError::forbidden(path, detail)
}

/// `Too long: may not be more than <max> bytes`.
pub(super) fn too_long(path: &str, max: usize) -> FieldError {
    FieldError::too_long(path, max)
}

/// `Unsupported value: <bad>: supported values: "a", "b"`.
pub(super) fn not_supported(path: &str, bad: impl Into<Bad>, supported: &[&str]) -> FieldError {
    let body = format!("Unsupported value: {}", bad.into().render());
    let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    let detail = if quoted.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    error("FieldValueNotSupported", path, with_detail(body, &detail))
}

/// `Duplicate value: <bad>`.
pub(super) fn duplicate(path: &str, bad: impl Into<Bad>) -> FieldError {
    error(
        "FieldValueDuplicate",
        path,
        format!("Duplicate value: {}", bad.into().render()),
    )
}

/// `Duplicate value: <bad>: detail` (upstream sets the detail by hand in places).
pub(super) fn duplicate_because(path: &str, bad: impl Into<Bad>, detail: &str) -> FieldError {
    let body = format!("Duplicate value: {}", bad.into().render());
    error("FieldValueDuplicate", path, with_detail(body, detail))
}

/// `Not found: <bad>`.
pub(super) fn not_found(path: &str, bad: impl Into<Bad>) -> FieldError {
    error(
        "FieldValueNotFound",
        path,
        format!("Not found: {}", bad.into().render()),
    )
}

/// `Not found: <bad>: detail`.
pub(super) fn not_found_because(path: &str, bad: impl Into<Bad>, detail: &str) -> FieldError {
    let body = format!("Not found: {}", bad.into().render());
    error("FieldValueNotFound", path, with_detail(body, detail))
}

/// `Too many: <actual>: must have at most <max> items`.
pub(super) fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    error(
        "FieldValueTooMany",
        path,
        format!("Too many: {actual}: must have at most {max} items"),
    )
}

/// A string as Go's `%q` (`strconv.Quote`) prints it.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `map[string]string` as Go's `%#v` prints it (keys sorted, as `fmt` does).
pub(super) fn go_string_map(map: Option<&BTreeMap<&str, &str>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// A `[]string` as Go's `%#v` prints it.
pub(super) fn go_string_slice(items: Option<&[&str]>) -> String {
    go_slice("string", items.map(|items| items.iter().map(|s| go_quote(s)).collect()))
}

/// A slice of already-rendered elements as Go's `%#v` prints it.
pub(super) fn go_slice(elem_type: &str, items: Option<Vec<String>>) -> String {
    match items {
        None => format!("[]{elem_type}(nil)"),
        Some(items) => format!("[]{elem_type}{{{}}}", items.join(", ")),
    }
}

/// A pointer to a string as Go's `%#v` prints it inside a struct.
pub(super) fn go_string_ptr(value: Option<&str>) -> String {
    match value {
        None => "(*string)(nil)".to_string(),
        Some(_) => "(*string)(0xc000000000)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_go() {
        assert_eq!(go_quote("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        let map: BTreeMap<&str, &str> = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(go_string_map(Some(&map)), r#"map[string]string{"a":"1", "b":"2"}"#);
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(go_string_slice(Some(&["x", "y"])), r#"[]string{"x", "y"}"#);
        assert_eq!(
            not_supported("spec.x", "Foo", &["A", "B"]).to_message(),
            r#"spec.x: Unsupported value: "Foo": supported values: "A", "B""#
        );
        assert_eq!(key("data", "a.b"), "data[a.b]");
    }
}
