//! The loader half of the shell: typed calls to the node's JSON-RPC API
//! (`model_`, `explorer_`, `settlement_`), decoding and checking everything
//! it receives. Nothing here trusts the node: bodies are checked against
//! their headers, programs against their roots, and malformed answers become
//! [`ChallengerError::BadResponse`], never a panic.

use std::time::Duration;

use base64::Engine as _;
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use serde::Deserialize;
use verinfer_prover::Program;
use verinfer_prover::game::tx::SignedTx;
use verinfer_prover::game::types::AccountId;
use verinfer_prover::game::view::GameView;
use verinfer_rpc::api::{ExplorerApiClient, ModelApiClient, SettlementApiClient};
use verinfer_rpc::types::{BatchSummary, GamesFilter};
use verinfer_state::batch::{BatchBody, BatchHeader, BodyEntry};
use verinfer_state::hash::Hash32;

use crate::error::{ChallengerError, Result};

/// The referee's parameters, as `settlement_info` reports them (fields the
/// bot reads; unknown ones ignored so a newer node still parses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SettlementParams {
    /// Signed-transaction domain.
    pub chain_id: u64,
    /// Challenge window (ms).
    pub challenge_window_ms: u64,
    /// Each side's clock per game (ms).
    pub clock_ms: u64,
    /// Bond locked by a challenger per game.
    pub challenger_bond: u64,
    /// Stake taken from the sequencer's bond per game.
    pub defender_stake: u64,
}

/// `settlement_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SettlementInfo {
    /// Parameters.
    pub params: SettlementParams,
    /// The referee's time (ms).
    pub now_ms: u64,
}

/// `settlement_account` (the fields the bot reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AccountInfo {
    /// Free balance.
    pub free: u64,
    /// Next nonce.
    pub nonce: u64,
}

/// `settlement_batch` (the fields the bot reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SettlementBatch {
    /// When its window closes (ms, referee time).
    pub window_end_ms: Option<u64>,
    /// Hash of the header the referee holds.
    pub hash: Option<Hash32>,
    /// The batch is settled (its records final or void).
    pub settled: bool,
    /// Whether its window is open, at the referee's time of the answer.
    pub window_open: Option<bool>,
}

/// A batch body, checked against its header.
#[derive(Clone, Debug)]
pub struct CheckedBody {
    /// The header.
    pub header: BatchHeader,
    /// The body (records and decoded inputs), verified against the header.
    pub body: BatchBody,
    /// The records tree (for inclusion proofs).
    pub tree: verinfer_state::merkle::MerkleTree,
}

/// Node client (HTTP).
#[derive(Clone, Debug)]
pub struct Chain {
    http: HttpClient,
}

fn rpc_err(method: &'static str) -> impl Fn(ClientError) -> ChallengerError {
    move |e| {
        let code = match &e {
            ClientError::Call(o) => Some(o.code()),
            _ => None,
        };
        let message = match &e {
            ClientError::Call(o) => format!("{} ({})", o.message(), o.code()),
            e => e.to_string(),
        };
        ChallengerError::Rpc { method, message, code }
    }
}

fn bad(method: &'static str, e: impl std::fmt::Display) -> ChallengerError {
    ChallengerError::BadResponse { method, message: e.to_string() }
}

impl Chain {
    /// A client for `url` with limits large enough for model programs.
    pub fn connect(url: &str) -> Result<Self> {
        let http = HttpClientBuilder::default()
            .max_request_size(64 << 20)
            .max_response_size(64 << 20)
            .request_timeout(Duration::from_secs(60))
            .build(url)
            .map_err(|e| ChallengerError::Config(format!("rpc {url}: {e}")))?;
        Ok(Self { http })
    }

    /// The underlying client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The newest batch number (0: none).
    pub async fn head(&self) -> Result<u64> {
        let h = ExplorerApiClient::head(&self.http).await.map_err(rpc_err("explorer_head"))?;
        Ok(h.head.map_or(0, |h| h.number))
    }

    /// Headers `from..=to`.
    pub async fn batches(&self, from: u64, to: u64) -> Result<Vec<BatchSummary>> {
        ExplorerApiClient::batches(&self.http, from, to).await.map_err(rpc_err("explorer_batches"))
    }

    /// Batch `number`'s body, decoded and verified against its header.
    pub async fn body(&self, number: u64) -> Result<CheckedBody> {
        const M: &str = "explorer_batchBody";
        let info = ExplorerApiClient::batch_body(&self.http, number).await.map_err(rpc_err(M))?;
        if info.header.number != number {
            return Err(bad(M, format!("asked for batch {number}, got {}", info.header.number)));
        }
        let mut entries = Vec::with_capacity(info.entries.len());
        for (i, e) in info.entries.into_iter().enumerate() {
            let inputs = e
                .inputs
                .iter()
                .enumerate()
                .map(|(j, t)| t.decode_input(&format!("entries[{i}].inputs[{j}]")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(M, e.message))?;
            entries.push(BodyEntry { record: e.record, inputs });
        }
        let body = BatchBody { entries };
        body.verify(&info.header).map_err(|e| bad(M, format!("batch {number}: {e}")))?;
        let tree = body.tree().map_err(|e| bad(M, e))?;
        Ok(CheckedBody { header: info.header, body, tree })
    }

    /// Model `model_id`'s program, checked against `program_root`.
    pub async fn program(&self, model_id: Hash32, program_root: Hash32) -> Result<Program> {
        const M: &str = "model_program";
        let p = ModelApiClient::model_program(&self.http, model_id).await.map_err(rpc_err(M))?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(p.program_b64.as_bytes()).map_err(|e| bad(M, e))?;
        let program = tokio::task::spawn_blocking(move || Program::from_bytes(&bytes))
            .await
            .map_err(|e| bad(M, e))?
            .map_err(|e| bad(M, e))?;
        let root = program.root();
        if root != program_root {
            return Err(bad(M, format!("model {model_id}: program hashes to {root}, records name {program_root}")));
        }
        Ok(program)
    }

    /// `settlement_info`.
    pub async fn info(&self) -> Result<SettlementInfo> {
        let v = SettlementApiClient::info(&self.http).await.map_err(rpc_err("settlement_info"))?;
        serde_json::from_value(v).map_err(|e| bad("settlement_info", e))
    }

    /// `settlement_account` (zero balance for an account the referee has
    /// never seen).
    pub async fn account(&self, id: &AccountId) -> Result<AccountInfo> {
        let v = SettlementApiClient::account(&self.http, format!("0x{}", id.to_hex()))
            .await
            .map_err(rpc_err("settlement_account"))?;
        serde_json::from_value(v).map_err(|e| bad("settlement_account", e))
    }

    /// `settlement_batch`: the header hash, window and settlement of batch
    /// `number`.
    pub async fn settlement_batch(&self, number: u64) -> Result<SettlementBatch> {
        let v = SettlementApiClient::batch(&self.http, number).await.map_err(rpc_err("settlement_batch"))?;
        serde_json::from_value(v).map_err(|e| bad("settlement_batch", e))
    }

    /// Submits a signed transaction; the referee's events on success.
    pub async fn submit(&self, stx: &SignedTx) -> Result<serde_json::Value> {
        let hex = hex::encode(borsh::to_vec(stx).map_err(|e| ChallengerError::Db(e.to_string()))?);
        match SettlementApiClient::submit_tx(&self.http, hex).await {
            Ok(v) => Ok(v),
            Err(ClientError::Call(o)) if o.code() == verinfer_rpc::error::TX_REJECTED => {
                Err(ChallengerError::TxRejected { tx: stx.tx.name(), reason: o.message().to_string() })
            }
            Err(e) => Err(rpc_err("settlement_submitTx")(e)),
        }
    }

    /// Game `id`'s view.
    pub async fn game(&self, id: u64) -> Result<GameView> {
        let v = SettlementApiClient::game(&self.http, id).await.map_err(rpc_err("settlement_game"))?;
        serde_json::from_value(v).map_err(|e| bad("settlement_game", e))
    }

    /// Games where `account` is a side (newest first).
    pub async fn games_of(&self, account: &AccountId, open: bool) -> Result<Vec<GameView>> {
        let f = GamesFilter { open, account: Some(format!("0x{}", account.to_hex())), batch: None, limit: Some(1000) };
        let vs = SettlementApiClient::games(&self.http, Some(f)).await.map_err(rpc_err("settlement_games"))?;
        vs.into_iter().map(|v| serde_json::from_value(v).map_err(|e| bad("settlement_games", e))).collect()
    }

    /// `settlement_faucet` (dev nodes only).
    pub async fn faucet(&self, account: &AccountId, amount: u64) -> Result<()> {
        SettlementApiClient::faucet(&self.http, format!("0x{}", account.to_hex()), amount)
            .await
            .map_err(rpc_err("settlement_faucet"))?;
        Ok(())
    }
}

/// The game id in the events of an applied `OpenDispute`
/// (`{events: [{event: "dispute_opened", game, …}, …]}`).
pub fn opened_game(events: &serde_json::Value) -> Option<u64> {
    let list = events.get("events").unwrap_or(events).as_array()?;
    list.iter().find_map(|e| {
        // Events may come bare or wrapped as `{at_ms, event: {…}}`.
        let e = if e.get("event").is_some_and(|x| x.is_object()) { &e["event"] } else { e };
        (e.get("event")?.as_str()? == "dispute_opened").then(|| e.get("game")?.as_u64())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispute_opened_game_ids_are_found_in_either_event_shape() {
        let bare = serde_json::json!({"events": [
            {"event": "transfer", "amount": 1},
            {"event": "dispute_opened", "game": 7, "batch": 1}
        ]});
        assert_eq!(opened_game(&bare), Some(7));
        let wrapped = serde_json::json!({"events": [{"at_ms": 5, "event": {"event": "dispute_opened", "game": 9}}]});
        assert_eq!(opened_game(&wrapped), Some(9));
        assert_eq!(opened_game(&serde_json::json!({"events": []})), None);
        assert_eq!(opened_game(&serde_json::json!("junk")), None);
    }

    #[test]
    fn accounts_and_batches_parse_the_node_shapes() {
        let a: AccountInfo = serde_json::from_value(serde_json::json!(
            {"account": "0xab", "free": 5, "nonce": 2, "sequencer": null, "bond": null, "escrow": 0, "open_games": []}
        ))
        .expect("parses");
        assert_eq!(a, AccountInfo { free: 5, nonce: 2 });
        let b: SettlementBatch = serde_json::from_value(serde_json::json!(
            {"number": 1, "window_end_ms": 9, "hash": format!("0x{}", "11".repeat(32)), "void": [],
             "window_open": false, "settled": true}
        ))
        .expect("parses");
        assert_eq!(b.window_end_ms, Some(9));
        assert_eq!(b.hash, Some(Hash32([0x11; 32])));
        assert_eq!((b.settled, b.window_open), (true, Some(false)));
        // An older node's answer without them: not settled, window unknown.
        let b: SettlementBatch =
            serde_json::from_value(serde_json::json!({"number": 1, "window_end_ms": 9})).expect("parses");
        assert_eq!((b.settled, b.window_open), (false, None));
    }
}
