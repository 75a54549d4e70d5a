//! Execution behind a small trait, so that the reference executor can be
//! swapped for the planned fast executor without touching the node.
//!
//! An [`Executor`] turns a [`Program`] into a [`Prepared`] program once per
//! model (the node caches it); a prepared program runs one request at a
//! time on whichever worker thread calls it. Every implementation must be
//! bit-identical to the reference semantics (`verinfer_prover::exec`).

use std::sync::{Arc, Mutex};

use verinfer_prover::ProverError;
use verinfer_prover::program::Program;
use verinfer_state::tensor::Tensor;

/// A program ready to run.
pub trait Prepared: Send + Sync + 'static {
    /// Runs the program on inputs already checked against its signature;
    /// returns the outputs in the program's output order.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ProverError>;
}

/// Prepares programs.
pub trait Executor: Send + Sync + 'static {
    /// A name for logs and metrics (`reference`, `planned`, …).
    fn name(&self) -> &'static str;
    /// Prepares `program` (compile, plan buffers, …).
    fn prepare(&self, program: Arc<Program>) -> Result<Arc<dyn Prepared>, ProverError>;
    /// Prepares `program`, or refuses it with
    /// [`ProverError::ResourceLimit`] if it would need more than
    /// `limits.memory` bytes (before allocating that memory), or with
    /// [`ProverError::ComputeLimit`] if one inference takes more than
    /// `limits.steps` fold steps. The node calls this with its
    /// `exec.max_model_mib` and `exec.max_model_msteps`. The default refuses
    /// any value (input or node output) above the memory limit; executors
    /// that plan buffers also bound the plan.
    fn prepare_within(&self, program: Arc<Program>, limits: Limits) -> Result<Arc<dyn Prepared>, ProverError> {
        if limits != Limits::default() {
            program.validate()?;
        }
        program.check_dispute(limits.trace, limits.fold)?;
        if let Some(limit) = limits.memory {
            program.check_value_bytes(limit)?;
        }
        if let Some(limit) = limits.steps {
            program.check_steps(limit)?;
        }
        self.prepare(program)
    }
}

/// What a node will prepare ([`Executor::prepare_within`]); `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one value, or of a plan.
    pub memory: Option<u64>,
    /// Fold steps of one inference ([`Program::steps`]).
    pub steps: Option<u64>,
    /// Bytes of all node outputs, what a dispute holds
    /// ([`Program::trace_bytes`]).
    pub trace: Option<u64>,
    /// Steps of one output element's fold, whose states a dispute holds.
    pub fold: Option<u64>,
}

/// The reference executor (`verinfer_prover::exec::execute`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceExecutor;

#[derive(Debug)]
struct ReferencePrepared(Arc<Program>);

impl Prepared for ReferencePrepared {
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ProverError> {
        verinfer_prover::exec::execute(&self.0, inputs).map(|e| e.outputs)
    }
}

impl Executor for ReferenceExecutor {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn prepare(&self, program: Arc<Program>) -> Result<Arc<dyn Prepared>, ProverError> {
        Ok(Arc::new(ReferencePrepared(program)))
    }
}

/// The planned fast executor (`verinfer_prover::fast::Plan`): SIMD kernels
/// with exactly the reference's bits (`docs/performance.md`). One plan per
/// model; each concurrent run borrows a workspace from a small pool, so
/// workers never allocate the arena per request and never share one.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastExecutor;

struct FastPrepared {
    plan: verinfer_prover::fast::Plan,
    pool: Mutex<Vec<verinfer_prover::fast::Workspace>>,
}

impl std::fmt::Debug for FastPrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPrepared").field("isa", &self.plan.isa()).finish_non_exhaustive()
    }
}

impl Prepared for FastPrepared {
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ProverError> {
        // A poisoned pool only means another run panicked while holding the
        // lock; the Vec itself is still valid.
        let ws = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut ws = ws.unwrap_or_else(|| self.plan.workspace());
        let out = self.plan.infer_in(&mut ws, inputs);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(ws);
        out
    }
}

impl Executor for FastExecutor {
    fn name(&self) -> &'static str {
        "fast"
    }

    fn prepare(&self, program: Arc<Program>) -> Result<Arc<dyn Prepared>, ProverError> {
        self.prepare_within(program, Limits::default())
    }

    fn prepare_within(&self, program: Arc<Program>, limits: Limits) -> Result<Arc<dyn Prepared>, ProverError> {
        let opts = verinfer_prover::fast::PlanOptions {
            memory_limit: limits.memory,
            step_limit: limits.steps,
            trace_limit: limits.trace,
            fold_limit: limits.fold,
            ..Default::default()
        };
        let plan = verinfer_prover::fast::Plan::with_options(&program, &opts)?;
        Ok(Arc::new(FastPrepared { plan, pool: Mutex::new(Vec::new()) }))
    }
}
