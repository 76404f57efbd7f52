//! Shared pieces of the containerd tests: a temporary state dir per test,
//! cleaned up (containerd, sandboxes, mounts, netns, cgroups) by a Drop
//! guard even when the test panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use capstan_containerd::{ContainerdConfig, pause};

/// One test's runtime directories.
pub struct TestRuntime {
    dir: tempfile::TempDir,
}

impl TestRuntime {
    pub fn new() -> TestRuntime {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("capstan_containerd=debug")
            .try_init();
        TestRuntime {
            dir: tempfile::Builder::new().prefix("capstan-rt-").tempdir().unwrap(),
        }
    }

    /// The data dir (`<data-dir>/agent/containerd` is the state dir).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join("agent/containerd")
    }

    pub fn config(&self) -> ContainerdConfig {
        let mut config = ContainerdConfig::for_data_dir(self.data_dir());
        config.sandbox_image = pause::IMAGE.into();
        config
    }
}
