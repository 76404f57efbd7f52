//! Test support shared by the crates whose tests need real images
//! (feature `testing`): a local registry to pull from.

use std::path::Path;

/// Debian's `docker-registry` on a free loopback port, with its own config
/// (storage in a temp dir, htpasswd auth with one user), killed on drop.
pub struct LocalRegistry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    pub username: String,
    pub password: String,
}

impl LocalRegistry {
    pub fn start() -> LocalRegistry {
        let dir = tempfile::Builder::new().prefix("capstan-registry-").tempdir().unwrap();
        let (username, password) = ("capstan".to_string(), "s3cret-pull".to_string());
        // bcrypt (what the registry's htpasswd needs) from the system's crypt(3), cost 4.
        let hash = std::process::Command::new("python3")
            .args(["-W", "ignore", "-c"])
            .arg(format!(
                "import crypt; print(crypt.crypt({password:?}, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"
            ))
            .output()
            .unwrap();
        assert!(hash.status.success(), "bcrypt via python3 crypt: {hash:?}");
        let hash = String::from_utf8(hash.stdout).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("{username}:{}\n", hash.trim())).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n\
             http:\n  addr: {addr}\n  secret: capstan-test\nauth:\n  htpasswd:\n    realm: capstan-test\n    path: {htpasswd}\n",
            root = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let registry = LocalRegistry {
            child,
            dir,
            addr,
            username,
            password,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {}",
                registry.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        registry
    }

    /// Pushes a docker-archive tarball as `<addr>/<name>` with skopeo.
    pub fn push(&self, archive: &Path, name: &str) {
        let output = std::process::Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("{}:{}", self.username, self.password))
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{name}", self.addr))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
