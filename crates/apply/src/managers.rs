//! `metadata.managedFields`: decoding, encoding, and upstream's bookkeeping
//! of entries.
//!
//! Entries are keyed by upstream's *manager identifier*: the entry's
//! `manager`, `operation`, `subresource` and — for `Update` entries only —
//! `apiVersion`, as Go's JSON encoder writes them
//! (`{"manager":"kubectl","operation":"Apply"}`). So one applier has one
//! entry whatever version it applies, while an updater writing through two
//! versions has two.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::fieldset::FieldSet;
use crate::path::go_json;

/// The kind of write that gave a manager its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
    Apply,
    /// Any other write: create, update, non-apply patch.
    Update,
}

impl Operation {
    /// `"Apply"` or `"Update"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    fn parse(text: &str) -> Option<Operation> {
        match text {
            "Apply" => Some(Operation::Apply),
            "Update" => Some(Operation::Update),
            _ => None,
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: Operation,
    pub(crate) api_version: String,
    pub(crate) subresource: String,
    pub(crate) time: Option<String>,
    pub(crate) fields: FieldSet,
}

/// Entries by manager identifier.
pub(crate) type Managers = BTreeMap<String, Entry>;

/// Upstream's manager identifier (`BuildManagerIdentifier`).
pub(crate) fn identifier(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> String {
    let mut out = String::from("{");
    let mut push = |key: &str, value: &str| {
        if !value.is_empty() {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&format!("\"{key}\":{}", go_json(&Value::from(value))));
        }
    };
    push("manager", manager);
    push("operation", operation.as_str());
    if operation == Operation::Update {
        push("apiVersion", api_version);
    }
    push("subresource", subresource);
    out.push('}');
    out
}

impl Entry {
    pub(crate) fn id(&self) -> String {
        identifier(&self.manager, self.operation, &self.api_version, &self.subresource)
    }

    fn encode(&self) -> Value {
        let mut out = Map::new();
        out.insert("apiVersion".into(), Value::from(self.api_version.as_str()));
        out.insert("fieldsType".into(), Value::from("FieldsV1"));
        out.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.manager.is_empty() {
            out.insert("manager".into(), Value::from(self.manager.as_str()));
        }
        out.insert("operation".into(), Value::from(self.operation.as_str()));
        if !self.subresource.is_empty() {
            out.insert("subresource".into(), Value::from(self.subresource.as_str()));
        }
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::from(time.as_str()));
        }
        Value::Object(out)
    }
}

/// Whether a written `managedFields` asks to clear the field: an empty list,
/// or a list of one empty entry.
pub(crate) fn is_reset(list: Option<&Value>) -> bool {
    match list {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [only] => is_empty_entry(only),
            _ => false,
        },
        _ => false,
    }
}

/// An entry with every field unset (`{}`; Go's zero `ManagedFieldsEntry`).
fn is_empty_entry(entry: &Value) -> bool {
    let unset = |v: &Value| v.is_null() || v.as_str() == Some("");
    entry.as_object().is_some_and(|map| map.values().all(unset))
}

/// Decodes `metadata.managedFields` (absent or `null`: no entries).
pub(crate) fn decode(list: Option<&Value>) -> Result<Managers, String> {
    let items = match list {
        None | Some(Value::Null) => return Ok(Managers::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("managedFields must be a list".to_string()),
    };
    let mut managers = Managers::new();
    for (i, item) in items.iter().enumerate() {
        let entry = decode_entry(i, item)?;
        managers.insert(entry.id(), entry);
    }
    Ok(managers)
}

fn decode_entry(i: usize, item: &Value) -> Result<Entry, String> {
    let Value::Object(map) = item else {
        return Err(format!("managed fields entry {i} is not an object"));
    };
    let text = |key: &str| -> Result<String, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("managed fields entry {i}: {key} must be a string")),
        }
    };
    let operation = Operation::parse(&text("operation")?).ok_or("operation must be `Apply` or `Update`")?;
    let api_version = text("apiVersion")?;
    if api_version.is_empty() {
        return Err("apiVersion must not be empty".to_string());
    }
    match text("fieldsType")?.as_str() {
        "FieldsV1" => {}
        "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
        other => return Err(format!("invalid fieldsType {other:?} in managed fields entry {i}")),
    }
    let fields = match map.get("fieldsV1") {
        None | Some(Value::Null) => FieldSet::new(),
        Some(fields) => FieldSet::from_fields_v1(fields).map_err(|e| format!("error decoding set: {e}"))?,
    };
    let time = Some(text("time")?).filter(|t| !t.is_empty());
    let (manager, subresource) = (text("manager")?, text("subresource")?);
    Ok(Entry {
        manager,
        operation,
        api_version,
        subresource,
        time,
        fields,
    })
}

/// Encodes the entries as upstream orders them: `Apply` before `Update`,
/// then oldest first, then by manager, API version and subresource.
pub(crate) fn encode(managers: &Managers) -> Vec<Value> {
    let mut entries: Vec<&Entry> = managers.values().collect();
    entries.sort_by(|p, q| {
        (p.operation.as_str().cmp(q.operation.as_str()))
            .then_with(|| seconds(&p.time).cmp(&seconds(&q.time)))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    entries.into_iter().map(Entry::encode).collect()
}

/// Seconds since the epoch of an RFC 3339 time; 0 when absent or unreadable.
pub(crate) fn seconds(time: &Option<String>) -> i64 {
    let parsed = time.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    parsed.map_or(0, |t| t.as_second())
}

/// Upstream keeps at most this many `Update` entries.
pub(crate) const MAX_UPDATE_MANAGERS: usize = 10;

/// Upstream's `capManagersManager`: while there are more than `max` `Update`
/// entries, the oldest are merged, per API version, into an
/// `ancient-changes` entry.
pub(crate) fn cap_update_managers(managers: &mut Managers, max: usize) {
    let mut updaters: Vec<(i64, String)> = (managers.iter())
        .filter(|(_, e)| e.operation == Operation::Update)
        .map(|(id, e)| (seconds(&e.time), id.clone()))
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort();
    let mut first_by_version: BTreeMap<String, String> = BTreeMap::new();
    let mut remaining = updaters.len();
    for (_, id) in updaters {
        if remaining <= max {
            break;
        }
        let Some(entry) = managers.get(&id).cloned() else {
            continue;
        };
        let Some(first) = first_by_version.get(&entry.api_version).cloned() else {
            first_by_version.insert(entry.api_version.clone(), id);
            continue;
        };
        merge_into_bucket(managers, &first, &id, entry);
        remaining -= 1;
    }
}

fn merge_into_bucket(managers: &mut Managers, first: &str, id: &str, entry: Entry) {
    let bucket = identifier("ancient-changes", Operation::Update, &entry.api_version, "");
    if !managers.contains_key(&bucket)
        && let Some(mut moved) = managers.remove(first)
    {
        moved.manager = "ancient-changes".to_string();
        moved.subresource = String::new();
        managers.insert(bucket.clone(), moved);
    }
    managers.remove(id);
    let Some(target) = managers.get_mut(&bucket) else {
        return;
    };
    target.fields = target.fields.union(&entry.fields);
    target.time = entry.time;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(manager: &str, operation: &str, time: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "v1", "time": time,
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn identifiers_match_upstream() {
        assert_eq!(
            identifier("kubectl", Operation::Apply, "apps/v1", ""),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
        assert_eq!(
            identifier("kubectl-scale", Operation::Update, "apps/v1", "scale"),
            r#"{"manager":"kubectl-scale","operation":"Update","apiVersion":"apps/v1","subresource":"scale"}"#
        );
    }

    #[test]
    fn decode_validates_and_encode_sorts() {
        let list = json!([
            sample("b", "Update", "2024-01-01T00:00:02Z", json!({"f:data": {"f:x": {}}})),
            sample("a", "Update", "2024-01-01T00:00:01Z", json!({"f:data": {"f:y": {}}})),
            sample("z", "Apply", "2024-01-01T00:00:09Z", json!({"f:data": {"f:z": {}}})),
        ]);
        let managers = decode(Some(&list)).unwrap();
        let order: Vec<_> = encode(&managers)
            .iter()
            .map(|e| e["manager"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, ["z", "a", "b"]);
        assert_eq!(encode(&managers)[0], list[2]);
        let bad = json!([{"manager": "m", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
        assert_eq!(decode(Some(&bad)).unwrap_err(), "operation must be `Apply` or `Update`");
        let bad = json!([{"manager": "m", "operation": "Apply", "apiVersion": "v1"}]);
        assert_eq!(
            decode(Some(&bad)).unwrap_err(),
            "missing fieldsType in managed fields entry 0"
        );
        assert!(decode(Some(&json!("x"))).is_err());
        assert!(is_reset(Some(&json!([]))) && is_reset(Some(&json!([{}]))) && !is_reset(None));
        assert!(!is_reset(Some(&json!([{"fieldsV1": {}}]))));
    }

    #[test]
    fn caps_update_entries() {
        let list: Vec<Value> = (0..12)
            .map(|i| {
                sample(
                    &format!("m{i:02}"),
                    "Update",
                    &format!("2024-01-01T00:00:{i:02}Z"),
                    json!({"f:data": {format!("f:k{i}"): {}}}),
                )
            })
            .collect();
        let mut managers = decode(Some(&Value::Array(list))).unwrap();
        cap_update_managers(&mut managers, MAX_UPDATE_MANAGERS);
        assert_eq!(managers.len(), 10);
        let bucket = &managers[&identifier("ancient-changes", Operation::Update, "v1", "")];
        assert_eq!(bucket.fields.path_strings(), [".data.k0", ".data.k1", ".data.k2"]);
        assert_eq!(bucket.time.as_deref(), Some("2024-01-01T00:00:02Z"));
    }
}
