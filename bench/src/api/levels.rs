//! The closed-loop phases, run once per concurrency level `C` against one
//! server: every phase keeps `C` requests in flight (each worker sends its
//! next request when the previous one is answered) for `--duration-secs`.
//!
//! * **create** — `POST` of fresh ConfigMaps (`--value-bytes` of data, about
//!   500 B) in `bench-create`: the API's write path end to end (TLS, JSON,
//!   admission, defaulting, the store's durable create, the response).
//! * **raw store create** and **raw engine put** — the same number of
//!   writers, at the same `C`, straight on what is underneath: `create`
//!   through the [`Store`] trait on a fresh store of the same backend (a new
//!   SQLite file next to the server's, or the same etcd under
//!   `/rawbench/`), and the engine itself without Capstan (plain rusqlite
//!   with the same durability, plain etcd puts; see [`crate::raw`]). Values
//!   are as large as the stored ConfigMap. The three run interleaved in
//!   `--rounds` slices (engine, store, API, engine, ...) so that all see the
//!   same machine. `create_vs_store` = API creates/s ÷ raw store creates/s
//!   is the ratio (target ≥ 0.5); `create_vs_engine` compares with
//!   the engine, as `shared/docs/targets.md` words it.
//! * **get** — `GET` of a random ConfigMap of `bench-list`.
//! * **list** — `LIST` of `bench-list` (`--list-objects` ConfigMaps, 500
//!   by default) with `limit` equal to that count: one consistent page,
//!   served from the watch cache once it has caught up with the store.
//! * **watch delivery** — one watch on a fresh namespace while `C` writers
//!   create ConfigMaps in it. Writers note when each create was
//!   acknowledged; the watcher notes when each `ADDED` event arrived. The
//!   headline delay is arrival − acknowledgement (0 if the event beat the
//!   ack): how stale a watcher is behind a writer. End to end is measured
//!   from the start of the create.
//!
//! CPU use of the server, etcd and the benchmark process is recorded per
//! phase: on two cores the client's TLS and JSON work competes with the
//! server, and the numbers say which side was busy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use capstan_store::Store;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::server::{CpuTotals, CpuUsage, Procs};
use super::{Ctx, Measured, NS_CREATE, NS_LIST, TARGET_WRITE_RATIO, list_name};
use crate::raw::RawEngine;
use crate::stats::{self, Latency, Slice, Throughput};

/// How long the watcher may lag behind the last write before the phase
/// counts the rest as missing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API's writes are compared with, opened once per backend.
pub struct Raw {
    /// A fresh Capstan store of the same backend.
    pub store: Arc<dyn Store>,
    /// The engine underneath, without Capstan.
    pub engine: Option<RawEngine>,
    /// Slices run so far: keeps raw engine keys fresh across levels.
    pub slices: usize,
}

/// One concurrency level on one backend. A phase is `null` when it failed;
/// `errors` says why.
#[derive(Debug, Serialize)]
pub struct LevelResult {
    pub concurrency: usize,
    pub create: Option<Measured<Throughput>>,
    pub raw_store_create: Option<Throughput>,
    pub raw_engine_put: Option<Throughput>,
    /// API creates/s ÷ raw store creates/s (the ratio).
    pub create_vs_store: Option<f64>,
    /// `create_vs_store` ≥ 0.5.
    pub meets_target: Option<bool>,
    /// API creates/s ÷ raw engine puts/s (the ratio as targets.md words it).
    pub create_vs_engine: Option<f64>,
    pub meets_target_vs_engine: Option<bool>,
    pub get: Option<Measured<Throughput>>,
    pub list: Option<Measured<ListStats>>,
    pub watch: Option<Measured<WatchDelivery>>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListStats {
    /// `ops_per_sec` here is lists per second.
    #[serde(flatten)]
    pub lists: Throughput,
    pub objects_per_list: usize,
    pub objects_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchDelivery {
    /// The creates that fed the watcher.
    pub writes: Throughput,
    /// `ADDED` events received for those creates.
    pub events: u64,
    /// Delay from a create's acknowledgement to the watcher receiving it.
    #[serde(flatten)]
    pub delivery: Latency,
    /// Events that arrived before their writer saw the acknowledgement.
    pub delivered_before_ack: u64,
    /// Delay from the start of the create to the watcher receiving it.
    pub end_to_end: Latency,
    /// Creates the watcher never saw (within the drain timeout).
    pub missing: u64,
}

/// Every closed-loop phase at one level.
pub async fn run_level(ctx: &Arc<Ctx>, raw: &mut Raw, concurrency: usize, tag: &str) -> LevelResult {
    let mut r = LevelResult {
        concurrency,
        create: None,
        raw_store_create: None,
        raw_engine_put: None,
        create_vs_store: None,
        meets_target: None,
        create_vs_engine: None,
        meets_target_vs_engine: None,
        get: None,
        list: None,
        watch: None,
        errors: Vec::new(),
    };

    eprintln!(
        "{tag} create vs raw store and raw engine, {} interleaved rounds ...",
        ctx.s.rounds
    );
    let slice_len = ctx.s.duration().div_f64(ctx.s.rounds as f64);
    let (c, bytes) = (concurrency, ctx.stored_bytes);
    let mut engine_total = raw.engine.as_ref().map(|_| Ok(Slice::empty()));
    let mut store_total = Ok(Slice::empty());
    let mut api_total = Ok(Slice::empty());
    let mut api_cpu = CpuTotals::default();
    for round in 0..ctx.s.rounds {
        let slice = raw.slices;
        raw.slices += 1;
        if let (Some(engine), Some(Ok(_))) = (&raw.engine, &engine_total) {
            let part = stats::guarded(engine.clone().put_slice(slice, c, slice_len, bytes)).await;
            absorb(engine_total.as_mut(), part);
        }
        if store_total.is_ok() {
            let part = stats::guarded(store_slice(Arc::clone(&raw.store), slice, c, slice_len, bytes)).await;
            absorb(Some(&mut store_total), part);
        }
        if api_total.is_ok() {
            let start = ctx.procs.sample();
            let part = stats::guarded(api_create_slice(Arc::clone(ctx), round, c, slice_len)).await;
            api_cpu.add(CpuTotals::since(&ctx.procs, start));
            absorb(Some(&mut api_total), part);
        }
    }
    r.raw_engine_put =
        engine_total.and_then(|t| super::phase(tag, "raw_engine_put", &mut r.errors, t.map(|t| t.throughput())));
    r.raw_store_create = super::phase(
        tag,
        "raw_store_create",
        &mut r.errors,
        store_total.map(|t| t.throughput()),
    );
    r.create = super::phase(
        tag,
        "create",
        &mut r.errors,
        api_total.map(|t| Measured {
            result: t.throughput(),
            cpu: api_cpu.usage(),
        }),
    );
    if let Some(create) = &r.create {
        let ratio = |raw: Option<Throughput>| {
            raw.filter(|t| t.ops_per_sec > 0.0)
                .map(|t| stats::round3(create.result.ops_per_sec / t.ops_per_sec))
        };
        r.create_vs_store = ratio(r.raw_store_create);
        r.meets_target = r.create_vs_store.map(|x| x >= TARGET_WRITE_RATIO);
        r.create_vs_engine = ratio(r.raw_engine_put);
        r.meets_target_vs_engine = r.create_vs_engine.map(|x| x >= TARGET_WRITE_RATIO);
        eprintln!(
            "{tag} create vs raw store: {}, vs raw engine: {} (target ≥ {TARGET_WRITE_RATIO})",
            r.create_vs_store.map_or("-".into(), |x| format!("{x:.2}")),
            r.create_vs_engine.map_or("-".into(), |x| format!("{x:.2}")),
        );
    }

    eprintln!("{tag} get ...");
    let get = measured(&ctx.procs, stats::guarded(get_phase(Arc::clone(ctx), c))).await;
    r.get = super::phase(tag, "get", &mut r.errors, get);
    eprintln!("{tag} list ...");
    let list = measured(&ctx.procs, stats::guarded(list_phase(Arc::clone(ctx), c))).await;
    r.list = super::phase(tag, "list", &mut r.errors, list);
    eprintln!("{tag} watch delivery ...");
    let watched = measured(&ctx.procs, stats::guarded(watch_phase(Arc::clone(ctx), c))).await;
    r.watch = super::phase(tag, "watch", &mut r.errors, watched);
    r
}

/// Runs a phase and notes the CPU the processes spent on it.
pub async fn measured<T>(procs: &Procs, fut: impl Future<Output = Result<T>>) -> Result<Measured<T>> {
    let start = procs.sample();
    let result = fut.await?;
    Ok(Measured {
        result,
        cpu: CpuTotals::since(procs, start).usage(),
    })
}

/// Adds one slice to an interleaved phase's total; the first failure sticks.
fn absorb(total: Option<&mut Result<Slice>>, part: Result<Slice>) {
    if let Some(total) = total
        && let Ok(sum) = total
        && let Err(err) = part.and_then(|part| sum.absorb(part))
    {
        *total = Err(err);
    }
}

/// One slice of API creates.
async fn api_create_slice(ctx: Arc<Ctx>, round: usize, concurrency: usize, len: Duration) -> Result<Slice> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_CREATE);
    let payloads: Arc<Vec<String>> = Arc::new((0..concurrency).map(|w| ctx.payload(w as u64)).collect());
    stats::run_slice(concurrency, len, move |worker, i| {
        let api = api.clone();
        let name = format!("c{concurrency:02}-r{round:02}-w{worker:03}-{i:08}");
        let object = super::config_map(&name, &payloads[worker]);
        async move {
            api.create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating ConfigMap {name}"))?;
            Ok(())
        }
    })
    .await
}

/// One slice of raw store creates of fresh keys.
async fn store_slice(
    store: Arc<dyn Store>,
    slice: usize,
    concurrency: usize,
    len: Duration,
    value_bytes: usize,
) -> Result<Slice> {
    let values = stats::worker_values(concurrency, value_bytes);
    stats::run_slice(concurrency, len, move |worker, i| {
        let store = Arc::clone(&store);
        let value = values[worker].clone();
        async move {
            store
                .create(&format!("/rawbench/store/{slice:03}/{worker:03}/{i:010}"), value)
                .await?;
            Ok(())
        }
    })
    .await
}

async fn get_phase(ctx: Arc<Ctx>, concurrency: usize) -> Result<Throughput> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_LIST);
    let objects = ctx.s.list_objects as u64;
    stats::run_timed(concurrency, ctx.s.duration(), move |worker, i| {
        let api = api.clone();
        let name = list_name(stats::mix64(((worker as u64) << 40) ^ i) % objects);
        async move {
            api.get(&name)
                .await
                .with_context(|| format!("getting ConfigMap {name}"))?;
            Ok(())
        }
    })
    .await
}

async fn list_phase(ctx: Arc<Ctx>, concurrency: usize) -> Result<ListStats> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_LIST);
    let expected = ctx.s.list_objects;
    let params = ListParams::default().limit(u32::try_from(expected).unwrap_or(u32::MAX));
    let lists = stats::run_timed(concurrency, ctx.s.duration(), move |_, _| {
        let api = api.clone();
        let params = params.clone();
        async move {
            let list = api.list(&params).await.context("listing bench-list")?;
            ensure!(
                list.items.len() == expected,
                "list returned {} ConfigMaps, expected {expected}",
                list.items.len()
            );
            Ok(())
        }
    })
    .await?;
    Ok(ListStats {
        lists,
        objects_per_list: expected,
        objects_per_sec: (lists.ops_per_sec * expected as f64).round(),
    })
}

/// Nanoseconds from `epoch` to now.
fn now_nanos(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

async fn watch_phase(ctx: Arc<Ctx>, concurrency: usize) -> Result<WatchDelivery> {
    let namespace = format!("bench-watch-c{concurrency}");
    super::ensure_namespace(&ctx.client, &namespace).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = api
        .list(&ListParams::default().limit(1))
        .await
        .context("listing the watch namespace")?;
    let from = listed.metadata.resource_version.unwrap_or_default();
    let stream = api
        .watch(&WatchParams::default().timeout(290).disable_bookmarks(), &from)
        .await
        .context("starting the watch")?
        .boxed();
    let (expect_tx, expect_rx) = watch::channel(None::<u64>);
    let epoch = ctx.epoch;
    let watcher = tokio::spawn(async move {
        let mut stream = stream;
        let mut expected = expect_rx;
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut target = None;
        let mut give_up = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        loop {
            if target.is_some_and(|n| seen.len() as u64 >= n) {
                return Ok(seen);
            }
            tokio::select! {
                event = stream.try_next() => {
                    let received = now_nanos(epoch);
                    match event.context("watch stream failed")? {
                        Some(WatchEvent::Added(cm)) => {
                            if let Some(name) = cm.metadata.name {
                                seen.entry(name).or_insert(received);
                            }
                        }
                        Some(WatchEvent::Error(status)) => bail!("watch error event: {status:?}"),
                        Some(_) => {}
                        None => bail!("watch ended after {} events", seen.len()),
                    }
                }
                changed = expected.changed(), if target.is_none() => {
                    changed.context("watch phase abandoned")?;
                    target = *expected.borrow_and_update();
                    give_up = tokio::time::Instant::now() + DRAIN_TIMEOUT;
                }
                () = tokio::time::sleep_until(give_up) => return Ok(seen),
            }
        }
    });

    let start = Instant::now();
    let deadline = start + ctx.s.duration();
    let mut writers = JoinSet::new();
    for worker in 0..concurrency {
        let api = api.clone();
        let payload = ctx.payload(worker as u64);
        writers.spawn(async move {
            let mut hist = stats::new_histogram();
            let mut acks = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let name = format!("w{worker:03}-{i:08}");
                let object = super::config_map(&name, &payload);
                let began = Instant::now();
                let sent = now_nanos(epoch);
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating ConfigMap {name}"))?;
                stats::record(&mut hist, began.elapsed());
                acks.push((name, sent, now_nanos(epoch)));
                i += 1;
            }
            anyhow::Ok((hist, acks))
        });
    }
    let mut hists = Vec::new();
    let mut acks = Vec::new();
    while let Some(done) = writers.join_next().await {
        let (hist, worker_acks) = done.map_err(stats::join_error)??;
        hists.push(hist);
        acks.extend(worker_acks);
    }
    let writes = Throughput::from_histogram(&stats::merge(hists)?, start.elapsed());
    expect_tx.send_replace(Some(writes.ops));
    let seen = watcher.await.map_err(stats::join_error)??;

    let mut delivery = stats::new_histogram();
    let mut end_to_end = stats::new_histogram();
    let (mut events, mut before_ack) = (0u64, 0u64);
    for (name, sent, acked) in &acks {
        let Some(&received) = seen.get(name) else {
            continue;
        };
        events += 1;
        if received < *acked {
            before_ack += 1;
        }
        delivery.saturating_record((received.saturating_sub(*acked) / 1000).max(1));
        end_to_end.saturating_record((received.saturating_sub(*sent) / 1000).max(1));
    }
    if events == 0 && writes.ops > 0 {
        return Err(anyhow!("the watcher saw none of {} creates", writes.ops));
    }
    Ok(WatchDelivery {
        writes,
        events,
        delivery: Latency::of(&delivery),
        delivered_before_ack: before_ack,
        end_to_end: Latency::of(&end_to_end),
        missing: writes.ops - events,
    })
}

/// Untimed creates of the ConfigMaps the get and list phases read, 64 at a time.
pub async fn preload_list_namespace(ctx: &Arc<Ctx>) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_LIST);
    let payload = ctx.payload(7);
    futures::stream::iter(0..ctx.s.list_objects as u64)
        .map(|i| {
            let (api, name) = (api.clone(), list_name(i));
            let object = super::config_map(&name, &payload);
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating ConfigMap {name}"))
            }
        })
        .buffer_unordered(64)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// A fresh store of the same backend for the raw store rate, warmed up.
pub async fn open_raw_store(endpoint: capstan_store::Endpoint) -> Result<Arc<dyn Store>> {
    let store = capstan_store::open(&endpoint)
        .await
        .with_context(|| format!("opening the raw store at {endpoint:?}"))?;
    for i in 0..crate::raw::WARM_UP_WRITES {
        store
            .create(&format!("/rawbench/warmup/{i}"), stats::filler(64, i as u64))
            .await
            .context("warming up the raw store")?;
    }
    Ok(store)
}

/// The CPU a phase used, for the summary line.
pub fn cpu_note(cpu: &CpuUsage) -> String {
    let mut parts = Vec::new();
    if let Some(s) = cpu.server_cores {
        parts.push(format!("server {s:.2}"));
    }
    if let Some(e) = cpu.etcd_cores {
        parts.push(format!("etcd {e:.2}"));
    }
    parts.push(format!("bench {:.2}", cpu.bench_cores));
    if let Some(o) = cpu.other_cores {
        parts.push(format!("other {o:.2}"));
    }
    format!("cores: {}", parts.join(", "))
}
