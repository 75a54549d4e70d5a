//! Property tests of the encodings and of record inclusion proofs.
//!
//! * Every message round-trips, and every byte string any decoder accepts
//!   re-encodes to itself (checked on mutations of valid encodings, which is
//!   where an accepted-but-non-canonical form would hide).
//! * Trailing bytes, truncations and absurd length prefixes are rejected,
//!   the last without any large allocation (measured by the test allocator).
//! * Inclusion proofs verify for every record of random batches and fail for
//!   every single-bit tamper of the record, the path, the index, the count
//!   and the root, and for every wrong index and wrong count.
//!
//! No protocol type contains a map, so borsh's map-ordering rule
//! (`de_strict_order`) has nothing to check here.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::batch::{
    BatchBody, BatchHeader, BodyEntry, GENESIS_PARENT, Inclusion, InclusionError, SealedBatch, verify_inclusion,
};
use crate::codec::{DecodeError, Message, decode, encode};
use crate::hash::Hash32;
use crate::merkle::MerkleProof;
use crate::model::{ModelEntry, TensorSpec};
use crate::receipt::{Receipt, Status};
use crate::record::{InferenceRecord, RecordTensors, tensors_root};
use crate::tensor::{DType, Tensor};
use crate::test_alloc;

fn hash32() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::ALL.to_vec())
}

fn tensor() -> impl Strategy<Value = Tensor> {
    (dtype(), vec(0u64..4, 0..3)).prop_flat_map(|(dt, shape)| {
        let n = shape.iter().product::<u64>() as usize;
        let byte = if dt == DType::Bool { (0u8..2).boxed() } else { any::<u8>().boxed() };
        vec(byte, n * dt.size())
            .prop_map(move |bytes| Tensor::from_le_bytes(dt, &shape, &bytes).expect("consistent by construction"))
    })
}

fn spec() -> impl Strategy<Value = TensorSpec> {
    ("[a-z]{1,6}", dtype(), vec(0u64..1000, 0..4)).prop_map(|(name, dtype, shape)| TensorSpec { name, dtype, shape })
}

fn specs() -> impl Strategy<Value = Vec<TensorSpec>> {
    vec(spec(), 0..4).prop_map(|mut v| {
        // Names must be unique within a signature.
        for (i, s) in v.iter_mut().enumerate() {
            s.name = format!("{}{i}", s.name);
        }
        v
    })
}

fn model_entry() -> impl Strategy<Value = ModelEntry> {
    (hash32(), "[ -~]{0,20}", hash32(), specs(), specs(), any::<u64>()).prop_map(
        |(model_id, name, program_root, inputs, outputs, registered_at_ms)| ModelEntry {
            model_id,
            name,
            program_root,
            inputs,
            outputs,
            registered_at_ms,
        },
    )
}

fn record() -> impl Strategy<Value = InferenceRecord> {
    (hash32(), hash32(), hash32(), hash32(), any::<u64>(), any::<u64>())
        .prop_map(|(m, p, i, o, seq, at)| InferenceRecord::from_roots(m, p, i, o, seq, at))
}

fn record_tensors() -> impl Strategy<Value = RecordTensors> {
    (vec(tensor(), 0..3), vec(tensor(), 0..3)).prop_map(|(inputs, outputs)| RecordTensors { inputs, outputs })
}

/// `n` body entries with increasing sequences and consistent input roots.
fn entries(max: usize) -> impl Strategy<Value = Vec<BodyEntry>> {
    vec((hash32(), hash32(), vec(tensor(), 0..2), hash32(), 1u64..1000, any::<u32>()), 1..=max).prop_map(|rows| {
        let mut seq = 0u64;
        rows.into_iter()
            .map(|(m, p, inputs, out, step, at)| {
                seq += step;
                let record = InferenceRecord::from_roots(m, p, tensors_root(&inputs), out, seq, u64::from(at));
                BodyEntry { record, inputs }
            })
            .collect()
    })
}

fn sealed(max: usize) -> impl Strategy<Value = SealedBatch> {
    (entries(max), 1u64..5, hash32(), any::<u64>(), hash32()).prop_map(|(entries, number, parent, ts, seqr)| {
        let parent = if number == 1 { GENESIS_PARENT } else { parent };
        SealedBatch::build(number, parent, ts, seqr, entries).expect("valid entries")
    })
}

fn header() -> impl Strategy<Value = BatchHeader> {
    sealed(3).prop_map(|s| s.header)
}

fn body() -> impl Strategy<Value = BatchBody> {
    sealed(4).prop_map(|s| s.body)
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Pending),
        Just(Status::Batched { batch: 0, index: 0 }),
        Just(Status::Final),
        Just(Status::Disputed),
        Just(Status::Fraudulent),
    ]
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (hash32(), status(), 1u64..100, 0u64..8, vec(hash32(), 0..4)).prop_map(|(id, status, batch, index, path)| {
        let inclusion = Inclusion { batch, proof: MerkleProof { index, leaf_count: 8, path } };
        match status {
            Status::Pending => Receipt::pending(id),
            Status::Batched { .. } => Receipt::batched(id, inclusion),
            s => Receipt { request_id: id, status: s, inclusion: Some(inclusion) },
        }
    })
}

/// Runs every encoding property on one value.
fn check_encoding<T>(value: &T, mutations: &[(usize, u8)]) -> Result<(), TestCaseError>
where
    T: Message + std::fmt::Debug,
{
    let enc = encode(value);
    // Round trip, compared as bytes: `Tensor`'s `PartialEq` follows f32
    // semantics (NaN ≠ NaN), while the protocol cares about bits.
    let back = decode::<T>(&enc).expect("valid encoding decodes");
    prop_assert_eq!(encode(&back), enc.clone());
    // Trailing bytes.
    for extra in [&[0u8][..], &[1, 2, 3]] {
        let mut t = enc.clone();
        t.extend_from_slice(extra);
        prop_assert_eq!(decode::<T>(&t).err(), Some(DecodeError::TrailingBytes { what: T::NAME, extra: extra.len() }));
    }
    // Every truncation is rejected.
    for cut in 0..enc.len() {
        prop_assert!(decode::<T>(&enc[..cut]).is_err(), "prefix of {} bytes accepted", cut);
    }
    // Mutations: whatever is accepted is canonical.
    for &(pos, byte) in mutations {
        let mut m = enc.clone();
        let pos = pos % m.len();
        m[pos] ^= byte | 1;
        if let Ok(v) = decode::<T>(&m) {
            prop_assert_eq!(encode(&v), m);
        }
    }
    // An absurd length anywhere costs an error (or a canonical value), never
    // a large allocation.
    for pos in 0..enc.len().saturating_sub(3) {
        for len in [u32::MAX, 0x8000_0000, 0x0100_0000] {
            let mut m = enc.clone();
            m[pos..pos + 4].copy_from_slice(&len.to_le_bytes());
            test_alloc::reset();
            let r = decode::<T>(&m);
            let peak = test_alloc::peak();
            prop_assert!(peak <= 2 << 20, "{} bytes allocated for a {}-byte input", peak, m.len());
            if let Ok(v) = r {
                prop_assert_eq!(encode(&v), m);
            }
        }
    }
    Ok(())
}

fn mutations() -> impl Strategy<Value = Vec<(usize, u8)>> {
    vec((any::<usize>(), any::<u8>()), 16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_entry_encoding(v in model_entry(), m in mutations()) { check_encoding(&v, &m)?; }

    #[test]
    fn record_encoding(v in record(), m in mutations()) { check_encoding(&v, &m)?; }

    #[test]
    fn record_tensors_encoding(v in record_tensors(), m in mutations()) { check_encoding(&v, &m)?; }

    #[test]
    fn header_encoding(v in header(), m in mutations()) { check_encoding(&v, &m)?; }

    #[test]
    fn body_encoding(v in body(), m in mutations()) { check_encoding(&v, &m)?; }

    #[test]
    fn receipt_encoding(v in receipt(), m in mutations()) { check_encoding(&v, &m)?; }

    /// Arbitrary bytes: whatever decodes is canonical.
    #[test]
    fn random_bytes_are_canonical_or_rejected(b in vec(any::<u8>(), 0..300)) {
        fn canon<T: Message>(b: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(v) = decode::<T>(b) {
                prop_assert_eq!(encode(&v), b);
            }
            Ok(())
        }
        let mut b = b;
        for version in [None, Some(1u8)] {
            if let (Some(v), Some(first)) = (version, b.first_mut()) {
                *first = v;
            }
            canon::<ModelEntry>(&b)?;
            canon::<InferenceRecord>(&b)?;
            canon::<RecordTensors>(&b)?;
            canon::<BatchHeader>(&b)?;
            canon::<BatchBody>(&b)?;
            canon::<Receipt>(&b)?;
        }
    }
}

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs(batch in sealed(20)) {
        let h = batch.header;
        let n = h.record_count;
        for (i, r) in batch.body.records().enumerate() {
            let i = i as u64;
            let p = batch.proof(i).expect("index in range");
            verify_inclusion(&h, r, &p).expect("honest proof verifies");

            // Every single-bit tamper of the record (as bytes: a tamper that
            // no longer decodes is rejected before it reaches the verifier).
            let enc = encode(r);
            for bit in 0..enc.len() * 8 {
                let mut t = enc.clone();
                flip(&mut t, bit);
                if let Ok(tr) = decode::<InferenceRecord>(&t) {
                    prop_assert!(verify_inclusion(&h, &tr, &p).is_err(), "record bit {}", bit);
                }
            }
            // Every bit of every path hash.
            for k in 0..p.path.len() {
                for bit in 0..256 {
                    let mut q = p.clone();
                    flip(&mut q.path[k].0, bit);
                    prop_assert!(verify_inclusion(&h, r, &q).is_err());
                }
            }
            // Every bit of the index and of the count.
            for bit in 0..64 {
                let mut q = p.clone();
                q.index ^= 1 << bit;
                prop_assert!(verify_inclusion(&h, r, &q).is_err(), "index bit {}", bit);
                let mut q = p.clone();
                q.leaf_count ^= 1 << bit;
                let count_err = matches!(
                    verify_inclusion(&h, r, &q),
                    Err(InclusionError::CountMismatch { .. })
                );
                prop_assert!(count_err, "count bit {}", bit);
            }
            // Every bit of the header's root and count.
            for bit in 0..256 {
                let mut th = h;
                flip(&mut th.records_root.0, bit);
                let root_err = matches!(
                    verify_inclusion(&th, r, &p),
                    Err(InclusionError::RootMismatch { .. })
                );
                prop_assert!(root_err, "root bit {}", bit);
            }
            // Every wrong index, and every wrong count up to twice the size,
            // with the proof's own count adjusted to match (so the Merkle
            // check itself must catch it).
            for j in (0..n).filter(|&j| j != i) {
                let mut q = p.clone();
                q.index = j;
                prop_assert!(verify_inclusion(&h, r, &q).is_err(), "index {} for {}", j, i);
            }
            for c in (1..=2 * n + 1).filter(|&c| c != n) {
                let mut th = h;
                th.record_count = c;
                let mut q = p.clone();
                q.leaf_count = c;
                prop_assert!(verify_inclusion(&th, r, &q).is_err(), "count {} for {}", c, n);
            }
            // A proof missing a hash, or with an extra one.
            let mut q = p.clone();
            q.path.push(Hash32::ZERO);
            prop_assert!(verify_inclusion(&h, r, &q).is_err());
            if !p.path.is_empty() {
                let mut q = p.clone();
                q.path.pop();
                prop_assert!(verify_inclusion(&h, r, &q).is_err());
            }
        }
        // Records of the batch at each other's positions.
        let recs: Vec<&InferenceRecord> = batch.body.records().collect();
        for (i, r) in recs.iter().enumerate() {
            for (j, _) in recs.iter().enumerate().filter(|&(j, _)| j != i) {
                let p = batch.proof(j as u64).expect("in range");
                prop_assert!(verify_inclusion(&h, r, &p).is_err());
            }
        }
    }
}
