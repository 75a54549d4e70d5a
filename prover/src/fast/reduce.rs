//! Reductions, softmax and RMS normalisation with planned index tables.
//!
//! Each group is folded sequentially in the reference order with the
//! reference's scalar step functions (no vectorisation inside a fold);
//! what is gained is the planning: group bases and offsets are computed
//! once, values are read from flat slices instead of per-element
//! `Scalar`s, and per-group quantities the reference recomputes per element
//! (`rsqrt` of the mean square, `ln` of the softmax sum, `exp(x − m)` of a
//! non-NaN difference) are computed once — the same function of the same
//! arguments, hence the same bits. The softmax exponentials of a group are
//! computed by the lane-wise port of `math::exp` ([`super::vmath`]) before
//! the sequential sum.
#![allow(unsafe_code)]

use super::Kernels;
use super::dispatch::dispatch;
use super::simd::Simd;
use super::simd64::SimdF64;
use super::vmath;
use crate::error::ProverError;
use crate::math::{self, canon};
use crate::ops::elementwise::{fmax, fmin};
use crate::ops::reduce::{Groups, softmax_value};
use crate::program::{Reducer, ValueType};

/// Group bases per output element (reductions) or per group (softmax,
/// RMS norm), and the shared offsets.
#[derive(Debug, Clone)]
pub(crate) struct GroupTable {
    pub bases: Vec<usize>,
    pub offsets: Vec<usize>,
}

impl GroupTable {
    /// For a reduction: one group per output element.
    pub fn reduce(input: &ValueType, axes: &[u32], out_len: usize) -> Result<Self, ProverError> {
        let g = Groups::new(&input.shape, axes)?;
        let bases = (0..out_len as u64).map(|e| g.base_of_reduced(e) as usize).collect();
        Ok(Self { bases, offsets: g.offsets().iter().map(|&o| o as usize).collect() })
    }

    /// For a normalisation: the distinct groups, in order of their first
    /// element.
    pub fn normalize(input: &ValueType, axes: &[u32]) -> Result<Self, ProverError> {
        let g = Groups::new(&input.shape, axes)?;
        let mut kept = input.shape.clone();
        for &a in axes {
            kept[a as usize] = 1;
        }
        let n_groups: u64 = kept.iter().product();
        let bases = (0..n_groups).map(|e| g.base_of_reduced(e) as usize).collect();
        Ok(Self { bases, offsets: g.offsets().iter().map(|&o| o as usize).collect() })
    }
}

/// f32 reductions (Sum, Prod, Max, Min, MeanOfSquares).
pub(crate) fn reduce_f32(kern: Kernels, r: Reducer, t: &GroupTable, x: &[f32], out: &mut [f32]) {
    assert_eq!(out.len(), t.bases.len(), "reduce: output length");
    dispatch!(kern, reduce_body, (r: Reducer, t: &GroupTable, x: &[f32], out: &mut [f32]))
}

#[inline(always)]
unsafe fn reduce_body<S: Simd>(r: Reducer, t: &GroupTable, x: &[f32], out: &mut [f32]) {
    let n = t.offsets.len();
    for (o, &b) in out.iter_mut().zip(&t.bases) {
        let g = &t.offsets;
        *o = match r {
            Reducer::Sum => {
                let mut a = -0.0f32;
                for &k in g {
                    a += x[b + k];
                }
                canon(a)
            }
            Reducer::Prod => {
                let mut a = 1.0f32;
                for &k in g {
                    a *= x[b + k];
                }
                canon(a)
            }
            Reducer::Max => {
                let mut a = f32::NEG_INFINITY;
                for &k in g {
                    a = fmax(a, x[b + k]);
                }
                a
            }
            Reducer::Min => {
                let mut a = f32::INFINITY;
                for &k in g {
                    a = fmin(a, x[b + k]);
                }
                a
            }
            Reducer::MeanOfSquares => {
                let mut a = -0.0f32;
                for &k in g {
                    let v = x[b + k];
                    a = v.mul_add(v, a);
                }
                canon(canon(a) / n as f32)
            }
            _ => unreachable!("planned only for f32 arithmetic reducers"),
        };
    }
}

/// Whether [`reduce_f32`] covers `r`.
pub(crate) fn reduce_f32_supported(r: Reducer) -> bool {
    matches!(r, Reducer::Sum | Reducer::Prod | Reducer::Max | Reducer::Min | Reducer::MeanOfSquares)
}

/// Softmax / log-softmax over planned groups.
pub(crate) fn softmax(kern: Kernels, t: &GroupTable, log: bool, x: &[f32], out: &mut [f32], tmp: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "softmax: lengths");
    assert!(tmp.len() >= t.offsets.len(), "softmax: scratch");
    dispatch!(kern, softmax_body, (t: &GroupTable, log: bool, x: &[f32], out: &mut [f32], tmp: &mut [f32]))
}

#[inline(always)]
unsafe fn softmax_body<S: Simd + SimdF64>(t: &GroupTable, log: bool, x: &[f32], out: &mut [f32], tmp: &mut [f32]) {
    let g = &t.offsets;
    let e = &mut tmp[..g.len()];
    for &b in &t.bases {
        let mut m = f32::NEG_INFINITY;
        for &k in g {
            m = fmax(m, x[b + k]);
        }
        // e[j] = exp(canon(x − m)): the differences first, then the
        // lane-wise exp (vmath) over the whole group.
        for (j, &k) in g.iter().enumerate() {
            e[j] = canon(x[b + k] - m);
        }
        // SAFETY: `e` is a valid slice of `g.len()` floats; the family
        // precondition is forwarded.
        unsafe { vmath::exp_in_place::<S>(e.as_mut_ptr(), e.len()) };
        let mut s = -0.0f32;
        for &v in e.iter() {
            s = canon(s + v);
        }
        if log {
            let l = math::ln(s);
            for &k in g {
                let i = b + k;
                let d = x[i] - m;
                out[i] = if d.is_nan() { softmax_value(x[i], m, s, true) } else { canon(d - l) };
            }
        } else {
            for (j, &k) in g.iter().enumerate() {
                let i = b + k;
                // exp(canon(d)) is exp(d) unless d is NaN.
                out[i] = if (x[i] - m).is_nan() { softmax_value(x[i], m, s, false) } else { canon(e[j] / s) };
            }
        }
    }
}

/// Groups folded side by side (independent chains hide fma latency).
const WAY: usize = 4;

#[inline(always)]
unsafe fn rms_body<S: Simd>(t: &GroupTable, eps: f32, x: &[f32], out: &mut [f32]) {
    let g = &t.offsets;
    let n = g.len() as u64;
    let finish = |b: usize, acc: f32, out: &mut [f32]| {
        let acc = canon(acc);
        // The reference's rms_value(x, acc, n, eps) = canon(x · r) with this r.
        let r = math::rsqrt(canon(acc / n as f32) + eps);
        for &k in g {
            out[b + k] = canon(x[b + k] * r);
        }
    };
    let mut chunks = t.bases.chunks_exact(WAY);
    for bs in &mut chunks {
        let mut acc = [-0.0f32; WAY];
        for &k in g {
            for j in 0..WAY {
                let v = x[bs[j] + k];
                // Compiled with the family's target features: one fma.
                acc[j] = v.mul_add(v, acc[j]);
            }
        }
        for j in 0..WAY {
            finish(bs[j], acc[j], out);
        }
    }
    for &b in chunks.remainder() {
        let mut acc = -0.0f32;
        for &k in g {
            let v = x[b + k];
            acc = v.mul_add(v, acc);
        }
        finish(b, acc, out);
    }
}

/// RMS normalisation over planned groups.
pub(crate) fn rms_norm(kern: Kernels, t: &GroupTable, eps: f32, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "rms_norm: lengths");
    dispatch!(kern, rms_body, (t: &GroupTable, eps: f32, x: &[f32], out: &mut [f32]))
}
