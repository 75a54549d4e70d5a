//! Soundness over the corpus models, randomized with fixed seeds
//! (`VERINFER_FUZZ_CASES` scales the game counts): faults injected at random
//! (node, element, step), and dishonest strategies for either side. The
//! honest side wins every game; a correct record is never voided; a wrong one
//! always is when the honest challenger plays.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::program::Program;
use verinfer_settlement::agent::{challenger_move, defender_move, record_is_wrong};
use verinfer_settlement::{GameView, Level, Move, MoveKind, Side, TxError};
use verinfer_state::receipt::Status;
use verinfer_state::tensor::Tensor;

use crate::common::*;

/// What a player does at its turn: the moves it tries, in order (rejected
/// ones change nothing); none accepted means it goes silent.
type Player<'a> = dyn FnMut(&GameView, &mut ChaCha8Rng) -> Vec<Move> + 'a;

/// A dishonest defender's behaviour (the honest challenger plays against it).
#[derive(Clone, Copy, Debug)]
enum Liar {
    /// Plays its faulty trace consistently.
    Consistent,
    /// Sends a tampered move first at random turns, then falls back.
    Tampers,
    /// At one level, tries the honest prover's move first (an inconsistent
    /// reveal), then falls back to its own or goes silent.
    TruthAt(Level, bool),
    /// Goes silent after `n` moves.
    SilentAfter(u32),
    /// At every move, tries in random order: the honest prover's move, the
    /// move of a second, differently faulty trace, a tampered move, and its
    /// own; whatever the referee accepts first is played (so it tells the
    /// truth wherever the truth is consistent with what it committed).
    Mixed,
}

/// A dishonest challenger's behaviour (against an honest defender).
#[derive(Clone, Copy, Debug)]
enum Doubter {
    /// Uniformly random picks.
    Random,
    /// Picks as an honest challenger whose own computation has a fault
    /// (a wrong re-execution), random where it sees no difference.
    WrongView,
    /// Honest-looking picks at one level, random at the others.
    RandomExcept(Level),
    /// Tries an out-of-range pick first, then a random one.
    Invalid,
    /// Goes silent after `n` moves.
    SilentAfter(u32),
}

fn tamper(mv: &Move, rng: &mut ChaCha8Rng) -> Move {
    let mut m = mv.clone();
    match &mut m {
        Move::Commit(c) => c.trace_root.0[rng.gen_range(0..32)] ^= 1,
        Move::Reveal { nodes } => {
            let i = rng.gen_range(0..nodes.len());
            nodes[i].0[rng.gen_range(0..32)] ^= 1;
        }
        Move::NodeReveal(r) => r.tensor.chunks_root.0[0] ^= 1,
        Move::ChunkReveal { bytes } => {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] ^= 1 << rng.gen_range(0..8);
        }
        Move::StatesCommit(sc) => sc.states_root.0[0] ^= 1,
        Move::OneStep(p) => {
            if p.operands.is_empty() || rng.gen_bool(0.3) {
                p.s_prev.0[0] ^= 1;
            } else {
                let i = rng.gen_range(0..p.operands.len());
                p.operands[i].value.bits ^= 1;
            }
        }
        Move::Pick { child } => *child += 1,
        Move::PickElement { offset } => *offset += 1,
    }
    m
}

fn random_pick(v: &GameView, rng: &mut ChaCha8Rng) -> Move {
    match v.awaiting {
        Some(MoveKind::Pick) => {
            let n = v.cursor.as_ref().and_then(|c| c.revealed.as_ref()).map_or(1, Vec::len);
            Move::Pick { child: rng.gen_range(0..n) as u32 }
        }
        _ => {
            let bytes = v.chunk_bytes.as_ref().map_or(0, Vec::len);
            let sz = v.output_dtype.map_or(1, |d| d.size());
            Move::PickElement { offset: rng.gen_range(0..(bytes / sz).max(1) as u64) }
        }
    }
}

/// Plays a game: each side's player proposes moves; the honest side's moves
/// must be accepted; silence ends in a timeout. Returns the winner.
fn run(
    s: &mut Setup,
    defender: &mut Player<'_>,
    challenger: &mut Player<'_>,
    honest: Side,
    rng: &mut ChaCha8Rng,
) -> Side {
    for _ in 0..5_000 {
        let v = s.view();
        if let Some(r) = &v.resolution {
            return r.winner;
        }
        let side = v.to_move.expect("open game");
        let tries = match side {
            Side::Defender => defender(&v, rng),
            Side::Challenger => challenger(&v, rng),
        };
        let mut accepted = false;
        let n = tries.len();
        for (i, mv) in tries.into_iter().enumerate() {
            match s.play(side, mv, rng.gen_range(1..50)) {
                Ok(_) => {
                    accepted = true;
                    break;
                }
                Err(e) => {
                    assert!(side != honest || i + 1 < n, "the honest {side}'s move was rejected: {e}");
                    assert!(
                        matches!(e, TxError::InvalidMove { .. }),
                        "a well-timed move is rejected only for its payload: {e:?}"
                    );
                }
            }
        }
        if !accepted {
            assert!(side != honest, "the honest side went silent");
            s.timeout();
        }
    }
    panic!("game did not end");
}

fn liar_player<'a>(
    prover: Arc<DisputeProver>,
    truth: Arc<DisputeProver>,
    other: Option<Arc<DisputeProver>>,
    liar: Liar,
) -> Box<Player<'a>> {
    Box::new(move |v: &GameView, rng: &mut ChaCha8Rng| {
        let own = defender_move(v, &prover).expect("liar's prover").expect("defender's turn");
        match liar {
            Liar::Mixed => {
                let mut tries: Vec<Move> = vec![tamper(&own, rng)];
                tries.extend(defender_move(v, &truth).ok().flatten());
                if let Some(o) = &other {
                    tries.extend(defender_move(v, o).ok().flatten());
                }
                use rand::seq::SliceRandom;
                tries.shuffle(rng);
                tries.push(own);
                tries
            }
            Liar::Consistent => vec![own],
            Liar::Tampers => {
                if rng.gen_bool(0.4) {
                    vec![tamper(&own, rng), own]
                } else {
                    vec![own]
                }
            }
            Liar::TruthAt(level, fall_back) if v.level == level => {
                let t = defender_move(v, &truth).ok().flatten();
                let mut tries: Vec<Move> = t.into_iter().collect();
                if fall_back || tries.first() == Some(&own) {
                    tries.push(own);
                }
                tries
            }
            Liar::TruthAt(..) => vec![own],
            Liar::SilentAfter(n) if v.moves >= n => vec![],
            Liar::SilentAfter(_) => vec![own],
        }
    })
}

fn honest_challenger<'a>(honest: Arc<DisputeProver>) -> Box<Player<'a>> {
    Box::new(move |v: &GameView, _rng: &mut ChaCha8Rng| {
        vec![challenger_move(v, &honest).expect("honest agent").expect("an honest challenger always sees a difference")]
    })
}

fn honest_defender<'a>(p: Arc<DisputeProver>) -> Box<Player<'a>> {
    Box::new(move |v: &GameView, _rng: &mut ChaCha8Rng| {
        vec![defender_move(v, &p).expect("defender agent").expect("its turn")]
    })
}

fn doubter_player<'a>(honest: Arc<DisputeProver>, view: &'a DisputeProver, d: Doubter) -> Box<Player<'a>> {
    Box::new(move |v: &GameView, rng: &mut ChaCha8Rng| match d {
        Doubter::Random => vec![random_pick(v, rng)],
        Doubter::WrongView => vec![challenger_move(v, view).ok().flatten().unwrap_or_else(|| random_pick(v, rng))],
        Doubter::RandomExcept(level) if v.level == level => {
            // The honest view finds no difference in a correct trace: its
            // "honest-looking" pick is the leftmost child.
            vec![challenger_move(v, &honest).ok().flatten().unwrap_or(match v.awaiting {
                Some(MoveKind::Pick) => Move::Pick { child: 0 },
                _ => Move::PickElement { offset: 0 },
            })]
        }
        Doubter::RandomExcept(_) => vec![random_pick(v, rng)],
        Doubter::Invalid => {
            let bad = match v.awaiting {
                Some(MoveKind::Pick) => Move::Pick { child: 1 << 20 },
                _ => Move::PickElement { offset: 1 << 20 },
            };
            vec![bad, random_pick(v, rng)]
        }
        Doubter::SilentAfter(n) if v.moves >= n => vec![],
        Doubter::SilentAfter(_) => vec![random_pick(v, rng)],
    })
}

const LEVELS: [Level; 7] = [
    Level::Commit,
    Level::NodeDissection,
    Level::NodeReveal,
    Level::ElementDissection,
    Level::Element,
    Level::StatesCommit,
    Level::OneStep,
];

fn pick_liar(rng: &mut ChaCha8Rng) -> Liar {
    match rng.gen_range(0..5) {
        0 => Liar::Consistent,
        1 => Liar::Tampers,
        2 => Liar::TruthAt(LEVELS[rng.gen_range(0..LEVELS.len())], rng.gen_bool(0.7)),
        3 => Liar::Mixed,
        _ => Liar::SilentAfter(rng.gen_range(0..30)),
    }
}

fn pick_doubter(rng: &mut ChaCha8Rng) -> Doubter {
    match rng.gen_range(0..5) {
        0 => Doubter::Random,
        1 => Doubter::WrongView,
        2 => Doubter::RandomExcept(
            [Level::NodeDissection, Level::ElementDissection, Level::Element, Level::StepDissection]
                [rng.gen_range(0..4)],
        ),
        3 => Doubter::Invalid,
        _ => Doubter::SilentAfter(rng.gen_range(0..30)),
    }
}

/// Faulty records against the honest challenger, then correct records
/// against dishonest challengers, on one model.
fn soundness_on(
    name: &str,
    program: Program,
    inputs: Vec<Tensor>,
    faulty_games: usize,
    honest_games: usize,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let honest = Arc::new(DisputeProver::new(program.clone(), inputs.clone(), None).expect("honest"));
    let honest_claim = honest.claim().expect("claim");
    let mut played = 0;
    let mut masked = 0;
    let mut attempts = 0;
    while played < faulty_games {
        attempts += 1;
        assert!(attempts < 20 * faulty_games + 20, "{name}: too many masked faults");
        let Some(fault) = random_fault(&program, &mut rng) else { continue };
        let liar = Arc::new(DisputeProver::new(program.clone(), inputs.clone(), Some(fault)).expect("liar"));
        if liar.claim().expect("claim") == honest_claim {
            masked += 1; // The fault never reached the outputs: a correct record.
            continue;
        }
        let d = if rng.gen_bool(0.5) { 4 } else { rng.gen_range(1..4) };
        let mut s = GameBuilder::new(program.clone(), inputs.clone()).exp(d).build_with(liar, honest.clone());
        assert!(s.record_wrong);
        assert!(record_is_wrong(&s.sealed.body.entries[1].record, &s.honest).expect("same program"));
        let strategy = pick_liar(&mut rng);
        let other = match strategy {
            Liar::Mixed => loop {
                if let Some(f) = random_fault(&program, &mut rng) {
                    break Some(Arc::new(
                        DisputeProver::new(program.clone(), inputs.clone(), Some(f)).expect("other liar"),
                    ));
                }
            },
            _ => None,
        };
        let mut def = liar_player(s.defender.clone(), honest.clone(), other, strategy);
        let mut ch = honest_challenger(s.honest.clone());
        let mut game_rng = ChaCha8Rng::seed_from_u64(rng.r#gen());
        let winner = run(&mut s, &mut *def, &mut *ch, Side::Challenger, &mut game_rng);
        assert_eq!(winner, Side::Challenger, "{name}: {fault:?} {strategy:?} D={d}: the honest challenger must win");
        assert_eq!(
            s.chain.st.record_status(1, 1, s.chain.now),
            Ok(Status::Fraudulent),
            "{name}: the wrong record is void"
        );
        let r = s.resolution();
        if matches!(strategy, Liar::Consistent | Liar::Tampers) {
            assert_eq!(
                (r.pinpoint.node, r.pinpoint.element, r.pinpoint.step),
                (Some(fault.node), Some(fault.element), Some(fault.step)),
                "{name}: the consistent liar is pinned at its fault"
            );
        }
        for i in [0, 2] {
            assert_ne!(
                s.chain.st.record_status(1, i, s.chain.now),
                Ok(Status::Fraudulent),
                "{name}: other records stand"
            );
        }
        played += 1;
    }
    for g in 0..honest_games {
        let d = if g % 2 == 0 { 4 } else { rng.gen_range(1..4) };
        let mut s = GameBuilder::new(program.clone(), inputs.clone()).exp(d).build_with(honest.clone(), honest.clone());
        assert!(!s.record_wrong);
        let strategy = pick_doubter(&mut rng);
        // A challenger whose own re-execution is wrong.
        let wrong_view = loop {
            if let Some(f) = random_fault(&program, &mut rng) {
                break DisputeProver::new(program.clone(), inputs.clone(), Some(f)).expect("wrong view");
            }
        };
        let mut def = honest_defender(s.defender.clone());
        let mut ch = doubter_player(s.honest.clone(), &wrong_view, strategy);
        let mut game_rng = ChaCha8Rng::seed_from_u64(rng.r#gen());
        let winner = run(&mut s, &mut *def, &mut *ch, Side::Defender, &mut game_rng);
        assert_eq!(winner, Side::Defender, "{name}: {strategy:?} D={d}: the honest defender must win");
        assert_ne!(
            s.chain.st.record_status(1, 1, s.chain.now),
            Ok(Status::Fraudulent),
            "{name}: a correct record is never voided"
        );
    }
    eprintln!(
        "{name}: {faulty_games} faulty-record games, {honest_games} correct-record games, {masked} masked faults skipped"
    );
}

#[test]
fn soundness_toy_program() {
    let (p, i) = toy_program();
    soundness_on("toy", p, i, cases(40), cases(40), 1);
}

#[test]
fn soundness_mlp() {
    let (p, i) = load_model("mlp");
    soundness_on("mlp", p, i, cases(24), cases(24), 2);
}

#[test]
fn soundness_lenet5() {
    let (p, i) = load_model("lenet5");
    soundness_on("lenet5", p, i, cases(16), cases(16), 3);
}

#[test]
fn soundness_gpt2() {
    let (p, i) = load_model("gpt2");
    soundness_on("gpt2", p, i, cases(8), cases(8), 4);
}

#[test]
fn soundness_mobilenetv2() {
    let (p, i) = load_model("mobilenetv2");
    soundness_on("mobilenetv2", p, i, cases(8) / 4, cases(8) / 4, 5);
}

#[test]
fn soundness_bert_tiny() {
    let (p, i) = load_model("bert_tiny");
    soundness_on("bert_tiny", p, i, cases(6) / 2, cases(6) / 2, 6);
}
