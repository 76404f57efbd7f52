//! Binding (upstream `DefaultBinder`): `POST pods/<name>/binding` with a
//! `v1 Binding`; the API server sets `spec.nodeName` and the
//! `PodScheduled=True` condition in one write.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::types::PodInfo;

/// The Binding object for `pod` onto `node`; the UID guards against binding a recreated pod.
pub fn binding(pod: &PodInfo, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: pod.pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

/// Binds `pod` to `node`.
pub async fn bind(client: &kube::Client, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let _: serde_json::Value = api
        .create_subresource("binding", &pod.name, &PostParams::default(), &binding(pod, node))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    #[test]
    fn binding_targets_the_node() {
        let mut p = pod("web", &[]);
        p.metadata.uid = Some("u1".into());
        let b = binding(&pod_info(p), "n1");
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["metadata"]["uid"], "u1");
        assert_eq!(json["target"]["kind"], "Node");
        assert_eq!(json["target"]["name"], "n1");
    }
}
