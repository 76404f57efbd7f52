//! What every benchmark report carries besides its numbers (the machine it
//! ran on), and how reports leave the program: pretty JSON on stdout (and
//! optionally to a file), so that stdout is always exactly one JSON document
//! and everything human-readable goes to stderr.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

/// The machine a benchmark ran on: numbers only compare on the same one.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub os: &'static str,
    pub arch: &'static str,
    /// 1-, 5- and 15-minute load averages when the run started: other work
    /// on the machine (builds, tests) skews every number.
    pub load_average: Option<[f64; 3]>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            load_average: load_average(),
        }
    }
}

/// The 1-, 5- and 15-minute load averages (Linux), if readable.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Seconds since the Unix epoch, for the report's start time.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Prints `report` as pretty JSON on stdout and, if asked, writes it to `json_out`.
pub fn emit(report: &impl Serialize, json_out: Option<&Path>) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    println!("{json}");
    if let Some(path) = json_out {
        std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}

/// Runs a benchmark's measurement to its report, unless Ctrl-C comes first
/// (dropping the measurement stops what it started; `stopped` says what),
/// then prints `summary` on stderr and [`emit`]s the JSON.
pub async fn run_to_report<R: Serialize>(
    measure: impl std::future::Future<Output = Result<R>>,
    stopped: &str,
    summary: impl FnOnce(&R) -> String,
    json_out: Option<&Path>,
) -> Result<()> {
    let report = tokio::select! {
        report = measure => report?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; {stopped}"),
    };
    eprint!("{}", summary(&report));
    emit(&report, json_out)
}

/// Logs a phase's outcome on stderr; keeps the value, or files the error.
pub fn phase<T: Progress>(tag: &str, name: &str, errors: &mut Vec<String>, result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => {
            if let Some(line) = value.progress() {
                eprintln!("{tag} {name}: {line}");
            }
            Some(value)
        }
        Err(err) => {
            eprintln!("{tag} {name} FAILED: {err:#}");
            errors.push(format!("{name}: {err:#}"));
            None
        }
    }
}

/// A one-line progress report of a finished phase.
pub trait Progress {
    fn progress(&self) -> Option<String> {
        None
    }
}

impl Progress for () {}
impl Progress for std::sync::Arc<dyn capstan_store::Store> {}
impl Progress for crate::raw::RawEngine {}

impl Progress for crate::stats::Throughput {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms ({} ops)",
            self.ops_per_sec, self.latency.p50_ms, self.latency.p99_ms, self.ops
        ))
    }
}
