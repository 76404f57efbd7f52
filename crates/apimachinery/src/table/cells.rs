//! Helpers shared by the printers: lenient field access (absent or mistyped
//! fields read as empty, as upstream's zero values), ages, and upstream's
//! formatting of labels, selectors and container lists.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// The value at `path`, if every step is an object holding the next key.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// A string field, "" when absent.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

/// An integer field, 0 when absent.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

pub(crate) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

/// A boolean field, false when absent.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// A list field, empty when absent.
pub(crate) fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub(crate) fn map_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// The number of entries of a list or map field (Go's `len`), 0 when absent.
pub(crate) fn len_at(v: &Value, path: &[&str]) -> i64 {
    let len = match get(v, path) {
        Some(Value::Array(list)) => list.len(),
        Some(Value::Object(map)) => map.len(),
        _ => 0,
    };
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// `s`, or `default` when `s` is empty.
pub(crate) fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_string()
}

pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"])
}

pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    map_at(obj, &["metadata", "annotations"])
        .and_then(|annotations| annotations.get(key))
        .and_then(Value::as_str)
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    matches!(get(obj, &["metadata", "deletionTimestamp"]), Some(v) if !v.is_null())
}

/// A `metav1.Time` or `MicroTime` field; `None` when absent, unparsable, or
/// Go's zero time (which upstream treats as unset).
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let at: Timestamp = opt_str(v, path)?.parse().ok()?;
    let go_zero = Timestamp::new(-62_135_596_800, 0).ok()?;
    (at != go_zero).then_some(at)
}

/// Upstream's `translateTimestampSince`: how long ago `at` was.
pub(crate) fn since(at: Option<Timestamp>, now: Timestamp) -> String {
    at.map_or_else(|| "<unknown>".to_string(), |at| human_duration(now.duration_since(at)))
}

/// The `Age` cell.
pub(crate) fn age(obj: &Value, now: Timestamp) -> String {
    since(time_at(obj, &["metadata", "creationTimestamp"]), now)
}

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Upstream's `duration.HumanDuration`: a duration to ~2-3 significant
/// figures (`45s`, `3m20s`, `10m`, `5h3m`, `20h`, `2d3h`, `90d`, `2y5d`, `9y`).
/// Up to two seconds in the future reads as `0s` (clock skew); further is
/// `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    // Go's time.Duration is int64 nanoseconds and Time.Sub saturates.
    let d = i64::try_from(d.as_nanos()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX });
    let seconds = d / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// A string-valued map's entries, sorted by key (non-string values read as "").
fn sorted_entries(map: Option<&Map<String, Value>>) -> Vec<(&str, &str)> {
    let mut entries: Vec<(&str, &str)> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    entries.sort_unstable();
    entries
}

/// Upstream's `labels.FormatLabels`: `a=b,c=d` sorted by key, `<none>` when empty.
pub(crate) fn format_labels(map: Option<&Map<String, Value>>) -> String {
    let text = sorted_entries(map)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or(&text, "<none>")
}

/// A label selector as upstream prints a `labels.Selector` made from a
/// `metav1.LabelSelector` (`LabelSelectorAsSelector(s).String()`): requirements
/// sorted by key, `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`. An absent or
/// empty selector prints as "". `Err` where upstream's conversion fails.
pub(crate) fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(&str, String)> = sorted_entries(map_at(selector, &["matchLabels"]))
        .into_iter()
        .map(|(k, v)| (k, format!("{k}={v}")))
        .collect();
    for expr in list_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        requirements.push((
            key,
            requirement(key, str_at(expr, &["operator"]), list_at(expr, &["values"]))?,
        ));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

fn requirement(key: &str, operator: &str, values: &[Value]) -> Result<String, ()> {
    let mut values: Vec<&str> = values.iter().map(|v| v.as_str().unwrap_or("")).collect();
    values.sort_unstable();
    match operator {
        "In" | "NotIn" if values.is_empty() => Err(()),
        "In" => Ok(format!("{key} in ({})", values.join(","))),
        "NotIn" => Ok(format!("{key} notin ({})", values.join(","))),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(()),
        "Exists" => Ok(key.to_string()),
        "DoesNotExist" => Ok(format!("!{key}")),
        _ => Err(()),
    }
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` for an absent or empty
/// selector, `<error>` for an invalid one.
pub(crate) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(text) => or(&text, "<none>"),
        Err(()) => "<error>".into(),
    }
}

/// Upstream's `layoutContainerCells`: container names and images, comma-separated.
pub(crate) fn containers(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map_or(&[][..], |spec| list_at(spec, &["containers"]));
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// An `IntOrString` as Go's `IntOrString.String()`.
pub(crate) fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Upstream's `listWithMoreString`: up to `max` items, then `+ N more...`;
/// `<unset>` when there are none.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let text = list.join(",");
    if count > max {
        return format!("{text} + {} more...", count - max);
    }
    or(&text, "<unset>")
}

/// `True`, `False`: how upstream prints booleans inside string cells.
pub(crate) fn go_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
