//! `projected`: several sources (configMap, secret, downwardAPI and
//! serviceAccountToken) merged into one directory on a tmpfs. This is how
//! pods get their API credentials (`kube-api-access-*`): a token from the
//! TokenRequest API bound to the pod, the cluster CA and the namespace.
//!
//! A token is requested again once 80% of its lifetime has passed or it
//! is older than 24 hours (upstream's token manager); until then the one
//! already in the volume is kept, so re-running `prepare` is cheap.

use std::path::Path;

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ProjectedVolumeSource, ServiceAccountTokenProjection};

use super::atomic::{self, FileProjection, Payload};
use super::configmap::DEFAULT_MODE;
use super::{Context, Prepared, configmap, downwardapi, emptydir, secret};
use crate::objects::Objects;

pub const PLUGIN: &str = "projected";
const MAX_TOKEN_AGE_SECONDS: i64 = 24 * 60 * 60;

pub(super) async fn setup(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    source: &ProjectedVolumeSource,
) -> Result<Prepared, String> {
    let dir = ctx.volume_dir(PLUGIN, name);
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for s in source.sources.iter().flatten() {
        let part = if let Some(c) = &s.config_map {
            configmap::payload(ctx, &c.name, c.items.as_deref(), default_mode, c.optional == Some(true)).await
        } else if let Some(c) = &s.secret {
            secret::payload(ctx, &c.name, c.items.as_deref(), default_mode, c.optional == Some(true)).await
        } else if let Some(d) = &s.downward_api {
            downwardapi::payload(ctx, d.items.as_deref().unwrap_or_default(), default_mode)
        } else if let Some(t) = &s.service_account_token {
            token(ctx, &dir, t, default_mode).await
        } else {
            Err("unsupported projected volume source".to_string())
        };
        match part {
            Ok(part) => payload.extend(part),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(", "))
        });
    }
    emptydir::mount_tmpfs(&dir, emptydir::memory_size(ctx, None))
        .map_err(|e| format!("mount of tmpfs on {} failed: {e}", dir.display()))?;
    atomic::write(&dir, &payload, ctx.fs_group).map_err(|e| e.to_string())?;
    Ok(Prepared {
        host_path: dir,
        read_only: true,
        size_limit: None,
    })
}

/// A token for the pod's service account, bound to the pod, with the
/// projection's audience and lifetime; the current one while it is fresh.
async fn token(
    ctx: &Context<'_, impl Objects>,
    dir: &Path,
    projection: &ServiceAccountTokenProjection,
    default_mode: i32,
) -> Result<Payload, String> {
    // With an fsGroup the token is 0600 and ownership widens it to 0640.
    let mode = if ctx.fs_group.is_some() {
        0o600
    } else {
        (default_mode as u32) & 0o7777
    };
    let path = dir.join("..data").join(&projection.path);
    let now = jiff::Timestamp::now().as_second();
    let current = std::fs::read_to_string(&path).ok().filter(|t| is_fresh(t, now));
    let token = match current {
        Some(token) => token,
        None => request(ctx, projection).await?,
    };
    Ok([(
        projection.path.clone(),
        FileProjection {
            data: token.into_bytes(),
            mode,
        },
    )]
    .into())
}

async fn request(
    ctx: &Context<'_, impl Objects>,
    projection: &ServiceAccountTokenProjection,
) -> Result<String, String> {
    let pod = ctx.pod;
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let audience = projection.audience.clone().filter(|a| !a.is_empty());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: projection.expiration_seconds,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let response = ctx
        .objects
        .request_token(ctx.namespace(), service_account, request)
        .await
        .map_err(|e| e.to_string())?;
    response
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "TokenRequest returned no token".to_string())
}

/// Whether a JWT is younger than 80% of its lifetime and than 24 hours.
/// A token whose claims cannot be read is not fresh.
pub fn is_fresh(token: &str, now: i64) -> bool {
    let Some(claims) = token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')) else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let (Some(issued), Some(expires)) = (
        claims.get("iat").or_else(|| claims.get("nbf")).and_then(|v| v.as_i64()),
        claims.get("exp").and_then(|v| v.as_i64()),
    ) else {
        return false;
    };
    let refresh_at = issued + (expires - issued) * 8 / 10;
    now < refresh_at && now - issued < MAX_TOKEN_AGE_SECONDS
}
