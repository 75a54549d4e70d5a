//! f64 lanes for the lane-wise ports of `math.rs` ([`super::vmath`]).
//!
//! The transcendental functions of [`crate::math`] convert their `f32`
//! argument to `f64`, run a fixed sequence of `f64` operations and round
//! once to `f32`. A port runs the same sequence on a vector of `f64` lanes:
//! AVX-512F 8 lanes, AVX2+FMA 4 lanes, the portable family 1 lane (plain
//! `f64`, `f64::mul_add`). Every operation here is the IEEE-754 binary64
//! operation of the same name (correctly rounded, round-to-nearest-even, no
//! flush-to-zero), an exact bit operation, or an exact conversion:
//!
//! * [`SimdF64::load_f32`] widens `f32 → f64` (exact, like `as f64`);
//! * [`SimdF64::store_f32`] narrows `f64 → f32` with round-to-nearest-even,
//!   into the subnormal range and to ±∞ on overflow (like `as f32`);
//! * the integer operations act on the 64-bit lane patterns with wrapping
//!   arithmetic (like `u64::wrapping_*` on `to_bits()`).
//!
//! As in [`super::simd`], the functions are `#[inline(always)] unsafe fn`
//! only ever inlined into a kernel compiled with the family's target
//! features and reached through a [`super::Kernels`] token.
#![allow(unsafe_code)]

use super::simd::Scalar;

/// One kernel family's vector of `f64` lanes (and its lane masks).
pub(crate) trait SimdF64: Copy + 'static {
    /// The vector of `f64` lanes (also used for 64-bit integer lanes).
    type D: Copy;
    /// A lane mask.
    type B: Copy;
    /// Lanes per vector.
    const DLANES: usize;

    /// Loads `DLANES` floats and widens them to `f64` (exact).
    unsafe fn load_f32(p: *const f32) -> Self::D;
    /// Rounds the lanes to `f32` (nearest even) and stores `DLANES` floats.
    unsafe fn store_f32(p: *mut f32, v: Self::D);
    unsafe fn splat(x: f64) -> Self::D;
    /// The lanes with bit pattern `b`.
    #[inline(always)]
    unsafe fn splat_bits(b: u64) -> Self::D {
        // SAFETY: forwarded family precondition.
        unsafe { Self::splat(f64::from_bits(b)) }
    }
    unsafe fn add(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn sub(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn mul(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn div(a: Self::D, b: Self::D) -> Self::D;
    /// `a·b + c`, fused (one rounding; `f64::mul_add`).
    unsafe fn fma(a: Self::D, b: Self::D, c: Self::D) -> Self::D;
    unsafe fn sqrt(a: Self::D) -> Self::D;
    /// Bitwise and / or / xor of the lane patterns.
    unsafe fn and(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn or(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn xor(a: Self::D, b: Self::D) -> Self::D;
    /// Wrapping 64-bit integer add / sub of the lane patterns.
    unsafe fn iadd(a: Self::D, b: Self::D) -> Self::D;
    unsafe fn isub(a: Self::D, b: Self::D) -> Self::D;
    /// Logical shifts of the lane patterns by 52.
    unsafe fn shl52(a: Self::D) -> Self::D;
    unsafe fn shr52(a: Self::D) -> Self::D;
    /// Equality of the lane patterns (as 64-bit integers).
    unsafe fn ieq(a: Self::D, b: Self::D) -> Self::B;
    /// Ordered comparisons (false when either lane is NaN), like Rust's
    /// `<`, `>`, `==`.
    unsafe fn lt(a: Self::D, b: Self::D) -> Self::B;
    unsafe fn gt(a: Self::D, b: Self::D) -> Self::B;
    unsafe fn eq(a: Self::D, b: Self::D) -> Self::B;
    /// Rust's `!=`: true when unequal or either lane is NaN.
    unsafe fn ne(a: Self::D, b: Self::D) -> Self::B;
    /// True where either lane is NaN.
    unsafe fn unord(a: Self::D, b: Self::D) -> Self::B;
    unsafe fn mand(a: Self::B, b: Self::B) -> Self::B;
    /// Mask equality (`a == b` on the lanes' booleans).
    unsafe fn meq(a: Self::B, b: Self::B) -> Self::B;
    /// Whether any lane of the mask is set.
    unsafe fn any(m: Self::B) -> bool;
    /// Whether every lane of the mask is set.
    unsafe fn all(m: Self::B) -> bool;
    /// `m ? t : f` lane-wise.
    unsafe fn select(m: Self::B, t: Self::D, f: Self::D) -> Self::D;
}

/// The portable family: one `f64` lane.
impl SimdF64 for Scalar {
    type D = f64;
    type B = bool;
    const DLANES: usize = 1;

    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> f64 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { p.read_unaligned() as f64 }
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: f64) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { p.write_unaligned(v as f32) }
    }
    #[inline(always)]
    unsafe fn splat(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    unsafe fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f64, b: f64) -> f64 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
    #[inline(always)]
    unsafe fn div(a: f64, b: f64) -> f64 {
        a / b
    }
    #[inline(always)]
    unsafe fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn sqrt(a: f64) -> f64 {
        a.sqrt()
    }
    #[inline(always)]
    unsafe fn and(a: f64, b: f64) -> f64 {
        f64::from_bits(a.to_bits() & b.to_bits())
    }
    #[inline(always)]
    unsafe fn or(a: f64, b: f64) -> f64 {
        f64::from_bits(a.to_bits() | b.to_bits())
    }
    #[inline(always)]
    unsafe fn xor(a: f64, b: f64) -> f64 {
        f64::from_bits(a.to_bits() ^ b.to_bits())
    }
    #[inline(always)]
    unsafe fn iadd(a: f64, b: f64) -> f64 {
        f64::from_bits(a.to_bits().wrapping_add(b.to_bits()))
    }
    #[inline(always)]
    unsafe fn isub(a: f64, b: f64) -> f64 {
        f64::from_bits(a.to_bits().wrapping_sub(b.to_bits()))
    }
    #[inline(always)]
    unsafe fn shl52(a: f64) -> f64 {
        f64::from_bits(a.to_bits() << 52)
    }
    #[inline(always)]
    unsafe fn shr52(a: f64) -> f64 {
        f64::from_bits(a.to_bits() >> 52)
    }
    #[inline(always)]
    unsafe fn ieq(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits()
    }
    #[inline(always)]
    unsafe fn lt(a: f64, b: f64) -> bool {
        a < b
    }
    #[inline(always)]
    unsafe fn gt(a: f64, b: f64) -> bool {
        a > b
    }
    #[inline(always)]
    unsafe fn eq(a: f64, b: f64) -> bool {
        a == b
    }
    #[inline(always)]
    unsafe fn ne(a: f64, b: f64) -> bool {
        a != b
    }
    #[inline(always)]
    unsafe fn unord(a: f64, b: f64) -> bool {
        a.is_nan() || b.is_nan()
    }
    #[inline(always)]
    unsafe fn mand(a: bool, b: bool) -> bool {
        a & b
    }
    #[inline(always)]
    unsafe fn meq(a: bool, b: bool) -> bool {
        a == b
    }
    #[inline(always)]
    unsafe fn any(m: bool) -> bool {
        m
    }
    #[inline(always)]
    unsafe fn all(m: bool) -> bool {
        m
    }
    #[inline(always)]
    unsafe fn select(m: bool, t: f64, f: f64) -> f64 {
        if m { t } else { f }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::simd::{Avx2, Avx512};
    use super::SimdF64;

    #[inline(always)]
    unsafe fn i(a: __m256d) -> __m256i {
        // SAFETY: a bit cast (AVX, enabled in every caller).
        unsafe { _mm256_castpd_si256(a) }
    }
    #[inline(always)]
    unsafe fn d(a: __m256i) -> __m256d {
        // SAFETY: a bit cast.
        unsafe { _mm256_castsi256_pd(a) }
    }

    // SAFETY (for every `unsafe` block in this impl): the functions are only
    // inlined into `#[target_feature(enable = "avx2,fma")]` kernels reached
    // through a `Kernels` token proving AVX2 and FMA are available; pointer
    // arguments are valid for the lanes accessed (callers' contract).
    impl SimdF64 for Avx2 {
        type D = __m256d;
        type B = __m256d;
        const DLANES: usize = 4;

        #[inline(always)]
        unsafe fn load_f32(p: *const f32) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn store_f32(p: *mut f32, v: __m256d) {
            // SAFETY: see the impl comment (vcvtpd2ps rounds with MXCSR.RC,
            // nearest-even in the default environment the executor checks).
            unsafe { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)) }
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_sub_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_mul_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_div_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sqrt(a: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_sqrt_pd(a) }
        }
        #[inline(always)]
        unsafe fn and(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_and_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn or(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_or_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn xor(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_xor_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn iadd(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { d(_mm256_add_epi64(i(a), i(b))) }
        }
        #[inline(always)]
        unsafe fn isub(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { d(_mm256_sub_epi64(i(a), i(b))) }
        }
        #[inline(always)]
        unsafe fn shl52(a: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { d(_mm256_slli_epi64::<52>(i(a))) }
        }
        #[inline(always)]
        unsafe fn shr52(a: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { d(_mm256_srli_epi64::<52>(i(a))) }
        }
        #[inline(always)]
        unsafe fn ieq(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { d(_mm256_cmpeq_epi64(i(a), i(b))) }
        }
        #[inline(always)]
        unsafe fn lt(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn gt(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn eq(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_pd::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn ne(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_pd::<_CMP_NEQ_UQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn unord(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(a, b) }
        }
        #[inline(always)]
        unsafe fn mand(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_and_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn meq(a: __m256d, b: __m256d) -> __m256d {
            // SAFETY: see the impl comment (masks are all-ones or all-zeros
            // lanes, so pattern equality is boolean equality).
            unsafe { d(_mm256_cmpeq_epi64(i(a), i(b))) }
        }
        #[inline(always)]
        unsafe fn any(m: __m256d) -> bool {
            // SAFETY: see the impl comment.
            unsafe { _mm256_movemask_pd(m) != 0 }
        }
        #[inline(always)]
        unsafe fn all(m: __m256d) -> bool {
            // SAFETY: see the impl comment.
            unsafe { _mm256_movemask_pd(m) == 0xf }
        }
        #[inline(always)]
        unsafe fn select(m: __m256d, t: __m256d, f: __m256d) -> __m256d {
            // SAFETY: see the impl comment.
            unsafe { _mm256_blendv_pd(f, t, m) }
        }
    }

    #[inline(always)]
    unsafe fn i5(a: __m512d) -> __m512i {
        // SAFETY: a bit cast (AVX-512F, enabled in every caller).
        unsafe { _mm512_castpd_si512(a) }
    }
    #[inline(always)]
    unsafe fn d5(a: __m512i) -> __m512d {
        // SAFETY: a bit cast.
        unsafe { _mm512_castsi512_pd(a) }
    }

    // SAFETY (for every `unsafe` block in this impl): only inlined into
    // `#[target_feature(enable = "avx512f,…")]` kernels reached through a
    // `Kernels` token proving AVX-512F is available; pointer arguments are
    // valid for the lanes accessed (callers' contract). Only AVX-512F
    // instructions are used (no DQ: bit operations go through the integer
    // forms).
    impl SimdF64 for Avx512 {
        type D = __m512d;
        type B = __mmask8;
        const DLANES: usize = 8;

        #[inline(always)]
        unsafe fn load_f32(p: *const f32) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn store_f32(p: *mut f32, v: __m512d) {
            // SAFETY: see the impl comment (vcvtpd2ps, MXCSR rounding).
            unsafe { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)) }
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_sub_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_mul_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_div_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sqrt(a: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_sqrt_pd(a) }
        }
        #[inline(always)]
        unsafe fn and(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_and_si512(i5(a), i5(b))) }
        }
        #[inline(always)]
        unsafe fn or(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_or_si512(i5(a), i5(b))) }
        }
        #[inline(always)]
        unsafe fn xor(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_xor_si512(i5(a), i5(b))) }
        }
        #[inline(always)]
        unsafe fn iadd(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_add_epi64(i5(a), i5(b))) }
        }
        #[inline(always)]
        unsafe fn isub(a: __m512d, b: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_sub_epi64(i5(a), i5(b))) }
        }
        #[inline(always)]
        unsafe fn shl52(a: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_slli_epi64::<52>(i5(a))) }
        }
        #[inline(always)]
        unsafe fn shr52(a: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { d5(_mm512_srli_epi64::<52>(i5(a))) }
        }
        #[inline(always)]
        unsafe fn ieq(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmpeq_epi64_mask(i5(a), i5(b)) }
        }
        #[inline(always)]
        unsafe fn lt(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn gt(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn eq(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn ne(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_pd_mask::<_CMP_NEQ_UQ>(a, b) }
        }
        #[inline(always)]
        unsafe fn unord(a: __m512d, b: __m512d) -> __mmask8 {
            // SAFETY: see the impl comment.
            unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, b) }
        }
        #[inline(always)]
        unsafe fn mand(a: __mmask8, b: __mmask8) -> __mmask8 {
            a & b
        }
        #[inline(always)]
        unsafe fn meq(a: __mmask8, b: __mmask8) -> __mmask8 {
            !(a ^ b)
        }
        #[inline(always)]
        unsafe fn any(m: __mmask8) -> bool {
            m != 0
        }
        #[inline(always)]
        unsafe fn all(m: __mmask8) -> bool {
            m == 0xff
        }
        #[inline(always)]
        unsafe fn select(m: __mmask8, t: __m512d, f: __m512d) -> __m512d {
            // SAFETY: see the impl comment.
            unsafe { _mm512_mask_blend_pd(m, f, t) }
        }
    }
}
