//! End to end: a Deployment on hollow nodes driven only by the real kubectl
//! — `rollout status`, `set image`, `rollout undo`, `scale` — while a watch
//! checks that `maxUnavailable` holds at every step; then cascading
//! deletion of the Deployment and of its namespace.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},
  "spec":{"replicas":4,"selector":{"matchLabels":{"app":"web"}},
  "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":1}},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#;

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn eventually(c: &Cluster, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(45);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            c.ok(&["get", "all", "-A"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn images(c: &Cluster) -> Vec<String> {
    let out = c.ok(&[
        "get",
        "pods",
        "-n",
        "shop",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    out.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_updates_keep_max_unavailable_and_undo_and_scale_and_cascade() {
    let c = Cluster::start();
    let _nodes = c.simulate(3);
    c.ok(&["create", "namespace", "shop"]);
    c.ok_in(&["create", "-f", "-"], DEPLOYMENT);
    c.ok(&["rollout", "status", "-n", "shop", "deployment/web", "--timeout=60s"]);
    assert_eq!(images(&c), vec!["nginx:1.26"; 4]);

    // From here on, every pod change is checked: at least replicas -
    // maxUnavailable = 3 pods stay Ready throughout the rollouts.
    let pods: Api<Pod> = Api::namespaced(c.client().await, "shop");
    let states: Arc<Mutex<BTreeMap<String, bool>>> = Arc::default();
    let lowest = Arc::new(Mutex::new(usize::MAX));
    let watch = {
        let (states, lowest) = (states.clone(), lowest.clone());
        tokio::spawn(async move {
            let mut events = watcher(pods, watcher::Config::default().labels("app=web")).boxed();
            while let Some(Ok(event)) = events.next().await {
                let mut states = states.lock().unwrap();
                match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        states.insert(pod.metadata.name.clone().unwrap(), ready(&pod));
                    }
                    watcher::Event::Delete(pod) => {
                        states.remove(pod.metadata.name.as_deref().unwrap());
                    }
                    watcher::Event::Init => states.clear(),
                    watcher::Event::InitDone => {
                        // Counting starts with the whole initial list seen.
                        *lowest.lock().unwrap() = states.values().filter(|r| **r).count();
                        continue;
                    }
                }
                let now = states.values().filter(|r| **r).count();
                let mut lowest = lowest.lock().unwrap();
                if *lowest != usize::MAX {
                    *lowest = (*lowest).min(now);
                }
            }
        })
    };
    let c2 = &c;
    tokio::task::block_in_place(|| {
        eventually(c2, "the watch to see four ready pods", || *lowest.lock().unwrap() == 4);
        c2.ok(&["set", "image", "-n", "shop", "deployment/web", "web=nginx:1.27"]);
        c2.ok(&["rollout", "status", "-n", "shop", "deployment/web", "--timeout=60s"]);
        eventually(c2, "only new pods", || images(c2) == vec!["nginx:1.27"; 4]);
        let history = c2.ok(&["rollout", "history", "-n", "shop", "deployment/web"]);
        assert!(history.contains('1') && history.contains('2'), "{history}");

        c2.ok(&["rollout", "undo", "-n", "shop", "deployment/web"]);
        c2.ok(&["rollout", "status", "-n", "shop", "deployment/web", "--timeout=60s"]);
        eventually(c2, "the old image back", || images(c2) == vec!["nginx:1.26"; 4]);
    });
    watch.abort();
    let lowest = *lowest.lock().unwrap();
    assert!(
        lowest >= 3,
        "only {lowest} pods were Ready at one point (maxUnavailable 1 of 4)"
    );

    tokio::task::block_in_place(|| {
        c.ok(&["scale", "-n", "shop", "deployment/web", "--replicas=6"]);
        eventually(&c, "six pods", || images(&c).len() == 6);
        c.ok(&["rollout", "status", "-n", "shop", "deployment/web", "--timeout=60s"]);
        c.ok(&["scale", "-n", "shop", "deployment/web", "--replicas=2"]);
        eventually(&c, "two pods", || images(&c).len() == 2);

        // Two ReplicaSets (the template went back and forth): both go with it.
        let sets = c.ok(&["get", "rs", "-n", "shop", "-o", "name"]);
        assert_eq!(sets.lines().count(), 2, "{sets}");
        c.ok(&["delete", "-n", "shop", "deployment/web"]);
        eventually(&c, "its ReplicaSets and pods collected", || {
            c.ok(&["get", "rs,pods", "-n", "shop", "-o", "name"]).trim().is_empty()
        });

        c.ok_in(&["create", "-f", "-"], DEPLOYMENT);
        eventually(&c, "pods again", || images(&c).len() == 4);
        c.ok(&["delete", "namespace", "shop", "--wait=false"]);
        eventually(&c, "the namespace emptied and gone", || {
            !c.kubectl(&["get", "namespace", "shop"]).status.success()
        });
    });
}
