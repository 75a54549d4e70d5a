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
//! ## Clock
//! The referee's time is the node's wall clock, made monotone: an input is
//! applied at `max(wall clock, referee's last time)`, so a clock step back
//! never makes the referee reject transactions (`TimeRegression`).
//!
//! ## Invariants
//! * A transaction's outcome is reported (RPC answer, event, receipt status)
//!   only after its log entry is durable; if that write fails the in-memory
//!   state is reloaded from the store, so memory never runs ahead of disk.
//! * Batches are posted in order and exactly once: [`BatchPoster::post`] of a
//!   batch the referee already holds with the same hash is a no-op, and the
//!   node re-posts from the referee's head after a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::SigningKey;
use tokio::sync::{Notify, broadcast, watch};
use verinfer_prover::dispute::{DisputeProver, Fault};
use verinfer_prover::game::agent::defender_move;
use verinfer_prover::game::view::GameView;
use verinfer_settlement::{AccountId, Event, Params, Settlement, SignedTx, Side, Tx, TxError};
use verinfer_state::batch::{BatchBody, BatchHeader};
use verinfer_state::receipt::Status;
use verinfer_state::record::InferenceRecord;
use verinfer_state::store::{RocksStore, SettlementUpdate, StoreError};

use crate::config::{NodeConfig, SettlementConfig};
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
}

/// An input to the referee, as logged.
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

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct LogEntry {
    now_ms: u64,
    input: Input,
}

fn log_key(seq: u64) -> Vec<u8> {
    let mut k = LOG_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
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
    dev: bool,
    events: broadcast::Sender<EventNote>,
    /// Woken after every applied input (the defender re-checks its games).
    pub changed: Notify,
    node: Mutex<Weak<Node>>,
    /// Serialises our own transactions: reading the nonce and applying must
    /// not interleave with another of ours (the poster and the defender run
    /// on different threads).
    own: Mutex<()>,
    provers: Mutex<HashMap<(u64, u64), Arc<DisputeProver>>>,
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

/// Loads the sequencer's ed25519 key (hex of the 32-byte secret), creating
/// it with fresh randomness on first start.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, SettlementError> {
    let err = |reason: String| SettlementError::Key { path: path.to_path_buf(), reason };
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim();
            let s = s.strip_prefix("0x").unwrap_or(s);
            let mut b = [0u8; 32];
            hex::decode_to_slice(s, &mut b).map_err(|e| err(format!("expected 64 hex characters: {e}")))?;
            Ok(SigningKey::from_bytes(&b))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            write_secret(path, &hex::encode(key.to_bytes())).map_err(|e| err(e.to_string()))?;
            tracing::info!(path = %path.display(), "created a new sequencer key");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
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
        apply_input(&mut state, e.now_ms, &e.input).map_err(|err| corrupt(format!("replaying log entry {seq}: {err}")))?;
        next_seq += 1;
    }
    Ok(Inner { state, next_seq, snap_seq })
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
        let host = Arc::new(Self {
            store,
            inner: Mutex::new(inner),
            key,
            account,
            dev: cfg.dev,
            events: broadcast::channel(4096).0,
            changed: Notify::new(),
            node: Mutex::new(Weak::new()),
            own: Mutex::new(()),
            provers: Mutex::new(HashMap::new()),
        });
        if fresh {
            // Bind the parameters durably before the first input.
            let mut g = host.lock();
            host.snapshot(&mut g)?;
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

    /// The time the next input would be applied at.
    pub fn now(&self) -> u64 {
        now_ms().max(self.lock().state.now_ms())
    }

    /// Runs `f` on the state (read-only) and the current time.
    pub fn read<T>(&self, f: impl FnOnce(&Settlement, u64) -> T) -> T {
        let g = self.lock();
        let now = now_ms().max(g.state.now_ms());
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
        let now = now_ms().max(g.state.now_ms());
        let events = apply_input(&mut g.state, now, &input)?;
        if matches!(input, Input::Tick) && events.is_empty() {
            return Ok((now, events)); // nothing to remember
        }
        let mut up = SettlementUpdate::new();
        let seq = g.next_seq;
        up.put(log_key(seq), borsh::to_vec(&LogEntry { now_ms: now, input }).expect("in-memory encoding"));
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
    /// refused transition is logged, not fatal.
    fn update_statuses(&self, state: &Settlement, now: u64, events: &[Event]) {
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
        if changes.is_empty() {
            return;
        }
        let node = self.node.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        for (id, status) in changes {
            let mut up = SettlementUpdate::new();
            up.set_status(id, status);
            match self.store.apply_settlement(up) {
                Ok(()) => {
                    if let (Some(n), Ok(Some(r))) = (&node, self.store.receipt(&id)) {
                        n.events.notify_status(&r);
                    }
                }
                Err(e) => tracing::warn!(request_id = %id, ?status, error = %e, "receipt status not updated"),
            }
        }
    }

    /// Applies a signed transaction from anyone.
    pub fn submit(&self, stx: SignedTx) -> Result<(u64, Vec<Event>), SettlementError> {
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

    /// Settles batches whose window passed.
    pub fn tick(&self) -> Result<Vec<Event>, SettlementError> {
        self.apply(Input::Tick).map(|(_, e)| e)
    }

    /// Funds (from the genesis allocation) and bonds the sequencer up to the
    /// minimum bond if it is below it.
    pub fn ensure_bonded(&self) -> Result<(), SettlementError> {
        let (bond, min, free) = self.read(|s, _| {
            (s.sequencer(&self.account).map_or(0, |q| q.bond), s.params().min_sequencer_bond, s.account(&self.account).free)
        });
        if bond >= min {
            return Ok(());
        }
        // Twice the minimum: room to top up after a lost game.
        let want = min.saturating_mul(2) - bond;
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
    pub fn post_batch(&self, header: &BatchHeader, body: &BatchBody) -> Result<(), SettlementError> {
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
        self.submit_own(Tx::PostBatch { header: *header, body: body.clone() })?;
        Ok(())
    }

    // ----- defender ------------------------------------------------------

    /// The prover for a disputed record (cached per `(batch, index)`): the
    /// model's program, the stored inputs, and the fault if the node
    /// injected one into this record.
    fn prover_for(&self, batch: u64, index: u64, record: &InferenceRecord) -> Result<Arc<DisputeProver>, String> {
        if let Some(p) = self.provers.lock().unwrap_or_else(PoisonError::into_inner).get(&(batch, index)) {
            return Ok(p.clone());
        }
        let node = self.node.lock().unwrap_or_else(PoisonError::into_inner).upgrade().ok_or("the node is gone")?;
        let model = node.model(&record.model_id).ok_or_else(|| format!("model {} is not loaded", record.model_id))?;
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
            tracing::warn!(batch, index, node = f.node, element = f.element, step = f.step, "defending an injected fault (dev)");
        }
        let p = Arc::new(
            DisputeProver::new((*model.program).clone(), tensors.inputs, fault).map_err(|e| e.to_string())?,
        );
        self.provers.lock().unwrap_or_else(PoisonError::into_inner).insert((batch, index), p.clone());
        Ok(p)
    }

    /// One pass of the defender: answers every game awaiting the sequencer
    /// and claims the timeouts of challengers that went silent. Blocking
    /// (provers execute models).
    pub fn defend_once(&self) {
        let me = self.account;
        let (awaiting, expired, open_records) = self.read(|s, now| {
            let awaiting: Vec<u64> = s.games_awaiting(me).map(|g| g.id).collect();
            let expired: Vec<u64> = s
                .open_games()
                .filter(|g| g.defender == me && g.to_move() == Some(Side::Challenger))
                .filter(|g| g.deadline_ms().is_some_and(|d| now >= d))
                .map(|g| g.id)
                .collect();
            let open: Vec<(u64, u64)> = s.open_games().filter(|g| g.defender == me).map(|g| (g.batch, g.index)).collect();
            (awaiting, expired, open)
        });
        // Drop provers of records with no open game left.
        self.provers.lock().unwrap_or_else(PoisonError::into_inner).retain(|k, _| open_records.contains(k));
        for id in awaiting {
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

/// Posts sealed batches to the embedded referee.
#[derive(Debug)]
pub struct SettlementPoster(pub Arc<SettlementHost>);

impl BatchPoster for SettlementPoster {
    fn posted_head(&self) -> Option<u64> {
        Some(self.0.head())
    }

    fn post(&self, header: &BatchHeader, body: &BatchBody) -> Result<(), String> {
        self.0.post_batch(header, body).map_err(|e| e.to_string())?;
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

/// Starts the task that ticks the referee every `tick_ms` and runs the
/// defender after every change and every tick.
pub fn spawn_tasks(host: Arc<SettlementHost>, tick_ms: u64, defender: bool) -> SettlementTasks {
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(e) = host.tick() {
                        tracing::warn!(error = %e, "settlement tick failed");
                    }
                }
                _ = host.changed.notified() => {}
                r = stop_rx.changed() => if r.is_err() || *stop_rx.borrow() { break },
            }
            if defender {
                let h = host.clone();
                let _ = tokio::task::spawn_blocking(move || h.defend_once()).await;
            }
        }
    });
    SettlementTasks { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_state::store::StoreOptions;

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
            assert!(g.snap_seq > 0 && g.next_seq > g.snap_seq, "a snapshot and a log tail: {} {}", g.snap_seq, g.next_seq);
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
    fn a_malformed_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k");
        std::fs::write(&p, "not hex").expect("write");
        assert!(matches!(load_or_create_key(&p), Err(SettlementError::Key { .. })));
    }
}
