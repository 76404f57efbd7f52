//! `capstan-bench dns`: queries per second and latency of the cluster DNS
//! in `capstan server`, from UDP clients on loopback.
//!
//! The server runs without a node (`--disable-agent`), its DNS on a free
//! loopback port, and an upstream resolver address nobody listens on: the
//! benchmark only asks for names under `cluster.local`, so nothing is ever
//! forwarded, and nothing would leave the machine if it were. After
//! creating `--services` Services it waits until DNS answers for the last
//! one, then, for each concurrency level, keeps that many queries in flight
//! (one UDP socket per client, a closed loop: the next query when the
//! answer is in) for a fixed time — A records of
//! `<svc>.<ns>.svc.cluster.local`, each answer checked against the
//! Service's ClusterIP, and names that do not exist, which must get
//! NXDOMAIN. A query without an answer within `--timeout-ms` is counted as
//! lost, not as a latency.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use capstan_store::testing::free_port;
use clap::Args;
use futures::{StreamExt, TryStreamExt, stream};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::api::server::{Server, locate_binary, process_cpu};
use crate::report::{self, Machine};
use crate::stats::{self, Latency};
use crate::{positive_f64, positive_usize};

const NAMESPACE: &str = "bench-dns";
/// How long the new Services may take to show up in DNS.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Services whose names are queried.
    #[arg(long, default_value_t = 100, value_parser = positive_usize)]
    pub services: usize,
    /// Queries in flight per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64", value_parser = positive_usize)]
    pub concurrency: Vec<usize>,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = positive_f64)]
    pub duration_secs: f64,
    /// A query unanswered for this long is lost.
    #[arg(long, default_value_t = 1000.0, value_parser = positive_f64)]
    pub timeout_ms: f64,
    /// The `capstan` binary (default: the release build next to this benchmark).
    #[arg(long)]
    pub capstan: Option<PathBuf>,
    /// Where the server's temporary data dir goes (default: the system's temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// A record of an existing Service.
    A,
    /// A name under the Service domain that does not exist.
    #[serde(rename = "NXDOMAIN")]
    NxDomain,
}

#[derive(Debug, Serialize)]
pub struct DnsReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub capstan_binary: String,
    pub services: usize,
    pub duration_secs: f64,
    pub timeout_ms: f64,
    /// All Services created (the last create acknowledged) → the last one's name answers.
    pub ready_after_creates_ms: Option<f64>,
    pub phases: Vec<Phase>,
    pub errors: Vec<String>,
    pub load_average_end: Option<[f64; 3]>,
}

/// One kind of query at one concurrency level.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub kind: Kind,
    pub concurrency: usize,
    /// Queries answered correctly.
    pub answered: u64,
    /// Answers with the wrong code or address.
    pub wrong: u64,
    /// Queries without an answer in time.
    pub lost: u64,
    pub elapsed_secs: f64,
    /// Correct answers per second.
    pub queries_per_sec: f64,
    /// Of the correct answers.
    #[serde(flatten)]
    pub latency: Latency,
    /// Average cores the server (DNS and all) and the benchmark's clients used.
    pub server_cores: Option<f64>,
    pub bench_cores: Option<f64>,
}

/// A query ready to send (its id is set per query) and what it must get back.
struct Question {
    wire: Vec<u8>,
    expect: Expect,
}

#[derive(Clone, Copy)]
enum Expect {
    Address(Ipv4Addr),
    NxDomain,
}

pub async fn run(args: DnsArgs) -> Result<()> {
    let binary = locate_binary(args.capstan.as_deref())?;
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench dns: {}, {} services, concurrency {:?}, {} s per phase",
        binary.display(),
        args.services,
        args.concurrency,
        args.duration_secs
    );
    let started_at_unix = report::unix_now();
    let measure = measure(&args, &binary, machine, started_at_unix);
    report::run_to_report(measure, "the server was stopped", summary, args.json_out.as_deref()).await
}

async fn measure(args: &DnsArgs, binary: &Path, machine: Machine, started_at_unix: u64) -> Result<DnsReport> {
    let root = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dns: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()?).into();
    // Never queried (only cluster.local names are asked), and nothing listens there.
    let upstream: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()?).into();
    let server_args = [format!("--dns-listen={dns}"), format!("--dns-upstream={upstream}")];
    let (server, client) = Server::start_with(binary, &root, None, &server_args).await?;
    let addresses = create_services(&client, args.services).await?;
    let timeout = Duration::from_secs_f64(args.timeout_ms / 1000.0);
    let ready = wait_answering(dns, &addresses, timeout).await;
    let mut errors = Vec::new();
    let ready_after_creates_ms = match ready {
        Ok(ready) => Some(stats::round3(ready.as_secs_f64() * 1000.0)),
        Err(err) => {
            errors.push(format!("waiting for DNS: {err:#}"));
            None
        }
    };
    let mut phases = Vec::new();
    for kind in [Kind::A, Kind::NxDomain] {
        let questions = Arc::new(questions(kind, &addresses)?);
        for &concurrency in &args.concurrency {
            let duration = Duration::from_secs_f64(args.duration_secs);
            let cpu = (process_cpu(server.pid()), process_cpu(std::process::id()));
            match load(dns, Arc::clone(&questions), concurrency, duration, timeout).await {
                Ok(outcome) => {
                    let phase = outcome.phase(kind, concurrency, cpu, server.pid());
                    eprintln!(
                        "[{kind:?} x{concurrency}] {:.0} queries/s, p50 {:.3} ms, p99 {:.3} ms, {} lost, {} wrong",
                        phase.queries_per_sec, phase.latency.p50_ms, phase.latency.p99_ms, phase.lost, phase.wrong
                    );
                    phases.push(phase);
                }
                Err(err) => errors.push(format!("{kind:?} x{concurrency}: {err:#}")),
            }
        }
    }
    drop(server);
    Ok(DnsReport {
        benchmark: "dns",
        started_at_unix,
        machine,
        capstan_binary: binary.display().to_string(),
        services: args.services,
        duration_secs: args.duration_secs,
        timeout_ms: args.timeout_ms,
        ready_after_creates_ms,
        phases,
        errors,
        load_average_end: report::load_average(),
    })
}

fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// Creates the namespace and selector-less ClusterIP Services; returns their ClusterIPs in order.
async fn create_services(client: &kube::Client, services: usize) -> Result<Vec<Ipv4Addr>> {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .context("creating the namespace")?;
    let api = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..services)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = service_name(i);
                let service: Service = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                }))?;
                let created = api
                    .create(&PostParams::default(), &service)
                    .await
                    .with_context(|| format!("creating Service {name}"))?;
                created
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    .with_context(|| format!("Service {name} got no IPv4 ClusterIP"))
            }
        })
        .buffered(16)
        .try_collect()
        .await
}

/// The queries of one kind: every Service's A record, or as many names
/// that exist nowhere.
fn questions(kind: Kind, addresses: &[Ipv4Addr]) -> Result<Vec<Question>> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let (name, expect) = match kind {
                Kind::A => (service_name(i), Expect::Address(*ip)),
                Kind::NxDomain => (format!("absent-{i:04}"), Expect::NxDomain),
            };
            let fqdn = format!("{name}.{NAMESPACE}.svc.cluster.local.");
            Ok(Question {
                wire: query_wire(&fqdn)?,
                expect,
            })
        })
        .collect()
}

/// An A query for `fqdn`, encoded once (each send only rewrites the id).
fn query_wire(fqdn: &str) -> Result<Vec<u8>> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(fqdn)?, RecordType::A));
    Ok(message.to_vec()?)
}

/// Polls until the last Service's name answers with its ClusterIP; how long that took.
async fn wait_answering(dns: SocketAddr, addresses: &[Ipv4Addr], timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let last = addresses.len() - 1;
    let question = Question {
        wire: query_wire(&format!("{}.{NAMESPACE}.svc.cluster.local.", service_name(last)))?,
        expect: Expect::Address(addresses[last]),
    };
    let mut client = Client::connect(dns).await?;
    for id in 0u16.. {
        if client.ask(&question, id, timeout).await? == Some(true) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > READY_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{} did not resolve within {READY_TIMEOUT:?}", service_name(last))
}

/// One UDP client on loopback.
struct Client {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(dns: SocketAddr) -> Result<Client> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        socket.connect(dns).await?;
        Ok(Client {
            socket,
            buf: vec![0; 4096],
        })
    }

    /// Sends `question` as query `id`; whether the answer was right, or
    /// None when none came within `timeout`. Late answers to earlier
    /// (lost) queries are skipped by their id.
    async fn ask(&mut self, question: &Question, id: u16, timeout: Duration) -> Result<Option<bool>> {
        let mut wire = question.wire.clone();
        wire[..2].copy_from_slice(&id.to_be_bytes());
        self.socket.send(&wire).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.recv(&mut self.buf)).await;
            let Ok(len) = received else { return Ok(None) };
            let answer = Message::from_vec(&self.buf[..len?])?;
            if answer.metadata.id == id {
                return Ok(Some(correct(&answer, question.expect)));
            }
        }
    }
}

fn correct(answer: &Message, expect: Expect) -> bool {
    match expect {
        Expect::NxDomain => answer.metadata.response_code == ResponseCode::NXDomain,
        Expect::Address(ip) => {
            answer.metadata.response_code == ResponseCode::NoError
                && answer
                    .answers
                    .iter()
                    .any(|r| matches!(&r.data, RData::A(a) if a.0 == ip))
        }
    }
}

/// What a phase's clients saw.
struct Outcome {
    hist: hdrhistogram::Histogram<u64>,
    wrong: u64,
    lost: u64,
    elapsed: Duration,
}

/// `concurrency` clients in a closed loop for `duration`.
async fn load(
    dns: SocketAddr,
    questions: Arc<Vec<Question>>,
    concurrency: usize,
    duration: Duration,
    timeout: Duration,
) -> Result<Outcome> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = JoinSet::new();
    for worker in 0..concurrency {
        let questions = Arc::clone(&questions);
        let mut client = Client::connect(dns).await?;
        clients.spawn(async move {
            let (mut hist, mut wrong, mut lost) = (stats::new_histogram(), 0, 0);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let pick = stats::mix64((worker as u64) << 32 | i) % questions.len() as u64;
                let began = Instant::now();
                match client.ask(&questions[pick as usize], i as u16, timeout).await? {
                    Some(true) => stats::record(&mut hist, began.elapsed()),
                    Some(false) => wrong += 1,
                    None => lost += 1,
                }
                i += 1;
            }
            anyhow::Ok((hist, wrong, lost))
        });
    }
    let mut outcome = Outcome {
        hist: stats::new_histogram(),
        wrong: 0,
        lost: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = clients.join_next().await {
        let (hist, wrong, lost) = joined.map_err(stats::join_error)??;
        outcome.hist.add(&hist).context("merging latency histograms")?;
        outcome.wrong += wrong;
        outcome.lost += lost;
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

impl Outcome {
    fn phase(&self, kind: Kind, concurrency: usize, cpu: (Option<Duration>, Option<Duration>), server: u32) -> Phase {
        let cores = |before: Option<Duration>, after: Option<Duration>| {
            Some(stats::round3(
                after?.saturating_sub(before?).as_secs_f64() / self.elapsed.as_secs_f64(),
            ))
        };
        Phase {
            kind,
            concurrency,
            answered: self.hist.len(),
            wrong: self.wrong,
            lost: self.lost,
            elapsed_secs: stats::round3(self.elapsed.as_secs_f64()),
            queries_per_sec: stats::rate(self.hist.len(), self.elapsed),
            latency: Latency::of(&self.hist),
            server_cores: cores(cpu.0, process_cpu(server)),
            bench_cores: cores(cpu.1, process_cpu(std::process::id())),
        }
    }
}

fn summary(report: &DnsReport) -> String {
    let mut out = format!(
        "\n== capstan-bench dns: {} services, {} s per phase ==\n",
        report.services, report.duration_secs
    );
    if let Some(ms) = report.ready_after_creates_ms {
        out += &format!("last Service answering {ms:.1} ms after the creates\n");
    }
    out += "kind      in flight  queries/s   p50 ms   p99 ms   max ms  lost wrong\n";
    for p in &report.phases {
        out += &format!(
            "{:<9} {:>9} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>5} {:>5}\n",
            format!("{:?}", p.kind),
            p.concurrency,
            p.queries_per_sec,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.latency.max_ms,
            p.lost,
            p.wrong
        );
    }
    for err in &report.errors {
        out += &format!("error: {err}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::A;

    #[test]
    fn answers_are_checked_against_the_cluster_ip() {
        let ip = Ipv4Addr::new(10, 43, 0, 7);
        let wire = query_wire("svc-0001.bench-dns.svc.cluster.local.").unwrap();
        let query = Message::from_vec(&wire).unwrap();
        assert_eq!(query.queries[0].query_type(), RecordType::A);
        let mut answer = Message::response(0, OpCode::Query);
        let name = query.queries[0].name().clone();
        answer.add_answer(Record::from_rdata(name, 5, RData::A(A(ip))));
        assert!(correct(&answer, Expect::Address(ip)));
        assert!(!correct(&answer, Expect::Address(Ipv4Addr::new(10, 43, 0, 8))));
        assert!(!correct(&answer, Expect::NxDomain));
        answer.metadata.response_code = ResponseCode::NXDomain;
        assert!(correct(&answer, Expect::NxDomain));
    }
}
