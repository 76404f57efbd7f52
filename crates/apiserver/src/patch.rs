//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! strategic merge patch, chosen by `Content-Type` as upstream.

use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, ResourceType};
use serde_json::Value;

/// A parsed PATCH body.
pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
    /// Strategic merge patch, merged with the kind's upstream patch strategies.
    Strategic(Value, &'static ResourceType),
}

impl Patch {
    pub fn parse(content_type: &str, body: &[u8], resource: &'static ResourceType) -> Result<Patch, ApiError> {
        let decode = || crate::codec::decode_json(body);
        match content_type {
            "application/json-patch+json" => serde_json::from_slice(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
            "application/merge-patch+json" => decode().map(Patch::Merge),
            "application/strategic-merge-patch+json" => decode().map(|p| Patch::Strategic(p, resource)),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The object after the patch; the original is left untouched.
    pub fn apply(&self, original: &Object) -> Result<Object, ApiError> {
        let mut object = original.clone();
        match self {
            Patch::Json(patch) => {
                json_patch::patch(&mut object, patch).map_err(|e| ApiError::invalid_patch(e.to_string()))?
            }
            Patch::Merge(patch) => json_patch::merge(&mut object, patch),
            Patch::Strategic(patch, resource) => {
                object =
                    capstan_patch::strategic_merge(original, patch, (resource.group, resource.version, resource.kind))
                        .map_err(|e| ApiError::invalid_patch(e.to_string()))?;
            }
        }
        Ok(object)
    }
}
