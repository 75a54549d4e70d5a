//! Runtime dispatch from a [`super::Kernels`] token to a kernel body
//! monomorphised for one family and compiled with that family's target
//! features.

/// `dispatch!(kernels, body, (arg: Type, …))` calls `body::<F>(args…)`
/// for the token's family `F`, through a wrapper compiled with `F`'s
/// target features. `body` must be an `unsafe fn body<S: Simd>(…)` whose
/// only precondition beyond its documented pointer contract is that `S`'s
/// instructions are available.
macro_rules! dispatch {
    ($k:expr, $body:ident, ($($arg:ident : $ty:ty),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run_avx2($($arg: $ty),*) {
            // SAFETY: reached only with a token for Avx2 (CPU support
            // checked by `Kernels::new`); the body's other preconditions
            // are the caller's.
            unsafe { $body::<$crate::fast::simd::Avx2>($($arg),*) }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn run_avx512($($arg: $ty),*) {
            // SAFETY: reached only with a token for Avx512.
            unsafe { $body::<$crate::fast::simd::Avx512>($($arg),*) }
        }
        fn run_scalar($($arg: $ty),*) {
            // SAFETY: the scalar family needs no CPU feature; the body's
            // pointer preconditions are the caller's.
            unsafe { $body::<$crate::fast::simd::Scalar>($($arg),*) }
        }
        match $k.isa() {
            $crate::fast::Isa::Scalar => run_scalar($($arg),*),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the `Kernels` token exists only if the CPU supports AVX2+FMA.
            $crate::fast::Isa::Avx2 => unsafe { run_avx2($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the `Kernels` token exists only if the CPU supports AVX-512F.
            $crate::fast::Isa::Avx512 => unsafe { run_avx512($($arg),*) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => run_scalar($($arg),*),
        }
    }};
}

pub(crate) use dispatch;
