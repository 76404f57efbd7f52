//! The raw CRI floor: what containerd itself needs to start a pod.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use capstan_containerd::killall::{KillallOptions, killall};
use capstan_containerd::{Containerd, ContainerdConfig, archive, cri, import_images};
use futures::future;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde::Serialize;
use serde_json::json;
use tonic::transport::Channel;

use super::{IMAGE, latency_of};
use crate::stats::Latency;

const BRIDGE: &str = "cap-bench0";
const SUBNET: &str = "10.199.8.0/24";
const CGROUP_ROOT: &str = "/capstan-bench-floor";

/// The floor for pods one after another and for a burst.
#[derive(Debug, Serialize)]
pub struct Floor {
    pub sequential: Latency,
    pub concurrent: Latency,
    pub concurrent_pods: usize,
}

/// Runs `runs` pods one after another, then `burst` pods at once, directly
/// on a containerd of its own (same binary and configuration as the node's;
/// the node's own would remove sandboxes no pod owns). Each pod is timed
/// from `RunPodSandbox` to `StartContainer` returning.
pub async fn measure(data_root: &Path, runs: usize, burst: usize) -> Result<Floor> {
    let dir = tempfile::Builder::new()
        .prefix("capstan-bench-floor-")
        .tempdir_in(data_root)?;
    let options = KillallOptions {
        data_dir: dir.path().to_path_buf(),
        cgroup_root: CGROUP_ROOT.into(),
        cni_bridge: BRIDGE.into(),
    };
    let result = measure_in(dir.path(), runs, burst).await;
    killall(&options).await.context("cleaning up the floor's containerd")?;
    result
}

async fn measure_in(data_dir: &Path, runs: usize, burst: usize) -> Result<Floor> {
    let config = ContainerdConfig::for_data_dir(data_dir);
    write_conflist(&config.cni_conf_dir)?;
    let images = data_dir.join("agent/images");
    write_busybox(&images)?;
    let containerd = Containerd::start(config).await.context("starting containerd")?;
    import_images(containerd.endpoint(), &images).await?;
    let runtime = RuntimeServiceClient::new(cri::channel(containerd.endpoint()).await?);
    let mut samples = Vec::new();
    for i in 0..runs {
        let (elapsed, sandbox) = start_pod(runtime.clone(), data_dir.to_path_buf(), format!("seq-{i}")).await?;
        samples.push(elapsed);
        remove(runtime.clone(), sandbox).await?;
    }
    let sequential = latency_of(&samples);
    let started = future::try_join_all(
        (0..burst).map(|i| start_pod(runtime.clone(), data_dir.to_path_buf(), format!("burst-{i}"))),
    )
    .await?;
    let concurrent = latency_of(&started.iter().map(|(elapsed, _)| *elapsed).collect::<Vec<_>>());
    for (_, sandbox) in started {
        remove(runtime.clone(), sandbox).await?;
    }
    containerd.stop().await;
    Ok(Floor {
        sequential,
        concurrent,
        concurrent_pods: burst,
    })
}

async fn remove(mut runtime: RuntimeServiceClient<Channel>, sandbox: String) -> Result<()> {
    runtime
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        })
        .await?;
    runtime
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await?;
    Ok(())
}

/// One pod as the kubelet starts it; returns the time and the sandbox ID.
async fn start_pod(
    mut runtime: RuntimeServiceClient<Channel>,
    data_dir: PathBuf,
    uid: String,
) -> Result<(Duration, String)> {
    let log_dir = data_dir.join("agent/logs").join(&uid);
    std::fs::create_dir_all(&log_dir)?;
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: uid.clone(),
            uid: uid.clone(),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: uid.clone(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{CGROUP_ROOT}/pod{uid}"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container_config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "c/0.log".into(),
        ..Default::default()
    };
    let started = Instant::now();
    let sandbox = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let container = runtime
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .context("CreateContainer")?
        .into_inner()
        .container_id;
    runtime
        .start_container(StartContainerRequest {
            container_id: container,
        })
        .await
        .context("StartContainer")?;
    Ok((started.elapsed(), sandbox))
}

/// bridge + host-local + portmap, as the kubelet writes it.
fn write_conflist(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "capstan-bench-floor",
        "plugins": [
            { "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true, "hairpinMode": true,
              "ipam": { "type": "host-local", "ranges": [[{ "subnet": SUBNET }]], "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": dir.join("../../cni-ipam") } },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    std::fs::write(dir.join("10-bench.conflist"), serde_json::to_vec_pretty(&conflist)?)?;
    Ok(())
}

/// The busybox image tarball in `dir`, from Debian's static `/bin/busybox`.
pub fn write_busybox(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let busybox = std::fs::read("/bin/busybox").context("reading /bin/busybox (Debian busybox-static)")?;
    archive::busybox(IMAGE, busybox, archive::BUSYBOX_APPLETS).write_to(&dir.join("busybox.tar"))?;
    Ok(())
}
