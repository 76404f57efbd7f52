//! The Lease record and the acquire / renew / release steps.

use std::fmt;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::Rng;

use crate::Config;

/// The Lease a set of candidates compete for, and who this candidate is.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
}

impl LeaseLock {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: impl Into<String>) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.into(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }
}

impl fmt::Display for LeaseLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a candidate last saw of the lease: the holder and renew time, and
/// when (on this process's clock) that record last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub holder: String,
    pub renew_time: Option<Timestamp>,
    pub seen_at: Instant,
}

impl Observation {
    /// Whether `identity` may take the lease now: it is free, already
    /// ours, or unrenewed for a whole lease duration since we saw it change.
    pub fn may_acquire(&self, identity: &str, lease_duration: Duration, now: Instant) -> bool {
        self.holder.is_empty() || self.holder == identity || now.duration_since(self.seen_at) >= lease_duration
    }

    fn of(lease: &Lease, previous: Option<&Observation>, now: Instant) -> Observation {
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.unwrap_or_default();
        let renew_time = spec.renew_time.map(|t| t.0);
        let unchanged = previous.filter(|p| p.holder == holder && p.renew_time == renew_time);
        Observation {
            seen_at: unchanged.map_or(now, |p| p.seen_at),
            holder,
            renew_time,
        }
    }
}

/// One candidate's view of the election.
pub(crate) struct Elector {
    lock: LeaseLock,
    config: Config,
    observed: Option<Observation>,
}

impl Elector {
    pub(crate) fn new(lock: LeaseLock, config: Config) -> Elector {
        Elector {
            lock,
            config,
            observed: None,
        }
    }

    pub(crate) fn lock(&self) -> &LeaseLock {
        &self.lock
    }

    /// Retries every retry period (with upstream's 1.2 jitter) until the lease is ours.
    pub(crate) async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => tracing::debug!(lease = %self.lock, %err, "acquiring the lease"),
            }
            let jitter = rand::rng().random_range(0.0..1.2);
            tokio::time::sleep(self.config.retry_period.mul_f64(1.0 + jitter)).await;
        }
    }

    /// Renews every retry period; returns once a renewal has not succeeded
    /// within the renew deadline (leadership is lost).
    pub(crate) async fn keep_renewing(&mut self) {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let deadline = tokio::time::Instant::now() + self.config.renew_deadline;
            let renewed = tokio::time::timeout_at(deadline, async {
                loop {
                    match self.try_acquire_or_renew().await {
                        Ok(true) => return,
                        Ok(false) => {
                            tracing::warn!(lease = %self.lock, holder = ?self.observed.as_ref().map(|o| &o.holder), "lease taken by another");
                            std::future::pending::<()>().await;
                        }
                        Err(err) => tracing::warn!(lease = %self.lock, %err, "renewing the lease"),
                    }
                    tokio::time::sleep(self.config.retry_period).await;
                }
            })
            .await;
            if renewed.is_err() {
                return;
            }
        }
    }

    /// Gives the lease up, as upstream's `ReleaseOnCancel`: no holder and a
    /// one-second duration, so the next candidate takes over at once.
    pub(crate) async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.lock.api.get_opt(&self.lock.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.lock.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .lock
            .api
            .replace(&self.lock.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lock, "released the lease"),
            Err(err) => tracing::warn!(lease = %self.lock, %err, "releasing the lease"),
        }
    }

    /// One round of upstream's `tryAcquireOrRenew`: create the lease if it
    /// is missing, else take or renew it when allowed, with the read
    /// resourceVersion as precondition so two candidates cannot both win.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.lock.api.get_opt(&self.lock.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lock.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, now)),
            };
            return match self.lock.api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(self.observe(&created)),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        let observation = Observation::of(&lease, self.observed.as_ref(), Instant::now());
        let allowed = observation.may_acquire(&self.lock.identity, self.config.lease_duration, Instant::now());
        self.observed = Some(observation);
        if !allowed {
            return Ok(false);
        }
        lease.spec = Some(self.record(lease.spec.take(), now));
        match self
            .lock
            .api
            .replace(&self.lock.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => Ok(self.observe(&updated)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The record with us as holder: acquire time and transitions move only
    /// when the holder changes.
    fn record(&self, previous: Option<LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let created = previous.is_none();
        let previous = previous.unwrap_or_default();
        let ours = previous.holder_identity.as_deref() == Some(self.lock.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.lock.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: if ours {
                previous.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(previous.lease_transitions.unwrap_or(0) + i32::from(!ours && !created)),
            ..previous
        }
    }

    fn observe(&mut self, lease: &Lease) -> bool {
        self.observed = Some(Observation::of(lease, None, Instant::now()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(holder: &str, ago: Duration) -> (Observation, Instant) {
        let now = Instant::now() + Duration::from_secs(3600);
        let observation = Observation {
            holder: holder.to_string(),
            renew_time: None,
            seen_at: now - ago,
        };
        (observation, now)
    }

    #[test]
    fn a_free_lease_is_taken_at_once() {
        let (observation, now) = seen("", Duration::ZERO);
        assert!(observation.may_acquire("me", Duration::from_secs(15), now));
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let (observation, now) = seen("me", Duration::ZERO);
        assert!(observation.may_acquire("me", Duration::from_secs(15), now));
    }

    #[test]
    fn anothers_lease_is_respected_until_a_duration_passes_unrenewed() {
        let (fresh, now) = seen("other", Duration::from_secs(14));
        assert!(!fresh.may_acquire("me", Duration::from_secs(15), now));
        let (stale, now) = seen("other", Duration::from_secs(15));
        assert!(stale.may_acquire("me", Duration::from_secs(15), now));
    }

    #[test]
    fn a_renewal_resets_the_observed_time_and_an_unchanged_record_keeps_it() {
        let start = Instant::now();
        let lease = |renewed: i64| Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("other".into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let first = Observation::of(&lease(100), None, start);
        let later = start + Duration::from_secs(5);
        assert_eq!(Observation::of(&lease(100), Some(&first), later).seen_at, start);
        assert_eq!(Observation::of(&lease(110), Some(&first), later).seen_at, later);
    }
}
