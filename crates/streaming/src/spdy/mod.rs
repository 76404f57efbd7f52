//! SPDY/3.1, the multiplexing protocol behind `kubectl exec`, `attach`, `cp` and `port-forward` since
//! Kubernetes 1.0 (and still the only one containerd's CRI streaming server speaks for port-forwarding).
//!
//! An HTTP/1.1 request with `Upgrade: SPDY/3.1` and the wanted sub-protocols in `X-Stream-Protocol-Version`
//! is answered `101 Switching Protocols`; from then on the connection carries SPDY frames ([`frame`]) and the
//! client opens one stream per purpose, named by a `streamType` header ([`session`]).

pub mod dictionary;
pub mod frame;
pub mod session;

pub use frame::{Frame, Headers, header};
pub use session::{Connection, Incoming, Role, SessionError, Stream, StreamReader, StreamWriter, copy_to_stream};

/// The `Upgrade` token.
pub const UPGRADE: &str = "SPDY/3.1";
/// The header that lists (request) or names (response) the sub-protocol.
pub const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
