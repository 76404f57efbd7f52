//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.

use crate::framework::{CycleState, FilterPlugin, Status};
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.node_name() {
            Some(name) if name != node.name => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    #[test]
    fn requested_node_name() {
        for (requested, want) in [(None, true), (Some("n"), true), (Some("other"), false)] {
            let mut p = pod("p", &[]);
            p.spec.as_mut().unwrap().node_name = requested.map(String::from);
            let n = node_info(node("n", &[], &[]), vec![]);
            assert_eq!(
                NodeName.filter(&CycleState::default(), &pod_info(p), &n).is_success(),
                want
            );
        }
    }
}
