//! Errors, apply conflicts, and upstream's wording of them.

use serde_json::{Value, json};

use crate::managers::{Operation, identifier};
use crate::path::Path;

/// A field that an apply would change although another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name (`kubectl-client-side-apply`).
    pub manager: String,
    /// How the other manager got the field.
    pub operation: Operation,
    /// The other manager's API version (recorded for `Update` managers).
    pub api_version: String,
    /// The other manager's subresource (`scale`, `status`), or empty.
    pub subresource: String,
    /// The field, as upstream spells it: `.spec.replicas`.
    pub field: String,
    pub(crate) path: Path,
}

impl Conflict {
    /// How upstream names the manager: `"kubectl-scale" with subresource "scale" using apps/v1`.
    pub fn manager_description(&self) -> String {
        let mut out = quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {}", quote(&self.subresource)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn manager_id(&self) -> String {
        identifier(&self.manager, self.operation, &self.api_version, &self.subresource)
    }

    /// The `details.causes` entry upstream reports for this conflict.
    pub fn cause(&self) -> Value {
        json!({
            "type": "FieldManagerConflict",
            "message": format!("conflict with {}", self.manager_description()),
            "field": self.field,
        })
    }
}

fn quote(text: &str) -> String {
    Value::from(text).to_string()
}

/// Upstream's message for an apply that failed on `conflicts`:
/// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`,
/// or, for several, one `conflicts with ...:` block per manager (ordered by
/// manager identifier) listing `- <field>` lines.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_description(),
            only.field
        );
    }
    let mut by_manager: std::collections::BTreeMap<String, Vec<&Conflict>> = Default::default();
    for conflict in conflicts {
        by_manager.entry(conflict.manager_id()).or_default().push(conflict);
    }
    let mut lines = Vec::new();
    for group in by_manager.values() {
        lines.push(format!("conflicts with {}:", group[0].manager_description()));
        lines.extend(group.iter().map(|c| format!("- {}", c.field)));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Why an apply or a managed-fields update failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The apply would change fields other managers own (HTTP 409, reason `Conflict`).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The request is malformed: wrong kind or version, `managedFields` in
    /// the applied object, not an object (HTTP 400, reason `BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// An apply without `fieldManager` (HTTP 422, reason `Invalid`).
    #[error("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")]
    MissingFieldManager,
    /// The objects do not fit their schema (a list element without its key
    /// fields, a repeated key in the applied object) or the stored
    /// `managedFields` cannot be read (HTTP 500, reason `InternalError`, as upstream).
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// The HTTP status code upstream answers with.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::MissingFieldManager => 422,
            ApplyError::Internal(_) => 500,
        }
    }

    /// The `meta.k8s.io/v1` `Status` reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "Conflict",
            ApplyError::BadRequest(_) => "BadRequest",
            ApplyError::MissingFieldManager => "Invalid",
            ApplyError::Internal(_) => "InternalError",
        }
    }

    /// The `meta.k8s.io/v1` `Status` object upstream answers with.
    pub fn status(&self) -> Value {
        let message = match self {
            ApplyError::Internal(m) => format!("Internal error occurred: {m}"),
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": self.reason(), "code": self.code(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApplyError::Conflicts(conflicts) => {
                Some(json!({"causes": conflicts.iter().map(Conflict::cause).collect::<Vec<_>>()}))
            }
            ApplyError::MissingFieldManager => {
                let message = "Required value: is required for apply patch";
                let cause = json!({"reason": "FieldValueRequired", "message": message, "field": "fieldManager"});
                Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause]}))
            }
            ApplyError::Internal(m) => Some(json!({"causes": [{"message": m}]})),
            ApplyError::BadRequest(_) => None,
        }
    }
}
