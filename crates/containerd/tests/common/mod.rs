//! Shared pieces of the containerd tests: a temporary data dir per test
//! whose Drop guard runs `killall` (containerd, sandboxes, mounts, netns,
//! cgroups, the test bridge, CNI firewall rules) even when the test panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use capstan_containerd::archive::{self, BUSYBOX_APPLETS};
use capstan_containerd::killall::{KillallOptions, KillallReport, killall};
use capstan_containerd::{ContainerdConfig, pause};

/// The CNI bridge and subnet of these tests: distinct from Capstan's
/// default and from other test suites that run containerd at the same time.
pub const BRIDGE: &str = "cap-rt0";
pub const SUBNET: &str = "10.199.1.0/24";

/// One test's data dir, cgroup root and cleanup.
pub struct TestRuntime {
    dir: Option<tempfile::TempDir>,
    cgroup_root: String,
}

impl TestRuntime {
    pub fn new() -> TestRuntime {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("capstan_containerd=debug")
            .try_init();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        TestRuntime {
            dir: Some(tempfile::Builder::new().prefix("capstan-rt-").tempdir().unwrap()),
            cgroup_root: format!("/capstan-rt-{}-{seq}", std::process::id()),
        }
    }

    /// The data dir (`<data-dir>/agent/containerd` is the state dir).
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join("agent/containerd")
    }

    pub fn images_dir(&self) -> PathBuf {
        self.data_dir().join("agent/images")
    }

    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    pub fn config(&self) -> ContainerdConfig {
        let mut config = ContainerdConfig::for_data_dir(self.data_dir());
        config.sandbox_image = pause::IMAGE.into();
        config
    }

    pub fn killall_options(&self) -> KillallOptions {
        KillallOptions {
            data_dir: self.data_dir().to_path_buf(),
            cgroup_root: self.cgroup_root.clone(),
            cni_bridge: BRIDGE.into(),
        }
    }

    pub async fn killall(&self) -> KillallReport {
        killall(&self.killall_options()).await.expect("killall")
    }

    /// Writes the CNI conflist: bridge `cap-rt0` + host-local + portmap.
    pub fn write_cni_config(&self) {
        let dir = self.data_dir().join("agent/etc/cni/net.d");
        std::fs::create_dir_all(&dir).unwrap();
        let ipam_dir = self.data_dir().join("agent/cni/networks");
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "cap-rt-test",
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true, "hairpinMode": true,
                    "ipam": { "type": "host-local", "dataDir": ipam_dir, "ranges": [[{ "subnet": SUBNET }]],
                              "routes": [{ "dst": "0.0.0.0/0" }] }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } }
            ]
        });
        std::fs::write(
            dir.join("10-cap-rt.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        let options = self.killall_options();
        // Drop may run inside the test's runtime: clean up on a thread of its own.
        let result = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(killall(&options))
        })
        .join();
        if !matches!(result, Ok(Ok(_))) {
            eprintln!("killall in the test guard failed: {result:?}");
        }
        if let Some(dir) = self.dir.take()
            && let Err(err) = dir.close()
        {
            eprintln!("removing the test data dir: {err}");
        }
    }
}

/// A busybox image built from Debian's static `/bin/busybox`.
pub fn busybox_image(name: &str) -> archive::Image {
    let bytes = std::fs::read("/bin/busybox").expect("Debian busybox-static provides /bin/busybox");
    archive::busybox(name, bytes, BUSYBOX_APPLETS)
}

/// Every mount point under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&dir))
        .map(String::from)
        .collect()
}

/// PIDs of processes whose command line names `needle`.
pub fn processes_naming(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}
