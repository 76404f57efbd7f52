//! `downwardAPI`: pod fields and container resources as files, refreshed
//! on every `prepare` so label and annotation changes show up.

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, DownwardAPIVolumeSource};

use super::atomic::{self, FileProjection, Payload};
use super::configmap::DEFAULT_MODE;
use super::{Context, Prepared};
use crate::fieldpath;
use crate::objects::Objects;

pub const PLUGIN: &str = "downward-api";

/// The files of downward API items, also used by projected volumes.
pub(super) fn payload(
    ctx: &Context<'_, impl Objects>,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<Payload, String> {
    let pod_ips: Vec<String> = ctx
        .pod
        .status
        .iter()
        .flat_map(|s| s.pod_ips.iter().flatten().map(|ip| ip.ip.clone()))
        .collect();
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            fieldpath::field_value(ctx.pod, &f.field_path, &pod_ips, ctx.node)
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let container = ctx
                .pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    format!(
                        "container {name} not found in pod {}",
                        ctx.pod.metadata.name.as_deref().unwrap_or_default()
                    )
                })?;
            fieldpath::resource_value(ctx.pod, container, name, &r.resource, r.divisor.as_ref(), ctx.node)
        } else {
            continue;
        };
        let data = value.map_err(|e| e.to_string())?.into_bytes();
        let mode = (item.mode.unwrap_or(default_mode) as u32) & 0o7777;
        payload.insert(item.path.clone(), FileProjection { data, mode });
    }
    Ok(payload)
}

pub(super) fn setup(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    source: &DownwardAPIVolumeSource,
) -> Result<Prepared, String> {
    let dir = ctx.volume_dir(PLUGIN, name);
    let items = source.items.as_deref().unwrap_or_default();
    let payload = payload(ctx, items, source.default_mode.unwrap_or(DEFAULT_MODE))?;
    atomic::write(&dir, &payload, ctx.fs_group).map_err(|e| e.to_string())?;
    Ok(Prepared {
        host_path: dir,
        read_only: true,
        size_limit: None,
    })
}
