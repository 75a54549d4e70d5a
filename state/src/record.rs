//! Inference records: the leaves of a batch.
//!
//! A record says "the program with root `program_root` (lowered from model
//! `model_id`), run on the inputs committed by `input_root`, produced the
//! outputs committed by `output_root`", and places the request in the
//! node's global acceptance order (`sequence`). It is everything a consumer
//! needs to check a result it holds: recompute the tensor-list roots of its
//! inputs and outputs ([`InferenceRecord::check_inputs`],
//! [`InferenceRecord::check_outputs`]) and check the record's inclusion in a
//! batch header ([`crate::batch::verify_inclusion`]).
//!
//! ```text
//! input_root  = tensor_list_root(root(input_0) … root(input_k))
//! output_root = tensor_list_root(root(output_0) … root(output_m))
//! request_id  = H(Request || borsh(program_root, input_root, sequence))
//! leaf        = H(Record  || borsh(record))          (borsh includes the version byte)
//! ```
//!
//! ## Invariants
//! * `request_id` is derived, never chosen: a record whose `request_id` does
//!   not equal [`request_id`] of its own fields does not decode. Including
//!   `sequence` makes two submissions of the same input distinct requests.
//! * The leaf hash is taken over the re-encoded record.

use crate::codec::{Malformed, encode};
use crate::hash::{Domain, Hash32, hash};
use crate::tensor::{Tensor, tensor_list_root};
use crate::versioned_message;

/// `H(Request || borsh(program_root, input_root, sequence))`.
pub fn request_id(program_root: &Hash32, input_root: &Hash32, sequence: u64) -> Hash32 {
    hash(Domain::Request, &encode(&(program_root, input_root, sequence)))
}

/// `tensor_list_root` of the tensors' roots, in order.
pub fn tensors_root(tensors: &[Tensor]) -> Hash32 {
    let roots: Vec<Hash32> = tensors.iter().map(Tensor::root).collect();
    tensor_list_root(&roots)
}

versioned_message! {
    /// One accepted inference: a batch leaf.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    pub struct InferenceRecord (name = "InferenceRecord", version = 1, check = check_record) {
        /// [`request_id`] of the fields below.
        pub request_id: Hash32,
        /// The model the program was lowered from.
        pub model_id: Hash32,
        /// The program that was executed.
        pub program_root: Hash32,
        /// [`tensors_root`] of the request's inputs.
        pub input_root: Hash32,
        /// [`tensors_root`] of the outputs the sequencer computed.
        pub output_root: Hash32,
        /// Global acceptance number (0, 1, 2, … across the node's life).
        pub sequence: u64,
        /// When the node accepted it (ms since the Unix epoch, caller's clock).
        pub accepted_at_ms: u64,
    }
}

fn check_record(r: &InferenceRecord) -> Result<(), Malformed> {
    if r.request_id != request_id(&r.program_root, &r.input_root, r.sequence) {
        return Err(Malformed::Invariant("request_id is not derived from the record"));
    }
    Ok(())
}

/// Why tensors or an id do not match a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The inputs do not hash to `input_root`.
    #[error("inputs hash to {computed}, record says {expected}")]
    InputRootMismatch {
        /// The record's root.
        expected: Hash32,
        /// The tensors' root.
        computed: Hash32,
    },
    /// The outputs do not hash to `output_root`.
    #[error("outputs hash to {computed}, record says {expected}")]
    OutputRootMismatch {
        /// The record's root.
        expected: Hash32,
        /// The tensors' root.
        computed: Hash32,
    },
    /// `request_id` is not derived from the record's fields.
    #[error("request id {got} is not derived from the record (expected {expected})")]
    RequestIdMismatch {
        /// The derived id.
        expected: Hash32,
        /// The id the record carries.
        got: Hash32,
    },
}

impl InferenceRecord {
    /// A record from roots already computed; derives `request_id`.
    pub fn from_roots(
        model_id: Hash32,
        program_root: Hash32,
        input_root: Hash32,
        output_root: Hash32,
        sequence: u64,
        accepted_at_ms: u64,
    ) -> Self {
        Self {
            request_id: request_id(&program_root, &input_root, sequence),
            model_id,
            program_root,
            input_root,
            output_root,
            sequence,
            accepted_at_ms,
        }
    }

    /// A record for `inputs` → `outputs`.
    pub fn new(
        model_id: Hash32,
        program_root: Hash32,
        inputs: &[Tensor],
        outputs: &[Tensor],
        sequence: u64,
        accepted_at_ms: u64,
    ) -> Self {
        Self::from_roots(model_id, program_root, tensors_root(inputs), tensors_root(outputs), sequence, accepted_at_ms)
    }

    /// The batch leaf: `H(Record || borsh(record))`.
    pub fn leaf_hash(&self) -> Hash32 {
        hash(Domain::Record, &encode(self))
    }

    /// Is `request_id` derived from the other fields? (Always true for a
    /// decoded record; a record built field by field may not be.)
    pub fn check_id(&self) -> Result<(), RecordError> {
        let expected = request_id(&self.program_root, &self.input_root, self.sequence);
        if expected != self.request_id {
            return Err(RecordError::RequestIdMismatch { expected, got: self.request_id });
        }
        Ok(())
    }

    /// Do `inputs` hash to `input_root`?
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), RecordError> {
        let computed = tensors_root(inputs);
        if computed != self.input_root {
            return Err(RecordError::InputRootMismatch { expected: self.input_root, computed });
        }
        Ok(())
    }

    /// Do `outputs` hash to `output_root`?
    pub fn check_outputs(&self, outputs: &[Tensor]) -> Result<(), RecordError> {
        let computed = tensors_root(outputs);
        if computed != self.output_root {
            return Err(RecordError::OutputRootMismatch { expected: self.output_root, computed });
        }
        Ok(())
    }
}

versioned_message! {
    /// A record's tensors as the store keeps them: the request's inputs and
    /// the outputs the sequencer computed.
    #[derive(Clone, Debug, PartialEq)]
    pub struct RecordTensors (name = "RecordTensors", version = 1) {
        /// Inputs, in the program's input order.
        pub inputs: Vec<Tensor>,
        /// Outputs, in the program's output order.
        pub outputs: Vec<Tensor>,
    }
}

impl RecordTensors {
    /// Checks both lists against `record`.
    pub fn check(&self, record: &InferenceRecord) -> Result<(), RecordError> {
        record.check_inputs(&self.inputs)?;
        record.check_outputs(&self.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DecodeError, decode};

    fn sample(seq: u64) -> (InferenceRecord, RecordTensors) {
        let x = Tensor::from_f32(vec![2], vec![1.0, seq as f32]).unwrap();
        let y = Tensor::from_f32(vec![1], vec![3.0]).unwrap();
        let r = InferenceRecord::new(
            hash(Domain::ModelBytes, b"m"),
            hash(Domain::Program, b"p"),
            std::slice::from_ref(&x),
            std::slice::from_ref(&y),
            seq,
            1000 + seq,
        );
        (r, RecordTensors { inputs: vec![x], outputs: vec![y] })
    }

    #[test]
    fn ids_bind_sequence_and_roots() {
        let (a, ta) = sample(1);
        let (b, _) = sample(2);
        assert_ne!(a.request_id, b.request_id);
        a.check_id().unwrap();
        ta.check(&a).unwrap();
        assert!(matches!(a.check_outputs(&ta.inputs), Err(RecordError::OutputRootMismatch { .. })));
        let mut same_input = a;
        same_input.sequence = 9;
        assert!(matches!(same_input.check_id(), Err(RecordError::RequestIdMismatch { .. })));
    }

    #[test]
    fn forged_id_does_not_decode() {
        let (mut a, _) = sample(1);
        a.request_id.0[0] ^= 1;
        assert!(matches!(
            decode::<InferenceRecord>(&encode(&a)),
            Err(DecodeError::Malformed { what: "InferenceRecord", .. })
        ));
    }

    #[test]
    fn leaf_hash_is_versioned_encoding() {
        let (a, t) = sample(3);
        let enc = encode(&a);
        assert_eq!(enc[0], 1);
        assert_eq!(enc.len(), 1 + 5 * 32 + 16);
        assert_eq!(a.leaf_hash(), hash(Domain::Record, &enc));
        assert_eq!(decode::<RecordTensors>(&encode(&t)).unwrap(), t);
    }
}
