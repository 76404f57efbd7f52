//! Single-object latency at a fixed request rate (the target: p99 ≤ 20 ms
//! at 500 req/s).
//!
//! An open loop: a timer fires `--rate` times a second for
//! `--rate-secs`, and every tick starts one request in its own task,
//! whether or not earlier ones have finished — as independent clients
//! would. Requests alternate between a `GET` of a random ConfigMap in
//! `bench-list` and a `POST` of a fresh ConfigMap in `bench-rate`. Latency
//! is measured from the tick's *scheduled* time to the response, so a
//! stalled client or server cannot hide its queueing (no coordinated
//! omission). All requests share one kube-rs client (HTTP/1.1 keep-alive
//! pool: as many connections as requests in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::{Ctx, NS_LIST, NS_RATE, TARGET_SINGLE_P99_MS, list_name};
use crate::stats::{self, Latency};

#[derive(Debug, Clone, Serialize)]
pub struct FixedRate {
    pub target_rate: f64,
    pub duration_secs: f64,
    /// Requests started (one per tick).
    pub sent: u64,
    /// Requests answered successfully.
    pub completed: u64,
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Successful requests per second, from the first tick to the last answer.
    pub achieved_rate: f64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Every request, scheduled time to response.
    #[serde(flatten)]
    pub all: Latency,
    pub get: Latency,
    pub create: Latency,
    pub target_p99_ms: f64,
    /// p99 ≤ target, no failures, and at least 95% of the rate achieved.
    pub meets_target: bool,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<FixedRate> {
    let rate = ctx.s.rate;
    let duration = Duration::from_secs_f64(ctx.s.rate_secs);
    let total = (rate * ctx.s.rate_secs).round() as u64;
    ensure!(total > 0, "--rate × --rate-secs gives no requests");
    let gets: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_LIST);
    let creates: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS_RATE);
    let payload: Arc<str> = ctx.payload(11).into();
    let objects = ctx.s.list_objects as u64;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));

    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let started = tokio::time::Instant::now();
    let mut results = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for n in 0..total {
        let scheduled = ticker.tick().await;
        let (gets, creates, payload) = (gets.clone(), creates.clone(), Arc::clone(&payload));
        let (in_flight, max_in_flight) = (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
        tasks.spawn(async move {
            let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            max_in_flight.fetch_max(now, Ordering::Relaxed);
            let is_get = n % 2 == 0;
            let result = if is_get {
                let name = list_name(stats::mix64(n) % objects);
                gets.get(&name)
                    .await
                    .map(drop)
                    .with_context(|| format!("getting ConfigMap {name}"))
            } else {
                let name = format!("rate-{n:08}");
                creates
                    .create(&PostParams::default(), &super::config_map(&name, &payload))
                    .await
                    .map(drop)
                    .with_context(|| format!("creating ConfigMap {name}"))
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (is_get, scheduled.elapsed(), result)
        });
        // Reap finished requests as we go, so the set stays small.
        while let Some(done) = tasks.try_join_next() {
            results.push(done.map_err(stats::join_error)?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        results.push(done.map_err(stats::join_error)?);
    }
    let elapsed = started.elapsed();

    let (mut all, mut get, mut create) = (stats::new_histogram(), stats::new_histogram(), stats::new_histogram());
    let (mut failed, mut first_error) = (0u64, None);
    for (is_get, latency, result) in results {
        match result {
            Ok(()) => {
                stats::record(&mut all, latency);
                stats::record(if is_get { &mut get } else { &mut create }, latency);
            }
            Err(err) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    let all_latency = Latency::of(&all);
    let achieved_rate = stats::rate(all.len(), elapsed);
    Ok(FixedRate {
        target_rate: rate,
        duration_secs: stats::round3(duration.as_secs_f64()),
        sent: total,
        completed: all.len(),
        failed,
        first_error,
        achieved_rate,
        max_in_flight: max_in_flight.load(Ordering::Relaxed),
        all: all_latency,
        get: Latency::of(&get),
        create: Latency::of(&create),
        target_p99_ms: TARGET_SINGLE_P99_MS,
        meets_target: failed == 0 && all_latency.p99_ms <= TARGET_SINGLE_P99_MS && achieved_rate >= 0.95 * rate,
    })
}
