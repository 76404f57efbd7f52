//! Upstream's ServiceAccount admission plugin for new pods: the pod runs as
//! `default` unless it names an account, and — unless the pod or its
//! account opts out with `automountServiceAccountToken: false` — gets the
//! `kube-api-access-<random>` projected volume (a bound token, the cluster
//! CA from `kube-root-ca.crt`, its namespace) mounted in every container at
//! `/var/run/secrets/kubernetes.io/serviceaccount`.
//!
//! Divergence: upstream refuses a pod whose service account does not exist
//! yet; here the pod is admitted (the token request fails until the account
//! exists), so a pod created the instant its namespace is doesn't race the
//! serviceaccount controller.

use capstan_apimachinery::meta::{self, Object};
use serde_json::{Value, json};

use crate::ApiServer;
use crate::objects::ObjectKey;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const DEFAULT_ACCOUNT: &str = "default";
/// Upstream's token lifetime: an hour, plus the 7 s that mark it as the
/// kubelet-refreshed kind.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

pub fn admit(server: &ApiServer, pod: &mut Object) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let account = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => {
            spec.insert("serviceAccountName".into(), DEFAULT_ACCOUNT.into());
            DEFAULT_ACCOUNT.to_string()
        }
    };
    let namespace = meta::namespace(pod).to_string();
    if !automount(server, pod, &namespace, &account) || has_token_mount(pod) {
        return;
    }
    let volume = format!("kube-api-access-{}", random_suffix());
    let spec = pod["spec"].as_object_mut().expect("checked above");
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(projected_volume(&volume));
    }
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let mounts = container
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            if let Some(mounts) = mounts.and_then(Value::as_array_mut) {
                mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            }
        }
    }
}

/// The pod's own setting wins over its account's; both default to true.
fn automount(server: &ApiServer, pod: &Object, namespace: &str, account: &str) -> bool {
    if let Some(own) = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
    {
        return own;
    }
    let Some(accounts) = capstan_apimachinery::registry::lookup("", "v1", "serviceaccounts") else {
        return true;
    };
    let key = ObjectKey {
        resource: accounts,
        namespace: Some(namespace),
        name: account,
    };
    server
        .cache
        .get(&key.key())
        .and_then(|sa| sa.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true)
}

/// A container that already mounts something at the token path keeps it.
fn has_token_mount(pod: &Object) -> bool {
    ["initContainers", "containers"].iter().any(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten())
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    })
}

fn projected_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Five characters from upstream's name-generator alphabet.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
