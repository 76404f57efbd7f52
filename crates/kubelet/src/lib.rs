//! The Capstan kubelet: the node agent. It registers a Node, keeps its
//! Lease fresh, runs the pods bound to it and reports their status,
//! speaking the Kubernetes API on one side and CRI on the other.
//!
//! Where to start:
//!
//! * [`kubelet::Kubelet::run`] runs a real node on a CRI runtime
//!   (containerd): [`node`] registers it and posts its status, [`network`]
//!   writes the CNI configuration once the node has a pod range,
//!   [`hostgw`] routes the other nodes' pod ranges to them,
//!   [`pod_workers`] runs one task per pod, which syncs it through CRI
//!   ([`kuberuntime`]: [`sandbox`], [`container`], [`cgroups`], [`dns`],
//!   [`backoff`]) and reports it ([`status`]); [`pleg`] relists the
//!   runtime to wake the workers whose containers changed.
//! * [`hollow::run`] runs N simulated nodes (`capstan agent --simulate N`,
//!   like kubemark's hollow kubelet): [`podsync`] with [`simruntime`]
//!   instead of containers, [`podstatus`] and [`podips`] for their status.
//! * Shared by both: [`nodestatus`] (conditions, versions) and [`nodelease`].
//! * The runtime is reached through [`cri`] (CRI v1 over its unix socket);
//!   it is Capstan's own containerd (crate `capstan-containerd`) unless
//!   `--container-runtime-endpoint` names another; [`images`] makes sure a
//!   container's image is there (pull policy, imagePullSecrets, back-off).
//!
//! Building blocks of the real (CRI) node, each turning part of a pod spec
//! into what the runtime needs:
//!
//! * [`resources`]: requests/limits → CRI `LinuxContainerResources`, the
//!   pod cgroup's totals and the QoS class.
//! * [`securitycontext`]: `securityContext` → CRI security contexts, with
//!   upstream's `runAsNonRoot` checks.
//! * [`envvars`]: a container's environment (env, envFrom, service links),
//!   reading objects through [`objects::Objects`]; [`fieldpath`] is the
//!   downward API it shares with volumes.
//! * [`volume`]: a pod's volumes under its directory (emptyDir, hostPath,
//!   configMap, secret, downwardAPI, projected with bound tokens) and each
//!   container's CRI mounts; re-running it propagates updates.
//! * [`probe`]: exec/httpGet/tcpSocket/grpc probes and the per-container
//!   liveness/readiness/startup workers whose state the pod worker watches.
//! * [`lifecycle`]: postStart and preStop hooks with upstream's failure
//!   handling and grace-period accounting.
//! * [`server`]: the HTTPS server on the kubelet port (logs, exec, attach,
//!   port-forward bridged to CRI streaming; stats/summary from cgroups).

pub mod backoff;
pub mod cgroups;
pub mod container;
pub mod cri;
pub mod dns;
pub mod envvars;
pub mod fieldpath;
pub mod hollow;
pub mod hostgw;
pub mod images;
pub mod kubelet;
pub mod kuberuntime;
pub mod lifecycle;
pub mod network;
pub mod node;
pub mod nodelease;
pub mod nodestatus;
pub mod objects;
pub mod pleg;
pub mod pod_workers;
pub mod podips;
pub mod podstatus;
pub mod podsync;
pub mod probe;
pub mod resources;
pub mod sandbox;
pub mod securitycontext;
pub mod server;
pub mod simruntime;
pub mod status;
pub mod volume;
