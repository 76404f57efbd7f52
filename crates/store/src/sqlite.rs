//! TEMPORARY skeleton while the backend is written.
#![allow(unused)]
use async_trait::async_trait;
use crate::*;

pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(path: &std::path::Path) -> Result<Self> { unimplemented!() }
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> { unimplemented!() }
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> { unimplemented!() }
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> { unimplemented!() }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> { unimplemented!() }
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> { unimplemented!() }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> { unimplemented!() }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> { unimplemented!() }
    async fn compact(&self, revision: Revision) -> Result<()> { unimplemented!() }
    async fn compacted_revision(&self) -> Result<Revision> { unimplemented!() }
}
