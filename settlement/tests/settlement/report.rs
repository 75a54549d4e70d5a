//! Per-model report: rounds, bytes moved per side, one-step proof size,
//! verification time and compute time to pinpoint, for degrees 2 and 16.
//!
//! ```text
//! cargo test --release -p verinfer-settlement --test settlement report -- --ignored --nocapture
//! ```
//! In a release build it also asserts the targets: one-step proof ≤ 4 KiB,
//! verification ≤ 100 µs, mobilenetv2 pinpointed in ≤ 3 s of compute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use verinfer_prover::dispute::{DisputeProver, verify_one_step};
use verinfer_settlement::agent::{challenger_move, defender_move};
use verinfer_settlement::game::state_leaf_of;
use verinfer_settlement::{Move, MoveKind, Side, Tx};

use crate::common::*;

struct Row {
    model: &'static str,
    nodes: usize,
    degree: u32,
    moves: usize,
    rounds: usize,
    def_bytes: u64,
    ch_bytes: u64,
    proof_bytes: u64,
    verify_us: f64,
    ch_exec: Duration,
    def_exec: Duration,
    agents: Duration,
    referee: Duration,
    pinned: String,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(model: &'static str, exp: u32, seed: u64) -> Row {
    let (program, inputs) = load_model(model);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Find a fault that reaches the outputs (untimed: a discarded attempt is
    // not part of any game).
    let honest_claim = DisputeProver::new(program.clone(), inputs.clone(), None).expect("p").claim().expect("claim");
    let fault = loop {
        let Some(f) = random_fault(&program, &mut rng) else { continue };
        let probe = DisputeProver::new(program.clone(), inputs.clone(), Some(f)).expect("p");
        if probe.claim().expect("claim") != honest_claim {
            break f;
        }
    };
    // Timed from here: fresh provers, both sides' full executions.
    let honest = Arc::new(DisputeProver::new(program.clone(), inputs.clone(), None).expect("honest"));
    let liar = Arc::new(DisputeProver::new(program.clone(), inputs.clone(), Some(fault)).expect("liar"));
    let t = Instant::now();
    honest.claim().expect("claim");
    honest.trace_tree().expect("trace");
    let ch_exec = t.elapsed();
    let t = Instant::now();
    liar.claim().expect("claim");
    liar.trace_tree().expect("trace");
    let def_exec = t.elapsed();

    let mut s = GameBuilder::new(program.clone(), inputs).exp(exp).build_with(liar.clone(), honest.clone());
    let mut agents = Duration::ZERO;
    let mut referee = Duration::ZERO;
    loop {
        let v = s.chain.st.game_view(s.game, s.chain.now).expect("game");
        if v.resolution.is_some() {
            break;
        }
        let t = Instant::now();
        let (side, mv) = match v.to_move.expect("open") {
            Side::Defender => (Side::Defender, defender_move(&v, &liar).expect("agent").expect("move")),
            Side::Challenger => (Side::Challenger, challenger_move(&v, &honest).expect("agent").expect("move")),
        };
        agents += t.elapsed();
        s.chain.now += 1;
        let tx = Tx::Move { game: s.game, seq: v.moves, mv };
        let t = Instant::now();
        s.chain.st.apply(s.chain.now, s.id_of(side), tx).expect("valid move");
        referee += t.elapsed();
    }
    s.chain.assert_invariants();
    let g = s.chain.st.game(s.game).expect("game").clone();
    let r = g.resolution.clone().expect("resolved");
    assert_eq!(r.winner, Side::Challenger);
    let p = &r.pinpoint;
    assert_eq!(
        (p.node, p.element, p.step),
        (Some(fault.node), Some(fault.element), Some(fault.step)),
        "{model}: pinpoint"
    );
    let last = g.transcript.last().expect("moves");
    let Move::OneStep(proof) = &last.mv else { panic!("the game ends with a one-step proof") };
    let (commit, ctx, el, st) =
        (g.commit.clone().expect("c"), g.node.clone().expect("n"), g.element.expect("e"), g.states.expect("s"));
    let j = p.step.expect("step") + 1;
    let leaf = state_leaf_of(j, &proof.s_next);
    let claim = g.claim();
    let mut times = Vec::with_capacity(201);
    for _ in 0..201 {
        let t = Instant::now();
        let v = verify_one_step(&claim, &commit, &ctx, el.index, &st.root, st.k_steps, j, &leaf, proof);
        times.push(t.elapsed());
        assert!(v.is_ok());
    }
    let verify_us = median(times).as_secs_f64() * 1e6;
    Row {
        model,
        nodes: program.nodes.len(),
        degree: 1 << exp,
        moves: g.transcript.len(),
        rounds: g.transcript.iter().filter(|m| m.mv.kind() == MoveKind::Pick).count(),
        def_bytes: g.transcript.iter().filter(|m| m.side == Side::Defender).map(|m| m.bytes).sum(),
        ch_bytes: g.transcript.iter().filter(|m| m.side == Side::Challenger).map(|m| m.bytes).sum(),
        proof_bytes: last.bytes,
        verify_us,
        ch_exec,
        def_exec,
        agents,
        referee,
        pinned: format!(
            "{} `{}` e{} t{}/{}",
            p.node.unwrap_or(0),
            p.op.clone().unwrap_or_default(),
            el.index,
            j - 1,
            st.k_steps
        ),
    }
}

#[test]
#[ignore = "report: run with --release -- --ignored --nocapture"]
fn report() {
    let release = !cfg!(debug_assertions);
    println!(
        "| model | nodes | degree | moves | dissection rounds | defender bytes | challenger bytes | one-step proof bytes | verify µs (median) | challenger exec s | defender exec s | move compute s | pinpoint compute s | referee ms | pinned (node op element step/K) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, model) in ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"].into_iter().enumerate() {
        for exp in [1u32, 4] {
            let r = measure(model, exp, 100 + i as u64);
            let total = r.ch_exec + r.def_exec + r.agents;
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {} |",
                r.model,
                r.nodes,
                r.degree,
                r.moves,
                r.rounds,
                r.def_bytes,
                r.ch_bytes,
                r.proof_bytes,
                r.verify_us,
                r.ch_exec.as_secs_f64(),
                r.def_exec.as_secs_f64(),
                r.agents.as_secs_f64(),
                total.as_secs_f64(),
                r.referee.as_secs_f64() * 1e3,
                r.pinned
            );
            assert!(r.proof_bytes <= 4096, "{model}: one-step proof {} bytes", r.proof_bytes);
            if release {
                assert!(r.verify_us <= 100.0, "{model}: verification {:.1} µs", r.verify_us);
                if model == "mobilenetv2" {
                    assert!(total.as_secs_f64() <= 3.0, "mobilenetv2 pinpointed in {:.2} s", total.as_secs_f64());
                }
            }
        }
    }
}
