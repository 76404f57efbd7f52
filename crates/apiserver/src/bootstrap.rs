//! What exists in every cluster from its first start: the system
//! namespaces and the `kubernetes` Service through which pods reach the
//! API. Created through the same strategy as client writes, and only when
//! missing, so restarts keep what is there.

use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, registry};
use serde_json::json;

use crate::objects::ObjectKey;
use crate::{ApiServer, strategy};

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the built-in objects that are missing.
pub async fn run(server: &ApiServer) -> Result<(), ApiError> {
    for name in SYSTEM_NAMESPACES {
        create_if_missing(server, "namespaces", None, json!({"metadata": {"name": name}})).await?;
    }
    let service = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": server.config.service_ip.to_string(),
            "clusterIPs": [server.config.service_ip.to_string()],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.config.port}],
        },
    });
    create_if_missing(server, "services", Some("default"), service).await
}

async fn create_if_missing(
    server: &ApiServer,
    plural: &str,
    namespace: Option<&str>,
    mut object: Object,
) -> Result<(), ApiError> {
    let resource = registry::lookup("", "v1", plural).ok_or_else(|| ApiError::internal(format!("no {plural}")))?;
    strategy::prepare_for_create(resource, &mut object, namespace)?;
    let name = capstan_apimachinery::meta::name(&object).to_string();
    let key = ObjectKey {
        resource,
        namespace,
        name: &name,
    };
    match server.objects.create(key, object).await {
        Ok(_) => {
            tracing::info!(resource = plural, name, "created");
            Ok(())
        }
        Err(err) if err.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}
