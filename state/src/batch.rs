//! Batches: headers, bodies, and record inclusion proofs.
//!
//! A batch commits an ordered list of records. Its header is what the
//! settlement layer stores and what every proof is checked against:
//!
//! ```text
//! records_root = merkle_root(leaf(record_0) … leaf(record_{n-1}))   (bound to n)
//! header hash  = H(BatchHeader || borsh(header))                    (borsh includes the version byte)
//! ```
//!
//! Numbering: the first batch is number [`FIRST_BATCH`] = 1 and its
//! `parent_hash` is [`GENESIS_PARENT`] (all zero); batch `k > 1` names the
//! hash of batch `k-1`. There is no batch 0, so `0` is free to mean "no batch
//! yet" wherever a count or a head number is reported. A batch is never empty.
//!
//! The body carries each record with its input tensors, so a challenger can
//! re-execute every record from the body alone (data availability); outputs
//! are not needed for that, since the challenger computes its own and
//! compares roots.
//!
//! ## Invariants
//! * A header that decodes has `1 ≤ record_count ≤ MAX_BATCH_RECORDS`,
//!   `number ≥ 1`, and a zero parent exactly when it is the first batch.
//! * [`verify_inclusion`] needs nothing but the header, the record and the
//!   proof; it binds the proof to the header's record count.
//! * [`BatchBody::verify`] recomputes everything the header commits to from
//!   the body: count, records root, and each record's input root.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::codec::{Malformed, encode};
use crate::hash::{Domain, Hash32, hash};
use crate::merkle::{self, MerkleError, MerkleProof, MerkleTree};
use crate::record::{InferenceRecord, RecordError};
use crate::tensor::Tensor;
use crate::versioned_message;

/// The number of the first batch.
pub const FIRST_BATCH: u64 = 1;

/// The parent hash of the first batch.
pub const GENESIS_PARENT: Hash32 = Hash32::ZERO;

/// Most records one batch may hold (2^20).
pub const MAX_BATCH_RECORDS: u64 = 1 << 20;

versioned_message! {
    /// A batch header.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    pub struct BatchHeader (name = "BatchHeader", version = 1, check = check_header) {
        /// Position in the chain, from [`FIRST_BATCH`].
        pub number: u64,
        /// Hash of batch `number - 1`'s header; [`GENESIS_PARENT`] for the first.
        pub parent_hash: Hash32,
        /// Bound Merkle root over the records' leaf hashes.
        pub records_root: Hash32,
        /// Number of records (the leaf count `records_root` is bound to).
        pub record_count: u64,
        /// When the batch was sealed (ms since the Unix epoch, caller's clock);
        /// never earlier than the parent's.
        pub timestamp_ms: u64,
        /// The sequencer that sealed it (a 32-byte id, e.g. its key's hash).
        pub sequencer: Hash32,
    }
}

fn check_header(h: &BatchHeader) -> Result<(), Malformed> {
    if h.number < FIRST_BATCH {
        return Err(Malformed::Invariant("batch number 0 does not exist"));
    }
    if (h.number == FIRST_BATCH) != (h.parent_hash == GENESIS_PARENT) {
        return Err(Malformed::Invariant("zero parent hash exactly for the first batch"));
    }
    if h.record_count == 0 || h.record_count > MAX_BATCH_RECORDS {
        return Err(Malformed::Invariant("record count out of range"));
    }
    Ok(())
}

impl BatchHeader {
    /// `H(BatchHeader || borsh(header))`.
    pub fn hash(&self) -> Hash32 {
        hash(Domain::BatchHeader, &encode(self))
    }

    /// Checks the invariants decoding enforces.
    pub fn validate(&self) -> Result<(), Malformed> {
        check_header(self)
    }
}

/// One record of a body with its input tensors.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct BodyEntry {
    /// The record (the leaf).
    pub record: InferenceRecord,
    /// The request's inputs; they hash to `record.input_root`.
    pub inputs: Vec<Tensor>,
}

versioned_message! {
    /// A batch body: its records, in leaf order, with their inputs.
    #[derive(Clone, Debug, PartialEq)]
    pub struct BatchBody (name = "BatchBody", version = 1) {
        /// The entries, in leaf order.
        pub entries: Vec<BodyEntry>,
    }
}

/// Why a body does not match a header, or a batch cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A batch must hold at least one record.
    #[error("a batch cannot be empty")]
    Empty,
    /// More records than [`MAX_BATCH_RECORDS`].
    #[error("{0} records exceed the per-batch maximum {MAX_BATCH_RECORDS}")]
    TooManyRecords(u64),
    /// The body holds a different number of records than the header says.
    #[error("body has {body} records, header says {header}")]
    CountMismatch {
        /// Records in the body.
        body: u64,
        /// The header's record count.
        header: u64,
    },
    /// The records do not hash to the header's records root.
    #[error("body records hash to {computed}, header says {expected}")]
    RootMismatch {
        /// The header's root.
        expected: Hash32,
        /// The body's root.
        computed: Hash32,
    },
    /// Record `index`'s inputs do not hash to its input root, or its id is forged.
    #[error("record {index}: {source}")]
    Record {
        /// Leaf index.
        index: u64,
        /// What is wrong.
        source: RecordError,
    },
    /// Records are not in strictly increasing sequence order.
    #[error("record {index} has sequence {sequence}, not above its predecessor's")]
    SequenceOrder {
        /// Leaf index.
        index: u64,
        /// Its sequence.
        sequence: u64,
    },
    /// The header is malformed (see [`BatchHeader::validate`]).
    #[error("malformed header: {0}")]
    Header(Malformed),
    /// Merkle construction failed.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

impl BatchBody {
    /// The records, in leaf order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &InferenceRecord> {
        self.entries.iter().map(|e| &e.record)
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> Vec<Hash32> {
        self.records().map(InferenceRecord::leaf_hash).collect()
    }

    /// The records tree.
    pub fn tree(&self) -> Result<MerkleTree, BodyError> {
        records_tree(self.records())
    }

    /// Checks the body's own rules: the record rules of
    /// [`check_records`], and every record's inputs hashing to its input
    /// root.
    pub fn check_entries(&self) -> Result<(), BodyError> {
        check_records(self.records())?;
        for (i, e) in self.entries.iter().enumerate() {
            e.record.check_inputs(&e.inputs).map_err(|source| BodyError::Record { index: i as u64, source })?;
        }
        Ok(())
    }

    /// Recomputes everything `header` commits to from this body.
    pub fn verify(&self, header: &BatchHeader) -> Result<(), BodyError> {
        self.verify_with(header, true)
    }

    /// What [`BatchBody::verify`] checks except the inputs, which are
    /// ignored: for a batch whose inputs were pruned, checked through its
    /// records alone (count, record rules, records root).
    pub fn verify_records(&self, header: &BatchHeader) -> Result<(), BodyError> {
        self.verify_with(header, false)
    }

    fn verify_with(&self, header: &BatchHeader, inputs: bool) -> Result<(), BodyError> {
        header.validate().map_err(BodyError::Header)?;
        let n = self.entries.len() as u64;
        if n != header.record_count {
            return Err(BodyError::CountMismatch { body: n, header: header.record_count });
        }
        if inputs {
            self.check_entries()?;
        } else {
            check_records(self.records())?;
        }
        let computed = self.tree()?.root();
        if computed != header.records_root {
            return Err(BodyError::RootMismatch { expected: header.records_root, computed });
        }
        Ok(())
    }
}

/// The rules a batch's records follow on their own: non-empty, within
/// [`MAX_BATCH_RECORDS`], sequences strictly increasing, every record's id
/// derived from its fields.
pub fn check_records<'a>(records: impl ExactSizeIterator<Item = &'a InferenceRecord>) -> Result<(), BodyError> {
    let n = records.len() as u64;
    if n == 0 {
        return Err(BodyError::Empty);
    }
    if n > MAX_BATCH_RECORDS {
        return Err(BodyError::TooManyRecords(n));
    }
    let mut prev: Option<u64> = None;
    for (i, r) in records.enumerate() {
        let index = i as u64;
        if prev.is_some_and(|p| r.sequence <= p) {
            return Err(BodyError::SequenceOrder { index, sequence: r.sequence });
        }
        prev = Some(r.sequence);
        r.check_id().map_err(|source| BodyError::Record { index, source })?;
    }
    Ok(())
}

/// The tree over `records`' leaf hashes.
fn records_tree<'a>(records: impl Iterator<Item = &'a InferenceRecord>) -> Result<MerkleTree, BodyError> {
    let leaves: Vec<Hash32> = records.map(InferenceRecord::leaf_hash).collect();
    Ok(MerkleTree::from_leaves(&leaves)?)
}

/// A sealed batch without its inputs: the header, its records in leaf
/// order and the records tree (kept for proofs). This is what the store
/// seals: the inputs stay where acceptance wrote them, and the body is
/// assembled from there only when someone needs it (posting, the explorer).
#[derive(Clone, Debug)]
pub struct SealedRecords {
    /// The header.
    pub header: BatchHeader,
    /// The records, in leaf order.
    pub records: Vec<InferenceRecord>,
    /// The tree over the records' leaves.
    pub tree: MerkleTree,
}

impl SealedRecords {
    /// Builds batch `number` on top of `parent_hash` from `records`, after
    /// checking them with [`check_records`]. Does not look at inputs.
    pub fn build(
        number: u64,
        parent_hash: Hash32,
        timestamp_ms: u64,
        sequencer: Hash32,
        records: Vec<InferenceRecord>,
    ) -> Result<Self, BodyError> {
        check_records(records.iter())?;
        Self::assemble(number, parent_hash, timestamp_ms, sequencer, records)
    }

    /// [`SealedRecords::build`] for records already checked.
    fn assemble(
        number: u64,
        parent_hash: Hash32,
        timestamp_ms: u64,
        sequencer: Hash32,
        records: Vec<InferenceRecord>,
    ) -> Result<Self, BodyError> {
        let tree = records_tree(records.iter())?;
        let header = BatchHeader {
            number,
            parent_hash,
            records_root: tree.root(),
            record_count: tree.leaf_count(),
            timestamp_ms,
            sequencer,
        };
        header.validate().map_err(BodyError::Header)?;
        Ok(Self { header, records, tree })
    }

    /// The inclusion proof of record `index`.
    pub fn proof(&self, index: u64) -> Result<MerkleProof, MerkleError> {
        self.tree.proof(index)
    }
}

/// A whole batch: header, body (records with their inputs) and the records
/// tree. What a settlement layer receives; tests build it directly.
#[derive(Clone, Debug)]
pub struct SealedBatch {
    /// The header.
    pub header: BatchHeader,
    /// The body.
    pub body: BatchBody,
    /// The tree over the body's leaves.
    pub tree: MerkleTree,
}

impl SealedBatch {
    /// Builds batch `number` on top of `parent_hash` from `entries`, after
    /// checking them with [`BatchBody::check_entries`].
    pub fn build(
        number: u64,
        parent_hash: Hash32,
        timestamp_ms: u64,
        sequencer: Hash32,
        entries: Vec<BodyEntry>,
    ) -> Result<Self, BodyError> {
        let body = BatchBody { entries };
        body.check_entries()?;
        let s =
            SealedRecords::assemble(number, parent_hash, timestamp_ms, sequencer, body.records().copied().collect())?;
        Ok(Self { header: s.header, body, tree: s.tree })
    }

    /// The inclusion proof of record `index`.
    pub fn proof(&self, index: u64) -> Result<MerkleProof, MerkleError> {
        self.tree.proof(index)
    }
}

/// Why an inclusion proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// The proof is for a tree of another size than the header's.
    #[error("proof is for {proof} records, header commits to {header}")]
    CountMismatch {
        /// The proof's leaf count.
        proof: u64,
        /// The header's record count.
        header: u64,
    },
    /// The proof's index is not a position in the batch.
    #[error("index {index} out of range for {count} records")]
    IndexOutOfRange {
        /// The proof's index.
        index: u64,
        /// The header's record count.
        count: u64,
    },
    /// The proof's index differs from the position the caller expects.
    #[error("proof is for index {proof}, expected {expected}")]
    IndexMismatch {
        /// The proof's index.
        proof: u64,
        /// The expected index.
        expected: u64,
    },
    /// The proof names another batch than the header.
    #[error("proof is for batch {proof}, header is batch {header}")]
    BatchMismatch {
        /// The proof's batch.
        proof: u64,
        /// The header's number.
        header: u64,
    },
    /// The record's id is not derived from its fields.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The path has the wrong number of hashes for the index and count.
    #[error("malformed path: {0}")]
    Path(MerkleError),
    /// The path leads to another root.
    #[error("proof leads to {computed}, header commits to {expected}")]
    RootMismatch {
        /// The header's records root.
        expected: Hash32,
        /// The root the proof leads to.
        computed: Hash32,
    },
}

/// Checks that `record` is leaf `proof.index` of the batch `header` commits
/// to. Needs no store.
pub fn verify_inclusion(
    header: &BatchHeader,
    record: &InferenceRecord,
    proof: &MerkleProof,
) -> Result<(), InclusionError> {
    if proof.leaf_count != header.record_count {
        return Err(InclusionError::CountMismatch { proof: proof.leaf_count, header: header.record_count });
    }
    if proof.index >= header.record_count {
        return Err(InclusionError::IndexOutOfRange { index: proof.index, count: header.record_count });
    }
    record.check_id()?;
    match merkle::verify(&header.records_root, &record.leaf_hash(), proof) {
        Ok(()) => Ok(()),
        Err(MerkleError::RootMismatch { computed, expected }) => {
            Err(InclusionError::RootMismatch { expected, computed })
        }
        Err(e) => Err(InclusionError::Path(e)),
    }
}

/// Where a record sits: batch number, leaf index and the path to the
/// header's records root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Inclusion {
    /// The batch number.
    pub batch: u64,
    /// The proof (its `index` is the record's leaf index).
    pub proof: MerkleProof,
}

impl Inclusion {
    /// The leaf index.
    pub fn index(&self) -> u64 {
        self.proof.index
    }

    /// Checks that `record` is in batch `header` at this position.
    pub fn verify(&self, header: &BatchHeader, record: &InferenceRecord) -> Result<(), InclusionError> {
        if self.batch != header.number {
            return Err(InclusionError::BatchMismatch { proof: self.batch, header: header.number });
        }
        verify_inclusion(header, record, &self.proof)
    }

    /// Like [`Inclusion::verify`], also requiring leaf index `expected`.
    pub fn verify_at(
        &self,
        header: &BatchHeader,
        record: &InferenceRecord,
        expected: u64,
    ) -> Result<(), InclusionError> {
        if self.proof.index != expected {
            return Err(InclusionError::IndexMismatch { proof: self.proof.index, expected });
        }
        self.verify(header, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DecodeError, decode};
    use crate::record::tensors_root;

    pub(crate) fn entry(seq: u64) -> BodyEntry {
        let x = Tensor::from_f32(vec![3], vec![seq as f32, 1.0, 2.0]).unwrap();
        let record = InferenceRecord::from_roots(
            hash(Domain::ModelBytes, b"m"),
            hash(Domain::Program, b"p"),
            tensors_root(std::slice::from_ref(&x)),
            hash(Domain::TensorList, &seq.to_le_bytes()),
            seq,
            seq * 10,
        );
        BodyEntry { record, inputs: vec![x] }
    }

    fn batch(n: u64) -> SealedBatch {
        SealedBatch::build(1, GENESIS_PARENT, 7, Hash32([3; 32]), (0..n).map(entry).collect()).unwrap()
    }

    #[test]
    fn every_record_proves_and_body_verifies() {
        for n in [1u64, 2, 3, 7, 16, 33] {
            let b = batch(n);
            b.body.verify(&b.header).unwrap();
            for (i, r) in b.body.records().enumerate() {
                let p = b.proof(i as u64).unwrap();
                verify_inclusion(&b.header, r, &p).unwrap();
                let inc = Inclusion { batch: 1, proof: p };
                inc.verify_at(&b.header, r, i as u64).unwrap();
                assert!(matches!(inc.verify_at(&b.header, r, i as u64 + 1), Err(InclusionError::IndexMismatch { .. })));
            }
            let enc = encode(&b.body);
            assert_eq!(decode::<BatchBody>(&enc).unwrap(), b.body);
            assert_eq!(decode::<BatchHeader>(&encode(&b.header)).unwrap(), b.header);
        }
    }

    #[test]
    fn header_rules() {
        let b = batch(2);
        let mut h = b.header;
        h.number = 2;
        assert!(matches!(decode::<BatchHeader>(&encode(&h)), Err(DecodeError::Malformed { .. })));
        h.parent_hash = Hash32([1; 32]);
        decode::<BatchHeader>(&encode(&h)).unwrap();
        h.record_count = 0;
        assert!(decode::<BatchHeader>(&encode(&h)).is_err());
        h.record_count = 2;
        h.number = 0;
        assert!(decode::<BatchHeader>(&encode(&h)).is_err());
        assert_ne!(b.header.hash(), h.hash());
    }

    #[test]
    fn body_tampering_is_caught() {
        let b = batch(5);
        let mut body = b.body.clone();
        body.entries.swap(1, 2);
        assert!(matches!(body.verify(&b.header), Err(BodyError::SequenceOrder { index: 2, .. })));
        let mut body = b.body.clone();
        body.entries[3].inputs[0] = Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap();
        assert!(matches!(body.verify(&b.header), Err(BodyError::Record { index: 3, .. })));
        let mut body = b.body.clone();
        body.entries.pop();
        assert!(matches!(body.verify(&b.header), Err(BodyError::CountMismatch { .. })));
        let mut h = b.header;
        h.records_root.0[0] ^= 1;
        assert!(matches!(b.body.verify(&h), Err(BodyError::RootMismatch { .. })));
        assert_eq!(SealedBatch::build(1, GENESIS_PARENT, 0, Hash32::ZERO, vec![]).err(), Some(BodyError::Empty));
    }
}
