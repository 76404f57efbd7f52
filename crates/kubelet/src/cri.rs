//! The kubelet's CRI v1 client: the runtime and image services of one
//! container runtime, over its unix socket.
//!
//! Both clients share one HTTP/2 channel (tonic multiplexes calls on it and
//! reconnects when the runtime restarts), and cloning a [`Cri`] is cheap, so
//! every pod worker can hold its own.

use std::path::Path;

use capstan_containerd::cri::{API_VERSION, channel};
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// Why the runtime could not be reached.
pub type Error = capstan_containerd::Error;

/// The CRI clients of one runtime.
#[derive(Clone, Debug)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI runtime listening on `endpoint` and checks that it
/// answers `Version` for CRI v1.
pub async fn connect(endpoint: &Path) -> Result<Cri, Error> {
    let channel = channel(endpoint).await?;
    let mut cri = Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    };
    let version = cri
        .runtime
        .version(api::VersionRequest {
            version: API_VERSION.into(),
        })
        .await
        .map_err(|status| Error::Cri {
            call: "Version",
            status: Box::new(status),
        })?
        .into_inner();
    tracing::debug!(
        runtime = version.runtime_name,
        version = version.runtime_version,
        "connected to CRI"
    );
    Ok(cri)
}
