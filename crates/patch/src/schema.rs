//! Navigation from a kind to the type at any JSON path, over the schemas that
//! `k8s-openapi` generates (`schemars`), plus the patch strategy of each field.
//!
//! The schemas of every built-in kind are generated once into one set of
//! definitions keyed by upstream's OpenAPI definition names
//! (`io.k8s.api.core.v1.PodSpec`). A [`Node`] is one resolved schema: an
//! object with `properties`, a map (`additionalProperties`), an array
//! (`items`), or a scalar. Anything the schemas do not describe has no node,
//! and is patched with plain JSON-merge semantics.

use std::collections::HashMap;
use std::sync::LazyLock;

use k8s_openapi::Resource;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::table::{FieldStrategy, field_strategy};

/// `(group, version, kind)`, e.g. `("apps", "v1", "Deployment")`; the core group is `""`.
pub type Gvk<'a> = (&'a str, &'a str, &'a str);

/// Every definition, and the definition name of each kind.
struct Schemas {
    definitions: Map<String, Value>,
    kinds: HashMap<(&'static str, &'static str, &'static str), String>,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(build);

/// One resolved schema, and the definition it came from (for table look-ups).
#[derive(Debug, Clone, Copy)]
pub struct Node {
    name: Option<&'static str>,
    schema: &'static Value,
}

/// A field's schema and upstream patch strategy.
pub type Field = (Option<Node>, Option<FieldStrategy>);

impl Node {
    /// The schema of kind `gvk`, if it is a built-in kind.
    pub fn root(gvk: Gvk<'_>) -> Option<Node> {
        let schemas = &*SCHEMAS;
        let name = schemas.kinds.get(&gvk)?;
        resolve_name(name, 0)
    }

    /// The definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// Whether this schema describes an array.
    pub fn is_array(&self) -> bool {
        self.schema.get("type").and_then(Value::as_str) == Some("array") || self.schema.get("items").is_some()
    }
}

/// The schema of the value under `key` of this object or map, and the field's strategy.
pub fn field(node: Option<Node>, key: &str) -> Field {
    let Some(node) = node else { return (None, None) };
    if let Some(property) = node.schema.get("properties").and_then(|p| p.get(key)) {
        let strategy = node.name.and_then(|name| field_strategy(name, key));
        return (resolve(property, 0), strategy);
    }
    match node.schema.get("additionalProperties") {
        Some(values @ Value::Object(_)) => (resolve(values, 0), None),
        _ => (None, None),
    }
}

/// The schema of the elements of this array.
pub fn items(node: Option<Node>) -> Option<Node> {
    node.and_then(|node| node.schema.get("items"))
        .and_then(|items| resolve(items, 0))
}

/// Follows `$ref`s (and a lone `allOf` wrapper) to the schema they name.
fn resolve(schema: &'static Value, depth: usize) -> Option<Node> {
    if depth > 16 {
        return None;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next()?;
        return resolve_name(name, depth + 1);
    }
    if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        return resolve(only, depth + 1);
    }
    Some(Node { name: None, schema })
}

fn resolve_name(name: &str, depth: usize) -> Option<Node> {
    let (name, schema) = SCHEMAS.definitions.get_key_value(name)?;
    let node = resolve(schema, depth)?;
    Some(Node {
        name: node.name.or(Some(name.as_str())),
        schema: node.schema,
    })
}

/// The definition name of every built-in kind, for tests and tools.
pub fn definition_names() -> impl Iterator<Item = &'static str> {
    SCHEMAS.definitions.keys().map(String::as_str)
}

/// Whether the definition `name` has the property `field`.
pub fn has_property(name: &str, field: &str) -> bool {
    SCHEMAS
        .definitions
        .get(name)
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get(field))
        .is_some()
}

fn build() -> Schemas {
    let mut generator = SchemaGenerator::default();
    let mut kinds = HashMap::new();
    register_kinds(&mut generator, &mut kinds);
    let mut definitions = generator.take_definitions(false);
    for schema in definitions.values_mut() {
        strip_descriptions(schema);
    }
    Schemas { definitions, kinds }
}

/// Drops documentation strings, which are most of the schemas' size. A
/// property that happens to be called `description` is an object, and stays.
fn strip_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

type Kinds = HashMap<(&'static str, &'static str, &'static str), String>;

fn register<T: Resource + JsonSchema>(generator: &mut SchemaGenerator, kinds: &mut Kinds) {
    generator.subschema_for::<T>();
    kinds.insert((T::GROUP, T::VERSION, T::KIND), T::schema_name().into_owned());
}

macro_rules! kinds {
    ($generator:ident, $kinds:ident; $($module:ident :: $version:ident :: [$($kind:ident),* $(,)?]),* $(,)?) => {
        $($(register::<k8s_openapi::api::$module::$version::$kind>($generator, $kinds);)*)*
    };
}

/// Every top-level kind `k8s-openapi` (Kubernetes 1.33) knows.
fn register_kinds(generator: &mut SchemaGenerator, kinds: &mut Kinds) {
    kinds!(generator, kinds;
        admissionregistration::v1::[
            MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
            ValidatingWebhookConfiguration,
        ],
        admissionregistration::v1alpha1::[MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding],
        admissionregistration::v1beta1::[ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding],
        apiserverinternal::v1alpha1::[StorageVersion],
        apps::v1::[ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet],
        authentication::v1::[SelfSubjectReview, TokenRequest, TokenReview],
        authorization::v1::[
            LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
        ],
        autoscaling::v1::[HorizontalPodAutoscaler, Scale],
        autoscaling::v2::[HorizontalPodAutoscaler],
        batch::v1::[CronJob, Job],
        certificates::v1::[CertificateSigningRequest],
        certificates::v1alpha1::[ClusterTrustBundle],
        certificates::v1beta1::[ClusterTrustBundle],
        coordination::v1::[Lease],
        coordination::v1alpha2::[LeaseCandidate],
        coordination::v1beta1::[LeaseCandidate],
        core::v1::[
            Binding, ComponentStatus, ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume,
            PersistentVolumeClaim, Pod, PodTemplate, ReplicationController, ResourceQuota, Secret, Service,
            ServiceAccount,
        ],
        discovery::v1::[EndpointSlice],
        events::v1::[Event],
        flowcontrol::v1::[FlowSchema, PriorityLevelConfiguration],
        networking::v1::[IPAddress, Ingress, IngressClass, NetworkPolicy, ServiceCIDR],
        networking::v1beta1::[IPAddress, ServiceCIDR],
        node::v1::[RuntimeClass],
        policy::v1::[Eviction, PodDisruptionBudget],
        rbac::v1::[ClusterRole, ClusterRoleBinding, Role, RoleBinding],
        resource::v1alpha3::[DeviceClass, DeviceTaintRule, ResourceClaim, ResourceClaimTemplate, ResourceSlice],
        resource::v1beta1::[DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice],
        resource::v1beta2::[DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice],
        scheduling::v1::[PriorityClass],
        storage::v1::[CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment],
        storage::v1alpha1::[VolumeAttributesClass],
        storage::v1beta1::[VolumeAttributesClass],
        storagemigration::v1alpha1::[StorageVersionMigration],
    );
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    register::<CustomResourceDefinition>(generator, kinds);
    register::<APIService>(generator, kinds);
}
