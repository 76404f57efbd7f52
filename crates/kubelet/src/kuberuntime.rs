//! Syncing one pod through CRI (upstream `kuberuntime_manager.go`'s
//! `SyncPod` and `KillPod`): what the runtime has for the pod is listed by
//! the pod's UID label, then the pod is moved one step towards its spec —
//! a sandbox (with the pod cgroup, directories and hosts file) if it has
//! no ready one; init containers one at a time, in order; then every app
//! container that is missing, or exited and due for a restart under the
//! pod's `restartPolicy` once its back-off allows. Failures are kept as
//! the container's waiting reason (`ErrImagePull`, `CreateContainerError`,
//! `CrashLoopBackOff` …), never as a failed sync, so the status says why.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    LinuxContainerConfig, ListContainersRequest, ListPodSandboxRequest, Mount, PodSandboxConfig, PodSandboxFilter,
    PodSandboxStatusRequest, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::backoff::BackOff;
use crate::cgroups::PodLimits;
use crate::container::{self, RuntimeContainer, State};
use crate::kubelet::Context;
use crate::podstatus::go_duration;
use crate::probe::{ContainerProbes, ProbeTarget};
use crate::sandbox::{self, POD_UID, Sandbox};
use crate::status::{self, Observed, Probed, Waiting};
use crate::{dns, envvars, lifecycle, resources, securitycontext, volume};

/// How often a pod is synced when nothing happens.
const RESYNC: Duration = Duration::from_secs(10);
/// Retry soon after a failure the pod's status does not show.
const RETRY: Duration = Duration::from_secs(2);
/// Upstream's `minimumGracePeriodInSeconds` for stopping a container.
const MIN_GRACE_SECONDS: i64 = 2;
/// How often volumes are set up again (configMap and secret updates reach
/// running containers within this; upstream's sync period is about a minute).
const VOLUME_RESYNC: Duration = Duration::from_secs(30);
/// The waiting reason of a container whose configuration cannot be made.
const CREATE_CONFIG_ERROR: &str = "CreateContainerConfigError";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("CRI {call}: {status}")]
    Cri { call: &'static str, status: tonic::Status },
    #[error("writing the pod status: {0}")]
    Status(kube::Error),
}

fn cri(call: &'static str) -> impl FnOnce(tonic::Status) -> SyncError {
    move |status| SyncError::Cri { call, status }
}

/// What the runtime has for the pod, newest first.
#[derive(Debug, Default)]
struct View {
    sandboxes: Vec<Sandbox>,
    containers: Vec<RuntimeContainer>,
}

impl View {
    fn latest(&self, name: &str) -> Option<&RuntimeContainer> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// One pod's runtime side and what the kubelet remembers about it.
pub struct PodRuntime {
    ctx: Arc<Context>,
    uid: String,
    backoff: BackOff,
    /// Upstream's reason cache: why a container could not be started.
    waiting: HashMap<String, Waiting>,
    /// Pod IPs per sandbox ID (they never change for a sandbox).
    sandbox_ips: HashMap<String, Vec<String>>,
    /// Exited containers' statuses (they never change either).
    exited: HashMap<String, RuntimeContainer>,
    /// The status last written, to write only changes.
    written: Option<PodStatus>,
    /// The pod reached Succeeded or Failed: nothing is started again.
    done: bool,
    /// The pod's volumes, set up before its sandbox and refreshed now and then.
    volumes: Option<volume::Volumes>,
    volumes_at: Option<Instant>,
    /// Probe workers by container ID.
    probes: HashMap<String, ContainerProbes>,
    /// Wakes the pod's worker (probe results changed).
    wake: Arc<Notify>,
}

impl PodRuntime {
    pub fn new(ctx: Arc<Context>, uid: String, wake: Arc<Notify>) -> PodRuntime {
        PodRuntime {
            ctx,
            uid,
            backoff: BackOff::default(),
            waiting: HashMap::new(),
            sandbox_ips: HashMap::new(),
            exited: HashMap::new(),
            written: None,
            done: false,
            volumes: None,
            volumes_at: None,
            probes: HashMap::new(),
            wake,
        }
    }

    /// Syncs the pod; returns when it wants to be synced again.
    pub async fn sync(&mut self, pod: &Pod) -> Duration {
        match self.try_sync(pod).await {
            Ok(next) => next,
            Err(err) => {
                tracing::warn!(pod = %pod_key(pod), %err, "pod sync failed; retrying");
                RETRY
            }
        }
    }

    async fn try_sync(&mut self, pod: &Pod) -> Result<Duration, SyncError> {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.done = true;
        }
        let mut view = self.observe().await?;
        let mut next = RESYNC;
        if self.done {
            self.stop_sandboxes(&view).await;
        } else {
            if let Err(err) = self.prepare_volumes(pod).await {
                tracing::warn!(pod = %pod_key(pod), %err, "FailedMount");
                self.report(pod, &view, false).await?;
                return Ok(RETRY);
            }
            if self.sync_probes(pod, &view).await {
                view = self.observe().await?;
            }
            let ready = view.sandboxes.first().filter(|s| s.ready).cloned();
            let sandbox = match ready {
                Some(sandbox) => sandbox,
                None => {
                    let attempt = view.sandboxes.first().map_or(0, |s| s.attempt + 1);
                    if attempt > 0 {
                        // The sandbox died (e.g. the host rebooted): start over in a new one.
                        self.kill_containers(pod, &view, 0).await;
                    }
                    match self.create_sandbox(pod, attempt).await {
                        Ok(sandbox) => {
                            view = self.observe().await?;
                            sandbox
                        }
                        Err(err) => {
                            tracing::warn!(pod = %pod_key(pod), %err, "creating the pod sandbox");
                            next = RETRY;
                            self.report(pod, &view, false).await?;
                            return Ok(next);
                        }
                    }
                }
            };
            let config = self.sandbox_config(pod, sandbox.attempt);
            let (changed, wake) = self.sync_containers(pod, &sandbox, &config, &view).await;
            next = wake.unwrap_or(RESYNC);
            if changed {
                view = self.observe().await?;
                // Containers just started report their probes' initial verdicts (not ready yet).
                self.sync_probes(pod, &view).await;
            }
        }
        let phase = self.report(pod, &view, false).await?;
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) && !self.done {
            self.done = true;
            self.stop_sandboxes(&view).await;
        }
        Ok(next)
    }

    /// Lists the pod's sandboxes and containers.
    async fn observe(&mut self) -> Result<View, SyncError> {
        let mut runtime = self.ctx.cri.runtime.clone();
        let selector = HashMap::from([(POD_UID.to_string(), self.uid.clone())]);
        let sandboxes = runtime
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    label_selector: selector.clone(),
                    ..PodSandboxFilter::default()
                }),
            })
            .await
            .map_err(cri("ListPodSandbox"))?
            .into_inner()
            .items;
        let mut sandboxes: Vec<Sandbox> = sandboxes.iter().map(Sandbox::from_cri).collect();
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let listed = runtime
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    label_selector: selector,
                    ..ContainerFilter::default()
                }),
            })
            .await
            .map_err(cri("ListContainers"))?
            .into_inner()
            .containers;
        let mut containers = Vec::with_capacity(listed.len());
        for c in listed {
            if let Some(known) = self.exited.get(&c.id) {
                containers.push(known.clone());
                continue;
            }
            let status = runtime
                .container_status(ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await;
            let Some(status) = status.ok().and_then(|s| s.into_inner().status) else {
                continue; // removed meanwhile
            };
            let container = RuntimeContainer::from_cri(&status, &c.pod_sandbox_id);
            if container.state == State::Exited {
                self.exited.insert(c.id.clone(), container.clone());
            }
            containers.push(container);
        }
        containers.sort_by_key(|c| std::cmp::Reverse((c.restart_count, c.created_at)));
        self.exited.retain(|id, _| containers.iter().any(|c| &c.id == id));
        Ok(View { sandboxes, containers })
    }

    /// The sandbox configuration of `attempt` (the same on every call, as
    /// CreateContainer wants it again).
    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> PodSandboxConfig {
        let dns = dns::config(pod, &self.ctx.dns, &self.ctx.host_resolv);
        let logs = sandbox::log_directory(&self.ctx.options.root_dir, pod);
        sandbox::config(pod, attempt, dns, &logs, self.ctx.cgroups.parent(&self.uid))
    }

    /// The pod cgroup, directories, the sandbox, then the hosts file with its IP.
    async fn create_sandbox(&mut self, pod: &Pod, attempt: u32) -> Result<Sandbox, SyncError> {
        if let Err(err) = self.ctx.cgroups.create(&self.uid, PodLimits::of(pod)) {
            tracing::warn!(pod = %pod_key(pod), %err, "creating the pod cgroup");
        }
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let logs = sandbox::log_directory(&self.ctx.options.root_dir, pod);
        for dir in [&pod_dir, &logs] {
            if let Err(err) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), %err, "creating a pod directory");
            }
        }
        let config = self.sandbox_config(pod, attempt);
        let mut runtime = self.ctx.cri.runtime.clone();
        let started = std::time::Instant::now();
        let id = runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .map_err(cri("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id;
        let ips = self.sandbox_ips(&id).await;
        tracing::info!(pod = %pod_key(pod), sandbox = %id, ?ips, elapsed = ?started.elapsed(), "sandbox ready");
        let hosts = if sandbox::host_network(pod) {
            dns::host_network_hosts_file(pod, &std::fs::read_to_string("/etc/hosts").unwrap_or_default())
        } else {
            dns::hosts_file(pod, &ips, &self.ctx.dns.domain)
        };
        if let Err(err) = std::fs::write(pod_dir.join("etc-hosts"), hosts) {
            tracing::warn!(pod = %pod_key(pod), %err, "writing the hosts file");
        }
        Ok(Sandbox {
            id,
            attempt,
            ready: true,
            created_at: Timestamp::now(),
        })
    }

    /// The sandbox's pod IPs (host network: the node's).
    async fn sandbox_ips(&mut self, id: &str) -> Vec<String> {
        if let Some(ips) = self.sandbox_ips.get(id) {
            return ips.clone();
        }
        let status = self
            .ctx
            .cri
            .runtime
            .clone()
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await;
        let network = status.ok().and_then(|s| s.into_inner().status).and_then(|s| s.network);
        let mut ips: Vec<String> = network
            .iter()
            .flat_map(|n| std::iter::once(n.ip.clone()).chain(n.additional_ips.iter().map(|i| i.ip.clone())))
            .filter(|ip| !ip.is_empty())
            .collect();
        if ips.is_empty() {
            ips.push(self.ctx.node_ip.to_string());
        }
        self.sandbox_ips.insert(id.to_string(), ips.clone());
        ips
    }

    /// Init containers in order, then app containers. Returns whether
    /// anything was started or stopped, and when to look again.
    async fn sync_containers(
        &mut self,
        pod: &Pod,
        sandbox: &Sandbox,
        config: &PodSandboxConfig,
        view: &View,
    ) -> (bool, Option<Duration>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        for init in spec.init_containers.iter().flatten() {
            let sidecar = init.restart_policy.as_deref() == Some("Always");
            match view.latest(&init.name) {
                None => return (self.start(pod, init, sandbox, config, 0).await, None),
                Some(c) if c.state == State::Running && sidecar => continue,
                Some(c) if c.state == State::Running => return (false, None),
                Some(c) if c.state == State::Exited && c.exit_code == 0 && !sidecar => continue,
                Some(c) if c.state == State::Exited => {
                    if policy == "Never" && !sidecar {
                        return (false, None); // the pod failed
                    }
                    let c = c.clone();
                    return self.restart(pod, init, &c, sandbox, config).await;
                }
                Some(c) => {
                    let c = c.clone();
                    self.remove_container(&c.id).await;
                    return (self.start(pod, init, sandbox, config, c.restart_count).await, None);
                }
            }
        }
        let mut changed = false;
        let mut wake: Option<Duration> = None;
        for c in &spec.containers {
            let (did, when) = match view.latest(&c.name) {
                None => (self.start(pod, c, sandbox, config, 0).await, None),
                Some(run) if run.state == State::Running && changed_definition(run, c) => {
                    let run = run.clone();
                    (self.replace(pod, c, &run, sandbox, config).await, None)
                }
                Some(run) if run.state == State::Running => (false, None),
                Some(run) if run.state == State::Exited => {
                    let restart = status::restarts(&policy, run.exit_code);
                    if restart {
                        let run = run.clone();
                        self.restart(pod, c, &run, sandbox, config).await
                    } else {
                        self.waiting.remove(&c.name);
                        (false, None)
                    }
                }
                Some(run) => {
                    let run = run.clone();
                    self.remove_container(&run.id).await;
                    (self.start(pod, c, sandbox, config, run.restart_count).await, None)
                }
            };
            changed |= did;
            wake = match (wake, when) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        (changed, wake)
    }

    /// A running container whose spec changed (a pod update may change its
    /// image) is killed and started again from the new spec, as upstream:
    /// a new attempt, with upstream's Killing message, and no back-off.
    async fn replace(
        &mut self,
        pod: &Pod,
        container: &Container,
        run: &RuntimeContainer,
        sandbox: &Sandbox,
        config: &PodSandboxConfig,
    ) -> bool {
        let pod_ips = self.sandbox_ips(&sandbox.id).await;
        let why = format!("Container {} definition changed, will be restarted", container.name);
        tracing::info!(pod = %pod_key(pod), container = %container.name, "{why}");
        self.kill_container(pod, run, pod_grace(pod), &pod_ips, Some(why)).await;
        self.probes.remove(&run.id);
        self.start(pod, container, sandbox, config, run.restart_count + 1).await
    }

    /// Restarts an exited container unless its back-off says to wait
    /// (`CrashLoopBackOff`, with upstream's message).
    async fn restart(
        &mut self,
        pod: &Pod,
        container: &Container,
        run: &RuntimeContainer,
        sandbox: &Sandbox,
        config: &PodSandboxConfig,
    ) -> (bool, Option<Duration>) {
        let now = Timestamp::now();
        let key = format!("{}_{}", container.name, container::hash(container));
        let finished = run.finished_at.unwrap_or(now);
        if let Some((delay, left)) = self.backoff.waiting(&key, finished, now) {
            let message = format!(
                "back-off {} restarting failed container={} pod={}",
                go_duration(delay),
                container.name,
                pod_key(pod)
            );
            self.waiting.insert(
                container.name.clone(),
                Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message,
                },
            );
            let note = format!(
                "Back-off restarting failed container {} in pod {}",
                container.name,
                pod_key(pod)
            );
            self.ctx.events.warning(pod, container, "BackOff", note);
            return (false, Some(left + Duration::from_millis(50)));
        }
        self.backoff.next(&key, now);
        (
            self.start(pod, container, sandbox, config, run.restart_count + 1).await,
            None,
        )
    }

    /// Pulls, creates and starts attempt `restart_count` of a container;
    /// a failure becomes its waiting reason. Returns whether a container was created.
    async fn start(
        &mut self,
        pod: &Pod,
        container: &Container,
        sandbox: &Sandbox,
        config: &PodSandboxConfig,
        restart_count: u32,
    ) -> bool {
        match self.try_start(pod, container, sandbox, config, restart_count).await {
            Ok(()) => {
                self.waiting.remove(&container.name);
                true
            }
            Err((created, why)) => {
                let image_reason = matches!(
                    why.reason.as_str(),
                    "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" | "InvalidImageName"
                );
                if !image_reason {
                    // Image failures have their own events (posted by the image manager).
                    self.ctx
                        .events
                        .warning(pod, container, "Failed", format!("Error: {}", why.message));
                }
                tracing::info!(pod = %pod_key(pod), container = %container.name, reason = %why.reason, message = %why.message, "container not started");
                self.waiting.insert(container.name.clone(), why);
                created
            }
        }
    }

    async fn try_start(
        &mut self,
        pod: &Pod,
        container: &Container,
        sandbox: &Sandbox,
        config: &PodSandboxConfig,
        restart_count: u32,
    ) -> Result<(), (bool, Waiting)> {
        let waiting = |reason: &str, message: String| Waiting {
            reason: reason.into(),
            message,
        };
        let image_ref = (self
            .ctx
            .images
            .ensure_image(&self.ctx.cri, &self.ctx.client, pod, container)
            .await)
            .map_err(|e| (false, waiting(e.reason.as_str(), e.message)))?;
        let config_error = |message: String| (false, waiting(CREATE_CONFIG_ERROR, message));
        let image_user = self.image_user(&image_ref).await;
        let pod_ips = self.sandbox_ips(&sandbox.id).await;
        let env = envvars::resolve(&self.ctx.client, pod, container, &pod_ips, &self.ctx.node_facts)
            .await
            .map_err(|e| config_error(e.to_string()))?
            .env;
        let security = securitycontext::linux_container_security_context(pod, container, &image_user)
            .map_err(|e| config_error(e.to_string()))?;
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let mut mounts = match &self.volumes {
            Some(volumes) => volumes
                .mounts_for(container, &env)
                .map_err(|e| config_error(e.to_string()))?,
            None => Vec::new(),
        };
        mounts.extend(
            self.managed_mounts(container, &pod_dir, restart_count)
                .map_err(|e| config_error(e.to_string()))?,
        );
        let (command, args) = envvars::expand_command(container, &env);
        let inputs = container::Inputs {
            image_ref,
            restart_count,
            command,
            args,
            envs: env,
            mounts,
            linux: LinuxContainerConfig {
                resources: Some(resources::linux_container_resources(
                    pod,
                    container,
                    self.ctx.memory_capacity,
                )),
                security_context: Some(security),
            },
        };
        let config_for = container::config(pod, container, inputs);
        let mut runtime = self.ctx.cri.runtime.clone();
        let id = runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(config_for),
                sandbox_config: Some(config.clone()),
            })
            .await
            .map_err(|s| (false, waiting("CreateContainerError", s.message().to_string())))?
            .into_inner()
            .container_id;
        let created = format!("Created container {}", container.name);
        self.ctx.events.normal(pod, container, "Created", created);
        runtime
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .map_err(|s| (true, waiting("RunContainerError", s.message().to_string())))?;
        tracing::info!(pod = %pod_key(pod), container = %container.name, id = %id, restart_count, "container started");
        let started = format!("Started container {}", container.name);
        self.ctx.events.normal(pod, container, "Started", started);
        let target = self.probe_target(&pod_ips, &id);
        if let Err(err) = lifecycle::post_start(pod, container, &target).await {
            tracing::warn!(pod = %pod_key(pod), container = %container.name, %err, "FailedPostStartHook");
            self.stop_container(&id, pod_grace(pod)).await;
            return Err((true, waiting("PostStartHookError", err.message)));
        }
        Ok(())
    }

    /// The user the image runs as (for `runAsNonRoot` and named users).
    async fn image_user(&self, image_ref: &str) -> securitycontext::ImageUser {
        let request = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image_ref.to_string(),
                ..ImageSpec::default()
            }),
            verbose: false,
        };
        let status = self.ctx.cri.images.clone().image_status(request).await;
        status
            .ok()
            .and_then(|s| s.into_inner().image)
            .map(|image| securitycontext::ImageUser::from_cri(&image))
            .unwrap_or_default()
    }

    fn probe_target(&self, pod_ips: &[String], container_id: &str) -> ProbeTarget {
        ProbeTarget {
            pod_ip: pod_ips.first().cloned().unwrap_or_default(),
            container_id: container_id.to_string(),
            cri: Some(self.ctx.cri.clone()),
        }
    }

    /// Sets up (or refreshes, propagating configMap and secret updates) the
    /// pod's volumes; an error is the pod's `FailedMount`.
    async fn prepare_volumes(&mut self, pod: &Pod) -> Result<(), volume::VolumeError> {
        let fresh = self
            .volumes_at
            .is_some_and(|at| at.elapsed() < VOLUME_RESYNC && self.volumes.is_some());
        if fresh {
            return Ok(());
        }
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let volumes = volume::prepare(&self.ctx.client, pod, &pod_dir, &self.ctx.node_facts).await?;
        self.volumes = Some(volumes);
        self.volumes_at = Some(Instant::now());
        Ok(())
    }

    /// Starts probe workers for running containers that have probes, stops
    /// those of containers that no longer run; kills containers whose
    /// liveness or startup probe failed. Returns whether it killed any.
    async fn sync_probes(&mut self, pod: &Pod, view: &View) -> bool {
        let spec = pod.spec.clone().unwrap_or_default();
        let running: Vec<&RuntimeContainer> = view.containers.iter().filter(|c| c.state == State::Running).collect();
        self.probes.retain(|id, _| running.iter().any(|c| &c.id == id));
        let pod_ips = match view.sandboxes.first().filter(|s| s.ready) {
            Some(s) => self.sandbox_ips(&s.id.clone()).await,
            None => Vec::new(),
        };
        let mut killed = false;
        for run in running {
            let Some(container) = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == run.name)
            else {
                continue;
            };
            let has_probes = container.liveness_probe.is_some()
                || container.readiness_probe.is_some()
                || container.startup_probe.is_some();
            if !has_probes {
                continue;
            }
            if !self.probes.contains_key(&run.id) {
                let running_for = run
                    .started_at
                    .map(|t| Timestamp::now().duration_since(t).unsigned_abs())
                    .unwrap_or_default();
                let started_at = Instant::now().checked_sub(running_for).unwrap_or_else(Instant::now);
                let probes = ContainerProbes::start(pod, container, self.probe_target(&pod_ips, &run.id), started_at);
                let (mut state, wake) = (probes.state.clone(), self.wake.clone());
                tokio::spawn(async move {
                    while state.changed().await.is_ok() {
                        wake.notify_one();
                    }
                });
                self.probes.insert(run.id.clone(), probes);
            }
            let probes = self.probes.get_mut(&run.id).expect("inserted above");
            while let Ok(event) = probes.events.try_recv() {
                self.ctx.events.warning(pod, container, event.reason, event.message);
            }
            let failed = self.probes[&run.id].state.borrow().failed.clone();
            if let Some(failure) = failed {
                let policy = spec.restart_policy.as_deref().unwrap_or("Always");
                let will_restart = policy != "Never";
                tracing::info!(pod = %pod_key(pod), container = %run.name, reason = failure.reason(), "{}", failure.kill_message(will_restart));
                self.ctx
                    .events
                    .normal(pod, container, "Killing", failure.kill_message(will_restart));
                let grace = failure.grace_period_seconds.unwrap_or_else(|| pod_grace(pod));
                self.stop_container(&run.id, grace).await;
                self.probes.remove(&run.id);
                killed = true;
            }
        }
        killed
    }

    /// Probe verdicts for the status.
    fn probe_verdicts(&self) -> HashMap<String, Probed> {
        self.probes
            .iter()
            .map(|(id, p)| {
                let state = p.state.borrow();
                (
                    id.clone(),
                    Probed {
                        ready: state.ready,
                        started: state.started,
                    },
                )
            })
            .collect()
    }

    /// preStop, then StopContainer with what is left of the grace period;
    /// `why` is the Killing event's message (default: upstream's "Stopping container").
    async fn kill_container(
        &self,
        pod: &Pod,
        run: &RuntimeContainer,
        grace: i64,
        pod_ips: &[String],
        why: Option<String>,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == run.name);
        let grace = match container {
            Some(container) => {
                let stopping = why.unwrap_or_else(|| format!("Stopping container {}", container.name));
                self.ctx.events.normal(pod, container, "Killing", stopping);
                let target = self.probe_target(pod_ips, &run.id);
                lifecycle::pre_stop(pod, container, &target, grace)
                    .await
                    .remaining_grace_seconds
            }
            None => grace,
        };
        self.stop_container(&run.id, grace).await;
    }

    async fn stop_container(&self, id: &str, grace: i64) {
        let request = StopContainerRequest {
            container_id: id.to_string(),
            timeout: grace.max(MIN_GRACE_SECONDS),
        };
        if let Err(err) = self.ctx.cri.runtime.clone().stop_container(request).await {
            tracing::warn!(container = %id, %err, "stopping a container");
        }
    }

    /// The managed /etc/hosts and the termination-message file.
    fn managed_mounts(&self, container: &Container, pod_dir: &Path, restart_count: u32) -> std::io::Result<Vec<Mount>> {
        let mut mounts = Vec::new();
        let own_hosts = container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts");
        if !own_hosts {
            mounts.push(Mount {
                container_path: "/etc/hosts".into(),
                host_path: pod_dir.join("etc-hosts").display().to_string(),
                ..Mount::default()
            });
        }
        let message = container::termination_message_file(pod_dir, &container.name, restart_count);
        if let Some(dir) = message.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&message, b"")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&message, std::fs::Permissions::from_mode(0o666))?;
        mounts.push(Mount {
            container_path: container::termination_message_path(container).to_string(),
            host_path: message.display().to_string(),
            ..Mount::default()
        });
        Ok(mounts)
    }

    async fn remove_container(&mut self, id: &str) {
        let request = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        if let Err(err) = self.ctx.cri.runtime.clone().remove_container(request).await {
            tracing::warn!(container = %id, %err, "removing a container");
        }
        self.exited.remove(id);
    }

    /// Computes the pod's status and writes it if it changed; returns the phase.
    async fn report(&mut self, pod: &Pod, view: &View, terminating: bool) -> Result<Option<String>, SyncError> {
        let sandbox = view.sandboxes.first();
        let pod_ips = match sandbox.filter(|s| s.ready) {
            Some(s) => self.sandbox_ips(&s.id.clone()).await,
            None => Vec::new(),
        };
        let observed = Observed {
            host_ip: self.ctx.node_ip.to_string(),
            pod_ips,
            sandbox_ready: sandbox.is_some_and(|s| s.ready),
            containers: view.containers.clone(),
            waiting: self.waiting.clone(),
            probes: self.probe_verdicts(),
            runtime_name: self.ctx.runtime_name.clone(),
            start_time: None,
            terminating,
        };
        let status = status::build(pod, &observed, Timestamp::now());
        let phase = status.phase.clone();
        if pod.status.as_ref() == Some(&status) || self.written.as_ref() == Some(&status) {
            return Ok(phase);
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"resourceVersion": pod.resource_version()}, "status": status});
        match api
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.written = Some(status),
            // Changed meanwhile: the watch brings the new version, synced in turn.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(err) => return Err(SyncError::Status(err)),
        }
        Ok(phase)
    }

    async fn stop_sandboxes(&self, view: &View) {
        for sandbox in view.sandboxes.iter().filter(|s| s.ready) {
            let request = StopPodSandboxRequest {
                pod_sandbox_id: sandbox.id.clone(),
            };
            if let Err(err) = self.ctx.cri.runtime.clone().stop_pod_sandbox(request).await {
                tracing::warn!(sandbox = %sandbox.id, %err, "stopping a sandbox");
            }
        }
    }

    /// Stops the running containers at once, each after its preStop hook
    /// and with what is left of `grace` seconds between SIGTERM and SIGKILL.
    async fn kill_containers(&mut self, pod: &Pod, view: &View, grace: i64) {
        self.probes.clear();
        let pod_ips = match view.sandboxes.first().filter(|s| s.ready) {
            Some(s) => self.sandbox_ips(&s.id.clone()).await,
            None => Vec::new(),
        };
        let running = view.containers.iter().filter(|c| c.state == State::Running);
        let this = &*self;
        let stops = running.map(|c| this.kill_container(pod, c, grace, &pod_ips, None));
        futures::future::join_all(stops).await;
    }

    /// Terminates the pod: containers stopped within the grace period
    /// (the pod's `terminationGracePeriodSeconds` unless given), then its
    /// sandboxes stopped and removed, its cgroup and directories removed.
    pub async fn terminate(&mut self, pod: &Pod, grace: Option<i64>) {
        let grace = grace
            .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        let view = match self.observe().await {
            Ok(view) => view,
            Err(err) => {
                tracing::warn!(pod = %pod_key(pod), %err, "listing the pod's containers to stop them");
                View::default()
            }
        };
        tracing::info!(pod = %pod_key(pod), grace, "terminating pod");
        self.kill_containers(pod, &view, grace).await;
        let mut runtime = self.ctx.cri.runtime.clone();
        for sandbox in &view.sandboxes {
            let id = sandbox.id.clone();
            let _ = runtime
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            if let Err(err) = runtime
                .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
            {
                tracing::warn!(pod = %pod_key(pod), %err, "removing a sandbox");
            }
        }
        for attempt in 0..10 {
            match self.ctx.cgroups.remove(&self.uid) {
                Ok(()) => break,
                Err(err) if attempt == 9 => tracing::warn!(pod = %pod_key(pod), %err, "removing the pod cgroup"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let pod_dir = self.ctx.pod_dir(&self.uid);
        if let Err(err) = volume::cleanup(&pod_dir) {
            tracing::warn!(pod = %pod_key(pod), %err, "unmounting the pod's volumes");
        }
        remove_pod_dir(&pod_dir);
        let _ = std::fs::remove_dir_all(sandbox::log_directory(&self.ctx.options.root_dir, pod));
    }

    /// Deletes the pod object for good (grace period 0), for this very pod
    /// only (a UID precondition), as the status manager does once its
    /// containers have stopped.
    pub async fn finish_deletion(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => tracing::info!(pod = %pod_key(pod), "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(err) => tracing::warn!(pod = %pod_key(pod), %err, "deleting the pod"),
        }
    }
}

/// Removes a pod's directory (volumes are unmounted first).
/// Whether a running container was created from another spec than `container`'s
/// now (containers without our hash annotation are left alone).
fn changed_definition(run: &RuntimeContainer, container: &Container) -> bool {
    !run.hash.is_empty() && run.hash != container::hash(container)
}

pub fn remove_pod_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %err, "removing a pod directory");
    }
}

/// Upstream's `format.Pod`: `name_namespace(uid)`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        pod.uid().unwrap_or_default()
    )
}

/// The pod's `terminationGracePeriodSeconds` (default 30).
fn pod_grace(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
}
