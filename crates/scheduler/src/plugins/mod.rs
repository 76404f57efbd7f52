//! The in-tree plugins of upstream's default profile, one module each,
//! named as upstream's `pkg/scheduler/framework/plugins/*`.

pub mod balanced_allocation;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
