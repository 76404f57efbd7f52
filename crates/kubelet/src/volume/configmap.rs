//! `configMap`: a ConfigMap's keys as files (all of them, or the listed
//! `items` at their paths), written atomically so updates reach running
//! containers, read-only for containers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};

use super::atomic::{self, FileProjection, Payload};
use super::{Context, Prepared};
use crate::objects::Objects;

pub const PLUGIN: &str = "configmap";
/// `defaultMode` when the API did not default it: 0644.
pub const DEFAULT_MODE: i32 = 0o644;

/// A ConfigMap's `data` and `binaryData` as bytes.
pub fn config_map_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    data
}

/// Upstream's `MakePayload` for configMap and secret sources: every key
/// under its own name, or only the `items`; a listed key that is missing
/// fails with `missing` unless the source is optional.
pub fn keyed_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing: &str,
) -> Result<Payload, String> {
    let mode = |m: Option<i32>| (m.unwrap_or(default_mode) as u32) & 0o7777;
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: value.clone(),
                        mode: mode(None),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(value) => {
                        payload.insert(
                            item.path.clone(),
                            FileProjection {
                                data: value.clone(),
                                mode: mode(item.mode),
                            },
                        );
                    }
                    None if optional => {}
                    None => return Err(format!("{missing}: {}", item.key)),
                }
            }
        }
    }
    Ok(payload)
}

/// The files of a configMap source, also used by projected volumes.
/// The cluster's `kube-root-ca.crt` counts as optional: the ConfigMap is
/// published by a controller that may not have run yet when the first
/// pods start, and a missing CA should not keep them from running.
pub(super) async fn payload(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let found = ctx
        .objects
        .config_map(ctx.namespace(), name)
        .await
        .map_err(|e| e.to_string())?;
    let data = match found {
        Some(cm) => config_map_data(cm),
        None if optional => BTreeMap::new(),
        None if name == "kube-root-ca.crt" => {
            tracing::warn!(
                namespace = ctx.namespace(),
                "configmap kube-root-ca.crt not found; mounting without ca.crt"
            );
            return Ok(Payload::new());
        }
        None => return Err(format!("configmap \"{name}\" not found")),
    };
    keyed_payload(
        &data,
        items,
        default_mode,
        optional,
        "configmap references non-existent config key",
    )
}

pub(super) async fn setup(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    source: &ConfigMapVolumeSource,
) -> Result<Prepared, String> {
    let dir = ctx.volume_dir(PLUGIN, name);
    let payload = payload(
        ctx,
        &source.name,
        source.items.as_deref(),
        source.default_mode.unwrap_or(DEFAULT_MODE),
        source.optional == Some(true),
    )
    .await?;
    atomic::write(&dir, &payload, ctx.fs_group).map_err(|e| e.to_string())?;
    Ok(Prepared {
        host_path: dir,
        read_only: true,
        size_limit: None,
    })
}
