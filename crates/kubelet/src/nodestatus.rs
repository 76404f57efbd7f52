//! The Node a kubelet registers and keeps reporting (upstream
//! `kubelet_node_status.go` and its `nodestatus` setters): well-known
//! labels, addresses, capacity and allocatable, node info, and the
//! pressure and `Ready` conditions with upstream's reasons and messages.
//!
//! With node leases, upstream posts the full status only when it changed
//! or every `nodeStatusReportFrequency` (5 minutes); the Lease is the
//! frequent heartbeat. [`needs_report`] is that decision.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::podstatus::time;

/// How often the full status is posted when nothing changed (upstream's
/// `nodeStatusReportFrequency`).
pub const STATUS_REPORT_FREQUENCY: Duration = Duration::from_secs(300);
/// How often the kubelet checks whether its status changed (`nodeStatusUpdateFrequency`).
pub const STATUS_UPDATE_FREQUENCY: Duration = Duration::from_secs(10);

/// The Kubernetes version the kubelet reports, as the API server's `/version`.
pub fn kubelet_version() -> String {
    format!("v1.33.0+capstan.{}", env!("CARGO_PKG_VERSION"))
}

/// The conditions upstream's kubelet posts: (type, reason, message) when healthy.
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
];

/// Resources by name: a node's capacity and allocatable.
pub type Capacity = BTreeMap<String, Quantity>;

/// What every hollow node of one agent looks like.
#[derive(Debug, Clone)]
pub struct NodeTemplate {
    pub prefix: String,
    pub capacity: Capacity,
    pub zones: u32,
    /// Fixed per process, as a boot ID is per boot.
    pub boot: String,
}

/// Parses `cpu=4,memory=16Gi,pods=110`; the quantities are checked when
/// the node is validated.
pub fn parse_capacity(text: &str) -> Result<Capacity, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| match item.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), Quantity(value.trim().to_string())))
            }
            _ => Err(format!("invalid capacity {item:?}: expected NAME=QUANTITY, e.g. cpu=4")),
        })
        .collect()
}

/// The InternalIP of node `index`: 127.1.x.y, counting from 127.1.0.1.
pub fn internal_ip(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + index + 1)
}

/// How many nodes fit in 127.1.0.0/16 after the network address.
pub const MAX_NODES: u32 = 65_534;

impl NodeTemplate {
    pub fn name(&self, index: u32) -> String {
        format!("{}-{index}", self.prefix)
    }

    /// The index of a node of ours, by name.
    pub fn index_of(&self, name: &str, count: u32) -> Option<u32> {
        let index: u32 = name.strip_prefix(&self.prefix)?.strip_prefix('-')?.parse().ok()?;
        // `hollow-007` is not ours even if 7 is.
        (index < count && self.name(index) == name).then_some(index)
    }

    pub fn labels(&self, index: u32) -> BTreeMap<String, String> {
        let name = self.name(index);
        [
            ("beta.kubernetes.io/arch", "amd64"),
            ("beta.kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/hostname", name.as_str()),
            ("kubernetes.io/os", "linux"),
            (
                "topology.kubernetes.io/zone",
                &format!("zone-{}", index % self.zones.max(1)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The Node object registered for node `index`.
    pub fn node(&self, index: u32, now: Timestamp) -> Node {
        let name = self.name(index);
        Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(self.labels(index)),
                annotations: Some(BTreeMap::from([(
                    "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                    "true".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                capacity: Some(self.capacity.clone()),
                allocatable: Some(self.capacity.clone()),
                conditions: Some(conditions(&[], now)),
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: internal_ip(index).to_string(),
                    },
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: name.clone(),
                    },
                ]),
                daemon_endpoints: Some(NodeDaemonEndpoints {
                    kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
                }),
                node_info: Some(self.node_info(&name)),
                ..NodeStatus::default()
            }),
        }
    }

    fn node_info(&self, name: &str) -> NodeSystemInfo {
        NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            os_image: "Capstan hollow node".into(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
            container_runtime_version: format!("hollow://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: kubelet_version(),
            kube_proxy_version: String::new(),
            machine_id: hex(&format!("machine/{name}"))[..32].to_string(),
            system_uuid: uuid(&format!("system/{name}")),
            boot_id: uuid(&format!("boot/{}/{name}", self.boot)),
            ..NodeSystemInfo::default()
        }
    }

    /// Checks the first and last node as the API server would, so a bad
    /// prefix or capacity is one upstream-style error before anything is written.
    pub fn validate(&self, count: u32) -> Result<(), String> {
        if count > MAX_NODES {
            return Err(format!(
                "--simulate {count}: at most {MAX_NODES} nodes fit in 127.1.0.0/16"
            ));
        }
        let now = Timestamp::now();
        for index in [0, count.saturating_sub(1)] {
            let node = serde_json::to_value(self.node(index, now)).map_err(|e| e.to_string())?;
            let errors = capstan_apimachinery::validation::validate("", "v1", "Node", &node, None);
            if !errors.is_empty() {
                let resource =
                    capstan_apimachinery::registry::lookup_kind("v1", "Node").ok_or("the registry has no v1 Node")?;
                let error = capstan_apimachinery::ApiError::invalid(resource, &self.name(index), &errors);
                return Err(error.message);
            }
        }
        Ok(())
    }
}

/// The healthy conditions at `now`, keeping the transition time of those
/// whose status did not change.
pub fn conditions(old: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    CONDITIONS
        .iter()
        .map(|(kind, status, reason, message)| {
            let previous = old.iter().find(|c| c.type_ == *kind && c.status == *status);
            NodeCondition {
                type_: kind.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
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

/// Whether the node's conditions differ from what this kubelet reports
/// (e.g. the node lifecycle controller set `Ready=Unknown`, or the status
/// was never posted), which calls for a report now.
pub fn needs_report(node: &Node) -> bool {
    let current = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    CONDITIONS.iter().any(|(kind, status, reason, _)| {
        !current
            .iter()
            .any(|c| c.type_ == *kind && c.status == *status && c.reason.as_deref() == Some(reason))
    })
}

fn hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A UUID-shaped stable ID derived from `text`.
fn uuid(text: &str) -> String {
    let h = hex(text);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(capacity: &str) -> NodeTemplate {
        NodeTemplate {
            prefix: "hollow".into(),
            capacity: parse_capacity(capacity).unwrap(),
            zones: 3,
            boot: "b".into(),
        }
    }

    #[test]
    fn capacity_is_name_equals_quantity() {
        let capacity = parse_capacity("cpu=4, memory=16Gi,pods=110,").unwrap();
        assert_eq!(capacity["cpu"], Quantity("4".into()));
        assert_eq!(capacity["memory"], Quantity("16Gi".into()));
        assert_eq!(capacity.len(), 3);
        assert_eq!(
            parse_capacity("cpu"),
            Err("invalid capacity \"cpu\": expected NAME=QUANTITY, e.g. cpu=4".into())
        );
        assert!(parse_capacity("=4").is_err());
    }

    #[test]
    fn bad_quantities_and_names_get_the_api_servers_error() {
        let bad = template("cpu=four");
        let err = bad.validate(10).unwrap_err();
        assert!(
            err.starts_with("Node \"hollow-0\" is invalid: [status.capacity[cpu]: Invalid value: \"four\""),
            "{err}"
        );
        let upper = NodeTemplate {
            prefix: "Hollow".into(),
            ..template("cpu=4")
        };
        assert!(upper.validate(1).unwrap_err().contains("metadata.name"));
        assert!(template("cpu=4").validate(MAX_NODES + 1).is_err());
        assert_eq!(template("cpu=4,memory=16Gi,pods=110").validate(5000), Ok(()));
    }

    #[test]
    fn nodes_have_well_known_labels_zones_and_addresses() {
        let t = template("cpu=4,pods=110");
        let node = t.node(4, Timestamp::now());
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-4");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        let status = node.status.unwrap();
        assert_eq!(status.addresses.unwrap()[0].address, "127.1.0.5");
        assert_eq!(status.allocatable, status.capacity);
        assert_eq!(internal_ip(300), Ipv4Addr::new(127, 1, 1, 45));
        assert_eq!(internal_ip(MAX_NODES - 1), Ipv4Addr::new(127, 1, 255, 254));
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
    }

    #[test]
    fn node_names_map_back_to_indexes() {
        let t = template("cpu=4");
        assert_eq!(t.index_of("hollow-12", 20), Some(12));
        assert_eq!(t.index_of("hollow-20", 20), None);
        assert_eq!(t.index_of("hollow-012", 20), None);
        assert_eq!(t.index_of("hollowx-1", 20), None);
        assert_eq!(t.index_of("other-1", 20), None);
    }

    #[test]
    fn reports_are_needed_when_conditions_drift() {
        let t = template("cpu=4");
        let then = Timestamp::from_second(1_700_000_000).unwrap();
        let mut node = t.node(0, then);
        assert!(!needs_report(&node));
        let conds = node.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conds[3].status = "Unknown".into();
        conds[3].reason = Some("NodeStatusUnknown".into());
        assert!(needs_report(&node));
        // A heartbeat keeps unchanged transition times and sets the new one.
        let later = Timestamp::from_second(1_700_000_100).unwrap();
        let fresh = conditions(node.status.as_ref().unwrap().conditions.as_deref().unwrap(), later);
        assert_eq!(fresh[0].last_transition_time, Some(time(then)));
        assert_eq!(fresh[3].last_transition_time, Some(time(later)));
        assert!(fresh.iter().all(|c| c.last_heartbeat_time == Some(time(later))));
    }
}
