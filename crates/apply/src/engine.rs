//! The ownership engine (upstream's structured-merge-diff `merge.Updater`
//! plus the apiserver's `stripMeta` step), over decoded [`Managers`].
//!
//! - [`Engine::settle`]: a change from `live` to `new` takes the changed
//!   fields away from every other manager (or, for a non-forced apply,
//!   reports them as conflicts) and removed fields from everyone.
//! - [`Engine::update`]: a non-apply write; its manager gains what changed.
//! - [`Engine::apply`]: merge, record the applier's fields, prune what it
//!   stopped applying, then settle.

use serde_json::Value;

use crate::error::Conflict;
use crate::fieldset::FieldSet;
use crate::managers::{Entry, Managers, Operation, identifier};
use crate::path::{PathElement, path_string, values_equal};
use crate::schema::Ty;
use crate::typed::{Comparison, compare, ensure_named_fields_are_members, field_set, merge, remove_items};

/// Why the engine stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    Conflicts(Vec<Conflict>),
    Invalid(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Invalid(message)
    }
}

/// The manager of a write, as the engine records it.
pub(crate) struct Writer<'a> {
    pub(crate) name: &'a str,
    pub(crate) subresource: &'a str,
    pub(crate) api_version: &'a str,
    pub(crate) time: &'a str,
}

impl Writer<'_> {
    pub(crate) fn name(&self) -> &str {
        if self.name.is_empty() { "unknown" } else { self.name }
    }

    pub(crate) fn id(&self, operation: Operation) -> String {
        identifier(self.name(), operation, self.api_version, self.subresource)
    }
}

/// The engine for one kind, with the fields its endpoint resets (never owned through it).
pub(crate) struct Engine {
    pub(crate) ty: Ty,
    pub(crate) ignored: FieldSet,
}

/// The key `Update` changes are collected under before they join their manager's entry.
const CURRENT_OPERATION: &str = "current-operation";

impl Engine {
    /// Folds the change `live` → `new` into every manager but `workflow`.
    pub(crate) fn settle(
        &self,
        live: &Value,
        new: &Value,
        managers: &mut Managers,
        workflow: &str,
        force: bool,
    ) -> Result<Comparison, Failure> {
        let comparison = compare(live, new, self.ty)?.excluding(&self.ignored);
        let changed = comparison.changed();
        let conflicts: Vec<(String, FieldSet)> = (managers.iter())
            .filter(|(id, _)| id.as_str() != workflow)
            .map(|(id, entry)| (id.clone(), entry.fields.intersection(&changed)))
            .filter(|(_, set)| !set.is_empty())
            .collect();
        if !force && !conflicts.is_empty() {
            return Err(Failure::Conflicts(describe(&conflicts, managers)));
        }
        for (id, set) in &conflicts {
            if let Some(entry) = managers.get_mut(id) {
                entry.fields = entry.fields.difference(set);
            }
        }
        for (_, entry) in managers.iter_mut().filter(|(id, _)| id.as_str() != workflow) {
            entry.fields = entry.fields.difference(&comparison.removed);
        }
        managers.retain(|_, entry| !entry.fields.is_empty());
        Ok(comparison)
    }

    /// A non-apply write from `live` to `new` by `writer`.
    pub(crate) fn update(
        &self,
        live: &Value,
        new: &Value,
        managers: &mut Managers,
        writer: &Writer<'_>,
    ) -> Result<(), Failure> {
        let comparison = self.settle(live, new, managers, CURRENT_OPERATION, true)?;
        let gained = (comparison.changed().difference(&comparison.removed))
            .recursive_difference(&self.ignored)
            .difference(&strip_set());
        if gained.is_empty() {
            return Ok(());
        }
        let id = writer.id(Operation::Update);
        let previous = managers.remove(&id).map(|e| e.fields).unwrap_or_default();
        let entry = Entry {
            manager: writer.name().to_string(),
            operation: Operation::Update,
            api_version: writer.api_version.to_string(),
            subresource: writer.subresource.to_string(),
            time: Some(writer.time.to_string()),
            fields: gained.union(&previous),
        };
        managers.insert(id, entry);
        Ok(())
    }

    /// Applies `config` to `live` for `writer`. The merged object, or `None` when it equals `live`.
    pub(crate) fn apply(
        &self,
        live: &Value,
        config: &Value,
        managers: &mut Managers,
        writer: &Writer<'_>,
        force: bool,
    ) -> Result<Option<Value>, Failure> {
        let id = writer.id(Operation::Apply);
        let merged = merge(live, config, self.ty)?;
        let previous = managers.get(&id);
        let last = previous.map(|e| e.fields.clone()).unwrap_or_default();
        let entry = Entry {
            manager: writer.name().to_string(),
            operation: Operation::Apply,
            api_version: writer.api_version.to_string(),
            subresource: writer.subresource.to_string(),
            time: previous.and_then(|e| e.time.clone()),
            fields: field_set(config, self.ty)?.recursive_difference(&self.ignored),
        };
        managers.insert(id.clone(), entry);
        let merged = self.prune(merged, managers, &last)?;
        self.settle(live, &merged, managers, &id, force)?;
        strip_meta(managers, &id);
        Ok((!values_equal(live, &merged)).then_some(merged))
    }

    /// Removes what the applier owned (`last`) and no longer applies, unless
    /// some manager (the applier's new configuration included) still owns it.
    fn prune(&self, merged: Value, managers: &Managers, last: &FieldSet) -> Result<Value, Failure> {
        if last.is_empty() {
            return Ok(merged);
        }
        let named = |set: &FieldSet| ensure_named_fields_are_members(set, self.ty);
        let fields_of = |value: &Value| field_set(value, self.ty).map(|set| named(&set));
        let last = named(last);
        let owned = named(&managers.values().fold(FieldSet::new(), |all, e| all.union(&e.fields)));
        let merged_set = fields_of(&merged)?;
        let pruned = remove_items(&merged, &last, self.ty);
        let unowned = merged_set.difference(&fields_of(&pruned)?.union(&owned));
        let pruned = remove_items(&merged, &unowned, self.ty);
        let dangling = merged_set.difference(&fields_of(&pruned)?).intersection(&last);
        Ok(remove_items(&merged, &dangling, self.ty))
    }
}

fn describe(conflicts: &[(String, FieldSet)], managers: &Managers) -> Vec<Conflict> {
    let mut out = Vec::new();
    for (id, set) in conflicts {
        let Some(entry) = managers.get(id) else { continue };
        for path in set.paths() {
            out.push(Conflict {
                manager: entry.manager.clone(),
                operation: entry.operation,
                api_version: if entry.operation == Operation::Update {
                    entry.api_version.clone()
                } else {
                    String::new()
                },
                subresource: entry.subresource.clone(),
                field: path_string(&path),
                path,
            });
        }
    }
    out
}

/// Fields no manager ever owns: type meta and server-set metadata.
fn strip_set() -> FieldSet {
    let field = |name: &str| PathElement::Field(name.to_string());
    let mut set = FieldSet::new();
    for top in ["apiVersion", "kind", "metadata"] {
        set.insert(&[field(top)]);
    }
    let server_set = [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ];
    for name in server_set {
        set.insert(&[field("metadata"), field(name)]);
    }
    set
}

/// Drops the strip set from one manager's entry (and the entry, if that empties it).
pub(crate) fn strip_meta(managers: &mut Managers, id: &str) {
    let Some(entry) = managers.get_mut(id) else { return };
    entry.fields = entry.fields.difference(&strip_set());
    if entry.fields.is_empty() {
        managers.remove(id);
    }
}
