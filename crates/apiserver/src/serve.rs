//! Running the API server on a port: PKI, bootstrap, kubeconfig, HTTPS.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use capstan_store::Store;
use tower::ServiceExt as _;

use crate::pki::{Pki, PkiOptions};
use crate::serviceaccount::TokenIssuer;
use crate::tls::PeerIdentity;
use crate::{ApiServer, Config, tls};

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind_address: IpAddr,
    pub port: u16,
    /// `<data-dir>`: the PKI goes to `server/tls`, the admin kubeconfig to `admin.kubeconfig`.
    pub data_dir: PathBuf,
    /// Extra names and addresses for the serving certificate (`--tls-san`).
    pub tls_sans: Vec<String>,
    /// Where Service ClusterIPs come from; its first address is the `kubernetes` Service's.
    pub service_cidr: ipnet::IpNet,
    /// Where NodePorts come from.
    pub node_port_range: crate::PortRange,
    pub cluster_domain: String,
    /// Also write the admin kubeconfig here (`--write-kubeconfig`).
    pub write_kubeconfig: Option<PathBuf>,
    /// The `kubernetes` Service's endpoint (`--advertise-address`).
    pub advertise_address: Option<IpAddr>,
}

impl ServeOptions {
    pub fn admin_kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }
}

/// An API server that is listening and has written its kubeconfig, ready
/// to [`serve`](Listening::serve). In between, in-process components get
/// their client credentials from [`Listening::kubeconfig_for`].
pub struct Listening {
    server: Arc<ApiServer>,
    pki: Pki,
    listener: tokio::net::TcpListener,
    url: String,
}

impl Listening {
    /// PKI, bootstrap objects, the listening socket and the admin kubeconfig.
    pub async fn bind(options: &ServeOptions, store: Arc<dyn Store>) -> anyhow::Result<Listening> {
        let config = Config {
            port: options.port,
            service_cidr: options.service_cidr,
            node_port_range: options.node_port_range,
            advertise_address: options.advertise_address,
        };
        let pki = Pki::load_or_create(&PkiOptions {
            dir: options.data_dir.join("server/tls"),
            extra_sans: options.tls_sans.clone(),
            service_ip: config.service_ip(),
            cluster_domain: options.cluster_domain.clone(),
        })
        .context("preparing certificates")?;
        let tokens = TokenIssuer::new(pki.service_account_key_pem(), &pki.service_account_public_key_pem())
            .map_err(|e| anyhow::anyhow!("loading the service-account key: {e}"))?;
        let server = ApiServer::new(config, store, tokens);
        let (kubelet_cert, kubelet_key) = pki.kubelet_client_pem();
        let kubelet_client = crate::proxy::KubeletClient::new(pki.ca_pem(), kubelet_cert, kubelet_key)
            .context("loading the kubelet client certificate")?;
        let _ = server.kubelet_client.set(kubelet_client);
        // The OpenAPI documents take a moment to build: do it before clients ask.
        tokio::task::spawn_blocking(capstan_openapi::warm_up);
        server
            .bootstrap()
            .await
            .context("creating the built-in namespaces and services")?;
        crate::allocator::repair::spawn(&server);
        let address = SocketAddr::new(options.bind_address, options.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let mut kubeconfigs = vec![options.admin_kubeconfig_path()];
        kubeconfigs.extend(options.write_kubeconfig.clone());
        for path in &kubeconfigs {
            pki.write_admin_kubeconfig(path, &url)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        tracing::info!(%address, kubeconfig = %kubeconfigs[0].display(), "serving the Kubernetes API");
        Ok(Listening {
            server,
            pki,
            listener,
            url,
        })
    }

    /// A kubeconfig with a fresh client certificate for `user` in `groups`.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> anyhow::Result<String> {
        let (cert, key) = self.pki.issue_client_cert(user, groups)?;
        Ok(self.pki.kubeconfig(&self.url, &cert, &key)?)
    }

    /// A kubelet serving certificate (CN = the node name) for `sans` (the node's addresses and names), signed
    /// by the cluster CA, with its key: what a node's kubelet presents on port 10250. Returns (cert, key) PEMs.
    pub fn kubelet_serving_cert(&self, node_name: &str, sans: &[String]) -> anyhow::Result<(String, String)> {
        Ok(self.pki.issue_serving_cert(node_name, sans)?)
    }

    /// The cluster CA certificate (PEM), which clients verify the API with (and kubelets the API server's
    /// client certificate).
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// A connection for an in-process component (the scheduler, the
    /// controllers) acting as `user` in `groups`: each request goes straight
    /// to the router, as if it came over TLS with that client certificate,
    /// without TCP, TLS or HTTP framing on either side. Wrap it in
    /// `kube::Client::new`.
    pub fn in_process<B>(
        &self,
        user: &str,
        groups: &[&str],
    ) -> impl tower::Service<
        http::Request<B>,
        Response = http::Response<axum::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let identity = Some(PeerIdentity {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        let router = self.server.router();
        tower::service_fn(move |mut request: http::Request<B>| {
            request.extensions_mut().insert(identity.clone());
            router.clone().oneshot(request)
        })
    }

    /// Serves HTTPS until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tls::serve(
            self.listener,
            self.pki.server_tls_config()?,
            self.server.router(),
            shutdown,
        )
        .await
        .context("serving HTTPS")
    }
}
