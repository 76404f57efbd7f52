//! NodePorts: two pods cannot bind the same host port, protocol and address
//! (`0.0.0.0` conflicts with every address).

use crate::framework::{CycleState, FilterPlugin, Status};
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &crate::cache::Snapshot) -> Status {
        if pod.host_ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::{ContainerPort, Pod};

    fn with_port(name: &str, ip: &str, protocol: &str, port: i32) -> Pod {
        let mut p = pod(name, &[]);
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(port),
            host_ip: Some(ip.into()),
            protocol: Some(protocol.into()),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn port_conflicts() {
        let cases = [
            (with_port("e", "", "TCP", 8080), with_port("p", "", "TCP", 8080), false),
            (with_port("e", "", "TCP", 8080), with_port("p", "", "UDP", 8080), true),
            (with_port("e", "", "TCP", 8080), with_port("p", "", "TCP", 8081), true),
            (
                with_port("e", "10.0.0.1", "TCP", 8080),
                with_port("p", "10.0.0.2", "TCP", 8080),
                true,
            ),
            (
                with_port("e", "10.0.0.1", "TCP", 8080),
                with_port("p", "0.0.0.0", "TCP", 8080),
                false,
            ),
            (
                with_port("e", "10.0.0.1", "TCP", 8080),
                with_port("p", "10.0.0.1", "TCP", 8080),
                false,
            ),
        ];
        for (i, (existing, incoming, want)) in cases.into_iter().enumerate() {
            let n = node_info(node("n", &[], &[]), vec![existing]);
            let status = NodePorts.filter(&CycleState::default(), &pod_info(incoming), &n);
            assert_eq!(status.is_success(), want, "case {i}");
        }
    }
}
