//! Prometheus metrics on `/metrics`, named and labelled as upstream's
//! kube-apiserver so existing dashboards and alerts work unchanged.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatcherLabels {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub operation: String,
}

/// Upstream's request-duration buckets (seconds).
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];
const STORE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub durations: Family<DurationLabels, Histogram>,
    pub watchers: Family<WatcherLabels, Gauge>,
    pub store: Family<StoreLabels, Histogram>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(REQUEST_BUCKETS.iter().copied())) as fn() -> Histogram,
        );
        let watchers = Family::<WatcherLabels, Gauge>::default();
        let store = Family::<StoreLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(STORE_BUCKETS.iter().copied())) as fn() -> Histogram,
        );
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, version, resource, scope and response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource and scope",
            durations.clone(),
        );
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resource",
            watchers.clone(),
        );
        registry.register(
            "etcd_request_duration_seconds",
            "Datastore request latency in seconds for each operation",
            store.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            durations,
            watchers,
            store,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    pub fn observe_store(&self, operation: &str, elapsed: Duration) {
        self.store
            .get_or_create(&StoreLabels {
                operation: operation.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// Counts a watcher while it lives.
pub struct WatcherGuard {
    gauge: Gauge,
}

impl WatcherGuard {
    pub fn new(metrics: &Metrics, labels: WatcherLabels) -> WatcherGuard {
        let gauge = metrics.watchers.get_or_create(&labels).clone();
        gauge.inc();
        WatcherGuard { gauge }
    }
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstream_names() {
        let metrics = Metrics::new();
        let labels = RequestLabels {
            verb: "LIST".into(),
            group: "".into(),
            version: "v1".into(),
            resource: "pods".into(),
            subresource: "".into(),
            scope: "cluster".into(),
            code: "200".into(),
        };
        metrics.requests.get_or_create(&labels).inc();
        let guard = WatcherGuard::new(
            &metrics,
            WatcherLabels {
                group: "".into(),
                version: "v1".into(),
                kind: "Pod".into(),
            },
        );
        let text = metrics.render();
        assert!(text.contains("apiserver_request_total{verb=\"LIST\""), "{text}");
        assert!(
            text.contains("apiserver_registered_watchers{group=\"\",version=\"v1\",kind=\"Pod\"} 1"),
            "{text}"
        );
        drop(guard);
        assert!(metrics.render().contains("kind=\"Pod\"} 0"));
    }
}
