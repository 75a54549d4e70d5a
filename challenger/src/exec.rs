//! Re-execution: one prepared fast plan per program (bit-exact with the
//! canonical reference), workspaces pooled per plan, and the programs kept
//! for building a [`DisputeProver`] when a dispute opens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use verinfer_prover::Program;
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::fast::{Plan, PlanOptions, Workspace};
use verinfer_state::hash::Hash32;
use verinfer_state::tensor::Tensor;

use crate::error::{ChallengerError, Result};

/// A program ready to run.
#[derive(Debug)]
pub struct Prepared {
    /// The program (for dispute provers).
    pub program: Arc<Program>,
    plan: Plan,
    pool: Mutex<Vec<Workspace>>,
}

impl Prepared {
    /// Plans `program`, refusing it if its plan would need more than
    /// `opts.memory_limit` bytes (`ProverError::ResourceLimit`) or one run
    /// more than `opts.step_limit` fold steps (`ProverError::ComputeLimit`):
    /// the program comes from the node, which may be the party being
    /// checked.
    pub fn new(program: Program, opts: &PlanOptions) -> Result<Self> {
        let plan = Plan::with_options(&program, opts)?;
        Ok(Self { program: Arc::new(program), plan, pool: Mutex::new(Vec::new()) })
    }

    /// The output root of the program on `inputs` (blocking; call from a
    /// blocking thread).
    pub fn output_root(&self, inputs: &[Tensor]) -> Result<Hash32> {
        // A poisoned pool only means another run panicked while holding the
        // lock; the Vec is still valid.
        let ws = self.pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut ws = ws.unwrap_or_else(|| self.plan.workspace());
        let r = self.plan.run_in(&mut ws, inputs).map(|e| e.output_root);
        self.pool.lock().unwrap_or_else(PoisonError::into_inner).push(ws);
        Ok(r?)
    }

    /// The honest dispute prover for `inputs` (its trace is built lazily,
    /// on the first move that needs it).
    pub fn prover(&self, inputs: Vec<Tensor>) -> Result<DisputeProver> {
        Ok(DisputeProver::new((*self.program).clone(), inputs, None)?)
    }
}

/// Prepared programs by program root.
#[derive(Debug, Default)]
pub struct ModelCache {
    by_root: Mutex<HashMap<Hash32, Arc<Prepared>>>,
    /// How programs are planned: plans above `memory_limit` bytes
    /// (`Config::max_model_mib`) or `step_limit` steps per run
    /// (`Config::max_model_msteps`) are refused.
    pub plan_options: PlanOptions,
}

impl ModelCache {
    /// An empty cache that refuses plans above `memory_limit` bytes or
    /// `step_limit` fold steps per run.
    pub fn new(memory_limit: Option<u64>, step_limit: Option<u64>) -> Self {
        Self { by_root: Mutex::default(), plan_options: PlanOptions { memory_limit, step_limit, ..Default::default() } }
    }

    /// An empty cache that plans with `plan_options` (limits included).
    pub fn with_options(plan_options: PlanOptions) -> Self {
        Self { by_root: Mutex::default(), plan_options }
    }

    /// Plans `program` within this cache's limits.
    pub fn plan(&self, program: Program) -> Result<Prepared> {
        Prepared::new(program, &self.plan_options)
    }

    /// The prepared program for `root`, if cached.
    pub fn get(&self, root: &Hash32) -> Option<Arc<Prepared>> {
        self.by_root.lock().unwrap_or_else(PoisonError::into_inner).get(root).cloned()
    }

    /// Caches `program` (whose root the caller checked is `root`).
    pub fn insert(&self, root: Hash32, p: Arc<Prepared>) {
        self.by_root.lock().unwrap_or_else(PoisonError::into_inner).insert(root, p);
    }

    /// Loads every `DIR/*/model.onnx` whose input shapes are concrete and
    /// caches its program (the fallback when a node does not serve
    /// `model_program`). Models that fail to load are skipped with a warning.
    pub fn load_dir(&self, dir: &Path) -> Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path().join("model.onnx");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let opts =
                verinfer_prover::frontend::LoadOptions { name: path.display().to_string(), ..Default::default() };
            match verinfer_prover::load_model(&bytes, &opts) {
                Ok(m) => {
                    let root = m.program_root;
                    let p = match self.plan(m.program) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(model = %path.display(), error = %e, "local model skipped");
                            continue;
                        }
                    };
                    self.insert(root, Arc::new(p));
                    tracing::info!(model = %path.display(), program_root = %root, "local model loaded");
                    n += 1;
                }
                Err(e) => tracing::warn!(model = %path.display(), error = %e, "local model skipped"),
            }
        }
        if n == 0 {
            return Err(ChallengerError::Config(format!("{}: no loadable */model.onnx", dir.display())));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp() -> Program {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/mlp/model.onnx");
        let bytes = std::fs::read(path).expect("fixture");
        verinfer_prover::load_model(&bytes, &Default::default()).expect("loads").program
    }

    #[test]
    fn programs_above_the_step_or_memory_limit_are_refused() {
        let steps = mlp().steps().expect("steps");
        let refused = ModelCache::new(None, Some(steps - 1)).plan(mlp()).expect_err("above the step limit");
        assert!(
            matches!(refused, ChallengerError::Prover(verinfer_prover::ProverError::ComputeLimit { .. })),
            "{refused}"
        );
        let refused = ModelCache::new(Some(1024), None).plan(mlp()).expect_err("above the memory limit");
        assert!(
            matches!(refused, ChallengerError::Prover(verinfer_prover::ProverError::ResourceLimit { .. })),
            "{refused}"
        );
        ModelCache::new(Some(64 << 20), Some(steps)).plan(mlp()).expect("within both");
    }
}
