//! Crash tests of the node process (`e2e-node`, the embedded settlement
//! layer in dev mode):
//! * SIGKILL under load: after a restart every request that received a
//!   successful response is present with the same record, and batches
//!   continue from the right number.
//! * SIGKILL mid-game: a dispute game on an injected fault survives the
//!   kill; the honest challenger finishes it against the restarted node's
//!   defender and wins with the injected pinpoint, value is conserved, and
//!   posting continues with the next batch numbers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use verinfer_e2e::play::*;
use verinfer_e2e::*;
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::game::types::Side;
use verinfer_rpc::api::{ExplorerApiClient, InferApiClient, SettlementApiClient};
use verinfer_rpc::tensor::{Encoding, WireTensor};
use verinfer_rpc::types::{SubmitRequest, SubmitResponse};
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Status;
use verinfer_state::store::{RocksStore, StoreOptions};

struct NodeProc {
    child: Child,
    url: String,
    model_id: Hash32,
}

fn spawn_node(datadir: &std::path::Path) -> NodeProc {
    spawn_node_with(datadir, &[])
}

fn spawn_node_with(datadir: &std::path::Path, extra: &[&str]) -> NodeProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-node"))
        .arg(datadir)
        .arg("40")
        .args(extra)
        .env_remove("E2E_INJECT_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn e2e-node");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("READY line");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"READY"), "node said {line:?}");
    NodeProc { child, url: format!("http://{}", parts[1]), model_id: Hash32::from_hex(parts[2]).expect("model id") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("db");
    let x = model_input("mlp");
    let mut acked: Vec<SubmitResponse> = Vec::new();
    let mut last_seen_batch = 0u64;

    for round in 0..2 {
        let mut node = spawn_node(&datadir);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..8 {
            let c = http_client(&node.url);
            let req = SubmitRequest {
                model_id: node.model_id,
                inputs: vec![WireTensor::b64(&x)],
                output_encoding: Encoding::B64,
            };
            let stop = stop.clone();
            clients.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match c.submit(req.clone()).await {
                        Ok(r) => ok.push(r),
                        Err(_) => break, // the node died mid-request: not acknowledged.
                    }
                }
                ok
            }));
        }
        // Let load build up and a few batches seal, then SIGKILL.
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        let c = http_client(&node.url);
        if let Ok(h) = c.head().await {
            last_seen_batch = last_seen_batch.max(h.head.map_or(0, |h| h.number));
        }
        node.child.kill().expect("SIGKILL");
        node.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for cl in clients {
            acked.extend(cl.await.unwrap());
        }
        assert!(!acked.is_empty(), "no request was acknowledged before the kill");
    }

    // Restart and check every acknowledged request.
    let mut node = spawn_node(&datadir);
    let c = http_client(&node.url);
    let head0 = c.head().await.unwrap();
    assert!(head0.head.map_or(0, |h| h.number) >= last_seen_batch, "batches lost: {head0:?} < {last_seen_batch}");
    let mut seqs = std::collections::HashSet::new();
    for a in &acked {
        let rec =
            c.record(a.request_id, None).await.unwrap_or_else(|e| panic!("acknowledged {} lost: {e}", a.request_id));
        assert_eq!(rec.record, a.record, "record of {} changed", a.request_id);
        assert!(seqs.insert(a.record.sequence), "sequence {} acknowledged twice", a.record.sequence);
    }
    // Everything recovered gets sealed; numbering continues without gaps.
    let next = c.head().await.unwrap().next_sequence;
    let fresh = c
        .submit(SubmitRequest {
            model_id: node.model_id,
            inputs: vec![WireTensor::b64(&x)],
            output_encoding: Encoding::B64,
        })
        .await
        .unwrap();
    assert_eq!(fresh.record.sequence, next);
    let mut receipt = c.receipt(fresh.request_id).await.unwrap();
    for _ in 0..800 {
        if receipt.status != Status::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        receipt = c.receipt(fresh.request_id).await.unwrap();
    }
    let Status::Batched { batch, .. } = receipt.status else { panic!("not sealed: {receipt:?}") };
    let headers = c.batches(1, batch).await.unwrap();
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.header.number, i as u64 + 1, "batch numbers have a gap");
        if i > 0 {
            assert_eq!(h.header.parent_hash, headers[i - 1].hash);
        }
    }
    for a in &acked {
        let r = c.receipt(a.request_id).await.unwrap();
        assert!(matches!(r.status, Status::Batched { .. }), "{} still {:?}", a.request_id, r.status);
    }
    // Graceful stop, then the store checks out.
    unsafe_sigterm(&node.child);
    node.child.wait().unwrap();
    let store = RocksStore::open_path(&datadir, StoreOptions::default()).unwrap();
    let summary = store.fsck().unwrap();
    assert_eq!(summary.pending, 0);
    assert!(summary.batched_records as usize > acked.len());
    eprintln!(
        "crash test: {} acknowledged requests across 2 SIGKILLs, {} batches, all recovered",
        acked.len(),
        summary.batches
    );
}

/// mlp node 4 (`Add`), element 42, step 0: a fault that reaches the
/// outputs (the same one `tests/tests/settlement.rs` uses).
const FAULT: (u32, u64, u64) = (4, 42, 0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_game_the_game_resumes_and_the_challenger_wins() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("db");
    let spec = format!("request=1,node={},element={},step={}", FAULT.0, FAULT.1, FAULT.2);
    // Windows and clocks long enough for the whole game and a restart.
    let args = ["--inject-fault", spec.as_str(), "--window-ms", "120000", "--clock-ms", "60000"];
    let mut node = spawn_node_with(&datadir, &args);
    let c = http_client(&node.url);
    let x = model_input("mlp");
    // The challenger compiles the model itself and runs it honestly.
    let program = compile("mlp");
    let honest = DisputeProver::new(program, vec![x.clone()], None).expect("prover");

    let rec = submit_mlp(&c, node.model_id, &x).await;
    assert_eq!(rec.program_root, honest.program().root(), "the test compiles the node's program");
    assert_ne!(rec.output_root, honest.claim().unwrap().output_root, "the node corrupted request 1");
    let receipt = wait_batched(&c, rec.request_id).await;
    let seq = SettlementApiClient::info(&c).await.unwrap()["sequencer"].as_str().unwrap().to_string();
    let bond_before = c.account(seq.clone()).await.unwrap()["bond"].as_u64().unwrap();
    let p = Player::new(&c, 21, 1000).await;
    let id = p.open(&c, &rec, &receipt).await;
    let st = wait_for("the receipt to say disputed", async || {
        let r = c.receipt(rec.request_id).await.unwrap();
        (r.status == Status::Disputed).then_some(r)
    })
    .await;
    assert!(st.inclusion.is_some());
    let v = play(&c, &p, id, &honest, 3).await;
    assert!(v.resolution.is_none(), "the game is still open after 3 challenger moves");
    let moves_before = v.moves;
    let head_before = c.head().await.unwrap().head.expect("a head").number;

    // SIGKILL mid-game, then the same command line on the same datadir.
    node.child.kill().expect("SIGKILL");
    node.child.wait().unwrap();
    let mut node = spawn_node_with(&datadir, &args);
    let c = http_client(&node.url);
    let v = game(&c, id).await;
    assert!(
        v.resolution.is_none() && v.moves >= moves_before,
        "the game survived the kill: {} < {moves_before}",
        v.moves
    );
    assert_eq!(c.receipt(rec.request_id).await.unwrap().status, Status::Disputed);
    let v = play(&c, &p, id, &honest, usize::MAX).await;

    let res = v.resolution.clone().expect("resolved");
    assert_eq!(res.winner, Side::Challenger, "{res:?}");
    let pin = &res.pinpoint;
    assert_eq!((pin.node, pin.element, pin.step), (Some(FAULT.0), Some(FAULT.1), Some(FAULT.2)), "{pin:?}");
    let inc = receipt.inclusion.clone().unwrap();
    assert_eq!(c.record_status(inc.batch, inc.index()).await.unwrap()["void"], true);
    wait_for("the receipt to say fraudulent", async || {
        (c.receipt(rec.request_id).await.unwrap().status == Status::Fraudulent).then_some(())
    })
    .await;
    // Value is conserved across the kill: the stake moved from the bond to
    // the challenger, with its bond back; nothing created or lost.
    let stake = v.defender_stake;
    assert_eq!(p.account(&c).await["free"].as_u64(), Some(1000 + stake));
    assert_eq!(c.account(seq).await.unwrap()["bond"].as_u64(), Some(bond_before - stake));
    let t = &SettlementApiClient::info(&c).await.unwrap()["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}: {t}"));
    assert_eq!(n("deposited"), n("withdrawn") + n("free") + n("bonds") + n("escrow"), "value not conserved: {t}");
    assert_eq!(n("escrow"), 0);

    // Posting continues: the next batch is sealed and posted with the next
    // number, and the referee holds exactly the store's batches.
    let rec2 = submit_mlp(&c, node.model_id, &x).await;
    let r2 = wait_batched(&c, rec2.request_id).await;
    let b2 = r2.inclusion.expect("batched").batch;
    assert!(b2 > head_before, "batch {b2} after {head_before}");
    let head = c.head().await.unwrap().head.expect("a head").number;
    wait_posted(&c, head).await;
    for n in 1..=head {
        let posted = wait_posted(&c, n).await;
        let sealed = ExplorerApiClient::batch(&c, n).await.unwrap();
        assert_eq!(posted["hash"], serde_json::to_value(sealed.hash).unwrap(), "batch {n}");
    }
    assert_eq!(SettlementApiClient::info(&c).await.unwrap()["head"].as_u64(), Some(head));
    unsafe_sigterm(&node.child);
    node.child.wait().unwrap();
}

/// SIGTERM without libc: `kill -TERM`.
fn unsafe_sigterm(child: &Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
}
