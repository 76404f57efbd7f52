//! containerd's configuration (format version 2, containerd 1.6) and the
//! layout of its state directory.
//!
//! Everything containerd writes lives under [`ContainerdConfig::state_dir`]:
//! `config.toml`, `root/` (images, snapshots, the bolt database), `state/`
//! (tasks, pod netns files), `runc/` (runc's state), `certs.d/` (registry
//! hosts), the socket `containerd.sock`, `containerd.pid` and
//! `containerd.log`. Only the shim sockets go to `/run/containerd/s/`
//! (named by a hash of our socket path, so they never collide).
//!
//! The settings that matter on Capstan's machines are explained in
//! `docs/runtime-notes.md`; the ones a wrong value breaks silently are
//! commented where they are written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How to run Capstan's containerd.
#[derive(Clone, Debug)]
pub struct ContainerdConfig {
    /// `<data-dir>/agent/containerd`: config, root, state and socket.
    pub state_dir: PathBuf,
    /// The image every pod sandbox runs, normally [`crate::pause::IMAGE`].
    pub sandbox_image: String,
    /// Where the CNI plugins are (`/usr/lib/cni` on Debian).
    pub cni_bin_dir: PathBuf,
    /// Where the kubelet writes the CNI conflist (`<data-dir>/agent/etc/cni/net.d`).
    pub cni_conf_dir: PathBuf,
    /// A k3s-style `registries.yaml` (`--registry-config`).
    pub registry_config: Option<PathBuf>,
}

impl ContainerdConfig {
    /// A config with Capstan's defaults for a node whose data dir is `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> ContainerdConfig {
        let agent = data_dir.join("agent");
        ContainerdConfig {
            state_dir: agent.join("containerd"),
            sandbox_image: crate::pause::IMAGE.to_string(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: agent.join("etc/cni/net.d"),
            registry_config: None,
        }
    }

    /// The CRI (and containerd API) socket.
    pub fn endpoint(&self) -> PathBuf {
        endpoint(&self.state_dir)
    }

    /// containerd's `config.toml`, as [`ContainerdConfig::render`] writes it.
    pub fn config_file(&self) -> PathBuf {
        self.state_dir.join("config.toml")
    }

    /// Where the `hosts.toml` files for registries go.
    pub fn certs_dir(&self) -> PathBuf {
        self.state_dir.join("certs.d")
    }

    /// The config file text.
    pub fn render(&self) -> String {
        let dir = &self.state_dir;
        let mut s = String::new();
        let _ = writeln!(s, "version = 2");
        let _ = writeln!(s, "root = {}", quote(&dir.join("root")));
        let _ = writeln!(s, "state = {}", quote(&dir.join("state")));
        // Plugins a CRI node never uses; skipping them shortens start-up.
        let _ = writeln!(s, "disabled_plugins = {}", list(DISABLED_PLUGINS));
        let _ = writeln!(s, "\n[grpc]\n  address = {}", quote(&self.endpoint()));
        let _ = writeln!(
            s,
            "\n[ttrpc]\n  address = {}",
            quote(&dir.join("containerd.sock.ttrpc"))
        );
        let _ = writeln!(
            s,
            "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}",
            quote(&dir.join("opt"))
        );
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let _ = writeln!(s, "\n[{cri}]");
        let _ = writeln!(s, "  sandbox_image = {}", quote_str(&self.sandbox_image));
        // Required: the machines withhold CAP_SYS_RESOURCE, and without this
        // every RunPodSandbox fails with runc's "can't get final child's PID
        // from pipe: EOF" (really `oom_score_adj: Permission denied`).
        let _ = writeln!(s, "  restrict_oom_score_adj = true");
        // Pod netns files under our state dir, so `killall` finds ours only.
        let _ = writeln!(s, "  netns_mounts_under_state_dir = true");
        let _ = writeln!(s, "  enable_unprivileged_ports = true");
        let _ = writeln!(s, "  enable_unprivileged_icmp = true");
        let _ = writeln!(s, "\n[{cri}.cni]");
        let _ = writeln!(s, "  bin_dir = {}", quote(&self.cni_bin_dir));
        let _ = writeln!(s, "  conf_dir = {}", quote(&self.cni_conf_dir));
        let _ = writeln!(s, "  max_conf_num = 1");
        let _ = writeln!(
            s,
            "\n[{cri}.containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"runc\""
        );
        let _ = writeln!(
            s,
            "\n[{cri}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\""
        );
        let _ = writeln!(s, "\n[{cri}.containerd.runtimes.runc.options]");
        // systemd is not PID 1 on these machines: the cgroupfs driver.
        let _ = writeln!(s, "  SystemdCgroup = false");
        let _ = writeln!(s, "  Root = {}", quote(&dir.join("runc")));
        // Only `config_path`: setting the old `mirrors` table as well makes
        // containerd 1.6 silently drop the whole CRI plugin.
        let _ = writeln!(s, "\n[{cri}.registry]\n  config_path = {}", quote(&self.certs_dir()));
        s
    }
}

/// The CRI socket of a containerd whose state dir is `state_dir`.
pub fn endpoint(state_dir: &Path) -> PathBuf {
    state_dir.join("containerd.sock")
}

/// The file holding the PID of the running containerd.
pub fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("containerd.pid")
}

const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// A TOML basic string: JSON's string escapes are valid TOML.
fn quote_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn quote(path: &Path) -> String {
    quote_str(&path.to_string_lossy())
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote_str(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_paths_under_the_state_dir_and_never_the_mirrors_table() {
        let config = ContainerdConfig::for_data_dir(Path::new("/var/lib/capstan"));
        let text = config.render();
        assert!(text.contains("root = \"/var/lib/capstan/agent/containerd/root\""));
        assert!(text.contains("address = \"/var/lib/capstan/agent/containerd/containerd.sock\""));
        assert!(text.contains("restrict_oom_score_adj = true"));
        assert!(text.contains("config_path = \"/var/lib/capstan/agent/containerd/certs.d\""));
        assert!(text.contains("Root = \"/var/lib/capstan/agent/containerd/runc\""));
        assert!(!text.contains("mirrors"));
    }

    #[test]
    fn quotes_like_toml() {
        assert_eq!(quote_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
