//! `pods/<name>/eviction`: a deletion that respects PodDisruptionBudgets
//! (what `kubectl drain` uses). If a budget that selects the pod allows no
//! more disruptions, the answer is `429 TooManyRequests` and the pod stays;
//! otherwise the budget's allowance is spent and the pod is deleted
//! gracefully, as upstream.

use axum::response::Response;
use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::selector::LabelSelector;
use capstan_apimachinery::{ApiError, registry};
use capstan_store::ListOptions;
use http::StatusCode;
use serde_json::{Value, json};

use super::Call;
use crate::codec;
use crate::objects::{ObjectKey, prefix};

pub async fn evict(call: &Call<'_>) -> Result<Response, ApiError> {
    let eviction = codec::decode_body(call.headers, &call.body)?;
    let pod = call.server.objects.get(call.key()).await?;
    // Pods that are done, or not yet running, never count against a budget.
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if !matches!(phase, "Succeeded" | "Failed" | "Pending") {
        spend_budget(call, &pod).await?;
    }
    let options = eviction.get("deleteOptions").cloned().unwrap_or_else(|| json!({}));
    super::write::delete_with_options(call, call.key(), &options).await?;
    Ok(codec::json(StatusCode::CREATED, &codec::success_status(json!({}))))
}

/// Takes one disruption from every budget selecting the pod, or refuses.
async fn spend_budget(call: &Call<'_>, pod: &Object) -> Result<(), ApiError> {
    let budgets =
        registry::lookup("policy", "v1", "poddisruptionbudgets").ok_or_else(|| ApiError::internal("registry"))?;
    let namespace = meta::namespace(pod);
    let page = call
        .server
        .objects
        .list(budgets, &prefix(budgets, Some(namespace)), &ListOptions::default())
        .await?;
    for budget in page.items.iter().filter(|b| selects(b, pod)) {
        let allowed = budget
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed <= 0 {
            return Err(too_many_requests(budget));
        }
        let mut spent = budget.clone();
        spent["status"]["disruptionsAllowed"] = (allowed - 1).into();
        spent["status"]["disruptedPods"][meta::name(pod)] = meta::now().into();
        let key = ObjectKey {
            resource: budgets,
            namespace: Some(namespace),
            name: meta::name(budget),
        };
        let revision = meta::resource_version(budget).parse().unwrap_or_default();
        call.server.objects.update(key, spent, revision).await?;
    }
    Ok(())
}

fn selects(budget: &Object, pod: &Object) -> bool {
    let Some(selector) = budget.pointer("/spec/selector").cloned() else {
        return false;
    };
    serde_json::from_value(selector)
        .ok()
        .and_then(|s| LabelSelector::from_meta(&s).ok())
        .is_some_and(|s| s.matches_object(pod))
}

fn too_many_requests(budget: &Object) -> ApiError {
    let healthy = budget
        .pointer("/status/currentHealthy")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let desired = budget
        .pointer("/status/desiredHealthy")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let cause = format!(
        "The disruption budget {} needs {desired} healthy pods and has {healthy} currently",
        meta::name(budget)
    );
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.".to_string(),
        details: Some(Box::new(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                causes: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                    reason: Some("DisruptionBudget".into()),
                    message: Some(cause),
                    field: None,
                }]),
                ..Default::default()
            },
        )),
    }
}
