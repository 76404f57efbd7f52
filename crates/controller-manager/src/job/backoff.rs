//! The delay before a Job replaces failed pods (upstream's pod failure
//! backoff): 10 s after the first failure since the last success, doubling
//! with each further one, at most 6 minutes.
//!
//! As upstream, the record lives in the controller's memory: it only paces
//! re-creation, while the counts that decide a Job's fate are in its status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// Failures since the last success, and when the latest of them happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub failures: u32,
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// The record once newly finished pods are taken into account
    /// (upstream's `newBackoffRecord`): a success resets the count to the
    /// failures that came after it.
    pub fn after(&self, succeeded: &[&Pod], failed: &[&Pod]) -> Record {
        let mut failed: Vec<Timestamp> = failed.iter().map(|p| finished_time(p)).collect();
        failed.sort();
        let last_success = succeeded.iter().map(|p| finished_time(p)).max();
        let Some(last_success) = last_success else {
            return match failed.last() {
                None => self.clone(),
                Some(last) => Record {
                    failures: self.failures + failed.len() as u32,
                    last_failure: Some(*last),
                },
            };
        };
        let later: Vec<Timestamp> = failed.into_iter().filter(|t| *t > last_success).collect();
        Record {
            failures: later.len() as u32,
            last_failure: later.last().copied(),
        }
    }

    /// How long until the next pod may be created.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        let Some(last) = self.last_failure.filter(|_| self.failures > 0) else {
            return Duration::ZERO;
        };
        let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        delay(self.failures).saturating_sub(elapsed)
    }
}

/// The backoff after `failures` consecutive failures.
pub fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut delay = DEFAULT_BACKOFF;
    for _ in 1..failures {
        delay *= 2;
        if delay >= MAX_BACKOFF {
            return MAX_BACKOFF;
        }
    }
    delay
}

/// When a pod finished: its containers' latest exit, else when it became
/// not ready, else its deletion or creation time (upstream's `getFinishedTime`).
pub fn finished_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let containers = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten();
    let exited = containers
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let unready = || {
        let conditions = status.and_then(|s| s.conditions.as_ref())?;
        let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "False")?;
        ready.last_transition_time.as_ref().map(|t| t.0)
    };
    let meta = &pod.metadata;
    exited
        .or_else(unready)
        .or_else(|| meta.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_else(Timestamp::now)
}

/// The records of all Jobs, by `namespace/name`.
#[derive(Default)]
pub struct Store(Mutex<HashMap<String, Record>>);

impl Store {
    pub fn get(&self, key: &str) -> Record {
        self.0.lock().unwrap().get(key).cloned().unwrap_or_default()
    }

    pub fn set(&self, key: &str, record: Record) {
        self.0.lock().unwrap().insert(key.to_string(), record);
    }

    pub fn remove(&self, key: &str) {
        self.0.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn exited_at(secs: i64) -> Pod {
        let terminated = ContainerStateTerminated {
            finished_at: Some(Time(Timestamp::from_second(secs).unwrap())),
            ..ContainerStateTerminated::default()
        };
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(terminated),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn delay_doubles_from_ten_seconds_up_to_six_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(delay(100), MAX_BACKOFF);
    }

    #[test]
    fn failures_count_since_the_last_success() {
        let (f1, f2, ok, f3) = (exited_at(10), exited_at(20), exited_at(30), exited_at(40));
        let r = Record::default().after(&[], &[&f2, &f1]);
        assert_eq!(r.failures, 2);
        assert_eq!(r.last_failure, Some(Timestamp::from_second(20).unwrap()));
        let r = r.after(&[&ok], &[&f3]);
        assert_eq!(r.failures, 1);
        assert_eq!(r.last_failure, Some(Timestamp::from_second(40).unwrap()));
        assert_eq!(r.after(&[&ok], &[]), Record::default());
        assert_eq!(r.after(&[], &[]), r);
    }

    #[test]
    fn remaining_time_counts_from_the_last_failure() {
        let record = Record::default().after(&[], &[&exited_at(100), &exited_at(90)]);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(record.remaining(at(105)), Duration::from_secs(15));
        assert_eq!(record.remaining(at(130)), Duration::ZERO);
        assert_eq!(Record::default().remaining(at(0)), Duration::ZERO);
    }
}
