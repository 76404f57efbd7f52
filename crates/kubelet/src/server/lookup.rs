//! Finding a pod's sandbox and containers in the runtime by the names a request carries.
//!
//! The runtime is the source of truth for what exists on the node: sandboxes carry the pod's namespace, name
//! and uid in their CRI metadata, containers their name and attempt (= restart count). Asking CRI keeps this
//! server independent of the pod workers' in-memory state, and it sees containers the kubelet adopted after
//! a restart just the same.

use http::StatusCode;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    Container, ContainerFilter, ContainerState, ListContainersRequest, ListPodSandboxRequest, PodSandbox,
    PodSandboxState,
};
use tonic::transport::Channel;

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No sandbox for the pod.
    #[error("pod \"{namespace}/{pod}\" not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },
    /// No such container in the pod.
    #[error("container \"{container}\" in pod \"{namespace}/{pod}\" not found")]
    ContainerNotFound {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// The runtime failed.
    #[error("container runtime: {0}")]
    Runtime(#[from] tonic::Status),
}

impl LookupError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            LookupError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::NOT_FOUND,
        }
    }
}

/// The pod's sandboxes, the ready one (if any) first, then newest first.
pub async fn sandboxes(
    runtime: &RuntimeServiceClient<Channel>,
    namespace: &str,
    pod: &str,
) -> Result<Vec<PodSandbox>, LookupError> {
    let response = runtime
        .clone()
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner();
    let mut found: Vec<PodSandbox> = response
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .as_ref()
                .is_some_and(|m| m.namespace == namespace && m.name == pod)
        })
        .collect();
    found.sort_by_key(|s| {
        (
            std::cmp::Reverse(s.state == PodSandboxState::SandboxReady as i32),
            std::cmp::Reverse(s.created_at),
        )
    });
    if found.is_empty() {
        return Err(LookupError::PodNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        });
    }
    Ok(found)
}

/// Every instance (attempt) of the named container in the pod, newest attempt first.
pub async fn containers(
    runtime: &RuntimeServiceClient<Channel>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<Container>, LookupError> {
    let sandboxes = sandboxes(runtime, namespace, pod).await?;
    let mut found = Vec::new();
    for sandbox in &sandboxes {
        let request = ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: sandbox.id.clone(),
                ..Default::default()
            }),
        };
        let response = runtime.clone().list_containers(request).await?.into_inner();
        found.extend(
            response
                .containers
                .into_iter()
                .filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == container)),
        );
    }
    found.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)),
            std::cmp::Reverse(c.created_at),
        )
    });
    if found.is_empty() {
        return Err(LookupError::ContainerNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        });
    }
    Ok(found)
}

/// The container's current instance, which must be running (exec and attach need a live process).
pub async fn running_container(
    runtime: &RuntimeServiceClient<Channel>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Container, LookupError> {
    containers(runtime, namespace, pod, container)
        .await?
        .into_iter()
        .find(|c| c.state == ContainerState::ContainerRunning as i32)
        .ok_or_else(|| LookupError::ContainerNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        })
}
