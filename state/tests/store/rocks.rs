//! The store over real RocksDB.

use verinfer_state::batch::verify_inclusion;
use verinfer_state::receipt::Status;
use verinfer_state::store::{Cf, KvStore, RocksKv, RocksStore, SCHEMA_VERSION, StoreError, StoreOptions};

use crate::common::{open, params, submission};

#[test]
fn reopen_recovers_head_and_pending_log() {
    let dir = tempfile::tempdir().unwrap();
    let (accepted, head, summary) = {
        let s = open(dir.path());
        let accepted: Vec<_> = (0..30).map(|i| s.accept(submission(i, 10 + i)).unwrap()).collect();
        s.seal(&params(100, 12)).unwrap().unwrap();
        let b2 = s.seal(&params(100, 12)).unwrap().unwrap();
        (accepted, b2.header.hash(), s.fsck().unwrap())
    };
    let s = open(dir.path());
    assert_eq!(s.head().map(|h| h.hash), Some(head));
    assert_eq!(s.fsck().unwrap(), summary);
    assert_eq!(summary.pending, 6);
    let pending: Vec<_> = s.pending_records().unwrap().map(Result::unwrap).collect();
    assert_eq!(pending, accepted[24..]);
    let b3 = s.seal(&params(101, 100)).unwrap().unwrap();
    assert_eq!(b3.records, accepted[24..]);
    for r in &accepted {
        let rc = s.receipt(&r.request_id).unwrap().unwrap();
        let inc = rc.inclusion.unwrap();
        verify_inclusion(&s.header(inc.batch).unwrap().unwrap(), r, &inc.proof).unwrap();
        assert!(matches!(rc.status, Status::Batched { .. }));
    }
    assert_eq!(s.fsck().unwrap().batched_records, 30);
}

#[test]
fn explorer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut all = Vec::new();
    for b in 0..5u64 {
        for i in 0..(b + 1) {
            all.push(s.accept(submission(b * 10 + i, 0)).unwrap());
        }
        s.seal(&params(b, 1000)).unwrap();
    }
    let nums: Vec<u64> = s.headers(2..=4, false).unwrap().map(|h| h.unwrap().number).collect();
    assert_eq!(nums, [2, 3, 4]);
    let nums: Vec<u64> = s.headers(..4, true).unwrap().map(|h| h.unwrap().number).collect();
    assert_eq!(nums, [3, 2, 1]);
    let nums: Vec<u64> = s.headers(.., true).unwrap().take(2).map(|h| h.unwrap().number).collect();
    assert_eq!(nums, [5, 4]);
    let in4: Vec<_> = s.records_in_batch(4, 0).unwrap().map(|r| r.unwrap().1).collect();
    assert_eq!(in4, all[6..10]);
    let in4_from2: Vec<_> = s.records_in_batch(4, 2).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(in4_from2, [2, 3]);
    assert_eq!(s.records_in_batch(9, 0).unwrap().count(), 0);
    assert_eq!(s.record(&all[7].request_id).unwrap(), Some(all[7]));
    assert_eq!(s.record_at(5, 4).unwrap(), Some(all[14]));
}

#[test]
fn schema_mismatch_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let kv = RocksKv::open(dir.path()).unwrap();
        kv.put(Cf::Meta, b"schema_version", &(SCHEMA_VERSION + 1).to_le_bytes(), true).unwrap();
    }
    let err = RocksStore::open_path(dir.path(), StoreOptions::default()).unwrap_err();
    assert_eq!(err, StoreError::SchemaMismatch { found: SCHEMA_VERSION + 1, expected: SCHEMA_VERSION });
    assert!(err.to_string().contains("schema version"));
}

#[test]
fn unknown_column_family_from_a_newer_schema_still_opens_to_the_schema_check() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let mut names: Vec<String> = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        names.retain(|n| n != "default");
        let mut db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        db.create_cf("from_the_future", &opts).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", (verinfer_state::store::SCHEMA_VERSION + 1).to_le_bytes()).unwrap();
    }
    let kv = RocksKv::open(dir.path()).unwrap();
    assert!(kv.column_families().unwrap().iter().any(|n| n == "from_the_future"));
    assert!(matches!(
        RocksStore::open(kv, StoreOptions::default()),
        Err(StoreError::SchemaMismatch { found, .. }) if found == verinfer_state::store::SCHEMA_VERSION + 1
    ));
}

#[test]
fn checkpoint_is_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    let snap_path = snap.path().join("cp");
    let s = open(dir.path());
    for i in 0..20 {
        s.accept(submission(i, 0)).unwrap();
    }
    s.seal(&params(1, 15)).unwrap();
    s.checkpoint(&snap_path).unwrap();
    let at_checkpoint = s.fsck().unwrap();
    // Later writes do not reach the snapshot.
    s.accept(submission(99, 0)).unwrap();
    s.seal(&params(2, 100)).unwrap();
    let c = RocksStore::open_path(&snap_path, StoreOptions::default()).unwrap();
    assert_eq!(c.fsck().unwrap(), at_checkpoint);
    assert_eq!(at_checkpoint.pending, 5);
    assert_eq!(s.fsck().unwrap().batches, 2);
    // An existing directory is refused.
    assert!(s.checkpoint(&snap_path).is_err());
}

/// Writes enough to fill a memtable (64 MB) so RocksDB flushes an SST file,
/// then reopens and reads everything back. On a filesystem that accepts
/// `O_DIRECT` the flush uses direct I/O; where it is refused (tmpfs before
/// Linux 6.6, some network filesystems) the open-time probe must fall back
/// to buffered writes instead of failing the flush.
fn flush_and_reopen(dir: &std::path::Path) {
    let value = |i: u64| -> Vec<u8> { (0..1_000_000u64).map(|j| (j.wrapping_mul(31).wrapping_add(i)) as u8).collect() };
    {
        let kv = RocksKv::open(dir).unwrap();
        for i in 0..80u64 {
            kv.put(Cf::Tensors, &i.to_be_bytes(), &value(i), false).unwrap();
        }
        // The flush runs in the background; wait for its file.
        let sst = || {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sst"))
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while sst() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(sst() > 0, "80 MB should have flushed at least one SST file");
    }
    let kv = RocksKv::open(dir).unwrap();
    for i in [0u64, 41, 79] {
        assert_eq!(kv.get(Cf::Tensors, &i.to_be_bytes()).unwrap(), Some(value(i)));
    }
}

#[test]
fn large_writes_flush_and_reopen_with_or_without_direct_io() {
    let dir = tempfile::tempdir().unwrap();
    flush_and_reopen(dir.path());
    // tmpfs: O_DIRECT is refused by older kernels, accepted by newer ones;
    // either way the store must work there.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        flush_and_reopen(d.path());
    }
}

/// `visit` lends RocksDB's pinned value (memtable, then an SST after a
/// flush) and agrees with `get`; a missing key calls nothing.
#[test]
fn visit_agrees_with_get_before_and_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let kv = RocksKv::open(dir.path()).unwrap();
    let value: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    kv.put(Cf::Tensors, b"k", &value, false).unwrap();
    let check = |kv: &RocksKv| {
        let mut seen = None;
        assert!(kv.visit(Cf::Tensors, b"k", &mut |b| seen = Some(b.to_vec())).unwrap());
        assert_eq!(seen.as_deref(), Some(&value[..]));
        assert_eq!(kv.get(Cf::Tensors, b"k").unwrap().as_deref(), Some(&value[..]));
        assert!(!kv.visit(Cf::Tensors, b"missing", &mut |_| panic!("called for a missing key")).unwrap());
    };
    check(&kv);
    drop(kv);
    // Reopening replays the WAL into a memtable; a fresh write of more
    // than the memtable's size flushes it to an SST.
    let kv = RocksKv::open(dir.path()).unwrap();
    check(&kv);
    for i in 0..100u32 {
        kv.put(Cf::Tensors, &i.to_be_bytes(), &value, false).unwrap();
    }
    check(&kv);
}
