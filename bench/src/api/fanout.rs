//! Watch fan-out (the target: 1,000 concurrent watchers each see a write
//! within p99 ≤ 100 ms).
//!
//! `--watchers` watches on the ConfigMaps of `bench-fanout`, spread over
//! `--watch-clients` kube-rs clients and opened 32 at a time, all from the
//! revision of one ConfigMap `target`. kube-rs speaks HTTP/1.1, so every
//! watch is its own TLS connection — on both sides, hence the open-file
//! limit check. Once all are open, one writer patches `target`
//! `--fanout-writes` times, `--fanout-interval-ms` apart, noting when each
//! patch was acknowledged and the revision it got. Every watcher notes when
//! each `MODIFIED` event arrives. Reported, over every (watcher, write)
//! pair: the delay from acknowledgement to arrival (0 when the event beat
//! the ack; the target's number), the delay from the start of the patch,
//! and per write the delay of the slowest watcher.
//!
//! Arrival is stamped by the watcher task after kube-rs has decoded the
//! event, on the benchmark's own runtime: with 1,000 watchers on two cores
//! the client's TLS and JSON work per write is part of what is measured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Ctx, NS_FANOUT, TARGET_FANOUT_P99_MS};
use crate::stats::{self, Latency};

/// How long watchers may lag behind the last write before the rest counts as missing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Watches being opened at once.
const OPENING: usize = 32;
const TARGET: &str = "target";

#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub watchers: usize,
    pub clients: usize,
    /// Time to open every watch.
    pub open_secs: f64,
    pub writes: usize,
    pub interval_ms: f64,
    /// The patches themselves, request to acknowledgement.
    pub write_latency: Latency,
    /// Events received, over all watchers (expected: watchers × writes).
    pub events: u64,
    pub missing: u64,
    /// Watch streams that failed or ended early.
    pub broken_watches: u64,
    /// Delay from a write's acknowledgement to a watcher receiving it.
    #[serde(flatten)]
    pub delivery: Latency,
    pub delivered_before_ack: u64,
    /// Delay from the start of the write to a watcher receiving it.
    pub end_to_end: Latency,
    /// Per write: the delay (after ack) of the last watcher to receive it.
    pub slowest_watcher: Latency,
    pub target_p99_ms: f64,
    /// Delivery p99 ≤ target and nothing missing.
    pub meets_target: bool,
}

/// What one watcher saw: (revision, received at) per event, and whether its stream broke.
type WatcherLog = (Vec<(u64, u64)>, bool);

fn now_nanos(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn revision(cm: &ConfigMap) -> Option<u64> {
    cm.metadata.resource_version.as_deref()?.parse().ok()
}

pub async fn run(ctx: Arc<Ctx>, tag: &str) -> Result<Fanout> {
    let s = &ctx.s;
    super::ensure_namespace(&ctx.client, NS_FANOUT).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_FANOUT);
    let created = api
        .create(&PostParams::default(), &super::config_map(TARGET, "0"))
        .await
        .context("creating the fan-out ConfigMap")?;
    let from = created.metadata.resource_version.unwrap_or_default();

    let mut clients = Vec::with_capacity(s.watch_clients);
    for _ in 0..s.watch_clients {
        clients.push(super::server::client(&ctx.kubeconfig).await?);
    }
    eprintln!(
        "{tag} opening {} watches over {} clients ...",
        s.watchers, s.watch_clients
    );
    let opening = Instant::now();
    let params = WatchParams::default().timeout(290).disable_bookmarks();
    let streams: Vec<_> = futures::stream::iter(0..s.watchers)
        .map(|i| {
            let api: Api<ConfigMap> = Api::namespaced(clients[i % clients.len()].clone(), NS_FANOUT);
            let (params, from) = (params.clone(), from.clone());
            async move {
                let stream = api
                    .watch(&params, &from)
                    .await
                    .with_context(|| format!("opening watch {i}"))?;
                anyhow::Ok(stream.boxed())
            }
        })
        .buffer_unordered(OPENING)
        .try_collect()
        .await?;
    let open_secs = stats::round3(opening.elapsed().as_secs_f64());
    eprintln!("{tag} {} watches open in {open_secs:.1} s; writing ...", streams.len());

    let epoch = ctx.epoch;
    let writes = s.fanout_writes;
    let (done_tx, done_rx) = watch::channel(false);
    let mut watchers = JoinSet::new();
    for mut stream in streams {
        let mut done = done_rx.clone();
        watchers.spawn(async move {
            let mut seen = Vec::with_capacity(writes);
            let mut give_up = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
            let mut writing = true;
            while seen.len() < writes {
                tokio::select! {
                    event = stream.try_next() => {
                        let received = now_nanos(epoch);
                        match event {
                            Ok(Some(WatchEvent::Modified(cm))) if cm.metadata.name.as_deref() == Some(TARGET) => {
                                if let Some(rv) = revision(&cm) {
                                    seen.push((rv, received));
                                }
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => return (seen, true),
                        }
                    }
                    changed = done.changed(), if writing => {
                        writing = false;
                        if changed.is_err() {
                            return (seen, true);
                        }
                        give_up = tokio::time::Instant::now() + DRAIN_TIMEOUT;
                    }
                    () = tokio::time::sleep_until(give_up) => break,
                }
            }
            (seen, false)
        });
    }

    let mut acks: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut write_hist = stats::new_histogram();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(s.fanout_interval_ms / 1000.0));
    let write_result: Result<()> = async {
        for k in 0..writes {
            ticker.tick().await;
            let patch = serde_json::json!({"data": {"seq": k.to_string()}});
            let began = Instant::now();
            let sent = now_nanos(epoch);
            let updated = api
                .patch(TARGET, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("fan-out write {k}"))?;
            let acked = now_nanos(epoch);
            stats::record(&mut write_hist, began.elapsed());
            let rv = revision(&updated).context("the patched ConfigMap has no resourceVersion")?;
            acks.insert(rv, (sent, acked));
        }
        Ok(())
    }
    .await;
    done_tx.send_replace(true);
    let mut logs: Vec<WatcherLog> = Vec::with_capacity(s.watchers);
    while let Some(done) = watchers.join_next().await {
        logs.push(done.map_err(stats::join_error)?);
    }
    write_result?;

    let mut delivery = stats::new_histogram();
    let mut end_to_end = stats::new_histogram();
    let mut slowest: HashMap<u64, u64> = HashMap::new();
    let (mut events, mut before_ack, mut broken) = (0u64, 0u64, 0u64);
    for (seen, was_broken) in &logs {
        broken += u64::from(*was_broken);
        for (rv, received) in seen {
            let Some(&(sent, acked)) = acks.get(rv) else {
                bail!("a watcher received revision {rv}, which no fan-out write produced");
            };
            events += 1;
            if *received < acked {
                before_ack += 1;
            }
            let after_ack = received.saturating_sub(acked) / 1000;
            delivery.saturating_record(after_ack.max(1));
            end_to_end.saturating_record((received.saturating_sub(sent) / 1000).max(1));
            let worst = slowest.entry(*rv).or_default();
            *worst = (*worst).max(after_ack);
        }
    }
    ensure!(events > 0, "no watcher received any of the {writes} writes");
    let mut slowest_hist = stats::new_histogram();
    for worst in slowest.values() {
        slowest_hist.saturating_record((*worst).max(1));
    }
    let expected = (s.watchers * writes) as u64;
    let delivery = Latency::of(&delivery);
    let missing = expected.saturating_sub(events);
    Ok(Fanout {
        watchers: s.watchers,
        clients: s.watch_clients,
        open_secs,
        writes,
        interval_ms: s.fanout_interval_ms,
        write_latency: Latency::of(&write_hist),
        events,
        missing,
        broken_watches: broken,
        delivery,
        delivered_before_ack: before_ack,
        end_to_end: Latency::of(&end_to_end),
        slowest_watcher: Latency::of(&slowest_hist),
        target_p99_ms: TARGET_FANOUT_P99_MS,
        meets_target: missing == 0 && delivery.p99_ms <= TARGET_FANOUT_P99_MS,
    })
}
