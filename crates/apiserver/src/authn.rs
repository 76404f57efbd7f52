//! Authentication: who is asking.
//!
//! A client certificate verified against the cluster CA (see [`crate::tls`])
//! names the user (CN) and groups (O), as upstream's x509 authenticator.
//! Service-account bearer tokens plug in here next. Every authenticated
//! user is also in `system:authenticated`, which RBAC's default roles bind.

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
}

/// The user behind a request, if it carries credentials we accept.
pub fn authenticate(parts: &http::request::Parts) -> Option<UserInfo> {
    let peer = parts.extensions.get::<Option<PeerIdentity>>().cloned().flatten()?;
    let mut groups = peer.groups;
    groups.push("system:authenticated".to_string());
    Some(UserInfo {
        name: peer.user,
        groups,
    })
}
