//! Image tarballs into the real containerd: a docker-archive busybox image
//! imports and CRI sees it; a directory import skips what it imported.

mod common;

use std::time::Instant;

use capstan_containerd::{Containerd, import, import_images};
use common::{TestRuntime, busybox_image};

#[tokio::test]
async fn directory_import_imports_new_tarballs_and_skips_imported_ones() {
    let rt = TestRuntime::new();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    let endpoint = containerd.endpoint().to_path_buf();
    let images = rt.images_dir();
    std::fs::create_dir_all(&images).unwrap();
    busybox_image("docker.io/capstan-test/busybox:one")
        .write_to(&images.join("one.tar"))
        .unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();

    let started = Instant::now();
    let report = import_images(&endpoint, &images).await.unwrap();
    eprintln!("importing a busybox tarball took {:?}", started.elapsed());
    assert_eq!(report.imported, [images.join("one.tar")]);
    assert!(report.skipped.is_empty());
    assert!(
        import::image_present(&endpoint, "docker.io/capstan-test/busybox:one")
            .await
            .unwrap()
    );

    busybox_image("docker.io/capstan-test/busybox:two")
        .write_to(&images.join("two.tar"))
        .unwrap();
    let started = Instant::now();
    let report = import_images(&endpoint, &images).await.unwrap();
    eprintln!("a directory import with one new tarball took {:?}", started.elapsed());
    assert_eq!(report.imported, [images.join("two.tar")]);
    assert_eq!(report.skipped, [images.join("one.tar")]);
    assert!(
        import::image_present(&endpoint, "docker.io/capstan-test/busybox:two")
            .await
            .unwrap()
    );

    // A tarball whose image containerd lost (here: removed) is imported again.
    let status = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&endpoint)
        .args(["-n", "k8s.io", "images", "rm", "docker.io/capstan-test/busybox:one"])
        .status()
        .unwrap();
    assert!(status.success());
    let report = import_images(&endpoint, &images).await.unwrap();
    assert_eq!(report.imported, [images.join("one.tar")]);
    assert_eq!(report.skipped, [images.join("two.tar")]);
    containerd.stop().await;
}

#[tokio::test]
async fn a_missing_images_dir_imports_nothing() {
    let rt = TestRuntime::new();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    let report = import_images(containerd.endpoint(), &rt.images_dir()).await.unwrap();
    assert!(report.imported.is_empty() && report.skipped.is_empty());
    containerd.stop().await;
}
