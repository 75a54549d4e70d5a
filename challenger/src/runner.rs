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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use jsonrpsee_ws_client::WsClientBuilder;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::game::tx::{Move, SignedTx, Tx};
use verinfer_prover::game::types::AccountId;
use verinfer_rpc::api::ExplorerApiClient;
use verinfer_state::hash::Hash32;

use crate::chain::{Chain, CheckedBody, SettlementParams, opened_game};
use crate::config::Config;
use crate::db::{Db, GameEntry};
use crate::error::{ChallengerError, Result};
use crate::exec::{ModelCache, Prepared};
use crate::metrics::Metrics;
use crate::solver::{self, GameAction, Outcome, Progress, RecordAction, RecordFacts, Verdict};

/// `explorer_batches` returns at most this many headers per call.
const MAX_RANGE: u64 = 1000;

/// Loads the signing key from `path`, creating one if the file is missing.
pub fn load_or_create_key(path: &std::path::Path) -> Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            let t = t.strip_prefix("0x").unwrap_or(t);
            let mut seed = [0u8; 32];
            hex::decode_to_slice(t, &mut seed)
                .map_err(|e| ChallengerError::Config(format!("{}: expected 64 hex characters ({e})", path.display())))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, hex::encode(seed))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            info!(path = %path.display(), "created a new challenger key");
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(ChallengerError::Config(format!("{}: {e}", path.display()))),
    }
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
}

/// A record to check, ordered by window end (then batch and index): the
/// record whose window closes first is checked first.
#[derive(Debug)]
struct Job {
    key: (u64, u64, u64),
    ctx: Arc<BatchCtx>,
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
    metrics: Arc<Metrics>,
    /// The next nonce, `None` until read from the referee (and after a
    /// rejection, which may mean we are out of step with it).
    nonce: tokio::sync::Mutex<Option<u64>>,
    /// Games being played by this process.
    playing: Mutex<HashSet<u64>>,
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
        let salt: [u8; 32] = Sha256::new().chain_update(b"verinfer/challenger/salt/v1").chain_update(key.to_bytes()).finalize().into();
        let chain = Chain::connect(&cfg.rpc)?;
        let info = retry_forever("settlement_info", &cfg, || chain.info()).await;
        let params = info.params;
        info!(account = %me, rpc = %cfg.rpc, chain_id = params.chain_id, challenger_bond = params.challenger_bond,
              window_ms = params.challenge_window_ms, clock_ms = params.clock_ms, "challenger starting");
        let metrics = Metrics::new();
        let (metrics_addr, metrics_task) = match cfg.metrics {
            Some(a) => {
                let (addr, h) = crate::metrics::spawn(a, metrics.clone()).await?;
                info!(%addr, "metrics on http://{addr}/metrics");
                (Some(addr), Some(h.abort_handle()))
            }
            None => (None, None),
        };
        let models = ModelCache::default();
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
            metrics,
            nonce: Default::default(),
            playing: Default::default(),
            locked: AtomicU64::new(0),
            watermark: AtomicU64::new(watermark),
            tasks: Default::default(),
            records_done: AtomicU64::new(0),
            cfg,
        });
        shared.fund_and_check().await?;
        shared.clone().resume_games().await?;
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
        if let Err(budget) = solver::can_afford(acct.free, bond, 0, self.cfg.bond) {
            return Err(ChallengerError::InsufficientBond { account: self.me.to_string(), free: acct.free, bond, budget });
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
                    while let Some(item) = sub.next().await {
                        match item {
                            Ok(s) => {
                                let n = s.header.number;
                                if n >= next && !self.catch_up(&out, &mut next, n).await {
                                    return;
                                }
                            }
                            Err(e) => {
                                warn!(error = %e, "malformed batch notification; resubscribing");
                                break;
                            }
                        }
                    }
                    warn!("batch subscription closed (node restarted, or we fell behind); reconnecting");
                }
                Err(e) => warn!(error = %e, retry_in_ms = delay, url = %self.cfg.ws_url(), "cannot subscribe to batches; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            delay = (delay * 2).min(self.cfg.reconnect_max_ms);
        }
    }

    /// Sends `*next..=upto` to the pipeline, confirming the numbers with
    /// `explorer_batches` ranges. Returns false when the pipeline is gone.
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
                if out.send(n).await.is_err() {
                    return false;
                }
                *next = n + 1;
            }
        }
        true
    }

    // ---- the verification pipeline -----------------------------------

    /// Loads each batch, schedules its records by window deadline on at most
    /// `concurrency` workers, and advances the persisted watermark as
    /// batches complete.
    async fn pipeline(self: Arc<Self>, mut batches: mpsc::Receiver<u64>, watermark: u64) {
        let workers = self.cfg.workers();
        let mut progress = Progress::new(watermark);
        let mut remaining: HashMap<u64, usize> = HashMap::new();
        let mut heap: BinaryHeap<Reverse<Job>> = BinaryHeap::new();
        let mut running: JoinSet<u64> = JoinSet::new();
        let mut closed = false;
        loop {
            // Keep enough loaded work to fill the workers, no more: loading
            // ahead costs memory and nothing else.
            while !closed && heap.len() < workers * 4 {
                match batches.try_recv() {
                    Ok(n) => self.load_batch(n, &mut heap, &mut remaining, &mut progress).await,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                }
            }
            while running.len() < workers {
                let Some(Reverse(job)) = heap.pop() else { break };
                running.spawn(self.clone().check(job));
            }
            tokio::select! {
                n = batches.recv(), if !closed && heap.len() < workers * 4 => match n {
                    Some(n) => self.load_batch(n, &mut heap, &mut remaining, &mut progress).await,
                    None => closed = true,
                },
                Some(done) = running.join_next(), if !running.is_empty() => {
                    // A panicked check (a bug) loses one record's verdict;
                    // its batch then never completes and the watermark holds,
                    // so a restart re-checks it.
                    let Ok(batch) = done else { error!("a record check panicked"); continue };
                    self.records_done.fetch_add(1, Ordering::Relaxed);
                    if let Some(r) = remaining.get_mut(&batch) {
                        *r -= 1;
                        if *r == 0 {
                            remaining.remove(&batch);
                            self.batch_done(batch, &mut progress);
                        }
                    }
                }
                else => {
                    if closed { return; }
                }
            }
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

    async fn load_batch(
        &self,
        n: u64,
        heap: &mut BinaryHeap<Reverse<Job>>,
        remaining: &mut HashMap<u64, usize>,
        progress: &mut Progress,
    ) {
        if n <= progress.watermark {
            return;
        }
        let mut delay = self.cfg.reconnect_min_ms;
        let mut attempts = 0;
        let checked = loop {
            match self.chain.body(n).await {
                Ok(c) => break c,
                Err(e) => {
                    attempts += 1;
                    // A body that does not match its header is the node
                    // lying about data availability; nothing to re-execute.
                    if attempts >= 5 || matches!(e, ChallengerError::BadResponse { .. }) {
                        error!(batch = n, error = %e, "cannot load batch body; skipping it (its records are not checked)");
                        self.batch_done(n, progress);
                        return;
                    }
                    warn!(batch = n, error = %e, retry_in_ms = delay, "loading batch body failed; retrying");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    delay = (delay * 2).min(self.cfg.reconnect_max_ms);
                }
            }
        };
        let sb = self.chain.settlement_batch(n).await.unwrap_or_default();
        if let Some(h) = sb.hash
            && h != checked.header.hash()
        {
            error!(batch = n, referee = %h, explorer = %checked.header.hash(),
                   "explorer serves another header than the referee holds; skipping batch");
            self.batch_done(n, progress);
            return;
        }
        let referee_now_ms = self.chain.info().await.map(|i| i.now_ms).unwrap_or(0);
        let count = checked.body.entries.len();
        let ctx = Arc::new(BatchCtx { number: n, checked, window_end_ms: sb.window_end_ms, referee_now_ms, loaded_at: Instant::now() });
        debug!(batch = n, records = count, window_end_ms = ?ctx.window_end_ms, "batch loaded");
        remaining.insert(n, count);
        for i in 0..count as u64 {
            heap.push(Reverse(Job { key: (ctx.window_end_ms.unwrap_or(u64::MAX), n, i), ctx: ctx.clone() }));
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
        let program = self.chain.program(model_id, root).await?;
        let nodes = program.nodes.len();
        let p = tokio::task::spawn_blocking(move || Prepared::new(program))
            .await
            .map_err(|e| ChallengerError::Db(format!("planning task: {e}")))??;
        let p = Arc::new(p);
        self.models.insert(root, p.clone());
        info!(model_id = %model_id, program_root = %root, nodes, "model program fetched and planned");
        Ok(p)
    }

    /// Judges one record; returns its batch number.
    async fn check(self: Arc<Self>, job: Job) -> u64 {
        let (_, b, i) = job.key;
        let ctx = job.ctx;
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return b };
        let record = &entry.record;
        let total = ctx.checked.body.entries.len();
        match self.db.verdict(b, i) {
            Ok(Some(Verdict::Wrong { ours, game: None })) => {
                // Meant to dispute before a restart; see whether it opened.
                self.reconcile_or_open(&ctx, i, ours).await;
                return b;
            }
            Ok(Some(_)) => return b,
            Ok(None) => {}
            Err(e) => {
                error!(batch = b, index = i, error = %e, "reading verdict failed");
                return b;
            }
        }
        let forced = self.cfg.force_dispute.contains(&(b, i));
        let recomputed = if forced || solver::sampled(&self.salt, &record.request_id, self.cfg.sample) {
            Some(match self.prepared(record.model_id, record.program_root).await {
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
                Err(e) => Err(format!("model {}: {e}", record.model_id)),
            })
        } else {
            None
        };
        let facts = RecordFacts { record, recomputed, now_ms: ctx.referee_now(), window_end_ms: ctx.window_end_ms, forced };
        match solver::judge_record(&facts) {
            RecordAction::Settle(v) => {
                match &v {
                    Verdict::Correct => debug!(batch = b, index = i, "record {} of batch {b}: output root matches", i + 1),
                    Verdict::Unverifiable { reason } => {
                        warn!(batch = b, index = i, %reason, "record {} of batch {b}: cannot verify", i + 1)
                    }
                    Verdict::WindowClosed => warn!(batch = b, index = i,
                        "record {} of batch {b}: output root differs but the window has closed; nothing to do", i + 1),
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
                    warn!(batch = b, index = i, "record {} of batch {b} of {total}: forced dispute on a record we find correct (drill); expect to lose the bond", i + 1);
                } else {
                    info!(batch = b, index = i, ours = %ours, committed = %record.output_root,
                          "record {} of batch {b} (of {total}): output root differs; opening dispute", i + 1);
                }
                if let Err(e) = self.db.put_verdict(b, i, &Verdict::Wrong { ours, game: None }) {
                    error!(batch = b, index = i, error = %e, "cannot persist dispute intent; not disputing");
                    return b;
                }
                self.open_dispute(&ctx, i, ours).await;
            }
        }
        b
    }

    /// A dispute we meant to open before a restart: if the referee has a
    /// game of ours on the record, adopt it; otherwise open it now.
    async fn reconcile_or_open(self: &Arc<Self>, ctx: &Arc<BatchCtx>, i: u64, ours: Hash32) {
        if let Ok(games) = self.chain.games_of(&self.me, false).await
            && let Some(v) = games.iter().find(|g| g.batch == ctx.number && g.index == i && g.challenger == self.me)
        {
            info!(game = v.id, batch = ctx.number, index = i, "found the dispute opened before the restart");
            self.adopt_game(ctx, i, ours, v.id);
            return;
        }
        self.open_dispute(ctx, i, ours).await;
    }

    async fn open_dispute(self: &Arc<Self>, ctx: &Arc<BatchCtx>, i: u64, ours: Hash32) {
        let b = ctx.number;
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return };
        let bond = self.params.challenger_bond;
        match self.chain.account(&self.me).await {
            Ok(a) => {
                self.metrics.balance.set(a.free as i64);
                if let Err(budget) = solver::can_afford(a.free, bond, self.locked.load(Ordering::SeqCst), self.cfg.bond) {
                    let e = ChallengerError::InsufficientBond { account: self.me.to_string(), free: a.free, bond, budget };
                    error!(batch = b, index = i, "record {} of batch {b} is wrong but not disputed: {e}", i + 1);
                    return;
                }
            }
            Err(e) => warn!(error = %e, "settlement_account failed; trying the dispute anyway"),
        }
        let proof = match ctx.checked.tree.proof(i) {
            Ok(p) => p,
            Err(e) => {
                error!(batch = b, index = i, error = %e, "cannot build the inclusion proof");
                return;
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
                        info!(game = id, batch = b, index = i, bond, "dispute opened on record {} of batch {b}: game {id}", i + 1);
                        self.adopt_game(ctx, i, ours, id);
                    }
                    None => error!(batch = b, index = i, ?events, "dispute applied but no game id in its events"),
                }
            }
            Err(ChallengerError::TxRejected { reason, .. }) => {
                warn!(batch = b, index = i, %reason, "dispute on record {} of batch {b} rejected by the referee", i + 1);
                let _ = self.db.put_verdict(b, i, &Verdict::Unverifiable { reason: format!("dispute rejected: {reason}") });
            }
            Err(e) => {
                // The transaction may have applied with the answer lost; the
                // intent stays in the database and a restart reconciles it.
                error!(batch = b, index = i, error = %e, "sending the dispute failed; will reconcile on restart");
            }
        }
    }

    /// Records game `id` and starts playing it.
    fn adopt_game(self: &Arc<Self>, ctx: &Arc<BatchCtx>, i: u64, ours: Hash32, id: u64) {
        let Some(entry) = ctx.checked.body.entries.get(i as usize) else { return };
        let g = GameEntry { id, batch: ctx.number, index: i, record: entry.record, outcome: None };
        if let Err(e) = self.db.put_game(&g, ours) {
            error!(game = id, error = %e, "cannot persist the game; playing it anyway");
        }
        self.start_player(g, Some(entry.inputs.clone()));
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
                for v in open.into_iter().filter(|v| v.challenger == self.me) {
                    games.entry(v.id).or_insert_with(|| {
                        let g = GameEntry { id: v.id, batch: v.batch, index: v.index, record: v.record, outcome: None };
                        if let Err(e) = self.db.put_game(&g, Hash32::ZERO) {
                            error!(game = v.id, error = %e, "cannot persist a recovered game");
                        }
                        g
                    });
                }
            }
            Err(e) => warn!(error = %e, "settlement_games failed; resuming only the games in the database"),
        }
        for g in games.into_values() {
            info!(game = g.id, batch = g.batch, index = g.index, "resuming game after restart");
            self.start_player(g, None);
        }
        Ok(())
    }

    fn start_player(self: &Arc<Self>, g: GameEntry, inputs: Option<Vec<verinfer_state::tensor::Tensor>>) {
        if !self.playing.lock().unwrap_or_else(PoisonError::into_inner).insert(g.id) {
            return;
        }
        self.locked.fetch_add(self.params.challenger_bond, Ordering::SeqCst);
        self.metrics.locked.set(self.locked.load(Ordering::SeqCst) as i64);
        self.metrics.open_games.inc();
        self.spawn(self.clone().play(g, inputs));
    }

    /// Builds our honest prover for a game's record.
    async fn honest_prover(&self, g: &GameEntry, inputs: Option<Vec<verinfer_state::tensor::Tensor>>) -> Result<DisputeProver> {
        let inputs = match inputs {
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

    /// Plays game `g` to its end.
    async fn play(self: Arc<Self>, g: GameEntry, inputs: Option<Vec<verinfer_state::tensor::Tensor>>) {
        let id = g.id;
        let what = format!("game {id} (record {} of batch {})", g.index + 1, g.batch);
        let poll = Duration::from_millis(self.cfg.poll_ms);
        let prover = loop {
            match self.honest_prover(&g, inputs.clone()).await {
                Ok(p) => break Arc::new(p),
                Err(e) => {
                    error!(game = id, error = %e, "{what}: cannot build our prover; retrying");
                    tokio::time::sleep(poll * 10).await;
                }
            }
        };
        let mut said_silent = false;
        loop {
            let view = match self.chain.game(id).await {
                Ok(v) => Arc::new(v),
                Err(e) => {
                    warn!(game = id, error = %e, "{what}: cannot read the game; retrying");
                    tokio::time::sleep(poll * 5).await;
                    continue;
                }
            };
            let (v2, p2) = (view.clone(), prover.clone());
            let action = match tokio::task::spawn_blocking(move || solver::solve_game(&v2, &p2)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    error!(game = id, error = %e, "{what}: the solver failed; retrying");
                    tokio::time::sleep(poll * 5).await;
                    continue;
                }
                Err(e) => {
                    error!(game = id, error = %e, "{what}: solver task failed");
                    tokio::time::sleep(poll * 5).await;
                    continue;
                }
            };
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
                    self.locked.fetch_sub(self.params.challenger_bond.min(self.locked.load(Ordering::SeqCst)), Ordering::SeqCst);
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
                        Tx::Move { mv: Move::Pick { child }, .. } => format!(
                            "pick child {child} at {:?} (our computation differs there)",
                            view.level
                        ),
                        Tx::Move { mv: Move::PickElement { offset }, .. } => {
                            format!("pick element {offset} of chunk {:?} of node {:?}", view.chunk, view.node)
                        }
                        Tx::ClaimTimeout { .. } => "defender's clock ran out: claiming the timeout".to_string(),
                        t => t.name().to_string(),
                    };
                    match self.send(tx).await {
                        Ok(_) => info!(game = id, seq = view.moves, "{what}: {desc}"),
                        // Usually a stale view (the defender moved, the clock
                        // ran out in between): read the game again.
                        Err(ChallengerError::TxRejected { reason, .. }) => {
                            debug!(game = id, %reason, "{what}: move rejected; re-reading the game");
                            tokio::time::sleep(poll).await;
                        }
                        Err(e) => {
                            warn!(game = id, error = %e, "{what}: sending failed; retrying");
                            tokio::time::sleep(poll).await;
                        }
                    }
                }
                GameAction::Wait { defender_left_ms } => {
                    tokio::time::sleep(poll.min(Duration::from_millis(defender_left_ms.max(1)))).await;
                }
                GameAction::Silent => {
                    if !said_silent {
                        warn!(game = id, "{what}: no difference found at our turn — we were wrong to dispute; staying silent");
                        said_silent = true;
                    }
                    tokio::time::sleep(poll * 5).await;
                }
            }
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
                    info!(verified = w, head, lag = head - w, records_per_s = format!("{rate:.1}"),
                          "catching up: batch {w} of {head} verified ({} behind, {rate:.1} records/s)", head - w);
                }
            }
            if let Ok(a) = self.chain.account(&self.me).await {
                self.metrics.balance.set(a.free as i64);
            }
        }
    }
}
