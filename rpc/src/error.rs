//! Error codes of the Verinfer JSON-RPC API.
//!
//! Every error the node returns is a JSON-RPC error object
//! `{code, message, data?}`. Application errors use the codes below (outside
//! the range JSON-RPC reserves, -32768..-32000); the transport's own errors
//! keep their standard codes ([`PARSE_ERROR`], [`INVALID_REQUEST`],
//! [`METHOD_NOT_FOUND`], [`INVALID_PARAMS`], [`OVERSIZED_REQUEST`],
//! [`OVERSIZED_BATCH`], [`TOO_MANY_SUBSCRIPTIONS`], [`OVERSIZED_RESPONSE`],
//! [`OVERSIZED_BATCH_RESPONSE`]). The message always names the offending field
//! (`inputs[1].shape: expected [1,16], got [1,15]`). `docs/rpc.md` lists
//! which method returns which code.

use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use serde::{Deserialize, Serialize};

/// Invalid JSON (transport; standard JSON-RPC).
pub const PARSE_ERROR: i32 = -32700;
/// Not a JSON-RPC request object (transport; standard JSON-RPC).
pub const INVALID_REQUEST: i32 = -32600;
/// No such method (transport; standard JSON-RPC).
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Params that do not deserialize into the method's parameter types: a
/// missing field, a wrong JSON type (standard JSON-RPC; serde's message).
pub const INVALID_PARAMS: i32 = -32602;
/// The request body exceeds the node's `max_request_body_bytes` (over HTTP
/// the node answers it, naming the setting; over WebSocket, jsonrpsee).
pub const OVERSIZED_REQUEST: i32 = -32007;
/// A JSON-RPC batch with more entries than the node's `max_batch_len`
/// (jsonrpsee).
pub const OVERSIZED_BATCH: i32 = -32010;
/// A connection already has `max_subscriptions_per_connection`
/// subscriptions (jsonrpsee).
pub const TOO_MANY_SUBSCRIPTIONS: i32 = -32006;
/// A response larger than the node's `max_response_body_bytes` (jsonrpsee):
/// ask for less (a shorter range, `b64` outputs).
pub const OVERSIZED_RESPONSE: i32 = -32008;
/// A batch whose responses together exceed `max_response_body_bytes`
/// (jsonrpsee).
pub const OVERSIZED_BATCH_RESPONSE: i32 = -32011;

/// A parameter is well-typed but not acceptable (a range that is too long,
/// a name that is too long, bad base64 ONNX, …). A malformed hash fails to
/// deserialize and is [`INVALID_PARAMS`].
pub const INVALID_ARGUMENT: i32 = 4000;
/// No model with this id is registered.
pub const UNKNOWN_MODEL: i32 = 4001;
/// A tensor does not match the model's signature or does not decode: wrong
/// count, dtype, shape or element count, bad base64, a value that is not of
/// the dtype.
pub const INVALID_TENSOR: i32 = 4002;
/// An input value is NaN or ±Infinity (the NaN policy, docs/decisions/0007).
pub const NON_FINITE_INPUT: i32 = 4003;
/// The ONNX bytes could not be loaded: not ONNX, not typable by the
/// frontend, a symbolic input shape without a concrete shape, a bad shape,
/// or a plan above the node's `exec.max_model_mib`.
pub const INVALID_MODEL: i32 = 4004;
/// The model uses an op outside the canonical op set; the message names the
/// op and the node.
pub const UNSUPPORTED_OP: i32 = 4005;
/// The same ONNX bytes are registered with other input shapes (another
/// program root).
pub const MODEL_CONFLICT: i32 = 4006;
/// No request, record or batch with this id or number.
pub const NOT_FOUND: i32 = 4040;
/// Execution failed for data-dependent reasons (e.g. a Gather index out of
/// range): the request gets no record.
pub const EXECUTION_FAILED: i32 = 4220;
/// The node-wide rate limit is exhausted. `data.retry_after_ms` says when to
/// retry.
pub const RATE_LIMITED: i32 = 4290;
/// The settlement layer rejected a transaction (bad signature, nonce,
/// bond, window, move, …); the message is the referee's reason and nothing
/// changed.
pub const TX_REJECTED: i32 = 4100;
/// Internal failure (the store); the request was not accepted.
pub const INTERNAL: i32 = 5000;
/// The mempool is full. Nothing was accepted; `data.retry_after_ms` says
/// when to retry.
pub const BUSY: i32 = 5030;
/// The node is shutting down and accepts no new work.
pub const SHUTTING_DOWN: i32 = 5031;

/// Every code with its name, for docs and tests.
pub const ALL: &[(i32, &str)] = &[
    (PARSE_ERROR, "PARSE_ERROR"),
    (INVALID_REQUEST, "INVALID_REQUEST"),
    (METHOD_NOT_FOUND, "METHOD_NOT_FOUND"),
    (INVALID_PARAMS, "INVALID_PARAMS"),
    (OVERSIZED_REQUEST, "OVERSIZED_REQUEST"),
    (OVERSIZED_BATCH, "OVERSIZED_BATCH"),
    (TOO_MANY_SUBSCRIPTIONS, "TOO_MANY_SUBSCRIPTIONS"),
    (OVERSIZED_RESPONSE, "OVERSIZED_RESPONSE"),
    (OVERSIZED_BATCH_RESPONSE, "OVERSIZED_BATCH_RESPONSE"),
    (INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (UNKNOWN_MODEL, "UNKNOWN_MODEL"),
    (INVALID_TENSOR, "INVALID_TENSOR"),
    (NON_FINITE_INPUT, "NON_FINITE_INPUT"),
    (INVALID_MODEL, "INVALID_MODEL"),
    (UNSUPPORTED_OP, "UNSUPPORTED_OP"),
    (MODEL_CONFLICT, "MODEL_CONFLICT"),
    (NOT_FOUND, "NOT_FOUND"),
    (EXECUTION_FAILED, "EXECUTION_FAILED"),
    (RATE_LIMITED, "RATE_LIMITED"),
    (TX_REJECTED, "TX_REJECTED"),
    (INTERNAL, "INTERNAL"),
    (BUSY, "BUSY"),
    (SHUTTING_DOWN, "SHUTTING_DOWN"),
];

/// The name of `code`, if it is one of ours.
pub fn name(code: i32) -> Option<&'static str> {
    ALL.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// The `data` of [`BUSY`] and [`RATE_LIMITED`] errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryAfter {
    /// Milliseconds after which a retry is likely to succeed.
    pub retry_after_ms: u64,
}

/// An API error: a code from this module and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct ApiError {
    /// One of the constants in this module.
    pub code: i32,
    /// Human-readable, names the field.
    pub message: String,
    /// Retry hint for [`BUSY`] and [`RATE_LIMITED`].
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error without data.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None }
    }

    /// An error with a retry hint.
    pub fn retry(code: i32, message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self { code, message: message.into(), retry_after_ms: Some(retry_after_ms) }
    }

    /// [`INVALID_ARGUMENT`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID_ARGUMENT, message)
    }

    /// [`NOT_FOUND`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, message)
    }

    /// [`INTERNAL`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL, message)
    }
}

impl From<ApiError> for ErrorObjectOwned {
    fn from(e: ApiError) -> Self {
        match e.retry_after_ms {
            Some(ms) => ErrorObject::owned(e.code, e.message, Some(RetryAfter { retry_after_ms: ms })),
            None => ErrorObject::owned(e.code, e.message, None::<()>),
        }
    }
}

impl From<ErrorObjectOwned> for ApiError {
    fn from(e: ErrorObjectOwned) -> Self {
        let retry_after_ms =
            e.data().and_then(|d| serde_json::from_str::<RetryAfter>(d.get()).ok()).map(|r| r.retry_after_ms);
        Self { code: e.code(), message: e.message().to_string(), retry_after_ms }
    }
}

/// A hex hash parameter, parsed; the error names the field.
pub fn parse_hash(field: &str, s: &str) -> Result<verinfer_state::Hash32, ApiError> {
    verinfer_state::Hash32::from_hex(s).map_err(|e| {
        let why = verinfer_state::Hash32::explain_hex_error(s, &e);
        ApiError::invalid(format!("{field}: {s:?} is not a 32-byte hex hash ({why})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transport codes are jsonrpsee's, which the server emits itself.
    #[test]
    fn transport_codes_are_jsonrpsees() {
        use jsonrpsee::types::error as j;
        assert_eq!(OVERSIZED_REQUEST, j::OVERSIZED_REQUEST_CODE);
        assert_eq!(OVERSIZED_BATCH, j::TOO_BIG_BATCH_REQUEST_CODE);
        assert_eq!(TOO_MANY_SUBSCRIPTIONS, j::TOO_MANY_SUBSCRIPTIONS_CODE);
        assert_eq!(OVERSIZED_RESPONSE, j::OVERSIZED_RESPONSE_CODE);
        assert_eq!(OVERSIZED_BATCH_RESPONSE, j::TOO_BIG_BATCH_RESPONSE_CODE);
        assert_eq!(INVALID_PARAMS, j::INVALID_PARAMS_CODE);
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, (c, n)) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|(o, m)| o != c && m != n), "duplicate {n}");
            assert_eq!(name(*c), Some(*n));
        }
        let e = ApiError::retry(BUSY, "mempool full", 7);
        let obj: ErrorObjectOwned = e.clone().into();
        assert_eq!(obj.code(), BUSY);
        assert_eq!(ApiError::from(obj), e);
    }
}
