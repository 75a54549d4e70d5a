//! The node's core, independent of the RPC transport: the model registry
//! with prepared programs, the mempool, the execution workers, the
//! committer, the batcher and the event hubs.
//!
//! ## Data flow of a submission
//! ```text
//! RPC task ── decode + check inputs ── admit (mempool permit, else BUSY)
//!    │
//!    ▼  crossbeam channel
//! worker thread (one per core): run the prepared program, encode outputs
//!    │
//!    ▼  crossbeam channel
//! committer thread: Store::accept for every queued request in turn
//!    │  (the acknowledgement point; docs/decisions/0003)
//!    ▼  oneshot
//! RPC task answers {request_id, status: pending, record, outputs}
//! ```
//! The batcher task seals the pending log when it holds `max_records`
//! records or `interval_ms` after the previous seal, posts each sealed batch
//! through the [`BatchPoster`], and publishes it to subscribers.
//!
//! ## Invariants
//! * A submission is answered with success only after `Store::accept`
//!   returned; any error before that leaves nothing in the store.
//! * The mempool never holds more than `mempool.capacity` admitted,
//!   unanswered submissions; beyond it the node answers `BUSY`.
//! * Store writes happen on two threads only: the committer (accepts) and
//!   the batcher (seals); the store serialises them.
//! * Shutdown stops admitting, lets every admitted submission finish, then
//!   seals everything pending before the store closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender};
use prometheus::Histogram;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot, watch};
use verinfer_prover::ProverError;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::program::Program;
use verinfer_rpc::error::{self as codes, ApiError};
use verinfer_rpc::tensor::{Encoding, WireTensor};
use verinfer_rpc::types::*;
use verinfer_state::batch::{BatchBody, BatchHeader, Inclusion, SealedRecords};
use verinfer_state::hash::Hash32;
use verinfer_state::model::{MAX_NAME_BYTES, ModelEntry, TensorSpec};
use verinfer_state::receipt::Receipt;
use verinfer_state::record::InferenceRecord;
use verinfer_state::store::{PreparedAccept, RocksStore, SealParams, StoreError, StoreOptions, Submission};
use verinfer_state::tensor::{DType, Tensor, checked_numel};

use crate::config::NodeConfig;
use crate::exec::{Executor, Prepared};
use crate::metrics::Metrics;

/// Milliseconds since the Unix epoch (the node's clock; the state crate
/// never reads one).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where sealed batches go: the settlement layer. The embedded settlement
/// state machine implements this; until then [`StubPoster`] records what it
/// is given.
pub trait BatchPoster: Send + Sync + 'static {
    /// The newest batch number the settlement layer already holds, if it
    /// keeps a durable record (`None`: it does not; the node then posts only
    /// batches sealed from now on). At startup the node re-posts every
    /// stored batch after it, so a crash between seal and post loses no post.
    fn posted_head(&self) -> Option<u64>;

    /// Posts one sealed batch: its header, and its body (for data
    /// availability) if the settlement layer takes one. `body` assembles
    /// the body from the store (every record's inputs), so a poster that
    /// does not need it does not pay for it. Batches are posted in order,
    /// each exactly once per successful call; an error makes the node retry
    /// the same batch later.
    fn post(&self, header: &BatchHeader, body: &dyn Fn() -> Result<BatchBody, String>) -> Result<(), String>;
}

/// An in-process poster that records posted headers (until the embedded
/// settlement plugs in).
#[derive(Debug, Default)]
pub struct StubPoster {
    headers: Mutex<Vec<BatchHeader>>,
}

impl StubPoster {
    /// A new, empty stub.
    pub fn new() -> Self {
        Self::default()
    }

    /// The headers posted so far, in order.
    pub fn posted(&self) -> Vec<BatchHeader> {
        self.headers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl BatchPoster for StubPoster {
    fn posted_head(&self) -> Option<u64> {
        None
    }

    fn post(&self, header: &BatchHeader, _body: &dyn Fn() -> Result<BatchBody, String>) -> Result<(), String> {
        self.headers.lock().unwrap_or_else(PoisonError::into_inner).push(*header);
        Ok(())
    }
}

/// A registered model with its prepared program.
pub struct LoadedModel {
    /// The registry entry.
    pub entry: ModelEntry,
    /// Program nodes.
    pub nodes: u64,
    /// The program, prepared by the executor.
    pub prepared: Arc<dyn Prepared>,
    /// The program itself (the defender's prover and fault injection run
    /// the reference definition on it).
    pub program: Arc<Program>,
    /// Bytes of the program's encoding (what `exec.max_total_model_mib`
    /// counts).
    pub program_bytes: u64,
    exec_hist: Histogram,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("model_id", &self.entry.model_id).field("name", &self.entry.name).finish()
    }
}

impl LoadedModel {
    /// The model's info as the API shows it.
    pub fn info(&self, already_registered: bool) -> ModelInfo {
        ModelInfo {
            model_id: self.entry.model_id,
            name: self.entry.name.clone(),
            program_root: self.entry.program_root,
            inputs: self.entry.inputs.clone(),
            outputs: self.entry.outputs.clone(),
            registered_at_ms: self.entry.registered_at_ms,
            nodes: self.nodes,
            already_registered,
        }
    }
}

struct Job {
    model: Arc<LoadedModel>,
    inputs: Vec<Tensor>,
    encoding: Encoding,
    accepted_at_ms: u64,
    reply: oneshot::Sender<Result<SubmitResponse, ApiError>>,
    /// The submission's mempool slot: held until it is answered, even when
    /// its caller went away (the slot then still bounds the queued work).
    permit: OwnedSemaphorePermit,
}

enum WorkMsg {
    Run(Job),
    Stop,
}

// One `Accept` per request, moved once into the channel: boxing it would
// only add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum CommitMsg {
    Accept {
        sub: PreparedAccept,
        outputs: Vec<WireTensor>,
        reply: oneshot::Sender<Result<SubmitResponse, ApiError>>,
        permit: OwnedSemaphorePermit,
    },
    Stop,
}

/// Batch and status events for subscribers.
#[derive(Debug)]
pub struct Events {
    /// Every sealed batch.
    pub batches: broadcast::Sender<BatchSummary>,
    watchers: Mutex<HashMap<Hash32, Vec<mpsc::UnboundedSender<Receipt>>>>,
}

impl Events {
    fn new() -> Self {
        Self { batches: broadcast::channel(1024).0, watchers: Mutex::new(HashMap::new()) }
    }

    /// Registers a watcher of `request_id`'s status changes.
    pub fn watch(&self, request_id: Hash32) -> mpsc::UnboundedReceiver<Receipt> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner).entry(request_id).or_default().push(tx);
        rx
    }

    /// Tells watchers of `receipt.request_id` about its new status (called by
    /// the batcher, and by the settlement layer for later transitions).
    pub fn notify_status(&self, receipt: &Receipt) {
        let mut w = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = w.get_mut(&receipt.request_id) {
            list.retain(|tx| tx.send(receipt.clone()).is_ok());
            if list.is_empty() {
                w.remove(&receipt.request_id);
            }
        }
    }

    /// Drops watchers whose subscriber went away.
    pub fn prune(&self, request_id: &Hash32) {
        let mut w = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = w.get_mut(request_id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                w.remove(request_id);
            }
        }
    }

    fn sealed(&self, batch: &SealedRecords) {
        let _ = self.batches.send(BatchSummary { hash: batch.header.hash(), header: batch.header });
        let w = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if w.is_empty() {
            return;
        }
        let ids: Vec<(u64, Hash32)> = batch
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| w.contains_key(&r.request_id))
            .map(|(i, r)| (i as u64, r.request_id))
            .collect();
        drop(w);
        for (i, id) in ids {
            if let Ok(proof) = batch.proof(i) {
                self.notify_status(&Receipt::batched(id, Inclusion { batch: batch.header.number, proof }));
            }
        }
    }
}

/// Throughput samples (accepted count over time).
#[derive(Debug, Default)]
struct Throughput {
    samples: std::collections::VecDeque<(std::time::Instant, u64)>,
}

/// The node's shared state.
pub struct Node {
    /// The store.
    pub store: Arc<RocksStore>,
    /// Configuration.
    pub cfg: NodeConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Subscribers' events.
    pub events: Events,
    models: RwLock<HashMap<Hash32, Arc<LoadedModel>>>,
    executor: Arc<dyn Executor>,
    mempool: Arc<Semaphore>,
    work_tx: Sender<WorkMsg>,
    commit_tx: Sender<CommitMsg>,
    seal_now: Notify,
    shutting_down: AtomicBool,
    accepted: AtomicU64,
    rejected_busy: AtomicU64,
    /// Exponential moving average of execution time, µs.
    exec_ewma_us: AtomicU64,
    started: std::time::Instant,
    throughput: Mutex<Throughput>,
    workers: usize,
    faults: Option<crate::fault::FaultInjector>,
    compile_check: std::sync::OnceLock<Arc<dyn CompileCheck>>,
    /// Held by a registration that compiles: one at a time, so concurrent
    /// registrations cannot add up the memory each compile takes.
    register_lock: std::sync::Mutex<()>,
}

/// Compiles a model a second, independent way and returns that program
/// root; registration refuses a model whose roots differ (decision 0005:
/// tract folds constants with CPU-dependent kernels). `verinfer node` uses
/// a child process with tract forced to its generic kernels.
///
/// The node runs the check *before* its own compile, so a model whose
/// lowering would exhaust memory (tract materialises folded constants, e.g.
/// a `ConstantOfShape` of a constant 16 GiB shape) fails in the child, not
/// in the node.
pub trait CompileCheck: Send + Sync + 'static {
    /// The program root of `onnx` under `opts`, or why it could not be computed.
    fn program_root(&self, onnx: &[u8], opts: &LoadOptions) -> Result<Hash32, CompileCheckError>;
}

/// Why a [`CompileCheck`] gave no program root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileCheckError {
    /// The model itself was refused (the frontend failed on it, or its
    /// compile exceeded the check's memory limit), with the answer the
    /// in-process compile would give ([`model_error`]): the registration
    /// must not depend on which of the two compiles saw the problem first.
    #[error("{0}")]
    Model(ApiError),
    /// The check could not run (the child could not be started, crashed or
    /// printed nothing useful): `INTERNAL`, fail closed.
    #[error("{0}")]
    Failed(String),
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("datadir", &self.cfg.datadir).finish()
    }
}

/// Threads and tasks of a running node core, for shutdown.
#[derive(Debug)]
pub struct NodeTasks {
    workers: Vec<std::thread::JoinHandle<()>>,
    committer: Option<std::thread::JoinHandle<()>>,
    batcher: Option<tokio::task::JoinHandle<()>>,
    batcher_stop: watch::Sender<bool>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::internal(format!("store: {e}"))
}

/// Maps a frontend error to its API error.
pub fn model_error(e: ProverError) -> ApiError {
    match e {
        ProverError::UnsupportedOp { .. } => ApiError::new(codes::UNSUPPORTED_OP, e.to_string()),
        ProverError::UnsupportedDType { .. } | ProverError::OpDType { .. } => {
            ApiError::new(codes::UNSUPPORTED_OP, e.to_string())
        }
        ProverError::UnknownInput { .. } | ProverError::InputRank { .. } => {
            ApiError::new(codes::INVALID_MODEL, format!("input_shapes: {e}"))
        }
        // The prover's message tells a CLI user to pass `--shape`; over RPC
        // the shape goes in `input_shapes`.
        ProverError::SymbolicInput { model, input, shape } => ApiError::new(
            codes::INVALID_MODEL,
            format!(
                "input_shapes: model {model}: input {input:?} has symbolic shape {shape}; give a concrete shape of \
                 that rank in input_shapes, e.g. {{{input:?}: [1, 16]}}"
            ),
        ),
        ProverError::ResourceLimit { .. } => {
            ApiError::new(codes::INVALID_MODEL, format!("model: {e} (the node's exec.max_model_mib)"))
        }
        ProverError::ComputeLimit { .. } => {
            ApiError::new(codes::INVALID_MODEL, format!("model: {e} (the node's exec.max_model_msteps)"))
        }
        ProverError::TraceLimit { .. } => {
            ApiError::new(codes::INVALID_MODEL, format!("model: {e} (the node's exec.max_trace_mib)"))
        }
        ProverError::FoldLimit { .. } => {
            ApiError::new(codes::INVALID_MODEL, format!("model: {e} (the node's exec.max_fold_steps)"))
        }
        _ => ApiError::new(codes::INVALID_MODEL, e.to_string()),
    }
}

/// Bytes a response needs beyond its output tensors (record, ids, status,
/// JSON framing), with room to spare.
pub(crate) const RESPONSE_OVERHEAD: u64 = 4096;

/// Characters of the standard (padded) base64 of `bytes` bytes.
pub(crate) fn b64_len(bytes: u64) -> u64 {
    bytes.div_ceil(3).saturating_mul(4)
}

/// The most bytes `outputs` can take in an `infer_submit` response with
/// `encoding`: base64 is exact; JSON counts the longest decimal an element
/// of the dtype can print as (`-1.17549435e-38` for f32) plus a comma.
pub fn worst_case_output_bytes(outputs: &[TensorSpec], encoding: Encoding) -> u64 {
    outputs
        .iter()
        .map(|o| worst_case_tensor_bytes(o.dtype, &o.shape, encoding))
        .fold(RESPONSE_OVERHEAD, u64::saturating_add)
}

/// The most bytes one tensor can take on the wire in `encoding` (see
/// [`worst_case_output_bytes`]).
pub fn worst_case_tensor_bytes(dtype: DType, shape: &[u64], encoding: Encoding) -> u64 {
    let n = checked_numel(shape).unwrap_or(u64::MAX);
    let per = match encoding {
        Encoding::B64 => return b64_len(n.saturating_mul(dtype.size() as u64)),
        Encoding::Json => match dtype {
            DType::F32 => 16,
            DType::I64 | DType::U64 => 21,
            DType::I32 | DType::U32 => 12,
            DType::I16 | DType::U16 => 7,
            DType::I8 | DType::U8 => 5,
            DType::Bool => 6,
        },
    };
    n.saturating_mul(per)
}

fn fmt_shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Checks and decodes request inputs against a model's signature; every
/// error names the field.
pub fn decode_inputs(specs: &[TensorSpec], inputs: &[WireTensor]) -> Result<Vec<Tensor>, ApiError> {
    if inputs.len() != specs.len() {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::new(
            codes::INVALID_TENSOR,
            format!("inputs: the model takes {} inputs ({}), got {}", specs.len(), names.join(", "), inputs.len()),
        ));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (i, (w, spec)) in inputs.iter().zip(specs).enumerate() {
        let field = format!("inputs[{i}]");
        let dtype = w.parse_dtype(&field)?;
        if dtype != spec.dtype {
            return Err(ApiError::new(
                codes::INVALID_TENSOR,
                format!("{field}.dtype: expected {}, got {dtype} (input {:?})", spec.dtype, spec.name),
            ));
        }
        if w.shape != spec.shape {
            return Err(ApiError::new(
                codes::INVALID_TENSOR,
                format!(
                    "{field}.shape: expected {}, got {} (input {:?})",
                    fmt_shape(&spec.shape),
                    fmt_shape(&w.shape),
                    spec.name
                ),
            ));
        }
        out.push(w.decode_input(&field)?);
    }
    Ok(out)
}

impl Node {
    /// Opens the store, loads every registered model and starts the
    /// workers, the committer and the batcher (on the current tokio
    /// runtime).
    pub fn start(
        cfg: NodeConfig,
        executor: Arc<dyn Executor>,
        poster: Arc<dyn BatchPoster>,
    ) -> anyhow::Result<(Arc<Node>, NodeTasks)> {
        cfg.validate()?;
        let store = Self::open_store(&cfg)?;
        Self::start_on(cfg, store, executor, poster)
    }

    /// Creates the datadir and opens the store (so that the settlement
    /// host can share it before the core starts).
    pub fn open_store(cfg: &NodeConfig) -> anyhow::Result<Arc<RocksStore>> {
        std::fs::create_dir_all(&cfg.datadir)
            .map_err(|e| anyhow::anyhow!("creating datadir {}: {e}", cfg.datadir.display()))?;
        Ok(Arc::new(
            RocksStore::open_path(&cfg.datadir, StoreOptions::default())
                .map_err(|e| anyhow::anyhow!("opening store {}: {e}", cfg.datadir.display()))?,
        ))
    }

    /// Like [`Node::start`] on an already opened store.
    pub fn start_on(
        cfg: NodeConfig,
        store: Arc<RocksStore>,
        executor: Arc<dyn Executor>,
        poster: Arc<dyn BatchPoster>,
    ) -> anyhow::Result<(Arc<Node>, NodeTasks)> {
        cfg.validate()?;
        let faults = match &cfg.dev_options.inject_fault {
            Some(spec) => {
                let spec: crate::fault::FaultSpec = spec.parse().map_err(|e| anyhow::anyhow!("inject_fault: {e}"))?;
                tracing::warn!(
                    spec = ?spec,
                    "!!! FAULT INJECTION ACTIVE (dev only): this node deliberately returns and commits WRONG results !!!"
                );
                Some(crate::fault::FaultInjector::new(spec))
            }
            None => None,
        };
        let metrics = Metrics::new();
        let workers = cfg.exec.worker_count();
        let (work_tx, work_rx) = crossbeam_channel::unbounded::<WorkMsg>();
        let (commit_tx, commit_rx) = crossbeam_channel::unbounded::<CommitMsg>();
        let node = Arc::new(Node {
            store,
            metrics: metrics.clone(),
            events: Events::new(),
            models: RwLock::new(HashMap::new()),
            executor,
            mempool: Arc::new(Semaphore::new(cfg.mempool.capacity as usize)),
            work_tx,
            commit_tx,
            seal_now: Notify::new(),
            shutting_down: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            rejected_busy: AtomicU64::new(0),
            exec_ewma_us: AtomicU64::new(1000),
            started: std::time::Instant::now(),
            throughput: Mutex::new(Throughput::default()),
            workers,
            faults,
            cfg,
            compile_check: std::sync::OnceLock::new(),
            register_lock: std::sync::Mutex::new(()),
        });
        metrics.mempool_capacity.set(node.cfg.mempool.capacity as i64);
        node.load_models()?;
        let summary = (node.store.head(), node.store.pending_count());
        metrics.head.set(summary.0.map_or(0, |h| h.number) as i64);
        metrics.pending_records.set(summary.1 as i64);
        tracing::info!(
            datadir = %node.cfg.datadir.display(),
            head = summary.0.map_or(0, |h| h.number),
            pending = summary.1,
            next_sequence = node.store.next_sequence(),
            models = node.models.read().unwrap_or_else(PoisonError::into_inner).len(),
            executor = node.executor.name(),
            workers,
            "store opened"
        );

        let mut worker_handles = Vec::new();
        for i in 0..workers {
            let rx = work_rx.clone();
            let n = node.clone();
            worker_handles.push(
                std::thread::Builder::new()
                    .name(format!("exec-{i}"))
                    .spawn(move || n.worker_loop(rx))
                    .map_err(|e| anyhow::anyhow!("spawning worker: {e}"))?,
            );
        }
        let n = node.clone();
        let committer = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || n.committer_loop(commit_rx))
            .map_err(|e| anyhow::anyhow!("spawning committer: {e}"))?;
        let (batcher_stop, stop_rx) = watch::channel(false);
        let n = node.clone();
        let batcher = tokio::spawn(async move { n.batcher_loop(poster, stop_rx).await });
        let n = node.clone();
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                n.sample_throughput();
            }
        });
        Ok((
            node,
            NodeTasks {
                workers: worker_handles,
                committer: Some(committer),
                batcher: Some(batcher),
                batcher_stop,
                sampler: Some(sampler),
            },
        ))
    }

    fn load_models(&self) -> anyhow::Result<()> {
        let entries: Vec<ModelEntry> = self.store.models()?.collect::<Result<_, _>>()?;
        for entry in entries {
            let bytes = self
                .store
                .model_program(&entry.model_id)?
                .ok_or_else(|| anyhow::anyhow!("model {} has no stored program", entry.model_id))?;
            let program = Program::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("model {}: stored program: {e}", entry.model_id))?;
            if program.root() != entry.program_root {
                anyhow::bail!("model {}: stored program does not hash to its program root", entry.model_id);
            }
            // A model that no longer plans (a lower exec.max_model_mib or
            // exec.max_model_msteps than when it was registered) stays in
            // the store with its records; it is not served until the limits
            // allow it again. The node still starts.
            match self.prepare_model(entry.clone(), Arc::new(program), bytes.len() as u64) {
                Ok(m) => self.insert(m),
                Err(e) => {
                    tracing::error!(model_id = %entry.model_id, name = %entry.name, error = %e, "model not loaded")
                }
            }
        }
        Ok(())
    }

    /// Prepares a model for serving (within `exec.max_model_mib` and
    /// `exec.max_model_msteps`) without
    /// making it visible.
    fn prepare_model(
        &self,
        entry: ModelEntry,
        program: Arc<Program>,
        program_bytes: u64,
    ) -> Result<Arc<LoadedModel>, ProverError> {
        let nodes = program.nodes.len() as u64;
        let label = entry.model_id.to_hex()[..16].to_string();
        let exec_hist = self.metrics.execution.with_label_values(&[&label]);
        let prepared = self.executor.prepare_within(program.clone(), self.cfg.exec.limits())?;
        Ok(Arc::new(LoadedModel { entry, nodes, prepared, program, program_bytes, exec_hist }))
    }

    fn insert(&self, m: Arc<LoadedModel>) {
        self.models.write().unwrap_or_else(PoisonError::into_inner).insert(m.entry.model_id, m);
    }

    /// A loaded model.
    pub fn model(&self, id: &Hash32) -> Option<Arc<LoadedModel>> {
        self.models.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Every loaded model, by registration time then id.
    pub fn models(&self) -> Vec<Arc<LoadedModel>> {
        let mut v: Vec<_> = self.models.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        v.sort_by_key(|m| (m.entry.registered_at_ms, m.entry.model_id));
        v
    }

    /// Installs the registration guard (decision 0005); later calls are
    /// ignored. Without one, models are registered after one compile.
    pub fn set_compile_check(&self, check: Arc<dyn CompileCheck>) {
        let _ = self.compile_check.set(check);
    }

    /// Registers a model from its ONNX bytes (blocking: runs the frontend).
    pub fn register(
        &self,
        name: &str,
        onnx: &[u8],
        input_shapes: &std::collections::BTreeMap<String, Vec<u64>>,
    ) -> Result<ModelInfo, ApiError> {
        if name.len() > MAX_NAME_BYTES {
            return Err(ApiError::invalid(format!("name: longer than {MAX_NAME_BYTES} bytes")));
        }
        let opts = LoadOptions {
            name: if name.is_empty() { "model".into() } else { name.into() },
            shapes: input_shapes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            positional_shapes: vec![],
            constant_inputs: vec![],
        };
        // The same bytes with no shape that differs from the registered
        // program's: the same program (decision 0005), so answer without
        // compiling anything.
        if let Some(existing) = self.model(&verinfer_prover::frontend::model_id(onnx))
            && input_shapes.iter().all(|(k, v)| existing.entry.inputs.iter().any(|i| &i.name == k && &i.shape == v))
        {
            return Ok(existing.info(true));
        }
        let _one_at_a_time = self.register_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // The guard compiles first, in its child: a model that would exhaust
        // memory while being lowered takes the child down, not the node.
        let checked_root = match self.compile_check.get() {
            None => None,
            Some(check) => Some(check.program_root(onnx, &opts).map_err(|e| match e {
                CompileCheckError::Model(e) => e,
                // Fail closed: a model whose folding could not be
                // cross-checked is not registered.
                CompileCheckError::Failed(m) => {
                    ApiError::internal(format!("model: the constant-folding cross-check failed: {m}"))
                }
            })?),
        };
        let model = load_model(onnx, &opts).map_err(model_error)?;
        let program = model.program;
        if let Some(existing) = self.model(&model.model_id) {
            if existing.entry.program_root == model.program_root {
                return Ok(existing.info(true));
            }
            return Err(ApiError::new(
                codes::MODEL_CONFLICT,
                format!(
                    "model_id {}: already registered with program {}, these input shapes give {}",
                    model.model_id, existing.entry.program_root, model.program_root
                ),
            ));
        }
        if let Some(other) = checked_root
            && other != model.program_root
        {
            return Err(ApiError::new(
                codes::INVALID_MODEL,
                format!(
                    "model: constant folding of this model depends on the CPU (program root {} here, {} under \
                     tract's generic kernels), so other parties could not reproduce its program (docs/decisions/0005)",
                    model.program_root, other
                ),
            ));
        }
        let node_type = |n: u32| program.nodes.get(n as usize).map(|node| node.output.clone());
        let mut outputs = Vec::new();
        for o in &program.outputs {
            let t = node_type(o.node)
                .ok_or_else(|| ApiError::new(codes::INVALID_MODEL, format!("output {} has no node", o.name)))?;
            outputs.push(TensorSpec { name: o.name.clone(), dtype: t.dtype, shape: t.shape });
        }
        let entry = ModelEntry {
            model_id: model.model_id,
            name: opts.name.clone(),
            program_root: model.program_root,
            inputs: program
                .inputs
                .iter()
                .map(|i| TensorSpec { name: i.name.clone(), dtype: i.dtype, shape: i.shape.clone() })
                .collect(),
            outputs,
            registered_at_ms: now_ms(),
        };
        let bytes = program.to_bytes();
        // What every loaded model keeps (program, packed plan, workspaces)
        // grows with its program; bound the sum, since anyone may register.
        if let Some(limit) = self.cfg.exec.total_model_limit() {
            let held: u64 = self.models().iter().map(|m| m.program_bytes).sum();
            let total = held.saturating_add(bytes.len() as u64);
            if total > limit {
                return Err(ApiError::new(
                    codes::INVALID_MODEL,
                    format!(
                        "model: its program takes {} MiB, and the node's programs would take {} MiB, above the \
                         node's exec.max_total_model_mib ({})",
                        (bytes.len() as u64).div_ceil(1 << 20),
                        total.div_ceil(1 << 20),
                        limit >> 20
                    ),
                ));
            }
        }
        // Plan before saving: a model the node cannot serve must not be
        // stored, or every restart would try (and fail) to plan it again.
        let loaded = self.prepare_model(entry.clone(), Arc::new(program), bytes.len() as u64).map_err(model_error)?;
        let limit = u64::from(self.cfg.rpc.max_response_body_bytes);
        let need = worst_case_output_bytes(&entry.outputs, Encoding::B64);
        if need > limit {
            return Err(ApiError::new(
                codes::INVALID_MODEL,
                format!(
                    "model: its outputs take {need} bytes even as base64, above the node's \
                     rpc.max_response_body_bytes ({limit}), so no answer could carry them"
                ),
            ));
        }
        self.store.register_model(&entry, onnx, &bytes).map_err(|e| match e {
            StoreError::InvalidModel(m) => ApiError::new(codes::INVALID_MODEL, format!("model: {m}")),
            StoreError::ModelConflict { .. } => ApiError::new(codes::MODEL_CONFLICT, e.to_string()),
            e => store_err(e),
        })?;
        self.insert(loaded.clone());
        tracing::info!(model_id = %loaded.entry.model_id, name = %loaded.entry.name, program_root = %loaded.entry.program_root, nodes = loaded.nodes, "model registered");
        Ok(loaded.info(false))
    }

    /// Registers a model given as base64 (the RPC form).
    pub fn register_b64(&self, req: &RegisterModel) -> Result<ModelInfo, ApiError> {
        let onnx = base64::engine::general_purpose::STANDARD
            .decode(req.onnx_b64.as_bytes())
            .map_err(|e| ApiError::invalid(format!("onnx_b64: invalid base64 ({e})")))?;
        self.register(&req.name, &onnx, &req.input_shapes)
    }

    fn retry_hint_ms(&self) -> u64 {
        let depth = self.cfg.mempool.capacity as u64;
        let us = self.exec_ewma_us.load(Ordering::Relaxed).max(1);
        (depth * us / self.workers.max(1) as u64 / 1000).clamp(1, 5000)
    }

    /// Refuses new submissions from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Is the node shutting down?
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Admitted, unanswered submissions.
    pub fn queue_depth(&self) -> u64 {
        (self.cfg.mempool.capacity as u64).saturating_sub(self.mempool.available_permits() as u64)
    }

    /// Checks, admits, executes and accepts a submission.
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitResponse, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::new(
                codes::SHUTTING_DOWN,
                "the node is shutting down; submit to another node or retry later",
            ));
        }
        let model = self.model(&req.model_id).ok_or_else(|| {
            ApiError::new(codes::UNKNOWN_MODEL, format!("model_id: no model {} is registered", req.model_id))
        })?;
        // Outputs that could not be sent back must be refused before the
        // request is accepted: an accepted request whose answer is too big
        // would be committed while its caller got an error, and a retry
        // would commit it again.
        let limit = u64::from(self.cfg.rpc.max_response_body_bytes);
        let need = worst_case_output_bytes(&model.entry.outputs, req.output_encoding);
        if need > limit {
            return Err(ApiError::invalid(format!(
                "output_encoding: this model's outputs can take up to {need} bytes as {}, above the node's \
                 rpc.max_response_body_bytes ({limit}); ask for \"b64\"",
                if req.output_encoding == Encoding::Json { "JSON" } else { "base64" },
            )));
        }
        let inputs = decode_inputs(&model.entry.inputs, &req.inputs)?;
        let permit: OwnedSemaphorePermit = match self.mempool.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.rejected_busy.fetch_add(1, Ordering::Relaxed);
                self.metrics.rejected.with_label_values(&["busy"]).inc();
                return Err(ApiError::retry(
                    codes::BUSY,
                    format!("mempool full ({} submissions in flight); retry later", self.cfg.mempool.capacity),
                    self.retry_hint_ms(),
                ));
            }
        };
        self.metrics.mempool_depth.set(self.queue_depth() as i64);
        let (tx, rx) = oneshot::channel();
        let job = Job { model, inputs, encoding: req.output_encoding, accepted_at_ms: now_ms(), reply: tx, permit };
        if self.work_tx.send(WorkMsg::Run(job)).is_err() {
            return Err(ApiError::new(codes::SHUTTING_DOWN, "the node is shutting down"));
        }
        let r = rx.await.unwrap_or_else(|_| Err(ApiError::internal("the request was dropped before it was accepted")));
        self.metrics.mempool_depth.set(self.queue_depth() as i64);
        r
    }

    fn worker_loop(&self, rx: Receiver<WorkMsg>) {
        while let Ok(WorkMsg::Run(job)) = rx.recv() {
            // Execution has its own catch_unwind (for a precise error); this
            // one keeps the worker alive if anything after it panics (the
            // reply is dropped and the caller gets an internal error;
            // nothing is accepted).
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_job(job))).is_err() {
                tracing::error!("a request panicked in its worker after execution; it was not accepted");
            }
        }
    }

    fn run_job(&self, job: Job) {
        let Job { model, inputs, encoding, accepted_at_ms, reply, permit } = job;
        if reply.is_closed() {
            return; // the client went away before execution: nothing to accept.
        }
        let t0 = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.prepared.run(&inputs)));
        let dt = t0.elapsed();
        model.exec_hist.observe(dt.as_secs_f64());
        let us = dt.as_micros() as u64;
        let old = self.exec_ewma_us.load(Ordering::Relaxed);
        self.exec_ewma_us.store((old * 7 + us) / 8, Ordering::Relaxed);
        let mut outputs = match result {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = reply.send(Err(ApiError::new(codes::EXECUTION_FAILED, format!("execution: {e}"))));
                return;
            }
            Err(_) => {
                tracing::error!(model_id = %model.entry.model_id, "executor panicked");
                let _ = reply.send(Err(ApiError::new(codes::EXECUTION_FAILED, "execution: the executor panicked")));
                return;
            }
        };
        if let Some(inj) = &self.faults
            && inj.pick(&model.entry.name, &model.entry.model_id)
        {
            match self.inject(inj, &model, &inputs) {
                Ok(Some(o)) => outputs = o,
                Ok(None) => {}
                Err(e) => {
                    // Never accept a corrupted record whose fault is not
                    // durable: the defender could not defend it.
                    let _ = reply.send(Err(ApiError::internal(format!("fault injection: {e}"))));
                    return;
                }
            }
        }
        let wire: Vec<WireTensor> = outputs.iter().map(|t| WireTensor::encode(t, encoding)).collect();
        let sub = Submission { model_id: model.entry.model_id, inputs, outputs, accepted_at_ms };
        // Check, hash and encode here, in parallel across workers; the
        // committer only assigns the sequence and writes.
        let sub = match self.store.prepare_accept(sub) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                let _ = reply.send(Err(store_err(e)));
                return;
            }
        };
        if self.commit_tx.send(CommitMsg::Accept { sub, outputs: wire, reply, permit }).is_err() {
            // The committer is gone (shutdown): the reply is dropped and
            // the caller gets an internal error; nothing was accepted.
        }
    }

    /// Corrupts one result (dev fault injection) and stores its fault under
    /// the record's roots before the record is accepted.
    fn inject(
        &self,
        inj: &crate::fault::FaultInjector,
        model: &LoadedModel,
        inputs: &[Tensor],
    ) -> Result<Option<Vec<Tensor>>, String> {
        let Some(i) = inj.corrupt(&model.program, inputs)? else {
            tracing::warn!(model = %model.entry.name, "fault injection: the fault does not change the outputs; result left correct");
            return Ok(None);
        };
        let input_root = verinfer_state::record::tensors_root(inputs);
        let mut up = verinfer_state::store::SettlementUpdate::new();
        up.put(
            crate::fault::fault_key(&input_root, &i.output_root),
            borsh::to_vec(&i.fault).map_err(|e| e.to_string())?,
        );
        self.store.apply_settlement(up).map_err(|e| e.to_string())?;
        tracing::warn!(
            model = %model.entry.name,
            node = i.fault.node,
            element = i.fault.element,
            step = i.fault.step,
            xor = i.fault.xor,
            output_root = %i.output_root,
            "FAULT INJECTED: this result is deliberately wrong"
        );
        Ok(Some(i.outputs))
    }

    fn committer_loop(&self, rx: Receiver<CommitMsg>) {
        let max = self.cfg.batcher.max_records;
        let mut stop = false;
        while !stop {
            let Ok(first) = rx.recv() else { break };
            // Take everything queued behind it as one group.
            let mut group = vec![first];
            while group.len() < 1024 {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            for msg in group {
                match msg {
                    CommitMsg::Stop => stop = true,
                    CommitMsg::Accept { sub, outputs, reply, permit } => {
                        let r = self.store.accept_prepared(sub).map(|record: InferenceRecord| SubmitResponse {
                            request_id: record.request_id,
                            status: verinfer_state::receipt::Status::Pending,
                            record,
                            outputs,
                        });
                        match r {
                            Ok(resp) => {
                                self.accepted.fetch_add(1, Ordering::Relaxed);
                                self.metrics.accepted.inc();
                                let _ = reply.send(Ok(resp));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "accept failed");
                                let _ = reply.send(Err(store_err(e)));
                            }
                        }
                        // Answered: the mempool slot is free.
                        drop(permit);
                    }
                }
            }
            let pending = self.store.pending_count();
            self.metrics.pending_records.set(pending as i64);
            if pending >= max {
                self.seal_now.notify_one();
            }
        }
    }

    /// Seals one batch (at most `max_records`) if anything is pending.
    pub fn seal_once(&self) -> Result<Option<SealedRecords>, StoreError> {
        let t0 = std::time::Instant::now();
        let head_ts = self.store.head().map_or(0, |h| h.timestamp_ms);
        let params = SealParams {
            timestamp_ms: now_ms().max(head_ts),
            sequencer: self.cfg.sequencer_id,
            max_records: self.cfg.batcher.max_records,
        };
        let sealed = self.store.seal(&params)?;
        if let Some(b) = &sealed {
            self.metrics.seal_duration.observe(t0.elapsed().as_secs_f64());
            self.metrics.batches.inc();
            self.metrics.batch_records.observe(b.header.record_count as f64);
            self.metrics.head.set(b.header.number as i64);
            self.metrics.pending_records.set(self.store.pending_count() as i64);
            tracing::info!(
                batch = b.header.number,
                records = b.header.record_count,
                hash = %b.header.hash(),
                ms = t0.elapsed().as_millis() as u64,
                "batch sealed"
            );
        }
        Ok(sealed)
    }

    fn post_from(&self, poster: &dyn BatchPoster, next_to_post: &mut u64) {
        let head = self.store.head().map_or(0, |h| h.number);
        while *next_to_post <= head {
            let n = *next_to_post;
            let Ok(Some(h)) = self.store.header(n) else {
                tracing::error!(batch = n, "cannot read batch to post");
                return;
            };
            let body = || match self.store.body(n) {
                Ok(Some(b)) => Ok(b),
                Ok(None) => Err(format!("batch {n} has no body")),
                Err(e) => Err(format!("reading batch {n}'s body: {e}")),
            };
            if let Err(e) = poster.post(&h, &body) {
                tracing::warn!(batch = n, error = %e, "posting batch failed; will retry");
                return;
            }
            *next_to_post += 1;
        }
    }

    async fn batcher_loop(self: Arc<Self>, poster: Arc<dyn BatchPoster>, mut stop: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.cfg.batcher.interval_ms);
        let head = self.store.head().map_or(0, |h| h.number);
        let mut next_to_post = poster.posted_head().map_or(head, |p| p.min(head)) + 1;
        {
            let (n, p) = (self.clone(), poster.clone());
            let mut ntp = next_to_post;
            next_to_post = tokio::task::spawn_blocking(move || {
                n.post_from(&*p, &mut ntp);
                ntp
            })
            .await
            .unwrap_or(next_to_post);
        }
        let mut deadline = tokio::time::Instant::now() + interval;
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                _ = self.seal_now.notified() => false,
                r = stop.changed() => r.is_err() || *stop.borrow(),
            };
            let due = stopping || tokio::time::Instant::now() >= deadline;
            let max = self.cfg.batcher.max_records;
            let (n, p) = (self.clone(), poster.clone());
            let ntp = next_to_post;
            let res = tokio::task::spawn_blocking(move || {
                let mut ntp = ntp;
                let mut sealed_any = false;
                // Full batches whenever they are there; when due, also what
                // was pending at the start of this tick (not what arrives
                // while sealing, so a busy node does not seal continuously).
                let mut owed = if due { n.store.pending_count() } else { 0 };
                loop {
                    let pending = n.store.pending_count();
                    if pending == 0 || (pending < max && owed == 0) {
                        break;
                    }
                    match n.seal_once() {
                        Ok(Some(b)) => {
                            sealed_any = true;
                            owed = owed.saturating_sub(b.header.record_count);
                            n.events.sealed(&b);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "seal failed");
                            break;
                        }
                    }
                    n.post_from(&*p, &mut ntp);
                }
                n.post_from(&*p, &mut ntp);
                (ntp, sealed_any)
            })
            .await;
            if let Ok((ntp, _)) = res {
                next_to_post = ntp;
            }
            if due {
                deadline = tokio::time::Instant::now() + interval;
            }
            if stopping {
                // Seal everything, including what arrived during the last tick.
                let n = self.clone();
                let p = poster.clone();
                let mut ntp = next_to_post;
                let _ = tokio::task::spawn_blocking(move || {
                    while n.store.pending_count() > 0 {
                        match n.seal_once() {
                            Ok(Some(b)) => n.events.sealed(&b),
                            Ok(None) => break,
                            Err(e) => {
                                tracing::error!(error = %e, "final seal failed");
                                break;
                            }
                        }
                    }
                    n.post_from(&*p, &mut ntp);
                })
                .await;
                break;
            }
        }
    }

    fn sample_throughput(&self) {
        let mut t = self.throughput.lock().unwrap_or_else(PoisonError::into_inner);
        t.samples.push_back((std::time::Instant::now(), self.accepted.load(Ordering::Relaxed)));
        while t.samples.len() > 11 {
            t.samples.pop_front();
        }
    }

    /// Node statistics.
    pub fn stats(&self) -> Stats {
        let head = self.store.head().map_or(0, |h| h.number);
        let pending = self.store.pending_count();
        let next = self.store.next_sequence();
        let throughput_rps = {
            let t = self.throughput.lock().unwrap_or_else(PoisonError::into_inner);
            match (t.samples.front(), t.samples.back()) {
                (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
                _ => 0.0,
            }
        };
        Stats {
            head,
            batched_records: next - pending,
            pending,
            queue_depth: self.queue_depth(),
            queue_capacity: self.cfg.mempool.capacity as u64,
            models: self.models.read().unwrap_or_else(PoisonError::into_inner).len() as u64,
            accepted_since_start: self.accepted.load(Ordering::Relaxed),
            rejected_busy: self.rejected_busy.load(Ordering::Relaxed),
            throughput_rps,
            uptime_s: self.started.elapsed().as_secs(),
        }
    }

    /// Stops admitting, waits for admitted submissions (at most `grace`),
    /// stops the workers and the committer, then seals everything pending.
    pub async fn shutdown(self: &Arc<Self>, mut tasks: NodeTasks, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let cap = self.cfg.mempool.capacity;
        match tokio::time::timeout(grace, self.mempool.acquire_many(cap)).await {
            Ok(Ok(p)) => drop(p),
            _ => tracing::warn!(in_flight = self.queue_depth(), "submissions still in flight at shutdown"),
        }
        for _ in 0..tasks.workers.len() {
            let _ = self.work_tx.send(WorkMsg::Stop);
        }
        let workers = std::mem::take(&mut tasks.workers);
        let committer = tasks.committer.take();
        let commit_tx = self.commit_tx.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
            let _ = commit_tx.send(CommitMsg::Stop);
            if let Some(c) = committer {
                let _ = c.join();
            }
        })
        .await;
        let _ = tasks.batcher_stop.send(true);
        if let Some(b) = tasks.batcher.take() {
            let _ = b.await;
        }
        if let Some(s) = tasks.sampler.take() {
            s.abort();
            let _ = s.await;
        }
        tracing::info!(
            head = self.store.head().map_or(0, |h| h.number),
            pending = self.store.pending_count(),
            "node stopped"
        );
    }
}
