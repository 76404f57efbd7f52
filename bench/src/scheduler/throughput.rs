//! Scheduling throughput as upstream scheduler_perf reports it
//! (`SchedulingThroughput`): the pods scheduled in each second of the
//! measured interval are the samples, summarized by their average and
//! percentiles.
//!
//! Samples here come from the exact moments each pod was seen bound, so
//! nothing depends on a polling loop's timing: one-second windows from the
//! first bound pod to the last. A last window shorter than half a second
//! joins the one before it (a few stragglers in 10 ms would otherwise
//! read as a huge rate).

use std::time::Duration;

use serde::Serialize;

use crate::stats::round3;

/// Per-second samples of one scenario, summarized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Mean of the samples (upstream's `Average`).
    pub average: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

/// Events per second in consecutive one-second windows from the first
/// event; `times` need not be sorted.
pub fn per_second(times: &[Duration]) -> Vec<f64> {
    let mut times = times.to_vec();
    times.sort();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Vec::new();
    };
    let span = (last - first).as_secs_f64();
    let windows = (span.floor() as usize) + 1;
    let mut counts = vec![0usize; windows];
    for t in &times {
        counts[((*t - first).as_secs_f64().floor() as usize).min(windows - 1)] += 1;
    }
    let last_count = counts[windows - 1] as f64;
    let mut samples: Vec<f64> = counts[..windows - 1].iter().map(|&c| c as f64).collect();
    let tail = span - (windows - 1) as f64;
    match samples.last_mut() {
        // Everything within one second: one sample.
        None => samples.push(last_count),
        Some(previous) if tail < 0.5 => *previous = (*previous + last_count) / (1.0 + tail),
        Some(_) => samples.push(last_count / tail),
    }
    samples
}

/// Average and nearest-rank percentiles of `samples`; `None` if empty.
pub fn summarize(samples: &[f64]) -> Option<Throughput> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Some(Throughput {
        average: round3(sorted.iter().sum::<f64>() / sorted.len() as f64),
        p50: round3(rank(50.0)),
        p90: round3(rank(90.0)),
        p99: round3(rank(99.0)),
        max: round3(sorted[sorted.len() - 1]),
        samples: sorted.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn one_sample_per_second_from_the_first_event() {
        // 3 in the first second, 2 in the second, 1 at 2.7 s (a 0.7 s tail).
        let samples = per_second(&ms(&[1000, 1200, 1900, 2100, 2500, 3700]));
        assert_eq!(samples.len(), 3);
        assert_eq!(&samples[..2], &[3.0, 2.0]);
        assert!((samples[2] - 1.0 / 0.7).abs() < 1e-9, "{samples:?}");
    }

    #[test]
    fn a_short_tail_joins_the_window_before() {
        let samples = per_second(&ms(&[0, 500, 999, 1000, 1010]));
        assert_eq!(samples.len(), 1);
        assert!((samples[0] - 5.0 / 1.01).abs() < 1e-9, "{samples:?}");
        // Everything within one short burst is one sample over one second.
        assert_eq!(per_second(&ms(&[5, 6, 7])), vec![3.0]);
        assert!(per_second(&[]).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let t = summarize(&samples).unwrap();
        assert_eq!(
            (t.average, t.p50, t.p90, t.p99, t.max, t.samples),
            (50.5, 50.0, 90.0, 99.0, 100.0, 100)
        );
        let one = summarize(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(summarize(&[]), None);
    }
}
