//! TokenRequest: `POST .../serviceaccounts/<name>/token` issues a bound,
//! expiring token for a service account (what `kubectl create token` and
//! the kubelet's projected token volumes use).

use axum::response::Response;
use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, FieldError, registry};
use http::StatusCode;
use serde_json::{Value, json};

use super::Call;
use crate::codec;
use crate::objects::ObjectKey;
use crate::serviceaccount::{self, Claims, KubernetesClaims, ObjectClaim};

pub async fn create_token(call: &Call<'_>) -> Result<Response, ApiError> {
    let request = codec::decode_body(call.headers, &call.body)?;
    let account = call.server.objects.get(call.key()).await?;
    let namespace = meta::namespace(&account).to_string();
    let expiration = expiration_seconds(&request)?;
    let audiences: Vec<String> = match request.pointer("/spec/audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![serviceaccount::ISSUER.to_string()],
    };
    let now = jiff::Timestamp::now();
    let mut claims = Claims {
        iss: serviceaccount::ISSUER.to_string(),
        sub: serviceaccount::user_name(&namespace, meta::name(&account)),
        aud: audiences.clone(),
        exp: now.as_second() + expiration,
        iat: now.as_second(),
        nbf: now.as_second(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: KubernetesClaims {
            namespace: namespace.clone(),
            serviceaccount: ObjectClaim {
                name: meta::name(&account).to_string(),
                uid: meta::uid(&account).to_string(),
            },
            pod: None,
            secret: None,
            node: None,
        },
    };
    let bound = request.pointer("/spec/boundObjectRef").cloned();
    if let Some(reference) = &bound {
        bind(call, &namespace, reference, &mut claims.kubernetes).await?;
    }
    let token = call.server.tokens.sign(&claims)?;
    let expires = jiff::Timestamp::from_second(claims.exp).map_err(ApiError::internal)?;
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(reference) = bound {
        spec["boundObjectRef"] = reference;
    }
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": meta::name(&account), "namespace": namespace, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": meta::format_time(expires)},
    });
    Ok(codec::json(StatusCode::CREATED, &answer))
}

fn expiration_seconds(request: &Object) -> Result<i64, ApiError> {
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(serviceaccount::DEFAULT_EXPIRATION_SECONDS);
    if seconds < serviceaccount::MIN_EXPIRATION_SECONDS {
        let resource = registry::lookup("", "v1", "serviceaccounts").ok_or_else(|| ApiError::internal("registry"))?;
        let field = FieldError::invalid(
            "spec.expirationSeconds",
            &seconds.into(),
            "may not specify a duration less than 10 minutes",
        );
        return Err(ApiError::invalid(resource, "", &[field]));
    }
    Ok(seconds)
}

/// Binds the token to a Pod or Secret in the namespace: it stops working
/// when that object is gone.
async fn bind(
    call: &Call<'_>,
    namespace: &str,
    reference: &Value,
    claims: &mut KubernetesClaims,
) -> Result<(), ApiError> {
    let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let plural = match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        other => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of kind {other:?}: supported kinds are Pod and Secret"
            )));
        }
    };
    let resource = registry::lookup("", "v1", plural).ok_or_else(|| ApiError::internal("registry"))?;
    let key = ObjectKey {
        resource,
        namespace: Some(namespace),
        name,
    };
    let object = call.server.objects.get(key).await?;
    let uid = meta::uid(&object).to_string();
    if let Some(wanted) = reference.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty())
        && wanted != uid
    {
        return Err(ApiError::conflict_because(
            resource,
            name,
            &format!(
                "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    let claim = Some(ObjectClaim {
        name: name.to_string(),
        uid,
    });
    match kind {
        "Pod" => claims.pod = claim,
        _ => claims.secret = claim,
    }
    Ok(())
}
