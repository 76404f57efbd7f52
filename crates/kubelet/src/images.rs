//! Images for containers (interim version on the `pods` branch; the
//! `runtime` branch owns this file and adds pull policies, secrets and back-off).

use k8s_cri::v1::{ImageSpec, ImageStatusRequest, PullImageRequest};
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::Cri;

/// Why an image is not there, with upstream's waiting reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ImageError {
    /// `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`, `InvalidImageName`.
    pub reason: String,
    pub message: String,
}

/// The image reference to create `container` from, pulled if it is missing.
pub async fn ensure_image(
    cri: &Cri,
    _client: &kube::Client,
    _pod: &Pod,
    container: &Container,
) -> Result<String, ImageError> {
    let image = container.image.clone().unwrap_or_default();
    let spec = ImageSpec {
        image: image.clone(),
        ..ImageSpec::default()
    };
    let mut images = cri.images.clone();
    let status = images
        .image_status(ImageStatusRequest {
            image: Some(spec.clone()),
            verbose: false,
        })
        .await
        .map_err(|s| pull_error(&image, s.message()))?;
    if let Some(found) = status.into_inner().image {
        return Ok(found.id);
    }
    let pulled = images
        .pull_image(PullImageRequest {
            image: Some(spec),
            ..PullImageRequest::default()
        })
        .await
        .map_err(|s| pull_error(&image, s.message()))?;
    Ok(pulled.into_inner().image_ref)
}

fn pull_error(image: &str, message: &str) -> ImageError {
    ImageError {
        reason: "ErrImagePull".into(),
        message: format!("failed to pull and unpack image {image:?}: {message}"),
    }
}
