//! The embedded settlement layer over real JSON-RPC on loopback: batches
//! are posted and finalize, the `settlement_*` methods and their errors,
//! dispute games between an in-test honest challenger and the node's
//! automatic defender (faulty record, honest record, restart mid-game), and
//! fault injection refused without `--dev`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use verinfer_e2e::play::*;
use verinfer_e2e::*;
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::game::tx::{SignedTx, Tx};
use verinfer_prover::game::types::{AccountId, Side};
use verinfer_rpc::api::{InferApiClient, ModelApiClient, SettlementApiClient};
use verinfer_rpc::error as codes;
use verinfer_rpc::jsonrpsee::core::client::ClientT;
use verinfer_rpc::types::*;
use verinfer_sequencer::{FastExecutor, NodeConfig, RunningNode};
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Status;
use verinfer_state::tensor::Tensor;

/// A fault in mlp that reaches its outputs (docs/settlement.md's report
/// pins the first random one here): node 4 (`Add`), element 42, step 0.
const FAULT: (u32, u64, u64) = (4, 42, 0);

/// Short window and clocks, fast ticks.
fn short(c: &mut NodeConfig, window_ms: u64, clock_ms: u64) {
    c.settlement.challenge_window_ms = Some(window_ms);
    c.settlement.clock_ms = Some(clock_ms);
    c.settlement.tick_ms = 50;
}

fn fault_spec() -> String {
    format!("request=1,node={},element={},step={}", FAULT.0, FAULT.1, FAULT.2)
}

struct Setup {
    model_id: Hash32,
    x: Tensor,
    honest: DisputeProver,
}

async fn setup(node: &TestNode) -> Setup {
    let c = node.http();
    let info = c.register_model(register_request("mlp")).await.expect("mlp registers");
    let x = model_input("mlp");
    let program = (*node.running().node.model(&info.model_id).expect("loaded").program).clone();
    let honest = DisputeProver::new(program, vec![x.clone()], None).expect("prover");
    Setup { model_id: info.model_id, x, honest }
}

fn sequencer_bond(v: &Value) -> u64 {
    v["bond"].as_u64().unwrap_or(0)
}

/// With `prune_after_ms`, the inputs and outputs of final batches are
/// deleted: the explorer says so (NOT_FOUND naming the pruning), the
/// record, its receipt and proof remain, newer batches keep everything,
/// and the store still passes fsck after the node stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_batches_are_pruned_after_the_retention() {
    let mut node = TestNode::start_settled(|c| {
        short(c, 1_000, 10_000);
        c.settlement.prune_after_ms = 1;
    })
    .await;
    let c = node.http();
    let s = setup(&node).await;
    let old = submit_mlp(&c, s.model_id, &s.x).await.request_id;
    let inc = wait_batched(&c, old).await.inclusion.expect("inclusion");
    let e = wait_for("the final batch to be pruned", async || {
        match verinfer_rpc::api::ExplorerApiClient::record(&c, old, None).await {
            Ok(_) => None,
            Err(e) => Some(api_err(e)),
        }
    })
    .await;
    assert_eq!(e.code, codes::NOT_FOUND, "{e:?}");
    assert!(e.message.contains("pruned"), "{}", e.message);
    let e = api_err(verinfer_rpc::api::ExplorerApiClient::batch_body(&c, inc.batch).await.unwrap_err());
    assert!(e.code == codes::NOT_FOUND && e.message.contains("pruned"), "{e:?}");
    let r = c.receipt(old).await.expect("the receipt stays");
    assert_eq!(r.status, Status::Final);
    let h = verinfer_rpc::api::ExplorerApiClient::batch(&c, inc.batch).await.expect("the header stays").header;
    let record = node.running().node.store.record(&old).expect("read").expect("the record stays");
    verinfer_state::batch::verify_inclusion(&h, &record, &r.inclusion.expect("proof").proof)
        .expect("the proof still verifies");
    // A newer record keeps its tensors until its own batch is final.
    let fresh = submit_mlp(&c, s.model_id, &s.x).await.request_id;
    assert!(verinfer_rpc::api::ExplorerApiClient::record(&c, fresh, None).await.is_ok());
    let pruned = node.running().node.store.pruned();
    assert!(pruned.through_batch >= inc.batch, "{pruned:?}");
    node.stop().await;
    let store = verinfer_state::store::RocksStore::open_path(
        node.dir.path().join("db"),
        verinfer_state::store::StoreOptions::default(),
    )
    .expect("reopen");
    store.fsck().expect("fsck passes with pruned batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_posted_and_finalize_after_the_window() {
    let mut node = TestNode::start_settled(|c| short(c, 5_000, 10_000)).await;
    let c = node.http();
    let s = setup(&node).await;
    let info = SettlementApiClient::info(&c).await.expect("info");
    assert_eq!(info["dev"], true);
    assert_eq!(info["params"]["challenge_window_ms"], 5_000);
    let seq = info["sequencer"].as_str().expect("sequencer").to_string();
    let acct = c.account(seq.clone()).await.expect("account");
    assert!(sequencer_bond(&acct) >= info["params"]["min_sequencer_bond"].as_u64().unwrap(), "{acct}");

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit_mlp(&c, s.model_id, &s.x).await.request_id);
    }
    let r = wait_batched(&c, ids[2]).await;
    let inc = r.inclusion.clone().expect("inclusion");
    let b = wait_posted(&c, inc.batch).await;
    let explorer = verinfer_rpc::api::ExplorerApiClient::batch(&c, inc.batch).await.expect("explorer batch");
    assert_eq!(b["hash"], serde_json::to_value(explorer.hash).unwrap(), "the referee holds the sealed batch");
    assert_eq!(b["sequencer"], Value::String(seq.clone()));
    assert_eq!(serde_json::to_value(explorer.header.sequencer).unwrap(), Value::String(seq));
    let st = c.record_status(inc.batch, inc.index()).await.expect("status");
    assert_eq!(st["status"]["status"], "batched", "{st}");
    assert_eq!(st["void"], false);

    // After the window the batch settles and every record is final.
    let b = wait_for("the batch to settle", async || {
        let b = c.batch(inc.batch).await.expect("batch");
        (b["settled"] == true).then_some(b)
    })
    .await;
    assert_eq!(b["window_open"], false);
    assert_eq!(b["void"], serde_json::json!([]));
    let st = c.record_status(inc.batch, inc.index()).await.expect("status");
    assert_eq!(st["status"]["status"], "final");
    for id in &ids {
        let r = wait_for("receipt final", async || {
            let r = c.receipt(*id).await.expect("receipt");
            (r.status == Status::Final).then_some(r)
        })
        .await;
        assert!(r.inclusion.is_some());
    }
    // Every batch sealed was posted exactly once, in order.
    let head = verinfer_rpc::api::ExplorerApiClient::head(&c).await.expect("head").head.expect("a head").number;
    let info = SettlementApiClient::info(&c).await.expect("info");
    assert_eq!(info["head"].as_u64(), Some(head));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_methods_and_their_errors() {
    let mut node = TestNode::start_settled(|c| short(c, 60_000, 60_000)).await;
    let c = node.http();
    let s = setup(&node).await;
    let rec = submit_mlp(&c, s.model_id, &s.x).await;
    let receipt = wait_batched(&c, rec.request_id).await;
    let inc = receipt.inclusion.clone().unwrap();
    wait_posted(&c, inc.batch).await;

    // A parameter of the wrong type is named, for every method with scalar
    // parameters (jsonrpsee alone does not say which one failed).
    for (method, names) in verinfer_sequencer::params::METHODS {
        let params = vec![Value::Bool(true); names.len()];
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r = raw_post(node.running().rpc_addr, body.to_string().as_bytes(), "").await.unwrap();
        let v = r.json();
        assert_eq!(v["error"]["code"].as_i64(), Some(codes::INVALID_PARAMS as i64), "{method}: {}", r.body);
        let msg = v["error"]["message"].as_str().unwrap_or("");
        let want = format!("{method} params: {}: invalid type: boolean `true`, expected ", names[0].0);
        assert!(msg.starts_with(&want), "{method}: {msg}");
        assert!(!msg.contains(" at line "), "{method}: {msg}");
    }
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"settlement_recordStatus","params":[1,"x"]}"#;
    let r = raw_post(node.running().rpc_addr, body.as_bytes(), "").await.unwrap();
    let msg = r.json()["error"]["message"].as_str().unwrap_or("").to_string();
    assert_eq!(msg, r#"settlement_recordStatus params: index: invalid type: string "x", expected u64"#);

    let e = api_err(c.account("0x12".into()).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    assert!(e.message.starts_with("account:"), "{}", e.message);
    let e = api_err(c.game(999).await.unwrap_err());
    assert_eq!((e.code, e.message.as_str()), (codes::NOT_FOUND, "id: no game 999"));
    let e = api_err(c.batch(999).await.unwrap_err());
    assert_eq!(e.code, codes::NOT_FOUND);
    assert!(e.message.starts_with("number: no batch 999"), "{}", e.message);
    let e = api_err(c.record_status(inc.batch, 999).await.unwrap_err());
    assert_eq!(e.code, codes::NOT_FOUND, "{}", e.message);
    let e = api_err(c.record_status(999, 0).await.unwrap_err());
    assert_eq!(e.code, codes::NOT_FOUND);
    let e = api_err(c.submit_tx("zz".into()).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    assert!(e.message.starts_with("signed_tx_hex: invalid hex"), "{}", e.message);
    let e = api_err(c.submit_tx("0x0102".into()).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    assert!(e.message.starts_with("signed_tx_hex: not a borsh SignedTx"), "{}", e.message);
    let e = api_err(c.games(Some(GamesFilter { limit: Some(5000), ..Default::default() })).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    assert!(e.message.starts_with("limit:"));
    let e = api_err(c.faucet("0x00".into(), 5).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    let e = api_err(c.faucet(AccountId([1; 32]).to_string(), 0).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT);
    assert!(e.message.starts_with("amount:"));

    // Faucet and account.
    let p = Player::new(&c, 7, 1000).await;
    let a = p.account(&c).await;
    assert_eq!((a["free"].as_u64(), a["nonce"].as_u64(), a["bond"].clone()), (Some(1000), Some(0), Value::Null));

    // Referee rejections: TX_REJECTED with the referee's reason; nothing changes.
    let stx = SignedTx::sign(&p.key, p.chain_id, 5, Tx::Withdraw { amount: 1 });
    let e = api_err(c.submit_tx(hex::encode(borsh::to_vec(&stx).unwrap())).await.unwrap_err());
    assert_eq!((e.code, e.message.as_str()), (codes::TX_REJECTED, "nonce 5, expected 0"));
    let stx = SignedTx::sign(&p.key, p.chain_id + 1, 0, Tx::Withdraw { amount: 1 });
    let e = api_err(c.submit_tx(hex::encode(borsh::to_vec(&stx).unwrap())).await.unwrap_err());
    assert_eq!((e.code, e.message.as_str()), (codes::TX_REJECTED, "bad signature"));
    // Only the node's own key posts batches here (decision 0015).
    let header = verinfer_state::batch::BatchHeader {
        number: 1,
        parent_hash: Hash32::ZERO,
        records_root: Hash32::ZERO,
        record_count: 1,
        timestamp_ms: 1,
        sequencer: AccountId::of_key(&p.key.verifying_key()).as_hash(),
    };
    let body = verinfer_state::batch::BatchBody { entries: vec![] };
    let stx = SignedTx::sign(&p.key, p.chain_id, 0, Tx::PostBatch { header, body });
    let e = api_err(c.submit_tx(hex::encode(borsh::to_vec(&stx).unwrap())).await.unwrap_err());
    assert_eq!(e.code, codes::TX_REJECTED);
    assert!(e.message.contains("takes batches only from this node's sequencer"), "{}", e.message);
    let e = p.send(&c, Tx::Withdraw { amount: 5000 }).await.unwrap_err();
    assert_eq!(e.code, codes::TX_REJECTED);
    let e = p.send(&c, Tx::ClaimTimeout { game: 42 }).await.unwrap_err();
    assert_eq!(e.code, codes::TX_REJECTED);
    assert_eq!(p.account(&c).await["free"].as_u64(), Some(1000));
    let r = p.send(&c, Tx::Withdraw { amount: 10 }).await.expect("withdraw applies");
    assert_eq!(r["tx"], "withdraw");
    assert_eq!(r["events"][0]["event"], "transfer");
    assert_eq!(p.account(&c).await["nonce"].as_u64(), Some(1));

    // Games: list, filter, the explorer aliases, events over WebSocket.
    let ws = node.ws().await;
    let mut sub = ws.subscribe_events().await.expect("subscribe");
    let id = p.open(&c, &rec, &receipt).await;
    let ev: Value = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = sub.next().await.expect("event").expect("decodes");
            if n["event"]["event"] == "dispute_opened" {
                return n;
            }
        }
    })
    .await
    .expect("the dispute_opened event is pushed");
    assert_eq!(ev["event"]["game"].as_u64(), Some(id));
    assert!(ev["at_ms"].as_u64().is_some());
    let all = c.games(None).await.expect("games");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"].as_u64(), Some(id));
    let mine = c.games(Some(GamesFilter { account: Some(p.id().to_string()), ..Default::default() })).await.unwrap();
    assert_eq!(mine.len(), 1);
    let other = c.games(Some(GamesFilter { batch: Some(inc.batch + 100), ..Default::default() })).await.unwrap();
    assert!(other.is_empty());
    let e =
        api_err(c.games(Some(GamesFilter { account: Some("nope".into()), ..Default::default() })).await.unwrap_err());
    assert!(e.message.starts_with("account:"));
    let v: Value = c.request("explorer_game", verinfer_rpc::jsonrpsee::core::rpc_params![id]).await.expect("alias");
    assert_eq!(v["id"].as_u64(), Some(id));
    let st = c.record_status(inc.batch, inc.index()).await.unwrap();
    assert_eq!(st["status"]["status"], "disputed");
    assert_eq!(st["games"], serde_json::json!([id]));
    // Disputing the same record twice is allowed (its own stake); disputing
    // from the sequencer itself is not (it has no key here, so: a closed
    // window instead).
    let e = p
        .send(&c, Tx::OpenDispute { batch: inc.batch, index: inc.index() + 7, record: rec, proof: inc.proof.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.code, codes::TX_REJECTED);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faucet_is_dev_only_and_fault_injection_needs_dev() {
    // Without --dev: no faucet.
    let mut node = TestNode::start_settled(|c| c.dev = false).await;
    let c = node.http();
    let e = api_err(c.faucet(AccountId([1; 32]).to_string(), 5).await.unwrap_err());
    assert_eq!(e.code, codes::METHOD_NOT_FOUND);
    assert!(e.message.contains("--dev"), "{}", e.message);
    let info = SettlementApiClient::info(&c).await.unwrap();
    assert_eq!(info["dev"], false);
    node.stop().await;

    // Fault injection without --dev: a startup error.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&dir.path().join("db"));
    cfg.dev_options.inject_fault = Some("every=1".into());
    let e = RunningNode::start_embedded(cfg.clone(), Arc::new(FastExecutor)).await.unwrap_err();
    assert!(e.to_string().contains("requires --dev"), "{e}");
    assert!(cfg.validate().is_err());
    // With --dev it starts; a malformed spec does not.
    cfg.dev = true;
    cfg.dev_options.inject_fault = Some("every=0".into());
    let e = RunningNode::start_embedded(cfg.clone(), Arc::new(FastExecutor)).await.unwrap_err();
    assert!(e.to_string().contains("every=0"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_record_loses_to_the_honest_challenger() {
    let mut node = TestNode::start_settled(|c| {
        short(c, 30_000, 30_000);
        c.dev_options.inject_fault = Some(fault_spec());
    })
    .await;
    let c = node.http();
    let s = setup(&node).await;
    let rec = submit_mlp(&c, s.model_id, &s.x).await;
    assert_ne!(rec.output_root, s.honest.claim().unwrap().output_root, "the node corrupted request 1");
    let ok = submit_mlp(&c, s.model_id, &s.x).await;
    assert_eq!(ok.output_root, s.honest.claim().unwrap().output_root, "request 2 is correct");
    let receipt = wait_batched(&c, rec.request_id).await;

    let seq = SettlementApiClient::info(&c).await.unwrap()["sequencer"].as_str().unwrap().to_string();
    let bond_before = sequencer_bond(&c.account(seq.clone()).await.unwrap());
    let p = Player::new(&c, 11, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    let v = play(&c, &p, id, &s.honest, usize::MAX).await;

    let res = v.resolution.clone().expect("resolved");
    assert_eq!(res.winner, Side::Challenger, "{res:?}");
    let pin = &res.pinpoint;
    assert_eq!((pin.node, pin.element, pin.step), (Some(FAULT.0), Some(FAULT.1), Some(FAULT.2)), "{pin:?}");
    assert!(pin.op.is_some() && pin.s_prev.is_some() && pin.s_next.is_some() && pin.expected.is_some(), "{pin:?}");
    assert!(!pin.operands.is_empty());
    // The explorer's view carries the same pinpoint and the verdict.
    let ev = c.game(id).await.unwrap();
    assert_eq!(ev["resolution"]["pinpoint"]["node"].as_u64(), Some(u64::from(FAULT.0)));
    assert_eq!(ev["resolution"]["winner"], "challenger");
    let reason = &ev["resolution"]["reason"];
    assert_eq!(reason["reason"], "step_checked", "{reason}");
    assert!(reason["verdict"].get("Wrong").is_some(), "the referee recomputed another s_t+1: {reason}");

    let inc = receipt.inclusion.clone().unwrap();
    let st = c.record_status(inc.batch, inc.index()).await.unwrap();
    assert_eq!((st["void"].clone(), st["status"]["status"].clone()), (Value::Bool(true), Value::from("fraudulent")));
    let stake = v.defender_stake;
    assert_eq!(
        p.account(&c).await["free"].as_u64(),
        Some(1000 + stake),
        "the challenger got its bond back plus the stake"
    );
    assert_eq!(sequencer_bond(&c.account(seq).await.unwrap()), bond_before - stake, "the stake left the bond");
    wait_for("receipt fraudulent", async || {
        (c.receipt(rec.request_id).await.unwrap().status == Status::Fraudulent).then_some(())
    })
    .await;
    // The correct record in the same batch stands.
    let r2 = wait_batched(&c, ok.request_id).await;
    let st2 =
        c.record_status(r2.inclusion.as_ref().unwrap().batch, r2.inclusion.as_ref().unwrap().index()).await.unwrap();
    assert_eq!(st2["void"], false);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_record_disputed_the_challenger_loses() {
    let mut node = TestNode::start_settled(|c| short(c, 30_000, 30_000)).await;
    let c = node.http();
    let s = setup(&node).await;
    let rec = submit_mlp(&c, s.model_id, &s.x).await;
    let receipt = wait_batched(&c, rec.request_id).await;
    let seq = SettlementApiClient::info(&c).await.unwrap()["sequencer"].as_str().unwrap().to_string();
    let free_before = c.account(seq.clone()).await.unwrap()["free"].as_u64().unwrap();
    let p = Player::new(&c, 12, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    let v = play(&c, &p, id, &s.honest, usize::MAX).await;
    let res = v.resolution.clone().expect("resolved");
    assert_eq!(res.winner, Side::Defender, "{res:?}");
    let inc = receipt.inclusion.clone().unwrap();
    let st = c.record_status(inc.batch, inc.index()).await.unwrap();
    assert_eq!(st["void"], false);
    assert_eq!(st["status"]["status"], "batched", "back to batched while the window is open");
    assert_eq!(p.account(&c).await["free"].as_u64(), Some(1000 - v.challenger_bond));
    let free_after = c.account(seq).await.unwrap()["free"].as_u64().unwrap();
    assert_eq!(free_after, free_before + v.challenger_bond + v.defender_stake, "the escrow went to the defender");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defender_keeps_answering_after_a_restart_mid_game() {
    let mut node = TestNode::start_settled(|c| {
        short(c, 60_000, 60_000);
        c.dev_options.inject_fault = Some(fault_spec());
    })
    .await;
    let c = node.http();
    let s = setup(&node).await;
    let rec = submit_mlp(&c, s.model_id, &s.x).await;
    let receipt = wait_batched(&c, rec.request_id).await;
    let p = Player::new(&c, 13, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    // Two challenger moves, then the node goes down and comes back.
    let v = play(&c, &p, id, &s.honest, 2).await;
    assert!(v.resolution.is_none(), "the game is still open");
    let moves_before = v.moves;
    let cfg = node.running().node.cfg.clone();
    node.restart_settled(cfg).await;
    let c = node.http();
    let v = game(&c, id).await;
    assert!(v.moves >= moves_before, "the game survived the restart");
    let v = play(&c, &p, id, &s.honest, usize::MAX).await;
    let res = v.resolution.clone().expect("resolved");
    assert_eq!(res.winner, Side::Challenger, "{res:?}");
    assert_eq!(
        (res.pinpoint.node, res.pinpoint.element, res.pinpoint.step),
        (Some(FAULT.0), Some(FAULT.1), Some(FAULT.2))
    );
    let inc = receipt.inclusion.clone().unwrap();
    assert_eq!(c.record_status(inc.batch, inc.index()).await.unwrap()["void"], true);
    // Batches keep being posted in order after the restart.
    let rec2 = submit_mlp(&c, s.model_id, &s.x).await;
    let r2 = wait_batched(&c, rec2.request_id).await;
    let b2 = r2.inclusion.unwrap().batch;
    let posted = wait_posted(&c, b2).await;
    assert_eq!(posted["number"].as_u64(), Some(b2));
    node.stop().await;
}

/// The value of the sample `name` (with its labels, e.g.
/// `x{outcome="won"}`) in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fault_position_is_pinpointed_and_counted_in_metrics() {
    // No node/element/step: the node picks a random position that changes
    // the outputs (seeded, so a failure reproduces).
    let mut node = TestNode::start_settled(|c| {
        short(c, 30_000, 30_000);
        c.dev_options.inject_fault = Some("request=1,seed=7".into());
    })
    .await;
    let c = node.http();
    let metrics = node.running().metrics_addr.expect("metrics enabled");
    let text = http_get(metrics, "/metrics").await.expect("metrics").body;
    for name in [
        "verinfer_settlement_batches_posted",
        "verinfer_settlement_last_posted_batch",
        "verinfer_settlement_games_open",
        "verinfer_settlement_sequencer_bond",
        "verinfer_settlement_sequencer_free",
        "verinfer_settlement_log_entries",
    ] {
        assert!(sample(&text, name).is_some(), "{name} missing from /metrics:\n{text}");
    }
    assert_eq!(sample(&text, "verinfer_settlement_games_open"), Some(0.0));

    let s = setup(&node).await;
    let rec = submit_mlp(&c, s.model_id, &s.x).await;
    assert_ne!(rec.output_root, s.honest.claim().unwrap().output_root, "the node corrupted request 1");
    let stored = node
        .running()
        .node
        .store
        .settlement_get(&verinfer_sequencer::fault::fault_key(&rec.input_root, &rec.output_root))
        .expect("store")
        .expect("the injected fault is stored under the record's roots");
    let fault: verinfer_prover::dispute::Fault = borsh::from_slice(&stored).expect("a Fault");
    let receipt = wait_batched(&c, rec.request_id).await;
    let p = Player::new(&c, 14, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    let text = http_get(metrics, "/metrics").await.expect("metrics").body;
    assert_eq!(sample(&text, "verinfer_settlement_games_open"), Some(1.0), "{text}");
    let v = play(&c, &p, id, &s.honest, usize::MAX).await;

    let res = v.resolution.clone().expect("resolved");
    assert_eq!(res.winner, Side::Challenger, "{res:?}");
    let pin = &res.pinpoint;
    assert_eq!(
        (pin.node, pin.element, pin.step),
        (Some(fault.node), Some(fault.element), Some(fault.step)),
        "{pin:?} vs {fault:?}"
    );
    // Inside the program: a real node, one of its output elements, one of
    // that element's fold steps.
    let program = &node.running().node.model(&s.model_id).expect("loaded").program;
    let n = program.nodes.get(fault.node as usize).expect("the pinned node is in the program");
    assert!(fault.element < n.output.shape.iter().product::<u64>(), "{fault:?}");
    let (states, _) = s.honest.states(fault.node, fault.element).expect("states");
    assert!(fault.step < states.len() as u64 - 1, "{fault:?}");
    let inc = receipt.inclusion.clone().unwrap();
    assert_eq!(c.record_status(inc.batch, inc.index()).await.unwrap()["void"], true);

    // The metrics follow the referee: one game lost, none open, the bond
    // and balance the referee reports, every batch posted.
    let seq = SettlementApiClient::info(&c).await.unwrap()["sequencer"].as_str().unwrap().to_string();
    let acct = c.account(seq).await.unwrap();
    let head = verinfer_rpc::api::ExplorerApiClient::head(&c).await.unwrap().head.expect("a head").number;
    wait_posted(&c, head).await;
    let text = http_get(metrics, "/metrics").await.expect("metrics").body;
    let m = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(m("verinfer_settlement_games_open"), 0.0);
    assert_eq!(m("verinfer_settlement_defender_games{outcome=\"lost\"}"), 1.0);
    assert_eq!(m("verinfer_settlement_defender_games{outcome=\"won\"}"), 0.0);
    assert_eq!(m("verinfer_settlement_sequencer_bond"), sequencer_bond(&acct) as f64);
    assert_eq!(m("verinfer_settlement_sequencer_free"), acct["free"].as_u64().unwrap() as f64);
    assert!(m("verinfer_settlement_last_posted_batch") >= head as f64);
    assert!(m("verinfer_settlement_batches_posted") >= head as f64);
    // The log tail since the last snapshot (one every 64 entries).
    assert!(m("verinfer_settlement_log_entries") < verinfer_sequencer::settlement::SNAPSHOT_EVERY as f64);
    node.stop().await;
}

/// Opens a dispute on an honest record while the node's defender is off
/// (as if the node died before answering); returns the node, the game id,
/// the record's position and the challenger.
async fn honest_game(model: &str, clock_ms: u64) -> (TestNode, u64, (u64, u64), Player) {
    let node = TestNode::start_settled(|c| {
        short(c, 120_000, clock_ms);
        c.settlement.defender = false;
        c.rpc.max_request_body_bytes = 32 << 20;
    })
    .await;
    let c = node.http();
    let info = c.register_model(register_request(model)).await.expect("model registers");
    let rec = submit_mlp(&c, info.model_id, &model_input(model)).await;
    let receipt = wait_batched(&c, rec.request_id).await;
    let inc = receipt.inclusion.clone().expect("batched");
    let p = Player::new(&c, 31, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    (node, id, (inc.batch, inc.index()), p)
}

/// The node's downtime is charged to nobody's chess clock (decision 0017):
/// down for longer than the defender's whole clock, the restarted defender
/// still answers, and the challenger cannot claim a timeout (found by an
/// audit: the honest record used to be voided on the first tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_not_charged_to_the_defenders_clock() {
    let (mut node, id, (batch, index), p) = honest_game("mlp", 3_000).await;
    let mut cfg = node.running().node.cfg.clone();
    node.stop().await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    cfg.settlement.defender = true;
    node.restart_settled(cfg).await;
    let c = node.http();
    let e = p.send(&c, Tx::ClaimTimeout { game: id }).await.expect_err("the defender's clock has not run out");
    assert_eq!(e.code, codes::TX_REJECTED, "{e:?}");
    wait_for("the defender's first move after the restart", async || (game(&c, id).await.moves > 0).then_some(()))
        .await;
    assert_eq!(c.record_status(batch, index).await.expect("status")["void"], false);
    node.stop().await;
}

/// Nor is it charged to a batch's challenge window: a batch posted just
/// before a downtime longer than its window can still be disputed after
/// the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_does_not_close_challenge_windows() {
    let mut node = TestNode::start_settled(|c| short(c, 3_000, 10_000)).await;
    let c = node.http();
    let info = c.register_model(register_request("mlp")).await.expect("mlp");
    let rec = submit_mlp(&c, info.model_id, &model_input("mlp")).await;
    let receipt = wait_batched(&c, rec.request_id).await;
    let inc = receipt.inclusion.clone().expect("batched");
    wait_posted(&c, inc.batch).await;
    let cfg = node.running().node.cfg.clone();
    node.stop().await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    node.restart_settled(cfg).await;
    let c = node.http();
    let p = Player::new(&c, 33, 1000).await;
    p.send(&c, Tx::OpenDispute { batch: inc.batch, index: inc.index(), record: rec, proof: inc.proof.clone() })
        .await
        .expect("the window is still open after the downtime");
    node.stop().await;
}

/// A model the node no longer serves (a lower exec limit after a restart)
/// still has its records defended: the defender builds its prover from the
/// stored program (found by an audit: it looked for the served model and
/// lost the game by timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_model_no_longer_served_are_still_defended() {
    let (mut node, id, (batch, index), _p) = honest_game("mobilenetv2", 60_000).await;
    let model_id = node.running().node.models()[0].entry.model_id;
    let mut cfg = node.running().node.cfg.clone();
    cfg.settlement.defender = true;
    cfg.exec.max_model_mib = 8; // mobilenetv2 plans in ~20 MiB
    node.restart_settled(cfg).await;
    let c = node.http();
    assert!(c.get_model(model_id).await.is_err(), "mobilenetv2 is not served under the lower limit");
    wait_for("the defender's first move", async || (game(&c, id).await.moves > 0).then_some(())).await;
    assert_eq!(c.record_status(batch, index).await.expect("status")["void"], false);
    node.stop().await;
}

/// Many games opened at once are all answered (the defender plays them
/// earliest deadline first, several at a time, sharing one prover cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defender_answers_many_games_opened_at_once() {
    let mut node = TestNode::start_settled(|c| {
        short(c, 120_000, 30_000);
        c.settlement.defender_threads = 2;
        // Room for one mlp prover only: the others are rebuilt as needed.
        c.settlement.defender_cache_mib = 0;
    })
    .await;
    let c = node.http();
    let s = setup(&node).await;
    let mut recs = Vec::new();
    for _ in 0..6 {
        recs.push(submit_mlp(&c, s.model_id, &s.x).await);
    }
    let mut opened = Vec::new();
    let p = Player::new(&c, 41, 5000).await;
    for rec in &recs {
        let receipt = wait_batched(&c, rec.request_id).await;
        opened.push((p.open(&c, rec, &receipt).await, receipt.inclusion.expect("batched")));
    }
    for (id, _) in &opened {
        wait_for("the defender's answer", async || (game(&c, *id).await.moves > 0).then_some(())).await;
    }
    // The challenger plays on honestly in one game: the defender keeps
    // answering it, although its prover was evicted meanwhile.
    let (id, inc) = &opened[0];
    let v = play(&c, &p, *id, &s.honest, usize::MAX).await;
    assert_eq!(v.resolution.expect("resolved").winner, Side::Defender);
    assert_eq!(c.record_status(inc.batch, inc.index()).await.expect("status")["void"], false);
    node.stop().await;
}
