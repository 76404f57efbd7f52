//! Job conditions with upstream's types, reasons and messages.
//!
//! A Job ends in two steps, as upstream (1.31+): first the interim
//! `SuccessCriteriaMet` or `FailureTarget` condition is written, then, once
//! every pod's finish is counted and no pod is terminating, `Complete` or
//! `Failed` with the same reason and message.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUSPENDED: &str = "Suspended";

pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) =
    ("BackoffLimitExceeded", "Job has reached the specified backoff limit");
pub const DEADLINE_EXCEEDED: (&str, &str) = ("DeadlineExceeded", "Job was active longer than specified deadline");
pub const COMPLETIONS_REACHED: (&str, &str) = ("CompletionsReached", "Reached expected number of succeeded pods");
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";

pub fn new(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if the Job has it with status True.
pub fn find_true<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    conditions.iter().find(|c| c.type_ == type_ && c.status == "True")
}

/// Complete or Failed: nothing more to do.
pub fn is_finished(job: &Job) -> bool {
    find_true(job, COMPLETE).is_some() || find_true(job, FAILED).is_some()
}

/// The final condition an interim one leads to.
pub fn final_for(interim: &JobCondition, now: Timestamp) -> JobCondition {
    let type_ = if interim.type_ == SUCCESS_CRITERIA_MET {
        COMPLETE
    } else {
        FAILED
    };
    let reason = interim.reason.as_deref().unwrap_or_default();
    new(
        type_,
        "True",
        reason,
        interim.message.as_deref().unwrap_or_default(),
        now,
    )
}

/// Upstream's `ensureJobConditionStatus`: sets the condition of `type_`
/// (adding it only when not False); returns whether anything changed.
pub fn ensure(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let same =
                c.status == status && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message);
            if !same {
                *c = new(type_, status, reason, message, now);
            }
            !same
        }
        None if status != "False" => {
            conditions.push(new(type_, status, reason, message, now));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_adds_true_conditions_and_updates_changed_ones() {
        let now = Timestamp::UNIX_EPOCH;
        let mut conditions = Vec::new();
        assert!(!ensure(
            &mut conditions,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(conditions.is_empty(), "a False condition is not added");
        assert!(ensure(
            &mut conditions,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut conditions,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure(
            &mut conditions,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("JobResumed"));
    }

    #[test]
    fn interim_conditions_lead_to_final_ones() {
        let now = Timestamp::UNIX_EPOCH;
        let (reason, message) = COMPLETIONS_REACHED;
        let done = final_for(&new(SUCCESS_CRITERIA_MET, "True", reason, message, now), now);
        assert_eq!((done.type_.as_str(), done.reason.as_deref()), (COMPLETE, Some(reason)));
        let (reason, message) = DEADLINE_EXCEEDED;
        let failed = final_for(&new(FAILURE_TARGET, "True", reason, message, now), now);
        assert_eq!(
            (failed.type_.as_str(), failed.message.as_deref()),
            (FAILED, Some(message))
        );
    }
}
