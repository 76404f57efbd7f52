//! The API objects the kubelet reads to build a container's environment
//! and volumes: ConfigMaps, Secrets, Services and service account tokens.
//!
//! [`Objects`] is implemented for [`kube::Client`] (direct reads, as
//! upstream's `Get` strategy) and can be implemented over informer stores
//! by the pod worker (upstream's `Watch` strategy). Reads return `None`
//! for a missing object so callers can apply `optional` and word their
//! own errors.

use std::future::Future;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};

/// Read access to the objects pods refer to.
pub trait Objects: Send + Sync {
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, kube::Error>> + Send;
    fn secret(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<Secret>, kube::Error>> + Send;
    /// Every Service of a namespace (for the service link environment).
    fn services(&self, namespace: &str) -> impl Future<Output = Result<Vec<Service>, kube::Error>> + Send;
    /// `POST serviceaccounts/<name>/token`: a token bound as `request` asks.
    fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: TokenRequest,
    ) -> impl Future<Output = Result<TokenRequest, kube::Error>> + Send;
}

impl Objects for kube::Client {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
        Api::<ConfigMap>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        Api::<Secret>::namespaced(self.clone(), namespace).get_opt(name).await
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, kube::Error> {
        let list = Api::<Service>::namespaced(self.clone(), namespace)
            .list(&ListParams::default())
            .await?;
        Ok(list.items)
    }

    async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: TokenRequest,
    ) -> Result<TokenRequest, kube::Error> {
        Api::<ServiceAccount>::namespaced(self.clone(), namespace)
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
    }
}
