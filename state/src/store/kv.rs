//! The key-value interface the store is written against.
//!
//! Small on purpose: point reads, ordered range scans (both directions),
//! atomic multi-column-family write batches with a per-write `sync` flag,
//! and checkpoints. [`crate::store::MemKv`] implements it over `BTreeMap`s
//! for unit tests; `RocksKv` (feature `rocksdb`) over RocksDB.
//!
//! ## Contract every backend keeps
//! * A [`WriteBatch`] is applied atomically: after a crash, either all of it
//!   or none of it is visible, across column families.
//! * `write(batch, sync = false)` returns once the batch survives a crash of
//!   the *process* (written to the OS, e.g. the WAL); `sync = true` once it
//!   survives power loss (fsynced).
//! * Scans return keys in ascending byte order (descending when reversed),
//!   restricted to `[start, end)`.

use std::path::Path;

/// The store's column families. Names are part of the on-disk schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Schema version and other store metadata.
    Meta,
    /// `model_id → ModelEntry`.
    Models,
    /// `model_id → ONNX bytes`.
    Onnx,
    /// `model_id → serialised program` (opaque here).
    Programs,
    /// `request_id → InferenceRecord`, for every accepted request.
    Records,
    /// `sequence:u64be → RecordTensors` (inputs and outputs; schema 1 keyed
    /// them by request id).
    Tensors,
    /// The pending log: `sequence:u64be → request_id`.
    Pending,
    /// `number:u64be → BatchHeader`.
    Headers,
    /// Empty since schema 2 (schema 1: `number:u64be → BatchBody`, a copy of
    /// every body; bodies are now assembled from `Tensors`). Kept for the
    /// schema-1 migration, which empties it.
    Bodies,
    /// `number:u64be || index:u64be → request_id`.
    BatchIndex,
    /// `request_id → Receipt`.
    Receipts,
    /// Opaque keys and values owned by the settlement state machine.
    Settlement,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 12] = [
        Cf::Meta,
        Cf::Models,
        Cf::Onnx,
        Cf::Programs,
        Cf::Records,
        Cf::Tensors,
        Cf::Pending,
        Cf::Headers,
        Cf::Bodies,
        Cf::BatchIndex,
        Cf::Receipts,
        Cf::Settlement,
    ];

    /// The on-disk name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Models => "models",
            Cf::Onnx => "onnx",
            Cf::Programs => "programs",
            Cf::Records => "records",
            Cf::Tensors => "tensors",
            Cf::Pending => "pending",
            Cf::Headers => "headers",
            Cf::Bodies => "bodies",
            Cf::BatchIndex => "batch_index",
            Cf::Receipts => "receipts",
            Cf::Settlement => "settlement",
        }
    }

    /// Position in [`Cf::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A backend failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The backend reported an error (RocksDB's message).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The backend cannot do this (e.g. a checkpoint of the in-memory store).
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
    /// A file-system error around the backend (creating directories, …).
    #[error("i/o: {0}")]
    Io(String),
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
    },
}

/// Operations applied atomically, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(BatchOp::Put { cf, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(BatchOp::Delete { cf, key });
    }

    /// The operations.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Consumes into the operations.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Total key and value bytes.
    pub fn byte_size(&self) -> usize {
        self.bytes
    }
}

/// A key range `[start, end)`; `None` is unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub start: Option<Vec<u8>>,
    /// Exclusive upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keys starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self { start: Some(prefix.to_vec()), end: prefix_end(prefix) }
    }

    /// `[start, end)`.
    pub fn between(start: Vec<u8>, end: Option<Vec<u8>>) -> Self {
        Self { start: Some(start), end }
    }

    /// Is `key` inside?
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_deref().is_none_or(|s| key >= s) && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A key and its value.
pub type KvEntry = (Vec<u8>, Vec<u8>);

/// A scan's items.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvEntry, KvError>> + 'a>;

/// A key-value store with column families.
pub trait KvStore: Send + Sync {
    /// The value at `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Hands the value at `key` to `f` (if there is one; returns whether
    /// there was), without copying it where the backend can lend it:
    /// RocksDB pins the block, so decoding a 600 KB tensor reads it in
    /// place instead of after a copy.
    fn visit(&self, cf: Cf, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, KvError> {
        Ok(self.get(cf, key)?.map(|v| f(&v)).is_some())
    }

    /// Applies `batch` atomically; durable against power loss if `sync`,
    /// against a process crash otherwise.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), KvError>;

    /// Entries of `cf` within `range`, ascending (descending if `reverse`).
    fn scan(&self, cf: Cf, range: KeyRange, reverse: bool) -> Result<KvIter<'_>, KvError>;

    /// Writes a consistent copy of the whole store into `dir` (which must not
    /// exist), openable as a store of its own.
    fn checkpoint(&self, dir: &Path) -> Result<(), KvError>;

    /// One put.
    fn put(&self, cf: Cf, key: &[u8], value: &[u8], sync: bool) -> Result<(), KvError> {
        let mut b = WriteBatch::new();
        b.put(cf, key, value);
        self.write(b, sync)
    }

    /// One delete.
    fn delete(&self, cf: Cf, key: &[u8], sync: bool) -> Result<(), KvError> {
        let mut b = WriteBatch::new();
        b.delete(cf, key);
        self.write(b, sync)
    }

    /// Entries whose key starts with `prefix`, ascending.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<KvIter<'_>, KvError> {
        self.scan(cf, KeyRange::prefix(prefix), false)
    }

    /// The last entry of `cf` within `range`.
    fn last(&self, cf: Cf, range: KeyRange) -> Result<Option<KvEntry>, KvError> {
        self.scan(cf, range, true)?.next().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let r = KeyRange::prefix(&[1, 0xff]);
        assert!(r.contains(&[1, 0xff]));
        assert!(r.contains(&[1, 0xff, 0]));
        assert!(!r.contains(&[2]));
        assert!(!r.contains(&[1, 0xfe]));
        assert_eq!(Cf::ALL.iter().enumerate().filter(|(i, c)| c.index() != *i).count(), 0);
    }
}
