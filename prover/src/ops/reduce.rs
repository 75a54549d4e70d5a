//! Reductions, softmax and RMS normalisation: folds along axes.
//!
//! Definitions (`docs/semantics.md#reductions`), the reduced positions of an
//! output element visited in row-major order of the reduced axes:
//! * **Sum** `acc₀ = −0.0`, `acc ← acc + x`; **Prod** `acc₀ = 1`,
//!   `acc ← acc·x`; **Max/Min** `acc₀ = ∓∞`, NaN-propagating max/min;
//!   **MeanOfSquares** `acc₀ = −0.0`, `acc ← fma(x, x, acc)`, value `acc / n`.
//!   Integer reductions wrap. **ArgMax/ArgMin** keep (best value, index),
//!   replacing on strictly better (or equal, when `last`); a NaN is better
//!   than any number, so the first NaN wins. **All/Any** over bools.
//! * **Softmax** over axes (n positions): steps `0..n` `m ← max(m, x_t)`
//!   (`m₀ = −∞`), steps `n..2n` `s ← s + exp(x_t − m)` (`s₀ = −0.0`), step
//!   `2n` reads the element: `exp(x_e − m) / s`, or for log-softmax
//!   `(x_e − m) − ln(s)`.
//! * **RmsNorm** along one axis (n positions): steps `0..n`
//!   `acc ← fma(x_t, x_t, acc)`, step `n`: `x_e · rsqrt(acc / n + eps)`.

use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

use super::elementwise::{binary_scalar, fmax, fmin};
use super::layout::strides;
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::math::{self, canon};
use crate::program::{BinaryOp, Reducer, ValueType};

/// The positions of a reduction group: a base per output element and
/// offsets shared by every group.
///
/// The offsets are tabulated only up to [`OFFSET_TABLE_MAX`] positions and
/// computed per step beyond: a fold is built from types alone (the referee
/// builds one from a disputed node's descriptor, which the other party
/// chose), so its memory must not grow with the group.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    in_shape: Vec<u64>,
    in_strides: Vec<u64>,
    /// Axes reduced.
    axes: Vec<usize>,
    /// Extents of the reduced axes.
    dims: Vec<u64>,
    /// Group size.
    n: u64,
    /// Offsets of each reduced position, row-major over `axes`, when
    /// `n <= OFFSET_TABLE_MAX`; empty otherwise.
    table: Vec<u64>,
}

/// Largest group whose offsets are tabulated when the fold is built.
pub(crate) const OFFSET_TABLE_MAX: u64 = 1 << 16;

impl Groups {
    pub fn new(in_shape: &[u64], axes: &[u32]) -> Result<Self, ProverError> {
        let axes: Vec<usize> = axes.iter().map(|&a| a as usize).collect();
        if axes.iter().any(|&a| a >= in_shape.len()) || axes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProverError::InvalidProgram {
                node: "reduce".into(),
                why: format!("bad axes {axes:?} for rank {}", in_shape.len()),
            });
        }
        verinfer_state::tensor::checked_numel(in_shape)
            .map_err(|e| ProverError::InvalidProgram { node: "reduce".into(), why: e.to_string() })?;
        // Bounded by the check above: every stride and offset fits in u64.
        let in_strides = strides(in_shape);
        let dims: Vec<u64> = axes.iter().map(|&a| in_shape[a]).collect();
        let n: u64 = dims.iter().product();
        let mut g = Self { in_shape: in_shape.to_vec(), in_strides, axes, dims, n, table: Vec::new() };
        if n <= OFFSET_TABLE_MAX {
            g.table = (0..n).map(|t| g.compute_offset(t)).collect();
        }
        Ok(g)
    }

    fn compute_offset(&self, t: u64) -> u64 {
        let mut idx = t;
        let mut off = 0;
        for (&d, &a) in self.dims.iter().zip(&self.axes).rev() {
            off += (idx % d) * self.in_strides[a];
            idx /= d;
        }
        off
    }

    /// Group size.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Offset of reduced position `t < n` from its group's base.
    pub fn offset(&self, t: u64) -> u64 {
        // The table is either complete or empty.
        self.table.get(t as usize).copied().unwrap_or_else(|| self.compute_offset(t))
    }

    /// Every offset, in step order. Executors call this once per node, with
    /// the input tensor already in memory, so the table is bounded by data
    /// that exists.
    pub fn offsets(&self) -> std::borrow::Cow<'_, [u64]> {
        if self.table.len() as u64 == self.n {
            std::borrow::Cow::Borrowed(&self.table)
        } else {
            std::borrow::Cow::Owned((0..self.n).map(|t| self.compute_offset(t)).collect())
        }
    }

    /// Base input index of the group of a *kept-dims* output element `e`
    /// (output shape = input shape with reduced axes set to 1).
    pub fn base_of_reduced(&self, e: u64) -> u64 {
        let mut idx = e;
        let mut pos = 0;
        for i in (0..self.in_shape.len()).rev() {
            let d = if self.axes.contains(&i) { 1 } else { self.in_shape[i].max(1) };
            pos += (idx % d) * self.in_strides[i];
            idx /= d;
        }
        pos
    }

    /// Base input index of the group containing *input* element `e`.
    pub fn base_of_element(&self, e: u64) -> u64 {
        let mut idx = e;
        let mut pos = 0;
        for i in (0..self.in_shape.len()).rev() {
            let d = self.in_shape[i].max(1);
            if !self.axes.contains(&i) {
                pos += (idx % d) * self.in_strides[i];
            }
            idx /= d;
        }
        pos
    }
}

fn int_extreme(dtype: DType, max: bool) -> Scalar {
    let bits = dtype.size() as u32 * 8;
    if dtype.is_signed_int() {
        let v = if max { (1i64 << (bits - 1)).wrapping_sub(1) } else { -(1i128 << (bits - 1)) as i64 };
        Scalar::from_i64(dtype, if bits == 64 { if max { i64::MAX } else { i64::MIN } } else { v })
    } else {
        Scalar { dtype, bits: if max { if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 } } else { 0 } }
    }
}

/// Initial state of a reducer over `dtype`.
pub(crate) fn reduce_init(r: Reducer, dtype: DType) -> FoldState {
    match (r, dtype) {
        (Reducer::Sum | Reducer::MeanOfSquares, DType::F32) => FoldState::f32(-0.0),
        (Reducer::Prod, DType::F32) => FoldState::f32(1.0),
        (Reducer::Max, DType::F32) => FoldState::f32(f32::NEG_INFINITY),
        (Reducer::Min, DType::F32) => FoldState::f32(f32::INFINITY),
        (Reducer::Sum, _) => FoldState([0, 0]),
        (Reducer::Prod, _) => FoldState([1, 0]),
        (Reducer::Max, d) => FoldState([int_extreme(d, false).bits, 0]),
        (Reducer::Min, d) => FoldState([int_extreme(d, true).bits, 0]),
        (Reducer::ArgMax { .. } | Reducer::ArgMin { .. }, _) => FoldState([0, u64::MAX]),
        (Reducer::All, _) => FoldState([1, 0]),
        (Reducer::Any, _) => FoldState([0, 0]),
        (Reducer::MeanOfSquares, _) => FoldState([0, 0]),
    }
}

fn better(r: Reducer, cand: Scalar, best: Scalar) -> Result<bool, ProverError> {
    let (last, max) = match r {
        Reducer::ArgMax { last } => (last, true),
        Reducer::ArgMin { last } => (last, false),
        _ => unreachable!(),
    };
    if cand.dtype == DType::F32 {
        let (c, b) = (cand.f32(), best.f32());
        if b.is_nan() {
            return Ok(false);
        }
        if c.is_nan() {
            return Ok(true);
        }
        return Ok(if max { c > b || (last && c == b) } else { c < b || (last && c == b) });
    }
    let gt = binary_scalar(BinaryOp::Gt, cand, best)?.as_bool();
    let lt = binary_scalar(BinaryOp::Lt, cand, best)?.as_bool();
    let eq = !gt && !lt;
    Ok(if max { gt || (last && eq) } else { lt || (last && eq) })
}

/// One step of a reducer: `t` is the position within the group.
pub(crate) fn reduce_step(r: Reducer, s: FoldState, x: Scalar, t: u64) -> Result<FoldState, ProverError> {
    let dt = x.dtype;
    if dt == DType::F32 {
        let a = s.f0();
        let v = x.f32();
        match r {
            Reducer::Sum => return Ok(FoldState::f32(canon(a + v))),
            Reducer::Prod => return Ok(FoldState::f32(canon(a * v))),
            Reducer::Max => return Ok(FoldState::f32(fmax(a, v))),
            Reducer::Min => return Ok(FoldState::f32(fmin(a, v))),
            Reducer::MeanOfSquares => return Ok(FoldState::f32(canon(v.mul_add(v, a)))),
            _ => {}
        }
    }
    let acc = Scalar { dtype: dt, bits: s.0[0] };
    Ok(match r {
        Reducer::Sum => FoldState([binary_scalar(BinaryOp::Add, acc, x)?.bits, 0]),
        Reducer::Prod => FoldState([binary_scalar(BinaryOp::Mul, acc, x)?.bits, 0]),
        Reducer::Max => FoldState([binary_scalar(BinaryOp::Max, acc, x)?.bits, 0]),
        Reducer::Min => FoldState([binary_scalar(BinaryOp::Min, acc, x)?.bits, 0]),
        Reducer::ArgMax { .. } | Reducer::ArgMin { .. } => {
            if s.0[1] == u64::MAX || better(r, x, acc)? {
                FoldState([x.bits, t])
            } else {
                s
            }
        }
        Reducer::All if dt == DType::Bool => FoldState([s.0[0] & x.bits, 0]),
        Reducer::Any if dt == DType::Bool => FoldState([s.0[0] | x.bits, 0]),
        _ => return Err(ProverError::OpDType { op: format!("Reduce<{r:?}>"), dtype: dt }),
    })
}

/// Value of a finished reducer.
pub(crate) fn reduce_finish(r: Reducer, s: FoldState, dtype: DType, n: u64) -> Scalar {
    match r {
        Reducer::MeanOfSquares => Scalar::from_f32(canon(s.f0() / n as f32)),
        Reducer::ArgMax { .. } | Reducer::ArgMin { .. } => {
            Scalar::from_i64(DType::I64, if s.0[1] == u64::MAX { 0 } else { s.0[1] as i64 })
        }
        Reducer::All | Reducer::Any => Scalar::from_bool(s.0[0] != 0),
        _ => Scalar { dtype, bits: s.0[0] },
    }
}

/// Output dtype of a reducer over `dtype`, if defined.
pub fn reduce_out_dtype(r: Reducer, dtype: DType) -> Option<DType> {
    match r {
        Reducer::Sum | Reducer::Prod | Reducer::Max | Reducer::Min if dtype != DType::Bool => Some(dtype),
        Reducer::MeanOfSquares if dtype == DType::F32 => Some(DType::F32),
        Reducer::ArgMax { .. } | Reducer::ArgMin { .. } if dtype != DType::Bool => Some(DType::I64),
        Reducer::All | Reducer::Any if dtype == DType::Bool => Some(DType::Bool),
        _ => None,
    }
}

pub(crate) struct ReduceFold {
    pub reducer: Reducer,
    pub groups: Groups,
    pub in_dtype: DType,
}

impl ElementFold for ReduceFold {
    fn steps(&self, _e: u64) -> u64 {
        self.groups.n()
    }
    fn init(&self, _e: u64) -> FoldState {
        reduce_init(self.reducer, self.in_dtype)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let idx = self.groups.base_of_reduced(e) + self.groups.offset(t);
        reduce_step(self.reducer, s, rd.read(0, idx)?, t)
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        reduce_finish(self.reducer, s, self.in_dtype, self.groups.n())
    }
}

pub(crate) fn exec_reduce(reducer: Reducer, axes: &[u32], x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let g = Groups::new(&x.shape_u64(), axes)?;
    let offs = g.offsets();
    let n_out = out.numel() as usize;
    if let (TensorData::F32(v), Reducer::Sum | Reducer::Max | Reducer::Min | Reducer::Prod | Reducer::MeanOfSquares) =
        (x.data(), reducer)
    {
        let mut res = vec![0f32; n_out];
        for (e, r) in res.iter_mut().enumerate() {
            let base = g.base_of_reduced(e as u64) as usize;
            let mut s = reduce_init(reducer, DType::F32);
            for &o in offs.iter() {
                s = reduce_step(reducer, s, Scalar::from_f32(v[base + o as usize]), 0)?;
            }
            *r = reduce_finish(reducer, s, DType::F32, g.n()).f32();
        }
        return Ok(Tensor::from_f32(out.shape_usize(), res)?);
    }
    let mut data = TensorData::zeros(out.dtype, n_out);
    for e in 0..n_out {
        let base = g.base_of_reduced(e as u64);
        let mut s = reduce_init(reducer, x.dtype());
        for (t, &o) in offs.iter().enumerate() {
            s = reduce_step(reducer, s, x.scalar(base + o)?, t as u64)?;
        }
        data.set_scalar(e, reduce_finish(reducer, s, x.dtype(), g.n()));
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

pub(crate) struct SoftmaxFold {
    pub groups: Groups,
    pub log: bool,
}

/// The last softmax step.
#[inline(always)]
pub fn softmax_value(x: f32, m: f32, s: f32, log: bool) -> f32 {
    canon(if log { (x - m) - math::ln(s) } else { math::exp(x - m) / s })
}

impl ElementFold for SoftmaxFold {
    fn steps(&self, _e: u64) -> u64 {
        2 * self.groups.n() + 1
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32x2(f32::NEG_INFINITY, -0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let n = self.groups.n();
        let base = self.groups.base_of_element(e);
        let (m, sum) = (s.f0(), s.f1());
        if t < n {
            let x = rd.read(0, base + self.groups.offset(t))?.f32();
            Ok(FoldState::f32x2(fmax(m, x), sum))
        } else if t < 2 * n {
            let x = rd.read(0, base + self.groups.offset(t - n))?.f32();
            Ok(FoldState::f32x2(m, canon(sum + math::exp(canon(x - m)))))
        } else {
            let x = rd.read(0, e)?.f32();
            Ok(FoldState::f32x2(softmax_value(x, m, sum, self.log), sum))
        }
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

pub(crate) fn exec_softmax(axes: &[u32], log: bool, x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let v = x.as_f32().ok_or(ProverError::OpDType { op: "Softmax".into(), dtype: x.dtype() })?;
    let g = Groups::new(&x.shape_u64(), axes)?;
    let offs = g.offsets();
    let mut res = vec![0f32; v.len()];
    // Each group is computed once and written to all its elements: the
    // per-element fold's first 2n steps are identical across the group.
    let mut done = vec![false; v.len()];
    for e in 0..v.len() {
        if done[e] {
            continue;
        }
        let base = g.base_of_element(e as u64) as usize;
        let mut m = f32::NEG_INFINITY;
        for &o in offs.iter() {
            m = fmax(m, v[base + o as usize]);
        }
        let mut s = -0.0f32;
        for &o in offs.iter() {
            s = canon(s + math::exp(canon(v[base + o as usize] - m)));
        }
        for &o in offs.iter() {
            let i = base + o as usize;
            res[i] = softmax_value(v[i], m, s, log);
            done[i] = true;
        }
    }
    Ok(Tensor::from_f32(out.shape_usize(), res)?)
}

pub(crate) struct RmsNormFold {
    pub groups: Groups,
    pub eps: f32,
}

/// The last RmsNorm step.
#[inline(always)]
pub fn rms_value(x: f32, acc: f32, n: u64, eps: f32) -> f32 {
    canon(x * math::rsqrt(canon(acc / n as f32) + eps))
}

impl ElementFold for RmsNormFold {
    fn steps(&self, _e: u64) -> u64 {
        self.groups.n() + 1
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32(-0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let n = self.groups.n();
        if t < n {
            let x = rd.read(0, self.groups.base_of_element(e) + self.groups.offset(t))?.f32();
            Ok(FoldState::f32(canon(x.mul_add(x, s.f0()))))
        } else {
            let x = rd.read(0, e)?.f32();
            Ok(FoldState::f32x2(rms_value(x, s.f0(), n, self.eps), s.f0()))
        }
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

pub(crate) fn exec_rms_norm(axis: u32, eps: f32, x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let v = x.as_f32().ok_or(ProverError::OpDType { op: "RmsNorm".into(), dtype: x.dtype() })?;
    let g = Groups::new(&x.shape_u64(), &[axis])?;
    let offs = g.offsets();
    let mut res = vec![0f32; v.len()];
    let mut done = vec![false; v.len()];
    for e in 0..v.len() {
        if done[e] {
            continue;
        }
        let base = g.base_of_element(e as u64) as usize;
        let mut acc = -0.0f32;
        for &o in offs.iter() {
            let xv = v[base + o as usize];
            acc = canon(xv.mul_add(xv, acc));
        }
        for &o in offs.iter() {
            let i = base + o as usize;
            res[i] = rms_value(v[i], acc, g.n(), eps);
            done[i] = true;
        }
    }
    Ok(Tensor::from_f32(out.shape_usize(), res)?)
}
