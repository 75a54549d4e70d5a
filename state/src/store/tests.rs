//! Store logic over the in-memory backend. The same logic over RocksDB,
//! including crashes, is tested in `state/tests/store.rs`.

use super::*;
use crate::batch::verify_inclusion;
use crate::model::{TensorSpec, model_id};
use crate::tensor::DType;

const ONNX: &[u8] = b"fake onnx bytes";

fn entry() -> ModelEntry {
    ModelEntry {
        model_id: model_id(ONNX),
        name: "toy".into(),
        program_root: Hash32([7; 32]),
        inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![2] }],
        outputs: vec![TensorSpec { name: "y".into(), dtype: DType::F32, shape: vec![1] }],
        registered_at_ms: 1,
    }
}

fn sub(i: u64) -> Submission {
    Submission {
        model_id: model_id(ONNX),
        inputs: vec![Tensor::from_f32(vec![2], vec![i as f32, 1.0]).unwrap()],
        outputs: vec![Tensor::from_f32(vec![1], vec![i as f32 + 1.0]).unwrap()],
        accepted_at_ms: 100 + i,
    }
}

fn params(ts: u64, max: u64) -> SealParams {
    SealParams { timestamp_ms: ts, sequencer: Hash32([5; 32]), max_records: max }
}

fn fresh() -> (MemKv, Store<MemKv>) {
    let kv = MemKv::new();
    let s = Store::open(kv.clone(), StoreOptions::default()).unwrap();
    assert_eq!(s.register_model(&entry(), ONNX, b"program").unwrap(), Registered::Inserted);
    (kv, s)
}

#[test]
fn schema_is_written_and_checked() {
    let kv = MemKv::new();
    Store::open(kv.clone(), StoreOptions::default()).unwrap();
    assert_eq!(kv.get(Cf::Meta, META_SCHEMA).unwrap(), Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
    Store::open(kv.clone(), StoreOptions::default()).unwrap();
    let newer = SCHEMA_VERSION + 1;
    kv.put(Cf::Meta, META_SCHEMA, &newer.to_le_bytes(), true).unwrap();
    assert_eq!(
        Store::open(kv.clone(), StoreOptions::default()).err(),
        Some(StoreError::SchemaMismatch { found: newer, expected: SCHEMA_VERSION })
    );
    kv.put(Cf::Meta, META_SCHEMA, &[1, 0], true).unwrap();
    assert!(matches!(Store::open(kv.clone(), StoreOptions::default()), Err(StoreError::Decode { cf: "meta", .. })));

    let kv = MemKv::new();
    kv.put(Cf::Records, b"k", b"v", false).unwrap();
    assert_eq!(Store::open(kv, StoreOptions::default()).err(), Some(StoreError::SchemaMissing));
}

#[test]
fn model_registration() {
    let (_, s) = fresh();
    assert_eq!(s.register_model(&entry(), ONNX, b"program").unwrap(), Registered::AlreadyPresent);
    let mut other = entry();
    other.program_root = Hash32([8; 32]);
    assert!(matches!(s.register_model(&other, ONNX, b"p2"), Err(StoreError::ModelConflict { .. })));
    assert!(matches!(s.register_model(&entry(), b"other bytes", b"p"), Err(StoreError::ModelIdMismatch { .. })));
    assert_eq!(s.model(&model_id(ONNX)).unwrap(), Some(entry()));
    assert_eq!(s.model_onnx(&model_id(ONNX)).unwrap().as_deref(), Some(ONNX));
    assert_eq!(s.model_program(&model_id(ONNX)).unwrap().as_deref(), Some(&b"program"[..]));
    assert_eq!(s.models().unwrap().count(), 1);
}

#[test]
fn accept_checks_model_and_signature() {
    let (_, s) = fresh();
    let mut bad = sub(0);
    bad.model_id = Hash32([1; 32]);
    assert_eq!(s.accept(bad).err(), Some(StoreError::UnknownModel(Hash32([1; 32]))));
    let mut bad = sub(0);
    bad.inputs[0] = Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap();
    assert!(matches!(s.accept(bad), Err(StoreError::Signature { role: TensorRole::Input, .. })));
    let mut bad = sub(0);
    bad.outputs.clear();
    assert!(matches!(s.accept(bad), Err(StoreError::Signature { role: TensorRole::Output, .. })));
    assert_eq!(s.next_sequence(), 0);
    let r = s.accept(sub(0)).unwrap();
    assert_eq!(r.sequence, 0);
    assert_eq!(r.program_root, entry().program_root);
    assert_eq!(s.receipt(&r.request_id).unwrap(), Some(Receipt::pending(r.request_id)));
    s.record_tensors(&r.request_id).unwrap().unwrap().check(&r).unwrap();
}

#[test]
fn seal_reopen_and_read() {
    let (kv, s) = fresh();
    assert!(s.seal(&params(1, 10)).unwrap().is_none());
    let accepted: Vec<InferenceRecord> = (0..25).map(|i| s.accept(sub(i)).unwrap()).collect();
    assert_eq!(s.pending_count(), 25);

    let b1 = s.seal(&params(10, 10)).unwrap().unwrap();
    assert_eq!(b1.header.number, FIRST_BATCH);
    assert_eq!(b1.header.parent_hash, GENESIS_PARENT);
    assert_eq!(b1.header.record_count, 10);
    let b2 = s.seal(&params(10, 10)).unwrap().unwrap();
    assert_eq!(b2.header.parent_hash, b1.header.hash());
    assert_eq!(s.pending_count(), 5);
    assert_eq!(s.seal(&params(9, 10)).err(), Some(StoreError::TimestampRegressed { parent: 10, given: 9 }));

    // Receipts carry proofs that verify against the stored header alone.
    for (i, r) in accepted[..20].iter().enumerate() {
        let rc = s.receipt(&r.request_id).unwrap().unwrap();
        let inc = rc.inclusion.clone().unwrap();
        assert_eq!(rc.status, Status::Batched { batch: 1 + i as u64 / 10, index: i as u64 % 10 });
        let h = s.header(inc.batch).unwrap().unwrap();
        verify_inclusion(&h, r, &inc.proof).unwrap();
    }
    let pend: Vec<_> = s.pending_records().unwrap().map(Result::unwrap).collect();
    assert_eq!(pend, accepted[20..].to_vec());

    // Explorer reads.
    let hs: Vec<u64> = s.headers(.., false).unwrap().map(|h| h.unwrap().number).collect();
    assert_eq!(hs, vec![1, 2]);
    let hs: Vec<u64> = s.headers(.., true).unwrap().map(|h| h.unwrap().number).collect();
    assert_eq!(hs, vec![2, 1]);
    assert_eq!(s.headers(2..=2, false).unwrap().count(), 1);
    assert_eq!(s.headers(3.., false).unwrap().count(), 0);
    assert_eq!(s.headers(2..2, false).unwrap().count(), 0);
    let in2: Vec<_> = s.records_in_batch(2, 3).unwrap().map(Result::unwrap).collect();
    assert_eq!(in2.len(), 7);
    assert_eq!(in2[0], (3, accepted[13]));
    assert_eq!(s.record_at(1, 9).unwrap(), Some(accepted[9]));
    assert_eq!(s.record_at(1, 10).unwrap(), None);
    // The body is assembled from the records and the inputs written at
    // acceptance, and recomputes to the header.
    let body2 = s.body(2).unwrap().unwrap();
    body2.verify(&b2.header).unwrap();
    assert_eq!(body2.records().copied().collect::<Vec<_>>(), b2.records);
    assert_eq!(body2.entries[0].inputs, sub(10).inputs);
    assert_eq!(s.body(3).unwrap(), None);
    assert_eq!(kv.scan(Cf::Bodies, KeyRange::all(), false).unwrap().count(), 0, "no copy of the inputs");

    // Reopen: same head, same pending log, same next sequence.
    let summary = s.fsck().unwrap();
    assert_eq!(summary.batches, 2);
    assert_eq!(summary.pending, 5);
    drop(s);
    let s = Store::open(kv.clone(), StoreOptions::default()).unwrap();
    assert_eq!(s.head().unwrap().hash, b2.header.hash());
    assert_eq!(s.next_sequence(), 25);
    assert_eq!(s.pending_count(), 5);
    assert_eq!(s.fsck().unwrap(), summary);
    let b3 = s.seal(&params(11, 100)).unwrap().unwrap();
    assert_eq!(b3.records, accepted[20..].to_vec());
    // Reopen with nothing pending: the next sequence comes from the head batch.
    let s = Store::open(kv, StoreOptions::default()).unwrap();
    assert_eq!(s.next_sequence(), 25);
    assert_eq!(s.accept(sub(99)).unwrap().sequence, 25);
    s.fsck().unwrap();
}

/// Pruning deletes the inputs and outputs of whole batches and nothing
/// else: their records, receipts and proofs stay, reads of their tensors
/// say "pruned", fsck checks them through the records alone, and the mark
/// survives a reopen.
#[test]
fn pruned_batches_keep_records_and_lose_tensors() {
    let (kv, s) = fresh();
    let accepted: Vec<InferenceRecord> = (0..25).map(|i| s.accept(sub(i)).unwrap()).collect();
    for _ in 0..3 {
        s.seal(&params(10, 10)).unwrap().unwrap();
    }
    assert_eq!(s.prune_tensors_through(4), Err(StoreError::PruneBeyondHead { number: 4, head: 3 }));
    assert_eq!(s.prune_tensors_through(2).unwrap(), 20);
    assert_eq!(s.prune_tensors_through(2).unwrap(), 0, "already pruned");
    assert_eq!(s.pruned(), Pruned { through_batch: 2, below_sequence: 20 });
    for r in &accepted[..20] {
        assert_eq!(s.record_tensors(&r.request_id), Err(StoreError::TensorsPruned(r.request_id)));
        assert_eq!(s.record(&r.request_id).unwrap(), Some(*r));
        assert!(s.receipt(&r.request_id).unwrap().unwrap().inclusion.is_some());
    }
    assert_eq!(s.body(1), Err(StoreError::TensorsPruned(accepted[0].request_id)));
    assert_eq!(s.record_tensors(&accepted[20].request_id).unwrap().unwrap().inputs, sub(20).inputs);
    assert_eq!(s.body(3).unwrap().unwrap().entries.len(), 5);
    assert_eq!(kv.scan(Cf::Tensors, KeyRange::all(), false).unwrap().count(), 5);
    let summary = s.fsck().unwrap();
    assert_eq!(summary.batches, 3);
    // A tensor left behind in a pruned batch is corruption.
    kv.put(Cf::Tensors, &be(3), &encode(&RecordTensors { inputs: sub(3).inputs, outputs: sub(3).outputs }), false)
        .unwrap();
    assert!(
        matches!(s.fsck(), Err(StoreError::Corrupt(Corruption::UnprunedTensors(id))) if id == accepted[3].request_id)
    );
    kv.delete(Cf::Tensors, &be(3), false).unwrap();
    drop(s);
    let s = Store::open(kv, StoreOptions::default()).unwrap();
    assert_eq!(s.pruned(), Pruned { through_batch: 2, below_sequence: 20 });
    assert_eq!(s.fsck().unwrap(), summary);
    assert_eq!(s.prune_tensors_through(3).unwrap(), 5);
    s.fsck().unwrap();
}

#[test]
fn stale_prepared_batch_is_refused() {
    let (_, s) = fresh();
    for i in 0..4 {
        s.accept(sub(i)).unwrap();
    }
    let a = s.prepare_seal(&params(1, 2)).unwrap().unwrap();
    let b = s.prepare_seal(&params(1, 2)).unwrap().unwrap();
    assert_eq!(a.header(), b.header());
    s.commit_seal(a).unwrap();
    assert_eq!(s.commit_seal(b).err(), Some(StoreError::HeadMoved { expected: None, actual: Some(1) }));
    s.fsck().unwrap();
}

#[test]
fn settlement_updates_are_atomic_and_checked() {
    let (_, s) = fresh();
    let r0 = s.accept(sub(0)).unwrap();
    let r1 = s.accept(sub(1)).unwrap();
    s.seal(&params(1, 1)).unwrap();

    // r1 is still pending: the whole update is refused, nothing is written.
    let mut u = SettlementUpdate::new();
    u.put(b"game/1".to_vec(), b"open".to_vec()).set_status(r0.request_id, Status::Disputed);
    u.set_status(r1.request_id, Status::Final);
    assert!(matches!(s.apply_settlement(u), Err(StoreError::InvalidTransition { .. })));
    assert_eq!(s.settlement_get(b"game/1").unwrap(), None);
    assert!(matches!(s.receipt(&r0.request_id).unwrap().unwrap().status, Status::Batched { .. }));

    let mut u = SettlementUpdate::new();
    u.put(b"game/1".to_vec(), b"open".to_vec()).set_status(r0.request_id, Status::Disputed);
    s.apply_settlement(u).unwrap();
    assert_eq!(s.receipt(&r0.request_id).unwrap().unwrap().status, Status::Disputed);
    // Back to batched lands on the record's own position whatever was asked.
    let mut u = SettlementUpdate::new();
    u.set_status(r0.request_id, Status::Batched { batch: 9, index: 9 }).delete(b"game/1".to_vec());
    s.apply_settlement(u).unwrap();
    assert_eq!(s.receipt(&r0.request_id).unwrap().unwrap().status, Status::Batched { batch: 1, index: 0 });
    let mut u = SettlementUpdate::new();
    u.set_status(r0.request_id, Status::Disputed).set_status(r0.request_id, Status::Fraudulent);
    s.apply_settlement(u).unwrap();
    assert_eq!(s.receipt(&r0.request_id).unwrap().unwrap().status, Status::Fraudulent);
    assert_eq!(s.settlement_scan(b"game/").unwrap().count(), 0);
    let mut u = SettlementUpdate::new();
    u.set_status(Hash32([1; 32]), Status::Final);
    assert_eq!(s.apply_settlement(u).err(), Some(StoreError::UnknownRequest(Hash32([1; 32]))));
    s.fsck().unwrap();
}

#[test]
fn fsck_finds_tampering() {
    let (kv, s) = fresh();
    for i in 0..6 {
        s.accept(sub(i)).unwrap();
    }
    s.seal(&params(1, 3)).unwrap();
    s.seal(&params(2, 2)).unwrap();
    s.fsck().unwrap();

    // A stored input swapped for another tensor.
    let snap = kv.snapshot();
    let s2 = Store::open(snap.clone(), StoreOptions::default()).unwrap();
    let r1 = s2.record_at(1, 1).unwrap().unwrap();
    let mut t = s2.record_tensors(&r1.request_id).unwrap().unwrap();
    t.inputs[0] = Tensor::from_f32(vec![2], vec![9.0, 9.0]).unwrap();
    snap.put(Cf::Tensors, &be(r1.sequence), &encode(&t), false).unwrap();
    assert!(matches!(
        s2.fsck(),
        Err(StoreError::Corrupt(Corruption::Tensors { request_id, source: RecordError::InputRootMismatch { .. } }))
            if request_id == r1.request_id
    ));

    // A missing index row.
    let snap = kv.snapshot();
    let s2 = Store::open(snap.clone(), StoreOptions::default()).unwrap();
    snap.delete(Cf::BatchIndex, &index_key(2, 1), false).unwrap();
    assert_eq!(s2.fsck().err(), Some(StoreError::Corrupt(Corruption::IndexEntry { number: 2, index: 1 })));

    // A lost pending entry: at the tail it orphans its record, in the
    // middle it leaves a gap.
    let snap = kv.snapshot();
    snap.delete(Cf::Pending, &be(5), false).unwrap();
    let s2 = Store::open(snap, StoreOptions::default()).unwrap();
    assert_eq!(s2.next_sequence(), 5);
    assert_eq!(s2.fsck().err(), Some(StoreError::Corrupt(Corruption::OrphanRecords { records: 6, reachable: 5 })));
    let s3 = Store::open(kv.snapshot(), StoreOptions::default()).unwrap();
    s3.accept(sub(6)).unwrap();
    s3.kv().delete(Cf::Pending, &be(5), false).unwrap();
    assert_eq!(s3.fsck().err(), Some(StoreError::Corrupt(Corruption::SequenceGap { expected: 5, found: 6 })));

    // A bit flip in a stored header no longer decodes.
    let snap = kv.snapshot();
    let mut h = snap.get(Cf::Headers, &be(1)).unwrap().unwrap();
    h[1] ^= 1; // the number
    snap.put(Cf::Headers, &be(1), &h, false).unwrap();
    let s2 = Store::open(snap, StoreOptions::default()).unwrap();
    assert!(s2.fsck().is_err());

    assert!(matches!(s.checkpoint(Path::new("/nonexistent/x")), Err(StoreError::Kv(KvError::Unsupported(_)))));
}

/// Moves a schema-2 store's tensors to the schema-1 keys (request ids) and
/// marks it version 1; the caller adds the body copies.
fn downgrade_to_v1(kv: &MemKv) {
    for item in kv.scan(Cf::Records, KeyRange::all(), false).unwrap() {
        let (id, bytes) = item.unwrap();
        let r: InferenceRecord = decode(&bytes).unwrap();
        let t = kv.get(Cf::Tensors, &be(r.sequence)).unwrap().unwrap();
        kv.delete(Cf::Tensors, &be(r.sequence), false).unwrap();
        kv.put(Cf::Tensors, &id, &t, false).unwrap();
    }
    kv.put(Cf::Meta, META_SCHEMA, &1u32.to_le_bytes(), true).unwrap();
}

#[test]
fn schema_1_store_is_migrated_on_open() {
    let (kv, s) = fresh();
    let accepted: Vec<InferenceRecord> = (0..7).map(|i| s.accept(sub(i)).unwrap()).collect();
    let b1 = s.seal(&params(1, 4)).unwrap().unwrap();
    let bodies: Vec<BatchBody> = vec![s.body(1).unwrap().unwrap()];
    let summary = s.fsck().unwrap();
    drop(s);
    // The schema-1 layout: tensors under request ids, bodies copied.
    downgrade_to_v1(&kv);
    kv.put(Cf::Bodies, &be(1), &encode(&bodies[0]), false).unwrap();
    assert_eq!(
        kv.scan(Cf::Tensors, KeyRange::all(), false).unwrap().filter(|e| e.as_ref().unwrap().0.len() == 32).count(),
        7
    );

    let s = Store::open(kv.clone(), StoreOptions::default()).unwrap();
    assert_eq!(kv.get(Cf::Meta, META_SCHEMA).unwrap(), Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
    assert_eq!(kv.scan(Cf::Bodies, KeyRange::all(), false).unwrap().count(), 0);
    assert!(kv.scan(Cf::Tensors, KeyRange::all(), false).unwrap().all(|e| e.unwrap().0.len() == 8));
    assert_eq!(s.fsck().unwrap(), summary);
    assert_eq!(s.body(1).unwrap().unwrap(), bodies[0]);
    assert_eq!(s.seal(&params(2, 10)).unwrap().unwrap().records, accepted[4..].to_vec());
    assert_eq!(b1.records, accepted[..4].to_vec());
    s.fsck().unwrap();
}
