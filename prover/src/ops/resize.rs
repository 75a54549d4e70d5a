//! ONNX Resize (nearest and n-linear).

use verinfer_state::tensor::Scalar;

use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::program::{ResizeSpec, ValueType};

pub(crate) struct ResizeFold;

impl ResizeFold {
    pub fn new(_spec: &ResizeSpec, _input: &ValueType, _out: &ValueType) -> Result<Self, ProverError> {
        Err(ProverError::InvalidProgram { node: "Resize".into(), why: "Resize is not implemented yet".into() })
    }
}

impl ElementFold for ResizeFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, _e: u64, _t: u64, s: FoldState, _rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        Ok(s)
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

/// Lowers tract's Resize into a [`ResizeSpec`].
pub(crate) fn lower(_op: &tract_onnx::tract_core::ops::nn::Resize, _input: &ValueType, _out: &ValueType) -> Result<ResizeSpec, String> {
    Err("Resize is not implemented yet".into())
}
