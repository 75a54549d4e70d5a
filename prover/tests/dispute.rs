//! The dispute payloads and their checks, played end to end without the
//! settlement state machine: a minimal referee loop descends the three trees
//! and checks the one-step proof.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_prover::dispute::*;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::{self, MerkleTree, depth, level_width, node_from_descendants};
use verinfer_state::npy;
use verinfer_state::tensor::Tensor;

fn load(name: &str) -> (verinfer_prover::Program, Vec<Tensor>) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models").join(name);
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    let mut inputs = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("input_{i}.npy"));
        if !p.exists() {
            break;
        }
        inputs.push(npy::read_tensor(&std::fs::read(p).expect("read")).expect("npy"));
    }
    let opts = LoadOptions { positional_shapes: inputs.iter().map(|t| t.shape_u64()).collect(), ..Default::default() };
    (load_model(&bytes, &opts).expect("load").program, inputs)
}

/// Who picks at each dissection round.
#[derive(Clone, Copy)]
enum Picker {
    /// Leftmost child that differs from the honest view.
    Honest,
    /// Uniformly random child.
    Random,
}

/// Descends `theirs` (the defender's tree, known to the referee only through
/// reveals) from its root, checking every reveal; returns the pinned leaf.
fn descend(theirs: &MerkleTree, mine: &MerkleTree, d: u32, picker: Picker, rng: &mut ChaCha8Rng) -> (u64, Hash32, u32) {
    let n = theirs.leaf_count();
    let mut level = depth(n);
    let mut index = 0u64;
    let mut rounds = 0;
    let mut cursor: Option<Hash32> = None; // None: the bound root.
    while level > 0 {
        let step = d.min(level);
        let revealed = theirs.descendants(level, index, step).expect("reveal");
        let node = node_from_descendants(n, level, index, step, &revealed).expect("recompute");
        match cursor {
            None => assert_eq!(merkle::bind_root(n, &node), theirs.root(), "root reveal"),
            Some(c) => assert_eq!(node, c, "reveal does not hash to the cursor"),
        }
        let first = index << step;
        let pick = match picker {
            Picker::Honest => {
                let own = mine.descendants(level, index, step).expect("own");
                leftmost_difference(&own, &revealed).expect("an honest challenger always finds a difference")
            }
            Picker::Random => rng.gen_range(0..revealed.len()),
        };
        cursor = Some(revealed[pick]);
        index = first + pick as u64;
        level -= step;
        rounds += 1;
        assert!(index < level_width(n, level));
    }
    let leaf = cursor.unwrap_or_else(|| theirs.node(0, 0).expect("single leaf"));
    (index, leaf, rounds)
}

struct Outcome {
    node: u32,
    element: u64,
    step: u64,
    verdict: StepVerdict,
}

/// Plays a full game; `None` when the challenger pinned a verified leaf
/// (trace leaf 0, an empty tensor or micro-step 0) and so lost outright.
fn play(
    defender: &DisputeProver,
    challenger: &DisputeProver,
    claim: &Claim,
    picker: Picker,
    seed: u64,
) -> Option<Outcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = 4;
    let commit = defender.commit().expect("commit");
    let info = verify_commit(claim, &commit).expect("valid commit");
    let (leaf_idx, leaf, _) =
        descend(&defender.trace_tree().expect("t"), &challenger.trace_tree().expect("t"), d, picker, &mut rng);
    if leaf_idx == 0 {
        return None;
    }
    let k = (leaf_idx - 1) as u32;
    let reveal = defender.node_reveal(k).expect("reveal");
    let ctx = verify_node_reveal(claim, &info, leaf_idx, &leaf, &reveal).expect("valid node reveal");
    let (dc, mc) = (defender.chunk_tree(k).expect("c"), challenger.chunk_tree(k).expect("c"));
    if dc.leaf_count() == 0 {
        return None;
    }
    let (chunk, chunk_leaf, _) = descend(&dc, &mc, d, picker, &mut rng);
    let bytes = defender.chunk_bytes(k, chunk).expect("bytes");
    verify_chunk(&ctx, chunk, &chunk_leaf, &bytes).expect("valid chunk");
    let own = challenger.chunk_bytes(k, chunk).expect("own bytes");
    let sz = ctx.output.dtype.size();
    let offset = match picker {
        Picker::Honest => (0..bytes.len() / sz)
            .find(|&i| bytes[i * sz..(i + 1) * sz] != own[i * sz..(i + 1) * sz])
            .expect("differing element"),
        Picker::Random => rng.gen_range(0..bytes.len() / sz),
    };
    let (e, v) = element_in_chunk(&ctx, chunk, &bytes, offset as u64).expect("element");
    let sc = defender.states_commit(k, e).expect("states");
    let kk = verify_states_commit(&ctx, e, &v, &sc).expect("valid states commit");
    let (_, dtree) = defender.states(k, e).expect("states");
    let (_, mtree) = challenger.states(k, e).expect("states");
    let (j, sleaf, _) = descend(&dtree, &mtree, d, picker, &mut rng);
    if j == 0 {
        return None;
    }
    let proof = defender.one_step(k, e, j).expect("one step");
    let verdict =
        verify_one_step(claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &proof).expect("well-formed proof");
    let size = borsh::to_vec(&proof).expect("enc").len();
    assert!(size <= 4096, "one-step proof is {size} bytes");
    Some(Outcome { node: k, element: e, step: j - 1, verdict })
}

#[test]
fn honest_challenger_pins_the_injected_fault() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for name in ["mlp", "lenet5"] {
        let (program, inputs) = load(name);
        let honest = DisputeProver::new(program.clone(), inputs.clone(), None).expect("honest");
        let mut pinned = 0;
        for _ in 0..6 {
            let node = rng.gen_range(0..program.nodes.len()) as u32;
            let n_out = program.nodes[node as usize].output.numel();
            let element = rng.gen_range(0..n_out);
            let types = program.node_input_types(node as usize);
            let fold = verinfer_prover::ops::fold_for(
                &program.nodes[node as usize].op,
                &types,
                &program.nodes[node as usize].output,
            )
            .expect("fold");
            let step = rng.gen_range(0..fold.steps(element));
            let fault = Fault { node, element, step, xor: 1 << 20 };
            let liar = DisputeProver::new(program.clone(), inputs.clone(), Some(fault)).expect("liar");
            let claim = liar.claim().expect("claim");
            if claim == honest.claim().expect("claim") {
                continue; // The fault did not reach the outputs (e.g. masked by a ReLU).
            }
            let out =
                play(&liar, &honest, &claim, Picker::Honest, 1).expect("honest challenger never pins a verified leaf");
            assert_eq!((out.node, out.element, out.step), (node, element, step), "{name}: pinpoint");
            assert!(matches!(out.verdict, StepVerdict::Wrong { .. }), "{name}: the liar must lose");
            pinned += 1;
        }
        assert!(pinned > 0, "{name}: no fault reached the outputs");
    }
}

#[test]
fn honest_defender_survives_random_challengers() {
    let (program, inputs) = load("lenet5");
    let honest = DisputeProver::new(program, inputs, None).expect("honest");
    let claim = honest.claim().expect("claim");
    for seed in 0..12 {
        if let Some(out) = play(&honest, &honest, &claim, Picker::Random, seed) {
            assert_eq!(out.verdict, StepVerdict::Correct, "seed {seed}");
        }
    }
}

#[test]
fn tampered_payloads_are_rejected() {
    let (program, inputs) = load("mlp");
    let p = DisputeProver::new(program, inputs, None).expect("p");
    let claim = p.claim().expect("claim");
    let commit = p.commit().expect("commit");
    verify_commit(&claim, &commit).expect("valid");
    let mut c = commit.clone();
    c.trace_root.0[0] ^= 1;
    assert!(verify_commit(&claim, &c).is_err());
    let mut c = commit.clone();
    c.header.nodes += 1;
    assert!(verify_commit(&claim, &c).is_err());
    let mut c = commit.clone();
    c.outputs[0].0.0[5] ^= 1;
    assert!(verify_commit(&claim, &c).is_err());
    let mut wrong = claim;
    wrong.output_root.0[0] ^= 1;
    assert!(verify_commit(&wrong, &commit).is_err());

    let info = verify_commit(&claim, &commit).expect("valid");
    let tree = p.trace_tree().expect("trace");
    let k = 1u32;
    let leaf = tree.node(0, 1 + u64::from(k)).expect("leaf");
    let reveal = p.node_reveal(k).expect("reveal");
    let ctx = verify_node_reveal(&claim, &info, 1 + u64::from(k), &leaf, &reveal).expect("valid");
    let mut r = reveal.clone();
    r.tensor.shape.push(1);
    assert!(verify_node_reveal(&claim, &info, 1 + u64::from(k), &leaf, &r).is_err());
    let mut r = reveal.clone();
    r.descriptor.name.push('x');
    assert!(verify_node_reveal(&claim, &info, 1 + u64::from(k), &leaf, &r).is_err());
    assert!(verify_node_reveal(&claim, &info, 2 + u64::from(k), &leaf, &reveal).is_err());

    // One-step proof for the last step of element 0 of node 1 (an Add).
    let e = 0;
    let sc = p.states_commit(k, e).expect("sc");
    let v = p.node_output(k).expect("out").scalar(e).expect("v");
    let kk = verify_states_commit(&ctx, e, &v, &sc).expect("valid");
    let (_, stree) = p.states(k, e).expect("states");
    let j = kk;
    let sleaf = stree.node(0, j).expect("leaf");
    let proof = p.one_step(k, e, j).expect("proof");
    assert_eq!(
        verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &proof),
        Ok(StepVerdict::Correct)
    );
    // Any single altered field is rejected (or, for the claimed next state, changes the leaf).
    let mut q = proof.clone();
    q.operands[0].value.bits ^= 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof.clone();
    q.operands[0].index += 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof.clone();
    q.operands[0].opening.chunk[0] ^= 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof.clone();
    q.operands.pop();
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof.clone();
    q.s_prev.0[0] ^= 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof.clone();
    q.s_next.0[0] ^= 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
    let mut q = proof;
    q.s_prev_proof.leaf_count += 1;
    assert!(verify_one_step(&claim, &info, &ctx, e, &sc.states_root, kk, j, &sleaf, &q).is_err());
}
