//! Label and field selectors, as the API server evaluates them.
//!
//! `?labelSelector=` and `?fieldSelector=` come from users (kubectl `-l` and
//! `--field-selector`, client-go informers, controllers), and the answers are
//! checked by real clients: which objects match, how a selector prints, and
//! the exact text of the 400 error for a bad one. So everything here follows
//! upstream apimachinery word for word:
//!
//! - [`LabelSelector`] is `labels.Parse` / `metav1.LabelSelectorAsSelector`:
//!   the full set-based grammar, label key and value validation with
//!   upstream's messages, `notin`/`!=` matching objects that lack the label,
//!   and `String()`'s canonical form (requirements sorted by key).
//! - [`FieldSelector`] is `fields.ParseSelector`: `=`, `==`, `!=` terms with
//!   backslash escaping; an absent field compares as the empty string.
//! - [`field_value`] and [`validate_fields`] are the per-kind field label
//!   conversion functions and `ToSelectableFields` sets: which fields each
//!   kind can be selected on, how their values render (`"true"`, `"0"`), and
//!   the error for any other field.
//!
//! Nothing here panics on any input: selectors are untrusted.

mod fields;
mod labels;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector, escape_value, field_value, validate_fields};
pub use labels::{LabelSelector, Labels, Operator, Requirement};

/// A selector that does not parse or validate, or names a field its kind
/// cannot be selected on. `Display` is upstream's message, which the API
/// server returns in a 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector that does not parse, or whose keys, values or
    /// operators are invalid.
    #[error("{0}")]
    Label(String),
    /// A field selector that does not parse.
    #[error("{0}")]
    Field(String),
    /// A field the kind does not support selecting on.
    #[error("{message}")]
    UnsupportedField { field: String, message: String },
}

/// Go's `%q` for a string (`strconv.Quote`), as upstream messages use it.
fn go_quote(s: &str) -> String {
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
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn go_quote_matches_strconv_quote() {
        let cases = [
            ("abc", r#""abc""#),
            ("", r#""""#),
            ("a\"b", r#""a\"b""#),
            ("a\\b", r#""a\\b""#),
            ("tab\there", r#""tab\there""#),
            ("nul\u{0}", r#""nul\x00""#),
            ("del\u{7f}", r#""del\x7f""#),
            ("é", r#""é""#),
            ("\u{85}", r#""\u0085""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
