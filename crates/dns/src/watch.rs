//! Keeps the [`Zone`] in step with the API: one watch on Services and one
//! on EndpointSlices, all namespaces; and the [`Clients`] with one on
//! Nodes. A relist rebuilds that part, so nothing stale survives a watch
//! that was cut off.

use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::clients::Clients;
use crate::records::Zone;

pub type SharedZone = Arc<RwLock<Zone>>;
pub type SharedClients = Arc<RwLock<Clients>>;

/// Feeds `zone` and `clients` until the watches end (they retry with back-off, so: until cancelled).
pub async fn run(client: Client, zone: SharedZone, clients: SharedClients) {
    let nodes = follow(
        Api::<Node>::all(client.clone()),
        clients,
        Clients::apply_node,
        Clients::delete_node,
        Clients::replace_nodes,
    );
    let services = follow(
        Api::<Service>::all(client.clone()),
        zone.clone(),
        Zone::apply_service,
        Zone::delete_service,
        |zone: &mut Zone, fresh: &Zone| zone.replace_services(fresh),
    );
    let slices = follow(
        Api::<EndpointSlice>::all(client),
        zone,
        Zone::apply_slice,
        Zone::delete_slice,
        |zone: &mut Zone, fresh: &Zone| zone.replace_slices(fresh),
    );
    futures::join!(services, slices, nodes);
}

async fn follow<K, T: Default>(
    api: Api<K>,
    zone: Arc<RwLock<T>>,
    apply: fn(&mut T, &K),
    delete: fn(&mut T, &K),
    replace: fn(&mut T, &T),
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // A relist arrives as Init, InitApply…, InitDone: build it aside, then swap.
    let mut relisting: Option<T> = None;
    loop {
        match events.try_next().await {
            Ok(Some(event)) => {
                let mut zone = zone.write().unwrap_or_else(|p| p.into_inner());
                match event {
                    Event::Init => relisting = Some(T::default()),
                    Event::InitApply(object) => relisting.iter_mut().for_each(|fresh| apply(fresh, &object)),
                    Event::InitDone => {
                        if let Some(fresh) = relisting.take() {
                            replace(&mut zone, &fresh);
                        }
                    }
                    Event::Apply(object) => apply(&mut zone, &object),
                    Event::Delete(object) => delete(&mut zone, &object),
                }
            }
            Ok(None) => return,
            Err(err) => tracing::warn!(%err, "cluster DNS: watch error, retrying"),
        }
    }
}
