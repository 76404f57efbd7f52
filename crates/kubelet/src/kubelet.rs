//! The real kubelet: [`Kubelet::run`] drives one node on a CRI runtime.
//!
//! It registers the node ([`crate::node`]), keeps its Lease and status
//! fresh, writes the CNI configuration once node IPAM gave the node a pod
//! range ([`crate::network`]), routes the other nodes' ranges to them
//! ([`crate::hostgw`]), and runs every pod bound to it: one watch on
//! `spec.nodeName=<node>` feeds one worker task per pod
//! ([`crate::pod_workers`]), which syncs the pod through CRI
//! ([`crate::kuberuntime`]) and reports its status ([`crate::status`]).
//! A relist of the runtime every second ([`crate::pleg`]) wakes the
//! workers whose containers changed.
//!
//! Nothing is stopped when the kubelet stops (only the host-gw routes and
//! masquerade rule are removed): containers keep running, and
//! a restarted kubelet adopts them by their CRI labels; at start it removes
//! the sandboxes and pod cgroups no pod owns any more.

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use capstan_containerd::registries::Registries;
use futures::StreamExt;
use k8s_cri::v1::{ListPodSandboxRequest, RemovePodSandboxRequest, StopPodSandboxRequest, VersionRequest};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;

use crate::cgroups::PodCgroups;
use crate::cri::Cri;
use crate::dns::{ClusterDns, HostResolv};
use crate::fieldpath::NodeFacts;
use crate::hostgw::HostGw;
use crate::images::ImageManager;
use crate::images::events::ImageEvents;
use crate::network::Network;
use crate::node::{self, NodeConfig};
use crate::pod_workers::PodWorkers;
use crate::sandbox::POD_UID;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("asking the container runtime for its version: {0}")]
    RuntimeVersion(tonic::Status),
    #[error("no --node-ip given and no address found on this host")]
    NoNodeIp,
    #[error(transparent)]
    Node(#[from] node::Error),
}

/// How the kubelet is configured (the node flags of `capstan server` and `capstan agent`).
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    pub node_name: String,
    /// `None`: the address of the default route's interface.
    pub node_ip: Option<IpAddr>,
    /// `<data-dir>/agent`: pods/, logs/, cni/.
    pub root_dir: PathBuf,
    /// Where the runtime reads CNI configuration from.
    pub cni_conf_dir: PathBuf,
    pub cni_bridge: String,
    pub cgroup_root: String,
    pub kubelet_port: u16,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// Hard eviction thresholds (`--eviction-hard`): pressure conditions and allocatable.
    pub eviction: node::Eviction,
    /// `--registry-config`: credentials used when no imagePullSecret matches.
    pub registries: Registries,
    /// The kubelet server's certificate and client CA; without it the server on `kubelet_port` (logs, exec,
    /// attach, port-forward, stats) does not start.
    pub server_tls: Option<crate::server::ServerTls>,
    /// The cluster's pod range: with it the node routes the other nodes' pod ranges and masquerades pod traffic
    /// leaving the range ([`crate::hostgw`]); without it pods reach only this node and its pods.
    pub cluster_cidr: Option<ipnet::IpNet>,
}

/// What every pod worker shares.
pub struct Context {
    pub client: kube::Client,
    pub cri: Cri,
    pub options: KubeletOptions,
    pub node_ip: IpAddr,
    /// `containerd`, as in `containerd://<container id>`.
    pub runtime_name: String,
    pub cgroups: PodCgroups,
    pub dns: ClusterDns,
    pub host_resolv: HostResolv,
    /// Pull policy, credentials and pull back-off for every pod's images.
    pub images: ImageManager,
    /// The kubelet's Events about containers (Created, Started, Killing, BackOff …).
    pub events: ImageEvents,
    /// Host IPs and allocatable, for the downward API.
    pub node_facts: NodeFacts,
    /// The node's memory, the limit of containers that set none.
    pub memory_capacity: i64,
}

impl Context {
    /// `<root>/pods/<uid>`: the pod's volumes, hosts file, termination messages.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.options.root_dir.join("pods").join(uid)
    }
}

pub struct Kubelet;

impl Kubelet {
    /// Runs the node until `shutdown` resolves; pods keep running after.
    pub async fn run(
        client: kube::Client,
        cri: Cri,
        options: KubeletOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let version = cri
            .runtime
            .clone()
            .version(VersionRequest::default())
            .await
            .map_err(Error::RuntimeVersion)?
            .into_inner();
        let node_ip = options.node_ip.or_else(node::default_ip).ok_or(Error::NoNodeIp)?;
        let config = NodeConfig {
            name: options.node_name.clone(),
            ip: node_ip,
            kubelet_port: options.kubelet_port,
            root_dir: options.root_dir.clone(),
            runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
            eviction: options.eviction,
        };
        let network = Network {
            conf_dir: options.cni_conf_dir.clone(),
            ipam_dir: options.root_dir.join("cni").join("networks"),
            bridge: options.cni_bridge.clone(),
        };
        let health = node::runtime_health(&cri).await;
        let registered = tokio::select! {
            node = node::register(&client, &config, &health) => node?,
            () = &mut shutdown => return Ok(()),
        };
        tracing::info!(node = %config.name, ip = %node_ip, runtime = %config.runtime_version, "node registered");
        let host = node::Host::read(&options.root_dir);
        let allocatable = registered
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        let events = ImageEvents::new(client.clone(), &options.node_name);
        let ctx = Arc::new(Context {
            node_facts: NodeFacts {
                host_ips: vec![node_ip.to_string()],
                allocatable,
            },
            memory_capacity: i64::try_from(host.memory_bytes).unwrap_or(i64::MAX),
            client: client.clone(),
            cri: cri.clone(),
            node_ip,
            runtime_name: version.runtime_name.clone(),
            cgroups: PodCgroups::new(&options.cgroup_root),
            dns: ClusterDns {
                servers: options.cluster_dns.clone(),
                domain: options.cluster_domain.clone(),
            },
            host_resolv: HostResolv::read(),
            images: ImageManager::new(options.registries.clone()).with_events(events.clone()),
            events,
            options,
        });
        let server = kubelet_server(&ctx);
        let hostgw = ctx.options.cluster_cidr.map(|cluster_cidr| HostGw {
            node_name: config.name.clone(),
            node_ip,
            cluster_cidr,
        });
        let changed = Arc::new(Notify::new());
        let uid = registered.uid().unwrap_or_default();
        tokio::select! {
            () = &mut shutdown => {}
            () = node::run(client.clone(), cri.clone(), config.clone(), uid, changed.clone()) => {}
            () = watch_pod_cidr(client.clone(), cri.clone(), config.name.clone(), network, changed) => {}
            () = run_pods(ctx) => {}
            () = server => {}
            () = run_hostgw(hostgw.as_ref(), client.clone()) => {}
        }
        if let Some(hostgw) = &hostgw {
            hostgw.teardown();
        }
        tracing::info!("kubelet stopping; containers keep running");
        Ok(())
    }
}

/// The kubelet's HTTPS server (logs, exec, attach, port-forward, stats) on `--kubelet-port`, on all addresses
/// as upstream's; pending forever when it has no certificate or cannot start (the node keeps running pods).
fn kubelet_server(ctx: &Context) -> impl Future<Output = ()> + use<> {
    let options = ctx.options.server_tls.clone().map(|tls| crate::server::ServerOptions {
        addr: (std::net::Ipv4Addr::UNSPECIFIED, ctx.options.kubelet_port).into(),
        tls,
        runtime: ctx.cri.runtime.clone(),
        cgroups: crate::server::CgroupLayout {
            mount: "/sys/fs/cgroup".into(),
            root: ctx.options.cgroup_root.clone(),
        },
        node_name: ctx.options.node_name.clone(),
    });
    async move {
        match options {
            Some(options) => {
                if let Err(err) = crate::server::serve(options, std::future::pending()).await {
                    tracing::error!(%err, "the kubelet server did not start");
                }
            }
            None => tracing::warn!("no serving certificate: the kubelet server (logs, exec, port-forward) is off"),
        }
        std::future::pending::<()>().await
    }
}

/// Routes to the other nodes' pod ranges, when the cluster CIDR is known. Never completes: the node keeps
/// running its pods whatever happens to the routes.
async fn run_hostgw(hostgw: Option<&HostGw>, client: kube::Client) {
    if let Some(hostgw) = hostgw {
        hostgw.run(client).await;
        tracing::error!("host-gw: the node watch ended; routes to other nodes are no longer kept up to date");
    }
    std::future::pending().await
}

/// Writes the CNI configuration when the node gets (or changes) its pod
/// range, then wakes the status loop as soon as the runtime's network is ready.
async fn watch_pod_cidr(client: kube::Client, cri: Cri, name: String, network: Network, changed: Arc<Notify>) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let nodes = watcher::watcher(api, config).default_backoff().applied_objects();
    futures::pin_mut!(nodes);
    while let Some(event) = nodes.next().await {
        let node = match event {
            Ok(node) => node,
            Err(err) => {
                tracing::warn!(%err, "watching the node");
                continue;
            }
        };
        let Some(cidr) = crate::podsync::pod_cidr(&node).and_then(|c| c.parse().ok()) else {
            continue;
        };
        match network.write(&cidr) {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(%cidr, "pod network configured");
                wait_network_ready(&cri).await;
                changed.notify_one();
            }
            Err(err) => tracing::error!(%err, "writing the CNI configuration"),
        }
    }
}

/// Polls the runtime until it reports its network ready (it loads CNI
/// configuration asynchronously), for at most 10 s.
async fn wait_network_ready(cri: &Cri) {
    for _ in 0..100 {
        if node::runtime_health(cri).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watches the pods bound to this node and hands each to its worker;
/// after the first full list, removes what no pod owns.
async fn run_pods(ctx: Arc<Context>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.options.node_name));
    let mut workers = PodWorkers::new(ctx.clone());
    let events = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    let mut listing: Option<HashSet<String>> = None;
    let mut reconciled = false;
    let pleg = crate::pleg::relist(ctx.cri.clone());
    futures::pin_mut!(pleg);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(Event::Apply(pod)) => workers.update(pod),
                    Ok(Event::Delete(pod)) => workers.removed(&pod.uid().unwrap_or_default()),
                    Ok(Event::Init) => listing = Some(HashSet::new()),
                    Ok(Event::InitApply(pod)) => {
                        if let Some(seen) = listing.as_mut() {
                            seen.insert(pod.uid().unwrap_or_default());
                        }
                        workers.update(pod);
                    }
                    Ok(Event::InitDone) => {
                        let seen = listing.take().unwrap_or_default();
                        workers.retain(&seen);
                        if !reconciled {
                            reconciled = true;
                            remove_orphans(&ctx, &seen).await;
                        }
                    }
                    Err(err) => tracing::warn!(%err, "watching pods"),
                }
            }
            Some(changed) = pleg.next() => workers.wake(&changed),
        }
    }
}

/// Removes sandboxes (with their containers) and pod cgroups of pods that
/// no longer exist: what a kubelet that died mid-way, or whose pods were
/// deleted while it was down, left behind.
async fn remove_orphans(ctx: &Context, pods: &HashSet<String>) {
    let mut runtime = ctx.cri.runtime.clone();
    let sandboxes = match runtime.list_pod_sandbox(ListPodSandboxRequest::default()).await {
        Ok(list) => list.into_inner().items,
        Err(err) => {
            tracing::warn!(%err, "listing sandboxes to reconcile");
            return;
        }
    };
    for sandbox in sandboxes {
        let Some(uid) = sandbox.labels.get(POD_UID) else {
            continue;
        };
        if pods.contains(uid) {
            continue;
        }
        tracing::info!(sandbox = %sandbox.id, pod = %uid, "removing the sandbox of a pod that is gone");
        let id = sandbox.id.clone();
        let _ = runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await;
        if let Err(err) = runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
        {
            tracing::warn!(%err, "removing an orphaned sandbox");
        }
    }
    for uid in ctx.cgroups.pods() {
        if !pods.contains(&uid)
            && let Err(err) = ctx.cgroups.remove(&uid)
        {
            tracing::warn!(pod = %uid, %err, "removing an orphaned pod cgroup");
        }
    }
    if let Ok(dirs) = std::fs::read_dir(ctx.options.root_dir.join("pods")) {
        for dir in dirs.flatten() {
            let uid = dir.file_name().to_string_lossy().into_owned();
            if !pods.contains(&uid) {
                crate::kuberuntime::remove_pod_dir(&dir.path());
            }
        }
    }
}
