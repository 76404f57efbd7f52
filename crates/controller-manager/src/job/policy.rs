//! Which finished pods count against a Job, and when a pod failure fails
//! the Job at once: upstream's `isPodFailed` and `matchPodFailurePolicy`.

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

/// What a pod failure policy decides for one failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule (or a `Count` rule) matched: the failure counts.
    Count,
    /// An `Ignore` rule matched: the failure does not count.
    Ignore,
    /// A `FailJob` rule matched, with upstream's message.
    FailJob(String),
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Pods are replaced only once Failed (not while terminating) when the
/// Job says so or has a pod failure policy.
pub fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Failed, or (unless only Failed pods are replaced) deleted before it
/// succeeded: an orphaned pod may never reach the Failed phase.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    !only_replace_failed(job) && pod.metadata.deletion_timestamp.is_some() && !is_succeeded(pod)
}

/// The first rule of `policy` that matches the failed `pod`.
pub fn verdict(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    let status = pod.status.clone().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            let containers = status.container_statuses.iter().flatten();
            let init = status.init_container_statuses.iter().flatten();
            let found = containers.chain(init).find(|c| exit_code_matches(c, codes));
            found.map(|c| {
                let code = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map_or(0, |t| t.exit_code);
                format!(
                    "Container {} for pod {}/{} failed with exit code {code} matching {} rule at index {index}",
                    c.name,
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    rule.action
                )
            })
        } else {
            let patterns = rule.on_pod_conditions.iter().flatten();
            let conditions = status.conditions.iter().flatten();
            let found = conditions
                .clone()
                .find(|c| patterns.clone().any(|p| p.type_ == c.type_ && p.status == c.status));
            found.map(|c| {
                format!(
                    "Pod {}/{} has condition {} matching {} rule at index {index}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    c.type_,
                    rule.action
                )
            })
        };
        let Some(message) = matched else { continue };
        match rule.action.as_str() {
            "Ignore" => return Verdict::Ignore,
            "FailJob" => return Verdict::FailJob(message),
            "Count" => return Verdict::Count,
            // FailIndex needs backoffLimitPerIndex, which this controller does not implement.
            _ => {}
        }
    }
    Verdict::Count
}

/// A terminated container with a non-zero exit code the requirement selects.
fn exit_code_matches(container: &ContainerStatus, req: &PodFailurePolicyOnExitCodesRequirement) -> bool {
    let Some(terminated) = container.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return false;
    };
    let named = req.container_name.as_ref().is_none_or(|n| *n == container.name);
    let listed = req.values.contains(&terminated.exit_code);
    let operator_ok = match req.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    };
    named && terminated.exit_code != 0 && operator_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule};
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    fn failed_pod(exit_code: i32, condition: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code,
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                conditions: condition.map(|c| {
                    vec![PodCondition {
                        type_: c.into(),
                        status: "True".into(),
                        ..PodCondition::default()
                    }]
                }),
                ..PodStatus::default()
            }),
        }
    }

    fn on_codes(action: &str, operator: &str, values: Vec<i32>) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: operator.into(),
                values,
            }),
            on_pod_conditions: None,
        }
    }

    #[test]
    fn rules_match_in_order() {
        let policy = PodFailurePolicy {
            rules: vec![
                on_codes("FailJob", "In", vec![42]),
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                },
                on_codes("Count", "NotIn", vec![1]),
            ],
        };
        assert_eq!(
            verdict(Some(&policy), &failed_pod(42, None)),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0".into()
            )
        );
        assert_eq!(
            verdict(Some(&policy), &failed_pod(1, Some("DisruptionTarget"))),
            Verdict::Ignore
        );
        assert_eq!(verdict(Some(&policy), &failed_pod(1, None)), Verdict::Count);
        assert_eq!(verdict(None, &failed_pod(42, None)), Verdict::Count);
    }

    #[test]
    fn pod_condition_rule_names_the_condition() {
        let policy = PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "ConfigIssue".into(),
                    status: "True".into(),
                }]),
            }],
        };
        assert_eq!(
            verdict(Some(&policy), &failed_pod(1, Some("ConfigIssue"))),
            Verdict::FailJob("Pod ns/p has condition ConfigIssue matching FailJob rule at index 0".into())
        );
    }

    #[test]
    fn deleted_pods_fail_unless_only_failed_pods_are_replaced() {
        let mut pod = failed_pod(0, None);
        pod.status.as_mut().unwrap().phase = Some("Running".into());
        pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        let mut job = Job::default();
        assert!(is_failed(&pod, &job));
        job.spec = Some(k8s_openapi::api::batch::v1::JobSpec {
            pod_replacement_policy: Some("Failed".into()),
            ..Default::default()
        });
        assert!(!is_failed(&pod, &job));
    }
}
