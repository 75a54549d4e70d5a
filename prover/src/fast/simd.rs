//! The vector abstraction the kernels are written against, with one
//! implementation per [`super::Isa`] family.
//!
//! Every operation is exactly the IEEE-754 binary32 operation of the same
//! name, lane by lane, round-to-nearest-even, no flush-to-zero (Rust never
//! sets FTZ/DAZ): `fma` is the fused multiply-add (`vfmadd`, correctly
//! rounded, the same as `f32::mul_add`), `sqrt` and `div` are the correctly
//! rounded IEEE operations. Nothing here reassociates; kernels vectorise
//! across independent output elements only.
//!
//! The functions are `#[inline(always)] unsafe fn` without target features
//! of their own: they are only ever inlined into a kernel compiled with
//! `#[target_feature(enable = …)]` for their family and reached through a
//! [`super::Kernels`] token, which proves the CPU supports the family.
#![allow(unsafe_code)]

use crate::math::CANONICAL_NAN;

/// One kernel family's vector of f32 lanes.
pub(crate) trait Simd: Copy + 'static {
    /// The vector.
    type V: Copy;
    /// A lane mask.
    type M: Copy;
    /// Lanes per vector.
    const LANES: usize;

    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` floats.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` floats.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Loads lanes `0..n` (`n < LANES`), the rest are `+0.0`; reads only
    /// `n` floats.
    unsafe fn load_n(p: *const f32, n: usize) -> Self::V;
    /// Stores lanes `0..n` (`n ≤ LANES`); writes only `n` floats.
    unsafe fn store_n(p: *mut f32, v: Self::V, n: usize);
    /// `a·b + c`, fused (one rounding).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sqrt(a: Self::V) -> Self::V;
    /// Bitwise and / or / xor of the lanes' bit patterns.
    unsafe fn and(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn or(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn xor(a: Self::V, b: Self::V) -> Self::V;
    /// Ordered comparisons (false when either lane is NaN).
    unsafe fn lt(a: Self::V, b: Self::V) -> Self::M;
    unsafe fn gt(a: Self::V, b: Self::V) -> Self::M;
    /// True where either lane is NaN.
    unsafe fn unord(a: Self::V, b: Self::V) -> Self::M;
    /// `m ? t : f` lane-wise.
    unsafe fn select(m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// `a > b ? a : b` (the x86 `maxps` rule: `b` when unordered or equal).
    unsafe fn max_gt(a: Self::V, b: Self::V) -> Self::V;
    /// `a < b ? a : b` (the x86 `minps` rule).
    unsafe fn min_lt(a: Self::V, b: Self::V) -> Self::V;

    /// NaN lanes become the canonical NaN `0x7fc00000`.
    #[inline(always)]
    unsafe fn canon(v: Self::V) -> Self::V {
        // SAFETY: forwarded preconditions (the family is supported).
        unsafe { Self::select(Self::unord(v, v), Self::splat(CANONICAL_NAN), v) }
    }

    /// [`crate::ops::elementwise::fmax`]: NaN-propagating (canonical NaN),
    /// `max(-0, +0) = +0`. For equal lanes the result is `a & b` bitwise,
    /// which is `a` unless they are zeros of different signs.
    #[inline(always)]
    unsafe fn fmax(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: forwarded preconditions.
        unsafe {
            let r = Self::select(Self::gt(a, b), a, Self::and(a, b));
            let r = Self::select(Self::lt(a, b), b, r);
            Self::select(Self::unord(a, b), Self::splat(CANONICAL_NAN), r)
        }
    }

    /// [`crate::ops::elementwise::fmin`]: NaN-propagating, `min(-0, +0) =
    /// -0`; equal lanes give `a | b`.
    #[inline(always)]
    unsafe fn fmin(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: forwarded preconditions.
        unsafe {
            let r = Self::select(Self::lt(a, b), a, Self::or(a, b));
            let r = Self::select(Self::gt(a, b), b, r);
            Self::select(Self::unord(a, b), Self::splat(CANONICAL_NAN), r)
        }
    }
}

/// The portable family: one lane, `f32::mul_add`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    type V = f32;
    type M = bool;
    const LANES: usize = 1;

    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> f32 {
        // SAFETY: `n ≥ 1` means `p` is readable (caller's guarantee).
        if n > 0 { unsafe { p.read_unaligned() } } else { 0.0 }
    }
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, v: f32, n: usize) {
        if n > 0 {
            // SAFETY: `n ≥ 1` means `p` is writable (caller's guarantee).
            unsafe { p.write_unaligned(v) }
        }
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn div(a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    unsafe fn sqrt(a: f32) -> f32 {
        a.sqrt()
    }
    #[inline(always)]
    unsafe fn and(a: f32, b: f32) -> f32 {
        f32::from_bits(a.to_bits() & b.to_bits())
    }
    #[inline(always)]
    unsafe fn or(a: f32, b: f32) -> f32 {
        f32::from_bits(a.to_bits() | b.to_bits())
    }
    #[inline(always)]
    unsafe fn xor(a: f32, b: f32) -> f32 {
        f32::from_bits(a.to_bits() ^ b.to_bits())
    }
    #[inline(always)]
    unsafe fn lt(a: f32, b: f32) -> bool {
        a < b
    }
    #[inline(always)]
    unsafe fn gt(a: f32, b: f32) -> bool {
        a > b
    }
    #[inline(always)]
    unsafe fn unord(a: f32, b: f32) -> bool {
        a.is_nan() || b.is_nan()
    }
    #[inline(always)]
    unsafe fn select(m: bool, t: f32, f: f32) -> f32 {
        if m { t } else { f }
    }
    #[inline(always)]
    unsafe fn max_gt(a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }
    #[inline(always)]
    unsafe fn min_lt(a: f32, b: f32) -> f32 {
        if a < b { a } else { b }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX2 + FMA: 8 lanes.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2;

    /// Lane-index mask for the first `n` lanes of an AVX2 vector.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        // SAFETY: AVX2 is enabled in every caller (see the module docs).
        unsafe {
            let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
        }
    }

    // SAFETY (for every `unsafe` block in this impl): the functions are only
    // inlined into `#[target_feature(enable = "avx2,fma")]` kernels reached
    // through a `Kernels` token proving AVX2 and FMA are available; pointer
    // arguments are valid for the lanes accessed (callers' contract).
    impl Simd for Avx2 {
        type V = __m256;
        type M = __m256;
        const LANES: usize = 8;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: see the impl comment.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_n(p: *const f32, n: usize) -> __m256 {
            // SAFETY: masked-off lanes are not accessed (vmaskmov).
            unsafe { _mm256_maskload_ps(p, mask8(n)) }
        }
        #[inline(always)]
        unsafe fn store_n(p: *mut f32, v: __m256, n: usize) {
            // SAFETY: masked-off lanes are not accessed (vmaskmov).
            unsafe { _mm256_maskstore_ps(p, mask8(n), v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sqrt(a: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_sqrt_ps(a) }
        }
        #[inline(always)]
        unsafe fn and(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_and_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn or(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_or_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn xor(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_xor_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn lt(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn gt(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn unord(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b) }
        }
        #[inline(always)]
        unsafe fn select(m: __m256, t: __m256, f: __m256) -> __m256 {
            // SAFETY: see the impl comment.
            unsafe { _mm256_blendv_ps(f, t, m) }
        }
        #[inline(always)]
        unsafe fn max_gt(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment (vmaxps returns b unless a > b).
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn min_lt(a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl comment (vminps returns b unless a < b).
            unsafe { _mm256_min_ps(a, b) }
        }
    }

    /// AVX-512F: 16 lanes.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx512;

    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
    }

    // SAFETY (for every `unsafe` block in this impl): only inlined into
    // `#[target_feature(enable = "avx512f,…")]` kernels reached through a
    // `Kernels` token proving AVX-512F is available; pointer arguments are
    // valid for the lanes accessed (callers' contract; masked lanes are
    // never accessed).
    impl Simd for Avx512 {
        type V = __m512;
        type M = __mmask16;
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: see the impl comment.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_n(p: *const f32, n: usize) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
        }
        #[inline(always)]
        unsafe fn store_n(p: *mut f32, v: __m512, n: usize) {
            // SAFETY: see the impl comment.
            unsafe { _mm512_mask_storeu_ps(p, mask16(n), v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_div_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sqrt(a: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_sqrt_ps(a) }
        }
        #[inline(always)]
        unsafe fn and(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment (integer and: AVX-512F only).
            unsafe { _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b))) }
        }
        #[inline(always)]
        unsafe fn or(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b))) }
        }
        #[inline(always)]
        unsafe fn xor(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b))) }
        }
        #[inline(always)]
        unsafe fn lt(a: __m512, b: __m512) -> __mmask16 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn gt(a: __m512, b: __m512) -> __mmask16 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn unord(a: __m512, b: __m512) -> __mmask16 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b) }
        }
        #[inline(always)]
        unsafe fn select(m: __mmask16, t: __m512, f: __m512) -> __m512 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_mask_blend_ps(m, f, t) }
        }
        #[inline(always)]
        unsafe fn max_gt(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment (vmaxps returns b unless a > b).
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn min_lt(a: __m512, b: __m512) -> __m512 {
            // SAFETY: see the impl comment (vminps returns b unless a < b).
            unsafe { _mm512_min_ps(a, b) }
        }
    }
}

/// Whether the thread's floating-point environment is the IEEE default the
/// kernels (and the reference) assume: round to nearest even, no
/// flush-to-zero, no denormals-are-zero. (x86-64: MXCSR bits 6, 13–15;
/// other targets: assumed, Rust never changes it.)
pub(crate) fn fp_env_is_default() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` only stores the 32-bit MXCSR register to the
        // given, valid, aligned location.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        const DAZ: u32 = 1 << 6;
        const RC: u32 = 0b11 << 13;
        const FTZ: u32 = 1 << 15;
        csr & (DAZ | RC | FTZ) == 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}
