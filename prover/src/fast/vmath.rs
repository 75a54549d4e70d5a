//! Lane-wise ports of the [`crate::math`] transcendental functions.
//!
//! Each `f32` function of `math.rs` widens its argument to `f64`, runs a
//! fixed sequence of `f64` operations (Horner polynomials with `mul_add`,
//! plain `+ − · ÷ √`, bit manipulation, comparisons and selects) and rounds
//! once to `f32`. The ports below run **the same sequence** on [`SimdF64`]
//! lanes: the same constants (shared with `math.rs`, not copied), the same
//! `mul_add` vs separate multiply/add choices in the same order, every
//! branch of the scalar code evaluated lane-wise and chosen with a blend in
//! the scalar code's priority order, integer bit tricks done on the 64-bit
//! lane patterns, and the final rounding to `f32` done by the conversion
//! instruction (nearest-even, like `as f32`). NaN results are canonicalised
//! before the conversion (the canonical `f64` NaN narrows to the canonical
//! `f32` NaN). Since every step is an IEEE-754 operation with a unique
//! result, every lane produces exactly the bits of the scalar function —
//! which `prover/tests/kernels.rs` checks (special values, exponent
//! boundaries, random bit patterns; all 2³² inputs with
//! `VERINFER_MATH_EXHAUSTIVE=1`).
//!
//! Ported: `exp`, `ln`, `rsqrt`, `tanh`, `sigmoid`, `silu`, `softplus`,
//! `erf`, `gelu`, `gelu_tanh`, `atan`, and `pow(x, y)` for a constant `y`
//! (ONNX `Pow` with a constant exponent, [`crate::program::UnaryOp::PowConst`]).
//! `pow` with `y` = ±0, ±∞ or NaN, and `sin`/`cos` (whose large-argument
//! reduction uses `u128` products), run the scalar function per lane
//! (compiled with the family's target features, so `mul_add` is one
//! instruction).
#![allow(unsafe_code)]

use core::f64::consts;

use super::dispatch::dispatch;
use super::isa::Kernels;
use super::simd64::SimdF64;
use crate::math::{
    self, ATAN_A, ERF_P, ERFCX_G, EXP_Q, EXP2_C, GT_C1, GT_C3, INV_LN2, INV_SQRT_2PI, LN_R, LN2_HI, LN2_LO, LOG2_T,
    MAGIC, MAGIC_BITS, PIO2_1, PIO2_2, PIO4_HI, PIO4_LO, SIGN64, SQRT_HALF_BITS, TWO_INV_LN2_HI, TWO_INV_LN2_LO,
};
use crate::program::UnaryOp;

/// A transcendental function with a lane-wise form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MathFn {
    /// [`math::exp`].
    Exp,
    /// [`math::ln`].
    Ln,
    /// [`math::rsqrt`].
    Rsqrt,
    /// [`math::tanh`].
    Tanh,
    /// [`math::sigmoid`].
    Sigmoid,
    /// [`math::silu`].
    Silu,
    /// [`math::softplus`].
    Softplus,
    /// [`math::erf`].
    Erf,
    /// [`math::gelu`].
    Gelu,
    /// [`math::gelu_tanh`].
    GeluTanh,
    /// [`math::atan`].
    Atan,
    /// `x ↦ math::pow(x, y)` for a constant `y`.
    PowConst(f32),
}

impl MathFn {
    /// Every one-argument function (and `pow` with a few exponents).
    pub const ALL: [MathFn; 11] = [
        MathFn::Exp,
        MathFn::Ln,
        MathFn::Rsqrt,
        MathFn::Tanh,
        MathFn::Sigmoid,
        MathFn::Silu,
        MathFn::Softplus,
        MathFn::Erf,
        MathFn::Gelu,
        MathFn::GeluTanh,
        MathFn::Atan,
    ];

    /// The function computing `op`, if it has a lane-wise form.
    pub fn of(op: UnaryOp) -> Option<Self> {
        Some(match op {
            UnaryOp::Exp => MathFn::Exp,
            UnaryOp::Ln => MathFn::Ln,
            UnaryOp::Rsqrt => MathFn::Rsqrt,
            UnaryOp::Tanh => MathFn::Tanh,
            UnaryOp::Sigmoid => MathFn::Sigmoid,
            UnaryOp::Silu => MathFn::Silu,
            UnaryOp::Softplus => MathFn::Softplus,
            UnaryOp::Erf => MathFn::Erf,
            UnaryOp::GeluExact => MathFn::Gelu,
            UnaryOp::GeluTanh => MathFn::GeluTanh,
            UnaryOp::Atan => MathFn::Atan,
            UnaryOp::PowConst(p) => MathFn::PowConst(p.get()),
            _ => return None,
        })
    }

    /// A short name (`exp`, `pow(3)`, …).
    pub fn name(self) -> String {
        match self {
            MathFn::Exp => "exp".into(),
            MathFn::Ln => "ln".into(),
            MathFn::Rsqrt => "rsqrt".into(),
            MathFn::Tanh => "tanh".into(),
            MathFn::Sigmoid => "sigmoid".into(),
            MathFn::Silu => "silu".into(),
            MathFn::Softplus => "softplus".into(),
            MathFn::Erf => "erf".into(),
            MathFn::Gelu => "gelu".into(),
            MathFn::GeluTanh => "gelu_tanh".into(),
            MathFn::Atan => "atan".into(),
            MathFn::PowConst(y) => format!("pow({y:?})"),
        }
    }

    /// The scalar definition (the `math::` function).
    #[inline(always)]
    pub fn reference(self, x: f32) -> f32 {
        match self {
            MathFn::Exp => math::exp(x),
            MathFn::Ln => math::ln(x),
            MathFn::Rsqrt => math::rsqrt(x),
            MathFn::Tanh => math::tanh(x),
            MathFn::Sigmoid => math::sigmoid(x),
            MathFn::Silu => math::silu(x),
            MathFn::Softplus => math::softplus(x),
            MathFn::Erf => math::erf(x),
            MathFn::Gelu => math::gelu(x),
            MathFn::GeluTanh => math::gelu_tanh(x),
            MathFn::Atan => math::atan(x),
            MathFn::PowConst(y) => math::pow(x, y),
        }
    }

    /// Whether [`map`] runs the lane-wise port (false: the scalar function
    /// per lane).
    pub fn is_vectorised(self) -> bool {
        match self {
            MathFn::PowConst(y) => {
                let ay = y.to_bits() & 0x7fff_ffff;
                ay != 0 && ay < 0x7f80_0000
            }
            _ => true,
        }
    }
}

/// `out[i] = f(x[i])`, bit-identical to `f.reference(x[i])`, with the
/// family `k`.
pub fn map(k: Kernels, f: MathFn, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "vmath::map: length mismatch");
    if !f.is_vectorised() {
        return map_reference(k, f, x, out);
    }
    dispatch!(k, map_body, (f: MathFn, x: &[f32], out: &mut [f32]))
}

/// `out[i] = f.reference(x[i])`: the scalar function per element, compiled
/// with the family's target features (so `mul_add` is one instruction on
/// x86 families). The differential tests' fast reference.
pub fn map_reference(k: Kernels, f: MathFn, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "vmath::map_reference: length mismatch");
    dispatch!(k, reference_body, (f: MathFn, x: &[f32], out: &mut [f32]))
}

#[inline(always)]
unsafe fn reference_body<S: SimdF64>(f: MathFn, x: &[f32], out: &mut [f32]) {
    macro_rules! each {
        ($g:expr) => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = $g(v);
            }
        };
    }
    match f {
        MathFn::Exp => each!(math::exp),
        MathFn::Ln => each!(math::ln),
        MathFn::Rsqrt => each!(math::rsqrt),
        MathFn::Tanh => each!(math::tanh),
        MathFn::Sigmoid => each!(math::sigmoid),
        MathFn::Silu => each!(math::silu),
        MathFn::Softplus => each!(math::softplus),
        MathFn::Erf => each!(math::erf),
        MathFn::Gelu => each!(math::gelu),
        MathFn::GeluTanh => each!(math::gelu_tanh),
        MathFn::Atan => each!(math::atan),
        MathFn::PowConst(y) => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = math::pow(v, y);
            }
        }
    }
}

#[inline(always)]
unsafe fn map_body<S: SimdF64>(f: MathFn, x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    // SAFETY: `map_raw` reads `xp[0..n]` and writes `op[0..n]`, both in
    // bounds; the family precondition is forwarded.
    unsafe {
        match f {
            MathFn::Exp => map_raw::<S, _>(Exp, xp, op, n),
            MathFn::Ln => map_raw::<S, _>(Ln, xp, op, n),
            MathFn::Rsqrt => map_raw::<S, _>(Rsqrt, xp, op, n),
            MathFn::Tanh => map_raw::<S, _>(Tanh, xp, op, n),
            MathFn::Sigmoid => map_raw::<S, _>(Sigmoid, xp, op, n),
            MathFn::Silu => map_raw::<S, _>(Silu, xp, op, n),
            MathFn::Softplus => map_raw::<S, _>(Softplus, xp, op, n),
            MathFn::Erf => map_raw::<S, _>(Erf, xp, op, n),
            MathFn::Gelu => map_raw::<S, _>(Gelu, xp, op, n),
            MathFn::GeluTanh => map_raw::<S, _>(GeluTanh, xp, op, n),
            MathFn::Atan => map_raw::<S, _>(Atan, xp, op, n),
            MathFn::PowConst(y) if y.to_bits() == 0x4000_0000 => map_raw::<S, _>(Square, xp, op, n),
            MathFn::PowConst(y) => map_raw::<S, _>(PowConst::new(y), xp, op, n),
        }
    }
}

/// A function evaluated on `f64` lanes: returns the `f64` values whose
/// rounding to `f32` is the result (NaN lanes are canonicalised after).
pub(crate) trait Lanewise: Copy {
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D;
}

/// `o[i] = f(x[i])` for `i < n`; `x` and `o` may be the same buffer.
///
/// # Safety
/// `x[0..n]` readable, `o[0..n]` writable; the family's instructions are
/// available.
#[inline(always)]
pub(crate) unsafe fn map_raw<S: SimdF64, F: Lanewise>(f: F, x: *const f32, o: *mut f32, n: usize) {
    const { assert!(S::DLANES <= 8) };
    let mut i = 0;
    // SAFETY: every access is below `n` (the caller's bounds); the tail
    // goes through a local buffer.
    unsafe {
        while i + S::DLANES <= n {
            let r = f.eval::<S>(S::load_f32(x.add(i)));
            S::store_f32(o.add(i), canon::<S>(r));
            i += S::DLANES;
        }
        if i < n {
            let r = n - i;
            let mut buf = [0.0f32; 8];
            core::ptr::copy_nonoverlapping(x.add(i), buf.as_mut_ptr(), r);
            let v = f.eval::<S>(S::load_f32(buf.as_ptr()));
            S::store_f32(buf.as_mut_ptr(), canon::<S>(v));
            core::ptr::copy_nonoverlapping(buf.as_ptr(), o.add(i), r);
        }
    }
}

// ---------------------------------------------------------------------------
// Lane helpers: the private helpers of math.rs, lane-wise.

/// `f64` NaN lanes become the canonical NaN (which narrows to `0x7fc00000`).
#[inline(always)]
unsafe fn canon<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::select(S::unord(x, x), S::splat(math::CANONICAL_NAN_F64), x) }
}

#[inline(always)]
unsafe fn c<S: SimdF64>(x: f64) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::splat(x) }
}

/// `-x` (sign flip, exact).
#[inline(always)]
unsafe fn neg<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::xor(x, S::splat_bits(SIGN64)) }
}

/// `math::fabs`.
#[inline(always)]
unsafe fn fabs<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::and(x, S::splat_bits(!SIGN64)) }
}

/// `math::copysign`.
#[inline(always)]
unsafe fn copysign<S: SimdF64>(x: S::D, s: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::or(S::and(x, S::splat_bits(!SIGN64)), S::and(s, S::splat_bits(SIGN64))) }
}

/// `math::clamp`: `x < lo ? lo : x > hi ? hi : x` (NaN passes).
#[inline(always)]
unsafe fn clamp<S: SimdF64>(x: S::D, lo: f64, hi: f64) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (lo, hi) = (c::<S>(lo), c::<S>(hi));
        S::select(S::lt(x, lo), lo, S::select(S::gt(x, hi), hi, x))
    }
}

/// `math::round_int`: (k as f64, k as i64 lane pattern).
#[inline(always)]
unsafe fn round_int<S: SimdF64>(x: S::D) -> (S::D, S::D) {
    // SAFETY: forwarded family precondition.
    unsafe {
        let t = S::add(x, c::<S>(MAGIC));
        let k = S::sub(t, c::<S>(MAGIC));
        let ki = S::isub(t, S::splat_bits(MAGIC_BITS));
        (k, ki)
    }
}

/// `math::pow2i` of an i64 lane pattern.
#[inline(always)]
unsafe fn pow2i<S: SimdF64>(k: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::shl52(S::iadd(k, S::splat_bits(1023))) }
}

/// `math::horner`: one `mul_add` per coefficient, highest degree first.
#[inline(always)]
unsafe fn horner<S: SimdF64, const N: usize>(x: S::D, cs: &[f64; N]) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let mut acc = c::<S>(cs[N - 1]);
        let mut i = N - 1;
        while i > 0 {
            i -= 1;
            acc = S::fma(acc, x, c::<S>(cs[i]));
        }
        acc
    }
}

/// `math::sum_to_f32` (returns the `f64` rounded to odd; its conversion is
/// the result).
#[inline(always)]
unsafe fn sum_to_f32<S: SimdF64>(a: S::D, b: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let s = S::add(a, b);
        let bb = S::sub(s, a);
        let err = S::add(S::sub(a, S::sub(s, bb)), S::sub(b, bb));
        let one = S::splat_bits(1);
        let even = S::ieq(S::and(s, one), S::splat_bits(0));
        let zero = c::<S>(0.0);
        let fix = S::mand(S::ne(err, zero), even);
        let up = S::meq(S::gt(err, zero), S::gt(s, zero));
        let s_odd = S::select(up, S::iadd(s, one), S::isub(s, one));
        S::select(fix, s_odd, s)
    }
}

/// `math::exp_parts`: (m, k) with e^x = 2^k (1 + m).
#[inline(always)]
unsafe fn exp_parts<S: SimdF64>(x: S::D) -> (S::D, S::D) {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (k, ki) = round_int::<S>(S::mul(x, c::<S>(INV_LN2)));
        let nk = neg::<S>(k);
        let r = S::fma(nk, c::<S>(LN2_HI), x);
        let r = S::fma(nk, c::<S>(LN2_LO), r);
        let q = horner::<S, 10>(r, &EXP_Q);
        let m = S::fma(S::mul(r, r), q, r);
        (m, ki)
    }
}

/// `math::exp_core`.
#[inline(always)]
unsafe fn exp_core<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (m, k) = exp_parts::<S>(x);
        S::mul(S::add(c::<S>(1.0), m), pow2i::<S>(k))
    }
}

/// `math::expm1_core`.
#[inline(always)]
unsafe fn expm1_core<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (m, k) = exp_parts::<S>(x);
        let s = pow2i::<S>(k);
        S::fma(s, m, S::sub(s, c::<S>(1.0)))
    }
}

/// `math::log_split`: (e as f64, f). The arithmetic shift `(tmp as i64) >>
/// 52` is a logical shift followed by a 12-bit sign extension; `e as f64`
/// (|e| < 2¹¹) is exact through the 1.5·2⁵² bias.
#[inline(always)]
unsafe fn log_split<S: SimdF64>(x: S::D) -> (S::D, S::D) {
    // SAFETY: forwarded family precondition.
    unsafe {
        let tmp = S::isub(x, S::splat_bits(SQRT_HALF_BITS));
        let sign_bit = S::splat_bits(0x800);
        let e = S::isub(S::xor(S::shr52(tmp), sign_bit), sign_bit);
        let m = S::isub(x, S::shl52(e));
        let ef = S::sub(S::iadd(e, S::splat_bits(MAGIC_BITS)), c::<S>(MAGIC));
        (ef, S::sub(m, c::<S>(1.0)))
    }
}

/// `math::ln1p_reduced`.
#[inline(always)]
unsafe fn ln1p_reduced<S: SimdF64>(f: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let s = S::div(f, S::add(c::<S>(2.0), f));
        let z = S::mul(s, s);
        let r = S::mul(z, horner::<S, 8>(z, &LN_R));
        let hfsq = S::mul(S::mul(c::<S>(0.5), f), f);
        S::sub(f, S::sub(hfsq, S::mul(s, S::add(hfsq, r))))
    }
}

/// `math::ln_core`.
#[inline(always)]
unsafe fn ln_core<S: SimdF64>(x: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (e, f) = log_split::<S>(x);
        let l = ln1p_reduced::<S>(f);
        S::fma(e, c::<S>(LN2_HI), S::fma(e, c::<S>(LN2_LO), l))
    }
}

/// `math::log1p_core`.
#[inline(always)]
unsafe fn log1p_core<S: SimdF64>(u: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let one = c::<S>(1.0);
        let w = S::add(one, u);
        let cc = S::sub(u, S::sub(w, one));
        S::add(ln_core::<S>(w), S::div(cc, w))
    }
}

/// `math::log2_dd`: log2 x as a double-double.
#[inline(always)]
unsafe fn log2_dd<S: SimdF64>(x: S::D) -> (S::D, S::D) {
    // SAFETY: forwarded family precondition.
    unsafe {
        let (e, f) = log_split::<S>(x);
        let d = S::add(c::<S>(2.0), f);
        let s = S::div(f, d);
        let s_lo = S::div(S::fma(neg::<S>(s), d, f), d);
        let z = S::mul(s, s);
        let tail = S::mul(S::mul(s, z), horner::<S, 8>(z, &LOG2_T));
        let k = c::<S>(TWO_INV_LN2_HI);
        let hi = S::mul(k, s);
        let lo = S::fma(k, s, neg::<S>(hi));
        let lo = S::add(S::add(lo, S::fma(k, s_lo, S::mul(c::<S>(TWO_INV_LN2_LO), s))), tail);
        let h2 = S::add(hi, lo);
        let l2 = S::sub(lo, S::sub(h2, hi));
        let l_hi = S::add(e, h2);
        let l_lo = S::add(S::sub(h2, S::sub(l_hi, e)), l2);
        (l_hi, l_lo)
    }
}

/// `math::exp2_dd`.
#[inline(always)]
unsafe fn exp2_dd<S: SimdF64>(t_hi: S::D, t_lo: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let big = S::gt(fabs::<S>(t_hi), c::<S>(400.0));
        let th = clamp::<S>(t_hi, -400.0, 400.0);
        let tl = S::select(big, c::<S>(0.0), t_lo);
        let (k, ki) = round_int::<S>(th);
        let r = S::add(S::sub(th, k), tl);
        S::mul(horner::<S, 12>(r, &EXP2_C), pow2i::<S>(ki))
    }
}

/// `math::erfc_tail`.
#[inline(always)]
unsafe fn erfc_tail<S: SimdF64>(z: S::D, zz: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let three = c::<S>(3.0);
        let t = S::div(S::sub(z, three), S::add(z, three));
        S::mul(exp_core::<S>(neg::<S>(zz)), horner::<S, 20>(t, &ERFCX_G))
    }
}

/// `math::erf_small`.
#[inline(always)]
unsafe fn erf_small<S: SimdF64>(z: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe { S::mul(z, horner::<S, 11>(S::mul(z, z), &ERF_P)) }
}

/// The `|x| < 2^-30` branch shared by silu / gelu / gelu_tanh:
/// `x < lo ? -0 : |x| < 2^-30 ? (x == 0 ? x : small) : v`.
#[inline(always)]
unsafe fn tiny_and_tail<S: SimdF64>(xd: S::D, lo: f64, small: S::D, v: S::D) -> S::D {
    // SAFETY: forwarded family precondition.
    unsafe {
        let tiny = S::lt(fabs::<S>(xd), c::<S>(9.313225746154785e-10));
        let t = S::select(S::eq(xd, c::<S>(0.0)), xd, small);
        S::select(S::lt(xd, c::<S>(lo)), c::<S>(-0.0), S::select(tiny, t, v))
    }
}

// ---------------------------------------------------------------------------
// The functions (each mirrors the `math::` function of the same name).

macro_rules! unit {
    ($($name:ident),*) => {$(
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name;
    )*};
}
unit!(Exp, Ln, Rsqrt, Tanh, Sigmoid, Silu, Softplus, Erf, Gelu, GeluTanh, Atan, Square);

impl Lanewise for Exp {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe { exp_core::<S>(clamp::<S>(x, -112.0, 100.0)) }
    }
}

impl Lanewise for Ln {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let l = ln_core::<S>(x);
            let zero = c::<S>(0.0);
            let inf = c::<S>(f64::INFINITY);
            let r = S::select(S::eq(x, inf), x, c::<S>(f64::NAN));
            let r = S::select(S::eq(x, zero), c::<S>(f64::NEG_INFINITY), r);
            S::select(S::mand(S::gt(x, zero), S::lt(x, inf)), l, r)
        }
    }
}

impl Lanewise for Rsqrt {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe { S::div(c::<S>(1.0), S::sqrt(x)) }
    }
}

impl Lanewise for Tanh {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let a = clamp::<S>(fabs::<S>(x), 0.0, 20.0);
            let u = expm1_core::<S>(S::mul(c::<S>(2.0), a));
            let t = copysign::<S>(S::div(u, S::add(u, c::<S>(2.0))), x);
            S::select(S::eq(x, c::<S>(0.0)), x, t)
        }
    }
}

impl Lanewise for Sigmoid {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let xc = clamp::<S>(x, -120.0, 120.0);
            let e = exp_core::<S>(neg::<S>(xc));
            let one = c::<S>(1.0);
            S::div(one, S::add(one, e))
        }
    }
}

impl Lanewise for Silu {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let e = exp_core::<S>(neg::<S>(clamp::<S>(x, -120.0, 120.0)));
            let v = S::div(x, S::add(c::<S>(1.0), e));
            let small = sum_to_f32::<S>(S::mul(c::<S>(0.5), x), S::mul(S::mul(c::<S>(0.25), x), x));
            tiny_and_tail::<S>(x, -120.0, small, v)
        }
    }
}

impl Lanewise for Softplus {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let a = clamp::<S>(fabs::<S>(x), 0.0, 120.0);
            let l = log1p_core::<S>(exp_core::<S>(neg::<S>(a)));
            S::select(S::gt(x, c::<S>(0.0)), S::add(x, l), l)
        }
    }
}

impl Lanewise for Erf {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let a = clamp::<S>(fabs::<S>(x), 0.0, 6.0);
            let small = S::lt(a, c::<S>(0.75));
            // A branch no lane takes is not evaluated (it would be blended
            // away).
            if S::all(small) {
                return erf_small::<S>(x);
            }
            let tail = copysign::<S>(S::sub(c::<S>(1.0), erfc_tail::<S>(a, S::mul(a, a))), x);
            if !S::any(small) {
                return tail;
            }
            S::select(small, erf_small::<S>(x), tail)
        }
    }
}

impl Lanewise for Gelu {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let xc = clamp::<S>(x, -14.5, 14.5);
            let zs = S::mul(xc, c::<S>(consts::FRAC_1_SQRT_2));
            let z = fabs::<S>(zs);
            let half = c::<S>(0.5);
            let small = S::lt(z, c::<S>(0.75));
            // (Macros, not closures: closures would not inherit the
            // kernel's target features.)
            macro_rules! phi_small {
                () => {
                    S::fma(half, erf_small::<S>(zs), half)
                };
            }
            macro_rules! phi_tail {
                () => {{
                    let h = S::mul(half, erfc_tail::<S>(z, S::mul(half, S::mul(xc, xc))));
                    S::select(S::lt(x, c::<S>(0.0)), h, S::sub(c::<S>(1.0), h))
                }};
            }
            // Only the branches some lane takes are evaluated.
            let phi = if S::all(small) {
                phi_small!()
            } else if !S::any(small) {
                phi_tail!()
            } else {
                S::select(small, phi_small!(), phi_tail!())
            };
            let v = S::mul(x, phi);
            let small = sum_to_f32::<S>(S::mul(half, x), S::mul(S::mul(c::<S>(INV_SQRT_2PI), x), x));
            tiny_and_tail::<S>(x, -14.5, small, v)
        }
    }
}

impl Lanewise for GeluTanh {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let xc = clamp::<S>(x, -12.0, 12.0);
            let w = S::fma(S::mul(c::<S>(GT_C3), S::mul(xc, xc)), xc, S::mul(c::<S>(GT_C1), xc));
            let v = S::div(x, S::add(c::<S>(1.0), exp_core::<S>(neg::<S>(w))));
            let small = sum_to_f32::<S>(S::mul(c::<S>(0.5), x), S::mul(S::mul(c::<S>(INV_SQRT_2PI), x), x));
            tiny_and_tail::<S>(x, -12.0, small, v)
        }
    }
}

impl Lanewise for Atan {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let a = fabs::<S>(x);
            let one = c::<S>(1.0);
            let big = S::gt(a, c::<S>(2.414213562373095));
            let mid = S::gt(a, c::<S>(0.41421356237309503));
            macro_rules! sel3 {
                ($b:expr, $m:expr, $s:expr) => {
                    S::select(big, $b, S::select(mid, $m, $s))
                };
            }
            let num = sel3!(c::<S>(-1.0), S::sub(a, one), a);
            let den = sel3!(a, S::add(a, one), one);
            let c_hi = sel3!(c::<S>(PIO2_1), c::<S>(PIO4_HI), c::<S>(0.0));
            let c_lo = sel3!(c::<S>(PIO2_2), c::<S>(PIO4_LO), c::<S>(0.0));
            let u = S::div(num, den);
            let z = S::mul(u, u);
            let p = S::fma(S::mul(u, z), horner::<S, 11>(z, &ATAN_A), u);
            let v = copysign::<S>(S::add(c_hi, S::add(c_lo, p)), x);
            S::select(S::eq(x, c::<S>(0.0)), x, v)
        }
    }
}

/// `math::pow(x, 2)`: the `y == 2` branch (`(x·x) as f32`) after the
/// `x == +1` and NaN cases.
impl Lanewise for Square {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            let r = S::select(S::unord(x, x), c::<S>(f64::NAN), S::mul(x, x));
            S::select(S::eq(x, c::<S>(1.0)), c::<S>(1.0), r)
        }
    }
}

/// `math::pow(x, y)` for a constant finite non-zero `y ≠ 2` (the other
/// exponents are not vectorised, see [`MathFn::is_vectorised`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PowConst {
    y: f64,
    y_int: bool,
    y_odd: bool,
    y_neg: bool,
}

impl PowConst {
    fn new(y: f32) -> Self {
        let (y_int, y_odd) = math::classify_int(y.to_bits() & 0x7fff_ffff);
        Self { y: y as f64, y_int, y_odd, y_neg: y.to_bits() >> 31 != 0 }
    }
}

impl Lanewise for PowConst {
    #[inline(always)]
    unsafe fn eval<S: SimdF64>(self, x: S::D) -> S::D {
        // SAFETY: forwarded family precondition.
        unsafe {
            // Core path: `f32::from_bits(ax) as f64` is |x| (the NaN lanes
            // are replaced below).
            let (l_hi, l_lo) = log2_dd::<S>(fabs::<S>(x));
            let yd = c::<S>(self.y);
            let t_hi = S::mul(yd, l_hi);
            let t_lo = S::add(S::fma(yd, l_hi, neg::<S>(t_hi)), S::mul(yd, l_lo));
            let mag = exp2_dd::<S>(t_hi, t_lo);
            // `x_neg && y_odd ? -v : v` for a y_odd known here: the sign bit
            // of x moved onto v (negating before or after the rounding to
            // f32 is the same).
            let sx = S::and(x, S::splat_bits(SIGN64));
            let odd = self.y_odd;
            macro_rules! odd_sign {
                ($v:expr) => {
                    if odd { S::xor($v, sx) } else { $v }
                };
            }
            // The scalar if-chain, lowest priority first.
            let mut r = odd_sign!(mag);
            if !self.y_int {
                // x_neg && !y_int (x is finite non-zero and not NaN here).
                r = S::select(S::lt(x, c::<S>(0.0)), c::<S>(f64::NAN), r);
            }
            let (at_inf, at_zero) = if self.y_neg { (0.0, f64::INFINITY) } else { (f64::INFINITY, 0.0) };
            r = S::select(S::eq(fabs::<S>(x), c::<S>(f64::INFINITY)), odd_sign!(c::<S>(at_inf)), r);
            r = S::select(S::eq(x, c::<S>(0.0)), odd_sign!(c::<S>(at_zero)), r);
            // (y == ±∞ and y == 2 are not handled here.)
            r = S::select(S::unord(x, x), c::<S>(f64::NAN), r);
            S::select(S::eq(x, c::<S>(1.0)), c::<S>(1.0), r)
        }
    }
}

/// e^x of `n` floats in place (`math::exp`), for the softmax kernel.
///
/// # Safety
/// `p[0..n]` readable and writable; the family's instructions are available.
#[inline(always)]
pub(crate) unsafe fn exp_in_place<S: SimdF64>(p: *mut f32, n: usize) {
    // SAFETY: forwarded.
    unsafe { map_raw::<S, _>(Exp, p, p, n) }
}
