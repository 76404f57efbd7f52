//! Protobuf bytes of one message to its upstream JSON form, driven by the tables of [`crate::schema`].
//!
//! The rules, as upstream's Go types marshal to JSON:
//! - fields are named by their JSON names; fields the table does not know are skipped (as upstream skips
//!   unknown protobuf fields);
//! - repeated fields are arrays and maps are objects, both left out when empty (`omitempty`);
//! - a scalar is written when it is on the wire, except a zero value the table marks [`Zero::Omit`];
//! - a message on the wire is written even when empty (`"resources": {}`), as Go writes struct fields;
//! - the types with their own JSON form ([`Form`]) are written as upstream's `MarshalJSON` writes them.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::DecodeError;
use crate::schema::{Field, Form, Message, Shape, Ty, Zero};
use crate::wire::{self, Reader, Value as Wire};

/// Nesting deeper than this is an error (prost's limit too): it bounds the stack on hostile input.
const MAX_DEPTH: usize = 100;

/// `0001-01-01T00:00:00Z` in Unix seconds: Go's zero `time.Time`, which upstream writes as `null`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The JSON form of a message from its protobuf bytes.
pub(crate) fn message(buf: &[u8], msg: &'static Message, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(wire::malformed(format!("nested deeper than {MAX_DEPTH} messages")));
    }
    if msg.form == Form::RawJson {
        return raw_json(buf, depth);
    }
    let mut obj = Map::new();
    fields_into(buf, msg, depth, &mut obj)?;
    match msg.form {
        Form::Object => Ok(Value::Object(obj)),
        form => special(form, msg, obj, buf.is_empty()),
    }
}

/// Decodes the fields of `msg` from `buf` into `obj`.
fn fields_into(
    buf: &[u8],
    msg: &'static Message,
    depth: usize,
    obj: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    // A singular message field may occur more than once; protobuf then merges the occurrences, which is the
    // same as decoding the concatenation of their bytes. So their bytes are collected and each such field is
    // decoded once, after the others (its key is placed at its first occurrence).
    let mut messages: Vec<(&'static Field, &'static Message, Vec<&[u8]>)> = Vec::new();
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        let Some(field) = msg.field(tag) else {
            continue;
        };
        match (field.shape, field.ty) {
            (Shape::One | Shape::Inline, Ty::Msg(inner)) => {
                let bytes = len(value, field)?;
                match messages.iter_mut().find(|(f, _, _)| f.tag == tag) {
                    Some((_, _, parts)) => parts.push(bytes),
                    None => {
                        if field.shape == Shape::One {
                            obj.insert(field.json.to_string(), Value::Null);
                        }
                        messages.push((field, inner, vec![bytes]));
                    }
                }
            }
            (Shape::One | Shape::Inline, ty) => {
                let decoded = scalar(ty, value, field)?;
                if field.zero == Zero::Omit && is_zero(&decoded) {
                    obj.remove(field.json);
                } else {
                    obj.insert(field.json.to_string(), decoded);
                }
            }
            (Shape::List, ty) => {
                let mut items = Vec::new();
                match (ty, value) {
                    // Packed repeated scalars: one length-delimited run of values.
                    (Ty::Bool | Ty::I32 | Ty::I64, Wire::Len(bytes)) => {
                        let mut run = Reader::new(bytes);
                        while !run.is_empty() {
                            items.push(scalar(ty, Wire::Varint(run.varint()?), field)?);
                        }
                    }
                    (Ty::F64, Wire::Len(bytes)) => {
                        let mut run = Reader::new(bytes);
                        while !run.is_empty() {
                            items.push(scalar(ty, Wire::Fixed64(run.fixed64()?), field)?);
                        }
                    }
                    (Ty::Msg(inner), value) => items.push(message(len(value, field)?, inner, depth + 1)?),
                    (ty, value) => items.push(scalar(ty, value, field)?),
                }
                if !items.is_empty() {
                    let slot = obj.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(array) = slot {
                        array.extend(items);
                    }
                }
            }
            (Shape::Map, ty) => {
                let (key, decoded) = map_entry(len(value, field)?, ty, field, depth)?;
                let slot = obj.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(entries) = slot {
                    entries.insert(key, decoded);
                }
            }
        }
    }
    for (field, inner, parts) in messages {
        let bytes: Cow<'_, [u8]> = match parts.as_slice() {
            [one] => Cow::Borrowed(one),
            many => Cow::Owned(many.concat()),
        };
        let decoded = message(&bytes, inner, depth + 1)?;
        match (field.shape, decoded) {
            (Shape::Inline, Value::Object(fields)) => obj.extend(fields),
            (_, decoded) => {
                obj.insert(field.json.to_string(), decoded);
            }
        }
    }
    Ok(())
}

/// One entry of a `map<string, ty>` field: the key in field 1, the value in field 2 (the zero value when
/// absent, as protobuf defines).
fn map_entry(buf: &[u8], ty: Ty, field: &Field, depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut decoded = None;
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        match tag {
            1 => key = string(len(value, field)?),
            2 => {
                decoded = Some(match ty {
                    Ty::Msg(inner) => message(len(value, field)?, inner, depth + 1)?,
                    ty => scalar(ty, value, field)?,
                })
            }
            _ => {}
        }
    }
    let decoded = match decoded {
        Some(value) => value,
        None => match ty {
            Ty::Msg(inner) => message(&[], inner, depth + 1)?,
            Ty::Str | Ty::Bytes => Value::String(String::new()),
            Ty::Bool => Value::Bool(false),
            Ty::I32 | Ty::I64 => Value::from(0),
            Ty::F64 => Value::from(0.0),
        },
    };
    Ok((key, decoded))
}

fn scalar(ty: Ty, value: Wire<'_>, field: &Field) -> Result<Value, DecodeError> {
    Ok(match (ty, value) {
        (Ty::Str, Wire::Len(bytes)) => Value::String(string(bytes)),
        // Go's encoding/json writes []byte as standard base64 with padding.
        (Ty::Bytes, Wire::Len(bytes)) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // int32 is sign-extended to 64 bits on the wire; the low 32 bits are the value.
        (Ty::I32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::I64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::F64, Wire::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or_else(|| wire::malformed(format!("field {:?} is not a finite number", field.json)))?,
        (_, value) => {
            return Err(wire::malformed(format!(
                "field {:?} (tag {}) has wire type {:?}, not the one of its type",
                field.json,
                field.tag,
                value.wire()
            )));
        }
    })
}

fn len<'a>(value: Wire<'a>, field: &Field) -> Result<&'a [u8], DecodeError> {
    match value {
        Wire::Len(bytes) => Ok(bytes),
        other => Err(wire::malformed(format!(
            "field {:?} (tag {}) has wire type {:?}, not length-delimited",
            field.json,
            field.tag,
            other.wire()
        ))),
    }
}

/// Go does not check UTF-8 when it decodes protobuf strings, and its JSON encoder writes invalid bytes as
/// U+FFFD: the same as a lossy conversion.
fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Raw bytes holding JSON (`RawExtension`, `FieldsV1`, `apiextensions.JSON`), in field 1. Upstream writes
/// them as they are, and `null` when there are none. An embedded object that is itself protobuf (the
/// `k8s\0` prefix) is decoded the same way as a request body.
fn raw_json(buf: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let mut raw: &[u8] = &[];
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        if let (1, Wire::Len(bytes)) = (tag, value) {
            raw = bytes;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(crate::MAGIC) {
        return crate::decode_at(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|e| wire::malformed(format!("embedded raw object is not JSON: {e}")))
}

/// The value of the field with this tag, by the table's JSON name.
fn get<'a>(obj: &'a Map<String, Value>, msg: &Message, tag: u32) -> Option<&'a Value> {
    msg.field(tag).and_then(|f| obj.get(f.json))
}

fn get_i64(obj: &Map<String, Value>, msg: &Message, tag: u32) -> i64 {
    get(obj, msg, tag).and_then(Value::as_i64).unwrap_or(0)
}

fn non_empty_array(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
}

/// The JSON of the types with their own `MarshalJSON` upstream, from their decoded fields.
fn special(form: Form, msg: &Message, obj: Map<String, Value>, empty: bool) -> Result<Value, DecodeError> {
    Ok(match form {
        // An empty message is Go's zero time; upstream drops the nanoseconds of a Time when it decodes.
        Form::Time if empty => Value::Null,
        Form::Time => time(get_i64(&obj, msg, 1), 0, false),
        Form::MicroTime if empty => Value::Null,
        Form::MicroTime => time(get_i64(&obj, msg, 1), get_i64(&obj, msg, 2), true),
        Form::Duration => Value::String(go_duration(get_i64(&obj, msg, 1))),
        Form::EmbeddedString => match get(&obj, msg, 1).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Value::String(s.to_string()),
            _ => Value::String("0".to_string()),
        },
        Form::IntOrString => match get_i64(&obj, msg, 1) {
            0 => Value::from(get_i64(&obj, msg, 2) as i32),
            1 => get(&obj, msg, 3)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            other => return Err(wire::malformed(format!("IntOrString of type {other}"))),
        },
        Form::ItemsArray => get(&obj, msg, 1).cloned().unwrap_or_else(|| Value::Array(Vec::new())),
        Form::SchemaOrArray => non_empty_array(get(&obj, msg, 2))
            .or_else(|| get(&obj, msg, 1))
            .cloned()
            .unwrap_or(Value::Null),
        Form::SchemaOrBool => match get(&obj, msg, 2) {
            Some(schema) => schema.clone(),
            None => Value::Bool(get(&obj, msg, 1).and_then(Value::as_bool).unwrap_or(false)),
        },
        Form::SchemaOrStringArray => non_empty_array(get(&obj, msg, 2))
            .or_else(|| get(&obj, msg, 1))
            .cloned()
            .unwrap_or(Value::Null),
        Form::Object | Form::RawJson => unreachable!("not a special form"),
    })
}

/// `metav1.Time` (`2024-01-02T03:04:05Z`) or `metav1.MicroTime` (`2024-01-02T03:04:05.123456Z`) in UTC;
/// `null` for Go's zero time.
fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    // Go's time.Unix normalizes nanoseconds outside [0, 1e9) into the seconds.
    let seconds = seconds.saturating_add(nanos.div_euclid(1_000_000_000));
    let nanos = nanos.rem_euclid(1_000_000_000);
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Value::Null;
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let secs = seconds.rem_euclid(86_400);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let fraction = if micro {
        format!(".{:06}", nanos / 1000)
    } else {
        String::new()
    };
    Value::String(format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z"))
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `100ms`, `2m0s`, `1h0m0.5s`.
fn go_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, precision) = match u {
            0 => return "0s".to_string(),
            1..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let fraction = fraction(&mut u, precision);
        out.push_str(&format!("{u}{fraction}{unit}"));
    } else {
        let fraction = fraction(&mut u, 9);
        let (seconds, minutes, hours) = (u % 60, u / 60 % 60, u / 3600);
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&format!("{seconds}{fraction}s"));
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// Splits `precision` decimal digits off `v`: `.5` for 1500 with precision 3 (trailing zeros and a bare
/// point are left out), leaving the integer part in `v`.
fn fraction(v: &mut u64, precision: u32) -> String {
    let scale = 10u64.pow(precision);
    let digits = *v % scale;
    *v /= scale;
    if digits == 0 {
        return String::new();
    }
    let text = format!("{digits:0width$}", width = precision as usize);
    format!(".{}", text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_upstream_writes_them() {
        assert_eq!(time(1_704_164_645, 0, false), "2024-01-02T03:04:05Z");
        assert_eq!(time(1_704_164_645, 999_999_999, false), "2024-01-02T03:04:05Z");
        assert_eq!(time(1_704_164_645, 123_456_789, true), "2024-01-02T03:04:05.123456Z");
        assert_eq!(time(0, 0, true), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time(951_782_400, 0, false), "2000-02-29T00:00:00Z");
        assert_eq!(time(-1, 0, false), "1969-12-31T23:59:59Z");
        assert_eq!(time(253_402_300_799, 0, false), "9999-12-31T23:59:59Z");
        assert_eq!(time(GO_ZERO_TIME, 0, false), Value::Null);
    }

    #[test]
    fn durations_as_go_writes_them() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-90_000_000_000, "-1m30s"),
            (100 * 3_600_000_000_000 + 500_000_000, "100h0m0.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }
}
