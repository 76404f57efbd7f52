//! What a request asks for: upstream's `RequestInfo`, parsed from the path,
//! method and query.
//!
//! Every resource URL has one of these shapes (the core group lives under
//! `/api/v1`, every other group under `/apis/<group>/<version>`):
//!
//! ```text
//! <gv>/<plural>                              list, watch, create, deletecollection
//! <gv>/<plural>/<name>[/<subresource>]       get, update, patch, delete (cluster-scoped)
//! <gv>/namespaces/<ns>/<plural>[/<name>[/<subresource>]]
//! ```
//!
//! Authorization, admission, metrics and the REST handlers all work from
//! the parsed form, never from the raw path.

use std::collections::HashMap;

use capstan_apimachinery::registry;
use capstan_apimachinery::{ApiError, ResourceType};
use http::Method;

/// A request for a resource (as opposed to discovery or health endpoints).
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub verb: Verb,
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Upstream's verbs, as authorization and metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl ResourceRequest {
    /// Upstream's `scope` metrics label.
    pub fn scope(&self) -> &'static str {
        match (&self.name, &self.namespace) {
            (Some(_), _) => "resource",
            (None, Some(_)) => "namespace",
            (None, None) => "cluster",
        }
    }
}

impl Verb {
    /// The verb as upstream's request metrics spell it.
    pub fn metrics_name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete | Verb::DeleteCollection => "DELETE",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// The query parameters the REST layer understands.
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: HashMap<String, String>,
    /// Every pair in order, for repeated parameters (`command` of exec).
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs: Vec<(String, String)> = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Query {
            params: pairs.iter().cloned().collect(),
            pairs,
        }
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether the parameter is present at all (`?verbose` has no value).
    pub fn has(&self, key: &str) -> bool {
        self.params.contains_key(key)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// An integer parameter; malformed values are a 400 as upstream.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))
            })
            .transpose()
    }

    /// `dryRun=All`: validate and answer, persist nothing.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}; supported values: \"All\""
            ))),
        }
    }
}

/// Parses a resource URL; `Ok(None)` for paths that are not resource URLs
/// (discovery documents like `/api/v1` itself).
pub fn parse(method: &Method, path: &str, query: &Query) -> Result<Option<ResourceRequest>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let (namespace, rest) = match rest {
        // `namespaces/<ns>/<plural>...` addresses namespaced objects; bare
        // `namespaces[/<name>[/<sub>]]` addresses Namespace objects.
        ["namespaces", ns, plural, tail @ ..] if group_has(group, version, plural, true) => {
            (Some(ns.to_string()), prepend(plural, tail))
        }
        _ => (None, rest.to_vec()),
    };
    let resource = registry::lookup(group, version, rest[0]).ok_or_else(ApiError::path_not_found)?;
    if namespace.is_some() && !resource.namespaced {
        return Err(ApiError::path_not_found());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    // `…/proxy/<path>` carries a path for the proxied server after the subresource.
    if (rest.len() > 3 && subresource.as_deref() != Some("proxy"))
        || subresource
            .as_deref()
            .is_some_and(|s| resource.subresource(s).is_none())
    {
        return Err(ApiError::path_not_found());
    }
    let verb = verb(method, name.is_some(), query)?;
    Ok(Some(ResourceRequest {
        verb,
        resource,
        namespace,
        name,
        subresource,
    }))
}

fn group_has(group: &str, version: &str, plural: &str, namespaced: bool) -> bool {
    registry::lookup(group, version, plural).is_some_and(|r| r.namespaced == namespaced)
}

fn prepend<'a>(head: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    std::iter::once(head).chain(tail.iter().copied()).collect()
}

fn verb(method: &Method, has_name: bool, query: &Query) -> Result<Verb, ApiError> {
    Ok(match (method, has_name) {
        (&Method::GET, _) if query.flag("watch") => Verb::Watch,
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_get(path: &str) -> ResourceRequest {
        parse(&Method::GET, path, &Query::default()).unwrap().unwrap()
    }

    #[test]
    fn namespaced_and_cluster_scoped_paths() {
        let r = parse_get("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.resource.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(r.verb, Verb::Get);

        let r = parse_get("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.plural, r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        assert_eq!(r.namespace, None);

        let r = parse_get("/api/v1/namespaces/kube-system/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));

        let r = parse_get("/apis/apps/v1/deployments");
        assert_eq!(
            (r.resource.plural, r.verb, r.namespace),
            ("deployments", Verb::List, None)
        );
    }

    #[test]
    fn verbs_follow_method_and_query() {
        let watch = Query::parse(Some("watch=true&resourceVersion=5"));
        let r = parse(&Method::GET, "/api/v1/pods", &watch).unwrap().unwrap();
        assert_eq!(r.verb, Verb::Watch);
        let r = parse(&Method::DELETE, "/api/v1/namespaces/a/configmaps", &Query::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.verb, Verb::DeleteCollection);
        let err = parse(&Method::PUT, "/api/v1/namespaces/a/configmaps", &Query::default()).unwrap_err();
        assert_eq!(err.code, 405);
    }

    #[test]
    fn unknown_things_are_404() {
        for path in [
            "/api/v1/widgets",
            "/apis/apps/v1/namespaces/a/nodes",
            "/api/v1/namespaces/a/pods/x/nope",
        ] {
            assert_eq!(
                parse(&Method::GET, path, &Query::default()).unwrap_err().code,
                404,
                "{path}"
            );
        }
        assert!(parse(&Method::GET, "/api/v1", &Query::default()).unwrap().is_none());
        assert!(parse(&Method::GET, "/version", &Query::default()).unwrap().is_none());
    }
}
