//! storage.k8s.io/v1 (`pkg/apis/storage/v1/defaults.go`).

use serde_json::json;

use super::{Obj, child, is_empty_list, pod, present_path, set_if_unset};

pub(super) fn apply(kind: &str, object: &mut Obj) {
    match kind {
        "StorageClass" => {
            set_if_unset(object, "reclaimPolicy", "Delete");
            set_if_unset(object, "volumeBindingMode", "Immediate");
        }
        "CSIDriver" => csi_driver(object),
        "VolumeAttachment" => {
            if let Some(inline) = present_path(object, &["spec", "source", "inlineVolumeSpec"]) {
                pod::persistent_sources(inline);
            }
        }
        _ => {}
    }
}

/// Attach required; no pod info, capacity tracking, republishing or SELinux
/// mounts; fsGroup for RWO volumes with an fsType; persistent volumes only.
fn csi_driver(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set_if_unset(spec, "attachRequired", true);
    set_if_unset(spec, "podInfoOnMount", false);
    set_if_unset(spec, "storageCapacity", false);
    set_if_unset(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType");
    if is_empty_list(spec, "volumeLifecycleModes") {
        spec.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
    }
    set_if_unset(spec, "requiresRepublish", false);
    set_if_unset(spec, "seLinuxMount", false);
}
