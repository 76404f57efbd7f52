use crate::{KeyValue, Revision};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed. The API server maps each case to an
/// upstream `Status` (AlreadyExists → 409, Compacted → 410 Expired, ...).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key:?} not found")]
    NotFound { key: String },

    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// A compare-and-swap lost: the key changed since `expected`.
    #[error("key {key:?} was modified: expected revision {expected}, found {}", current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<KeyValue>,
    },

    /// History at `requested` was compacted away (upstream: 410 Expired).
    #[error("required revision {requested} has been compacted (oldest retained: {compacted})")]
    Compacted { requested: Revision, compacted: Revision },

    #[error("required revision {requested} is a future revision (current: {current})")]
    FutureRevision { requested: Revision, current: Revision },

    /// The backend refused a value this large (etcd: 1.5 MiB by default).
    #[error("request too large: {0}")]
    TooLarge(String),

    #[error("invalid datastore endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    /// The backend could not be reached or failed internally.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
}
