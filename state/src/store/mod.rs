//! The node's store: models, accepted records, sealed batches, receipts and
//! settlement state, over a [`KvStore`] backend.
//!
//! ## Layout (one column family per line, see [`Cf`])
//! ```text
//! meta         "schema_version"          → u32 le (SCHEMA_VERSION)
//! models       model_id                  → ModelEntry
//! onnx         model_id                  → ONNX bytes
//! programs     model_id                  → program bytes (opaque here)
//! records      request_id                → InferenceRecord     (every accepted request)
//! tensors      sequence:u64be            → RecordTensors       (inputs and outputs)
//! pending      sequence:u64be            → request_id          (the pending log)
//! headers      number:u64be              → BatchHeader
//! bodies       (empty since schema 2; schema 1 kept a copy of every batch body here)
//! batch_index  number:u64be‖index:u64be  → request_id
//! receipts     request_id                → Receipt
//! settlement   opaque                    → opaque              (the settlement state machine's)
//! ```
//! Values are versioned messages ([`crate::codec`]); index values are raw
//! 32-byte ids. Big-endian numbers make key order numeric order.
//!
//! ## Inputs are written once (schema 2, docs/decisions/0013)
//! A request's tensors are written at acceptance and never copied: a batch
//! body ([`Store::body`]) is assembled on demand from the batch index, the
//! records and the tensors, and a seal writes only the header, the index,
//! the receipts and the pending-log removals. Tensors are keyed by
//! sequence, so they arrive in key order and RocksDB's compactions move
//! their files instead of rewriting them. [`Store::open`] migrates a
//! schema-1 store in place (re-keys the tensors, drops the body copies).
//!
//! ## Acknowledgement and durability (docs/decisions/0003)
//! * [`Store::accept`] writes the record, its tensors, its pending-log entry
//!   and a `Pending` receipt in one atomic batch **without fsync**. When it
//!   returns, the request survives a crash of the process (kill, panic,
//!   OOM) but not a power loss. This is the point at which the RPC
//!   acknowledges a submission.
//! * [`Store::commit_seal`] writes a whole batch (header, index, receipts
//!   with proofs, and the removal of its records from the pending log) as
//!   **one** atomic batch with one WAL fsync. The fsync also covers every
//!   acceptance written before it (one WAL).
//! * After reopening, the store is exactly at the last committed batch plus
//!   the pending log; [`Store::pending_records`] returns the pending records
//!   in acceptance order and the next seal takes them, unchanged.
//!
//! ## Invariants (checked by [`Store::fsck`])
//! * Batches are numbered from [`FIRST_BATCH`] without gaps, each names its
//!   parent's hash, timestamps never decrease, and every body (as
//!   assembled) recomputes to its header.
//! * Sequences are contiguous from 0: batched records in batch and leaf
//!   order, then the pending log. A seal always takes a prefix of the
//!   pending log.
//! * Every accepted record has its tensors and a receipt; a batched record's
//!   receipt carries a proof that verifies against its batch header.
//! * Writers are serialised by one mutex (a seal holds it through its
//!   fsync, so accepts wait at most one fsync); readers take no lock, apart
//!   from a brief one to read the cached head and counters, and see whole
//!   batches only (backend batches are atomic).

mod kv;
mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;

use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

pub use kv::{BatchOp, Cf, KeyRange, KvEntry, KvError, KvIter, KvStore, WriteBatch, prefix_end};
pub use mem::MemKv;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksKv;

use crate::batch::{
    BatchBody, BatchHeader, BodyEntry, BodyError, FIRST_BATCH, GENESIS_PARENT, Inclusion, InclusionError,
    MAX_BATCH_RECORDS, SealedRecords,
};
use crate::codec::{DecodeError, Malformed, Message, decode, encode};
use crate::hash::Hash32;
use crate::merkle::MerkleError;
use crate::model::{ModelEntry, SignatureError, check_signature};
use crate::receipt::{Receipt, Status};
use crate::record::{InferenceRecord, RecordError, RecordTensors, tensors_root};
use crate::tensor::Tensor;

/// The on-disk schema version this build reads and writes. Version 1
/// (tensors keyed by request id, a copy of every body) is migrated on open.
pub const SCHEMA_VERSION: u32 = 2;

const META_SCHEMA: &[u8] = b"schema_version";
/// `through_batch:u64le || below_sequence:u64le`: the tensors of every
/// batch ≤ `through_batch` (records with `sequence < below_sequence`) are
/// pruned. Absent: nothing pruned.
const META_PRUNED: &[u8] = b"tensors_pruned";

/// A RocksDB-backed store.
#[cfg(feature = "rocksdb")]
pub type RocksStore = Store<RocksKv>;

/// Store behaviour that is not part of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Fsync the WAL when committing a sealed batch. Always on in a node;
    /// off only to measure the cost of the fsync (benchmarks) or in tests
    /// that do not care about power loss.
    pub sync_seals: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { sync_seals: true }
    }
}

/// The newest sealed batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// Its number.
    pub number: u64,
    /// Its header hash.
    pub hash: Hash32,
    /// Its timestamp.
    pub timestamp_ms: u64,
}

impl ChainHead {
    fn of(h: &BatchHeader) -> Self {
        Self { number: h.number, hash: h.hash(), timestamp_ms: h.timestamp_ms }
    }
}

/// Which side of a model's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// The request's inputs.
    Input,
    /// The computed outputs.
    Output,
}

/// An inconsistency found in stored data. Each names what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// A key of the wrong length.
    #[error("{cf}: key of {len} bytes")]
    BadKey {
        /// Column family.
        cf: &'static str,
        /// Key length.
        len: usize,
    },
    /// A header stored under another number's key.
    #[error("header under key {key} has number {number}")]
    HeaderKey {
        /// The key.
        key: u64,
        /// The header's number.
        number: u64,
    },
    /// Batch numbers skip.
    #[error("expected batch {expected}, found {found}")]
    BatchGap {
        /// The next number expected.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// A header does not name its parent's hash.
    #[error("batch {number} does not link to its parent")]
    ParentMismatch {
        /// The batch.
        number: u64,
    },
    /// A header's timestamp is earlier than its parent's.
    #[error("batch {number}'s timestamp precedes its parent's")]
    TimestampOrder {
        /// The batch.
        number: u64,
    },
    /// A body that does not recompute to its header.
    #[error("batch {number}: {source}")]
    Body {
        /// The batch.
        number: u64,
        /// What is wrong.
        source: BodyError,
    },
    /// The batch index disagrees with the body.
    #[error("batch {number} index entry {index} missing or wrong")]
    IndexEntry {
        /// The batch.
        number: u64,
        /// Leaf index.
        index: u64,
    },
    /// A record id with no record.
    #[error("record {0} missing")]
    MissingRecord(Hash32),
    /// The records column disagrees with a body or the pending log.
    #[error("record {0} differs from its batch body or pending entry")]
    RecordMismatch(Hash32),
    /// A record without tensors.
    #[error("tensors of {0} missing")]
    MissingTensors(Hash32),
    /// Tensors left behind in a batch marked pruned.
    #[error("tensors of {0} remain in a pruned batch")]
    UnprunedTensors(Hash32),
    /// Stored tensors do not hash to the record's roots.
    #[error("tensors of {request_id}: {source}")]
    Tensors {
        /// The record.
        request_id: Hash32,
        /// What is wrong.
        source: RecordError,
    },
    /// A record without a receipt.
    #[error("receipt of {0} missing")]
    MissingReceipt(Hash32),
    /// A receipt whose status contradicts where the record is.
    #[error("receipt of {request_id} says {status} where the record is {expected}")]
    ReceiptStatus {
        /// The record.
        request_id: Hash32,
        /// The receipt's status name.
        status: &'static str,
        /// Where the record is ("pending" or "batched").
        expected: &'static str,
    },
    /// A batched receipt whose proof does not verify.
    #[error("receipt of {request_id}: {source}")]
    ReceiptProof {
        /// The record.
        request_id: Hash32,
        /// Why the proof fails.
        source: InclusionError,
    },
    /// The open store's head, next sequence or pending count disagree with
    /// what is on disk (a write was lost or made behind the store's back).
    #[error("in-memory chain view disagrees with the stored data")]
    ViewMismatch,
    /// Records that are neither in a batch nor in the pending log.
    #[error("{records} records stored, only {reachable} in batches or the pending log")]
    OrphanRecords {
        /// Records in the records column.
        records: u64,
        /// Records reachable from batches and the pending log.
        reachable: u64,
    },
    /// Sequences are not contiguous.
    #[error("expected sequence {expected}, found {found}")]
    SequenceGap {
        /// The sequence expected.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// Pruning asked for batches past the head.
    #[error("cannot prune through batch {number}: the head is {head}")]
    PruneBeyondHead {
        /// The batch asked for.
        number: u64,
        /// The head.
        head: u64,
    },
    /// The record's inputs and outputs were pruned
    /// ([`Store::prune_tensors_through`]): its batch is final and older than
    /// the node keeps tensors for. The record and its receipt remain.
    #[error(
        "request {0}: its inputs and outputs were pruned (its batch is final and past the node's tensor retention)"
    )]
    TensorsPruned(Hash32),
    /// Stored bytes did not decode.
    #[error("{cf}: {source}")]
    Decode {
        /// Column family.
        cf: &'static str,
        /// The decode error.
        source: DecodeError,
    },
    /// The store was written with another schema version.
    #[error("store schema version {found}, this build reads {expected}; migrate or use a matching build")]
    SchemaMismatch {
        /// The version on disk.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The store holds data but no schema version.
    #[error("store holds data but no schema version; not a verinfer store?")]
    SchemaMissing,
    /// No model with this id is registered.
    #[error("unknown model {0}")]
    UnknownModel(Hash32),
    /// A model entry violates its invariants.
    #[error("invalid model entry: {0}")]
    InvalidModel(Malformed),
    /// The ONNX bytes do not hash to the entry's model id.
    #[error("model id {claimed} does not match the ONNX bytes ({computed})")]
    ModelIdMismatch {
        /// The entry's id.
        claimed: Hash32,
        /// The bytes' id.
        computed: Hash32,
    },
    /// The model is registered with another program.
    #[error("model {model_id} is registered with program {existing}, not {new}")]
    ModelConflict {
        /// The model.
        model_id: Hash32,
        /// The registered program root.
        existing: Hash32,
        /// The program root offered now.
        new: Hash32,
    },
    /// Tensors do not match the model's signature.
    #[error("{role:?} tensors: {source}")]
    Signature {
        /// Inputs or outputs.
        role: TensorRole,
        /// The mismatch.
        source: SignatureError,
    },
    /// A batch timestamp earlier than its parent's.
    #[error("timestamp {given} precedes the parent batch's {parent}")]
    TimestampRegressed {
        /// The parent's timestamp.
        parent: u64,
        /// The timestamp given.
        given: u64,
    },
    /// Another batch was committed between prepare and commit.
    #[error("chain head moved from {expected:?} to {actual:?} since the batch was prepared")]
    HeadMoved {
        /// The head the batch was prepared on.
        expected: Option<u64>,
        /// The head now.
        actual: Option<u64>,
    },
    /// No record or receipt with this id.
    #[error("unknown request {0}")]
    UnknownRequest(Hash32),
    /// A status change the lifecycle does not allow.
    #[error("request {request_id}: cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        /// The request.
        request_id: Hash32,
        /// Its status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// Building a batch failed.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Building a proof failed.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// Stored data is inconsistent.
    #[error("store corrupt: {0}")]
    Corrupt(#[from] Corruption),
}

/// A request to accept: the model, the request's inputs and the outputs the
/// node computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    /// The registered model.
    pub model_id: Hash32,
    /// Inputs, in the model's input order.
    pub inputs: Vec<Tensor>,
    /// Outputs, in the model's output order.
    pub outputs: Vec<Tensor>,
    /// The node's clock at acceptance (ms since the Unix epoch).
    pub accepted_at_ms: u64,
}

/// A submission checked, hashed and encoded by [`Store::prepare_accept`],
/// waiting for its sequence.
#[derive(Clone, Debug)]
pub struct PreparedAccept {
    model_id: Hash32,
    program_root: Hash32,
    input_root: Hash32,
    output_root: Hash32,
    accepted_at_ms: u64,
    tensors: Vec<u8>,
}

/// Parameters of a seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealParams {
    /// The batch timestamp (not earlier than the parent's).
    pub timestamp_ms: u64,
    /// The sealing sequencer's id.
    pub sequencer: Hash32,
    /// At most this many records (clamped to `1..=MAX_BATCH_RECORDS`).
    pub max_records: u64,
}

/// A batch built from the pending log, ready to commit.
#[derive(Debug)]
pub struct PreparedBatch {
    sealed: SealedRecords,
    parent: Option<ChainHead>,
    writes: WriteBatch,
}

impl PreparedBatch {
    /// The header it will commit.
    pub fn header(&self) -> &BatchHeader {
        &self.sealed.header
    }

    /// The records it will commit, in leaf order.
    pub fn records(&self) -> &[InferenceRecord] {
        &self.sealed.records
    }

    /// Bytes the commit will write (keys and values).
    pub fn write_bytes(&self) -> usize {
        self.writes.byte_size()
    }
}

/// Whether [`Store::register_model`] stored anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    /// The model is new and now stored.
    Inserted,
    /// The same model and program were already registered.
    AlreadyPresent,
}

/// Settlement writes and status changes, applied atomically and synced.
#[derive(Clone, Debug, Default)]
pub struct SettlementUpdate {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    statuses: Vec<(Hash32, Status)>,
}

impl SettlementUpdate {
    /// An empty update.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a settlement key.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.writes.push((key.into(), Some(value.into())));
        self
    }

    /// Removes a settlement key.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.writes.push((key.into(), None));
        self
    }

    /// Moves a batched request to `status` (see [`Status::can_become`]).
    pub fn set_status(&mut self, request_id: Hash32, status: Status) -> &mut Self {
        self.statuses.push((request_id, status));
        self
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.statuses.is_empty()
    }
}

/// What [`Store::fsck`] found (when it found nothing wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// The head.
    pub head: Option<ChainHead>,
    /// Sealed batches.
    pub batches: u64,
    /// Records in sealed batches.
    pub batched_records: u64,
    /// Records in the pending log.
    pub pending: u64,
    /// The sequence the next accepted request gets.
    pub next_sequence: u64,
}

#[derive(Debug)]
struct Writer {
    head: Option<ChainHead>,
    next_sequence: u64,
    pending: u64,
    pruned: Pruned,
}

/// What [`Store::prune_tensors_through`] has removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Every batch ≤ this has no tensors (0: none pruned).
    pub through_batch: u64,
    /// Every record with a smaller sequence has no tensors.
    pub below_sequence: u64,
}

impl Pruned {
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let b: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Decode {
            cf: Cf::Meta.name(),
            source: DecodeError::Invalid {
                what: "tensors_pruned",
                detail: format!("{} bytes, expected 16", bytes.len()),
            },
        })?;
        let (t, s) = b.split_at(8);
        Ok(Self {
            through_batch: u64::from_le_bytes(t.try_into().unwrap_or_default()),
            below_sequence: u64::from_le_bytes(s.try_into().unwrap_or_default()),
        })
    }

    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.through_batch.to_le_bytes());
        b[8..].copy_from_slice(&self.below_sequence.to_le_bytes());
        b
    }
}

/// The store. Cheap reads from any thread; writes are serialised.
#[derive(Debug)]
pub struct Store<K: KvStore> {
    kv: K,
    opts: StoreOptions,
    writer: Mutex<Writer>,
    models: RwLock<HashMap<Hash32, ModelEntry>>,
}

/// Tensors migrated per write during the schema-1 migration.
const MIGRATE_CHUNK: usize = 256;

/// Migrates a schema-1 store to schema 2: moves every record's tensors from
/// its request id to its sequence, drops the copies of the bodies, then
/// records version 2. Each step is idempotent (a tensor under an 8-byte key
/// is already moved) and the version is written last, so a crash in the
/// middle leaves a store the next open migrates again.
fn migrate_v1<K: KvStore>(kv: &K) -> Result<(), StoreError> {
    // Both backends' scans see the data as of the scan's start, so writing
    // while iterating is safe.
    let mut b = WriteBatch::new();
    for item in kv.scan(Cf::Tensors, KeyRange::all(), false)? {
        let (k, v) = item?;
        if k.len() == 8 {
            continue;
        }
        let id = key_hash(Cf::Tensors, &k)?;
        let bytes = kv.get(Cf::Records, &id.0)?.ok_or(Corruption::MissingRecord(id))?;
        let r: InferenceRecord = dec(Cf::Records, &bytes)?;
        b.put(Cf::Tensors, be(r.sequence), v);
        b.delete(Cf::Tensors, k);
        if b.len() >= 2 * MIGRATE_CHUNK {
            kv.write(std::mem::take(&mut b), false)?;
        }
    }
    for item in kv.scan(Cf::Bodies, KeyRange::all(), false)? {
        b.delete(Cf::Bodies, item?.0);
    }
    b.put(Cf::Meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes());
    kv.write(b, true)?;
    Ok(())
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn index_key(number: u64, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&be(number));
    k[8..].copy_from_slice(&be(index));
    k
}

fn key_u64(cf: Cf, key: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = key.try_into().map_err(|_| Corruption::BadKey { cf: cf.name(), len: key.len() })?;
    Ok(u64::from_be_bytes(b))
}

fn key_hash(cf: Cf, bytes: &[u8]) -> Result<Hash32, StoreError> {
    let b: [u8; 32] = bytes.try_into().map_err(|_| Corruption::BadKey { cf: cf.name(), len: bytes.len() })?;
    Ok(Hash32(b))
}

fn dec<T: Message>(cf: Cf, bytes: &[u8]) -> Result<T, StoreError> {
    decode(bytes).map_err(|source| StoreError::Decode { cf: cf.name(), source })
}

fn u64_bounds(range: impl RangeBounds<u64>) -> Option<KeyRange> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1).map(be),
        Bound::Excluded(&e) => Some(be(e)),
        Bound::Unbounded => None,
    };
    if end.is_some_and(|e| e <= be(start)) {
        return None;
    }
    Some(KeyRange { start: Some(be(start).to_vec()), end: end.map(|e| e.to_vec()) })
}

#[cfg(feature = "rocksdb")]
impl Store<RocksKv> {
    /// Opens (creating if missing) a RocksDB store at `path`.
    pub fn open_path(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Self, StoreError> {
        Self::open(RocksKv::open(path)?, opts)
    }
}

impl<K: KvStore> Store<K> {
    /// Opens a store over `kv`: checks (or, for an empty store, writes) the
    /// schema version, then recovers the chain head and the pending log.
    pub fn open(kv: K, opts: StoreOptions) -> Result<Self, StoreError> {
        match kv.get(Cf::Meta, META_SCHEMA)? {
            Some(bytes) => {
                let found =
                    <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_le_bytes).map_err(|_| StoreError::Decode {
                        cf: Cf::Meta.name(),
                        source: DecodeError::Invalid {
                            what: "schema_version",
                            detail: format!("{} bytes, expected 4", bytes.len()),
                        },
                    })?;
                if found == 1 {
                    migrate_v1(&kv)?;
                } else if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch { found, expected: SCHEMA_VERSION });
                }
            }
            None => {
                for cf in Cf::ALL {
                    if kv.scan(cf, KeyRange::all(), false)?.next().is_some() {
                        return Err(StoreError::SchemaMissing);
                    }
                }
                kv.put(Cf::Meta, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes(), true)?;
            }
        }

        let head = match kv.last(Cf::Headers, KeyRange::all())? {
            None => None,
            Some((k, v)) => {
                let key = key_u64(Cf::Headers, &k)?;
                let h: BatchHeader = dec(Cf::Headers, &v)?;
                if h.number != key {
                    return Err(Corruption::HeaderKey { key, number: h.number }.into());
                }
                Some(ChainHead::of(&h))
            }
        };
        let mut pending = 0u64;
        let mut last_pending = None;
        for item in kv.scan(Cf::Pending, KeyRange::all(), false)? {
            let (k, _) = item?;
            last_pending = Some(key_u64(Cf::Pending, &k)?);
            pending += 1;
        }
        let next_sequence = match (last_pending, head) {
            (Some(s), _) => s + 1,
            (None, None) => 0,
            (None, Some(h)) => {
                let range = KeyRange::prefix(&be(h.number));
                let (_, id) =
                    kv.last(Cf::BatchIndex, range)?.ok_or(Corruption::IndexEntry { number: h.number, index: 0 })?;
                let id = key_hash(Cf::BatchIndex, &id)?;
                let bytes = kv.get(Cf::Records, &id.0)?.ok_or(Corruption::MissingRecord(id))?;
                let r: InferenceRecord = dec(Cf::Records, &bytes)?;
                r.sequence + 1
            }
        };
        let pruned = kv.get(Cf::Meta, META_PRUNED)?.map(|b| Pruned::decode(&b)).transpose()?.unwrap_or_default();
        Ok(Self {
            kv,
            opts,
            writer: Mutex::new(Writer { head, next_sequence, pending, pruned }),
            models: RwLock::new(HashMap::new()),
        })
    }

    /// The backend.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // The writer state is only updated after a successful write, so a
        // panic elsewhere cannot leave it describing a half-done operation.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get_msg<T: Message>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.kv.visit(cf, key, &mut |b| out = Some(dec(cf, b)))?;
        out.transpose()
    }

    // ----- models -------------------------------------------------------

    /// Registers a model with its ONNX bytes and serialised program.
    /// Durable (synced) when it returns. Re-registering the same model and
    /// program is a no-op; the same model with another program is an error.
    pub fn register_model(&self, entry: &ModelEntry, onnx: &[u8], program: &[u8]) -> Result<Registered, StoreError> {
        entry.validate().map_err(StoreError::InvalidModel)?;
        let computed = crate::model::model_id(onnx);
        if computed != entry.model_id {
            return Err(StoreError::ModelIdMismatch { claimed: entry.model_id, computed });
        }
        let _w = self.lock();
        if let Some(existing) = self.model(&entry.model_id)? {
            if existing.program_root != entry.program_root {
                return Err(StoreError::ModelConflict {
                    model_id: entry.model_id,
                    existing: existing.program_root,
                    new: entry.program_root,
                });
            }
            return Ok(Registered::AlreadyPresent);
        }
        let id = entry.model_id.0;
        let mut b = WriteBatch::new();
        b.put(Cf::Models, id, encode(entry));
        b.put(Cf::Onnx, id, onnx);
        b.put(Cf::Programs, id, program);
        self.kv.write(b, true)?;
        Ok(Registered::Inserted)
    }

    /// A registered model.
    pub fn model(&self, model_id: &Hash32) -> Result<Option<ModelEntry>, StoreError> {
        if let Some(m) = self.models.read().unwrap_or_else(PoisonError::into_inner).get(model_id) {
            return Ok(Some(m.clone()));
        }
        let m: Option<ModelEntry> = self.get_msg(Cf::Models, &model_id.0)?;
        if let Some(m) = &m {
            self.models.write().unwrap_or_else(PoisonError::into_inner).insert(*model_id, m.clone());
        }
        Ok(m)
    }

    /// A model's ONNX bytes.
    pub fn model_onnx(&self, model_id: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(Cf::Onnx, &model_id.0)?)
    }

    /// A model's serialised program.
    pub fn model_program(&self, model_id: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(Cf::Programs, &model_id.0)?)
    }

    /// Every registered model, by id.
    pub fn models(&self) -> Result<impl Iterator<Item = Result<ModelEntry, StoreError>> + '_, StoreError> {
        let it = self.kv.scan(Cf::Models, KeyRange::all(), false)?;
        Ok(it.map(|r| dec(Cf::Models, &r?.1)))
    }

    // ----- acceptance ---------------------------------------------------

    /// Accepts a request: [`Store::prepare_accept`] then
    /// [`Store::accept_prepared`]. When this returns the request survives a
    /// process crash (see the module docs).
    pub fn accept(&self, sub: Submission) -> Result<InferenceRecord, StoreError> {
        self.accept_prepared(self.prepare_accept(sub)?)
    }

    /// The part of acceptance that needs no ordering: checks the submission
    /// against the model's signature, hashes its tensors and encodes them.
    /// Callers run it on their own threads, so that only the sequence
    /// assignment and the write are serialised.
    pub fn prepare_accept(&self, sub: Submission) -> Result<PreparedAccept, StoreError> {
        let model = self.model(&sub.model_id)?.ok_or(StoreError::UnknownModel(sub.model_id))?;
        check_signature(&model.inputs, &sub.inputs)
            .map_err(|source| StoreError::Signature { role: TensorRole::Input, source })?;
        check_signature(&model.outputs, &sub.outputs)
            .map_err(|source| StoreError::Signature { role: TensorRole::Output, source })?;
        Ok(PreparedAccept {
            model_id: sub.model_id,
            program_root: model.program_root,
            input_root: tensors_root(&sub.inputs),
            output_root: tensors_root(&sub.outputs),
            accepted_at_ms: sub.accepted_at_ms,
            tensors: encode(&RecordTensors { inputs: sub.inputs, outputs: sub.outputs }),
        })
    }

    /// Assigns the next sequence and writes the record, its tensors, its
    /// pending-log entry and a `Pending` receipt atomically, without fsync.
    pub fn accept_prepared(&self, p: PreparedAccept) -> Result<InferenceRecord, StoreError> {
        let mut w = self.lock();
        let seq = w.next_sequence;
        let record =
            InferenceRecord::from_roots(p.model_id, p.program_root, p.input_root, p.output_root, seq, p.accepted_at_ms);
        let id = record.request_id.0;
        let mut b = WriteBatch::new();
        b.put(Cf::Records, id, encode(&record));
        b.put(Cf::Tensors, be(seq), p.tensors);
        b.put(Cf::Pending, be(seq), id);
        b.put(Cf::Receipts, id, encode(&Receipt::pending(record.request_id)));
        self.kv.write(b, false)?;
        w.next_sequence = seq + 1;
        w.pending += 1;
        Ok(record)
    }

    /// The pending log's records, in acceptance order.
    pub fn pending_records(
        &self,
    ) -> Result<impl Iterator<Item = Result<InferenceRecord, StoreError>> + '_, StoreError> {
        let it = self.kv.scan(Cf::Pending, KeyRange::all(), false)?;
        Ok(it.map(move |item| {
            let (k, v) = item?;
            let seq = key_u64(Cf::Pending, &k)?;
            let id = key_hash(Cf::Pending, &v)?;
            let r = self.record(&id)?.ok_or(Corruption::MissingRecord(id))?;
            if r.sequence != seq {
                return Err(Corruption::RecordMismatch(id).into());
            }
            Ok(r)
        }))
    }

    /// Records in the pending log.
    pub fn pending_count(&self) -> u64 {
        self.lock().pending
    }

    /// The sequence the next accepted request gets.
    pub fn next_sequence(&self) -> u64 {
        self.lock().next_sequence
    }

    // ----- sealing ------------------------------------------------------

    /// Builds the next batch from (a prefix of) the pending log, without
    /// writing anything; `None` if the log is empty.
    pub fn prepare_seal(&self, params: &SealParams) -> Result<Option<PreparedBatch>, StoreError> {
        let parent = self.head();
        let (number, parent_hash) = match parent {
            None => (FIRST_BATCH, GENESIS_PARENT),
            Some(h) => (h.number + 1, h.hash),
        };
        if let Some(p) = parent
            && params.timestamp_ms < p.timestamp_ms
        {
            return Err(StoreError::TimestampRegressed { parent: p.timestamp_ms, given: params.timestamp_ms });
        }
        let max = params.max_records.clamp(1, MAX_BATCH_RECORDS) as usize;
        let mut records = Vec::new();
        let mut pending_keys = Vec::new();
        for item in self.kv.scan(Cf::Pending, KeyRange::all(), false)?.take(max) {
            let (k, v) = item?;
            let seq = key_u64(Cf::Pending, &k)?;
            let id = key_hash(Cf::Pending, &v)?;
            let record: InferenceRecord = self.get_msg(Cf::Records, &id.0)?.ok_or(Corruption::MissingRecord(id))?;
            if record.sequence != seq {
                return Err(Corruption::RecordMismatch(id).into());
            }
            records.push(record);
            pending_keys.push(k);
        }
        if records.is_empty() {
            return Ok(None);
        }
        // The inputs are not read: acceptance hashed them into each record's
        // input root, and they stay where acceptance wrote them.
        let sealed = SealedRecords::build(number, parent_hash, params.timestamp_ms, params.sequencer, records)?;

        let nk = be(number);
        let mut b = WriteBatch::new();
        b.put(Cf::Headers, nk, encode(&sealed.header));
        for (i, (r, pk)) in sealed.records.iter().zip(pending_keys).enumerate() {
            let i = i as u64;
            let id = r.request_id;
            let inclusion = Inclusion { batch: number, proof: sealed.tree.proof(i)? };
            b.put(Cf::BatchIndex, index_key(number, i), id.0);
            b.put(Cf::Receipts, id.0, encode(&Receipt::batched(id, inclusion)));
            b.delete(Cf::Pending, pk);
        }
        Ok(Some(PreparedBatch { sealed, parent, writes: b }))
    }

    /// Commits a prepared batch as one atomic write, fsynced unless
    /// [`StoreOptions::sync_seals`] is off. Fails with
    /// [`StoreError::HeadMoved`] if another batch was committed since it was
    /// prepared.
    pub fn commit_seal(&self, prepared: PreparedBatch) -> Result<SealedRecords, StoreError> {
        let mut w = self.lock();
        if w.head != prepared.parent {
            return Err(StoreError::HeadMoved {
                expected: prepared.parent.map(|h| h.number),
                actual: w.head.map(|h| h.number),
            });
        }
        self.kv.write(prepared.writes, self.opts.sync_seals)?;
        w.head = Some(ChainHead::of(&prepared.sealed.header));
        w.pending = w.pending.saturating_sub(prepared.sealed.header.record_count);
        Ok(prepared.sealed)
    }

    /// Prepares and commits the next batch; `None` if nothing is pending.
    pub fn seal(&self, params: &SealParams) -> Result<Option<SealedRecords>, StoreError> {
        match self.prepare_seal(params)? {
            None => Ok(None),
            Some(p) => self.commit_seal(p).map(Some),
        }
    }

    // ----- batches and records -----------------------------------------

    /// The newest batch.
    pub fn head(&self) -> Option<ChainHead> {
        self.lock().head
    }

    /// Batch `number`'s header.
    pub fn header(&self, number: u64) -> Result<Option<BatchHeader>, StoreError> {
        self.get_msg(Cf::Headers, &be(number))
    }

    /// Batch `number`'s body, assembled from its records and their stored
    /// inputs (linear in the batch's input bytes; nothing is cached).
    pub fn body(&self, number: u64) -> Result<Option<BatchBody>, StoreError> {
        let Some(h) = self.header(number)? else { return Ok(None) };
        let mut entries = Vec::with_capacity(h.record_count.min(MAX_BATCH_RECORDS) as usize);
        for item in self.records_in_batch(number, 0)? {
            let (index, record) = item?;
            if index != entries.len() as u64 {
                return Err(Corruption::IndexEntry { number, index: entries.len() as u64 }.into());
            }
            let t = self.tensors_at(&record)?;
            entries.push(BodyEntry { record, inputs: t.inputs });
        }
        if entries.len() as u64 != h.record_count {
            return Err(Corruption::IndexEntry { number, index: entries.len() as u64 }.into());
        }
        Ok(Some(BatchBody { entries }))
    }

    /// Headers with numbers in `range`, ascending (descending if `newest_first`).
    pub fn headers(
        &self,
        range: impl RangeBounds<u64>,
        newest_first: bool,
    ) -> Result<impl Iterator<Item = Result<BatchHeader, StoreError>> + '_, StoreError> {
        let it: KvIter<'_> = match u64_bounds(range) {
            None => Box::new(std::iter::empty()),
            Some(r) => self.kv.scan(Cf::Headers, r, newest_first)?,
        };
        Ok(it.map(|item| {
            let (k, v) = item?;
            let key = key_u64(Cf::Headers, &k)?;
            let h: BatchHeader = dec(Cf::Headers, &v)?;
            if h.number != key {
                return Err(Corruption::HeaderKey { key, number: h.number }.into());
            }
            Ok(h)
        }))
    }

    /// A record by request id (pending or batched).
    pub fn record(&self, request_id: &Hash32) -> Result<Option<InferenceRecord>, StoreError> {
        self.get_msg(Cf::Records, &request_id.0)
    }

    /// A record's inputs and outputs.
    pub fn record_tensors(&self, request_id: &Hash32) -> Result<Option<RecordTensors>, StoreError> {
        match self.record(request_id)? {
            None => Ok(None),
            Some(r) => self.tensors_at(&r).map(Some),
        }
    }

    /// The tensors stored for `record` (under its sequence).
    fn tensors_at(&self, record: &InferenceRecord) -> Result<RecordTensors, StoreError> {
        match self.get_msg(Cf::Tensors, &be(record.sequence))? {
            Some(t) => Ok(t),
            None if record.sequence < self.pruned().below_sequence => Err(StoreError::TensorsPruned(record.request_id)),
            None => Err(Corruption::MissingTensors(record.request_id).into()),
        }
    }

    /// What has been pruned so far.
    pub fn pruned(&self) -> Pruned {
        self.lock().pruned
    }

    /// Deletes the inputs and outputs of every record of batches
    /// `..=number` (each batch once; records, receipts, headers and the
    /// batch index stay), in one synced write. The caller decides what may
    /// go: the node prunes only batches that are final in settlement and
    /// older than its retention. Returns the records whose tensors were
    /// deleted. A number at or below what was already pruned is a no-op.
    pub fn prune_tensors_through(&self, number: u64) -> Result<u64, StoreError> {
        let mut w = self.lock();
        let head = w.head.map_or(0, |h| h.number);
        if number > head {
            return Err(StoreError::PruneBeyondHead { number, head });
        }
        let mut next = w.pruned;
        if number <= next.through_batch {
            return Ok(0);
        }
        let mut b = WriteBatch::new();
        let mut deleted = 0u64;
        for n in next.through_batch + 1..=number {
            for item in self.records_in_batch(n, 0)? {
                let (_, r) = item?;
                b.delete(Cf::Tensors, be(r.sequence));
                next.below_sequence = next.below_sequence.max(r.sequence + 1);
                deleted += 1;
            }
        }
        next.through_batch = number;
        b.put(Cf::Meta, META_PRUNED, next.encode());
        self.kv.write(b, true)?;
        w.pruned = next;
        Ok(deleted)
    }

    /// A request's receipt.
    pub fn receipt(&self, request_id: &Hash32) -> Result<Option<Receipt>, StoreError> {
        self.get_msg(Cf::Receipts, &request_id.0)
    }

    /// The record at leaf `index` of batch `number`.
    pub fn record_at(&self, number: u64, index: u64) -> Result<Option<InferenceRecord>, StoreError> {
        match self.kv.get(Cf::BatchIndex, &index_key(number, index))? {
            None => Ok(None),
            Some(id) => {
                let id = key_hash(Cf::BatchIndex, &id)?;
                Ok(Some(self.record(&id)?.ok_or(Corruption::MissingRecord(id))?))
            }
        }
    }

    /// Batch `number`'s records in leaf order, starting at leaf `from`.
    pub fn records_in_batch(
        &self,
        number: u64,
        from: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, InferenceRecord), StoreError>> + '_, StoreError> {
        let range = KeyRange::between(index_key(number, from).to_vec(), prefix_end(&be(number)));
        let it = self.kv.scan(Cf::BatchIndex, range, false)?;
        Ok(it.map(move |item| {
            let (k, v) = item?;
            let index = key_u64(Cf::BatchIndex, k.get(8..).unwrap_or_default())?;
            let id = key_hash(Cf::BatchIndex, &v)?;
            let r = self.record(&id)?.ok_or(Corruption::MissingRecord(id))?;
            Ok((index, r))
        }))
    }

    // ----- settlement ---------------------------------------------------

    /// A settlement value.
    pub fn settlement_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(Cf::Settlement, key)?)
    }

    /// Settlement entries whose key starts with `prefix`, ascending.
    pub fn settlement_scan(
        &self,
        prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<KvEntry, StoreError>> + '_, StoreError> {
        Ok(self.kv.scan_prefix(Cf::Settlement, prefix)?.map(|r| r.map_err(StoreError::from)))
    }

    /// Applies settlement writes and status changes in one synced batch,
    /// after checking every status change against the lifecycle (nothing is
    /// written if one is refused).
    pub fn apply_settlement(&self, update: SettlementUpdate) -> Result<(), StoreError> {
        if update.is_empty() {
            return Ok(());
        }
        let _w = self.lock();
        let mut b = WriteBatch::new();
        // Later changes to the same request see earlier ones in this update.
        let mut staged: HashMap<Hash32, Receipt> = HashMap::new();
        for (id, to) in update.statuses {
            let mut receipt = match staged.remove(&id) {
                Some(r) => r,
                None => self.receipt(&id)?.ok_or(StoreError::UnknownRequest(id))?,
            };
            let to = match (to, &receipt.inclusion) {
                // "Back to batched" is always to the record's own position.
                (Status::Batched { .. }, Some(inc)) => Status::Batched { batch: inc.batch, index: inc.index() },
                (s, _) => s,
            };
            if !receipt.status.can_become(&to) || receipt.inclusion.is_none() {
                return Err(StoreError::InvalidTransition { request_id: id, from: receipt.status, to });
            }
            receipt.status = to;
            staged.insert(id, receipt);
        }
        for (id, receipt) in staged {
            b.put(Cf::Receipts, id.0, encode(&receipt));
        }
        for (k, v) in update.writes {
            match v {
                Some(v) => b.put(Cf::Settlement, k, v),
                None => b.delete(Cf::Settlement, k),
            }
        }
        self.kv.write(b, true)?;
        Ok(())
    }

    // ----- maintenance --------------------------------------------------

    /// Writes a consistent snapshot of the whole store to `dir` (which must
    /// not exist); the snapshot opens as a store of its own. With RocksDB
    /// this is a `Checkpoint`: hard links to the SST files plus a copy of the
    /// live WAL, so it is cheap and includes unsynced acknowledged writes.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        Ok(self.kv.checkpoint(dir)?)
    }

    /// Walks the whole store and checks every invariant in the module docs,
    /// recomputing every body's roots. Linear in the store's size: for
    /// tests, recovery drills and an operator's `fsck`, not the hot path.
    pub fn fsck(&self) -> Result<ChainSummary, StoreError> {
        let pruned_through = self.pruned().through_batch;
        let mut expected_number = FIRST_BATCH;
        let mut parent: Option<BatchHeader> = None;
        let mut next_seq = 0u64;
        let mut batched = 0u64;
        for h in self.headers(.., false)? {
            let h = h?;
            if h.number != expected_number {
                return Err(Corruption::BatchGap { expected: expected_number, found: h.number }.into());
            }
            let parent_hash = parent.as_ref().map_or(GENESIS_PARENT, BatchHeader::hash);
            if h.parent_hash != parent_hash {
                return Err(Corruption::ParentMismatch { number: h.number }.into());
            }
            if parent.as_ref().is_some_and(|p| h.timestamp_ms < p.timestamp_ms) {
                return Err(Corruption::TimestampOrder { number: h.number }.into());
            }
            // What the header commits to, through the records; each
            // record's inputs and outputs are checked below, read and hashed
            // once (a pruned batch has its records but no tensors).
            let pruned = h.number <= pruned_through;
            let mut entries = Vec::with_capacity(h.record_count.min(MAX_BATCH_RECORDS) as usize);
            for item in self.records_in_batch(h.number, 0)? {
                let (index, record) = item?;
                if index != entries.len() as u64 {
                    return Err(Corruption::IndexEntry { number: h.number, index: entries.len() as u64 }.into());
                }
                entries.push(BodyEntry { record, inputs: Vec::new() });
            }
            if entries.len() as u64 != h.record_count {
                return Err(Corruption::IndexEntry { number: h.number, index: entries.len() as u64 }.into());
            }
            let body = BatchBody { entries };
            body.verify_records(&h).map_err(|source| Corruption::Body { number: h.number, source })?;
            let tree = body.tree()?;
            for (i, e) in body.entries.iter().enumerate() {
                let i = i as u64;
                let r = &e.record;
                if r.sequence != next_seq {
                    return Err(Corruption::SequenceGap { expected: next_seq, found: r.sequence }.into());
                }
                next_seq += 1;
                if pruned {
                    if self.kv.get(Cf::Tensors, &be(r.sequence))?.is_some() {
                        return Err(Corruption::UnprunedTensors(r.request_id).into());
                    }
                } else {
                    self.check_tensors(r)?;
                }
                let receipt = self.receipt(&r.request_id)?.ok_or(Corruption::MissingReceipt(r.request_id))?;
                let inc = match (&receipt.status, &receipt.inclusion) {
                    (Status::Pending, _) | (_, None) => {
                        return Err(Corruption::ReceiptStatus {
                            request_id: r.request_id,
                            status: receipt.status.name(),
                            expected: "batched",
                        }
                        .into());
                    }
                    (_, Some(inc)) => inc,
                };
                inc.verify_at(&h, r, i)
                    .map_err(|source| Corruption::ReceiptProof { request_id: r.request_id, source })?;
                // The stored proof is the canonical one for this tree.
                if inc.proof != tree.proof(i)? {
                    return Err(Corruption::ReceiptProof {
                        request_id: r.request_id,
                        source: InclusionError::IndexMismatch { proof: inc.index(), expected: i },
                    }
                    .into());
                }
            }
            batched += h.record_count;
            expected_number += 1;
            parent = Some(h);
        }
        let head = parent.as_ref().map(ChainHead::of);
        let mut pending = 0u64;
        for item in self.kv.scan(Cf::Pending, KeyRange::all(), false)? {
            let (k, v) = item?;
            let seq = key_u64(Cf::Pending, &k)?;
            if seq != next_seq {
                return Err(Corruption::SequenceGap { expected: next_seq, found: seq }.into());
            }
            let id = key_hash(Cf::Pending, &v)?;
            let r = self.record(&id)?.ok_or(Corruption::MissingRecord(id))?;
            if r.sequence != seq {
                return Err(Corruption::RecordMismatch(id).into());
            }
            self.check_tensors(&r)?;
            let receipt = self.receipt(&id)?.ok_or(Corruption::MissingReceipt(id))?;
            if receipt.status != Status::Pending {
                return Err(Corruption::ReceiptStatus {
                    request_id: id,
                    status: receipt.status.name(),
                    expected: "pending",
                }
                .into());
            }
            next_seq += 1;
            pending += 1;
        }
        let mut records = 0u64;
        for item in self.kv.scan(Cf::Records, KeyRange::all(), false)? {
            item?;
            records += 1;
        }
        if records != batched + pending {
            return Err(Corruption::OrphanRecords { records, reachable: batched + pending }.into());
        }
        let w = self.lock();
        if w.head != head || w.next_sequence != next_seq || w.pending != pending {
            return Err(Corruption::ViewMismatch.into());
        }
        Ok(ChainSummary {
            head,
            batches: expected_number - FIRST_BATCH,
            batched_records: batched,
            pending,
            next_sequence: next_seq,
        })
    }

    fn check_tensors(&self, r: &InferenceRecord) -> Result<(), StoreError> {
        let t = self.tensors_at(r)?;
        t.check(r).map_err(|source| Corruption::Tensors { request_id: r.request_id, source })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
