//! The embedded settlement layer: the node hosts the referee
//! (`verinfer_settlement::Settlement`, a pure state machine) in-process,
//! persists it in the node's RocksDB, posts its sealed batches to it and
//! defends its records in dispute games (PROTOCOL.md §5 "embedded default").
//!
//! ## Persistence (docs/decisions/0010)
//! Every input that changed the state is appended to a log in the store's
//! `settlement` column family — `log/<seq:u64be>` = borsh `LogEntry {now_ms,
//! input}` — in one synced write before anyone learns its outcome; every
//! [`SNAPSHOT_EVERY`] entries the whole state (`Settlement::to_bytes`) is
//! written as `snap` and the log entries it covers are deleted in the same
//! write. On start the node loads the snapshot and replays the log: the
//! machine is deterministic and takes time as an argument, so the replay
//! reproduces the state byte for byte.
//!
//! ## Clock (docs/decisions/0017)
//! The referee's time is *chain time*: it advances only while the node (the
//! embedded chain) runs, as a halted chain's block time does. At start it
//! resumes from the last persisted heartbeat (`clock`, written about once a
//! second) or the referee's own last time, whichever is later, and then
//! follows the monotonic clock. So downtime is charged to nobody's chess
//! clock and closes no challenge window, and a wall-clock step (NTP, a
//! bad RTC) in either direction changes nothing. A fresh state starts at the
//! wall clock, so chain time equals wall time until the first downtime and
//! then runs behind it by the node's total downtime.
//!
//! ## Invariants
//! * A transaction's outcome is reported (RPC answer, event, receipt status)
//!   only after its log entry is durable; if that write fails the in-memory
//!   state is reloaded from the store, so memory never runs ahead of disk.
//! * Batches are posted in order and exactly once: [`BatchPoster::post`] of a
//!   batch the referee already holds with the same hash is a no-op, and the
//!   node re-posts from the referee's head after a restart.
//! * Receipts follow the referee. Their status writes are separate from the
//!   log write, so a crash in between leaves a receipt behind; every start
//!   reconciles the receipts the referee has an opinion on
//!   ([`SettlementHost::reconcile_receipts`]), idempotently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::SigningKey;
use tokio::sync::{Notify, broadcast, watch};
use verinfer_prover::dispute::{DisputeProver, Fault};
use verinfer_prover::game::agent::defender_move;
use verinfer_prover::game::keyfile;
use verinfer_prover::game::types::Sig64;
use verinfer_prover::game::view::GameView;
use verinfer_settlement::{AccountId, Event, Params, Settlement, Side, SignedTx, Tx, TxError};
use verinfer_state::batch::{BatchBody, BatchHeader};
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Status;
use verinfer_state::record::InferenceRecord;
use verinfer_state::store::{RocksStore, SettlementUpdate, StoreError};

use crate::config::{NodeConfig, SettlementConfig};
use crate::metrics::SettlementFigures;
use crate::node::{BatchPoster, Node, now_ms};

/// Log entries between snapshots.
pub const SNAPSHOT_EVERY: u64 = 64;
/// Largest faucet deposit per call (dev only; keeps totals far from u64
/// overflow however often it is called).
pub const MAX_FAUCET: u64 = 1_000_000_000_000;
/// Defender moves in one game per pass (a side may move several times in a
/// row: commit then reveal).
const MAX_MOVES_PER_PASS: usize = 8;

const SNAP_KEY: &[u8] = b"snap";
const LOG_PREFIX: &[u8] = b"log/";
/// Chain time at the last heartbeat (u64 little-endian ms).
const CLOCK_KEY: &[u8] = b"clock";
/// How often chain time is persisted. A crash forgets at most this much
/// chain time (plus one tick): it is given back to whoever was to move.
const HEARTBEAT_MS: u64 = 1000;

/// Chain time: `base_ms` at `at`, then the monotonic clock.
struct ChainClock {
    base_ms: u64,
    at: Instant,
    /// Chain time of the last persisted heartbeat.
    beat_ms: AtomicU64,
}

impl ChainClock {
    fn now(&self) -> u64 {
        self.base_ms.saturating_add(u64::try_from(self.at.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}
/// `u64be` N: every batch up to N is settled on the referee and its receipts
/// were reconciled, so start-up reconciliation skips them (it would
/// otherwise read every receipt ever batched on each start).
const RECONCILED_KEY: &[u8] = b"receipts_reconciled_through";

/// Why the settlement host failed.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The referee rejected the transaction; nothing changed.
    #[error("{0}")]
    Rejected(#[from] TxError),
    /// The store failed; the in-memory state was reloaded.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored settlement state does not load or replay.
    #[error("settlement state corrupt: {0}")]
    Corrupt(String),
    /// The sequencer key file.
    #[error("sequencer key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Invalid parameters in the configuration.
    #[error("settlement parameters: {0}")]
    Params(String),
    /// The key's account is not the one this datadir's batches were sealed
    /// or posted under: the node could neither post the next batch nor
    /// defend the posted ones.
    #[error(
        "sequencer key {path} is account {account}, but {what} names {sealed_by}: restore the key that \
         sealed them (settlement.key_file), or start with a fresh datadir"
    )]
    WrongKey {
        /// The key file.
        path: PathBuf,
        /// The key's account.
        account: AccountId,
        /// Which batch names another sequencer.
        what: String,
        /// The sequencer it names.
        sealed_by: Hash32,
    },
    /// A `PostBatch` from another account than this node's sequencer: the
    /// embedded settlement takes batches only from its node.
    #[error(
        "PostBatch from {signer}: the embedded settlement takes batches only from this node's sequencer {sequencer}"
    )]
    ForeignBatch {
        /// Who signed it.
        signer: AccountId,
        /// The node's sequencer account.
        sequencer: AccountId,
    },
}

/// An input to the referee.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
enum Input {
    /// Privileged credit (dev faucet, genesis allocation).
    Deposit { account: AccountId, amount: u64 },
    /// A signed transaction (boxed: a move or a batch is far larger than
    /// the other inputs).
    Signed(Box<SignedTx>),
    /// Settle batches whose window passed (logged only when it changed
    /// something).
    Tick,
}

/// An input as the log keeps it: an [`Input`], or the compact form of the
/// sequencer's own batch posts. The first three variants encode exactly as
/// [`Input`]'s, so entries written before the compact form existed decode.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
enum LoggedInput {
    /// [`Input::Deposit`].
    Deposit { account: AccountId, amount: u64 },
    /// [`Input::Signed`].
    Signed(Box<SignedTx>),
    /// [`Input::Tick`].
    Tick,
    /// The sequencer's own signed `PostBatch` without its body: the body is
    /// every record's inputs, which the store already holds, and
    /// [`verinfer_state::store::Store::body`] assembles the same bytes again
    /// on replay (docs/decisions/0013). Logged whole, it wrote every input
    /// a second time.
    OwnPost { signer: AccountId, nonce: u64, header: BatchHeader, signature: Sig64 },
}

impl Input {
    /// The compact log form of a `PostBatch` signed by `own`; `None` for
    /// every other input, which is logged as it is.
    fn compact(&self, own: &AccountId) -> Option<LoggedInput> {
        match self {
            Input::Signed(stx) if &stx.signer == own => match &stx.tx {
                Tx::PostBatch { header, .. } => Some(LoggedInput::OwnPost {
                    signer: stx.signer,
                    nonce: stx.nonce,
                    header: *header,
                    signature: stx.signature,
                }),
                _ => None,
            },
            _ => None,
        }
    }
}

impl LoggedInput {
    /// The input it logs; an [`LoggedInput::OwnPost`] gets its body back
    /// from the store.
    fn restore(self, store: &RocksStore) -> Result<Input, String> {
        match self {
            LoggedInput::Deposit { account, amount } => Ok(Input::Deposit { account, amount }),
            LoggedInput::Signed(stx) => Ok(Input::Signed(stx)),
            LoggedInput::Tick => Ok(Input::Tick),
            LoggedInput::OwnPost { signer, nonce, header, signature } => {
                let body = store
                    .body(header.number)
                    .map_err(|e| format!("batch {}'s body: {e}", header.number))?
                    .ok_or_else(|| format!("batch {} is not in the store", header.number))?;
                Ok(Input::Signed(Box::new(SignedTx { signer, nonce, tx: Tx::PostBatch { header, body }, signature })))
            }
        }
    }
}

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct LogEntry {
    now_ms: u64,
    input: LoggedInput,
}

fn log_key(seq: u64) -> Vec<u8> {
    let mut k = LOG_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The status writes that bring a receipt from `have` to the referee's
/// opinion `want` along the receipt lifecycle ([`Status::can_become`]), in
/// order: `Some(vec![])` when they already agree, two steps for a record
/// voided while its receipt still said `batched` (a crash lost the
/// `disputed` write too), `None` when `want` is not reachable — the receipt
/// is ahead of the referee or still pending, which no crash explains; it is
/// logged, never forced.
pub fn reconcile_steps(have: &Status, want: &Status) -> Option<Vec<Status>> {
    match (have, want) {
        // A batched status always names the record's own position.
        (Status::Batched { .. }, Status::Batched { .. }) => Some(vec![]),
        _ if have == want => Some(vec![]),
        (Status::Batched { .. }, Status::Fraudulent) => Some(vec![Status::Disputed, Status::Fraudulent]),
        _ if have.can_become(want) => Some(vec![*want]),
        _ => None,
    }
}

/// What a reconciliation pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Receipts compared with the referee.
    pub checked: u64,
    /// Receipts moved to the referee's status.
    pub updated: u64,
    /// Receipts that could not follow (missing, ahead of the referee, or a
    /// store error); logged.
    pub refused: u64,
}

/// An event as the node publishes it (`settlement_subscribeEvents`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventNote {
    /// Referee time at which it happened.
    pub at_ms: u64,
    /// The event.
    pub event: Event,
}

struct Inner {
    state: Settlement,
    /// Sequence of the next log entry.
    next_seq: u64,
    /// First log entry not covered by the snapshot.
    snap_seq: u64,
}

/// The embedded referee with its persistence, the sequencer's key and the
/// defender's prover cache.
pub struct SettlementHost {
    store: Arc<RocksStore>,
    inner: Mutex<Inner>,
    key: SigningKey,
    account: AccountId,
    /// The referee's chain id (fixed when its state was created).
    chain_id: u64,
    dev: bool,
    events: broadcast::Sender<EventNote>,
    /// Woken after every applied input (the defender re-checks its games).
    pub changed: Notify,
    node: Mutex<Weak<Node>>,
    /// Serialises our own transactions: reading the nonce and applying must
    /// not interleave with another of ours (the poster and the defender run
    /// on different threads).
    own: Mutex<()>,
    provers: Mutex<ProverCache>,
    /// Games defended at once.
    defender_threads: usize,
    clock: ChainClock,
    /// Tests: skip the receipt writes after a logged input, as a crash
    /// between the log write and them would.
    #[cfg(test)]
    skip_receipts: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SettlementHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettlementHost").field("account", &self.account).field("dev", &self.dev).finish()
    }
}

/// The parameters for a new settlement state: the preset (dev or
/// production) with the configured overrides.
pub fn params_of(cfg: &SettlementConfig, dev: bool) -> Result<Params, SettlementError> {
    let mut p = if dev { Params::dev() } else { Params::production() };
    macro_rules! over {
        ($f:ident) => {
            if let Some(v) = cfg.$f {
                p.$f = v;
            }
        };
    }
    over!(chain_id);
    over!(challenge_window_ms);
    over!(clock_ms);
    over!(min_sequencer_bond);
    over!(challenger_bond);
    over!(defender_stake);
    over!(dissection_exp);
    p.validate().map_err(SettlementError::Params)?;
    Ok(p)
}

/// The key file's path for `cfg`.
pub fn key_path(cfg: &NodeConfig) -> PathBuf {
    cfg.settlement.key_file.clone().unwrap_or_else(|| cfg.datadir.join("sequencer.key"))
}

/// Loads the sequencer key for a node on `store`. A missing key file is
/// created only for a datadir that has sealed no batch and has no
/// settlement state: otherwise a new key could post none of the sealed
/// batches (the referee wants `header.sequencer == sender`) and defend none
/// of the posted ones, so the node refuses to start instead.
pub fn load_or_create_key_for(store: &RocksStore, path: &Path) -> Result<SigningKey, SettlementError> {
    if !path.exists() {
        let head = store.head().map(|h| h.number);
        if head.is_some() || store.settlement_get(SNAP_KEY)?.is_some() {
            return Err(SettlementError::Key {
                path: path.to_path_buf(),
                reason: format!(
                    "missing, and this datadir already holds {}. They were sealed either under a key \
                     that is now missing (restore it, or point settlement.key_file at it) or with settlement \
                     disabled (the embedded settlement can take only batches sealed under its key: keep \
                     settlement.enabled = false, or start with a fresh datadir)",
                    head.map_or("settlement state".to_string(), |n| format!("{n} sealed batches"))
                ),
            });
        }
    }
    load_or_create_key(path)
}

/// Loads the sequencer's ed25519 key (hex of the 32-byte secret), creating
/// it with fresh randomness on first start (atomically: `game::keyfile`).
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, SettlementError> {
    let err = |reason: String| SettlementError::Key { path: path.to_path_buf(), reason };
    if let Some(key) = keyfile::read_key(path).map_err(err)? {
        return Ok(key);
    }
    let key = keyfile::create_key(path).map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %path.display(), "created a new sequencer key");
    Ok(key)
}

fn load_state(store: &RocksStore, params: &Params) -> Result<Inner, SettlementError> {
    let corrupt = |m: String| SettlementError::Corrupt(m);
    let (snap_seq, mut state) = match store.settlement_get(SNAP_KEY)? {
        Some(b) => {
            let (seq, bytes): (u64, Vec<u8>) = borsh::from_slice(&b).map_err(|e| corrupt(format!("snapshot: {e}")))?;
            (seq, Settlement::from_bytes(&bytes).map_err(|e| corrupt(format!("snapshot: {e}")))?)
        }
        None => (0, Settlement::new(params.clone()).map_err(SettlementError::Params)?),
    };
    let mut next_seq = snap_seq;
    for kv in store.settlement_scan(LOG_PREFIX)? {
        let (k, v) = kv?;
        let seq = k
            .get(LOG_PREFIX.len()..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("a log key of the wrong length".into()))?;
        if seq < snap_seq {
            continue; // covered by the snapshot (should have been deleted with it)
        }
        if seq != next_seq {
            return Err(corrupt(format!("log entry {seq} follows {next_seq}: a gap")));
        }
        let e: LogEntry = borsh::from_slice(&v).map_err(|e| corrupt(format!("log entry {seq}: {e}")))?;
        let input = e.input.restore(store).map_err(|err| corrupt(format!("log entry {seq}: {err}")))?;
        apply_input(&mut state, e.now_ms, &input)
            .map_err(|err| corrupt(format!("replaying log entry {seq}: {err}")))?;
        next_seq += 1;
    }
    Ok(Inner { state, next_seq, snap_seq })
}

/// Refuses a key whose account did not post the referee's newest batch or
/// seal the store's first unposted one.
fn check_key(store: &RocksStore, state: &Settlement, account: AccountId, path: &Path) -> Result<(), SettlementError> {
    let wrong = |what: String, sealed_by: Hash32| SettlementError::WrongKey {
        path: path.to_path_buf(),
        account,
        what,
        sealed_by,
    };
    let posted = state.head().map(|b| (b.header.number, b.header.sequencer));
    if let Some((n, by)) = posted
        && by != account.as_hash()
    {
        return Err(wrong(format!("posted batch {n}"), by));
    }
    let next = posted.map_or(1, |(n, _)| n + 1);
    if let Some(h) = store.header(next)?
        && h.sequencer != account.as_hash()
    {
        return Err(wrong(format!("sealed batch {next} (not yet posted)"), h.sequencer));
    }
    Ok(())
}

fn apply_input(state: &mut Settlement, now: u64, input: &Input) -> Result<Vec<Event>, TxError> {
    match input {
        Input::Deposit { account, amount } => state.deposit(*account, *amount),
        Input::Signed(stx) => state.apply_signed(now, stx),
        Input::Tick => state.tick(now),
    }
}

impl SettlementHost {
    /// Opens (or creates) the settlement state in `store`.
    pub fn open(store: Arc<RocksStore>, cfg: &NodeConfig, key: SigningKey) -> Result<Arc<Self>, SettlementError> {
        let params = params_of(&cfg.settlement, cfg.dev)?;
        let inner = load_state(&store, &params)?;
        if inner.state.params() != &params {
            tracing::warn!(stored = ?inner.state.params(), configured = ?params, "settlement parameters are fixed when the state is created; using the stored ones");
        }
        let fresh = store.settlement_get(SNAP_KEY)?.is_none();
        let account = AccountId::of_key(&key.verifying_key());
        check_key(&store, &inner.state, account, &key_path(cfg))?;
        let beat = match store.settlement_get(CLOCK_KEY)? {
            None => None,
            Some(b) => Some(u64::from_le_bytes(
                b.as_slice().try_into().map_err(|_| SettlementError::Corrupt("clock: not 8 bytes".into()))?,
            )),
        };
        // A fresh chain starts at the wall clock; an existing one resumes
        // where it stopped (decision 0017).
        // (A state from before chain time has no heartbeat: it continues
        // on the wall clock, as it ran until now.)
        let base_ms = match (fresh, beat) {
            (true, _) => now_ms(),
            (false, Some(beat)) => beat.max(inner.state.now_ms()),
            (false, None) => now_ms().max(inner.state.now_ms()),
        };
        let behind_ms = now_ms().saturating_sub(base_ms);
        let chain_id = inner.state.params().chain_id;
        let host = Arc::new(Self {
            store,
            inner: Mutex::new(inner),
            key,
            account,
            chain_id,
            dev: cfg.dev,
            events: broadcast::channel(4096).0,
            changed: Notify::new(),
            node: Mutex::new(Weak::new()),
            own: Mutex::new(()),
            provers: Mutex::new(ProverCache::new(cfg.settlement.defender_cache_mib.saturating_mul(1 << 20))),
            defender_threads: match cfg.settlement.defender_threads {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n as usize,
            },
            clock: ChainClock { base_ms, at: Instant::now(), beat_ms: AtomicU64::new(base_ms) },
            #[cfg(test)]
            skip_receipts: std::sync::atomic::AtomicBool::new(false),
        });
        if fresh {
            // Bind the parameters durably before the first input.
            let mut g = host.lock();
            host.snapshot(&mut g)?;
        }
        // Where chain time resumes if the node stops before its first
        // heartbeat (the referee's own time is 0 until its first input).
        host.write_heartbeat(base_ms)?;
        // Receipt writes trail the log: repair what a crash left behind
        // before anyone reads a receipt.
        let r = host.reconcile_receipts()?;
        if r.updated > 0 || r.refused > 0 {
            tracing::info!(
                checked = r.checked,
                updated = r.updated,
                refused = r.refused,
                "receipts reconciled with the settlement state"
            );
        }
        {
            let g = host.lock();
            tracing::info!(
                account = %account,
                head = g.state.head().map_or(0, |b| b.header.number),
                games = g.state.games().count(),
                log_entries = g.next_seq - g.snap_seq,
                window_ms = g.state.params().challenge_window_ms,
                clock_ms = g.state.params().clock_ms,
                chain_time_ms = base_ms,
                behind_wall_clock_ms = behind_ms,
                "settlement state loaded"
            );
        }
        Ok(host)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets the host read the node's models and notify status watchers.
    pub fn attach(&self, node: &Arc<Node>) {
        *self.node.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(node);
    }

    /// The sequencer's account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Whether dev-only methods (faucet) are enabled.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<EventNote> {
        self.events.subscribe()
    }

    /// The time the next input would be applied at (chain time).
    pub fn now(&self) -> u64 {
        self.clock.now().max(self.lock().state.now_ms())
    }

    /// Persists chain time if the last heartbeat is [`HEARTBEAT_MS`] old:
    /// what the next start resumes from.
    fn heartbeat(&self, now: u64) -> Result<(), SettlementError> {
        if now < self.clock.beat_ms.load(Ordering::Relaxed).saturating_add(HEARTBEAT_MS) {
            return Ok(());
        }
        self.write_heartbeat(now)
    }

    fn write_heartbeat(&self, now: u64) -> Result<(), SettlementError> {
        let mut up = SettlementUpdate::new();
        up.put(CLOCK_KEY, now.to_le_bytes().to_vec());
        self.store.apply_settlement(up)?;
        self.clock.beat_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `f` on the state (read-only) and the current time.
    pub fn read<T>(&self, f: impl FnOnce(&Settlement, u64) -> T) -> T {
        let g = self.lock();
        let now = self.clock.now().max(g.state.now_ms());
        f(&g.state, now)
    }

    fn snapshot(&self, g: &mut Inner) -> Result<(), SettlementError> {
        let mut up = SettlementUpdate::new();
        up.put(SNAP_KEY, borsh::to_vec(&(g.next_seq, g.state.to_bytes())).expect("in-memory encoding"));
        for s in g.snap_seq..g.next_seq {
            up.delete(log_key(s));
        }
        self.store.apply_settlement(up)?;
        g.snap_seq = g.next_seq;
        Ok(())
    }

    /// Applies one input at the node's (monotone) clock, persists it, then
    /// publishes its events and the receipt statuses they change.
    fn apply(&self, input: Input) -> Result<(u64, Vec<Event>), SettlementError> {
        let mut g = self.lock();
        let now = self.clock.now().max(g.state.now_ms());
        let events = apply_input(&mut g.state, now, &input)?;
        if matches!(input, Input::Tick) && events.is_empty() {
            drop(g);
            self.heartbeat(now)?;
            return Ok((now, events)); // nothing else to remember
        }
        let mut up = SettlementUpdate::new();
        let seq = g.next_seq;
        let entry = match input.compact(&self.account) {
            // The bytes of `LogEntry { now_ms, input }`, without a copy.
            None => borsh::to_vec(&(now, &input)),
            Some(compact) => borsh::to_vec(&LogEntry { now_ms: now, input: compact }),
        };
        up.put(log_key(seq), entry.expect("in-memory encoding"));
        if let Err(e) = self.store.apply_settlement(up) {
            // Memory must not run ahead of disk: reload what is durable.
            tracing::error!(error = %e, "persisting a settlement input failed; reloading the stored state");
            let params = g.state.params().clone();
            *g = load_state(&self.store, &params)?;
            return Err(e.into());
        }
        g.next_seq += 1;
        if g.next_seq - g.snap_seq >= SNAPSHOT_EVERY
            && let Err(e) = self.snapshot(&mut g)
        {
            // The log still holds everything; the next input retries.
            tracing::warn!(error = %e, "settlement snapshot failed");
        }
        self.update_statuses(&g.state, now, &events);
        drop(g);
        for e in &events {
            let _ = self.events.send(EventNote { at_ms: now, event: e.clone() });
        }
        if !events.is_empty() {
            self.changed.notify_one();
        }
        Ok((now, events))
    }

    /// Moves receipts in the node's store along with the referee: disputed,
    /// fraudulent, final, back to batched. Best effort (the referee's state
    /// is authoritative and `settlement_recordStatus` reads it directly): a
    /// refused transition is logged, not fatal, and a receipt a crash left
    /// behind is caught up here or at the next start.
    fn update_statuses(&self, state: &Settlement, now: u64, events: &[Event]) {
        #[cfg(test)]
        if self.skip_receipts.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut changes: Vec<(verinfer_state::hash::Hash32, Status)> = Vec::new();
        let record_of = |batch: u64, index: u64| self.store.record_at(batch, index).ok().flatten();
        for e in events {
            match e {
                Event::DisputeOpened { batch, index, .. } | Event::RecordVoided { batch, index, .. } => {
                    if let (Some(r), Ok(s)) = (record_of(*batch, *index), state.record_status(*batch, *index, now)) {
                        changes.push((r.request_id, s));
                    }
                }
                Event::GameResolved { game, .. } => {
                    if let Some(g) = state.game(*game)
                        && let Ok(s) = state.record_status(g.batch, g.index, now)
                    {
                        changes.push((g.record.request_id, s));
                    }
                }
                Event::BatchSettled { number, void } => {
                    let Ok(it) = self.store.records_in_batch(*number, 0) else { continue };
                    for (index, r) in it.flatten() {
                        if !void.contains(&index) {
                            changes.push((r.request_id, Status::Final));
                        }
                    }
                }
                _ => {}
            }
        }
        self.follow_all(changes);
    }

    /// [`SettlementHost::follow`] for many receipts in one synced write: a
    /// settled batch moves every record to `final`, and a write per record
    /// (an fsync each, under the state lock) held posting, defending and
    /// reads for about a second per 4,096 records (found by an audit). Each
    /// receipt follows the last opinion given for it; if the combined
    /// write fails, each is tried alone.
    fn follow_all(&self, changes: Vec<(verinfer_state::hash::Hash32, Status)>) {
        let mut last: HashMap<verinfer_state::hash::Hash32, Status> = HashMap::new();
        let mut order = Vec::new();
        for (id, want) in changes {
            if last.insert(id, want).is_none() {
                order.push(id);
            }
        }
        let mut up = SettlementUpdate::new();
        let mut moved = Vec::new();
        for id in order {
            let want = last[&id];
            if let Ok(steps) = self.follow_steps(id, want)
                && !steps.is_empty()
            {
                for s in steps {
                    up.set_status(id, s);
                }
                moved.push((id, want));
            }
        }
        if moved.is_empty() {
            return;
        }
        if let Err(e) = self.store.apply_settlement(up) {
            tracing::warn!(receipts = moved.len(), error = %e, "receipt statuses not updated together; one at a time");
            for (id, want) in moved {
                let _ = self.follow(id, want);
            }
            return;
        }
        self.notify_watchers(moved.iter().map(|(id, _)| id));
    }

    /// Tells the node's status watchers (`infer_subscribeStatus`) the
    /// receipts of `ids` as stored now.
    fn notify_watchers<'a>(&self, ids: impl IntoIterator<Item = &'a verinfer_state::hash::Hash32>) {
        let Some(n) = self.node.lock().unwrap_or_else(PoisonError::into_inner).upgrade() else { return };
        for id in ids {
            if let Ok(Some(r)) = self.store.receipt(id) {
                n.events.notify_status(&r);
            }
        }
    }

    /// The status writes that bring receipt `id` to `want`; `Err(())` if it
    /// cannot follow (logged).
    fn follow_steps(&self, id: verinfer_state::hash::Hash32, want: Status) -> Result<Vec<Status>, ()> {
        let have = match self.store.receipt(&id) {
            Ok(Some(r)) => r.status,
            Ok(None) => {
                tracing::warn!(request_id = %id, "a record the referee knows has no receipt");
                return Err(());
            }
            Err(e) => {
                tracing::warn!(request_id = %id, error = %e, "reading a receipt failed");
                return Err(());
            }
        };
        reconcile_steps(&have, &want).ok_or_else(|| {
            tracing::warn!(request_id = %id, have = have.name(), want = want.name(), "receipt cannot follow the referee");
        })
    }

    /// Moves one receipt to the referee's `want` (through `disputed` if a
    /// crash skipped it) and notifies its watchers. `Ok(true)` if it
    /// changed; `Err(())` if it could not follow (logged).
    fn follow(&self, id: verinfer_state::hash::Hash32, want: Status) -> Result<bool, ()> {
        let steps = self.follow_steps(id, want)?;
        if steps.is_empty() {
            return Ok(false);
        }
        let mut up = SettlementUpdate::new();
        for s in steps {
            up.set_status(id, s);
        }
        if let Err(e) = self.store.apply_settlement(up) {
            tracing::warn!(request_id = %id, want = want.name(), error = %e, "receipt status not updated");
            return Err(());
        }
        self.notify_watchers([&id]);
        Ok(true)
    }

    /// Brings every receipt the referee has an opinion on to the referee's
    /// status: records of settled batches (final or void) and every
    /// disputed record, as of the referee's last durable time. Idempotent;
    /// run at every start (after the log replay), because the receipt
    /// writes that follow a logged input are separate writes a crash can
    /// cut off. Settled batches up to a durable watermark are skipped.
    pub fn reconcile_receipts(&self) -> Result<Reconciled, SettlementError> {
        let through = match self.store.settlement_get(RECONCILED_KEY)? {
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| SettlementError::Corrupt("reconciliation watermark of the wrong length".into()))?,
            None => 0,
        };
        // The referee's opinions, read under the lock; the receipts after.
        let (disputed, settled, watermark) = {
            let g = self.lock();
            let s = &g.state;
            let now = s.now_ms();
            let mut disputed: HashMap<(u64, u64), Status> = HashMap::new();
            for game in s.games().filter(|game| game.batch > through) {
                if let Ok(st) = s.record_status(game.batch, game.index, now) {
                    disputed.insert((game.batch, game.index), st);
                }
            }
            let settled: Vec<u64> = s.batches(through + 1..).filter(|b| b.settled).map(|b| b.header.number).collect();
            // Batches are posted in order from 1, so the settled prefix
            // after the old watermark is contiguous numbers.
            let mut watermark = through;
            for b in s.batches(through + 1..) {
                if !b.settled || b.header.number != watermark + 1 {
                    break;
                }
                watermark = b.header.number;
            }
            (disputed, settled, watermark)
        };
        let mut r = Reconciled::default();
        let mut tally = |res: Result<bool, ()>| {
            r.checked += 1;
            match res {
                Ok(true) => r.updated += 1,
                Ok(false) => {}
                Err(()) => r.refused += 1,
            }
        };
        for (&(batch, index), want) in &disputed {
            match self.store.record_at(batch, index)? {
                Some(rec) => tally(self.follow(rec.request_id, *want)),
                None => {
                    tracing::warn!(batch, index, "the referee holds a disputed record the store does not");
                    tally(Err(()));
                }
            }
        }
        for batch in settled {
            for item in self.store.records_in_batch(batch, 0)? {
                let (index, rec) = item?;
                if disputed.contains_key(&(batch, index)) {
                    continue; // done above, with its own status
                }
                tally(self.follow(rec.request_id, Status::Final));
            }
        }
        if watermark > through {
            let mut up = SettlementUpdate::new();
            up.put(RECONCILED_KEY, watermark.to_be_bytes().to_vec());
            self.store.apply_settlement(up)?;
        }
        Ok(r)
    }

    /// The figures the node exports as metrics, read from the referee now.
    pub fn figures(&self) -> SettlementFigures {
        let me = self.account;
        let g = self.lock();
        let s = &g.state;
        let (mut won, mut lost) = (0, 0);
        for game in s.games().filter(|game| game.defender == me) {
            match game.resolution.as_ref().map(|r| r.winner) {
                Some(Side::Defender) => won += 1,
                Some(Side::Challenger) => lost += 1,
                None => {}
            }
        }
        SettlementFigures {
            batches_posted: s.sequencer(&me).map_or(0, |q| q.batches),
            last_posted_batch: s.head().map_or(0, |b| b.header.number),
            games_open: s.open_games().count() as u64,
            defender_won: won,
            defender_lost: lost,
            sequencer_bond: s.sequencer(&me).map_or(0, |q| q.bond),
            sequencer_free: s.account(&me).free,
            log_entries: g.next_seq - g.snap_seq,
        }
    }

    /// Applies a signed transaction from anyone.
    pub fn submit(&self, stx: SignedTx) -> Result<(u64, Vec<Event>), SettlementError> {
        // The referee itself lets any bonded account post the next batch (a
        // contract could hold several sequencers). The embedded deployment
        // is this node's chain. A rollup's batch inbox accepts only its
        // configured batcher, and this host does the same: it takes batches
        // only from its own key. Otherwise anyone could take the faucet
        // (in dev), bond, and post batch N+1 first. Every later post of the
        // node would then fail with `WrongBatchNumber`. A refused
        // transaction never reaches the log, so replay is unaffected.
        if matches!(stx.tx, Tx::PostBatch { .. }) && stx.signer != self.account {
            return Err(SettlementError::ForeignBatch { signer: stx.signer, sequencer: self.account });
        }
        // Check the signature before taking the state lock: it hashes the
        // whole transaction (a PostBatch carries a body of up to the RPC
        // body limit), and a stranger's forged signature must not hold up
        // posting, defending and every read meanwhile. The referee checks
        // it again under the lock, as it must for every input.
        stx.verify_signature(self.chain_id).map_err(|_| SettlementError::Rejected(TxError::BadSignature))?;
        self.apply(Input::Signed(Box::new(stx)))
    }

    /// Signs `tx` with the sequencer's key at its next nonce and applies it.
    pub fn submit_own(&self, tx: Tx) -> Result<(u64, Vec<Event>), SettlementError> {
        let _own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        let (nonce, chain) = {
            let g = self.lock();
            (g.state.account(&self.account).nonce, g.state.params().chain_id)
        };
        self.apply(Input::Signed(Box::new(SignedTx::sign(&self.key, chain, nonce, tx))))
    }

    /// Privileged credit (faucet, genesis).
    pub fn deposit(&self, account: AccountId, amount: u64) -> Result<(u64, Vec<Event>), SettlementError> {
        self.apply(Input::Deposit { account, amount })
    }

    /// Deletes the inputs and outputs of final batches whose window ended
    /// at least `after_ms` ago, oldest first and in order (at most 64
    /// batches a call); returns the records pruned. Only settled batches
    /// qualify: no game can open on them any more, so neither the defender
    /// nor a challenger needs their inputs.
    pub fn prune_final(&self, after_ms: u64) -> Result<u64, SettlementError> {
        let done = self.store.pruned().through_batch;
        let upto = self.read(|s, now| {
            let mut upto = done;
            for n in done + 1..=done.saturating_add(64) {
                match s.batch(n) {
                    Some(b) if b.settled && b.window_end_ms.saturating_add(after_ms) <= now => upto = n,
                    _ => break,
                }
            }
            upto
        });
        if upto == done {
            return Ok(0);
        }
        // The log keeps the node's own posts without their bodies, and a
        // replay rebuilds them from the store: fold the log into a snapshot
        // first, so that no entry left to replay needs a body being pruned.
        // (Later entries cannot: they post batches after `upto`.)
        {
            let mut g = self.lock();
            if g.next_seq > g.snap_seq {
                self.snapshot(&mut g)?;
            }
        }
        let records = self.store.prune_tensors_through(upto)?;
        tracing::info!(through_batch = upto, records, "pruned the inputs and outputs of final batches");
        Ok(records)
    }

    /// Settles batches whose window passed.
    pub fn tick(&self) -> Result<Vec<Event>, SettlementError> {
        self.apply(Input::Tick).map(|(_, e)| e)
    }

    /// The sequencer's bond, the minimum bond, and its free balance.
    fn bond_figures(&self) -> (u64, u64, u64) {
        self.read(|s, _| {
            (
                s.sequencer(&self.account).map_or(0, |q| q.bond),
                s.params().min_sequencer_bond,
                s.account(&self.account).free,
            )
        })
    }

    /// What brings a bond below `min` up to twice the minimum: room to top
    /// up after a lost game.
    fn bond_shortfall(bond: u64, min: u64) -> u64 {
        min.saturating_mul(2).saturating_sub(bond)
    }

    /// If the sequencer's bond is below the minimum, funds it (from the
    /// genesis allocation) and bonds it up to twice the minimum.
    pub fn ensure_bonded(&self) -> Result<(), SettlementError> {
        let (bond, min, free) = self.bond_figures();
        if bond >= min {
            return Ok(());
        }
        let want = Self::bond_shortfall(bond, min);
        if free < want {
            self.deposit(self.account, want - free)?;
        }
        self.submit_own(Tx::BondSequencer { amount: want })?;
        tracing::info!(account = %self.account, bond = bond + want, "sequencer bonded (genesis allocation)");
        Ok(())
    }

    /// The newest batch the referee holds (0: none).
    pub fn head(&self) -> u64 {
        self.lock().state.head().map_or(0, |b| b.header.number)
    }

    /// Posts one sealed batch; a no-op if the referee already holds it.
    pub fn post_batch(&self, header: &BatchHeader, body: BatchBody) -> Result<(), SettlementError> {
        if let Some(b) = self.lock().state.batch(header.number) {
            if b.hash == header.hash() {
                return Ok(());
            }
            return Err(SettlementError::Corrupt(format!(
                "the referee holds another batch {} ({}) than the store ({})",
                header.number,
                b.hash,
                header.hash()
            )));
        }
        // Stakes the defender wins back go to its free balance, not its bond,
        // so games by a stranger (even ones the node wins) can leave the bond
        // below the minimum for good. Re-bond from the node's own free
        // balance first (up to twice the minimum, as at start).
        let (bond, min, free) = self.bond_figures();
        if bond < min {
            let top_up = Self::bond_shortfall(bond, min).min(free);
            if bond.saturating_add(top_up) >= min {
                self.submit_own(Tx::BondSequencer { amount: top_up })?;
                tracing::info!(bond = bond + top_up, from_free = top_up, "sequencer re-bonded from its free balance");
            }
        }
        self.submit_own(Tx::PostBatch { header: *header, body })?;
        Ok(())
    }

    // ----- defender ------------------------------------------------------

    /// The prover for a disputed record (cached per `(batch, index)`): the
    /// model's program, the stored inputs, and the fault if the node
    /// injected one into this record.
    fn prover_for(&self, batch: u64, index: u64, record: &InferenceRecord) -> Result<Arc<DisputeProver>, String> {
        if let Some(p) = self.provers.lock().unwrap_or_else(PoisonError::into_inner).get(&(batch, index)) {
            return Ok(p);
        }
        // The program comes from the store, not from the models being
        // served: a model the node no longer serves (a lower exec limit
        // after a restart) still has records to defend.
        let program = match self
            .node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
            .and_then(|n| n.model(&record.model_id))
        {
            Some(m) => (*m.program).clone(),
            None => {
                let bytes = self
                    .store
                    .model_program(&record.model_id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("model {} has no stored program", record.model_id))?;
                let program = verinfer_prover::program::Program::from_bytes(&bytes)
                    .map_err(|e| format!("model {}: stored program: {e}", record.model_id))?;
                if program.root() != record.program_root {
                    return Err(format!(
                        "model {}: stored program does not hash to the record's program root",
                        record.model_id
                    ));
                }
                program
            }
        };
        let tensors = self
            .store
            .record_tensors(&record.request_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no stored tensors for request {}", record.request_id))?;
        let fault: Option<Fault> = self
            .store
            .settlement_get(&crate::fault::fault_key(&record.input_root, &record.output_root))
            .map_err(|e| e.to_string())?
            .map(|b| borsh::from_slice(&b))
            .transpose()
            .map_err(|e| format!("stored fault: {e}"))?;
        if let Some(f) = &fault {
            tracing::warn!(
                batch,
                index,
                node = f.node,
                element = f.element,
                step = f.step,
                "defending an injected fault (dev)"
            );
        }
        // What it will hold: every node output, their chunk trees and the
        // program (measured: 118 MiB for mobilenetv2's 88 MiB of outputs).
        let weight = program.trace_bytes().saturating_mul(3) / 2;
        let p = Arc::new(DisputeProver::new(program, tensors.inputs, fault).map_err(|e| e.to_string())?);
        self.provers.lock().unwrap_or_else(PoisonError::into_inner).insert((batch, index), p.clone(), weight);
        Ok(p)
    }

    /// One pass of the defender: answers every game awaiting the sequencer
    /// and claims the timeouts of challengers that went silent. Blocking
    /// (provers execute models).
    pub fn defend_once(&self) {
        let me = self.account;
        let (awaiting, expired, open_records) = self.read(|s, now| {
            // Earliest deadline first: with more games than time, the ones
            // about to expire are answered first.
            let mut games: Vec<(u64, (u64, u64), u64)> =
                s.games_awaiting(me).map(|g| (g.deadline_ms().unwrap_or(u64::MAX), (g.batch, g.index), g.id)).collect();
            games.sort_unstable();
            // One work item per record, its games in deadline order: a
            // record's prover is built by one worker, never by two at once.
            let mut awaiting: Vec<Vec<u64>> = Vec::new();
            let mut item_of: HashMap<(u64, u64), usize> = HashMap::new();
            for (_, record, id) in games {
                let i = *item_of.entry(record).or_insert_with(|| {
                    awaiting.push(Vec::new());
                    awaiting.len() - 1
                });
                awaiting[i].push(id);
            }
            let expired: Vec<u64> = s
                .open_games()
                .filter(|g| g.defender == me && g.to_move() == Some(Side::Challenger))
                .filter(|g| g.deadline_ms().is_some_and(|d| now >= d))
                .map(|g| g.id)
                .collect();
            let open: Vec<(u64, u64)> =
                s.open_games().filter(|g| g.defender == me).map(|g| (g.batch, g.index)).collect();
            (awaiting, expired, open)
        });
        // Drop provers of records with no open game left.
        self.provers.lock().unwrap_or_else(PoisonError::into_inner).retain(|k| open_records.contains(k));
        // Several games at once (a move may first build a trace, seconds
        // for a large model), each worker taking the next by deadline.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let play = || {
            while let Some(ids) = awaiting.get(next.fetch_add(1, Ordering::Relaxed)) {
                for &id in ids {
                    for _ in 0..MAX_MOVES_PER_PASS {
                        let Some(v) = self.read(|s, now| s.game_view(id, now)) else { break };
                        if v.to_move != Some(Side::Defender) {
                            break;
                        }
                        if !self.defend_move(&v) {
                            break;
                        }
                    }
                }
            }
        };
        let threads = self.defender_threads.clamp(1, awaiting.len().max(1));
        std::thread::scope(|sc| {
            for _ in 1..threads {
                sc.spawn(play);
            }
            play();
        });
        for id in expired {
            match self.submit_own(Tx::ClaimTimeout { game: id }) {
                Ok(_) => tracing::info!(game = id, "claimed the challenger's timeout"),
                Err(e) => tracing::debug!(game = id, error = %e, "timeout claim refused"),
            }
        }
    }

    /// Computes and sends one defender move; false when it could not.
    fn defend_move(&self, v: &GameView) -> bool {
        let prover = match self.prover_for(v.batch, v.index, &v.record) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(game = v.id, error = %e, "defender: no prover for the disputed record");
                return false;
            }
        };
        let mv = match defender_move(v, &prover) {
            Ok(Some(mv)) => mv,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(game = v.id, error = %e, "defender: cannot compute a move");
                return false;
            }
        };
        let kind = mv.kind();
        match self.submit_own(v.tx(mv)) {
            Ok(_) => {
                tracing::info!(game = v.id, seq = v.moves, ?kind, "defender moved");
                true
            }
            Err(e) => {
                tracing::warn!(game = v.id, ?kind, error = %e, "defender move rejected");
                false
            }
        }
    }
}

/// The defender's dispute provers by record, within a byte budget: the
/// least recently used is dropped first (and rebuilt if its game needs it
/// again); the newest is always kept, whatever its size.
struct ProverCache<T = Arc<DisputeProver>> {
    map: HashMap<(u64, u64), CachedProver<T>>,
    budget: u64,
    bytes: u64,
    clock: u64,
}

struct CachedProver<T> {
    prover: T,
    bytes: u64,
    used: u64,
}

impl<T: Clone> ProverCache<T> {
    fn new(budget: u64) -> Self {
        Self { map: HashMap::new(), budget, bytes: 0, clock: 0 }
    }

    fn get(&mut self, key: &(u64, u64)) -> Option<T> {
        self.clock += 1;
        let e = self.map.get_mut(key)?;
        e.used = self.clock;
        Some(e.prover.clone())
    }

    fn insert(&mut self, key: (u64, u64), prover: T, bytes: u64) {
        self.clock += 1;
        if let Some(old) = self.map.insert(key, CachedProver { prover, bytes, used: self.clock }) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.bytes > self.budget && self.map.len() > 1 {
            let Some((&victim, _)) = self.map.iter().filter(|(k, _)| **k != key).min_by_key(|(_, e)| e.used) else {
                break;
            };
            if let Some(e) = self.map.remove(&victim) {
                self.bytes -= e.bytes;
                tracing::info!(
                    batch = victim.0,
                    index = victim.1,
                    "defender: dropped a cached prover (defender_cache_mib)"
                );
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(&(u64, u64)) -> bool) {
        let bytes = &mut self.bytes;
        self.map.retain(|k, e| {
            let kept = keep(k);
            if !kept {
                *bytes -= e.bytes;
            }
            kept
        });
    }
}

/// Posts sealed batches to the embedded referee.
#[derive(Debug)]
pub struct SettlementPoster(pub Arc<SettlementHost>);

impl BatchPoster for SettlementPoster {
    fn posted_head(&self) -> Option<u64> {
        Some(self.0.head())
    }

    fn post(&self, header: &BatchHeader, body: &dyn Fn() -> Result<BatchBody, String>) -> Result<(), String> {
        self.0.post_batch(header, body()?).map_err(|e| e.to_string())?;
        tracing::info!(batch = header.number, records = header.record_count, "batch posted to settlement");
        Ok(())
    }
}

/// The ticker and defender task.
#[derive(Debug)]
pub struct SettlementTasks {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SettlementTasks {
    /// Stops the task and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the tasks that tick the referee every `tick_ms` (settling
/// windows, pruning, the clock's heartbeat) and, apart from it so that a
/// long defence (a trace built per disputed record) never delays a tick,
/// run the defender after every change and every `tick_ms`.
pub fn spawn_tasks(host: Arc<SettlementHost>, tick_ms: u64, defender: bool, prune_after_ms: u64) -> SettlementTasks {
    let (stop, stop_rx) = watch::channel(false);
    let ticker = {
        let (host, mut stop_rx) = (host.clone(), stop_rx.clone());
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    r = stop_rx.changed() => if r.is_err() || *stop_rx.borrow() { break },
                }
                if let Err(e) = host.tick() {
                    tracing::warn!(error = %e, "settlement tick failed");
                }
                if prune_after_ms > 0 {
                    let h = host.clone();
                    match tokio::task::spawn_blocking(move || h.prune_final(prune_after_ms)).await {
                        Ok(Err(e)) => tracing::warn!(error = %e, "pruning final batches failed"),
                        Err(e) => tracing::warn!(error = %e, "pruning task failed"),
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    };
    let defend = {
        let mut stop_rx = stop_rx;
        async move {
            if !defender {
                return;
            }
            let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = host.changed.notified() => {}
                    r = stop_rx.changed() => if r.is_err() || *stop_rx.borrow() { break },
                }
                let h = host.clone();
                let _ = tokio::task::spawn_blocking(move || h.defend_once()).await;
            }
        }
    };
    let task = tokio::spawn(async move {
        tokio::join!(ticker, defend);
    });
    SettlementTasks { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_state::store::StoreOptions;

    /// A host on a fresh store with one toy model registered (a program
    /// the host never runs): for tests that post batches of records.
    struct Toy {
        _dir: tempfile::TempDir,
        store: Arc<RocksStore>,
        host: Arc<SettlementHost>,
        key: SigningKey,
        model: verinfer_state::model::ModelEntry,
    }

    impl Toy {
        fn new(cfg: &NodeConfig) -> Self {
            use verinfer_state::model::{ModelEntry, TensorSpec, model_id};
            use verinfer_state::tensor::DType;
            const ONNX: &[u8] = b"toy onnx";
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(RocksStore::open_path(dir.path().join("db"), StoreOptions::default()).expect("store"));
            let key = load_or_create_key(&dir.path().join("sequencer.key")).expect("key");
            let host = SettlementHost::open(store.clone(), cfg, key.clone()).expect("host");
            host.ensure_bonded().expect("bond");
            let model = ModelEntry {
                model_id: model_id(ONNX),
                name: "toy".into(),
                program_root: verinfer_state::hash::Hash32([7; 32]),
                inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![1] }],
                outputs: vec![TensorSpec { name: "y".into(), dtype: DType::F32, shape: vec![1] }],
                registered_at_ms: 1,
            };
            store.register_model(&model, ONNX, b"program").expect("model");
            Self { _dir: dir, store, host, key, model }
        }

        /// Accepts record `i` (input `i`, output `i + 1`).
        fn accept(&self, i: u64) -> InferenceRecord {
            use verinfer_state::tensor::Tensor;
            self.store
                .accept(verinfer_state::store::Submission {
                    model_id: self.model.model_id,
                    inputs: vec![Tensor::from_f32(vec![1], vec![i as f32]).expect("tensor")],
                    outputs: vec![Tensor::from_f32(vec![1], vec![i as f32 + 1.0]).expect("tensor")],
                    accepted_at_ms: now_ms(),
                })
                .expect("accept")
        }

        /// Seals what is pending and posts it.
        fn seal_and_post(&self) -> verinfer_state::batch::SealedRecords {
            let params = verinfer_state::store::SealParams {
                timestamp_ms: now_ms(),
                sequencer: self.host.account().as_hash(),
                max_records: 64,
            };
            let b = self.store.seal(&params).expect("seal").expect("a batch");
            let body = self.store.body(b.header.number).expect("body").expect("stored");
            self.host.post_batch(&b.header, body).expect("post");
            b
        }
    }

    fn open(dir: &Path, cfg: &NodeConfig) -> Arc<SettlementHost> {
        let store = Arc::new(RocksStore::open_path(dir.join("db"), StoreOptions::default()).expect("store"));
        let key = load_or_create_key(&dir.join("sequencer.key")).expect("key");
        SettlementHost::open(store, cfg, key).expect("host")
    }

    #[test]
    fn state_survives_reopen_across_snapshots_and_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let (bytes, account) = {
            let h = open(dir.path(), &cfg);
            h.ensure_bonded().expect("bond");
            // More inputs than one snapshot interval, so both a snapshot and
            // a log tail are replayed.
            for i in 0..(SNAPSHOT_EVERY + 5) {
                h.deposit(AccountId([7; 32]), i + 1).expect("deposit");
            }
            assert!(matches!(h.deposit(AccountId([7; 32]), 0), Err(SettlementError::Rejected(TxError::ZeroAmount))));
            let g = h.lock();
            assert!(
                g.snap_seq > 0 && g.next_seq > g.snap_seq,
                "a snapshot and a log tail: {} {}",
                g.snap_seq,
                g.next_seq
            );
            (g.state.to_bytes(), h.account())
        };
        let h = open(dir.path(), &cfg);
        assert_eq!(h.account(), account, "the key file is reused");
        assert_eq!(h.lock().state.to_bytes(), bytes, "replay reproduces the state byte for byte");
        h.ensure_bonded().expect("already bonded: a no-op");
        assert_eq!(h.lock().state.to_bytes(), bytes);
        let total: u64 = (1..=SNAPSHOT_EVERY + 5).sum();
        assert_eq!(h.read(|s, _| s.account(&AccountId([7; 32])).free), total);
    }

    /// Anyone can bond through the faucet, but only the node's own key posts
    /// batches to its embedded settlement: a stranger's `PostBatch` (which
    /// would take the next number and leave every later post of the node
    /// failing with `WrongBatchNumber`) is refused before the referee sees
    /// it. (The node's own posts go through `submit_own`, covered by the
    /// end-to-end settlement tests.)
    #[test]
    fn only_the_nodes_sequencer_posts_batches() {
        use verinfer_state::batch::{BatchBody, BatchHeader, FIRST_BATCH, GENESIS_PARENT};
        use verinfer_state::hash::Hash32;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let h = open(dir.path(), &cfg);
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        let who = AccountId::of_key(&stranger.verifying_key());
        let chain = h.read(|s, _| s.params().chain_id);
        let min = h.read(|s, _| s.params().min_sequencer_bond);
        h.deposit(who, 10 * min).expect("faucet");
        h.submit(SignedTx::sign(&stranger, chain, 0, Tx::BondSequencer { amount: min })).expect("anyone may bond");
        let header = BatchHeader {
            number: FIRST_BATCH,
            parent_hash: GENESIS_PARENT,
            records_root: Hash32::ZERO,
            record_count: 1,
            timestamp_ms: 1,
            sequencer: who.as_hash(),
        };
        let post = Tx::PostBatch { header, body: BatchBody { entries: vec![] } };
        let e = h.submit(SignedTx::sign(&stranger, chain, 1, post)).unwrap_err();
        assert!(matches!(e, SettlementError::ForeignBatch { signer, .. } if signer == who), "{e}");
        assert!(h.read(|s, _| s.head().is_none()), "nothing was posted");
        assert_eq!(h.read(|s, _| s.account(&who).nonce), 1, "the refused post used no nonce");
    }

    #[test]
    fn configured_parameters_override_the_preset() {
        let mut c = SettlementConfig { clock_ms: Some(5), dissection_exp: Some(2), ..Default::default() };
        let p = params_of(&c, true).expect("valid");
        assert_eq!((p.clock_ms, p.dissection_exp, p.challenge_window_ms), (5, 2, Params::dev().challenge_window_ms));
        assert_eq!(params_of(&SettlementConfig::default(), false).expect("production"), Params::production());
        c.dissection_exp = Some(9);
        assert!(params_of(&c, true).is_err());
    }

    #[test]
    fn reconcile_steps_follow_the_receipt_lifecycle() {
        use Status::*;
        let b = Batched { batch: 1, index: 0 };
        assert_eq!(reconcile_steps(&b, &Batched { batch: 9, index: 9 }), Some(vec![]));
        assert_eq!(reconcile_steps(&b, &Disputed), Some(vec![Disputed]));
        assert_eq!(reconcile_steps(&b, &Final), Some(vec![Final]));
        assert_eq!(reconcile_steps(&b, &Fraudulent), Some(vec![Disputed, Fraudulent]));
        assert_eq!(reconcile_steps(&Disputed, &b), Some(vec![b]));
        assert_eq!(reconcile_steps(&Disputed, &Fraudulent), Some(vec![Fraudulent]));
        assert_eq!(reconcile_steps(&Fraudulent, &Fraudulent), Some(vec![]));
        // A receipt ahead of the referee, or pending, is never forced back.
        for (have, want) in [(Final, Disputed), (Fraudulent, Final), (Final, b), (Pending, Final), (Fraudulent, b)] {
            assert_eq!(reconcile_steps(&have, &want), None, "{have:?} -> {want:?}");
        }
    }

    /// A crash between the settlement log write and the receipt writes
    /// (simulated by skipping the receipt writes) leaves receipts behind;
    /// reopening reconciles them, idempotently, and the watermark advances
    /// over settled batches only.
    #[test]
    fn receipts_left_behind_by_a_crash_are_reconciled_at_start() {
        let mut cfg = NodeConfig { dev: true, ..Default::default() };
        // Long enough for the synced writes below to land inside the window
        // while another test fsyncs on the same disk.
        cfg.settlement.challenge_window_ms = Some(2_000);
        cfg.settlement.clock_ms = Some(1);
        let toy = Toy::new(&cfg);
        let (store, h, key) = (toy.store.clone(), toy.host.clone(), toy.key.clone());
        let accept = |i: u64| toy.accept(i);
        let seal = || toy.seal_and_post();
        let recs: Vec<InferenceRecord> = (0..3).map(accept).collect();
        let b1 = seal();
        let later = accept(3);
        seal();
        // The log keeps the sequencer's own posts without their bodies
        // (decision 0013); the reopenings below replay them from the store.
        let own_posts = store
            .settlement_scan(LOG_PREFIX)
            .expect("scan")
            .map(|kv| borsh::from_slice::<LogEntry>(&kv.expect("entry").1).expect("decodes"))
            .filter(|e| matches!(e.input, LoggedInput::OwnPost { .. }))
            .count();
        assert_eq!(own_posts, 2);

        let challenger = SigningKey::from_bytes(&[9; 32]);
        let cid = AccountId::of_key(&challenger.verifying_key());
        h.deposit(cid, 1000).expect("faucet");
        let chain = h.read(|s, _| s.params().chain_id);
        let send = |h: &SettlementHost, tx: Tx| {
            let nonce = h.read(|s, _| s.account(&cid).nonce);
            h.submit(SignedTx::sign(&challenger, chain, nonce, tx)).expect("applied").1
        };
        let dispute = |i: u64| Tx::OpenDispute {
            batch: 1,
            index: i,
            record: recs[i as usize],
            proof: b1.proof(i).expect("proof"),
        };
        let game_of = |events: &[Event]| {
            events
                .iter()
                .find_map(|e| match e {
                    Event::DisputeOpened { game, .. } => Some(*game),
                    _ => None,
                })
                .expect("a game")
        };
        let status = |r: &InferenceRecord| store.receipt(&r.request_id).expect("read").expect("receipt").status;

        // The crash window: inputs are logged, receipts are not written.
        h.skip_receipts.store(true, std::sync::atomic::Ordering::SeqCst);
        let g0 = game_of(&send(&h, dispute(0)));
        std::thread::sleep(Duration::from_millis(5)); // the defender's 1 ms clock runs out
        send(&h, Tx::ClaimTimeout { game: g0 }); // record 0 void
        let g1 = game_of(&send(&h, dispute(1))); // record 1 disputed, left open
        std::thread::sleep(Duration::from_millis(2_100)); // both windows close
        let settled = h.tick().expect("tick");
        assert!(matches!(settled.as_slice(), [Event::BatchSettled { number: 2, .. }]), "{settled:?}");
        for r in recs.iter().chain([&later]) {
            assert!(matches!(status(r), Status::Batched { .. }), "the crash left every receipt batched");
        }
        drop(h);

        // Restart: the receipts catch up with the referee.
        let h = SettlementHost::open(store.clone(), &cfg, key.clone()).expect("host reopens");
        assert_eq!(status(&recs[0]), Status::Fraudulent, "batched -> disputed -> fraudulent");
        assert_eq!(status(&recs[1]), Status::Disputed);
        assert!(
            matches!(status(&recs[2]), Status::Batched { .. }),
            "undisputed records of an unsettled batch turn final when it settles"
        );
        assert_eq!(status(&later), Status::Final, "batch 2 settled");
        let again = h.reconcile_receipts().expect("reconcile");
        assert_eq!((again.updated, again.refused), (0, 0), "idempotent: {again:?}");
        assert_eq!(store.settlement_get(RECONCILED_KEY).expect("read"), None, "batch 1 is not settled yet");

        // The live path also catches up a receipt a crash left behind.
        send(&h, Tx::ClaimTimeout { game: g1 });
        assert_eq!(status(&recs[1]), Status::Fraudulent);
        let settled = h.tick().expect("tick");
        assert!(matches!(settled.as_slice(), [Event::BatchSettled { number: 1, .. }]), "{settled:?}");
        assert_eq!(status(&recs[2]), Status::Final);
        let r = h.reconcile_receipts().expect("reconcile");
        assert_eq!((r.updated, r.refused), (0, 0), "{r:?}");
        assert_eq!(store.settlement_get(RECONCILED_KEY).expect("read"), Some(2u64.to_be_bytes().to_vec()));
        let f = h.figures();
        assert_eq!(
            (f.batches_posted, f.last_posted_batch, f.games_open, f.defender_lost, f.defender_won),
            (2, 2, 0, 2, 0)
        );
        drop(h);
        let h = SettlementHost::open(store, &cfg, key).expect("host reopens");
        assert_eq!(h.reconcile_receipts().expect("reconcile"), Reconciled::default(), "nothing left to check");
    }

    /// Pruning a final batch whose own-post entry is still in the log (no
    /// snapshot since) used to leave a log the node could not replay: the
    /// entry rebuilds its body from the store, whose inputs were gone, and
    /// the node refused to start (found by an audit). Pruning now folds the
    /// log into a snapshot first.
    #[test]
    fn the_node_restarts_after_pruning_a_batch_its_log_posted() {
        let mut cfg = NodeConfig { dev: true, ..Default::default() };
        cfg.settlement.challenge_window_ms = Some(200);
        let toy = Toy::new(&cfg);
        let (store, h, key) = (toy.store.clone(), toy.host.clone(), toy.key.clone());
        toy.accept(1);
        toy.seal_and_post();
        {
            let g = h.lock();
            assert!(g.next_seq > g.snap_seq, "the post is in the log, not yet in a snapshot");
        }
        // The window closes; a tick settles the batch, which is then pruned.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while h.tick().expect("tick").is_empty() {
            assert!(std::time::Instant::now() < deadline, "batch 1 never settled");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.prune_final(1).expect("prune"), 1, "batch 1's tensors pruned");
        let before = h.lock().state.to_bytes();
        drop(h);
        let h = SettlementHost::open(store, &cfg, key).expect("the node's settlement reopens after pruning");
        assert_eq!(h.lock().state.to_bytes(), before, "the same state");
    }

    /// Stakes the node wins go to its free balance, so games by a stranger
    /// could leave its bond below the minimum and stop its posting for good
    /// (found by an audit). The host re-bonds from its free balance before a
    /// post; here the bond was emptied by an unbond.
    #[test]
    fn a_post_re_bonds_from_the_free_balance_when_the_bond_is_short() {
        let toy = Toy::new(&NodeConfig { dev: true, ..Default::default() });
        let h = toy.host.clone();
        h.submit_own(Tx::Unbond).expect("unbond: no window open yet");
        let (bond, min, free) = h.bond_figures();
        assert_eq!(bond, 0);
        toy.accept(1);
        toy.seal_and_post(); // re-bonds first
        assert_eq!(h.head(), 1);
        let (bond_after, _, free_after) = h.bond_figures();
        assert_eq!((bond_after, free_after), (2 * min, free - 2 * min));
    }

    /// A forged signature is refused without the state lock (found by an
    /// audit: a stranger's PostBatch claiming the node's account, with a
    /// large body and a garbage signature, held the lock while it was
    /// hashed, stalling posting, defending and reads).
    #[test]
    fn a_forged_signature_is_refused_without_the_state_lock() {
        let toy = Toy::new(&NodeConfig { dev: true, ..Default::default() });
        let h = toy.host.clone();
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let mut stx = SignedTx::sign(&stranger, h.chain_id, 0, Tx::Unbond);
        stx.signer = h.account; // claims the node's account
        let held = h.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let h2 = h.clone();
        std::thread::spawn(move || {
            let _ = tx.send(h2.submit(stx).map(|_| ()));
        });
        let r = rx.recv_timeout(Duration::from_secs(20)).expect("refused while the lock is held");
        drop(held);
        assert!(matches!(r, Err(SettlementError::Rejected(TxError::BadSignature))), "{r:?}");
    }

    #[test]
    fn a_malformed_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k");
        std::fs::write(&p, "not hex").expect("write");
        assert!(matches!(load_or_create_key(&p), Err(SettlementError::Key { .. })));
    }

    /// The defender's prover cache keeps the most recently used provers
    /// within its budget, and always the newest (an audit found ~140 open
    /// games on mobilenetv2 records would hold every trace at once, 16 GiB).
    #[test]
    fn the_prover_cache_drops_the_least_recently_used_beyond_its_budget() {
        let mut c: ProverCache<u32> = ProverCache::new(100);
        c.insert((1, 0), 10, 40);
        c.insert((2, 0), 20, 40);
        assert_eq!(c.get(&(1, 0)), Some(10)); // (2, 0) is now the least recently used
        c.insert((3, 0), 30, 40);
        assert_eq!((c.get(&(2, 0)), c.get(&(1, 0)), c.get(&(3, 0))), (None, Some(10), Some(30)));
        assert_eq!(c.bytes, 80);
        c.insert((4, 0), 40, 500); // above the whole budget: kept alone
        assert_eq!((c.map.len(), c.get(&(4, 0)), c.bytes), (1, Some(40), 500));
        c.retain(|k| *k != (4, 0));
        assert_eq!((c.map.len(), c.bytes), (0, 0));
    }

    /// A settled batch moves every one of its receipts to `final` in one
    /// write (it was one synced write per record, under the state lock).
    #[test]
    fn a_settled_batch_finalizes_every_receipt_at_once() {
        let mut cfg = NodeConfig { dev: true, ..Default::default() };
        cfg.settlement.challenge_window_ms = Some(1);
        let toy = Toy::new(&cfg);
        let recs: Vec<InferenceRecord> = (0..50).map(|i| toy.accept(i)).collect();
        toy.seal_and_post();
        std::thread::sleep(Duration::from_millis(5));
        let events = toy.host.tick().expect("tick");
        assert!(events.iter().any(|e| matches!(e, Event::BatchSettled { number: 1, .. })), "{events:?}");
        for r in &recs {
            let receipt = toy.store.receipt(&r.request_id).expect("read").expect("receipt");
            assert_eq!(receipt.status, Status::Final);
        }
    }

    fn refused<T>(r: Result<T, SettlementError>) -> SettlementError {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    /// A node restarted with another key (its key file lost, `key_file`
    /// changed, a checkpoint restored without it) refuses to start instead
    /// of sealing batches it cannot post and leaving its posted ones
    /// undefended (found by an audit: the new key's first post was refused
    /// forever, and every later batch waited behind it).
    #[test]
    fn another_key_is_refused_for_a_chain_sealed_or_posted_under_the_first() {
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let toy = Toy::new(&cfg);
        toy.accept(0);
        toy.seal_and_post(); // batch 1: posted by the first key
        let other = SigningKey::from_bytes(&[5; 32]);
        let e = refused(SettlementHost::open(toy.store.clone(), &cfg, other.clone()));
        assert!(
            matches!(&e, SettlementError::WrongKey { what, sealed_by, .. }
                if what == "posted batch 1" && *sealed_by == toy.host.account().as_hash()),
            "{e}"
        );
        // Batch 2 sealed, not yet posted (a crash between the seal and the post).
        toy.accept(1);
        let params = verinfer_state::store::SealParams {
            timestamp_ms: now_ms(),
            sequencer: toy.host.account().as_hash(),
            max_records: 64,
        };
        toy.store.seal(&params).expect("seal").expect("batch 2");
        let e = refused(SettlementHost::open(toy.store.clone(), &cfg, other));
        assert!(e.to_string().contains("posted batch 1"), "{e}");
        // The right key still opens, and posts batch 2.
        let h = SettlementHost::open(toy.store.clone(), &cfg, toy.key.clone()).expect("the first key opens");
        let body = toy.store.body(2).expect("body").expect("stored");
        h.post_batch(&toy.store.header(2).expect("header").expect("sealed"), body).expect("batch 2 posts");
        assert_eq!(h.head(), 2);
    }

    /// Batches sealed with settlement disabled name `sequencer_id`, which
    /// no key signs for: enabling settlement on such a datadir is refused
    /// at start, naming the batch (an audit found the node started and then
    /// never posted anything).
    #[test]
    fn a_missing_key_is_not_created_for_a_datadir_with_sealed_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(RocksStore::open_path(dir.path().join("db"), StoreOptions::default()).expect("store"));
        let key_path = dir.path().join("sequencer.key");
        // A fresh datadir gets a key.
        load_or_create_key_for(&store, &key_path).expect("created");
        std::fs::remove_file(&key_path).expect("rm");
        let toy = Toy::new(&NodeConfig { dev: true, ..Default::default() });
        toy.accept(0);
        let params = verinfer_state::store::SealParams {
            timestamp_ms: now_ms(),
            sequencer: crate::config::dev_sequencer_id(),
            max_records: 64,
        };
        toy.store.seal(&params).expect("seal").expect("batch");
        let e = refused(load_or_create_key_for(&toy.store, &key_path));
        assert!(e.to_string().contains("already holds 1 sealed batches"), "{e}");
        assert!(!key_path.exists(), "no key was created");
        // With a key, the header that names another sequencer is refused.
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let e = refused(SettlementHost::open(toy.store.clone(), &cfg, toy.key.clone()));
        assert!(e.to_string().contains("sealed batch 1 (not yet posted)"), "{e}");
    }

    /// A fresh chain stopped before its first heartbeat resumes where it
    /// started, not at 0 (the referee's own time before any input; found by
    /// a review).
    #[test]
    fn a_fresh_chain_stopped_at_once_resumes_at_its_start() {
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = open(dir.path(), &cfg).now();
        let t1 = open(dir.path(), &cfg).now();
        assert!(t1 >= t0 && t1 < t0 + 60_000, "{t0} then {t1}");
    }

    /// Chain time stops while the node is down: a reopened host resumes at
    /// its last heartbeat, not at the wall clock (decision 0017).
    #[test]
    fn chain_time_resumes_where_it_stopped() {
        let cfg = NodeConfig { dev: true, ..Default::default() };
        let dir = tempfile::tempdir().expect("tempdir");
        let h = open(dir.path(), &cfg);
        h.tick().expect("tick");
        let t0 = h.now();
        // A heartbeat as the tick task writes it, then "downtime".
        h.heartbeat(t0 + HEARTBEAT_MS).expect("heartbeat");
        drop(h);
        std::thread::sleep(Duration::from_millis(1500));
        let h = open(dir.path(), &cfg);
        let t1 = h.now();
        assert!(t1 >= t0 + HEARTBEAT_MS, "monotone: {t1} < {t0} + {HEARTBEAT_MS}");
        assert!(t1 < t0 + HEARTBEAT_MS + 1000, "the 1.5 s of downtime was not charged: {t1} vs {t0}");
        assert!(now_ms() > t1 + 400, "chain time runs behind the wall clock by the downtime");
    }
}
