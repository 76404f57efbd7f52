//! The downward API: pod fields and container resources as text, for
//! `env[].valueFrom` and `downwardAPI` volumes (upstream `pkg/fieldpath`,
//! `podFieldSelectorRuntimeValue` and `ExtractContainerResourceValue`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the node knows that the pod object may not say yet.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// The node's IPs, first the primary (`status.hostIP`).
    pub host_ips: Vec<String>,
    /// Node allocatable: the limit of a container that sets none.
    pub allocatable: BTreeMap<String, Quantity>,
}

/// A field or resource the downward API cannot produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("container {container} not found in pod {pod}")]
    NoContainer { container: String, pod: String },
    #[error("invalid divisor {0}")]
    InvalidDivisor(String),
}

/// Upstream's `FormatMap`: `key="value"` lines sorted by key, values quoted.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `metadata.labels['key']` → `("metadata.labels", "key")`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    Some((base, rest.strip_suffix("']")?))
}

/// The value of a pod field as text. `pod_ips` are the pod's addresses
/// (the sandbox's, which the status may not carry yet).
pub fn field_value(pod: &Pod, path: &str, pod_ips: &[String], node: &NodeFacts) -> Result<String, FieldError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let unsupported = || FieldError::UnsupportedField(path.to_string());
    if let Some((base, key)) = subscript(path) {
        let map = match base {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(unsupported()),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => text(meta.name.as_ref()),
        "metadata.namespace" => text(meta.namespace.as_ref()),
        "metadata.uid" => text(meta.uid.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref().unwrap_or(&BTreeMap::new())),
        "metadata.annotations" => format_map(meta.annotations.as_ref().unwrap_or(&BTreeMap::new())),
        "spec.nodeName" => text(spec.and_then(|s| s.node_name.as_ref())),
        "spec.serviceAccountName" => text(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.hostIP" => node.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => node.host_ips.join(","),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => return Err(unsupported()),
    })
}

fn milli(q: &Quantity) -> i64 {
    capstan_scheduler::quantity::milli_value(&q.0).unwrap_or(0)
}

fn value(q: &Quantity) -> i64 {
    capstan_scheduler::quantity::value(&q.0).unwrap_or(0)
}

/// `ceil(a / b)` for the non-negative amounts quantities hold.
fn ceil_div(a: i64, b: i64) -> i64 {
    if a <= 0 { a / b } else { (a + b - 1) / b }
}

/// A container resource as text, upstream's `ExtractContainerResourceValue`
/// after `MergeContainerResourceLimits`: limits the container does not set
/// are the node's allocatable; CPU rounds up in units of `divisor`
/// millicores, memory and ephemeral storage in units of `divisor` bytes.
/// `container_name` empty means `container`.
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    container_name: &str,
    resource: &str,
    divisor: Option<&Quantity>,
    node: &NodeFacts,
) -> Result<String, FieldError> {
    let target = if container_name.is_empty() || container_name == container.name {
        container
    } else {
        let spec = pod.spec.as_ref();
        spec.into_iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .find(|c| c.name == container_name)
            .ok_or_else(|| FieldError::NoContainer {
                container: container_name.to_string(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
            })?
    };
    let one = Quantity("1".into());
    let divisor = divisor.filter(|d| !d.0.is_empty() && milli(d) != 0).unwrap_or(&one);
    let resources = target.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let limit = |name: &str| {
        limits
            .and_then(|l| l.get(name))
            .or_else(|| node.allocatable.get(name))
            .cloned()
            .unwrap_or_else(|| Quantity("0".into()))
    };
    let request = |name: &str| {
        requests
            .and_then(|r| r.get(name))
            .cloned()
            .unwrap_or_else(|| Quantity("0".into()))
    };
    let cpu = |q: Quantity| ceil_div(milli(&q), milli(divisor).max(1)).to_string();
    let bytes = |q: Quantity| {
        let d = value(divisor);
        if d <= 0 {
            return Err(FieldError::InvalidDivisor(divisor.0.clone()));
        }
        Ok(ceil_div(value(&q), d).to_string())
    };
    match resource {
        "limits.cpu" => Ok(cpu(limit("cpu"))),
        "requests.cpu" => Ok(cpu(request("cpu"))),
        "limits.memory" => bytes(limit("memory")),
        "requests.memory" => bytes(request("memory")),
        "limits.ephemeral-storage" => bytes(limit("ephemeral-storage")),
        "requests.ephemeral-storage" => bytes(request("ephemeral-storage")),
        r if r.starts_with("limits.hugepages-") => bytes(limit(&r["limits.".len()..])),
        r if r.starts_with("requests.hugepages-") => bytes(request(&r["requests.".len()..])),
        _ => Err(FieldError::UnsupportedResource(resource.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "say \"hi\""}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [
                {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}
            ]}
        }))
        .unwrap()
    }

    fn node() -> NodeFacts {
        NodeFacts {
            host_ips: vec!["10.0.0.1".into(), "fd00::1".into()],
            allocatable: [
                ("cpu".to_string(), Quantity("2".into())),
                ("memory".to_string(), Quantity("4Gi".into())),
            ]
            .into(),
        }
    }

    #[test]
    fn pod_fields() {
        let p = pod();
        let ips = ["10.42.0.5".to_string(), "fd42::5".to_string()];
        let f = |path| field_value(&p, path, &ips, &node());
        assert_eq!(f("metadata.name").unwrap(), "web");
        assert_eq!(f("metadata.namespace").unwrap(), "ns");
        assert_eq!(f("metadata.uid").unwrap(), "u1");
        assert_eq!(f("metadata.labels['app']").unwrap(), "web");
        assert_eq!(f("metadata.annotations['missing']").unwrap(), "");
        assert_eq!(f("metadata.labels").unwrap(), "app=\"web\"\ntier=\"front\"");
        assert_eq!(f("metadata.annotations").unwrap(), "note=\"say \\\"hi\\\"\"");
        assert_eq!(f("spec.nodeName").unwrap(), "n1");
        assert_eq!(f("spec.serviceAccountName").unwrap(), "sa");
        assert_eq!(f("status.hostIP").unwrap(), "10.0.0.1");
        assert_eq!(f("status.hostIPs").unwrap(), "10.0.0.1,fd00::1");
        assert_eq!(f("status.podIP").unwrap(), "10.42.0.5");
        assert_eq!(f("status.podIPs").unwrap(), "10.42.0.5,fd42::5");
        assert_eq!(
            f("spec.hostname").unwrap_err().to_string(),
            "unsupported fieldPath: spec.hostname"
        );
    }

    #[test]
    fn resources_with_divisors_and_allocatable_defaults() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = |res, div: Option<&str>| {
            let d = div.map(|d| Quantity(d.into()));
            resource_value(&p, c, "", res, d.as_ref(), &node())
        };
        assert_eq!(r("requests.cpu", None).unwrap(), "1"); // 250m rounds up to 1 core
        assert_eq!(r("requests.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(r("limits.cpu", None).unwrap(), "2"); // node allocatable
        assert_eq!(r("limits.memory", Some("1Mi")).unwrap(), "128");
        assert_eq!(r("requests.memory", None).unwrap(), (64 << 20).to_string());
        assert_eq!(r("limits.ephemeral-storage", None).unwrap(), "0");
        assert_eq!(
            r("limits.gpu", None).unwrap_err().to_string(),
            "unsupported container resource : limits.gpu"
        );
        assert!(resource_value(&p, c, "other", "limits.cpu", None, &node()).is_err());
    }
}
