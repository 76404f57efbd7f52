//! The pod lifecycle event generator (upstream's "generic PLEG"): CRI in
//! containerd 1.6 has no container events, so the runtime is relisted every
//! second and the pods whose sandboxes or containers changed state are
//! named, to wake their workers at once (a container that exited is
//! restarted within about a second, not at the worker's next resync).

use std::collections::HashMap;
use std::time::Duration;

use futures::Stream;
use k8s_cri::v1::{ListContainersRequest, ListPodSandboxRequest};

use crate::cri::Cri;
use crate::sandbox::POD_UID;

/// Upstream's relist period.
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// Per pod: its sandboxes' and containers' IDs and states.
type Snapshot = HashMap<String, Vec<(String, i32)>>;

/// The UIDs of pods whose runtime state changed, one batch per relist.
pub fn relist(cri: Cri) -> impl Stream<Item = Vec<String>> {
    futures::stream::unfold((cri, Snapshot::new()), |(cri, before)| async move {
        loop {
            tokio::time::sleep(RELIST_PERIOD).await;
            let Some(now) = snapshot(&cri).await else { continue };
            let mut changed: Vec<String> = now
                .iter()
                .filter(|(uid, items)| before.get(*uid) != Some(items))
                .map(|(uid, _)| uid.clone())
                .collect();
            changed.extend(before.keys().filter(|uid| !now.contains_key(*uid)).cloned());
            if !changed.is_empty() {
                return Some((changed, (cri, now)));
            }
        }
    })
}

async fn snapshot(cri: &Cri) -> Option<Snapshot> {
    let mut runtime = cri.runtime.clone();
    let sandboxes = runtime
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .ok()?
        .into_inner();
    let containers = runtime
        .list_containers(ListContainersRequest::default())
        .await
        .ok()?
        .into_inner();
    let mut snapshot = Snapshot::new();
    let items = sandboxes
        .items
        .iter()
        .map(|s| (&s.labels, &s.id, s.state))
        .chain(containers.containers.iter().map(|c| (&c.labels, &c.id, c.state)));
    for (labels, id, state) in items {
        if let Some(uid) = labels.get(POD_UID) {
            snapshot.entry(uid.clone()).or_default().push((id.clone(), state));
        }
    }
    for items in snapshot.values_mut() {
        items.sort();
    }
    Some(snapshot)
}
