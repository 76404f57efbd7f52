//! The controller manager: the controllers that drive objects toward their
//! spec, each an API client like any other.
//!
//! Every controller is written the kube-runtime way — a `reconcile`
//! function that is safe to run any number of times, driven by
//! `kube::runtime::Controller` from informers — in a module named for the
//! upstream controller it implements. Start with [`run`], which starts them
//! all on one client; then read any controller module, e.g. [`namespace`].

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoint;
pub mod endpointslice;
pub mod garbagecollector;
pub mod history;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod replication;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod ttlafterfinished;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// The controller manager's settings, named after upstream's
/// kube-controller-manager flags; `Default` is upstream's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerManagerOptions {
    /// `--cluster-cidr`: the range node podCIDRs come from; without it no
    /// CIDRs are allocated (upstream's `--allocate-node-cidrs=false`).
    pub cluster_cidr: Option<IpNet>,
    /// `--node-cidr-mask-size`: the prefix length of each node's podCIDR;
    /// `None` means upstream's 24 for IPv4 and 64 for IPv6.
    pub node_cidr_mask_size: Option<u8>,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go without a
    /// heartbeat before it is marked Unknown (50 s since Kubernetes 1.32).
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted Ready.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: nodes per second tainted NoExecute in a healthy zone.
    pub node_eviction_rate: f32,
    /// `--secondary-node-eviction-rate`: the same in a partially disrupted zone.
    pub secondary_node_eviction_rate: f32,
    /// `--unhealthy-zone-threshold`: the share of not-ready nodes that makes a zone unhealthy.
    pub unhealthy_zone_threshold: f32,
    /// `--large-cluster-size-threshold`: smaller zones stop evicting when partially disrupted.
    pub large_cluster_size_threshold: u32,
    /// `--terminated-pod-gc-threshold`: finished pods kept before the oldest are
    /// deleted; 0 disables that collection.
    pub terminated_pod_gc_threshold: u32,
    /// How often pod GC runs (upstream's fixed `gcCheckPeriod`).
    pub pod_gc_period: Duration,
    /// How long pod GC waits before deleting the pods of a missing node
    /// (upstream's fixed `quarantineTime`).
    pub pod_gc_quarantine: Duration,
    /// `--root-ca-file`, as PEM: published to every namespace as the
    /// `kube-root-ca.crt` ConfigMap; `None` publishes nothing.
    pub root_ca: Option<String>,
    /// `--controllers`: `*` enables every controller on by default, `foo`
    /// enables `foo`, `-foo` disables it; names as [`KNOWN_CONTROLLERS`].
    pub controllers: Vec<String>,
}

/// The controllers by upstream's canonical name (and the aliases it
/// accepts), as `--controllers` names them. All are on by default.
pub const KNOWN_CONTROLLERS: &[(&str, &[&str])] = &[
    ("namespace-controller", &["namespace"]),
    ("serviceaccount-controller", &["serviceaccount"]),
    ("replicaset-controller", &["replicaset"]),
    ("replicationcontroller-controller", &["replicationcontroller"]),
    ("deployment-controller", &["deployment"]),
    ("daemonset-controller", &["daemonset"]),
    ("statefulset-controller", &["statefulset"]),
    ("garbage-collector-controller", &["garbagecollector"]),
    ("job-controller", &["job"]),
    ("cronjob-controller", &["cronjob"]),
    ("ttl-after-finished-controller", &["ttl-after-finished"]),
    ("endpoints-controller", &["endpoint"]),
    ("endpointslice-controller", &["endpointslice"]),
    ("node-lifecycle-controller", &["nodelifecycle"]),
    ("node-ipam-controller", &["nodeipam"]),
    ("root-ca-certificate-publisher-controller", &["root-ca-cert-publisher"]),
    ("pod-garbage-collector-controller", &["podgc"]),
    (servicelb::NAME, &["service", "servicelb"]),
];

/// A controller's canonical name, from its name or an alias.
fn canonical(name: &str) -> Option<&'static str> {
    KNOWN_CONTROLLERS
        .iter()
        .find(|(canonical, aliases)| *canonical == name || aliases.contains(&name))
        .map(|(canonical, _)| *canonical)
}

impl Default for ControllerManagerOptions {
    fn default() -> Self {
        ControllerManagerOptions {
            cluster_cidr: None,
            node_cidr_mask_size: None,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_size_threshold: 50,
            terminated_pod_gc_threshold: 12500,
            pod_gc_period: Duration::from_secs(20),
            pod_gc_quarantine: Duration::from_secs(40),
            root_ca: None,
            controllers: vec!["*".into()],
        }
    }
}

impl ControllerManagerOptions {
    /// Rejects settings upstream's controller manager refuses to start with.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cidr) = &self.cluster_cidr {
            nodeipam::CidrSet::new(*cidr, self.node_cidr_mask_size)?;
        }
        if self.node_monitor_period.is_zero() {
            return Err("--node-monitor-period must be greater than 0".into());
        }
        for controller in &self.controllers {
            let name = controller.strip_prefix('-').unwrap_or(controller);
            if name != "*" && canonical(name).is_none() {
                return Err(format!("{name:?} is not in the list of known controllers"));
            }
        }
        Ok(())
    }

    /// Upstream's `IsControllerEnabled`: the first explicit mention of the
    /// controller (or an alias) decides, else `*` enables it.
    pub fn enabled(&self, name: &str) -> bool {
        let name = canonical(name).unwrap_or(name);
        let mut star = false;
        for controller in &self.controllers {
            match controller.strip_prefix('-') {
                Some(off) if canonical(off) == Some(name) => return false,
                None if controller == "*" => star = true,
                None if canonical(controller) == Some(name) => return true,
                _ => {}
            }
        }
        star
    }
}

/// Runs every controller until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    options: ControllerManagerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // One task per controller: each is polled from a shallow stack (the
    // futures are large), and dropping the set — shutdown, or a lost
    // leader election — aborts them all.
    let mut controllers = tokio::task::JoinSet::new();
    // The controllers that follow pods share one watch of them; every
    // follower is registered before the informer starts.
    let mut pods = informer::PodInformer::default();
    let on = |name: &str| options.enabled(name);
    if on("namespace") {
        controllers.spawn(namespace::run(client.clone()));
    }
    if on("serviceaccount") {
        controllers.spawn(serviceaccount::run(client.clone()));
    }
    if on("replicaset") {
        controllers.spawn(replicaset::run(client.clone(), pods.follow()));
    }
    if on("replicationcontroller") {
        controllers.spawn(replication::run(client.clone(), pods.follow()));
    }
    if on("deployment") {
        controllers.spawn(deployment::run(client.clone()));
    }
    if on("daemonset") {
        controllers.spawn(daemonset::run(client.clone(), pods.follow()));
    }
    if on("statefulset") {
        controllers.spawn(statefulset::run(client.clone(), pods.follow()));
    }
    if on("garbagecollector") {
        controllers.spawn(garbagecollector::run(client.clone()));
    }
    if on("job") {
        controllers.spawn(job::run(client.clone(), pods.follow()));
    }
    if on("cronjob") {
        controllers.spawn(cronjob::run(client.clone()));
    }
    if on("ttl-after-finished") {
        controllers.spawn(ttlafterfinished::run(client.clone()));
    }
    if on("endpoint") {
        controllers.spawn(endpoint::run(client.clone(), pods.store(), pods.follow()));
    }
    if on("endpointslice") {
        controllers.spawn(endpointslice::run(client.clone(), pods.store(), pods.follow()));
    }
    if on("nodelifecycle") {
        let (store, changes) = (pods.store(), pods.follow());
        controllers.spawn(nodelifecycle::run(client.clone(), options.clone(), store, changes));
    }
    if on("nodeipam") {
        controllers.spawn(nodeipam::run(client.clone(), options.clone()));
    }
    if let Some(root_ca) = options.root_ca.clone().filter(|_| on("root-ca-cert-publisher")) {
        controllers.spawn(rootcacertpublisher::run(client.clone(), root_ca));
    }
    if on("servicelb") {
        controllers.spawn(servicelb::run(client.clone(), pods.store(), pods.follow()));
    }
    if on("podgc") {
        controllers.spawn(podgc::run(client.clone(), options.clone(), pods.store()));
    }
    controllers.spawn(pods.run(client.clone()));
    tokio::select! {
        _ = controllers.join_all() => tracing::warn!("controllers stopped"),
        _ = shutdown => {}
    }
}

/// Errors a reconcile can end with; every one is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pending(String),
}

/// A read cache of `api` (an informer): the store, and the future that
/// keeps it current, to be polled beside the controller that reads it.
pub(crate) fn reflect<K>(api: kube::Api<K>, config: watcher::Config) -> (Store<K>, impl Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    (store, stream.for_each(|_| futures::future::ready(())))
}

/// How kube-rs's dynamic API addresses a resource from the registry.
pub(crate) fn api_resource(resource: &capstan_apimachinery::ResourceType) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: resource.group.to_string(),
        version: resource.version.to_string(),
        api_version: resource.api_version(),
        kind: resource.kind.to_string(),
        plural: resource.plural.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(controllers: &[&str]) -> ControllerManagerOptions {
        ControllerManagerOptions {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            ..ControllerManagerOptions::default()
        }
    }

    #[test]
    fn controllers_are_chosen_as_upstream_does() {
        assert!(with(&["*"]).enabled("servicelb"));
        assert!(
            !with(&["*", "-servicelb"]).enabled("service-lb-controller"),
            "an alias disables"
        );
        assert!(with(&["*", "-servicelb"]).enabled("job"));
        assert!(!with(&["job"]).enabled("servicelb"), "without * only named ones run");
        assert!(with(&["job"]).enabled("job-controller"));
        assert!(
            with(&["service", "-servicelb"]).enabled("servicelb"),
            "the first mention decides"
        );
    }

    #[test]
    fn unknown_controllers_are_refused() {
        assert_eq!(
            with(&["*", "-nosuch"]).validate(),
            Err("\"nosuch\" is not in the list of known controllers".into())
        );
        assert_eq!(
            with(&["*", "-servicelb", "endpointslice-controller"]).validate(),
            Ok(())
        );
    }
}
