//! Several real nodes on one machine: a control plane on the host
//! (`capstan server --disable-agent`) and N `capstan agent`s, each in a
//! network namespace of its own joined to a test bridge on the host by a
//! veth pair — a small LAN, as host-gw needs (one link, no default route).
//!
//! Agents run under `nsenter --net` (not `ip netns exec`, which remounts
//! /sys and hides the cgroup2 mount). The server listens on every address
//! and advertises the bridge address, where it also answers cluster DNS:
//! the agents, their pods (masqueraded as their node: the host blackholes
//! the cluster CIDR) and the `kubernetes` and `kube-dns` Services reach it there.
//!
//! On drop, also after a failure: agents are stopped by PID (SIGTERM, which
//! must remove their routes and rules), `capstan killall` runs inside each
//! namespace, then namespaces, veths, the bridge and the host's safety
//! blackhole go; whatever is left is reported.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Cluster, build_test_images, free_port, node_lock, rand_u32, stop_child};

/// The pod range of the test cluster (`--cluster-cidr` of server and agents).
pub const CLUSTER_CIDR: &str = "10.98.0.0/16";

/// The route protocol capstan tags its host-gw routes with.
const ROUTE_PROTOCOL: &str = "162";

/// A server and its agents on a test LAN (see the module docs).
pub struct Multinode {
    pub cluster: Cluster,
    pub lan: Lan,
    pub agents: Vec<NetnsAgent>,
    /// The machine-wide node lock, released last.
    _lock: std::fs::File,
}

/// The test LAN: a bridge on the host with `<prefix>.1/24`, node `i` at
/// `<prefix>.(i+2)` in namespace `netns(i)`.
pub struct Lan {
    id: String,
    /// `10.99.N`: the first three octets of the /24.
    pub prefix: String,
    count: usize,
}

/// A `capstan agent` in a network namespace.
pub struct NetnsAgent {
    pub name: String,
    pub ip: String,
    pub netns: String,
    pub data_dir: PathBuf,
    cgroup_root: String,
    bridge: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Multinode {
    /// Takes the node lock, starts the server, the LAN and `count` agents,
    /// and waits until every agent's node is Ready.
    pub fn start(count: usize) -> Multinode {
        let lock = node_lock();
        let id = format!("{:06x}", (std::process::id() ^ rand_u32()) & 0xff_ffff);
        let lan = Lan {
            prefix: free_subnet(),
            id,
            count,
        };
        let gateway = lan.gateway();
        lan.create();
        let started = std::panic::catch_unwind(|| {
            Cluster::start_with(&[
                "--cluster-cidr",
                CLUSTER_CIDR,
                "--bind-address",
                "0.0.0.0",
                "--tls-san",
                &gateway,
                "--advertise-address",
                &gateway,
                "--dns-listen",
                &format!("{gateway}:0"),
            ])
        });
        let cluster = started.unwrap_or_else(|panic| {
            lan.remove();
            std::panic::resume_unwind(panic)
        });
        let server = format!("https://{gateway}:{}", cluster.port);
        let mut nodes = Multinode {
            cluster,
            lan,
            agents: Vec::new(),
            _lock: lock,
        };
        for i in 0..count {
            let agent = nodes.spawn_agent(i, &server);
            nodes.agents.push(agent);
        }
        for agent in &nodes.agents {
            agent.wait_ready(&nodes.cluster);
        }
        nodes
    }

    fn spawn_agent(&self, index: usize, server: &str) -> NetnsAgent {
        let name = format!("mn-{}", (b'a' + index as u8) as char);
        let data_dir = self.cluster.dir.path().join(format!("agent-{name}"));
        build_test_images(&data_dir.join("agent/images"));
        let log = self.cluster.dir.path().join(format!("agent-{name}.log"));
        let agent = NetnsAgent {
            ip: self.lan.address(index),
            netns: self.lan.netns(index),
            cgroup_root: format!("/capstan-e2e-{}-{index}", self.lan.id),
            bridge: format!("cn{}{index}", self.lan.id),
            child: None,
            name,
            data_dir,
            log,
        };
        let child = agent
            .nsenter(env!("CARGO_BIN_EXE_capstan"))
            .arg("agent")
            .args(["--server", server])
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .arg("--data-dir")
            .arg(&agent.data_dir)
            .args(["--cluster-cidr", CLUSTER_CIDR])
            .args(["--node-name", &agent.name, "--node-ip", &agent.ip])
            .args(["--kubelet-port", &free_port().to_string()])
            .args(["--cgroup-root", &agent.cgroup_root, "--cni-bridge", &agent.bridge])
            .args(["--eviction-hard", "memory.available<1Mi,nodefs.available<1%"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent.log).expect("agent log"))
            .spawn()
            .expect("start capstan agent under nsenter");
        NetnsAgent {
            child: Some(child),
            ..agent
        }
    }

    /// Stops and cleans up every agent, then the LAN; what is left.
    fn clean_up(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        for agent in &mut self.agents {
            left.extend(agent.clean_up());
        }
        left.extend(self.lan.remove());
        left
    }
}

impl Drop for Multinode {
    fn drop(&mut self) {
        let left = self.clean_up();
        if !left.is_empty() {
            let message = format!("the multi-node test left things behind: {left:#?}");
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}

impl Lan {
    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn address(&self, index: usize) -> String {
        format!("{}.{}", self.prefix, index + 2)
    }

    pub fn netns(&self, index: usize) -> String {
        format!("cmn-{}-{index}", self.id)
    }

    fn bridge(&self) -> String {
        format!("cmb{}", self.id)
    }

    fn veth(&self, index: usize) -> String {
        format!("cmv{}{index}", self.id)
    }

    /// The bridge, and per node a namespace with `eth0` (its address, no
    /// default route) whose peer is a port of the bridge. The host gets a
    /// blackhole for the cluster CIDR so that no pod address could leave
    /// the machine even if the nodes' masquerading failed.
    fn create(&self) {
        let bridge = self.bridge();
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&["ip", "addr", "add", &format!("{}/24", self.gateway()), "dev", &bridge]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        sh(&["ip", "route", "add", "blackhole", CLUSTER_CIDR]);
        for i in 0..self.count {
            let (netns, veth) = (self.netns(i), self.veth(i));
            sh(&["ip", "netns", "add", &netns]);
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ]);
            sh(&["ip", "link", "set", &veth, "master", &bridge, "up"]);
            sh(&[
                "ip",
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{}/24", self.address(i)),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &netns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
        }
    }

    /// Deletes the namespaces (their links and routes go with them), the
    /// veths, the bridge and the blackhole; then checks none is left.
    fn remove(&self) -> Vec<String> {
        for i in 0..self.count {
            quiet(&["ip", "netns", "del", &self.netns(i)]);
            quiet(&["ip", "link", "del", &self.veth(i)]);
        }
        quiet(&["ip", "link", "del", &self.bridge()]);
        quiet(&["ip", "route", "del", "blackhole", CLUSTER_CIDR]);
        let mut left = Vec::new();
        for i in 0..self.count {
            if std::path::Path::new("/var/run/netns").join(self.netns(i)).exists() {
                left.push(format!("netns {}", self.netns(i)));
            }
            if quiet(&["ip", "link", "show", "dev", &self.veth(i)]) {
                left.push(format!("link {}", self.veth(i)));
            }
        }
        if quiet(&["ip", "link", "show", "dev", &self.bridge()]) {
            left.push(format!("bridge {}", self.bridge()));
        }
        let routes = output(&["ip", "-4", "route", "show", "table", "all"]);
        left.extend(
            routes
                .lines()
                .filter(|l| l.contains(&format!("{}.", self.prefix)) || l.contains(CLUSTER_CIDR))
                .map(|l| format!("host route: {l}")),
        );
        left
    }
}

impl NetnsAgent {
    /// A command run in the agent's network namespace.
    pub fn nsenter(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/var/run/netns/{}", self.netns)).arg(program);
        command
    }

    /// Output of `ip ARGS` inside the agent's namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut command = vec!["ip", "-n", &self.netns];
        command.extend(args);
        output(&command)
    }

    /// The host-gw routes in the agent's namespace (`ip route show proto 162`).
    pub fn routes(&self) -> String {
        self.ip(&["-4", "route", "show", "proto", ROUTE_PROTOCOL])
    }

    /// `nft list ruleset` inside the agent's namespace.
    pub fn ruleset(&self) -> String {
        let out = self.nsenter("nft").args(["list", "ruleset"]).output().expect("run nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&self, cluster: &Cluster) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        loop {
            let out = cluster.kubectl(&["get", "node", &self.name, "-o", jsonpath]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout) == "True" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} not Ready; log:\n{}",
                self.name,
                super::tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM (a clean shutdown must take our routes and tables with it),
    /// `capstan killall` in the namespace, then a look for anything left.
    fn clean_up(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(mut child) = self.child.take() {
            match stop_child(&mut child, Duration::from_secs(20)) {
                true => left.extend(self.networking_left("after a clean shutdown")),
                false => left.push(format!("{} did not stop within 20 s of SIGTERM", self.name)),
            }
        }
        if let Err(err) = self.killall() {
            left.push(err);
        }
        left.extend(self.networking_left("after killall"));
        if quiet(&["ip", "-n", &self.netns, "link", "show", "dev", &self.bridge]) {
            left.push(format!("{}: CNI bridge {}", self.netns, self.bridge));
        }
        left.extend(self.host_state_left());
        left
    }

    /// Stops the agent at once (SIGKILL): it cannot remove anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `capstan killall` for this node, inside its namespace.
    pub fn killall(&self) -> Result<(), String> {
        let out = self
            .nsenter(env!("CARGO_BIN_EXE_capstan"))
            .arg("killall")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--cgroup-root", &self.cgroup_root, "--cni-bridge", &self.bridge])
            .output()
            .expect("run capstan killall");
        match out.status.success() {
            true => Ok(()),
            false => Err(format!("killall failed: {}", String::from_utf8_lossy(&out.stderr))),
        }
    }

    /// Our routes and nftables tables still in the namespace.
    pub fn networking_left(&self, when: &str) -> Vec<String> {
        let mut left: Vec<String> = self
            .routes()
            .lines()
            .map(|l| format!("{} {when}: route {l}", self.netns))
            .collect();
        let ruleset = self.ruleset();
        for table in ["table ip capstan-node", "table ip capstan-proxy"] {
            if ruleset.contains(table) {
                left.push(format!("{} {when}: {table}", self.netns));
            }
        }
        left
    }

    /// Processes, mounts and cgroups of this node on the host.
    fn host_state_left(&self) -> Vec<String> {
        super::node_state_left(&self.data_dir, &self.cgroup_root)
    }
}

/// A /24 `10.99.N` that no address or route on the host touches.
fn free_subnet() -> String {
    let addresses = output(&["ip", "-4", "addr"]);
    let routes = output(&["ip", "-4", "route", "show", "table", "all"]);
    let start = rand_u32() as usize;
    (0..150)
        .map(|i| format!("10.99.{}", 100 + (start + i) % 150))
        .find(|prefix| !addresses.contains(&format!("{prefix}.")) && !routes.contains(&format!("{prefix}.")))
        .expect("a free 10.99.x.0/24")
}

/// Runs a command that must succeed.
fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command that may fail; true when it succeeded.
fn quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
