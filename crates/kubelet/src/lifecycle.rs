//! Container lifecycle hooks (upstream `pkg/kubelet/lifecycle/handlers.go`
//! and their use in `kuberuntime_container.go`).
//!
//! `postStart` runs right after the container started; if it fails the
//! container is killed (event `FailedPostStartHook` with the message of
//! [`HookError`], kill reason `FailedPostStartHook`, container error
//! `PostStartHookError`). `preStop` runs before the container is
//! signalled and its time is taken from the grace period; a failure only
//! produces a `FailedPreStopHook` event with a fixed text (the output
//! could hold secrets), and the container is stopped anyway.
//!
//! Handlers: `exec` (CRI `ExecSync`, no timeout of its own), `httpGet`
//! (any HTTP response is success) and `sleep`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::probe::{self, ExecError, ProbeTarget};
use crate::securitycontext::format_pod;

/// Event reason and kill message when `postStart` fails.
pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
/// The error a failed `postStart` leaves on the container (`PostStartHookError`).
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";
/// Event reason when `preStop` fails.
pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
/// The event message of a failed `preStop`.
pub const PRE_STOP_FAILED_MESSAGE: &str = "PreStopHook failed";
/// The least grace a container gets after its `preStop` hook.
pub const MINIMUM_GRACE_PERIOD_SECONDS: i64 = 2;
/// The User-Agent of HTTP hooks.
pub const USER_AGENT: &str = "kube-lifecycle/1.33";

/// A hook that failed, worded as upstream's event message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    pub message: String,
}

/// Runs one handler (see the module doc). `deadline` bounds it (preStop's
/// grace period); `None` lets it run to its end.
pub async fn run_hook(
    pod: &Pod,
    container: &Container,
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    deadline: Option<Duration>,
) -> Result<(), HookError> {
    let work = run_unbounded(pod, container, handler, target);
    match deadline {
        None => work.await,
        Some(d) => match tokio::time::timeout(d, work).await {
            Ok(result) => result,
            Err(_) => Err(HookError {
                message: format!(
                    "lifecycle hook for Container {:?} in Pod {:?} did not complete within {}",
                    container.name,
                    format_pod(pod),
                    humantime::format_duration(d)
                ),
            }),
        },
    }
}

async fn run_unbounded(
    pod: &Pod,
    container: &Container,
    handler: &LifecycleHandler,
    target: &ProbeTarget,
) -> Result<(), HookError> {
    let who = format!("for Container {:?} in Pod {:?}", container.name, format_pod(pod));
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let shown = format!("[{}]", command.join(" "));
        let joined = command.join(" ");
        let Some(cri) = target.cri.as_ref() else {
            return Err(HookError {
                message: format!(
                    "Exec lifecycle hook ({shown}) {who} failed - error: no container runtime, message: \"\""
                ),
            });
        };
        let (error, output) = match probe::exec(cri, &target.container_id, command, None).await {
            Ok(r) if r.exit_code == 0 => return Ok(()),
            Ok(r) => (
                format!("command '{joined}' exited with {}: {}", r.exit_code, r.stderr),
                r.output,
            ),
            Err(ExecError::TimedOut) => (format!("command '{joined}' timed out"), String::new()),
            Err(ExecError::Runtime(e)) => (e, String::new()),
        };
        return Err(HookError {
            message: format!("Exec lifecycle hook ({shown}) {who} failed - error: {error}, message: {output:?}"),
        });
    }
    if let Some(get) = &handler.http_get {
        let path = get.path.clone().unwrap_or_default();
        let fail = |error: String| HookError {
            message: format!("HTTP lifecycle hook ({path}) {who} failed - error: {error}"),
        };
        let url = probe::http_get_url(get, container, &target.pod_ip).map_err(|e| fail(e.to_string()))?;
        let headers = get.http_headers.as_deref().unwrap_or_default();
        return probe::http_request(url, headers, USER_AGENT)
            .await
            .map(drop)
            .map_err(fail);
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(HookError {
        message: "Cannot run handler: invalid handler".into(),
    })
}

/// Runs the container's `postStart` hook, if any. On `Err` the caller
/// records a Warning event `FailedPostStartHook` with the message and
/// kills the container.
pub async fn post_start(pod: &Pod, container: &Container, target: &ProbeTarget) -> Result<(), HookError> {
    let Some(handler) = container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
        return Ok(());
    };
    run_hook(pod, container, handler, target, None).await
}

/// What running `preStop` left of the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreStop {
    /// Seconds to give the container after SIGTERM: the grace period less
    /// the hook's time, at least [`MINIMUM_GRACE_PERIOD_SECONDS`].
    pub remaining_grace_seconds: i64,
    /// The hook failed or overran: record `FailedPreStopHook` /
    /// [`PRE_STOP_FAILED_MESSAGE`].
    pub failed: Option<HookError>,
}

/// Runs the container's `preStop` hook within `grace_period_seconds`.
pub async fn pre_stop(pod: &Pod, container: &Container, target: &ProbeTarget, grace_period_seconds: i64) -> PreStop {
    let Some(handler) = container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return PreStop {
            remaining_grace_seconds: grace_period_seconds,
            failed: None,
        };
    };
    let start = Instant::now();
    let budget = Duration::from_secs(grace_period_seconds.max(0) as u64);
    let failed = run_hook(pod, container, handler, target, Some(budget)).await.err();
    if let Some(e) = &failed {
        tracing::warn!(container = container.name, error = %e, "preStop hook failed");
    }
    PreStop {
        remaining_grace_seconds: remaining(grace_period_seconds, start.elapsed()),
        failed,
    }
}

/// Upstream: the hook's whole seconds come off the grace period, which
/// never drops below the minimum.
pub fn remaining(grace_period_seconds: i64, spent: Duration) -> i64 {
    (grace_period_seconds - spent.as_secs() as i64).max(MINIMUM_GRACE_PERIOD_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn pod() -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": {"containers": []}}),
        )
        .unwrap()
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: "127.0.0.1".into(),
            container_id: "c1".into(),
            cri: None,
        }
    }

    fn container(lifecycle: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "lifecycle": lifecycle})).unwrap()
    }

    #[tokio::test]
    async fn http_post_start_succeeds_on_any_response_and_sends_its_user_agent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let c = container(json!({"postStart": {"httpGet": {"path": "/started", "port": port}}}));
        post_start(&pod(), &c, &target()).await.unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /started HTTP/1.1"), "{request}");
        assert!(
            request.to_lowercase().contains("user-agent: kube-lifecycle/1.33"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn http_post_start_failure_message() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = container(json!({"postStart": {"httpGet": {"path": "/started", "port": port}}}));
        let err = post_start(&pod(), &c, &target()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "HTTP lifecycle hook (/started) for Container \"c\" in Pod \"web_ns(u1)\" failed - error: Get \"http://127.0.0.1:{port}/started\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }

    #[tokio::test]
    async fn pre_stop_sleep_counts_against_the_grace_period() {
        let c = container(json!({"preStop": {"sleep": {"seconds": 1}}}));
        let started = Instant::now();
        let result = pre_stop(&pod(), &c, &target(), 30).await;
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(
            result,
            PreStop {
                remaining_grace_seconds: 29,
                failed: None
            }
        );

        // A hook longer than the grace period is cut off; the container still gets the minimum.
        let long = container(json!({"preStop": {"sleep": {"seconds": 60}}}));
        let result = pre_stop(&pod(), &long, &target(), 1).await;
        assert_eq!(result.remaining_grace_seconds, MINIMUM_GRACE_PERIOD_SECONDS);
        assert!(result.failed.is_some());

        let none = container(json!({}));
        assert_eq!(pre_stop(&pod(), &none, &target(), 30).await.remaining_grace_seconds, 30);
    }

    #[test]
    fn grace_arithmetic() {
        assert_eq!(remaining(30, Duration::from_millis(2500)), 28);
        assert_eq!(remaining(3, Duration::from_secs(5)), 2);
        assert_eq!(remaining(0, Duration::ZERO), 2);
    }

    #[tokio::test]
    async fn exec_without_runtime_and_empty_handlers_fail() {
        let c = container(json!({"postStart": {"exec": {"command": ["sh", "-c", "true"]}}}));
        let err = post_start(&pod(), &c, &target()).await.unwrap_err();
        assert!(
            err.message
                .starts_with("Exec lifecycle hook ([sh -c true]) for Container \"c\" in Pod \"web_ns(u1)\" failed")
        );
        let empty = container(json!({"postStart": {}}));
        assert_eq!(
            post_start(&pod(), &empty, &target()).await.unwrap_err().message,
            "Cannot run handler: invalid handler"
        );
    }
}
