//! What exists in every cluster from its first start: the system
//! namespaces, the `kubernetes` Service through which pods reach the API
//! (and the default ServiceCIDR its address comes from),
//! and the two system PriorityClasses critical add-ons run at. Created through the same strategy as client writes, and only when
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
        create_if_missing(server, ("", "namespaces"), None, json!({"metadata": {"name": name}})).await?;
    }
    for class in system_priority_classes() {
        create_if_missing(server, ("scheduling.k8s.io", "priorityclasses"), None, class).await?;
    }
    let service = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": server.config.service_ip().to_string(),
            "clusterIPs": [server.config.service_ip().to_string()],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.config.port}],
        },
    });
    let service_cidr = json!({
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": [server.config.service_cidr.to_string()]},
    });
    create_if_missing(server, ("networking.k8s.io", "servicecidrs"), None, service_cidr).await?;
    create_if_missing(server, ("", "services"), Some("default"), service).await?;
    if let Some(address) = server.config.advertise_address {
        for (resource, object) in kubernetes_endpoints(address, server.config.port) {
            upsert(server, resource, object).await?;
        }
    }
    Ok(())
}

/// Where pods reach the API through the `kubernetes` Service: upstream's
/// endpoint reconciler keeps an Endpoints and an EndpointSlice (both named
/// `kubernetes`) pointing at each API server's advertise address.
fn kubernetes_endpoints(address: std::net::IpAddr, port: u16) -> [((&'static str, &'static str), Object); 2] {
    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoints = json!({
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": address.to_string()}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }],
    });
    let slice = json!({
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    [
        (("", "endpoints"), endpoints),
        (("discovery.k8s.io", "endpointslices"), slice),
    ]
}

/// Creates `object` in `default`, or replaces what is there when its
/// content differs (the address moves when the machine's does).
async fn upsert(server: &ApiServer, (group, plural): (&str, &str), mut object: Object) -> Result<(), ApiError> {
    let resource = registry::lookup(group, "v1", plural).ok_or_else(|| ApiError::internal(format!("no {plural}")))?;
    let name = capstan_apimachinery::meta::name(&object).to_string();
    let key = ObjectKey {
        resource,
        namespace: Some("default"),
        name: &name,
    };
    let Some(current) = server.objects.try_get(key).await? else {
        return create_if_missing(server, (group, plural), Some("default"), object).await;
    };
    let content = |o: &Object| {
        let mut o = o.clone();
        if let Some(fields) = o.as_object_mut() {
            for generated in ["metadata", "apiVersion", "kind"] {
                fields.remove(generated);
            }
        }
        o
    };
    if content(&current) == content(&object) {
        return Ok(());
    }
    object["metadata"] = current["metadata"].clone();
    let revision = capstan_apimachinery::meta::resource_version(&current)
        .parse()
        .map_err(|_| ApiError::internal(format!("{plural}/{name}: unreadable resourceVersion")))?;
    server.objects.update(key, object, revision).await?;
    tracing::info!(resource = plural, name, "updated the API server's endpoints");
    Ok(())
}

/// Upstream's `system-node-critical` and `system-cluster-critical`.
fn system_priority_classes() -> [Object; 2] {
    let class = |name: &str, value: i64, description: &str| {
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "globalDefault": false,
            "preemptionPolicy": "PreemptLowerPriority",
            "description": description,
        })
    };
    [
        class(
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        class(
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ]
}

async fn create_if_missing(
    server: &ApiServer,
    (group, plural): (&str, &str),
    namespace: Option<&str>,
    mut object: Object,
) -> Result<(), ApiError> {
    let resource = registry::lookup(group, "v1", plural).ok_or_else(|| ApiError::internal(format!("no {plural}")))?;
    strategy::prepare_for_create(resource, &mut object, namespace)?;
    let name = capstan_apimachinery::meta::name(&object).to_string();
    let key = ObjectKey {
        resource,
        namespace,
        name: &name,
    };
    if server.objects.try_get(key).await?.is_some() {
        return Ok(());
    }
    // The `kubernetes` Service takes its address like any other Service.
    let allocation = match resource.kind {
        "Service" => Some(
            server
                .allocators
                .allocate(server, resource, &mut object, None, false)
                .await?,
        ),
        _ => None,
    };
    let created = server.objects.create(key, object).await;
    if let Some(allocation) = allocation {
        match &created {
            Ok(_) => allocation.commit(server).await,
            Err(_) => allocation.revert(server).await,
        }
    }
    match created {
        Ok(_) => {
            tracing::info!(resource = plural, name, "created");
            Ok(())
        }
        Err(err) if err.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}
