//! Container probes (upstream `pkg/probe` and `pkg/kubelet/prober`).
//!
//! [`run`] performs one probe: `exec` through CRI `ExecSync`, `httpGet`
//! (HTTP or HTTPS without certificate verification, success for 200–399,
//! redirects followed only on the same host), `tcpSocket` and `grpc`
//! (`grpc.health.v1.Health/Check`), each bounded by `timeoutSeconds`, with
//! upstream's output texts.
//!
//! [`ContainerProbes::start`] runs a container's liveness, readiness and
//! startup probes as upstream's workers do: every `periodSeconds` once
//! `initialDelaySeconds` have passed since the container started, a result
//! published only after `successThreshold` / `failureThreshold` equal
//! results in a row, liveness and readiness held back until the startup
//! probe has succeeded, and a failing liveness or startup probe stopping
//! its worker until the container is replaced. The pod worker watches
//! [`ProbeState`] (ready, started, must restart) and posts the
//! [`ProbeEvent`]s. A new container (new ID) gets new `ContainerProbes`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, HTTPHeader, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cri::Cri;

/// The User-Agent upstream probes send (`kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";
/// Upstream reads at most this much of an HTTP probe's body.
const MAX_BODY: usize = 10 * 1024;
const MAX_REDIRECTS: usize = 10;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// The outcome of one probe with its output, as upstream's `probe.Result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    /// Success with a caveat, e.g. a redirect to another host not followed.
    Warning(String),
    Failure(String),
    /// The probe could not be run (counts as a failure, with an error event).
    Unknown(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_) | Outcome::Warning(_))
    }
}

/// Where probes go: the pod's IP (default host of httpGet/tcpSocket, host of
/// grpc) and the container for exec.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    pub pod_ip: String,
    pub container_id: String,
    pub cri: Option<Cri>,
}

/// A probe that cannot even be attempted (bad port, no handler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("port {0} not found")]
    NoPort(String),
    #[error("invalid port number: {0}")]
    InvalidPort(i64),
    #[error("missing probe handler for {0}")]
    NoHandler(String),
    #[error("exec probes need the container runtime")]
    NoRuntime,
}

/// Upstream's `ResolveContainerPort`: a number, or a named container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, ProbeError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| i64::from(p.container_port))
            .ok_or_else(|| ProbeError::NoPort(name.clone()))?,
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(ProbeError::InvalidPort(number))
}

/// Go's rendering of a socket error: `connection refused`, `i/o timeout`, …
fn os_error_text(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn timeout_of(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs one probe of `container` against `target` (see the module doc).
pub async fn run(probe: &Probe, container: &Container, target: &ProbeTarget) -> Result<Outcome, ProbeError> {
    let timeout = timeout_of(probe);
    if let Some(exec) = &probe.exec {
        let cri = target.cri.as_ref().ok_or(ProbeError::NoRuntime)?;
        let command = exec.command.clone().unwrap_or_default();
        return Ok(exec_sync(cri, &target.container_id, command, timeout).await);
    }
    if let Some(get) = &probe.http_get {
        let url = http_get_url(get, container, &target.pod_ip)?;
        let headers = get.http_headers.as_deref().unwrap_or_default();
        return Ok(http_get(url, headers, timeout).await);
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, container)?;
        let host = tcp.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(&target.pod_ip);
        return Ok(tcp_probe(&host_port(host, port), timeout).await);
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(ProbeError::InvalidPort(grpc.port.into()))?;
        let service = grpc.service.clone().unwrap_or_default();
        return Ok(grpc_probe(&host_port(&target.pod_ip, port), service, timeout).await);
    }
    Err(ProbeError::NoHandler(container.name.clone()))
}

/// The URL of an `httpGet` action: `host` defaults to the pod's IP, the
/// port may be named, the scheme defaults to HTTP.
pub fn http_get_url(get: &HTTPGetAction, container: &Container, pod_ip: &str) -> Result<Url, ProbeError> {
    let port = resolve_port(&get.port, container)?;
    let host = get.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    Ok(Url {
        https: get.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("https")),
        host: host.to_string(),
        port,
        path: normalize_path(get.path.as_deref().unwrap_or_default()),
    })
}

/// `ExecSync` with the probe's timeout: exit 0 succeeds, other codes fail
/// with the combined output, a timeout fails with upstream's text.
pub async fn exec_sync(cri: &Cri, container_id: &str, command: Vec<String>, timeout: Duration) -> Outcome {
    let shown = command.join(" ");
    match exec(cri, container_id, command, Some(timeout)).await {
        Err(ExecError::TimedOut) => Outcome::Failure(format!("command {shown:?} timed out")),
        Err(ExecError::Runtime(message)) => Outcome::Unknown(message),
        Ok(result) if result.exit_code == 0 => Outcome::Success(result.output),
        Ok(result) => Outcome::Failure(result.output),
    }
}

/// What a command run with `ExecSync` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    /// stdout then stderr, as upstream combines them.
    pub output: String,
    pub stderr: String,
}

/// Why `ExecSync` gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("timed out")]
    TimedOut,
    #[error("{0}")]
    Runtime(String),
}

/// Runs `command` in the container through CRI `ExecSync`; `timeout`
/// `None` waits as long as the command runs (lifecycle hooks).
pub async fn exec(
    cri: &Cri,
    container_id: &str,
    command: Vec<String>,
    timeout: Option<Duration>,
) -> Result<ExecResult, ExecError> {
    let mut runtime = cri.runtime.clone();
    let request = k8s_cri::v1::ExecSyncRequest {
        container_id: container_id.to_string(),
        cmd: command,
        timeout: timeout.map_or(0, |t| t.as_secs() as i64),
    };
    let call = runtime.exec_sync(request);
    // The runtime enforces the timeout; the client deadline only guards against a hung runtime.
    let response = match timeout {
        Some(t) => tokio::time::timeout(t + Duration::from_secs(2), call)
            .await
            .map_err(|_| ExecError::TimedOut)?,
        None => call.await,
    };
    match response {
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => Err(ExecError::TimedOut),
        Err(status) => Err(ExecError::Runtime(status.message().to_string())),
        Ok(response) => {
            let response = response.into_inner();
            let stderr = String::from_utf8_lossy(&response.stderr).into_owned();
            let mut output = response.stdout;
            output.extend_from_slice(&response.stderr);
            Ok(ExecResult {
                exit_code: response.exit_code,
                output: String::from_utf8_lossy(&output).into_owned(),
                stderr,
            })
        }
    }
}

/// `dial tcp`: success once connected (the connection is closed at once).
pub async fn tcp_probe(addr: &str, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Outcome::Success(String::new()),
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {}", os_error_text(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// `grpc.health.v1.Health/Check` for `service`, with upstream's texts.
pub async fn grpc_probe(addr: &str, service: String, timeout: Duration) -> Outcome {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).and_then(|e| e.user_agent(USER_AGENT));
    let endpoint = match endpoint {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {e}")),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {}",
                humantime::format_duration(timeout)
            ));
        }
        Ok(Err(e)) => {
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {cause}"));
        }
        Ok(Ok(channel)) => channel,
    };
    let response = HealthClient::new(channel).check(HealthCheckRequest { service }).await;
    match response {
        Err(status) if status.code() == tonic::Code::Unimplemented => Outcome::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            status.message()
        )),
        Err(status) if status.code() == tonic::Code::DeadlineExceeded || status.code() == tonic::Code::Cancelled => {
            Outcome::Failure(format!(
                "timeout: health rpc did not complete within {}",
                humantime::format_duration(timeout)
            ))
        }
        Err(status) => Outcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Ok(r) => {
            let status = ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown);
            if status == ServingStatus::Serving {
                Outcome::Success("service healthy".into())
            } else {
                Outcome::Failure(format!("service unhealthy (responded with {:?})", status.as_str_name()))
            }
        }
    }
}

/// An HTTP probe's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", host_port(&self.host, self.port), self.path)
    }
}

/// RFC 3986 dot-segment removal for a relative redirect (`/a/../b` → `/b`).
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." if last => out.push(""),
            "." => {}
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = format!("/{}", out.join("/"));
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

fn normalize_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

impl Url {
    /// The target of a redirect's `Location`, absolute or relative to `self`.
    pub fn join(&self, location: &str) -> Option<Url> {
        if location.starts_with("//") {
            return Url::parse(&format!("{}:{location}", if self.https { "https" } else { "http" }));
        }
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            remove_dot_segments(&format!("{}{location}", if dir.is_empty() { "/" } else { dir }))
        };
        Some(Url { path, ..self.clone() })
    }

    fn parse(text: &str) -> Option<Url> {
        let uri: http::Uri = text.parse().ok()?;
        let https = uri.scheme_str()? == "https";
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Some(Url {
            https,
            host,
            port,
            path: normalize_path(&path),
        })
    }
}

/// A GET as lifecycle hooks send it: any HTTP response is success, the
/// status is returned; errors are worded as Go's client words them.
pub async fn http_request(url: Url, headers: &[HTTPHeader], user_agent: &str) -> Result<u16, String> {
    let shown = url.to_string();
    follow(url, headers, user_agent)
        .await
        .map(|r| r.status)
        .map_err(|e| format!("Get {shown:?}: {e}"))
}

/// What one HTTP exchange gave.
struct Response {
    status: u16,
    location: Option<String>,
    body: String,
}

/// Upstream's HTTP probe: GET with `kube-probe` User-Agent, `Accept: */*`
/// and the probe's headers; 200–399 succeed (a redirect to another host
/// is not followed and gives a warning), anything else fails.
pub async fn http_get(url: Url, headers: &[HTTPHeader], timeout: Duration) -> Outcome {
    let shown = url.to_string();
    match tokio::time::timeout(timeout, follow(url, headers, USER_AGENT)).await {
        Err(_) => Outcome::Failure(format!(
            "Get {shown:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(e)) => Outcome::Failure(format!("Get {shown:?}: {e}")),
        Ok(Ok(r)) if (200..300).contains(&r.status) => Outcome::Success(r.body),
        Ok(Ok(r)) if (300..400).contains(&r.status) => {
            Outcome::Warning(format!("Probe terminated redirects, Response body: {}", r.body))
        }
        Ok(Ok(r)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", r.status)),
    }
}

/// GETs `url`, following redirects on the same host (at most 10).
async fn follow(mut url: Url, headers: &[HTTPHeader], user_agent: &str) -> Result<Response, String> {
    let first_host = url.host.clone();
    let mut redirects = 0;
    loop {
        let response = exchange(&url, headers, user_agent).await?;
        let redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        let Some(next) = response
            .location
            .as_deref()
            .filter(|_| redirect)
            .and_then(|l| url.join(l))
        else {
            return Ok(response);
        };
        if next.host != first_host {
            return Ok(response);
        }
        redirects += 1;
        if redirects >= MAX_REDIRECTS {
            return Err("stopped after 10 redirects".into());
        }
        url = next;
    }
}

async fn exchange(url: &Url, headers: &[HTTPHeader], user_agent: &str) -> Result<Response, String> {
    let addr = host_port(&url.host, url.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: connect: {}", os_error_text(&e)))?;
    let mut request = http::Request::get(url.path.as_str())
        .header(http::header::HOST, addr.as_str())
        .header(http::header::USER_AGENT, user_agent)
        .header(http::header::ACCEPT, "*/*")
        .header(http::header::CONNECTION, "close");
    for h in headers {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_str(&h.value),
        ) else {
            continue;
        };
        if let Some(map) = request.headers_mut() {
            map.insert(name, value);
        }
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    if url.https {
        let connector = tokio_rustls::TlsConnector::from(insecure_tls()?);
        let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
        let tls = connector.connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?;
        send(tls, request).await
    } else {
        send(tcp, request).await
    }
}

async fn send<IO>(io: IO, request: http::Request<Empty<Bytes>>) -> Result<Response, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        bytes.truncate(MAX_BODY);
        Ok(Response {
            status,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}

/// TLS that accepts any certificate: upstream probes skip verification,
/// since the pod's certificate is rarely for its IP.
fn insecure_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One probe's counting of results (upstream `worker.doProbe`).
#[derive(Debug, Clone)]
pub struct Thresholds {
    success: u32,
    failure: u32,
    last: Option<bool>,
    run: u32,
}

impl Thresholds {
    pub fn new(probe: &Probe) -> Thresholds {
        let at_least_one = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
        Thresholds {
            success: at_least_one(probe.success_threshold, 1),
            failure: at_least_one(probe.failure_threshold, 3),
            last: None,
            run: 0,
        }
    }

    /// Counts one result; `Some(result)` when it is to be published, i.e.
    /// after enough equal results in a row.
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let needed = if success { self.success } else { self.failure };
        (self.run >= needed).then_some(success)
    }

    /// Forgets the run after a restart-triggering failure.
    pub fn reset(&mut self) {
        self.run = 0;
    }
}

/// Why the container must be restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub kind: ProbeKind,
    /// `Container c failed liveness probe` (add `, will be restarted` when it is).
    pub message: String,
    /// The probe's `terminationGracePeriodSeconds`, which overrides the pod's.
    pub grace_period_seconds: Option<i64>,
}

impl ProbeFailure {
    /// The `Killing` event's message: upstream adds `, will be restarted`
    /// when the restart policy brings the container back.
    pub fn kill_message(&self, will_restart: bool) -> String {
        if will_restart {
            format!("{}, will be restarted", self.message)
        } else {
            self.message.clone()
        }
    }

    /// The kill reason upstream records (`LivenessProbe` / `StartupProbe`).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ProbeKind::Startup => "StartupProbe",
            _ => "LivenessProbe",
        }
    }
}

/// What the pod worker needs from the probes of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    /// The startup probe succeeded (true at once without one).
    pub started: bool,
    /// The readiness probe's verdict (without one: started).
    pub ready: bool,
    /// A liveness or startup probe failed: kill the container.
    pub failed: Option<ProbeFailure>,
}

/// An event for the container (`Unhealthy` or `ProbeWarning`, type Warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub reason: &'static str,
    pub message: String,
}

/// The running probe workers of one container; dropping it stops them.
pub struct ContainerProbes {
    pub state: watch::Receiver<ProbeState>,
    pub events: mpsc::UnboundedReceiver<ProbeEvent>,
    _workers: JoinSet<()>,
}

impl ContainerProbes {
    /// Starts the workers of `container`'s probes; `started_at` is when the
    /// container started running (initial delays count from then).
    pub fn start(pod: &Pod, container: &Container, target: ProbeTarget, started_at: Instant) -> ContainerProbes {
        let has_startup = container.startup_probe.is_some();
        let has_readiness = container.readiness_probe.is_some();
        let initial = ProbeState {
            started: !has_startup,
            ready: !has_startup && !has_readiness,
            failed: None,
        };
        let (state_tx, state) = watch::channel(initial);
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: state_tx,
            events: events_tx,
            container: container.clone(),
            target,
            started_at,
            pod_grace: pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds),
        });
        let mut workers = JoinSet::new();
        let probes = [
            (ProbeKind::Startup, &container.startup_probe),
            (ProbeKind::Liveness, &container.liveness_probe),
            (ProbeKind::Readiness, &container.readiness_probe),
        ];
        for (kind, probe) in probes {
            if let Some(probe) = probe {
                workers.spawn(worker(shared.clone(), kind, probe.clone()));
            }
        }
        ContainerProbes {
            state,
            events,
            _workers: workers,
        }
    }
}

struct Shared {
    state: watch::Sender<ProbeState>,
    events: mpsc::UnboundedSender<ProbeEvent>,
    container: Container,
    target: ProbeTarget,
    started_at: Instant,
    pod_grace: Option<i64>,
}

/// Whether a probe of `kind` runs now: startup only until started, the
/// others only after.
fn gated(kind: ProbeKind, started: bool) -> bool {
    (kind == ProbeKind::Startup) != started
}

async fn worker(shared: Arc<Shared>, kind: ProbeKind, probe: Probe) {
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let initial_delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    let mut thresholds = Thresholds::new(&probe);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if shared.started_at.elapsed() < initial_delay || !gated(kind, shared.state.borrow().started) {
            continue;
        }
        let outcome = run(&probe, &shared.container, &shared.target).await;
        let success = report(&shared, kind, outcome);
        let Some(result) = thresholds.observe(success) else {
            continue;
        };
        let stop = publish(&shared, kind, &probe, result);
        if stop {
            // Upstream holds the worker until the container is replaced.
            thresholds.reset();
            return;
        }
    }
}

/// Sends the event an outcome calls for; whether it counts as success.
fn report(shared: &Shared, kind: ProbeKind, outcome: Result<Outcome, ProbeError>) -> bool {
    let kind = kind.as_str();
    let event = |reason, message| {
        let _ = shared.events.send(ProbeEvent { reason, message });
    };
    match outcome {
        Ok(Outcome::Success(_)) => true,
        Ok(Outcome::Warning(output)) => {
            event("ProbeWarning", format!("{kind} probe warning: {output}"));
            true
        }
        Ok(Outcome::Failure(output)) => {
            event("Unhealthy", format!("{kind} probe failed: {output}"));
            false
        }
        Ok(Outcome::Unknown(error)) => {
            event(
                "Unhealthy",
                format!("{kind} probe errored and resulted in unknown state: {error}"),
            );
            false
        }
        Err(error) => {
            event(
                "Unhealthy",
                format!("{kind} probe errored and resulted in unknown state: {error}"),
            );
            false
        }
    }
}

/// Applies a published result; true when the worker must stop.
fn publish(shared: &Shared, kind: ProbeKind, probe: &Probe, success: bool) -> bool {
    let name = &shared.container.name;
    let grace = probe.termination_grace_period_seconds.or(shared.pod_grace);
    let failure = |what: &str| ProbeFailure {
        kind,
        message: format!("Container {name} failed {what} probe"),
        grace_period_seconds: grace,
    };
    let mut stop = false;
    shared.state.send_modify(|state| match (kind, success) {
        (ProbeKind::Startup, true) => {
            state.started = true;
            state.ready = shared.container.readiness_probe.is_none();
        }
        (ProbeKind::Startup, false) => {
            state.failed = Some(failure("startup"));
            stop = true;
        }
        (ProbeKind::Liveness, true) => {}
        (ProbeKind::Liveness, false) => {
            state.failed = Some(failure("liveness"));
            stop = true;
        }
        (ProbeKind::Readiness, ready) => state.ready = ready,
    });
    stop
}

#[cfg(test)]
mod tests;
