//! The `kube-root-ca.crt` ConfigMap in every namespace (upstream's
//! root-ca-cert-publisher): the cluster CA pods use to trust the API
//! server, mounted by the service-account token volume every pod gets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::Error;

pub const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Context {
    client: kube::Client,
    ca: String,
}

pub async fn run(client: kube::Client, root_ca: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    // A changed or deleted kube-root-ca.crt re-syncs its namespace.
    let by_namespace = |cm: ConfigMap| {
        cm.metadata
            .namespace
            .filter(|_| cm.metadata.name.as_deref() == Some(NAME))
            .map(|ns| ObjectRef::new(&ns))
    };
    let context = Arc::new(Context { client, ca: root_ca });
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            config_maps,
            watcher::Config::default().fields(&format!("metadata.name={NAME}")),
            by_namespace,
        )
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn wanted_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("ca.crt".to_string(), ca.to_string())])
}

async fn reconcile(namespace: Arc<Namespace>, context: Arc<Context>) -> Result<Action, Error> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(context.client.clone(), &name);
    let data = wanted_data(&context.ca);
    let annotations = BTreeMap::from([("kubernetes.io/description".to_string(), DESCRIPTION.to_string())]);
    let result = match api.get_opt(NAME).await? {
        Some(existing) if existing.data.as_ref() == Some(&data) => return Ok(Action::await_change()),
        Some(mut existing) => {
            existing.data = Some(data);
            existing
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(annotations);
            api.replace(NAME, &PostParams::default(), &existing).await
        }
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.to_string()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            api.create(&PostParams::default(), &config_map).await
        }
    };
    match result {
        Ok(_) => tracing::debug!(namespace = name, "published {NAME}"),
        // Written meanwhile, or the namespace began terminating: the watch brings us back.
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 409) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "root-ca-cert-publisher");
    Action::requeue(Duration::from_secs(2))
}
