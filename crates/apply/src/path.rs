//! Path elements (`f:name`, `k:{...}`, `v:...`, `i:n`), their order, and their
//! two spellings: the FieldsV1 key and the human form used in conflict
//! messages (`.spec.containers[name="app"].image`).
//!
//! Order and spellings follow structured-merge-diff's `fieldpath` package:
//! field names sort before list-map keys, keys before set values, values
//! before indices; values compare numbers < strings < booleans < lists <
//! maps < null, with integers and floats compared numerically.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a struct or a key of a map: `f:name`.
    Field(String),
    /// An element of a list-map, by its key fields (sorted by name): `k:{"name":"app"}`.
    Key(Vec<(String, Value)>),
    /// An element of a set (a list of scalars): `v:"value"`.
    Value(Value),
    /// An element of a list by position (only in FieldsV1 written by others): `i:0`.
    Index(usize),
}

/// A field path from the object root.
pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 spelling: `f:name`, `k:{"name":"app"}`, `v:"x"`, `i:0`.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let map: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", go_json(&Value::Object(map)))
            }
            PathElement::Value(value) => format!("v:{}", go_json(value)),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses a FieldsV1 key. `Ok(None)` for an unknown element type (which
    /// upstream skips, to stay readable by older servers).
    pub fn from_fields_v1_key(key: &str) -> Result<Option<PathElement>, String> {
        let Some((kind, rest)) = key.split_at_checked(2) else {
            return Err(format!("key must be 2 characters long: {key:?}"));
        };
        let Some(kind) = kind.strip_suffix(':') else {
            return Err(format!("missing colon: {key:?}"));
        };
        let parsed = match kind {
            "f" => PathElement::Field(rest.to_string()),
            "v" => PathElement::Value(parse_json(rest)?),
            "k" => PathElement::Key(parse_key(rest)?),
            "i" => PathElement::Index(rest.parse().map_err(|e| format!("invalid index {rest:?}: {e}"))?),
            _ => return Ok(None),
        };
        Ok(Some(parsed))
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid JSON {text:?}: {e}"))
}

fn parse_key(text: &str) -> Result<Vec<(String, Value)>, String> {
    match parse_json(text)? {
        Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(format!("list-map key is not a JSON object: {text:?}")),
    }
}

impl std::fmt::Display for PathElement {
    /// The human spelling used in conflict messages: `.name`, `[name="app"]`, `[="x"]`, `[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", human(v))).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", human(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path in the human spelling: `.spec.template.spec.containers[name="app"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A value as upstream's `value.ToString` prints it: strings quoted, lists
/// bracketed, maps as `k=v` pairs run together.
fn human(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(human).collect::<Vec<_>>().join(",")),
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", human(v))).collect(),
        other => other.to_string(),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_key(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

fn compare_key(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ak, av), (bk, bv)) in a.iter().zip(b) {
        let order = ak.cmp(bk).then_with(|| compare_values(av, bv));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

fn value_rank(value: &Value) -> u8 {
    match value {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// A total order on JSON values (upstream's `value.Compare`).
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => compare_lists(x, y),
        (Value::Object(x), Value::Object(y)) => compare_maps(x, y),
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

/// Deep equality with integers and floats compared numerically (upstream's `value.Equals`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    match (as_integer(x), as_integer(y)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

fn as_integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn compare_lists(x: &[Value], y: &[Value]) -> Ordering {
    for (a, b) in x.iter().zip(y) {
        let order = compare_values(a, b);
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len())
}

fn compare_maps(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    let mut xs: Vec<_> = x.iter().collect();
    let mut ys: Vec<_> = y.iter().collect();
    xs.sort_by(|a, b| a.0.cmp(b.0));
    ys.sort_by(|a, b| a.0.cmp(b.0));
    for ((ak, av), (bk, bv)) in xs.iter().zip(&ys) {
        let order = ak.cmp(bk).then_with(|| compare_values(av, bv));
        if order != Ordering::Equal {
            return order;
        }
    }
    xs.len().cmp(&ys.len())
}

/// Compact JSON as Go's `encoding/json` writes it: object keys sorted, and
/// `<`, `>`, `&`, U+2028, U+2029 escaped.
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_go_string(key, out);
                out.push(':');
                write_go_json(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::String(s) => push_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn push_go_string(s: &str, out: &mut String) {
    let quoted = Value::String(s.to_string()).to_string();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_keys_round_trip() {
        let key = PathElement::Key(vec![
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("TCP")),
        ]);
        assert_eq!(key.to_fields_v1_key(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        for pe in [
            key,
            PathElement::Field("a.b/c".into()),
            PathElement::Value(json!("x<y")),
            PathElement::Index(3),
        ] {
            let parsed = PathElement::from_fields_v1_key(&pe.to_fields_v1_key())
                .unwrap()
                .unwrap();
            assert_eq!(parsed, pe);
        }
        assert_eq!(PathElement::Value(json!("x<y")).to_fields_v1_key(), r#"v:"x\u003cy""#);
        assert_eq!(PathElement::from_fields_v1_key("z:whatever").unwrap(), None);
        assert!(PathElement::from_fields_v1_key("f").is_err());
        assert!(PathElement::from_fields_v1_key("fx").is_err());
        assert!(PathElement::from_fields_v1_key("k:[1]").is_err());
        assert!(PathElement::from_fields_v1_key("é").is_err());
    }

    #[test]
    fn human_spelling() {
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key(vec![("name".into(), json!("app"))]),
            PathElement::Field("ports".into()),
            PathElement::Key(vec![
                ("containerPort".into(), json!(80)),
                ("protocol".into(), json!("TCP")),
            ]),
        ];
        assert_eq!(
            path_string(&path),
            r#".spec.containers[name="app"].ports[containerPort=80,protocol="TCP"]"#
        );
        assert_eq!(PathElement::Value(json!("a")).to_string(), r#"[="a"]"#);
    }

    #[test]
    fn order_follows_upstream() {
        let field = PathElement::Field("z".into());
        let key = PathElement::Key(vec![("a".into(), json!(1))]);
        let value = PathElement::Value(json!(1));
        assert!(field < key && key < value && value < PathElement::Index(0));
        assert_eq!(compare_values(&json!(1), &json!(1.0)), Ordering::Equal);
        assert!(compare_values(&json!(2), &json!("1")) == Ordering::Less);
        assert!(values_equal(&json!({"a": [1, 2]}), &json!({"a": [1.0, 2]})));
    }
}
