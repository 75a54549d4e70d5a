//! The API traits. `#[rpc(server, client)]` generates `…Server` traits that
//! the node implements and `…Client` extension traits that any jsonrpsee
//! client (HTTP or WebSocket) gets, so the node, the CLI, the tests and the
//! challenger share one definition of every method.
//!
//! Namespaces: `model_`, `infer_`, `explorer_`; the embedded settlement
//! layer adds `settlement_` in its own trait beside these.
//!
//! Parameters are positional (`"params": [ … ]`); optional trailing
//! parameters may be omitted.

use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Receipt;

use crate::types::*;

/// Model registry: `model_register`, `model_get`, `model_list`.
#[rpc(server, client, namespace = "model")]
pub trait ModelApi {
    /// Registers an ONNX model (idempotent: registering the same bytes and
    /// shapes again returns the same info with `already_registered`).
    #[method(name = "register")]
    async fn register_model(&self, request: RegisterModel) -> RpcResult<ModelInfo>;

    /// A registered model.
    #[method(name = "get")]
    async fn get_model(&self, model_id: Hash32) -> RpcResult<ModelInfo>;

    /// Every registered model.
    #[method(name = "list")]
    async fn list_models(&self) -> RpcResult<Vec<ModelInfo>>;
}

/// Inference: `infer_submit`, `infer_receipt`, `infer_subscribeStatus`.
#[rpc(server, client, namespace = "infer")]
pub trait InferApi {
    /// Executes a request and accepts it: returns the outputs, the request
    /// id, the record and its status (`pending`) once the request is in the
    /// node's pending log.
    #[method(name = "submit")]
    async fn submit(&self, request: SubmitRequest) -> RpcResult<SubmitResponse>;

    /// A request's receipt: its status, and once batched its batch, index
    /// and inclusion proof.
    #[method(name = "receipt")]
    async fn receipt(&self, request_id: Hash32) -> RpcResult<Receipt>;

    /// The request's receipt now, then again at every status change.
    #[subscription(name = "subscribeStatus" => "status", unsubscribe = "unsubscribeStatus", item = Receipt)]
    async fn subscribe_status(&self, request_id: Hash32) -> SubscriptionResult;
}

/// Explorer: chain, batches, records, stats, and new batches as they seal.
#[rpc(server, client, namespace = "explorer")]
pub trait ExplorerApi {
    /// The newest batch and the pending log.
    #[method(name = "head")]
    async fn head(&self) -> RpcResult<HeadInfo>;

    /// Batch `number` with its header and record list.
    #[method(name = "batch")]
    async fn batch(&self, number: u64) -> RpcResult<BatchInfo>;

    /// Headers of batches `from..=to` (at most 1000), ascending; missing
    /// numbers past the head are omitted.
    #[method(name = "batches")]
    async fn batches(&self, from: u64, to: u64) -> RpcResult<Vec<BatchSummary>>;

    /// Batch `number`'s body: every record with its inputs (base64), enough
    /// to re-execute it.
    #[method(name = "batchBody")]
    async fn batch_body(&self, number: u64) -> RpcResult<BatchBodyInfo>;

    /// A record with its inputs, outputs and receipt.
    #[method(name = "record")]
    async fn record(&self, request_id: Hash32, options: Option<RecordOptions>) -> RpcResult<RecordInfo>;

    /// Counts, throughput and queue depth.
    #[method(name = "stats")]
    async fn stats(&self) -> RpcResult<Stats>;

    /// Every batch as it is sealed (header and hash).
    #[subscription(name = "subscribeBatches" => "newBatch", unsubscribe = "unsubscribeBatches", item = BatchSummary)]
    async fn subscribe_batches(&self) -> SubscriptionResult;
}
