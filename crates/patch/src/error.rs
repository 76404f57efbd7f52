//! Why a patch cannot be applied; messages follow upstream's `mergepatch` errors.

use serde_json::Value;

/// A strategic merge patch that cannot be applied. The API server answers
/// these with `422 Invalid` / `400 BadRequest` as upstream does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document: the {0} is not a JSON object")]
    NotAnObject(&'static str),
    /// A list element lacks the list's merge key.
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey { key: String, element: String },
    /// `$patch` has a value other than `replace` or `delete` (or `merge` in a list).
    #[error("unknown patch type: {directive} in map: {element}")]
    UnknownDirective { directive: String, element: String },
    /// `$patch: merge` in a list, which upstream reserves for struct tags.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A malformed `$retainKeys`, or a patch setting a field it does not retain.
    #[error("invalid patch format of retainKeys: {0}")]
    RetainKeys(String),
    /// A malformed `$setElementOrder/<list>`, or one the patch list contradicts.
    #[error("invalid patch format of setElementOrder list: {0}")]
    SetElementOrder(String),
    /// Elements of one list are of different JSON types.
    #[error("list element types are not identical: {0}")]
    MixedList(String),
    /// A merging list holds lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A list of objects is declared `merge` but has no merge key.
    #[error("cannot merge lists without merge key for type map")]
    NoMergeKey,
    /// The documents nest deeper than any Kubernetes object.
    #[error("the patch nests deeper than {0} levels")]
    TooDeep(usize),
}

impl PatchError {
    pub(crate) fn missing_key(key: &str, element: &Value) -> PatchError {
        PatchError::MissingMergeKey {
            key: key.to_string(),
            element: brief(element),
        }
    }

    pub(crate) fn unknown_directive(directive: &Value, element: &Value) -> PatchError {
        let directive = match directive {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        PatchError::UnknownDirective {
            directive,
            element: brief(element),
        }
    }
}

/// A value for an error message, cut to a readable length.
pub(crate) fn brief(value: &Value) -> String {
    const LIMIT: usize = 200;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
