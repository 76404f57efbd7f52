//! Containers through CRI (upstream `kuberuntime_container.go`): the
//! `ContainerConfig` of one attempt of a container — command and args,
//! working dir, environment, mounts (volumes, the managed `/etc/hosts`,
//! the termination-message file), log path `<name>/<restartCount>.log`
//! under the sandbox's log directory, tty/stdin, Linux resources and
//! security — with the labels and annotations that let a restarted kubelet
//! recognise it; and [`RuntimeContainer`], what CRI says about one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ImageSpec, KeyValue, Mount};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::sandbox;

pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const HASH: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";

/// Upstream's default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// How much of a termination message (or log tail) is kept.
const MAX_MESSAGE_BYTES: usize = 4096;
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;

/// What one attempt of a container is made of, besides the spec.
pub struct Inputs {
    pub image_ref: String,
    pub restart_count: u32,
    /// `command` and `args` with `$(VAR)` references expanded.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub envs: Vec<KeyValue>,
    pub mounts: Vec<Mount>,
    pub linux: k8s_cri::v1::LinuxContainerConfig,
}

/// A hash of the container's spec: a running container whose hash no
/// longer matches (its image was changed) is restarted.
pub fn hash(container: &Container) -> String {
    let text = serde_json::to_string(container).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The CRI configuration of attempt `inputs.restart_count` of `container`.
pub fn config(pod: &Pod, container: &Container, inputs: Inputs) -> ContainerConfig {
    let mut labels: HashMap<String, String> = sandbox::labels(pod)
        .into_iter()
        .filter(|(k, _)| k.starts_with("io.kubernetes."))
        .collect();
    labels.insert(CONTAINER_NAME.into(), container.name.clone());
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations = HashMap::from([
        (HASH.to_string(), hash(container)),
        (RESTART_COUNT.to_string(), inputs.restart_count.to_string()),
        (
            TERMINATION_MESSAGE_PATH.to_string(),
            termination_message_path(container).to_string(),
        ),
        (
            TERMINATION_MESSAGE_POLICY.to_string(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (POD_TERMINATION_GRACE_PERIOD.to_string(), grace.to_string()),
    ]);
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: container.name.clone(),
            attempt: inputs.restart_count,
        }),
        image: Some(ImageSpec {
            image: inputs.image_ref,
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..ImageSpec::default()
        }),
        command: inputs.command,
        args: inputs.args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: inputs.envs,
        mounts: inputs.mounts,
        labels,
        annotations,
        log_path: log_path(&container.name, inputs.restart_count),
        stdin: container.stdin == Some(true),
        stdin_once: container.stdin_once == Some(true),
        tty: container.tty == Some(true),
        linux: Some(inputs.linux),
        ..ContainerConfig::default()
    }
}

/// Upstream's container log path, relative to the sandbox's log directory.
pub fn log_path(name: &str, restart_count: u32) -> String {
    format!("{name}/{restart_count}.log")
}

pub fn termination_message_path(container: &Container) -> &str {
    container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

/// The host file a container writes its termination message to: one per
/// attempt, under the pod's directory.
pub fn termination_message_file(pod_dir: &Path, name: &str, restart_count: u32) -> PathBuf {
    pod_dir.join("containers").join(name).join(restart_count.to_string())
}

/// What CRI reports about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeContainer {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    pub restart_count: u32,
    pub state: State,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub hash: String,
    pub log_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

fn timestamp(ns: i64) -> Option<Timestamp> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
}

impl RuntimeContainer {
    /// From a CRI status; the termination message is read from the file
    /// the container wrote (or its log, per `terminationMessagePolicy`).
    pub fn from_cri(status: &ContainerStatus, sandbox_id: &str) -> RuntimeContainer {
        let annotation = |k: &str| status.annotations.get(k).cloned().unwrap_or_default();
        let state = match ContainerState::try_from(status.state) {
            Ok(ContainerState::ContainerCreated) => State::Created,
            Ok(ContainerState::ContainerRunning) => State::Running,
            Ok(ContainerState::ContainerExited) => State::Exited,
            _ => State::Unknown,
        };
        let mut container = RuntimeContainer {
            id: status.id.clone(),
            name: status.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
            sandbox_id: sandbox_id.to_string(),
            restart_count: annotation(RESTART_COUNT).parse().unwrap_or(0),
            state,
            created_at: timestamp(status.created_at).unwrap_or(Timestamp::UNIX_EPOCH),
            started_at: timestamp(status.started_at),
            finished_at: timestamp(status.finished_at),
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            image: status.image.as_ref().map(|i| i.image.clone()).unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            hash: annotation(HASH),
            log_path: status.log_path.clone(),
        };
        if state == State::Exited {
            let path = annotation(TERMINATION_MESSAGE_PATH);
            let fallback = annotation(TERMINATION_MESSAGE_POLICY) == "FallbackToLogsOnError"
                && status.exit_code != 0
                && status.reason != "ContainerCannotRun";
            let file = status
                .mounts
                .iter()
                .find(|m| m.container_path == path)
                .map(|m| PathBuf::from(&m.host_path));
            let mut message = file.and_then(|f| read_capped(&f)).unwrap_or_default();
            if message.is_empty() && fallback {
                message = log_tail(Path::new(&status.log_path));
            }
            if !message.is_empty() {
                if !container.message.is_empty() {
                    container.message.push_str(": ");
                }
                container.message.push_str(&message);
            }
        }
        container
    }
}

fn read_capped(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE_BYTES)];
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The last lines of a CRI log file (`<time> <stream> <P|F> <text>` lines),
/// their text only, as upstream's `readLastStringFromContainerLogs`.
pub fn log_tail(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(FALLBACK_LOG_LINES);
    let mut out = String::new();
    for line in &lines[start..] {
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag, content) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
        out.push_str(content);
        if tag != Some("P") {
            out.push('\n');
        }
    }
    if out.len() > FALLBACK_LOG_BYTES {
        let mut cut = out.len() - FALLBACK_LOG_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_name_the_attempt_and_log_where_upstream_does() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [{"name": "app", "image": "busybox", "command": ["sh"], "args": ["-c", "true"], "tty": true}]}
        }))
        .unwrap();
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let c = config(
            &pod,
            &container,
            Inputs {
                image_ref: "sha256:abc".into(),
                restart_count: 3,
                command: container.command.clone().unwrap(),
                args: container.args.clone().unwrap(),
                envs: vec![],
                mounts: vec![],
                linux: Default::default(),
            },
        );
        assert_eq!(c.log_path, "app/3.log");
        assert_eq!(c.metadata.unwrap().attempt, 3);
        assert_eq!(
            (c.command, c.args),
            (vec!["sh".to_string()], vec!["-c".to_string(), "true".to_string()])
        );
        assert!(c.tty);
        assert_eq!(c.labels[CONTAINER_NAME], "app");
        assert_eq!(c.labels[sandbox::POD_UID], "u1");
        assert!(!c.labels.contains_key("app"), "pod labels stay on the sandbox");
        assert_eq!(c.annotations[RESTART_COUNT], "3");
        assert_eq!(c.annotations[TERMINATION_MESSAGE_PATH], "/dev/termination-log");
        assert_eq!(c.annotations[POD_TERMINATION_GRACE_PERIOD], "5");
    }

    #[test]
    fn log_tails_are_the_text_of_cri_log_lines() {
        let dir = std::env::temp_dir().join(format!("capstan-log-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("0.log");
        std::fs::write(
            &file,
            "2026-01-01T00:00:00.1Z stdout F hello\n2026-01-01T00:00:00.2Z stderr P par\n2026-01-01T00:00:00.3Z stderr F tial\n",
        )
        .unwrap();
        assert_eq!(log_tail(&file), "hello\npartial\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
