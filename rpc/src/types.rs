//! Request and response types of the API (serde; hashes are `0x`-hex
//! strings, numbers are JSON numbers).
//!
//! Request objects report deserialization errors with the path of the
//! offending field (`inputs[0].shape[1]: invalid type: string "a", expected
//! u64`), through `serde_path_to_error`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use verinfer_state::batch::{BatchHeader, Inclusion};
use verinfer_state::hash::Hash32;
use verinfer_state::model::TensorSpec;
use verinfer_state::receipt::{Receipt, Status};
use verinfer_state::record::InferenceRecord;
use verinfer_state::store::ChainHead;

use crate::tensor::{Encoding, WireTensor};

/// Implements `Deserialize` for `$outer` through `$inner` (a field-for-field
/// copy deriving `Deserialize`), prefixing errors with the field path.
macro_rules! path_errors {
    ($outer:ident, $inner:ident { $($f:ident),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $outer {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let r: $inner = serde_path_to_error::deserialize(d).map_err(|e| {
                    let path = e.path().to_string();
                    <D::Error as serde::de::Error>::custom(format!("{path}: {}", e.into_inner()))
                })?;
                Ok($outer { $($f: r.$f),* })
            }
        }
    };
}

/// `model_register` parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegisterModel {
    /// A display name (not unique).
    pub name: String,
    /// The ONNX file, base64.
    pub onnx_b64: String,
    /// Concrete shapes for inputs whose shape in the file is symbolic, by
    /// input name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_shapes: BTreeMap<String, Vec<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterModelDe {
    #[serde(default)]
    name: String,
    onnx_b64: String,
    #[serde(default)]
    input_shapes: BTreeMap<String, Vec<u64>>,
}
path_errors!(RegisterModel, RegisterModelDe { name, onnx_b64, input_shapes });

/// A registered model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `H(ModelBytes || onnx)`.
    pub model_id: Hash32,
    /// Display name.
    pub name: String,
    /// Root of the canonical program.
    pub program_root: Hash32,
    /// Input signature, in order.
    pub inputs: Vec<TensorSpec>,
    /// Output signature, in order.
    pub outputs: Vec<TensorSpec>,
    /// Registration time (ms since the Unix epoch).
    pub registered_at_ms: u64,
    /// Nodes in the program.
    pub nodes: u64,
    /// True when `model_register` found the model already registered.
    #[serde(default)]
    pub already_registered: bool,
}

/// `model_program` result: a model's canonical program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelProgram {
    /// The model.
    pub model_id: Hash32,
    /// The program's root (`verinfer_prover::Program::root`); clients check
    /// the decoded program against it.
    pub program_root: Hash32,
    /// The program's canonical bytes (`Program::to_bytes`, borsh), base64.
    pub program_b64: String,
}

/// `infer_submit` parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubmitRequest {
    /// The registered model.
    pub model_id: Hash32,
    /// Inputs in the model's input order.
    pub inputs: Vec<WireTensor>,
    /// Encoding of the outputs in the response (default `json`).
    #[serde(default)]
    pub output_encoding: Encoding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequestDe {
    model_id: Hash32,
    inputs: Vec<WireTensor>,
    #[serde(default)]
    output_encoding: Encoding,
}
path_errors!(SubmitRequest, SubmitRequestDe { model_id, inputs, output_encoding });

/// `infer_submit` result: the request is accepted (durable against a crash
/// of the node process) when this is returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The request id (`record.request_id`).
    pub request_id: Hash32,
    /// Always `pending` at submission.
    pub status: Status,
    /// The record that will be a batch leaf.
    pub record: InferenceRecord,
    /// The outputs, in the requested encoding.
    pub outputs: Vec<WireTensor>,
}

/// The chain's head and the pending log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// The newest sealed batch, if any.
    pub head: Option<ChainHead>,
    /// Accepted requests not yet sealed.
    pub pending: u64,
    /// The sequence the next accepted request gets.
    pub next_sequence: u64,
}

/// A batch header with its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// The header's hash.
    pub hash: Hash32,
    /// The header.
    pub header: BatchHeader,
}

/// A batch with its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchInfo {
    /// The header's hash.
    pub hash: Hash32,
    /// The header.
    pub header: BatchHeader,
    /// The records in leaf order.
    pub records: Vec<InferenceRecord>,
}

/// One entry of a batch body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BodyEntryInfo {
    /// The record.
    pub record: InferenceRecord,
    /// Its inputs (base64 encoding).
    pub inputs: Vec<WireTensor>,
}

/// A batch body: everything needed to re-execute each record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchBodyInfo {
    /// The header's hash.
    pub hash: Hash32,
    /// The header.
    pub header: BatchHeader,
    /// Records with their inputs, in leaf order.
    pub entries: Vec<BodyEntryInfo>,
}

/// A record with its tensors and receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The record.
    pub record: InferenceRecord,
    /// Its receipt (status and inclusion proof).
    pub receipt: Receipt,
    /// The request's inputs.
    pub inputs: Vec<WireTensor>,
    /// The outputs the node computed.
    pub outputs: Vec<WireTensor>,
}

/// Node statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The newest batch number (0: none yet).
    pub head: u64,
    /// Records in sealed batches.
    pub batched_records: u64,
    /// Accepted, not yet sealed.
    pub pending: u64,
    /// Requests admitted to the mempool and not yet answered.
    pub queue_depth: u64,
    /// Mempool capacity.
    pub queue_capacity: u64,
    /// Registered models.
    pub models: u64,
    /// Requests accepted since the node started.
    pub accepted_since_start: u64,
    /// Submissions answered busy since the node started.
    pub rejected_busy: u64,
    /// Accepted requests per second over the last ~10 s.
    pub throughput_rps: f64,
    /// Seconds since the node started.
    pub uptime_s: u64,
}

/// Options of `explorer_record`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOptions {
    /// Tensor encoding (default `json`).
    #[serde(default)]
    pub encoding: Encoding,
}

/// A status notification: the receipt after a change.
pub type StatusUpdate = Receipt;

/// An inclusion proof re-export for clients.
pub type Proof = Inclusion;

/// `settlement_games` filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamesFilter {
    /// Only games not yet resolved.
    #[serde(default)]
    pub open: bool,
    /// Only games where this account (`0x`-hex) is a side.
    #[serde(default)]
    pub account: Option<String>,
    /// Only games on records of this batch.
    #[serde(default)]
    pub batch: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}
