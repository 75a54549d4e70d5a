//! Game and settlement rules on the toy program, one test per rule.

use verinfer_prover::dispute::{Fault, StepVerdict};
use verinfer_settlement::agent::{challenger_move, defender_move};
use verinfer_settlement::{
    Event, Level, Move, MoveError, MoveKind, Params, ResolutionReason, Settlement, Side, SignedTx, TreeKind, Tx,
    TxError,
};
use verinfer_state::batch::{BodyEntry, SealedBatch};
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Status;

use crate::common::*;

/// A lie in node 2 (the square) at element 70, step 0: reaches both outputs.
fn toy_fault() -> Fault {
    Fault { node: 2, element: 70, step: 0, xor: 1 << 22 }
}

fn faulty() -> Setup {
    GameBuilder::toy().fault(Some(toy_fault())).build()
}

fn honest_game() -> Setup {
    GameBuilder::toy().build()
}

/// Plays agent moves until the game awaits `kind` (or ends).
fn play_until(s: &mut Setup, kind: MoveKind) {
    for _ in 0..1000 {
        let v = s.view();
        if v.awaiting == Some(kind) || v.resolution.is_some() {
            return;
        }
        let (side, mv) = s.agent_move().expect("agents move");
        s.play(side, mv, 1).expect("valid");
    }
    panic!("never reached {kind:?}");
}

/// Plays moves with the challenger always picking child `child_of(view)`.
fn play_with_picks(s: &mut Setup, pick: impl Fn(&verinfer_settlement::GameView) -> Move) {
    for _ in 0..1000 {
        let v = s.view();
        if v.resolution.is_some() {
            return;
        }
        match v.to_move.expect("open") {
            Side::Defender => {
                let mv = defender_move(&v, &s.defender).expect("agent").expect("defender's turn");
                s.play(Side::Defender, mv, 1).expect("valid defender move");
            }
            Side::Challenger => {
                let mv = pick(&v);
                s.play(Side::Challenger, mv, 1).expect("valid pick");
            }
        }
    }
    panic!("game did not end");
}

#[test]
fn rule_honest_challenger_voids_a_faulty_record_and_the_batch_stands() {
    let mut s = faulty();
    assert!(s.record_wrong);
    let (seq0, ch0) = (s.chain.free(&s.sequencer.id), s.chain.free(&s.challenger.id));
    let escrow = s.view().challenger_bond + s.view().defender_stake;
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Disputed));
    assert_eq!(s.play_out(), Side::Challenger);
    let r = s.resolution();
    assert!(matches!(r.reason, ResolutionReason::StepChecked { verdict: StepVerdict::Wrong { .. } }), "{r:?}");
    let f = toy_fault();
    assert_eq!((r.pinpoint.node, r.pinpoint.element, r.pinpoint.step), (Some(f.node), Some(f.element), Some(f.step)));
    assert_eq!(r.pinpoint.op.as_deref(), Some("Mul"));
    assert_eq!(r.pinpoint.operands.len(), 2, "Mul reads two operands");
    assert!(r.pinpoint.expected.is_some() && r.pinpoint.expected != r.pinpoint.s_next);
    assert_eq!(s.chain.free(&s.challenger.id), ch0 + escrow, "the challenger receives the whole escrow");
    assert_eq!(s.chain.free(&s.sequencer.id), seq0);
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Fraudulent));
    // The batch's other records stand and become final after the window.
    s.chain.wait(s.chain.params().challenge_window_ms);
    assert_eq!(s.chain.st.record_status(1, 0, s.chain.now), Ok(Status::Final));
    assert_eq!(s.chain.st.record_status(1, 2, s.chain.now), Ok(Status::Final));
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Fraudulent));
    let ev = s.chain.tick();
    assert_eq!(ev, vec![Event::BatchSettled { number: 1, void: vec![1] }]);
}

#[test]
fn rule_honest_defender_wins_and_the_record_becomes_final() {
    // A wrong challenge: the challenger picks the last child everywhere.
    let mut s = honest_game();
    let seq0 = s.chain.free(&s.sequencer.id);
    let escrow = s.view().challenger_bond + s.view().defender_stake;
    play_with_picks(&mut s, |v| match v.awaiting {
        Some(MoveKind::Pick) => {
            Move::Pick { child: v.cursor.as_ref().and_then(|c| c.revealed.as_ref()).map_or(0, |r| r.len() as u32 - 1) }
        }
        _ => Move::PickElement { offset: 0 },
    });
    let r = s.resolution();
    assert_eq!(r.winner, Side::Defender);
    assert_eq!(r.reason, ResolutionReason::StepChecked { verdict: StepVerdict::Correct });
    assert_eq!(s.chain.free(&s.sequencer.id), seq0 + escrow, "the escrow goes to the defender's free balance");
    // Window still open: back to Batched, then Final.
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Batched { batch: 1, index: 1 }));
    s.chain.wait(s.chain.params().challenge_window_ms);
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Final));
}

#[test]
fn rule_challenger_pinning_the_binding_leaf_loses() {
    let mut s = honest_game();
    play_with_picks(&mut s, |_| Move::Pick { child: 0 });
    assert_eq!(s.reason(), ResolutionReason::PinnedBinding);
    assert_eq!(s.resolution().winner, Side::Defender);
}

#[test]
fn rule_challenger_pinning_the_initial_state_loses() {
    let mut s = honest_game();
    // Honest-looking picks at the node and element levels (leftmost child
    // that is not the binding), then child 0 in the states tree.
    play_with_picks(&mut s, |v| match (v.awaiting, v.cursor.as_ref().map(|c| c.tree)) {
        (Some(MoveKind::Pick), Some(TreeKind::Trace)) => {
            let c = v.cursor.as_ref().expect("cursor");
            Move::Pick { child: u32::from(c.first_child == 0 && c.revealed.as_ref().is_some_and(|r| r.len() > 1)) }
        }
        (Some(MoveKind::Pick), _) => Move::Pick { child: 0 },
        _ => Move::PickElement { offset: 0 },
    });
    assert_eq!(s.reason(), ResolutionReason::PinnedInitialState);
    assert_eq!(s.resolution().pinpoint.node, Some(0));
}

#[test]
fn rule_empty_output_cannot_be_disputed() {
    let (p, inputs) = toy_program_with_empty_node();
    let mut s = GameBuilder::new(p, inputs).build();
    // Pick the last trace leaf (the empty node) everywhere.
    play_with_picks(&mut s, |v| Move::Pick {
        child: v.cursor.as_ref().and_then(|c| c.revealed.as_ref()).map_or(0, |r| r.len() as u32 - 1),
    });
    assert_eq!(s.reason(), ResolutionReason::EmptyOutput);
    assert_eq!(s.resolution().pinpoint.node, Some(4));
}

#[test]
fn rule_one_leaf_trees_reveal_the_leaf_itself() {
    // Node 3's output is one chunk: its chunk dissection is a single reveal
    // of the leaf (d = 0) with no pick.
    let mut s = GameBuilder::toy().fault(Some(Fault { node: 3, element: 5, step: 63, xor: 1 << 23 })).build();
    play_until(&mut s, MoveKind::NodeReveal);
    let (side, mv) = s.agent_move().expect("node reveal");
    s.play(side, mv, 1).expect("valid");
    let v = s.view();
    let c = v.cursor.expect("chunk dissection");
    assert_eq!((c.tree, c.leaf_count, c.level, c.span), (TreeKind::Chunks, 1, 0, 0));
    let (side, mv) = s.agent_move().expect("reveal");
    assert!(matches!(&mv, Move::Reveal { nodes } if nodes.len() == 1));
    s.play(side, mv, 1).expect("valid one-leaf reveal");
    assert_eq!(s.view().awaiting, Some(MoveKind::ChunkReveal));
    assert_eq!(s.play_out(), Side::Challenger);
    assert_eq!(s.resolution().pinpoint.step, Some(63));
}

#[test]
fn rule_invalid_reveal_changes_nothing() {
    let mut s = faulty();
    play_until(&mut s, MoveKind::Reveal);
    let Some((Side::Defender, Move::Reveal { nodes })) = s.agent_move() else { panic!("a reveal") };
    let before = s.chain.st.to_bytes();
    let mut bad = nodes.clone();
    bad[0].0[3] ^= 1;
    // Chain::apply asserts the state bytes are unchanged on rejection; the
    // clock did not move either.
    let err = s.play(Side::Defender, Move::Reveal { nodes: bad }, 5).expect_err("rejected");
    assert!(
        matches!(
            err,
            TxError::InvalidMove {
                kind: MoveKind::Reveal,
                source: MoveError::RevealMismatch { tree: TreeKind::Trace, .. }
            }
        ),
        "{err:?}"
    );
    let mut short = nodes.clone();
    short.pop();
    let err = s.play(Side::Defender, Move::Reveal { nodes: short }, 5).expect_err("rejected");
    assert!(matches!(err, TxError::InvalidMove { source: MoveError::RevealShape { .. }, .. }), "{err:?}");
    assert!(before == s.chain.st.to_bytes());
    s.play(Side::Defender, Move::Reveal { nodes }, 5).expect("the valid reveal still lands");
}

#[test]
fn rule_invalid_payloads_at_every_level_are_rejected() {
    let mut s = faulty();
    // Commit with a wrong trace root.
    let Some((_, Move::Commit(mut c))) = s.agent_move() else { panic!("commit") };
    c.trace_root.0[0] ^= 1;
    assert!(matches!(
        s.play(Side::Defender, Move::Commit(c), 1),
        Err(TxError::InvalidMove { kind: MoveKind::Commit, .. })
    ));
    play_until(&mut s, MoveKind::NodeReveal);
    let Some((_, Move::NodeReveal(mut r))) = s.agent_move() else { panic!("node reveal") };
    r.output_root.0[0] ^= 1;
    assert!(matches!(
        s.play(Side::Defender, Move::NodeReveal(r), 1),
        Err(TxError::InvalidMove { kind: MoveKind::NodeReveal, .. })
    ));
    play_until(&mut s, MoveKind::ChunkReveal);
    let Some((_, Move::ChunkReveal { mut bytes })) = s.agent_move() else { panic!("chunk") };
    bytes[0] ^= 1;
    assert!(s.play(Side::Defender, Move::ChunkReveal { bytes: bytes.clone() }, 1).is_err());
    bytes.pop();
    assert!(s.play(Side::Defender, Move::ChunkReveal { bytes }, 1).is_err());
    play_until(&mut s, MoveKind::PickElement);
    let n = s.view().chunk_bytes.expect("bytes").len() as u64 / 4;
    let err = s.play(Side::Challenger, Move::PickElement { offset: n }, 1).expect_err("beyond the chunk");
    assert!(matches!(err, TxError::InvalidMove { kind: MoveKind::PickElement, .. }));
    play_until(&mut s, MoveKind::StatesCommit);
    let Some((_, Move::StatesCommit(mut sc))) = s.agent_move() else { panic!("states") };
    sc.sk.0[0] ^= 1;
    assert!(s.play(Side::Defender, Move::StatesCommit(sc), 1).is_err());
    play_until(&mut s, MoveKind::OneStep);
    let Some((_, Move::OneStep(mut p))) = s.agent_move() else { panic!("one step") };
    p.operands[0].value.bits ^= 1;
    assert!(matches!(
        s.play(Side::Defender, Move::OneStep(p), 1),
        Err(TxError::InvalidMove { kind: MoveKind::OneStep, .. })
    ));
    // The honest end still applies.
    assert_eq!(s.play_out(), Side::Challenger);
}

#[test]
fn rule_pick_out_of_range_is_rejected() {
    let mut s = faulty();
    play_until(&mut s, MoveKind::Pick);
    let n = s.view().cursor.and_then(|c| c.revealed).expect("revealed").len() as u32;
    let err = s.play(Side::Challenger, Move::Pick { child: n }, 1).expect_err("out of range");
    assert!(matches!(err, TxError::InvalidMove { source: MoveError::PickOutOfRange { .. }, .. }), "{err:?}");
}

#[test]
fn rule_move_out_of_turn_or_by_a_stranger_is_rejected() {
    let mut s = faulty();
    let Some((_, mv)) = s.agent_move() else { panic!("commit") };
    let err = s.play(Side::Challenger, mv.clone(), 1).expect_err("not its turn");
    assert_eq!(err, TxError::NotYourTurn { to_move: Side::Defender });
    let stranger = Party::new(50).id;
    let tx = s.view().tx(mv);
    assert_eq!(s.chain.apply(stranger, tx), Err(TxError::NotAParty(stranger)));
}

#[test]
fn rule_wrong_move_kind_is_rejected() {
    let mut s = faulty();
    let err = s.play(Side::Defender, Move::Reveal { nodes: vec![] }, 1).expect_err("commit expected");
    assert_eq!(err, TxError::WrongMove { expected: MoveKind::Commit, got: MoveKind::Reveal });
}

#[test]
fn rule_stale_move_seq_is_rejected() {
    let mut s = faulty();
    let Some((_, mv)) = s.agent_move() else { panic!("commit") };
    s.chain.wait(1);
    let tx = Tx::Move { game: s.game, seq: 3, mv };
    assert_eq!(s.chain.apply(s.sequencer.id, tx), Err(TxError::StaleMove { expected: 0, got: 3 }));
}

#[test]
fn rule_move_after_clock_expiry_is_rejected() {
    let mut s = faulty();
    let clock = s.chain.params().clock_ms;
    let Some((_, mv)) = s.agent_move() else { panic!("commit") };
    // Exactly at the deadline the clock has run out.
    let err = s.play(Side::Defender, mv.clone(), clock).expect_err("expired");
    assert!(matches!(err, TxError::ClockExpired { side: Side::Defender, .. }), "{err:?}");
    s.chain.now -= 1;
    s.play(Side::Defender, mv, 0).expect("one ms before the deadline is in time");
    assert_eq!(s.view().clocks.defender_left_ms, 1);
}

#[test]
fn rule_clock_runs_only_for_the_side_to_move() {
    let mut s = faulty();
    let clock = s.chain.params().clock_ms;
    play_until(&mut s, MoveKind::Pick);
    let v = s.view();
    let used_by_defender = clock - v.clocks.defender_left_ms;
    assert_eq!(v.clocks.challenger_left_ms, clock, "the challenger's clock did not run during the defender's turns");
    let (side, mv) = s.agent_move().expect("pick");
    s.play(side, mv, 700).expect("pick");
    let v = s.view();
    assert_eq!(v.clocks.challenger_left_ms, clock - 700);
    assert_eq!(clock - v.clocks.defender_left_ms, used_by_defender);
    s.chain.wait(300);
    assert_eq!(s.view().clocks.defender_left_ms, clock - used_by_defender - 300);
    assert_eq!(s.view().clocks.deadline_ms, Some(s.chain.now - 300 + clock - used_by_defender));
}

#[test]
fn rule_timeout_resolves_against_the_silent_defender() {
    let mut s = faulty();
    play_until(&mut s, MoveKind::StatesCommit);
    let ch0 = s.chain.free(&s.challenger.id);
    let escrow = s.view().challenger_bond + s.view().defender_stake;
    s.timeout();
    let r = s.resolution();
    assert_eq!((r.winner, r.reason), (Side::Challenger, ResolutionReason::Timeout { side: Side::Defender }));
    assert!(r.pinpoint.element.is_some(), "the pinpoint so far is reported");
    assert_eq!(s.chain.free(&s.challenger.id), ch0 + escrow);
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Fraudulent));
}

#[test]
fn rule_timeout_resolves_against_the_silent_challenger() {
    let mut s = faulty();
    play_until(&mut s, MoveKind::Pick);
    let seq0 = s.chain.free(&s.sequencer.id);
    let escrow = s.view().challenger_bond + s.view().defender_stake;
    s.timeout();
    assert_eq!(s.resolution().winner, Side::Defender);
    assert_eq!(s.reason(), ResolutionReason::Timeout { side: Side::Challenger });
    assert_eq!(s.chain.free(&s.sequencer.id), seq0 + escrow);
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Batched { batch: 1, index: 1 }));
}

#[test]
fn rule_timeout_claim_before_expiry_is_rejected() {
    let mut s = faulty();
    let deadline = s.view().clocks.deadline_ms.expect("open");
    s.chain.now = deadline - 1;
    let err = s.chain.apply(Party::new(9).id, Tx::ClaimTimeout { game: s.game }).expect_err("running");
    assert_eq!(err, TxError::ClockRunning { side: Side::Defender, deadline_ms: deadline });
    s.chain.now = deadline;
    s.chain.apply(Party::new(9).id, Tx::ClaimTimeout { game: s.game }).expect("expired");
    let err = s.chain.apply(Party::new(9).id, Tx::ClaimTimeout { game: s.game }).expect_err("over");
    assert_eq!(err, TxError::GameOver(s.game));
}

#[test]
fn rule_moves_after_resolution_are_rejected() {
    let mut s = faulty();
    s.play_out();
    let err = s.play(Side::Defender, Move::Reveal { nodes: vec![] }, 1).expect_err("over");
    assert_eq!(err, TxError::GameOver(s.game));
}

#[test]
fn rule_dispute_outside_window_is_rejected() {
    let mut s = GameBuilder::toy().fault(Some(toy_fault())).no_dispute().build();
    let end = s.chain.st.batch(1).expect("batch").window_end_ms;
    s.chain.now = end;
    let err = s.chain.apply(s.challenger.id, open_tx(&s.sealed, 1)).expect_err("closed");
    assert_eq!(err, TxError::WindowClosed { batch: 1, window_end_ms: end });
    s.chain.now = end - 1;
    s.chain.apply(s.challenger.id, open_tx(&s.sealed, 1)).expect("last ms of the window");
}

#[test]
fn rule_dispute_needs_a_valid_inclusion_proof() {
    let mut s = GameBuilder::toy().no_dispute().build();
    let Tx::OpenDispute { batch, index, record, proof } = open_tx(&s.sealed, 1) else { panic!() };
    let mut other = record;
    other.output_root.0[0] ^= 1;
    let err = s.chain.apply(s.challenger.id, Tx::OpenDispute { batch, index, record: other, proof: proof.clone() });
    assert!(matches!(err, Err(TxError::Inclusion(_))), "{err:?}");
    let err = s.chain.apply(s.challenger.id, Tx::OpenDispute { batch, index: 2, record, proof: proof.clone() });
    assert_eq!(err, Err(TxError::IndexMismatch { proof: 1, index: 2 }));
    let err = s.chain.apply(s.challenger.id, Tx::OpenDispute { batch: 7, index, record, proof });
    assert_eq!(err, Err(TxError::UnknownBatch(7)));
}

#[test]
fn rule_dispute_needs_the_challenger_bond() {
    let mut s = GameBuilder::toy().no_dispute().build();
    let poor = Party::new(40);
    s.chain.deposit(poor.id, 99);
    let err = s.chain.apply(poor.id, open_tx(&s.sealed, 0)).expect_err("bond");
    assert_eq!(err, TxError::InsufficientBalance { account: poor.id, needed: 100, available: 99 });
}

#[test]
fn rule_sequencer_cannot_dispute_its_own_batch() {
    let mut s = GameBuilder::toy().no_dispute().build();
    assert_eq!(s.chain.apply(s.sequencer.id, open_tx(&s.sealed, 0)), Err(TxError::SelfDispute));
}

#[test]
fn rule_two_games_on_one_record_each_lock_their_stake() {
    let mut s = faulty();
    let second = Party::new(3);
    s.chain.deposit(second.id, 500);
    let bond0 = s.chain.bond(&s.sequencer.id);
    let ev = s.chain.apply(second.id, open_tx(&s.sealed, 1)).expect("second game");
    let Event::DisputeOpened { game: g2, defender_stake, .. } = ev[0] else { panic!() };
    assert_eq!(defender_stake, 100);
    assert_eq!(s.chain.bond(&s.sequencer.id), bond0 - 100);
    // The first game voids the record; the second is still played and won.
    assert_eq!(s.play_out(), Side::Challenger);
    let err = s.chain.apply(Party::new(4).id, open_tx(&s.sealed, 1)).expect_err("void");
    assert_eq!(err, TxError::RecordVoid { batch: 1, index: 1 });
    s.game = g2;
    s.challenger = second.clone();
    assert_eq!(s.play_out(), Side::Challenger);
    assert_eq!(s.chain.free(&second.id), 500 - 100 + 200);
    assert_eq!(s.chain.st.record_disputes(1, 1).expect("disputes").void_by, Some(1));
}

#[test]
fn rule_defender_stake_comes_from_the_bond_and_a_short_bond_blocks_posting() {
    let mut p = Params::dev();
    p.defender_stake = 1_500; // more than half the 2,000 bond
    let mut s = GameBuilder::toy().params(p).fault(Some(toy_fault())).build();
    assert_eq!(s.view().defender_stake, 1_500);
    assert_eq!(s.chain.bond(&s.sequencer.id), 500);
    // A second game takes what is left.
    let second = Party::new(3);
    s.chain.deposit(second.id, 500);
    let ev = s.chain.apply(second.id, open_tx(&s.sealed, 0)).expect("second");
    assert!(matches!(ev[0], Event::DisputeOpened { defender_stake: 500, .. }));
    assert_eq!(s.chain.bond(&s.sequencer.id), 0);
    // Below the minimum: no posting until topped up.
    let entries = s.sealed.body.entries.clone();
    let next = SealedBatch::build(2, s.sealed.header.hash(), 901, s.sequencer.id.as_hash(), entries).expect("batch");
    let post = Tx::PostBatch { header: next.header, body: next.body.clone() };
    assert!(matches!(s.chain.apply(s.sequencer.id, post.clone()), Err(TxError::NotSequencer(_))));
    s.chain.apply(s.sequencer.id, Tx::BondSequencer { amount: 999 }).expect("top up");
    assert_eq!(s.chain.apply(s.sequencer.id, post.clone()), Err(TxError::BondBelowMinimum { bond: 999, min: 1_000 }));
    s.chain.apply(s.sequencer.id, Tx::BondSequencer { amount: 1 }).expect("top up");
    s.chain.apply(s.sequencer.id, post).expect("posting again");
}

#[test]
fn rule_unbond_blocked_by_open_game() {
    let mut s = faulty();
    s.chain.wait(s.chain.params().challenge_window_ms);
    assert_eq!(s.chain.apply(s.sequencer.id, Tx::Unbond), Err(TxError::UnbondOpenGames { open: 1 }));
    // Defender goes silent and loses; then the bond (less the stake) returns.
    s.timeout();
    let bond = s.chain.bond(&s.sequencer.id);
    let free = s.chain.free(&s.sequencer.id);
    s.chain.apply(s.sequencer.id, Tx::Unbond).expect("unbond");
    assert_eq!(s.chain.free(&s.sequencer.id), free + bond);
    assert_eq!(bond, 2_000 - 100);
}

#[test]
fn rule_unbond_blocked_until_every_window_closes() {
    let mut s = GameBuilder::toy().no_dispute().build();
    let end = s.chain.st.batch(1).expect("batch").window_end_ms;
    s.chain.now = end - 1;
    assert_eq!(s.chain.apply(s.sequencer.id, Tx::Unbond), Err(TxError::UnbondWindowOpen { until_ms: end }));
    s.chain.now = end;
    s.chain.apply(s.sequencer.id, Tx::Unbond).expect("unbond");
    assert_eq!(s.chain.bond(&s.sequencer.id), 0);
    assert!(matches!(s.chain.apply(s.sequencer.id, Tx::Unbond), Err(TxError::NotSequencer(_))));
}

#[test]
fn rule_only_a_bonded_sequencer_posts_a_chained_batch_matching_its_body() {
    let mut s = GameBuilder::toy().no_dispute().build();
    let stranger = Party::new(30);
    let entries = s.sealed.body.entries.clone();
    let build = |n: u64, parent: Hash32, ts: u64, seq: Hash32, e: Vec<BodyEntry>| {
        SealedBatch::build(n, parent, ts, seq, e).expect("batch")
    };
    let good = build(2, s.sealed.header.hash(), 901, s.sequencer.id.as_hash(), entries.clone());
    let post = |b: &SealedBatch| Tx::PostBatch { header: b.header, body: b.body.clone() };
    assert_eq!(s.chain.apply(stranger.id, post(&good)), Err(TxError::NotSequencer(stranger.id)));
    let wrong_number = build(3, s.sealed.header.hash(), 901, s.sequencer.id.as_hash(), entries.clone());
    assert_eq!(
        s.chain.apply(s.sequencer.id, post(&wrong_number)),
        Err(TxError::WrongBatchNumber { expected: 2, got: 3 })
    );
    let wrong_parent = build(2, h(b"x"), 901, s.sequencer.id.as_hash(), entries.clone());
    assert!(matches!(s.chain.apply(s.sequencer.id, post(&wrong_parent)), Err(TxError::WrongParent { .. })));
    let other_seq = build(2, s.sealed.header.hash(), 901, stranger.id.as_hash(), entries.clone());
    assert!(matches!(s.chain.apply(s.sequencer.id, post(&other_seq)), Err(TxError::WrongSequencer { .. })));
    let early = build(2, s.sealed.header.hash(), 899, s.sequencer.id.as_hash(), entries.clone());
    assert_eq!(
        s.chain.apply(s.sequencer.id, post(&early)),
        Err(TxError::TimestampBeforeParent { parent: 900, got: 899 })
    );
    let mut body_short = good.body.clone();
    body_short.entries.pop();
    assert!(matches!(
        s.chain.apply(s.sequencer.id, Tx::PostBatch { header: good.header, body: body_short }),
        Err(TxError::Body(_))
    ));
    let mut body_bad_input = good.body.clone();
    body_bad_input.entries[0].inputs = vec![];
    assert!(matches!(
        s.chain.apply(s.sequencer.id, Tx::PostBatch { header: good.header, body: body_bad_input }),
        Err(TxError::Body(_))
    ));
    let ev = s.chain.apply(s.sequencer.id, post(&good)).expect("post");
    assert!(matches!(ev[0], Event::BatchPosted { number: 2, records: 3, .. }));
    assert_eq!(s.chain.st.head().map(|b| b.header.number), Some(2));
}

#[test]
fn rule_deposit_withdraw_and_bond_conserve_value() {
    let mut c = Chain::new(Params::dev());
    let a = Party::new(1).id;
    assert_eq!(c.st.deposit(a, 0), Err(TxError::ZeroAmount));
    c.deposit(a, 5_000);
    assert_eq!(
        c.apply(a, Tx::Withdraw { amount: 5_001 }),
        Err(TxError::InsufficientBalance { account: a, needed: 5_001, available: 5_000 })
    );
    c.apply(a, Tx::Withdraw { amount: 1_000 }).expect("withdraw");
    c.apply(a, Tx::BondSequencer { amount: 3_000 }).expect("bond");
    assert_eq!(
        c.apply(a, Tx::BondSequencer { amount: 1_001 }),
        Err(TxError::InsufficientBalance { account: a, needed: 1_001, available: 1_000 })
    );
    let t = c.st.totals();
    assert_eq!((t.deposited, t.withdrawn, t.free, t.bonds, t.escrow), (5_000, 1_000, 1_000, 3_000, 0));
    assert!(matches!(c.st.deposit(a, u64::MAX), Err(TxError::Overflow)));
}

#[test]
fn rule_record_status_follows_the_lifecycle() {
    let s = GameBuilder::toy().no_dispute().build();
    let now = s.chain.now;
    assert_eq!(s.chain.st.record_status(1, 0, now), Ok(Status::Batched { batch: 1, index: 0 }));
    assert!(s.chain.st.record_status(1, 3, now).is_err());
    assert!(s.chain.st.record_status(2, 0, now).is_err());
    let end = s.chain.st.batch(1).expect("b").window_end_ms;
    assert_eq!(s.chain.st.record_status(1, 0, end - 1), Ok(Status::Batched { batch: 1, index: 0 }));
    assert_eq!(s.chain.st.record_status(1, 0, end), Ok(Status::Final));
}

#[test]
fn rule_a_game_open_past_the_window_keeps_the_record_disputed_and_the_body() {
    let mut p = Params::dev();
    p.clock_ms = 10 * p.challenge_window_ms;
    let mut s = GameBuilder::toy().params(p).fault(Some(toy_fault())).build();
    s.chain.wait(s.chain.params().challenge_window_ms);
    assert_eq!(s.chain.st.record_status(1, 1, s.chain.now), Ok(Status::Disputed));
    assert_eq!(s.chain.st.record_status(1, 0, s.chain.now), Ok(Status::Final));
    assert!(s.chain.tick().is_empty(), "no settlement while a game is open");
    assert!(s.chain.st.body_available(1), "the body stays available while a game is open");
    // The game goes on past the window.
    assert_eq!(s.play_out(), Side::Challenger);
    let ev = s.chain.tick();
    assert_eq!(ev, vec![Event::BatchSettled { number: 1, void: vec![1] }]);
    assert!(!s.chain.st.body_available(1), "no longer required once settled");
    assert!(s.chain.st.batch(1).expect("header kept").settled);
    assert!(s.chain.tick().is_empty(), "settled once");
}

#[test]
fn rule_time_never_goes_backwards() {
    let mut s = faulty();
    let t = s.chain.now;
    s.chain.now = t - 1;
    let err = s.chain.apply(s.sequencer.id, Tx::Withdraw { amount: 1 }).expect_err("backwards");
    assert_eq!(err, TxError::TimeRegression { now_ms: t - 1, last_ms: t });
}

#[test]
fn rule_signed_transactions_check_signature_chain_and_nonce() {
    let mut c = Chain::new(Params::dev());
    let a = Party::new(1);
    c.deposit(a.id, 1_000);
    let chain_id = c.params().chain_id;
    let tx = Tx::Withdraw { amount: 10 };
    let good = SignedTx::sign(&a.key, chain_id, 0, tx.clone());
    // Wrong chain, tampered payload, forged signer, wrong nonce.
    assert_eq!(c.apply_signed(&SignedTx::sign(&a.key, chain_id + 1, 0, tx.clone())), Err(TxError::BadSignature));
    let mut t = good.clone();
    t.tx = Tx::Withdraw { amount: 11 };
    assert_eq!(c.apply_signed(&t), Err(TxError::BadSignature));
    let mut t = good.clone();
    t.signer = Party::new(2).id;
    assert_eq!(c.apply_signed(&t), Err(TxError::BadSignature));
    assert_eq!(
        c.apply_signed(&SignedTx::sign(&a.key, chain_id, 1, tx.clone())),
        Err(TxError::BadNonce { expected: 0, got: 1 })
    );
    c.apply_signed(&good).expect("valid");
    assert_eq!(c.st.account(&a.id).nonce, 1);
    assert_eq!(c.apply_signed(&good), Err(TxError::BadNonce { expected: 1, got: 0 }), "no replay");
    // A rejected transaction does not consume its nonce.
    let big = SignedTx::sign(&a.key, chain_id, 1, Tx::Withdraw { amount: 1_000_000 });
    assert!(matches!(c.apply_signed(&big), Err(TxError::InsufficientBalance { .. })));
    assert_eq!(c.st.account(&a.id).nonce, 1);
    c.apply_signed(&SignedTx::sign(&a.key, chain_id, 1, tx)).expect("nonce 1 still free");
    assert_eq!(c.free(&a.id), 980);
    // Serde round trip of the envelope.
    let json = serde_json::to_string(&good).expect("json");
    assert_eq!(serde_json::from_str::<SignedTx>(&json).expect("parse"), good);
}

/// A `PostBatch` is signed over its header (decision 0014); the referee
/// binds the body to the header itself. So a body swapped in flight passes
/// the signature and is rejected by the body check, with the nonce unspent;
/// and a batch signed the v1 way (over its body) still applies.
#[test]
fn rule_signed_post_batch_binds_header_and_referee_binds_body() {
    let mut s = GameBuilder::toy().no_dispute().build();
    let chain_id = s.chain.params().chain_id;
    let entries = s.sealed.body.entries.clone();
    let next = SealedBatch::build(2, s.sealed.header.hash(), 901, s.sequencer.id.as_hash(), entries).expect("batch");
    let post = Tx::PostBatch { header: next.header, body: next.body.clone() };
    let good = SignedTx::sign(&s.sequencer.key, chain_id, 0, post.clone());
    let message = SignedTx::signing_bytes(chain_id, &s.sequencer.id, 0, &post);
    assert!(message.starts_with(verinfer_settlement::tx::POST_BATCH_SIGNING_TAG));
    assert!(message.len() < 300, "the body is not in the signed message");
    // Another header: bad signature.
    let mut t = good.clone();
    if let Tx::PostBatch { header, .. } = &mut t.tx {
        header.timestamp_ms += 1;
    }
    assert_eq!(s.chain.apply_signed(&t), Err(TxError::BadSignature));
    // Another body under the same header: the signature holds, the body
    // check rejects it, nothing is spent.
    let mut t = good.clone();
    if let Tx::PostBatch { body, .. } = &mut t.tx {
        body.entries[0].inputs[0] =
            body.entries[0].inputs[0].clone().reshaped(vec![body.entries[0].inputs[0].len()]).expect("reshape");
    }
    assert!(matches!(s.chain.apply_signed(&t), Err(TxError::Body(_))));
    assert_eq!(s.chain.st.account(&s.sequencer.id).nonce, 0);
    // A v1 signature (over the body) verifies, and binds the body.
    let v1 = |tx: &Tx| {
        use ed25519_dalek::Signer as _;
        let sig = s.sequencer.key.sign(&SignedTx::full_signing_bytes(chain_id, &s.sequencer.id, 0, tx));
        SignedTx {
            signer: s.sequencer.id,
            nonce: 0,
            tx: tx.clone(),
            signature: verinfer_settlement::types::Sig64(sig.to_bytes()),
        }
    };
    let legacy = v1(&post);
    legacy.verify_signature(chain_id).expect("v1 verifies");
    let mut t = legacy.clone();
    if let Tx::PostBatch { body, .. } = &mut t.tx {
        body.entries.pop();
    }
    assert_eq!(t.verify_signature(chain_id), Err(verinfer_settlement::tx::BadSignature));
    s.chain.apply_signed(&legacy).expect("a v1-signed batch applies");
    assert_eq!(s.chain.st.batch(2).map(|b| b.hash), Some(next.header.hash()));
}

#[test]
fn rule_a_whole_game_can_be_played_with_signed_moves() {
    let mut s = faulty();
    let chain_id = s.chain.params().chain_id;
    let mut nonces = [0u64; 2];
    for _ in 0..1000 {
        if s.view().resolution.is_some() {
            break;
        }
        let (side, mv) = s.agent_move().expect("agents");
        let key = match side {
            Side::Defender => &s.sequencer.key,
            Side::Challenger => &s.challenger.key,
        };
        let i = usize::from(side == Side::Challenger);
        let stx = SignedTx::sign(key, chain_id, nonces[i], s.view().tx(mv));
        s.chain.wait(1);
        s.chain.apply_signed(&stx).expect("signed move");
        nonces[i] += 1;
    }
    assert_eq!(s.resolution().winner, Side::Challenger);
}

#[test]
fn rule_state_survives_a_restart_mid_game() {
    let mut s = faulty();
    play_until(&mut s, MoveKind::StatesCommit);
    let bytes = s.chain.st.to_bytes();
    let restored = Settlement::from_bytes(&bytes).expect("decode");
    assert_eq!(restored, s.chain.st);
    s.chain.st = restored;
    assert_eq!(s.play_out(), Side::Challenger);
    // And a finished state too.
    assert_eq!(Settlement::from_bytes(&s.chain.st.to_bytes()).expect("decode"), s.chain.st);
}

#[test]
fn rule_dissection_degree_sets_the_rounds() {
    let rounds = |d: u32| {
        let mut s = GameBuilder::toy().exp(d).fault(Some(toy_fault())).build();
        assert_eq!(s.play_out(), Side::Challenger);
        let picks = s.view().transcript.iter().filter(|m| m.mv.kind() == MoveKind::Pick).count();
        let reveals = s.view().transcript.iter().filter(|m| m.mv.kind() == MoveKind::Reveal).count();
        (picks, reveals)
    };
    // Trees: trace 5 leaves (depth 3), chunks 8 (depth 3), states 2 (depth 1).
    assert_eq!(rounds(1), (7, 7));
    assert_eq!(rounds(2), (2 + 2 + 1, 5));
    assert_eq!(rounds(4), (3, 3));
}

#[test]
fn rule_events_and_transcript_describe_the_game() {
    let mut s = faulty();
    let mut events = Vec::new();
    for _ in 0..1000 {
        if s.view().resolution.is_some() {
            break;
        }
        let (side, mv) = s.agent_move().expect("agents");
        events.extend(s.play(side, mv, 1).expect("valid"));
    }
    let moves: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::MoveMade { seq, level, .. } => Some((*seq, *level)),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), s.view().transcript.len());
    assert!(moves.iter().enumerate().all(|(i, (seq, _))| *seq as usize == i));
    let levels: Vec<Level> = moves.iter().map(|m| m.1).collect();
    for l in [
        Level::Commit,
        Level::NodeDissection,
        Level::NodeReveal,
        Level::ElementDissection,
        Level::Element,
        Level::StatesCommit,
        Level::StepDissection,
        Level::OneStep,
    ] {
        assert!(levels.contains(&l), "{l:?} missing");
    }
    let resolved = events
        .iter()
        .find_map(|e| match e {
            Event::GameResolved { winner, pinpoint, payout, .. } => Some((*winner, pinpoint.clone(), *payout)),
            _ => None,
        })
        .expect("resolved");
    assert_eq!(resolved.0, Side::Challenger);
    assert_eq!(resolved.1.node, Some(2));
    assert_eq!(resolved.2, 200);
    assert!(events.iter().any(|e| matches!(e, Event::RecordVoided { batch: 1, index: 1, game: 1 })));
    let json = serde_json::to_string(&events).expect("events serialise for the explorer");
    assert!(json.contains("\"event\":\"game_resolved\""));
    let view_json = serde_json::to_string(&s.view()).expect("view serialises");
    assert!(view_json.contains("one_step"));
}

#[test]
fn rule_agents_stay_silent_out_of_turn() {
    let s = faulty();
    let v = s.view();
    assert_eq!(challenger_move(&v, &s.honest), Ok(None));
    assert!(defender_move(&v, &s.defender).expect("agent").is_some());
    // The honest challenger finds nothing to dispute in a correct record.
    let mut h = honest_game();
    play_until(&mut h, MoveKind::Pick);
    assert_eq!(challenger_move(&h.view(), &h.honest), Ok(None));
    assert!(
        verinfer_settlement::agent::record_is_wrong(&s.sealed.body.entries[1].record, &s.honest).expect("same program")
    );
    assert!(
        !verinfer_settlement::agent::record_is_wrong(&s.sealed.body.entries[0].record, &s.honest)
            .expect("same program")
    );
}
