//! Image pulls end to end: `capstan server` with its real node pulls from a
//! registry on 127.0.0.1 (Debian's `docker-registry`, htpasswd auth) with
//! an imagePullSecret made by `kubectl create secret docker-registry`, or
//! with credentials from `--registry-config`; without credentials the pod
//! stays in ImagePullBackOff.

mod common;

use std::time::{Duration, Instant};

use capstan_containerd::archive::{self, BUSYBOX_APPLETS};
use capstan_containerd::testing::LocalRegistry;
use common::{Cluster, wait_pod};
use serde_json::{Value, json};

/// A registry with the busybox test image pushed as `capstan-e2e/private:1`;
/// returns it and the image's full name.
fn registry_with_image() -> (LocalRegistry, String) {
    let registry = LocalRegistry::start();
    let tarball = registry.dir().join("private.tar");
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
    archive::busybox("docker.io/capstan-e2e/private:1", busybox, BUSYBOX_APPLETS)
        .write_to(&tarball)
        .unwrap();
    registry.push(&tarball, "capstan-e2e/private:1");
    let image = format!("{}/capstan-e2e/private:1", registry.addr);
    (registry, image)
}

fn pod(name: &str, image: &str, pull_secret: Option<&str>) -> String {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{ "name": "app", "image": image, "command": ["sleep", "3600"] }]
    });
    if let Some(secret) = pull_secret {
        spec["imagePullSecrets"] = json!([{ "name": secret }]);
    }
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name }, "spec": spec }).to_string()
}

fn app_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && app_status(pod)["state"]["running"].is_object()
}

fn waiting_reason(pod: &Value) -> &str {
    app_status(pod)["state"]["waiting"]["reason"].as_str().unwrap_or("")
}

#[test]
fn an_image_from_a_local_registry_is_pulled_with_an_image_pull_secret() {
    let (registry, image) = registry_with_image();
    let c = Cluster::start_node();
    c.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.addr),
        &format!("--docker-username={}", registry.username),
        &format!("--docker-password={}", registry.password),
    ]);

    // Without the secret the registry refuses: ErrImagePull, then back-off.
    // `Always`: once the other pod has pulled the image, IfNotPresent would
    // let this one run from the node's copy — as upstream does.
    let mut no_secret: Value = serde_json::from_str(&pod("no-secret", &image, None)).unwrap();
    no_secret["spec"]["containers"][0]["imagePullPolicy"] = "Always".into();
    c.ok_in(&["apply", "-f", "-"], &no_secret.to_string());
    let refused = wait_pod(&c, "no-secret", Duration::from_secs(60), |p| {
        waiting_reason(p) == "ImagePullBackOff"
    });
    assert_eq!(
        app_status(&refused)["state"]["waiting"]["message"],
        format!("Back-off pulling image \"{image}\"")
    );

    // With it the image is pulled and the pod runs.
    c.ok_in(&["apply", "-f", "-"], &pod("with-secret", &image, Some("regcred")));
    let pulled = wait_pod(&c, "with-secret", Duration::from_secs(60), running);
    assert_eq!(app_status(&pulled)["image"], image);
    assert!(
        app_status(&pulled)["imageID"].as_str().is_some_and(|id| !id.is_empty()),
        "imageID: {}",
        app_status(&pulled)["imageID"]
    );
    // The refused pod is still not running: the secret is per pod.
    assert!(!running(&c.get_json(&["get", "pod", "no-secret"])));

    // Upstream's image events, as `kubectl describe pod` shows them.
    let pulled_message = |m: &str| m.starts_with(&format!("Successfully pulled image \"{image}\" in "));
    wait_events(&c, "with-secret", |events| {
        events
            .iter()
            .any(|(reason, message)| reason == "Pulling" && message == &format!("Pulling image \"{image}\""))
            && events
                .iter()
                .any(|(reason, message)| reason == "Pulled" && pulled_message(message))
    });
    wait_events(&c, "no-secret", |events| {
        events.iter().any(|(reason, message)| {
            reason == "Failed" && message.starts_with(&format!("Failed to pull image \"{image}\": rpc error: "))
        }) && events
            .iter()
            .any(|(reason, message)| reason == "BackOff" && message == &format!("Back-off pulling image \"{image}\""))
    });
}

/// Waits until the events of pod `name` (reason, message) satisfy `done`.
fn wait_events(c: &Cluster, name: &str, done: impl Fn(&[(String, String)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let events = c.get_json(&["get", "events"]);
        seen = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["name"] == name && e["involvedObject"]["kind"] == "Pod")
            .map(|e| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (text(&e["reason"]), text(&e["message"]))
            })
            .collect();
        if done(&seen) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("events of pod {name} lack what was expected: {seen:#?}");
}

#[test]
fn registry_config_credentials_are_used_without_a_pull_secret() {
    let (registry, image) = registry_with_image();
    let dir = tempfile::tempdir().unwrap();
    let config = common::write(
        dir.path(),
        "registries.yaml",
        &format!(
            "configs:\n  \"{}\":\n    auth:\n      username: {}\n      password: {}\n",
            registry.addr, registry.username, registry.password
        ),
    );
    let c = Cluster::start_node_with(&["--registry-config", config.to_str().unwrap()]);
    c.ok_in(&["apply", "-f", "-"], &pod("configured", &image, None));
    wait_pod(&c, "configured", Duration::from_secs(60), running);
}

#[test]
fn capstan_image_import_adds_an_image_to_the_running_node() {
    let c = Cluster::start_node();
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("imported.tar");
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
    archive::busybox("docker.io/capstan-e2e/imported:1", busybox, BUSYBOX_APPLETS)
        .write_to(&tarball)
        .unwrap();
    let capstan = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(args)
            .arg("--data-dir")
            .arg(c.data_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "capstan {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let imported = capstan(&["image", "import", tarball.to_str().unwrap()]);
    assert!(imported.contains("imported "), "{imported}");
    assert!(c.data_dir().join("agent/images/imported.tar").is_file());
    let listed = capstan(&["image", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("docker.io/capstan-e2e/imported:1 ")),
        "{listed}"
    );

    // Pull policy Never: only an image already on the node can run.
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "never" },
        "spec": { "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": "capstan-e2e/imported:1", "imagePullPolicy": "Never", "command": ["sleep", "3600"]
        }]}
    });
    c.ok_in(&["apply", "-f", "-"], &manifest.to_string());
    wait_pod(&c, "never", Duration::from_secs(60), running);
}
