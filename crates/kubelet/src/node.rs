//! The real node (upstream `kubelet_node_status.go`): registration from
//! the host's facts — capacity and allocatable (cpu, memory,
//! ephemeral-storage, pods 110), addresses, node info with the runtime's
//! version, the well-known labels — and its conditions: memory, disk and
//! PID pressure from the host, `Ready` from the runtime's own conditions
//! (`RuntimeReady`, `NetworkReady`: no CNI configuration, no Ready node).
//!
//! [`run`] keeps it up to date: the Lease renewed every 10 s, the status
//! posted every 10 s and as soon as it changes (a [`Notify`] wakes it, e.g.
//! when the pod network came up).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::StatusRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::cri::Cri;
use crate::nodelease::{self, RENEW_INTERVAL};
use crate::nodestatus::{STATUS_UPDATE_FREQUENCY, kubelet_version};
use crate::podstatus::time;

/// Upstream's default `--max-pods`.
pub const MAX_PODS: u32 = 110;
/// Upstream's default hard eviction thresholds, subtracted from capacity.
const EVICTION_MEMORY_BYTES: u64 = 100 * 1024 * 1024;
const EVICTION_NODEFS_PERCENT: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

/// What the kubelet knows about itself.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub ip: IpAddr,
    pub kubelet_port: u16,
    /// The kubelet's root dir: its file system is the node's ephemeral storage.
    pub root_dir: PathBuf,
    /// `containerd://1.6.20`.
    pub runtime_version: String,
}

/// The host's resources and identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub storage_bytes: u64,
    pub storage_available_bytes: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
}

impl Host {
    /// Reads /proc, /etc and the root dir's file system.
    pub fn read(root_dir: &Path) -> Host {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let meminfo = read("/proc/meminfo");
        let (storage_bytes, storage_available_bytes) = filesystem(root_dir);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let machine_id = read("/etc/machine-id");
        let system_uuid = read("/sys/class/dmi/id/product_uuid");
        Host {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: meminfo_kib(&meminfo, "MemTotal") * 1024,
            memory_available_bytes: meminfo_kib(&meminfo, "MemAvailable") * 1024,
            storage_bytes,
            storage_available_bytes,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            system_uuid: if system_uuid.is_empty() {
                machine_id.clone()
            } else {
                system_uuid
            },
            machine_id,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

fn meminfo_kib(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Total and available bytes of the file system holding `dir`.
fn filesystem(dir: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return (0, 0);
    }
    let block = stat.f_frsize as u64;
    (stat.f_blocks as u64 * block, stat.f_bavail as u64 * block)
}

/// A byte count as a binary-SI quantity: `Ki` when it divides evenly, as upstream prints it.
fn bytes(n: u64) -> Quantity {
    Quantity(if n.is_multiple_of(1024) && n > 0 {
        format!("{}Ki", n / 1024)
    } else {
        n.to_string()
    })
}

/// The address of the interface the default route goes through (as the
/// kubelet's `--node-ip` default), else the first non-loopback IPv4 one.
pub fn default_ip() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let device = routes.lines().skip(1).find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        (fields.get(1) == Some(&"00000000")).then(|| fields[0].to_string())
    });
    let addrs = if_addrs::get_if_addrs().ok()?;
    let v4 = |a: &&if_addrs::Interface| a.ip().is_ipv4() && !a.is_loopback();
    addrs
        .iter()
        .filter(v4)
        .find(|a| Some(&a.name) == device.as_ref())
        .or_else(|| addrs.iter().find(v4))
        .map(|a| a.ip())
}

/// Whether the runtime is ready; otherwise upstream's message for why not.
pub type RuntimeHealth = Result<(), String>;

/// Asks the runtime for its conditions (`RuntimeReady`, `NetworkReady`).
pub async fn runtime_health(cri: &Cri) -> RuntimeHealth {
    let status = match cri.runtime.clone().status(StatusRequest { verbose: false }).await {
        Ok(s) => s.into_inner().status.unwrap_or_default(),
        Err(err) => return Err(format!("container runtime is down: {}", err.message())),
    };
    let problems: Vec<String> = status
        .conditions
        .iter()
        .filter(|c| !c.status)
        .map(|c| {
            let what = if c.r#type == "NetworkReady" {
                "network"
            } else {
                "runtime"
            };
            format!(
                "container runtime {what} not ready: {}=false reason:{} message:{}",
                c.r#type, c.reason, c.message
            )
        })
        .collect();
    if status.conditions.is_empty() {
        return Err("container runtime status check may not have completed yet".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// The node's conditions now, keeping the transition times of unchanged ones.
pub fn conditions(host: &Host, runtime: &RuntimeHealth, old: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    let memory_pressure = host.memory_available_bytes < EVICTION_MEMORY_BYTES;
    let disk_pressure = host.storage_available_bytes * 100 < host.storage_bytes * EVICTION_NODEFS_PERCENT;
    let table: [(&str, bool, &str, String); 4] = [
        if memory_pressure {
            (
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available".into(),
            )
        } else {
            (
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available".into(),
            )
        },
        if disk_pressure {
            (
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure".into(),
            )
        } else {
            (
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure".into(),
            )
        },
        (
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available".into(),
        ),
        match runtime {
            Ok(()) => ("Ready", true, "KubeletReady", "kubelet is posting ready status".into()),
            Err(why) => ("Ready", false, "KubeletNotReady", why.clone()),
        },
    ];
    table
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let status = if status { "True" } else { "False" };
            let previous = old.iter().find(|c| c.type_ == kind && c.status == status);
            NodeCondition {
                type_: kind.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_heartbeat_time: Some(time(now)),
                last_transition_time: Some(
                    previous
                        .and_then(|c| c.last_transition_time.clone())
                        .unwrap_or(time(now)),
                ),
            }
        })
        .collect()
}

/// The well-known labels upstream's kubelet sets on its node.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let arch = arch();
    [
        ("beta.kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Go's name for the architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The node's status from the host's facts and the runtime's health.
pub fn status(
    config: &NodeConfig,
    host: &Host,
    runtime: &RuntimeHealth,
    old: &[NodeCondition],
    now: Timestamp,
) -> NodeStatus {
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(host.cpus.to_string())),
        ("memory".to_string(), bytes(host.memory_bytes)),
        ("ephemeral-storage".to_string(), bytes(host.storage_bytes)),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
        ("hugepages-1Gi".to_string(), Quantity("0".into())),
        ("hugepages-2Mi".to_string(), Quantity("0".into())),
    ]);
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".into(),
        bytes(host.memory_bytes.saturating_sub(EVICTION_MEMORY_BYTES)),
    );
    let storage = host.storage_bytes - host.storage_bytes * EVICTION_NODEFS_PERCENT / 100;
    allocatable.insert("ephemeral-storage".into(), Quantity(storage.to_string()));
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions(host, runtime, old, now)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(config.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            operating_system: "linux".into(),
            os_image: host.os_image.clone(),
            kernel_version: host.kernel.clone(),
            container_runtime_version: config.runtime_version.clone(),
            kubelet_version: kubelet_version(),
            kube_proxy_version: String::new(),
            machine_id: host.machine_id.clone(),
            system_uuid: host.system_uuid.clone(),
            boot_id: host.boot_id.clone(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The Node object a fresh registration creates.
pub fn node(config: &NodeConfig, status: NodeStatus) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels(&config.name)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(status),
    }
}

/// Registers the node (or takes over the existing one of that name, as a
/// restarted kubelet does), then its Lease; returns the Node.
pub async fn register(client: &kube::Client, config: &NodeConfig, runtime: &RuntimeHealth) -> Result<Node, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let host = Host::read(&config.root_dir);
    let fail = |source| Error::Register {
        node: config.name.clone(),
        source,
    };
    let fresh = node(config, status(config, &host, runtime, &[], Timestamp::now()));
    let mut attempt = 0u32;
    let registered = loop {
        match create_or_update(&api, config, &host, runtime, &fresh).await {
            Ok(node) => break node,
            Err(err) if attempt >= 20 => return Err(fail(err)),
            Err(err) => {
                tracing::warn!(node = %config.name, %err, "registering the node; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200) * attempt.min(10)).await;
            }
        }
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), nodelease::NAMESPACE);
    let uid = registered.uid().unwrap_or_default();
    if let Err(err) = nodelease::renew(&leases, &config.name, &uid).await {
        tracing::warn!(node = %config.name, %err, "creating the node lease");
    }
    Ok(registered)
}

/// Creates the node; if it exists, brings its labels and status up to date
/// as upstream's kubelet does when it re-registers.
async fn create_or_update(
    api: &Api<Node>,
    config: &NodeConfig,
    host: &Host,
    runtime: &RuntimeHealth,
    fresh: &Node,
) -> kube::Result<Node> {
    match api.create(&PostParams::default(), fresh).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let labels = json!({"metadata": {"labels": fresh.metadata.labels}});
            api.patch(&config.name, &PatchParams::default(), &Patch::Merge(&labels))
                .await?;
            let current = api.get_status(&config.name).await?;
            let old = current.status.and_then(|s| s.conditions).unwrap_or_default();
            let status = status(config, host, runtime, &old, Timestamp::now());
            let patch = json!({"status": status});
            api.patch_status(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
        result => result,
    }
}

/// Keeps the node alive: the Lease every 10 s, the status every 10 s and
/// whenever `changed` is notified. Runs until dropped.
pub async fn run(client: kube::Client, cri: Cri, config: NodeConfig, uid: String, changed: Arc<Notify>) {
    let leases = async {
        let api: Api<Lease> = Api::namespaced(client.clone(), nodelease::NAMESPACE);
        let mut tick = tokio::time::interval(RENEW_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(err) = nodelease::renew(&api, &config.name, &uid).await {
                tracing::warn!(node = %config.name, %err, "renewing the node lease");
            }
        }
    };
    let status = async {
        let api: Api<Node> = Api::all(client.clone());
        let mut last: Option<NodeStatus> = None;
        loop {
            let runtime = runtime_health(&cri).await;
            let host = Host::read(&config.root_dir);
            let old = last.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            let fresh = status(&config, &host, &runtime, &old, Timestamp::now());
            let patch = json!({"status": fresh});
            match api
                .patch_status(&config.name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => last = Some(fresh),
                Err(err) => tracing::warn!(node = %config.name, %err, "posting node status"),
            }
            tokio::select! {
                () = tokio::time::sleep(STATUS_UPDATE_FREQUENCY) => {}
                () = changed.notified() => {}
            }
        }
    };
    tokio::join!(leases, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            cpus: 2,
            memory_bytes: 8 << 30,
            memory_available_bytes: 4 << 30,
            storage_bytes: 100 << 30,
            storage_available_bytes: 50 << 30,
            kernel: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "m".into(),
            system_uuid: "s".into(),
            boot_id: "b".into(),
        }
    }

    fn config() -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            ip: "192.0.2.10".parse().unwrap(),
            kubelet_port: 10251,
            root_dir: "/".into(),
            runtime_version: "containerd://1.6.20".into(),
        }
    }

    #[test]
    fn status_reports_the_host() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let s = status(&config(), &host(), &Ok(()), &[], now);
        let capacity = s.capacity.unwrap();
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(capacity["memory"].0, "8388608Ki");
        assert_eq!(capacity["pods"].0, "110");
        let allocatable = s.allocatable.unwrap();
        assert_eq!(allocatable["memory"].0, "8286208Ki");
        assert_eq!(allocatable["ephemeral-storage"].0, (90u64 << 30).to_string());
        assert_eq!(s.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 10251);
        let info = s.node_info.unwrap();
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(s.addresses.unwrap()[0].address, "192.0.2.10");
        let ready = s.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
    }

    #[test]
    fn a_runtime_without_network_is_not_ready() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let why = Err("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized".to_string());
        let mut low = host();
        low.memory_available_bytes = 10 << 20;
        let c = conditions(&low, &why, &[], now);
        assert_eq!((c[0].type_.as_str(), c[0].status.as_str()), ("MemoryPressure", "True"));
        assert_eq!(c[3].reason.as_deref(), Some("KubeletNotReady"));
        assert!(
            c[3].message
                .as_deref()
                .unwrap()
                .starts_with("container runtime network not ready")
        );
        // The transition time stays while the status does.
        let later = Timestamp::from_second(1_700_000_100).unwrap();
        let again = conditions(&low, &why, &c, later);
        assert_eq!(again[3].last_transition_time, Some(time(now)));
        assert_eq!(again[3].last_heartbeat_time, Some(time(later)));
    }
}
