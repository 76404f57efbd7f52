//! Per-key exponential back-off, as upstream's `flowcontrol.Backoff` with
//! `IsInBackOffSinceUpdate`: after a failure at `t` with delay `d`, the key
//! is in back-off until `t + d`; each further failure doubles `d` up to the
//! maximum; an entry idle for twice the maximum starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Instant,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` failed less than its current delay ago.
    pub fn in_backoff(&self, key: &str, now: Instant) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .is_some_and(|e| now.saturating_duration_since(e.last_update) < e.delay)
    }

    /// Records a failure of `key` at `now`; returns the new delay.
    pub fn next(&self, key: &str, now: Instant) -> Duration {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Forget entries idle for long (also bounds the map's size).
        entries.retain(|_, e| now.saturating_duration_since(e.last_update) <= 2 * self.max);
        let delay = match entries.get(key) {
            Some(e) => (e.delay * 2).min(self.max),
            None => self.initial,
        };
        entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_10s_to_300s_and_expires() {
        let backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(!backoff.in_backoff("k", t0));
        let delays: Vec<u64> = (0..7).map(|_| backoff.next("k", t0).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert!(backoff.in_backoff("k", t0 + Duration::from_secs(299)));
        assert!(!backoff.in_backoff("k", t0 + Duration::from_secs(300)));
        assert!(!backoff.in_backoff("other", t0));
        // Idle for more than twice the maximum: starts over at 10 s.
        assert_eq!(
            backoff.next("k", t0 + Duration::from_secs(601)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn first_failure_backs_off_for_the_initial_delay() {
        let backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let t0 = Instant::now();
        backoff.next("k", t0);
        assert!(backoff.in_backoff("k", t0 + Duration::from_secs(9)));
        assert!(!backoff.in_backoff("k", t0 + Duration::from_secs(10)));
    }
}
