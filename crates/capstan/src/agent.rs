//! `capstan agent`: a node joined to a server — a kubelet on Capstan's own
//! containerd (or the runtime `--container-runtime-endpoint` names), the
//! same node `capstan server` runs unless `--disable-agent` ([`run_node`]).
//! With `--simulate N` it runs N hollow nodes instead (see
//! `capstan_kubelet::hollow`), the test bed for the scheduler and
//! controllers and the scale harness.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use capstan_containerd::registries::Registries;
use capstan_containerd::{Containerd, ContainerdConfig};
use capstan_kubelet::hollow::HollowOptions;
use capstan_kubelet::kubelet::{Kubelet, KubeletOptions};
use capstan_kubelet::nodestatus::{self, NodeTemplate};
use capstan_kubelet::server::ServerTls;
use clap::Args;

/// The node's flags, shared by `capstan server` and `capstan agent`, with
/// upstream kubelet's names where it has them.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,

    /// The node's InternalIP (default: the address of the default route's interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,

    /// Use this CRI socket instead of starting Capstan's own containerd.
    #[arg(long, value_name = "PATH")]
    pub container_runtime_endpoint: Option<PathBuf>,

    /// The port of the kubelet's HTTPS server (logs, exec, port-forward).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,

    /// The cluster DNS address pods with dnsPolicy ClusterFirst resolve through.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,

    /// Registry mirrors and credentials (k3s-style registries.yaml).
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,

    /// The cgroup under which pod cgroups are created (cgroupfs driver).
    #[arg(long, default_value = "/capstan")]
    pub cgroup_root: String,

    /// The Linux bridge pods are attached to.
    #[arg(long, default_value = "capstan0")]
    pub cni_bridge: String,

    /// Hard eviction thresholds: below them the node reports MemoryPressure
    /// or DiskPressure (upstream's signals memory.available and nodefs.available).
    #[arg(long, default_value = capstan_kubelet::node::DEFAULT_EVICTION_HARD, value_parser = capstan_kubelet::node::Eviction::parse)]
    pub eviction_hard: capstan_kubelet::node::Eviction,
}

impl NodeArgs {
    /// The names and addresses the kubelet's serving certificate must carry: the node's IP (as the kubelet
    /// determines it), its name, and loopback.
    pub fn serving_sans(&self) -> Vec<String> {
        let mut sans = vec![self.node_name(), "localhost".to_string(), "127.0.0.1".to_string()];
        if let Some(ip) = self.node_ip.or_else(capstan_kubelet::node::default_ip) {
            sans.push(ip.to_string());
        }
        sans
    }

    /// `--node-name`, else the host name (lowercased, as upstream).
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(host_name)
    }
}

/// The machine's host name, lowercased as upstream does for node names.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

/// Runs a real node until `shutdown`: containerd (unless an endpoint is
/// given) with the images of `<data-dir>/agent/images` imported, then the
/// kubelet, which routes the other nodes' pod ranges inside `cluster_cidr`.
/// Pods keep running after it returns.
pub async fn run_node(
    client: kube::Client,
    args: &NodeArgs,
    data_dir: &Path,
    cluster: &ClusterNetwork,
    server_tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let agent = data_dir.join("agent");
    let mut config = ContainerdConfig::for_data_dir(data_dir);
    config.registry_config = args.registry_config.clone();
    let cni_conf_dir = config.cni_conf_dir.clone();
    let (containerd, endpoint) = match &args.container_runtime_endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let containerd = Containerd::start(config).await.context("starting containerd")?;
            let endpoint = containerd.endpoint().to_path_buf();
            (Some(containerd), endpoint)
        }
    };
    let images = agent.join("images");
    if images.is_dir() {
        match capstan_containerd::import_images(&endpoint, &images).await {
            Ok(report) => tracing::info!(
                imported = report.imported.len(),
                skipped = report.skipped.len(),
                "images imported"
            ),
            Err(err) => tracing::warn!(%err, dir = %images.display(), "importing images"),
        }
    }
    let cri = capstan_kubelet::cri::connect(&endpoint)
        .await
        .with_context(|| format!("connecting to the container runtime at {}", endpoint.display()))?;
    let options = KubeletOptions {
        node_name: args.node_name(),
        node_ip: args.node_ip,
        root_dir: agent,
        cni_conf_dir,
        cni_bridge: args.cni_bridge.clone(),
        cgroup_root: args.cgroup_root.clone(),
        kubelet_port: args.kubelet_port,
        cluster_dns: vec![args.cluster_dns],
        cluster_domain: cluster.domain.clone(),
        cluster_cidr: Some(cluster.cidr),
        eviction: args.eviction_hard,
        registries: match &args.registry_config {
            Some(path) => Registries::load(path)?,
            None => Registries::default(),
        },
        server_tls,
    };
    let result = Kubelet::run(client, cri, options, shutdown).await;
    if let Some(containerd) = containerd {
        containerd.stop().await;
    }
    Ok(result?)
}

/// What a node must know about the whole cluster.
#[derive(Clone, Debug)]
pub struct ClusterNetwork {
    /// The DNS domain (`--cluster-domain`).
    pub domain: String,
    /// The pod range every node's podCIDR comes from (`--cluster-cidr`).
    pub cidr: ipnet::IpNet,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    /// The API server URL, instead of the kubeconfig's.
    #[arg(long)]
    server: Option<String>,

    /// Where the node keeps its state (`<data-dir>/agent`: containerd, images, pods).
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR")]
    data_dir: PathBuf,

    /// The cluster's Service range (as the server's `--service-cidr`): routed to the node's proxy.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: ipnet::IpNet,

    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,

    /// The cluster's pod range (as the server's `--cluster-cidr`): other nodes' podCIDRs in it are routed
    /// to them, the rest of it is dropped, and pod traffic leaving it is masqueraded.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: ipnet::IpNet,

    #[command(flatten)]
    node: NodeArgs,

    /// Run N hollow (simulated) nodes instead of a real one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub simulate: Option<u32>,

    /// Hollow nodes are named <prefix>-0 … <prefix>-(N-1).
    #[arg(long, default_value = "hollow")]
    simulate_prefix: String,

    /// Capacity (and allocatable) of each hollow node.
    #[arg(long, default_value = "cpu=4,memory=16Gi,pods=110", value_parser = nodestatus::parse_capacity)]
    simulate_capacity: nodestatus::Capacity,

    /// Hollow nodes are spread over zones zone-0 … zone-(Z-1) (`topology.kubernetes.io/zone`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    simulate_zones: u32,
}

impl AgentArgs {
    fn options(&self, count: u32) -> Result<HollowOptions> {
        let template = NodeTemplate {
            prefix: self.simulate_prefix.clone(),
            capacity: self.simulate_capacity.clone(),
            zones: self.simulate_zones,
            boot: std::process::id().to_string(),
        };
        template.validate(count).map_err(anyhow::Error::msg)?;
        Ok(HollowOptions { template, count })
    }

    async fn client(&self) -> Result<kube::Client> {
        crate::kubeconfig::client(&self.kubeconfig, self.server.as_deref()).await
    }

    /// Runs a real node (or, with `--simulate N`, hollow nodes) until SIGTERM or Ctrl-C.
    pub fn run(self) -> Result<()> {
        match self.simulate {
            Some(count) => self.run_hollow(count),
            None => self.run_real(),
        }
    }

    fn run_real(self) -> Result<()> {
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let client = self.client().await?;
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            // The service proxy runs beside the kubelet and stops with it.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let proxy = capstan_proxy::ProxyOptions {
                node_name: self.node.node_name(),
                cluster_cidr: Some(self.cluster_cidr.trunc()),
                service_cidr: self.service_cidr.trunc(),
                table: "capstan-proxy".into(),
                min_sync_period: capstan_proxy::MIN_SYNC_PERIOD,
            };
            let proxy = tokio::spawn(capstan_proxy::run(
                client.clone(),
                proxy,
                crate::server::stopping(&stopped),
            ));
            let shutdown = async move {
                shutdown.await;
                let _ = stop.send(true);
            };
            // Joining nodes have no certificate from the cluster CA yet (no CSR flow): no kubelet server.
            let cluster = ClusterNetwork {
                domain: self.cluster_domain.clone(),
                cidr: self.cluster_cidr.trunc(),
            };
            let result = run_node(client, &self.node, &self.data_dir, &cluster, None, shutdown).await;
            let _ = proxy.await;
            result
        })
    }

    /// Runs the hollow nodes until SIGTERM or Ctrl-C.
    fn run_hollow(self, count: u32) -> Result<()> {
        let options = self.options(count)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let client = self.client().await?;
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            capstan_kubelet::hollow::run(client, options, shutdown).await?;
            Ok(())
        })
    }
}
