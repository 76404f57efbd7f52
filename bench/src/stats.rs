//! Latency histograms, the per-phase summary every benchmark reports, and the
//! timed closed-loop driver the store phases share.
//!
//! Latencies are recorded per operation in an HDR histogram in microseconds
//! (1 µs to 1 h, 3 significant digits), merged across workers, and reported
//! in milliseconds. Throughput is operations completed divided by the wall
//! time from the start of the phase until the last worker finished its last
//! operation — a closed loop: each worker issues its next operation as soon as
//! the previous one is acknowledged, so `concurrency` is the number of
//! operations in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;

/// An empty latency histogram (microseconds, 1 µs to 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records one latency; values outside the histogram's range are clamped.
pub fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    hist.saturating_record(micros(elapsed));
}

/// A duration in whole microseconds, at least 1 (the histogram's floor).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Latency percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(hist: &Histogram<u64>) -> Latency {
        if hist.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| round3(us as f64 / 1000.0);
        Latency {
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            max_ms: ms(hist.max()),
            mean_ms: round3(hist.mean() / 1000.0),
        }
    }
}

/// Throughput and latency of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Operations completed.
    pub ops: u64,
    /// Wall time the operations took, in seconds.
    pub elapsed_secs: f64,
    pub ops_per_sec: f64,
    #[serde(flatten)]
    pub latency: Latency,
}

impl Throughput {
    pub fn from_histogram(hist: &Histogram<u64>, elapsed: Duration) -> Throughput {
        let ops = hist.len();
        Throughput {
            ops,
            elapsed_secs: round3(elapsed.as_secs_f64()),
            ops_per_sec: rate(ops, elapsed),
            latency: Latency::of(hist),
        }
    }
}

/// `count / elapsed`, rounded to one decimal (0 for an empty interval).
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (count as f64 / secs * 10.0).round() / 10.0
}

/// Rounds to three decimals, enough for milliseconds and ratios in JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Merges per-worker histograms into one.
pub fn merge(hists: impl IntoIterator<Item = Histogram<u64>>) -> Result<Histogram<u64>> {
    let mut total = new_histogram();
    for hist in hists {
        total.add(&hist).context("merging latency histograms")?;
    }
    Ok(total)
}

/// The raw measurements of one timed run: every operation's latency and
/// the wall time they took. Slices of the same phase add up.
#[derive(Debug, Clone)]
pub struct Slice {
    pub hist: Histogram<u64>,
    pub elapsed: Duration,
}

impl Slice {
    pub fn empty() -> Slice {
        Slice {
            hist: new_histogram(),
            elapsed: Duration::ZERO,
        }
    }

    /// Adds another slice's operations and time to this one.
    pub fn absorb(&mut self, other: Slice) -> Result<()> {
        self.hist.add(&other.hist).context("merging latency histograms")?;
        self.elapsed += other.elapsed;
        Ok(())
    }

    pub fn throughput(&self) -> Throughput {
        Throughput::from_histogram(&self.hist, self.elapsed)
    }
}

/// Runs `concurrency` async workers in a closed loop for `duration`: worker
/// `w` calls `op(w, i)` for i = 0, 1, 2, ... and awaits each call before the
/// next. The first failing operation fails the phase (the other workers are
/// cancelled).
pub async fn run_timed<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Result<Throughput>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Ok(run_slice(concurrency, duration, op).await?.throughput())
}

/// [`run_timed`], returning the raw measurements.
pub async fn run_slice<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Result<Slice>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let op = Arc::clone(&op);
        workers.spawn(async move {
            let mut hist = new_histogram();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                op(worker, i)
                    .await
                    .with_context(|| format!("worker {worker}, operation {i}"))?;
                record(&mut hist, began.elapsed());
                i += 1;
            }
            anyhow::Ok(hist)
        });
    }
    let mut hists = Vec::with_capacity(concurrency);
    while let Some(joined) = workers.join_next().await {
        hists.push(joined.map_err(join_error)??);
    }
    Ok(Slice {
        hist: merge(hists)?,
        elapsed: start.elapsed(),
    })
}

/// Turns a failed task (usually a panic, e.g. an `unimplemented!()` backend)
/// into an error with the panic message.
pub fn join_error(err: tokio::task::JoinError) -> anyhow::Error {
    if err.is_panic() {
        let payload = err.into_panic();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_string());
        anyhow::anyhow!("task panicked: {msg}")
    } else {
        anyhow::anyhow!("task cancelled")
    }
}

/// Runs `fut` as its own task, so that a panic inside it (a backend that is
/// still `unimplemented!()`) becomes an error for this phase instead of
/// aborting the whole benchmark.
pub async fn guarded<T, Fut>(fut: Fut) -> Result<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    tokio::spawn(fut).await.map_err(join_error)?
}

/// A cheap, stateless pseudo-random number from a seed (splitmix64), used to
/// pick keys without shared RNG state between workers.
pub fn mix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value of `len` printable, incompressible-looking bytes derived from `seed`.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len as u64)
        .map(|i| ALPHABET[(mix64(seed ^ i.wrapping_mul(0x1000_0000_01b3)) % 64) as usize])
        .collect()
}

/// One value per worker (`filler(len, worker)`), shared by all operations
/// of that worker so generating bytes costs nothing inside the timed loop.
pub fn worker_values(workers: usize, len: usize) -> Arc<Vec<Vec<u8>>> {
    Arc::new((0..workers).map(|w| filler(len, w as u64)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        let t = Throughput::from_histogram(&h, Duration::from_secs(2));
        assert_eq!(t.ops, 1000);
        assert_eq!(t.ops_per_sec, 500.0);
        assert!((t.latency.p50_ms - 5.0).abs() < 0.01, "{t:?}");
        assert!((t.latency.p99_ms - 9.9).abs() < 0.02, "{t:?}");
        assert!((t.latency.max_ms - 10.0).abs() < 0.02, "{t:?}");
    }

    #[test]
    fn slices_add_up() {
        let mut total = Slice::empty();
        for ms in [10u64, 30] {
            let mut hist = new_histogram();
            hist.record(ms * 1000).unwrap();
            total
                .absorb(Slice {
                    hist,
                    elapsed: Duration::from_millis(500),
                })
                .unwrap();
        }
        let t = total.throughput();
        assert_eq!((t.ops, t.ops_per_sec, t.elapsed_secs), (2, 2.0, 1.0));
        assert!((t.latency.max_ms - 30.0).abs() < 0.05, "{t:?}");
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let t = Throughput::from_histogram(&new_histogram(), Duration::ZERO);
        assert_eq!(t.ops, 0);
        assert_eq!(t.ops_per_sec, 0.0);
        assert_eq!(t.latency, Latency::default());
    }

    #[test]
    fn filler_is_deterministic_and_sized() {
        assert_eq!(filler(512, 7).len(), 512);
        assert_eq!(filler(64, 7), filler(64, 7));
        assert_ne!(filler(64, 7), filler(64, 8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_timed_counts_every_operation() {
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = Arc::clone(&counter);
        let t = run_timed(4, Duration::from_millis(100), move |_, _| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(t.ops, counter.load(std::sync::atomic::Ordering::Relaxed));
        assert!(t.ops > 0);
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let err = guarded(async { if true { unimplemented!() } else { Ok(()) } })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not implemented"), "{err}");
    }
}
