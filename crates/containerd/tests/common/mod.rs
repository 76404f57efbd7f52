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

/// Debian's `docker-registry` on a free loopback port, with its own config
/// (storage in a temp dir, htpasswd auth with one user), killed on drop.
pub struct TestRegistry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    pub username: String,
    pub password: String,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        let dir = tempfile::Builder::new().prefix("capstan-registry-").tempdir().unwrap();
        let (username, password) = ("capstan".to_string(), "s3cret-pull".to_string());
        // bcrypt (what the registry's htpasswd needs) from the system's crypt(3), cost 4.
        let hash = std::process::Command::new("python3")
            .args(["-W", "ignore", "-c"])
            .arg(format!(
                "import crypt; print(crypt.crypt({password:?}, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"
            ))
            .output()
            .unwrap();
        assert!(hash.status.success(), "bcrypt via python3 crypt: {hash:?}");
        let hash = String::from_utf8(hash.stdout).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("{username}:{}\n", hash.trim())).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n\
             http:\n  addr: {addr}\n  secret: capstan-test\nauth:\n  htpasswd:\n    realm: capstan-test\n    path: {htpasswd}\n",
            root = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let registry = TestRegistry {
            child,
            dir,
            addr,
            username,
            password,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {}",
                registry.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        registry
    }

    /// Pushes a docker-archive tarball as `<addr>/<name>` with skopeo.
    pub fn push(&self, archive: &Path, name: &str) {
        let output = std::process::Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("{}:{}", self.username, self.password))
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{name}", self.addr))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
