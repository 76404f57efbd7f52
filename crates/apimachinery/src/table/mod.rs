//! Server-side printing: objects as a `meta.k8s.io/v1` `Table`.
//!
//! `kubectl get` does not format objects itself. It asks the server for
//! `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns and
//! cells it gets back, hiding columns of priority > 0 unless `-o wide`. So the
//! columns, their order, and the exact text of every cell (`Running`,
//! `Init:0/1`, `3 (5m ago)`, `80:30080/TCP`, `2d3h`, ...) are API: a user can
//! only tell Capstan from upstream through them. This module ports upstream's
//! printers (`pkg/printers/internalversion/printers.go`) one printer per kind,
//! reading objects as JSON so that a missing or mistyped field degrades to
//! what upstream prints for an empty one instead of failing the request.
//!
//! Like upstream's API server, rows always carry the wide cells (upstream
//! prints with `Wide: true`); kinds without a printer get upstream's default
//! table (`Name`, `Created At`). Where upstream's defaulting or create
//! strategy guarantees a field (a Deployment's `replicas`, a Service's `type`,
//! a Pod's `phase`), a printer reads the absent field as that default, since
//! upstream could never print it empty.

mod apps;
mod cells;
mod cluster;
mod core_api;
mod docs;
mod pod;
mod quantity;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

pub use cells::human_duration;

/// The `includeObject` table option: what each row's `object` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `object: null`.
    None,
    /// The object's metadata as a `meta.k8s.io/v1` `PartialObjectMetadata`;
    /// upstream's default, and what `kubectl get` asks for.
    #[default]
    Metadata,
    /// The whole object (`kubectl get --sort-by` asks for it).
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; empty means the default.
    /// `None` for a value upstream rejects (with a 400 `BadRequest`,
    /// "unrecognized includeObject value: ...").
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// A `TableColumnDefinition`. Every field is always serialized, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: &'static str,
    /// An OpenAPI type: `string`, `integer`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `name` for the column that holds the object's name, otherwise empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for the default columns, 1 for those only `-o wide` shows.
    pub priority: i32,
}

impl Column {
    const fn new(name: &'static str, type_: &'static str, description: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }
    pub(crate) const fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "string", description)
    }
    pub(crate) const fn integer(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "integer", description)
    }
    pub(crate) const fn boolean(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "boolean", description)
    }
    /// Shown only with `-o wide`.
    pub(crate) const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }
    /// Marks the column holding the object's name.
    pub(crate) const fn named(mut self) -> Self {
        self.format = "name";
        self
    }
}

/// The `Name` column every printer starts with.
pub(crate) const NAME: Column = Column::string("Name", docs::META_NAME).named();
/// The `Age` column: time since `metadata.creationTimestamp`.
pub(crate) const AGE: Column = Column::string("Age", docs::META_CREATION);
pub(crate) const CONTAINERS: Column = Column::string("Containers", "Names of each container in the template.").wide();
pub(crate) const IMAGES: Column =
    Column::string("Images", "Images referenced by each container in the template.").wide();

/// How one kind is printed: its columns, and the cells of one object.
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// Row conditions (`TableRowCondition`s); only pods have any.
    pub conditions: fn(&Value) -> Vec<Value>,
}

impl Printer {
    pub(crate) const fn new(columns: &'static [Column], cells: fn(&Value, Timestamp) -> Vec<Value>) -> Self {
        Self {
            columns,
            cells,
            conditions: |_| Vec::new(),
        }
    }
}

/// Upstream's default table, for kinds without a printer (roles, CRDs,
/// limit ranges, ...): the name and the creation time as RFC 3339.
const DEFAULT_COLUMNS: &[Column] = &[NAME, Column::new("Created At", "date", docs::META_CREATION)];

fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = cells::time_at(obj, &["metadata", "creationTimestamp"]);
    let created = created.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), crate::meta::format_time);
    vec![cells::name(obj).into(), created.into()]
}

fn printer(resource: &ResourceType) -> Printer {
    let found = match resource.group {
        "" => core_api::printer(resource.kind),
        "events.k8s.io" if resource.kind == "Event" => core_api::printer("Event"),
        "apps" | "batch" | "autoscaling" | "policy" => apps::printer(resource.kind),
        _ => cluster::printer(resource.group, resource.kind),
    };
    found.unwrap_or(Printer::new(DEFAULT_COLUMNS, default_cells))
}

/// The column definitions of `resource`'s table, wide columns included.
pub fn columns(resource: &ResourceType) -> Vec<Column> {
    printer(resource).columns.to_vec()
}

/// The table rows (`TableRow`s) of `objects`, in order.
pub fn rows(resource: &ResourceType, objects: &[Value], include_object: IncludeObject, now: Timestamp) -> Vec<Value> {
    let printer = printer(resource);
    objects
        .iter()
        .map(|obj| row(&printer, obj, include_object, now))
        .collect()
}

fn row(printer: &Printer, obj: &Value, include_object: IncludeObject, now: Timestamp) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
    let conditions = (printer.conditions)(obj);
    if !conditions.is_empty() {
        row.insert("conditions".into(), Value::Array(conditions));
    }
    let object = match include_object {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_object_metadata(obj),
        IncludeObject::Object => obj.clone(),
    };
    row.insert("object".into(), object);
    Value::Object(row)
}

/// The `meta.k8s.io/v1` `Table` of `objects`. `metadata` is empty: the
/// caller sets `resourceVersion` (and `continue`) as for a list.
pub fn table(resource: &ResourceType, objects: &[Value], include_object: IncludeObject, now: Timestamp) -> Value {
    let columns = serde_json::to_value(columns(resource)).unwrap_or(Value::Null);
    table_value(resource, columns, rows(resource, objects, include_object, now))
}

/// A `Table` without column definitions (`columnDefinitions: null`), as
/// upstream sends every watch event after the first one
/// (`TableOptions.noHeaders`).
pub fn table_without_headers(
    resource: &ResourceType,
    objects: &[Value],
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    table_value(resource, Value::Null, rows(resource, objects, include_object, now))
}

fn table_value(resource: &ResourceType, columns: Value, rows: Vec<Value>) -> Value {
    // Upstream's default convertor leaves an empty table's rows nil: `null`.
    let rows = if rows.is_empty() && printer(resource).columns == DEFAULT_COLUMNS {
        Value::Null
    } else {
        Value::Array(rows)
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// An object's metadata as upstream's `PartialObjectMetadata`. Upstream
/// serializes a zero `creationTimestamp` as `null` rather than omitting it.
pub fn partial_object_metadata(obj: &Value) -> Value {
    let mut metadata = obj
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    metadata.entry("creationTimestamp").or_insert(Value::Null);
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests;
