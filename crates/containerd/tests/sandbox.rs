//! A pod sandbox with CNI networking and a busybox container on the real
//! containerd, then `killall` leaves nothing behind.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capstan_containerd::{Containerd, import_images};
use common::{BRIDGE, TestRuntime, busybox_image, mounts_under, processes_naming};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;

fn shim_sockets() -> BTreeSet<String> {
    std::fs::read_dir("/run/containerd/s")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn cgroup_dirs(root: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| format!("{m}{root}"))
        .filter(|p| Path::new(p).exists())
        .collect()
}

fn iptables_lines_naming(id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for table in ["nat", "filter"] {
        let out = std::process::Command::new("iptables-save")
            .args(["-t", table])
            .output()
            .unwrap();
        lines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(id))
                .map(String::from),
        );
    }
    lines
}

/// Starts containerd as a crashed `capstan` would leave it: running, with
/// nobody supervising it (its runtime and supervisor task are gone).
fn start_unsupervised(rt: &TestRuntime) -> PathBuf {
    let config = rt.config();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let containerd = runtime.block_on(Containerd::start(config)).expect("containerd starts");
        let endpoint = containerd.endpoint().to_path_buf();
        std::mem::forget(containerd);
        endpoint
    })
    .join()
    .unwrap()
}

/// Imports a busybox image, runs a sandbox on the test bridge and a
/// container in it, and checks both; returns the sandbox ID.
async fn run_pod(rt: &TestRuntime, endpoint: &Path) -> String {
    std::fs::create_dir_all(rt.images_dir()).unwrap();
    busybox_image("docker.io/capstan-test/busybox:sandbox")
        .write_to(&rt.images_dir().join("bb.tar"))
        .unwrap();
    import_images(endpoint, &rt.images_dir()).await.unwrap();

    let mut runtime = RuntimeServiceClient::new(capstan_containerd::cri::channel(endpoint).await.unwrap());
    let log_dir = rt.data_dir().join("agent/pods/uid-1");
    std::fs::create_dir_all(&log_dir).unwrap();
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "p".into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/poduid-1", rt.cgroup_root()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox_id = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let status = runtime
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with("10.199.1."), "pod IP {ip}");
    assert!(Path::new("/sys/class/net").join(BRIDGE).exists());

    let container_config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "docker.io/capstan-test/busybox:sandbox".into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), "echo started; exec sleep 3600".into()],
        log_path: "c/0.log".into(),
        ..Default::default()
    };
    let container_id = runtime
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(container_config),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    runtime
        .start_container(StartContainerRequest {
            container_id: container_id.clone(),
        })
        .await
        .expect("StartContainer");
    let state = runtime
        .container_status(ContainerStatusRequest {
            container_id: container_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .state;
    assert_eq!(state, ContainerState::ContainerRunning as i32);
    let exec = runtime
        .exec_sync(ExecSyncRequest {
            container_id: container_id.clone(),
            cmd: vec!["cat".into(), "/proc/self/cgroup".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exec.exit_code, 0);
    let cgroups = String::from_utf8_lossy(&exec.stdout).into_owned();
    assert!(
        cgroups.contains(&format!("{}/poduid-1/{container_id}", rt.cgroup_root())),
        "{cgroups}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = std::fs::read_to_string(log_dir.join("c/0.log")).unwrap();
    assert!(log.contains("stdout F started"), "log: {log}");
    assert!(!cgroup_dirs(rt.cgroup_root()).is_empty());
    assert!(!mounts_under(rt.data_dir()).is_empty());
    sandbox_id
}

/// No process, mount, netns, cgroup, bridge, firewall rule or shim socket
/// of this test's node is left; and a second killall finds nothing.
async fn assert_nothing_left(rt: &TestRuntime, sandbox_id: &str, sockets_before: &BTreeSet<String>) {
    let state_dir = rt.state_dir().to_string_lossy().into_owned();
    assert_eq!(
        processes_naming(&state_dir),
        Vec::<i32>::new(),
        "processes of our containerd are left"
    );
    assert_eq!(mounts_under(rt.data_dir()), Vec::<String>::new());
    assert_eq!(cgroup_dirs(rt.cgroup_root()), Vec::<String>::new());
    assert!(!Path::new("/sys/class/net").join(BRIDGE).exists());
    assert_eq!(iptables_lines_naming(sandbox_id), Vec::<String>::new());
    let netns_dir = rt.state_dir().join("state/io.containerd.grpc.v1.cri/netns");
    assert_eq!(std::fs::read_dir(&netns_dir).map(|d| d.count()).unwrap_or(0), 0);
    let leftover: Vec<String> = shim_sockets().difference(sockets_before).cloned().collect();
    assert_eq!(leftover, Vec::<String>::new(), "shim sockets left in /run/containerd/s");
    assert_eq!(rt.killall().await, Default::default());
}

/// Both tests use the one test bridge, which killall deletes: one at a time.
static BRIDGE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn killall_with_containerd_running_removes_sandboxes_through_cri() {
    let _bridge = BRIDGE_LOCK.lock().await;
    let rt = TestRuntime::new();
    rt.write_cni_config();
    let sockets_before = shim_sockets();
    let endpoint = start_unsupervised(&rt);
    let sandbox_id = run_pod(&rt, &endpoint).await;

    let report = rt.killall().await;
    assert_eq!(report.sandboxes, 1);
    assert!(report.containerd_stopped);
    assert!(report.bridge_removed);
    assert_nothing_left(&rt, &sandbox_id, &sockets_before).await;
}

#[tokio::test]
async fn killall_after_containerd_stopped_cleans_up_without_cri() {
    let _bridge = BRIDGE_LOCK.lock().await;
    let rt = TestRuntime::new();
    rt.write_cni_config();
    let sockets_before = shim_sockets();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    let sandbox_id = run_pod(&rt, containerd.endpoint()).await;
    // capstan stopped: containerd is gone, the shims and containers run on.
    containerd.stop().await;
    assert!(!processes_naming(&rt.state_dir().to_string_lossy()).is_empty());

    let report = rt.killall().await;
    assert_eq!(report.sandboxes, 0);
    assert!(!report.containerd_stopped);
    assert!(report.runc_containers >= 2, "{report:?}");
    assert!(report.bridge_removed);
    assert!(report.firewall_rules_removed >= 1, "{report:?}");
    assert_nothing_left(&rt, &sandbox_id, &sockets_before).await;
}
