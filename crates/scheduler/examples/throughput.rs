//! Measures the scheduling algorithm alone (cache, snapshot, filters,
//! scores, assume) on basic pods at 5,000 nodes: the CPU part of the
//! ≥ 1,000 pods/s target, without the API server.
//! `cargo run --release -p capstan-scheduler --example throughput [nodes] [pods]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use capstan_scheduler::cache::{Cache, Snapshot};
use capstan_scheduler::framework::Framework;
use capstan_scheduler::schedule_one::Algorithm;
use capstan_scheduler::types::PodInfo;
use k8s_openapi::api::core::v1::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn node(i: usize) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(format!("node-{i}"));
    n.metadata.labels = Some(BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), format!("node-{i}")),
        ("topology.kubernetes.io/zone".to_string(), format!("zone-{}", i % 3)),
    ]));
    let alloc = list(&[("cpu", "4"), ("memory", "32Gi"), ("pods", "110")]);
    n.status = Some(NodeStatus {
        allocatable: Some(alloc),
        ..Default::default()
    });
    n
}

fn pod(i: usize) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(format!("pod-{i}"));
    p.metadata.namespace = Some("default".into());
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(list(&[("cpu", "100m"), ("memory", "500Mi")])),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    p
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (nodes, pods) = (
        args.first().copied().unwrap_or(5000),
        args.get(1).copied().unwrap_or(10_000),
    );
    let mut cache = Cache::new();
    for i in 0..nodes {
        cache.upsert_node(node(i));
    }
    let mut snapshot = Snapshot::default();
    let mut alg = Algorithm::new(Framework::default_profile(), 0);
    let start = Instant::now();
    for i in 0..pods {
        let info = Arc::new(PodInfo::new(Arc::new(pod(i))));
        cache.update_snapshot(&mut snapshot);
        let result = alg.schedule_pod(&info, &snapshot).expect("fits");
        cache.assume_pod(info, &result.node);
    }
    let elapsed = start.elapsed();
    println!(
        "{pods} pods on {nodes} nodes in {elapsed:?}: {:.0} pods/s",
        pods as f64 / elapsed.as_secs_f64()
    );
}
