//! Content negotiation for reads: plain objects, or `meta.k8s.io/v1 Table`
//! for `kubectl get`, which asks
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...,application/json`.

use capstan_apimachinery::ApiError;
use capstan_apimachinery::table::IncludeObject;
use http::{HeaderMap, header};

use crate::request::Query;

/// How a read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Object,
    Table(IncludeObject),
}

/// The form the client prefers among those it accepts: the first media type
/// in its `Accept` list that we can produce.
pub fn form(headers: &HeaderMap, query: &Query) -> Result<Form, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let is_table = params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io");
        if is_table && (params.contains(&"v=v1") || params.contains(&"v=v1beta1")) {
            let include = query.get("includeObject").unwrap_or("");
            let include = IncludeObject::parse(include)
                .ok_or_else(|| ApiError::bad_request(format!("unrecognized includeObject value: {include:?}")))?;
            return Ok(Form::Table(include));
        }
        if !params.iter().any(|p| p.starts_with("as=")) {
            return Ok(Form::Object);
        }
    }
    Ok(Form::Object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, accept.parse().unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_tables() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            form(&headers(kubectl), &Query::default()).unwrap(),
            Form::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            form(&headers("application/json"), &Query::default()).unwrap(),
            Form::Object
        );
        assert_eq!(form(&HeaderMap::new(), &Query::default()).unwrap(), Form::Object);
        let bad = Query::parse(Some("includeObject=Everything"));
        assert_eq!(form(&headers(kubectl), &bad).unwrap_err().code, 400);
    }
}
