//! The system under test: the real `capstan server` binary as a child
//! process, a kube-rs client for it, and what the benchmark watches about
//! the processes while it runs (CPU time, peak memory, file-descriptor
//! limits).
//!
//! The server runs on a fresh data dir and a free loopback port, with
//! `RUST_LOG=warn` so that logging costs nothing per request; its stderr goes
//! to `server.log` in the data dir, whose tail is quoted when it fails to
//! start. [`Server`] is a drop guard: however the benchmark ends, the server
//! gets SIGTERM by its PID (SIGKILL after 20 s) and its directory is removed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use capstan_store::testing::{EtcdServer, free_port};
use serde::Serialize;
use tempfile::TempDir;

use crate::stats;

/// How long the server may take from spawn to a passing `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds the `capstan` binary: `--capstan`, else the release build in
/// `$CARGO_TARGET_DIR`, else the one next to this benchmark's executable
/// (both are built into the same target directory).
pub fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--capstan {} is not a file", path.display());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/capstan"));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("capstan"));
    }
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        "no capstan binary found: build it with `cargo build --release -p capstan` \
         (same CARGO_TARGET_DIR as this benchmark) or pass --capstan PATH"
            .to_string()
    })
}

/// A running `capstan server`; dropping it stops the process and removes its data dir.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Declared after `child`: removed once the process is gone.
    dir: TempDir,
}

impl Server {
    /// Spawns `capstan server` (on SQLite inside its data dir, or on the
    /// etcd at `etcd_url`) and waits until `/readyz` passes. Returns the
    /// guard and an admin client.
    pub async fn start(binary: &Path, root: &Path, etcd_url: Option<&str>) -> Result<(Server, kube::Client)> {
        Self::start_with(binary, root, etcd_url, &[]).await
    }

    /// [`Server::start`] with extra `capstan server` flags (never a node:
    /// `--disable-agent` is always passed; DNS on loopback unless given).
    pub async fn start_with(
        binary: &Path,
        root: &Path,
        etcd_url: Option<&str>,
        extra_args: &[String],
    ) -> Result<(Server, kube::Client)> {
        let dir = tempfile::Builder::new()
            .prefix("capstan-bench-api-")
            .tempdir_in(root)
            .with_context(|| format!("creating a temporary directory in {}", root.display()))?;
        let port = free_port().context("finding a free port")?;
        let log = File::create(dir.path().join("server.log")).context("creating the server log")?;
        let mut command = Command::new(binary);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--https-listen-port", &port.to_string(), "--bind-address", "127.0.0.1"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = etcd_url {
            command.args(["--datastore-endpoint", url]);
        }
        // A control plane only: a node would run real containers (and try
        // to pull images for the benchmarks' pods) on this machine.
        command.arg("--disable-agent");
        if !extra_args
            .iter()
            .any(|a| a.starts_with("--dns-listen") || a == "--disable-dns")
        {
            command.args(["--dns-listen", "127.0.0.1:0"]);
        }
        command.args(extra_args);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {} server", binary.display()))?;
        let mut server = Server { child, port, dir };
        let client = server.wait_ready().await?;
        Ok((server, client))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/admin.kubeconfig")
    }

    /// The last `lines` lines of the server's stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn wait_ready(&mut self) -> Result<kube::Client> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error = String::from("admin.kubeconfig not written yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking on the server")? {
                bail!(
                    "capstan server exited with {status} before it was ready; log:\n{}",
                    self.log_tail(30)
                );
            }
            if self.kubeconfig().is_file() {
                match ready_client(&self.kubeconfig()).await {
                    Ok(client) => return Ok(client),
                    Err(err) => last_error = format!("{err:#}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "capstan server not ready within {} s ({last_error}); log:\n{}",
            READY_TIMEOUT.as_secs(),
            self.log_tail(30)
        )
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.pid())
    }

    /// The server's soft limit on open files, as the kernel reports it.
    pub fn fd_limit(&self) -> Option<u64> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_child(&mut self.child, "capstan server", STOP_TIMEOUT);
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it
/// dies, so a benchmark killed without running its destructors leaves no
/// server behind. (The spawning thread is an async worker or the main
/// thread, which live as long as the benchmark.)
pub fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Stops a child we spawned: SIGTERM (by PID), then SIGKILL if it is still
/// running after `timeout`.
pub fn stop_child(child: &mut std::process::Child, what: &str, timeout: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a PID we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{what} (pid {}) ignored SIGTERM for {timeout:?}; killing it",
        child.id()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A client from the admin kubeconfig, once `/readyz` answers `ok`.
async fn ready_client(kubeconfig: &Path) -> Result<kube::Client> {
    let client = client(kubeconfig).await?;
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .context("building the /readyz request")?;
    let body = client.request_text(request).await.context("GET /readyz")?;
    if body.trim() != "ok" {
        bail!("/readyz answered {body:?}");
    }
    Ok(client)
}

/// A kube-rs client from a kubeconfig file. Clones share one connection
/// pool; kube-rs speaks HTTP/1.1, so every request in flight holds its own
/// pooled TLS connection (kept alive and reused by the next request).
pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .context("configuring the client")?;
    kube::Client::try_from(config).context("building the client")
}

/// A throwaway etcd (the store crate's test helper), started off the async threads.
pub async fn start_etcd() -> Result<EtcdServer> {
    tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .map_err(stats::join_error)?
        .context("starting a throwaway etcd (is etcd on the PATH, or $CAPSTAN_ETCD_BIN set?)")
}

/// The PID of a direct child of this process whose command name is `name`
/// (the throwaway etcd keeps its `Child` private).
pub fn child_named(name: &str) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == me && comm == name).then_some(pid)
    })
}

/// A process's peak resident memory so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    proc_status_kib(pid, "VmHWM:").map(|kib| stats::round3(kib as f64 / 1024.0))
}

/// A process's resident memory now (VmRSS), in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    proc_status_kib(pid, "VmRSS:").map(|kib| stats::round3(kib as f64 / 1024.0))
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process, from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    ticks_to_duration(ticks)
}

/// [`process_cpu`] plus the CPU time of the children it has waited for
/// (cutime, cstime): a process that shells out (the proxy runs `nft`) spends
/// much of its time there.
pub fn process_cpu_with_children(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = (11..=14)
        .map(|i| fields.get(i)?.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    ticks_to_duration(ticks)
}

/// CPU time all processes of the machine spent busy (not idle or waiting
/// for I/O), from the first line of `/proc/stat`.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    ticks_to_duration(busy)
}

fn ticks_to_duration(ticks: u64) -> Option<Duration> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz))
}

/// User plus system CPU time of this (the benchmark's) process.
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The processes whose CPU time a phase reports.
#[derive(Debug, Clone, Copy)]
pub struct Procs {
    pub server: u32,
    pub etcd: Option<u32>,
}

/// CPU times of the processes at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    server: Option<Duration>,
    etcd: Option<Duration>,
    bench: Duration,
    machine: Option<Duration>,
}

impl Procs {
    pub fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server: process_cpu(self.server),
            etcd: self.etcd.and_then(process_cpu),
            bench: own_cpu(),
            machine: machine_busy(),
        }
    }
}

/// CPU time spent by each process over some wall time (possibly several
/// slices added up).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTotals {
    wall: Duration,
    server: Option<Duration>,
    etcd: Option<Duration>,
    bench: Duration,
    machine: Option<Duration>,
}

impl CpuTotals {
    /// From `start` until now.
    pub fn since(procs: &Procs, start: CpuSample) -> CpuTotals {
        let end = procs.sample();
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        CpuTotals {
            wall: end.at - start.at,
            server: diff(end.server, start.server),
            etcd: diff(end.etcd, start.etcd),
            bench: end.bench.saturating_sub(start.bench),
            machine: diff(end.machine, start.machine),
        }
    }

    pub fn add(&mut self, other: CpuTotals) {
        let sum = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.wall += other.wall;
        self.server = sum(self.server, other.server);
        self.etcd = sum(self.etcd, other.etcd);
        self.bench += other.bench;
        self.machine = sum(self.machine, other.machine);
    }

    /// Average cores used by each process (CPU seconds ÷ wall seconds).
    pub fn usage(&self) -> CpuUsage {
        let wall = self.wall.as_secs_f64();
        let cores = |d: Duration| {
            if wall > 0.0 {
                stats::round3(d.as_secs_f64() / wall)
            } else {
                0.0
            }
        };
        let ours = self.server.unwrap_or_default() + self.etcd.unwrap_or_default() + self.bench;
        CpuUsage {
            server_cores: self.server.map(cores),
            etcd_cores: self.etcd.map(cores),
            bench_cores: cores(self.bench),
            other_cores: self.machine.map(|m| cores(m.saturating_sub(ours))),
        }
    }
}

/// Average cores each process kept busy during a phase: on a 2-core
/// machine, server + etcd + benchmark client near 2.0 means the phase was
/// CPU-bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    pub server_cores: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_cores: Option<f64>,
    /// The benchmark process itself: the kube-rs clients (TLS, JSON).
    pub bench_cores: f64,
    /// Everything else on the machine (other people's builds and tests on a
    /// shared machine): when this is well above 0, the phase's numbers are
    /// skewed.
    pub other_cores: Option<f64>,
}

/// This process's open-file limit, before and after trying to raise it.
/// The server inherits the raised limit, since it is spawned afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct FdLimit {
    pub wanted: u64,
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
    /// Why the limit is still below `wanted`, if it is.
    pub problem: Option<String>,
}

/// Raises `RLIMIT_NOFILE` towards `wanted` (never above the hard limit).
pub fn raise_fd_limit(wanted: u64) -> FdLimit {
    let read = || {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct we pass.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        (rc == 0).then_some(limit)
    };
    let Some(before) = read() else {
        return FdLimit {
            wanted,
            soft_before: 0,
            soft: 0,
            hard: 0,
            problem: Some(format!("getrlimit failed: {}", std::io::Error::last_os_error())),
        };
    };
    let mut problem = None;
    if before.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(before.rlim_max),
            rlim_max: before.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            problem = Some(format!("setrlimit failed: {}", std::io::Error::last_os_error()));
        }
    }
    let after = read().unwrap_or(before);
    if problem.is_none() && after.rlim_cur < wanted {
        problem = Some(format!(
            "the hard limit {} is below the {wanted} open files wanted; the fan-out phase may fail",
            after.rlim_max
        ));
    }
    FdLimit {
        wanted,
        soft_before: before.rlim_cur,
        soft: after.rlim_cur,
        hard: after.rlim_max,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_limits() {
        let me = std::process::id();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu(me).is_some());
        assert!(machine_busy().is_some_and(|d| d > Duration::ZERO));
        assert!(own_cpu() > Duration::ZERO);
        assert!(proc_status_kib(me, "VmHWM:").is_some_and(|k| k > 0));
        let limit = raise_fd_limit(64);
        assert!(limit.soft >= 64, "{limit:?}");
        assert!(limit.problem.is_none(), "{limit:?}");
    }

    #[test]
    fn cpu_totals_add_up() {
        let mut total = CpuTotals::default();
        let part = CpuTotals {
            wall: Duration::from_secs(2),
            server: Some(Duration::from_secs(1)),
            etcd: None,
            bench: Duration::from_millis(500),
            machine: Some(Duration::from_secs(2)),
        };
        total.add(part);
        total.add(part);
        let usage = total.usage();
        assert_eq!(usage.server_cores, Some(0.5));
        assert_eq!(usage.etcd_cores, None);
        assert_eq!(usage.bench_cores, 0.25);
        assert_eq!(usage.other_cores, Some(0.25));
    }
}
