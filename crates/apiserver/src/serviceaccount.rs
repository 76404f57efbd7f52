//! Service-account tokens: issued by the TokenRequest API
//! (`serviceaccounts/<name>/token`), accepted as bearer tokens.
//!
//! Tokens are JWTs in upstream's shape (issuer, audiences, expiry, and the
//! `kubernetes.io` claim naming the namespace, service account and bound
//! object), signed with the cluster's service-account key (ES256: the PKI
//! uses P-256 keys). A token is honoured only while its service account —
//! and the pod or secret it is bound to — still exists with the same UID,
//! so deleting either revokes it, as upstream.

use capstan_apimachinery::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The issuer and default audience, as upstream's default `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Upstream's default and minimum token lifetimes.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectClaim {
    pub name: String,
    pub uid: String,
}

/// Signs and verifies tokens with the service-account key pair.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenIssuer {
    pub fn new(private_pem: &str, public_pem: &str) -> Result<TokenIssuer, ApiError> {
        Ok(TokenIssuer {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(ApiError::internal)?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(ApiError::internal)?,
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding).map_err(ApiError::internal)
    }

    /// The claims of a token we issued that has not expired, if it is one.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// The user a service account authenticates as, and its groups.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

pub fn groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        TokenIssuer::new(&key.serialize_pem(), &key.public_key_pem()).unwrap()
    }

    fn claims(exp_in: i64) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: ISSUER.into(),
            sub: user_name("default", "builder"),
            aud: vec![ISSUER.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "id".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: ObjectClaim {
                    name: "builder".into(),
                    uid: "u".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn signs_and_verifies() {
        let issuer = issuer();
        let issued = claims(600);
        let verified = issuer.verify(&issuer.sign(&issued).unwrap()).unwrap();
        assert_eq!(verified, issued);
        assert_eq!(verified.sub, "system:serviceaccount:default:builder");
    }

    #[test]
    fn rejects_expired_foreign_and_garbage_tokens() {
        let issuer = issuer();
        assert!(issuer.verify(&issuer.sign(&claims(-10)).unwrap()).is_none(), "expired");
        let other = super::tests::issuer();
        assert!(
            issuer.verify(&other.sign(&claims(600)).unwrap()).is_none(),
            "signed by another key"
        );
        assert!(issuer.verify("not.a.token").is_none());
        let mut wrong_audience = claims(600);
        wrong_audience.aud = vec!["vault".into()];
        assert!(
            issuer.verify(&issuer.sign(&wrong_audience).unwrap()).is_none(),
            "audience"
        );
    }
}
