//! The podapi modules against the real containerd 1.6: one hostNetwork pod
//! whose container is configured by `resources`, `securitycontext`,
//! `envvars` and `volume`, then probed and hooked with `exec` through CRI.
//! Checks from inside the container that the runtime applied it all, and
//! that a ConfigMap update reaches the running container.
//!
//! Everything runs in a temporary data dir with Capstan's own containerd;
//! the sandbox, cgroups, tmpfs mounts and containerd are removed at the
//! end, also when an assertion fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_containerd::{Containerd, ContainerdConfig, archive, import_images};
use capstan_kubelet::cri::{self, Cri, api};
use capstan_kubelet::fieldpath::NodeFacts;
use capstan_kubelet::objects::Objects;
use capstan_kubelet::probe::{self, Outcome, ProbeTarget};
use capstan_kubelet::{envvars, lifecycle, resources, securitycontext, volume};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use serde_json::json;

const IMAGE: &str = "docker.io/capstan/podapi-busybox:test";
const CGROUP_ROOT: &str = "capstan-podapi-test";

/// ConfigMaps held in memory, as the pod worker's informer store would.
#[derive(Default)]
struct Store {
    config_maps: Mutex<Vec<ConfigMap>>,
}

impl Objects for Store {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
        let maps = self.config_maps.lock().unwrap();
        Ok(maps
            .iter()
            .find(|c| c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name))
            .cloned())
    }
    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, kube::Error> {
        Ok(None)
    }
    async fn services(&self, _: &str) -> Result<Vec<Service>, kube::Error> {
        Ok(Vec::new())
    }
    async fn request_token(&self, _: &str, _: &str, request: TokenRequest) -> Result<TokenRequest, kube::Error> {
        Ok(request)
    }
}

fn config_map(mode: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "cfg"}, "data": {"mode": mode}})).unwrap()
}

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": format!("podapi-{}", std::process::id())},
        "spec": {
            "hostNetwork": true,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            "containers": [{
                "name": "app",
                "image": IMAGE,
                "command": ["sleep", "3600"],
                "env": [
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                    {"name": "GREETING", "value": "mode=$(MODE)"}
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/cfg"},
                    {"name": "scratch", "mountPath": "/scratch"}
                ]
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}
            ]
        }
    }))
    .unwrap()
}

/// Removes the test's cgroups (runc leaves the parents it created).
fn remove_cgroups() {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.flatten() {
        let root = controller.path().join(CGROUP_ROOT);
        if let Ok(pods) = std::fs::read_dir(&root) {
            for pod in pods.flatten().filter(|p| p.path().is_dir()) {
                if let Ok(children) = std::fs::read_dir(pod.path()) {
                    for child in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
                let _ = std::fs::remove_dir(pod.path());
            }
        }
        let _ = std::fs::remove_dir(&root);
    }
}

async fn exec(cri: &Cri, id: &str, cmd: &[&str]) -> (i32, String) {
    let cmd = cmd.iter().map(|s| s.to_string()).collect();
    let r = probe::exec(cri, id, cmd, Some(Duration::from_secs(10)))
        .await
        .expect("exec runs");
    (r.exit_code, r.output)
}

struct Sandbox {
    cri: Cri,
    id: String,
}

fn sandbox_config(pod: &Pod, logs: &Path) -> api::PodSandboxConfig {
    let meta = &pod.metadata;
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: meta.name.clone().unwrap(),
            uid: meta.uid.clone().unwrap(),
            namespace: meta.namespace.clone().unwrap(),
            attempt: 0,
        }),
        // A hostNetwork pod has the node's UTS namespace: no hostname of its own.
        hostname: String::new(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{CGROUP_ROOT}/pod{}", meta.uid.as_deref().unwrap()),
            security_context: Some(securitycontext::linux_sandbox_security_context(pod)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run_pod(cri: &mut Cri, config: api::PodSandboxConfig) -> String {
    let response = cri
        .runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox");
    response.into_inner().pod_sandbox_id
}

async fn start_container(
    cri: &mut Cri,
    sandbox: &str,
    sandbox_config: api::PodSandboxConfig,
    pod: &Pod,
    env: Vec<api::KeyValue>,
    mounts: Vec<api::Mount>,
) -> String {
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let security = securitycontext::linux_container_security_context(pod, container, &Default::default()).unwrap();
    let config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: container.name.clone(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: container.command.clone().unwrap(),
        envs: env,
        mounts,
        log_path: "app.log".into(),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources::linux_container_resources(pod, container, 4 << 30)),
            security_context: Some(security),
        }),
        ..Default::default()
    };
    let id = cri
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            // containerd 1.6 dereferences it: a request without it crashes containerd.
            sandbox_config: Some(sandbox_config),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    cri.runtime
        .start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("StartContainer");
    id
}

/// Stops and removes the sandbox, retrying on a fresh connection for a
/// while in case containerd is being restarted by its supervisor.
async fn remove_sandbox(sandbox: &Sandbox, endpoint: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut runtime = sandbox.cri.runtime.clone();
    loop {
        let id = sandbox.id.clone();
        let stopped = runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await;
        let removed = match stopped {
            Ok(_) => runtime
                .remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(fresh) = cri::connect(endpoint).await {
                    runtime = fresh.runtime;
                }
            }
        }
    }
}

/// The checks; run in a task so that a failed assertion still lets the caller clean up.
async fn checks(
    mut cri: Cri,
    sandbox: String,
    sandbox_config: api::PodSandboxConfig,
    pod_dir: PathBuf,
    store: std::sync::Arc<Store>,
) {
    let pod = pod();
    let node = NodeFacts {
        host_ips: vec!["127.0.0.1".into()],
        allocatable: BTreeMap::new(),
    };
    let container = pod.spec.as_ref().unwrap().containers[0].clone();
    let volumes = volume::prepare(store.as_ref(), &pod, &pod_dir, &node)
        .await
        .expect("volumes");
    let env = envvars::resolve(store.as_ref(), &pod, &container, &[], &node)
        .await
        .expect("env")
        .env;
    let mounts = volumes.mounts_for(&container, &env).unwrap();
    let id = start_container(&mut cri, &sandbox, sandbox_config, &pod, env, mounts).await;

    // Security context, env and resources as seen from inside.
    assert_eq!(exec(&cri, &id, &["id", "-u"]).await, (0, "1000\n".into()));
    let (_, groups) = exec(&cri, &id, &["id", "-G"]).await;
    assert!(
        groups.split_whitespace().any(|g| g == "2000"),
        "fsGroup is a supplemental group: {groups}"
    );
    assert_eq!(
        exec(&cri, &id, &["sh", "-c", "echo $GREETING"]).await,
        (0, "mode=fast\n".into())
    );
    let (code, _) = exec(&cri, &id, &["touch", "/rootfs-write"]).await;
    assert_ne!(code, 0, "root filesystem is read-only");
    let (_, status) = exec(&cri, &id, &["grep", "-E", "^(NoNewPrivs|CapEff)", "/proc/self/status"]).await;
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    let (_, limit) = exec(&cri, &id, &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).await;
    assert_eq!(limit.trim(), (64 << 20).to_string());
    let (_, quota) = exec(&cri, &id, &["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]).await;
    assert_eq!(quota.trim(), "50000");

    // Volumes: the memory-backed emptyDir is writable, the ConfigMap readable.
    assert_eq!(
        exec(&cri, &id, &["sh", "-c", "echo hi > /scratch/f && cat /scratch/f"]).await,
        (0, "hi\n".into())
    );
    assert_eq!(exec(&cri, &id, &["cat", "/cfg/mode"]).await, (0, "fast".into()));

    // Exec probes.
    let target = ProbeTarget {
        pod_ip: "127.0.0.1".into(),
        container_id: id.clone(),
        cri: Some(cri.clone()),
    };
    let second = Duration::from_secs(1);
    let run = |cmd: &[&str]| probe::exec_sync(&cri, &id, cmd.iter().map(|s| s.to_string()).collect(), second);
    assert_eq!(run(&["cat", "/cfg/mode"]).await, Outcome::Success("fast".into()));
    assert_eq!(
        run(&["sh", "-c", "echo broken >&2; exit 3"]).await,
        Outcome::Failure("broken\n".into())
    );
    let started = Instant::now();
    assert_eq!(
        run(&["sleep", "10"]).await,
        Outcome::Failure("command \"sleep 10\" timed out".into())
    );
    assert!(started.elapsed() < Duration::from_secs(5), "timeoutSeconds is enforced");

    // A ConfigMap update reaches the running container on the next prepare.
    *store.config_maps.lock().unwrap() = vec![config_map("slow")];
    volume::prepare(store.as_ref(), &pod, &pod_dir, &node)
        .await
        .expect("volumes again");
    assert_eq!(exec(&cri, &id, &["cat", "/cfg/mode"]).await, (0, "slow".into()));

    // Exec hooks.
    let mut hooked = container.clone();
    hooked.lifecycle = Some(
        serde_json::from_value(json!({
            "postStart": {"exec": {"command": ["sh", "-c", "echo started > /scratch/hook"]}},
            "preStop": {"exec": {"command": ["sleep", "1"]}}
        }))
        .unwrap(),
    );
    lifecycle::post_start(&pod, &hooked, &target)
        .await
        .expect("postStart runs");
    assert_eq!(
        exec(&cri, &id, &["cat", "/scratch/hook"]).await,
        (0, "started\n".into())
    );
    let pre_stop = lifecycle::pre_stop(&pod, &hooked, &target, 30).await;
    assert_eq!(
        pre_stop,
        lifecycle::PreStop {
            remaining_grace_seconds: 29,
            failed: None
        }
    );
    hooked.lifecycle = Some(
        serde_json::from_value(json!({"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 7"]}}})).unwrap(),
    );
    let err = lifecycle::post_start(&pod, &hooked, &target).await.unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "Exec lifecycle hook ([sh -c echo nope; exit 7]) for Container \"app\" in Pod \"web_ns({})\" failed - error: command 'sh -c echo nope; exit 7' exited with 7: , message: \"nope\\n\"",
            pod.metadata.uid.as_deref().unwrap()
        )
    );
}

#[tokio::test]
async fn a_container_configured_by_the_podapi_modules() {
    let busybox = match std::fs::read("/bin/busybox") {
        Ok(bytes) => bytes,
        Err(e) => panic!("this test needs Debian's busybox-static at /bin/busybox: {e}"),
    };
    let data = tempfile::Builder::new().prefix("capstan-podapi-").tempdir().unwrap();
    let images = data.path().join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    archive::busybox(IMAGE, busybox, &["sh", "sleep", "cat", "id", "touch", "grep", "echo"])
        .write_to(&images.join("busybox.tar"))
        .unwrap();
    let containerd = Containerd::start(ContainerdConfig::for_data_dir(data.path()))
        .await
        .expect("containerd starts");
    import_images(containerd.endpoint(), &images)
        .await
        .expect("image import");
    let mut cri = cri::connect(containerd.endpoint()).await.expect("CRI");

    let logs = data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_dir = data.path().join("agent/pods/web");
    let store = std::sync::Arc::new(Store::default());
    *store.config_maps.lock().unwrap() = vec![config_map("fast")];
    let config = sandbox_config(&pod(), &logs);
    let sandbox = Sandbox {
        id: run_pod(&mut cri, config.clone()).await,
        cri: cri.clone(),
    };

    let result = tokio::spawn(checks(cri.clone(), sandbox.id.clone(), config, pod_dir.clone(), store)).await;

    if result.is_err() {
        let log = std::fs::read_to_string(data.path().join("agent/containerd/containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("containerd log (last lines, newest first):\n{}", tail.join("\n"));
    }
    let removed = remove_sandbox(&sandbox, containerd.endpoint()).await;
    let unmounted = volume::cleanup(&pod_dir);
    containerd.stop().await;
    remove_cgroups();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
    removed.expect("sandbox removed");
    unmounted.expect("volume cleanup");
}
