//! Two-input Einstein summation: MatMul, Gemm, batched matmuls and 1×1
//! convolutions all arrive here after tract's decluttering.
//!
//! Definition (`docs/semantics.md#einsum`): for output element `o`,
//! `acc₀ = -0.0`, then for every contracted index tuple `c` in row-major
//! order of [`EinSumSpec::contracted`] (first axis outermost),
//! `acc ← fma(a[o,c], b[o,c], acc)`; the value is the final `acc`. An input
//! whose extent on an axis is 1 while the axis is longer is broadcast along
//! it. `-0.0` is the additive identity, so a one-term sum is exactly the
//! product.

use verinfer_state::tensor::{DType, Scalar, Tensor};

use super::layout::{strides, unravel};
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::math::canon;
use crate::program::{EinAxis, EinSumSpec, ValueType};

/// Precomputed strides of one einsum node.
#[derive(Debug, Clone)]
pub(crate) struct EinPlan {
    /// Output shape.
    pub out_shape: Vec<u64>,
    /// Per output axis: stride in a, stride in b.
    pub free: Vec<(u64, u64)>,
    /// Per contracted axis (fold order): extent, stride in a, stride in b.
    pub contracted: Vec<(u64, u64, u64)>,
}

fn stride_of(axis: &EinAxis, pos: Option<u32>, shape: &[u64], st: &[u64]) -> u64 {
    match pos {
        Some(p) if shape.get(p as usize) == Some(&axis.dim) && axis.dim != 1 => st[p as usize],
        _ => 0,
    }
}

impl EinPlan {
    pub fn new(spec: &EinSumSpec, a: &ValueType, b: &ValueType, out: &ValueType) -> Result<Self, ProverError> {
        let (sa, sb) = (strides(&a.shape), strides(&b.shape));
        let bad = |why: String| ProverError::InvalidProgram { node: "einsum".into(), why };
        let mut free = vec![(0u64, 0u64); out.shape.len()];
        for ax in &spec.free {
            let o = ax.out.ok_or_else(|| bad("free axis without output position".into()))? as usize;
            if o >= free.len() || out.shape[o] != ax.dim {
                return Err(bad(format!("output axis {o} does not have extent {}", ax.dim)));
            }
            free[o] = (stride_of(ax, ax.a, &a.shape, &sa), stride_of(ax, ax.b, &b.shape, &sb));
        }
        for ax in spec.free.iter().chain(&spec.contracted) {
            for (pos, shape) in [(ax.a, &a.shape), (ax.b, &b.shape)] {
                if let Some(p) = pos {
                    let d = *shape.get(p as usize).ok_or_else(|| bad(format!("axis position {p} out of range")))?;
                    if d != ax.dim && d != 1 {
                        return Err(bad(format!("input extent {d} does not match axis extent {}", ax.dim)));
                    }
                }
            }
        }
        let contracted = spec
            .contracted
            .iter()
            .map(|ax| (ax.dim, stride_of(ax, ax.a, &a.shape, &sa), stride_of(ax, ax.b, &b.shape, &sb)))
            .collect();
        Ok(Self { out_shape: out.shape.clone(), free, contracted })
    }

    /// Number of fold steps per element.
    pub fn k(&self) -> u64 {
        self.contracted.iter().map(|c| c.0).product()
    }

    /// Offsets in a and b of output element `e`'s first term.
    pub fn base(&self, e: u64) -> (u64, u64) {
        let mut idx = e;
        let (mut oa, mut ob) = (0, 0);
        for i in (0..self.out_shape.len()).rev() {
            let d = self.out_shape[i].max(1);
            let c = idx % d;
            idx /= d;
            oa += c * self.free[i].0;
            ob += c * self.free[i].1;
        }
        (oa, ob)
    }

    /// Offsets of step `t`'s terms relative to the base.
    pub fn step_offsets(&self, t: u64) -> (u64, u64) {
        let mut idx = t;
        let (mut oa, mut ob) = (0, 0);
        for &(d, sa, sb) in self.contracted.iter().rev() {
            let c = idx % d.max(1);
            idx /= d.max(1);
            oa += c * sa;
            ob += c * sb;
        }
        (oa, ob)
    }
}

pub(crate) struct EinFold {
    pub plan: EinPlan,
}

impl ElementFold for EinFold {
    fn steps(&self, _e: u64) -> u64 {
        self.plan.k()
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32(-0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let (ba, bb) = self.plan.base(e);
        let (da, db) = self.plan.step_offsets(t);
        let a = rd.read(0, ba + da)?.f32();
        let b = rd.read(1, bb + db)?.f32();
        Ok(FoldState::f32(canon(a.mul_add(b, s.f0()))))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

/// Direct reference loop.
pub(crate) fn exec(spec: &EinSumSpec, a: &Tensor, b: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let (Some(x), Some(y)) = (a.as_f32(), b.as_f32()) else {
        return Err(ProverError::OpDType {
            op: "EinSum".into(),
            dtype: if a.dtype() != DType::F32 { a.dtype() } else { b.dtype() },
        });
    };
    let plan = EinPlan::new(spec, &ValueType::of(a), &ValueType::of(b), out)?;
    let n = out.numel() as usize;
    let k = plan.k();
    let mut res = vec![0f32; n];
    // Contracted offsets are the same for every output element: tabulate.
    let offs: Vec<(usize, usize)> =
        (0..k).map(|t| plan.step_offsets(t)).map(|(p, q)| (p as usize, q as usize)).collect();
    let mut coord = vec![0u64; out.shape.len()];
    for (e, r) in res.iter_mut().enumerate() {
        unravel(e as u64, &out.shape, &mut coord);
        let (mut ba, mut bb) = (0usize, 0usize);
        for (i, c) in coord.iter().enumerate() {
            ba += (*c * plan.free[i].0) as usize;
            bb += (*c * plan.free[i].1) as usize;
        }
        let mut acc = -0.0f32;
        for &(da, db) in &offs {
            acc = x[ba + da].mul_add(y[bb + db], acc);
        }
        *r = canon(acc);
    }
    Ok(Tensor::from_f32(out.shape_usize(), res)?)
}
