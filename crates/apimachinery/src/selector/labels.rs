//! Label selectors: upstream `k8s.io/apimachinery/pkg/labels` (`selector.go`)
//! and `metav1.LabelSelectorAsSelector`.
//!
//! The parser is a port of upstream's hand-written lexer and recursive-descent
//! parser rather than a grammar of our own, because clients see its quirks:
//! which inputs are accepted (`x in ()`, `in in (in)`), and the exact
//! `found '...', expected: ...` message for each wrong token.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::{Map, Value};

use super::{SelectorError, go_quote};

/// How a [`Requirement`] relates its key to its values (upstream `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// Upstream's spelling of the operator, e.g. `notin`, `==`, `gt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// Where [`LabelSelector::matches`] looks labels up: implemented for label
/// maps as they appear in objects (`serde_json::Map`, whose non-string values
/// count as absent) and in typed code (`BTreeMap`, `HashMap`).
pub trait Labels {
    /// The value of label `key`, if the object has it.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<T: Labels + ?Sized> Labels for &T {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// No labels at all, e.g. an object without `metadata.labels`.
impl<T: Labels> Labels for Option<T> {
    fn label(&self, key: &str) -> Option<&str> {
        self.as_ref().and_then(|labels| labels.label(key))
    }
}

/// One requirement of a label selector: a key, an operator and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Upstream `labels.NewRequirement`: validates the key, the number of
    /// values the operator takes, integer values for `gt`/`lt`, and each value.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, SelectorError> {
        validate_requirement(key, operator, &values).map_err(SelectorError::Label)?;
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.matches_with(|key| labels.label(key))
    }

    /// Upstream `Requirement.Matches`: `notin` and `!=` hold for objects
    /// without the label; `gt`/`lt` need the label to be an integer.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(|v| self.has_value(v)),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(|v| self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan => self.compare(value).is_some_and(|(have, want)| have > want),
            Operator::LessThan => self.compare(value).is_some_and(|(have, want)| have < want),
        }
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// The label's and the requirement's integers, when both are integers.
    fn compare(&self, value: Option<&str>) -> Option<(i64, i64)> {
        let have = value?.parse::<i64>().ok()?;
        match self.values.as_slice() {
            [want] => Some((have, want.parse::<i64>().ok()?)),
            _ => None,
        }
    }
}

/// Upstream `Requirement.String()`: `key=v`, `key in (a,b)`, `!key`, ...;
/// several values print sorted.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (before, after) = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::In => (" in (", ")"),
            Operator::NotIn => (" notin (", ")"),
            Operator::Equals => ("=", ""),
            Operator::DoubleEquals => ("==", ""),
            Operator::NotEquals => ("!=", ""),
            Operator::GreaterThan => (">", ""),
            Operator::LessThan => ("<", ""),
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        write!(f, "{}{before}{}{after}", self.key, values.join(","))
    }
}

/// A parsed label selector: the AND of its requirements, kept sorted by key.
/// The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything (upstream `labels.Everything()`).
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Upstream `labels.Parse`, the `?labelSelector=` syntax.
    pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
        let requirements = Parser::new(selector).parse().map_err(SelectorError::Label)?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Upstream `metav1.LabelSelectorAsSelector` for a present selector:
    /// `{}` matches everything. (A missing selector matches nothing; callers
    /// handle that case themselves.)
    pub fn from_meta(selector: &metav1::LabelSelector) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(key, Operator::Equals, vec![value.clone()])?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = meta_operator(&expression.operator)?;
            let values = expression.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expression.key, operator, values)?);
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// A selector of already-validated requirements, sorted by key.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether the selector has no requirements, i.e. matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.matches_with(|key| labels.label(key))
    }

    /// [`matches`](Self::matches) with labels looked up by a function.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches_with(&get))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches(&labels)
    }

    /// The value the selector requires `key` to have, if it pins one
    /// (`key=v`, `key==v` or `key in (v)`), as upstream `RequiresExactMatch`.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == key)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

/// Upstream `Selector.String()`: the requirements, comma-separated.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(selector: &str) -> Result<LabelSelector, SelectorError> {
        LabelSelector::parse(selector)
    }
}

impl TryFrom<&metav1::LabelSelector> for LabelSelector {
    type Error = SelectorError;

    fn try_from(selector: &metav1::LabelSelector) -> Result<LabelSelector, SelectorError> {
        LabelSelector::from_meta(selector)
    }
}

fn meta_operator(operator: &str) -> Result<Operator, SelectorError> {
    match operator {
        "In" => Ok(Operator::In),
        "NotIn" => Ok(Operator::NotIn),
        "Exists" => Ok(Operator::Exists),
        "DoesNotExist" => Ok(Operator::DoesNotExist),
        other => Err(SelectorError::Label(format!(
            "{} is not a valid label selector operator",
            go_quote(other)
        ))),
    }
}

// ---- Validation (upstream NewRequirement and util/validation) ----

const NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const NAME_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
const VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
                         and must start and end with an alphanumeric character";
const VALUE_EXAMPLES: &[&str] = &["MyValue", "my_value", "12345"];
const DNS_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
                       and must start and end with an alphanumeric character";
const MAX_NAME: usize = 63;
const MAX_SUBDOMAIN: usize = 253;

/// Upstream `NewRequirement`'s checks, as its aggregated error message.
fn validate_requirement(key: &str, operator: Operator, values: &[String]) -> Result<(), String> {
    let mut errors = Vec::new();
    errors.extend(key_error("key", key));
    errors.extend(operator_errors(operator, values));
    for (i, value) in values.iter().enumerate() {
        let problems = label_value_errors(value);
        if !problems.is_empty() {
            errors.push(invalid(
                &format!("values[{i}][{key}]"),
                &go_quote(value),
                &problems.join("; "),
            ));
        }
    }
    aggregate(errors)
}

fn operator_errors(operator: Operator, values: &[String]) -> Vec<String> {
    let count_error = |detail: &str| vec![invalid("values", &json_strings(values), detail)];
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            count_error("for 'in', 'notin' operators, values set can't be empty")
        }
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            count_error("exact-match compatibility requires one single value")
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            count_error("values set must be empty for exists and does not exist")
        }
        Operator::GreaterThan | Operator::LessThan => integer_errors(values),
        _ => Vec::new(),
    }
}

fn integer_errors(values: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    if values.len() != 1 {
        let detail = "for 'Gt', 'Lt' operators, exactly one value is required";
        errors.push(invalid("values", &json_strings(values), detail));
    }
    for (i, value) in values.iter().enumerate() {
        if value.parse::<i64>().is_err() {
            let detail = "for 'Gt', 'Lt' operators, the value must be an integer";
            errors.push(invalid(&format!("values[{i}]"), &go_quote(value), detail));
        }
    }
    errors
}

/// `field.Invalid(path, value, detail).Error()`; `value` is already rendered.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// A label key's problems as a field error at `path`, if it has any.
fn key_error(path: &str, key: &str) -> Option<String> {
    let problems = label_key_errors(key);
    (!problems.is_empty()).then(|| invalid(path, &go_quote(key), &problems.join("; ")))
}

/// Upstream `utilerrors.NewAggregate(...).Error()`: one message as is,
/// several de-duplicated inside `[...]`.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    match unique.len() {
        0 => Ok(()),
        1 => Err(unique.remove(0)),
        _ => Err(format!("[{}]", unique.join(", "))),
    }
}

/// Go's `json.Marshal` of a string slice, `null` when empty (upstream passes nil).
fn json_strings(values: &[String]) -> String {
    if values.is_empty() {
        return "null".to_string();
    }
    let json = serde_json::to_string(values).unwrap_or_default();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Upstream `validation.IsQualifiedName`: `[prefix/]name`.
fn label_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            errors.extend(prefix_errors(prefix));
            *name
        }
        _ => {
            let message = regex_error(NAME_ERR, NAME_FMT, NAME_EXAMPLES);
            return vec![format!(
                "a qualified name {message} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > MAX_NAME {
        errors.push(format!("name part must be no more than {MAX_NAME} characters"));
    }
    if !is_label_name(name) {
        errors.push(format!("name part {}", regex_error(NAME_ERR, NAME_FMT, NAME_EXAMPLES)));
    }
    errors
}

fn prefix_errors(prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        return vec!["prefix part must be non-empty".to_string()];
    }
    let mut errors = Vec::new();
    if prefix.len() > MAX_SUBDOMAIN {
        errors.push(format!("prefix part must be no more than {MAX_SUBDOMAIN} characters"));
    }
    if !is_dns1123_subdomain(prefix) {
        errors.push(format!(
            "prefix part {}",
            regex_error(DNS_ERR, DNS_FMT, &["example.com"])
        ));
    }
    errors
}

/// Upstream `validation.IsValidLabelValue`: empty, or a label name.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > MAX_NAME {
        errors.push(format!("must be no more than {MAX_NAME} characters"));
    }
    if !value.is_empty() && !is_label_name(value) {
        errors.push(regex_error(VALUE_ERR, VALUE_FMT, VALUE_EXAMPLES));
    }
    errors
}

/// Upstream `validation.RegexError`, double spaces included.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{format}')");
    }
    let quoted: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        quoted.join(" or ")
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, length aside.
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, length aside.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let lower_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        bytes.first().is_some_and(lower_alnum)
            && bytes.last().is_some_and(lower_alnum)
            && bytes.iter().all(|b| lower_alnum(b) || *b == b'-')
    })
}

// ---- Lexer (upstream labels.Lexer) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Upstream `string2token`: the literals that are tokens.
fn keyword(literal: &str) -> Option<Token> {
    Some(match literal {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector into tokens byte by byte, as upstream does. Tokens only
/// end at ASCII bytes, so every literal is a valid `str` slice. Like
/// upstream, a NUL byte reads as the end of the input.
struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next byte, or 0 at the end.
    fn read(&mut self) -> u8 {
        match self.input.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn slice(&self, start: usize, end: usize) -> String {
        self.input.get(start..end).unwrap_or_default().to_string()
    }

    fn lex(&mut self) -> (Token, String) {
        let mut b = self.read();
        while is_whitespace(b) {
            b = self.read();
        }
        if b == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special(b) {
            self.scan_special()
        } else {
            self.scan_identifier()
        }
    }

    /// An identifier, or the keywords `in` and `notin`.
    fn scan_identifier(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end = start;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if is_special(b) || is_whitespace(b) {
                self.unread();
                break;
            }
            end = self.pos;
        }
        let literal = self.slice(start, end);
        (keyword(&literal).unwrap_or(Token::Identifier), literal)
    }

    /// The longest operator made of special characters (`!=`, `==`, `(`, ...).
    fn scan_special(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut last: Option<(Token, String)> = None;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if !is_special(b) {
                self.unread();
                break;
            }
            let literal = self.slice(start, self.pos);
            match keyword(&literal) {
                Some(token) => last = Some((token, literal)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        last.unwrap_or_else(|| {
            let found = self.slice(start, self.pos);
            (Token::Error, format!("error expected: keyword found '{found}'"))
        })
    }
}

// ---- Parser (upstream labels.Parser) ----

/// In `Values` context the keywords `in` and `notin` are plain identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(input: &str) -> Parser {
        let mut lexer = Lexer { input, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, pos: 0 }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        self.pos += 1;
        item
    }

    /// Upstream `Parser.parse`: requirements separated by commas.
    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    if self.after_requirement()? {
                        return Ok(requirements);
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    /// After a requirement: the end (true), or a comma and another one (false).
    fn after_requirement(&mut self) -> Result<bool, String> {
        let (token, literal) = self.consume(Context::Values);
        match token {
            Token::EndOfString => Ok(true),
            Token::Comma => match self.lookahead(Context::Values) {
                (Token::Identifier | Token::DoesNotExist, _) => Ok(false),
                (_, next) => Err(format!("found '{next}', expected: identifier after ','")),
            },
            _ => Err(format!("found '{literal}', expected: ',' or 'end of string'")),
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return new_parsed(&key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_parsed(&key, operator, values.into_iter().collect())
    }

    /// The key, after an optional `!`; a key alone means `exists`.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        if let Some(error) = key_error("<nil>", &literal) {
            return Err(error);
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `(a,b,...)` for `in` and `notin`; `()` is the set of the empty string.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
    }

    /// Comma-separated, possibly empty values, up to (not including) `)`.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    match self.lookahead(Context::Values) {
                        (Token::Comma, _) => continue,
                        (Token::ClosedPar, _) => return Ok(values),
                        (_, next) => return Err(format!("found '{next}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; may be empty.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.lookahead(Context::Values).0, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Context::Values) {
            (Token::Identifier, literal) => Ok(BTreeSet::from([literal])),
            (_, literal) => Err(format!("found '{literal}', expected: identifier")),
        }
    }
}

fn new_parsed(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
    validate_requirement(key, operator, &values)?;
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY_NAME_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
        and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
        validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
        or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', \
        regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn parse_err(input: &str) -> String {
        match LabelSelector::parse(input) {
            Ok(selector) => panic!("{input:?} parsed as {selector}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_to_canonical_string() {
        let cases = [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x", "x"),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<10", "x<10"),
            ("x in (b,a)", "x in (a,b)"),
            ("x notin (a)", "x notin (a)"),
            ("x=", "x="),
            ("x!=", "x!="),
            ("x in ()", "x in ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (a,a)", "x in (a)"),
            ("in in (in)", "in in (in)"),
            ("notin notin (notin)", "notin notin (notin)"),
            ("x=in", "x=in"),
            ("x,!in", "!in,x"),
            (" x = a , y ", "x=a,y"),
            ("\tx\tin\t(\ta\t,\tb\t)\r\n", "x in (a,b)"),
            ("z,y=b,x in (a)", "x in (a),y=b,z"),
            ("x=a,x!=b", "x=a,x!=b"),
            ("example.com/app=web", "example.com/app=web"),
            ("a.b-c_d=A.b-C_1", "a.b-c_d=A.b-C_1"),
            // Upstream reads a NUL byte as the end of input where a token starts.
            ("x=a\0", "x=a"),
            ("\0x=1", ""),
        ];
        for (input, want) in cases {
            match LabelSelector::parse(input) {
                Ok(selector) => assert_eq!(selector.to_string(), want, "{input:?}"),
                Err(e) => panic!("{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn rejects_bad_syntax_with_upstream_messages() {
        let cases = [
            ("x=a,", "found '', expected: identifier after ','"),
            ("x=a,,y", "found ',', expected: identifier after ','"),
            (",x", "found ',', expected: !, identifier, or 'end of string'"),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            ("(", "found '(', expected: !, identifier, or 'end of string'"),
            (
                "x y",
                "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "x (a)",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("x in", "unable to parse requirement: found '' expected: '('"),
            ("x in a", "unable to parse requirement: found 'a' expected: '('"),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
            (
                "x in (a b)",
                "unable to parse requirement: found 'b', expected: ',' or ')'",
            ),
            (
                "x in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "x in (a,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            ("x=(", "unable to parse requirement: found '(', expected: identifier"),
            ("x<=1", "unable to parse requirement: found '=', expected: identifier"),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x=a)", "found ')', expected: ',' or 'end of string'"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("!!x", "unable to parse requirement: found '!', expected: identifier"),
            ("x=a\0b", "found 'b', expected: ',' or 'end of string'"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_err(input), want, "{input:?}");
        }
    }

    #[test]
    fn rejects_invalid_keys_and_values() {
        let dns = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
            and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation \
            is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        let long = "k".repeat(64);
        let cases = [
            ("app:web", format!(r#"unable to parse requirement: <nil>: Invalid value: "app:web": {KEY_NAME_ERR}"#)),
            ("*bar", format!(r#"unable to parse requirement: <nil>: Invalid value: "*bar": {KEY_NAME_ERR}"#)),
            (
                "app/=x",
                format!(
                    r#"unable to parse requirement: <nil>: Invalid value: "app/": name part must be non-empty; {KEY_NAME_ERR}"#
                ),
            ),
            (
                "/app",
                r#"unable to parse requirement: <nil>: Invalid value: "/app": prefix part must be non-empty"#.into(),
            ),
            (
                "app.kubernetes_io/name=x",
                format!(r#"unable to parse requirement: <nil>: Invalid value: "app.kubernetes_io/name": prefix part {dns}"#),
            ),
            (
                "a/b/c",
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name {}",
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                     alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                     validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain \
                     prefix and '/' (e.g. 'example.com/MyName')"
                ),
            ),
            (
                long.as_str(),
                format!(
                    r#"unable to parse requirement: <nil>: Invalid value: "{long}": name part must be no more than 63 characters"#
                ),
            ),
            ("x=a$", format!(r#"unable to parse requirement: values[0][x]: Invalid value: "a$": {VALUE_MSG}"#)),
            (
                "x in (b%,a$)",
                format!(
                    r#"unable to parse requirement: [values[0][x]: Invalid value: "a$": {VALUE_MSG}, values[1][x]: Invalid value: "b%": {VALUE_MSG}]"#
                ),
            ),
            (
                "x>a",
                r#"unable to parse requirement: values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer"#.into(),
            ),
            (
                "x>",
                r#"unable to parse requirement: values[0]: Invalid value: "": for 'Gt', 'Lt' operators, the value must be an integer"#.into(),
            ),
            ("x>-1", format!(r#"unable to parse requirement: values[0][x]: Invalid value: "-1": {VALUE_MSG}"#)),
            (
                "x>1$",
                format!(
                    r#"unable to parse requirement: [values[0]: Invalid value: "1$": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: "1$": {VALUE_MSG}]"#
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_err(input), want, "{input:?}");
        }
        let long_value = format!("x={}", "v".repeat(64));
        assert_eq!(
            parse_err(&long_value),
            format!(
                r#"unable to parse requirement: values[0][x]: Invalid value: "{}": must be no more than 63 characters"#,
                "v".repeat(64)
            )
        );
        assert!(LabelSelector::parse(&format!("{}/{}=x", "p".repeat(253), "k".repeat(63))).is_ok());
        assert!(parse_err(&format!("{}/k", "p".repeat(254))).contains("prefix part must be no more than 253"));
    }

    /// Messages exactly as real API servers print them (single-line literals).
    #[test]
    fn messages_match_real_servers() {
        assert_eq!(
            parse_err("app:monolith"),
            r#"unable to parse requirement: <nil>: Invalid value: "app:monolith": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#
        );
        assert_eq!(
            parse_err("a=sidecar;hello"),
            r#"unable to parse requirement: values[0][a]: Invalid value: "sidecar;hello": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#
        );
        assert_eq!(
            parse_err("app.kubernetes_io/name=x"),
            r#"unable to parse requirement: <nil>: Invalid value: "app.kubernetes_io/name": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        );
    }

    #[test]
    fn matches_upstream_semantics() {
        let labels: BTreeMap<String, String> = [("a", "1"), ("b", "x"), ("e", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cases = [
            ("", true),
            ("a=1", true),
            ("a==1", true),
            ("a=2", false),
            ("z=1", false),
            ("a!=1", false),
            ("a!=2", true),
            ("z!=1", true),
            ("a in (1,2)", true),
            ("a in (2,3)", false),
            ("z in (1)", false),
            ("a notin (1)", false),
            ("a notin (2,3)", true),
            ("z notin (1)", true),
            ("a", true),
            ("z", false),
            ("!a", false),
            ("!z", true),
            ("a>0", true),
            ("a>1", false),
            ("a<2", true),
            ("a<1", false),
            ("b>0", false),
            ("b<0", false),
            ("z>0", false),
            ("z<0", false),
            ("e=", true),
            ("e", true),
            ("z=", false),
            ("e in ()", true),
            ("a=1,b=x", true),
            ("a=1,b=y", false),
        ];
        for (input, want) in cases {
            let selector = LabelSelector::parse(input).unwrap();
            assert_eq!(selector.matches(&labels), want, "{input:?} on BTreeMap");
            let map = json!({"a": "1", "b": "x", "e": ""});
            assert_eq!(selector.matches(map.as_object().unwrap()), want, "{input:?} on json");
            let hash: HashMap<String, String> = labels.clone().into_iter().collect();
            assert_eq!(selector.matches(&hash), want, "{input:?} on HashMap");
        }
    }

    #[test]
    fn matches_objects_and_lookup_functions() {
        let selector = LabelSelector::parse("app=web,tier notin (db),!legacy").unwrap();
        assert!(selector.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!selector.matches_object(&json!({"metadata": {"labels": {"app": "web", "legacy": "1"}}})));
        assert!(!selector.matches_object(&json!({"metadata": {}})));
        assert!(
            LabelSelector::parse("!app")
                .unwrap()
                .matches_object(&json!({"metadata": {}}))
        );
        assert!(LabelSelector::everything().matches_object(&json!({})));
        // Non-string label values count as absent.
        assert!(!selector.matches_object(&json!({"metadata": {"labels": {"app": 1}}})));
        let get = |key: &str| (key == "app").then_some("web");
        assert!(selector.matches_with(get));
    }

    #[test]
    fn display_round_trips() {
        let inputs = [
            "x in (c,b,a),y notin (z),!w,v,u=1,t==2,s!=3,r>4,q<5",
            "x in (,a)",
            "x=,y==,z!=",
            "example.com/a in (x)",
        ];
        for input in inputs {
            let selector = LabelSelector::parse(input).unwrap();
            let printed = selector.to_string();
            let again = LabelSelector::parse(&printed).unwrap();
            assert_eq!(again, selector, "{input:?} -> {printed:?}");
            assert_eq!(again.to_string(), printed);
        }
    }

    #[test]
    fn requires_exact_match() {
        let selector = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5,e==6").unwrap();
        assert_eq!(selector.requires_exact_match("a"), Some("1"));
        assert_eq!(selector.requires_exact_match("b"), Some("2"));
        assert_eq!(selector.requires_exact_match("c"), None);
        assert_eq!(selector.requires_exact_match("d"), None);
        assert_eq!(selector.requires_exact_match("e"), Some("6"));
        assert_eq!(selector.requires_exact_match("z"), None);
    }

    fn expression(key: &str, operator: &str, values: Option<&[&str]>) -> metav1::LabelSelectorRequirement {
        metav1::LabelSelectorRequirement {
            key: key.to_string(),
            operator: operator.to_string(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn meta(labels: &[(&str, &str)], expressions: Vec<metav1::LabelSelectorRequirement>) -> metav1::LabelSelector {
        let match_labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        metav1::LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: Some(expressions),
        }
    }

    #[test]
    fn from_meta_label_selector() {
        let empty = LabelSelector::from_meta(&metav1::LabelSelector::default()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches_object(&json!({"metadata": {"labels": {"any": "thing"}}})));
        assert!(LabelSelector::from_meta(&meta(&[], vec![])).unwrap().is_empty());

        let selector = LabelSelector::try_from(&meta(
            &[("z", "1"), ("a", "2")],
            vec![
                expression("m", "In", Some(&["y", "x"])),
                expression("n", "NotIn", Some(&["q"])),
                expression("o", "Exists", None),
                expression("p", "DoesNotExist", Some(&[])),
            ],
        ))
        .unwrap();
        assert_eq!(selector.to_string(), "a=2,m in (x,y),n notin (q),o,!p,z=1");
        let labels = json!({"a": "2", "z": "1", "m": "x", "o": ""});
        assert!(selector.matches(labels.as_object().unwrap()));
        let labels = json!({"a": "2", "z": "1", "m": "x", "o": "", "p": "1"});
        assert!(!selector.matches(labels.as_object().unwrap()));
    }

    #[test]
    fn from_meta_rejects_invalid_requirements() {
        let cases = [
            (
                meta(&[], vec![expression("a", "In", None)]),
                "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".to_string(),
            ),
            (
                meta(&[], vec![expression("a", "NotIn", Some(&[]))]),
                "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".to_string(),
            ),
            (
                meta(&[], vec![expression("a", "Exists", Some(&["x"]))]),
                r#"values: Invalid value: ["x"]: values set must be empty for exists and does not exist"#.to_string(),
            ),
            (
                meta(&[], vec![expression("a", "Gt", Some(&["1"]))]),
                r#""Gt" is not a valid label selector operator"#.to_string(),
            ),
            (
                meta(&[("a b", "x")], vec![]),
                format!(r#"key: Invalid value: "a b": {KEY_NAME_ERR}"#),
            ),
            (
                meta(&[("a", "x y")], vec![]),
                format!(r#"values[0][a]: Invalid value: "x y": {VALUE_MSG}"#),
            ),
        ];
        for (selector, want) in cases {
            let got = LabelSelector::from_meta(&selector).unwrap_err().to_string();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn requirement_new_validates_counts() {
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = Requirement::new("a", Operator::Equals, values(&["1", "2"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"values: Invalid value: ["1","2"]: exact-match compatibility requires one single value"#
        );
        let err = Requirement::new("a", Operator::GreaterThan, values(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: null: for 'Gt', 'Lt' operators, exactly one value is required"
        );
        let requirement = Requirement::new("a", Operator::LessThan, values(&["10"])).unwrap();
        assert_eq!((requirement.key(), requirement.operator()), ("a", Operator::LessThan));
        assert_eq!(requirement.values(), ["10"]);
        assert_eq!(requirement.to_string(), "a<10");
        assert_eq!(Operator::DoesNotExist.as_str(), "!");
    }

    /// Every short string over a hostile alphabet: parsing never panics, and
    /// whatever parses prints to a string that parses back to the same.
    #[test]
    fn never_panics_and_round_trips() {
        let alphabet = [
            "a", "1", "=", "!", "(", ")", ",", "in", "notin", " ", "\0", "é", ">", "<", "/", "-",
        ];
        let mut level = vec![String::new()];
        let mut inputs = Vec::new();
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|prefix| alphabet.iter().map(move |piece| format!("{prefix}{piece}")))
                .collect();
            inputs.extend(level.iter().cloned());
        }
        for input in &inputs {
            let Ok(selector) = LabelSelector::parse(input) else {
                continue;
            };
            let printed = selector.to_string();
            let again = LabelSelector::parse(&printed).unwrap_or_else(|e| panic!("{input:?} -> {printed:?}: {e}"));
            assert_eq!(again, selector, "{input:?} -> {printed:?}");
        }
    }
}
