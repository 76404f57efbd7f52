//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's log, read from the file the runtime writes.
//!
//! CRI runtimes write each container's output to `<pod log dir>/<container>/<restartCount>.log`, one line per
//! chunk in the CRI log format `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <message>` — `P` marks a
//! partial line (the runtime split a long line), `F` the end of one. This module decodes that back into the
//! container's output and applies the options of `kubectl logs`, as upstream's `kuberuntime` log reader does:
//! `tailLines` (complete lines from the end), `sinceSeconds`/`sinceTime`, `timestamps` (prefix each line with
//! its timestamp), `limitBytes`, `previous` (the instance before the current one) and `follow` (keep reading
//! while the container runs).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ContainerState, ContainerStatusRequest};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::{error, lookup};

/// How often a followed log is re-read at its end.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How often following checks whether the container still runs.
const FOLLOW_STATUS_EVERY: u32 = 5;

/// The options of a log request (query parameters with upstream's names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming while the container runs.
    pub follow: bool,
    /// The previous instance of the container.
    pub previous: bool,
    /// Prefix every line with its RFC3339Nano timestamp.
    pub timestamps: bool,
    /// Only the last N complete lines.
    pub tail_lines: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

impl LogOptions {
    /// Parses the query; malformed numbers and times are errors (the API server validated them already).
    pub fn parse(query: &HashMap<String, String>) -> Result<LogOptions, String> {
        let flag = |name: &str| matches!(query.get(name).map(String::as_str), Some("true" | "1"));
        let number = |name: &str| -> Result<Option<i64>, String> {
            query
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {name}: {v:?}")))
                .transpose()
        };
        let mut since = number("sinceSeconds")?.map(|seconds| Timestamp::now() - SignedDuration::from_secs(seconds));
        if let Some(time) = query.get("sinceTime").filter(|v| !v.is_empty()) {
            since = Some(time.parse().map_err(|_| format!("invalid sinceTime: {time:?}"))?);
        }
        Ok(LogOptions {
            follow: flag("follow"),
            previous: flag("previous"),
            timestamps: flag("timestamps"),
            tail_lines: number("tailLines")?.map(|n| n.max(0) as usize),
            since,
            limit_bytes: number("limitBytes")?.map(|n| n.max(0) as usize),
        })
    }
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The timestamp as written.
    pub timestamp: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// A `P` line: the message continues on the next line.
    pub partial: bool,
    /// The message, without the newline.
    pub message: &'a [u8],
}

/// Parses one line (without its trailing newline); `None` if it is not in the CRI format.
pub fn parse_line(line: &[u8]) -> Option<CriLine<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let timestamp = std::str::from_utf8(fields.next()?).ok()?;
    let stream = std::str::from_utf8(fields.next()?).ok()?;
    let tag = fields.next()?;
    let message = fields.next().unwrap_or_default();
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    // Tags are `:`-separated; the first is F (full) or P (partial).
    let partial = tag.split(|&b| b == b':').next() == Some(b"P");
    Some(CriLine {
        timestamp,
        stream,
        partial,
        message,
    })
}

/// The byte offset where the last `n` complete lines of `content` begin (0 if it has fewer).
pub fn tail_offset(content: &[u8], n: usize) -> usize {
    tail_start(content, n).unwrap_or(0)
}

/// Where the last `n` complete lines of `content` begin, if `content` has more than those (so the boundary
/// is known even when `content` is only the end of a file).
fn tail_start(content: &[u8], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(content.len());
    }
    // Line starts and whether each line is partial (a `P` line continues on the next).
    let mut lines: Vec<(usize, bool)> = Vec::new();
    let mut start = 0;
    for (i, &b) in content.iter().enumerate() {
        if b == b'\n' {
            let partial = parse_line(&content[start..i]).is_some_and(|l| l.partial);
            lines.push((start, partial));
            start = i + 1;
        }
    }
    let mut complete = 0;
    let mut end = content.len();
    for &(offset, partial) in lines.iter().rev() {
        if !partial {
            if complete == n {
                return Some(end);
            }
            complete += 1;
        }
        end = offset;
    }
    None
}

/// Where the last `n` complete lines of a log file begin, reading only as much of its end as needed (log files
/// can be large; `kubectl logs --tail` usually wants a few lines).
async fn tail_position(file: &mut tokio::fs::File, n: usize) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).await?;
        let mut content = Vec::with_capacity((len - start) as usize);
        (&mut *file).take(len - start).read_to_end(&mut content).await?;
        if start == 0 {
            return Ok(tail_offset(&content, n) as u64);
        }
        // The window may begin inside a line: count from the first whole one.
        if let Some(first) = content.iter().position(|&b| b == b'\n')
            && let Some(offset) = tail_start(&content[first + 1..], n)
        {
            return Ok(start + (first + 1 + offset) as u64);
        }
        window *= 2;
    }
}

/// Turns CRI log lines into output, applying `since`, `timestamps` and `limitBytes`.
struct Formatter {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<usize>,
    /// Inside a partial line: its continuation gets no timestamp of its own.
    continuing: bool,
}

impl Formatter {
    /// The output for one file line; `None` once the byte limit is reached.
    fn line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        if self.remaining == Some(0) {
            return None;
        }
        let Some(parsed) = parse_line(line) else {
            return Some(Vec::new());
        };
        if let Some(since) = self.since
            && parsed.timestamp.parse::<Timestamp>().is_ok_and(|t| t < since)
        {
            return Some(Vec::new());
        }
        let mut out = Vec::with_capacity(parsed.message.len() + 40);
        if self.timestamps && !self.continuing {
            out.extend_from_slice(parsed.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(parsed.message);
        if !parsed.partial {
            out.push(b'\n');
        }
        self.continuing = parsed.partial;
        if let Some(remaining) = &mut self.remaining {
            out.truncate(*remaining);
            *remaining -= out.len();
        }
        Some(out)
    }
}

/// The handler.
pub async fn container_logs(
    State(state): State<Arc<super::State>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let options = match LogOptions::parse(&query) {
        Ok(options) => options,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let runtime = &state.runtime;
    let instances = match lookup::containers(runtime, &namespace, &pod, &container).await {
        Ok(instances) => instances,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let current = &instances[0];
    let status = match container_status(runtime, &current.id).await {
        Ok(status) => status,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("container runtime: {e}")),
    };
    let (container_id, path) = if options.previous {
        match previous_log(runtime, &instances, &status.log_path).await {
            Some(found) => found,
            None => {
                let message = format!("previous terminated container \"{container}\" in pod \"{pod}\" not found");
                return error(StatusCode::BAD_REQUEST, message);
            }
        }
    } else {
        (current.id.clone(), status.log_path.clone())
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => return error(StatusCode::NOT_FOUND, format!("failed to open log file {path:?}: {e}")),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    // A previous instance has exited: following it ends at its end.
    let follow = options.follow && !options.previous;
    tokio::spawn(stream_log(file, options, follow, runtime.clone(), container_id, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "building the response"))
}

async fn container_status(
    runtime: &RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<k8s_cri::v1::ContainerStatus, tonic::Status> {
    let request = ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: false,
    };
    runtime
        .clone()
        .container_status(request)
        .await?
        .into_inner()
        .status
        .ok_or_else(|| tonic::Status::not_found("no container status"))
}

/// The previous instance's (id, log path): the next-newest container if the runtime still has it, else the
/// file the runtime wrote for the attempt before the current one (the container itself may be gone).
async fn previous_log(
    runtime: &RuntimeServiceClient<Channel>,
    instances: &[k8s_cri::v1::Container],
    current_path: &str,
) -> Option<(String, String)> {
    if let Some(previous) = instances.get(1)
        && let Ok(status) = container_status(runtime, &previous.id).await
        && !status.log_path.is_empty()
    {
        return Some((previous.id.clone(), status.log_path));
    }
    let attempt = instances[0].metadata.as_ref()?.attempt.checked_sub(1)?;
    let path = std::path::Path::new(current_path).with_file_name(format!("{attempt}.log"));
    path.exists()
        .then(|| (String::new(), path.to_string_lossy().into_owned()))
}

async fn stream_log(
    mut file: tokio::fs::File,
    options: LogOptions,
    follow: bool,
    runtime: RuntimeServiceClient<Channel>,
    container_id: String,
    tx: mpsc::Sender<Bytes>,
) {
    let mut formatter = Formatter {
        since: options.since,
        timestamps: options.timestamps,
        remaining: options.limit_bytes,
        continuing: false,
    };
    if let Some(n) = options.tail_lines {
        let Ok(offset) = tail_position(&mut file, n).await else {
            return;
        };
        if file.seek(SeekFrom::Start(offset)).await.is_err() {
            return;
        }
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut idle_polls = 0u32;
    let mut exited = false;
    loop {
        let n = match file.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) => return,
        };
        if n > 0 {
            idle_polls = 0;
            pending.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            let mut consumed = 0;
            while let Some(end) = pending[consumed..].iter().position(|&b| b == b'\n') {
                let line = &pending[consumed..consumed + end];
                consumed += end + 1;
                match formatter.line(line) {
                    Some(bytes) => out.extend_from_slice(&bytes),
                    None => {
                        let _ = tx.send(out.into()).await;
                        return;
                    }
                }
            }
            pending.drain(..consumed);
            if !out.is_empty() && tx.send(out.into()).await.is_err() {
                return;
            }
            if formatter.remaining == Some(0) {
                return;
            }
            continue;
        }
        // At the end: done unless following a container that still runs. Once it has exited, one more pass
        // reads what it wrote last.
        if !follow || exited || tx.is_closed() {
            return;
        }
        idle_polls += 1;
        if idle_polls.is_multiple_of(FOLLOW_STATUS_EVERY) && !still_running(&runtime, &container_id).await {
            exited = true;
            continue;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

async fn still_running(runtime: &RuntimeServiceClient<Channel>, id: &str) -> bool {
    container_status(runtime, id)
        .await
        .is_ok_and(|s| s.state == ContainerState::ContainerRunning as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-12-07T10:00:00.000000001Z stdout F one\n\
2026-12-07T10:00:01.5Z stderr F two\n\
2026-12-07T10:00:02Z stdout P thr\n\
2026-12-07T10:00:02.1Z stdout F ee\n\
2026-12-07T10:00:03Z stdout F four\n";

    fn render(options: LogOptions, content: &[u8]) -> String {
        let mut f = Formatter {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
            continuing: false,
        };
        let start = options.tail_lines.map_or(0, |n| tail_offset(content, n));
        let mut out = Vec::new();
        for line in content[start..].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match f.line(line) {
                Some(bytes) => out.extend(bytes),
                None => break,
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_cri_lines() {
        let line = parse_line(b"2026-12-07T10:00:02Z stdout P thr").unwrap();
        assert_eq!(line.timestamp, "2026-12-07T10:00:02Z");
        assert_eq!(line.stream, "stdout");
        assert!(line.partial);
        assert_eq!(line.message, b"thr");
        assert_eq!(parse_line(b"2026-12-07T10:00:02Z stderr F ").unwrap().message, b"");
        assert!(parse_line(b"garbage").is_none());
    }

    #[test]
    fn joins_partial_lines_and_keeps_both_streams() {
        assert_eq!(render(LogOptions::default(), LOG), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn tail_counts_complete_lines() {
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(render(tail(1), LOG), "four\n");
        assert_eq!(render(tail(2), LOG), "three\nfour\n");
        assert_eq!(render(tail(0), LOG), "");
        assert_eq!(render(tail(10), LOG), "one\ntwo\nthree\nfour\n");
    }

    #[tokio::test]
    async fn tail_reads_only_the_end_of_large_files() {
        let path = std::env::temp_dir().join(format!("capstan-tail-{}.log", std::process::id()));
        let mut content = Vec::new();
        for i in 0..20_000 {
            content.extend_from_slice(format!("2026-12-07T10:00:00Z stdout F line {i}\n").as_bytes());
        }
        content.extend_from_slice(b"2026-12-07T10:00:01Z stdout P par\n2026-12-07T10:00:01Z stdout F tial\n");
        std::fs::write(&path, &content).unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        for n in [0, 1, 2, 3, 5000, 20_001, 30_000] {
            let offset = tail_position(&mut file, n).await.unwrap() as usize;
            assert_eq!(offset, tail_offset(&content, n), "n = {n}");
        }
        assert_eq!(
            &content[tail_offset(&content, 1)..][..33],
            b"2026-12-07T10:00:01Z stdout P par"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn timestamps_since_and_limit() {
        let timestamps = LogOptions {
            timestamps: true,
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(
            render(timestamps, LOG),
            "2026-12-07T10:00:02Z three\n2026-12-07T10:00:03Z four\n"
        );
        let since = LogOptions {
            since: Some("2026-12-07T10:00:01.5Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(render(since, LOG), "two\nthree\nfour\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render(limit, LOG), "one\ntw");
    }

    #[test]
    fn options_from_the_query() {
        let query: HashMap<String, String> = [
            ("follow", "true"),
            ("tailLines", "5"),
            ("timestamps", "true"),
            ("limitBytes", "100"),
            ("sinceTime", "2026-12-07T10:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let options = LogOptions::parse(&query).unwrap();
        assert!(options.follow && options.timestamps && !options.previous);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.limit_bytes, Some(100));
        assert_eq!(options.since, Some("2026-12-07T10:00:00Z".parse().unwrap()));
        let bad: HashMap<String, String> = [("tailLines".to_string(), "x".to_string())].into();
        assert!(LogOptions::parse(&bad).is_err());
    }
}
