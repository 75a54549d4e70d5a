//! Fast bit-exact kernels and the planned executor.
//!
//! Everything here computes exactly the bits of the scalar reference in
//! [`crate::ops`] (the definition): kernels vectorise across independent
//! output elements, keep every per-element fold sequential, and use fused
//! multiply-add exactly where the definition does. Runtime dispatch picks a
//! kernel family ([`Isa`]); every family gives the same bits, so the choice
//! is a speed knob, never a protocol parameter.
//!
//! `unsafe` is confined to the kernel modules (`simd`, `simd64`, `dispatch`,
//! `gemm`, `elementwise`, `conv`, `reduce`, `vmath`); each block carries its
//! `SAFETY:` argument. Planning and the executor are safe Rust.
#![deny(unsafe_code)]

pub(crate) mod conv;
pub(crate) mod dispatch;
pub(crate) mod einsum;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub mod isa;
pub mod plan;
pub(crate) mod reduce;
pub(crate) mod simd;
pub(crate) mod simd64;
pub mod vmath;

pub use isa::{Isa, Kernels};
pub use plan::{Plan, PlanOptions, PlanStats, Workspace};
