//! Authorization: may this user do this?
//!
//! A chain of [`Authorizer`]s, as upstream's `--authorization-mode`: the
//! first that allows or denies decides; if none has an opinion, the request
//! is forbidden. Today the chain holds the `system:masters` rule (members
//! may do everything, as upstream hard-wires) and the grants of upstream's
//! default roles to every authenticated user; RBAC joins it later.

use capstan_apimachinery::{ApiError, ResourceType};

use crate::authn::UserInfo;
use crate::request::ResourceRequest;

/// What is being attempted: a resource request, or a plain path
/// (discovery, OpenAPI, metrics).
pub enum Attributes<'a> {
    Resource(&'a ResourceRequest),
    Path { verb: &'a str, path: &'a str },
}

pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion,
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, user: &UserInfo, attributes: &Attributes<'_>) -> Decision;
}

/// Members of `system:masters` may do anything.
pub struct Masters;

impl Authorizer for Masters {
    fn authorize(&self, user: &UserInfo, _: &Attributes<'_>) -> Decision {
        if user.in_group("system:masters") {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// What upstream's default cluster roles grant every authenticated user
/// (`system:discovery`, `system:basic-user`, `system:public-info-viewer`):
/// reading discovery and OpenAPI, and asking about themselves.
pub struct BasicUser;

impl Authorizer for BasicUser {
    fn authorize(&self, user: &UserInfo, attributes: &Attributes<'_>) -> Decision {
        if !user.in_group("system:authenticated") {
            return Decision::NoOpinion;
        }
        let allowed = match attributes {
            Attributes::Path { verb, path } => *verb == "get" && is_discovery(path),
            Attributes::Resource(request) => {
                request.verb == crate::request::Verb::Create
                    && matches!(
                        request.resource.kind,
                        "SelfSubjectAccessReview" | "SelfSubjectReview" | "SelfSubjectRulesReview"
                    )
            }
        };
        if allowed { Decision::Allow } else { Decision::NoOpinion }
    }
}

fn is_discovery(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(
        path,
        "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi/v2" | "/openapi/v3"
    ) || path.starts_with("/api/")
        || path.starts_with("/apis/")
        || path.starts_with("/openapi/v3/")
}

/// The configured authorizers, in order.
pub struct Chain(pub Vec<Box<dyn Authorizer>>);

impl Chain {
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes<'_>) -> Result<(), ApiError> {
        for authorizer in &self.0 {
            match authorizer.authorize(user, attributes) {
                Decision::Allow => return Ok(()),
                Decision::Deny(reason) => return Err(forbidden(user, attributes, Some(&reason))),
                Decision::NoOpinion => {}
            }
        }
        Err(forbidden(user, attributes, None))
    }
}

fn forbidden(user: &UserInfo, attributes: &Attributes<'_>, reason: Option<&str>) -> ApiError {
    let mut err = match attributes {
        Attributes::Resource(request) => {
            let resource: &ResourceType = request.resource;
            ApiError::forbidden(
                &user.name,
                request.verb.as_str(),
                resource,
                request.subresource.as_deref(),
                request.namespace.as_deref(),
                request.name.as_deref(),
            )
        }
        Attributes::Path { verb, path } => ApiError::forbidden_path(&user.name, verb, path),
    };
    if let Some(reason) = reason {
        err.message = format!("{}: {reason}", err.message);
    }
    err
}
