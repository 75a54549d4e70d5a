//! The RocksDB backend (feature `rocksdb`).
//!
//! One RocksDB database with one column family per [`Cf`]. A
//! [`WriteBatch`] becomes one RocksDB `WriteBatch` written with the WAL on;
//! `sync` maps to `WriteOptions::set_sync`, i.e. one fsync of the WAL per
//! synced write. Unsynced writes still reach the WAL file through `write(2)`
//! before returning (`manual_wal_flush` stays off), so they survive a
//! process crash; only power loss can drop them.
//!
//! ## Files
//! Flush and compaction write SST files with direct I/O where the
//! filesystem supports `O_DIRECT` (probed at open), so the bulk of the bytes
//! (request tensors) skip the page cache. The `tensors` family is not
//! compressed (see [`family_options`]).
//!
//! ## Recovery
//! WAL recovery mode is point-in-time: after a crash RocksDB replays the WAL
//! up to the last complete record. A batch torn by a kill mid-write was never
//! acknowledged, and is dropped whole, which is what makes every
//! [`WriteBatch`] atomic across column families.
//!
//! ## Opening an existing database
//! RocksDB refuses to open a database without naming all of its column
//! families, so [`RocksKv::open`] opens the union of the existing ones and
//! [`Cf::ALL`]; a database written by a newer schema with extra families
//! therefore opens, and the store's schema check rejects it with a clear
//! error instead of RocksDB's.

use std::path::{Path, PathBuf};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, Direction, IteratorMode, Options,
    ReadOptions, WriteOptions,
};

use super::kv::{BatchOp, Cf, KeyRange, KvError, KvIter, KvStore, WriteBatch};

/// A [`KvStore`] over RocksDB.
pub struct RocksKv {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksKv").field("path", &self.path).finish()
    }
}

fn backend(e: rocksdb::Error) -> KvError {
    KvError::Backend(e.into_string())
}

/// Live WAL bytes after which RocksDB flushes the families that pin the
/// oldest WAL file. Without a bound, WAL files live until every family has
/// flushed on its own, which for the small families takes gigabytes of
/// inputs: every WAL byte then lands on a fresh page-cache page, and on this
/// VM a page the guest has not touched lately costs a hypervisor fault
/// (about 1 ms per 600 KB request, docs/node.md). Bounded, deleted WAL pages
/// are reused while still mapped. Four tensor memtables (64 MiB each) fit.
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    o
}

/// Options of one family. `tensors` holds the bulk of the bytes (every
/// request's inputs and outputs, written once, keyed by sequence): it is
/// not compressed, because tensor bytes barely compress and compressing
/// them cost more CPU per request than anything else in the store, and
/// because with the same (no) compression on every level RocksDB can
/// compact its sequential files by moving them instead of rewriting them.
fn family_options(name: &str) -> Options {
    let mut o = cf_options();
    if name == Cf::Tensors.name() {
        o.set_compression_type(DBCompressionType::None);
        o.set_bottommost_compression_type(DBCompressionType::None);
    }
    o
}

/// Whether files in `dir` can be opened with `O_DIRECT` (some filesystems
/// refuse it, e.g. tmpfs before Linux 6.6); RocksDB would otherwise fail its
/// first flush.
fn direct_io_supported(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let probe = dir.join(".direct-io-probe");
        let ok = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl RocksKv {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KvError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| KvError::Io(format!("{}: {e}", path.display())))?;
        let mut opts = cf_options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        opts.set_manual_wal_flush(false);
        opts.set_paranoid_checks(true);
        opts.increase_parallelism(2);
        // SST files (flush and compaction output) bypass the page cache when
        // the filesystem allows it: every input tensor passes through a
        // flush, and at the node's ceiling (null executor) the page-cache
        // copy was the largest cost per request (docs/decisions/0013). The
        // WAL stays buffered (RocksDB has no direct WAL writes).
        let direct = direct_io_supported(&path);
        opts.set_use_direct_io_for_flush_and_compaction(direct);
        opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        let mut names: Vec<String> = Cf::ALL.iter().map(|c| c.name().to_string()).collect();
        // A missing database has no families to list; that error is expected.
        if let Ok(existing) = DB::list_cf(&opts, &path) {
            for name in existing {
                if name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let descriptors = names.into_iter().map(|n| {
            let o = family_options(&n);
            ColumnFamilyDescriptor::new(n, o)
        });
        let db = DB::open_cf_descriptors(&opts, &path, descriptors).map_err(backend)?;
        Ok(Self { db, path })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column families present on disk, including ones this build does not
    /// know (a newer schema's).
    pub fn column_families(&self) -> Result<Vec<String>, KvError> {
        let opts = Options::default();
        DB::list_cf(&opts, &self.path).map_err(backend)
    }

    fn cf(&self, cf: Cf) -> Result<&ColumnFamily, KvError> {
        // Every family in Cf::ALL is created at open.
        self.db.cf_handle(cf.name()).ok_or(KvError::Backend(format!("missing column family {}", cf.name())))
    }
}

impl KvStore for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(backend)
    }

    fn visit(&self, cf: Cf, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, KvError> {
        match self.db.get_pinned_cf(self.cf(cf)?, key).map_err(backend)? {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), KvError> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put { cf, key, value } => wb.put_cf(self.cf(*cf)?, key, value),
                BatchOp::Delete { cf, key } => wb.delete_cf(self.cf(*cf)?, key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        wo.disable_wal(false);
        self.db.write_opt(wb, &wo).map_err(backend)
    }

    fn scan(&self, cf: Cf, range: KeyRange, reverse: bool) -> Result<KvIter<'_>, KvError> {
        let handle = self.cf(cf)?;
        let mut ro = ReadOptions::default();
        if let Some(s) = &range.start {
            ro.set_iterate_lower_bound(s.clone());
        }
        if let Some(e) = &range.end {
            ro.set_iterate_upper_bound(e.clone());
        }
        let mode = match (&range.start, reverse) {
            (Some(s), false) => IteratorMode::From(s, Direction::Forward),
            (None, false) => IteratorMode::Start,
            (_, true) => IteratorMode::End,
        };
        let it = self.db.iterator_cf_opt(handle, ro, mode);
        // The bounds above already restrict the scan; the filter keeps the
        // contract even if a RocksDB version treats them as hints.
        Ok(Box::new(
            it.map(|r| r.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(backend))
                .filter(move |r| r.as_ref().map_or(true, |(k, _)| range.contains(k))),
        ))
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), KvError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(backend)?;
        cp.create_checkpoint(dir).map_err(backend)
    }
}
