//! `GET pods/{name}/log`: validates the `PodLogOptions`, checks the container has logs to show, and streams
//! the kubelet's `/containerLogs` answer through as it arrives.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, FieldError};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use serde_json::{Value, json};

use super::{container, kubelet_address, kubelet_error, names, query_string, segment};
use crate::ApiServer;
use crate::request::Query;

/// The options of a log request, validated.
#[derive(Debug, Default, PartialEq)]
struct LogOptions {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    limit_bytes: Option<i64>,
}

impl LogOptions {
    /// Parses and validates as upstream's `ValidatePodLogOptions`: unparsable values are a 400, out-of-range
    /// ones a 422 `PodLogOptions "<pod>" is invalid`.
    fn parse(query: &Query, pod: &str) -> Result<LogOptions, ApiError> {
        let since_time = match query.get("sinceTime") {
            Some(t) => {
                let parsed: jiff::Timestamp = t
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for sinceTime: {t:?}")))?;
                Some(parsed.to_string())
            }
            None => None,
        };
        let options = LogOptions {
            follow: query.flag("follow"),
            previous: query.flag("previous"),
            timestamps: query.flag("timestamps"),
            tail_lines: query.int("tailLines")?,
            since_seconds: query.int("sinceSeconds")?,
            since_time,
            limit_bytes: query.int("limitBytes")?,
        };
        let mut errors = Vec::new();
        if let Some(n) = options.tail_lines.filter(|n| *n < 0) {
            errors.push(FieldError::invalid(
                "tailLines",
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = options.limit_bytes.filter(|n| *n < 1) {
            errors.push(FieldError::invalid("limitBytes", &json!(n), "must be greater than 0"));
        }
        if options.since_seconds.is_some() && options.since_time.is_some() {
            errors.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        } else if let Some(n) = options.since_seconds.filter(|n| *n < 1) {
            errors.push(FieldError::invalid("sinceSeconds", &json!(n), "must be greater than 0"));
        }
        if errors.is_empty() {
            return Ok(options);
        }
        let messages: Vec<String> = errors.iter().map(FieldError::to_message).collect();
        let summary = match messages.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("PodLogOptions \"{pod}\" is invalid: {summary}"),
            details: None,
        })
    }

    fn kubelet_query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (name, on) in [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ] {
            if on {
                pairs.push((name, "true".to_string()));
            }
        }
        for (name, value) in [
            ("tailLines", self.tail_lines),
            ("sinceSeconds", self.since_seconds),
            ("limitBytes", self.limit_bytes),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.to_string()));
            }
        }
        if let Some(time) = &self.since_time {
            pairs.push(("sinceTime", time.clone()));
        }
        query_string(&pairs)
    }
}

/// Upstream kubelet's `validateContainerLogStatus`: whether the container (or, with `previous`, its last
/// terminated instance) has logs, judged from the pod's status.
fn check_status(pod: &Object, container: &str, previous: bool) -> Result<(), ApiError> {
    let (_, pod_name) = names(pod);
    let status = &pod["status"];
    let found = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|list| status[list].as_array())
    .flatten()
    .find(|s| s["name"] == container);
    let fail = |what: String| {
        Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" {what}"
        )))
    };
    let Some(found) = found else {
        return fail("is not available".to_string());
    };
    let has_id = |v: &Value| v["containerID"].as_str().is_some_and(|id| !id.is_empty());
    let state = &found["state"];
    let last = &found["lastState"]["terminated"];
    if previous {
        if !last.is_object() || !has_id(last) {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        return Ok(());
    }
    if state["running"].is_object() {
        return Ok(());
    }
    if state["terminated"].is_object() {
        return if has_id(&state["terminated"]) || (last.is_object() && has_id(last)) {
            Ok(())
        } else {
            fail("is terminated".to_string())
        };
    }
    if last.is_object() {
        return if has_id(last) {
            Ok(())
        } else {
            fail("is terminated".to_string())
        };
    }
    if state["waiting"].is_object() {
        return match state["waiting"]["reason"].as_str().unwrap_or_default() {
            "ErrImagePull" => fail("is waiting to start: image can't be pulled".to_string()),
            "ImagePullBackOff" => fail("is waiting to start: trying and failing to pull image".to_string()),
            reason => fail(format!("is waiting to start: {reason}")),
        };
    }
    fail("is waiting to start - no logs yet".to_string())
}

pub async fn get(server: &ApiServer, pod: &Object, query: &Query) -> Result<Response, ApiError> {
    let (namespace, name) = names(pod);
    let options = LogOptions::parse(query, name)?;
    let container = container(pod, query)?;
    // A pod not yet scheduled has no logs: upstream answers an empty body.
    let Some((host, port)) = kubelet_address(server, pod).await? else {
        return Ok(text(Body::empty()));
    };
    check_status(pod, &container, options.previous)?;
    let client = server.kubelet_client()?;
    let mut uri = format!(
        "/containerLogs/{}/{}/{}",
        segment(namespace),
        segment(name),
        segment(&container)
    );
    let params = options.kubelet_query();
    if !params.is_empty() {
        uri = format!("{uri}?{params}");
    }
    let request = Request::get(uri)
        .header(header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(ApiError::internal)?;
    let response = client.send(&host, port, request).await?;
    if response.status() != StatusCode::OK {
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(kubelet_error(status, &body));
    }
    Ok(text(Body::new(response.into_body())))
}

fn text(body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Object {
        json!({"metadata": {"name": "web", "namespace": "default"}, "status": {"containerStatuses": [status]}})
    }

    #[test]
    fn options_are_validated_as_upstream() {
        let ok = LogOptions::parse(&Query::parse(Some("follow=true&tailLines=3&limitBytes=10")), "web").unwrap();
        assert!(ok.follow);
        assert_eq!(ok.kubelet_query(), "follow=true&tailLines=3&limitBytes=10");
        let err = LogOptions::parse(&Query::parse(Some("tailLines=-1")), "web").unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let err = LogOptions::parse(&Query::parse(Some("limitBytes=0")), "web").unwrap_err();
        assert!(
            err.message
                .ends_with("limitBytes: Invalid value: 0: must be greater than 0"),
            "{}",
            err.message
        );
        let both = LogOptions::parse(
            &Query::parse(Some("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z")),
            "web",
        )
        .unwrap_err();
        assert!(
            both.message
                .contains("at most one of `sinceTime` or `sinceSeconds` may be specified")
        );
        assert_eq!(
            LogOptions::parse(&Query::parse(Some("tailLines=x")), "web")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            LogOptions::parse(&Query::parse(Some("sinceTime=yesterday")), "web")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn container_state_decides_whether_there_are_logs() {
        let waiting = pod(json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}));
        assert_eq!(
            check_status(&waiting, "c", false).unwrap_err().message,
            "container \"c\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        let pulling = pod(json!({"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}));
        assert_eq!(
            check_status(&pulling, "c", false).unwrap_err().message,
            "container \"c\" in pod \"web\" is waiting to start: trying and failing to pull image"
        );
        let running = pod(json!({"name": "c", "state": {"running": {}}, "containerID": "containerd://1"}));
        assert!(check_status(&running, "c", false).is_ok());
        assert_eq!(
            check_status(&running, "c", true).unwrap_err().message,
            "previous terminated container \"c\" in pod \"web\" not found"
        );
        let restarted = pod(json!({
            "name": "c",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://0"}},
        }));
        assert!(check_status(&restarted, "c", true).is_ok());
        assert!(check_status(&restarted, "c", false).is_ok());
        assert_eq!(
            check_status(&running, "other", false).unwrap_err().message,
            "container \"other\" in pod \"web\" is not available"
        );
    }
}
