//! `settlement_*`: the embedded referee over JSON-RPC (`docs/rpc.md#settlement`).
//!
//! Values are the serde forms of the referee's types (`GameView`, `Event`,
//! `Params`, …) wrapped in small JSON objects; `rpc` keeps them as
//! `serde_json::Value` (decision 0009). Nothing here panics on input:
//! malformed hex, borsh or account ids are `INVALID_ARGUMENT` naming the
//! parameter, a rejected transaction is `TX_REJECTED` with the referee's
//! reason.

use std::sync::Arc;

use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::server::{PendingSubscriptionSink, RpcModule};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use verinfer_rpc::api::SettlementApiServer;
use verinfer_rpc::error::{self as codes, ApiError};
use verinfer_rpc::types::GamesFilter;
use verinfer_settlement::{AccountId, Settlement, Side, SignedTx};

use crate::settlement::{MAX_FAUCET, SettlementError, SettlementHost};

/// Default and largest `limit` of `settlement_games`.
pub const GAMES_DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` of `settlement_games`.
pub const GAMES_MAX_LIMIT: u32 = 1000;

/// The `settlement_*` implementation.
#[derive(Clone, Debug)]
pub struct SettlementRpc {
    host: Arc<SettlementHost>,
}

fn err(e: ApiError) -> ErrorObjectOwned {
    e.into()
}

fn to_value<T: serde::Serialize>(v: &T) -> RpcResult<Value> {
    serde_json::to_value(v).map_err(|e| err(ApiError::internal(format!("encoding: {e}"))))
}

fn parse_account(field: &str, s: &str) -> RpcResult<AccountId> {
    AccountId::from_hex(s.trim()).map_err(|e| {
        let why = verinfer_state::hash::Hash32::explain_hex_error(s.trim(), &e);
        err(ApiError::invalid(format!("{field}: not a 0x-hex 32-byte account id ({why})")))
    })
}

fn settlement_err(e: SettlementError) -> ErrorObjectOwned {
    match e {
        SettlementError::Rejected(t) => err(ApiError::new(codes::TX_REJECTED, t.to_string())),
        e @ SettlementError::ForeignBatch { .. } => err(ApiError::new(codes::TX_REJECTED, e.to_string())),
        other => err(ApiError::internal(other.to_string())),
    }
}

fn batch_json(s: &Settlement, number: u64, now: u64) -> Option<Value> {
    let b = s.batch(number)?;
    Some(json!({
        "number": number,
        "hash": b.hash,
        "header": b.header,
        "sequencer": b.sequencer,
        "posted_at_ms": b.posted_at_ms,
        "window_end_ms": b.window_end_ms,
        "window_open": now < b.window_end_ms,
        "open_games": b.open_games,
        "settled": b.settled,
        "void": s.void_records(number),
        "body_available": s.body_available(number),
    }))
}

impl SettlementRpc {
    /// Wraps a host.
    pub fn new(host: Arc<SettlementHost>) -> Self {
        Self { host }
    }

    /// The module, with `explorer_game` / `explorer_games` as aliases of
    /// `settlement_game` / `settlement_games` (the explorer's game views).
    pub fn into_module(self) -> RpcModule<()> {
        let mut m = RpcModule::new(());
        m.merge(SettlementApiServer::into_rpc(self)).expect("a fresh module");
        m.register_alias("explorer_game", "settlement_game").expect("alias of a registered method");
        m.register_alias("explorer_games", "settlement_games").expect("alias of a registered method");
        m
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<SettlementHost>) -> RpcResult<T> + Send + 'static,
    ) -> RpcResult<T> {
        let h = self.host.clone();
        tokio::task::spawn_blocking(move || f(h))
            .await
            .unwrap_or_else(|e| Err(err(ApiError::internal(format!("task failed: {e}")))))
    }
}

#[async_trait]
impl SettlementApiServer for SettlementRpc {
    async fn info(&self) -> RpcResult<Value> {
        let me = self.host.account();
        let dev = self.host.is_dev();
        self.host.read(|s, now| {
            Ok(json!({
                "params": s.params(),
                "now_ms": now,
                "referee_time_ms": s.now_ms(),
                "sequencer": me,
                "head": s.head().map(|b| b.header.number),
                "dev": dev,
                "totals": s.totals(),
            }))
        })
    }

    async fn account(&self, account: String) -> RpcResult<Value> {
        let a = parse_account("account", &account)?;
        self.host.read(|s, _| {
            let acc = s.account(&a);
            let open: Vec<u64> = s.open_games().filter(|g| g.side_of(&a).is_some()).map(|g| g.id).collect();
            let escrow: u64 = s
                .open_games()
                .map(|g| match g.side_of(&a) {
                    Some(Side::Challenger) => g.challenger_bond,
                    Some(Side::Defender) => g.defender_stake,
                    None => 0,
                })
                .sum();
            Ok(json!({
                "account": a,
                "free": acc.free,
                "nonce": acc.nonce,
                "sequencer": s.sequencer(&a),
                "bond": s.sequencer(&a).map(|q| q.bond),
                "escrow": escrow,
                "open_games": open,
            }))
        })
    }

    async fn submit_tx(&self, signed_tx_hex: String) -> RpcResult<Value> {
        let h = signed_tx_hex.trim();
        let bytes = hex::decode(h.strip_prefix("0x").unwrap_or(h))
            .map_err(|e| err(ApiError::invalid(format!("signed_tx_hex: invalid hex ({e})"))))?;
        let stx: SignedTx = borsh::from_slice(&bytes)
            .map_err(|e| err(ApiError::invalid(format!("signed_tx_hex: not a borsh SignedTx ({e})"))))?;
        self.blocking(move |h| {
            let name = stx.tx.name();
            let (at_ms, events) = h.submit(stx).map_err(settlement_err)?;
            Ok(json!({ "at_ms": at_ms, "tx": name, "events": events }))
        })
        .await
    }

    async fn batch(&self, number: u64) -> RpcResult<Value> {
        self.host.read(|s, now| {
            batch_json(s, number, now).ok_or_else(|| {
                let msg = match s.head() {
                    Some(b) => format!("number: no batch {number} posted (settlement head is {})", b.header.number),
                    None => format!("number: no batch {number} posted (none posted yet)"),
                };
                err(ApiError::not_found(msg))
            })
        })
    }

    async fn record_status(&self, batch: u64, index: u64) -> RpcResult<Value> {
        self.host.read(|s, now| {
            let status = s.record_status(batch, index, now).map_err(|e| err(ApiError::not_found(e.to_string())))?;
            let d = s.record_disputes(batch, index);
            let b = s.batch(batch);
            Ok(json!({
                "batch": batch,
                "index": index,
                "status": status,
                "void": d.is_some_and(|d| d.void_by.is_some()),
                "void_by": d.and_then(|d| d.void_by),
                "games": d.map(|d| d.games.clone()).unwrap_or_default(),
                "open_games": d.map_or(0, |d| d.open),
                "window_end_ms": b.map(|b| b.window_end_ms),
            }))
        })
    }

    async fn game(&self, id: u64) -> RpcResult<Value> {
        let v = self.host.read(|s, now| s.game_view(id, now));
        match v {
            Some(v) => to_value(&v),
            None => Err(err(ApiError::not_found(format!("id: no game {id}")))),
        }
    }

    async fn games(&self, filter: Option<GamesFilter>) -> RpcResult<Vec<Value>> {
        let f = filter.unwrap_or_default();
        let limit = f.limit.unwrap_or(GAMES_DEFAULT_LIMIT);
        if limit > GAMES_MAX_LIMIT {
            return Err(err(ApiError::invalid(format!("limit: at most {GAMES_MAX_LIMIT} (got {limit})"))));
        }
        let account = f.account.as_deref().map(|a| parse_account("account", a)).transpose()?;
        let views = self.host.read(|s, now| {
            let all: Vec<_> = s.games().collect();
            all.into_iter()
                .rev()
                .filter(|g| !f.open || g.resolution.is_none())
                .filter(|g| account.is_none_or(|a| g.side_of(&a).is_some()))
                .filter(|g| f.batch.is_none_or(|b| g.batch == b))
                .take(limit as usize)
                .filter_map(|g| s.game_view(g.id, now))
                .collect::<Vec<_>>()
        });
        views.iter().map(to_value).collect()
    }

    async fn faucet(&self, account: String, amount: u64) -> RpcResult<Value> {
        if !self.host.is_dev() {
            return Err(err(ApiError::new(
                codes::METHOD_NOT_FOUND,
                "settlement_faucet is only available on a node started with --dev",
            )));
        }
        let a = parse_account("account", &account)?;
        if amount == 0 || amount > MAX_FAUCET {
            return Err(err(ApiError::invalid(format!("amount: must be in 1..={MAX_FAUCET} (got {amount})"))));
        }
        self.blocking(move |h| {
            let (at_ms, events) = h.deposit(a, amount).map_err(settlement_err)?;
            let free = h.read(|s, _| s.account(&a).free);
            Ok(json!({ "at_ms": at_ms, "account": a, "free": free, "events": events }))
        })
        .await
    }

    async fn subscribe_events(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut rx = self.host.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                r = rx.recv() => match r {
                    Ok(note) => {
                        if sink.send(serde_json::value::to_raw_value(&note)?).await.is_err() {
                            break;
                        }
                    }
                    // A subscriber more than 4096 events behind is closed; it
                    // catches up with settlement_games / settlement_batch.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }
}
