//! `capstan`: a Kubernetes distribution in one binary.
//!
//! Each subcommand runs one part of the Kubernetes architecture, or all of
//! the control plane and a node together (`server`; with `--disable-*` flags
//! only some of it, e.g. only the API server). `agent` is a node: the kubelet
//! and the service proxy. The parts live in their own crates; this binary
//! only parses flags and wires them up. Subcommands whose part is not built
//! yet say so and exit non-zero rather than pretend.

mod agent;
mod component;
mod dns;
mod image;
mod killall;
mod kubeconfig;
mod proxy;
mod server;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "capstan", version, about = "A Kubernetes distribution in one binary", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane and a node (unless --disable-agent) on this machine.
    Server(Box<server::ServerArgs>),
    /// Run a node (kubelet on containerd) joined to a server, or N hollow nodes (--simulate N).
    Agent(agent::AgentArgs),
    /// Run only the scheduler, against a server's API.
    Scheduler(component::ComponentArgs),
    /// Run only the controller manager, against a server's API.
    ControllerManager(component::ComponentArgs),
    /// Run only the service proxy (kube-proxy's nftables mode), against a server's API.
    ///
    /// Watches Services and EndpointSlices and programs ClusterIPs, NodePorts, external and
    /// LoadBalancer IPs into the nftables table `capstan-proxy`; routes the service CIDR to the
    /// sink device `capstan-svc` so service addresses never leave the machine. Needs root
    /// (CAP_NET_ADMIN). Runs until SIGTERM or Ctrl-C, then removes its table and route.
    Proxy(proxy::ProxyArgs),
    /// Create and list node join tokens.
    Token,
    /// Print the admin kubeconfig.
    Kubeconfig(KubeconfigArgs),
    /// Import and list container images.
    Image(image::ImageArgs),
    /// Stop and remove everything a node on this data dir started.
    Killall(killall::KillallArgs),
}

impl Command {
    /// Why a subcommand cannot run yet: its part is not built.
    fn not_built_yet(&self) -> Option<String> {
        let (name, part) = match self {
            Command::Server(_)
            | Command::Agent(_)
            | Command::Kubeconfig(_)
            | Command::Scheduler(_)
            | Command::ControllerManager(_)
            | Command::Killall(_)
            | Command::Proxy(_)
            | Command::Image(_) => {
                return None;
            }
            Command::Token => ("token", "node join with a token (roadmap)"),
        };
        Some(format!("capstan {name}: not built yet; it arrives with {part}"))
    }
}

#[derive(clap::Args)]
struct KubeconfigArgs {
    /// The data dir of the server whose admin kubeconfig to print.
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR")]
    data_dir: std::path::PathBuf,
}

impl KubeconfigArgs {
    /// Prints `<data-dir>/admin.kubeconfig`, which the server writes at start.
    fn run(self) -> anyhow::Result<()> {
        use anyhow::Context;
        let path = self.data_dir.join("admin.kubeconfig");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (has `capstan server` run with this --data-dir?)",
                path.display()
            )
        })?;
        print!("{text}");
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(message) = cli.command.not_built_yet() {
        eprintln!("{message}");
        return std::process::ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Kubeconfig(args) => args.run(),
        Command::Killall(args) => args.run(),
        Command::Image(args) => args.run(),
        Command::Agent(args) => args.run(),
        Command::Scheduler(args) => args.run(component::Component::Scheduler),
        Command::ControllerManager(args) => args.run(component::Component::ControllerManager),
        Command::Proxy(args) => args.run(),
        _ => unreachable!("handled above"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("capstan: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
