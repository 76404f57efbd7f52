//! Pod sandboxes (upstream `kuberuntime_sandbox.go`): the CRI
//! `PodSandboxConfig` of a pod — metadata, hostname, log directory, DNS,
//! `hostPort` mappings, labels that tie it to the pod, Linux namespaces,
//! pod-level security settings and the pod cgroup as its parent — and the
//! sandboxes CRI reports for a pod.

use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::{
    DnsConfig, Int64Value, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandbox, PodSandboxConfig, PodSandboxMetadata, PodSandboxState, PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::dns;

/// Labels CRI objects carry to name their pod (upstream's `types` labels).
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";

/// A sandbox of a pod, as CRI lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: Timestamp,
}

impl Sandbox {
    pub fn from_cri(s: &PodSandbox) -> Sandbox {
        Sandbox {
            id: s.id.clone(),
            attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
            ready: s.state == PodSandboxState::SandboxReady as i32,
            created_at: Timestamp::from_nanosecond(i128::from(s.created_at)).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

/// The labels identifying `pod`'s CRI objects (its own labels first, as upstream).
pub fn labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    labels.insert(POD_NAME.into(), pod.metadata.name.clone().unwrap_or_default());
    labels.insert(POD_NAMESPACE.into(), pod.metadata.namespace.clone().unwrap_or_default());
    labels.insert(POD_UID.into(), pod.metadata.uid.clone().unwrap_or_default());
    labels
}

/// Where the pod's container logs go: upstream's `/var/log/pods/<namespace>_<name>_<uid>`,
/// under the kubelet's root dir.
pub fn log_directory(root: &Path, pod: &Pod) -> std::path::PathBuf {
    root.join("logs").join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    ))
}

/// Whether the pod shares the node's network namespace.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// The sandbox configuration of attempt `attempt` of `pod`.
pub fn config(
    pod: &Pod,
    attempt: u32,
    dns: DnsConfig,
    log_directory: &Path,
    cgroup_parent: String,
) -> PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let security = spec.security_context.clone().unwrap_or_default();
    let mode = |host: Option<bool>, otherwise: NamespaceMode| {
        (if host == Some(true) {
            NamespaceMode::Node
        } else {
            otherwise
        }) as i32
    };
    let pid = if spec.share_process_namespace == Some(true) {
        NamespaceMode::Pod as i32
    } else {
        mode(spec.host_pid, NamespaceMode::Container)
    };
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true));
    let sysctls = security
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network(pod) {
            String::new()
        } else {
            dns::hostname(pod)
        },
        log_directory: log_directory.display().to_string(),
        dns_config: Some(dns),
        port_mappings: port_mappings(pod),
        labels: labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent,
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: mode(spec.host_network, NamespaceMode::Pod),
                    pid,
                    ipc: mode(spec.host_ipc, NamespaceMode::Pod),
                    ..NamespaceOption::default()
                }),
                run_as_user: security.run_as_user.map(|value| Int64Value { value }),
                run_as_group: security.run_as_group.map(|value| Int64Value { value }),
                supplemental_groups: security.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                ..LinuxSandboxSecurityContext::default()
            }),
            sysctls,
            ..LinuxPodSandboxConfig::default()
        }),
        windows: None,
    }
}

/// The `hostPort`s of the pod's containers, for the portmap plugin.
pub fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    if host_network(pod) {
        return Vec::new();
    }
    let spec = pod.spec.clone().unwrap_or_default();
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sandboxes_carry_the_pod_and_its_namespaces() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"hostPID": true, "containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}
            ]}]}
        }))
        .unwrap();
        let c = config(&pod, 2, DnsConfig::default(), Path::new("/l"), "/capstan/podu1".into());
        let meta = c.metadata.unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web", "prod", "u1", 2)
        );
        assert_eq!(c.hostname, "web");
        assert_eq!(c.labels[POD_UID], "u1");
        assert_eq!(c.labels["app"], "web");
        let linux = c.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/capstan/podu1");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(
            (ns.network, ns.pid, ns.ipc),
            (
                NamespaceMode::Pod as i32,
                NamespaceMode::Node as i32,
                NamespaceMode::Pod as i32
            )
        );
        assert_eq!(c.port_mappings.len(), 1);
        assert_eq!(
            (c.port_mappings[0].container_port, c.port_mappings[0].host_port),
            (80, 8080)
        );
    }
}
