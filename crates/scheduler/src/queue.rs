//! The scheduling queue (upstream `internal/queue.PriorityQueue`): pending
//! pods wait in one of three sub-queues.
//!
//! * **active** — ready now, highest priority first, then oldest;
//! * **backoff** — failed recently, waiting `1s × 2^(attempts−1)` (max 10s);
//! * **unschedulable** — failed and nothing has changed since; they move
//!   back when a [`ClusterEvent`] that could help the plugins that rejected
//!   them arrives, or after five minutes regardless.
//!
//! A pod popped for scheduling is *in flight* until [`SchedulingQueue::done`]
//! or [`SchedulingQueue::add_unschedulable`]; if a relevant event arrives
//! meanwhile it goes to backoff instead of unschedulable, so the event is not lost.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::types::PodInfo;

/// Upstream `podMaxInUnschedulablePodsDuration`.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A change in the cluster that may make unschedulable pods schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate,
    AssignedPodAdd,
    AssignedPodUpdate,
    AssignedPodDelete,
}

impl ClusterEvent {
    /// Whether this event can help a pod rejected by `plugin` (a coarse form of upstream's queueing hints).
    fn may_help(self, plugin: &str) -> bool {
        match self {
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate => true,
            ClusterEvent::AssignedPodDelete => {
                matches!(
                    plugin,
                    "NodeResourcesFit" | "NodePorts" | "InterPodAffinity" | "PodTopologySpread"
                )
            }
            ClusterEvent::AssignedPodAdd | ClusterEvent::AssignedPodUpdate => {
                matches!(plugin, "InterPodAffinity" | "PodTopologySpread")
            }
        }
    }
}

/// A pending pod with its scheduling history.
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    pub pod: Arc<PodInfo>,
    /// When the pod entered its current sub-queue.
    pub timestamp: Instant,
    pub attempts: u32,
    pub initial_attempt: Option<Instant>,
    /// The plugins that rejected it last time; empty means any event may help.
    pub unschedulable_plugins: HashSet<&'static str>,
    /// The queue's cycle counter when it was popped.
    pub cycle: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
}

struct Entry {
    info: QueuedPodInfo,
    place: Place,
    seq: u64,
}

/// Heap order: priority, then age.
struct ActiveKey {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    key: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.timestamp.cmp(&self.timestamp))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}
impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for ActiveKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ActiveKey {}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// Heaps hold (key, seq); entries whose seq or place changed are stale and skipped.
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    in_flight: HashMap<String, QueuedPodInfo>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        SchedulingQueue {
            inner: Mutex::default(),
            notify: Notify::new(),
            initial_backoff,
            max_backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a new pending pod, or updates one already queued. An update to an
    /// unschedulable pod may have fixed it, so it moves on.
    pub fn add(&self, pod: Arc<PodInfo>) {
        let mut inner = self.lock();
        if let Some(flying) = inner.in_flight.get_mut(&pod.key) {
            flying.pod = pod;
            return;
        }
        let now = Instant::now();
        let info = match inner.pods.remove(&pod.key) {
            Some(Entry { mut info, place, seq }) => {
                let updated = is_pod_updated(&info.pod, &pod);
                info.pod = pod;
                if place == Place::Active || !updated {
                    // Status-only changes (our own condition patch) do not make a pod schedulable.
                    let key = info.pod.key.clone();
                    inner.pods.insert(key, Entry { info, place, seq });
                    return;
                }
                info
            }
            None => QueuedPodInfo {
                pod,
                timestamp: now,
                attempts: 0,
                initial_attempt: None,
                unschedulable_plugins: HashSet::new(),
                cycle: 0,
            },
        };
        let place = self.active_or_backoff(&info, now);
        let expiry = self.backoff_expiry(&info);
        inner.put(info, place, Some(expiry));
        drop(inner);
        self.notify.notify_one();
    }

    /// Forgets a pod that was deleted or bound.
    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        inner.pods.remove(key);
        inner.in_flight.remove(key);
    }

    /// Waits for the next pod to schedule; `None` once the queue is closed.
    pub async fn pop(&self) -> Option<QueuedPodInfo> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.try_pop() {
                return result;
            }
            notified.await;
        }
    }

    /// `Some(None)` when closed, `None` when empty.
    fn try_pop(&self) -> Option<Option<QueuedPodInfo>> {
        let mut inner = self.lock();
        if inner.closed {
            return Some(None);
        }
        while let Some(top) = inner.active.pop() {
            let live = inner
                .pods
                .get(&top.key)
                .is_some_and(|e| e.seq == top.seq && e.place == Place::Active);
            if !live {
                continue;
            }
            let mut info = inner.pods.remove(&top.key).expect("live entry").info;
            inner.scheduling_cycle += 1;
            info.attempts += 1;
            info.cycle = inner.scheduling_cycle;
            info.initial_attempt.get_or_insert_with(Instant::now);
            inner.in_flight.insert(top.key, info.clone());
            return Some(Some(info));
        }
        None
    }

    /// The pod was scheduled (or given up on): it leaves the queue.
    pub fn done(&self, key: &str) {
        self.lock().in_flight.remove(key);
    }

    /// Returns a pod that did not fit. It waits in unschedulable unless an event
    /// arrived while it was in flight, in which case it only backs off.
    pub fn add_unschedulable(&self, mut info: QueuedPodInfo, plugins: HashSet<&'static str>) {
        let mut inner = self.lock();
        let Some(latest) = inner.in_flight.remove(&info.pod.key) else {
            return; // deleted or bound meanwhile
        };
        info.pod = latest.pod;
        info.unschedulable_plugins = plugins;
        info.timestamp = Instant::now();
        let place = if inner.move_request_cycle >= info.cycle {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        let expiry = self.backoff_expiry(&info);
        inner.put(info, place, Some(expiry));
    }

    /// Moves unschedulable pods that `event` may help to active or backoff.
    pub fn move_all_to_active_or_backoff(&self, event: ClusterEvent) {
        let mut inner = self.lock();
        inner.move_request_cycle = inner.scheduling_cycle;
        let keys: Vec<String> = inner
            .pods
            .iter()
            .filter(|(_, e)| e.place == Place::Unschedulable)
            .filter(|(_, e)| {
                e.info.unschedulable_plugins.is_empty()
                    || e.info.unschedulable_plugins.iter().any(|p| event.may_help(p))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let moved = self.requeue(&mut inner, keys);
        drop(inner);
        if moved {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }

    fn requeue(&self, inner: &mut Inner, keys: Vec<String>) -> bool {
        let now = Instant::now();
        let mut any_active = false;
        for key in keys {
            let Some(Entry { info, .. }) = inner.pods.remove(&key) else {
                continue;
            };
            let place = self.active_or_backoff(&info, now);
            any_active |= place == Place::Active;
            let expiry = self.backoff_expiry(&info);
            inner.put(info, place, Some(expiry));
        }
        any_active
    }

    /// Moves pods whose backoff ended to active, and pods unschedulable for too long back too.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut woke = false;
        while let Some(Reverse((expiry, seq, key))) = inner.backoff.peek().cloned() {
            if expiry > now {
                break;
            }
            inner.backoff.pop();
            let live = inner
                .pods
                .get(&key)
                .is_some_and(|e| e.seq == seq && e.place == Place::Backoff);
            if live {
                let info = inner.pods.remove(&key).expect("live entry").info;
                inner.put(info, Place::Active, None);
                woke = true;
            }
        }
        let stale: Vec<String> = inner
            .pods
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable && now.duration_since(e.info.timestamp) > MAX_IN_UNSCHEDULABLE
            })
            .map(|(k, _)| k.clone())
            .collect();
        woke |= self.requeue(&mut inner, stale);
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// Wakes every `pop` with `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Upstream `calculateBackoffDuration`: doubling per attempt up to the maximum.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d > self.max_backoff {
                return self.max_backoff;
            }
        }
        d
    }

    fn backoff_expiry(&self, info: &QueuedPodInfo) -> Instant {
        info.timestamp + self.backoff_duration(info.attempts)
    }

    fn active_or_backoff(&self, info: &QueuedPodInfo, now: Instant) -> Place {
        if info.attempts > 0 && self.backoff_expiry(info) > now {
            Place::Backoff
        } else {
            Place::Active
        }
    }

    /// Sizes of the active, backoff and unschedulable sub-queues.
    pub fn lens(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let count = |p: Place| inner.pods.values().filter(|e| e.place == p).count();
        (count(Place::Active), count(Place::Backoff), count(Place::Unschedulable))
    }
}

/// Upstream `isPodUpdated`: did anything but status and metadata bookkeeping change?
fn is_pod_updated(old: &PodInfo, new: &PodInfo) -> bool {
    let (o, n) = (&old.pod, &new.pod);
    o.spec != n.spec || o.metadata.labels != n.metadata.labels || o.metadata.annotations != n.metadata.annotations
}

impl Inner {
    fn put(&mut self, info: QueuedPodInfo, place: Place, backoff_expiry: Option<Instant>) {
        self.seq += 1;
        let seq = self.seq;
        let key = info.pod.key.clone();
        match place {
            Place::Active => self.active.push(ActiveKey {
                priority: info.pod.priority,
                timestamp: info.timestamp,
                seq,
                key: key.clone(),
            }),
            Place::Backoff => {
                let expiry = backoff_expiry.unwrap_or_else(Instant::now);
                self.backoff.push(Reverse((expiry, seq, key.clone())));
            }
            Place::Unschedulable => {}
        }
        self.pods.insert(key, Entry { info, place, seq });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    fn info(name: &str, priority: i32) -> Arc<PodInfo> {
        let mut p = pod(name, &[]);
        p.spec.as_mut().unwrap().priority = Some(priority);
        Arc::new(pod_info(p))
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_millis(50), Duration::from_millis(200))
    }

    #[tokio::test]
    async fn pops_by_priority_then_age() {
        let q = queue();
        q.add(info("low", 0));
        q.add(info("high", 100));
        q.add(info("low2", 0));
        let order: Vec<String> = [q.pop().await, q.pop().await, q.pop().await]
            .into_iter()
            .map(|p| p.unwrap().pod.name.clone())
            .collect();
        assert_eq!(order, vec!["high", "low", "low2"]);
    }

    #[tokio::test]
    async fn unschedulable_pods_wait_for_a_relevant_event() {
        let q = queue();
        q.add(info("p", 0));
        let popped = q.pop().await.unwrap();
        q.add_unschedulable(popped, HashSet::from(["NodeResourcesFit"]));
        assert_eq!(q.lens(), (0, 0, 1));
        q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodAdd);
        assert_eq!(q.lens(), (0, 0, 1), "a new pod does not free resources");
        q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
        assert_eq!(q.lens(), (0, 1, 0), "still backing off");
        tokio::time::sleep(Duration::from_millis(60)).await;
        q.flush();
        assert_eq!(q.lens(), (1, 0, 0));
        assert_eq!(q.pop().await.unwrap().attempts, 2);
    }

    #[tokio::test]
    async fn events_during_a_cycle_are_not_lost() {
        let q = queue();
        q.add(info("p", 0));
        let popped = q.pop().await.unwrap();
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
        q.add_unschedulable(popped, HashSet::from(["TaintToleration"]));
        assert_eq!(q.lens(), (0, 1, 0));
    }

    #[tokio::test]
    async fn status_updates_do_not_requeue() {
        let q = queue();
        q.add(info("p", 0));
        let popped = q.pop().await.unwrap();
        q.add_unschedulable(popped, HashSet::from(["NodeResourcesFit"]));
        let mut p = pod("p", &[]);
        p.spec.as_mut().unwrap().priority = Some(0);
        p.status = Some(Default::default());
        q.add(Arc::new(pod_info(p.clone())));
        assert_eq!(q.lens(), (0, 0, 1));
        p.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        q.add(Arc::new(pod_info(p)));
        assert_eq!(q.lens(), (0, 1, 0));
    }

    #[tokio::test]
    async fn deleted_in_flight_pods_are_dropped() {
        let q = queue();
        q.add(info("p", 0));
        let popped = q.pop().await.unwrap();
        q.delete("default/p");
        q.add_unschedulable(popped, HashSet::new());
        assert_eq!(q.lens(), (0, 0, 0));
    }

    #[tokio::test]
    async fn pop_waits_and_close_ends_it() {
        let q = Arc::new(queue());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await.map(|p| p.pod.name.clone()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.add(info("late", 0));
        assert_eq!(waiter.await.unwrap().as_deref(), Some("late"));
        q.close();
        assert!(q.pop().await.is_none());
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let q = SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10));
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }
}
