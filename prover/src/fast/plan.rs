//! The planned executor: plan a [`Program`] once, run it many times.
//!
//! ## Planning ([`Plan::new`])
//! * Every node gets a kernel: a fast kernel where one exists for its op,
//!   dtypes and layout, else the reference [`ops::exec_node`] (fallback).
//!   Constant operands of GEMM-like nodes are packed once, here.
//! * **Plain schedule**: element-wise nodes that only post-process a GEMM or
//!   convolution result (single consumer, same shape, a vector form, an
//!   operand that is a scalar, per-row, per-lane or same-shape value) are
//!   fused into that producer's epilogue; the fused step runs at the
//!   position of the chain's last node. Each fused op computes exactly the
//!   node's definition on the same values, so outputs are unchanged; only
//!   the intermediate tensors are never written.
//! * **Traced schedule**: one step per node, every node output materialised
//!   and its root taken (the trace needs all of them).
//! * **Memory** (per schedule): f32 values live in one arena; offsets are
//!   assigned by liveness (a value's slot is reused once its last reader
//!   has run), `Reshape` of an arena value is an alias (no copy); non-f32
//!   values (indices, masks) live in per-node slots. Scratch (packing,
//!   staging) is one buffer sized for the hungriest kernel.
//!
//! ## Running ([`Plan::run`], [`Plan::run_traced`])
//! The arena, scratch and slots are allocated once per [`Workspace`]; the
//! node loop allocates nothing except in fallback nodes (which build
//! reference `Tensor`s) and, in traced mode, inside the tensor-root hasher.
//! Results are returned as an [`Execution`] with the same roots the
//! reference executor reports, and in traced mode the [`Trace`].
//!
//! Requests are never batched together, so a request's bits cannot depend
//! on other requests (batch invariance holds trivially).
#![deny(unsafe_code)]

use std::borrow::Cow;

use verinfer_state::hash::Hash32;
use verinfer_state::tensor::{DType, Tensor, tensor_list_root, tensor_root};

use super::conv::{ConvKernel, MAX_EP, PoolKernel};
use super::einsum::EinsumKernel;
use super::elementwise::{self, BinGeom, VBinary, VUnary};
use super::gemm::{EpArg, EpOp};
use super::reduce::{self, GroupTable};
use super::{Isa, Kernels};
use crate::error::ProverError;
use crate::exec::Execution;
use crate::ops::{self, layout};
use crate::program::{Node, Op, Program, TensorInfo, ValueRef, ValueType};
use crate::trace::Trace;

/// Planning options.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Kernel family; `None`: `VERINFER_ISA` or the best supported.
    pub isa: Option<Isa>,
    /// Fuse element-wise epilogues in the plain schedule.
    pub fuse: bool,
    /// The program's root, if the caller has it (else computed).
    pub program_root: Option<Hash32>,
    /// Refuse (with [`ProverError::ResourceLimit`]) a program with a value
    /// larger than this many bytes, or whose plan (packed constants, arena
    /// and scratch of one workspace) would be. Checked before the large
    /// allocations, so a node can plan a program someone else chose without
    /// aborting on an allocation failure. `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Refuse (with [`ProverError::ComputeLimit`]) a program whose
    /// inference takes more than this many fold steps
    /// ([`Program::steps`]). `None`: no limit.
    pub step_limit: Option<u64>,
    /// Refuse (with [`ProverError::TraceLimit`]) a program whose node
    /// outputs take more than this many bytes in all
    /// ([`Program::trace_bytes`]): what a dispute's prover holds. `None`:
    /// no limit.
    pub trace_limit: Option<u64>,
    /// Refuse (with [`ProverError::FoldLimit`]) a program with an output
    /// element that folds more than this many steps: a dispute holds the
    /// state after each. `None`: no limit.
    pub fold_limit: Option<u64>,
}

impl PlanOptions {
    /// A [`PlanOptions::step_limit`] from a setting in millions of steps
    /// where 0 means no limit (the node's `exec.max_model_msteps`, the
    /// challenger's `max_model_msteps`).
    pub fn step_limit_m(msteps: u64) -> Option<u64> {
        (msteps > 0).then(|| msteps.saturating_mul(1_000_000))
    }

    /// A [`PlanOptions::fold_limit`] from a setting in steps where 0 means
    /// no limit (the node's `exec.max_fold_steps`, the challenger's
    /// `max_fold_steps`).
    pub fn fold_limit_of(steps: u64) -> Option<u64> {
        (steps > 0).then_some(steps)
    }

    /// A [`PlanOptions::memory_limit`] from a setting in MiB where 0 means
    /// no limit (the node's `exec.max_model_mib`, the challenger's
    /// `max_model_mib`).
    pub fn memory_limit_mib(mib: u64) -> Option<u64> {
        (mib > 0).then(|| mib.saturating_mul(1 << 20))
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            isa: None,
            fuse: true,
            program_root: None,
            memory_limit: None,
            step_limit: None,
            trace_limit: None,
            fold_limit: None,
        }
    }
}

/// Summary of a plan, for logs and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Nodes.
    pub nodes: usize,
    /// Nodes run by a fast kernel (aliases included).
    pub fast_nodes: usize,
    /// Nodes run by the reference fallback, by op name.
    pub fallback_ops: Vec<String>,
    /// Nodes fused into a producer's epilogue (plain schedule).
    pub fused_nodes: usize,
    /// Arena bytes (plain, traced).
    pub arena_bytes: (usize, usize),
    /// Scratch bytes.
    pub scratch_bytes: usize,
    /// Bytes of packed constants.
    pub packed_bytes: usize,
}

#[derive(Debug, Clone)]
enum Kernel {
    Einsum(Box<EinsumKernel>),
    Conv(Box<ConvKernel>),
    Pool(Box<PoolKernel>),
    Unary(crate::program::UnaryOp),
    Binary(crate::program::BinaryOp, BinGeom),
    Reduce(crate::program::Reducer, GroupTable),
    Softmax(bool, GroupTable),
    RmsNorm(f32, GroupTable),
    /// f32 `Gather` along an axis: `outer × [indices] × inner` blocks.
    Gather {
        outer: usize,
        dim: usize,
        inner: usize,
    },
    /// Same storage as input 0 (reshape of an arena value).
    Alias,
    /// Copy of input 0 (reshape of an input or constant).
    Copy,
    /// The reference implementation.
    Fallback,
}

#[derive(Debug, Clone)]
struct Meta {
    name: String,
    op: Op,
    inputs: Vec<ValueRef>,
    out: ValueType,
    shape: Vec<usize>,
    numel: usize,
}

/// Where an epilogue operand's element for output element `e` is found.
#[derive(Debug, Clone)]
enum ArgSpec {
    Scalar,
    Row(Vec<usize>),
    Lane,
    Full,
}

#[derive(Debug, Clone)]
enum EpSpec {
    Unary(VUnary),
    MaxConst(f32),
    MinConst(f32),
    Binary { op: VBinary, src: ValueRef, arg: ArgSpec, acc_left: bool },
}

#[derive(Debug, Clone)]
struct Step {
    /// The node whose kernel runs.
    node: usize,
    /// The node whose output the step writes (end of a fused chain).
    out: usize,
    /// Fused ops (plain schedule only).
    ep: Vec<EpSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// f32 elements at this arena offset.
    Arena(usize),
    /// A reference tensor in slot `i`.
    Boxed(usize),
    /// Never materialised (fused away).
    Fused,
}

#[derive(Debug, Clone)]
struct Schedule {
    steps: Vec<Step>,
    loc: Vec<Loc>,
    arena_len: usize,
}

/// A planned program. Immutable once built; runs need a [`Workspace`]
/// (one is kept inside for [`Plan::run`]).
#[derive(Debug)]
pub struct Plan {
    kern: Kernels,
    program_root: Hash32,
    inputs: Vec<TensorInfo>,
    outputs: Vec<usize>,
    meta: Vec<Meta>,
    kernels: Vec<Kernel>,
    consts: Vec<Option<Tensor>>,
    plain: Schedule,
    traced: Schedule,
    scratch_len: usize,
    boxed_slots: usize,
    stats: PlanStats,
    ws: Option<Workspace>,
}

/// The mutable buffers of runs.
#[derive(Debug, Default)]
pub struct Workspace {
    arena: Vec<f32>,
    scratch: Vec<f32>,
    boxed: Vec<Option<Tensor>>,
}

fn bad(node: &str, why: String) -> ProverError {
    ProverError::InvalidProgram { node: node.to_string(), why }
}

/// Rounds up to 16 floats (64 bytes).
fn align(n: usize) -> usize {
    n.div_ceil(16) * 16
}

impl Plan {
    /// Plans `program` with default options.
    pub fn new(program: &Program) -> Result<Self, ProverError> {
        Self::with_options(program, &PlanOptions::default())
    }

    /// Plans `program`.
    pub fn with_options(program: &Program, opts: &PlanOptions) -> Result<Self, ProverError> {
        program.validate()?;
        let kern = match opts.isa {
            Some(isa) => Kernels::new(isa).ok_or_else(|| bad("-", format!("this CPU does not support {isa}")))?,
            None => Kernels::from_env().map_err(|e| bad("-", e))?,
        };
        let limit = opts.memory_limit.unwrap_or(u64::MAX);
        // Values first: kernel selection sizes tables by them.
        program.check_value_bytes(limit)?;
        if let Some(steps) = opts.step_limit {
            program.check_steps(steps)?;
        }
        program.check_dispute(opts.trace_limit, opts.fold_limit)?;
        let program_root = opts.program_root.unwrap_or_else(|| program.root());
        let n = program.nodes.len();
        let mut meta = Vec::with_capacity(n);
        for (i, node) in program.nodes.iter().enumerate() {
            let types = program.node_input_types(i);
            if types.len() != node.inputs.len() {
                return Err(bad(&node.name, "input type unavailable".into()));
            }
            ops::check_types(&node.op, &types, &node.output).map_err(|e| match e {
                ProverError::InvalidProgram { why, .. } => bad(&node.name, why),
                other => other,
            })?;
            let shape = node.output.shape_usize();
            meta.push(Meta {
                name: node.name.clone(),
                op: node.op.clone(),
                inputs: node.inputs.clone(),
                numel: node.output.numel() as usize,
                out: node.output.clone(),
                shape,
            });
        }
        let mut kernels = Vec::with_capacity(n);
        let mut need_const = vec![false; program.constants.len()];
        for (i, node) in program.nodes.iter().enumerate() {
            let k = choose_kernel(kern, program, i, node)?;
            // Constants read at run time (not packed into the kernel).
            for (slot, r) in node.inputs.iter().enumerate() {
                if let ValueRef::Const(c) = r {
                    let packed = match &k {
                        Kernel::Einsum(_) => true,
                        Kernel::Conv(_) => slot == 1,
                        _ => false,
                    };
                    if !packed {
                        need_const[*c as usize] = true;
                    }
                }
            }
            kernels.push(k);
        }
        let outputs: Vec<usize> = program.outputs.iter().map(|o| o.node as usize).collect();
        let traced = build_schedule(program, &meta, &kernels, &outputs, false, &mut need_const)?;
        let plain = build_schedule(program, &meta, &kernels, &outputs, opts.fuse, &mut need_const)?;
        let consts: Vec<Option<Tensor>> =
            program.constants.iter().zip(&need_const).map(|(c, &need)| need.then(|| c.clone())).collect();
        let mut scratch_len = 0;
        for (k, m) in kernels.iter().zip(&meta) {
            let s = match k {
                Kernel::Einsum(e) => e.scratch_len(),
                Kernel::Conv(c) => c.scratch_len(),
                Kernel::Pool(p) => p.scratch_len(),
                Kernel::Softmax(_, t) => t.offsets.len(),
                _ => 0,
            };
            let _ = m;
            scratch_len = scratch_len.max(s);
        }
        let boxed_slots = meta.len();
        let fused_nodes = plain.loc.iter().filter(|l| **l == Loc::Fused).count();
        let packed_bytes = kernels
            .iter()
            .map(|k| match k {
                Kernel::Einsum(e) => e.packed_len() * 4,
                Kernel::Conv(c) => c.packed_len() * 4,
                _ => 0,
            })
            .sum();
        let stats = PlanStats {
            nodes: n,
            fast_nodes: kernels.iter().filter(|k| !matches!(k, Kernel::Fallback)).count(),
            fallback_ops: kernels
                .iter()
                .zip(&meta)
                .filter(|(k, _)| matches!(k, Kernel::Fallback))
                .map(|(_, m)| m.op.name())
                .collect(),
            fused_nodes,
            arena_bytes: (plain.arena_len * 4, traced.arena_len * 4),
            scratch_bytes: scratch_len * 4,
            packed_bytes,
        };
        let workspace_bytes = (plain.arena_len.max(traced.arena_len) as u64 + scratch_len as u64 + 32) * 4;
        let plan_bytes = workspace_bytes.saturating_add(packed_bytes as u64);
        if plan_bytes > limit {
            let what = "the plan (packed constants, arena and scratch)".into();
            return Err(ProverError::ResourceLimit { what, bytes: plan_bytes, limit });
        }
        let mut plan = Self {
            kern,
            program_root,
            inputs: program.inputs.clone(),
            outputs,
            meta,
            kernels,
            consts,
            plain,
            traced,
            scratch_len,
            boxed_slots,
            stats,
            ws: None,
        };
        plan.ws = Some(plan.workspace());
        Ok(plan)
    }

    /// The kernel family in use.
    pub fn isa(&self) -> Isa {
        self.kern.isa()
    }

    /// The program root.
    pub fn program_root(&self) -> Hash32 {
        self.program_root
    }

    /// Planning summary.
    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    /// Fresh buffers for runs of this plan.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            arena: vec![0.0; self.plain.arena_len.max(self.traced.arena_len) + 16],
            scratch: vec![0.0; self.scratch_len + 16],
            boxed: vec![None; self.boxed_slots],
        }
    }

    /// Runs once (plain mode): outputs, input and output roots.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Execution, ProverError> {
        let mut ws = self.ws.take().unwrap_or_default();
        let r = self.run_in(&mut ws, inputs);
        self.ws = Some(ws);
        r
    }

    /// Runs once in traced mode: also every node root and the trace.
    pub fn run_traced(&mut self, inputs: &[Tensor]) -> Result<(Execution, Trace), ProverError> {
        let mut ws = self.ws.take().unwrap_or_default();
        let r = self.run_traced_in(&mut ws, inputs);
        self.ws = Some(ws);
        r
    }

    /// [`Plan::run`] with caller-owned buffers.
    pub fn run_in(&self, ws: &mut Workspace, inputs: &[Tensor]) -> Result<Execution, ProverError> {
        self.execute(ws, inputs, false).map(|(e, _)| e)
    }

    /// [`Plan::run_traced`] with caller-owned buffers.
    pub fn run_traced_in(&self, ws: &mut Workspace, inputs: &[Tensor]) -> Result<(Execution, Trace), ProverError> {
        let (ex, roots) = self.execute(ws, inputs, true)?;
        let roots = roots.expect("traced run has node roots");
        let trace = Trace::new(self.program_root, ex.input_root, roots);
        Ok((ex, trace))
    }

    /// Runs once (plain mode) and returns only the outputs: no roots. What
    /// benchmarks compare with other engines.
    pub fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ProverError> {
        let mut ws = self.ws.take().unwrap_or_default();
        let r = self.infer_in(&mut ws, inputs);
        self.ws = Some(ws);
        r
    }

    /// [`Plan::infer`] with caller-owned buffers.
    pub fn infer_in(&self, ws: &mut Workspace, inputs: &[Tensor]) -> Result<Vec<Tensor>, ProverError> {
        self.check_inputs(inputs)?;
        self.prepare(ws);
        self.run_steps(ws, inputs, &self.plain, None, None)?;
        self.outputs.iter().map(|&o| self.materialize(ws, &self.plain, o)).collect()
    }

    /// Runs the plain schedule and leaves the outputs in `ws` (read them with
    /// [`Plan::output_f32`]): no roots, no output tensors. The node loop
    /// allocates nothing unless the plan has fallback nodes.
    pub fn execute_in(&self, ws: &mut Workspace, inputs: &[Tensor]) -> Result<(), ProverError> {
        self.check_inputs(inputs)?;
        self.prepare(ws);
        self.run_steps(ws, inputs, &self.plain, None, None)
    }

    /// Output `i` of the last [`Plan::execute_in`] on `ws`, if it is f32.
    pub fn output_f32<'w>(&self, ws: &'w Workspace, i: usize) -> Option<&'w [f32]> {
        let node = *self.outputs.get(i)?;
        match self.plain.loc[node] {
            Loc::Arena(o) => ws.arena.get(o..o + self.meta[node].numel),
            Loc::Boxed(s) => ws.boxed.get(s)?.as_ref()?.as_f32(),
            Loc::Fused => None,
        }
    }

    /// Runs once (plain mode) timing every step: `(op names of the step's
    /// nodes, output node name, nanoseconds)` in step order.
    pub fn profile(&mut self, inputs: &[Tensor]) -> Result<Vec<(String, String, u128)>, ProverError> {
        let mut ws = self.ws.take().unwrap_or_default();
        self.check_inputs(inputs)?;
        self.prepare(&mut ws);
        let mut times = Vec::with_capacity(self.plain.steps.len());
        let r = self.run_steps(&mut ws, inputs, &self.plain, None, Some(&mut times));
        self.ws = Some(ws);
        r?;
        Ok(self
            .plain
            .steps
            .iter()
            .zip(times)
            .map(|(st, t)| {
                let mut ops = self.meta[st.node].op.name();
                for e in &st.ep {
                    ops.push('+');
                    ops.push_str(&match e {
                        EpSpec::Unary(u) => format!("{u:?}"),
                        EpSpec::MaxConst(_) => "Max".into(),
                        EpSpec::MinConst(_) => "Min".into(),
                        EpSpec::Binary { op, .. } => format!("{op:?}"),
                    });
                }
                (ops, self.meta[st.out].name.clone(), t)
            })
            .collect())
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), ProverError> {
        if !super::simd::fp_env_is_default() {
            return Err(bad(
                "-",
                "the floating-point environment flushes denormals or does not round to nearest".into(),
            ));
        }
        if inputs.len() != self.inputs.len() {
            return Err(ProverError::InputCount { expected: self.inputs.len(), got: inputs.len() });
        }
        for (i, (t, info)) in inputs.iter().zip(&self.inputs).enumerate() {
            let same_shape =
                t.shape().len() == info.shape.len() && t.shape().iter().zip(&info.shape).all(|(&a, &b)| a as u64 == b);
            if t.dtype() != info.dtype || !same_shape {
                return Err(ProverError::InputMismatch {
                    index: i,
                    name: info.name.clone(),
                    expected: format!("{}{:?}", info.dtype, info.shape),
                    got: format!("{}{:?}", t.dtype(), t.shape()),
                });
            }
        }
        Ok(())
    }

    fn prepare(&self, ws: &mut Workspace) {
        let need = self.plain.arena_len.max(self.traced.arena_len) + 16;
        if ws.arena.len() < need {
            ws.arena.resize(need, 0.0);
        }
        if ws.scratch.len() < self.scratch_len + 16 {
            ws.scratch.resize(self.scratch_len + 16, 0.0);
        }
        if ws.boxed.len() < self.boxed_slots {
            ws.boxed.resize(self.boxed_slots, None);
        }
    }

    fn execute(
        &self,
        ws: &mut Workspace,
        inputs: &[Tensor],
        traced: bool,
    ) -> Result<(Execution, Option<Vec<Hash32>>), ProverError> {
        self.check_inputs(inputs)?;
        self.prepare(ws);
        let sched = if traced { &self.traced } else { &self.plain };
        let mut roots = traced.then(|| vec![Hash32::ZERO; self.meta.len()]);
        self.run_steps(ws, inputs, sched, roots.as_deref_mut(), None)?;
        let outputs: Vec<Tensor> =
            self.outputs.iter().map(|&o| self.materialize(ws, sched, o)).collect::<Result<_, _>>()?;
        let input_roots: Vec<Hash32> = inputs.iter().map(Tensor::root).collect();
        let output_roots: Vec<Hash32> = match &roots {
            Some(r) => self.outputs.iter().map(|&o| r[o]).collect(),
            None => outputs.iter().map(Tensor::root).collect(),
        };
        Ok((
            Execution {
                input_root: tensor_list_root(&input_roots),
                input_roots,
                output_root: tensor_list_root(&output_roots),
                output_roots,
                outputs,
                node_roots: roots.clone(),
                node_outputs: None,
            },
            roots,
        ))
    }

    fn materialize(&self, ws: &Workspace, sched: &Schedule, node: usize) -> Result<Tensor, ProverError> {
        let m = &self.meta[node];
        Ok(match sched.loc[node] {
            Loc::Arena(o) => Tensor::from_f32(m.shape.clone(), ws.arena[o..o + m.numel].to_vec())?,
            Loc::Boxed(s) => ws.boxed[s].clone().ok_or_else(|| bad(&m.name, "output slot empty".into()))?,
            Loc::Fused => return Err(bad(&m.name, "output was fused away".into())),
        })
    }

    fn run_steps(
        &self,
        ws: &mut Workspace,
        inputs: &[Tensor],
        sched: &Schedule,
        mut roots: Option<&mut [Hash32]>,
        mut times: Option<&mut Vec<u128>>,
    ) -> Result<(), ProverError> {
        for step in &sched.steps {
            let t0 = times.as_ref().map(|_| std::time::Instant::now());
            self.run_step(ws, inputs, sched, step)?;
            if let (Some(t), Some(t0)) = (times.as_deref_mut(), t0) {
                t.push(t0.elapsed().as_nanos());
            }
            if let Some(r) = roots.as_deref_mut() {
                let m = &self.meta[step.out];
                r[step.out] = match sched.loc[step.out] {
                    Loc::Arena(o) => {
                        let v = &ws.arena[o..o + m.numel];
                        tensor_root(DType::F32, &m.out.shape, &f32_bytes(v))
                    }
                    Loc::Boxed(s) => ws.boxed[s].as_ref().map(Tensor::root).unwrap_or(Hash32::ZERO),
                    Loc::Fused => Hash32::ZERO,
                };
            }
        }
        Ok(())
    }

    fn run_step(
        &self,
        ws: &mut Workspace,
        inputs: &[Tensor],
        sched: &Schedule,
        step: &Step,
    ) -> Result<(), ProverError> {
        let i = step.node;
        let m = &self.meta[i];
        let kernel = &self.kernels[i];
        if matches!(kernel, Kernel::Fallback) {
            return self.run_fallback(ws, inputs, sched, i);
        }
        if matches!(kernel, Kernel::Alias) {
            return Ok(());
        }
        let Loc::Arena(out_off) = sched.loc[step.out] else {
            return Err(bad(&m.name, "fast kernel without an arena slot".into()));
        };
        let out_len = self.meta[step.out].numel;
        let Workspace { arena, scratch, boxed } = ws;
        let (out, view) = split_out(arena, out_off, out_len);
        let src = |r: ValueRef| -> Result<&[f32], ProverError> {
            let s: Option<&[f32]> = match r {
                ValueRef::Input(k) => inputs[k as usize].as_f32(),
                ValueRef::Const(k) => self.consts[k as usize].as_ref().and_then(Tensor::as_f32),
                ValueRef::Node(k) => {
                    let k = k as usize;
                    match sched.loc[k] {
                        Loc::Arena(o) => Some(view.get(o, self.meta[k].numel)),
                        Loc::Boxed(s) => boxed[s].as_ref().and_then(Tensor::as_f32),
                        Loc::Fused => None,
                    }
                }
            };
            s.ok_or_else(|| bad(&m.name, format!("operand {r:?} is not an available f32 value")))
        };
        let arg = |slot: usize| src(m.inputs[slot]);
        // Epilogue operands, resolved to slices.
        let mut ops: [EpOp<'_>; MAX_EP] = [EpOp::Unary(VUnary::Neg); MAX_EP];
        for (j, e) in step.ep.iter().enumerate() {
            ops[j] = match e {
                EpSpec::Unary(u) => EpOp::Unary(*u),
                EpSpec::MaxConst(c) => EpOp::MaxConst(*c),
                EpSpec::MinConst(c) => EpOp::MinConst(*c),
                EpSpec::Binary { op, src: s, arg, acc_left } => {
                    let vals = src(*s)?;
                    let arg = match arg {
                        ArgSpec::Scalar => EpArg::Scalar(vals[0]),
                        ArgSpec::Row(offs) => EpArg::Row { vals, offs },
                        ArgSpec::Lane => EpArg::Lane { vals },
                        ArgSpec::Full => EpArg::Full { vals },
                    };
                    EpOp::Binary { op: *op, arg, acc_left: *acc_left }
                }
            };
        }
        let ep = &ops[..step.ep.len()];
        match kernel {
            Kernel::Einsum(k) => {
                // Constant operands were packed at plan time and not kept.
                let packed =
                    |slot: usize| matches!(m.inputs[slot], ValueRef::Const(c) if self.consts[c as usize].is_none());
                let a = if packed(0) { &[][..] } else { arg(0)? };
                let b = if packed(1) { &[][..] } else { arg(1)? };
                k.run(a, b, out, scratch, ep)
            }
            Kernel::Conv(k) => {
                let bias = if m.inputs.len() > 2 { Some(arg(2)?) } else { None };
                k.run(arg(0)?, bias, out, scratch, ep)
            }
            Kernel::Pool(k) => k.run(arg(0)?, out, scratch),
            Kernel::Unary(op) => elementwise::unary(self.kern, *op, arg(0)?, out),
            Kernel::Binary(op, g) => elementwise::binary(self.kern, *op, g, arg(0)?, arg(1)?, out),
            Kernel::Reduce(r, t) => reduce::reduce_f32(self.kern, *r, t, arg(0)?, out),
            Kernel::Softmax(log, t) => reduce::softmax(self.kern, t, *log, arg(0)?, out, scratch),
            Kernel::RmsNorm(eps, t) => reduce::rms_norm(self.kern, t, *eps, arg(0)?, out),
            Kernel::Copy => out.copy_from_slice(arg(0)?),
            Kernel::Gather { outer, dim, inner } => {
                let x = arg(0)?;
                let idx: &Tensor = match m.inputs[1] {
                    ValueRef::Input(k) => &inputs[k as usize],
                    ValueRef::Const(k) => {
                        self.consts[k as usize].as_ref().ok_or_else(|| bad(&m.name, "indices not kept".into()))?
                    }
                    ValueRef::Node(k) => match sched.loc[k as usize] {
                        Loc::Boxed(s) => {
                            boxed[s].as_ref().ok_or_else(|| bad(&m.name, "indices not computed".into()))?
                        }
                        _ => return Err(bad(&m.name, "indices are not an integer tensor".into())),
                    },
                };
                gather(&m.name, x, idx, *outer, *dim, *inner, out)?;
            }
            Kernel::Alias | Kernel::Fallback => unreachable!(),
        }
        Ok(())
    }

    fn run_fallback(
        &self,
        ws: &mut Workspace,
        inputs: &[Tensor],
        sched: &Schedule,
        i: usize,
    ) -> Result<(), ProverError> {
        let m = &self.meta[i];
        let result = {
            let mut args: Vec<Cow<'_, Tensor>> = Vec::with_capacity(m.inputs.len());
            for &r in &m.inputs {
                args.push(match r {
                    ValueRef::Input(k) => Cow::Borrowed(&inputs[k as usize]),
                    ValueRef::Const(k) => Cow::Borrowed(
                        self.consts[k as usize]
                            .as_ref()
                            .ok_or_else(|| bad(&m.name, format!("constant {k} not kept")))?,
                    ),
                    ValueRef::Node(k) => {
                        let k = k as usize;
                        let km = &self.meta[k];
                        match sched.loc[k] {
                            Loc::Arena(o) => {
                                Cow::Owned(Tensor::from_f32(km.shape.clone(), ws.arena[o..o + km.numel].to_vec())?)
                            }
                            Loc::Boxed(s) => Cow::Borrowed(
                                ws.boxed[s].as_ref().ok_or_else(|| bad(&m.name, format!("node {k} not computed")))?,
                            ),
                            Loc::Fused => return Err(bad(&m.name, format!("node {k} was fused away"))),
                        }
                    }
                });
            }
            let refs: Vec<&Tensor> = args.iter().map(|c| c.as_ref()).collect();
            ops::exec_node(&m.op, &refs, &m.out).map_err(|e| match e {
                ProverError::Exec { why, op, .. } => ProverError::Exec { node: m.name.clone(), op, why },
                other => other,
            })?
        };
        if ValueType::of(&result) != m.out {
            return Err(bad(&m.name, format!("produced {:?}, declared {:?}", ValueType::of(&result), m.out)));
        }
        match sched.loc[i] {
            Loc::Arena(o) => {
                let v = result.as_f32().ok_or_else(|| bad(&m.name, "f32 slot for a non-f32 value".into()))?;
                ws.arena[o..o + m.numel].copy_from_slice(v);
            }
            Loc::Boxed(s) => ws.boxed[s] = Some(result),
            Loc::Fused => return Err(bad(&m.name, "fallback node fused".into())),
        }
        Ok(())
    }
}

/// `out[o, j, :] = x[o, idx[j], :]` (indices resolved as the reference
/// does: negative counts from the end, out of range is an error).
fn gather(
    name: &str,
    x: &[f32],
    idx: &Tensor,
    outer: usize,
    dim: usize,
    inner: usize,
    out: &mut [f32],
) -> Result<(), ProverError> {
    let nidx = idx.len();
    for j in 0..nidx {
        let s = idx.scalar(j as u64)?;
        let v = if s.dtype.is_signed_int() { s.as_i64() } else { s.bits as i64 };
        let k = if v < 0 { v + dim as i64 } else { v };
        if k < 0 || k >= dim as i64 {
            return Err(ProverError::Exec {
                node: name.to_string(),
                op: "Gather".into(),
                why: format!("index {v} out of range for axis of extent {dim}"),
            });
        }
        let k = k as usize;
        for o in 0..outer {
            let src = &x[(o * dim + k) * inner..][..inner];
            out[(o * nidx + j) * inner..][..inner].copy_from_slice(src);
        }
    }
    Ok(())
}

/// Little-endian bytes of f32 values (borrowed on little-endian targets).
fn f32_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        Cow::Borrowed(bytemuck::cast_slice(v))
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Read-only view of the arena around the output range.
struct View<'a> {
    left: &'a [f32],
    right: &'a [f32],
    out_start: usize,
    out_end: usize,
}

impl<'a> View<'a> {
    fn get(&self, off: usize, len: usize) -> &'a [f32] {
        if off + len <= self.out_start {
            &self.left[off..off + len]
        } else {
            assert!(off >= self.out_end, "operand overlaps the output slot");
            &self.right[off - self.out_end..off - self.out_end + len]
        }
    }
}

fn split_out(arena: &mut [f32], off: usize, len: usize) -> (&mut [f32], View<'_>) {
    let (left, rest) = arena.split_at_mut(off);
    let (out, right) = rest.split_at_mut(len);
    (out, View { left, right, out_start: off, out_end: off + len })
}

// ---------------------------------------------------------------------------
// Planning.

fn const_f32(program: &Program, r: ValueRef) -> Option<&[f32]> {
    match r {
        ValueRef::Const(c) => program.constants.get(c as usize).and_then(Tensor::as_f32),
        _ => None,
    }
}

fn choose_kernel(kern: Kernels, program: &Program, i: usize, node: &Node) -> Result<Kernel, ProverError> {
    let types = program.node_input_types(i);
    let out = &node.output;
    if let Op::Gather { axis } = node.op {
        let a = axis as usize;
        if out.dtype == DType::F32
            && types[0].dtype == DType::F32
            && types[1].dtype.is_int()
            && a < types[0].shape.len()
        {
            let sh: Vec<usize> = types[0].shape.iter().map(|&d| d as usize).collect();
            return Ok(Kernel::Gather {
                outer: sh[..a].iter().product(),
                dim: sh[a],
                inner: sh[a + 1..].iter().product(),
            });
        }
    }
    let all_f32 = out.dtype == DType::F32 && types.iter().all(|t| t.dtype == DType::F32);
    if !all_f32 {
        return Ok(Kernel::Fallback);
    }
    Ok(match &node.op {
        Op::Reshape => match node.inputs[0] {
            ValueRef::Node(_) => Kernel::Alias,
            _ => Kernel::Copy,
        },
        Op::EinSum(spec) => {
            let a = const_f32(program, node.inputs[0]);
            let b = const_f32(program, node.inputs[1]);
            match EinsumKernel::new(kern, spec, &types[0], &types[1], out, a, b)? {
                Some(k) => Kernel::Einsum(Box::new(k)),
                None => Kernel::Fallback,
            }
        }
        Op::Conv(spec) => {
            match const_f32(program, node.inputs[1]).and_then(|w| ConvKernel::new(kern, spec, &types, out, w)) {
                Some(k) => Kernel::Conv(Box::new(k)),
                None => Kernel::Fallback,
            }
        }
        Op::MaxPool(spec) | Op::SumPool(spec) => {
            let max = matches!(node.op, Op::MaxPool(_));
            match PoolKernel::new(kern, spec, &types[0], out, max) {
                Some(k) => Kernel::Pool(Box::new(k)),
                None => Kernel::Fallback,
            }
        }
        Op::Unary(u) => Kernel::Unary(*u),
        Op::Binary(b) if !b.is_comparison() => {
            Kernel::Binary(*b, BinGeom::new(&types[0].shape, &types[1].shape, &out.shape))
        }
        Op::Reduce { reducer, axes } if reduce::reduce_f32_supported(*reducer) => {
            Kernel::Reduce(*reducer, GroupTable::reduce(&types[0], axes, out.numel() as usize)?)
        }
        Op::Softmax { axes, log } => Kernel::Softmax(*log, GroupTable::normalize(&types[0], axes)?),
        Op::RmsNorm { axis, eps } => Kernel::RmsNorm(eps.get(), GroupTable::normalize(&types[0], &[*axis])?),
        _ => Kernel::Fallback,
    })
}

/// Readers of each node (with multiplicity) and whether it is an output.
fn consumers(program: &Program) -> Vec<Vec<usize>> {
    let mut c = vec![Vec::new(); program.nodes.len()];
    for (i, n) in program.nodes.iter().enumerate() {
        for r in &n.inputs {
            if let ValueRef::Node(k) = r {
                c[*k as usize].push(i);
            }
        }
    }
    c
}

/// Classifies the other operand of a fusable binary op against the
/// producer's output layout.
fn classify_arg(program: &Program, kernel: &Kernel, x: &ValueType, out: &ValueType) -> Option<ArgSpec> {
    if x.numel() == 1 {
        return Some(ArgSpec::Scalar);
    }
    if x.shape == out.shape {
        let ok = match kernel {
            Kernel::Einsum(k) => k.lanes_contiguous(),
            _ => true,
        };
        return ok.then_some(ArgSpec::Full);
    }
    let _ = program;
    let bs = layout::broadcast_strides(&x.shape, out.shape.len());
    let xidx = |e: u64| layout::broadcast_index(e, &out.shape, &bs) as usize;
    match kernel {
        Kernel::Einsum(k) => {
            if k.batch_count() != 1 {
                return None;
            }
            let (m, n, _) = k.mnk();
            let rows: Vec<usize> = k.out_row_offsets().iter().map(|&o| xidx(o as u64)).collect();
            let lanes: Vec<usize> = (0..n).map(|j| xidx(k.out_lane_offset(j) as u64)).collect();
            let _ = m;
            if lanes.iter().all(|&v| v == 0) {
                Some(ArgSpec::Row(rows))
            } else if rows.iter().all(|&v| v == 0)
                && k.lanes_contiguous()
                && lanes.iter().enumerate().all(|(j, &v)| v == j)
            {
                Some(ArgSpec::Lane)
            } else {
                None
            }
        }
        Kernel::Conv(k) => {
            // Varies along the channel axis only.
            let ca = k.channel_axis();
            if bs.iter().enumerate().all(|(a, &s)| a == ca || s == 0) {
                Some(ArgSpec::Row((0..k.out_channels()).map(|c| c * bs[ca] as usize).collect()))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn build_schedule(
    program: &Program,
    meta: &[Meta],
    kernels: &[Kernel],
    outputs: &[usize],
    fuse: bool,
    need_const: &mut [bool],
) -> Result<Schedule, ProverError> {
    let n = meta.len();
    let cons = consumers(program);
    let mut is_output = vec![false; n];
    for &o in outputs {
        is_output[o] = true;
    }
    // Fusion chains: producer → [fused nodes], the step runs at the last.
    let mut absorbed = vec![false; n];
    let mut chain_ep: Vec<Option<(usize, Vec<EpSpec>)>> = vec![None; n]; // at chain end: (producer, ops)
    if fuse {
        for p in 0..n {
            if !matches!(kernels[p], Kernel::Einsum(_) | Kernel::Conv(_)) {
                continue;
            }
            let mut cur = p;
            let mut ops: Vec<EpSpec> = Vec::new();
            let limit = MAX_EP - 2;
            while ops.len() < limit && !is_output[cur] && cons[cur].len() == 1 {
                let e = cons[cur][0];
                let em = &meta[e];
                if em.out.shape != meta[p].out.shape || em.out.dtype != DType::F32 {
                    break;
                }
                let spec = match &em.op {
                    Op::Unary(u) => match VUnary::of(*u) {
                        Some(v) => EpSpec::Unary(v),
                        None => break,
                    },
                    Op::Binary(b) => {
                        let Some(vb) = VBinary::of(*b) else { break };
                        let me = ValueRef::Node(cur as u32);
                        let (acc_left, other) = if em.inputs[0] == me && em.inputs[1] != me {
                            (true, em.inputs[1])
                        } else if em.inputs[1] == me && em.inputs[0] != me {
                            (false, em.inputs[0])
                        } else {
                            break;
                        };
                        let Some(xt) = program.value_type(other) else { break };
                        if xt.dtype != DType::F32 {
                            break;
                        }
                        // A value computed by a fallback step might be boxed;
                        // boxed f32 values are fine (resolved at run time).
                        let Some(arg) = classify_arg(program, &kernels[p], &xt, &meta[p].out) else { break };
                        // Max/min with a known constant: the cheaper exact form.
                        let known = match (&arg, other) {
                            (ArgSpec::Scalar, ValueRef::Const(c)) => {
                                program.constants[c as usize].as_f32().map(|v| v[0])
                            }
                            _ => None,
                        };
                        match (vb, known) {
                            (VBinary::Max, Some(c)) if !c.is_nan() && c.to_bits() != 0x8000_0000 => EpSpec::MaxConst(c),
                            (VBinary::Min, Some(c)) if !c.is_nan() && c.to_bits() != 0 => EpSpec::MinConst(c),
                            _ => EpSpec::Binary { op: vb, src: other, arg, acc_left },
                        }
                    }
                    _ => break,
                };
                ops.push(spec);
                absorbed[cur] = true;
                cur = e;
            }
            if cur != p {
                for op in &ops {
                    if let EpSpec::Binary { src: ValueRef::Const(c), .. } = op {
                        need_const[*c as usize] = true;
                    }
                }
                chain_ep[cur] = Some((p, ops));
            }
        }
    }
    let mut steps = Vec::with_capacity(n);
    for i in 0..n {
        if absorbed[i] {
            continue;
        }
        match chain_ep[i].take() {
            Some((p, ep)) => steps.push(Step { node: p, out: i, ep }),
            None => steps.push(Step { node: i, out: i, ep: Vec::new() }),
        }
    }
    // Storage: f32 values in the arena, others boxed; aliases share.
    let mut loc = vec![Loc::Fused; n];
    let mut storage: Vec<usize> = (0..n).collect(); // storage root of each node
    for i in 0..n {
        if let (Kernel::Alias, ValueRef::Node(k)) = (&kernels[i], meta[i].inputs[0]) {
            storage[i] = storage[k as usize];
        }
    }
    let materialized: Vec<bool> = (0..n).map(|i| !absorbed[i]).collect();
    // Step reading each storage last; step defining it.
    let mut last = vec![0usize; n];
    let mut def = vec![usize::MAX; n];
    for (s, st) in steps.iter().enumerate() {
        let mut reads: Vec<ValueRef> = meta[st.node].inputs.clone();
        for e in &st.ep {
            if let EpSpec::Binary { src, .. } = e {
                reads.push(*src);
            }
        }
        for r in reads {
            if let ValueRef::Node(k) = r {
                let root = storage[k as usize];
                last[root] = last[root].max(s);
            }
        }
        let root = storage[st.out];
        if def[root] == usize::MAX {
            def[root] = s;
        }
        last[root] = last[root].max(s);
    }
    for &o in outputs {
        last[storage[o]] = usize::MAX;
    }
    // Greedy best-fit allocation over the step order.
    let mut free: Vec<(usize, usize)> = Vec::new(); // (offset, len)
    let mut top = 0usize;
    let mut offset = vec![usize::MAX; n];
    let mut slot = 0usize;
    let mut by_last: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for root in 0..n {
        if storage[root] == root && def[root] != usize::MAX && last[root] != usize::MAX && last[root] < steps.len() {
            by_last[last[root]].push(root);
        }
    }
    for (s, st) in steps.iter().enumerate() {
        let root = storage[st.out];
        if root == st.out && materialized[root] {
            let m = &meta[root];
            if m.out.dtype == DType::F32 && !matches!(kernels[st.node], Kernel::Alias) {
                let len = align(m.numel.max(1));
                let pick = free.iter().enumerate().filter(|(_, b)| b.1 >= len).min_by_key(|(_, b)| b.1).map(|(j, _)| j);
                let off = match pick {
                    Some(j) => {
                        let (o, l) = free[j];
                        if l == len {
                            free.remove(j);
                        } else {
                            free[j] = (o + len, l - len);
                        }
                        o
                    }
                    None => {
                        let o = top;
                        top += len;
                        o
                    }
                };
                offset[root] = off;
                loc[root] = Loc::Arena(off);
            } else if !matches!(kernels[st.node], Kernel::Alias) {
                loc[root] = Loc::Boxed(slot);
                slot += 1;
            }
        }
        for &r in &by_last[s] {
            if offset[r] != usize::MAX {
                let len = align(meta[r].numel.max(1));
                free.push((offset[r], len));
                // Merge neighbours.
                free.sort_unstable();
                let mut merged: Vec<(usize, usize)> = Vec::with_capacity(free.len());
                for b in free.drain(..) {
                    match merged.last_mut() {
                        Some(l) if l.0 + l.1 == b.0 => l.1 += b.1,
                        _ => merged.push(b),
                    }
                }
                free = merged;
                // Shrink the top when the last block is free.
                if let Some(&(o, l)) = free.last()
                    && o + l == top
                {
                    top = o;
                    free.pop();
                }
            }
        }
    }
    let arena_len = {
        let mut mx = 0;
        for i in 0..n {
            if let Loc::Arena(o) = loc[i] {
                mx = mx.max(o + align(meta[i].numel.max(1)));
            }
        }
        mx
    };
    // Aliases take their root's location.
    for i in 0..n {
        if storage[i] != i && materialized[i] {
            loc[i] = loc[storage[i]];
        }
    }
    let _ = slot;
    Ok(Schedule { steps, loc, arena_len })
}
