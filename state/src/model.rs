//! Registered models.
//!
//! A model is identified by the hash of its ONNX bytes,
//! `model_id = H(ModelBytes || onnx)`, and carries the root of the canonical
//! program it was lowered to (by the prover crate, for concrete input
//! shapes) together with the tensor signatures a request must match. The
//! ONNX bytes and the serialised program are stored beside the entry as
//! opaque bytes: this crate does not depend on the prover, and the program's
//! own root is what binds it.
//!
//! ## Invariants
//! * `model_id` is recomputed from the ONNX bytes at registration
//!   ([`ModelEntry::check_onnx`]); a stored entry never names bytes it was not
//!   registered with.
//! * Signatures are well formed: rank at most [`MAX_RANK`], element counts at
//!   most [`crate::tensor::MAX_ELEMENTS`], names unique within a signature, at most
//!   [`MAX_SIGNATURE_TENSORS`] tensors. These are checked at decode time, so
//!   a stored entry that decodes is well formed.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::codec::Malformed;
use crate::hash::{Domain, Hash32, hash};
use crate::tensor::{DType, MAX_RANK, Tensor, checked_numel};
use crate::versioned_message;

/// Most tensors a model's input or output signature may list.
pub const MAX_SIGNATURE_TENSORS: usize = 1024;

/// Longest tensor or model name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// `H(ModelBytes || onnx)`.
pub fn model_id(onnx: &[u8]) -> Hash32 {
    hash(Domain::ModelBytes, onnx)
}

/// One named tensor of a signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct TensorSpec {
    /// The ONNX graph's name for the tensor.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Concrete shape.
    pub shape: Vec<u64>,
}

impl TensorSpec {
    /// Does `t` have this spec's dtype and shape?
    pub fn matches(&self, t: &Tensor) -> bool {
        t.dtype() == self.dtype && t.shape_u64() == self.shape
    }
}

/// Why tensors do not match a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Wrong number of tensors.
    #[error("expected {expected} tensors, got {got}")]
    Count {
        /// Tensors in the signature.
        expected: usize,
        /// Tensors given.
        got: usize,
    },
    /// Tensor `index` has the wrong dtype or shape.
    #[error("tensor {index} ({name}) should be {expected_dtype}{expected_shape:?}, got {got_dtype}{got_shape:?}")]
    Mismatch {
        /// Position in the signature.
        index: usize,
        /// The spec's name.
        name: String,
        /// Spec dtype.
        expected_dtype: DType,
        /// Spec shape.
        expected_shape: Vec<u64>,
        /// Given dtype.
        got_dtype: DType,
        /// Given shape.
        got_shape: Vec<u64>,
    },
}

/// Checks `tensors` against `specs`, in order.
pub fn check_signature(specs: &[TensorSpec], tensors: &[Tensor]) -> Result<(), SignatureError> {
    if specs.len() != tensors.len() {
        return Err(SignatureError::Count { expected: specs.len(), got: tensors.len() });
    }
    for (index, (s, t)) in specs.iter().zip(tensors).enumerate() {
        if !s.matches(t) {
            return Err(SignatureError::Mismatch {
                index,
                name: s.name.clone(),
                expected_dtype: s.dtype,
                expected_shape: s.shape.clone(),
                got_dtype: t.dtype(),
                got_shape: t.shape_u64(),
            });
        }
    }
    Ok(())
}

versioned_message! {
    /// A registered model.
    #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct ModelEntry (name = "ModelEntry", version = 1, check = check_entry) {
        /// `H(ModelBytes || onnx)`.
        pub model_id: Hash32,
        /// A human-readable name (not unique, not committed anywhere else).
        pub name: String,
        /// Root of the canonical program the model was lowered to.
        pub program_root: Hash32,
        /// Input signature, in the program's input order.
        pub inputs: Vec<TensorSpec>,
        /// Output signature, in the program's output order.
        pub outputs: Vec<TensorSpec>,
        /// When the node registered it (milliseconds since the Unix epoch,
        /// passed in by the caller).
        pub registered_at_ms: u64,
    }
}

fn check_specs(specs: &[TensorSpec]) -> Result<(), Malformed> {
    if specs.len() > MAX_SIGNATURE_TENSORS {
        return Err(Malformed::Invariant("signature lists too many tensors"));
    }
    for (i, s) in specs.iter().enumerate() {
        if s.name.len() > MAX_NAME_BYTES {
            return Err(Malformed::Invariant("tensor name too long"));
        }
        if s.shape.len() > MAX_RANK || checked_numel(&s.shape).is_err() {
            return Err(Malformed::Invariant("tensor spec shape too large"));
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(Malformed::Invariant("duplicate tensor name in signature"));
        }
    }
    Ok(())
}

fn check_entry(e: &ModelEntry) -> Result<(), Malformed> {
    if e.name.len() > MAX_NAME_BYTES {
        return Err(Malformed::Invariant("model name too long"));
    }
    check_specs(&e.inputs)?;
    check_specs(&e.outputs)
}

impl ModelEntry {
    /// Checks the entry's own invariants (the same ones decoding enforces).
    pub fn validate(&self) -> Result<(), Malformed> {
        check_entry(self)
    }

    /// Does `onnx` hash to this entry's id?
    pub fn check_onnx(&self, onnx: &[u8]) -> bool {
        model_id(onnx) == self.model_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DecodeError, decode, encode};

    fn entry() -> ModelEntry {
        ModelEntry {
            model_id: model_id(b"onnx"),
            name: "mlp".into(),
            program_root: hash(Domain::Program, b"p"),
            inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![1, 4] }],
            outputs: vec![TensorSpec { name: "y".into(), dtype: DType::F32, shape: vec![1, 2] }],
            registered_at_ms: 5,
        }
    }

    #[test]
    fn round_trip_and_checks() {
        let e = entry();
        assert!(e.check_onnx(b"onnx"));
        assert!(!e.check_onnx(b"onnx2"));
        assert_eq!(decode::<ModelEntry>(&encode(&e)).unwrap(), e);
        let mut dup = e.clone();
        dup.inputs.push(dup.inputs[0].clone());
        assert!(matches!(decode::<ModelEntry>(&encode(&dup)), Err(DecodeError::Malformed { .. })));
        let mut big = e.clone();
        big.outputs[0].shape = vec![u64::MAX, 2];
        assert!(big.validate().is_err());
    }

    #[test]
    fn signature_check() {
        let e = entry();
        let ok = Tensor::from_f32(vec![1, 4], vec![0.0; 4]).unwrap();
        check_signature(&e.inputs, std::slice::from_ref(&ok)).unwrap();
        let bad = Tensor::from_f32(vec![4], vec![0.0; 4]).unwrap();
        assert!(matches!(check_signature(&e.inputs, &[bad]), Err(SignatureError::Mismatch { index: 0, .. })));
        assert_eq!(check_signature(&e.inputs, &[]), Err(SignatureError::Count { expected: 1, got: 0 }));
    }
}
