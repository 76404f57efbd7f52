//! Making sure a container's image is on the node before it starts, as
//! upstream's kubelet image manager does (`pkg/kubelet/images`).
//!
//! * The pull policy: `imagePullPolicy`, defaulted as the API server does
//!   (`Always` for `:latest` or no tag, else `IfNotPresent`). `IfNotPresent`
//!   asks `ImageStatus` first: containerd's `PullImage` always contacts the
//!   registry, even for an image it has.
//! * Credentials: the pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson`
//!   and `kubernetes.io/dockercfg`) matched by registry as upstream's
//!   credential keyring does ([`keyring`]), each tried in turn; without a
//!   match, the `--registry-config` credentials for the image's registry.
//! * Back-off per pod and image after a failed pull: 10 s doubling to 300 s
//!   ([`backoff`]), reported as `ImagePullBackOff`.
//!
//! Failures carry upstream's waiting reasons and messages ([`ImageError`]),
//! which the pod worker puts in the container's `state.waiting`; what
//! happens is also posted as upstream's Events ([`events`]).

mod backoff;
pub mod events;
pub mod keyring;
pub mod reference;

use std::time::{Duration, Instant};

use capstan_containerd::registries::{Registries, image_host};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;

use crate::cri::{Cri, api};
pub use backoff::Backoff;
use events::{ImageEvents, go_duration};
use keyring::Keyring;

/// Upstream's image pull back-off: 10 s, doubling, at most 300 s.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Why a container's image is not there, with upstream's reason strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageErrorReason {
    /// The pull failed.
    ErrImagePull,
    /// A pull failed recently; waiting before the next try.
    ImagePullBackOff,
    /// `imagePullPolicy: Never` and the image is missing.
    ErrImageNeverPull,
    /// The image name does not parse.
    InvalidImageName,
    /// `ImageStatus` failed.
    ImageInspectError,
}

impl ImageErrorReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageErrorReason::ErrImagePull => "ErrImagePull",
            ImageErrorReason::ImagePullBackOff => "ImagePullBackOff",
            ImageErrorReason::ErrImageNeverPull => "ErrImageNeverPull",
            ImageErrorReason::InvalidImageName => "InvalidImageName",
            ImageErrorReason::ImageInspectError => "ImageInspectError",
        }
    }
}

/// A container's image could not be made present: the waiting reason and
/// message of its status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct ImageError {
    pub reason: ImageErrorReason,
    pub message: String,
}

/// The effective pull policy of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// `imagePullPolicy`, or the API server's default for `image`.
    pub fn of(container: &Container) -> PullPolicy {
        match container.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::default_for(container.image.as_deref().unwrap_or_default()),
        }
    }

    /// `Always` when the tag is `latest` or missing (and no digest), else `IfNotPresent`.
    pub fn default_for(image: &str) -> PullPolicy {
        match reference::Reference::parse(image) {
            Ok(r) if r.digest.is_none() && r.tag.as_deref().is_none_or(|t| t == "latest") => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// The node's image manager: pull policy, credentials and back-off. One
/// per kubelet; cheap to share behind an `Arc`.
pub struct ImageManager {
    registries: Registries,
    backoff: Backoff,
    events: ImageEvents,
}

impl ImageManager {
    /// An image manager using `registries` (`--registry-config`) for
    /// credentials when no imagePullSecret matches.
    pub fn new(registries: Registries) -> ImageManager {
        ImageManager {
            registries,
            backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            events: ImageEvents::default(),
        }
    }

    /// Posts upstream's image Events (`Pulling`, `Pulled`, `Failed`, `BackOff` …).
    pub fn with_events(mut self, events: ImageEvents) -> ImageManager {
        self.events = events;
        self
    }

    /// Makes sure `container`'s image is present, pulling it as its pull
    /// policy says; returns the image reference to create the container with
    /// (the image ID).
    pub async fn ensure_image(
        &self,
        cri: &Cri,
        client: &kube::Client,
        pod: &Pod,
        container: &Container,
    ) -> Result<String, ImageError> {
        let requested = container.image.as_deref().unwrap_or_default();
        let fail = |reason: ImageErrorReason, event: &str, message: String| {
            self.events.warning(pod, container, event, message.clone());
            Err(ImageError { reason, message })
        };
        let image = match reference::with_default_tag(requested) {
            Ok(image) => image,
            Err(err) => {
                let message = format!("Failed to apply default image tag {requested:?}: {err}");
                return fail(ImageErrorReason::InvalidImageName, "InspectFailed", message);
            }
        };
        let policy = PullPolicy::of(container);
        if policy != PullPolicy::Always {
            match image_status(cri, &image).await {
                Ok(Some(found)) => {
                    let message = format!("Container image {requested:?} already present on machine");
                    self.events.normal(pod, container, "Pulled", message);
                    return Ok(found.id);
                }
                Ok(None) if policy == PullPolicy::Never => {
                    let message = format!("Container image {requested:?} is not present with pull policy of Never");
                    return fail(ImageErrorReason::ErrImageNeverPull, "ErrImageNeverPull", message);
                }
                Ok(None) => {}
                Err(status) => {
                    let message = format!("Failed to inspect image {requested:?}: {}", go_status(&status));
                    return fail(ImageErrorReason::ImageInspectError, "InspectFailed", message);
                }
            }
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let key = format!("{uid}_{requested}");
        if self.backoff.in_backoff(&key, Instant::now()) {
            let message = format!("Back-off pulling image {requested:?}");
            self.events.normal(pod, container, "BackOff", message.clone());
            return Err(ImageError {
                reason: ImageErrorReason::ImagePullBackOff,
                message,
            });
        }
        self.events
            .normal(pod, container, "Pulling", format!("Pulling image {requested:?}"));
        let started = Instant::now();
        match self.pull(cri, client, pod, &image).await {
            Ok(image_ref) => {
                let elapsed = go_duration(started.elapsed());
                let size = image_status(cri, &image_ref).await.ok().flatten().map_or(0, |i| i.size);
                let message = format!(
                    "Successfully pulled image {requested:?} in {elapsed} ({elapsed} including waiting). Image size: {size} bytes."
                );
                tracing::info!(image = requested, %elapsed, "pulled image");
                self.events.normal(pod, container, "Pulled", message);
                Ok(image_ref)
            }
            Err(message) => {
                tracing::warn!(image = requested, %message, "failed to pull image");
                self.backoff.next(&key, Instant::now());
                self.events.warning(
                    pod,
                    container,
                    "Failed",
                    format!("Failed to pull image {requested:?}: {message}"),
                );
                Err(ImageError {
                    reason: ImageErrorReason::ErrImagePull,
                    message,
                })
            }
        }
    }

    /// Pulls with each matching credential in turn (the first success
    /// wins), or without credentials when none match; the error message is
    /// upstream's aggregate of every attempt's error.
    async fn pull(&self, cri: &Cri, client: &kube::Client, pod: &Pod, image: &str) -> Result<String, String> {
        let repository = reference::Reference::parse(image)
            .map(|r| r.repository())
            .unwrap_or_default();
        let mut auths: Vec<Option<api::AuthConfig>> = pull_secrets_keyring(client, pod)
            .await
            .lookup(&repository)
            .into_iter()
            .map(Some)
            .collect();
        if auths.is_empty() {
            let configured = self.registries.auth_for(image_host(&repository));
            auths.push(configured.map(|auth| api::AuthConfig {
                username: auth.username.clone(),
                password: auth.password.clone(),
                auth: auth.auth.clone(),
                identity_token: auth.identity_token.clone(),
                ..Default::default()
            }));
        }
        let mut errors = Vec::new();
        for auth in auths {
            let request = api::PullImageRequest {
                image: Some(api::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                auth,
                sandbox_config: None,
            };
            match cri.images.clone().pull_image(request).await {
                Ok(response) => return Ok(response.into_inner().image_ref),
                Err(status) => errors.push(go_status(&status)),
            }
        }
        Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(", "))
        })
    }
}

/// The image, if the runtime has it.
async fn image_status(cri: &Cri, image: &str) -> Result<Option<api::Image>, tonic::Status> {
    let request = api::ImageStatusRequest {
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        verbose: false,
    };
    Ok(cri.images.clone().image_status(request).await?.into_inner().image)
}

/// The keyring of the pod's imagePullSecrets; a secret that cannot be read
/// is skipped with a warning, as upstream does.
async fn pull_secrets_keyring(client: &kube::Client, pod: &Pod) -> Keyring {
    let mut keyring = Keyring::default();
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .cloned()
        .unwrap_or_default();
    if names.is_empty() {
        return keyring;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in names {
        match secrets.get_opt(&name.name).await {
            Ok(Some(secret)) => keyring.add_secret(&secret),
            Ok(None) => tracing::warn!(secret = name.name, "imagePullSecret not found; pulling without it"),
            Err(err) => tracing::warn!(secret = name.name, %err, "cannot read imagePullSecret"),
        }
    }
    keyring
}

/// A gRPC status as Go's grpc-go prints it (`rpc error: code = NotFound desc = …`),
/// the text upstream shows in pull errors.
fn go_status(status: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn pull_policy_defaults_like_the_api_server() {
        assert_eq!(PullPolicy::of(&container("busybox", None)), PullPolicy::Always);
        assert_eq!(PullPolicy::of(&container("busybox:latest", None)), PullPolicy::Always);
        assert_eq!(
            PullPolicy::of(&container("busybox:1.36", None)),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::of(&container("127.0.0.1:5000/bb", None)),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of(&container("127.0.0.1:5000/bb:v1", None)),
            PullPolicy::IfNotPresent
        );
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(PullPolicy::of(&container(&digest, None)), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::of(&container("busybox", Some("Never"))), PullPolicy::Never);
        assert_eq!(
            PullPolicy::of(&container("busybox:1", Some("Always"))),
            PullPolicy::Always
        );
    }

    #[test]
    fn grpc_errors_read_like_go() {
        let status = tonic::Status::not_found("failed to pull and unpack image");
        assert_eq!(
            go_status(&status),
            "rpc error: code = NotFound desc = failed to pull and unpack image"
        );
    }

    #[test]
    fn error_reasons_are_upstreams() {
        let err = ImageError {
            reason: ImageErrorReason::ImagePullBackOff,
            message: "Back-off pulling image \"x\"".into(),
        };
        assert_eq!(err.to_string(), "ImagePullBackOff: Back-off pulling image \"x\"");
    }
}
