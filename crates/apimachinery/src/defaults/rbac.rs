//! rbac.authorization.k8s.io/v1 (`pkg/apis/rbac/v1/defaults.go`).

use super::{Obj, child, items, set_if_empty, str_of};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Bindings refer to RBAC roles, and users and groups are RBAC subjects,
/// unless an API group is given.
pub(super) fn apply(kind: &str, object: &mut Obj) {
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    if let Some(role_ref) = child(object, "roleRef") {
        set_if_empty(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in items(object, "subjects") {
        if matches!(str_of(subject, "kind"), "User" | "Group") {
            set_if_empty(subject, "apiGroup", RBAC_GROUP);
        }
    }
}
