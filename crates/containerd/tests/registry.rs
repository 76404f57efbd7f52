//! Pulls through CRI from a local registry on 127.0.0.1 (Debian's
//! `docker-registry` with htpasswd auth): with credentials the pull works,
//! without it fails; a `registries.yaml` mirror is honoured via hosts.toml.

mod common;

use capstan_containerd::testing::LocalRegistry;
use capstan_containerd::{Containerd, cri, import};
use common::{TestRuntime, busybox_image};
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{AuthConfig, ImageSpec, PullImageRequest};

fn pull_request(image: &str, auth: Option<AuthConfig>) -> PullImageRequest {
    PullImageRequest {
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        auth,
        sandbox_config: None,
    }
}

#[tokio::test]
async fn pull_from_a_loopback_registry_needs_the_credentials() {
    let rt = TestRuntime::new();
    let registry = LocalRegistry::start();
    let tarball = registry.dir().join("bb.tar");
    busybox_image("docker.io/capstan-test/busybox:push")
        .write_to(&tarball)
        .unwrap();
    registry.push(&tarball, "capstan-test/busybox:1");

    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    let mut images = ImageServiceClient::new(cri::channel(containerd.endpoint()).await.unwrap());
    let image = format!("{}/capstan-test/busybox:1", registry.addr);

    let denied = images
        .pull_image(pull_request(&image, None))
        .await
        .expect_err("a pull without credentials fails");
    assert!(denied.message().contains("401 Unauthorized"), "{denied:?}");
    let wrong = AuthConfig {
        username: registry.username.clone(),
        password: "wrong".into(),
        ..Default::default()
    };
    images
        .pull_image(pull_request(&image, Some(wrong)))
        .await
        .expect_err("a pull with a wrong password fails");
    assert!(!import::image_present(containerd.endpoint(), &image).await.unwrap());

    let auth = AuthConfig {
        username: registry.username.clone(),
        password: registry.password.clone(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let image_ref = images
        .pull_image(pull_request(&image, Some(auth)))
        .await
        .expect("pull with credentials")
        .into_inner();
    eprintln!("cold pull from the loopback registry took {:?}", started.elapsed());
    assert!(image_ref.image_ref.starts_with("sha256:"), "{image_ref:?}");
    assert!(import::image_present(containerd.endpoint(), &image).await.unwrap());
    containerd.stop().await;
}

#[tokio::test]
async fn a_registries_yaml_mirror_is_used_through_hosts_toml() {
    let rt = TestRuntime::new();
    let registry = LocalRegistry::start();
    let tarball = registry.dir().join("bb.tar");
    busybox_image("docker.io/capstan-test/busybox:push")
        .write_to(&tarball)
        .unwrap();
    registry.push(&tarball, "capstan-test/busybox:mirrored");

    // 127.0.0.2:9 has no registry (and needs no name lookup): every pull of
    // its images must come from the mirror.
    let registries = rt.data_dir().join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  \"127.0.0.2:9\":\n    endpoint: [\"http://{}\"]\n",
            registry.addr
        ),
    )
    .unwrap();
    let mut config = rt.config();
    config.registry_config = Some(registries);
    let containerd = Containerd::start(config.clone()).await.expect("containerd starts");
    let hosts = std::fs::read_to_string(config.certs_dir().join("127.0.0.2:9/hosts.toml")).unwrap();
    assert!(
        hosts.contains(&format!("[host.\"http://{}\"]", registry.addr)),
        "{hosts}"
    );

    let mut images = ImageServiceClient::new(cri::channel(containerd.endpoint()).await.unwrap());
    let auth = AuthConfig {
        username: registry.username.clone(),
        password: registry.password.clone(),
        ..Default::default()
    };
    images
        .pull_image(pull_request("127.0.0.2:9/capstan-test/busybox:mirrored", Some(auth)))
        .await
        .expect("pull through the mirror");
    assert!(
        import::image_present(containerd.endpoint(), "127.0.0.2:9/capstan-test/busybox:mirrored")
            .await
            .unwrap()
    );
    containerd.stop().await;
}

#[tokio::test]
async fn a_wildcard_mirror_applies_to_every_registry() {
    let rt = TestRuntime::new();
    let registry = LocalRegistry::start();
    let tarball = registry.dir().join("bb.tar");
    busybox_image("docker.io/capstan-test/busybox:push")
        .write_to(&tarball)
        .unwrap();
    registry.push(&tarball, "capstan-test/busybox:wild");

    let registries = rt.data_dir().join("registries.yaml");
    std::fs::write(
        &registries,
        format!("mirrors:\n  \"*\":\n    endpoint: [\"http://{}\"]\n", registry.addr),
    )
    .unwrap();
    let mut config = rt.config();
    config.registry_config = Some(registries);
    let containerd = Containerd::start(config).await.expect("containerd starts");
    let mut images = ImageServiceClient::new(cri::channel(containerd.endpoint()).await.unwrap());
    let auth = AuthConfig {
        username: registry.username.clone(),
        password: registry.password.clone(),
        ..Default::default()
    };
    images
        .pull_image(pull_request("127.0.0.3:9/capstan-test/busybox:wild", Some(auth)))
        .await
        .expect("pull through the wildcard mirror");
    containerd.stop().await;
}
