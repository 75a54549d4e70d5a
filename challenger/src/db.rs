//! The challenger's own database (RocksDB through `verinfer_state`'s
//! [`KvStore`]; [`MemKv`] in unit tests).
//!
//! Layout, all in the `meta` column family (the store's column families are
//! the node's schema; the bot needs a handful of keys, so it namespaces them
//! by prefix instead of adding families to that enum):
//!
//! ```text
//! "challenger/schema"                         → u32 le (SCHEMA)
//! "challenger/watermark"                      → u64 le: every batch ≤ it is judged
//! "challenger/verdict/" batch:u64be index:u64be → borsh Verdict
//! "challenger/game/" id:u64be                 → borsh GameEntry
//! "challenger/inputs/" batch:u64be index:u64be  → borsh Vec<Tensor>: a disputed record's inputs
//! "challenger/program/" program_root           → Program::to_bytes of a disputed record's model
//! ```
//!
//! The last two are written with a dispute intent, before `OpenDispute` is
//! sent: a challenger restarted mid-game rebuilds its prover from them, so
//! a node that withholds the batch body or the program once it is disputed
//! (it may be the sequencer being disputed) cannot run down our clock.
//!
//! Every write is synced (fsync): the bot writes a few keys per record, and
//! a verdict or a game lost to a power cut could mean a second dispute (a
//! second bond) or a forgotten game (a lost bond).
//!
//! The account nonce is deliberately *not* stored: the referee consumes a
//! nonce only when a transaction applies, so its `settlement_account` is
//! the single truth, and a stored copy could only disagree with it after a
//! crash.

use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::record::InferenceRecord;
use verinfer_state::store::{Cf, KeyRange, KvStore, WriteBatch};

use crate::error::{ChallengerError, Result};
use crate::solver::{Outcome, Verdict};

const SCHEMA: u32 = 1;
const K_SCHEMA: &[u8] = b"challenger/schema";
const K_WATERMARK: &[u8] = b"challenger/watermark";
const P_VERDICT: &[u8] = b"challenger/verdict/";
const P_GAME: &[u8] = b"challenger/game/";
const P_INPUTS: &[u8] = b"challenger/inputs/";
const P_PROGRAM: &[u8] = b"challenger/program/";

/// A game we opened, as persisted.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct GameEntry {
    /// Game id at the referee.
    pub id: u64,
    /// Batch number.
    pub batch: u64,
    /// Record index in the batch.
    pub index: u64,
    /// The disputed record.
    pub record: InferenceRecord,
    /// `None` while open.
    pub outcome: Option<Outcome>,
}

/// The database.
#[derive(Clone)]
pub struct Db {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

/// `prefix || batch:u64be || index:u64be`: a key per record.
fn record_key(prefix: &[u8], batch: u64, index: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&batch.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn verdict_key(batch: u64, index: u64) -> Vec<u8> {
    record_key(P_VERDICT, batch, index)
}

fn inputs_key(batch: u64, index: u64) -> Vec<u8> {
    record_key(P_INPUTS, batch, index)
}

fn program_key(root: &verinfer_state::hash::Hash32) -> Vec<u8> {
    let mut k = P_PROGRAM.to_vec();
    k.extend_from_slice(&root.0);
    k
}

fn game_key(id: u64) -> Vec<u8> {
    let mut k = P_GAME.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> ChallengerError {
    ChallengerError::Db(format!("{what}: {e}"))
}

impl Db {
    /// Opens (creating) the RocksDB database at `path`.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        Self::over(Arc::new(verinfer_state::store::RocksKv::open(path)?))
    }

    /// Over any backend (an in-memory one in tests).
    pub fn over(kv: Arc<dyn KvStore>) -> Result<Self> {
        match kv.get(Cf::Meta, K_SCHEMA)? {
            None => kv.put(Cf::Meta, K_SCHEMA, &SCHEMA.to_le_bytes(), true)?,
            Some(v) if v == SCHEMA.to_le_bytes() => {}
            Some(v) => return Err(corrupt("schema", format!("version {v:?}, this build reads {SCHEMA}"))),
        }
        Ok(Self { kv })
    }

    /// Every batch ≤ this is judged (0: none).
    pub fn watermark(&self) -> Result<u64> {
        match self.kv.get(Cf::Meta, K_WATERMARK)? {
            None => Ok(0),
            Some(v) => Ok(u64::from_le_bytes(v.try_into().map_err(|_| corrupt("watermark", "not 8 bytes"))?)),
        }
    }

    /// Advances the watermark. Verdicts below it are kept: they are a few
    /// bytes per record and the record of what the bot concluded.
    pub fn set_watermark(&self, w: u64) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(Cf::Meta, K_WATERMARK, w.to_le_bytes());
        self.kv.write(b, true)?;
        Ok(())
    }

    /// The verdict on `(batch, index)`, if judged.
    pub fn verdict(&self, batch: u64, index: u64) -> Result<Option<Verdict>> {
        self.kv
            .get(Cf::Meta, &verdict_key(batch, index))?
            .map(|v| borsh::from_slice(&v).map_err(|e| corrupt("verdict", e)))
            .transpose()
    }

    /// Records a verdict.
    pub fn put_verdict(&self, batch: u64, index: u64, v: &Verdict) -> Result<()> {
        let bytes = borsh::to_vec(v).map_err(|e| corrupt("verdict", e))?;
        self.kv.put(Cf::Meta, &verdict_key(batch, index), &bytes, true)?;
        Ok(())
    }

    /// Keeps a disputed record's inputs and its model's program (unless
    /// already kept), in one synced write.
    pub fn put_dispute_data(
        &self,
        batch: u64,
        index: u64,
        inputs: &[verinfer_state::tensor::Tensor],
        program: Option<(&verinfer_state::hash::Hash32, Vec<u8>)>,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(Cf::Meta, inputs_key(batch, index), borsh::to_vec(inputs).map_err(|e| corrupt("inputs", e))?);
        if let Some((root, bytes)) = program
            && self.kv.get(Cf::Meta, &program_key(root))?.is_none()
        {
            b.put(Cf::Meta, program_key(root), bytes);
        }
        self.kv.write(b, true)?;
        Ok(())
    }

    /// A disputed record's inputs, if kept.
    pub fn dispute_inputs(&self, batch: u64, index: u64) -> Result<Option<Vec<verinfer_state::tensor::Tensor>>> {
        self.kv
            .get(Cf::Meta, &inputs_key(batch, index))?
            .map(|v| borsh::from_slice(&v).map_err(|e| corrupt("inputs", e)))
            .transpose()
    }

    /// A kept program's bytes (`Program::to_bytes`), by program root.
    pub fn program(&self, root: &verinfer_state::hash::Hash32) -> Result<Option<Vec<u8>>> {
        Ok(self.kv.get(Cf::Meta, &program_key(root))?)
    }

    /// Records an opened game and its record's verdict in one atomic write.
    pub fn put_game(&self, g: &GameEntry, ours: verinfer_state::hash::Hash32) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(Cf::Meta, game_key(g.id), borsh::to_vec(g).map_err(|e| corrupt("game", e))?);
        let v = Verdict::Wrong { ours, game: Some(g.id) };
        b.put(Cf::Meta, verdict_key(g.batch, g.index), borsh::to_vec(&v).map_err(|e| corrupt("verdict", e))?);
        self.kv.write(b, true)?;
        Ok(())
    }

    /// Marks a game finished.
    pub fn finish_game(&self, id: u64, outcome: Outcome) -> Result<()> {
        if let Some(mut g) = self.game(id)? {
            g.outcome = Some(outcome);
            let bytes = borsh::to_vec(&g).map_err(|e| corrupt("game", e))?;
            self.kv.put(Cf::Meta, &game_key(id), &bytes, true)?;
        }
        Ok(())
    }

    /// Game `id`.
    pub fn game(&self, id: u64) -> Result<Option<GameEntry>> {
        self.kv.get(Cf::Meta, &game_key(id))?.map(|v| borsh::from_slice(&v).map_err(|e| corrupt("game", e))).transpose()
    }

    /// Every game we opened, by id.
    pub fn games(&self) -> Result<Vec<GameEntry>> {
        let mut out = Vec::new();
        for e in self.kv.scan(Cf::Meta, KeyRange::prefix(P_GAME), false)? {
            let (_, v) = e?;
            out.push(borsh::from_slice(&v).map_err(|e| corrupt("game", e))?);
        }
        Ok(out)
    }

    /// Records of `Wrong { game: None }` verdicts: disputes we meant to open
    /// but have not recorded as opened (a crash in between).
    pub fn unopened_disputes(&self) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        for e in self.kv.scan(Cf::Meta, KeyRange::prefix(P_VERDICT), false)? {
            let (k, v) = e?;
            if let Ok(Verdict::Wrong { game: None, .. }) = borsh::from_slice::<Verdict>(&v) {
                let rest = &k[P_VERDICT.len()..];
                if rest.len() == 16 {
                    let b = u64::from_be_bytes(rest[..8].try_into().map_err(|_| corrupt("verdict key", "short"))?);
                    let i = u64::from_be_bytes(rest[8..].try_into().map_err(|_| corrupt("verdict key", "short"))?);
                    out.push((b, i));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_state::hash::Hash32;
    use verinfer_state::store::MemKv;

    fn record() -> InferenceRecord {
        InferenceRecord::from_roots(Hash32([1; 32]), Hash32([2; 32]), Hash32([3; 32]), Hash32([4; 32]), 7, 9)
    }

    /// A disputed record's inputs and its program survive a restart, the
    /// program is written once per root, and neither disturbs the verdict
    /// and game scans.
    #[test]
    fn dispute_data_persists() {
        use verinfer_state::tensor::Tensor;
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let db = Db::over(kv.clone()).expect("open");
        let x = Tensor::from_f32(vec![2], vec![1.5, -0.0]).expect("tensor");
        let root = Hash32([5; 32]);
        db.put_dispute_data(3, 1, std::slice::from_ref(&x), Some((&root, vec![1, 2, 3]))).expect("put");
        db.put_dispute_data(3, 2, std::slice::from_ref(&x), Some((&root, vec![9]))).expect("put");
        let db = Db::over(kv).expect("reopen");
        assert_eq!(db.dispute_inputs(3, 1).expect("read"), Some(vec![x]));
        assert_eq!(db.dispute_inputs(3, 3).expect("read"), None);
        assert_eq!(db.program(&root).expect("read"), Some(vec![1, 2, 3]), "kept once, not overwritten");
        assert_eq!(db.program(&Hash32([6; 32])).expect("read"), None);
        assert!(db.unopened_disputes().expect("scan").is_empty());
        assert!(db.games().expect("scan").is_empty());
    }

    #[test]
    fn progress_verdicts_and_games_persist() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let db = Db::over(kv.clone()).expect("open");
        assert_eq!(db.watermark().expect("w"), 0);
        db.set_watermark(5).expect("w");
        db.put_verdict(6, 0, &Verdict::Correct).expect("v");
        db.put_verdict(6, 1, &Verdict::Wrong { ours: Hash32([9; 32]), game: None }).expect("v");
        assert_eq!(db.unopened_disputes().expect("u"), vec![(6, 1)]);
        let g = GameEntry { id: 3, batch: 6, index: 1, record: record(), outcome: None };
        db.put_game(&g, Hash32([9; 32])).expect("g");
        assert!(db.unopened_disputes().expect("u").is_empty());
        db.finish_game(3, Outcome::Won).expect("f");

        // "Restart": a new handle over the same backend sees everything.
        let db = Db::over(kv).expect("reopen");
        assert_eq!(db.watermark().expect("w"), 5);
        assert_eq!(db.verdict(6, 0).expect("v"), Some(Verdict::Correct));
        assert_eq!(db.verdict(6, 1).expect("v"), Some(Verdict::Wrong { ours: Hash32([9; 32]), game: Some(3) }));
        let games = db.games().expect("games");
        assert_eq!(games.len(), 1);
        assert_eq!(games[0].outcome, Some(Outcome::Won));
        assert_eq!(games[0].record, record());
    }

    #[test]
    fn rocksdb_reopens() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let db = Db::open(&dir.path().join("db")).expect("open");
            db.set_watermark(42).expect("w");
        }
        let db = Db::open(&dir.path().join("db")).expect("reopen");
        assert_eq!(db.watermark().expect("w"), 42);
    }

    #[test]
    fn a_foreign_schema_is_refused() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        kv.put(Cf::Meta, K_SCHEMA, &99u32.to_le_bytes(), true).expect("put");
        assert!(Db::over(kv).is_err());
    }
}
