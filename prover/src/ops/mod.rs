//! The canonical op set: every op's definition as a per-element fold, and
//! the scalar reference implementation.
//!
//! ## The fold API
//! Every output element `e` of every op is `value(e) = finish(s_K)` where
//! `s_0 = init(e)` and `s_{t+1} = step(e, t, s_t, operands)`. [`ElementFold`]
//! exposes exactly that: [`ElementFold::steps`], [`ElementFold::init`],
//! [`ElementFold::step`] and [`ElementFold::finish`]. A step obtains its
//! operands through an [`OperandReader`], so the same code defines *which*
//! elements a step reads and *what* it computes with them: the executor
//! passes a reader over whole tensors; the referee passes one that serves
//! Merkle-opened values and records which were asked for; a recording reader
//! lists "the operand indices of step t" for the dispute game. Maps (element-
//! wise and data-movement ops) are folds of one step.
//!
//! ## Reference implementation
//! [`exec_node`] evaluates a whole node. For the heavy ops it runs direct
//! loops written from the same definitions (the scalar functions are shared);
//! for the rest it evaluates the fold of every element. Tests check that the
//! direct loops equal the fold evaluation bit for bit.
//!
//! ## Invariants
//! * Every f32 an op writes (states included) has canonical NaN, except the
//!   ArgMax/ArgMin state, which carries the best input element as read.
//! * No op reassociates: folds are sequential in the documented order.
//! * A step reads only what its definition names; everything else about an
//!   element (padding, identity steps, counts) follows from the node's
//!   attributes and shapes.

pub mod conv;
pub mod einsum;
pub mod elementwise;
pub mod layout;
pub mod movement;
pub mod reduce;
pub mod resize;

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

use crate::error::ProverError;
use crate::program::{Op, ValueType};

/// The state of one element's fold: two 64-bit words whose meaning is per op
/// (f32 accumulators use the low 32 bits of a word).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct FoldState(pub [u64; 2]);

impl FoldState {
    /// A state holding one f32 in word 0.
    #[inline(always)]
    pub fn f32(v: f32) -> Self {
        Self([u64::from(v.to_bits()), 0])
    }
    /// Two f32s.
    #[inline(always)]
    pub fn f32x2(a: f32, b: f32) -> Self {
        Self([u64::from(a.to_bits()), u64::from(b.to_bits())])
    }
    /// Word 0 as f32.
    #[inline(always)]
    pub fn f0(&self) -> f32 {
        f32::from_bits(self.0[0] as u32)
    }
    /// Word 1 as f32.
    #[inline(always)]
    pub fn f1(&self) -> f32 {
        f32::from_bits(self.0[1] as u32)
    }
}

/// Supplies the operands a fold step asks for.
pub trait OperandReader {
    /// Element `index` (row-major) of the node's input `slot`.
    fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, ProverError>;
}

/// Reads from in-memory input tensors.
#[derive(Debug)]
pub struct TensorReader<'a> {
    /// The node's inputs, by slot.
    pub inputs: &'a [&'a Tensor],
}

impl OperandReader for TensorReader<'_> {
    #[inline]
    fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, ProverError> {
        let t = self.inputs.get(slot).ok_or_else(|| ProverError::Fold(format!("no input slot {slot}")))?;
        Ok(t.scalar(index)?)
    }
}

/// A reader that forwards to another and records every read: the operand
/// list of a step.
#[derive(Debug)]
pub struct RecordingReader<'a, R: OperandReader> {
    /// The underlying reader.
    pub inner: &'a mut R,
    /// `(slot, index, value)` in read order.
    pub reads: Vec<(usize, u64, Scalar)>,
}

impl<R: OperandReader> OperandReader for RecordingReader<'_, R> {
    fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, ProverError> {
        let v = self.inner.read(slot, index)?;
        self.reads.push((slot, index, v));
        Ok(v)
    }
}

/// One op's per-element fold.
pub trait ElementFold: Send + Sync {
    /// Number of steps `K` of element `e`.
    fn steps(&self, e: u64) -> u64;
    /// `s_0`.
    fn init(&self, _e: u64) -> FoldState {
        FoldState::default()
    }
    /// `s_{t+1}` from `s_t`, reading operands through `rd`.
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError>;
    /// The element's value from `s_K`.
    fn finish(&self, e: u64, s: FoldState) -> Scalar;
}

/// Evaluates element `e` through its fold.
pub fn eval_element(f: &dyn ElementFold, e: u64, rd: &mut dyn OperandReader) -> Result<Scalar, ProverError> {
    let mut s = f.init(e);
    for t in 0..f.steps(e) {
        s = f.step(e, t, s, rd)?;
    }
    Ok(f.finish(e, s))
}

/// Every state `s_0..s_K` of element `e` (the micro-step trace).
pub fn fold_states(f: &dyn ElementFold, e: u64, rd: &mut dyn OperandReader) -> Result<Vec<FoldState>, ProverError> {
    let k = f.steps(e);
    let mut out = Vec::with_capacity(k as usize + 1);
    let mut s = f.init(e);
    out.push(s);
    for t in 0..k {
        s = f.step(e, t, s, rd)?;
        out.push(s);
    }
    Ok(out)
}

/// The operands step `t` of element `e` reads, given the state before it.
pub fn step_operands(
    f: &dyn ElementFold,
    e: u64,
    t: u64,
    s: FoldState,
    rd: &mut dyn OperandReader,
) -> Result<Vec<(usize, u64, Scalar)>, ProverError> {
    struct Dyn<'a>(&'a mut dyn OperandReader);
    impl OperandReader for Dyn<'_> {
        fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, ProverError> {
            self.0.read(slot, index)
        }
    }
    let mut inner = Dyn(rd);
    let mut rec = RecordingReader { inner: &mut inner, reads: Vec::new() };
    f.step(e, t, s, &mut rec)?;
    Ok(rec.reads)
}

/// Evaluates every element of a node through its fold.
pub fn eval_generic(f: &dyn ElementFold, inputs: &[&Tensor], out: &ValueType) -> Result<Tensor, ProverError> {
    let n = out.numel() as usize;
    let mut rd = TensorReader { inputs };
    let mut data = TensorData::zeros(out.dtype, n);
    for e in 0..n {
        data.set_scalar(e, eval_element(f, e as u64, &mut rd)?);
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

fn need_inputs(op: &Op, inputs: &[ValueType], n: std::ops::RangeInclusive<usize>) -> Result<(), ProverError> {
    if n.contains(&inputs.len()) {
        Ok(())
    } else {
        Err(ProverError::InvalidProgram {
            node: op.name(),
            why: format!("expects {}..={} inputs, has {}", n.start(), n.end(), inputs.len()),
        })
    }
}

fn need_dtype(op: &Op, got: DType, want: DType) -> Result<(), ProverError> {
    if got == want { Ok(()) } else { Err(ProverError::OpDType { op: op.name(), dtype: got }) }
}

/// Checks that `op` is defined for these input types and gives `out`.
pub fn check_types(op: &Op, inputs: &[ValueType], out: &ValueType) -> Result<(), ProverError> {
    // Building the fold validates shapes and attributes.
    let _ = fold_for(op, inputs, out)?;
    let bad_out = |want: DType| -> Result<(), ProverError> {
        if out.dtype == want {
            Ok(())
        } else {
            Err(ProverError::InvalidProgram {
                node: op.name(),
                why: format!("output dtype {} (expected {want})", out.dtype),
            })
        }
    };
    match op {
        Op::Unary(u) => match elementwise::unary_out_dtype(*u, inputs[0].dtype) {
            Some(d) => bad_out(d),
            None => Err(ProverError::OpDType { op: op.name(), dtype: inputs[0].dtype }),
        },
        Op::Binary(b) => {
            if inputs[0].dtype != inputs[1].dtype {
                return Err(ProverError::InvalidProgram {
                    node: op.name(),
                    why: format!("input dtypes differ: {} and {}", inputs[0].dtype, inputs[1].dtype),
                });
            }
            match elementwise::binary_out_dtype(*b, inputs[0].dtype) {
                Some(d) => bad_out(d),
                None => Err(ProverError::OpDType { op: op.name(), dtype: inputs[0].dtype }),
            }
        }
        Op::Where => {
            need_dtype(op, inputs[0].dtype, DType::Bool)?;
            if inputs[1].dtype != inputs[2].dtype {
                return Err(ProverError::InvalidProgram { node: op.name(), why: "branch dtypes differ".into() });
            }
            bad_out(inputs[1].dtype)
        }
        Op::Cast => Ok(()),
        Op::MaxPool(_) if inputs.len() == 1 && inputs[0].dtype.is_int() => bad_out(inputs[0].dtype),
        Op::EinSum(_)
        | Op::Conv(_)
        | Op::Deconv(_)
        | Op::RmsNorm { .. }
        | Op::Softmax { .. }
        | Op::MaxPool(_)
        | Op::SumPool(_) => {
            for i in inputs {
                need_dtype(op, i.dtype, DType::F32)?;
            }
            bad_out(DType::F32)
        }
        Op::Reduce { reducer, .. } => match reduce::reduce_out_dtype(*reducer, inputs[0].dtype) {
            Some(d) => bad_out(d),
            None => Err(ProverError::OpDType { op: op.name(), dtype: inputs[0].dtype }),
        },
        Op::Resize(_) => {
            need_dtype(op, inputs[0].dtype, DType::F32)?;
            bad_out(DType::F32)
        }
        _ => Ok(()),
    }
}

/// The fold of a node with these input and output types.
pub fn fold_for(op: &Op, inputs: &[ValueType], out: &ValueType) -> Result<Box<dyn ElementFold>, ProverError> {
    use crate::program::BinaryOp;
    let _ = BinaryOp::Add;
    // Every type here may come from the other party of a dispute (a node
    // descriptor, a preimage's shape): bound them all before any shape
    // arithmetic, so strides and flat indices cannot overflow and no fold
    // allocates by a dim it was handed.
    for (what, t) in inputs.iter().map(|t| ("input", t)).chain([("output", out)]) {
        verinfer_state::tensor::checked_numel(&t.shape)
            .map_err(|e| ProverError::InvalidProgram { node: op.name(), why: format!("{what}: {e}") })?;
    }
    Ok(match op {
        Op::Unary(u) => {
            need_inputs(op, inputs, 1..=1)?;
            if inputs[0].shape != out.shape {
                return Err(ProverError::InvalidProgram { node: op.name(), why: "shape changes".into() });
            }
            Box::new(elementwise::UnaryFold { op: *u, out: out.dtype })
        }
        Op::Binary(b) => {
            need_inputs(op, inputs, 2..=2)?;
            if layout::broadcast_shapes(&inputs[0].shape, &inputs[1].shape).as_deref() != Some(&out.shape[..]) {
                return Err(ProverError::InvalidProgram {
                    node: op.name(),
                    why: format!("{:?} and {:?} do not broadcast to {:?}", inputs[0].shape, inputs[1].shape, out.shape),
                });
            }
            Box::new(elementwise::BinaryFold::new(*b, &inputs[0], &inputs[1], out))
        }
        Op::Where => {
            need_inputs(op, inputs, 3..=3)?;
            let s = layout::broadcast_shapes(&inputs[0].shape, &inputs[1].shape)
                .and_then(|s| layout::broadcast_shapes(&s, &inputs[2].shape));
            if s.as_deref() != Some(&out.shape[..]) {
                return Err(ProverError::InvalidProgram {
                    node: op.name(),
                    why: "inputs do not broadcast to the output".into(),
                });
            }
            Box::new(elementwise::WhereFold::new(&inputs[0], &inputs[1], &inputs[2], out))
        }
        Op::Cast => {
            need_inputs(op, inputs, 1..=1)?;
            if inputs[0].shape != out.shape {
                return Err(ProverError::InvalidProgram { node: op.name(), why: "shape changes".into() });
            }
            Box::new(elementwise::CastFold { to: out.dtype })
        }
        Op::EinSum(spec) => {
            need_inputs(op, inputs, 2..=2)?;
            Box::new(einsum::EinFold { plan: einsum::EinPlan::new(spec, &inputs[0], &inputs[1], out)? })
        }
        Op::Conv(spec) => {
            need_inputs(op, inputs, 2..=3)?;
            Box::new(conv::ConvFold { plan: conv::ConvPlan::new(spec, inputs, out)? })
        }
        Op::Deconv(spec) => {
            need_inputs(op, inputs, 2..=3)?;
            Box::new(conv::DeconvFold { plan: conv::DeconvPlan::new(spec, inputs, out)? })
        }
        Op::MaxPool(spec) => {
            need_inputs(op, inputs, 1..=1)?;
            Box::new(conv::PoolFold::new(spec, &inputs[0], out, true)?)
        }
        Op::SumPool(spec) => {
            need_inputs(op, inputs, 1..=1)?;
            Box::new(conv::PoolFold::new(spec, &inputs[0], out, false)?)
        }
        Op::Reduce { reducer, axes } => {
            need_inputs(op, inputs, 1..=1)?;
            let g = reduce::Groups::new(&inputs[0].shape, axes)?;
            let mut kept = inputs[0].shape.clone();
            for &a in axes {
                kept[a as usize] = 1;
            }
            if kept != out.shape {
                return Err(ProverError::InvalidProgram {
                    node: op.name(),
                    why: format!("output shape {:?}, expected {kept:?}", out.shape),
                });
            }
            Box::new(reduce::ReduceFold { reducer: *reducer, groups: g, in_dtype: inputs[0].dtype })
        }
        Op::Softmax { axes, log } => {
            need_inputs(op, inputs, 1..=1)?;
            if inputs[0].shape != out.shape {
                return Err(ProverError::InvalidProgram { node: op.name(), why: "shape changes".into() });
            }
            Box::new(reduce::SoftmaxFold { groups: reduce::Groups::new(&inputs[0].shape, axes)?, log: *log })
        }
        Op::RmsNorm { axis, eps } => {
            need_inputs(op, inputs, 1..=1)?;
            if inputs[0].shape != out.shape {
                return Err(ProverError::InvalidProgram { node: op.name(), why: "shape changes".into() });
            }
            Box::new(reduce::RmsNormFold { groups: reduce::Groups::new(&inputs[0].shape, &[*axis])?, eps: eps.get() })
        }
        Op::Resize(spec) => {
            need_inputs(op, inputs, 1..=1)?;
            Box::new(resize::ResizeFold::new(spec, &inputs[0], out)?)
        }
        Op::Reshape
        | Op::Transpose { .. }
        | Op::Broadcast
        | Op::Tile { .. }
        | Op::Slice { .. }
        | Op::Downsample { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. } => Box::new(movement::MoveFold::new(op, inputs, out)?),
    })
}

/// Runs one node of the reference executor.
pub fn exec_node(op: &Op, inputs: &[&Tensor], out: &ValueType) -> Result<Tensor, ProverError> {
    match op {
        Op::Unary(u) => elementwise::exec_unary(*u, inputs[0], out),
        Op::Binary(b) => elementwise::exec_binary(*b, inputs[0], inputs[1], out),
        Op::Where => elementwise::exec_where(inputs[0], inputs[1], inputs[2], out),
        Op::Cast => elementwise::exec_cast(inputs[0], out),
        Op::EinSum(spec) => einsum::exec(spec, inputs[0], inputs[1], out),
        Op::Conv(spec) => conv::exec_conv(spec, inputs, out),
        Op::Reduce { reducer, axes } => reduce::exec_reduce(*reducer, axes, inputs[0], out),
        Op::Softmax { axes, log } => reduce::exec_softmax(axes, *log, inputs[0], out),
        Op::RmsNorm { axis, eps } => reduce::exec_rms_norm(*axis, eps.get(), inputs[0], out),
        Op::Reshape => movement::exec_reshape(inputs[0], out),
        Op::Transpose { .. }
        | Op::Broadcast
        | Op::Tile { .. }
        | Op::Slice { .. }
        | Op::Downsample { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. } => {
            let types: Vec<ValueType> = inputs.iter().map(|t| ValueType::of(t)).collect();
            movement::exec_move(&movement::MoveFold::new(op, &types, out)?, inputs)
        }
        _ => {
            let types: Vec<ValueType> = inputs.iter().map(|t| ValueType::of(t)).collect();
            let f = fold_for(op, &types, out)?;
            eval_generic(f.as_ref(), inputs, out)
        }
    }
}

#[cfg(test)]
mod tests;
