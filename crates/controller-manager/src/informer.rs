//! One pod watch for every controller that follows pods (upstream's shared
//! informer factory).
//!
//! Pods are the cluster's busiest objects: each is created, bound, and has
//! its status reported, and every write reaches every pod watch. With one
//! watch per controller, each change was sent, decoded and cached about a
//! dozen times over; here it is decoded once, kept in one [`Store`], and
//! handed to each controller's trigger stream.
//!
//! Followers must all be registered before [`PodInformer::run`] starts, so
//! none misses the initial listing. A follower that falls [`BUFFER`]
//! changes behind makes the watch wait for it (nothing is dropped).

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

/// Changes buffered per follower.
const BUFFER: usize = 1024;

/// A follower's trigger stream, for `Controller::watches_stream` and `for_stream`.
pub type PodChanges = BoxStream<'static, Result<Pod, watcher::Error>>;

/// The shared pod cache and the trigger streams fed from it.
pub struct PodInformer {
    store: Store<Pod>,
    writer: Writer<Pod>,
    followers: Vec<mpsc::Sender<Pod>>,
}

impl Default for PodInformer {
    fn default() -> Self {
        let (store, writer) = reflector::store();
        PodInformer {
            store,
            writer,
            followers: Vec::new(),
        }
    }
}

impl PodInformer {
    /// The cache every follower reads (ready once the first listing is in).
    pub fn store(&self) -> Store<Pod> {
        self.store.clone()
    }

    /// Every pod the watch touches — added, changed or deleted, and each pod
    /// of a (re)listing — after the store has applied it: what
    /// `Controller::watches` would see from a watch of its own.
    pub fn follow(&mut self) -> PodChanges {
        let (tx, mut rx) = mpsc::channel(BUFFER);
        self.followers.push(tx);
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok).boxed()
    }

    /// Watches pods into the store and hands each touched pod to every follower.
    pub async fn run(self, client: kube::Client) {
        let PodInformer { writer, followers, .. } = self;
        let events = watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod) | watcher::Event::InitApply(pod)) => pod,
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(error) => {
                    tracing::debug!(%error, "pod informer watch");
                    continue;
                }
            };
            for follower in &followers {
                // A follower that stopped (its controller ended) is skipped.
                let _ = follower.send(pod.clone()).await;
            }
        }
    }
}
