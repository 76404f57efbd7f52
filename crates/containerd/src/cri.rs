//! The gRPC channel to a CRI runtime over its unix socket.
//!
//! tonic speaks HTTP/2 over any connector; the URI is a placeholder and
//! every connection dials the socket. The kubelet's `cri::connect` builds
//! its clients on this channel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::VersionRequest;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

/// The CRI API version the kubelet speaks.
pub const API_VERSION: &str = "v1";

/// Connects a channel to the CRI socket at `path`; fails if nothing listens.
pub async fn channel(path: &Path) -> Result<Channel, Error> {
    let socket: PathBuf = path.to_path_buf();
    Endpoint::from_static("http://cri.sock")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })
}

/// Asks the runtime at `path` for its name and version (`containerd`, `1.6.20~ds1`).
pub async fn version(path: &Path) -> Result<(String, String), Error> {
    let mut client = RuntimeServiceClient::new(channel(path).await?);
    let version = client
        .version(VersionRequest {
            version: API_VERSION.into(),
        })
        .await
        .map_err(Error::cri("Version"))?
        .into_inner();
    Ok((version.runtime_name, version.runtime_version))
}
