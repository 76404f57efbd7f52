//! Container requests and limits as the runtime enforces them (upstream
//! `kuberuntime_container_linux.go`, `helpers_linux.go`, `cm/helpers_linux.go`
//! and `qos/policy.go`), and the pod's QoS class (`helper/qos`).
//!
//! CPU requests become cgroup `cpu.shares` (relative weight, at least 2 as
//! the kernel's default for an unweighted group), CPU limits become a CFS
//! quota over a 100 ms period, memory limits become `memory.limit_in_bytes`.
//! The pod cgroup gets the totals so the sum of a pod's containers is capped
//! the same way, which is also where init containers count.
//!
//! `oom_score_adj` follows upstream's policy, but containerd runs here with
//! `restrict_oom_score_adj = true` (runtime-notes.md): it raises any value
//! below its own score to its own, so Guaranteed pods get containerd's score
//! rather than -997 — still lower than every Burstable and BestEffort pod.

use k8s_cri::v1::LinuxContainerResources;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Shares for a container without CPU request (the kernel's minimum).
pub const MIN_SHARES: i64 = 2;
/// The largest `cpu.shares` the kernel accepts.
pub const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const MILLI_CPU_TO_CPU: i64 = 1000;
/// The CFS period, 100 ms in microseconds.
pub const QUOTA_PERIOD: i64 = 100_000;
/// The smallest quota, 1 ms.
const MIN_QUOTA_PERIOD: i64 = 1000;

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
/// The score upstream gives the sandbox (pause) container.
pub const POD_INFRA_OOM_ADJ: i64 = -998;

/// A pod's quality-of-service class, as written to `status.qosClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Upstream's `milliCPUToShares`: 1024 shares per CPU, at least [`MIN_SHARES`].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU).clamp(MIN_SHARES, MAX_SHARES)
}

/// Upstream's `milliCPUToQuota`: the CFS quota for a CPU limit over `period`;
/// 0 (no quota) without a limit, otherwise at least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / MILLI_CPU_TO_CPU).max(MIN_QUOTA_PERIOD)
}

fn quantity<'a>(list: Option<&'a std::collections::BTreeMap<String, Quantity>>, name: &str) -> Option<&'a Quantity> {
    list?.get(name)
}

/// The named request of a container, in millicores for `cpu` and base units otherwise.
fn request(resources: Option<&ResourceRequirements>, name: &str, milli: bool) -> i64 {
    amount(resources.and_then(|r| quantity(r.requests.as_ref(), name)), milli)
}

fn limit(resources: Option<&ResourceRequirements>, name: &str, milli: bool) -> i64 {
    amount(resources.and_then(|r| quantity(r.limits.as_ref(), name)), milli)
}

fn amount(q: Option<&Quantity>, milli: bool) -> i64 {
    let Some(q) = q else { return 0 };
    let parsed = if milli {
        capstan_scheduler::quantity::milli_value(&q.0)
    } else {
        capstan_scheduler::quantity::value(&q.0)
    };
    parsed.unwrap_or(0).max(0)
}

/// Upstream's `calculateLinuxResources`: shares from the CPU request (or
/// the limit when only a limit is set), quota and period from the CPU
/// limit, the memory limit as is.
fn calculate(cpu_request: i64, cpu_limit: i64, memory_limit: i64) -> LinuxContainerResources {
    let shares_from = if cpu_request == 0 && cpu_limit != 0 {
        cpu_limit
    } else {
        cpu_request
    };
    let mut resources = LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(shares_from),
        memory_limit_in_bytes: memory_limit,
        ..Default::default()
    };
    if cpu_limit != 0 {
        resources.cpu_period = QUOTA_PERIOD;
        resources.cpu_quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    }
    resources
}

/// The CRI resources of one container of `pod`: shares, quota, period,
/// memory limit and `oom_score_adj` (see the module doc for containerd's
/// clamping). `memory_capacity` is the node's memory in bytes, which scales
/// a Burstable container's score.
pub fn linux_container_resources(pod: &Pod, container: &Container, memory_capacity: i64) -> LinuxContainerResources {
    let r = container.resources.as_ref();
    let mut resources = calculate(
        request(r, "cpu", true),
        limit(r, "cpu", true),
        limit(r, "memory", false),
    );
    resources.oom_score_adj = container_oom_score_adj(pod, container, memory_capacity);
    resources
}

/// Upstream's `GetContainerOOMScoreAdjust`: -997 for node-critical and
/// Guaranteed pods, 1000 for BestEffort, and for Burstable `1000 - 1000 *
/// request / capacity` kept within 3..=999 so that Burstable always ranks
/// between the other two.
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    let node_critical =
        pod.spec.as_ref().and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical");
    if node_critical {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let memory_request = request(container.resources.as_ref(), "memory", false);
            let capacity = memory_capacity.max(1);
            let adj = 1000 - (1000i128 * i128::from(memory_request) / i128::from(capacity)) as i64;
            if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
                1000 + GUARANTEED_OOM_SCORE_ADJ
            } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
                adj - 1
            } else {
                adj
            }
        }
    }
}

/// Upstream's QoS computation over all containers and init containers:
/// only `cpu` and `memory` count, and only quantities above zero.
/// BestEffort without any; Guaranteed when every container limits both
/// and the totals of requests equal the totals of limits; else Burstable.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let mut requests = [0i64; 2];
    let mut limits = [0i64; 2];
    let mut seen_requests = [false; 2];
    let mut seen_limits = [false; 2];
    let mut guaranteed = true;
    for container in containers {
        let r = container.resources.as_ref();
        let mut limited = [false; 2];
        for (i, (name, milli)) in [("cpu", true), ("memory", false)].into_iter().enumerate() {
            let req = request(r, name, milli);
            if req > 0 {
                requests[i] = requests[i].saturating_add(req);
                seen_requests[i] = true;
            }
            let lim = limit(r, name, milli);
            if lim > 0 {
                limits[i] = limits[i].saturating_add(lim);
                seen_limits[i] = true;
                limited[i] = true;
            }
        }
        if !(limited[0] && limited[1]) {
            guaranteed = false;
        }
    }
    if !seen_requests.contains(&true) && !seen_limits.contains(&true) {
        return QosClass::BestEffort;
    }
    let matching = (0..2).all(|i| !seen_requests[i] || (seen_limits[i] && requests[i] == limits[i]));
    if guaranteed && matching && seen_requests == seen_limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The limits of the pod-level cgroup (`/capstan/pod<uid>`), upstream's
/// `ResourceConfigForPod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodResources {
    pub cpu_shares: i64,
    /// CFS quota in microseconds per [`QUOTA_PERIOD`]; `None` leaves it unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    /// `memory.limit_in_bytes`; `None` leaves it unlimited.
    pub memory_limit: Option<i64>,
}

/// Effective totals: regular containers and restartable (sidecar) init
/// containers add up; each ordinary init container runs alone beside the
/// sidecars started before it, so the pod needs the larger of the two.
/// Pod overhead is added on top. `None` when some container has no value.
fn pod_total(
    pod: &Pod,
    name: &str,
    milli: bool,
    of: fn(Option<&ResourceRequirements>, &str, bool) -> i64,
) -> (i64, bool) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, false);
    };
    let mut declared = true;
    let mut value = |c: &Container| {
        let v = of(c.resources.as_ref(), name, milli);
        if v == 0 {
            declared = false;
        }
        v
    };
    let mut sum: i64 = spec.containers.iter().map(&mut value).sum();
    let mut sidecars = 0i64;
    let mut init_max = 0i64;
    for init in spec.init_containers.iter().flatten() {
        let v = value(init);
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.saturating_add(v);
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(sidecars.saturating_add(v));
        }
    }
    sum = sum.saturating_add(sidecars).max(init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum = sum.saturating_add(amount(overhead.get(name), milli));
    }
    (sum, declared)
}

/// The pod cgroup's limits: shares from the total CPU request (2 for
/// BestEffort); a CPU quota and a memory limit only when every container
/// declares that limit (otherwise one unlimited container makes the pod
/// unlimited).
pub fn pod_resources(pod: &Pod) -> PodResources {
    let (cpu_requests, _) = pod_total(pod, "cpu", true, request);
    let (cpu_limits, cpu_declared) = pod_total(pod, "cpu", true, limit);
    let (memory_limits, memory_declared) = pod_total(pod, "memory", false, limit);
    match qos_class(pod) {
        QosClass::BestEffort => PodResources {
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            cpu_period: None,
            memory_limit: None,
        },
        _ => {
            let cpu = cpu_declared && cpu_limits > 0;
            PodResources {
                cpu_shares: milli_cpu_to_shares(cpu_requests),
                cpu_quota: cpu.then(|| milli_cpu_to_quota(cpu_limits, QUOTA_PERIOD)),
                cpu_period: cpu.then_some(QUOTA_PERIOD),
                memory_limit: (memory_declared && memory_limits > 0).then_some(memory_limits),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})).unwrap()
    }

    fn with(requests: serde_json::Value, limits: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn shares_and_quota_follow_upstream_rounding() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), 0);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, QUOTA_PERIOD), 200_000);
    }

    #[test]
    fn container_resources_from_requests_and_limits() {
        let p = pod(json!([with(
            json!({"cpu": "250m", "memory": "64Mi"}),
            json!({"cpu": "500m", "memory": "128Mi"})
        )]));
        let r = linux_container_resources(&p, &p.spec.as_ref().unwrap().containers[0], 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        // Burstable: 1000 - 1000 * 64Mi / 1Gi = 938.
        assert_eq!(r.oom_score_adj, 938);
    }

    #[test]
    fn only_a_limit_gives_shares_from_the_limit() {
        let p = pod(json!([{"name": "c", "resources": {"limits": {"cpu": "1"}}}]));
        let r = linux_container_resources(&p, &p.spec.as_ref().unwrap().containers[0], 1 << 30);
        assert_eq!(r.cpu_shares, 1024);
        assert_eq!(r.memory_limit_in_bytes, 0);
    }

    #[test]
    fn no_resources_is_best_effort_with_minimum_shares() {
        let p = pod(json!([{"name": "c"}]));
        let r = linux_container_resources(&p, &p.spec.as_ref().unwrap().containers[0], 1 << 30);
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.cpu_period, r.oom_score_adj),
            (2, 0, 0, 1000)
        );
        assert_eq!(qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn qos_classes_as_upstream() {
        let guaranteed = pod(json!([with(
            json!({"cpu": "1", "memory": "1Gi"}),
            json!({"cpu": "1", "memory": "1Gi"})
        )]));
        assert_eq!(qos_class(&guaranteed), QosClass::Guaranteed);
        let unequal = pod(json!([with(
            json!({"cpu": "500m", "memory": "1Gi"}),
            json!({"cpu": "1", "memory": "1Gi"})
        )]));
        assert_eq!(qos_class(&unequal), QosClass::Burstable);
        let cpu_only = pod(json!([with(json!({"cpu": "1"}), json!({"cpu": "1"}))]));
        assert_eq!(qos_class(&cpu_only), QosClass::Burstable);
        // Requests of zero do not count; other resources are ignored.
        let zero = pod(json!([with(
            json!({"cpu": "0", "ephemeral-storage": "1Gi"}),
            json!({})
        )]));
        assert_eq!(qos_class(&zero), QosClass::BestEffort);
        // One container without limits spoils Guaranteed for the pod.
        let mixed = pod(json!([
            with(json!({"cpu": "1", "memory": "1Gi"}), json!({"cpu": "1", "memory": "1Gi"})),
            {"name": "d"}
        ]));
        assert_eq!(qos_class(&mixed), QosClass::Burstable);
        assert_eq!(qos_class(&guaranteed).as_str(), "Guaranteed");
    }

    #[test]
    fn oom_score_adj_policy() {
        let g = pod(json!([with(
            json!({"cpu": "1", "memory": "1Gi"}),
            json!({"cpu": "1", "memory": "1Gi"})
        )]));
        assert_eq!(
            container_oom_score_adj(&g, &g.spec.as_ref().unwrap().containers[0], 1 << 30),
            -997
        );
        // A request as large as the node is clamped to 3.
        let big = pod(json!([with(json!({"memory": "2Gi"}), json!({}))]));
        assert_eq!(
            container_oom_score_adj(&big, &big.spec.as_ref().unwrap().containers[0], 1 << 30),
            3
        );
        // A tiny request would give 1000, which is kept for BestEffort.
        let tiny = pod(json!([with(json!({"memory": "1"}), json!({}))]));
        assert_eq!(
            container_oom_score_adj(&tiny, &tiny.spec.as_ref().unwrap().containers[0], 1 << 30),
            999
        );
        let mut critical = pod(json!([{"name": "c"}]));
        critical.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
        assert_eq!(
            container_oom_score_adj(&critical, &critical.spec.as_ref().unwrap().containers[0], 1 << 30),
            -997
        );
    }

    #[test]
    fn pod_cgroup_totals() {
        let p = pod(json!([
            with(
                json!({"cpu": "250m", "memory": "64Mi"}),
                json!({"cpu": "500m", "memory": "128Mi"})
            ),
            with(
                json!({"cpu": "250m", "memory": "64Mi"}),
                json!({"cpu": "500m", "memory": "128Mi"})
            ),
        ]));
        assert_eq!(
            pod_resources(&p),
            PodResources {
                cpu_shares: 512,
                cpu_quota: Some(100_000),
                cpu_period: Some(QUOTA_PERIOD),
                memory_limit: Some(256 << 20)
            }
        );
        // One container without a memory limit: the pod is not memory-limited.
        let open = pod(json!([
            with(json!({"cpu": "250m"}), json!({"cpu": "500m", "memory": "128Mi"})),
            with(json!({"cpu": "250m"}), json!({"cpu": "500m"})),
        ]));
        let r = pod_resources(&open);
        assert_eq!((r.cpu_quota, r.memory_limit), (Some(100_000), None));
        assert_eq!(pod_resources(&pod(json!([{"name": "c"}]))).cpu_shares, 2);
    }

    #[test]
    fn init_containers_count_by_their_maximum() {
        let mut p = pod(json!([with(json!({"cpu": "100m"}), json!({"cpu": "100m"}))]));
        let init: Container = serde_json::from_value(with(json!({"cpu": "1"}), json!({"cpu": "1"}))).unwrap();
        p.spec.as_mut().unwrap().init_containers = Some(vec![init]);
        let r = pod_resources(&p);
        assert_eq!(r.cpu_shares, 1024);
        assert_eq!(r.cpu_quota, Some(100_000));
    }
}
