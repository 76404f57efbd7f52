//! The pods of each scenario, after upstream scheduler_perf's templates
//! (`pod-default.yaml`, `pod-with-pod-anti-affinity.yaml`,
//! `pod-with-topology-spreading.yaml`): one `pause` container requesting
//! 100m CPU and 500Mi, plus the scenario's constraint; and the recorder
//! that watches a namespace and notes when each pod was first seen bound
//! and first seen Running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// (a) plain pods.
    Basic,
    /// (b) required anti-affinity to each other per hostname.
    AntiAffinity,
    /// (c) spread over zones, DoNotSchedule, maxSkew 1.
    TopologySpread,
    /// (d) one Deployment, create to all Running.
    Deployment,
}

impl Scenario {
    /// The upstream scheduler_perf test case it mirrors.
    pub fn upstream(self) -> &'static str {
        match self {
            Scenario::Basic => "SchedulingBasic",
            Scenario::AntiAffinity => "SchedulingPodAntiAffinity",
            Scenario::TopologySpread => "TopologySpreading",
            Scenario::Deployment => "(none: a Deployment from create to all pods Running)",
        }
    }

    pub fn namespace(self) -> String {
        format!(
            "sched-{}",
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )
    }

    /// The pod template: labels and the scenario's constraint on top of the default pod.
    pub fn template(self) -> Value {
        let mut template = json!({
            "metadata": {"labels": {"app": "bench"}},
            "spec": {"containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "500Mi"},
                    "limits": {"cpu": "100m", "memory": "500Mi"}
                }
            }]}
        });
        let selector = json!({"matchLabels": {"app": "bench"}});
        match self {
            Scenario::Basic | Scenario::Deployment => {}
            Scenario::AntiAffinity => {
                template["spec"]["affinity"] = json!({"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}
                    ]
                }});
            }
            Scenario::TopologySpread => {
                template["spec"]["topologySpreadConstraints"] = json!([{
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": selector
                }]);
            }
        }
        template
    }

    pub fn pod(self, index: usize) -> Result<Pod> {
        let mut pod = self.template();
        pod["apiVersion"] = "v1".into();
        pod["kind"] = "Pod".into();
        pod["metadata"]["name"] = format!("pod-{index}").into();
        serde_json::from_value(pod).context("building a pod")
    }

    pub fn deployment(self, replicas: usize) -> Result<Deployment> {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bench"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "bench"}},
                "template": self.template()
            }
        }))
        .context("building the deployment")
    }
}

/// When each pod of a namespace was first seen bound and Running.
#[derive(Debug, Default)]
pub struct Seen {
    pub bound: HashMap<String, Instant>,
    pub running: HashMap<String, Instant>,
}

/// Watches `namespace` into a [`Seen`]; resolves once the initial list is in.
pub async fn record(client: &kube::Client, namespace: &str) -> Result<(Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (synced_tx, synced) = tokio::sync::oneshot::channel();
    let writer = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut synced_tx = Some(synced_tx);
        let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => note(&writer, &pod),
                Ok(Event::InitDone) => {
                    if let Some(tx) = synced_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(err) => eprintln!("watching pods: {err}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), synced)
        .await
        .context("the pod watch did not list within 60 s")?
        .context("the pod watch ended")?;
    Ok((seen, task))
}

fn note(seen: &Mutex<Seen>, pod: &Pod) {
    let now = Instant::now();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        seen.bound.entry(name.clone()).or_insert(now);
    }
    if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
        seen.running.entry(name).or_insert(now);
    }
}

/// Creates `count` pods of `scenario`, `concurrency` at a time.
pub async fn create_pods(client: &kube::Client, scenario: Scenario, count: usize, concurrency: usize) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &scenario.namespace());
    let results: Vec<Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod = scenario.pod(i)?;
                api.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating pod-{i}"))?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until `done(seen)` reaches `count`, or fails after `timeout`.
pub async fn wait_for(
    seen: &Mutex<Seen>,
    count: usize,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Seen) -> usize,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = done(&seen.lock().unwrap_or_else(|e| e.into_inner()));
        if n >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {n} of {count} pods {what} within {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes every pod (and Deployment, ReplicaSet) of `namespace` and
/// waits until the hollow nodes have finished the deletions.
pub async fn clean(client: &kube::Client, namespace: &str, timeout: Duration) -> Result<()> {
    let everything = ListParams::default();
    let params = DeleteParams::background();
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .delete_collection(&params, &everything)
        .await
        .context("deleting deployments")?;
    Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .delete_collection(&params, &everything)
        .await
        .context("deleting replicasets")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    for round in 0.. {
        // Again now and then, for any pod a controller created meanwhile.
        if round % 20 == 0 {
            pods.delete_collection(&params, &everything)
                .await
                .context("deleting pods")?;
        }
        let left = pods.list_metadata(&ListParams::default().limit(1)).await?;
        if left.items.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("pods of {namespace} still there after {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_each_scenarios_constraint() {
        let basic = Scenario::Basic.pod(3).unwrap();
        assert_eq!(basic.metadata.name.as_deref(), Some("pod-3"));
        let spec = basic.spec.unwrap();
        assert!(spec.affinity.is_none() && spec.topology_spread_constraints.is_none());
        let requests = spec.containers[0].resources.as_ref().unwrap().requests.clone().unwrap();
        assert_eq!(requests["cpu"].0, "100m");

        let anti = Scenario::AntiAffinity.pod(0).unwrap().spec.unwrap().affinity.unwrap();
        let terms = anti
            .pod_anti_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(terms[0].topology_key, "kubernetes.io/hostname");

        let spread = Scenario::TopologySpread.pod(0).unwrap().spec.unwrap();
        let constraint = &spread.topology_spread_constraints.unwrap()[0];
        assert_eq!(
            (
                constraint.max_skew,
                constraint.topology_key.as_str(),
                constraint.when_unsatisfiable.as_str()
            ),
            (1, "topology.kubernetes.io/zone", "DoNotSchedule")
        );

        let deployment = Scenario::Deployment.deployment(10).unwrap();
        assert_eq!(deployment.spec.unwrap().replicas, Some(10));
        assert_eq!(Scenario::TopologySpread.namespace(), "sched-topology-spread");
    }
}
