//! The in-memory backend: one `BTreeMap` per column family behind a lock.
//!
//! Always compiled, for unit tests of the store logic and for tools that
//! want a throw-away store. It keeps the [`KvStore`] contract trivially
//! (a write batch is applied under one write lock) except durability:
//! nothing survives the process, so `sync` is ignored and
//! [`KvStore::checkpoint`] is unsupported. [`MemKv::snapshot`] gives a
//! consistent in-memory copy instead.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::kv::{BatchOp, Cf, KeyRange, KvError, KvIter, KvStore, WriteBatch};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory [`KvStore`]. Cloning shares the same data (like reopening
/// the same database), which lets tests "reopen" a store.
#[derive(Clone, Debug)]
pub struct MemKv {
    cfs: Arc<RwLock<Vec<Map>>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self { cfs: Arc::new(RwLock::new(vec![Map::new(); Cf::ALL.len()])) }
    }

    /// An independent copy of the current contents.
    pub fn snapshot(&self) -> Self {
        Self { cfs: Arc::new(RwLock::new(self.read().clone())) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Map>> {
        // Batch ops are map inserts and removes that cannot panic midway, so
        // a poisoned lock never hides a half-applied batch.
        self.cfs.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemKv {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.read().get(cf.index()).and_then(|m| m.get(key)).cloned())
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<(), KvError> {
        let mut cfs = self.cfs.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    cfs[cf.index()].insert(key, value);
                }
                BatchOp::Delete { cf, key } => {
                    cfs[cf.index()].remove(&key);
                }
            }
        }
        Ok(())
    }

    fn scan(&self, cf: Cf, range: KeyRange, reverse: bool) -> Result<KvIter<'_>, KvError> {
        // Copy the range out so the iterator holds no lock (a long explorer
        // scan must not block the writer); fine for a test backend.
        let guard = self.read();
        let Some(map) = guard.get(cf.index()) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let mut items: Vec<(Vec<u8>, Vec<u8>)> =
            map.iter().filter(|(k, _)| range.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if reverse {
            items.reverse();
        }
        Ok(Box::new(items.into_iter().map(Ok)))
    }

    fn checkpoint(&self, _dir: &Path) -> Result<(), KvError> {
        Err(KvError::Unsupported("checkpoint of the in-memory store (use MemKv::snapshot)"))
    }
}
