//! `GET /stats/summary`: cpu and memory of the node, its pods and their containers, read from cgroup v1.
//!
//! The shape is upstream's `stats/v1alpha1` `Summary` (what `kubectl top` reaches through metrics-server):
//! `node` and `pods[]`, each with `cpu {time, usageNanoCores, usageCoreNanoSeconds}` and
//! `memory {time, usageBytes, workingSetBytes, rssBytes, …}`; pods carry `podRef` and `containers[]`.
//! Only cpu and memory are reported — network, filesystem and volume stats are left out.
//!
//! Where the numbers come from: the node is the root cgroup; a pod is `<cgroup-root>/pod<uid>` (the pod
//! cgroup the kubelet creates); a container is `<pod cgroup>/<container id>` (containerd's cgroupfs layout).
//! `usageCoreNanoSeconds` is `cpuacct.usage`; `usageNanoCores` is its rate between two samples (kept from the
//! previous request, or taken 200 ms apart on the first); `workingSetBytes` is `memory.usage_in_bytes` minus
//! `total_inactive_file`, as cAdvisor computes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use k8s_cri::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ListContainersRequest, ListPodSandboxRequest,
    PodSandboxFilter, PodSandboxState, PodSandboxStateValue,
};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::error;

/// How far apart the two cpu samples of a first request are.
const FIRST_SAMPLE_GAP: Duration = Duration::from_millis(200);

/// Where the cgroups are.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    /// The cgroup v1 mount point, `/sys/fs/cgroup`.
    pub mount: PathBuf,
    /// The pods' parent cgroup (`--cgroup-root`, `/capstan`).
    pub root: String,
}

impl CgroupLayout {
    fn dir(&self, subsystem: &str, cgroup: &str) -> PathBuf {
        self.mount.join(subsystem).join(cgroup.trim_start_matches('/'))
    }

    fn pod(&self, uid: &str) -> String {
        format!("{}/pod{uid}", self.root.trim_end_matches('/'))
    }
}

/// Keeps the last cpu sample per cgroup, for usage rates.
pub struct Sampler {
    layout: CgroupLayout,
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Sampler {
    /// A sampler over `layout`.
    pub fn new(layout: CgroupLayout) -> Sampler {
        Sampler {
            layout,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn cpu_usage(&self, cgroup: &str) -> Option<u64> {
        read_u64(&self.layout.dir("cpuacct", cgroup).join("cpuacct.usage"))
    }

    /// Cpu stats for each cgroup, rates computed against the previous sample.
    async fn cpu(&self, cgroups: &[String]) -> HashMap<String, CpuStats> {
        let now = Instant::now();
        let first: Vec<(String, Option<u64>)> = cgroups.iter().map(|c| (c.clone(), self.cpu_usage(c))).collect();
        let missing = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            first.iter().any(|(c, u)| u.is_some() && !last.contains_key(c))
        };
        if missing {
            {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                for (c, usage) in &first {
                    if let Some(usage) = usage {
                        last.entry(c.clone()).or_insert((now, *usage));
                    }
                }
            }
            tokio::time::sleep(FIRST_SAMPLE_GAP).await;
        }
        let time = Timestamp::now().to_string();
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for cgroup in cgroups {
            let Some(usage) = self.cpu_usage(cgroup) else { continue };
            let nano_cores = last.get(cgroup).and_then(|(then, before)| {
                let elapsed = now.duration_since(*then).as_nanos() as f64;
                (elapsed > 0.0).then(|| (usage.saturating_sub(*before) as f64 / elapsed * 1e9) as u64)
            });
            last.insert(cgroup.clone(), (now, usage));
            out.insert(
                cgroup.clone(),
                CpuStats {
                    time: time.clone(),
                    usage_nano_cores: nano_cores,
                    usage_core_nano_seconds: usage,
                },
            );
        }
        // Forget cgroups that are gone.
        last.retain(|c, _| cgroups.contains(c));
        out
    }

    fn memory(&self, cgroup: &str, capacity: Option<u64>) -> Option<MemoryStats> {
        let dir = self.layout.dir("memory", cgroup);
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
        };
        let working_set = usage.saturating_sub(field("total_inactive_file").unwrap_or(0));
        Some(MemoryStats {
            time: Timestamp::now().to_string(),
            available_bytes: capacity.map(|c| c.saturating_sub(working_set)),
            usage_bytes: usage,
            working_set_bytes: working_set,
            rss_bytes: field("total_rss"),
            page_faults: field("total_pgfault"),
            major_page_faults: field("total_pgmajfault"),
        })
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn memory_capacity() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `stats/v1alpha1` CPUStats.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_nano_cores: Option<u64>,
    usage_core_nano_seconds: u64,
}

/// `stats/v1alpha1` MemoryStats.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    available_bytes: Option<u64>,
    usage_bytes: u64,
    working_set_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    major_page_faults: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    node: NodeStats,
    pods: Vec<PodStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats {
    node_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodReference {
    name: String,
    namespace: String,
    uid: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: PodReference,
    start_time: String,
    containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStats {
    name: String,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
}

fn timestamp(nanos: i64) -> String {
    Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The handler.
pub async fn summary(State(state): State<Arc<super::State>>) -> Response {
    match build(&state).await {
        Ok(summary) => Json(summary).into_response(),
        Err(status) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container runtime: {status}"),
        ),
    }
}

async fn build(state: &super::State) -> Result<Summary, tonic::Status> {
    let mut runtime = state.runtime.clone();
    let ready = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    let sandboxes = runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: Some(ready) })
        .await?
        .into_inner()
        .items;
    let running = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    let containers = runtime
        .list_containers(ListContainersRequest { filter: Some(running) })
        .await?
        .into_inner()
        .containers;

    let sampler = &state.stats;
    let layout = &sampler.layout;
    let mut cgroups = vec!["/".to_string()];
    let pods: Vec<_> = sandboxes
        .iter()
        .filter_map(|s| Some((s, s.metadata.as_ref()?)))
        .map(|(sandbox, meta)| {
            let pod_cgroup = layout.pod(&meta.uid);
            let members: Vec<_> = containers
                .iter()
                .filter(|c| c.pod_sandbox_id == sandbox.id)
                .map(|c| (c, format!("{pod_cgroup}/{}", c.id)))
                .collect();
            (sandbox, meta, pod_cgroup, members)
        })
        .collect();
    for (_, _, pod_cgroup, members) in &pods {
        cgroups.push(pod_cgroup.clone());
        cgroups.extend(members.iter().map(|(_, cgroup)| cgroup.clone()));
    }
    let mut cpu = sampler.cpu(&cgroups).await;
    let pods = pods
        .into_iter()
        .map(|(sandbox, meta, pod_cgroup, members)| PodStats {
            pod_ref: PodReference {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
            },
            start_time: timestamp(sandbox.created_at),
            containers: members
                .into_iter()
                .map(|(container, cgroup)| ContainerStats {
                    name: container.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
                    start_time: timestamp(container.created_at),
                    cpu: cpu.remove(&cgroup),
                    memory: sampler.memory(&cgroup, None),
                })
                .collect(),
            cpu: cpu.remove(&pod_cgroup),
            memory: sampler.memory(&pod_cgroup, None),
        })
        .collect();
    Ok(Summary {
        node: NodeStats {
            node_name: state.node_name.clone(),
            cpu: cpu.remove("/"),
            memory: sampler.memory("/", memory_capacity()),
        },
        pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup v1 tree in a temporary directory.
    fn tree(dir: &Path, cgroup: &str, cpu: u64, usage: u64, inactive: u64) {
        let cpuacct = dir.join("cpuacct").join(cgroup.trim_start_matches('/'));
        let memory = dir.join("memory").join(cgroup.trim_start_matches('/'));
        std::fs::create_dir_all(&cpuacct).unwrap();
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), format!("{cpu}\n")).unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), format!("{usage}\n")).unwrap();
        std::fs::write(
            memory.join("memory.stat"),
            format!("cache 1\ntotal_rss 4096\ntotal_inactive_file {inactive}\n"),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn cpu_rates_and_working_set_come_from_the_cgroup_files() {
        let tmp = std::env::temp_dir().join(format!("capstan-stats-{}", std::process::id()));
        let layout = CgroupLayout {
            mount: tmp.clone(),
            root: "/capstan".to_string(),
        };
        let pod = layout.pod("u1");
        tree(&tmp, &pod, 1_000_000_000, 10_000, 3_000);
        let sampler = Sampler::new(layout);
        let first = sampler.cpu(std::slice::from_ref(&pod)).await;
        assert_eq!(first[&pod].usage_core_nano_seconds, 1_000_000_000);
        // No cpu used between the two samples of the first request.
        assert_eq!(first[&pod].usage_nano_cores, Some(0));
        // Half a core over the next interval.
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let spent = start.elapsed().as_nanos() as u64 / 2;
        tree(&tmp, &pod, 1_000_000_000 + spent, 10_000, 3_000);
        let second = sampler.cpu(std::slice::from_ref(&pod)).await;
        let cores = second[&pod].usage_nano_cores.unwrap();
        assert!((400_000_000..=510_000_000).contains(&cores), "{cores}");
        let memory = sampler.memory(&pod, Some(100_000)).unwrap();
        assert_eq!(memory.usage_bytes, 10_000);
        assert_eq!(memory.working_set_bytes, 7_000);
        assert_eq!(memory.rss_bytes, Some(4096));
        assert_eq!(memory.available_bytes, Some(93_000));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
