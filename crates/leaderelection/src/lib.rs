//! Leader election for control-plane components, the way client-go's
//! `leaderelection` package does it: candidates race to hold a
//! `coordination.k8s.io/v1` Lease, the holder renews it, and the others
//! take over once it has gone unrenewed for a lease duration.
//!
//! Start with [`run_while_leader`]: it runs a component's work only while
//! this process holds the lease, and stops it as soon as the lease is lost,
//! so at most one scheduler or controller manager acts at a time. The
//! election logic itself — when a lease may be taken — is the pure
//! [`Observation::may_acquire`], so it is tested without a cluster.
//!
//! Expiry is judged on this process's clock from when it last *saw the
//! record change* (upstream's "observed time"), never from the holder's
//! `renewTime`, so clock skew between machines cannot cause two leaders.

mod lease;

use std::future::Future;
use std::time::Duration;

pub use lease::{LeaseLock, Observation};

/// How long a lease lasts and how often it is renewed and retried;
/// the defaults are upstream's `--leader-elect-*` defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a candidate waits after the last observed renewal before
    /// taking over (`--leader-elect-lease-duration`).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up
    /// leadership (`--leader-elect-renew-deadline`).
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews (`--leader-elect-retry-period`).
    pub retry_period: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A candidate's identity as upstream builds it: `<hostname>_<uuid>`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), uuid::Uuid::new_v4())
}

/// Runs `work` each time this candidate becomes leader, until `shutdown`
/// resolves. Losing the lease drops the running work (every component's
/// loops are cancellable) and goes back to campaigning; shutting down
/// while leading releases the lease so a successor need not wait.
pub async fn run_while_leader<W, F>(lock: LeaseLock, config: Config, shutdown: impl Future<Output = ()>, mut work: W)
where
    W: FnMut() -> F,
    F: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    let mut elector = lease::Elector::new(lock, config);
    loop {
        tokio::select! {
            _ = elector.acquire() => {}
            _ = &mut shutdown => return,
        }
        tracing::info!(lease = %elector.lock(), "became leader");
        tokio::select! {
            _ = elector.keep_renewing() => tracing::warn!(lease = %elector.lock(), "leader election lost"),
            _ = work() => {
                tracing::warn!(lease = %elector.lock(), "work ended while leading; releasing the lease");
                elector.release().await;
                return;
            }
            _ = &mut shutdown => {
                elector.release().await;
                return;
            }
        }
    }
}
