//! One dispute game: its phases, the referee's transition function and its
//! resolution (`docs/dispute-game.md`).
//!
//! [`Game::advance`] is pure: it checks one move against the game's state
//! and returns the next state, or an error and no change. Turn order, clocks,
//! bonds and events are the settlement's ([`crate::Settlement`]).

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_prover::dispute::{
    self, Claim, CommitInfo, NodeContext, OneStep, StepVerdict, element_in_chunk, state_leaf, verify_chunk,
    verify_commit, verify_node_reveal, verify_one_step, verify_states_commit,
};
use verinfer_prover::ops::FoldState;
use verinfer_prover::trace::node_leaf;
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::{bind_root, depth, descendant_range, node_from_descendants};
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::chunk_leaf;

use crate::error::MoveError;
use crate::tx::{Move, MoveKind};
use crate::types::{AccountId, Side};
pub use verinfer_prover::game::view::{
    ElementInfo, Level, MoveRecord, OperandValue, Pinpoint, Resolution, ResolutionReason, StatesInfo, TreeKind,
};

/// A dissection cursor in one tree (`docs/dispute-game.md` §3).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Dissection {
    /// Which tree.
    pub tree: TreeKind,
    /// Its leaf count (the root is bound to it).
    pub leaf_count: u64,
    /// Its bound root.
    pub root: Hash32,
    /// Cursor level (0 = leaves).
    pub level: u32,
    /// Cursor index within the level.
    pub index: u64,
    /// The cursor node's hash; `None` at the root, known by its bound root.
    pub node: Option<Hash32>,
    /// The defender's reveal below the cursor, awaiting the challenger's pick.
    pub revealed: Option<Vec<Hash32>>,
}

/// Where a reveal or a pick leaves a dissection.
#[derive(Clone, Debug, PartialEq)]
pub enum DissectionStep {
    /// Not at a leaf yet.
    Continue(Dissection),
    /// A leaf is pinned.
    Pinned {
        /// Leaf index.
        index: u64,
        /// Its hash.
        leaf: Hash32,
    },
}

impl Dissection {
    /// A cursor at the root of a tree of `leaf_count ≥ 1` leaves.
    pub fn at_root(tree: TreeKind, leaf_count: u64, root: Hash32) -> Self {
        Self { tree, leaf_count, root, level: depth(leaf_count), index: 0, node: None, revealed: None }
    }

    /// Levels a reveal spans from here: `min(D, level)`.
    pub fn span(&self, exp: u32) -> u32 {
        exp.min(self.level)
    }

    /// Index (in level `level - span`) of the first revealed node.
    pub fn first_child(&self, exp: u32) -> u64 {
        descendant_range(self.leaf_count, self.level, self.index, self.span(exp)).start
    }

    /// How many nodes a reveal from here holds.
    pub fn children(&self, exp: u32) -> u64 {
        let r = descendant_range(self.leaf_count, self.level, self.index, self.span(exp));
        r.end - r.start
    }

    /// Checks a reveal: the nodes must recompute the cursor node (at the
    /// root: its bound root).
    pub fn reveal(&self, exp: u32, nodes: &[Hash32]) -> Result<DissectionStep, MoveError> {
        let d = self.span(exp);
        let (tree, level, index) = (self.tree, self.level, self.index);
        let computed = node_from_descendants(self.leaf_count, level, index, d, nodes)
            .map_err(|source| MoveError::RevealShape { tree, level, index, source })?;
        let ok = match &self.node {
            Some(h) => &computed == h,
            None => bind_root(self.leaf_count, &computed) == self.root,
        };
        if !ok {
            return Err(MoveError::RevealMismatch { tree, level, index });
        }
        if d == 0 {
            // A one-leaf tree: the reveal is the leaf itself.
            return Ok(DissectionStep::Pinned { index, leaf: computed });
        }
        let mut next = self.clone();
        next.revealed = Some(nodes.to_vec());
        Ok(DissectionStep::Continue(next))
    }

    /// Applies the challenger's pick of child `child` of the last reveal.
    pub fn pick(&self, exp: u32, child: u64) -> Result<DissectionStep, MoveError> {
        let revealed = self.revealed.as_ref().ok_or(MoveError::PickOutOfRange { pick: child, children: 0 })?;
        let node = *revealed
            .get(usize::try_from(child).unwrap_or(usize::MAX))
            .ok_or(MoveError::PickOutOfRange { pick: child, children: revealed.len() as u64 })?;
        let d = self.span(exp);
        let index = self.first_child(exp) + child;
        let level = self.level - d;
        if level == 0 {
            return Ok(DissectionStep::Pinned { index, leaf: node });
        }
        Ok(DissectionStep::Continue(Dissection { level, index, node: Some(node), revealed: None, ..self.clone() }))
    }
}

/// What a game waits for.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The defender's [`Move::Commit`].
    AwaitCommit,
    /// A dissection: a reveal (defender) or a pick (challenger).
    Dissect(Dissection),
    /// The defender's reveal of pinned trace leaf `leaf_index ≥ 1`.
    AwaitNodeReveal {
        /// Trace leaf (`1 + node`).
        leaf_index: u64,
        /// Its hash.
        leaf: Hash32,
    },
    /// The defender's bytes of the pinned chunk.
    AwaitChunkReveal {
        /// Chunk index.
        chunk: u64,
        /// Its leaf hash.
        leaf: Hash32,
    },
    /// The challenger's element pick within the revealed chunk.
    AwaitElementPick {
        /// Chunk index.
        chunk: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The defender's fold-state commitment for the pinned element.
    AwaitStatesCommit,
    /// The defender's one-step proof for pinned state leaf `j ≥ 1`.
    AwaitOneStep {
        /// State leaf.
        j: u64,
        /// Its hash.
        leaf: Hash32,
    },
    /// Over.
    Resolved,
}

impl Phase {
    /// The move this phase waits for.
    pub fn awaiting(&self) -> Option<MoveKind> {
        Some(match self {
            Phase::AwaitCommit => MoveKind::Commit,
            Phase::Dissect(d) if d.revealed.is_none() => MoveKind::Reveal,
            Phase::Dissect(_) => MoveKind::Pick,
            Phase::AwaitNodeReveal { .. } => MoveKind::NodeReveal,
            Phase::AwaitChunkReveal { .. } => MoveKind::ChunkReveal,
            Phase::AwaitElementPick { .. } => MoveKind::PickElement,
            Phase::AwaitStatesCommit => MoveKind::StatesCommit,
            Phase::AwaitOneStep { .. } => MoveKind::OneStep,
            Phase::Resolved => return None,
        })
    }

    /// The level.
    pub fn level(&self) -> Level {
        match self {
            Phase::AwaitCommit => Level::Commit,
            Phase::Dissect(d) => match d.tree {
                TreeKind::Trace => Level::NodeDissection,
                TreeKind::Chunks => Level::ElementDissection,
                TreeKind::States => Level::StepDissection,
            },
            Phase::AwaitNodeReveal { .. } => Level::NodeReveal,
            Phase::AwaitChunkReveal { .. } | Phase::AwaitElementPick { .. } => Level::Element,
            Phase::AwaitStatesCommit => Level::StatesCommit,
            Phase::AwaitOneStep { .. } => Level::OneStep,
            Phase::Resolved => Level::Resolved,
        }
    }
}

/// One dispute game.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Game {
    /// Id.
    pub id: u64,
    /// Disputed batch.
    pub batch: u64,
    /// Disputed record index.
    pub index: u64,
    /// The record.
    pub record: InferenceRecord,
    /// The challenger.
    pub challenger: AccountId,
    /// The defender (the batch's sequencer).
    pub defender: AccountId,
    /// Locked from the challenger's balance.
    pub challenger_bond: u64,
    /// Locked from the sequencer's bond.
    pub defender_stake: u64,
    /// Dissection exponent of this game.
    pub dissection_exp: u32,
    /// Clock each side started with.
    pub clock_ms: u64,
    /// Clock left per side (defender, challenger), as of `turn_started_ms`
    /// for the side to move.
    pub remaining_ms: [u64; 2],
    /// When the turn passed to the side to move.
    pub turn_started_ms: u64,
    /// When the game was opened.
    pub opened_at_ms: u64,
    /// What it waits for.
    pub phase: Phase,
    /// The verified commit.
    pub commit: Option<CommitInfo>,
    /// The verified pinned node.
    pub node: Option<NodeContext>,
    /// The pinned element.
    pub element: Option<ElementInfo>,
    /// The element's state commitment.
    pub states: Option<StatesInfo>,
    /// Every accepted move.
    pub transcript: Vec<MoveRecord>,
    /// The outcome, once over.
    pub resolution: Option<Resolution>,
}

/// The result of a valid move: the game's next knowledge, and whether it
/// ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Advance {
    /// Next phase (ignored when `end` is set).
    pub phase: Phase,
    /// Commit.
    pub commit: Option<CommitInfo>,
    /// Node.
    pub node: Option<NodeContext>,
    /// Element.
    pub element: Option<ElementInfo>,
    /// States.
    pub states: Option<StatesInfo>,
    /// The game ended: winner, reason and what the last move proved.
    pub end: Option<(Side, ResolutionReason, Option<OneStep>)>,
}

impl Game {
    /// The claim (record roots) the game is about.
    pub fn claim(&self) -> Claim {
        Claim {
            program_root: self.record.program_root,
            input_root: self.record.input_root,
            output_root: self.record.output_root,
        }
    }

    /// Who must move, if the game is open.
    pub fn to_move(&self) -> Option<Side> {
        self.phase.awaiting().map(MoveKind::side)
    }

    /// When the side to move runs out of time.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.to_move().map(|s| self.turn_started_ms.saturating_add(self.remaining_ms[s.idx()]))
    }

    /// Clock left for `side` at `now_ms` (its clock runs only on its turn).
    pub fn clock_left_ms(&self, side: Side, now_ms: u64) -> u64 {
        let r = self.remaining_ms[side.idx()];
        if self.to_move() == Some(side) { r.saturating_sub(now_ms.saturating_sub(self.turn_started_ms)) } else { r }
    }

    /// The account of `side`.
    pub fn account(&self, side: Side) -> AccountId {
        match side {
            Side::Defender => self.defender,
            Side::Challenger => self.challenger,
        }
    }

    /// The side `who` plays, if any.
    pub fn side_of(&self, who: &AccountId) -> Option<Side> {
        if *who == self.defender {
            Some(Side::Defender)
        } else if *who == self.challenger {
            Some(Side::Challenger)
        } else {
            None
        }
    }

    /// The escrow.
    pub fn escrow(&self) -> u64 {
        self.challenger_bond + self.defender_stake
    }

    /// The dissection cursor, if at a dissection.
    pub fn cursor(&self) -> Option<&Dissection> {
        match &self.phase {
            Phase::Dissect(d) => Some(d),
            _ => None,
        }
    }

    /// Checks `mv` against the game's state; the next state, or an error.
    /// Does not check turns or clocks. Pure.
    pub fn advance(&self, mv: &Move) -> Result<Advance, MoveError> {
        let claim = self.claim();
        let exp = self.dissection_exp;
        let mut a = Advance {
            phase: self.phase.clone(),
            commit: self.commit.clone(),
            node: self.node.clone(),
            element: self.element,
            states: self.states,
            end: None,
        };
        let internal =
            |what: &str| MoveError::Dispute(dispute::DisputeError::Malformed(format!("game state: {what} missing")));
        match (&self.phase, mv) {
            (Phase::AwaitCommit, Move::Commit(c)) => {
                let info = verify_commit(&claim, c)?;
                a.phase = Phase::Dissect(Dissection::at_root(TreeKind::Trace, info.trace_leaves, info.trace_root));
                a.commit = Some(info);
            }
            (Phase::Dissect(d), Move::Reveal { nodes }) if d.revealed.is_none() => {
                let step = d.reveal(exp, nodes)?;
                self.after_dissection(step, &mut a)?;
            }
            (Phase::Dissect(d), Move::Pick { child }) if d.revealed.is_some() => {
                let step = d.pick(exp, u64::from(*child))?;
                self.after_dissection(step, &mut a)?;
            }
            (Phase::AwaitNodeReveal { leaf_index, leaf }, Move::NodeReveal(r)) => {
                let commit = self.commit.as_ref().ok_or_else(|| internal("commit"))?;
                let ctx = verify_node_reveal(&claim, commit, *leaf_index, leaf, r)?;
                let chunks = ctx.output.chunks()?;
                if chunks == 0 {
                    a.end = Some((Side::Defender, ResolutionReason::EmptyOutput, None));
                } else {
                    a.phase = Phase::Dissect(Dissection::at_root(TreeKind::Chunks, chunks, ctx.output.chunks_root));
                }
                a.node = Some(ctx);
            }
            (Phase::AwaitChunkReveal { chunk, leaf }, Move::ChunkReveal { bytes }) => {
                let ctx = self.node.as_ref().ok_or_else(|| internal("node"))?;
                verify_chunk(ctx, *chunk, leaf, bytes)?;
                a.phase = Phase::AwaitElementPick { chunk: *chunk, bytes: bytes.clone() };
            }
            (Phase::AwaitElementPick { chunk, bytes }, Move::PickElement { offset }) => {
                let ctx = self.node.as_ref().ok_or_else(|| internal("node"))?;
                let (index, value) = element_in_chunk(ctx, *chunk, bytes, *offset)?;
                a.element = Some(ElementInfo { chunk: *chunk, index, value });
                a.phase = Phase::AwaitStatesCommit;
            }
            (Phase::AwaitStatesCommit, Move::StatesCommit(sc)) => {
                let ctx = self.node.as_ref().ok_or_else(|| internal("node"))?;
                let el = self.element.ok_or_else(|| internal("element"))?;
                let k = verify_states_commit(ctx, el.index, &el.value, sc)?;
                a.states = Some(StatesInfo { root: sc.states_root, k_steps: k });
                a.phase = Phase::Dissect(Dissection::at_root(TreeKind::States, k + 1, sc.states_root));
            }
            (Phase::AwaitOneStep { j, leaf }, Move::OneStep(p)) => {
                let commit = self.commit.as_ref().ok_or_else(|| internal("commit"))?;
                let ctx = self.node.as_ref().ok_or_else(|| internal("node"))?;
                let el = self.element.ok_or_else(|| internal("element"))?;
                let st = self.states.ok_or_else(|| internal("states"))?;
                let verdict = verify_one_step(&claim, commit, ctx, el.index, &st.root, st.k_steps, *j, leaf, p)?;
                let winner = match verdict {
                    StepVerdict::Correct => Side::Defender,
                    StepVerdict::Wrong { .. } => Side::Challenger,
                };
                a.end = Some((winner, ResolutionReason::StepChecked { verdict }, Some(p.clone())));
            }
            _ => return Err(internal("a phase for this move")),
        }
        Ok(a)
    }

    fn after_dissection(&self, step: DissectionStep, a: &mut Advance) -> Result<(), MoveError> {
        let Phase::Dissect(d) = &self.phase else {
            return Err(MoveError::Dispute(dispute::DisputeError::Malformed("not at a dissection".into())));
        };
        match step {
            DissectionStep::Continue(next) => a.phase = Phase::Dissect(next),
            DissectionStep::Pinned { index, leaf } => match d.tree {
                TreeKind::Trace if index == 0 => a.end = Some((Side::Defender, ResolutionReason::PinnedBinding, None)),
                TreeKind::Trace => a.phase = Phase::AwaitNodeReveal { leaf_index: index, leaf },
                TreeKind::Chunks => a.phase = Phase::AwaitChunkReveal { chunk: index, leaf },
                TreeKind::States if index == 0 => {
                    a.end = Some((Side::Defender, ResolutionReason::PinnedInitialState, None));
                }
                TreeKind::States => a.phase = Phase::AwaitOneStep { j: index, leaf },
            },
        }
        Ok(())
    }

    /// What the game has pinned so far (and, for a checked step, its proof).
    pub fn pinpoint(&self, proof: Option<&OneStep>, verdict: Option<&StepVerdict>) -> Pinpoint {
        let mut p = Pinpoint::default();
        if let Some(ctx) = &self.node {
            p.node = Some(ctx.node);
            p.node_name = Some(ctx.descriptor.name.clone());
            p.op = Some(ctx.descriptor.op.name());
        } else if let Phase::AwaitNodeReveal { leaf_index, .. } = &self.phase {
            p.node = Some((*leaf_index - 1) as u32);
        }
        if let Some(el) = &self.element {
            p.element = Some(el.index);
            p.value = Some(el.value);
        }
        if let Some(st) = &self.states {
            p.k_steps = Some(st.k_steps);
        }
        if let Phase::AwaitOneStep { j, .. } = &self.phase {
            p.step = Some(*j - 1);
        }
        if let Some(proof) = proof {
            p.s_prev = Some(proof.s_prev);
            p.s_next = Some(proof.s_next);
            p.operands =
                proof.operands.iter().map(|o| OperandValue { slot: o.slot, index: o.index, value: o.value }).collect();
        }
        if let Some(StepVerdict::Wrong { expected }) = verdict {
            p.expected = Some(*expected);
        }
        p
    }
}

/// The leaf hash a reveal at level 4 must match (for tools).
pub fn trace_node_leaf(node: u32, output_root: &Hash32) -> Hash32 {
    node_leaf(u64::from(node), output_root)
}

/// The leaf hash of chunk bytes (for tools).
pub fn chunk_leaf_of(bytes: &[u8]) -> Hash32 {
    chunk_leaf(bytes)
}

/// The leaf hash of fold state `t` (for tools).
pub fn state_leaf_of(t: u64, s: &FoldState) -> Hash32 {
    state_leaf(t, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_state::hash::{Domain, hash};
    use verinfer_state::merkle::MerkleTree;

    fn leaves(n: u64) -> Vec<Hash32> {
        (0..n).map(|i| hash(Domain::TensorChunk, &i.to_le_bytes())).collect()
    }

    /// Descends every tree size with every exponent to every leaf.
    #[test]
    fn dissection_reaches_every_leaf_with_valid_reveals() {
        for n in [1u64, 2, 3, 5, 16, 17, 33, 100] {
            let t = MerkleTree::from_leaves(&leaves(n)).expect("tree");
            for exp in 1..=4u32 {
                for target in 0..n {
                    let mut d = Dissection::at_root(TreeKind::Chunks, n, t.root());
                    let mut rounds = 0;
                    let (index, leaf) = loop {
                        let nodes = t.descendants(d.level, d.index, d.span(exp)).expect("reveal");
                        assert_eq!(nodes.len() as u64, d.children(exp));
                        match d.reveal(exp, &nodes).expect("valid reveal") {
                            DissectionStep::Pinned { index, leaf } => break (index, leaf),
                            DissectionStep::Continue(next) => d = next,
                        }
                        let below = d.level - d.span(exp);
                        let child = (target >> below) - d.first_child(exp);
                        rounds += 1;
                        match d.pick(exp, child).expect("valid pick") {
                            DissectionStep::Pinned { index, leaf } => break (index, leaf),
                            DissectionStep::Continue(next) => d = next,
                        }
                    };
                    assert_eq!((index, leaf), (target, t.leaves()[target as usize]), "n={n} exp={exp}");
                    assert_eq!(rounds, depth(n).div_ceil(exp), "n={n} exp={exp}");
                }
            }
        }
    }

    #[test]
    fn bad_reveals_and_picks_are_rejected() {
        let t = MerkleTree::from_leaves(&leaves(37)).expect("tree");
        let d = Dissection::at_root(TreeKind::Trace, 37, t.root());
        let good = t.descendants(d.level, 0, d.span(2)).expect("reveal");
        let mut bad = good.clone();
        bad[1].0[0] ^= 1;
        assert!(matches!(d.reveal(2, &bad), Err(MoveError::RevealMismatch { .. })));
        bad = good.clone();
        bad.pop();
        assert!(matches!(d.reveal(2, &bad), Err(MoveError::RevealShape { .. })));
        bad = good.clone();
        bad.push(good[0]);
        assert!(matches!(d.reveal(2, &bad), Err(MoveError::RevealShape { .. })));
        // A reveal of the wrong span (D = 3 nodes presented for D = 2).
        let wide = t.descendants(d.level, 0, 3).expect("reveal");
        assert!(d.reveal(2, &wide).is_err());
        let DissectionStep::Continue(next) = d.reveal(2, &good).expect("valid") else { panic!("not pinned yet") };
        assert!(matches!(next.pick(2, good.len() as u64), Err(MoveError::PickOutOfRange { .. })));
        assert!(matches!(next.pick(2, u64::MAX), Err(MoveError::PickOutOfRange { .. })));
        // A different tree of the same size does not pass for this one.
        let other = MerkleTree::from_leaves(&leaves(38)[1..]).expect("tree");
        assert!(d.reveal(2, &other.descendants(d.level, 0, 2).expect("r")).is_err());
    }
}
