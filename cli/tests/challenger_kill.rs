//! A real OS-process kill mid-game: `verinfer node --dev --inject-fault …`
//! and `verinfer challenger` run as child processes; the challenger is
//! SIGKILLed after its first move in the game, restarted on the same
//! datadir, and must still win that game — by the one-step check, before its
//! clock runs out, at the injected position, without a second dispute.
//!
//! The in-process variant (`tests/tests/challenger.rs`,
//! `a_challenger_killed_mid_game_resumes_and_wins`) aborts tasks; this one
//! shows the same with everything the OS tears down on SIGKILL (no
//! destructors, no RocksDB close, open sockets reset).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use verinfer_e2e::gate::SubmitGate;
use verinfer_e2e::proc::Proc;
use verinfer_prover::dispute::{DisputeProver, Fault, execute_all};
use verinfer_prover::frontend::LoadOptions;
use verinfer_prover::game::types::Side;
use verinfer_prover::game::view::{GameView, ResolutionReason};
use verinfer_rpc::api::{InferApiClient, SettlementApiClient};
use verinfer_rpc::tensor::WireTensor;
use verinfer_rpc::types::{GamesFilter, SubmitRequest};
use verinfer_state::hash::Hash32;
use verinfer_state::record::tensors_root;
use verinfer_state::tensor::{Tensor, TensorData};

/// Long enough for a kill, a restart and the rest of the game; short enough
/// that a regression (the restarted bot not moving) fails in seconds.
const CLOCK_MS: u64 = 20_000;
const WINDOW_MS: u64 = 60_000;
const MODEL: &str = "lenet5";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn input(i: usize) -> Tensor {
    let bytes = std::fs::read(root().join("fixtures/models").join(MODEL).join("input_0.npy")).expect("fixture input");
    let mut t = verinfer_state::npy::read_tensor(&bytes).expect("npy");
    if let TensorData::F32(v) = t.data_mut()
        && let Some(x) = v.first_mut()
    {
        *x += i as f32 * 0.125;
    }
    t
}

/// A fault position that changes the outputs on `input(i)`: element 0 of
/// the node with the longest fold (the most steps to dissect, so the
/// longest game), at its middle step.
fn find_fault(i: usize) -> (u32, u64, u64) {
    let onnx = std::fs::read(root().join("fixtures/models").join(MODEL).join("model.onnx")).expect("fixture model");
    let m =
        verinfer_prover::load_model(&onnx, &LoadOptions { name: MODEL.into(), ..Default::default() }).expect("loads");
    let inputs = vec![input(i)];
    let honest = DisputeProver::new(m.program.clone(), inputs.clone(), None).expect("prover");
    let outs = |all: &[Tensor]| {
        tensors_root(&m.program.outputs.iter().map(|o| all[o.node as usize].clone()).collect::<Vec<_>>())
    };
    let h = outs(&execute_all(&m.program, &inputs, None).expect("runs"));
    let mut best: Option<(u64, (u32, u64, u64))> = None;
    for node in 0..m.program.nodes.len() as u32 {
        let Ok((states, _)) = honest.states(node, 0) else { continue };
        let k = states.len() as u64 - 1;
        if k == 0 || best.is_some_and(|(bk, _)| bk >= k) {
            continue;
        }
        let f = Fault { node, element: 0, step: k / 2, xor: 0x0040_0000 };
        if let Ok(all) = execute_all(&m.program, &inputs, Some(&f))
            && outs(&all) != h
        {
            best = Some((k, (node, 0, k / 2)));
        }
    }
    best.map(|(_, at)| at).unwrap_or_else(|| panic!("no fault position changes {MODEL}'s outputs"))
}

async fn games(c: &HttpClient, f: GamesFilter) -> Vec<GameView> {
    SettlementApiClient::games(c, Some(f))
        .await
        .expect("settlement_games")
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("game view"))
        .collect()
}

async fn games_on(c: &HttpClient, batch: u64) -> Vec<GameView> {
    games(c, GamesFilter { batch: Some(batch), ..Default::default() }).await
}

async fn wait_until<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_challenger_restarts_and_wins_its_game() {
    let t_start = Instant::now();
    let at = find_fault(1);
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Binary dissection makes the game long (dozens of moves), so the kill
    // lands well inside it; port 0 and the address read from stdout keep
    // parallel runs apart.
    let node_toml = format!(
        r#"datadir = "{}"
[rpc]
listen = "127.0.0.1:0"
[exec]
cross_check_folding = false
[batcher]
interval_ms = 200
[settlement]
challenge_window_ms = {WINDOW_MS}
clock_ms = {CLOCK_MS}
dissection_exp = 1
tick_ms = 100
"#,
        d.join("node").display()
    );
    let spec = format!("request=2,model={MODEL},node={},element={},step={}", at.0, at.1, at.2);
    let s = |x: &str| x.to_string();
    let (mut node, url) =
        Proc::dev_node(Path::new(env!("CARGO_BIN_EXE_verinfer")), d, &node_toml, &[s("--inject-fault"), spec]);
    let c = HttpClientBuilder::default().build(&url).expect("client");
    let models = verinfer_rpc::api::ModelApiClient::list_models(&c).await.expect("models");
    let model = models.iter().find(|m| m.name == MODEL).expect("the dev node registers lenet5").model_id;

    let ch_args = vec![
        s("challenger"),
        s("--rpc"),
        url.clone(),
        s("--datadir"),
        d.join("challenger").display().to_string(),
        s("--dev-faucet"),
        s("--concurrency"),
        s("1"),
    ];
    // The first process talks to the node through a gate that forwards its
    // first two transactions (the dispute and its first move) and holds the
    // third: an event-driven game is over in milliseconds, so this pins the
    // kill to "after its first move, with the next one in flight" on any
    // machine. The restarted process talks to the node directly.
    let node_addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("node address");
    let gate = SubmitGate::start(node_addr, 2).await;
    let mut ch_args_gated = ch_args.clone();
    ch_args_gated[2] = gate.url();
    let mut ch = Proc::spawn(
        Path::new(env!("CARGO_BIN_EXE_verinfer")),
        "challenger",
        &ch_args_gated,
        &d.join("challenger-1.log"),
    );
    let account = ch.line("challenger account: ", Duration::from_secs(30));

    // Three requests; the node corrupts the second.
    let mut ids = Vec::new();
    for i in 0..3 {
        let req = SubmitRequest {
            model_id: model,
            inputs: vec![WireTensor::b64(&input(i))],
            output_encoding: Default::default(),
        };
        ids.push(InferApiClient::submit(&c, req).await.expect("submit").request_id);
    }
    let bad_id: Hash32 = ids[1];
    let (bad_batch, bad_index) = wait_until(
        "the corrupted request to be batched",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let r = InferApiClient::receipt(&c, bad_id).await.expect("receipt");
            r.inclusion.map(|inc| (inc.batch, inc.proof.index))
        },
    )
    .await;

    // Wait for the game with a challenger move in it and the next move held
    // at the gate, then SIGKILL.
    let g = wait_until("the challenger's first move", Duration::from_secs(30), Duration::from_millis(20), || async {
        if !gate.holding() {
            return None;
        }
        games_on(&c, bad_batch).await.into_iter().find(|g| g.transcript.iter().any(|m| m.side == Side::Challenger))
    })
    .await;
    let pid = ch.pid();
    ch.kill();
    let killed_at = Instant::now();
    drop(gate);
    let g = games_on(&c, bad_batch).await.into_iter().find(|x| x.id == g.id).expect("the game");
    assert!(g.resolution.is_none(), "the game must still be open at the kill: {:?}", g.resolution);
    assert_eq!((g.index, g.challenger.to_string()), (bad_index, account.clone()));
    let moves_at_kill = g.moves;
    let ours_at_kill = g.transcript.iter().filter(|m| m.side == Side::Challenger).count();
    eprintln!("killed challenger pid {pid} at move {moves_at_kill} of game {} ({ours_at_kill} of its own moves)", g.id);

    // Restart on the same datadir (same key, same database).
    let mut ch2 = Proc::spawn(
        Path::new(env!("CARGO_BIN_EXE_verinfer")),
        "challenger (restarted)",
        &ch_args,
        &d.join("challenger-2.log"),
    );
    assert_eq!(ch2.line("challenger account: ", Duration::from_secs(30)), account, "same key after the restart");
    let done = wait_until(
        "the resumed game to resolve",
        Duration::from_millis(CLOCK_MS + 10_000),
        Duration::from_millis(100),
        || async { games_on(&c, bad_batch).await.into_iter().find(|x| x.id == g.id && x.resolution.is_some()) },
    )
    .await;
    let restart_to_verdict = killed_at.elapsed();

    let r = done.resolution.as_ref().expect("resolved");
    assert_eq!(r.winner, Side::Challenger, "{r:?}");
    assert!(
        matches!(r.reason, ResolutionReason::StepChecked { .. }),
        "won by the one-step check, not a timeout: {:?}",
        r.reason
    );
    assert_eq!(
        (r.pinpoint.node, r.pinpoint.element, r.pinpoint.step),
        (Some(at.0), Some(at.1), Some(at.2)),
        "pinpoint is the injected fault"
    );
    assert!(done.clocks.challenger_left_ms > 0, "won before its clock ran out");
    let ours_after = done.transcript.iter().filter(|m| m.side == Side::Challenger).count();
    assert!(ours_after > ours_at_kill, "the restarted process moved ({ours_at_kill} → {ours_after})");
    // One game in all: the restart resumed it rather than disputing again.
    assert_eq!(games_on(&c, bad_batch).await.len(), 1, "no second dispute");
    let acct_filter = GamesFilter { account: Some(account.clone()), ..Default::default() };
    assert_eq!(games(&c, acct_filter).await.len(), 1, "the challenger has exactly one game");
    let status = SettlementApiClient::record_status(&c, bad_batch, bad_index).await.expect("record status");
    assert_eq!(status["status"]["status"], "fraudulent", "{status}");
    // `verinfer receipt` says plainly that the proof verifies but the result
    // is void (it used to print "proof verified" under "status fraudulent").
    wait_until("the receipt to turn fraudulent", Duration::from_secs(10), Duration::from_millis(50), || async {
        let r = InferApiClient::receipt(&c, bad_id).await.expect("receipt");
        (r.status == verinfer_state::receipt::Status::Fraudulent).then_some(())
    })
    .await;
    let receipt = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_verinfer"));
        cmd.args(["receipt", &bad_id.to_string(), "--rpc", &url]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run verinfer receipt");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = receipt(false);
    assert!(text.contains("the referee VOIDED this result"), "{text}");
    assert!(text.contains("the record is in the batch, but the referee voided its result"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&receipt(true)).expect("--json stays JSON");
    assert_eq!((v["void"].as_bool(), v["proof_verified"].as_bool()), (Some(true), Some(true)), "{v}");
    assert_eq!(v["receipt"]["status"]["status"], "fraudulent", "{v}");

    // The restarted process says so in its log.
    let log2 = {
        let t0 = Instant::now();
        loop {
            let l = ch2.log_text();
            if l.contains("WON") || t0.elapsed() > Duration::from_secs(5) {
                break l;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(log2.contains("resuming game after restart"), "{log2}");
    assert!(log2.contains("WON"), "{log2}");
    assert!(!log2.contains("dispute opened"), "{log2}");

    ch2.kill();
    node.kill();
    let span = |g: &GameView| g.transcript.last().map_or(0, |m| m.at_ms) - g.opened_at_ms;
    eprintln!(
        "game {}: {} moves over {} ms of referee time (opened → last move), kill→verdict {:.2} s, challenger clock left {} ms, test {:.1} s",
        done.id,
        done.moves,
        span(&done),
        restart_to_verdict.as_secs_f64(),
        done.clocks.challenger_left_ms,
        t_start.elapsed().as_secs_f64()
    );
}
