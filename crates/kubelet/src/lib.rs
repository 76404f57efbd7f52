//! The Capstan kubelet: the node agent that registers a Node, keeps its
//! Lease fresh and reports the status of the pods bound to it, speaking
//! only the Kubernetes API.
//!
//! Today it runs *hollow* nodes (`capstan agent --simulate N`, like
//! kubemark's hollow kubelet or kwok): many nodes in one process, whose
//! pods are reported Running without starting containers. Issue 5 adds the
//! real node on a CRI runtime beside it, reusing the same status code.
//!
//! Where to start:
//!
//! * [`hollow::run`] wires everything for N simulated nodes.
//! * [`nodestatus`] builds the Node a kubelet registers (labels, addresses,
//!   capacity, allocatable, the Ready condition) and its heartbeats.
//! * [`nodelease`] keeps one Lease per node in `kube-node-lease` renewed,
//!   the cheap heartbeat the node lifecycle controller watches.
//! * [`podsync`] is the pod side: one watch over all bound pods; each pod
//!   is synced (status patched only when it changed) and graceful
//!   deletions are finished.
//! * [`simruntime`] is the simulated container runtime: what a pod's
//!   containers are doing at a given time, steered by annotations.
//! * [`podstatus`] turns that into a `PodStatus` with upstream's conditions
//!   and container statuses; [`podips`] hands out pod IPs from the node's
//!   `spec.podCIDR`, as CNI's host-local IPAM does.
//!
//! The real node talks to its container runtime through [`cri`] (the CRI v1
//! clients over the runtime's unix socket); its runtime is Capstan's own
//! containerd (crate `capstan-containerd`). [`images`] makes sure a
//! container's image is there (pull policy, imagePullSecrets, back-off).

pub mod cri;
pub mod hollow;
pub mod images;
pub mod nodelease;
pub mod nodestatus;
pub mod podips;
pub mod podstatus;
pub mod podsync;
pub mod server;
pub mod simruntime;
