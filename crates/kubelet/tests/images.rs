//! `ImageManager::ensure_image` against the real containerd and a local
//! registry on 127.0.0.1: pull policies, `--registry-config` credentials,
//! upstream's failure reasons and the pull back-off.

use capstan_containerd::archive::{self, BUSYBOX_APPLETS};
use capstan_containerd::registries::{Registries, RegistryAuth, RegistryConfig};
use capstan_containerd::testing::LocalRegistry;
use capstan_containerd::{Containerd, ContainerdConfig};
use capstan_kubelet::cri;
use capstan_kubelet::images::{ImageErrorReason, ImageManager};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            uid: Some("uid-images".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn container(image: &str, policy: &str) -> Container {
    Container {
        name: "c".into(),
        image: Some(image.into()),
        image_pull_policy: Some(policy.into()),
        ..Default::default()
    }
}

/// A client that is never called: these pods have no imagePullSecrets.
fn unused_client() -> kube::Client {
    kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap()
}

#[tokio::test]
async fn ensure_image_follows_pull_policy_credentials_and_backoff() {
    let data_dir = tempfile::Builder::new().prefix("capstan-images-").tempdir().unwrap();
    let registry = LocalRegistry::start();
    let tarball = registry.dir().join("bb.tar");
    let busybox = std::fs::read("/bin/busybox").unwrap();
    archive::busybox("docker.io/capstan-test/busybox:push", busybox, BUSYBOX_APPLETS)
        .write_to(&tarball)
        .unwrap();
    registry.push(&tarball, "capstan-test/busybox:1");
    let image = format!("{}/capstan-test/busybox:1", registry.addr);

    let containerd = Containerd::start(ContainerdConfig::for_data_dir(data_dir.path()))
        .await
        .expect("containerd");
    let cri = cri::connect(containerd.endpoint()).await.unwrap();
    let client = unused_client();

    // Never, and the image is missing.
    let without_creds = ImageManager::new(Registries::default());
    let err = without_creds
        .ensure_image(&cri, &client, &pod(), &container(&image, "Never"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, ImageErrorReason::ErrImageNeverPull);
    assert_eq!(
        err.message,
        format!("Container image \"{image}\" is not present with pull policy of Never")
    );

    // No credentials: the registry refuses; then the pull backs off.
    let err = without_creds
        .ensure_image(&cri, &client, &pod(), &container(&image, "IfNotPresent"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, ImageErrorReason::ErrImagePull);
    assert!(err.message.starts_with("rpc error: code = "), "{}", err.message);
    assert!(err.message.contains("401 Unauthorized"), "{}", err.message);
    let err = without_creds
        .ensure_image(&cri, &client, &pod(), &container(&image, "IfNotPresent"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, ImageErrorReason::ImagePullBackOff);
    assert_eq!(err.message, format!("Back-off pulling image \"{image}\""));

    // An invalid name.
    let err = without_creds
        .ensure_image(&cri, &client, &pod(), &container("Bad/Name", "Always"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, ImageErrorReason::InvalidImageName);
    assert_eq!(
        err.message,
        "Failed to apply default image tag \"Bad/Name\": couldn't parse image name \"Bad/Name\": repository name must be lowercase"
    );

    // --registry-config credentials for the registry's host.
    let auth = RegistryAuth {
        username: registry.username.clone(),
        password: registry.password.clone(),
        ..Default::default()
    };
    let mut registries = Registries::default();
    registries.configs.insert(
        registry.addr.clone(),
        RegistryConfig {
            auth: Some(auth),
            tls: None,
        },
    );
    let with_creds = ImageManager::new(registries);
    let id = with_creds
        .ensure_image(&cri, &client, &pod(), &container(&image, "Always"))
        .await
        .expect("pulled");
    assert!(id.starts_with("sha256:"), "{id}");

    // Present now: IfNotPresent and Never need no registry at all.
    drop(registry);
    for policy in ["IfNotPresent", "Never"] {
        let found = without_creds
            .ensure_image(&cri, &client, &pod(), &container(&image, policy))
            .await
            .unwrap();
        assert_eq!(found, id);
    }
    containerd.stop().await;
}
