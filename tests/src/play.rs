//! Playing the settlement layer over RPC from a test: a funded account
//! that signs and submits transactions, an honest challenger that plays a
//! game to the end, and waits on receipts and postings. Shared by the
//! in-process tests (`tests/tests/settlement.rs`) and the process crash
//! tests (`tests/tests/crash.rs`).

use std::time::Duration;

use ed25519_dalek::SigningKey;
use jsonrpsee_http_client::HttpClient;
use serde_json::Value;
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::game::agent::challenger_move;
use verinfer_prover::game::tx::{Move, MoveKind, SignedTx, Tx};
use verinfer_prover::game::types::{AccountId, Side};
use verinfer_prover::game::view::GameView;
use verinfer_prover::program::Program;
use verinfer_rpc::api::{InferApiClient, SettlementApiClient};
use verinfer_rpc::error::ApiError;
use verinfer_rpc::jsonrpsee::core::ClientError;
use verinfer_rpc::tensor::{Encoding, WireTensor};
use verinfer_rpc::types::SubmitRequest;
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::{Receipt, Status};
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::Tensor;

use crate::model_bytes;

/// The JSON-RPC error of a failed call (panics on a transport error).
pub fn api_err(e: ClientError) -> ApiError {
    match e {
        ClientError::Call(obj) => ApiError::from(obj),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Polls `f` every 50 ms until it returns `Some` (20 s at most).
pub async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Submits `x` to the mlp `model_id`; returns the record.
pub async fn submit_mlp(c: &HttpClient, model_id: Hash32, x: &Tensor) -> InferenceRecord {
    let r = c
        .submit(SubmitRequest { model_id, inputs: vec![WireTensor::b64(x)], output_encoding: Encoding::B64 })
        .await
        .expect("submit");
    r.record
}

/// Waits until the request is no longer pending.
pub async fn wait_batched(c: &HttpClient, id: Hash32) -> Receipt {
    wait_for("the record to be batched", async || {
        let r = c.receipt(id).await.expect("receipt");
        (r.status != Status::Pending).then_some(r)
    })
    .await
}

/// Waits until the referee holds batch `number`; returns `settlement_batch`.
pub async fn wait_posted(c: &HttpClient, number: u64) -> Value {
    wait_for("the batch to be posted", async || SettlementApiClient::batch(c, number).await.ok()).await
}

/// The canonical program of a corpus model, compiled in the test process
/// (what a challenger that does not trust the node does).
pub fn compile(name: &str) -> Program {
    let opts = LoadOptions { name: name.into(), shapes: vec![], positional_shapes: vec![], constant_inputs: vec![] };
    load_model(&model_bytes(name), &opts).expect("the corpus model compiles").program
}

/// An account of the test (a challenger).
#[derive(Debug)]
pub struct Player {
    /// Its key.
    pub key: SigningKey,
    /// The referee's chain id.
    pub chain_id: u64,
}

impl Player {
    /// A player with key `[seed; 32]`, funded with `funds` from the dev faucet.
    pub async fn new(c: &HttpClient, seed: u8, funds: u64) -> Self {
        let info = SettlementApiClient::info(c).await.expect("info");
        let chain_id = info["params"]["chain_id"].as_u64().expect("chain id");
        let p = Self { key: SigningKey::from_bytes(&[seed; 32]), chain_id };
        c.faucet(p.id().to_string(), funds).await.expect("faucet");
        p
    }

    /// Its account id.
    pub fn id(&self) -> AccountId {
        AccountId::of_key(&self.key.verifying_key())
    }

    /// `settlement_account` of it.
    pub async fn account(&self, c: &HttpClient) -> Value {
        c.account(self.id().to_string()).await.expect("account")
    }

    /// Signs `tx` at the account's next nonce and submits it.
    pub async fn send(&self, c: &HttpClient, tx: Tx) -> Result<Value, ApiError> {
        let nonce = self.account(c).await["nonce"].as_u64().expect("nonce");
        let stx = SignedTx::sign(&self.key, self.chain_id, nonce, tx);
        c.submit_tx(hex::encode(borsh::to_vec(&stx).expect("encode"))).await.map_err(api_err)
    }

    /// Opens a dispute on `record` (batched as `receipt`); returns the game id.
    pub async fn open(&self, c: &HttpClient, record: &InferenceRecord, receipt: &Receipt) -> u64 {
        let inc = receipt.inclusion.clone().expect("batched");
        wait_posted(c, inc.batch).await;
        let r = self
            .send(c, Tx::OpenDispute { batch: inc.batch, index: inc.index(), record: *record, proof: inc.proof })
            .await
            .expect("dispute opens");
        r["events"]
            .as_array()
            .and_then(|v| v.iter().find(|e| e["event"] == "dispute_opened"))
            .and_then(|e| e["game"].as_u64())
            .expect("a dispute_opened event with the game id")
    }
}

/// `settlement_game` as a `GameView`.
pub async fn game(c: &HttpClient, id: u64) -> GameView {
    serde_json::from_value(c.game(id).await.expect("game")).expect("a GameView")
}

/// Plays the challenger's side until the game ends or `max_moves` of its
/// moves were made: the honest strategy, or — when it finds no difference
/// (an honest record) — always the first child / element, which is valid
/// but wrong.
pub async fn play(c: &HttpClient, p: &Player, id: u64, honest: &DisputeProver, max_moves: usize) -> GameView {
    let mut moves = 0;
    for _ in 0..2000 {
        let v = game(c, id).await;
        if v.resolution.is_some() || moves == max_moves {
            return v;
        }
        if v.to_move == Some(Side::Challenger) {
            let mv = match challenger_move(&v, honest).expect("challenger move") {
                Some(mv) => mv,
                None => match v.awaiting {
                    Some(MoveKind::Pick) => Move::Pick { child: 0 },
                    Some(MoveKind::PickElement) => Move::PickElement { offset: 0 },
                    other => panic!("challenger to move but awaiting {other:?}"),
                },
            };
            p.send(c, v.tx(mv)).await.expect("challenger move accepted");
            moves += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("game {id} did not end");
}
