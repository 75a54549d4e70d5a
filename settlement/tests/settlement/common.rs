//! Shared harness: keys, a toy program, corpus loading, a chain wrapper that
//! checks invariants on every transaction, and a game builder.

#![allow(dead_code)]

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use verinfer_prover::dispute::{DisputeProver, Fault};
use verinfer_prover::program::{
    BinaryOp, EinAxis, EinSumSpec, Node, Op, OutputInfo, PROGRAM_VERSION, Program, Reducer, TensorInfo, ValueRef,
    ValueType,
};
use verinfer_settlement::agent::{challenger_move, defender_move};
use verinfer_settlement::{
    AccountId, Event, GameView, Move, Params, ResolutionReason, Settlement, Side, SignedTx, Tx, TxError,
};
use verinfer_state::batch::{BodyEntry, GENESIS_PARENT, SealedBatch};
use verinfer_state::hash::{Domain, Hash32, hash};
use verinfer_state::npy;
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::{DType, Tensor};

/// Number of randomized cases: `VERINFER_FUZZ_CASES` or `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("VERINFER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A party: its signing key and account.
#[derive(Debug, Clone)]
pub struct Party {
    pub key: SigningKey,
    pub id: AccountId,
}

impl Party {
    pub fn new(seed: u8) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32]);
        Self { id: AccountId::of_key(&key.verifying_key()), key }
    }
}

/// A settlement state with a clock, checking invariants on every call.
#[derive(Debug)]
pub struct Chain {
    pub st: Settlement,
    pub now: u64,
}

impl Chain {
    pub fn new(params: Params) -> Self {
        Self { st: Settlement::new(params).expect("params"), now: 1_000 }
    }

    pub fn params(&self) -> Params {
        self.st.params().clone()
    }

    /// Moves time forward.
    pub fn wait(&mut self, ms: u64) {
        self.now += ms;
    }

    fn checked<T>(&mut self, f: impl FnOnce(&mut Settlement, u64) -> Result<T, TxError>) -> Result<T, TxError> {
        let before = self.st.to_bytes();
        let r = f(&mut self.st, self.now);
        if r.is_err() {
            assert!(before == self.st.to_bytes(), "a rejected transaction changed the state: {:?}", r.as_ref().err());
        }
        self.assert_invariants();
        r
    }

    pub fn assert_invariants(&self) {
        self.st.check_conservation().expect("conservation");
        self.st.check_voids().expect("voids");
    }

    pub fn apply(&mut self, sender: AccountId, tx: Tx) -> Result<Vec<Event>, TxError> {
        self.checked(|st, now| st.apply(now, sender, tx))
    }

    pub fn apply_signed(&mut self, stx: &SignedTx) -> Result<Vec<Event>, TxError> {
        self.checked(|st, now| st.apply_signed(now, stx))
    }

    pub fn deposit(&mut self, a: AccountId, amount: u64) {
        self.checked(|st, _| st.deposit(a, amount)).expect("deposit");
    }

    pub fn tick(&mut self) -> Vec<Event> {
        self.checked(|st, now| st.tick(now)).expect("tick")
    }

    pub fn view(&self, game: u64) -> GameView {
        self.st.game_view(game, self.now).expect("game")
    }

    pub fn free(&self, a: &AccountId) -> u64 {
        self.st.account(a).free
    }

    pub fn bond(&self, a: &AccountId) -> u64 {
        self.st.sequencer(a).map_or(0, |s| s.bond)
    }
}

// ---------------------------------------------------------------------------
// Programs.

fn f32_tensor(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    // Small deterministic values, exactly representable sums avoided on purpose.
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor::from_f32(shape.to_vec(), v).expect("tensor")
}

fn vt(shape: &[u64]) -> ValueType {
    ValueType { dtype: DType::F32, shape: shape.to_vec() }
}

pub fn node(name: &str, op: Op, inputs: Vec<ValueRef>, out: &[u64]) -> Node {
    Node { name: name.into(), op, inputs, output: vt(out) }
}

/// The toy program: `y = Σ_j ((x·W + b)²)_j` with two outputs.
///
/// ```text
/// n0 = EinSum(x[8,16], W[16,64])   [8,64]   8 chunks, K = 16
/// n1 = Add(n0, b[64])              [8,64]
/// n2 = Mul(n1, n1)                 [8,64]
/// n3 = Reduce<Sum>(n2, axis 1)     [8,1]    1 chunk, K = 64
/// outputs: n3, n1
/// ```
pub fn toy_program() -> (Program, Vec<Tensor>) {
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let spec = EinSumSpec {
        free: vec![ax(Some(0), None, Some(0), 8), ax(None, Some(1), Some(1), 64)],
        contracted: vec![ax(Some(1), Some(0), None, 16)],
    };
    let p = Program {
        version: PROGRAM_VERSION,
        inputs: vec![TensorInfo { name: "x".into(), dtype: DType::F32, shape: vec![8, 16] }],
        outputs: vec![OutputInfo { name: "y".into(), node: 3 }, OutputInfo { name: "h".into(), node: 1 }],
        nodes: vec![
            node("matmul", Op::EinSum(spec), vec![ValueRef::Input(0), ValueRef::Const(0)], &[8, 64]),
            node("bias", Op::Binary(BinaryOp::Add), vec![ValueRef::Node(0), ValueRef::Const(1)], &[8, 64]),
            node("square", Op::Binary(BinaryOp::Mul), vec![ValueRef::Node(1), ValueRef::Node(1)], &[8, 64]),
            node("sum", Op::Reduce { reducer: Reducer::Sum, axes: vec![1] }, vec![ValueRef::Node(2)], &[8, 1]),
        ],
        constants: vec![f32_tensor(&[16, 64], 7), f32_tensor(&[64], 11)],
    };
    p.validate().expect("toy program");
    (p, vec![f32_tensor(&[8, 16], 3)])
}

/// The toy program plus a node with an empty output (a zero-length slice)
/// feeding nothing, to exercise the empty-tensor rule.
pub fn toy_program_with_empty_node() -> (Program, Vec<Tensor>) {
    let (mut p, inputs) = toy_program();
    p.nodes.push(node("empty", Op::Slice { axis: 1, start: 3, end: 3 }, vec![ValueRef::Node(1)], &[8, 0]));
    p.validate().expect("program");
    (p, inputs)
}

/// A corpus model and its inputs.
pub fn load_model(name: &str) -> (Program, Vec<Tensor>) {
    use verinfer_prover::frontend::{LoadOptions, load_model};
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

/// A random fault of `program`: (node, element, step) uniformly among nodes,
/// then elements, then steps; `None` if the chosen node has no element or step.
pub fn random_fault(program: &Program, rng: &mut impl rand::Rng) -> Option<Fault> {
    let node = rng.gen_range(0..program.nodes.len());
    let n = &program.nodes[node];
    let numel = n.output.numel();
    if numel == 0 {
        return None;
    }
    let element = rng.gen_range(0..numel);
    let types = program.node_input_types(node);
    let fold = verinfer_prover::ops::fold_for(&n.op, &types, &n.output).expect("fold");
    let k = fold.steps(element);
    if k == 0 {
        return None;
    }
    let step = rng.gen_range(0..k);
    let xor = 1u64 << rng.gen_range(0..31);
    Some(Fault { node: node as u32, element, step, xor })
}

// ---------------------------------------------------------------------------
// Games.

/// A dispute set up on a posted batch, with both provers.
#[derive(Debug)]
pub struct Setup {
    pub chain: Chain,
    pub sequencer: Party,
    pub challenger: Party,
    pub batch: u64,
    pub index: u64,
    pub game: u64,
    /// The defender's prover (faulty when the record is).
    pub defender: Arc<DisputeProver>,
    /// The challenger's honest prover.
    pub honest: Arc<DisputeProver>,
    pub sealed: SealedBatch,
    /// Whether the disputed record differs from the honest result.
    pub record_wrong: bool,
}

/// Builds a chain with a bonded sequencer, a posted batch of `records`
/// records (all of the same program and inputs, distinct sequences; the one
/// at `index` computed by the defender's prover, the others honest), and a
/// dispute opened on record `index`.
#[derive(Debug, Clone)]
pub struct GameBuilder {
    pub program: Program,
    pub inputs: Vec<Tensor>,
    pub fault: Option<Fault>,
    pub params: Params,
    pub records: u64,
    pub index: u64,
    pub open: bool,
}

impl GameBuilder {
    pub fn toy() -> Self {
        let (program, inputs) = toy_program();
        Self::new(program, inputs)
    }

    pub fn new(program: Program, inputs: Vec<Tensor>) -> Self {
        Self { program, inputs, fault: None, params: Params::dev(), records: 3, index: 1, open: true }
    }

    pub fn fault(mut self, f: Option<Fault>) -> Self {
        self.fault = f;
        self
    }

    pub fn exp(mut self, d: u32) -> Self {
        self.params.dissection_exp = d;
        self
    }

    pub fn params(mut self, p: Params) -> Self {
        self.params = p;
        self
    }

    pub fn no_dispute(mut self) -> Self {
        self.open = false;
        self
    }

    pub fn build(self) -> Setup {
        let honest = DisputeProver::new(self.program.clone(), self.inputs.clone(), None).expect("honest prover");
        let defender =
            DisputeProver::new(self.program.clone(), self.inputs.clone(), self.fault).expect("defender prover");
        self.build_with(Arc::new(defender), Arc::new(honest))
    }

    /// With given provers (shared across games so their caches are reused).
    pub fn build_with(self, defender: Arc<DisputeProver>, honest: Arc<DisputeProver>) -> Setup {
        let mut chain = Chain::new(self.params.clone());
        let sequencer = Party::new(1);
        let challenger = Party::new(2);
        chain.deposit(sequencer.id, 10 * self.params.min_sequencer_bond);
        chain.deposit(challenger.id, 10 * self.params.challenger_bond.max(1));
        chain.apply(sequencer.id, Tx::BondSequencer { amount: 2 * self.params.min_sequencer_bond }).expect("bond");
        let claim = defender.claim().expect("claim");
        let honest_claim = honest.claim().expect("honest claim");
        let model_id = hash(Domain::ModelBytes, b"model");
        let entries: Vec<BodyEntry> = (0..self.records)
            .map(|i| {
                let c = if i == self.index { claim } else { honest_claim };
                BodyEntry {
                    record: InferenceRecord::from_roots(
                        model_id,
                        c.program_root,
                        c.input_root,
                        c.output_root,
                        10 + i,
                        500 + i,
                    ),
                    inputs: self.inputs.clone(),
                }
            })
            .collect();
        let sealed = SealedBatch::build(1, GENESIS_PARENT, 900, sequencer.id.as_hash(), entries).expect("batch");
        chain
            .apply(sequencer.id, Tx::PostBatch { header: sealed.header, body: sealed.body.clone() })
            .expect("post batch");
        let mut game = 0;
        if self.open {
            chain.wait(10);
            let events = chain.apply(challenger.id, open_tx(&sealed, self.index)).expect("open dispute");
            game = match events[0] {
                Event::DisputeOpened { game, .. } => game,
                ref e => panic!("unexpected event {e:?}"),
            };
        }
        Setup {
            chain,
            sequencer,
            challenger,
            batch: 1,
            index: self.index,
            game,
            defender,
            honest,
            sealed,
            record_wrong: claim.output_root != honest_claim.output_root,
        }
    }
}

/// The dispute transaction on record `index` of `sealed`.
pub fn open_tx(sealed: &SealedBatch, index: u64) -> Tx {
    Tx::OpenDispute {
        batch: sealed.header.number,
        index,
        record: sealed.body.entries[index as usize].record,
        proof: sealed.proof(index).expect("proof"),
    }
}

impl Setup {
    pub fn view(&self) -> GameView {
        self.chain.view(self.game)
    }

    pub fn id_of(&self, side: Side) -> AccountId {
        match side {
            Side::Defender => self.sequencer.id,
            Side::Challenger => self.challenger.id,
        }
    }

    /// Plays `mv` for `side` as the next move, `ms` after now.
    pub fn play(&mut self, side: Side, mv: Move, ms: u64) -> Result<Vec<Event>, TxError> {
        self.chain.wait(ms);
        let tx = self.view().tx(mv);
        self.chain.apply(self.id_of(side), tx)
    }

    /// The honest/defender agents' next move for whoever is to move.
    pub fn agent_move(&self) -> Option<(Side, Move)> {
        let v = self.view();
        match v.to_move? {
            Side::Defender => defender_move(&v, &self.defender).expect("defender agent").map(|m| (Side::Defender, m)),
            Side::Challenger => {
                challenger_move(&v, &self.honest).expect("challenger agent").map(|m| (Side::Challenger, m))
            }
        }
    }

    /// Plays both agents until the game ends or an agent goes silent (then
    /// claims the timeout). Returns the winner.
    pub fn play_out(&mut self) -> Side {
        for _ in 0..10_000 {
            if let Some(r) = &self.view().resolution {
                return r.winner;
            }
            match self.agent_move() {
                Some((side, mv)) => {
                    self.play(side, mv, 1).expect("agent move accepted");
                }
                None => self.timeout(),
            }
        }
        panic!("game did not end");
    }

    /// Waits out the mover's clock and claims the timeout.
    pub fn timeout(&mut self) {
        let deadline = self.view().clocks.deadline_ms.expect("open game");
        self.chain.now = self.chain.now.max(deadline);
        let anyone = Party::new(99).id;
        self.chain.apply(anyone, Tx::ClaimTimeout { game: self.game }).expect("timeout");
    }

    pub fn resolution(&self) -> verinfer_settlement::Resolution {
        self.view().resolution.expect("resolved")
    }

    pub fn reason(&self) -> ResolutionReason {
        self.resolution().reason
    }
}

/// A deterministic key → hash helper for tests that need some hash.
pub fn h(tag: &[u8]) -> Hash32 {
    hash(Domain::ModelBytes, tag)
}
