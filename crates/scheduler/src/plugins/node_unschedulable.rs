//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::tolerates;
use crate::framework::{CycleState, FilterPlugin, Status};
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerates(pod.spec().tolerations.as_deref().unwrap_or_default(), &taint) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::Toleration;

    #[test]
    fn cordoned_nodes() {
        let toleration = Toleration {
            key: Some("node.kubernetes.io/unschedulable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        };
        let cases = [(false, None, true), (true, None, false), (true, Some(toleration), true)];
        for (i, (cordoned, toleration, want)) in cases.into_iter().enumerate() {
            let mut n = node_info(node("n", &[], &[]), vec![]);
            n.unschedulable = cordoned;
            let mut p = pod("p", &[]);
            p.spec.as_mut().unwrap().tolerations = toleration.map(|t| vec![t]);
            let status = NodeUnschedulable.filter(&CycleState::default(), &pod_info(p), &n);
            assert_eq!(status.is_success(), want, "case {i}");
        }
    }
}
