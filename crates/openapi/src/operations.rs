//! The REST operations of each served resource, as upstream's OpenAPI
//! documents list them: paths, operation ids, parameters, bodies and
//! responses, independent of the OpenAPI version they are rendered in.
//!
//! kubectl reads two things here: `x-kubernetes-group-version-kind` of the
//! operations on a resource's paths (`kubectl explain` finds the kind
//! through them), and the `fieldValidation` query parameter of each PATCH
//! operation (its presence makes kubectl leave validation to the server).

use capstan_apimachinery::registry::{ResourceType, Subresource};

use crate::catalog::{self, Gvk};
use crate::definitions::DEFINITIONS;

/// A parameter of an operation or path.
#[derive(Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    /// `path` or `query`.
    pub location: &'static str,
    /// `string`, `boolean` or `integer`.
    pub ty: &'static str,
    pub description: &'static str,
}

const fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "path",
        ty: "string",
        description,
    }
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

static NAME: Param = path("name", "name of the object");
static NAMESPACE: Param = path(
    "namespace",
    "object name and auth scope, such as for teams and projects",
);
static PRETTY: Param = query("pretty", "string", "If 'true', then the output is pretty printed.");
static DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
);
static FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
);
static FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: drop unknown fields silently. - Warn: send a warning for each unknown field. - Strict: fail the request on unknown fields with a BadRequest error.",
);
static FORCE: Param = query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
static GRACE_PERIOD: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Zero means delete immediately.",
);
static ORPHAN: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7.",
);
static PROPAGATION: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
);
static ALLOW_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
);
static CONTINUE: Param = query(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server.",
);
static FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
);
static LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
);
static LIMIT: Param = query(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call.",
);
static RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from.",
);
static RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls.",
);
static SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events for the current objects.",
);
static TIMEOUT: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call, regardless of any activity or inactivity.",
);
static WATCH: Param = query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
);

static CREATE_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
static PATCH_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
static DELETE_PARAMS: &[&Param] = &[&DRY_RUN, &GRACE_PERIOD, &ORPHAN, &PROPAGATION];
static LIST_PARAMS: &[&Param] = &[
    &ALLOW_BOOKMARKS,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT,
    &WATCH,
];
static DELETE_COLLECTION_PARAMS: &[&Param] = &[
    &CONTINUE,
    &DRY_RUN,
    &FIELD_SELECTOR,
    &GRACE_PERIOD,
    &LABEL_SELECTOR,
    &LIMIT,
    &ORPHAN,
    &PROPAGATION,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT,
];

/// Content types a PATCH body may have.
pub(crate) const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
/// Content types of other bodies and of responses.
pub(crate) const JSON_TYPES: &[&str] = &["application/json", "application/yaml"];

/// What a request or response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// An object described by the named definition.
    Definition(String),
    /// Plain text (logs, connect streams).
    Text,
}

#[derive(Debug)]
pub(crate) struct Operation {
    /// `get`, `post`, `put`, `patch` or `delete`.
    pub method: &'static str,
    /// `x-kubernetes-action`: `get`, `list`, `post`, `put`, `patch`,
    /// `delete`, `deletecollection` or `connect`; none for discovery.
    pub action: Option<&'static str>,
    pub id: String,
    pub description: String,
    pub tag: String,
    pub gvk: Option<Gvk>,
    pub query: &'static [&'static Param],
    pub body: Option<(Payload, &'static [&'static str])>,
    pub response: Payload,
    /// Success status codes besides 200.
    pub also: &'static [&'static str],
}

/// A path with the parameters all its operations share.
#[derive(Debug)]
pub(crate) struct PathItem {
    pub path: String,
    pub params: Vec<&'static Param>,
    pub ops: Vec<Operation>,
}

impl PathItem {
    /// The definitions the operations carry or answer.
    pub fn payload_definitions(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().flat_map(|op| {
            let body = op.body.as_ref().map(|(p, _)| p);
            body.into_iter().chain(Some(&op.response)).filter_map(|p| match p {
                Payload::Definition(name) => Some(name.as_str()),
                Payload::Text => None,
            })
        })
    }
}

/// `/api/v1` or `/apis/apps/v1`.
pub(crate) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Upstream's operation-id spelling of a group: `Core`, `Apps`,
/// `RbacAuthorization`, `Apiextensions`.
pub(crate) fn group_id(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    let short = group.strip_suffix(".k8s.io").unwrap_or(group);
    short.split('.').map(capitalize).collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn lower_first(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `apps_v1`, `core_v1`, `rbacAuthorization_v1`.
pub(crate) fn tag(group: &str, version: &str) -> String {
    format!("{}_{version}", lower_first(&group_id(group)))
}

/// Names shared by the operations of one resource.
struct Names {
    /// `AppsV1`.
    gv: String,
    /// `Namespaced` or empty.
    scope: &'static str,
    kind: &'static str,
    tag: String,
    gvk: Gvk,
    item: Payload,
}

impl Names {
    fn of(r: &ResourceType) -> Names {
        let gvk = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        Names {
            gv: group_id(r.group) + &capitalize(r.version),
            scope: if r.namespaced { "Namespaced" } else { "" },
            kind: r.kind,
            tag: tag(r.group, r.version),
            gvk,
            item: definition(&gvk),
        }
    }

    fn op(&self, method: &'static str, action: &'static str, id: String, description: String) -> Operation {
        Operation {
            method,
            action: Some(action),
            id,
            description,
            tag: self.tag.clone(),
            gvk: Some(self.gvk),
            query: &[],
            body: None,
            response: self.item.clone(),
            also: &[],
        }
    }
}

/// The payload of a kind: its definition, or text if it has none.
fn definition(gvk: &Gvk) -> Payload {
    DEFINITIONS
        .of_kind(gvk)
        .map_or(Payload::Text, |name| Payload::Definition(name.to_string()))
}

fn shared(name: &str) -> Payload {
    Payload::Definition(name.to_string())
}

/// Every path of a resource: its collection, its objects, the
/// all-namespaces list and its subresources.
pub(crate) fn resource_paths(r: &ResourceType) -> Vec<PathItem> {
    let names = Names::of(r);
    let base = prefix(r.group, r.version);
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let scope_params = |named: bool| {
        let mut params: Vec<&'static Param> = Vec::new();
        if named {
            params.push(&NAME);
        }
        if r.namespaced {
            params.push(&NAMESPACE);
        }
        params.push(&PRETTY);
        params
    };
    let item_path = format!("{collection}/{{name}}");
    let mut paths = vec![
        PathItem {
            path: collection,
            params: scope_params(false),
            ops: collection_ops(r, &names),
        },
        PathItem {
            path: item_path.clone(),
            params: scope_params(true),
            ops: item_ops(r, &names),
        },
    ];
    if r.namespaced && r.verbs.contains(&"list") {
        paths.push(all_namespaces(r, &names, &base));
    }
    for sub in &r.subresources {
        paths.push(PathItem {
            path: format!("{item_path}/{}", sub.name),
            params: scope_params(true),
            ops: subresource_ops(sub, &names),
        });
    }
    paths.retain(|p| !p.ops.is_empty());
    paths
}

fn collection_ops(r: &ResourceType, n: &Names) -> Vec<Operation> {
    let (gv, scope, kind) = (&n.gv, n.scope, n.kind);
    let list_gvk = Gvk {
        kind: r.list_kind,
        ..n.gvk
    };
    let mut ops = Vec::new();
    if r.verbs.contains(&"list") {
        let mut op = n.op(
            "get",
            "list",
            format!("list{gv}{scope}{kind}"),
            format!("list or watch objects of kind {kind}"),
        );
        op.query = LIST_PARAMS;
        op.response = definition(&list_gvk);
        ops.push(op);
    }
    if r.verbs.contains(&"create") {
        let mut op = n.op(
            "post",
            "post",
            format!("create{gv}{scope}{kind}"),
            format!("create a {kind}"),
        );
        op.query = CREATE_PARAMS;
        op.body = Some((n.item.clone(), JSON_TYPES));
        op.also = &["201", "202"];
        ops.push(op);
    }
    if r.verbs.contains(&"deletecollection") {
        let mut op = n.op(
            "delete",
            "deletecollection",
            format!("delete{gv}Collection{scope}{kind}"),
            format!("delete collection of {kind}"),
        );
        op.query = DELETE_COLLECTION_PARAMS;
        op.body = Some((shared(catalog::DELETE_OPTIONS), JSON_TYPES));
        op.response = shared(catalog::STATUS);
        ops.push(op);
    }
    ops
}

fn item_ops(r: &ResourceType, n: &Names) -> Vec<Operation> {
    let (gv, scope, kind) = (&n.gv, n.scope, n.kind);
    let mut ops = Vec::new();
    if r.verbs.contains(&"get") {
        ops.push(n.op(
            "get",
            "get",
            format!("read{gv}{scope}{kind}"),
            format!("read the specified {kind}"),
        ));
    }
    if r.verbs.contains(&"update") {
        ops.push(replace_op(n, format!("replace{gv}{scope}{kind}"), kind));
    }
    if r.verbs.contains(&"delete") {
        let mut op = n.op(
            "delete",
            "delete",
            format!("delete{gv}{scope}{kind}"),
            format!("delete a {kind}"),
        );
        op.query = DELETE_PARAMS;
        op.body = Some((shared(catalog::DELETE_OPTIONS), JSON_TYPES));
        op.response = shared(catalog::STATUS);
        op.also = &["202"];
        ops.push(op);
    }
    if r.verbs.contains(&"patch") {
        ops.push(patch_op(n, format!("patch{gv}{scope}{kind}"), kind));
    }
    ops
}

fn replace_op(n: &Names, id: String, what: &str) -> Operation {
    let mut op = n.op("put", "put", id, format!("replace the specified {what}"));
    op.query = CREATE_PARAMS;
    op.body = Some((n.item.clone(), JSON_TYPES));
    op.also = &["201"];
    op
}

/// The operation kubectl inspects for `fieldValidation`.
fn patch_op(n: &Names, id: String, what: &str) -> Operation {
    let mut op = n.op("patch", "patch", id, format!("partially update the specified {what}"));
    op.query = PATCH_PARAMS;
    op.body = Some((shared(catalog::PATCH), PATCH_TYPES));
    op.also = &["201"];
    op
}

fn all_namespaces(r: &ResourceType, n: &Names, base: &str) -> PathItem {
    let list_gvk = Gvk {
        kind: r.list_kind,
        ..n.gvk
    };
    let mut op = n.op(
        "get",
        "list",
        format!("list{}{}ForAllNamespaces", n.gv, n.kind),
        format!("list or watch objects of kind {}", n.kind),
    );
    op.query = LIST_PARAMS;
    op.response = definition(&list_gvk);
    PathItem {
        path: format!("{base}/{}", r.plural),
        params: vec![&PRETTY],
        ops: vec![op],
    }
}

fn subresource_ops(sub: &Subresource, parent: &Names) -> Vec<Operation> {
    let gvk = Gvk {
        group: sub.group,
        version: sub.version,
        kind: sub.kind,
    };
    let n = Names {
        gv: parent.gv.clone(),
        scope: parent.scope,
        kind: parent.kind,
        tag: parent.tag.clone(),
        gvk,
        item: definition(&gvk),
    };
    let id_tail = format!("{}{}{}", parent.scope, parent.kind, capitalize(sub.name));
    if sub.kind.ends_with("Options") {
        return connect_ops(sub, &n, &id_tail);
    }
    let what = format!("{} of the specified {}", sub.name, parent.kind);
    let gv = &parent.gv;
    let mut ops = Vec::new();
    for verb in sub.verbs {
        match *verb {
            "get" => ops.push(n.op("get", "get", format!("read{gv}{id_tail}"), format!("read {what}"))),
            "update" => ops.push(replace_op(&n, format!("replace{gv}{id_tail}"), &what)),
            "patch" => ops.push(patch_op(&n, format!("patch{gv}{id_tail}"), &what)),
            "create" => {
                let description = format!("create {} of a {}", sub.name, parent.kind);
                let mut op = n.op("post", "post", format!("create{gv}{id_tail}"), description);
                op.query = CREATE_PARAMS;
                op.body = Some((n.item.clone(), JSON_TYPES));
                op.also = &["201", "202"];
                ops.push(op);
            }
            _ => {}
        }
    }
    ops
}

/// exec, attach, port-forward and proxy: streams, not objects.
fn connect_ops(sub: &Subresource, n: &Names, id_tail: &str) -> Vec<Operation> {
    let methods = [
        ("get", "get", "Get"),
        ("create", "post", "Post"),
        ("update", "put", "Put"),
        ("patch", "patch", "Patch"),
        ("delete", "delete", "Delete"),
    ];
    methods
        .iter()
        .filter(|(verb, _, _)| sub.verbs.contains(verb))
        .map(|(_, method, title)| {
            let description = format!(
                "connect {} requests to {} of {}",
                method.to_uppercase(),
                sub.name,
                n.kind
            );
            let mut op = n.op(
                method,
                "connect",
                format!("connect{}{title}{id_tail}", n.gv),
                description,
            );
            op.response = Payload::Text;
            op
        })
        .collect()
}

/// `GET /apis/apps/v1/`: the group version's resource list.
pub(crate) fn resources_path(group: &str, version: &str) -> PathItem {
    let op = discovery_op(
        format!("get{}{}APIResources", group_id(group), capitalize(version)),
        "get available resources",
        tag(group, version),
        catalog::API_RESOURCE_LIST,
    );
    PathItem {
        path: format!("{}/", prefix(group, version)),
        params: Vec::new(),
        ops: vec![op],
    }
}

/// `GET /apis/apps/`: one group and its versions.
pub(crate) fn group_path(group: &str) -> PathItem {
    let id = group_id(group);
    let op = discovery_op(
        format!("get{id}APIGroup"),
        "get information of a group",
        lower_first(&id),
        catalog::API_GROUP,
    );
    PathItem {
        path: format!("/apis/{group}/"),
        params: Vec::new(),
        ops: vec![op],
    }
}

/// `GET /api/`: the core API versions.
pub(crate) fn core_versions_path() -> PathItem {
    let op = discovery_op(
        "getCoreAPIVersions".to_string(),
        "get available API versions",
        "core".to_string(),
        catalog::API_VERSIONS,
    );
    PathItem {
        path: "/api/".to_string(),
        params: Vec::new(),
        ops: vec![op],
    }
}

/// `GET /apis/`: every group.
pub(crate) fn groups_path() -> PathItem {
    let op = discovery_op(
        "getAPIVersions".to_string(),
        "get available API versions",
        "apis".to_string(),
        catalog::API_GROUP_LIST,
    );
    PathItem {
        path: "/apis/".to_string(),
        params: Vec::new(),
        ops: vec![op],
    }
}

fn discovery_op(id: String, description: &str, tag: String, response: &str) -> Operation {
    Operation {
        method: "get",
        action: None,
        id,
        description: description.to_string(),
        tag,
        gvk: None,
        query: &[],
        body: None,
        response: shared(response),
        also: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_apimachinery::registry::{RESOURCES, lookup};

    fn find<'a>(paths: &'a [PathItem], path: &str) -> &'a PathItem {
        paths
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("no path {path}"))
    }

    #[test]
    fn ids_follow_upstream_spelling() {
        assert_eq!(group_id(""), "Core");
        assert_eq!(group_id("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_id("apps"), "Apps");
        assert_eq!(tag("rbac.authorization.k8s.io", "v1"), "rbacAuthorization_v1");
        let deployments = resource_paths(lookup("apps", "v1", "deployments").unwrap());
        let item = find(&deployments, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
        let ids: Vec<&str> = item.ops.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "readAppsV1NamespacedDeployment",
                "replaceAppsV1NamespacedDeployment",
                "deleteAppsV1NamespacedDeployment",
                "patchAppsV1NamespacedDeployment"
            ]
        );
        find(&deployments, "/apis/apps/v1/deployments");
        let scale = find(
            &deployments,
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
        );
        assert_eq!(scale.ops[0].gvk.map(|g| g.kind), Some("Scale"));
    }

    #[test]
    fn every_patch_operation_takes_field_validation() {
        for r in RESOURCES.iter() {
            for path in resource_paths(r) {
                for op in path
                    .ops
                    .iter()
                    .filter(|o| o.method == "patch" && o.action == Some("patch"))
                {
                    let names: Vec<&str> = op.query.iter().map(|p| p.name).collect();
                    for wanted in ["fieldValidation", "dryRun", "fieldManager", "force"] {
                        assert!(names.contains(&wanted), "{} lacks {wanted}", op.id);
                    }
                    assert_eq!(op.body.as_ref().map(|(_, types)| *types), Some(PATCH_TYPES));
                }
            }
        }
    }

    #[test]
    fn cluster_scoped_and_create_only_kinds() {
        let namespaces = resource_paths(lookup("", "v1", "namespaces").unwrap());
        let paths: Vec<&str> = namespaces.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/namespaces",
                "/api/v1/namespaces/{name}",
                "/api/v1/namespaces/{name}/finalize",
                "/api/v1/namespaces/{name}/status"
            ]
        );
        let reviews = resource_paths(lookup("authorization.k8s.io", "v1", "localsubjectaccessreviews").unwrap());
        assert_eq!(reviews.len(), 1);
        assert_eq!(
            reviews[0].ops[0].id,
            "createAuthorizationV1NamespacedLocalSubjectAccessReview"
        );
    }

    #[test]
    fn connect_subresources_stream_text() {
        let pods = resource_paths(lookup("", "v1", "pods").unwrap());
        let exec = find(&pods, "/api/v1/namespaces/{namespace}/pods/{name}/exec");
        let ids: Vec<&str> = exec.ops.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "connectCoreV1GetNamespacedPodExec",
                "connectCoreV1PostNamespacedPodExec"
            ]
        );
        assert_eq!(exec.ops[0].response, Payload::Text);
        assert_eq!(exec.ops[0].action, Some("connect"));
    }
}
