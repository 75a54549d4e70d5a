//! End-to-end: real nodes hosting the embedded referee (in-process, real
//! RPC on loopback) against real challengers (`verinfer_challenger`).
//!
//! * `honest_node_many_batches_no_dispute_everything_final` — (a)
//! * `injected_fault_is_pinpointed_slashed_and_the_rest_of_the_batch_finalizes` — (b)
//! * `two_challengers_on_one_fraud_are_paid_from_separate_stakes` — (c)
//! * `a_silent_defender_loses_by_the_timeout_the_challenger_claims`
//! * `a_challenger_disputing_a_correct_record_loses_its_bond` — (d)
//! * `a_challenger_killed_mid_game_resumes_and_wins` — (e)
//! * `a_withheld_program_delays_the_verdict_and_the_fraud_is_still_won`,
//!   `a_program_withheld_to_the_end_leaves_its_records_unverifiable`
//! * `a_challenger_behind_pruned_batches_passes_them_at_once`
//! * `no_more_than_max_games_games_are_played_at_once`
//! * `report_time_to_verdict_and_throughput` (ignored) — (f)

use std::time::{Duration, Instant};

use jsonrpsee_http_client::HttpClient;
use serde_json::Value;
use verinfer_challenger::solver::Verdict;
use verinfer_challenger::{Config, RunningChallenger};
use verinfer_e2e::*;
use verinfer_prover::dispute::{DisputeProver, Fault, execute_all};
use verinfer_prover::frontend::LoadOptions;
use verinfer_prover::game::types::AccountId;
use verinfer_prover::game::view::GameView;
use verinfer_rpc::api::{InferApiClient, ModelApiClient, SettlementApiClient};
use verinfer_rpc::tensor::WireTensor;
use verinfer_rpc::types::{ModelInfo, SubmitRequest};
use verinfer_sequencer::NodeConfig;
use verinfer_state::hash::Hash32;
use verinfer_state::record::tensors_root;
use verinfer_state::tensor::{Tensor, TensorData};

const WINDOW_MS: u64 = 12_000;
const CLOCK_MS: u64 = 6_000;
/// The clock of the kill-and-restart test (see there).
const RESTART_CLOCK_MS: u64 = 20_000;

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

fn settle_cfg(c: &mut NodeConfig, fault: Option<String>) {
    c.settlement.challenge_window_ms = Some(WINDOW_MS);
    c.settlement.clock_ms = Some(CLOCK_MS);
    c.settlement.tick_ms = 100;
    c.batcher.interval_ms = 200;
    c.dev_options.inject_fault = fault;
}

fn challenger_cfg(node: &TestNode, dir: &std::path::Path) -> Config {
    Config {
        rpc: node.http_url(),
        datadir: dir.to_path_buf(),
        dev_faucet: true,
        concurrency: 2,
        poll_ms: 100,
        reconnect_min_ms: 100,
        reconnect_max_ms: 1000,
        metrics: Some(([127, 0, 0, 1], 0).into()),
        ..Config::default()
    }
}

/// Input `i` of a model: its fixture input with element 0 nudged, so every
/// request is a different computation.
/// The model's fixture inputs, the first f32 value nudged by `i` so that
/// records differ (models with only integer inputs repeat the same inputs).
fn inputs(name: &str, i: usize) -> Vec<Tensor> {
    let mut ts = model_inputs(name);
    if let Some(x) = ts.iter_mut().find_map(|t| match t.data_mut() {
        TensorData::F32(v) => v.first_mut(),
        _ => None,
    }) {
        *x += i as f32 * 0.125;
    }
    ts
}

async fn register(c: &HttpClient, name: &str) -> ModelInfo {
    ModelApiClient::register_model(c, register_request(name)).await.expect("registers")
}

async fn submit(c: &HttpClient, m: &ModelInfo, name: &str, i: usize) -> Hash32 {
    let req = SubmitRequest {
        model_id: m.model_id,
        inputs: inputs(name, i).iter().map(WireTensor::b64).collect(),
        output_encoding: Default::default(),
    };
    InferApiClient::submit(c, req).await.expect("submits").request_id
}

/// `(batch, index)` of a request once batched.
async fn placed(c: &HttpClient, id: Hash32) -> (u64, u64) {
    let t0 = Instant::now();
    loop {
        let r = InferApiClient::receipt(c, id).await.expect("receipt");
        if let Some(inc) = r.inclusion {
            return (inc.batch, inc.proof.index);
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "request {id} not batched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(c: &HttpClient, b: u64, i: u64) -> Value {
    SettlementApiClient::record_status(c, b, i).await.expect("record status")
}

async fn status_name(c: &HttpClient, b: u64, i: u64) -> String {
    status(c, b, i).await["status"]["status"].as_str().unwrap_or("?").to_string()
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `dev_faucet` gives a fresh challenger: ten dispute bonds.
async fn funded(c: &HttpClient) -> u64 {
    let info = SettlementApiClient::info(c).await.expect("info");
    10 * info["params"]["challenger_bond"].as_u64().expect("bond")
}

async fn free(c: &HttpClient, a: &AccountId) -> u64 {
    SettlementApiClient::account(c, a.to_string()).await.expect("account")["free"].as_u64().expect("free")
}

async fn games_on(c: &HttpClient, b: u64) -> Vec<GameView> {
    let f = verinfer_rpc::types::GamesFilter { batch: Some(b), ..Default::default() };
    SettlementApiClient::games(c, Some(f))
        .await
        .expect("games")
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("game view"))
        .collect()
}

fn conservation(node: &TestNode) {
    let host = node.running().settlement.as_ref().expect("settlement");
    host.read(|s, _| s.check_conservation()).expect("value is conserved");
}

fn sequencer_bond(node: &TestNode) -> u64 {
    let host = node.running().settlement.as_ref().expect("settlement");
    let me = host.account();
    host.read(|s, _| s.sequencer(&me).map_or(0, |q| q.bond))
}

/// A fault position in `name`'s program on input `i` that changes the
/// outputs: a node near the middle of the program, element 0, its middle
/// step. Computed here with the prover so the test knows what to expect.
fn find_fault(name: &str, i: usize) -> (u32, u64, u64) {
    find_common_fault(name, &[i])
}

/// A fault position that changes `name`'s outputs on every input `is` (for
/// a node corrupting several requests at one position).
fn find_common_fault(name: &str, is: &[usize]) -> (u32, u64, u64) {
    let m = verinfer_prover::load_model(&model_bytes(name), &LoadOptions { name: name.into(), ..Default::default() })
        .expect("loads");
    let all_inputs: Vec<Vec<Tensor>> = is.iter().map(|&i| inputs(name, i)).collect();
    let honest = DisputeProver::new(m.program.clone(), all_inputs[0].clone(), None).expect("prover");
    let outs = |all: &[Tensor]| {
        tensors_root(&m.program.outputs.iter().map(|o| all[o.node as usize].clone()).collect::<Vec<_>>())
    };
    let hs: Vec<Hash32> = all_inputs.iter().map(|x| outs(&execute_all(&m.program, x, None).expect("runs"))).collect();
    let n = m.program.nodes.len() as u32;
    let order: Vec<u32> = (n / 2..n).chain(0..n / 2).collect();
    for node in order {
        let Ok((states, _)) = honest.states(node, 0) else { continue };
        let k = states.len() as u64 - 1;
        if k == 0 {
            continue;
        }
        let step = k / 2;
        let f = Fault { node, element: 0, step, xor: 0x0040_0000 };
        let changes = all_inputs
            .iter()
            .zip(&hs)
            .all(|(x, h)| execute_all(&m.program, x, Some(&f)).is_ok_and(|all| outs(&all) != *h));
        if changes {
            return (node, 0, step);
        }
    }
    panic!("no fault position changes {name}'s outputs on inputs {is:?}");
}

// (a) -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_node_many_batches_no_dispute_everything_final() {
    init_logs();
    let node = TestNode::start_settled(|c| {
        settle_cfg(c, None);
        // mobilenetv2's ONNX is ~14 MB, over the default request limit.
        c.rpc.max_request_body_bytes = 64 << 20;
    })
    .await;
    let c = node.http();
    let cdir = tempfile::tempdir().expect("tmp");
    let ch = RunningChallenger::start(challenger_cfg(&node, cdir.path())).await.expect("challenger starts");
    let before = free(&c, &ch.account).await;
    let t_start = Instant::now();
    let models = [("mlp", register(&c, "mlp").await), ("lenet5", register(&c, "lenet5").await)];
    // A few records of a real-size model too (its program is served and
    // planned like the small ones; re-execution ~20 ms a record).
    let mobilenet = register(&c, "mobilenetv2").await;
    // model_program serves the exact program the records name.
    for (_, m) in &models {
        let p = ModelApiClient::model_program(&c, m.model_id).await.expect("program");
        assert_eq!(p.program_root, m.program_root);
    }
    let mut ids = Vec::new();
    for round in 0..6 {
        for (name, m) in &models {
            for k in 0..3 {
                ids.push(submit(&c, m, name, round * 3 + k).await);
            }
        }
        if round % 2 == 0 {
            ids.push(submit(&c, &mobilenet, "mobilenetv2", round).await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut places = Vec::new();
    for id in &ids {
        places.push(placed(&c, *id).await);
    }
    let last_batch = places.iter().map(|p| p.0).max().expect("some");
    assert!(last_batch >= 4, "expected many batches, got {last_batch}");
    wait_for("the challenger to verify every batch", Duration::from_secs(60), || async {
        ch.watermark() >= last_batch
    })
    .await;
    let verified = ch.metrics().records.with_label_values(&["correct"]).get();
    assert_eq!(verified, ids.len() as u64, "every record re-executed and found correct");
    assert_eq!(ch.metrics().opened.get(), 0);
    wait_for("every record to be final", Duration::from_secs(WINDOW_MS / 1000 + 15), || async {
        for &(b, i) in &places {
            if status_name(&c, b, i).await != "final" {
                return false;
            }
        }
        true
    })
    .await;
    assert!(games_on(&c, places[0].0).await.is_empty());
    assert_eq!(free(&c, &ch.account).await, before, "no bond moved");
    // The metrics endpoint serves the counters.
    let m = ch.metrics_addr.expect("metrics");
    let r = raw_get(m, "/metrics").await;
    assert!(r.contains("verinfer_challenger_records_verified_total{verdict=\"correct\"}"), "{r}");
    conservation(&node);
    eprintln!("{} records (3 mobilenetv2) in {:.1} s", ids.len(), t_start.elapsed().as_secs_f64());
}

async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

// (b) -----------------------------------------------------------------------

/// A settled test node corrupting mlp request #3 at `at` (node, element,
/// step), with `tweak` applied on top.
async fn faulty_node(at: (u32, u64, u64), tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let spec = format!("request=3,model=mlp,node={},element={},step={}", at.0, at.1, at.2);
    TestNode::start_settled(|c| {
        settle_cfg(c, Some(spec));
        tweak(c);
    })
    .await
}

/// A node corrupting mlp request #3 at a known position, five mlp requests
/// (likely one batch); returns the node, the corrupted request's place and
/// all places.
async fn faulty_setup(fault_at: (u32, u64, u64)) -> (TestNode, ModelInfo, Vec<(u64, u64)>, (u64, u64)) {
    let node = faulty_node(fault_at, |_| {}).await;
    let c = node.http();
    let m = register(&c, "mlp").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&c, &m, "mlp", i).await);
    }
    let mut places = Vec::new();
    for id in &ids {
        places.push(placed(&c, *id).await);
    }
    let bad = places[2];
    (node, m, places, bad)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_fault_is_pinpointed_slashed_and_the_rest_of_the_batch_finalizes() {
    init_logs();
    let at = find_fault("mlp", 2);
    let (node, _m, places, bad) = faulty_setup(at).await;
    let c = node.http();
    let bond_before = sequencer_bond(&node);
    let cdir = tempfile::tempdir().expect("tmp");
    let ch = RunningChallenger::start(challenger_cfg(&node, cdir.path())).await.expect("starts");
    // Read from the parameters: the dispute may already be open.
    let free_before = funded(&c).await;
    wait_for("the game to resolve", Duration::from_secs(40), || async {
        games_on(&c, bad.0).await.iter().any(|g| g.resolution.is_some())
    })
    .await;
    let games = games_on(&c, bad.0).await;
    assert_eq!(games.len(), 1, "exactly one dispute, on the corrupted record");
    let g = &games[0];
    assert_eq!((g.batch, g.index), bad);
    assert_eq!(g.challenger, ch.account);
    let r = g.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger, "{r:?}");
    assert_eq!(
        (r.pinpoint.node, r.pinpoint.element, r.pinpoint.step),
        (Some(at.0), Some(at.1), Some(at.2)),
        "pinpoint is the injected fault"
    );
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    assert_eq!(status(&c, bad.0, bad.1).await["void"], Value::Bool(true));
    // Slashed to the challenger: it gets its bond back plus the stake.
    wait_for("the payout", Duration::from_secs(20), || async {
        free(&c, &ch.account).await == free_before + g.defender_stake
    })
    .await;
    assert_eq!(sequencer_bond(&node), bond_before - g.defender_stake);
    wait_for("the challenger to see its win", Duration::from_secs(20), || async { ch.metrics().won.get() == 1 }).await;
    // The other records stand and finalize.
    wait_for("the other records to be final", Duration::from_secs(WINDOW_MS / 1000 + 15), || async {
        for &p in &places {
            if p != bad && status_name(&c, p.0, p.1).await != "final" {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    conservation(&node);
}

// (c) -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_challengers_on_one_fraud_are_paid_from_separate_stakes() {
    init_logs();
    let at = find_fault("mlp", 2);
    // Start both challengers before the fraud exists so both see it at once.
    let node = faulty_node(at, |_| {}).await;
    let c = node.http();
    let (d1, d2) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let a = RunningChallenger::start(challenger_cfg(&node, d1.path())).await.expect("starts");
    let b = RunningChallenger::start(challenger_cfg(&node, d2.path())).await.expect("starts");
    let (fa, fb) = (free(&c, &a.account).await, free(&c, &b.account).await);
    let bond_before = sequencer_bond(&node);
    let m = register(&c, "mlp").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&c, &m, "mlp", i).await);
    }
    let bad = placed(&c, ids[2]).await;
    wait_for("both games to resolve", Duration::from_secs(40), || async {
        let gs = games_on(&c, bad.0).await;
        gs.len() == 2 && gs.iter().all(|g| g.resolution.is_some())
    })
    .await;
    let gs = games_on(&c, bad.0).await;
    let mut challengers: Vec<AccountId> = gs.iter().map(|g| g.challenger).collect();
    challengers.sort();
    let mut expected = vec![a.account, b.account];
    expected.sort();
    assert_eq!(challengers, expected, "one game per challenger");
    let stake = gs[0].defender_stake;
    for g in &gs {
        let r = g.resolution.as_ref().expect("resolved");
        assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger);
        assert_eq!(r.pinpoint.node, Some(at.0));
    }
    // Each won its own escrow: its bond back plus one stake; the sequencer
    // paid exactly two stakes, no more.
    wait_for("payouts", Duration::from_secs(20), || async {
        free(&c, &a.account).await == fa + stake && free(&c, &b.account).await == fb + stake
    })
    .await;
    assert_eq!(sequencer_bond(&node), bond_before - 2 * stake);
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    conservation(&node);
}

// Timeout claims ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_defender_loses_by_the_timeout_the_challenger_claims() {
    init_logs();
    let at = find_fault("mlp", 2);
    // The node does not defend: its clock runs out at the first move.
    let node = faulty_node(at, |c| c.settlement.defender = false).await;
    let c = node.http();
    let dir = tempfile::tempdir().expect("tmp");
    let ch = RunningChallenger::start(challenger_cfg(&node, dir.path())).await.expect("starts");
    let m = register(&c, "mlp").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(submit(&c, &m, "mlp", i).await);
    }
    let bad = placed(&c, ids[2]).await;
    wait_for("the timeout", Duration::from_secs(CLOCK_MS / 1000 + 20), || async {
        games_on(&c, bad.0).await.iter().any(|g| g.resolution.is_some())
    })
    .await;
    let g = games_on(&c, bad.0).await.remove(0);
    let r = g.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger);
    assert_eq!(
        r.reason,
        verinfer_prover::game::view::ResolutionReason::Timeout { side: verinfer_prover::game::types::Side::Defender }
    );
    assert_eq!(g.transcript.len(), 0, "the defender never moved");
    wait_for("the claim to be counted", Duration::from_secs(20), || async {
        ch.metrics().moves.with_label_values(&["claim_timeout"]).get() == 1 && ch.metrics().won.get() == 1
    })
    .await;
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    conservation(&node);
}

// (d) -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_disputing_a_correct_record_loses_its_bond() {
    init_logs();
    let node = TestNode::start_settled(|c| settle_cfg(c, None)).await;
    let c = node.http();
    let m = register(&c, "mlp").await;
    let id = submit(&c, &m, "mlp", 0).await;
    let (b, i) = placed(&c, id).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = challenger_cfg(&node, dir.path());
    cfg.force_dispute = vec![(b, i)];
    let bond_before = sequencer_bond(&node);
    let seq_free_before = {
        let host = node.running().settlement.as_ref().expect("settlement");
        free(&c, &host.account()).await
    };
    let ch = RunningChallenger::start(cfg).await.expect("starts");
    let f0 = funded(&c).await;
    wait_for("the forced game to resolve", Duration::from_secs(CLOCK_MS / 1000 + 30), || async {
        games_on(&c, b).await.iter().any(|g| g.resolution.is_some())
    })
    .await;
    let g = games_on(&c, b).await.remove(0);
    let r = g.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, verinfer_prover::game::types::Side::Defender, "{r:?}");
    wait_for("the loss to show", Duration::from_secs(20), || async {
        free(&c, &ch.account).await == f0 - g.challenger_bond
    })
    .await;
    // The defender's stake came back to it (free) with the challenger's bond.
    let host = node.running().settlement.as_ref().expect("settlement");
    assert_eq!(free(&c, &host.account()).await, seq_free_before + g.challenger_bond + g.defender_stake);
    assert_eq!(sequencer_bond(&node), bond_before - g.defender_stake);
    wait_for("the challenger to see its loss", Duration::from_secs(20), || async { ch.metrics().lost.get() == 1 })
        .await;
    assert_ne!(status_name(&c, b, i).await, "fraudulent");
    conservation(&node);
}

// (e) -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_killed_mid_game_resumes_and_wins() {
    init_logs();
    let at = find_fault("lenet5", 2);
    let spec = format!("request=3,model=lenet5,node={},element={},step={}", at.0, at.1, at.2);
    // A 20 s clock: the restart (open the database, reconnect, fetch and
    // plan lenet5, rebuild the prover) runs on the challenger's clock while
    // another test may keep both cores busy; 6 s was tight.
    let node = TestNode::start_settled(|c| {
        settle_cfg(c, Some(spec));
        c.settlement.clock_ms = Some(RESTART_CLOCK_MS);
        c.settlement.challenge_window_ms = Some(2 * RESTART_CLOCK_MS);
    })
    .await;
    let c = node.http();
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = challenger_cfg(&node, dir.path());
    // Through a gate that forwards the dispute and the first move and holds
    // the next: the stop lands mid-game however fast the game runs.
    let gate = verinfer_e2e::gate::SubmitGate::start(node.running().rpc_addr, 2).await;
    let ch = RunningChallenger::start(Config { rpc: gate.url(), ..cfg.clone() }).await.expect("starts");
    let account = ch.account;
    let m = register(&c, "lenet5").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&c, &m, "lenet5", i).await);
    }
    let bad = placed(&c, ids[2]).await;
    // Kill it once it has made a move in the game and its next is held.
    wait_for("the challenger's first pick", Duration::from_secs(30), || async {
        gate.holding()
            && games_on(&c, bad.0)
                .await
                .iter()
                .any(|g| g.transcript.iter().any(|m| m.side == verinfer_prover::game::types::Side::Challenger))
    })
    .await;
    ch.stop();
    drop(ch);
    drop(gate);
    let g = games_on(&c, bad.0).await.remove(0);
    assert!(g.resolution.is_none(), "killed mid-game: {} moves, {:?}", g.moves, g.resolution);
    let moves_at_kill = g.moves;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Restart on the same datadir and key, against a node that now
    // withholds the disputed batch's body and the model's program: the
    // challenger kept both with its dispute intent and plays on from them.
    let withhold =
        verinfer_e2e::gate::Withhold::start(node.running().rpc_addr, &["explorer_batchBody", "model_program"]).await;
    let ch = RunningChallenger::start(Config { rpc: withhold.url(), ..cfg }).await.expect("restarts");
    assert_eq!(ch.account, account);
    wait_for("the resumed game to resolve", Duration::from_secs(RESTART_CLOCK_MS / 1000 + 20), || async {
        games_on(&c, bad.0).await.iter().all(|g| g.resolution.is_some())
    })
    .await;
    let g = games_on(&c, bad.0).await.remove(0);
    assert!(g.moves > moves_at_kill);
    let r = g.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger, "{r:?}");
    assert!(
        !matches!(
            r.reason,
            verinfer_prover::game::view::ResolutionReason::Timeout {
                side: verinfer_prover::game::types::Side::Challenger
            }
        ),
        "won, not timed out"
    );
    assert_eq!((r.pinpoint.node, r.pinpoint.element, r.pinpoint.step), (Some(at.0), Some(at.1), Some(at.2)));
    assert_eq!(games_on(&c, bad.0).await.len(), 1, "no second dispute after the restart");
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    conservation(&node);
}

// (f) -----------------------------------------------------------------------

/// Per corpus model: wall time from the fraudulent batch being posted to
/// the verdict, and the challenger's re-execution throughput vs the node's.
/// `cargo test -p verinfer-e2e --test challenger report -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn report_time_to_verdict_and_throughput() {
    init_logs();
    let models: Vec<&str> = std::env::var("VERINFER_REPORT_MODELS")
        .map(|s| s.split(',').map(|x| Box::leak(x.to_string().into_boxed_str()) as &str).collect())
        .unwrap_or_else(|_| vec!["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"]);
    println!(
        "| model | records | node submit s | node records/s | challenger verify s | challenger records/s | re-execution only records/s | posted → verdict s | pinned node/element/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in models {
        let n_records: usize = if name == "mobilenetv2" { 20 } else { 400 };
        let at = find_fault(name, 2);
        let spec = format!("request=3,model={name},node={},element={},step={}", at.0, at.1, at.2);
        let node = TestNode::start_settled(|c| {
            settle_cfg(c, Some(spec));
            c.settlement.challenge_window_ms = Some(120_000);
            c.settlement.clock_ms = Some(60_000);
            c.batcher.max_records = 10_000;
            c.batcher.interval_ms = 1_000;
            c.rpc.max_request_body_bytes = 64 << 20;
        })
        .await;
        let c = node.http();
        let m = register(&c, name).await;
        // The node's throughput: submissions answered (executed) per second.
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for i in 0..n_records {
            ids.push(submit(&c, &m, name, i).await);
        }
        let node_s = t0.elapsed().as_secs_f64();
        let bad = placed(&c, ids[2]).await;
        let last = placed(&c, *ids.last().expect("ids")).await.0;
        let posted = Instant::now();
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = challenger_cfg(&node, dir.path());
        cfg.concurrency = 1;
        let ch = RunningChallenger::start(cfg).await.expect("starts");
        let t1 = Instant::now();
        wait_for("verification", Duration::from_secs(600), || async { ch.watermark() >= last }).await;
        let verify_s = t1.elapsed().as_secs_f64();
        wait_for("verdict", Duration::from_secs(600), || async {
            games_on(&c, bad.0).await.iter().any(|g| g.resolution.is_some())
        })
        .await;
        let verdict_s = posted.elapsed().as_secs_f64();
        let g = games_on(&c, bad.0).await.remove(0);
        let p = &g.resolution.as_ref().expect("resolved").pinpoint;
        let h = &ch.metrics().reexec;
        println!(
            "| {name} | {n_records} | {node_s:.2} | {:.1} | {verify_s:.2} | {:.1} | {:.1} | {verdict_s:.2} | {:?}/{:?}/{:?} |",
            n_records as f64 / node_s,
            n_records as f64 / verify_s,
            h.get_sample_count() as f64 / h.get_sample_sum().max(1e-9),
            p.node,
            p.element,
            p.step
        );
        drop(ch);
    }
}

// Withheld data, pruned batches, bounded games ------------------------------

/// The referee's time and batch `b`'s window end.
async fn referee_now_and_window_end(c: &HttpClient, b: u64) -> (u64, u64) {
    let now = SettlementApiClient::info(c).await.expect("info")["now_ms"].as_u64().expect("now_ms");
    let end = SettlementApiClient::batch(c, b).await.expect("batch")["window_end_ms"].as_u64().expect("window end");
    (now, end)
}

/// A node that withholds the program of a wrong record only delays the
/// bot: no verdict (and no dispute) while it is withheld, each refused
/// fetch counted, and once the program is served again the record is
/// disputed and the game won.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_program_delays_the_verdict_and_the_fraud_is_still_won() {
    init_logs();
    let at = find_fault("mlp", 2);
    let (node, _m, places, bad) = faulty_setup(at).await;
    let c = node.http();
    let withhold = verinfer_e2e::gate::Withhold::start(node.running().rpc_addr, &["model_program"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let ch = RunningChallenger::start(Config { rpc: withhold.url(), ..challenger_cfg(&node, dir.path()) })
        .await
        .expect("starts");
    let retries = || ch.metrics().fetch_retries.with_label_values(&["program"]).get();
    // Every record of the batch retries (they share the program), twice
    // or more each.
    wait_for("the program fetches to be retried", Duration::from_secs(20), || async {
        retries() >= 2 * places.len() as u64
    })
    .await;
    assert!(withhold.refused() as u64 >= retries(), "each retry was a refused fetch");
    let (now, end) = referee_now_and_window_end(&c, bad.0).await;
    assert!(now < end, "still inside the window ({now} ≥ {end}): the test needs a longer window");
    for &(b, i) in &places {
        assert_eq!(ch.verdict(b, i).expect("verdict"), None, "no verdict on {b}:{i} while its program is withheld");
    }
    assert!(ch.watermark() < bad.0);
    assert!(games_on(&c, bad.0).await.is_empty(), "nothing disputed without re-execution");
    withhold.serve_again();
    wait_for("the game to resolve", Duration::from_secs(40), || async {
        games_on(&c, bad.0).await.iter().any(|g| g.resolution.is_some())
    })
    .await;
    let g = games_on(&c, bad.0).await.remove(0);
    assert_eq!((g.batch, g.index, g.challenger), (bad.0, bad.1, ch.account));
    let r = g.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger, "{r:?}");
    assert_eq!((r.pinpoint.node, r.pinpoint.element, r.pinpoint.step), (Some(at.0), Some(at.1), Some(at.2)));
    match ch.verdict(bad.0, bad.1).expect("verdict") {
        Some(Verdict::Wrong { game: Some(id), .. }) => assert_eq!(id, g.id),
        v => panic!("expected the dispute's verdict, got {v:?}"),
    }
    wait_for("the batch to be judged", Duration::from_secs(20), || async { ch.watermark() >= bad.0 }).await;
    assert_eq!(ch.metrics().records.with_label_values(&["correct"]).get(), places.len() as u64 - 1);
    assert_eq!(status_name(&c, bad.0, bad.1).await, "fraudulent");
    conservation(&node);
}

/// A program withheld until the window closes: only then are its records
/// written off, as unverifiable with the reason saying so, and the bot
/// carries on (the batch is judged, the watermark passes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_withheld_to_the_end_leaves_its_records_unverifiable() {
    init_logs();
    let at = find_fault("mlp", 2);
    let node = faulty_node(at, |c| c.settlement.challenge_window_ms = Some(4_000)).await;
    let c = node.http();
    let withhold = verinfer_e2e::gate::Withhold::start(node.running().rpc_addr, &["model_program"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let ch = RunningChallenger::start(Config { rpc: withhold.url(), ..challenger_cfg(&node, dir.path()) })
        .await
        .expect("starts");
    let m = register(&c, "mlp").await;
    let mut places = Vec::new();
    for i in 0..5 {
        let id = submit(&c, &m, "mlp", i).await;
        places.push(placed(&c, id).await);
    }
    let bad = places[2];
    // The verdict is read before the referee's time: a verdict written
    // inside the window would show with that time still before its end.
    let t0 = Instant::now();
    let verdict = loop {
        if let Some(v) = ch.verdict(bad.0, bad.1).expect("verdict") {
            let (now, end) = referee_now_and_window_end(&c, bad.0).await;
            assert!(now >= end, "a verdict at {now}, inside the window ending at {end}: {v:?}");
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no verdict on the withheld record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match verdict {
        Verdict::Unverifiable { reason } => {
            assert!(reason.starts_with("program withheld until the window closed"), "{reason}")
        }
        v => panic!("expected unverifiable, got {v:?}"),
    }
    assert!(ch.metrics().fetch_retries.with_label_values(&["program"]).get() > 0);
    let last = places.iter().map(|p| p.0).max().expect("some");
    wait_for("the batches to be judged", Duration::from_secs(20), || async { ch.watermark() >= last }).await;
    assert_eq!(ch.metrics().records.with_label_values(&["unverifiable"]).get(), places.len() as u64);
    assert!(games_on(&c, bad.0).await.is_empty());
    assert_eq!(ch.metrics().opened.get(), 0);
    // Still running: its metrics are served.
    let r = raw_get(ch.metrics_addr.expect("metrics"), "/metrics").await;
    assert!(r.contains("verinfer_challenger_fetch_retries_total{what=\"program\"}"), "{r}");
}

/// Starts a challenger on `cfg`, retrying while the previous process's
/// database is still being released.
async fn start_again(cfg: Config) -> RunningChallenger {
    let t0 = Instant::now();
    loop {
        match RunningChallenger::start(cfg.clone()).await {
            Ok(ch) => return ch,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(20), "cannot restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Started behind a node that prunes settled batches, the bot asks the
/// referee, passes the batches that can no longer be disputed without
/// fetching their (pruned) bodies, checks the batches after them, and a
/// restart starts past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_behind_pruned_batches_passes_them_at_once() {
    init_logs();
    let node = TestNode::start_settled(|c| {
        settle_cfg(c, None);
        c.settlement.challenge_window_ms = Some(4_000);
        c.settlement.prune_after_ms = 1;
    })
    .await;
    let c = node.http();
    let m = register(&c, "mlp").await;
    let mut last = 0;
    for i in 0..3 {
        let id = submit(&c, &m, "mlp", i).await;
        last = placed(&c, id).await.0;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for("the batches to be pruned", Duration::from_secs(30), || async {
        node.running().node.store.pruned().through_batch >= last
    })
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = challenger_cfg(&node, dir.path());
    let ch = RunningChallenger::start(cfg.clone()).await.expect("starts");
    // The old bot retried each pruned body and never passed the first.
    wait_for("the watermark to pass the pruned batches", Duration::from_secs(20), || async { ch.watermark() >= last })
        .await;
    assert_eq!(ch.metrics().unchecked.with_label_values(&["past_window"]).get(), last, "every pruned batch");
    assert_eq!(ch.metrics().fetch_retries.with_label_values(&["body"]).get(), 0, "no body was asked for");
    assert_eq!(ch.metrics().records.with_label_values(&["correct"]).get(), 0);
    // A batch after them is checked.
    let id = submit(&c, &m, "mlp", 9).await;
    let (b, i) = placed(&c, id).await;
    assert!(b > last);
    wait_for("the new batch to be judged", Duration::from_secs(20), || async { ch.watermark() >= b }).await;
    assert_eq!(ch.verdict(b, i).expect("verdict"), Some(Verdict::Correct));
    // The watermark was persisted: a restart starts past all of them.
    ch.stop();
    drop(ch);
    let ch = start_again(cfg).await;
    assert!(ch.watermark() >= b, "restarted at {}", ch.watermark());
}

/// Games of `account`, oldest first.
async fn games_of(c: &HttpClient, account: &AccountId) -> Vec<GameView> {
    let f = verinfer_rpc::types::GamesFilter { account: Some(account.to_string()), ..Default::default() };
    let mut gs: Vec<GameView> = SettlementApiClient::games(c, Some(f))
        .await
        .expect("games")
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("game view"))
        .collect();
    gs.sort_by_key(|g| g.id);
    gs
}

/// With `max_games = 1` two wrong records are disputed one after the
/// other: the second dispute waits for the first game to end (each game
/// holds a prover and its trace, so this bounds the bot's memory). The
/// node's defender is off, so a game lasts until its clock runs out and
/// the two would overlap without the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_max_games_games_are_played_at_once() {
    init_logs();
    // Requests 2 and 4 (inputs 1 and 3) corrupted at one position.
    let at = find_common_fault("mlp", &[1, 3]);
    let spec = format!("every=2,model=mlp,node={},element={},step={}", at.0, at.1, at.2);
    let node = TestNode::start_settled(|c| {
        settle_cfg(c, Some(spec));
        c.settlement.defender = false;
        c.settlement.clock_ms = Some(2_000);
        c.settlement.challenge_window_ms = Some(20_000);
    })
    .await;
    let c = node.http();
    let dir = tempfile::tempdir().expect("tmp");
    let ch =
        RunningChallenger::start(Config { max_games: 1, ..challenger_cfg(&node, dir.path()) }).await.expect("starts");
    let m = register(&c, "mlp").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(submit(&c, &m, "mlp", i).await);
    }
    let bad = [placed(&c, ids[1]).await, placed(&c, ids[3]).await];
    wait_for("both games to resolve", Duration::from_secs(40), || async {
        let gs = games_of(&c, &ch.account).await;
        gs.len() == 2 && gs.iter().all(|g| g.resolution.is_some())
    })
    .await;
    let gs = games_of(&c, &ch.account).await;
    let mut disputed: Vec<(u64, u64)> = gs.iter().map(|g| (g.batch, g.index)).collect();
    disputed.sort();
    assert_eq!(disputed, bad.to_vec(), "both wrong records disputed");
    for g in &gs {
        let r = g.resolution.as_ref().expect("resolved");
        assert_eq!(r.winner, verinfer_prover::game::types::Side::Challenger, "{r:?}");
    }
    let first_end = gs[0].resolution.as_ref().expect("resolved").at_ms;
    assert!(
        gs[1].opened_at_ms >= first_end,
        "game {} opened at {} while game {} was in play until {first_end}",
        gs[1].id,
        gs[1].opened_at_ms,
        gs[0].id
    );
    wait_for("both wins to be counted", Duration::from_secs(20), || async { ch.metrics().won.get() == 2 }).await;
    conservation(&node);
}
