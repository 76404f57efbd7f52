//! A container's environment, as upstream's `makeEnvironmentVariables`
//! builds it: service links first, then `envFrom` sources in order, then
//! `env` entries, later ones overriding earlier ones; `$(VAR)` in values
//! refers to what is defined before it (or to a service link).
//!
//! A reference that cannot be resolved and is not `optional` fails the
//! container with `CreateContainerConfigError` and [`EnvError`]'s text,
//! which is upstream's (`configmap "x" not found`, `couldn't find key k in
//! ConfigMap ns/x`, …). Keys of `envFrom` sources that are not valid
//! variable names are skipped and reported as a warning event.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1::KeyValue;
use k8s_openapi::api::core::v1::{Container, Pod, Service};

use crate::fieldpath::{self, FieldError, NodeFacts};
use crate::objects::Objects;

/// The namespace and name of the service every pod gets links to.
const MASTER_SERVICE: (&str, &str) = ("default", "kubernetes");

/// Why a container's environment cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

impl EnvError {
    /// The container status reason this error gives.
    pub const REASON: &'static str = "CreateContainerConfigError";
}

/// A container's environment and the warnings upstream reports as events
/// (reason [`Resolved::WARNING_REASON`]).
#[derive(Debug, Default)]
pub struct Resolved {
    pub env: Vec<KeyValue>,
    pub warnings: Vec<String>,
}

impl Resolved {
    pub const WARNING_REASON: &'static str = "InvalidEnvironmentVariableNames";
}

/// Upstream's `IsEnvVarName`: letters, digits, `_`, `-`, `.`, not starting with a digit.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Upstream's `$(VAR)` expansion: `$(NAME)` becomes the variable's value
/// and stays as written when it is not defined, `$$` is a literal `$`, any
/// other `$` is kept. Also used for `command` and `args`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Upstream's `ExpandContainerCommandAndArgs`: `$(VAR)` in `command` and
/// `args` refer to the container's resolved environment.
pub fn expand_command(container: &Container, env: &[KeyValue]) -> (Vec<String>, Vec<String>) {
    let lookup = |name: &str| env.iter().find(|kv| kv.key == name).map(|kv| kv.value.clone());
    let expand_all = |list: &Option<Vec<String>>| list.iter().flatten().map(|s| expand(s, lookup)).collect();
    (expand_all(&container.command), expand_all(&container.args))
}

fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// Upstream's `FromServices`: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`
/// (first port), `<NAME>_SERVICE_PORT_<PORTNAME>` and the Docker link
/// variables `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}`;
/// headless services have none.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or_default();
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ip.is_empty() || ip == "None" || ports.is_empty() {
            continue;
        }
        let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()));
        for port in ports {
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                    port.port.to_string(),
                ));
            }
        }
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        for (i, port) in ports.iter().enumerate() {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{host}:{}", port.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            out.push((format!("{port_prefix}_PROTO"), lower));
            out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
            out.push((port_prefix, url));
        }
    }
    out
}

/// The services whose links a pod gets: `kubernetes` in `default` always,
/// and with `enableServiceLinks` (the default) every service of its own
/// namespace, which wins over the master service of the same name.
async fn services_for(objects: &impl Objects, pod: &Pod) -> Result<Vec<Service>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut by_name: BTreeMap<String, Service> = BTreeMap::new();
    if links {
        for s in objects.services(namespace).await? {
            by_name.insert(s.metadata.name.clone().unwrap_or_default(), s);
        }
    }
    if !by_name.contains_key(MASTER_SERVICE.1) && (namespace != MASTER_SERVICE.0 || !links) {
        let master = objects.services(MASTER_SERVICE.0).await?;
        if let Some(s) = master
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some(MASTER_SERVICE.1))
        {
            by_name.insert(MASTER_SERVICE.1.to_string(), s);
        }
    }
    Ok(by_name.into_values().collect())
}

/// Variables in definition order; a redefinition keeps the first position.
#[derive(Default)]
struct Env {
    order: Vec<String>,
    values: HashMap<String, String>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        if !self.values.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.values.insert(name, value);
    }
}

/// The container's environment: see the module doc. `pod_ips` are the
/// sandbox's addresses; `node` gives host IPs and allocatable.
pub async fn resolve(
    objects: &impl Objects,
    pod: &Pod,
    container: &Container,
    pod_ips: &[String],
    node: &NodeFacts,
) -> Result<Resolved, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let services: HashMap<String, String> = service_env(&services_for(objects, pod).await?).into_iter().collect();
    let mut env = Env::default();
    let mut warnings = Vec::new();

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, data) = if let Some(r) = &source.config_map_ref {
            let found = objects.config_map(namespace, &r.name).await?;
            match found {
                Some(cm) => ("configMap", &r.name, cm.data.unwrap_or_default()),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &source.secret_ref {
            match objects.secret(namespace, &r.name).await? {
                Some(s) => {
                    let data = s.data.unwrap_or_default().into_iter();
                    let data = data
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    ("secret", &r.name, data)
                }
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in data {
            let key = format!("{prefix}{key}");
            if is_env_var_name(&key) {
                env.set(key, value);
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                expand(v, |name| env.values.get(name).or_else(|| services.get(name)).cloned())
            }
            (_, Some(from)) => match value_from(objects, pod, container, from, pod_ips, node).await? {
                Some(v) => v,
                None => continue,
            },
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }

    let mut links: Vec<_> = services
        .into_iter()
        .filter(|(k, _)| !env.values.contains_key(k))
        .collect();
    links.sort();
    let mut out: Vec<KeyValue> = env
        .order
        .iter()
        .map(|k| KeyValue {
            key: k.clone(),
            value: env.values[k].clone(),
        })
        .collect();
    out.extend(links.into_iter().map(|(key, value)| KeyValue { key, value }));
    Ok(Resolved { env: out, warnings })
}

/// One `valueFrom`; `None` when an optional reference is missing (the
/// variable is then not set at all).
async fn value_from(
    objects: &impl Objects,
    pod: &Pod,
    container: &Container,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
    pod_ips: &[String],
    node: &NodeFacts,
) -> Result<Option<String>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let missing_key = |kind, key: &str, name: &str| EnvError::MissingKey {
        key: key.to_string(),
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    if let Some(f) = &from.field_ref {
        return Ok(Some(fieldpath::field_value(pod, &f.field_path, pod_ips, node)?));
    }
    if let Some(r) = &from.resource_field_ref {
        let name = r.container_name.as_deref().unwrap_or_default();
        let value = fieldpath::resource_value(pod, container, name, &r.resource, r.divisor.as_ref(), node)?;
        return Ok(Some(value));
    }
    let optional = |o: Option<bool>| o == Some(true);
    if let Some(r) = &from.config_map_key_ref {
        let Some(cm) = objects.config_map(namespace, &r.name).await? else {
            return if optional(r.optional) {
                Ok(None)
            } else {
                Err(EnvError::ConfigMapNotFound(r.name.clone()))
            };
        };
        return match cm.data.and_then(|mut d| d.remove(&r.key)) {
            Some(v) => Ok(Some(v)),
            None if optional(r.optional) => Ok(None),
            None => Err(missing_key("ConfigMap", &r.key, &r.name)),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let Some(secret) = objects.secret(namespace, &r.name).await? else {
            return if optional(r.optional) {
                Ok(None)
            } else {
                Err(EnvError::SecretNotFound(r.name.clone()))
            };
        };
        return match secret.data.and_then(|mut d| d.remove(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None if optional(r.optional) => Ok(None),
            None => Err(missing_key("Secret", &r.key, &r.name)),
        };
    }
    Ok(Some(String::new()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde_json::json;

    /// Objects held in memory, as an informer store would.
    #[derive(Default)]
    pub(crate) struct Store {
        pub config_maps: Vec<ConfigMap>,
        pub secrets: Vec<Secret>,
        pub services: Vec<Service>,
        pub tokens: std::sync::Mutex<Vec<TokenRequest>>,
    }

    fn matches(meta: &kube::api::ObjectMeta, ns: &str, name: &str) -> bool {
        meta.namespace.as_deref() == Some(ns) && meta.name.as_deref() == Some(name)
    }

    impl Objects for Store {
        async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
            Ok(self
                .config_maps
                .iter()
                .find(|c| matches(&c.metadata, ns, name))
                .cloned())
        }
        async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
            Ok(self.secrets.iter().find(|s| matches(&s.metadata, ns, name)).cloned())
        }
        async fn services(&self, ns: &str) -> Result<Vec<Service>, kube::Error> {
            Ok(self
                .services
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
                .cloned()
                .collect())
        }
        async fn request_token(
            &self,
            _: &str,
            _: &str,
            mut request: TokenRequest,
        ) -> Result<TokenRequest, kube::Error> {
            // A JWT-shaped token whose claims say what was asked.
            use base64::Engine;
            let now = jiff::Timestamp::now().as_second();
            let spec = &request.spec;
            let claims = json!({"aud": spec.audiences, "iat": now,
                "exp": now + spec.expiration_seconds.unwrap_or(3600),
                "pod": spec.bound_object_ref.as_ref().and_then(|r| r.name.clone())});
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
            let token = format!("eyJhbGciOiJub25lIn0.{claims}.sig");
            request.status = Some(
                serde_json::from_value(json!({"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"})).unwrap(),
            );
            self.tokens.lock().unwrap().push(request.clone());
            Ok(request)
        }
    }

    pub(crate) fn store() -> Store {
        Store {
            config_maps: vec![
                serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "cfg"},
                    "data": {"mode": "fast", "bad key": "x", "LEVEL": "3"}}))
                .unwrap(),
            ],
            secrets: vec![
                serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "creds"},
                    "data": {"password": "czNjcjN0"}}))
                .unwrap(),
            ],
            services: vec![
                serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "kubernetes"},
                    "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}))
                .unwrap(),
                serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "my-db"},
                    "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 5432}, {"name": "metrics", "port": 9187, "protocol": "TCP"}]}}))
                .unwrap(),
                serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "headless"},
                    "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}))
                .unwrap(),
            ],
            tokens: Default::default(),
        }
    }

    fn pod(container: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [container]}}),
        )
        .unwrap()
    }

    async fn env_of(p: &Pod) -> Result<Resolved, EnvError> {
        let node = NodeFacts {
            host_ips: vec!["10.0.0.1".into()],
            allocatable: Default::default(),
        };
        resolve(
            &store(),
            p,
            &p.spec.as_ref().unwrap().containers[0],
            &["10.42.0.9".into()],
            &node,
        )
        .await
    }

    fn get<'a>(r: &'a Resolved, key: &str) -> Option<&'a str> {
        r.env.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
    }

    #[test]
    fn expansion_as_upstream() {
        let vars: HashMap<&str, &str> = [("A", "a"), ("B", "b")].into();
        let e = |s| expand(s, |n| vars.get(n).map(|v| v.to_string()));
        assert_eq!(e("$(A)-$(B)"), "a-b");
        assert_eq!(e("$(C)"), "$(C)");
        assert_eq!(e("$$(A)"), "$(A)");
        assert_eq!(e("$$$(A)"), "$a");
        assert_eq!(e("$A $"), "$A $");
        assert_eq!(e("$(A"), "$(A");
        assert_eq!(e("x$()y"), "x$()y");
        assert_eq!(e("ü$(A)ü"), "üaü");
    }

    #[test]
    fn command_and_args_expand_from_the_environment() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "command": ["sh", "-c", "echo $(GREETING) $$(GREETING)"], "args": ["$(MISSING)", "$(PORT)"]}))
        .unwrap();
        let env = [
            KeyValue {
                key: "GREETING".into(),
                value: "hi".into(),
            },
            KeyValue {
                key: "PORT".into(),
                value: "80".into(),
            },
        ];
        let (command, args) = expand_command(&c, &env);
        assert_eq!(command, ["sh", "-c", "echo hi $(GREETING)"]);
        assert_eq!(args, ["$(MISSING)", "80"]);
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("A_b-c.d"));
        assert!(is_env_var_name("_x"));
        assert!(!is_env_var_name("1bad"));
        assert!(!is_env_var_name("a b"));
        assert!(!is_env_var_name(""));
    }

    #[tokio::test]
    async fn env_from_values_refs_and_expansion() {
        let p = pod(json!({"name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "URL", "value": "db://$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT)/$(MODE)?p=$(password)&$$x"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            {"name": "EMPTY"}
        ]}));
        let r = env_of(&p).await.unwrap();
        assert_eq!(get(&r, "CFG_mode"), Some("fast"));
        assert_eq!(get(&r, "CFG_LEVEL"), Some("3"));
        assert_eq!(get(&r, "password"), Some("s3cr3t"));
        assert_eq!(get(&r, "MODE"), Some("fast"));
        assert_eq!(get(&r, "URL"), Some("db://10.43.0.20:5432/fast?p=s3cr3t&$x"));
        assert_eq!(get(&r, "POD"), Some("web"));
        assert_eq!(get(&r, "IP"), Some("10.42.0.9"));
        assert_eq!(get(&r, "APP"), Some("a"));
        assert_eq!(get(&r, "MISSING"), None);
        assert_eq!(get(&r, "EMPTY"), Some(""));
        assert_eq!(
            r.warnings,
            vec![
                "Keys [CFG_bad key] from the EnvFrom configMap ns/cfg were skipped since they are considered invalid environment variable names."
            ]
        );
        // Declared variables come first, in order; links after them.
        assert_eq!(r.env[0].key, "CFG_LEVEL");
    }

    #[tokio::test]
    async fn service_links() {
        let r = env_of(&pod(json!({"name": "c"}))).await.unwrap();
        assert_eq!(get(&r, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get(&r, "KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get(&r, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&r, "KUBERNETES_PORT"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get(&r, "KUBERNETES_PORT_443_TCP_ADDR"), Some("10.43.0.1"));
        assert_eq!(get(&r, "MY_DB_SERVICE_PORT_METRICS"), Some("9187"));
        assert_eq!(get(&r, "MY_DB_PORT_9187_TCP"), Some("tcp://10.43.0.20:9187"));
        assert_eq!(get(&r, "MY_DB_PORT_5432_TCP_PROTO"), Some("tcp"));
        assert!(r.env.iter().all(|kv| !kv.key.starts_with("HEADLESS")));
        let mut no_links = pod(json!({"name": "c"}));
        no_links.spec.as_mut().unwrap().enable_service_links = Some(false);
        let r = env_of(&no_links).await.unwrap();
        assert_eq!(get(&r, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get(&r, "MY_DB_SERVICE_HOST"), None);
    }

    #[tokio::test]
    async fn upstream_error_messages() {
        let err = |c| async move { env_of(&pod(c)).await.unwrap_err().to_string() };
        assert_eq!(
            err(json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]})).await,
            "configmap \"x\" not found"
        );
        assert_eq!(
            err(json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})).await,
            "couldn't find key k in ConfigMap ns/cfg"
        );
        assert_eq!(
            err(json!({"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]})).await,
            "couldn't find key k in Secret ns/creds"
        );
        assert_eq!(
            err(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]})).await,
            "secret \"gone\" not found"
        );
        let optional = pod(
            json!({"name": "c", "envFrom": [{"configMapRef": {"name": "gone", "optional": true}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}]}),
        );
        assert!(get(&env_of(&optional).await.unwrap(), "X").is_none());
    }
}
