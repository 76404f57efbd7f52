//! Kubernetes API machinery, without I/O.
//!
//! What the API server needs to know about Kubernetes objects that is pure
//! logic lives here, so it can be unit-tested exhaustively and shared by
//! every component. Start with [`registry`]: the table of every served
//! resource type, which drives the generic REST layer, discovery and the
//! storage layout.

pub mod conversion;
pub mod defaults;
pub mod meta;
pub mod registry;
pub mod selector;
pub mod status;
pub mod table;
pub mod validation;

pub use registry::{ResourceType, Subresource};
pub use status::{ApiError, FieldError};
