//! End to end: the real `capstan` server, which runs the ReplicaSet,
//! Deployment and garbage collector controllers (but no kubelet: pod
//! readiness is simulated by patching pod status, as a kubelet would).

mod common;

use std::time::{Duration, Instant};

use common::Cluster as Server;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Polls `check` until it returns `Some`, for at most 20 seconds.
async fn eventually<T, F, Fut>(server: &Server, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let state = server.kubectl(&["get", "deploy,rs,pods", "-o", "yaml"]);
            panic!(
                "timed out waiting for {what}:\n{}",
                String::from_utf8_lossy(&state.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    let params = ListParams::default().labels(&format!("app={app}"));
    pods.list(&params)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// A Node with room for every pod here, so the in-process scheduler binds
/// the controllers' pods as in a real cluster (no kubelet runs on it).
fn add_node(server: &Server) {
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1","labels":{"kubernetes.io/hostname":"node-1"}},
        "status":{"capacity":{"cpu":"64","memory":"256Gi","pods":"110"},"allocatable":{"cpu":"64","memory":"256Gi","pods":"110"},
        "conditions":[{"type":"Ready","status":"True"}]}}"#;
    server.ok_in(&["create", "-f", "-"], node);
}

/// What a kubelet would report for a started container.
async fn mark_ready(pods: &Api<Pod>, pod: &Pod) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    // The pod may have been scaled away meanwhile.
    let _ = pods
        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status))
        .await;
}

async fn mark_all_ready(pods: &Api<Pod>, app: &str) {
    for pod in pods_of(pods, app).await {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            mark_ready(pods, &pod).await;
        }
    }
}

async fn replica_sets(api: &Api<ReplicaSet>) -> Vec<ReplicaSet> {
    api.list(&ListParams::default()).await.unwrap().items
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_rolls_out_rolls_back_and_is_collected() {
    let server = Server::start();
    add_node(&server);
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1"))
        .await
        .unwrap();

    // A ReplicaSet `web-<hash>` with three owned pods.
    let pods_now = eventually(&server, "3 pods", || async {
        let found = pods_of(&pods, "web").await;
        (found.len() == 3).then_some(found)
    })
    .await;
    let first = replica_sets(&sets).await.remove(0);
    let hash = first.labels()["pod-template-hash"].clone();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(first.annotations()["deployment.kubernetes.io/revision"], "1");
    assert_eq!(first.annotations()["deployment.kubernetes.io/desired-replicas"], "3");
    assert_eq!(first.annotations()["deployment.kubernetes.io/max-replicas"], "4");
    assert_eq!(first.annotations()["kubernetes.io/change-cause"], "first");
    for pod in &pods_now {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller, owner.block_owner_deletion),
            ("ReplicaSet", Some(true), Some(true))
        );
        assert!(
            pod.name_any().starts_with(&format!("web-{hash}-")),
            "{}",
            server.ok(&["get", "rs,pods"])
        );
        assert_eq!(pod.labels()["pod-template-hash"], hash);
    }

    // Ready pods: the rollout completes.
    mark_all_ready(&pods, "web").await;
    server.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    let d = deployments.get("web").await.unwrap();
    let status = d.status.clone().unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas, status.available_replicas),
        (Some(3), Some(3), Some(3))
    );
    let reasons: Vec<_> = status
        .conditions
        .unwrap()
        .iter()
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap()))
        .collect();
    assert!(
        reasons.contains(&("Available".into(), "MinimumReplicasAvailable".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("Progressing".into(), "NewReplicaSetAvailable".into())),
        "{reasons:?}"
    );

    // New image: surge one pod at a time, never fewer than 3 available.
    server.ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    drive_rollout(&client, &server, 3).await;
    let all = replica_sets(&sets).await;
    assert_eq!(all.len(), 2);
    let old = all.iter().find(|rs| rs.name_any() == first.name_any()).unwrap();
    assert_eq!(spec_replicas(old), 0);
    let history = server.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo: the first ReplicaSet is new again, revision 3.
    server.ok(&["rollout", "undo", "deployment/web"]);
    drive_rollout(&client, &server, 3).await;
    let old = sets.get(&first.name_any()).await.unwrap();
    assert_eq!(
        spec_replicas(&old),
        3,
        "{}",
        server.ok(&["get", "rs,deploy", "-o", "yaml"])
    );
    assert_eq!(old.annotations()["deployment.kubernetes.io/revision"], "3");
    assert_eq!(
        deployments.get("web").await.unwrap().annotations()["deployment.kubernetes.io/revision"],
        "3"
    );

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let messages: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m == &format!("Scaled up replica set web-{hash} to 3 from 0")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("Created pod: web-")),
        "{messages:?}"
    );

    // Background deletion: ReplicaSets and pods follow.
    deployments.delete("web", &DeleteParams::background()).await.unwrap();
    eventually(&server, "everything collected", || async {
        (replica_sets(&sets).await.is_empty() && pods_of(&pods, "web").await.is_empty()).then_some(())
    })
    .await;
}

/// Marks pods ready as they appear, checking that availability never
/// drops below `want` (maxUnavailable 0), until `rollout status` is done.
async fn drive_rollout(client: &Client, server: &Server, want: usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    eventually(server, "rollout complete", || async {
        let ready = pods_of(&pods, "web")
            .await
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        assert!(ready >= want, "only {ready} ready pods during the rollout");
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
        let total: i32 = replica_sets(&sets).await.iter().map(spec_replicas).sum();
        assert!(total <= want as i32 + 1, "surged beyond maxSurge: {total}");
        mark_all_ready(&pods, "web").await;
        let d = deployments.get("web").await.unwrap();
        let status = d.status.unwrap_or_default();
        let done = status.observed_generation >= d.metadata.generation
            && status.updated_replicas == Some(want as i32)
            && status.replicas == Some(want as i32)
            && status.available_replicas == Some(want as i32);
        done.then_some(())
    })
    .await;
    server.ok(&["rollout", "status", "deployment/web", "--timeout=10s"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_set_adopts_and_deletes_extra_pods_first_unready() {
    let server = Server::start();
    add_node(&server);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    // An orphan pod matching the selector is adopted rather than duplicated.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "rs"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))
    .unwrap();
    let orphan = pods.create(&PostParams::default(), &orphan).await.unwrap();
    mark_ready(&pods, &orphan).await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}}, "template": {
            "metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}
        }}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let found = eventually(&server, "2 pods", || async {
        let found = pods_of(&pods, "rs").await;
        (found.len() == 2 && found.iter().all(|p| !p.owner_references().is_empty())).then_some(found)
    })
    .await;
    assert!(found.iter().any(|p| p.name_any() == "stray"));
    // Scale to 1: the not-ready pod goes, the ready one stays.
    let scale = json!({"spec": {"replicas": 1}});
    eventually(&server, "scaled to 1", || async {
        sets.patch("rs", &PatchParams::default(), &Patch::Merge(&scale))
            .await
            .ok()
    })
    .await;
    let left = eventually(&server, "1 pod", || async {
        let found = pods_of(&pods, "rs").await;
        (found.len() == 1).then_some(found)
    })
    .await;
    assert_eq!(left[0].name_any(), "stray");
    eventually(&server, "status", || async {
        let status = sets.get("rs").await.unwrap().status?;
        (status.replicas == 1 && status.ready_replicas == Some(1) && status.available_replicas == Some(1)).then_some(())
    })
    .await;
}

async fn owned_config_map(client: &Client, owner: &ReplicaSet) -> Api<ConfigMap> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.name_any(),
        "uid": owner.uid().unwrap(), "blockOwnerDeletion": true
    }]}}))
    .unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    maps
}

async fn empty_replica_set(sets: &Api<ReplicaSet>, name: &str) -> ReplicaSet {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}
        }}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &rs).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collector_honours_propagation_policies() {
    let server = Server::start();
    add_node(&server);
    let client = server.client().await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");

    // Foreground: the dependent goes first, then the owner.
    let owner = empty_replica_set(&sets, "fg").await;
    let maps = owned_config_map(&client, &owner).await;
    sets.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually(&server, "foreground", || async {
        let gone = maps.get_opt("dependent").await.unwrap().is_none() && sets.get_opt("fg").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;

    // Orphan: the owner goes, the dependent stays without the reference.
    let owner = empty_replica_set(&sets, "or").await;
    let maps = owned_config_map(&client, &owner).await;
    sets.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually(&server, "orphan", || async {
        let map = maps.get("dependent").await.unwrap();
        (sets.get_opt("or").await.unwrap().is_none() && map.owner_references().is_empty()).then_some(())
    })
    .await;
    maps.delete("dependent", &DeleteParams::default()).await.unwrap();

    // Background: the dependent of a vanished owner is collected.
    let owner = empty_replica_set(&sets, "bg").await;
    let maps = owned_config_map(&client, &owner).await;
    sets.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually(&server, "background", || async {
        maps.get_opt("dependent").await.unwrap().is_none().then_some(())
    })
    .await;
}
