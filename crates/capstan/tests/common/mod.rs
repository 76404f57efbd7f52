//! End-to-end harness: the real `capstan` binary, driven by the real
//! `kubectl`, on a temporary data dir and a free loopback port.
//!
//! Each test gets its own server. It is stopped with SIGTERM (by PID) and
//! its data dir removed when the [`Cluster`] is dropped, also when the test
//! panics.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Cluster {
    child: Child,
    dir: TempDir,
    pub port: u16,
    args: Vec<String>,
}

impl Cluster {
    /// Starts `capstan server` and waits until `/readyz` passes.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("capstan-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let child = spawn_server(dir.path(), port, &args);
        let cluster = Cluster { child, dir, port, args };
        cluster.wait_ready();
        cluster
    }

    /// Stops the server (SIGTERM, by PID) and starts it again on the same
    /// data dir, port and flags.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_server(self.dir.path(), self.port, &self.args);
        self.wait_ready();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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

/// `capstan server` on `dir`, logging to `dir/server.log` (appended, so a
/// restart keeps the earlier log).
fn spawn_server(dir: &Path, port: u16, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--https-listen-port", &port.to_string(), "--bind-address", "127.0.0.1"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start capstan server")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Cluster {
    fn stop(&mut self) {
        // SIGTERM first: the server shuts down cleanly; SIGKILL if it hangs.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
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
