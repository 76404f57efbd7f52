//! Admission: checks and defaults applied to writes after authorization
//! and before storage.
//!
//! Today one plugin runs, upstream's `NamespaceLifecycle`: no new content
//! in a namespace that does not exist or is being deleted. Mutating and
//! validating plugin chains (defaulting, ServiceAccount, webhooks) plug in
//! here as they are built.

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType, registry};

use crate::ApiServer;
use crate::objects::ObjectKey;

/// Runs the admission chain for a create.
pub async fn admit_create(
    server: &ApiServer,
    resource: &'static ResourceType,
    object: &Object,
) -> Result<(), ApiError> {
    namespace_lifecycle(server, resource, object).await
}

async fn namespace_lifecycle(
    server: &ApiServer,
    resource: &'static ResourceType,
    object: &Object,
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    let name = meta::namespace(object);
    let namespaces = registry::lookup("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
    let key = ObjectKey {
        resource: namespaces,
        namespace: None,
        name,
    };
    // The watch cache answers almost always; a namespace created a moment
    // ago may not be there yet, so a miss asks the store.
    let cached = server.cache.get(&key.key()).map(|ns| (*ns).clone());
    let namespace = match cached {
        Some(ns) => Some(ns),
        None => server.objects.try_get(key).await?,
    };
    match namespace {
        None => Err(ApiError::not_found(namespaces, name)),
        Some(ns) if meta::is_deleting(&ns) => Err(ApiError::namespace_terminating(name)),
        Some(_) => Ok(()),
    }
}
