//! `/version`: the Kubernetes version Capstan serves.
//!
//! kubectl parses `gitVersion` as semver and warns about skew; Capstan
//! speaks the API of Kubernetes 1.33 (the `k8s-openapi` types it serves) and
//! marks itself in the build metadata, as k3s does (`v1.33.0+k3s1`).

use serde_json::{Value, json};

pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";

pub fn git_version() -> String {
    format!(
        "v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0+capstan.{}",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn info() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "gitVersion": git_version(),
        "gitCommit": option_env!("CAPSTAN_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("CAPSTAN_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// Go's names for architectures, which clients expect in `platform`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
