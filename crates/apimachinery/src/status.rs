//! API errors as upstream `metav1.Status` objects.
//!
//! kubectl prints `Error from server (NotFound): pods "x" not found` from the
//! `reason` and `message` of the Status it gets, and client libraries branch
//! on `reason` and `code`; so both must be upstream's, word for word. Each
//! constructor here mirrors one of apimachinery's `errors.New*` functions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status, StatusCause, StatusDetails};

use crate::ResourceType;

/// An API error: the HTTP status code plus the Status body to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<StatusDetails>>,
}

/// One field-level problem of an `Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// What upstream prints after the path, e.g. `Required value`.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
        let detail = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            detail,
        }
    }

    /// `Invalid value: "X": why`, with the value rendered as upstream does (Go `%#v`-like).
    pub fn invalid(field: impl Into<String>, value: &serde_json::Value, why: &str) -> FieldError {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            detail: format!("Invalid value: {}: {why}", render_value(value)),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &serde_json::Value, supported: &[&str]) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            detail: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            detail: format!("Forbidden: {why}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &serde_json::Value) -> FieldError {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            detail: format!("Duplicate value: {}", render_value(value)),
        }
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> FieldError {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            detail: format!("Too long: may not be more than {max} bytes"),
        }
    }

    /// `field: detail`, as it appears in the error message.
    pub fn to_message(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
}

/// Strings quoted, numbers and booleans bare, as upstream's error text shows them.
fn render_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn details(name: &str, group: &str, kind: &str) -> Option<Box<StatusDetails>> {
    Some(Box::new(StatusDetails {
        name: (!name.is_empty()).then(|| name.to_string()),
        group: (!group.is_empty()).then(|| group.to_string()),
        kind: (!kind.is_empty()).then(|| kind.to_string()),
        ..StatusDetails::default()
    }))
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404: `deployments.apps "web" not found`.
    pub fn not_found(resource: &ResourceType, name: &str) -> ApiError {
        Self::not_found_named(resource.group, resource.plural, name)
    }

    /// 404 for a resource given by group and plural (e.g. a namespace).
    pub fn not_found_named(group: &str, plural: &str, name: &str) -> ApiError {
        let qualified = qualify(plural, group);
        ApiError {
            details: details(name, group, plural),
            ..Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
        }
    }

    /// 409: `configmaps "x" already exists`.
    pub fn already_exists(resource: &ResourceType, name: &str) -> ApiError {
        ApiError {
            details: details(name, resource.group, resource.plural),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", resource.qualified_plural()),
            )
        }
    }

    /// 409: a stale resourceVersion (optimistic concurrency).
    pub fn conflict(resource: &ResourceType, name: &str) -> ApiError {
        Self::conflict_because(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 with another reason after the colon (e.g. a failed precondition).
    pub fn conflict_because(resource: &ResourceType, name: &str, why: &str) -> ApiError {
        ApiError {
            details: details(name, resource.group, resource.plural),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    resource.qualified_plural()
                ),
            )
        }
    }

    /// 422: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: ...`.
    pub fn invalid(resource: &ResourceType, name: &str, errors: &[FieldError]) -> ApiError {
        let qualified_kind = qualify(resource.kind, resource.group);
        let messages: Vec<String> = errors.iter().map(FieldError::to_message).collect();
        let summary = match messages.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: Some(e.reason.to_string()),
                message: Some(e.detail.clone()),
                field: Some(e.field.clone()),
            })
            .collect();
        ApiError {
            details: Some(Box::new(StatusDetails {
                causes: Some(causes),
                ..details(name, resource.group, resource.kind)
                    .map(|d| *d)
                    .unwrap_or_default()
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
            )
        }
    }

    /// 422 for a patch that cannot be applied (a failed JSON patch `test`, a bad path).
    pub fn invalid_patch(message: impl Into<String>) -> ApiError {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(400, "BadRequest", message)
    }

    /// 410: a watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> ApiError {
        Self::new(410, "Expired", message)
    }

    /// 410 for a resourceVersion older than history: `too old resource version: 5 (10)`.
    pub fn too_old_resource_version(requested: i64, oldest: i64) -> ApiError {
        Self::expired(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn unauthorized() -> ApiError {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 as upstream's authorization filter words it:
    /// `pods "p" is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "default"`
    /// (no name for collections).
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &ResourceType,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> ApiError {
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        let target = match subresource {
            Some(sub) => format!("{}/{sub}", resource.plural),
            None => resource.plural.to_string(),
        };
        let subject = match name {
            Some(name) => format!("{} \"{name}\"", resource.qualified_plural()),
            None => resource.qualified_plural(),
        };
        let message = format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{target}\" in API group \"{}\"{scope}",
            resource.group
        );
        ApiError {
            details: details(name.unwrap_or_default(), resource.group, resource.plural),
            ..Self::new(403, "Forbidden", message)
        }
    }

    /// 403 for a non-resource path: `forbidden: User "u" cannot get path "/apis"`.
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> ApiError {
        Self::new(
            403,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
        )
    }

    /// 403 from an admission plugin: `pods "p" is forbidden: no PriorityClass with name x was found`.
    pub fn admission_forbidden(resource: &ResourceType, name: &str, why: &str) -> ApiError {
        ApiError {
            details: details(name, resource.group, resource.plural),
            ..Self::new(
                403,
                "Forbidden",
                format!("{} \"{name}\" is forbidden: {why}", resource.qualified_plural()),
            )
        }
    }

    /// 403: writing into a namespace that is being deleted.
    pub fn namespace_terminating(namespace: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("NamespaceTerminating".into()),
                    message: Some(format!("namespace {namespace} is being terminated")),
                    field: Some("metadata.namespace".into()),
                }]),
                ..StatusDetails::default()
            })),
            ..Self::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            )
        }
    }

    pub fn method_not_allowed() -> ApiError {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        Self::new(406, "NotAcceptable", message)
    }

    /// 413: bodies over the API server's limit.
    pub fn too_large(limit: usize) -> ApiError {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 404 for a path that names no resource (upstream's plain "404 page not found" is text; this is JSON).
    pub fn path_not_found() -> ApiError {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        Self::new(504, "Timeout", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            metadata: ListMeta::default(),
            reason: Some(self.reason.to_string()),
            status: Some("Failure".to_string()),
        }
    }

    /// The Status as JSON, with `kind` and `apiVersion`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self.to_status()).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("kind".into(), "Status".into());
            obj.insert("apiVersion".into(), "v1".into());
        }
        value
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `deployments` + `apps` → `deployments.apps`; core resources stay bare.
fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn messages_match_upstream() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(ApiError::not_found(pods, "x").message, r#"pods "x" not found"#);
        assert_eq!(
            ApiError::not_found(deploy, "x").message,
            r#"deployments.apps "x" not found"#
        );
        assert_eq!(
            ApiError::conflict(deploy, "d").message,
            r#"Operation cannot be fulfilled on deployments.apps "d": the object has been modified; please apply your changes to the latest version and try again"#
        );
        assert_eq!(
            ApiError::forbidden("u", "list", pods, None, Some("default"), None).message,
            r#"pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            ApiError::forbidden("u", "get", pods, Some("log"), Some("default"), Some("p")).message,
            r#"pods "p" is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "default""#
        );
        assert_eq!(
            ApiError::forbidden("u", "delete", deploy, None, None, Some("d")).message,
            r#"deployments.apps "d" is forbidden: User "u" cannot delete resource "deployments" in API group "apps" at the cluster scope"#
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let one = ApiError::invalid(deploy, "web", &[FieldError::required("spec.selector", "")]);
        assert_eq!(
            one.message,
            r#"Deployment.apps "web" is invalid: spec.selector: Required value"#
        );
        let two = ApiError::invalid(
            deploy,
            "web",
            &[
                FieldError::required("spec.selector", ""),
                FieldError::invalid(
                    "spec.replicas",
                    &serde_json::json!(-1),
                    "must be greater than or equal to 0",
                ),
            ],
        );
        assert_eq!(
            two.message,
            r#"Deployment.apps "web" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"#
        );
        let json = two.to_json();
        assert_eq!(json["code"], 422);
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["details"]["causes"][1]["field"], "spec.replicas");
        assert_eq!(json["details"]["kind"], "Deployment");
    }
}
