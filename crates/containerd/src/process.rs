//! The containerd child process: started in its own session, watched, and
//! restarted with back-off when it dies, until stopped.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{self, ContainerdConfig};
use crate::{Error, cri, import, registries};

/// How long `start` waits for the CRI socket to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Restart back-off: doubling from the first to the last value.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
/// containerd's log is rotated at (re)start once it is this large.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;
/// A containerd that ran this long before dying restarts without delay.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Capstan's supervised containerd. Dropping it stops containerd too
/// (SIGTERM only; [`Containerd::stop`] also waits and escalates).
pub struct Containerd {
    endpoint: PathBuf,
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

/// What the supervisor task and the handle share.
struct Shared {
    config: ContainerdConfig,
    /// The running containerd's PID, 0 while none runs.
    pid: AtomicI32,
    stopping: AtomicBool,
    stop: Notify,
}

impl Containerd {
    /// Writes the config and registry hosts, starts containerd, waits until
    /// its CRI socket answers `Version`, and makes sure the pause image is
    /// there. A containerd left running from an earlier start on the same
    /// state dir (found by its pid file) is stopped first.
    pub async fn start(config: ContainerdConfig) -> Result<Containerd, Error> {
        let started = Instant::now();
        prepare_state_dir(&config)?;
        stop_stale(&config.state_dir).await;
        let child = spawn(&config)?;
        let shared = Arc::new(Shared {
            pid: AtomicI32::new(child.id().map_or(0, |pid| pid as i32)),
            config,
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        });
        let endpoint = shared.config.endpoint();
        let mut containerd = Containerd {
            endpoint,
            shared: shared.clone(),
            supervisor: None,
        };
        let child = wait_ready(&containerd.endpoint, child, &shared.config.state_dir).await?;
        containerd.supervisor = Some(tokio::spawn(supervise(shared.clone(), child)));
        tracing::info!(elapsed = ?started.elapsed(), endpoint = %containerd.endpoint.display(), "containerd is up");
        import::ensure_pause(&containerd.endpoint).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "pause image present");
        Ok(containerd)
    }

    /// The CRI socket.
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    /// The PID of the containerd running now (it changes on restarts).
    pub fn pid(&self) -> Option<i32> {
        Some(self.shared.pid.load(Ordering::SeqCst)).filter(|pid| *pid > 0)
    }

    /// Stops containerd: SIGTERM, then SIGKILL after a grace period. Running
    /// containers keep running (their shims outlive containerd).
    pub async fn stop(mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_one();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.supervisor.is_none() {
            return;
        }
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_one();
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGTERM);
        }
    }
}

fn prepare_state_dir(config: &ContainerdConfig) -> Result<(), Error> {
    let dir = &config.state_dir;
    fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    fs::create_dir_all(&config.cni_conf_dir)
        .map_err(Error::io(format!("creating {}", config.cni_conf_dir.display())))?;
    registries::write_hosts(config.registry_config.as_deref(), &config.certs_dir())?;
    let file = config.config_file();
    fs::write(&file, config.render()).map_err(Error::io(format!("writing {}", file.display())))
}

/// Starts containerd in a session of its own, output appended to its log
/// (the previous log is kept as `containerd.log.1` once it reaches
/// [`LOG_ROTATE_BYTES`]).
fn spawn(config: &ContainerdConfig) -> Result<Child, Error> {
    let log_path = config.state_dir.join("containerd.log");
    if fs::metadata(&log_path).is_ok_and(|m| m.len() >= LOG_ROTATE_BYTES) {
        let _ = fs::rename(&log_path, log_path.with_extension("log.1"));
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(Error::io(format!("opening {}", log_path.display())))?;
    let log_err = log.try_clone().map_err(Error::io("duplicating the log file"))?;
    // A stale socket makes containerd fail to listen.
    let _ = fs::remove_file(config.endpoint());
    let mut command = Command::new("containerd");
    command
        .arg("--config")
        .arg(config.config_file())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid is async-signal-safe; a new session keeps terminal
    // signals (Ctrl-C to capstan) away from containerd, which capstan stops itself.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command.spawn().map_err(Error::io("starting containerd"))?;
    if let Some(pid) = child.id() {
        let pid_file = config::pid_file(&config.state_dir);
        fs::write(&pid_file, format!("{pid}\n")).map_err(Error::io(format!("writing {}", pid_file.display())))?;
    }
    Ok(child)
}

/// Polls the CRI socket until it answers; fails early if containerd exits.
async fn wait_ready(endpoint: &Path, mut child: Child, state_dir: &Path) -> Result<Child, Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Start(format!(
                "containerd exited ({status}); {}",
                log_tail(state_dir)
            )));
        }
        if endpoint.exists() && cri::version(endpoint).await.is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            if let Some(pid) = child.id() {
                kill_and_wait(pid as i32, &mut child).await;
            }
            return Err(Error::Start(format!(
                "no CRI answer on {} within {START_TIMEOUT:?}; {}",
                endpoint.display(),
                log_tail(state_dir)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps containerd running until asked to stop: when it exits, it is
/// started again after a back-off that doubles on every quick death.
async fn supervise(shared: Arc<Shared>, mut child: Child) {
    let mut backoff = RESTART_BACKOFF.0;
    'run: loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                if shared.stopping.load(Ordering::SeqCst) {
                    break 'run;
                }
                tracing::warn!(?status, restart_in = ?backoff, "containerd exited; restarting it");
            }
            _ = shared.stop.notified() => {
                if let Some(pid) = child.id() {
                    kill_and_wait(pid as i32, &mut child).await;
                }
                break 'run;
            }
        }
        shared.pid.store(0, Ordering::SeqCst);
        if started.elapsed() > STABLE_RUN {
            backoff = RESTART_BACKOFF.0;
        }
        child = loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shared.stop.notified() => break 'run,
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF.1);
            match spawn(&shared.config) {
                Ok(child) => break child,
                Err(err) => tracing::error!(%err, retry_in = ?backoff, "cannot restart containerd"),
            }
        };
        let pid = child.id().map_or(0, |pid| pid as i32);
        shared.pid.store(pid, Ordering::SeqCst);
        tracing::info!(pid, "containerd restarted");
    }
    shared.pid.store(0, Ordering::SeqCst);
    let _ = fs::remove_file(config::pid_file(&shared.config.state_dir));
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps the child.
async fn kill_and_wait(pid: i32, child: &mut Child) {
    signal(pid, libc::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        tracing::warn!(pid, "containerd ignored SIGTERM; killing it");
        signal(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Stops a containerd an earlier run left behind on this state dir, found
/// by its pid file and checked by its command line (our config path).
async fn stop_stale(state_dir: &Path) {
    let Some(pid) = read_pid(state_dir) else { return };
    tracing::info!(pid, "stopping a containerd left running on this state dir");
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while process_is_ours(pid, state_dir) {
        if Instant::now() > deadline {
            signal(pid, libc::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The PID in the pid file, if that process is our containerd.
pub(crate) fn read_pid(state_dir: &Path) -> Option<i32> {
    let text = fs::read_to_string(config::pid_file(state_dir)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    process_is_ours(pid, state_dir).then_some(pid)
}

/// Whether `pid` is alive (not a zombie) and one of its arguments is
/// `state_dir` or a path below it (containerd's `--config`, a shim's
/// `-address`). Whole arguments are compared, so `/x/var/lib/capstan/…`
/// never passes for `/var/lib/capstan/…`.
pub(crate) fn process_is_ours(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
    let dir = state_dir.as_os_str().as_encoded_bytes();
    let names_dir = |arg: &[u8]| arg == dir || (arg.starts_with(dir) && arg.get(dir.len()) == Some(&b'/'));
    !zombie && cmdline.split(|b| *b == 0).any(names_dir)
}

pub(crate) fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last lines of containerd's log, for error messages.
fn log_tail(state_dir: &Path) -> String {
    let text = fs::read_to_string(state_dir.join("containerd.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    format!("log tail: {}", tail.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_ours_only_by_whole_path_arguments() {
        // `sh -c CMD NAME`: NAME becomes an argument of the running shell.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "/tmp/capstan-x/agent/containerd/containerd.sock"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until exec completes, /proc shows the test binary's command line.
        while !fs::read(format!("/proc/{pid}/cmdline")).unwrap().starts_with(b"sh\0") {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(process_is_ours(pid, Path::new("/tmp/capstan-x/agent/containerd")));
        assert!(process_is_ours(pid, Path::new("/tmp/capstan-x")));
        assert!(!process_is_ours(pid, Path::new("/tmp/capstan")));
        assert!(!process_is_ours(pid, Path::new("/capstan-x/agent/containerd")));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!process_is_ours(pid, Path::new("/tmp/capstan-x")));
    }
}
