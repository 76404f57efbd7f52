//! Generates `crates/protobuf/src/generated.rs`: the protobuf → JSON tables of every built-in Kubernetes
//! message, and the `(apiVersion, kind)` dispatch.
//!
//! Run `cargo run -p capstan-protobuf-gen` from anywhere in the workspace after changing the version of
//! `k8s-pb` or `k8s-openapi`, or the policy lists below; commit the regenerated file.
//!
//! Inputs, found with `cargo metadata` (no paths are hard-coded):
//! - `k8s-pb`: the prost structs generated from upstream's `.proto` files. Each struct is a message; each
//!   `#[prost(...)]` attribute gives a field's tag, scalar type, optional/repeated, `map<k, v>` and the
//!   message type (the field's Rust type path). prost renamed the fields to snake_case (`volume_id`).
//! - `k8s-openapi`: one file per upstream OpenAPI definition (`// Generated from definition
//!   io.k8s.api.core.v1.Pod`), whose serde code maps JSON names to Rust fields (`"volumeID" =>
//!   Field::Key_volume_id`) and whose struct says which fields are required (not `Option`). Every
//!   Kubernetes version the crate carries is read, newest first, so alpha and older types are found too.
//!
//! A protobuf field gets its JSON name from the k8s-openapi type of the same package and name (types
//! compared case-insensitively: prost's `AwsElasticBlockStoreVolumeSource` is upstream's
//! `AWSElasticBlockStoreVolumeSource`), else from the type of that name in another API version. A JSON name
//! matches a field when prost's own snake_case of it is the field's name (`clusterIPs`, `podIP`), or else
//! when both spell the same ignoring case, `_` and `-` (`$ref`, `x-kubernetes-*`). A message field the
//! type does not have, whose message's fields the type has instead, is Go's `json:",inline"` (`Volume`
//! inlines `VolumeSource`). For types k8s-openapi lacks (lists, options, admission): the name the field's
//! doc comment uses (`desiredAPIVersion is ...`), else the one JSON name with that spelling anywhere, else
//! camelCase. `PROTOBUF_GEN_VERBOSE=1` prints those fallbacks.
//!
//! Whether a zero value is written depends on the Go field (see `OMIT_ZERO` and `KEEP_EMPTY_STRING`
//! below, and the crate's documentation). The generator fails if a list entry no longer matches a field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use quote::ToTokens;

/// Go fields that are not pointers but `omitempty` numbers or booleans: Go always writes them to protobuf
/// and leaves their zero out of JSON. Numbers and booleans not listed keep a zero that is on the wire (they
/// may be pointers, where zero means something: `replicas: 0`, `allowPrivilegeEscalation: false`).
/// `Type.jsonField`, the Go type name in any API version; every entry must match a field.
const OMIT_ZERO: &[&str] = &[
    // meta/v1
    "Condition.observedGeneration",
    "ListOptions.allowWatchBookmarks",
    "ListOptions.limit",
    "ListOptions.watch",
    "ObjectMeta.generation",
    "Status.code",
    "StatusDetails.retryAfterSeconds",
    // core/v1
    "AWSElasticBlockStoreVolumeSource.partition",
    "AWSElasticBlockStoreVolumeSource.readOnly",
    "AzureFilePersistentVolumeSource.readOnly",
    "AzureFileVolumeSource.readOnly",
    "CSIPersistentVolumeSource.readOnly",
    "CephFSPersistentVolumeSource.readOnly",
    "CephFSVolumeSource.readOnly",
    "CinderPersistentVolumeSource.readOnly",
    "CinderVolumeSource.readOnly",
    "Container.stdin",
    "Container.stdinOnce",
    "Container.tty",
    "ContainerPort.hostPort",
    "ContainerStateTerminated.signal",
    "EphemeralContainerCommon.stdin",
    "EphemeralContainerCommon.stdinOnce",
    "EphemeralContainerCommon.tty",
    "Event.count",
    "EventSeries.count",
    "FCVolumeSource.readOnly",
    "FlexPersistentVolumeSource.readOnly",
    "FlexVolumeSource.readOnly",
    "GCEPersistentDiskVolumeSource.partition",
    "GCEPersistentDiskVolumeSource.readOnly",
    "GlusterfsPersistentVolumeSource.readOnly",
    "GlusterfsVolumeSource.readOnly",
    "ISCSIPersistentVolumeSource.chapAuthDiscovery",
    "ISCSIPersistentVolumeSource.chapAuthSession",
    "ISCSIPersistentVolumeSource.readOnly",
    "ISCSIVolumeSource.chapAuthDiscovery",
    "ISCSIVolumeSource.chapAuthSession",
    "ISCSIVolumeSource.readOnly",
    "NFSVolumeSource.readOnly",
    "NodeSpec.unschedulable",
    "PersistentVolumeClaimVolumeSource.readOnly",
    "PodSpec.hostIPC",
    "PodSpec.hostNetwork",
    "PodSpec.hostPID",
    "PortworxVolumeSource.readOnly",
    "Probe.failureThreshold",
    "Probe.initialDelaySeconds",
    "Probe.periodSeconds",
    "Probe.successThreshold",
    "Probe.timeoutSeconds",
    "QuobyteVolumeSource.readOnly",
    "RBDPersistentVolumeSource.readOnly",
    "RBDVolumeSource.readOnly",
    "ReplicationControllerSpec.minReadySeconds",
    "ReplicationControllerStatus.availableReplicas",
    "ReplicationControllerStatus.fullyLabeledReplicas",
    "ReplicationControllerStatus.observedGeneration",
    "ReplicationControllerStatus.readyReplicas",
    "ScaleIOPersistentVolumeSource.readOnly",
    "ScaleIOPersistentVolumeSource.sslEnabled",
    "ScaleIOVolumeSource.readOnly",
    "ScaleIOVolumeSource.sslEnabled",
    "ServicePort.nodePort",
    "ServiceSpec.healthCheckNodePort",
    "ServiceSpec.publishNotReadyAddresses",
    "StorageOSPersistentVolumeSource.readOnly",
    "StorageOSVolumeSource.readOnly",
    "VolumeMount.readOnly",
    // apps
    "DaemonSetSpec.minReadySeconds",
    "DaemonSetStatus.numberAvailable",
    "DaemonSetStatus.numberUnavailable",
    "DaemonSetStatus.observedGeneration",
    "DaemonSetStatus.updatedNumberScheduled",
    "DeploymentSpec.minReadySeconds",
    "DeploymentSpec.paused",
    "DeploymentStatus.availableReplicas",
    "DeploymentStatus.observedGeneration",
    "DeploymentStatus.readyReplicas",
    "DeploymentStatus.replicas",
    "DeploymentStatus.unavailableReplicas",
    "DeploymentStatus.updatedReplicas",
    "ReplicaSetSpec.minReadySeconds",
    "ReplicaSetStatus.availableReplicas",
    "ReplicaSetStatus.fullyLabeledReplicas",
    "ReplicaSetStatus.observedGeneration",
    "ReplicaSetStatus.readyReplicas",
    "StatefulSetOrdinals.start",
    "StatefulSetSpec.minReadySeconds",
    "StatefulSetStatus.availableReplicas",
    "StatefulSetStatus.currentReplicas",
    "StatefulSetStatus.observedGeneration",
    "StatefulSetStatus.readyReplicas",
    "StatefulSetStatus.updatedReplicas",
    // apiextensions
    "CustomResourceColumnDefinition.priority",
    "CustomResourceDefinitionVersion.deprecated",
    "JSONSchemaProps.exclusiveMaximum",
    "JSONSchemaProps.exclusiveMinimum",
    "JSONSchemaProps.nullable",
    "JSONSchemaProps.uniqueItems",
    "JSONSchemaProps.x-kubernetes-embedded-resource",
    "JSONSchemaProps.x-kubernetes-int-or-string",
    // authentication, authorization, autoscaling, batch, networking, policy, scheduling
    "JobStatus.active",
    "JobStatus.failed",
    "JobStatus.succeeded",
    "PodDisruptionBudgetStatus.observedGeneration",
    "PriorityClass.globalDefault",
    "ScaleSpec.replicas",
    "ServiceBackendPort.number",
    "SubjectAccessReviewStatus.denied",
    "TokenReviewStatus.authenticated",
];

/// Optional strings that are Go pointers where an empty string means something (`storageClassName: ""`
/// turns dynamic provisioning off). Every other optional string leaves `""` out, as `omitempty` does.
const KEEP_EMPTY_STRING: &[&str] = &[
    "PersistentVolumeClaimSpec.storageClassName",
    "PersistentVolumeClaimSpec.volumeAttributesClassName",
];

/// Go types with their own JSON form, by protobuf package and Go name → the `Form` variant.
const SPECIAL: &[(&str, &str, &str)] = &[
    ("apiextensions_apiserver.pkg.apis.apiextensions.v1", "JSON", "RawJson"),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1",
        "JSONSchemaPropsOrArray",
        "SchemaOrArray",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1",
        "JSONSchemaPropsOrBool",
        "SchemaOrBool",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1",
        "JSONSchemaPropsOrStringArray",
        "SchemaOrStringArray",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1",
        "JSON",
        "RawJson",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1",
        "JSONSchemaPropsOrArray",
        "SchemaOrArray",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1",
        "JSONSchemaPropsOrBool",
        "SchemaOrBool",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1",
        "JSONSchemaPropsOrStringArray",
        "SchemaOrStringArray",
    ),
    ("apimachinery.pkg.api.resource", "Quantity", "EmbeddedString"),
    ("apimachinery.pkg.api.resource", "QuantityValue", "EmbeddedString"),
    ("apimachinery.pkg.apis.meta.v1", "Duration", "Duration"),
    ("apimachinery.pkg.apis.meta.v1", "FieldsV1", "RawJson"),
    ("apimachinery.pkg.apis.meta.v1", "MicroTime", "MicroTime"),
    ("apimachinery.pkg.apis.meta.v1", "Time", "Time"),
    ("apimachinery.pkg.runtime", "RawExtension", "RawJson"),
    ("apimachinery.pkg.util.intstr", "IntOrString", "IntOrString"),
];

/// Kinds of `meta/v1` (not found by the `metadata` rule), as upstream's `metav1.AddToGroupVersion` and
/// `AddMetaToScheme` register them: `(apiVersion, kind)`; `*` is every apiVersion. (`Table` has no protobuf
/// form upstream.)
const META_KINDS: &[(&str, &str)] = &[
    ("*", "CreateOptions"),
    ("*", "DeleteOptions"),
    ("*", "GetOptions"),
    ("*", "ListOptions"),
    ("*", "PatchOptions"),
    ("*", "UpdateOptions"),
    ("*", "WatchEvent"),
    ("meta.k8s.io/v1", "PartialObjectMetadata"),
    ("meta.k8s.io/v1", "PartialObjectMetadataList"),
    ("meta.k8s.io/v1", "TableOptions"),
    ("meta.k8s.io/v1beta1", "PartialObjectMetadata"),
    ("meta.k8s.io/v1beta1", "PartialObjectMetadataList"),
    ("meta.k8s.io/v1beta1", "TableOptions"),
    ("v1", "APIGroup"),
    ("v1", "APIGroupList"),
    ("v1", "APIResourceList"),
    ("v1", "APIVersions"),
    ("v1", "Status"),
];

/// Top-level kinds without `metadata`, by protobuf package.
const OTHER_KINDS: &[(&str, &str)] = &[
    ("api.admission.v1", "AdmissionReview"),
    ("api.admission.v1beta1", "AdmissionReview"),
    ("api.apps.v1beta1", "DeploymentRollback"),
    ("api.core.v1", "NodeProxyOptions"),
    ("api.core.v1", "PodAttachOptions"),
    ("api.core.v1", "PodExecOptions"),
    ("api.core.v1", "PodLogOptions"),
    ("api.core.v1", "PodPortForwardOptions"),
    ("api.core.v1", "PodProxyOptions"),
    ("api.core.v1", "SerializedReference"),
    ("api.core.v1", "ServiceProxyOptions"),
    ("api.extensions.v1beta1", "DeploymentRollback"),
    ("apiextensions_apiserver.pkg.apis.apiextensions.v1", "ConversionReview"),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1",
        "ConversionReview",
    ),
    ("metrics.pkg.apis.custom_metrics.v1beta1", "MetricListOptions"),
    ("metrics.pkg.apis.custom_metrics.v1beta2", "MetricListOptions"),
];

/// API groups whose name is not `<dir>.k8s.io` and that no type of k8s-openapi names.
const GROUPS: &[(&str, &str)] = &[("core", ""), ("extensions", "extensions")];

/// k8s-pb modules left out: upstream's test group.
const SKIP_MODULES: &[&str] = &["apimachinery.pkg.apis.testapigroup.v1"];

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().expect("workspace root");
    let pb_src = package_src(&workspace, "k8s-pb");
    let openapi_src = package_src(&workspace, "k8s-openapi");
    let pb = read_pb(&pb_src);
    let openapi = read_openapi(&openapi_src);
    let model = Model::build(&pb, &openapi);
    let out = workspace.join("crates/protobuf/src/generated.rs");
    std::fs::write(&out, model.render(&pb_src, &openapi_src)).expect("write generated.rs");
    let status = Command::new("rustfmt")
        .arg("--edition=2024")
        .arg(&out)
        .current_dir(&workspace)
        .status()
        .expect("run rustfmt");
    assert!(status.success(), "rustfmt failed on {}", out.display());
    eprintln!(
        "wrote {}: {} messages, {} kinds ({} field names not from the type's own k8s-openapi definition)",
        out.display(),
        model.messages.len(),
        model.kinds.len(),
        model.fallback_names
    );
}

/// The `src` directory of a package of the workspace's dependency graph, from `cargo metadata`.
fn package_src(workspace: &Path, name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(workspace)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let mut found: Vec<(String, PathBuf)> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            (
                p["version"].as_str().unwrap_or_default().to_string(),
                manifest.parent().unwrap().join("src"),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found.len(),
        1,
        "expected one version of {name} in the workspace, found {found:?}"
    );
    found.pop().unwrap().1
}

// ---------------------------------------------------------------------------------------------------------
// k8s-pb

/// A prost message of k8s-pb.
struct PbMessage {
    /// The module path in k8s-pb, dot-separated (`api.core.v1`).
    module: String,
    /// The prost struct name (`AwsElasticBlockStoreVolumeSource`).
    name: String,
    fields: Vec<PbField>,
    /// The doc comment, with upstream's markers (`+protobuf.nullable=true`).
    docs: String,
}

struct PbField {
    /// The prost field name (`volume_id`), without `r#`.
    name: String,
    tag: u32,
    /// `string`, `bytes`, `bool`, `int32`, `int64`, `double` or `message`.
    scalar: String,
    label: Label,
    /// For message types (and map values of message type): `module.Name`.
    message: Option<String>,
    /// The doc comment (upstream's Go comment, which usually starts with the JSON or Go field name).
    docs: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Optional,
    Repeated,
    /// `map<string, scalar>`, the value type in `PbField::scalar`.
    Map,
}

struct Pb {
    messages: Vec<PbMessage>,
}

fn read_pb(src: &Path) -> Pb {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut messages = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let mut module: Vec<String> = rel
            .parent()
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let stem = rel.file_stem().unwrap().to_string_lossy();
        if stem != "mod" && stem != "lib" {
            module.push(stem.into_owned());
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        pb_items(&parsed.items, &module, &mut messages);
    }
    messages.retain(|m| !SKIP_MODULES.contains(&m.module.as_str()));
    Pb { messages }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn pb_items(items: &[syn::Item], module: &[String], out: &mut Vec<PbMessage>) {
    for item in items {
        match item {
            syn::Item::Struct(s) if derives_message(&s.attrs) => {
                let fields = s
                    .fields
                    .iter()
                    .map(|f| pb_field(f, module, &s.ident.to_string()))
                    .collect();
                let docs = docs(&s.attrs);
                out.push(PbMessage {
                    module: module.join("."),
                    name: s.ident.to_string(),
                    fields,
                    docs,
                });
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    let mut inner = module.to_vec();
                    inner.push(m.ident.to_string());
                    pb_items(items, &inner, out);
                }
            }
            syn::Item::Enum(e) if e.attrs.iter().any(|a| a.path().is_ident("derive")) => {
                let derive = e
                    .attrs
                    .iter()
                    .map(|a| a.to_token_stream().to_string())
                    .collect::<String>();
                assert!(
                    !derive.contains("Oneof") && !derive.contains("Enumeration"),
                    "{}: prost enums and oneofs are not supported",
                    e.ident
                );
            }
            _ => {}
        }
    }
}

fn derives_message(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("derive") && a.to_token_stream().to_string().contains("Message"))
}

fn pb_field(field: &syn::Field, module: &[String], owner: &str) -> PbField {
    let name = field.ident.as_ref().unwrap().to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
    let attr = field
        .attrs
        .iter()
        .find(|a| a.path().is_ident("prost"))
        .unwrap_or_else(|| panic!("{owner}.{name}: no #[prost] attribute"));
    let metas = attr
        .parse_args_with(syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
        .unwrap();
    let (mut scalar, mut label, mut tag) = (None, Label::Optional, None);
    for meta in metas {
        match meta {
            syn::Meta::Path(p) => {
                let word = p.get_ident().unwrap().to_string();
                match word.as_str() {
                    "optional" | "boxed" | "required" => {}
                    "repeated" => label = Label::Repeated,
                    "string" | "bool" | "int32" | "int64" | "double" | "message" => scalar = Some(word),
                    other => panic!("{owner}.{name}: unsupported prost attribute {other}"),
                }
            }
            syn::Meta::NameValue(nv) => {
                let key = nv.path.get_ident().unwrap().to_string();
                let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(value),
                    ..
                }) = &nv.value
                else {
                    panic!("{owner}.{name}: unexpected attribute value")
                };
                let value = value.value();
                match key.as_str() {
                    "tag" => tag = Some(value.parse::<u32>().unwrap()),
                    "bytes" => scalar = Some("bytes".into()),
                    "packed" => {}
                    "btree_map" | "map" | "hash_map" => {
                        let (k, v) = value.split_once(',').unwrap();
                        assert_eq!(k.trim(), "string", "{owner}.{name}: map keys other than string");
                        label = Label::Map;
                        scalar = Some(v.trim().to_string());
                    }
                    other => panic!("{owner}.{name}: unsupported prost attribute {other}"),
                }
            }
            syn::Meta::List(_) => panic!("{owner}.{name}: unsupported prost attribute"),
        }
    }
    let scalar = scalar.unwrap_or_else(|| panic!("{owner}.{name}: no type"));
    assert!(
        ["string", "bytes", "bool", "int32", "int64", "double", "message"].contains(&scalar.as_str()),
        "{owner}.{name}: unsupported type {scalar}"
    );
    let message = (scalar == "message").then(|| resolve(&message_path(&field.ty), module));
    let docs = docs(&field.attrs);
    PbField {
        name,
        tag: tag.expect("tag"),
        scalar,
        label,
        message,
        docs,
    }
}

/// The text of `///` comments.
fn docs(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value: syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s), ..
                }),
                ..
            }) => Some(s.value()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The path of the message type inside `Option<..>`, `Vec<..>`, `Box<..>` or `BTreeMap<String, ..>`.
fn message_path(ty: &syn::Type) -> Vec<String> {
    let syn::Type::Path(path) = ty else {
        panic!("unexpected type {}", ty.to_token_stream())
    };
    let last = path.path.segments.last().unwrap();
    let wrapper = ["Option", "Vec", "Box", "BTreeMap", "HashMap"].contains(&last.ident.to_string().as_str());
    if wrapper {
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            panic!("no type arguments")
        };
        let inner = args
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .next_back()
            .unwrap();
        return message_path(inner);
    }
    path.path.segments.iter().map(|s| s.ident.to_string()).collect()
}

/// A Rust path as written in `module` → `module.Name`.
fn resolve(path: &[String], module: &[String]) -> String {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    if rest.first().is_some_and(|s| s == "crate") {
        base.clear();
        rest = &rest[1..];
    }
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let (name, dirs) = rest.split_last().unwrap();
    base.extend(dirs.iter().cloned());
    format!("{}.{}", base.join("."), name)
}

// ---------------------------------------------------------------------------------------------------------
// k8s-openapi

/// A definition of k8s-openapi: its Go name, its fields' JSON names and whether each is required.
struct OaType {
    /// `io.k8s.api.core.v1` (the definition without its type name).
    package: String,
    go_name: String,
    /// JSON name → required.
    fields: BTreeMap<String, bool>,
    /// `(apiVersion, kind)` when the type is a resource.
    resource: Option<(String, String)>,
}

struct OpenApi {
    /// By (package, lowercase type name).
    types: HashMap<(String, String), OaType>,
    /// Lowercase type name → the packages that have it, in a stable order.
    by_name: HashMap<String, Vec<String>>,
    /// Normalized JSON name → the JSON names with that spelling, anywhere.
    json_names: HashMap<String, BTreeSet<String>>,
}

fn read_openapi(src: &Path) -> OpenApi {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("v1_"))
        .collect();
    // Newest first: v1_37 before v1_33 (compared as numbers).
    versions.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        std::cmp::Reverse(name.trim_start_matches("v1_").parse::<u32>().unwrap_or(0))
    });
    let mut api = OpenApi {
        types: HashMap::new(),
        by_name: HashMap::new(),
        json_names: HashMap::new(),
    };
    for version in versions {
        let mut files = Vec::new();
        rust_files(&version, &mut files);
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let Some(definition) = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("// Generated from definition "))
            else {
                continue;
            };
            let (package, go_name) = definition.trim().rsplit_once('.').unwrap();
            let key = (package.to_string(), go_name.to_lowercase());
            if api.types.contains_key(&key) {
                continue;
            }
            let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let required: HashMap<String, bool> = parsed
                .items
                .iter()
                .filter_map(|i| match i {
                    syn::Item::Struct(s) if s.ident == go_name => Some(s),
                    _ => None,
                })
                .flat_map(|s| s.fields.iter())
                .filter_map(|f| {
                    let name = f.ident.as_ref()?.to_string();
                    let ty = f.ty.to_token_stream().to_string();
                    Some((name, !ty.starts_with("Option <")))
                })
                .collect();
            let mut fields = BTreeMap::new();
            for line in text.lines() {
                // `"volumeID" => Field::Key_volume_id,`
                let line = line.trim();
                let Some((json, rust)) = line.split_once(" => Field::Key_") else {
                    continue;
                };
                let json = json.trim().trim_matches('"').to_string();
                let rust = rust.trim_end_matches(',');
                let rust = rust.strip_prefix("r#").unwrap_or(rust);
                let required = required
                    .get(rust)
                    .or_else(|| required.get(&format!("r#{rust}")))
                    .copied();
                fields.insert(json.clone(), required.unwrap_or(false));
                api.json_names.entry(normalize(&json)).or_default().insert(json);
            }
            let resource = resource_impl(&text);
            api.by_name.entry(key.1.clone()).or_default().push(package.to_string());
            api.types.insert(
                key,
                OaType {
                    package: package.to_string(),
                    go_name: go_name.to_string(),
                    fields,
                    resource,
                },
            );
        }
    }
    api
}

/// `(API_VERSION, KIND)` of an `impl crate::Resource for X` in the file's text.
fn resource_impl(text: &str) -> Option<(String, String)> {
    let start = text.find("impl crate::Resource for ")?;
    let body = &text[start..];
    let constant = |name: &str| {
        let at = body.find(&format!("const {name}: &'static str = \""))? + name.len() + 24;
        let end = body[at..].find('"')?;
        Some(body[at..at + end].to_string())
    };
    Some((constant("API_VERSION")?, constant("KIND")?))
}

/// Lowercase letters and digits only: `volume_id`, `volumeID` and `volume-id` are the same name.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// The model: what generated.rs says

struct Model {
    messages: Vec<Message>,
    /// `(apiVersion, kind)` → static name; apiVersion `*` for every version.
    kinds: BTreeMap<(String, String), String>,
    fallback_names: usize,
}

struct Message {
    static_name: String,
    proto_name: String,
    form: &'static str,
    fields: Vec<Field>,
}

struct Field {
    tag: u32,
    json: String,
    /// `keep`, `omit`, `list`, `map` or `inline`.
    constructor: &'static str,
    /// `Str`, `Bytes`, ..., or `Msg(&STATIC)`.
    ty: String,
}

/// What is known of one k8s-pb message while building the model.
struct Info<'a> {
    pb: &'a PbMessage,
    static_name: String,
    go_name: String,
    /// The k8s-openapi definition of the same type (this version, or another one).
    openapi: Option<&'a OaType>,
    /// Whether that definition is of this very package (not another version).
    exact: bool,
}

impl Model {
    fn build(pb: &Pb, api: &OpenApi) -> Model {
        let mut infos: BTreeMap<String, Info<'_>> = BTreeMap::new();
        let mut statics = BTreeSet::new();
        for m in &pb.messages {
            let package = openapi_package(&m.module);
            let lower = m.name.to_lowercase();
            let exact = api.types.get(&(package.clone(), lower.clone()));
            let other = || {
                // The same type in another version of the same group first, then anywhere.
                let packages = api.by_name.get(&lower)?;
                let group = package.rsplit_once('.').map(|(g, _)| g.to_string()).unwrap_or_default();
                let pick = packages
                    .iter()
                    .find(|p| p.starts_with(&format!("{group}.")))
                    .or(packages.first())?;
                api.types.get(&(pick.clone(), lower.clone()))
            };
            let openapi = exact.or_else(other);
            let go_name = openapi.map(|t| t.go_name.clone()).unwrap_or_else(|| m.name.clone());
            let static_name = format!("{}_{}", module_prefix(&m.module), screaming(&go_name));
            assert!(statics.insert(static_name.clone()), "two messages named {static_name}");
            let key = format!("{}.{}", m.module, m.name);
            infos.insert(
                key,
                Info {
                    pb: m,
                    static_name,
                    go_name,
                    openapi,
                    exact: exact.is_some(),
                },
            );
        }

        // Go names of list types: the item type's name + "List" (k8s-openapi has a generic List instead).
        let list_names: Vec<(String, String)> = infos
            .iter()
            .filter(|(_, i)| i.openapi.is_none() && i.pb.name.ends_with("List"))
            .filter_map(|(key, i)| {
                let items = i.pb.fields.iter().find(|f| f.name == "items")?;
                let item = infos.get(items.message.as_ref()?)?;
                Some((key.clone(), format!("{}List", item.go_name)))
            })
            .collect();
        for (key, go_name) in list_names {
            let info = infos.get_mut(&key).unwrap();
            info.static_name = format!("{}_{}", module_prefix(&info.pb.module), screaming(&go_name));
            info.go_name = go_name;
        }

        let special: HashMap<(String, String), &str> = SPECIAL
            .iter()
            .map(|(module, name, form)| ((module.to_string(), name.to_string()), *form))
            .collect();
        let mut used_special = BTreeSet::new();
        let mut used_omit = BTreeSet::new();
        let mut used_keep = BTreeSet::new();
        let mut fallback_names = 0;
        let mut messages = Vec::new();
        for info in infos.values() {
            let mut form = special.get(&(info.pb.module.clone(), info.go_name.clone())).copied();
            if form.is_some() {
                used_special.insert((info.pb.module.clone(), info.go_name.clone()));
            }
            // A Go slice type (`type ExtraValue []string`) that protobuf wraps in a message of `items`.
            if info.pb.docs.contains("+protobuf.nullable=true") {
                let only_items =
                    matches!(info.pb.fields.as_slice(), [f] if f.name == "items" && f.label == Label::Repeated);
                assert!(
                    only_items,
                    "{}: +protobuf.nullable=true without a lone repeated items",
                    info.go_name
                );
                form = Some("ItemsArray");
            }
            let mut fields = Vec::new();
            for f in &info.pb.fields {
                let nested = f
                    .message
                    .as_ref()
                    .map(|m| infos.get(m).unwrap_or_else(|| panic!("no message {m}")));
                let (json, required, inline) = json_name(info, f, nested, &infos, api, &mut fallback_names);
                let ty = match (f.scalar.as_str(), nested) {
                    ("message", Some(n)) => format!("Msg(&{})", n.static_name),
                    ("string", _) => "Str".into(),
                    ("bytes", _) => "Bytes".into(),
                    ("bool", _) => "Bool".into(),
                    ("int32", _) => "I32".into(),
                    ("int64", _) => "I64".into(),
                    ("double", _) => "F64".into(),
                    (other, _) => panic!("type {other}"),
                };
                let key = format!("{}.{}", info.go_name, json);
                let constructor = match f.label {
                    Label::Repeated => "list",
                    Label::Map => "map",
                    Label::Optional if inline => "inline",
                    Label::Optional if form.is_some() || f.scalar == "message" || required => "keep",
                    Label::Optional if OMIT_ZERO.contains(&key.as_str()) => {
                        used_omit.insert(key.clone());
                        "omit"
                    }
                    Label::Optional if KEEP_EMPTY_STRING.contains(&key.as_str()) => {
                        used_keep.insert(key.clone());
                        "keep"
                    }
                    Label::Optional if f.scalar == "string" || f.scalar == "bytes" => "omit",
                    Label::Optional => "keep",
                };
                let ty = match constructor {
                    "inline" => ty.trim_start_matches("Msg(").trim_end_matches(')').to_string(),
                    _ => ty,
                };
                fields.push(Field {
                    tag: f.tag,
                    json,
                    constructor,
                    ty,
                });
            }
            fields.sort_by_key(|f| f.tag);
            let proto_name = format!("k8s.io.{}.{}", info.pb.module, info.go_name);
            messages.push(Message {
                static_name: info.static_name.clone(),
                proto_name,
                form: form.unwrap_or("Object"),
                fields,
            });
        }
        messages.sort_by(|a, b| a.static_name.cmp(&b.static_name));
        for (module, name, _) in SPECIAL {
            assert!(
                used_special.contains(&(module.to_string(), name.to_string())),
                "special type {module}.{name} not found"
            );
        }
        for entry in OMIT_ZERO {
            assert!(
                used_omit.contains(*entry),
                "OMIT_ZERO entry {entry} matches no optional scalar field"
            );
        }
        for entry in KEEP_EMPTY_STRING {
            assert!(
                used_keep.contains(*entry),
                "KEEP_EMPTY_STRING entry {entry} matches no optional string field"
            );
        }

        let kinds = kinds(&infos, api);
        // Only what a kind reaches: the rest (autoscaling/v1's annotation-only types, ...) is never decoded.
        let mut reachable: BTreeSet<String> = BTreeSet::new();
        let mut queue: Vec<String> = kinds.values().cloned().collect();
        while let Some(name) = queue.pop() {
            if !reachable.insert(name.clone()) {
                continue;
            }
            let m = messages.iter().find(|m| m.static_name == name).unwrap();
            for f in &m.fields {
                let referenced =
                    f.ty.trim_start_matches("Msg(")
                        .trim_start_matches('&')
                        .trim_end_matches(')');
                if referenced
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && referenced.contains('_')
                {
                    queue.push(referenced.to_string());
                }
            }
        }
        messages.retain(|m| reachable.contains(&m.static_name));
        Model {
            messages,
            kinds,
            fallback_names,
        }
    }

    fn render(&self, pb_src: &Path, openapi_src: &Path) -> String {
        let crate_of = |p: &Path| p.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "//! @generated by `cargo run -p capstan-protobuf-gen` (tools/protobuf-gen) from {} and {}: do not edit.\n\
             //!\n\
             //! One table per protobuf message of the Kubernetes API (each field's tag, upstream JSON name, type, and\n\
             //! whether a zero value is written), and the `(apiVersion, kind)` of every top-level type. To regenerate\n\
             //! after changing the version of either crate (or the generator's lists), run the command above from the\n\
             //! workspace and commit the result.\n",
            crate_of(pb_src),
            crate_of(openapi_src)
        );
        out.push_str("use crate::schema::Form::*;\n");
        out.push_str("use crate::schema::Ty::{Bool, Bytes, F64, I32, I64, Msg, Str};\n");
        out.push_str("use crate::schema::{Message, inline, keep, list, map, message, omit};\n\n");
        out.push_str(
            "/// The message of a top-level type, by apiVersion and kind; the options types and `WatchEvent` in\n\
             /// every apiVersion, as upstream registers them.\n\
             pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {\n\
             \x20   KINDS\n\
             \x20       .binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind)))\n\
             \x20       .ok()\n\
             \x20       .map(|i| KINDS[i].2)\n\
             \x20       .or_else(|| ANY_VERSION.binary_search_by(|(k, _)| (*k).cmp(kind)).ok().map(|i| ANY_VERSION[i].1))\n\
             }\n\n",
        );
        let (any, exact): (Vec<_>, Vec<_>) = self.kinds.iter().partition(|((v, _), _)| v == "*");
        out.push_str("/// `(apiVersion, kind, message)`, sorted.\n");
        let _ = writeln!(
            out,
            "pub(crate) static KINDS: [(&str, &str, &Message); {}] = [",
            exact.len()
        );
        for ((version, kind), name) in &exact {
            let _ = writeln!(out, "    ({version:?}, {kind:?}, &{name}),");
        }
        out.push_str("];\n\n/// `(kind, message)` of the kinds in every apiVersion, sorted.\n");
        let _ = writeln!(
            out,
            "pub(crate) static ANY_VERSION: [(&str, &Message); {}] = [",
            any.len()
        );
        for ((_, kind), name) in &any {
            let _ = writeln!(out, "    ({kind:?}, &{name}),");
        }
        out.push_str("];\n");
        for m in &self.messages {
            let _ = writeln!(out, "\npub(crate) static {}: Message = message(", m.static_name);
            let _ = writeln!(out, "    {:?},", m.proto_name);
            let _ = writeln!(out, "    {},", m.form);
            out.push_str("    &[\n");
            for f in &m.fields {
                let _ = writeln!(out, "        {}({}, {:?}, {}),", f.constructor, f.tag, f.json, f.ty);
            }
            out.push_str("    ],\n);\n");
        }
        out
    }
}

/// The JSON name of a field, whether upstream requires it, and whether Go inlines it into its parent.
///
/// A JSON name matches a prost field when prost's own conversion (`heck`'s snake_case) of it gives the
/// field's name (`clusterIPs` → `cluster_i_ps`); failing that, when both spell the same ignoring case and
/// separators (`$ref` ~ `ref`).
fn json_name(
    info: &Info<'_>,
    f: &PbField,
    nested: Option<&Info<'_>>,
    infos: &BTreeMap<String, Info<'_>>,
    api: &OpenApi,
    fallbacks: &mut usize,
) -> (String, bool, bool) {
    let wanted = normalize(&f.name);
    if let Some(t) = info.openapi {
        let found = t
            .fields
            .iter()
            .find(|(json, _)| snake(json) == f.name)
            .or_else(|| t.fields.iter().find(|(json, _)| normalize(json) == wanted));
        if let Some((json, required)) = found {
            return (json.clone(), *required, false);
        }
        // `json:",inline"`: the parent has the nested message's fields instead of this one.
        let names: BTreeSet<String> = t.fields.keys().map(|json| normalize(json)).collect();
        if let Some(n) = nested
            && !names.is_empty()
            && inlined(n.pb, &names, infos, 0)
        {
            return (f.name.clone(), false, true);
        }
    }
    if f.name == "type_meta" && nested.is_some_and(|n| n.go_name == "TypeMeta") {
        return (f.name.clone(), false, true);
    }
    *fallbacks += 1;
    // The field's doc comment, when it names the field as JSON does (`desiredAPIVersion is ...`).
    let documented = f
        .docs
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.starts_with(|c: char| c.is_ascii_lowercase()) && snake(word) == f.name)
        .map(str::to_string);
    // Else a JSON name of another type with that spelling.
    let candidates: Vec<&String> = api
        .json_names
        .get(&wanted)
        .map(|names| names.iter().filter(|json| snake(json) == f.name).collect())
        .unwrap_or_default();
    let json = match (documented, candidates.as_slice()) {
        (Some(json), _) => json,
        (None, [only]) => (*only).clone(),
        _ => camel(&f.name),
    };
    if std::env::var_os("PROTOBUF_GEN_VERBOSE").is_some() {
        eprintln!(
            "fallback name: {}.{}.{} -> {json}",
            info.pb.module, info.go_name, f.name
        );
    }
    (json, false, false)
}

/// Whether every field of `message` is one of the parent's JSON `names`, directly or through a message
/// field that is itself inlined (`NamedRuleWithOperations` inlines `RuleWithOperations`, which inlines
/// `Rule`).
fn inlined(message: &PbMessage, names: &BTreeSet<String>, infos: &BTreeMap<String, Info<'_>>, depth: usize) -> bool {
    !message.fields.is_empty()
        && depth < 4
        && message.fields.iter().all(|f| {
            names.contains(&normalize(&f.name))
                || f.message
                    .as_ref()
                    .and_then(|m| infos.get(m))
                    .is_some_and(|n| inlined(n.pb, names, infos, depth + 1))
        })
}

/// prost's field name for a protobuf field name (`podIP` → `pod_ip`), without the `r#` of keywords.
fn snake(json: &str) -> String {
    heck::ToSnakeCase::to_snake_case(json)
}

/// The top-level kinds: every message with `metadata` (ObjectMeta or ListMeta), the meta kinds and the
/// listed others.
fn kinds(infos: &BTreeMap<String, Info<'_>>, api: &OpenApi) -> BTreeMap<(String, String), String> {
    // The API group of each k8s-pb group directory, from k8s-openapi's resources.
    let mut groups: HashMap<String, String> = GROUPS.iter().map(|(d, g)| (d.to_string(), g.to_string())).collect();
    for t in api.types.values() {
        if let Some((api_version, _)) = &t.resource
            && let Some(dir) = t.package.strip_prefix("io.k8s.api.").and_then(|p| p.split('.').next())
        {
            let group = api_version
                .rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default();
            groups.entry(dir.to_string()).or_insert(group);
        }
    }
    let api_version = |module: &str| -> Option<String> {
        let parts: Vec<&str> = module.split('.').collect();
        let (group, version) = match parts.as_slice() {
            ["api", dir, version] => (
                groups.get(*dir).cloned().unwrap_or_else(|| format!("{dir}.k8s.io")),
                *version,
            ),
            ["apiextensions_apiserver", .., version] => ("apiextensions.k8s.io".to_string(), *version),
            ["kube_aggregator", .., version] => ("apiregistration.k8s.io".to_string(), *version),
            ["metrics", "pkg", "apis", dir, version] => (format!("{}.k8s.io", dir.replace('_', ".")), *version),
            _ => return None,
        };
        Some(if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        })
    };
    let mut kinds = BTreeMap::new();
    let mut add = |api_version: String, kind: String, static_name: &str| {
        if let Some(previous) = kinds.insert((api_version.clone(), kind.clone()), static_name.to_string()) {
            panic!("{api_version} {kind}: both {previous} and {static_name}");
        }
    };
    for info in infos.values() {
        let metadata = info
            .pb
            .fields
            .iter()
            .find(|f| f.name == "metadata")
            .and_then(|f| f.message.as_ref());
        let top = metadata.is_some_and(|m| m.ends_with(".ObjectMeta") || m.ends_with(".ListMeta"))
            || OTHER_KINDS.contains(&(info.pb.module.as_str(), info.go_name.as_str()));
        if !top || info.pb.module.starts_with("apimachinery.") {
            continue;
        }
        let version = api_version(&info.pb.module).unwrap_or_else(|| panic!("no apiVersion for {}", info.pb.module));
        // k8s-openapi's kind if the type is a resource there, else its Go name.
        let kind = info
            .openapi
            .filter(|_| info.exact)
            .and_then(|t| t.resource.as_ref())
            .map(|(_, kind)| kind.clone())
            .unwrap_or_else(|| info.go_name.clone());
        add(version, kind, &info.static_name);
    }
    for (version, kind) in META_KINDS {
        let module = if version.ends_with("v1beta1") && kind.ends_with("List") {
            "apimachinery.pkg.apis.meta.v1beta1"
        } else {
            "apimachinery.pkg.apis.meta.v1"
        };
        let info = infos
            .values()
            .find(|i| i.pb.module == module && i.go_name == *kind)
            .unwrap_or_else(|| panic!("no meta kind {kind}"));
        add(version.to_string(), kind.to_string(), &info.static_name);
    }
    kinds
}

/// The protobuf package of a k8s-pb module as k8s-openapi names it: `api.core.v1` → `io.k8s.api.core.v1`.
fn openapi_package(module: &str) -> String {
    format!("io.k8s.{}", module.replace('_', "-"))
}

/// `CORE_V1`, `META_V1`, `RESOURCE` (apimachinery's Quantity), `INTSTR`: the last two parts of the module
/// when the last is a version, else the last.
fn module_prefix(module: &str) -> String {
    let parts: Vec<&str> = module.split('.').collect();
    let last = parts[parts.len() - 1];
    let is_version = last.len() > 1 && last.starts_with('v') && last.as_bytes()[1].is_ascii_digit();
    let prefix = if is_version && parts.len() > 1 {
        format!("{}_{}", parts[parts.len() - 2], last)
    } else {
        last.to_string()
    };
    prefix.to_uppercase()
}

/// `AWSElasticBlockStoreVolumeSource` → `AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE`, `CSIDriver` → `CSI_DRIVER`.
fn screaming(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()) && chars[i - 1].is_ascii_uppercase());
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `pod_ip` → `podIp`: the last resort, for names no k8s-openapi type has.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
