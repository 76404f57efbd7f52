//! `capstan server` with its real node: start-up to node Ready, pod
//! startup latency, and the server's memory with running pods.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use capstan_containerd::killall::{KillallOptions, killall};
use capstan_store::testing::free_port;
use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::floor::write_busybox;
use super::{IMAGE, latency_of};
use crate::api::server::{client, stop_child};
use crate::stats::{Latency, round3};

/// The lock the end-to-end tests hold while a real node runs.
const NODE_LOCK: &str = "/var/tmp/capstan-e2e-node.lock";
const BRIDGE: &str = "cap-bench1";
const CGROUP_ROOT: &str = "/capstan-bench";
const CLUSTER_CIDR: &str = "10.199.64.0/20";
const LABEL: &str = "capstan-bench=pods";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const POD_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Serialize)]
pub struct NodeResults {
    pub pods: usize,
    pub rss_pods: usize,
    /// `capstan server` spawn → node Ready, fresh data dir (pause and
    /// busybox images imported during start).
    pub node_ready_fresh_secs: Option<f64>,
    /// The same on a restart: images present.
    pub node_ready_restart_secs: Option<f64>,
    /// The first pod after the restart, create → Running (not counted below:
    /// it also waits for the scheduler to win its leader lease).
    pub first_pod_after_restart_ms: Option<f64>,
    /// Create → Running seen by a watch, one pod after another.
    pub sequential: Option<Latency>,
    /// The same with every pod created at once.
    pub concurrent: Option<Latency>,
    /// `capstan server` VmRSS with `rss_pods` pods running, MiB.
    pub server_rss_mib: Option<f64>,
    /// Every pod's create → Running, ms, in creation order (outliers show
    /// where they happen).
    pub sequential_ms: Vec<f64>,
    pub concurrent_ms: Vec<f64>,
}

/// A running `capstan server` with a node, under the machine-wide node
/// lock; dropping it stops the server and removes everything the node
/// started (killall), then the data dir.
struct NodeServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    _lock: File,
    dir: tempfile::TempDir,
}

impl NodeServer {
    async fn new(binary: &Path, data_root: &Path) -> Result<NodeServer> {
        let lock = File::create(NODE_LOCK).with_context(|| format!("opening {NODE_LOCK}"))?;
        let fd = lock.as_raw_fd();
        eprintln!("[node] waiting for the machine-wide node lock {NODE_LOCK}");
        // SAFETY: flock on a descriptor we own; blocking, so off the async threads.
        let locked = tokio::task::spawn_blocking(move || unsafe { libc::flock(fd, libc::LOCK_EX) }).await?;
        if locked != 0 {
            bail!("flock {NODE_LOCK}: {}", std::io::Error::last_os_error());
        }
        let dir = tempfile::Builder::new()
            .prefix("capstan-bench-pods-")
            .tempdir_in(data_root)?;
        write_busybox(&dir.path().join("data/agent/images"))?;
        Ok(NodeServer {
            binary: binary.to_path_buf(),
            child: None,
            port: free_port()?,
            _lock: lock,
            dir,
        })
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self, kubelet_port: u16) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args([
                "--https-listen-port",
                &self.port.to_string(),
                "--bind-address",
                "127.0.0.1",
            ])
            .args(["--kubelet-port", &kubelet_port.to_string(), "--cni-bridge", BRIDGE])
            .args(["--cgroup-root", CGROUP_ROOT, "--cluster-cidr", CLUSTER_CIDR])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "capstan server", Duration::from_secs(30));
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Copies the server's log next to the JSON report's directory for a
    /// look at outliers (the data dir itself is removed).
    fn keep_log(&self, to: &Path) {
        let _ = std::fs::copy(self.dir.path().join("server.log"), to);
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the node is Ready with a lease renewed after `since`;
    /// returns a client and the node's name.
    async fn wait_node_ready(&mut self, since: SystemTime) -> Result<(kube::Client, String)> {
        let since = Timestamp::try_from(since)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let kubeconfig = self.data_dir().join("admin.kubeconfig");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("capstan server exited ({status}); log:\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("node not Ready within {READY_TIMEOUT:?}; log:\n{}", self.log_tail());
            }
            if kubeconfig.is_file()
                && let Ok(client) = client(&kubeconfig).await
                && let Some(name) = ready_node(&client, since).await
            {
                return Ok((client, name));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.stop();
        let options = KillallOptions {
            data_dir: self.data_dir(),
            cgroup_root: CGROUP_ROOT.into(),
            cni_bridge: BRIDGE.into(),
        };
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(killall(&options)).map_err(anyhow::Error::from)
        })
        .join();
        if !matches!(cleaned, Ok(Ok(_))) {
            eprintln!("[node] killall after the benchmark failed: {cleaned:?}");
        }
    }
}

/// The name of a node that is Ready and whose lease was renewed after `since`.
async fn ready_node(client: &kube::Client, since: Timestamp) -> Option<String> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .ok()?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for node in nodes {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let renewed = leases
            .get_opt(&node.name_any())
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.renew_time)
            .is_some_and(|t| t.0 > since);
        if ready && renewed {
            return Some(node.name_any());
        }
    }
    None
}

pub async fn measure(
    binary: &Path,
    data_root: &Path,
    pods: usize,
    rss_pods: usize,
    keep_log: Option<&Path>,
) -> Result<NodeResults> {
    let mut results = NodeResults {
        pods,
        rss_pods,
        ..Default::default()
    };
    let mut server = NodeServer::new(binary, data_root).await?;

    let kubelet_port = free_port()?;
    let spawned = (Instant::now(), SystemTime::now());
    server.spawn(kubelet_port)?;
    server.wait_node_ready(spawned.1).await?;
    results.node_ready_fresh_secs = Some(round3(spawned.0.elapsed().as_secs_f64()));
    eprintln!(
        "[node] fresh start → node Ready in {:.2} s",
        spawned.0.elapsed().as_secs_f64()
    );

    server.stop();
    let spawned = (Instant::now(), SystemTime::now());
    server.spawn(kubelet_port)?;
    let (client, node) = server.wait_node_ready(spawned.1).await?;
    results.node_ready_restart_secs = Some(round3(spawned.0.elapsed().as_secs_f64()));
    eprintln!(
        "[node] restart → node Ready in {:.2} s",
        spawned.0.elapsed().as_secs_f64()
    );

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut running = running_watch(pods_api.clone());

    let started = Instant::now();
    pods_api.create(&PostParams::default(), &pod("warm-up")).await?;
    let first = running.wait_for("warm-up").await? - started;
    results.first_pod_after_restart_ms = Some(round3(first.as_secs_f64() * 1000.0));
    eprintln!(
        "[pods] first pod after the restart Running in {:.0} ms",
        first.as_secs_f64() * 1000.0
    );
    delete(&pods_api, "warm-up").await?;
    wait_count(&pods_api, 0).await?;

    eprintln!("[pods] {pods} pods one after another on {node}");
    let mut samples = Vec::new();
    for i in 0..pods {
        let name = format!("seq-{i}");
        let started = Instant::now();
        pods_api.create(&PostParams::default(), &pod(&name)).await?;
        let seen = running.wait_for(&name).await?;
        samples.push(seen - started);
    }
    results.sequential = Some(latency_of(&samples));
    results.sequential_ms = millis(&samples);

    let rss_pods_now = (0..rss_pods).map(|i| format!("seq-{i}")).collect::<Vec<_>>();
    for i in pods..rss_pods {
        let name = format!("seq-{i}");
        pods_api.create(&PostParams::default(), &pod(&name)).await?;
        running.wait_for(&name).await?;
    }
    for i in rss_pods..pods {
        delete(&pods_api, &format!("seq-{i}")).await?;
    }
    wait_count(&pods_api, rss_pods_now.len()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    results.server_rss_mib = server.pid().and_then(vm_rss_mib);
    eprintln!(
        "[pods] server RSS with {rss_pods} pods: {:?} MiB",
        results.server_rss_mib
    );
    for name in rss_pods_now {
        delete(&pods_api, &name).await?;
    }
    wait_count(&pods_api, 0).await?;

    eprintln!("[pods] {pods} pods at once");
    let creates = (0..pods).map(|i| {
        let api = pods_api.clone();
        async move {
            let name = format!("burst-{i}");
            let started = Instant::now();
            api.create(&PostParams::default(), &pod(&name))
                .await
                .map(|_| (name, started))
        }
    });
    let created: Vec<(String, Instant)> = future::try_join_all(creates).await?;
    let mut samples = Vec::new();
    for (name, started) in &created {
        samples.push(running.wait_for(name).await? - *started);
    }
    results.concurrent = Some(latency_of(&samples));
    results.concurrent_ms = millis(&samples);
    for (name, _) in &created {
        delete(&pods_api, name).await?;
    }
    wait_count(&pods_api, 0).await?;
    if let Some(log) = keep_log {
        server.keep_log(log);
    }
    Ok(results)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "capstan-bench": "pods" } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"] }]
        }
    }))
    .expect("a valid pod")
}

async fn delete(api: &Api<Pod>, name: &str) -> Result<()> {
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// Waits until exactly `count` benchmark pods exist.
async fn wait_count(api: &Api<Pod>, count: usize) -> Result<()> {
    let deadline = Instant::now() + POD_TIMEOUT;
    while api.list(&ListParams::default().labels(LABEL)).await?.items.len() != count {
        if Instant::now() > deadline {
            bail!("benchmark pods did not reach {count} within {POD_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// When each benchmark pod was first seen `Running` by a watch.
struct RunningWatch {
    events: mpsc::UnboundedReceiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

fn running_watch(api: Api<Pod>) -> RunningWatch {
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default().labels(LABEL)).applied_objects();
        let mut stream = std::pin::pin!(stream.into_stream());
        while let Some(Ok(pod)) = stream.next().await {
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && tx.send((pod.name_any(), Instant::now())).is_err()
            {
                return;
            }
        }
    });
    RunningWatch {
        events,
        seen: HashMap::new(),
    }
}

impl RunningWatch {
    async fn wait_for(&mut self, name: &str) -> Result<Instant> {
        let deadline = tokio::time::Instant::now() + POD_TIMEOUT;
        loop {
            if let Some(at) = self.seen.get(name) {
                return Ok(*at);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((pod, at))) => {
                    self.seen.entry(pod).or_insert(at);
                }
                Ok(None) => bail!("the pod watch ended"),
                Err(_) => bail!("pod {name} not Running within {POD_TIMEOUT:?}"),
            }
        }
    }
}

fn millis(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| round3(d.as_secs_f64() * 1000.0)).collect()
}

/// A process's resident memory now (VmRSS), in MiB.
fn vm_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(round3(kib as f64 / 1024.0))
}
