//! Bounding history so the database stays small under churn.
//!
//! Every write keeps its old value for watches and past reads, so without
//! compaction a cluster whose 1,000 node leases renew every 10 s would add
//! 8.6 million history rows a day (the k3s/kine "many GB" failure). Like the
//! upstream API server, Capstan compacts on a timer to the revision that was
//! current one `window` ago: watchers that fall further behind than that get
//! `410 Expired` and relist, and history stays proportional to the write
//! rate over the window instead of growing without bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::{Revision, Store};

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Keep every revision newer than this age (upstream's compaction interval is 5 min).
    pub window: Duration,
    /// How often to look at the revision and compact.
    pub interval: Duration,
    /// Never compact away the newest this-many revisions, however old they are,
    /// so a quiet cluster keeps some history for slow watchers.
    pub min_retained: Revision,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            window: Duration::from_secs(300),
            interval: Duration::from_secs(60),
            min_retained: 1000,
        }
    }
}

/// Decides compaction targets from periodic observations of the revision.
/// Pure logic, so tests and benchmarks can drive it with a simulated clock.
#[derive(Debug)]
pub struct Compactor {
    policy: CompactionPolicy,
    /// (time, revision current at that time), oldest first.
    samples: VecDeque<(Instant, Revision)>,
    compacted: Revision,
}

impl Compactor {
    pub fn new(policy: CompactionPolicy) -> Self {
        Compactor {
            policy,
            samples: VecDeque::new(),
            compacted: 0,
        }
    }

    /// Records that `current` was the revision at `now`; returns the revision
    /// to compact to when history older than the window has piled up.
    pub fn observe(&mut self, now: Instant, current: Revision) -> Option<Revision> {
        self.samples.push_back((now, current));
        let horizon = now.checked_sub(self.policy.window)?;
        // The newest sample taken at or before the horizon is the revision
        // that was current one window ago.
        let mut target = None;
        while let Some(&(at, rev)) = self.samples.front() {
            if at > horizon {
                break;
            }
            target = Some(rev);
            self.samples.pop_front();
        }
        let target = target?.min(current - self.policy.min_retained);
        if target <= self.compacted {
            return None;
        }
        self.compacted = target;
        Some(target)
    }
}

/// Compacts `store` by `policy` until `shutdown` turns true.
pub async fn run(store: Arc<dyn Store>, policy: CompactionPolicy, mut shutdown: watch::Receiver<bool>) {
    let mut compactor = Compactor::new(policy);
    let mut ticker = tokio::time::interval(policy.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let current = match store.current_revision().await {
            Ok(rev) => rev,
            Err(err) => {
                tracing::warn!(%err, "compaction: cannot read the current revision");
                continue;
            }
        };
        let Some(target) = compactor.observe(Instant::now(), current) else {
            continue;
        };
        let started = Instant::now();
        match store.compact(target).await {
            Ok(()) => tracing::debug!(revision = target, elapsed = ?started.elapsed(), "compacted"),
            Err(err) => tracing::warn!(%err, revision = target, "compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(window_s: u64, min_retained: Revision) -> CompactionPolicy {
        CompactionPolicy {
            window: Duration::from_secs(window_s),
            interval: Duration::from_secs(60),
            min_retained,
        }
    }

    #[test]
    fn compacts_to_the_revision_one_window_ago() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut c = Compactor::new(policy(300, 10));
        // 100 writes/s, observed every 60 s.
        for minute in 0..5 {
            assert_eq!(c.observe(at(minute * 60), (minute * 6000) as Revision), None);
        }
        // At t=300 s, revision 0 (current at t=0) is one window old: nothing to drop yet.
        assert_eq!(c.observe(at(300), 30_000), None);
        assert_eq!(c.observe(at(360), 36_000), Some(6000));
        assert_eq!(c.observe(at(420), 42_000), Some(12_000));
    }

    #[test]
    fn keeps_min_retained_on_a_quiet_cluster() {
        let t0 = Instant::now();
        let mut c = Compactor::new(policy(60, 1000));
        c.observe(t0, 500);
        // A window later only 100 writes happened: nothing may be compacted.
        assert_eq!(c.observe(t0 + Duration::from_secs(60), 600), None);
        // Busy again: 600 was current a window ago and is 4,400 revisions old.
        assert_eq!(c.observe(t0 + Duration::from_secs(120), 5000), Some(600));
        assert_eq!(c.observe(t0 + Duration::from_secs(180), 9000), Some(5000));
    }

    #[test]
    fn never_goes_backwards() {
        let t0 = Instant::now();
        let mut c = Compactor::new(policy(60, 0));
        c.observe(t0, 100);
        assert_eq!(c.observe(t0 + Duration::from_secs(60), 200), Some(100));
        // Same revision again: nothing new to compact.
        assert_eq!(c.observe(t0 + Duration::from_secs(120), 200), Some(200));
        assert_eq!(c.observe(t0 + Duration::from_secs(180), 200), None);
    }
}
