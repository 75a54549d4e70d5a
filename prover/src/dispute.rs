//! The prover's side of the dispute game: what the defender reveals at each
//! level, and the referee's checks of it (`docs/dispute-game.md`).
//!
//! ## Design
//! * The move payloads ([`TraceCommit`], [`NodeReveal`], [`StatesCommit`],
//!   [`OneStep`], …) are plain borsh/serde data.
//! * Verification is a set of pure functions (`verify_*`) that the settlement
//!   state machine calls; they only need roots already agreed in the game,
//!   never the program or the tensors.
//! * [`DisputeProver`] builds every payload for one record from the program
//!   and the request inputs, computing the trace lazily and caching it; an
//!   honest challenger uses the same type to compute its own view and pick
//!   the leftmost differing child ([`leftmost_difference`]).
//! * A [`Fault`] makes a prover lie consistently (dev fault injection and
//!   soundness tests): one fold state of one element of one node is
//!   corrupted, and everything downstream is computed from the corruption.
//!
//! ## Invariants
//! * Every check binds the level below to the level above with a Merkle path
//!   or a preimage; nothing the defender sends is trusted unverified.
//! * A step's operands are served to `fold.step` in read order and each is
//!   checked against its tensor root, which is checked against the trace
//!   (earlier node), the program (constant) or the record (request input).

use std::collections::HashMap;
use std::sync::Mutex;

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::hash::{Domain, DomainHasher, Hash32, hash_parts};
use verinfer_state::merkle::{self, MerkleError, MerkleProof, MerkleTree, root_from_proof};
use verinfer_state::tensor::{
    CHUNK_BYTES, DType, ElementOpening, Scalar, Tensor, TensorData, bind_tensor_root, checked_numel, chunk_leaf,
    tensor_list_leaf, tensor_list_root, verify_element,
};

use crate::error::ProverError;
use crate::exec::check_inputs;
use crate::ops::{self, ElementFold, FoldState, OperandReader, TensorReader};
pub use crate::program::ProgramHeader;
use crate::program::{Node, Program, ValueRef, ValueType};
use crate::trace::{binding_leaf, node_leaf};

/// Why a dispute payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DisputeError {
    /// A Merkle path did not verify.
    #[error("{what}: {source}")]
    Merkle {
        /// What was being proven.
        what: &'static str,
        /// The failure.
        source: MerkleError,
    },
    /// A recomputed root or hash differs from the committed one.
    #[error("{0} does not match its commitment")]
    Mismatch(&'static str),
    /// A proof is for the wrong position or tree size.
    #[error("{what}: expected index {expected_index} of {expected_count}, got index {index} of {count}")]
    WrongPosition {
        /// What was being proven.
        what: &'static str,
        /// Index expected.
        expected_index: u64,
        /// Leaf count expected.
        expected_count: u64,
        /// Index given.
        index: u64,
        /// Leaf count given.
        count: u64,
    },
    /// The payload is malformed (wrong counts, types, lengths).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The node's op cannot be evaluated on these types.
    #[error("node semantics: {0}")]
    Semantics(String),
    /// An operand read by the step was missing, extra, or not the one read.
    #[error("operand: {0}")]
    Operand(String),
}

fn merkle_err(what: &'static str) -> impl Fn(MerkleError) -> DisputeError {
    move |source| DisputeError::Merkle { what, source }
}

fn check_pos(what: &'static str, p: &MerkleProof, index: u64, count: u64) -> Result<(), DisputeError> {
    if p.index != index || p.leaf_count != count {
        return Err(DisputeError::WrongPosition {
            what,
            expected_index: index,
            expected_count: count,
            index: p.index,
            count: p.leaf_count,
        });
    }
    Ok(())
}

/// `H(Program || bound_root)`: the program root from its tree's bound root.
pub fn program_root_of(bound: &Hash32) -> Hash32 {
    hash_parts(Domain::Program, &[&bound.0])
}

/// `H(Trace || bound_root)`: the displayed trace root.
pub fn trace_root_of(bound: &Hash32) -> Hash32 {
    hash_parts(Domain::Trace, &[&bound.0])
}

/// The leaf of fold state `t` in an element's micro-step tree.
pub fn state_leaf(t: u64, s: &FoldState) -> Hash32 {
    let mut h = DomainHasher::new(Domain::FoldState);
    h.u64(t).u64(s.0[0]).u64(s.0[1]);
    h.finish()
}

/// The record fields a game is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// Program root.
    pub program_root: Hash32,
    /// Inputs' list root.
    pub input_root: Hash32,
    /// Outputs' list root.
    pub output_root: Hash32,
}

/// Dtype, shape and chunk-tree root: the preimage of a tensor root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct TensorPreimage {
    /// Dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Bound root of the chunk tree.
    pub chunks_root: Hash32,
}

impl TensorPreimage {
    /// The tensor root.
    pub fn root(&self) -> Hash32 {
        bind_tensor_root(self.dtype, &self.shape, &self.chunks_root)
    }
    /// Number of chunks.
    pub fn chunks(&self) -> Result<u64, DisputeError> {
        let n = checked_numel(&self.shape).map_err(|e| DisputeError::Malformed(e.to_string()))?;
        Ok((n * self.dtype.size() as u64).div_ceil(CHUNK_BYTES as u64))
    }
    /// Of a tensor.
    pub fn of(t: &Tensor) -> Self {
        Self { dtype: t.dtype(), shape: t.shape_u64(), chunks_root: t.chunk_tree().root() }
    }
}

// ---------------------------------------------------------------------------
// Level 2: the commit.

/// The defender's first move.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct TraceCommit {
    /// Bound root of the trace tree.
    pub trace_root: Hash32,
    /// Program leaf 0.
    pub header: ProgramHeader,
    /// Its proof against the program root.
    pub header_proof: MerkleProof,
    /// Proof of trace leaf 0 (the binding).
    pub binding_proof: MerkleProof,
    /// Per program output: its tensor root and the proof of its trace leaf.
    pub outputs: Vec<(Hash32, MerkleProof)>,
}

/// What the referee keeps after a valid commit.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct CommitInfo {
    /// The verified header.
    pub header: ProgramHeader,
    /// Bound trace root.
    pub trace_root: Hash32,
    /// Trace leaf count.
    pub trace_leaves: u64,
}

/// Checks the defender's commit against the record.
pub fn verify_commit(claim: &Claim, c: &TraceCommit) -> Result<CommitInfo, DisputeError> {
    let h = &c.header;
    if h.nodes > u64::from(u32::MAX) || h.constants > u64::from(u32::MAX) {
        return Err(DisputeError::Malformed("absurd program size".into()));
    }
    check_pos("program header", &c.header_proof, 0, h.program_leaves())?;
    let bound = root_from_proof(0, &h.leaf(), &c.header_proof).map_err(merkle_err("program header"))?;
    if program_root_of(&bound) != claim.program_root {
        return Err(DisputeError::Mismatch("program header"));
    }
    let n = h.trace_leaves();
    check_pos("trace binding", &c.binding_proof, 0, n)?;
    merkle::verify(&c.trace_root, &binding_leaf(&claim.program_root, &claim.input_root), &c.binding_proof)
        .map_err(merkle_err("trace binding"))?;
    if c.outputs.len() != h.outputs.len() {
        return Err(DisputeError::Malformed(format!(
            "{} output roots for {} outputs",
            c.outputs.len(),
            h.outputs.len()
        )));
    }
    for (o, (root, proof)) in h.outputs.iter().zip(&c.outputs) {
        if u64::from(o.node) >= h.nodes {
            return Err(DisputeError::Malformed("output node out of range".into()));
        }
        check_pos("output leaf", proof, 1 + u64::from(o.node), n)?;
        merkle::verify(&c.trace_root, &node_leaf(u64::from(o.node), root), proof).map_err(merkle_err("output leaf"))?;
    }
    let roots: Vec<Hash32> = c.outputs.iter().map(|(r, _)| *r).collect();
    if tensor_list_root(&roots) != claim.output_root {
        return Err(DisputeError::Mismatch("output root"));
    }
    Ok(CommitInfo { header: c.header.clone(), trace_root: c.trace_root, trace_leaves: n })
}

// ---------------------------------------------------------------------------
// Level 4: the node.

/// How the type of one node input is established.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub enum InputEvidence {
    /// An earlier node: its descriptor and program proof.
    Node {
        /// The descriptor.
        descriptor: Node,
        /// Program proof (leaf `1 + j`).
        proof: MerkleProof,
    },
    /// A constant: its tensor root preimage and program proof.
    Const {
        /// The preimage.
        tensor: TensorPreimage,
        /// Program proof (leaf `1 + N + c`).
        proof: MerkleProof,
    },
    /// A request input: typed by the header.
    Input,
}

/// The defender's reveal of a pinned trace leaf.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct NodeReveal {
    /// The node's output root (leaf preimage).
    pub output_root: Hash32,
    /// The output root's preimage.
    pub tensor: TensorPreimage,
    /// The node descriptor.
    pub descriptor: Node,
    /// Its program proof.
    pub descriptor_proof: MerkleProof,
    /// Type evidence per input slot.
    pub inputs: Vec<InputEvidence>,
}

/// What the referee knows about the pinned node.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct NodeContext {
    /// Node index in the program.
    pub node: u32,
    /// Its descriptor.
    pub descriptor: Node,
    /// Input types by slot.
    pub input_types: Vec<ValueType>,
    /// Constant tensor roots by slot (for constant inputs).
    pub const_roots: Vec<Option<Hash32>>,
    /// The output's preimage.
    pub output: TensorPreimage,
}

impl NodeContext {
    /// The node's fold.
    pub fn fold(&self) -> Result<Box<dyn ElementFold>, DisputeError> {
        ops::fold_for(&self.descriptor.op, &self.input_types, &self.descriptor.output)
            .map_err(|e| DisputeError::Semantics(e.to_string()))
    }
}

/// Checks a node reveal for trace leaf `leaf_index ≥ 1` whose hash is `leaf`.
pub fn verify_node_reveal(
    claim: &Claim,
    commit: &CommitInfo,
    leaf_index: u64,
    leaf: &Hash32,
    r: &NodeReveal,
) -> Result<NodeContext, DisputeError> {
    let h = &commit.header;
    if leaf_index == 0 || leaf_index > h.nodes {
        return Err(DisputeError::Malformed(format!("trace leaf {leaf_index} is not a node")));
    }
    let k = leaf_index - 1;
    if &node_leaf(k, &r.output_root) != leaf {
        return Err(DisputeError::Mismatch("node leaf"));
    }
    if r.tensor.root() != r.output_root {
        return Err(DisputeError::Mismatch("output tensor preimage"));
    }
    // An empty output has one correct root, and the game ends at it
    // (`EmptyOutput`, the defender wins) without opening any chunk: so the
    // chunk-tree root must be the empty one, or a defender could commit any
    // root for an empty node and win at it.
    if r.tensor.chunks()? == 0 && r.tensor.chunks_root != verinfer_state::tensor::chunks_root(&[]) {
        return Err(DisputeError::Mismatch("empty output's chunk-tree root"));
    }
    let pl = h.program_leaves();
    let check_in_program =
        |what: &'static str, leaf: Hash32, index: u64, proof: &MerkleProof| -> Result<(), DisputeError> {
            check_pos(what, proof, index, pl)?;
            let bound = root_from_proof(0, &leaf, proof).map_err(merkle_err(what))?;
            if program_root_of(&bound) != claim.program_root {
                return Err(DisputeError::Mismatch(what));
            }
            Ok(())
        };
    check_in_program("node descriptor", Program::node_leaf(&r.descriptor), 1 + k, &r.descriptor_proof)?;
    if r.descriptor.output.dtype != r.tensor.dtype || r.descriptor.output.shape != r.tensor.shape {
        return Err(DisputeError::Mismatch("output dtype/shape against descriptor"));
    }
    if r.inputs.len() != r.descriptor.inputs.len() {
        return Err(DisputeError::Malformed("input evidence count".into()));
    }
    let mut input_types = Vec::with_capacity(r.inputs.len());
    let mut const_roots = Vec::with_capacity(r.inputs.len());
    for (slot, (vref, ev)) in r.descriptor.inputs.iter().zip(&r.inputs).enumerate() {
        match (vref, ev) {
            (ValueRef::Node(j), InputEvidence::Node { descriptor, proof }) => {
                if u64::from(*j) >= k {
                    return Err(DisputeError::Malformed(format!("slot {slot} reads a later node")));
                }
                check_in_program("input node descriptor", Program::node_leaf(descriptor), 1 + u64::from(*j), proof)?;
                input_types.push(descriptor.output.clone());
                const_roots.push(None);
            }
            (ValueRef::Const(c), InputEvidence::Const { tensor, proof }) => {
                let root = tensor.root();
                check_in_program("constant", Program::const_leaf(&root), 1 + h.nodes + u64::from(*c), proof)?;
                input_types.push(ValueType { dtype: tensor.dtype, shape: tensor.shape.clone() });
                const_roots.push(Some(root));
            }
            (ValueRef::Input(i), InputEvidence::Input) => {
                let info = h.inputs.get(*i as usize).ok_or_else(|| DisputeError::Malformed("input index".into()))?;
                input_types.push(ValueType { dtype: info.dtype, shape: info.shape.clone() });
                const_roots.push(None);
            }
            _ => return Err(DisputeError::Malformed(format!("slot {slot}: evidence does not match the input kind"))),
        }
    }
    let ctx = NodeContext {
        node: k as u32,
        descriptor: r.descriptor.clone(),
        input_types,
        const_roots,
        output: r.tensor.clone(),
    };
    ctx.fold()?;
    Ok(ctx)
}

// ---------------------------------------------------------------------------
// Level 5: the element.

/// Checks revealed chunk bytes for chunk `c` whose leaf is `leaf`.
pub fn verify_chunk(ctx: &NodeContext, c: u64, leaf: &Hash32, bytes: &[u8]) -> Result<(), DisputeError> {
    let total = checked_numel(&ctx.output.shape).map_err(|e| DisputeError::Malformed(e.to_string()))?
        * ctx.output.dtype.size() as u64;
    let start = c * CHUNK_BYTES as u64;
    if start >= total {
        return Err(DisputeError::Malformed("chunk out of range".into()));
    }
    let len = (total - start).min(CHUNK_BYTES as u64);
    if bytes.len() as u64 != len {
        return Err(DisputeError::Malformed(format!("chunk has {} bytes, expected {len}", bytes.len())));
    }
    if &chunk_leaf(bytes) != leaf {
        return Err(DisputeError::Mismatch("chunk"));
    }
    Ok(())
}

/// The element index and claimed value for element `offset` of chunk `c`.
pub fn element_in_chunk(ctx: &NodeContext, c: u64, bytes: &[u8], offset: u64) -> Result<(u64, Scalar), DisputeError> {
    let sz = ctx.output.dtype.size();
    let per_chunk = (CHUNK_BYTES / sz) as u64;
    if offset >= (bytes.len() / sz) as u64 {
        return Err(DisputeError::Malformed(format!("element {offset} beyond the chunk")));
    }
    let b = &bytes[offset as usize * sz..(offset as usize + 1) * sz];
    Ok((c * per_chunk + offset, Scalar::from_le_bytes(ctx.output.dtype, b)))
}

// ---------------------------------------------------------------------------
// Level 6: the micro-steps.

/// The defender's commitment to one element's fold states.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct StatesCommit {
    /// Bound root over `state_leaf(t, s_t)`, `t = 0..=K`.
    pub states_root: Hash32,
    /// `s_0`.
    pub s0: FoldState,
    /// Its proof (index 0).
    pub s0_proof: MerkleProof,
    /// `s_K`.
    pub sk: FoldState,
    /// Its proof (index K).
    pub sk_proof: MerkleProof,
}

/// Checks a states commitment for element `e` with claimed value `v`;
/// returns `K`.
pub fn verify_states_commit(ctx: &NodeContext, e: u64, v: &Scalar, c: &StatesCommit) -> Result<u64, DisputeError> {
    let fold = ctx.fold()?;
    let k = fold.steps(e);
    // Bounded for any fold built from checked types; saturating keeps a
    // crafted count from overflowing (the position checks then fail).
    check_pos("s0", &c.s0_proof, 0, k.saturating_add(1))?;
    check_pos("sK", &c.sk_proof, k, k.saturating_add(1))?;
    merkle::verify(&c.states_root, &state_leaf(0, &c.s0), &c.s0_proof).map_err(merkle_err("s0"))?;
    merkle::verify(&c.states_root, &state_leaf(k, &c.sk), &c.sk_proof).map_err(merkle_err("sK"))?;
    if c.s0 != fold.init(e) {
        return Err(DisputeError::Mismatch("s0 against init"));
    }
    if &fold.finish(e, c.sk) != v {
        return Err(DisputeError::Mismatch("finish(sK) against the claimed value"));
    }
    Ok(k)
}

// ---------------------------------------------------------------------------
// Level 7: the one-step proof.

/// Where an operand's tensor root comes from.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub enum RootEvidence {
    /// An earlier node's output: its root and trace proof.
    Trace {
        /// The root.
        root: Hash32,
        /// Proof of trace leaf `1 + j`.
        proof: MerkleProof,
    },
    /// A request input: its root and proof in the record's input list.
    Input {
        /// The root.
        root: Hash32,
        /// Proof of leaf `i` of the input list.
        proof: MerkleProof,
    },
    /// A constant: the root was established with the node.
    Const,
}

/// One operand of the checked step.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct OperandOpening {
    /// Node input slot.
    pub slot: u32,
    /// Element index in that input.
    pub index: u64,
    /// Its value.
    pub value: Scalar,
    /// Chunk and path into the input's chunk tree.
    pub opening: ElementOpening,
    /// How the input's root is known.
    pub root: RootEvidence,
}

/// The defender's last move.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct OneStep {
    /// `s_{j−1}`.
    pub s_prev: FoldState,
    /// Its proof (index `j − 1`).
    pub s_prev_proof: MerkleProof,
    /// `s_j`, the pinned leaf's preimage.
    pub s_next: FoldState,
    /// The step's operands in read order.
    pub operands: Vec<OperandOpening>,
}

/// The outcome of a valid one-step proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub enum StepVerdict {
    /// The step recomputes to the defender's `s_j`: the challenger loses.
    Correct,
    /// It does not: the defender loses.
    Wrong {
        /// What the step actually gives.
        expected: FoldState,
    },
}

struct ProofReader<'a> {
    claim: &'a Claim,
    commit: &'a CommitInfo,
    ctx: &'a NodeContext,
    ops: &'a [OperandOpening],
    next: usize,
    roots: HashMap<u32, Hash32>,
}

impl ProofReader<'_> {
    fn root_for(&mut self, slot: u32, ev: &RootEvidence) -> Result<Hash32, DisputeError> {
        let vref = *self
            .ctx
            .descriptor
            .inputs
            .get(slot as usize)
            .ok_or_else(|| DisputeError::Operand(format!("no slot {slot}")))?;
        let root = match (vref, ev) {
            (ValueRef::Node(j), RootEvidence::Trace { root, proof }) => {
                check_pos("operand trace leaf", proof, 1 + u64::from(j), self.commit.trace_leaves)?;
                merkle::verify(&self.commit.trace_root, &node_leaf(u64::from(j), root), proof)
                    .map_err(merkle_err("operand trace leaf"))?;
                *root
            }
            (ValueRef::Input(i), RootEvidence::Input { root, proof }) => {
                check_pos("operand input", proof, u64::from(i), self.commit.header.inputs.len() as u64)?;
                merkle::verify(&self.claim.input_root, &tensor_list_leaf(root), proof)
                    .map_err(merkle_err("operand input"))?;
                *root
            }
            (ValueRef::Const(_), RootEvidence::Const) => self.ctx.const_roots[slot as usize]
                .ok_or_else(|| DisputeError::Operand("constant root unknown".into()))?,
            _ => {
                return Err(DisputeError::Operand(format!("slot {slot}: root evidence does not match the input kind")));
            }
        };
        if let Some(prev) = self.roots.get(&slot)
            && prev != &root
        {
            return Err(DisputeError::Operand(format!("slot {slot}: two different roots")));
        }
        self.roots.insert(slot, root);
        Ok(root)
    }
}

impl OperandReader for ProofReader<'_> {
    fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, ProverError> {
        let to_err = |e: DisputeError| ProverError::Fold(e.to_string());
        let op = self.ops.get(self.next).ok_or_else(|| {
            ProverError::Fold(format!("missing operand #{} (slot {slot}, element {index})", self.next))
        })?;
        self.next += 1;
        if op.slot as usize != slot || op.index != index {
            return Err(ProverError::Fold(format!(
                "operand #{} is slot {} element {}, the step reads slot {slot} element {index}",
                self.next - 1,
                op.slot,
                op.index
            )));
        }
        let root = self.root_for(op.slot, &op.root).map_err(to_err)?;
        let ty = &self.ctx.input_types[slot];
        verify_element(&root, ty.dtype, &ty.shape, index, &op.value, &op.opening)
            .map_err(|e| ProverError::Fold(format!("operand opening: {e}")))?;
        Ok(op.value)
    }
}

/// Checks a one-step proof for micro-step leaf `j ≥ 1` (whose hash is
/// `leaf`) of element `e`. `Ok(verdict)` means the proof was well-formed.
pub fn verify_one_step(
    claim: &Claim,
    commit: &CommitInfo,
    ctx: &NodeContext,
    e: u64,
    states_root: &Hash32,
    k_steps: u64,
    j: u64,
    leaf: &Hash32,
    p: &OneStep,
) -> Result<StepVerdict, DisputeError> {
    if j == 0 || j > k_steps {
        return Err(DisputeError::Malformed(format!("micro-step leaf {j} out of 1..={k_steps}")));
    }
    if &state_leaf(j, &p.s_next) != leaf {
        return Err(DisputeError::Mismatch("s_j"));
    }
    check_pos("s_{j-1}", &p.s_prev_proof, j - 1, k_steps.saturating_add(1))?;
    merkle::verify(states_root, &state_leaf(j - 1, &p.s_prev), &p.s_prev_proof).map_err(merkle_err("s_{j-1}"))?;
    let fold = ctx.fold()?;
    let mut rd = ProofReader { claim, commit, ctx, ops: &p.operands, next: 0, roots: HashMap::new() };
    let got = fold.step(e, j - 1, p.s_prev, &mut rd).map_err(|e| DisputeError::Operand(e.to_string()))?;
    if rd.next != p.operands.len() {
        return Err(DisputeError::Operand(format!("{} operands given, the step read {}", p.operands.len(), rd.next)));
    }
    Ok(if got == p.s_next { StepVerdict::Correct } else { StepVerdict::Wrong { expected: got } })
}

/// Index of the first position where `mine` and `theirs` differ.
pub fn leftmost_difference(mine: &[Hash32], theirs: &[Hash32]) -> Option<usize> {
    mine.iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .or_else(|| (mine.len() != theirs.len()).then(|| mine.len().min(theirs.len())))
}

// ---------------------------------------------------------------------------
// Construction.

/// A deliberate, consistent lie: the state after step `step` of element
/// `element` of node `node` has `xor` applied to its first word, and every
/// later state, the node's output and everything downstream follow from it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct Fault {
    /// Node index.
    pub node: u32,
    /// Element of its output.
    pub element: u64,
    /// Step whose resulting state is corrupted (`s_{step+1}`).
    pub step: u64,
    /// Bits flipped in word 0 of that state.
    pub xor: u64,
}

/// States of one element with an optional fault applied.
pub fn element_states(
    fold: &dyn ElementFold,
    e: u64,
    rd: &mut dyn OperandReader,
    fault: Option<(u64, u64)>,
) -> Result<Vec<FoldState>, ProverError> {
    let k = fold.steps(e);
    let mut out = Vec::with_capacity(k as usize + 1);
    let mut s = fold.init(e);
    out.push(s);
    for t in 0..k {
        s = fold.step(e, t, s, rd)?;
        if let Some((ft, xor)) = fault
            && ft == t
        {
            s.0[0] ^= xor;
        }
        out.push(s);
    }
    Ok(out)
}

/// Runs `program` keeping every node output, with an optional fault.
pub fn execute_all(program: &Program, inputs: &[Tensor], fault: Option<&Fault>) -> Result<Vec<Tensor>, ProverError> {
    check_inputs(program, inputs)?;
    let mut outs: Vec<Tensor> = Vec::with_capacity(program.nodes.len());
    for (i, node) in program.nodes.iter().enumerate() {
        let args: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|r| match *r {
                ValueRef::Input(k) => &inputs[k as usize],
                ValueRef::Const(k) => &program.constants[k as usize],
                ValueRef::Node(k) => &outs[k as usize],
            })
            .collect();
        let mut out = ops::exec_node(&node.op, &args, &node.output)?;
        if let Some(f) = fault.filter(|f| f.node as usize == i) {
            let types: Vec<ValueType> = args.iter().map(|t| ValueType::of(t)).collect();
            let fold = ops::fold_for(&node.op, &types, &node.output)?;
            if f.element >= out.len() as u64 || f.step >= fold.steps(f.element) {
                return Err(ProverError::Fold(format!("fault {f:?} outside node {i}")));
            }
            let mut rd = TensorReader { inputs: &args };
            let states = element_states(fold.as_ref(), f.element, &mut rd, Some((f.step, f.xor)))?;
            let v = fold.finish(f.element, *states.last().expect("K+1 states"));
            set_element(&mut out, f.element, v);
        }
        outs.push(out);
    }
    Ok(outs)
}

fn set_element(t: &mut Tensor, e: u64, v: Scalar) {
    let data: &mut TensorData = t.data_mut();
    data.set_scalar(e as usize, v);
}

/// Builds every defender payload for one record (and, used by an honest
/// challenger, its own view of the same trees).
#[derive(Debug)]
pub struct DisputeProver {
    program: Program,
    program_tree: MerkleTree,
    claim_input_root: Hash32,
    inputs: Vec<Tensor>,
    fault: Option<Fault>,
    cache: Mutex<Option<Computed>>,
}

#[derive(Debug, Clone)]
struct Computed {
    outputs: std::sync::Arc<Vec<Tensor>>,
    trees: std::sync::Arc<Vec<MerkleTree>>,
    trace: std::sync::Arc<MerkleTree>,
}

impl DisputeProver {
    /// A prover for `program` on `inputs`, lying as `fault` says if given.
    pub fn new(program: Program, inputs: Vec<Tensor>, fault: Option<Fault>) -> Result<Self, ProverError> {
        check_inputs(&program, &inputs)?;
        let roots: Vec<Hash32> = inputs.iter().map(Tensor::root).collect();
        Ok(Self {
            program_tree: program.tree(),
            claim_input_root: tensor_list_root(&roots),
            program,
            inputs,
            fault,
            cache: Mutex::new(None),
        })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The claim this prover's computation makes.
    pub fn claim(&self) -> Result<Claim, ProverError> {
        let c = self.computed()?;
        let roots: Vec<Hash32> = self.program.outputs.iter().map(|o| c.outputs[o.node as usize].root()).collect();
        Ok(Claim {
            program_root: self.program_root(),
            input_root: self.claim_input_root,
            output_root: tensor_list_root(&roots),
        })
    }

    /// The program root.
    pub fn program_root(&self) -> Hash32 {
        crate::program::program_root_from_tree(&self.program_tree)
    }

    fn computed(&self) -> Result<Computed, ProverError> {
        // A panic while computing leaves the cache empty, never half
        // written, so a poisoned lock is safe to reuse.
        let mut g = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let outputs = execute_all(&self.program, &self.inputs, self.fault.as_ref())?;
        let trees: Vec<MerkleTree> = outputs.iter().map(Tensor::chunk_tree).collect();
        let mut leaves = Vec::with_capacity(outputs.len() + 1);
        leaves.push(binding_leaf(&self.program_root(), &self.claim_input_root));
        for (i, (t, tree)) in outputs.iter().zip(&trees).enumerate() {
            leaves.push(node_leaf(i as u64, &bind_tensor_root(t.dtype(), &t.shape_u64(), &tree.root())));
        }
        let trace = MerkleTree::from_leaves(&leaves)?;
        let c = Computed {
            outputs: std::sync::Arc::new(outputs),
            trees: std::sync::Arc::new(trees),
            trace: std::sync::Arc::new(trace),
        };
        *g = Some(c.clone());
        Ok(c)
    }

    /// The trace tree.
    pub fn trace_tree(&self) -> Result<std::sync::Arc<MerkleTree>, ProverError> {
        Ok(self.computed()?.trace)
    }

    /// Node `k`'s output.
    pub fn node_output(&self, k: u32) -> Result<Tensor, ProverError> {
        self.computed()?.outputs.get(k as usize).cloned().ok_or_else(|| no_node(k))
    }

    /// Node `k`'s output chunk tree.
    pub fn chunk_tree(&self, k: u32) -> Result<MerkleTree, ProverError> {
        self.computed()?.trees.get(k as usize).cloned().ok_or_else(|| no_node(k))
    }

    /// The commit move.
    pub fn commit(&self) -> Result<TraceCommit, ProverError> {
        let c = self.computed()?;
        let header = ProgramHeader::of(&self.program);
        let outputs = self
            .program
            .outputs
            .iter()
            .map(|o| Ok((c.outputs[o.node as usize].root(), c.trace.proof(1 + u64::from(o.node))?)))
            .collect::<Result<Vec<_>, ProverError>>()?;
        Ok(TraceCommit {
            trace_root: c.trace.root(),
            header,
            header_proof: self.program_tree.proof(0)?,
            binding_proof: c.trace.proof(0)?,
            outputs,
        })
    }

    /// The reveal of trace leaf `1 + k`.
    pub fn node_reveal(&self, k: u32) -> Result<NodeReveal, ProverError> {
        let c = self.computed()?;
        let node = self.program.nodes.get(k as usize).ok_or_else(|| ProverError::Fold(format!("no node {k}")))?;
        let out = &c.outputs[k as usize];
        let n = self.program.nodes.len() as u64;
        let inputs = node
            .inputs
            .iter()
            .map(|r| {
                Ok(match *r {
                    ValueRef::Node(j) => InputEvidence::Node {
                        descriptor: self.program.nodes[j as usize].clone(),
                        proof: self.program_tree.proof(1 + u64::from(j))?,
                    },
                    ValueRef::Const(cst) => InputEvidence::Const {
                        tensor: TensorPreimage::of(&self.program.constants[cst as usize]),
                        proof: self.program_tree.proof(1 + n + u64::from(cst))?,
                    },
                    ValueRef::Input(_) => InputEvidence::Input,
                })
            })
            .collect::<Result<Vec<_>, ProverError>>()?;
        Ok(NodeReveal {
            output_root: out.root(),
            tensor: TensorPreimage {
                dtype: out.dtype(),
                shape: out.shape_u64(),
                chunks_root: c.trees[k as usize].root(),
            },
            descriptor: node.clone(),
            descriptor_proof: self.program_tree.proof(1 + u64::from(k))?,
            inputs,
        })
    }

    /// Bytes of chunk `chunk` of node `k`'s output.
    pub fn chunk_bytes(&self, k: u32, chunk: u64) -> Result<Vec<u8>, ProverError> {
        let out = self.node_output(k)?;
        let bytes = out.le_bytes();
        let start = (chunk as usize).saturating_mul(CHUNK_BYTES).min(bytes.len());
        let end = (start + CHUNK_BYTES).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn node_args(&self, c: &Computed, k: u32) -> Vec<Tensor> {
        self.program.nodes[k as usize]
            .inputs
            .iter()
            .map(|r| match *r {
                ValueRef::Input(i) => self.inputs[i as usize].clone(),
                ValueRef::Const(i) => self.program.constants[i as usize].clone(),
                ValueRef::Node(i) => c.outputs[i as usize].clone(),
            })
            .collect()
    }

    /// All states of element `e` of node `k` and their tree.
    pub fn states(&self, k: u32, e: u64) -> Result<(Vec<FoldState>, MerkleTree), ProverError> {
        let c = self.computed()?;
        // `k` comes from the game, i.e. from the other party.
        let node = self.program.nodes.get(k as usize).ok_or_else(|| no_node(k))?;
        let args = self.node_args(&c, k);
        let refs: Vec<&Tensor> = args.iter().collect();
        let types: Vec<ValueType> = args.iter().map(ValueType::of).collect();
        let fold = ops::fold_for(&node.op, &types, &node.output)?;
        let fault = self.fault.filter(|f| f.node == k && f.element == e).map(|f| (f.step, f.xor));
        let mut rd = TensorReader { inputs: &refs };
        let states = element_states(fold.as_ref(), e, &mut rd, fault)?;
        let leaves: Vec<Hash32> = states.iter().enumerate().map(|(t, s)| state_leaf(t as u64, s)).collect();
        Ok((states, MerkleTree::from_leaves(&leaves)?))
    }

    /// The states commitment for element `e` of node `k`.
    pub fn states_commit(&self, k: u32, e: u64) -> Result<StatesCommit, ProverError> {
        let (states, tree) = self.states(k, e)?;
        let last = states.len() as u64 - 1;
        Ok(StatesCommit {
            states_root: tree.root(),
            s0: states[0],
            s0_proof: tree.proof(0)?,
            sk: states[last as usize],
            sk_proof: tree.proof(last)?,
        })
    }

    /// The one-step proof for micro-step leaf `j` of element `e` of node `k`.
    pub fn one_step(&self, k: u32, e: u64, j: u64) -> Result<OneStep, ProverError> {
        let c = self.computed()?;
        let (states, tree) = self.states(k, e)?;
        if j == 0 || j as usize >= states.len() {
            return Err(ProverError::Fold(format!("micro-step leaf {j} out of range")));
        }
        let node = self.program.nodes.get(k as usize).ok_or_else(|| no_node(k))?;
        let args = self.node_args(&c, k);
        let refs: Vec<&Tensor> = args.iter().collect();
        let types: Vec<ValueType> = args.iter().map(ValueType::of).collect();
        let fold = ops::fold_for(&node.op, &types, &node.output)?;
        let mut rd = TensorReader { inputs: &refs };
        let reads = ops::step_operands(fold.as_ref(), e, j - 1, states[j as usize - 1], &mut rd)?;
        let input_roots: Vec<Hash32> = self.inputs.iter().map(Tensor::root).collect();
        let input_tree = MerkleTree::from_leaves(&input_roots.iter().map(tensor_list_leaf).collect::<Vec<_>>())?;
        let mut operands = Vec::with_capacity(reads.len());
        for (slot, index, value) in reads {
            let t = &args[slot];
            let ctree = match node.inputs[slot] {
                ValueRef::Node(i) => c.trees[i as usize].clone(),
                _ => t.chunk_tree(),
            };
            let opening = t.open_element(&ctree, index)?;
            let root = match node.inputs[slot] {
                ValueRef::Node(i) => RootEvidence::Trace { root: t.root(), proof: c.trace.proof(1 + u64::from(i))? },
                ValueRef::Input(i) => {
                    RootEvidence::Input { root: input_roots[i as usize], proof: input_tree.proof(u64::from(i))? }
                }
                ValueRef::Const(_) => RootEvidence::Const,
            };
            operands.push(OperandOpening { slot: slot as u32, index, value, opening, root });
        }
        Ok(OneStep {
            s_prev: states[j as usize - 1],
            s_prev_proof: tree.proof(j - 1)?,
            s_next: states[j as usize],
            operands,
        })
    }
}

/// `k` names no node of the program (a node index from the other party).
fn no_node(k: u32) -> ProverError {
    ProverError::InvalidProgram { node: format!("#{k}"), why: "no such node in the program".into() }
}
