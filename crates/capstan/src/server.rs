//! `capstan server`: the control plane on this machine.
//!
//! Opens the datastore, keeps its history compacted, serves the Kubernetes
//! API over HTTPS, runs the scheduler and the controller manager, and the
//! node (containerd and the kubelet, see [`crate::agent::run_node`]) unless
//! `--disable-agent`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_apiserver::{Listening, ServeOptions};
use capstan_store::{CompactionPolicy, Endpoint};
use clap::Args;
use ipnet::IpNet;

use crate::component::{Component, LeaderElectionArgs};

#[derive(Args)]
pub struct ServerArgs {
    /// Where Capstan keeps its state: the SQLite database, certificates, agent data.
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR")]
    data_dir: PathBuf,

    /// The datastore: `sqlite://PATH` (default: <data-dir>/server/db/state.db)
    /// or `etcd://HOST:PORT[,HOST:PORT...]` for an etcd v3 cluster.
    #[arg(long, env = "CAPSTAN_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,

    /// How much history to keep: the store is compacted to the revision that
    /// was current this long ago (as upstream's --etcd-compaction-interval). 0 disables.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    etcd_compaction_interval: Duration,

    /// The port the API is served on (HTTPS).
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,

    /// The address the API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,

    /// The address pods reach the API on: the endpoint of the `kubernetes`
    /// Service (default: --bind-address if it is a specific address, else
    /// --node-ip, else the default route's interface address).
    #[arg(long)]
    advertise_address: Option<IpAddr>,

    /// Also write the admin kubeconfig to this path (it is always written to <data-dir>/admin.kubeconfig).
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,

    /// Additional host names or addresses for the API serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,

    /// The range Service ClusterIPs come from; its first address is the `kubernetes` Service.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: IpNet,

    /// The range NodePort (and LoadBalancer) Services take their node ports from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: capstan_apiserver::PortRange,

    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,

    /// Do not run a node (kubelet on containerd) in this process: a control plane only.
    #[arg(long)]
    disable_agent: bool,

    #[command(flatten)]
    node: crate::agent::NodeArgs,

    /// Do not run the scheduler in this process (run `capstan scheduler` elsewhere).
    #[arg(long)]
    disable_scheduler: bool,

    /// Do not run the controller manager in this process.
    #[arg(long)]
    disable_controller_manager: bool,

    /// Do not run these packaged components (k3s's flag; only `servicelb` so far).
    #[arg(long, value_delimiter = ',', value_enum)]
    disable: Vec<Packaged>,

    #[command(flatten)]
    leader_election: LeaderElectionArgs,

    #[command(flatten)]
    controllers: crate::component::ControllerFlags,

    #[command(flatten)]
    dns: crate::dns::DnsArgs,
}

/// What k3s's `--disable` names.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Packaged {
    /// The built-in service load balancer (the controller manager's `servicelb`).
    Servicelb,
}

/// k3s's pod range, used when `--cluster-cidr` is not given.
const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";

impl ServerArgs {
    fn endpoint(&self) -> Result<Endpoint> {
        let default = || format!("sqlite://{}", self.data_dir.join("server/db/state.db").display());
        let text = self.datastore_endpoint.clone().unwrap_or_else(default);
        Ok(Endpoint::parse(&text)?)
    }

    fn compaction(&self) -> Option<CompactionPolicy> {
        let window = self.etcd_compaction_interval;
        (!window.is_zero()).then(|| CompactionPolicy {
            window,
            interval: (window / 5).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            ..CompactionPolicy::default()
        })
    }

    fn controller_options(&self) -> Result<capstan_controller_manager::ControllerManagerOptions> {
        let mut flags = self.controllers.clone();
        flags.cluster_cidr = flags.cluster_cidr.or(Some(DEFAULT_CLUSTER_CIDR.parse()?));
        if self.disable.contains(&Packaged::Servicelb) {
            // The first mention decides, so this overrides `--controllers`.
            flags.controllers.insert(0, "-servicelb".into());
        }
        flags.options()
    }

    fn serve_options(&self) -> Result<ServeOptions> {
        Ok(ServeOptions {
            bind_address: self.bind_address,
            port: self.https_listen_port,
            data_dir: self.data_dir.clone(),
            tls_sans: self.tls_sans.clone(),
            service_cidr: usable_range(self.service_cidr)?,
            node_port_range: self.service_node_port_range,
            cluster_domain: self.cluster_domain.clone(),
            write_kubeconfig: self.write_kubeconfig.clone(),
            advertise_address: self.advertise_address(),
        })
    }
}

impl ServerArgs {
    /// `--advertise-address`, else a specific `--bind-address`, else the node's IP (as upstream).
    fn advertise_address(&self) -> Option<IpAddr> {
        self.advertise_address
            .or((!self.bind_address.is_unspecified() && !self.bind_address.is_loopback()).then_some(self.bind_address))
            .or(self.node.node_ip)
            .or_else(capstan_kubelet::node::default_ip)
    }
}

/// A service CIDR needs room for the `kubernetes` Service and cluster DNS (.10).
fn usable_range(cidr: IpNet) -> Result<IpNet> {
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    anyhow::ensure!(
        host_bits >= 4,
        "--service-cidr {cidr} is too small: it needs at least 16 addresses"
    );
    Ok(cidr.trunc())
}

pub fn run(args: ServerArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> Result<()> {
    let endpoint = args.endpoint()?;
    let controller_options = args.controller_options()?;
    prepare_dir(&args.data_dir)?;
    if let Endpoint::Sqlite(path) = &endpoint {
        prepare_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    let store = capstan_store::open(&endpoint)
        .await
        .with_context(|| format!("opening the datastore {endpoint:?}"))?;
    let revision = store.current_revision().await?;
    tracing::info!(?endpoint, revision, "datastore open");

    // Components stop first and the API server last, so that they can
    // still release their leader leases on the way out.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
    let compactor = args.compaction().map(|policy| {
        tokio::spawn(capstan_store::compaction::run(
            store.clone(),
            policy,
            api_stopped.clone(),
        ))
    });
    let listening = Listening::bind(&args.serve_options()?, store.clone()).await?;
    let controller_options = capstan_controller_manager::ControllerManagerOptions {
        root_ca: Some(listening.ca_pem().to_string()),
        ..controller_options
    };
    let mut clients = Vec::new();
    for (component, disabled) in [
        (Component::ControllerManager, args.disable_controller_manager),
        (Component::Scheduler, args.disable_scheduler),
    ] {
        // Until RBAC lands, in-process components act as system:masters.
        // Their requests skip TCP and TLS: the router is called directly.
        if !disabled {
            let service = listening.in_process(component.user(), &["system:masters"]);
            clients.push((component, kube::Client::new(service, "default")));
        }
    }
    let node_client = if args.disable_agent {
        None
    } else {
        // Until RBAC lands, the node acts as system:masters too.
        let user = format!("system:node:{}", args.node.node_name());
        let service = listening.in_process(&user, &["system:nodes", "system:masters"]);
        Some(kube::Client::new(service, "default"))
    };
    let dns_client = (!args.dns.disable_dns).then(|| {
        kube::Client::new(
            listening.in_process("system:capstan-dns", &["system:masters"]),
            "default",
        )
    });
    let server_tls = match &node_client {
        Some(_) => {
            let (cert_pem, key_pem) =
                listening.kubelet_serving_cert(&args.node.node_name(), &args.node.serving_sans())?;
            Some(capstan_kubelet::server::ServerTls {
                cert_pem,
                key_pem,
                client_ca_pem: listening.ca_pem().to_string(),
            })
        }
        None => None,
    };
    let proxy_client = node_client.clone();
    let mut api = tokio::spawn(listening.serve(stopping(&api_stopped)));
    let cluster_cidr = controller_options.cluster_cidr.context("no cluster CIDR")?;
    let mut node = node_client.map(|client| {
        let cluster = crate::agent::ClusterNetwork {
            domain: args.cluster_domain.clone(),
            cidr: cluster_cidr,
        };
        let (node_args, data_dir, tls, stop) = (
            args.node.clone(),
            args.data_dir.clone(),
            server_tls.clone(),
            stopping(&stopped),
        );
        tokio::spawn(async move { crate::agent::run_node(client, &node_args, &data_dir, &cluster, tls, stop).await })
    });
    // The node's service proxy shares the node's identity.
    let proxy = proxy_client.map(|client| {
        let options = capstan_proxy::ProxyOptions {
            node_name: args.node.node_name(),
            cluster_cidr: controller_options.cluster_cidr,
            service_cidr: args.service_cidr.trunc(),
            table: "capstan-proxy".into(),
            min_sync_period: capstan_proxy::MIN_SYNC_PERIOD,
        };
        tokio::spawn(capstan_proxy::run(client, options, stopping(&stopped)))
    });
    let dns = dns_client.map(|client| {
        let (dns, stop) = (args.dns.clone(), stopping(&stopped));
        let cluster = crate::dns::ClusterNetwork {
            dns_ip: args.node.cluster_dns,
            domain: args.cluster_domain.clone(),
            cluster_cidr: controller_options
                .cluster_cidr
                .unwrap_or(DEFAULT_CLUSTER_CIDR.parse().expect("literal")),
            service_cidr: args.service_cidr.trunc(),
            node_name: args.node.node_name(),
            node_ip: args.node.node_ip.or_else(capstan_kubelet::node::default_ip),
        };
        tokio::spawn(async move { dns.run(client, cluster, stop).await })
    });
    let components: Vec<_> = clients
        .into_iter()
        .map(|(component, client)| {
            let (election, options, stop) = (
                args.leader_election.clone(),
                controller_options.clone(),
                stopping(&stopped),
            );
            tokio::spawn(async move { component.run(client, &election, &options, stop).await })
        })
        .collect();

    tokio::select! {
        result = shutdown_signal() => result?,
        result = &mut api => {
            // The API server only returns early when it cannot serve.
            result.context("API server task")??;
            return Ok(());
        }
        result = async { node.as_mut().expect("guarded").await }, if node.is_some() => {
            // The node only returns early when it cannot run: so does the server.
            let _ = stop.send(true);
            let _ = stop_api.send(true);
            result.context("node task")?.context("running the node")?;
            return Ok(());
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    if let Some(node) = node.take() {
        match node.await {
            Ok(Err(err)) => tracing::error!("node: {err:#}"),
            Err(err) => tracing::error!(%err, "node task"),
            Ok(Ok(())) => {}
        }
    }
    for component in components {
        let _ = component.await;
    }
    if let Some(proxy) = proxy {
        let _ = proxy.await;
    }
    if let Some(dns) = dns {
        match dns.await {
            Ok(Err(err)) => tracing::error!("cluster DNS: {err:#}"),
            Err(err) => tracing::error!(%err, "cluster DNS task"),
            Ok(Ok(())) => {}
        }
    }
    let _ = stop_api.send(true);
    match tokio::time::timeout(Duration::from_secs(15), api).await {
        Ok(result) => result.context("API server task")??,
        Err(_) => tracing::warn!("the API server did not stop within 15 s"),
    }
    if let Some(compactor) = compactor {
        compactor.await.context("compaction task")?;
    }
    Ok(())
}

/// Resolves once `stop` turns true.
pub(crate) fn stopping(
    stop: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

/// A kube-rs client for a component from its kubeconfig (`capstan scheduler --kubeconfig`).
pub async fn client(kubeconfig: &str) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).context("parsing a component kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("configuring a component client")?;
    Ok(kube::Client::try_from(config)?)
}

/// Creates a state directory, readable by its owner only.
fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
