//! End-to-end harness: the real `capstan` binary, driven by the real
//! `kubectl`, on a temporary data dir and a free loopback port.
//!
//! Each test gets its own server. It is stopped with SIGTERM (by PID) and
//! its data dir removed when the [`Cluster`] is dropped, also when the test
//! panics. [`Cluster::start`] runs a control plane only (`--disable-agent`);
//! [`Cluster::start_node`] runs the real node too (containerd and the
//! kubelet), one at a time on the machine, with test images built from
//! /bin/busybox, and on drop removes everything it started
//! (`capstan killall`) and checks that nothing is left.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub mod multinode;

pub struct Cluster {
    child: Child,
    dir: TempDir,
    pub port: u16,
    /// The server's flags after the data dir and port, to restart it.
    args: Vec<String>,
    /// Set when the server runs a real node.
    pub node: Option<Node>,
}

/// The real node of a [`Cluster`]: what it is called and what it owns.
pub struct Node {
    pub name: String,
    pub kubelet_port: u16,
    pub cgroup_root: String,
    pub bridge: String,
    /// The machine-wide lock, held until the node is cleaned up.
    _lock: std::fs::File,
}

/// Only one real node runs on the machine at a time, across test binaries
/// and helpers: they share the pod range, iptables chains and the host's ports.
const NODE_LOCK: &str = "/var/tmp/capstan-e2e-node.lock";

/// Takes the machine-wide real-node lock ([`NODE_LOCK`]), waiting for it;
/// held until the returned file is dropped. (flock is per open file: one
/// process must not take it twice.)
pub fn node_lock() -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(NODE_LOCK)
        .expect("open the node lock");
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on an open file descriptor we own.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {NODE_LOCK}");
    lock
}

/// The busybox test image every e2e pod runs: `httpd`, `sh`, `wget` … A
/// tag other than `latest` keeps the pull policy at IfNotPresent, so
/// nothing is ever pulled from the internet.
pub const BUSYBOX: &str = "capstan-e2e/busybox:1";

impl Cluster {
    /// Starts `capstan server` without a node (`--disable-agent`) and waits
    /// until `/readyz` passes.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra server flags.
    pub fn start_with(extra_args: &[&str]) -> Cluster {
        let mut args = vec!["--disable-agent".to_string()];
        args.extend(server_args(extra_args, Reach::Loopback));
        let dir = tempdir();
        let child = spawn_server(&dir, 0, &args);
        let cluster = Cluster {
            child: child.0,
            dir,
            port: child.1,
            args,
            node: None,
        };
        cluster.wait_ready();
        cluster
    }

    /// Starts `capstan server` with its real node and waits until the node
    /// is Ready.
    pub fn start_node() -> Cluster {
        Self::start_node_with(&[])
    }

    /// [`start_node`](Self::start_node) with extra server flags.
    pub fn start_node_with(extra_args: &[&str]) -> Cluster {
        let dir = tempdir();
        let node = Node::prepare("e2e-node", &dir.path().join("data"));
        let mut args = node.flags();
        args.extend(server_args(extra_args, Reach::Pods));
        let (child, port) = spawn_server(&dir, 0, &args);
        let cluster = Cluster {
            child,
            dir,
            port,
            args,
            node: Some(node),
        };
        cluster.wait_ready();
        cluster.wait_node_ready(Duration::from_secs(60));
        cluster
    }

    /// Joins a real node to this cluster: `capstan agent --server URL
    /// --kubeconfig FILE` on a data dir of its own; waits until it is Ready.
    pub fn join_agent(&self, name: &str) -> AgentNode {
        let data_dir = self.dir.path().join(format!("agent-{name}"));
        let node = Node::prepare(name, &data_dir);
        let log = self.dir.path().join(format!("agent-{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("agent")
            .args(["--server", &format!("https://127.0.0.1:{}", self.port)])
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(node.flags())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start capstan agent");
        let agent = AgentNode {
            child,
            node: Some(node),
            data_dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.kubectl(&[
                "get",
                "node",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout) == "True" {
                return agent;
            }
            assert!(
                Instant::now() < deadline,
                "agent node {name} not Ready; log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The real node's name.
    pub fn node_name(&self) -> &str {
        &self.node.as_ref().expect("a cluster with a node").name
    }

    /// Stops the server (SIGTERM, as a service manager would) and starts it
    /// again on the same data dir and port; pods keep running meanwhile.
    pub fn restart(&mut self) {
        self.stop_server();
        let (child, _) = spawn_server(&self.dir, self.port, &self.args);
        self.child = child;
        self.wait_ready();
        if self.node.is_some() {
            self.wait_node_ready(Duration::from_secs(60));
        }
    }

    /// Waits until the node reports Ready.
    pub fn wait_node_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let name = self.node_name().to_string();
        while Instant::now() < deadline {
            let out = self.kubectl(&[
                "get",
                "node",
                &name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout) == "True" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {name} not Ready within {timeout:?}; log:\n{}", self.log());
    }

    /// SIGTERM by PID; SIGKILL if it does not stop within 20 s.
    fn stop_server(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `capstan image import` of a tarball into this cluster's node.
    pub fn import_image(&self, tarball: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["image", "import"])
            .arg(tarball)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .expect("run capstan image import");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.kubeconfig().exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("capstan server not ready within 30 s; log:\n{}", self.log());
    }

    /// A kube-rs client with the admin identity.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// A kubeconfig for this cluster that authenticates with `token` only.
    pub fn kubeconfig_with_token(&self, token: &str) -> PathBuf {
        let ca = self.ok(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ]);
        let path = self.data_dir().join(format!("token-{}.kubeconfig", token.len()));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: {token}}}\n",
            self.port
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Runs kubectl with another kubeconfig.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("kubectl must be installed (see the Makefile)")
    }

    /// Runs kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl must be installed (see the Makefile)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_success(args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with stdin that must succeed; returns its stdout.
    pub fn ok_in(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_in(args, Some(stdin));
        assert_success(args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl printed JSON")
    }
}

fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGTERM first: the server shuts down cleanly; SIGKILL if it hangs.
        self.stop_server();
        if let Some(node) = self.node.take() {
            let leftovers = node.clean_up(&self.data_dir());
            if !leftovers.is_empty() {
                let message = format!("the node left things behind: {leftovers:?}");
                if std::thread::panicking() {
                    eprintln!("{message}");
                } else {
                    panic!("{message}");
                }
            }
        }
    }
}

impl Node {
    /// Takes the machine-wide node lock (waiting for it), picks names and
    /// ports of the node's own and writes the test images into its data dir.
    fn prepare(name: &str, data_dir: &Path) -> Node {
        let lock = node_lock();
        build_test_images(&data_dir.join("agent/images"));
        // Names of our own, so that what is left is ours to find.
        let id = format!("{:08x}", std::process::id() ^ rand_u32());
        Node {
            name: name.into(),
            kubelet_port: free_port(),
            cgroup_root: format!("/capstan-e2e-{id}"),
            bridge: format!("ce{}", &id[..8]),
            _lock: lock,
        }
    }

    /// The node flags of `capstan server` and `capstan agent`.
    fn flags(&self) -> Vec<String> {
        [
            "--node-name",
            &self.name,
            "--kubelet-port",
            &self.kubelet_port.to_string(),
            "--cgroup-root",
            &self.cgroup_root,
            "--cni-bridge",
            &self.bridge,
            // The test machines' disks are shared and often nearly full.
            "--eviction-hard",
            "memory.available<1Mi,nodefs.available<1%",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    /// `capstan killall` for the node's data dir, then a check that none
    /// of its processes, mounts, cgroups or its bridge are left.
    fn clean_up(&self, data_dir: &Path) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("killall")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--cgroup-root", &self.cgroup_root, "--cni-bridge", &self.bridge])
            .output()
            .expect("run capstan killall");
        let mut left = Vec::new();
        if !out.status.success() {
            left.push(format!("killall failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        left.extend(node_state_left(data_dir, &self.cgroup_root));
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            left.push(format!("bridge {}", self.bridge));
        }
        left
    }
}

/// Who must reach a test server's API and DNS.
#[derive(Clone, Copy)]
enum Reach {
    /// The test process only.
    Loopback,
    /// Also pods (through the `kubernetes` and `kube-dns` Services): the node's address.
    Pods,
}

/// The test's flags, plus a DNS port of the server's own (servers run side
/// by side), a dead DNS upstream and the address the API listens on,
/// unless the test chose them.
fn server_args(extra_args: &[&str], reach: Reach) -> Vec<String> {
    let mut args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
    let given = |flags: &[&str]| args.iter().any(|a| flags.contains(&a.as_str()));
    let address = match reach {
        Reach::Loopback => "127.0.0.1",
        Reach::Pods => "0.0.0.0",
    };
    let mut defaults = Vec::new();
    if !given(&["--dns-listen", "--disable-dns"]) {
        defaults.extend(["--dns-listen".to_string(), format!("{address}:0")]);
    }
    if !given(&["--bind-address"]) {
        defaults.extend(["--bind-address".to_string(), address.to_string()]);
    }
    // Tests never resolve names outside the cluster: an upstream nobody answers on.
    if !given(&["--dns-upstream", "--disable-dns"]) {
        defaults.extend(["--dns-upstream".to_string(), format!("127.0.0.1:{}", free_port())]);
    }
    args.extend(defaults);
    args
}

/// A real node run by `capstan agent` (see [`Cluster::join_agent`]);
/// stopped by PID and cleaned up (then checked) when dropped.
pub struct AgentNode {
    child: Child,
    node: Option<Node>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl AgentNode {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentNode {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
        if let Some(node) = self.node.take() {
            let left = node.clean_up(&self.data_dir);
            if !left.is_empty() {
                let message = format!("the agent node left things behind: {left:?}");
                if std::thread::panicking() {
                    eprintln!("{message}");
                } else {
                    panic!("{message}");
                }
            }
        }
    }
}

/// Processes, mounts and cgroups a node on `data_dir` with `cgroup_root` left on the host.
pub fn node_state_left(data_dir: &Path, cgroup_root: &str) -> Vec<String> {
    let data = data_dir.display().to_string();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&data) && !cmdline.contains("killall") {
            left.push(format!("process {}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&data))
            .map(|l| format!("mount: {l}")),
    );
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let dir = hierarchy.path().join(cgroup_root.trim_start_matches('/'));
        if dir.exists() {
            left.push(format!("cgroup: {}", dir.display()));
        }
    }
    left
}

/// One `GET /` over HTTP/1.0; the body, trimmed.
pub fn http_get(address: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

/// Retries [`http_get`] until it answers (the proxy's rules follow the API within a second or so).
pub fn http_get_eventually(address: std::net::SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(address) {
            Ok(body) if !body.is_empty() => return body,
            other if Instant::now() > deadline => panic!("{address}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("capstan-e2e-")
        .tempdir()
        .expect("tempdir")
}

/// Starts `capstan server` on `dir` (on `port`, or a free one if 0);
/// its log is appended to `<dir>/server.log`.
fn spawn_server(dir: &TempDir, port: u16, args: &[String]) -> (Child, u16) {
    let port = if port == 0 { free_port() } else { port };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("server.log"))
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--https-listen-port", &port.to_string()])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start capstan server");
    (child, port)
}

/// Writes the test images (see [`BUSYBOX`]) as docker archives, which the
/// node imports at start.
fn build_test_images(dir: &Path) {
    std::fs::create_dir_all(dir).expect("images dir");
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
    let image = capstan_containerd::archive::busybox(
        &format!("docker.io/{BUSYBOX}"),
        busybox,
        capstan_containerd::archive::BUSYBOX_APPLETS,
    );
    image
        .write_to(&dir.join("busybox.tar"))
        .expect("write the busybox image");
}

/// An image with the host's `curl` (and the shared libraries it loads) on
/// top of busybox: pods that need TLS, which busybox lacks. Written to
/// `path` for `capstan image import`.
pub fn write_curl_image(name: &str, path: &Path) {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
    let mut image = capstan_containerd::archive::busybox(name, busybox, capstan_containerd::archive::BUSYBOX_APPLETS);
    let ldd = Command::new("ldd").arg("/usr/bin/curl").output().expect("ldd");
    let libraries = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(str::to_string)
        })
        .collect::<Vec<_>>();
    for file in libraries.iter().map(String::as_str).chain(["/usr/bin/curl"]) {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        image = image.file(file.trim_start_matches('/'), bytes, 0o755);
    }
    image = image.env("LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64");
    image.write_to(path).expect("write the curl image");
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    u32::from_ne_bytes(bytes)
}

/// Hollow nodes: a `capstan agent --simulate N` child process against a
/// [`Cluster`]. Stopped with SIGTERM (by PID) when dropped; [`kill`](Self::kill)
/// stops it abruptly, so its leases stop being renewed.
pub struct HollowNodes {
    child: Child,
    log: PathBuf,
    pub prefix: String,
    pub count: usize,
}

impl Cluster {
    /// Starts `n` hollow nodes (`hollow-0` …) and waits until they are Ready.
    pub fn simulate(&self, n: usize) -> HollowNodes {
        self.simulate_with(&["--simulate", &n.to_string()])
    }

    /// Starts `capstan agent` with `args` (which must include `--simulate N`)
    /// and waits until its N nodes are Ready.
    pub fn simulate_with(&self, args: &[&str]) -> HollowNodes {
        let flag = |name: &str| args.iter().position(|a| *a == name).and_then(|i| args.get(i + 1));
        let count: usize = flag("--simulate")
            .and_then(|n| n.parse().ok())
            .expect("simulate_with needs --simulate N");
        let prefix = flag("--simulate-prefix").copied().unwrap_or("hollow").to_string();
        let log = self.dir.path().join(format!("agent-{prefix}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("agent")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log file"))
            .spawn()
            .expect("start capstan agent");
        let mut nodes = HollowNodes {
            child,
            log,
            prefix,
            count,
        };
        nodes.wait_ready(self);
        nodes
    }
}

impl HollowNodes {
    /// The node names, `<prefix>-0` … `<prefix>-(N-1)`.
    pub fn names(&self) -> Vec<String> {
        (0..self.count).map(|i| format!("{}-{i}", self.prefix)).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the agent at once (SIGKILL): nothing is renewed or cleaned up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self, cluster: &Cluster) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("capstan agent exited ({status}); log:\n{}", self.log());
            }
            let out = cluster.kubectl(&["get", "nodes", "-o", "json"]);
            if out.status.success() {
                let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
                let ready = nodes["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|n| {
                        let name = n["metadata"]["name"].as_str().unwrap_or("");
                        name.strip_prefix(&format!("{}-", self.prefix))
                            .is_some_and(|i| i.parse::<usize>().is_ok_and(|i| i < self.count))
                            && n["status"]["conditions"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                    .count();
                if ready == self.count {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} hollow nodes not Ready within 60 s; log:\n{}",
            self.count,
            self.log()
        );
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// Stops a child process by its PID: SIGTERM (a clean shutdown), SIGKILL
/// if it has not exited within `grace`. Whether it stopped on SIGTERM.
pub fn stop_child(child: &mut Child, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    // SAFETY: kill(2) on the PID of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}

/// Polls `kubectl get pod <name>` until `done` holds; returns that pod.
pub fn wait_pod(c: &Cluster, name: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let out = c.kubectl(&["get", "pod", name, "-o", "json"]);
        if out.status.success() {
            last = serde_json::from_slice(&out.stdout).expect("pod JSON");
            if done(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "pod {name} did not get there within {timeout:?}; last:\n{}\nlog tail:\n{}",
        serde_json::to_string_pretty(&last["status"]).unwrap_or_default(),
        tail(&c.log(), 40)
    );
}

/// Waits until pod `name` has an Event with `reason` and `message`
/// (Events are posted off the pod's critical path).
pub fn wait_event(c: &Cluster, name: &str, reason: &str, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let selector = format!("involvedObject.name={name}");
    loop {
        let events = c.get_json(&["get", "events", "--field-selector", &selector]);
        let found = events["items"].as_array().into_iter().flatten().any(|e| {
            let note = e["message"].as_str().or(e["note"].as_str()).unwrap_or("");
            e["reason"] == reason && note == message
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event {message:?} for {name}: {events}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
