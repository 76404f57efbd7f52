//! Removing everything a Capstan node started, like k3s's
//! `k3s-killall.sh`: `capstan killall --data-dir DIR` and the test
//! harnesses' Drop guards run [`killall`].
//!
//! Other Capstan nodes and other containerds may run on the same machine,
//! so everything is found by what identifies *this* node: the pid file and
//! command lines naming our state dir or socket, mounts under our data dir,
//! our runc state, our cgroup root, our bridge, and firewall rules whose
//! CNI comment names one of our sandboxes. Never by a process name.
//!
//! Every step runs even when an earlier one fails, and a second run finds
//! nothing to do.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ListPodSandboxRequest, RemovePodSandboxRequest, StopPodSandboxRequest};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::process::{process_is_ours, read_pid, signal};
use crate::{Error, config, cri};

/// What belongs to the node being cleaned up.
#[derive(Clone, Debug)]
pub struct KillallOptions {
    /// The node's `--data-dir`.
    pub data_dir: PathBuf,
    /// The kubelet's `--cgroup-root` (default `/capstan`).
    pub cgroup_root: String,
    /// The CNI bridge (default `capstan0`).
    pub cni_bridge: String,
}

impl KillallOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> KillallOptions {
        KillallOptions {
            data_dir: data_dir.into(),
            cgroup_root: "/capstan".into(),
            cni_bridge: "capstan0".into(),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.data_dir.join("agent/containerd")
    }
}

/// What [`killall`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillallReport {
    pub sandboxes: usize,
    pub containerd_stopped: bool,
    pub runc_containers: usize,
    pub processes_killed: usize,
    pub unmounted: usize,
    pub netns_removed: usize,
    pub cgroups_removed: usize,
    pub bridge_removed: bool,
    pub firewall_rules_removed: usize,
}

/// Stops and removes everything of the node with `options.data_dir`.
/// Problems in one step are logged and do not stop the others.
pub async fn killall(options: &KillallOptions) -> Result<KillallReport, Error> {
    let cgroup_root = options.cgroup_root.trim_end_matches('/');
    if cgroup_root.is_empty() || !cgroup_root.starts_with('/') || cgroup_root.contains("..") {
        return Err(Error::Invalid(format!(
            "cgroup root {:?} is not an absolute path",
            options.cgroup_root
        )));
    }
    if options.data_dir.canonicalize().is_ok_and(|dir| dir == Path::new("/")) {
        return Err(Error::Invalid("the data dir must not be /".into()));
    }
    let state_dir = options.state_dir();
    let endpoint = config::endpoint(&state_dir);
    let mut report = KillallReport::default();
    let mut sandbox_ids = BTreeSet::new();

    if read_pid(&state_dir).is_some() {
        match remove_sandboxes(&endpoint).await {
            Ok(ids) => {
                report.sandboxes = ids.len();
                sandbox_ids.extend(ids);
            }
            Err(err) => tracing::warn!(%err, "could not remove sandboxes through CRI"),
        }
    }
    report.containerd_stopped = stop_containerd(&state_dir).await;
    let runc_ids = runc_container_ids(&state_dir);
    report.runc_containers = delete_runc_containers(&state_dir, &runc_ids).await;
    sandbox_ids.extend(runc_ids.iter().map(|(_, id)| id.clone()));
    report.processes_killed = kill_processes(&state_dir, cgroup_root).await;
    remove_shim_sockets(&endpoint, &runc_ids);
    report.unmounted = unmount_under(&options.data_dir);
    report.netns_removed = remove_netns_files(&state_dir);
    report.cgroups_removed = remove_cgroups(cgroup_root).await;
    report.bridge_removed = delete_link(&options.cni_bridge).await;
    report.firewall_rules_removed = remove_cni_rules(&sandbox_ids).await;
    remove_empty_nat_table().await;
    tracing::info!(?report, "killall done");
    Ok(report)
}

/// Stops and removes every pod sandbox (and with it its containers and
/// their CNI networking) through CRI; returns the sandbox IDs.
async fn remove_sandboxes(endpoint: &Path) -> Result<Vec<String>, Error> {
    let call = async {
        let mut runtime = RuntimeServiceClient::new(cri::channel(endpoint).await?);
        let sandboxes = runtime
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .map_err(Error::cri("ListPodSandbox"))?
            .into_inner()
            .items;
        let mut ids = Vec::new();
        for sandbox in sandboxes {
            let id = sandbox.id;
            if let Err(status) = runtime
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
            {
                tracing::warn!(%id, %status, "StopPodSandbox failed");
            }
            if let Err(status) = runtime
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
            {
                tracing::warn!(%id, %status, "RemovePodSandbox failed");
            }
            ids.push(id);
        }
        Ok(ids)
    };
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .map_err(|_| Error::Start("CRI did not answer within 60s".into()))?
}

/// SIGTERM to our containerd (by its pid file), SIGKILL after 10 s.
async fn stop_containerd(state_dir: &Path) -> bool {
    let Some(pid) = read_pid(state_dir) else { return false };
    signal(pid, libc::SIGTERM);
    if !wait_gone(pid, state_dir, Duration::from_secs(10)).await {
        signal(pid, libc::SIGKILL);
        wait_gone(pid, state_dir, Duration::from_secs(5)).await;
    }
    let _ = fs::remove_file(config::pid_file(state_dir));
    true
}

async fn wait_gone(pid: i32, state_dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_is_ours(pid, state_dir) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// `(namespace, id)` of every container in our runc root.
fn runc_container_ids(state_dir: &Path) -> Vec<(String, String)> {
    let root = state_dir.join("runc");
    let mut ids = Vec::new();
    for namespace in read_dir_names(&root) {
        for id in read_dir_names(&root.join(&namespace)) {
            ids.push((namespace.clone(), id));
        }
    }
    ids
}

/// `runc delete --force` for each container: kills its processes and
/// removes its runc state and cgroups.
async fn delete_runc_containers(state_dir: &Path, ids: &[(String, String)]) -> usize {
    let mut deleted = 0;
    for (namespace, id) in ids {
        let root = state_dir.join("runc").join(namespace);
        let status = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", id])
            .output()
            .await;
        match status {
            Ok(output) if output.status.success() => deleted += 1,
            Ok(output) => {
                tracing::warn!(%id, stderr = %String::from_utf8_lossy(&output.stderr).trim(), "runc delete failed")
            }
            Err(err) => tracing::warn!(%id, %err, "cannot run runc"),
        }
    }
    deleted
}

/// SIGKILLs every process whose command line names our state dir (shims:
/// `containerd-shim-runc-v2 … -address <our socket>`; a containerd whose pid
/// file was lost) and every process left in our cgroups.
async fn kill_processes(state_dir: &Path, cgroup_root: &str) -> usize {
    let me = std::process::id() as i32;
    let mut pids: BTreeSet<i32> = all_pids()
        .filter(|pid| *pid != me && process_is_ours(*pid, state_dir))
        .collect();
    for dir in cgroup_dirs(cgroup_root) {
        pids.extend(procs_in(&dir).into_iter().filter(|pid| *pid != me));
    }
    for pid in &pids {
        signal(*pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pids.len()
}

/// The shim sockets in `/run/containerd/s/`, named by containerd 1.6 as the
/// sha256 of `<containerd socket>/<namespace>/<id>`; a killed shim leaves its
/// socket behind.
fn remove_shim_sockets(endpoint: &Path, ids: &[(String, String)]) {
    for (namespace, id) in ids {
        let key = format!("{}/{namespace}/{id}", endpoint.display());
        let name: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = fs::remove_file(Path::new("/run/containerd/s").join(name));
    }
}

/// Unmounts every mount point under `dir`, deepest (latest) first;
/// lazily when a mount is busy.
fn unmount_under(dir: &Path) -> usize {
    let Ok(dir) = dir.canonicalize() else { return 0 };
    let mut count = 0;
    // Mounts can stack on one point: repeat until none is left.
    for _ in 0..8 {
        let mut points: Vec<PathBuf> = mount_points().into_iter().filter(|p| p.starts_with(&dir)).collect();
        if points.is_empty() {
            break;
        }
        points.reverse();
        for point in points {
            if umount(&point, 0) || umount(&point, libc::MNT_DETACH) {
                count += 1;
            } else {
                tracing::warn!(point = %point.display(), "cannot unmount");
            }
        }
    }
    count
}

/// The pod netns files (`netns_mounts_under_state_dir`), now unmounted.
fn remove_netns_files(state_dir: &Path) -> usize {
    let mut removed = 0;
    let cri_state = state_dir.join("state/io.containerd.grpc.v1.cri");
    for dir in [cri_state.join("netns"), state_dir.join("state/netns")] {
        for name in read_dir_names(&dir) {
            if fs::remove_file(dir.join(name)).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes our cgroup tree in every hierarchy, deepest first.
async fn remove_cgroups(cgroup_root: &str) -> usize {
    let mut removed = 0;
    for dir in cgroup_roots(cgroup_root) {
        let mut dirs = Vec::new();
        walk_dirs(&dir, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            // A cgroup whose last task just died may briefly refuse rmdir.
            for _ in 0..50 {
                if fs::remove_dir(&dir).is_ok() {
                    removed += 1;
                    break;
                }
                if !dir.exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    removed
}

/// Deletes link `name` if there is one. Asks `ip`, not `/sys/class/net`:
/// sysfs shows the links of the namespace it was mounted in, which is not
/// ours when killall runs in a node's network namespace (`nsenter --net`).
async fn delete_link(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let exists = Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    let status = match exists {
        true => Command::new("ip").args(["link", "delete", name]).status().await,
        false => return false,
    };
    status.is_ok_and(|s| s.success())
}

/// Deletes the iptables rules the CNI bridge and portmap plugins created
/// for our sandboxes (their comments name the container ID), and the
/// per-sandbox `CNI-…` chains they jump to. StopPodSandbox normally did
/// this already; it matters when containerd was gone.
async fn remove_cni_rules(ids: &BTreeSet<String>) -> usize {
    if ids.is_empty() {
        return 0;
    }
    let mut removed = 0;
    for table in ["nat", "filter"] {
        let Ok(output) = Command::new("iptables-save").args(["-t", table]).output().await else {
            return removed;
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let mut chains = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("-A ")) {
            let args = split_rule(&line[3..]);
            if !args
                .iter()
                .any(|arg| ids.iter().any(|id| arg.contains(&format!("id: \"{id}\""))))
            {
                continue;
            }
            let mut command = Command::new("iptables");
            command.args(["-w", "-t", table, "-D"]).args(&args);
            if command.status().await.is_ok_and(|s| s.success()) {
                removed += 1;
            }
            if let Some(target) = args.iter().position(|a| a == "-j").and_then(|i| args.get(i + 1))
                && target.starts_with("CNI-")
                && !target.starts_with("CNI-HOSTPORT-")
            {
                chains.insert(target.clone());
            }
        }
        for chain in chains {
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-F", &chain])
                .status()
                .await;
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-X", &chain])
                .status()
                .await;
        }
    }
    removed
}

/// CNI's rules live in iptables' `ip nat` table. Once the last sandbox's
/// rules are gone, what is left is empty chains and the portmap plugin's
/// scaffolding (`CNI-HOSTPORT-SETMARK`/`-MASQ` and the base chains' jumps to
/// them). The table is removed then, and only then: any other rule — a live
/// port mapping, someone else's NAT — keeps it.
async fn remove_empty_nat_table() {
    let Ok(listing) = Command::new("nft").args(["list", "table", "ip", "nat"]).output().await else {
        return;
    };
    if listing.status.success() && only_cni_scaffolding(&String::from_utf8_lossy(&listing.stdout)) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", "nat"])
            .status()
            .await;
    }
}

/// Whether an `nft list table` text holds nothing but empty chains and
/// portmap's scaffolding (see [`remove_empty_nat_table`]).
fn only_cni_scaffolding(table: &str) -> bool {
    let mut chain = "";
    table.lines().map(str::trim).all(|line| {
        if let Some(name) = line.strip_prefix("chain ") {
            chain = name.trim_end_matches(" {").trim();
            return true;
        }
        let structural = line.is_empty()
            || line == "}"
            || line.starts_with("table ")
            || line.starts_with("type ")
            || line.starts_with('#');
        structural
            || matches!(chain, "CNI-HOSTPORT-SETMARK" | "CNI-HOSTPORT-MASQ")
            || line.ends_with("jump CNI-HOSTPORT-MASQ")
            || line.ends_with("jump CNI-HOSTPORT-DNAT")
    })
}

/// Splits an `iptables-save` rule into arguments (double quotes group, `\"` escapes).
fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_arg = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                has_arg = true;
            }
            ' ' if !in_quotes => {
                if has_arg || !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
                has_arg = false;
            }
            c => current.push(c),
        }
    }
    if has_arg || !current.is_empty() {
        args.push(current);
    }
    args
}

fn all_pids() -> impl Iterator<Item = i32> {
    read_dir_names(Path::new("/proc"))
        .into_iter()
        .filter_map(|name| name.parse().ok())
}

fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Mount points from `/proc/self/mountinfo`, in mount order (octal escapes decoded).
fn mount_points() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount(p)))
        .collect()
}

/// Mount points and file system types of the cgroup hierarchies.
fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?;
            (*fstype == "cgroup" || *fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(fields[4])))
        })
        .collect()
}

/// `<hierarchy>/<cgroup root>` in every cgroup hierarchy where it exists.
fn cgroup_roots(cgroup_root: &str) -> Vec<PathBuf> {
    let relative = cgroup_root.trim_start_matches('/');
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(relative))
        .filter(|p| p.is_dir())
        .collect()
}

/// Every cgroup directory under our root, in every hierarchy.
fn cgroup_dirs(cgroup_root: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in cgroup_roots(cgroup_root) {
        walk_dirs(&root, &mut dirs);
    }
    dirs
}

fn procs_in(dir: &Path) -> Vec<i32> {
    let text = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// `dir` and every directory below it (cgroup trees have no symlinks).
fn walk_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk_dirs(&entry.path(), out);
        }
    }
}

fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn umount(path: &Path, flags: i32) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; umount2 has no other preconditions.
    unsafe { libc::umount2(c_path.as_ptr(), flags) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_iptables_save_rules_with_quoted_comments() {
        let rule = r#"POSTROUTING -s 10.199.1.2/32 -m comment --comment "name: \"cap-rt\" id: \"abc\"" -j CNI-1234"#;
        assert_eq!(
            split_rule(rule),
            [
                "POSTROUTING",
                "-s",
                "10.199.1.2/32",
                "-m",
                "comment",
                "--comment",
                r#"name: "cap-rt" id: "abc""#,
                "-j",
                "CNI-1234"
            ]
        );
    }

    #[test]
    fn decodes_mountinfo_escapes() {
        assert_eq!(unescape_mount(r"/a\040b\011c"), "/a b\tc");
        assert_eq!(unescape_mount(r"/plain\"), "/plain\\");
    }

    const SCAFFOLDING: &str = "table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		 counter packets 6226 bytes 377730 jump CNI-HOSTPORT-MASQ
	}
	chain CNI-HOSTPORT-SETMARK {
		 counter packets 0 bytes 0 meta mark set mark or 0x2000
	}
	chain CNI-HOSTPORT-MASQ {
		meta mark & 0x00002000 == 0x00002000 counter packets 0 bytes 0 masquerade
	}
	chain CNI-HOSTPORT-DNAT {
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 456 bytes 27376 jump CNI-HOSTPORT-DNAT
	}
	chain CNI-49281588fc6e5256ef8dca1d {
	}
}
";

    #[test]
    fn portmap_scaffolding_goes_live_mappings_and_other_rules_stay() {
        assert!(only_cni_scaffolding(SCAFFOLDING));
        let live = SCAFFOLDING.replace(
            "chain CNI-HOSTPORT-DNAT {\n",
            "chain CNI-HOSTPORT-DNAT {\n\t\ttcp dport 8080 jump CNI-DN-1234\n",
        );
        assert!(!only_cni_scaffolding(&live));
        let docker = SCAFFOLDING.replace(
            "jump CNI-HOSTPORT-MASQ\n",
            "jump CNI-HOSTPORT-MASQ\n\t\toifname != \"docker0\" ip saddr 172.17.0.0/16 masquerade\n",
        );
        assert!(!only_cni_scaffolding(&docker));
    }
}
