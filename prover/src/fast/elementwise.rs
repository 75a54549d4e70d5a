//! Element-wise f32 kernels: unary maps, broadcast binary maps, and the
//! vector forms of the ops that may be fused into a producer's epilogue.
//!
//! Every lane computes exactly [`crate::ops::elementwise::unary_f32`] /
//! [`crate::ops::elementwise::binary_f32`] of its operands; ops whose
//! definition is a `math::` algorithm run its lane-wise port
//! ([`super::vmath`]) or, where there is none, the scalar function per lane.
#![allow(unsafe_code)]

use super::dispatch::dispatch;
use super::isa::Kernels;
use super::simd::Simd;
use super::vmath::{self, MathFn};
use crate::ops::elementwise::{binary_f32, unary_f32};
use crate::ops::layout::broadcast_strides;
use crate::program::{BinaryOp, UnaryOp};

/// Unary ops with a lane-wise vector form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum VUnary {
    Neg,
    Abs,
    Sign,
    Sqrt,
    Recip,
    Square,
    Floor,
    Ceil,
    Round,
    LeakyRelu(f32),
    HardSigmoid(f32, f32),
    HardSwish,
}

impl VUnary {
    /// The vector form of `op`, if it has one.
    pub fn of(op: UnaryOp) -> Option<Self> {
        Some(match op {
            UnaryOp::Neg => VUnary::Neg,
            UnaryOp::Abs => VUnary::Abs,
            UnaryOp::Sign => VUnary::Sign,
            UnaryOp::Sqrt => VUnary::Sqrt,
            UnaryOp::Recip => VUnary::Recip,
            UnaryOp::Square => VUnary::Square,
            UnaryOp::Floor => VUnary::Floor,
            UnaryOp::Ceil => VUnary::Ceil,
            UnaryOp::Round => VUnary::Round,
            UnaryOp::LeakyRelu(a) => VUnary::LeakyRelu(a.get()),
            UnaryOp::HardSigmoid { alpha, beta } => VUnary::HardSigmoid(alpha.get(), beta.get()),
            UnaryOp::HardSwish => VUnary::HardSwish,
            _ => return None,
        })
    }
}

/// Binary ops with a lane-wise vector form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VBinary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl VBinary {
    /// The vector form of `op`, if it has one.
    pub fn of(op: BinaryOp) -> Option<Self> {
        Some(match op {
            BinaryOp::Add => VBinary::Add,
            BinaryOp::Sub => VBinary::Sub,
            BinaryOp::Mul => VBinary::Mul,
            BinaryOp::Div => VBinary::Div,
            BinaryOp::Max => VBinary::Max,
            BinaryOp::Min => VBinary::Min,
            _ => return None,
        })
    }
}

/// `round_even` lane-wise ([`crate::ops::elementwise::round_even`]):
/// adding and subtracting 2²³ rounds to an integer with the FPU's
/// round-to-nearest-even; lanes with |x| ≥ 2²³ (or NaN) pass through.
#[inline(always)]
unsafe fn round_even_v<S: Simd>(x: S::V) -> S::V {
    // SAFETY: forwarded family precondition.
    unsafe {
        let two23 = S::splat(8_388_608.0);
        let sign = S::splat(f32::from_bits(0x8000_0000));
        let a = S::and(x, S::splat(f32::from_bits(0x7fff_ffff)));
        let r = S::sub(S::add(a, two23), two23);
        let r = S::or(r, S::and(x, sign));
        S::select(S::lt(a, two23), r, x)
    }
}

/// One unary op on a vector (not yet NaN-canonicalised).
#[inline(always)]
pub(crate) unsafe fn unary_v<S: Simd>(op: VUnary, x: S::V) -> S::V {
    // SAFETY: forwarded family precondition.
    unsafe {
        match op {
            VUnary::Neg => S::xor(x, S::splat(-0.0)),
            VUnary::Abs => S::and(x, S::splat(f32::from_bits(0x7fff_ffff))),
            VUnary::Sign => {
                let zero = S::splat(0.0);
                let r = S::select(S::gt(x, zero), S::splat(1.0), x);
                S::select(S::lt(x, zero), S::splat(-1.0), r)
            }
            VUnary::Sqrt => S::sqrt(x),
            VUnary::Recip => S::div(S::splat(1.0), x),
            VUnary::Square => S::mul(x, x),
            VUnary::Round => round_even_v::<S>(x),
            VUnary::Floor => {
                let r = round_even_v::<S>(x);
                S::select(S::gt(r, x), S::sub(r, S::splat(1.0)), r)
            }
            VUnary::Ceil => {
                let r = round_even_v::<S>(x);
                S::select(S::lt(r, x), S::add(r, S::splat(1.0)), r)
            }
            VUnary::LeakyRelu(alpha) => S::select(S::lt(x, S::splat(0.0)), S::mul(S::splat(alpha), x), x),
            VUnary::HardSigmoid(alpha, beta) => {
                let v = S::fma(S::splat(alpha), x, S::splat(beta));
                S::fmax(S::splat(0.0), S::fmin(S::splat(1.0), v))
            }
            VUnary::HardSwish => {
                let v = S::fma(S::splat(1.0f32 / 6.0), x, S::splat(0.5));
                let h = S::fmax(S::splat(0.0), S::fmin(S::splat(1.0), v));
                S::mul(x, h)
            }
        }
    }
}

/// One binary op on vectors (not yet NaN-canonicalised).
#[inline(always)]
pub(crate) unsafe fn binary_v<S: Simd>(op: VBinary, a: S::V, b: S::V) -> S::V {
    // SAFETY: forwarded family precondition.
    unsafe {
        match op {
            VBinary::Add => S::add(a, b),
            VBinary::Sub => S::sub(a, b),
            VBinary::Mul => S::mul(a, b),
            VBinary::Div => S::div(a, b),
            VBinary::Max => S::fmax(a, b),
            VBinary::Min => S::fmin(a, b),
        }
    }
}

// ---------------------------------------------------------------------------
// Unary maps.

#[inline(always)]
unsafe fn unary_body<S: Simd>(op: VUnary, x: &[f32], out: &mut [f32]) {
    let n = out.len().min(x.len());
    let (xp, op_) = (x.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every access is below `n`, the length of both slices.
    unsafe {
        while i + S::LANES <= n {
            S::store(op_.add(i), S::canon(unary_v::<S>(op, S::load(xp.add(i)))));
            i += S::LANES;
        }
        if i < n {
            let r = n - i;
            S::store_n(op_.add(i), S::canon(unary_v::<S>(op, S::load_n(xp.add(i), r))), r);
        }
    }
}

/// `out[i] = op(x[i])` for any f32 unary op.
pub(crate) fn unary(k: Kernels, op: UnaryOp, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "unary kernel: length mismatch");
    if let Some(v) = VUnary::of(op) {
        return dispatch!(k, unary_body, (v: VUnary, x: &[f32], out: &mut [f32]));
    }
    // The math:: algorithms: lane-wise ports where they exist, else the
    // scalar definition per lane compiled with the family's target features.
    if let Some(f) = MathFn::of(op) {
        return vmath::map(k, f, x, out);
    }
    dispatch!(k, unary_scalar_body, (op: UnaryOp, x: &[f32], out: &mut [f32]))
}

#[inline(always)]
unsafe fn unary_scalar_body<S: Simd>(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = unary_f32(op, v);
    }
}

// ---------------------------------------------------------------------------
// Broadcast binary maps.

/// How two broadcast inputs map onto the output: an odometer over `outer`
/// axes (extent, stride in a, stride in b; strides in elements), and an
/// inner run of `inner` outputs over which each input either advances by
/// one (`true`) or stays (`false`, broadcast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BinGeom {
    pub outer: Vec<(usize, usize, usize)>,
    pub inner: usize,
    pub a_moves: bool,
    pub b_moves: bool,
    pub a_len: usize,
    pub b_len: usize,
    pub out_len: usize,
}

impl BinGeom {
    /// Geometry of `a (shape) ∘ b (shape) → out (shape)` under numpy
    /// broadcasting. Adjacent axes are merged where both inputs allow.
    pub fn new(a: &[u64], b: &[u64], out: &[u64]) -> Self {
        let r = out.len();
        let sa = broadcast_strides(a, r);
        let sb = broadcast_strides(b, r);
        // (extent, stride a, stride b), unit axes dropped.
        let mut axes: Vec<(usize, usize, usize)> =
            (0..r).filter(|&i| out[i] != 1).map(|i| (out[i] as usize, sa[i] as usize, sb[i] as usize)).collect();
        // Merge (i, i+1) when each input is contiguous across them.
        let mut i = axes.len();
        while i >= 2 {
            let (d1, a1, b1) = axes[i - 1];
            let (d0, a0, b0) = axes[i - 2];
            if a0 == a1 * d1 && b0 == b1 * d1 {
                axes[i - 2] = (d0 * d1, a1, b1);
                axes.remove(i - 1);
            }
            i -= 1;
        }
        let out_len: usize = out.iter().product::<u64>() as usize;
        let (inner, a_moves, b_moves) = match axes.pop() {
            Some((d, x, y)) if x <= 1 && y <= 1 => (d, x == 1, y == 1),
            Some(ax) => {
                axes.push(ax);
                (1, false, false)
            }
            None => (1, false, false),
        };
        Self {
            outer: axes,
            inner: if out_len == 0 { 0 } else { inner },
            a_moves,
            b_moves,
            a_len: a.iter().product::<u64>() as usize,
            b_len: b.iter().product::<u64>() as usize,
            out_len,
        }
    }

    /// The input offsets of every inner run, in output order (run `i`
    /// writes `out[i·inner ..]`).
    #[inline(always)]
    pub fn runs(&self) -> Runs<'_> {
        Runs { axes: &self.outer, coord: [0; verinfer_state::tensor::MAX_RANK], oa: 0, ob: 0, done: self.out_len == 0 }
    }
}

/// Iterator over the inner runs of a [`BinGeom`] (an odometer; no closures,
/// so it inlines into target-feature kernels).
#[derive(Debug)]
pub(crate) struct Runs<'a> {
    axes: &'a [(usize, usize, usize)],
    coord: [usize; verinfer_state::tensor::MAX_RANK],
    oa: usize,
    ob: usize,
    done: bool,
}

impl Iterator for Runs<'_> {
    type Item = (usize, usize);
    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let cur = (self.oa, self.ob);
        let mut ax = self.axes.len();
        loop {
            if ax == 0 {
                self.done = true;
                break;
            }
            ax -= 1;
            let (d, sa, sb) = self.axes[ax];
            self.coord[ax] += 1;
            self.oa += sa;
            self.ob += sb;
            if self.coord[ax] < d {
                break;
            }
            self.oa -= sa * d;
            self.ob -= sb * d;
            self.coord[ax] = 0;
        }
        Some(cur)
    }
}

#[inline(always)]
unsafe fn binary_body<S: Simd>(op: VBinary, g: &BinGeom, a: &[f32], b: &[f32], out: &mut [f32]) {
    let (ap, bp, outp) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let n = g.inner;
    let (am, bm) = (g.a_moves, g.b_moves);
    let mut oo = 0;
    for (oa, ob) in g.runs() {
        // SAFETY: `BinGeom::new` derived every offset from the shapes,
        // whose element counts the entry point checked against the slices.
        unsafe {
            let (x, y, o) = (ap.add(oa), bp.add(ob), outp.add(oo));
            let sx = if am { S::splat(0.0) } else { S::splat(*x) };
            let sy = if bm { S::splat(0.0) } else { S::splat(*y) };
            let mut i = 0;
            while i + S::LANES <= n {
                let va = if am { S::load(x.add(i)) } else { sx };
                let vb = if bm { S::load(y.add(i)) } else { sy };
                S::store(o.add(i), S::canon(binary_v::<S>(op, va, vb)));
                i += S::LANES;
            }
            if i < n {
                let r = n - i;
                let va = if am { S::load_n(x.add(i), r) } else { sx };
                let vb = if bm { S::load_n(y.add(i), r) } else { sy };
                S::store_n(o.add(i), S::canon(binary_v::<S>(op, va, vb)), r);
            }
        }
        oo += n;
    }
}

/// `out = a ∘ b` with broadcasting, for any f32 arithmetic op.
pub(crate) fn binary(k: Kernels, op: BinaryOp, g: &BinGeom, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == g.a_len && b.len() == g.b_len && out.len() == g.out_len, "binary kernel: length mismatch");
    if let Some(v) = VBinary::of(op) {
        return dispatch!(k, binary_body, (v: VBinary, g: &BinGeom, a: &[f32], b: &[f32], out: &mut [f32]));
    }
    dispatch!(k, binary_scalar_body, (op: BinaryOp, g: &BinGeom, a: &[f32], b: &[f32], out: &mut [f32]))
}

/// The ops without a vector form (Rem, Pow), per element, compiled with the
/// family's target features (`mul_add` in `math::pow` is one instruction).
#[inline(always)]
unsafe fn binary_scalar_body<S: Simd>(op: BinaryOp, g: &BinGeom, a: &[f32], b: &[f32], out: &mut [f32]) {
    let (am, bm) = (usize::from(g.a_moves), usize::from(g.b_moves));
    let mut oo = 0;
    for (oa, ob) in g.runs() {
        for i in 0..g.inner {
            out[oo + i] = binary_f32(op, a[oa + i * am], b[ob + i * bm]);
        }
        oo += g.inner;
    }
}
