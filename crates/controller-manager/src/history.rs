//! ControllerRevisions: the recorded pod templates that DaemonSets and
//! StatefulSets roll between (upstream's `pkg/controller/history`, shared by
//! both controllers).
//!
//! A revision's `data` is upstream's `getPatch`: the strategic merge patch
//! `{"spec":{"template":{…,"$patch":"replace"}}}`. That format is the
//! contract with kubectl: `kubectl rollout undo` sends an old revision's
//! `data` as a strategic merge patch to the owner, and `kubectl rollout
//! history --revision=N` applies it to show the template; it also compares
//! the owner's own patch with a revision byte for byte to report "skipped
//! rollback". So the template is rendered as Go's `encoding/json` renders
//! it — sorted keys, and the empty structs Go always writes
//! (`metadata.creationTimestamp: null`, a container's `resources: {}`).
//!
//! Revisions are found again by their data, not their name: a template that
//! comes back (a rollback) reuses its old revision under the next revision
//! number, as upstream.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Error;
use crate::replicaset::{claim, controller_of, controller_reference};

/// `revisionHistoryLimit` when unset (the API defaults it for every kind).
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;
/// Upstream's `ControllerRevisionHashLabel`: the hash in a revision's name.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Upstream's `ControllerRevisionHashLabelKey`: on daemon and stateful pods,
/// which revision they were made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Names are `<prefix>-<hash>`; the prefix is cut so the name stays valid.
const MAX_PREFIX: usize = 223;

/// Upstream's `getPatch`: the revision data that restores `template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    go_empty_structs(&mut template);
    template["$patch"] = "replace".into();
    json!({"spec": {"template": template}})
}

/// The struct-typed fields Go's `encoding/json` writes even when empty
/// (`omitempty` never drops a struct), which kubectl's own rendering of
/// the template contains.
fn go_empty_structs(template: &mut Value) {
    for field in ["metadata", "spec"] {
        if !template[field].is_object() {
            template[field] = json!({});
        }
    }
    if let Some(meta) = template["metadata"].as_object_mut() {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    for list in ["initContainers", "containers"] {
        let containers = template["spec"].get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten().filter_map(Value::as_object_mut) {
            container.entry("resources").or_insert_with(|| json!({}));
        }
    }
}

/// Upstream's `HashControllerRevision`: FNV-32a of the data, then of the
/// collision count in decimal, encoded with the safe alphabet.
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(count.to_string().as_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Upstream's `ControllerRevisionName`.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// Upstream's `NewControllerRevision`: labelled like the template (so the
/// owner's selector finds it) plus its hash, controlled by `parent`.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template_labels: &BTreeMap<String, String>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(&data, collision_count);
    let mut labels = template_labels.clone();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent.name_any(), &hash)),
            namespace: parent.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![controller_reference(parent)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

pub fn data(revision: &ControllerRevision) -> Value {
    revision.data.as_ref().map_or(Value::Null, |d| d.0.clone())
}

/// Whether two revision payloads record the same state. Go's zero values
/// are set aside: a stored revision may come back without its nulls.
pub fn same_data(a: &Value, b: &Value) -> bool {
    let pruned = |v: &Value| {
        let mut v = v.clone();
        prune(&mut v);
        v
    };
    pruned(a) == pruned(b)
}

/// Upstream's `EqualRevision`. (Upstream also compares the hash labels, but
/// only when both parse as integers, which safe-encoded hashes never do.)
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    same_data(&data(a), &data(b))
}

/// Upstream's `SortControllerRevisions`: by revision, then age, then name.
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        let created = |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
        a.revision
            .cmp(&b.revision)
            .then(created(a).cmp(&created(b)))
            .then(a.name_any().cmp(&b.name_any()))
    });
}

/// The number after the newest of `sorted` revisions.
pub fn next_revision(sorted: &[ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// Upstream's `ApplyRevision`: `parent` as it was at `revision` (its data
/// applied as a strategic merge patch).
pub fn apply_revision<K>(parent: &K, revision: &ControllerRevision) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    let invalid = |e: &dyn std::fmt::Display| Error::Pending(format!("revision {}: {e}", revision.name_any()));
    let original = serde_json::to_value(parent).map_err(|e| invalid(&e))?;
    let gvk = (&*K::group(&()), &*K::version(&()), &*K::kind(&()));
    let patched = capstan_patch::strategic_merge(&original, &data(revision), gvk).map_err(|e| invalid(&e))?;
    serde_json::from_value(patched).map_err(|e| invalid(&e))
}

/// The revisions `parent` controls, after adopting orphans its selector
/// matches and releasing those it no longer does; sorted.
pub async fn claim_revisions<K>(
    api: &Api<ControllerRevision>,
    parent: &K,
    selector: &LabelSelector,
) -> Result<Vec<ControllerRevision>, Error>
where
    K: Resource<DynamicType = ()>,
{
    let all = api.list(&ListParams::default()).await?.items;
    let mut owned = claim(api, parent, selector, all).await?;
    sort_revisions(&mut owned);
    Ok(owned)
}

/// Upstream's `CreateControllerRevision`: a name already taken by other
/// data bumps `collision_count` and tries the next hash; the same data
/// under our control is ours already.
pub async fn create<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    parent: &K,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, Error> {
    loop {
        let mut candidate = revision.clone();
        let hash = hash_revision(&data(revision), Some(*collision_count));
        let name = revision_name(&parent.name_any(), &hash);
        candidate.metadata.name = Some(name.clone());
        candidate.labels_mut().insert(HASH_LABEL.into(), hash);
        match api.create(&PostParams::default(), &candidate).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = api.get(&name).await?;
                let ours =
                    controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == parent.meta().uid.as_ref());
                if ours && equal_revision(&existing, revision) {
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Upstream's `UpdateControllerRevision`: gives a revision a new number.
pub async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision, Error> {
    let patch = json!({"revision": number});
    Ok(api
        .patch(&revision.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

pub async fn delete(api: &Api<ControllerRevision>, name: &str) -> Result<(), Error> {
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

// ---- Hashing and JSON helpers shared with the deployment controller ----

pub(crate) fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Upstream's `rand.SafeEncodeString`: no vowels, no confusable characters.
pub(crate) fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Drops what Go treats as the zero value: `null`, `{}` and `[]`.
pub(crate) fn prune(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune);
            map.retain(|_, v| !is_zero(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn set() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
                     "template": serde_json::to_value(template("nginx:1")).unwrap()}
        }))
        .unwrap()
    }

    #[test]
    fn patch_is_what_kubectl_renders() {
        let patch = serde_json::to_string(&template_patch(&template("nginx:1"))).unwrap();
        assert_eq!(
            patch,
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1","name":"c","resources":{}}]}}}}"#
        );
    }

    #[test]
    fn revision_hash_depends_on_data_and_collisions() {
        let data = template_patch(&template("nginx:1"));
        let hash = hash_revision(&data, None);
        assert_eq!(hash, hash_revision(&data, None), "stable");
        assert_ne!(hash, hash_revision(&data, Some(1)));
        assert_ne!(hash, hash_revision(&template_patch(&template("nginx:2")), None));
        assert!(hash.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn names_are_prefix_dash_hash_with_a_bounded_prefix() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), MAX_PREFIX + 2);
    }

    #[test]
    fn new_revision_is_labelled_and_owned() {
        let s = set();
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let data = template_patch(&template("nginx:1"));
        let rev = new_revision(&s, &labels, data.clone(), 3, Some(0));
        let hash = hash_revision(&data, Some(0));
        assert_eq!(rev.name_any(), format!("web-{hash}"));
        assert_eq!(rev.labels()[HASH_LABEL], hash);
        assert_eq!(rev.labels()["app"], "web");
        assert_eq!(rev.revision, 3);
        assert_eq!(rev.owner_references()[0].kind, "StatefulSet");
    }

    #[test]
    fn equality_ignores_go_nulls() {
        let s = set();
        let a = new_revision(&s, &BTreeMap::new(), template_patch(&template("nginx:1")), 1, None);
        let mut stored = data(&a);
        stored["spec"]["template"]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
        let b = ControllerRevision {
            data: Some(RawExtension(stored)),
            ..a.clone()
        };
        assert!(equal_revision(&a, &b));
        let c = new_revision(&s, &BTreeMap::new(), template_patch(&template("nginx:2")), 1, None);
        assert!(!equal_revision(&a, &c));
    }

    #[test]
    fn applying_a_revision_restores_its_template() {
        let s = set();
        let old = new_revision(&s, &BTreeMap::new(), template_patch(&template("nginx:0")), 1, None);
        let restored = apply_revision(&s, &old).unwrap();
        let spec = restored.spec.unwrap();
        assert_eq!(
            spec.template.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx:0")
        );
        assert_eq!(spec.service_name.as_deref(), Some("web"), "the rest of the set is kept");
    }

    #[test]
    fn revisions_sort_by_number_and_continue_from_the_last() {
        let s = set();
        let mut revs: Vec<ControllerRevision> = [3, 1, 2]
            .iter()
            .map(|n| new_revision(&s, &BTreeMap::new(), json!({"n": n}), *n, None))
            .collect();
        sort_revisions(&mut revs);
        assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(next_revision(&revs), 4);
        assert_eq!(next_revision(&[]), 1);
    }
}
