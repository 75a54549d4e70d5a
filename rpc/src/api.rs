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

use jsonrpsee::core::RpcResult;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::proc_macros::rpc;
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Receipt;

use crate::types::*;

/// Model registry: `model_register`, `model_get`, `model_list`, `model_program`.
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

    /// A registered model's canonical program (borsh, base64): what a
    /// challenger re-executes. Self-authenticating: the bytes must hash to
    /// `program_root`, which every record names, so a client needs no trust
    /// in the node that served them.
    #[method(name = "program")]
    async fn model_program(&self, model_id: Hash32) -> RpcResult<ModelProgram>;
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

/// The embedded settlement layer (the referee): `settlement_*`.
///
/// The referee's values (accounts, batch entries, game views, events,
/// parameters) travel as JSON objects whose schema is the serde form of the
/// `verinfer_prover::game` / `verinfer_settlement` types
/// (`docs/rpc.md#settlement`); this crate keeps them as
/// [`serde_json::Value`] so that it depends only on `state` (decision 0009).
/// Clients deserialize them into the typed structs
/// (`verinfer_prover::game::view::GameView`, …).
///
/// Transactions are submitted signed, as hex of the borsh encoding of a
/// `SignedTx` (ed25519 over `"verinfer/settlement/tx/v1" || chain_id ||
/// borsh(signer, nonce, tx)`, a `PostBatch` over its header instead:
/// decision 0014); the referee applies them at the node's clock.
#[rpc(server, client, namespace = "settlement")]
pub trait SettlementApi {
    /// Parameters (chain id, window, clocks, bonds, dissection exponent) and
    /// the referee's current time: `{params, now_ms, sequencer}`.
    #[method(name = "info")]
    async fn info(&self) -> RpcResult<serde_json::Value>;

    /// An account (`0x`-hex ed25519 public key): free balance, next nonce,
    /// sequencer bond if any, escrow in open games.
    #[method(name = "account")]
    async fn account(&self, account: String) -> RpcResult<serde_json::Value>;

    /// Applies a signed transaction (hex of borsh `SignedTx`). Returns
    /// `{events: [...]}`; a rejected transaction changes nothing and returns
    /// `TX_REJECTED` with the referee's reason.
    #[method(name = "submitTx")]
    async fn submit_tx(&self, signed_tx_hex: String) -> RpcResult<serde_json::Value>;

    /// Batch `number` as posted: header, posting time, window end, void
    /// records, whether it is final.
    #[method(name = "batch")]
    async fn batch(&self, number: u64) -> RpcResult<serde_json::Value>;

    /// A record's settlement status: `{batch, index, status, void, void_by,
    /// games, open_games, window_end_ms}`, `status` being the receipt
    /// status (`batched`, `disputed`, `final`, `fraudulent` = void).
    #[method(name = "recordStatus")]
    async fn record_status(&self, batch: u64, index: u64) -> RpcResult<serde_json::Value>;

    /// Game `id` as a `GameView` at the referee's current time: status,
    /// clocks, bonds, every move, and for a finished game its resolution
    /// (pinpointed node, element, step, operands and verdict).
    #[method(name = "game")]
    async fn game(&self, id: u64) -> RpcResult<serde_json::Value>;

    /// Games, newest first, optionally only open ones or only those of one
    /// account or batch (`{open, account, batch, limit}`; limit ≤ 1000).
    #[method(name = "games")]
    async fn games(&self, filter: Option<GamesFilter>) -> RpcResult<Vec<serde_json::Value>>;

    /// Dev mode only: credits `amount` to `account` (the bridge's deposit),
    /// so a local challenger can post bonds. `METHOD_NOT_FOUND` otherwise.
    #[method(name = "faucet")]
    async fn faucet(&self, account: String, amount: u64) -> RpcResult<serde_json::Value>;

    /// Every referee event as it happens (`{at_ms, event}`): batches posted
    /// and settled, disputes opened, moves, resolutions, payouts.
    #[subscription(name = "subscribeEvents" => "event", unsubscribe = "unsubscribeEvents", item = serde_json::Value)]
    async fn subscribe_events(&self) -> SubscriptionResult;
}
