//! Crash test: SIGKILL the node process under load; after a restart every
//! request that received a successful response is present with the same
//! record, and batches continue from the right number.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use verinfer_e2e::*;
use verinfer_rpc::api::{ExplorerApiClient, InferApiClient};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-node"))
        .arg(datadir)
        .arg("40")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn e2e-node");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("READY line");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"READY"), "node said {line:?}");
    NodeProc {
        child,
        url: format!("http://{}", parts[1]),
        model_id: Hash32::from_hex(parts[2]).expect("model id"),
    }
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
            let req = SubmitRequest { model_id: node.model_id, inputs: vec![WireTensor::b64(&x)], output_encoding: Encoding::B64 };
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
        let rec = c.record(a.request_id, None).await.unwrap_or_else(|e| panic!("acknowledged {} lost: {e}", a.request_id));
        assert_eq!(rec.record, a.record, "record of {} changed", a.request_id);
        assert!(seqs.insert(a.record.sequence), "sequence {} acknowledged twice", a.record.sequence);
    }
    // Everything recovered gets sealed; numbering continues without gaps.
    let next = c.head().await.unwrap().next_sequence;
    let fresh = c
        .submit(SubmitRequest { model_id: node.model_id, inputs: vec![WireTensor::b64(&x)], output_encoding: Encoding::B64 })
        .await
        .unwrap();
    assert_eq!(fresh.record.sequence, next);
    let mut receipt = c.receipt(fresh.request_id).await.unwrap();
    for _ in 0..200 {
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

/// SIGTERM without libc: `kill -TERM`.
fn unsafe_sigterm(child: &Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
}
