//! Client libraries other than kubectl, unchanged: kube-rs (the Rust
//! client whose informers Capstan's own components use) and the official
//! Python client.

mod common;

use common::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "kube-rs"}},
        "data": {"key": value},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_lists_watches_and_patches() {
    let cluster = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");

    let created = api
        .create(&PostParams::default(), &config_map("one", "1"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let listed = api.list(&ListParams::default().labels("app=kube-rs")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());

    // The informer machinery: list, then watch, seeing a later change.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen_initial = false;
    while let Some(event) = events.try_next().await.unwrap() {
        match event {
            watcher::Event::InitDone => {
                seen_initial = true;
                let patch = serde_json::json!({"data": {"key": "2"}});
                api.patch("one", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
            watcher::Event::Apply(cm) if seen_initial => {
                assert_eq!(cm.data.unwrap()["key"], "2");
                break;
            }
            _ => {}
        }
    }

    // Server-side apply through kube-rs, with its own field manager.
    let applied = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"owner": "kube-rs"},
    });
    let params = PatchParams::apply("capstan-test");
    let cm = api.patch("applied", &params, &Patch::Apply(&applied)).await.unwrap();
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["capstan-test".to_string()]);

    let err = api.get("missing").await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        other => panic!("unexpected error {other:?}"),
    }
    api.delete("one", &Default::default()).await.unwrap();
    assert!(api.get_opt("one").await.unwrap().is_none());
}

#[test]
fn python_client_crud_and_watch() {
    let cluster = Cluster::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(cluster.kubeconfig())
        .output()
        .expect("python3 (the Makefile installs the kubernetes package)");
    assert!(
        out.status.success(),
        "python client failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client: ok"));
}
