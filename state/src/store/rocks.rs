//! The RocksDB backend (feature `rocksdb`).
//!
//! One RocksDB database with one column family per [`Cf`]. A
//! [`WriteBatch`] becomes one RocksDB `WriteBatch` written with the WAL on;
//! `sync` maps to `WriteOptions::set_sync`, i.e. one fsync of the WAL per
//! synced write. Unsynced writes still reach the WAL file through `write(2)`
//! before returning (`manual_wal_flush` stays off), so they survive a
//! process crash; only power loss can drop them.
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
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction,
    IteratorMode, Options, ReadOptions, WriteOptions, DB,
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

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    o
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
        let mut names: Vec<String> = Cf::ALL.iter().map(|c| c.name().to_string()).collect();
        // A missing database has no families to list; that error is expected.
        if let Ok(existing) = DB::list_cf(&opts, &path) {
            for name in existing {
                if name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let descriptors = names.into_iter().map(|n| ColumnFamilyDescriptor::new(n, cf_options()));
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
