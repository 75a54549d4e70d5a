//! The pure solver against synthetic views: no node, no network.

use super::*;
use verinfer_prover::dispute::Fault;
use verinfer_prover::frontend::LoadOptions;
use verinfer_prover::game::tx::{Move, MoveKind};
use verinfer_prover::game::view::{Clocks, CursorView, Level, Pinpoint, Resolution, TreeKind};
use verinfer_prover::{Program, load_model};
use verinfer_state::merkle::depth;
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::Tensor;

fn mlp() -> (Program, Vec<Tensor>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/mlp");
    let onnx = std::fs::read(dir.join("model.onnx")).expect("fixture");
    let input =
        verinfer_state::npy::read_tensor(&std::fs::read(dir.join("input_0.npy")).expect("fixture")).expect("npy");
    let m = load_model(&onnx, &LoadOptions { name: "mlp".into(), ..Default::default() }).expect("loads");
    (m.program, vec![input])
}

fn record(p: &DisputeProver) -> InferenceRecord {
    let c = p.claim().expect("claim");
    InferenceRecord::from_roots(Hash32([1; 32]), c.program_root, c.input_root, c.output_root, 0, 0)
}

/// A view of game 7 at the root of node dissection, awaiting `kind`.
fn view(rec: InferenceRecord, to_move: Option<Side>, awaiting: Option<MoveKind>) -> GameView {
    GameView {
        id: 7,
        batch: 3,
        index: 1,
        record: rec,
        challenger: Default::default(),
        defender: Default::default(),
        challenger_bond: 100,
        defender_stake: 100,
        dissection_exp: 4,
        opened_at_ms: 0,
        level: Level::NodeDissection,
        to_move,
        awaiting,
        moves: 5,
        clocks: Clocks { defender_left_ms: 1000, challenger_left_ms: 1000, deadline_ms: Some(1000) },
        cursor: None,
        node: None,
        output_dtype: None,
        chunk: None,
        chunk_bytes: None,
        element: None,
        k_steps: None,
        state_leaf: None,
        transcript: vec![],
        resolution: None,
    }
}

/// A pick view where the defender revealed `revealer`'s trace below the root.
fn pick_view(rec: InferenceRecord, revealer: &DisputeProver) -> GameView {
    let tree = revealer.trace_tree().expect("trace");
    let leaves = tree.leaf_count();
    let level = depth(leaves);
    let span = level.min(4);
    let revealed = tree.descendants(level, 0, span).expect("descendants");
    let mut v = view(rec, Some(Side::Challenger), Some(MoveKind::Pick));
    v.cursor = Some(CursorView {
        tree: TreeKind::Trace,
        leaf_count: leaves,
        level,
        index: 0,
        span,
        first_child: 0,
        revealed: Some(revealed),
    });
    v
}

#[test]
fn a_lying_reveal_is_answered_with_the_leftmost_differing_child() {
    let (program, inputs) = mlp();
    let honest = DisputeProver::new(program.clone(), inputs.clone(), None).expect("honest");
    let fault = Fault { node: 2, element: 0, step: 0, xor: 1 };
    let liar = DisputeProver::new(program, inputs, Some(fault)).expect("liar");
    let rec = record(&liar);
    let v = pick_view(rec, &liar);
    let revealed = v.cursor.as_ref().and_then(|c| c.revealed.clone()).expect("revealed");
    let own = honest
        .trace_tree()
        .expect("t")
        .descendants(v.cursor.as_ref().expect("c").level, 0, v.cursor.as_ref().expect("c").span)
        .expect("d");
    let expected = verinfer_prover::dispute::leftmost_difference(&own, &revealed).expect("differs") as u32;
    match solve_game(&v, &honest).expect("solves") {
        GameAction::Send(tx) => match *tx {
            Tx::Move { game: 7, seq: 5, mv: Move::Pick { child } } => assert_eq!(child, expected),
            t => panic!("expected a pick, got {t:?}"),
        },
        a => panic!("expected a pick, got {a:?}"),
    }
    // Against a truthful reveal the honest challenger finds nothing: silent.
    let v = pick_view(rec, &honest);
    assert_eq!(solve_game(&v, &honest).expect("solves"), GameAction::Silent);
}

#[test]
fn the_defender_turn_waits_then_claims_the_timeout() {
    let (program, inputs) = mlp();
    let honest = DisputeProver::new(program, inputs, None).expect("honest");
    let rec = record(&honest);
    let mut v = view(rec, Some(Side::Defender), Some(MoveKind::Reveal));
    assert_eq!(solve_game(&v, &honest).expect("solves"), GameAction::Wait { defender_left_ms: 1000 });
    v.clocks.defender_left_ms = 0;
    assert_eq!(solve_game(&v, &honest).expect("solves"), GameAction::Send(Box::new(Tx::ClaimTimeout { game: 7 })));
}

#[test]
fn a_resolved_game_reports_its_outcome() {
    let (program, inputs) = mlp();
    let honest = DisputeProver::new(program, inputs, None).expect("honest");
    let rec = record(&honest);
    for (winner, outcome) in [(Side::Challenger, Outcome::Won), (Side::Defender, Outcome::Lost)] {
        let mut v = view(rec, None, None);
        let reason = ResolutionReason::Timeout { side: winner.other() };
        v.resolution = Some(Resolution { winner, reason, at_ms: 5, pinpoint: Pinpoint::default() });
        assert_eq!(solve_game(&v, &honest).expect("solves"), GameAction::Finished { outcome, reason });
    }
}

fn rec_with_output(out: Hash32) -> InferenceRecord {
    InferenceRecord::from_roots(Hash32([1; 32]), Hash32([2; 32]), Hash32([3; 32]), out, 0, 0)
}

#[test]
fn records_are_disputed_exactly_when_wrong_and_in_the_window() {
    let good = Hash32([5; 32]);
    let bad = Hash32([6; 32]);
    let rec = rec_with_output(good);
    let f =
        |recomputed, now_ms, forced| RecordFacts { record: &rec, recomputed, now_ms, window_end_ms: Some(100), forced };
    assert_eq!(judge_record(&f(Some(Ok(good)), 50, false)), RecordAction::Settle(Verdict::Correct));
    assert_eq!(judge_record(&f(Some(Ok(bad)), 50, false)), RecordAction::Dispute { ours: bad });
    // At the window's end the referee refuses the open: nothing to do.
    assert_eq!(judge_record(&f(Some(Ok(bad)), 100, false)), RecordAction::Settle(Verdict::WindowClosed));
    assert_eq!(judge_record(&f(None, 50, false)), RecordAction::Settle(Verdict::NotSampled));
    assert_eq!(
        judge_record(&f(Some(Err("boom".into())), 50, false)),
        RecordAction::Settle(Verdict::Unverifiable { reason: "boom".into() })
    );
    // A forced drill disputes even a correct record.
    assert_eq!(judge_record(&f(Some(Ok(good)), 50, true)), RecordAction::Dispute { ours: good });
    // Unknown window (the referee's batch not readable): try; the referee decides.
    let g =
        RecordFacts { record: &rec, recomputed: Some(Ok(bad)), now_ms: u64::MAX, window_end_ms: None, forced: false };
    assert_eq!(judge_record(&g), RecordAction::Dispute { ours: bad });
}

#[test]
fn sampling_is_keyed_deterministic_and_close_to_its_rate() {
    let ids: Vec<Hash32> = (0..4000u32)
        .map(|i| verinfer_state::hash::hash(verinfer_state::hash::Domain::Record, &i.to_le_bytes()))
        .collect();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert!(ids.iter().all(|id| sampled(&a, id, 1.0)));
    assert!(ids.iter().all(|id| !sampled(&a, id, 0.0)));
    let n = ids.iter().filter(|id| sampled(&a, id, 0.25)).count();
    assert!((850..1150).contains(&n), "{n} of 4000 at rate 0.25");
    // Deterministic per key, different across keys.
    assert_eq!(ids.iter().filter(|id| sampled(&a, id, 0.25)).count(), n);
    let same = ids.iter().filter(|id| sampled(&a, id, 0.25) == sampled(&b, id, 0.25)).count();
    assert!(same < 3500, "two keys sample nearly the same records ({same})");
}

#[test]
fn catch_up_ranges_cover_the_gap_in_bounded_calls() {
    let r = |a, b, m| catch_up_ranges(a, b, m).collect::<Vec<_>>();
    assert_eq!(r(5, 4, 1000), vec![]);
    assert_eq!(r(1, 1, 1000), vec![(1, 1)]);
    assert_eq!(r(1, 2500, 1000), vec![(1, 1000), (1001, 2000), (2001, 2500)]);
    assert_eq!(r(u64::MAX - 1, u64::MAX, 1000), vec![(u64::MAX - 1, u64::MAX)]);
    // A node claiming a head of u64::MAX: lazy, nothing is materialised.
    let mut it = catch_up_ranges(1, u64::MAX, 1000);
    assert_eq!(it.next(), Some((1, 1000)));
    assert_eq!(it.next(), Some((1001, 2000)));
}

#[test]
fn the_watermark_moves_only_over_contiguous_batches() {
    let mut p = Progress::new(4);
    assert_eq!(p.done(6), None);
    assert_eq!(p.done(3), None);
    assert_eq!(p.done(5), Some(6));
    assert_eq!(p.done(7), Some(7));
    assert_eq!(p.watermark, 7);
}

#[test]
fn bonds_and_budgets() {
    assert!(can_afford(100, 100, 0, 0).is_ok());
    assert!(can_afford(99, 100, 0, 0).is_err());
    assert!(can_afford(1000, 100, 200, 300).is_ok());
    assert!(can_afford(1000, 100, 300, 300).is_err());
}

/// The start-up and retry messages advise only what can help: a deposit
/// when the balance is short, a larger --bond only when a budget binds.
#[test]
fn shortfall_advice_names_the_limit_that_binds() {
    let msg = |free, locked, budget| can_afford(free, 100, locked, budget).expect_err("short").to_string();
    // No budget (--bond 0), empty account: deposit; --bond is no help.
    let m = msg(0, 0, 0);
    assert_eq!(m, "balance 0 cannot cover a dispute bond of 100; deposit funds (on a dev node: `--dev-faucet`)");
    // Enough funds, the budget binds: raise --bond, no deposit advice.
    let m = msg(1_000, 200, 250);
    assert!(m.contains("over the --bond budget 250 (200 already locked in open games); raise --bond"), "{m}");
    assert!(!m.contains("deposit"), "{m}");
    assert_eq!(msg(1_000, 0, 50), "a dispute bond of 100 is over the --bond budget 50; raise --bond (0: no cap)");
    // Both: both.
    let m = msg(10, 0, 50);
    assert!(m.contains("deposit funds") && m.contains("raise --bond"), "{m}");
}

#[test]
fn a_batch_is_disputable_until_settled_or_its_window_closes() {
    let open = BatchFacts { settled: false, window_open: Some(true), window_end_ms: Some(100), now_ms: 50 };
    assert!(disputable(&open));
    assert!(!disputable(&BatchFacts { settled: true, ..open }));
    assert!(!disputable(&BatchFacts { window_open: Some(false), ..open }));
    // At the window's end the referee refuses a dispute.
    assert!(!disputable(&BatchFacts { now_ms: 100, ..open }));
    // Unknown window (an older node): open unless our clock says otherwise.
    assert!(disputable(&BatchFacts { window_open: None, window_end_ms: None, ..open }));
    assert!(!disputable(&BatchFacts { window_open: None, now_ms: 150, ..open }));
}

/// Data not served is fetched again for as long as the window is open —
/// no attempt limit, so withholding it cannot outlast the bot — and the
/// last attempt falls at the window's end.
#[test]
fn withheld_data_is_fetched_again_until_the_window_closes() {
    let delays: Vec<FetchRetry> = (1..=5).map(|a| fetch_retry(a, 100, 1_000, 0, Some(1_000_000))).collect();
    let want: Vec<FetchRetry> =
        [100, 200, 400, 800, 1_000].iter().map(|&d| FetchRetry::RetryIn { delay_ms: d }).collect();
    assert_eq!(delays, want);
    assert_eq!(fetch_retry(10_000, 100, 1_000, 0, Some(1_000_000)), FetchRetry::RetryIn { delay_ms: 1_000 });
    // Cut short to fall at the window's end, then final.
    assert_eq!(fetch_retry(5, 100, 1_000, 999_700, Some(1_000_000)), FetchRetry::RetryIn { delay_ms: 300 });
    assert_eq!(fetch_retry(1, 100, 1_000, 1_000_000, Some(1_000_000)), FetchRetry::WindowClosed);
    assert_eq!(fetch_retry(1, 100, 1_000, 2_000_000, Some(1_000_000)), FetchRetry::WindowClosed);
    // Unknown window: keep trying at the longest delay.
    assert_eq!(fetch_retry(50, 100, 1_000, u64::MAX, None), FetchRetry::RetryIn { delay_ms: 1_000 });
}

const POLICY: RetryPolicy = RetryPolicy { max_attempts: 5, min_ms: 250, max_ms: 4_000 };

#[test]
fn failed_disputes_back_off_exponentially_within_bounds() {
    let f = DisputeFailure::SendFailed;
    let delays: Vec<RetryDecision> = (1..=4).map(|a| dispute_retry(&POLICY, a, &f, 0, None)).collect();
    let want: Vec<RetryDecision> =
        [250, 500, 1000, 2000].iter().map(|&d| RetryDecision::RetryIn { delay_ms: d }).collect();
    assert_eq!(delays, want);
    // Capped at max_ms, and bounded in attempts.
    let long = RetryPolicy { max_attempts: 100, ..POLICY };
    assert_eq!(dispute_retry(&long, 40, &f, 0, None), RetryDecision::RetryIn { delay_ms: 4_000 });
    assert!(matches!(dispute_retry(&POLICY, 5, &f, 0, None), RetryDecision::GiveUp(_)));
    // Not affording the bond, or no free game place, is retried the same
    // way (a game may end).
    for f in [DisputeFailure::Unaffordable, DisputeFailure::AtCapacity] {
        assert_eq!(dispute_retry(&POLICY, 1, &f, 0, None), RetryDecision::RetryIn { delay_ms: 250 }, "{f:?}");
    }
}

#[test]
fn dispute_retries_never_outlive_the_window() {
    let f = DisputeFailure::Unaffordable;
    // Plenty of time: the plain backoff.
    assert_eq!(dispute_retry(&POLICY, 3, &f, 1_000, Some(100_000)), RetryDecision::RetryIn { delay_ms: 1_000 });
    // The window closes before the backoff: pulled in to half the time left.
    assert_eq!(dispute_retry(&POLICY, 3, &f, 1_000, Some(1_600)), RetryDecision::RetryIn { delay_ms: 300 });
    // Too little left, or already closed: give up.
    assert!(matches!(dispute_retry(&POLICY, 1, &f, 1_000, Some(1_200)), RetryDecision::GiveUp(_)));
    assert!(matches!(dispute_retry(&POLICY, 1, &f, 5_000, Some(1_000)), RetryDecision::GiveUp(_)));
}

#[test]
fn referee_rejections_are_final_except_momentary_ones() {
    let final_ = DisputeFailure::Rejected("record 1 of batch 3 is already void".into());
    assert!(matches!(dispute_retry(&POLICY, 1, &final_, 0, None), RetryDecision::GiveUp(_)));
    let nonce = DisputeFailure::Rejected("nonce 3, expected 4".into());
    assert_eq!(dispute_retry(&POLICY, 1, &nonce, 0, None), RetryDecision::RetryIn { delay_ms: 250 });
    // The node announces a sealed batch before its post reaches the referee:
    // a dispute that arrives first is retried, not dropped for good.
    let early = DisputeFailure::Rejected("no batch 7".into());
    assert_eq!(dispute_retry(&POLICY, 1, &early, 0, Some(100_000)), RetryDecision::RetryIn { delay_ms: 250 });
    let poor = DisputeFailure::Rejected("AccountId(0x01…) has 50, needs 100".into());
    assert_eq!(dispute_retry(&POLICY, 2, &poor, 0, None), RetryDecision::RetryIn { delay_ms: 500 });
    for r in
        ["challenge window of batch 3 closed at 9 ms", "a sequencer cannot dispute its own batch", "batch 3 is settled"]
    {
        assert!(
            matches!(dispute_retry(&POLICY, 1, &DisputeFailure::Rejected(r.into()), 0, None), RetryDecision::GiveUp(_)),
            "{r}"
        );
    }
}

#[test]
fn events_name_their_game_and_players_wake_on_time() {
    let wrapped = serde_json::json!({"at_ms": 5, "event": {"event": "move_made", "game": 4, "seq": 2}});
    assert_eq!(event_game(&wrapped), Some(4));
    assert_eq!(event_game(&serde_json::json!({"event": "game_resolved", "game": 9})), Some(9));
    assert_eq!(event_game(&serde_json::json!({"at_ms": 5, "event": {"event": "batch_posted", "number": 3}})), None);
    assert_eq!(event_game(&serde_json::json!("junk")), None);
    assert_eq!(event_game(&serde_json::json!({"event": {"event": "move_made", "game": "x"}})), None);
    // The defender's clock bounds the wait (to claim its timeout on time);
    // otherwise the fallback poll.
    assert_eq!(wake_after(&GameAction::Wait { defender_left_ms: 300 }, 2_000), 300);
    assert_eq!(wake_after(&GameAction::Wait { defender_left_ms: 0 }, 2_000), 1);
    assert_eq!(wake_after(&GameAction::Wait { defender_left_ms: 60_000 }, 2_000), 2_000);
    assert_eq!(wake_after(&GameAction::Silent, 2_000), 2_000);
}
