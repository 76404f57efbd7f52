//! Serving one stored object in several API versions.
//!
//! A few resources are served in more than one version of the same data:
//! `autoscaling/v1` and `v2` HorizontalPodAutoscalers, core `v1` and
//! `events.k8s.io/v1` Events. Each is stored in one version (see
//! `capstan_apimachinery::conversion::storage_version`) and converted at
//! the storage boundary, so everything between the client and the store —
//! defaulting, validation, strategies, selectors — works in the version the
//! client speaks.

use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, ResourceType, conversion};

/// The (group, version) a resource is stored in, if not its own.
fn stored_as(resource: &ResourceType) -> Option<(&'static str, &'static str)> {
    conversion::storage_version(resource.group, resource.plural)
        .filter(|stored| *stored != (resource.group, resource.version))
}

/// Whether objects of `resource` need converting on the way in and out.
pub fn converts(resource: &ResourceType) -> bool {
    stored_as(resource).is_some()
}

/// A stored object, as `resource`'s version presents it.
pub fn to_request(resource: &ResourceType, object: Object) -> Result<Object, ApiError> {
    let Some(stored) = stored_as(resource) else {
        return Ok(object);
    };
    conversion::convert(&object, stored, (resource.group, resource.version), resource.kind).map_err(ApiError::internal)
}

/// An object in `resource`'s version, as it is stored.
pub fn to_storage(resource: &ResourceType, object: &Object) -> Result<Object, ApiError> {
    let Some(stored) = stored_as(resource) else {
        return Ok(object.clone());
    };
    conversion::convert(object, (resource.group, resource.version), stored, resource.kind).map_err(ApiError::internal)
}
