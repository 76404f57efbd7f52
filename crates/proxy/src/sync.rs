//! The proxy loop: watches Services and EndpointSlices into a [`State`],
//! and after each burst of changes (at most one sync per
//! `min_sync_period`, as upstream's `--iptables-min-sync-period`) programs
//! the difference to the last applied [`Ruleset`]. A failed diff falls back
//! to rewriting the whole table. As upstream kube-proxy, nothing is
//! programmed before both initial lists are in: a sync with Services but no
//! EndpointSlices yet would REJECT every Service until the next one.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};

use crate::model::State;
use crate::nft;
use crate::rules::{NodeInfo, Ruleset};

enum Change {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
}

/// Runs until the watches end; the caller cancels it on shutdown.
pub async fn run(client: Client, table: String, node: NodeInfo, min_sync_period: Duration) {
    let services = watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Service(Box::new(e))));
    let slices = watcher::watcher(Api::<EndpointSlice>::all(client), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Slice(Box::new(e))));
    let mut changes = stream::select(services.boxed(), slices.boxed());
    let (mut state, mut relist) = (State::default(), State::default());
    let mut applied = Ruleset::default();
    let mut dirty = false;
    let mut listed = Listed::default();
    let mut last_sync = Instant::now() - min_sync_period;
    loop {
        let wait = if dirty {
            min_sync_period.saturating_sub(last_sync.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            change = changes.next() => match change {
                Some(Ok(change)) => {
                    listed.observe(&change);
                    dirty |= apply_change(&mut state, &mut relist, change);
                }
                Some(Err(err)) => tracing::warn!(%err, "proxy: watch error, retrying"),
                None => return,
            },
            () = tokio::time::sleep(wait), if dirty && listed.both() => {
                applied = sync(&table, &node, &state, &applied);
                last_sync = Instant::now();
                dirty = false;
            }
        }
    }
}

/// Which initial lists have completed.
#[derive(Debug, Default)]
struct Listed {
    services: bool,
    slices: bool,
}

impl Listed {
    fn observe(&mut self, change: &Change) {
        match change {
            Change::Service(event) if matches!(**event, Event::InitDone) => self.services = true,
            Change::Slice(event) if matches!(**event, Event::InitDone) => self.slices = true,
            _ => {}
        }
    }

    fn both(&self) -> bool {
        self.services && self.slices
    }
}

/// Folds one watch event into the state; true when the state changed.
fn apply_change(state: &mut State, relist: &mut State, change: Change) -> bool {
    fn key<K: kube::Resource>(object: &K) -> (String, String) {
        (object.namespace().unwrap_or_default(), object.name_any())
    }
    match change {
        Change::Service(event) => match *event {
            Event::Init => relist.services.clear(),
            Event::InitApply(s) => {
                relist.services.insert(key(&s), s);
                return false;
            }
            Event::InitDone => state.services = std::mem::take(&mut relist.services),
            Event::Apply(s) => {
                state.services.insert(key(&s), s);
            }
            Event::Delete(s) => {
                state.services.remove(&key(&s));
            }
        },
        Change::Slice(event) => match *event {
            Event::Init => relist.slices.clear(),
            Event::InitApply(s) => {
                relist.slices.insert(key(&s), s);
                return false;
            }
            Event::InitDone => state.slices = std::mem::take(&mut relist.slices),
            Event::Apply(s) => {
                state.slices.insert(key(&s), s);
            }
            Event::Delete(s) => {
                state.slices.remove(&key(&s));
            }
        },
    }
    true
}

/// Programs `state`; returns what is now in the kernel. The debug line
/// carries the sync's size and where its time went (building the rules in
/// memory vs. the kernel taking the nft transaction), for benchmarks.
fn sync(table: &str, node: &NodeInfo, state: &State, applied: &Ruleset) -> Ruleset {
    let started = Instant::now();
    let wanted = Ruleset::build(table, node, &state.service_ports());
    let script = wanted.diff(applied);
    let built = started.elapsed();
    let result = nft::apply(&script).or_else(|err| {
        tracing::warn!(%err, "proxy: incremental update failed, rewriting the table");
        nft::apply(&wanted.script())
    });
    match result {
        Ok(()) => {
            tracing::debug!(
                service_ips = wanted.service_ips.len(),
                chains = wanted.chains.len(),
                script_bytes = script.len(),
                build_ms = millis(built),
                apply_ms = millis(started.elapsed() - built),
                "proxy rules synced"
            );
            wanted
        }
        Err(err) => {
            tracing::error!(%err, "proxy: programming the rules failed; retrying on the next change");
            Ruleset::default()
        }
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_wait_for_both_initial_lists() {
        let mut listed = Listed::default();
        listed.observe(&Change::Service(Box::new(Event::InitDone)));
        listed.observe(&Change::Slice(Box::new(Event::Init)));
        assert!(!listed.both(), "services listed, slices not yet");
        listed.observe(&Change::Slice(Box::new(Event::InitDone)));
        assert!(listed.both());
    }
}
