//! The CRI v1 client: the kubelet's only way to the container runtime.
//! (Interim version on the `pods` branch; the `runtime` branch owns this file.)

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to the CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
}

/// Both CRI services over one connection; cheap to clone.
#[derive(Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the runtime's unix socket.
pub async fn connect(endpoint: &Path) -> Result<Cri, Error> {
    let path = endpoint.to_path_buf();
    let socket = path.clone();
    let channel = Endpoint::from_static("http://[::]")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|source| Error::Connect { path, source })?;
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    })
}
