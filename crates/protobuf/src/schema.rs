//! The shape of the generated tables: one [`Message`] per protobuf message of the Kubernetes API, each
//! field with its tag, its upstream JSON name, its type and how it is written to JSON.
//!
//! The tables are data (`static`s) built by `generated.rs`; [`crate::json`] walks the wire format with
//! them. The short constructor functions below keep the generated file compact and readable.

/// A protobuf message type and its JSON form.
pub(crate) struct Message {
    /// The upstream protobuf name, e.g. `k8s.io.api.core.v1.Pod` (for error messages and tests).
    pub name: &'static str,
    /// How the message is written to JSON: an object of its fields, or one of the types with their own JSON form.
    pub form: Form,
    /// The fields, sorted by tag.
    pub fields: &'static [Field],
}

impl Message {
    /// The field with this tag, if the message has one.
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// How a message is written to JSON. Everything but [`Form::Object`] mirrors a Go type of upstream with its
/// own `MarshalJSON`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// A JSON object of the fields, by their JSON names.
    Object,
    /// `metav1.Time`: an RFC 3339 string with whole seconds, `null` when unset.
    Time,
    /// `metav1.MicroTime`: an RFC 3339 string with six fractional digits, `null` when unset.
    MicroTime,
    /// `metav1.Duration`: Go's `time.Duration` string (`1h2m3s`).
    Duration,
    /// `resource.Quantity` (`+protobuf.embed=string`): the string (`"0"` when empty).
    EmbeddedString,
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, `apiextensions.JSON`: raw bytes holding JSON, embedded as is.
    RawJson,
    /// A Go slice type wrapped in a message (`+protobuf.nullable=true`, e.g. `ExtraValue`): the array of `items`.
    ItemsArray,
    /// `JSONSchemaPropsOrArray`: the array of schemas if any, else the schema.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool`: the schema if any, else the boolean.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray`: the array of strings if any, else the schema.
    SchemaOrStringArray,
}

/// One field of a message.
pub(crate) struct Field {
    pub tag: u32,
    /// The upstream JSON name (`volumeID`, `podIP`, `x-kubernetes-preserve-unknown-fields`); for
    /// [`Shape::Inline`], the protobuf field's name, which is not written.
    pub json: &'static str,
    pub ty: Ty,
    pub shape: Shape,
    /// Whether a zero scalar (`""`, `0`, `false`, no bytes) is left out, as Go's `omitempty` does for
    /// fields that are not pointers.
    pub zero: Zero,
}

/// The type of a field's values (of the map values for [`Shape::Map`]).
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    Msg(&'static Message),
}

/// Singular, repeated, map, or a message whose fields Go inlines into the parent (`json:",inline"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    One,
    List,
    /// `map<string, ty>`: on the wire, repeated entries with the key in field 1 and the value in field 2.
    Map,
    Inline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zero {
    Keep,
    Omit,
}

/// A singular field whose zero value is written (required in upstream's schema, or possibly a Go pointer).
pub(crate) const fn keep(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        shape: Shape::One,
        zero: Zero::Keep,
    }
}

/// A singular field whose zero value is left out (Go `omitempty` on a field that is not a pointer).
pub(crate) const fn omit(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        shape: Shape::One,
        zero: Zero::Omit,
    }
}

/// A repeated field (a JSON array, left out when empty).
pub(crate) const fn list(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        shape: Shape::List,
        zero: Zero::Omit,
    }
}

/// A `map<string, ty>` field (a JSON object, left out when empty).
pub(crate) const fn map(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        shape: Shape::Map,
        zero: Zero::Omit,
    }
}

/// A message field whose fields are written into the parent object.
pub(crate) const fn inline(tag: u32, json: &'static str, message: &'static Message) -> Field {
    Field {
        tag,
        json,
        ty: Ty::Msg(message),
        shape: Shape::Inline,
        zero: Zero::Keep,
    }
}

/// A message with a special JSON form, or an object.
pub(crate) const fn message(name: &'static str, form: Form, fields: &'static [Field]) -> Message {
    Message { name, form, fields }
}
