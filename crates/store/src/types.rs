use std::pin::Pin;

use futures::Stream;

use crate::Result;

/// A store revision: the global write counter, and Kubernetes' resourceVersion.
pub type Revision = i64;

/// A key with its value and the revisions that created and last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A create (`prev` is `None`) or an update.
    Put { kv: KeyValue, prev: Option<KeyValue> },
    /// A deletion at `revision`; `prev` is the value that was deleted.
    Delete { revision: Revision, prev: KeyValue },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// How to page through a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this past revision instead of the current one.
    pub revision: Option<Revision>,
    /// At most this many keys (`None`: all of them).
    pub limit: Option<usize>,
    /// Resume after this key: the last key of the previous page.
    pub start_after: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The revision the whole listing is consistent at; pass it back in
    /// [`ListOptions::revision`] to read the next page from the same snapshot.
    pub revision: Revision,
    /// More keys follow the last one returned.
    pub more: bool,
}

/// The events of a watch, in revision order; ends with an error if the
/// watch cannot continue (for instance, the backend went away).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;
