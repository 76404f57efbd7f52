//! Restart back-off for crashing containers (upstream's `flowcontrol.Backoff`
//! as the kubelet uses it): the first restart is immediate, then a container
//! that keeps exiting waits 10 s, 20 s, 40 s … up to 5 minutes before each
//! restart (`CrashLoopBackOff`). An entry not bumped for twice the maximum
//! (10 minutes, e.g. a container that ran that long) starts again at 10 s.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct BackOff {
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

impl BackOff {
    /// While a container that finished at `finished` must still wait at
    /// `now`: the current delay and how much of it is left.
    pub fn waiting(&self, key: &str, finished: Timestamp, now: Timestamp) -> Option<(Duration, Duration)> {
        let entry = self.entries.get(key).filter(|e| !expired(e, now))?;
        let elapsed = now.duration_since(finished).unsigned_abs();
        (elapsed < entry.delay).then(|| (entry.delay, entry.delay - elapsed))
    }

    /// Records a restart at `now`: the next exit waits twice as long.
    pub fn next(&mut self, key: &str, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(entry) if !expired(entry, now) => (entry.delay * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }
}

fn expired(entry: &Entry, now: Timestamp) -> bool {
    now.duration_since(entry.last_update).unsigned_abs() > MAX * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn delays_double_up_to_five_minutes_and_reset_after_ten() {
        let mut b = BackOff::default();
        assert_eq!(b.waiting("c", t(0), t(0)), None, "the first restart is immediate");
        b.next("c", t(0));
        assert_eq!(
            b.waiting("c", t(1), t(3)),
            Some((Duration::from_secs(10), Duration::from_secs(8)))
        );
        assert_eq!(b.waiting("c", t(1), t(11)), None);
        b.next("c", t(11));
        assert_eq!(b.waiting("c", t(12), t(12)).map(|w| w.0), Some(Duration::from_secs(20)));
        for i in 0..10 {
            b.next("c", t(20 + i));
        }
        assert_eq!(b.waiting("c", t(30), t(30)).map(|w| w.0), Some(MAX));
        // Ten minutes without a restart: back to the start.
        assert_eq!(b.waiting("c", t(700), t(700)), None);
        b.next("c", t(700));
        assert_eq!(b.waiting("c", t(701), t(701)).map(|w| w.0), Some(INITIAL));
    }
}
