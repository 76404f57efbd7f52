//! `secret`: a Secret's keys as files like [`super::configmap`], but on a
//! tmpfs so that secret data never reaches the node's disk.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource};

use super::atomic::{self, Payload};
use super::configmap::{DEFAULT_MODE, keyed_payload};
use super::{Context, Prepared, emptydir};
use crate::objects::Objects;

pub const PLUGIN: &str = "secret";

/// The files of a secret source, also used by projected volumes.
pub(super) async fn payload(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let found = ctx
        .objects
        .secret(ctx.namespace(), name)
        .await
        .map_err(|e| e.to_string())?;
    let data: BTreeMap<String, Vec<u8>> = match found {
        Some(secret) => secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        None if optional => BTreeMap::new(),
        None => return Err(format!("secret \"{name}\" not found")),
    };
    keyed_payload(
        &data,
        items,
        default_mode,
        optional,
        "secret references non-existent secret key",
    )
}

pub(super) async fn setup(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    source: &SecretVolumeSource,
) -> Result<Prepared, String> {
    let dir = ctx.volume_dir(PLUGIN, name);
    let secret_name = source.secret_name.as_deref().unwrap_or_default();
    let payload = payload(
        ctx,
        secret_name,
        source.items.as_deref(),
        source.default_mode.unwrap_or(DEFAULT_MODE),
        source.optional == Some(true),
    )
    .await?;
    emptydir::mount_tmpfs(&dir, emptydir::memory_size(ctx, None))
        .map_err(|e| format!("mount of tmpfs on {} failed: {e}", dir.display()))?;
    atomic::write(&dir, &payload, ctx.fs_group).map_err(|e| e.to_string())?;
    Ok(Prepared {
        host_path: dir,
        read_only: true,
        size_limit: None,
    })
}
