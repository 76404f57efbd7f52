//! LIST of 10,000 pods (the target: ≤ 150 ms from the watch cache).
//!
//! `--pods` small but valid Pods (one `pause` container; they stay Pending,
//! nothing schedules or runs them) are created in `bench-pods` by 64
//! writers, then the whole namespace is listed `--list-repeats` times one
//! after another:
//!
//! * **unpaged** — `GET /api/v1/namespaces/bench-pods/pods` without
//!   `limit` or `resourceVersion`: a consistent list, answered from the
//!   watch cache once it has caught up with the store's current revision.
//!   Timed from sending the request to the last byte of the body (the
//!   headline number, vs the target); the body is then counted outside the
//!   timing.
//! * **typed** — the same list through `Api::<Pod>::list`, which also
//!   decodes every pod into `k8s-openapi` structs: what a Rust client pays
//!   on top (fewer repeats; not the target's number).
//! * **paged** — `limit=--page-size` and `continue` tokens through the whole
//!   namespace: the first page comes from the cache, the rest from the
//!   store at the first page's revision. Reported per page and per full
//!   walk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::{Deserialize, Serialize};

use super::{Ctx, NS_PODS, TARGET_LIST_PODS_MS};
use crate::stats::{self, Latency, Throughput};

/// Writers creating the pods.
const WRITERS: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct PodList {
    pub pods: usize,
    /// Creating them, 64 at a time.
    pub create: Throughput,
    /// Unpaged lists: request to last byte.
    pub unpaged: Latency,
    pub unpaged_lists: usize,
    /// Size of one unpaged list response.
    pub response_mib: f64,
    /// Unpaged lists decoded into typed pods by kube-rs.
    pub typed: Latency,
    pub typed_lists: usize,
    pub page_size: usize,
    pub pages_per_list: usize,
    /// One page of a paged walk, request to last byte.
    pub page: Latency,
    /// A whole paged walk (every page, plus reading each `continue` token).
    pub paged_walk: Latency,
    pub paged_walks: usize,
    pub target_ms: f64,
    /// Unpaged p99 ≤ target.
    pub meets_target: bool,
}

/// Just enough of a list response to count it and page on.
#[derive(Deserialize)]
struct ListBody {
    metadata: ListMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

fn pod(i: usize) -> Result<Pod> {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench-list", "shard": (i % 16).to_string()}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }))
    .context("building a pod")
}

pub async fn run(ctx: Arc<Ctx>, tag: &str) -> Result<PodList> {
    let s = &ctx.s;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), NS_PODS);
    eprintln!("{tag} creating {} pods ...", s.pods);
    let create = create_pods(&api, s.pods).await?;
    eprintln!(
        "{tag} created {} pods at {:.0}/s; listing them {} times ...",
        s.pods, create.ops_per_sec, s.list_repeats
    );

    let path = format!("/api/v1/namespaces/{NS_PODS}/pods");
    let mut unpaged = stats::new_histogram();
    let mut response_bytes = 0;
    for _ in 0..s.list_repeats {
        let began = Instant::now();
        let body = get_text(&ctx.client, &path).await?;
        stats::record(&mut unpaged, began.elapsed());
        let list: ListBody = serde_json::from_str(&body).context("parsing the pod list")?;
        ensure!(
            list.items.len() == s.pods,
            "the list returned {} pods, expected {}",
            list.items.len(),
            s.pods
        );
        response_bytes = body.len();
    }

    let typed_lists = s.list_repeats.min(5);
    let mut typed = stats::new_histogram();
    for _ in 0..typed_lists {
        let began = Instant::now();
        let list = api.list(&ListParams::default()).await.context("listing pods (typed)")?;
        stats::record(&mut typed, began.elapsed());
        ensure!(
            list.items.len() == s.pods,
            "the typed list returned {} pods",
            list.items.len()
        );
    }

    let mut page = stats::new_histogram();
    let mut walk = stats::new_histogram();
    let mut pages_per_list = 0;
    for _ in 0..s.paged_repeats {
        let began = Instant::now();
        let (mut pages, mut items, mut token) = (0, 0, None::<String>);
        loop {
            let query = {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("limit", &s.page_size.to_string());
                if let Some(token) = &token {
                    query.append_pair("continue", token);
                }
                query.finish()
            };
            let page_began = Instant::now();
            let body = get_text(&ctx.client, &format!("{path}?{query}")).await?;
            stats::record(&mut page, page_began.elapsed());
            let list: ListBody = serde_json::from_str(&body).context("parsing a pod list page")?;
            pages += 1;
            items += list.items.len();
            match list.metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
            ensure!(pages <= s.pods + 1, "paging does not end");
        }
        stats::record(&mut walk, began.elapsed());
        ensure!(items == s.pods, "paging returned {items} pods, expected {}", s.pods);
        pages_per_list = pages;
    }

    let unpaged_latency = Latency::of(&unpaged);
    Ok(PodList {
        pods: s.pods,
        create,
        unpaged: unpaged_latency,
        unpaged_lists: s.list_repeats,
        response_mib: stats::round3(response_bytes as f64 / (1024.0 * 1024.0)),
        typed: Latency::of(&typed),
        typed_lists,
        page_size: s.page_size,
        pages_per_list,
        page: Latency::of(&page),
        paged_walk: Latency::of(&walk),
        paged_walks: s.paged_repeats,
        target_ms: TARGET_LIST_PODS_MS,
        meets_target: unpaged_latency.p99_ms <= TARGET_LIST_PODS_MS,
    })
}

/// Creates pods 0..count, [`WRITERS`] at a time (untimed per the target,
/// but reported: it is the API's create rate for a larger object).
async fn create_pods(api: &Api<Pod>, count: usize) -> Result<Throughput> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS.min(count) {
        let (api, next) = (api.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut hist = stats::new_histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    return anyhow::Ok(hist);
                }
                let pod = pod(i)?;
                let began = Instant::now();
                api.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating pod {i}"))?;
                stats::record(&mut hist, began.elapsed());
            }
        });
    }
    let mut hists = Vec::new();
    while let Some(done) = workers.join_next().await {
        hists.push(done.map_err(stats::join_error)??);
    }
    Ok(Throughput::from_histogram(&stats::merge(hists)?, started.elapsed()))
}

/// `GET path`, the whole body as text (API errors become errors).
async fn get_text(client: &kube::Client, path: &str) -> Result<String> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .with_context(|| format!("building GET {path}"))?;
    client
        .request_text(request)
        .await
        .with_context(|| format!("GET {path}"))
}
