//! The Kubernetes streaming protocols, shared by the kubelet's server and the API server's proxy.
//!
//! `kubectl exec`, `attach`, `cp` and `port-forward` do not use request/response HTTP: they upgrade the
//! connection to a multiplexed byte-stream protocol and open one logical stream per purpose. Two transports
//! exist, and kubectl 1.32 tries the newer one first:
//!
//! - **WebSocket** ([`websocket`]): sub-protocol `v5.channel.k8s.io` (or older `v4…`) for exec/attach, where
//!   each binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); and
//!   `SPDY/3.1+portforward.k8s.io` for port-forward, which tunnels SPDY inside binary messages.
//! - **SPDY/3.1** ([`spdy`]): the original transport; a session of streams named by a `streamType` header.
//!
//! On top of either transport sit the two application protocols: [`remotecommand`] (the stream roles and the
//! final `Status` that carries the exit code) and [`portforward`] (a `data` and an `error` stream per forwarded
//! connection, paired by `requestID`). [`upgrade`] has the HTTP side: negotiating the upgrade as a server, and
//! dialing one as a client (the kubelet dials containerd's CRI streaming server).
//!
//! Start with [`remotecommand`] and [`portforward`]: their docs say what flows where.

pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod upgrade;
pub mod websocket;
