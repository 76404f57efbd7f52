//! Pod-level cgroups (upstream's `pod_container_manager` on the cgroupfs
//! driver, cgroup v1): every pod gets `<cgroup-root>/pod<uid>`, the
//! `CgroupParent` of its sandbox and containers, which the runtime nests
//! its containers' cgroups under. CRI neither creates nor removes these:
//! the kubelet creates them with the pod's limits (the sum of its
//! containers' memory and CPU limits when every container has one, CPU
//! shares from the requests) before the sandbox, and removes them in every
//! hierarchy once the pod's processes are gone.

use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

const MOUNT: &str = "/sys/fs/cgroup";
/// The CFS period upstream uses.
const CFS_PERIOD_US: i64 = crate::resources::QUOTA_PERIOD;

/// The pod cgroups under one root (`--cgroup-root`).
#[derive(Debug, Clone)]
pub struct PodCgroups {
    root: String,
}

/// The limits a pod's cgroup gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodLimits {
    pub memory_bytes: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota_us: Option<i64>,
}

impl PodLimits {
    /// The pod's totals (upstream's `ResourceConfigForPod`, see [`crate::resources`]).
    pub fn of(pod: &Pod) -> PodLimits {
        let totals = crate::resources::pod_resources(pod);
        PodLimits {
            memory_bytes: totals.memory_limit,
            cpu_shares: Some(totals.cpu_shares),
            cpu_quota_us: totals.cpu_quota,
        }
    }
}

impl PodCgroups {
    pub fn new(root: &str) -> PodCgroups {
        let root = format!("/{}", root.trim_matches('/'));
        PodCgroups { root }
    }

    /// The pod's cgroup as CRI's `cgroup_parent`: `/capstan/pod<uid>`.
    pub fn parent(&self, uid: &str) -> String {
        format!("{}/pod{uid}", self.root)
    }

    fn dir(&self, controller: &str, uid: &str) -> PathBuf {
        Path::new(MOUNT)
            .join(controller)
            .join(self.parent(uid).trim_start_matches('/'))
    }

    /// Creates the pod's cgroup with its limits (again: limits are updated).
    pub fn create(&self, uid: &str, limits: PodLimits) -> io::Result<()> {
        for controller in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(self.dir(controller, uid))?;
        }
        let cpu = self.dir("cpu", uid);
        if let Some(shares) = limits.cpu_shares {
            std::fs::write(cpu.join("cpu.shares"), shares.to_string())?;
        }
        std::fs::write(cpu.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
        let quota = limits.cpu_quota_us.unwrap_or(-1);
        std::fs::write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
        if let Some(bytes) = limits.memory_bytes {
            std::fs::write(self.dir("memory", uid).join("memory.limit_in_bytes"), bytes.to_string())?;
        }
        Ok(())
    }

    /// Removes the pod's cgroup from every hierarchy (the runtime created
    /// some of them for its containers). Fails while processes remain.
    pub fn remove(&self, uid: &str) -> io::Result<()> {
        for hierarchy in std::fs::read_dir(MOUNT)? {
            let dir = hierarchy?.path().join(self.parent(uid).trim_start_matches('/'));
            if dir.exists() {
                remove_tree(&dir)?;
            }
        }
        Ok(())
    }

    /// The UIDs of the pods that have a cgroup here.
    pub fn pods(&self) -> Vec<String> {
        let dir = Path::new(MOUNT).join("memory").join(self.root.trim_start_matches('/'));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("pod").map(str::to_string))
            .collect()
    }
}

/// `rmdir` a cgroup and its children, deepest first (cgroup directories
/// cannot be removed recursively, and their files cannot be deleted).
fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_limits_sum_the_containers() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "500m"}}},
            {"name": "b", "resources": {"limits": {"memory": "32Mi", "cpu": "1"}, "requests": {"cpu": "250m"}}}
        ]}}))
        .unwrap();
        let limits = PodLimits::of(&pod);
        assert_eq!(limits.memory_bytes, Some(96 * 1024 * 1024));
        assert_eq!(limits.cpu_quota_us, Some(150_000));
        assert_eq!(limits.cpu_shares, Some(768)); // 500m + 250m requested
        let unlimited: Pod = serde_json::from_value(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"limits": {"memory": "1Gi"}}}]}}),
        )
        .unwrap();
        let limits = PodLimits::of(&unlimited);
        assert_eq!(
            (limits.memory_bytes, limits.cpu_quota_us, limits.cpu_shares),
            (None, None, Some(2))
        );
        assert_eq!(PodCgroups::new("capstan/").parent("u1"), "/capstan/podu1");
    }
}
