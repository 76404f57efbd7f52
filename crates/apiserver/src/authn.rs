//! Authentication: who is asking.
//!
//! Two authenticators, tried in upstream's order:
//! - a client certificate verified against the cluster CA (see
//!   [`crate::tls`]) names the user (CN) and groups (O);
//! - a bearer token that is a service-account JWT we issued
//!   ([`crate::serviceaccount`]), still bound to live objects.
//!
//! Every authenticated user is also in `system:authenticated`, which RBAC's
//! default roles bind. A request with a bearer token we cannot verify is
//! unauthenticated (401), never anonymous.

use capstan_apimachinery::registry;
use http::header;

use crate::ApiServer;
use crate::objects::ObjectKey;
use crate::serviceaccount::{self, Claims, ObjectClaim};
use crate::tls::PeerIdentity;

/// An authenticated user, as authorization and audit see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    fn authenticated(name: String, mut groups: Vec<String>) -> UserInfo {
        groups.push("system:authenticated".to_string());
        UserInfo { name, groups }
    }
}

/// The user behind a request, if it carries credentials we accept. A
/// verified client certificate wins over a bearer token, as upstream's
/// union authenticator tries x509 first.
pub async fn authenticate(server: &ApiServer, parts: &http::request::Parts) -> Option<UserInfo> {
    if let Some(peer) = parts.extensions.get::<Option<PeerIdentity>>().cloned().flatten() {
        return Some(UserInfo::authenticated(peer.user, peer.groups));
    }
    service_account(server, bearer_token(parts)?).await
}

fn bearer_token(parts: &http::request::Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The service account a token authenticates, if it is one of ours and still bound.
pub async fn service_account(server: &ApiServer, token: &str) -> Option<UserInfo> {
    let claims = server.tokens.verify(token)?;
    if !still_bound(server, &claims).await {
        return None;
    }
    let namespace = &claims.kubernetes.namespace;
    let name = &claims.kubernetes.serviceaccount.name;
    Some(UserInfo::authenticated(
        serviceaccount::user_name(namespace, name),
        serviceaccount::groups(namespace),
    ))
}

/// The service account, and the pod or secret the token is bound to, still
/// exist with the UIDs the token names.
async fn still_bound(server: &ApiServer, claims: &Claims) -> bool {
    let namespace = claims.kubernetes.namespace.as_str();
    let checks = [
        Some(("serviceaccounts", &claims.kubernetes.serviceaccount)),
        claims.kubernetes.pod.as_ref().map(|p| ("pods", p)),
        claims.kubernetes.secret.as_ref().map(|s| ("secrets", s)),
    ];
    for (plural, expected) in checks.into_iter().flatten() {
        if !exists(server, plural, namespace, expected).await {
            return false;
        }
    }
    true
}

async fn exists(server: &ApiServer, plural: &str, namespace: &str, expected: &ObjectClaim) -> bool {
    let Some(resource) = registry::lookup("", "v1", plural) else {
        return false;
    };
    let key = ObjectKey {
        resource,
        namespace: Some(namespace),
        name: &expected.name,
    };
    matches!(server.objects.try_get(key).await, Ok(Some(object)) if capstan_apimachinery::meta::uid(&object) == expected.uid)
}

/// Upstream's impersonation: a user allowed to `impersonate` may act as
/// another (`Impersonate-User`, `Impersonate-Group` headers, as kubectl's
/// `--as` and `--as-group` send). Without the headers the user is unchanged.
pub fn impersonate(
    server: &ApiServer,
    parts: &http::request::Parts,
    user: UserInfo,
) -> Result<UserInfo, capstan_apimachinery::ApiError> {
    let Some(target) = parts.headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
        return Ok(user);
    };
    let groups: Vec<String> = parts
        .headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let mut checks = vec![format!("users/{target}")];
    checks.extend(groups.iter().map(|g| format!("groups/{g}")));
    for path in &checks {
        let attributes = crate::authz::Attributes::Path {
            verb: "impersonate",
            path,
        };
        server.authorizer.authorize(&user, &attributes)?;
    }
    let groups = match target
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, _)) if groups.is_empty() => serviceaccount::groups(namespace),
        _ => groups,
    };
    Ok(UserInfo::authenticated(target.to_string(), groups))
}
