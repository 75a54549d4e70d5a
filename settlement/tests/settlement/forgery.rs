//! Forged evidence a defender of a wrong record once got past the referee
//! (found by an audit of the game, 2026-11-24), each now refused: the liar
//! is left without an acceptable move, times out, and the honest challenger
//! voids the record. Every test first plays a control game (the same wrong
//! record, defended consistently) that the challenger wins.

use verinfer_prover::dispute::{Fault, OperandOpening, RootEvidence};
use verinfer_prover::program::{Node, Op, OutputInfo, PROGRAM_VERSION, Program, TensorInfo, ValueRef, ValueType};
use verinfer_prover::trace::{binding_leaf, node_leaf};
use verinfer_settlement::agent::{challenger_move, defender_move};
use verinfer_settlement::{GameView, Move, MoveKind, ResolutionReason, Side, TreeKind};
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::MerkleTree;
use verinfer_state::receipt::Status;
use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData, bind_tensor_root, tensor_list_leaf};

use crate::common::*;

/// Plays the honest challenger against `liar` (which answers `None` to fall
/// back to the consistent defender) until the liar's forged move is
/// refused; returns the refusal's text. Panics if the game ends first.
fn play_until_refused(s: &mut Setup, liar: &dyn Fn(&GameView) -> Option<Move>) -> String {
    for _ in 0..10_000 {
        let v = s.view();
        assert!(v.resolution.is_none(), "the game ended before the forgery: {:?}", v.resolution);
        let (side, mv, forged) = match v.to_move.expect("open game") {
            Side::Challenger => {
                (Side::Challenger, challenger_move(&v, &s.honest).expect("challenger agent").expect("a move"), false)
            }
            Side::Defender => match liar(&v) {
                Some(mv) => (Side::Defender, mv, true),
                None => {
                    (Side::Defender, defender_move(&v, &s.defender).expect("defender agent").expect("a move"), false)
                }
            },
        };
        match s.play(side, mv, 1) {
            Ok(_) => {}
            Err(e) if forged => return format!("{e:?}"),
            Err(e) => panic!("an honest or consistent move was refused: {e:?}"),
        }
    }
    panic!("no forgery attempted");
}

/// With the forgery refused, the liar has nothing acceptable left: it times
/// out, the challenger wins and the record is void.
fn liar_times_out_and_the_record_is_void(s: &mut Setup) {
    s.timeout();
    let r = s.resolution();
    assert_eq!(r.winner, Side::Challenger, "{r:?}");
    assert!(matches!(r.reason, ResolutionReason::Timeout { side: Side::Defender }), "{r:?}");
    assert_eq!(s.chain.st.record_status(s.batch, s.index, s.chain.now), Ok(Status::Fraudulent));
}

/// The toy program with an empty node (a zero-length slice of the input)
/// first; every other node shifts by one.
fn program_with_leading_empty_node() -> (Program, Vec<Tensor>) {
    let (toy, inputs) = toy_program();
    let mut nodes = vec![node("empty", Op::Slice { axis: 1, start: 3, end: 3 }, vec![ValueRef::Input(0)], &[8, 0])];
    for n in &toy.nodes {
        let mut n = n.clone();
        for r in &mut n.inputs {
            if let ValueRef::Node(j) = r {
                *j += 1;
            }
        }
        nodes.push(n);
    }
    let outputs = toy.outputs.iter().map(|o| OutputInfo { name: o.name.clone(), node: o.node + 1 }).collect();
    let p = Program { nodes, outputs, ..toy };
    p.validate().expect("program");
    (p, inputs)
}

/// An empty node's output has one correct root, and the game ends at it in
/// the defender's favour. A liar that committed another chunk-tree root for
/// the empty node (to steer the honest challenger's leftmost-difference
/// search there) used to win at it; the referee now requires the empty
/// tree's root in the reveal.
#[test]
fn forged_root_of_an_empty_node_is_refused() {
    let (p, inputs) = program_with_leading_empty_node();
    let fault = Some(Fault { node: 4, element: 0, step: 0, xor: 1 << 20 });
    assert_eq!(GameBuilder::new(p.clone(), inputs.clone()).fault(fault).build().play_out(), Side::Challenger);

    let mut s = GameBuilder::new(p.clone(), inputs).fault(fault).build();
    assert!(s.record_wrong);
    let d = s.defender.clone();
    let claim = d.claim().expect("test data");
    let fake_chunks_root = Hash32([0xAB; 32]);
    let fake_root = bind_tensor_root(DType::F32, &[8, 0], &fake_chunks_root);
    let mut leaves = vec![binding_leaf(&claim.program_root, &claim.input_root)];
    for i in 0..p.nodes.len() {
        let r = if i == 0 { fake_root } else { d.node_output(i as u32).expect("test data").root() };
        leaves.push(node_leaf(i as u64, &r));
    }
    let trace = MerkleTree::from_leaves(&leaves).expect("test data");
    let refused = play_until_refused(&mut s, &|v| match v.awaiting? {
        MoveKind::Commit => {
            let mut c = d.commit().expect("test data");
            c.trace_root = trace.root();
            c.binding_proof = trace.proof(0).expect("test data");
            for (o, (_, proof)) in p.outputs.iter().zip(c.outputs.iter_mut()) {
                *proof = trace.proof(1 + u64::from(o.node)).expect("test data");
            }
            Some(Move::Commit(c))
        }
        MoveKind::Reveal if v.cursor.as_ref()?.tree == TreeKind::Trace => {
            let c = v.cursor.as_ref()?;
            Some(Move::Reveal { nodes: trace.descendants(c.level, c.index, c.span).expect("test data") })
        }
        MoveKind::NodeReveal => {
            assert_eq!(v.node, Some(0), "the honest challenger is steered to the empty node");
            let mut r = d.node_reveal(0).expect("test data");
            r.output_root = fake_root;
            r.tensor.chunks_root = fake_chunks_root;
            Some(Move::NodeReveal(r))
        }
        _ => None,
    });
    assert!(refused.contains("empty output's chunk-tree root"), "{refused}");
    liar_times_out_and_the_record_is_void(&mut s);
}

/// An honest prover's empty tensors have the root the referee requires
/// (`rules::rule_empty_output_cannot_be_disputed` plays that game).
#[test]
fn honest_empty_tensors_have_the_required_chunk_root() {
    let empty = Tensor::new(vec![8, 0], TensorData::F32(vec![])).expect("test data");
    assert_eq!(empty.chunk_tree().root(), verinfer_state::tensor::chunks_root(&[]));
}

/// `y = Where(c, x, k)` with an all-false constant condition: `y == k`.
fn where_program() -> (Program, Vec<Tensor>) {
    let c = Tensor::new(vec![4], TensorData::Bool(vec![false; 4])).expect("test data");
    let k = Tensor::from_f32(vec![4], vec![10.0, 20.0, 30.0, 40.0]).expect("test data");
    let x = Tensor::from_f32(vec![4], vec![-1.5, -2.5, -3.5, -4.5]).expect("test data");
    let p = Program {
        version: PROGRAM_VERSION,
        inputs: vec![TensorInfo { name: "x".into(), dtype: DType::F32, shape: vec![4] }],
        outputs: vec![OutputInfo { name: "y".into(), node: 0 }],
        nodes: vec![Node {
            name: "where".into(),
            op: Op::Where,
            inputs: vec![ValueRef::Const(0), ValueRef::Input(0), ValueRef::Const(1)],
            output: ValueType { dtype: DType::F32, shape: vec![4] },
        }],
        constants: vec![c, k],
    };
    p.validate().expect("program");
    (p, vec![x])
}

/// An operand opening binds only the element's bytes; its scalar's high
/// bits used to go unchecked, and the folds read them (`as_bool` is
/// `bits != 0`). A liar opened the false condition as bits 0x100 (byte
/// 0x00), so the referee's Where picked `x` and confirmed the wrong output.
#[test]
fn non_canonical_operand_value_is_refused() {
    let (p, inputs) = where_program();
    let x = inputs[0].clone();
    let x0 = x.scalar(0).expect("test data");
    let k0 = p.constants[1].scalar(0).expect("test data");
    // The lie: y[0] = x[0] (-1.5) instead of k[0] (10).
    let fault = Some(Fault { node: 0, element: 0, step: 0, xor: x0.bits ^ k0.bits });
    assert_eq!(GameBuilder::new(p.clone(), inputs.clone()).fault(fault).build().play_out(), Side::Challenger);

    let mut s = GameBuilder::new(p, inputs).fault(fault).build();
    assert!(s.record_wrong);
    let d = s.defender.clone();
    let refused = play_until_refused(&mut s, &|v| {
        (v.awaiting? == MoveKind::OneStep).then(|| {
            let mut proof = d.one_step(0, 0, v.state_leaf.expect("test data")).expect("test data");
            assert_eq!(proof.operands[0].value, Scalar::from_bool(false));
            proof.operands[0].value.bits = 0x100;
            let list = MerkleTree::from_leaves(&[tensor_list_leaf(&x.root())]).expect("test data");
            proof.operands[1] = OperandOpening {
                slot: 1,
                index: 0,
                value: x0,
                opening: x.open_element(&x.chunk_tree(), 0).expect("test data"),
                root: RootEvidence::Input { root: x.root(), proof: list.proof(0).expect("test data") },
            };
            Move::OneStep(proof)
        })
    });
    assert!(refused.contains("chunk does not hold the claimed value"), "{refused}");
    liar_times_out_and_the_record_is_void(&mut s);
}
