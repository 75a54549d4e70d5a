//! The async shell: follows batches, schedules re-execution, opens disputes
//! and plays games. Every decision is made by [`crate::solver`]; this file
//! only loads state, calls the solver, and performs the actions.
//!
//! ## Crash safety
//! Every state change is written to the database *before* the action that
//! depends on it, so aborting any task at any await point (a kill) is safe:
//! * a record's verdict is written before its batch counts as done;
//! * a dispute's intent (`Wrong { game: None }`) is written before the
//!   `OpenDispute` is sent, and the game id right after; a crash in between
//!   is reconciled from the referee's `settlement_games` list on restart;
//! * games are stateless to play: the solver recomputes the next move from
//!   the referee's view, so a restarted player continues where the referee
//!   is, whatever the old process had done.
//!
//! ## Withheld data
//! A body or program the node does not serve while a record's window is
//! open gets no verdict: the batch or record goes back to the pipeline on a
//! timer (`solver::fetch_retry`), without holding a worker, until it is
//! served or the window closes. A batch the referee already settled (or
//! whose window closed) is done without its body, which the node may have
//! pruned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use jsonrpsee_ws_client::WsClientBuilder;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::game::keyfile;
use verinfer_prover::game::tx::{Move, SignedTx, Tx};
use verinfer_prover::game::types::AccountId;
use verinfer_rpc::api::{ExplorerApiClient, SettlementApiClient};
use verinfer_state::hash::Hash32;

use crate::chain::{Chain, CheckedBody, SettlementBatch, SettlementParams, opened_game};
use crate::config::Config;
use crate::db::{Db, GameEntry};
use crate::error::{ChallengerError, Result};
use crate::exec::{ModelCache, Prepared};
use crate::metrics::Metrics;
use crate::solver::{
    self, BatchFacts, DisputeFailure, FetchRetry, GameAction, Outcome, Progress, RecordAction, RecordFacts,
    RetryDecision, Verdict,
};

/// `explorer_batches` returns at most this many headers per call.
const MAX_RANGE: u64 = 1000;

/// Loads the signing key from `path`, creating one (atomically:
/// `game::keyfile`) if the file is missing.
pub fn load_or_create_key(path: &std::path::Path) -> Result<SigningKey> {
    let err = |e: String| ChallengerError::Config(format!("{}: {e}", path.display()));
    if let Some(key) = keyfile::read_key(path).map_err(err)? {
        return Ok(key);
    }
    let key = keyfile::create_key(path).map_err(|e| err(e.to_string()))?;
    info!(path = %path.display(), "created a new challenger key");
    Ok(key)
}

/// One batch as the pipeline holds it while its records are checked.
#[derive(Debug)]
struct BatchCtx {
    number: u64,
    checked: CheckedBody,
    window_end_ms: Option<u64>,
    /// The referee's time when the batch was loaded, and our instant then:
    /// `now ≈ referee_now + elapsed`.
    referee_now_ms: u64,
    loaded_at: Instant,
}

impl BatchCtx {
    fn referee_now(&self) -> u64 {
        self.referee_now_ms.saturating_add(self.loaded_at.elapsed().as_millis() as u64)
    }

    /// Whether [`BatchCtx::referee_now`] says the window has closed.
    fn window_seems_closed(&self) -> bool {
        self.window_end_ms.is_some_and(|end| self.referee_now() >= end)
    }
}

/// A record to check, ordered by window end (then batch and index): the
/// record whose window closes first is checked first.
#[derive(Debug)]
struct Job {
    key: (u64, u64, u64),
    ctx: Arc<BatchCtx>,
    /// Fetches of its program that failed so far (not part of the order).
    attempt: u32,
}

impl PartialEq for Job {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Job {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

/// A batch's load, as the pipeline receives it.
#[derive(Debug)]
enum Loaded {
    /// Its body, checked against the referee's header: queue its records.
    Ready(Arc<BatchCtx>),
    /// Done without checking its records; `reason` is the metric label.
    Unchecked {
        /// `past_window` or `body_withheld`.
        reason: &'static str,
    },
    /// Its body was not served and its window is open: load it again after
    /// `delay_ms`.
    Retry {
        /// Failed body fetches so far.
        attempt: u32,
        /// Delay (ms).
        delay_ms: u64,
        /// The last failure.
        error: String,
    },
    /// Not judged now (the referee does not hold it, or its time cannot be
    /// read): not done, so the watermark holds below it until a restart.
    Skipped,
}

/// A record check's result.
#[derive(Debug)]
enum Checked {
    /// Judged (or nothing to do); its batch number.
    Done(u64),
    /// Its program was not served and its window is open: check it again
    /// after `delay_ms`.
    Retry { job: Job, delay_ms: u64 },
}

/// What a pipeline timer hands back when it fires.
#[derive(Debug)]
enum Wake {
    /// A record to check again.
    Job(Job),
    /// A batch to load again: `attempt` body fetches failed, the last with
    /// `error`.
    Load { n: u64, attempt: u32, error: String },
}

/// State shared by the challenger's tasks.
#[derive(Debug)]
struct Shared {
    cfg: Config,
    chain: Chain,
    db: Db,
    key: SigningKey,
    me: AccountId,
    salt: [u8; 32],
    params: SettlementParams,
    models: ModelCache,
    fetch_lock: tokio::sync::Mutex<()>,
    /// One permit per game in play (`max_games`): a player holds one for
    /// as long as its prover (and trace) lives, so their memory is bounded.
    places: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// The next nonce, `None` until read from the referee (and after a
    /// rejection, which may mean we are out of step with it).
    nonce: tokio::sync::Mutex<Option<u64>>,
    /// Games being played by this process.
    playing: Mutex<HashSet<u64>>,
    /// Wakes the player of each game we play: an event of that game, or a
    /// resubscription after which events may have been missed.
    wakers: Mutex<HashMap<u64, Arc<Notify>>>,
    /// Notified when one of our games ends (its bond is free again), so a
    /// dispute waiting for funds retries at once.
    funds: Notify,
    locked: AtomicU64,
    watermark: AtomicU64,
    tasks: Mutex<JoinSet<()>>,
    records_done: AtomicU64,
}

/// A running challenger.
#[derive(Debug)]
pub struct RunningChallenger {
    shared: Arc<Shared>,
    /// Its account.
    pub account: AccountId,
    /// Where metrics are served, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    metrics_task: Option<tokio::task::AbortHandle>,
}

impl RunningChallenger {
    /// Starts the challenger: opens its database and key, checks it can
    /// afford a dispute bond, resumes its open games and starts following
    /// batches.
    pub async fn start(cfg: Config) -> Result<Self> {
        cfg.validate().map_err(ChallengerError::Config)?;
        let db = Db::open(&cfg.datadir.join("db"))?;
        let key = load_or_create_key(&cfg.key_path())?;
        let me = AccountId::of_key(&key.verifying_key());
        let salt: [u8; 32] =
            Sha256::new().chain_update(b"verinfer/challenger/salt/v1").chain_update(key.to_bytes()).finalize().into();
        // Bound before the node is reached: a bad --metrics is reported at once.
        let metrics = Metrics::new();
        let (metrics_addr, metrics_task) = match cfg.metrics {
            Some(a) => {
                let (addr, h) = crate::metrics::spawn(a, metrics.clone())
                    .await
                    .map_err(|e| ChallengerError::Config(format!("metrics: cannot listen on {a}: {e}")))?;
                info!(%addr, "metrics on http://{addr}/metrics");
                (Some(addr), Some(h.abort_handle()))
            }
            None => (None, None),
        };
        let chain = Chain::connect(&cfg.rpc)?;
        let info = retry_forever("settlement_info", &cfg, || chain.info()).await;
        let params = info.params;
        info!(account = %me, rpc = %cfg.rpc, chain_id = params.chain_id, challenger_bond = params.challenger_bond,
              window_ms = params.challenge_window_ms, clock_ms = params.clock_ms, "challenger starting");
        let models = ModelCache::with_options(cfg.plan_options());
        if let Some(d) = &cfg.models_dir {
            models.load_dir(d)?;
        }
        let watermark = db.watermark()?;
        let shared = Arc::new(Shared {
            chain,
            db,
            key,
            me,
            salt,
            params,
            models,
            fetch_lock: Default::default(),
            places: Arc::new(Semaphore::new(cfg.max_games)),
            metrics,
            nonce: Default::default(),
            playing: Default::default(),
            wakers: Default::default(),
            funds: Notify::new(),
            locked: AtomicU64::new(0),
            watermark: AtomicU64::new(watermark),
            tasks: Default::default(),
            records_done: AtomicU64::new(0),
            cfg,
        });
        shared.fund_and_check().await?;
        shared.spawn(shared.clone().events());
        shared.clone().resume_games().await?;
        shared.spawn(shared.clone().resume_intents());
        let (btx, brx) = mpsc::channel::<u64>(1024);
        shared.spawn(shared.clone().follow(btx, watermark + 1));
        shared.spawn(shared.clone().pipeline(brx, watermark));
        shared.spawn(shared.clone().monitor());
        info!(watermark, "following batches from {}", watermark + 1);
        Ok(Self { account: me, metrics_addr, shared, metrics_task })
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Every batch ≤ this is judged.
    pub fn watermark(&self) -> u64 {
        self.shared.watermark.load(Ordering::SeqCst)
    }

    /// The verdict on record `index` of `batch`, if judged.
    pub fn verdict(&self, batch: u64, index: u64) -> Result<Option<Verdict>> {
        self.shared.db.verdict(batch, index)
    }

    /// Games this process is playing.
    pub fn playing(&self) -> Vec<u64> {
        self.shared.playing.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    /// Stops every task at its next await point (also what a kill does: all
    /// state needed to resume is already on disk).
    pub fn stop(&self) {
        self.shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).abort_all();
        if let Some(m) = &self.metrics_task {
            m.abort();
        }
    }
}

impl Drop for RunningChallenger {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn retry_forever<T, F, Fut>(what: &str, cfg: &Config, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = cfg.reconnect_min_ms;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                warn!(error = %e, retry_in_ms = delay, "{what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(delay)).await;
                delay = (delay * 2).min(cfg.reconnect_max_ms);
            }
        }
    }
}

/// Calls `f` up to `attempts` times while `again` holds for its result,
/// backing off from `reconnect_min_ms` (doubling, at most
/// `reconnect_max_ms`); returns the last result.
async fn retry_while<T, F, Fut>(cfg: &Config, attempts: u32, mut f: F, again: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut delay = cfg.reconnect_min_ms;
    let mut v = f().await;
    for _ in 1..attempts {
        if !again(&v) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        delay = (delay * 2).min(cfg.reconnect_max_ms);
        v = f().await;
    }
    v
}

impl Shared {
    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner).spawn(f);
    }

    /// Tops up from the dev faucet if asked, then refuses to start if the
    /// free balance cannot cover one dispute bond.
    async fn fund_and_check(&self) -> Result<()> {
        let bond = self.params.challenger_bond;
        let mut acct = self.chain.account(&self.me).await?;
        if self.cfg.dev_faucet {
            let want = self.cfg.bond.max(bond.saturating_mul(10));
            if acct.free < want {
                self.chain.faucet(&self.me, want - acct.free).await?;
                info!(amount = want - acct.free, "dev faucet: topped up the free balance");
                acct = self.chain.account(&self.me).await?;
            }
        }
        self.metrics.balance.set(acct.free as i64);
        if let Err(shortfall) = solver::can_afford(acct.free, bond, 0, self.cfg.bond) {
            return Err(ChallengerError::InsufficientBond { account: self.me.to_string(), shortfall });
        }
        info!(free = acct.free, bond, disputes_affordable = acct.free / bond.max(1), "balance covers dispute bonds");
        Ok(())
    }

    // ---- transactions -------------------------------------------------

    /// Signs and sends `tx` with our next nonce. Transactions are serialised
    /// (one nonce sequence); a rejection forgets the cached nonce so the
    /// next send re-reads it from the referee.
    async fn send(&self, tx: Tx) -> Result<serde_json::Value> {
        let mut guard = self.nonce.lock().await;
        let nonce = match *guard {
            Some(n) => n,
            None => self.chain.account(&self.me).await?.nonce,
        };
        let kind = match &tx {
            Tx::Move { mv: Move::Pick { .. }, .. } => "pick",
            Tx::Move { mv: Move::PickElement { .. }, .. } => "pick_element",
            t => t.name(),
        };
        let stx = SignedTx::sign(&self.key, self.params.chain_id, nonce, tx);
        match self.chain.submit(&stx).await {
            Ok(v) => {
                *guard = Some(nonce + 1);
                self.metrics.moves.with_label_values(&[kind]).inc();
                Ok(v)
            }
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }

    // ---- following batches --------------------------------------------

    /// Follows `explorer_subscribeBatches`, reconnecting with backoff, and
    /// catches up with `explorer_batches` after every (re)connect and every
    /// gap; sends each batch number, in order and once, to the pipeline.
    async fn follow(self: Arc<Self>, out: mpsc::Sender<u64>, mut next: u64) {
        let mut delay = self.cfg.reconnect_min_ms;
        loop {
            let ws = WsClientBuilder::default()
                .max_request_size(64 << 20)
                .max_response_size(64 << 20)
                .build(self.cfg.ws_url())
                .await;
            let sub = match ws {
                Ok(ws) => ExplorerApiClient::subscribe_batches(&ws).await.map(|s| (ws, s)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sub {
                Ok((_ws, mut sub)) => {
                    delay = self.cfg.reconnect_min_ms;
                    // Subscribed first, then catch up: a batch sealed in
                    // between arrives on the subscription, and `next`
                    // de-duplicates.
                    match self.chain.head().await {
                        Ok(head) => {
                            if head >= next {
                                info!(from = next, to = head, "catching up {} batch(es)", head - next + 1);
                            }
                            if !self.catch_up(&out, &mut next, head).await {
                                return;
                            }
                        }
                        Err(e) => warn!(error = %e, "explorer_head failed; relying on the subscription"),
                    }
                    // Notifications drive catching up; a `poll_ms` poll of the
                    // head bounds what a notification the node never sends
                    // (or a socket that stays open but silent) can cost.
                    let mut poll = tokio::time::interval(Duration::from_millis(self.cfg.poll_ms));
                    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    poll.tick().await;
                    loop {
                        let upto = tokio::select! {
                            item = sub.next() => match item {
                                Some(Ok(s)) => s.header.number,
                                Some(Err(e)) => {
                                    warn!(error = %e, "malformed batch notification; resubscribing");
                                    break;
                                }
                                None => break,
                            },
                            _ = poll.tick() => match self.chain.head().await {
                                Ok(h) => h,
                                Err(_) => continue,
                            },
                        };
                        if upto >= next && !self.catch_up(&out, &mut next, upto).await {
                            return;
                        }
                    }
                    warn!("batch subscription closed (node restarted, or we fell behind); reconnecting");
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = delay, url = %self.cfg.ws_url(), "cannot subscribe to batches; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            delay = (delay * 2).min(self.cfg.reconnect_max_ms);
        }
    }

    /// Sends `*next..=upto` to the pipeline, confirming the numbers with
    /// `explorer_batches` ranges. Numbers go out strictly in sequence: at
    /// the first one the node leaves out, catching up stops there (and is
    /// tried again on the next notification) instead of skipping it.
    /// Returns false when the pipeline is gone.
    async fn catch_up(&self, out: &mpsc::Sender<u64>, next: &mut u64, upto: u64) -> bool {
        for (from, to) in solver::catch_up_ranges(*next, upto, MAX_RANGE) {
            let numbers: Vec<u64> = match self.chain.batches(from, to).await {
                Ok(v) => v.into_iter().map(|s| s.header.number).filter(|n| (from..=to).contains(n)).collect(),
                Err(e) => {
                    warn!(error = %e, from, to, "explorer_batches failed; will retry on the next batch");
                    return true;
                }
            };
            for n in numbers {
                if n < *next {
                    continue;
                }
                if n > *next {
                    warn!(missing = *next, served = n, "explorer_batches left a batch out; waiting for it");
                    return true;
                }
                if out.send(n).await.is_err() {
                    return false;
                }
                match n.checked_add(1) {
                    Some(m) => *next = m,
                    None => return true,
                }
            }
            if *next <= to {
                return true; // the node has not served this far yet
            }
        }
        true
    }

    // ---- the verification pipeline -----------------------------------

    /// Loads each batch, schedules its records by window deadline on at most
    /// `concurrency` workers, and advances the persisted watermark as
    /// batches complete. Batches and records whose data the node does not
    /// serve wait on timers, outside these bounds: they hold no worker, so
    /// a withheld program or body cannot stall the other records.
    async fn pipeline(self: Arc<Self>, mut batches: mpsc::Receiver<u64>, watermark: u64) {
        let workers = self.cfg.workers();
        let mut progress = Progress::new(watermark);
        let mut remaining: HashMap<u64, usize> = HashMap::new();
        let mut heap: BinaryHeap<Reverse<Job>> = BinaryHeap::new();
        let mut running: JoinSet<Checked> = JoinSet::new();
        let mut loading: JoinSet<(u64, Loaded)> = JoinSet::new();
        let mut waiting: JoinSet<Wake> = JoinSet::new();
        let mut closed = false;
        // Keep enough loaded work to fill the workers, no more (loading
        // ahead costs memory and nothing else); loads run concurrently, as
        // catching up is bound by round trips, not by the node.
        let room = |heap: &BinaryHeap<Reverse<Job>>, loading: &JoinSet<(u64, Loaded)>| {
            heap.len() < workers * 4 && loading.len() < workers
        };
        loop {
            while !closed && room(&heap, &loading) {
                match batches.try_recv() {
                    Ok(n) if n > progress.watermark => {
                        loading.spawn(self.clone().load(n, 0, None));
                    }
                    Ok(_) => {}
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                }
            }
            while running.len() < workers {
                let Some(Reverse(job)) = heap.pop() else { break };
                running.spawn(self.clone().check(job));
            }
            let can_load = !closed && room(&heap, &loading);
            tokio::select! {
                n = batches.recv(), if can_load => match n {
                    Some(n) if n > progress.watermark => {
                        loading.spawn(self.clone().load(n, 0, None));
                    }
                    Some(_) => {}
                    None => closed = true,
                },
                Some(r) = loading.join_next(), if !loading.is_empty() => match r {
                    Ok((n, loaded)) => self.loaded(n, loaded, &mut heap, &mut remaining, &mut progress, &mut waiting),
                    // A panicked load (a bug): its batch never completes
                    // and the watermark holds, so a restart loads it again.
                    Err(e) => error!(error = %e, "a batch load panicked"),
                },
                Some(done) = running.join_next(), if !running.is_empty() => match done {
                    Ok(Checked::Done(batch)) => {
                        self.records_done.fetch_add(1, Ordering::Relaxed);
                        if let Some(r) = remaining.get_mut(&batch) {
                            *r -= 1;
                            if *r == 0 {
                                remaining.remove(&batch);
                                self.batch_done(batch, &mut progress);
                            }
                        }
                    }
                    Ok(Checked::Retry { job, delay_ms }) => {
                        waiting.spawn(async move {
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                            Wake::Job(job)
                        });
                    }
                    // A panicked check (a bug) loses one record's verdict;
                    // its batch then never completes and the watermark holds,
                    // so a restart re-checks it.
                    Err(_) => error!("a record check panicked"),
                },
                Some(w) = waiting.join_next(), if !waiting.is_empty() => match w {
                    Ok(Wake::Job(job)) => heap.push(Reverse(job)),
                    // Outside the loading bound: a batch waiting for its
                    // body must not wait behind the ones after it.
                    Ok(Wake::Load { n, attempt, error }) => {
                        loading.spawn(self.clone().load(n, attempt, Some(error)));
                    }
                    Err(e) => error!(error = %e, "a pipeline timer failed"),
                },
                else => {
                    if closed { return; }
                }
            }
        }
    }

    /// Takes a batch's load into the pipeline.
    fn loaded(
        &self,
        n: u64,
        loaded: Loaded,
        heap: &mut BinaryHeap<Reverse<Job>>,
        remaining: &mut HashMap<u64, usize>,
        progress: &mut Progress,
        waiting: &mut JoinSet<Wake>,
    ) {
        match loaded {
            Loaded::Ready(ctx) => {
                let count = ctx.checked.body.entries.len();
                debug!(batch = n, records = count, window_end_ms = ?ctx.window_end_ms, "batch loaded");
                if count == 0 {
                    self.batch_done(n, progress);
                    return;
                }
                remaining.insert(n, count);
                for i in 0..count as u64 {
                    let key = (ctx.window_end_ms.unwrap_or(u64::MAX), n, i);
                    heap.push(Reverse(Job { key, ctx: ctx.clone(), attempt: 0 }));
                }
            }
            Loaded::Unchecked { reason } => {
                self.metrics.unchecked.with_label_values(&[reason]).inc();
                self.batch_done(n, progress);
            }
            Loaded::Retry { attempt, delay_ms, error } => {
                waiting.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    Wake::Load { n, attempt, error }
                });
            }
            Loaded::Skipped => {}
        }
    }

    fn batch_done(&self, batch: u64, progress: &mut Progress) {
        debug!(batch, "batch judged");
        if let Some(w) = progress.done(batch) {
            match self.db.set_watermark(w) {
                Ok(()) => {
                    self.watermark.store(w, Ordering::SeqCst);
                    self.metrics.verified.set(w as i64);
                    let head = self.metrics.head.get().max(0) as u64;
                    self.metrics.lag.set(head.saturating_sub(w) as i64);
                }
                Err(e) => error!(error = %e, "cannot persist progress; a restart will re-check from the old watermark"),
            }
        }
    }

    /// Loads batch `n`, whose body failed to come `attempt` times before
    /// (the last failure `withheld`).
    ///
    /// The referee is asked first: a batch it has settled, or whose window
    /// has closed, can no longer be disputed, so it is done without its
    /// body — which a node that prunes settled batches no longer serves.
    /// Otherwise the body is judged only against the header the referee
    /// holds (the explorer's own header is the node's word), and a body
    /// not served while the window is open is fetched again later
    /// (`solver::fetch_retry`), never written off early.
    async fn load(self: Arc<Self>, n: u64, attempt: u32, withheld: Option<String>) -> (u64, Loaded) {
        // The node announces a batch before its post reaches the referee,
        // so wait for it a while.
        let sb = retry_while(
            &self.cfg,
            8,
            || self.chain.settlement_batch(n),
            |r| !matches!(r, Ok(SettlementBatch { hash: Some(_), .. })),
        )
        .await
        .unwrap_or_default();
        let Some(h) = sb.hash else {
            error!(
                batch = n,
                "the referee does not know this batch; skipping it for now (the watermark holds below it until a restart checks it)"
            );
            return (n, Loaded::Skipped);
        };
        let now_ms = match retry_while(&self.cfg, 8, || self.chain.info(), |r| r.is_err()).await {
            Ok(i) => i.now_ms,
            Err(e) => {
                // Without the referee's time no window can be judged.
                error!(batch = n, error = %e, "cannot read the referee's time; skipping the batch for now (the watermark holds below it until a restart checks it)");
                return (n, Loaded::Skipped);
            }
        };
        let facts =
            BatchFacts { settled: sb.settled, window_open: sb.window_open, window_end_ms: sb.window_end_ms, now_ms };
        if !solver::disputable(&facts) {
            return (n, self.past_window(n, withheld));
        }
        let body = match self.chain.body(n).await {
            Ok(c) if c.header.hash() == h => Ok(c),
            Ok(c) => Err(format!("explorer serves header {} but the referee holds {h}", c.header.hash())),
            Err(e) => Err(e.to_string()),
        };
        let checked = match body {
            Ok(c) => c,
            Err(message) => {
                let error = ChallengerError::NotServed { what: "body", message }.to_string();
                let (min, max) = (self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms);
                return match solver::fetch_retry(attempt + 1, min, max, now_ms, sb.window_end_ms) {
                    FetchRetry::RetryIn { delay_ms } => {
                        self.metrics.fetch_retries.with_label_values(&["body"]).inc();
                        warn!(
                            batch = n,
                            attempt = attempt + 1,
                            retry_in_ms = delay_ms,
                            window_end_ms = ?sb.window_end_ms,
                            %error,
                            "batch {n}: body not served while its window is open; retrying in {delay_ms} ms (no verdict until it is, or the window closes)"
                        );
                        (n, Loaded::Retry { attempt: attempt + 1, delay_ms, error })
                    }
                    FetchRetry::WindowClosed => (n, self.past_window(n, Some(error))),
                };
            }
        };
        let ctx = Arc::new(BatchCtx {
            number: n,
            checked,
            window_end_ms: sb.window_end_ms,
            referee_now_ms: now_ms,
            loaded_at: Instant::now(),
        });
        (n, Loaded::Ready(ctx))
    }

    /// A batch past its window: nothing in it can be disputed any more.
    fn past_window(&self, n: u64, withheld: Option<String>) -> Loaded {
        match withheld {
            Some(error) => {
                error!(
                    batch = n,
                    %error,
                    "batch {n}: body withheld until its window closed; its records were not checked"
                );
                Loaded::Unchecked { reason: "body_withheld" }
            }
            None => {
                debug!(batch = n, "batch {n} is settled or past its window; done without checking its records");
                Loaded::Unchecked { reason: "past_window" }
            }
        }
    }

    /// The prepared program for a record's model, fetched once.
    async fn prepared(&self, model_id: Hash32, root: Hash32) -> Result<Arc<Prepared>> {
        if let Some(p) = self.models.get(&root) {
            return Ok(p);
        }
        let _g = self.fetch_lock.lock().await;
        if let Some(p) = self.models.get(&root) {
            return Ok(p);
        }
        // A program kept with a dispute intent (checked against its root
        // like a fetched one), else the node's.
        let kept = match self.db.program(&root) {
            Ok(Some(bytes)) => verinfer_prover::Program::from_bytes(&bytes).ok().filter(|p| p.root() == root),
            _ => None,
        };
        let program = match kept {
            Some(p) => p,
            // Whatever went wrong — no answer, an error, a program that does
            // not hash to the root — the committed program was not served.
            None => self
                .chain
                .program(model_id, root)
                .await
                .map_err(|e| ChallengerError::NotServed { what: "program", message: e.to_string() })?,
        };
        let nodes = program.nodes.len();
        let opts = self.models.plan_options.clone();
        let p = tokio::task::spawn_blocking(move || Prepared::new(program, &opts))
            .await
            .map_err(|e| ChallengerError::Db(format!("planning task: {e}")))??;
        let p = Arc::new(p);
        self.models.insert(root, p.clone());
        info!(model_id = %model_id, program_root = %root, nodes, "model program fetched and planned");
        Ok(p)
    }

    /// Judges one record, or hands it back to be checked again later when
    /// its program is not served and its window is open.
    async fn check(self: Arc<Self>, job: Job) -> Checked {
        let (_, b, i) = job.key;
        let ctx = job.ctx.clone();
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return Checked::Done(b) };
        let record = &entry.record;
        let total = ctx.checked.body.entries.len();
        match self.db.verdict(b, i) {
            Ok(Some(Verdict::Wrong { ours, game: None })) => {
                // Meant to dispute before a restart; see whether it opened.
                self.dispute(&ctx, i, ours, true).await;
                return Checked::Done(b);
            }
            Ok(Some(_)) => return Checked::Done(b),
            Ok(None) => {}
            Err(e) => {
                error!(batch = b, index = i, error = %e, "reading verdict failed");
                return Checked::Done(b);
            }
        }
        let forced = self.cfg.force_dispute.contains(&(b, i));
        let recomputed = if forced || solver::sampled(&self.salt, &record.request_id, self.cfg.sample) {
            let prepared = match self.prepared(record.model_id, record.program_root).await {
                // A program not served (the node unreachable for a moment,
                // or withholding it: the sequencer of a wrong record gains
                // from that) gets no verdict while the window is open: the
                // record waits on a timer and is checked again. A program
                // that is served but does not plan is final.
                Err(e @ ChallengerError::NotServed { .. }) => {
                    let attempt = job.attempt + 1;
                    let (min, max) = (self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms);
                    let now = self.referee_now_for_verdict(&ctx).await;
                    match solver::fetch_retry(attempt, min, max, now, ctx.window_end_ms) {
                        FetchRetry::RetryIn { delay_ms } => {
                            self.metrics.fetch_retries.with_label_values(&["program"]).inc();
                            warn!(
                                batch = b,
                                index = i,
                                model_id = %record.model_id,
                                attempt,
                                retry_in_ms = delay_ms,
                                window_end_ms = ?ctx.window_end_ms,
                                error = %e,
                                "record {} of batch {b}: program not served while its window is open; retrying in {delay_ms} ms (no verdict until it is, or the window closes)",
                                i + 1
                            );
                            return Checked::Retry { job: Job { attempt, ..job }, delay_ms };
                        }
                        FetchRetry::WindowClosed => Err(e),
                    }
                }
                r => r,
            };
            Some(match prepared {
                Ok(p) => {
                    let inputs = entry.inputs.clone();
                    let t0 = Instant::now();
                    let r = tokio::task::spawn_blocking(move || p.output_root(&inputs)).await;
                    self.metrics.reexec.observe(t0.elapsed().as_secs_f64());
                    match r {
                        Ok(Ok(root)) => Ok(root),
                        Ok(Err(e)) => Err(format!("re-execution failed: {e}")),
                        Err(e) => Err(format!("re-execution task: {e}")),
                    }
                }
                Err(e @ ChallengerError::NotServed { .. }) => {
                    Err(format!("program withheld until the window closed: model {}: {e}", record.model_id))
                }
                Err(e) => Err(format!("model {}: {e}", record.model_id)),
            })
        } else {
            None
        };
        let now_ms = self.referee_now_for_verdict(&ctx).await;
        let facts = RecordFacts { record, recomputed, now_ms, window_end_ms: ctx.window_end_ms, forced };
        match solver::judge_record(&facts) {
            RecordAction::Settle(v) => {
                match &v {
                    Verdict::Correct => {
                        debug!(batch = b, index = i, "record {} of batch {b}: output root matches", i + 1)
                    }
                    Verdict::Unverifiable { reason } => {
                        warn!(batch = b, index = i, %reason, "record {} of batch {b}: cannot verify", i + 1)
                    }
                    Verdict::WindowClosed => warn!(
                        batch = b,
                        index = i,
                        "record {} of batch {b}: output root differs but the window has closed; nothing to do",
                        i + 1
                    ),
                    _ => {}
                }
                self.metrics.records.with_label_values(&[v.name()]).inc();
                if let Err(e) = self.db.put_verdict(b, i, &v) {
                    error!(batch = b, index = i, error = %e, "cannot persist verdict");
                }
            }
            RecordAction::Dispute { ours } => {
                self.metrics.records.with_label_values(&["wrong"]).inc();
                if forced && ours == record.output_root {
                    warn!(
                        batch = b,
                        index = i,
                        "record {} of batch {b} of {total}: forced dispute on a record we find correct (drill); expect to lose the bond",
                        i + 1
                    );
                } else {
                    info!(batch = b, index = i, ours = %ours, committed = %record.output_root,
                          "record {} of batch {b} (of {total}): output root differs; opening dispute", i + 1);
                }
                // What a restart needs to play the game without the node's
                // help, kept before the intent (docs/challenger.md).
                let program = self.models.get(&record.program_root).map(|p| p.program.to_bytes());
                if let Err(e) =
                    self.db.put_dispute_data(b, i, &entry.inputs, program.map(|bytes| (&record.program_root, bytes)))
                {
                    error!(batch = b, index = i, error = %e, "cannot keep the disputed record's data; disputing anyway");
                }
                if let Err(e) = self.db.put_verdict(b, i, &Verdict::Wrong { ours, game: None }) {
                    error!(batch = b, index = i, error = %e, "cannot persist dispute intent; not disputing");
                    return Checked::Done(b);
                }
                self.dispute(&ctx, i, ours, false).await;
            }
        }
        Checked::Done(b)
    }

    /// Opens a dispute on record `i` of `ctx` — after looking for one
    /// already open when `reconcile` (a send whose answer was lost, a
    /// restart) — and, when that fails for a reason that may pass (no funds
    /// yet, a lost send), retries it in the background with the solver's
    /// backoff.
    async fn dispute(self: &Arc<Self>, ctx: &Arc<BatchCtx>, i: u64, ours: Hash32, reconcile: bool) {
        let r =
            if reconcile { self.reconcile_or_open(ctx, i, ours).await } else { self.open_dispute(ctx, i, ours).await };
        if let Err((f, why)) = r
            && let Some(delay) = self.retry_decision(ctx, i, 1, &f, &why).await
        {
            self.spawn(self.clone().retry_dispute(ctx.clone(), i, ours, f, delay));
        }
    }

    /// The referee's time for a decision that is final once the window
    /// closes. The estimate (its time at load plus our elapsed time) runs
    /// ahead whenever the node was down, since the embedded referee's chain
    /// time stops meanwhile (decision 0017), so a closed-looking window is
    /// checked with the referee. If it cannot be read, the time at load: a
    /// window is never judged closed on a guess (found by a review).
    async fn referee_now_for_verdict(&self, ctx: &BatchCtx) -> u64 {
        if !ctx.window_seems_closed() {
            return ctx.referee_now();
        }
        match self.chain.info().await {
            Ok(i) => i.now_ms,
            Err(_) => ctx.referee_now_ms,
        }
    }

    /// Asks the solver whether to retry after the `attempt`-th failure and
    /// logs the answer; `Some(delay_ms)` to retry.
    async fn retry_decision(&self, ctx: &BatchCtx, i: u64, attempt: u32, f: &DisputeFailure, why: &str) -> Option<u64> {
        let b = ctx.number;
        let now = self.referee_now_for_verdict(ctx).await;
        match solver::dispute_retry(&self.cfg.retry_policy(), attempt, f, now, ctx.window_end_ms) {
            RetryDecision::RetryIn { delay_ms } => {
                warn!(
                    batch = b,
                    index = i,
                    attempt,
                    retry_in_ms = delay_ms,
                    "record {} of batch {b}: dispute not opened ({why}); retrying in {delay_ms} ms",
                    i + 1
                );
                Some(delay_ms)
            }
            RetryDecision::GiveUp(reason) => {
                if let DisputeFailure::Rejected(r) = f {
                    warn!(batch = b, index = i, reason = %r, "dispute on record {} of batch {b} rejected by the referee", i + 1);
                    let _ =
                        self.db.put_verdict(b, i, &Verdict::Unverifiable { reason: format!("dispute rejected: {r}") });
                } else {
                    // The intent stays recorded: a restart tries again.
                    error!(
                        batch = b,
                        index = i,
                        attempt,
                        "record {} of batch {b} is wrong but not disputed ({why}); giving up until a restart: {reason}",
                        i + 1
                    );
                }
                None
            }
        }
    }

    /// Retries a failed dispute until it opens or the solver gives up.
    async fn retry_dispute(
        self: Arc<Self>,
        ctx: Arc<BatchCtx>,
        i: u64,
        ours: Hash32,
        mut last: DisputeFailure,
        mut delay_ms: u64,
    ) {
        let mut attempt = 1;
        loop {
            // A game of ours ending frees its bond and its place: no need to
            // wait out the backoff when either was what was missing.
            let waits_for_a_game = matches!(last, DisputeFailure::Unaffordable | DisputeFailure::AtCapacity);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                _ = self.funds.notified(), if waits_for_a_game => {}
            }
            attempt += 1;
            // A lost send may have applied: look for the game before sending
            // again.
            let r = if last == DisputeFailure::SendFailed {
                self.reconcile_or_open(&ctx, i, ours).await
            } else {
                self.open_dispute(&ctx, i, ours).await
            };
            match r {
                Ok(()) => return,
                Err((f, why)) => match self.retry_decision(&ctx, i, attempt, &f, &why).await {
                    Some(d) => (last, delay_ms) = (f, d),
                    None => return,
                },
            }
        }
    }

    /// A dispute that may already be open (its send's answer was lost, or
    /// the process restarted after recording the intent): if the referee
    /// has a game of ours on the record, adopt it; otherwise open it now.
    async fn reconcile_or_open(
        self: &Arc<Self>,
        ctx: &Arc<BatchCtx>,
        i: u64,
        ours: Hash32,
    ) -> Result<(), (DisputeFailure, String)> {
        if let Ok(games) = self.chain.games_of(&self.me, false).await
            && let Some(v) = games.iter().find(|g| g.batch == ctx.number && g.index == i && g.challenger == self.me)
        {
            info!(game = v.id, batch = ctx.number, index = i, "found the dispute already open");
            self.adopt_game(ctx, i, ours, v.id, None);
            return Ok(());
        }
        self.open_dispute(ctx, i, ours).await
    }

    /// One attempt at opening a dispute on record `i`: `Ok` when a game is
    /// open and being played (or there is nothing a retry could fix),
    /// otherwise why not.
    async fn open_dispute(
        self: &Arc<Self>,
        ctx: &Arc<BatchCtx>,
        i: u64,
        ours: Hash32,
    ) -> Result<(), (DisputeFailure, String)> {
        let b = ctx.number;
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return Ok(()) };
        let bond = self.params.challenger_bond;
        match self.chain.account(&self.me).await {
            Ok(a) => {
                self.metrics.balance.set(a.free as i64);
                if let Err(shortfall) =
                    solver::can_afford(a.free, bond, self.locked.load(Ordering::SeqCst), self.cfg.bond)
                {
                    let e = ChallengerError::InsufficientBond { account: self.me.to_string(), shortfall };
                    return Err((DisputeFailure::Unaffordable, e.to_string()));
                }
            }
            Err(e) => warn!(error = %e, "settlement_account failed; trying the dispute anyway"),
        }
        // The game's place is taken before the dispute is sent, so no two
        // disputes can both count on the last one; it goes to the player.
        let Ok(place) = self.places.clone().try_acquire_owned() else {
            let max = self.cfg.max_games;
            return Err((DisputeFailure::AtCapacity, format!("{max} games in play, the most max_games allows")));
        };
        let proof = match ctx.checked.tree.proof(i) {
            Ok(p) => p,
            Err(e) => {
                error!(batch = b, index = i, error = %e, "cannot build the inclusion proof; not disputing");
                return Ok(());
            }
        };
        let tx = Tx::OpenDispute { batch: b, index: i, record: entry.record, proof };
        match self.send(tx).await {
            Ok(events) => {
                let id = match opened_game(&events) {
                    Some(id) => Some(id),
                    None => self.chain.games_of(&self.me, true).await.ok().and_then(|gs| {
                        gs.iter().find(|g| g.batch == b && g.index == i && g.challenger == self.me).map(|g| g.id)
                    }),
                };
                match id {
                    Some(id) => {
                        self.metrics.opened.inc();
                        info!(
                            game = id,
                            batch = b,
                            index = i,
                            bond,
                            "dispute opened on record {} of batch {b}: game {id}",
                            i + 1
                        );
                        self.adopt_game(ctx, i, ours, id, Some(place));
                        Ok(())
                    }
                    // Applied, but we cannot tell the game: the retry looks
                    // it up in `settlement_games` before sending anything.
                    None => {
                        Err((DisputeFailure::SendFailed, format!("applied but no game id in its events: {events}")))
                    }
                }
            }
            Err(ChallengerError::TxRejected { reason, .. }) => Err((DisputeFailure::Rejected(reason.clone()), reason)),
            // The transaction may have applied with the answer lost; the
            // intent stays in the database and the retry reconciles first.
            Err(e) => Err((DisputeFailure::SendFailed, e.to_string())),
        }
    }

    /// Disputes recorded as intended but never opened in batches already
    /// below the watermark (the process stopped before a retry succeeded):
    /// reconciled or opened again. Intents above the watermark are met again
    /// by the pipeline.
    async fn resume_intents(self: Arc<Self>) {
        let w = self.watermark.load(Ordering::SeqCst);
        let intents = match self.db.unopened_disputes() {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, "cannot read pending disputes");
                return;
            }
        };
        for (b, i) in intents.into_iter().filter(|&(b, _)| b <= w) {
            let Ok(Some(Verdict::Wrong { ours, game: None })) = self.db.verdict(b, i) else { continue };
            match self.batch_ctx(b).await {
                Ok(ctx) => {
                    info!(
                        batch = b,
                        index = i,
                        "resuming the dispute on record {} of batch {b} intended before the restart",
                        i + 1
                    );
                    self.dispute(&ctx, i, ours, true).await;
                }
                Err(e) => error!(batch = b, index = i, error = %e, "cannot reload the batch of a pending dispute"),
            }
        }
    }

    /// Loads batch `n` (body checked against the referee's header, window
    /// end, referee time) outside the pipeline.
    async fn batch_ctx(&self, n: u64) -> Result<Arc<BatchCtx>> {
        let checked = self.chain.body(n).await?;
        let sb = self.chain.settlement_batch(n).await?;
        if let Some(h) = sb.hash
            && h != checked.header.hash()
        {
            return Err(ChallengerError::BadResponse {
                method: "explorer_batchBody",
                message: format!("batch {n}: the explorer serves another header than the referee holds"),
            });
        }
        let referee_now_ms = self.chain.info().await?.now_ms;
        Ok(Arc::new(BatchCtx {
            number: n,
            checked,
            window_end_ms: sb.window_end_ms,
            referee_now_ms,
            loaded_at: Instant::now(),
        }))
    }

    /// Records game `id` and starts playing it (in `place` if it has one).
    fn adopt_game(
        self: &Arc<Self>,
        ctx: &Arc<BatchCtx>,
        i: u64,
        ours: Hash32,
        id: u64,
        place: Option<OwnedSemaphorePermit>,
    ) {
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return };
        let g = GameEntry { id, batch: ctx.number, index: i, record: entry.record, outcome: None };
        if let Err(e) = self.db.put_game(&g, ours) {
            error!(game = id, error = %e, "cannot persist the game; playing it anyway");
        }
        self.start_player(g, Some(entry.inputs.clone()), place);
    }

    // ---- games ----------------------------------------------------------

    /// Resumes every game we have open: those in our database and those the
    /// referee lists for our account (a crash between sending a dispute and
    /// recording it).
    async fn resume_games(self: Arc<Self>) -> Result<()> {
        let mut games: HashMap<u64, GameEntry> =
            self.db.games()?.into_iter().filter(|g| g.outcome.is_none()).map(|g| (g.id, g)).collect();
        match self.chain.games_of(&self.me, true).await {
            Ok(open) => {
                // Adopt a listed game only where we meant to dispute that
                // record and never learned the game's id (a crash between
                // sending and saving): the listing is the node's word, and the
                // node may be the sequencer we dispute. Never overwrite a
                // verdict, never adopt a game we had no reason to open.
                for v in open.into_iter().filter(|v| v.challenger == self.me) {
                    if games.contains_key(&v.id) {
                        continue;
                    }
                    let ours = match self.db.verdict(v.batch, v.index) {
                        Ok(Some(Verdict::Wrong { ours, game: None })) => ours,
                        Ok(_) => {
                            warn!(
                                game = v.id,
                                batch = v.batch,
                                index = v.index,
                                "the node lists a game of ours that we have no open intent for; ignoring it"
                            );
                            continue;
                        }
                        Err(e) => {
                            error!(game = v.id, error = %e, "cannot read our verdict; not adopting the listed game");
                            continue;
                        }
                    };
                    let g = GameEntry { id: v.id, batch: v.batch, index: v.index, record: v.record, outcome: None };
                    if let Err(e) = self.db.put_game(&g, ours) {
                        error!(game = v.id, error = %e, "cannot persist a recovered game");
                    }
                    games.insert(v.id, g);
                }
            }
            Err(e) => warn!(error = %e, "settlement_games failed; resuming only the games in the database"),
        }
        for g in games.into_values() {
            info!(game = g.id, batch = g.batch, index = g.index, "resuming game after restart");
            self.start_player(g, None, None);
        }
        Ok(())
    }

    /// Starts the player of game `g`; `place` is its permit under
    /// `max_games` if the caller holds one (a dispute just opened), else the
    /// player waits for one.
    fn start_player(
        self: &Arc<Self>,
        g: GameEntry,
        inputs: Option<Vec<verinfer_state::tensor::Tensor>>,
        place: Option<OwnedSemaphorePermit>,
    ) {
        if !self.playing.lock().unwrap_or_else(PoisonError::into_inner).insert(g.id) {
            return;
        }
        self.locked.fetch_add(self.params.challenger_bond, Ordering::SeqCst);
        self.metrics.locked.set(self.locked.load(Ordering::SeqCst) as i64);
        self.metrics.open_games.inc();
        // Registered before the player's first read, so no event of the game
        // can fall between the two.
        let waker = Arc::new(Notify::new());
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner).insert(g.id, waker.clone());
        self.spawn(self.clone().play(g, inputs, waker, place));
    }

    /// Builds our honest prover for a game's record.
    async fn honest_prover(
        &self,
        g: &GameEntry,
        inputs: Option<Vec<verinfer_state::tensor::Tensor>>,
    ) -> Result<DisputeProver> {
        let kept = match inputs {
            Some(_) => None,
            None => self.db.dispute_inputs(g.batch, g.index).unwrap_or_else(|e| {
                warn!(game = g.id, error = %e, "cannot read the kept inputs; fetching them from the node");
                None
            }),
        };
        let inputs = match inputs.or(kept) {
            Some(i) => i,
            None => {
                let body = self.chain.body(g.batch).await?;
                let e = body.body.entries.into_iter().nth(g.index as usize).ok_or(ChallengerError::BadResponse {
                    method: "explorer_batchBody",
                    message: format!("batch {} has no record {}", g.batch, g.index),
                })?;
                if e.record != g.record {
                    return Err(ChallengerError::BadResponse {
                        method: "explorer_batchBody",
                        message: format!("record {} of batch {} is not the disputed one", g.index, g.batch),
                    });
                }
                e.inputs
            }
        };
        let p = self.prepared(g.record.model_id, g.record.program_root).await?;
        tokio::task::spawn_blocking(move || p.prover(inputs))
            .await
            .map_err(|e| ChallengerError::Db(format!("prover task: {e}")))?
    }

    /// Plays game `g` to its end: reads the referee's view, asks the solver,
    /// acts, and sleeps until an event of the game (`waker`), the
    /// defender's clock running out, or the fallback poll.
    async fn play(
        self: Arc<Self>,
        g: GameEntry,
        inputs: Option<Vec<verinfer_state::tensor::Tensor>>,
        waker: Arc<Notify>,
        place: Option<OwnedSemaphorePermit>,
    ) {
        let id = g.id;
        let what = format!("game {id} (record {} of batch {})", g.index + 1, g.batch);
        // Held until the game ends: our prover and its trace live as long.
        // Only a game found open at start can lack one (more open than
        // max_games): it waits, its clock running, rather than let memory
        // grow past the bound.
        let place = match place {
            Some(p) => p,
            None => match self.places.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    warn!(
                        game = id,
                        max_games = self.cfg.max_games,
                        "{what}: max_games games already in play; waiting for one to end (our clock runs meanwhile)"
                    );
                    self.metrics.games_waiting.inc();
                    let p = self.places.clone().acquire_owned().await;
                    self.metrics.games_waiting.dec();
                    match p {
                        Ok(p) => p,
                        Err(e) => {
                            error!(game = id, error = %e, "{what}: cannot take a game place; not playing");
                            return;
                        }
                    }
                }
            },
        };
        // Errors (node unreachable, a bad answer) back off from
        // reconnect_min_ms up to the fallback poll; any success resets it.
        let (min_ms, poll_ms) = (self.cfg.reconnect_min_ms, self.cfg.poll_ms.max(self.cfg.reconnect_min_ms));
        let mut backoff = min_ms;
        let failed = |b: &mut u64| {
            let d = *b;
            *b = (*b * 2).min(poll_ms);
            d
        };
        let prover = loop {
            match self.honest_prover(&g, inputs.clone()).await {
                Ok(p) => break Arc::new(p),
                Err(e) => {
                    let d = failed(&mut backoff);
                    error!(game = id, error = %e, retry_in_ms = d, "{what}: cannot build our prover; retrying");
                    tokio::time::sleep(Duration::from_millis(d)).await;
                }
            }
        };
        backoff = min_ms;
        let mut said_silent = false;
        loop {
            let view = match self.chain.game(id).await {
                // The view is the node's word: it must be the game we
                // opened, or moves go elsewhere and another game's result is
                // saved as ours.
                Ok(v) if v.id != id || v.batch != g.batch || v.index != g.index || v.challenger != self.me => {
                    let d = failed(&mut backoff);
                    error!(
                        game = id,
                        served_id = v.id,
                        batch = v.batch,
                        index = v.index,
                        retry_in_ms = d,
                        "{what}: the node served a view of another game; ignoring it"
                    );
                    nap(&waker, d).await;
                    continue;
                }
                Ok(v) => Arc::new(v),
                Err(e) => {
                    let d = failed(&mut backoff);
                    warn!(game = id, error = %e, retry_in_ms = d, "{what}: cannot read the game; retrying");
                    nap(&waker, d).await;
                    continue;
                }
            };
            let (v2, p2) = (view.clone(), prover.clone());
            let action = match tokio::task::spawn_blocking(move || solver::solve_game(&v2, &p2)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    let d = failed(&mut backoff);
                    error!(game = id, error = %e, retry_in_ms = d, "{what}: the solver failed; retrying");
                    nap(&waker, d).await;
                    continue;
                }
                Err(e) => {
                    let d = failed(&mut backoff);
                    error!(game = id, error = %e, retry_in_ms = d, "{what}: solver task failed");
                    nap(&waker, d).await;
                    continue;
                }
            };
            backoff = min_ms;
            match action {
                GameAction::Finished { outcome, reason } => {
                    let pin = view.resolution.as_ref().map(|r| r.pinpoint.clone()).unwrap_or_default();
                    match outcome {
                        Outcome::Won => {
                            self.metrics.won.inc();
                            info!(game = id, ?reason, node = ?pin.node, op = ?pin.op, element = ?pin.element, step = ?pin.step,
                                  "{what}: WON — record void, sequencer stake paid to us");
                        }
                        Outcome::Lost => {
                            self.metrics.lost.inc();
                            warn!(game = id, ?reason, "{what}: LOST — our bond went to the defender");
                        }
                    }
                    if let Err(e) = self.db.finish_game(id, outcome) {
                        error!(game = id, error = %e, "cannot persist the outcome");
                    }
                    self.playing.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    self.wakers.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    // Our bond and our place are free again (the place before
                    // the wake-up, or the woken dispute finds none): a dispute
                    // waiting for either can go.
                    drop(prover);
                    drop(place);
                    self.funds.notify_waiters();
                    self.locked.fetch_sub(
                        self.params.challenger_bond.min(self.locked.load(Ordering::SeqCst)),
                        Ordering::SeqCst,
                    );
                    self.metrics.locked.set(self.locked.load(Ordering::SeqCst) as i64);
                    self.metrics.open_games.dec();
                    if let Ok(a) = self.chain.account(&self.me).await {
                        self.metrics.balance.set(a.free as i64);
                    }
                    return;
                }
                GameAction::Send(tx) => {
                    let tx = *tx;
                    let desc = match &tx {
                        Tx::Move { mv: Move::Pick { child }, .. } => {
                            format!("pick child {child} at {:?} (our computation differs there)", view.level)
                        }
                        Tx::Move { mv: Move::PickElement { offset }, .. } => {
                            format!("pick element {offset} of chunk {:?} of node {:?}", view.chunk, view.node)
                        }
                        Tx::ClaimTimeout { .. } => "defender's clock ran out: claiming the timeout".to_string(),
                        t => t.name().to_string(),
                    };
                    match self.send(tx).await {
                        // Read the game again at once: the defender answers
                        // within its tick, and its move's event wakes us.
                        Ok(_) => info!(game = id, seq = view.moves, "{what}: {desc}"),
                        // Usually a stale view (the defender moved, the clock
                        // ran out in between): read the game again, after a
                        // short pause so a persistent rejection cannot spin.
                        Err(ChallengerError::TxRejected { reason, .. }) => {
                            debug!(game = id, %reason, "{what}: move rejected; re-reading the game");
                            nap(&waker, min_ms).await;
                        }
                        Err(e) => {
                            let d = failed(&mut backoff);
                            warn!(game = id, error = %e, retry_in_ms = d, "{what}: sending failed; retrying");
                            nap(&waker, d).await;
                        }
                    }
                }
                a @ GameAction::Wait { .. } => nap(&waker, solver::wake_after(&a, poll_ms)).await,
                a @ GameAction::Silent => {
                    if !said_silent {
                        warn!(
                            game = id,
                            "{what}: no difference found at our turn — we were wrong to dispute; staying silent"
                        );
                        said_silent = true;
                    }
                    nap(&waker, solver::wake_after(&a, poll_ms)).await;
                }
            }
        }
    }

    /// Follows `settlement_subscribeEvents` and wakes the player of each game
    /// an event names. After every (re)subscription every player is woken
    /// once, since events may have been missed in between; players also
    /// read their game every `poll_ms`, so a dead subscription only slows
    /// them down. Reconnects with the same backoff as the batch follower.
    async fn events(self: Arc<Self>) {
        let mut delay = self.cfg.reconnect_min_ms;
        loop {
            let sub = match WsClientBuilder::default().build(self.cfg.ws_url()).await {
                Ok(ws) => SettlementApiClient::subscribe_events(&ws).await.map(|s| (ws, s)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sub {
                Ok((_ws, mut sub)) => {
                    delay = self.cfg.reconnect_min_ms;
                    debug!("subscribed to settlement events");
                    self.wake_all();
                    while let Some(item) = sub.next().await {
                        match item {
                            Ok(note) => {
                                if let Some(game) = solver::event_game(&note) {
                                    self.wake(game);
                                }
                            }
                            Err(e) => {
                                warn!(error = %e, "malformed settlement event; resubscribing");
                                break;
                            }
                        }
                    }
                    debug!("settlement event subscription closed; reconnecting");
                }
                Err(e) => {
                    debug!(error = %e, retry_in_ms = delay, "cannot subscribe to settlement events; games are polled meanwhile")
                }
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            delay = (delay * 2).min(self.cfg.reconnect_max_ms);
        }
    }

    fn wake(&self, game: u64) {
        if let Some(w) = self.wakers.lock().unwrap_or_else(PoisonError::into_inner).get(&game) {
            // `notify_one` keeps a permit when the player is not waiting yet
            // (it is reading or solving), so the event is not lost.
            w.notify_one();
        }
    }

    fn wake_all(&self) {
        for w in self.wakers.lock().unwrap_or_else(PoisonError::into_inner).values() {
            w.notify_one();
        }
    }

    // ---- monitoring -----------------------------------------------------

    /// Every 2 s: head, lag and balance metrics, and a progress line while a
    /// backlog is being caught up.
    async fn monitor(self: Arc<Self>) {
        let mut last = (Instant::now(), self.records_done.load(Ordering::Relaxed));
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let w = self.watermark.load(Ordering::SeqCst);
            if let Ok(head) = self.chain.head().await {
                self.metrics.set_progress(head, w);
                let done = self.records_done.load(Ordering::Relaxed);
                let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
                last = (Instant::now(), done);
                if head > w + 1 {
                    info!(
                        verified = w,
                        head,
                        lag = head - w,
                        records_per_s = format!("{rate:.1}"),
                        "catching up: batch {w} of {head} verified ({} behind, {rate:.1} records/s)",
                        head - w
                    );
                }
            }
            if let Ok(a) = self.chain.account(&self.me).await {
                self.metrics.balance.set(a.free as i64);
            }
        }
    }
}

/// Sleeps `ms`, or less if `waker` is notified (an event of the game).
async fn nap(waker: &Notify, ms: u64) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
        _ = waker.notified() => {}
    }
}
