//! The Kubernetes API server (being built).

pub mod pki;
pub mod tls;
