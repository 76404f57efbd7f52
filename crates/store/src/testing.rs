//! A throwaway etcd for tests and benchmarks: the real Debian `etcd-server`
//! on free loopback ports with a temporary data dir, stopped (by its PID)
//! and removed when dropped — also when a test panics.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running etcd; `endpoint()` is its client URL.
pub struct EtcdServer {
    child: Child,
    client_url: String,
    _data: TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers on its client port.
    pub fn start() -> std::io::Result<EtcdServer> {
        let data = tempfile::Builder::new().prefix("capstan-etcd-").tempdir()?;
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let child = Command::new(etcd_binary())
            .arg("--data-dir")
            .arg(data.path())
            .args(["--name", "capstan-test"])
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("capstan-test={peer_url}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = EtcdServer {
            child,
            client_url,
            _data: data,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.client_url
    }

    fn wait_ready(&self) -> std::io::Result<()> {
        let addr = self.client_url.trim_start_matches("http://");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "etcd did not listen on {addr} within 20 s"
        )))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$CAPSTAN_ETCD_BIN`, else `etcd` from the PATH (Debian: /usr/bin/etcd).
fn etcd_binary() -> String {
    std::env::var("CAPSTAN_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
