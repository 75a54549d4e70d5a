//! Read-only views of a game for RPC, explorers and agents, and the data
//! types a game records (levels, trees, transcript, resolution). The
//! referee builds them (`verinfer_settlement::view::view_of`); players
//! read them.

use crate::dispute::{Claim, StepVerdict};
use crate::ops::FoldState;
use verinfer_state::hash::Hash32;
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::{DType, Scalar};

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

use super::tx::{Move, MoveKind, Tx};
use super::types::{AccountId, Side};

/// Both clocks at a point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Clocks {
    /// Defender's time left.
    pub defender_left_ms: u64,
    /// Challenger's time left.
    pub challenger_left_ms: u64,
    /// When the side to move runs out.
    pub deadline_ms: Option<u64>,
}

/// The dissection cursor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CursorView {
    /// Tree.
    pub tree: TreeKind,
    /// Its leaf count.
    pub leaf_count: u64,
    /// Cursor level (0 = leaves).
    pub level: u32,
    /// Cursor index.
    pub index: u64,
    /// Levels a reveal here spans (`min(D, level)`).
    pub span: u32,
    /// Index of the first child a reveal here holds.
    pub first_child: u64,
    /// The defender's reveal, awaiting a pick.
    pub revealed: Option<Vec<Hash32>>,
}

/// A game as seen at one time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GameView {
    /// Id.
    pub id: u64,
    /// Batch.
    pub batch: u64,
    /// Record index.
    pub index: u64,
    /// The record.
    pub record: InferenceRecord,
    /// Challenger.
    pub challenger: AccountId,
    /// Defender.
    pub defender: AccountId,
    /// Challenger bond in escrow.
    pub challenger_bond: u64,
    /// Defender stake in escrow.
    pub defender_stake: u64,
    /// Dissection exponent.
    pub dissection_exp: u32,
    /// When opened.
    pub opened_at_ms: u64,
    /// Level.
    pub level: Level,
    /// Who must move.
    pub to_move: Option<Side>,
    /// The move expected.
    pub awaiting: Option<MoveKind>,
    /// Moves made (the `seq` the next move must carry).
    pub moves: u32,
    /// Clocks at the view's time.
    pub clocks: Clocks,
    /// Dissection cursor, at a dissection.
    pub cursor: Option<CursorView>,
    /// Pinned trace leaf awaiting its node reveal, or the pinned node.
    pub node: Option<u32>,
    /// Dtype of the pinned node's output (its element size sizes a chunk).
    pub output_dtype: Option<DType>,
    /// Pinned chunk.
    pub chunk: Option<u64>,
    /// Revealed chunk bytes awaiting the element pick.
    pub chunk_bytes: Option<Vec<u8>>,
    /// Pinned element and its claimed value.
    pub element: Option<(u64, Scalar)>,
    /// The element's step count.
    pub k_steps: Option<u64>,
    /// Pinned state leaf `j` awaiting the one-step proof.
    pub state_leaf: Option<u64>,
    /// Every move so far.
    pub transcript: Vec<MoveRecord>,
    /// The outcome.
    pub resolution: Option<Resolution>,
}

/// The three trees the game descends.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TreeKind {
    /// The defender's trace tree (node level).
    Trace,
    /// The pinned node's output chunk tree (element level).
    Chunks,
    /// The pinned element's fold-state tree (micro-step level).
    States,
}

impl fmt::Display for TreeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TreeKind::Trace => "trace",
            TreeKind::Chunks => "chunk",
            TreeKind::States => "states",
        })
    }
}

/// The level a game is at, for views and events.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Level 2: the defender's trace commitment.
    Commit,
    /// Levels 3–4: dissection of the trace tree.
    NodeDissection,
    /// Level 4: the pinned node's reveal.
    NodeReveal,
    /// Level 5: dissection of the node's chunk tree.
    ElementDissection,
    /// Level 5: the pinned chunk and the element pick.
    Element,
    /// Level 6: the element's fold-state commitment.
    StatesCommit,
    /// Level 6: dissection of the fold states.
    StepDissection,
    /// Level 7: the one-step proof.
    OneStep,
    /// Over.
    Resolved,
}

/// The pinned element and its claimed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ElementInfo {
    /// Chunk it was picked from.
    pub chunk: u64,
    /// Element index in the node's output.
    pub index: u64,
    /// The defender's value.
    pub value: Scalar,
}

/// The pinned element's fold-state commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct StatesInfo {
    /// Bound root over the states.
    pub root: Hash32,
    /// `K`, the number of steps (the tree has `K + 1` leaves).
    pub k_steps: u64,
}

/// Why a game ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ResolutionReason {
    /// The one-step proof was checked: `Correct` means the challenger lost.
    StepChecked {
        /// The referee's verdict.
        verdict: StepVerdict,
    },
    /// The challenger pinned trace leaf 0, the binding checked at the commit.
    PinnedBinding,
    /// The pinned node's output has no elements (its root follows from
    /// dtype and shape), so it cannot be wrong.
    EmptyOutput,
    /// The challenger pinned fold state 0, checked against `init`.
    PinnedInitialState,
    /// The side to move let its clock run out.
    Timeout {
        /// The silent side.
        side: Side,
    },
}

/// An operand of the checked step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct OperandValue {
    /// Input slot of the node.
    pub slot: u32,
    /// Element index in that input.
    pub index: u64,
    /// Its value.
    pub value: Scalar,
}

/// Everything the game pinned, as far as it got.
#[derive(Clone, Debug, Default, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Pinpoint {
    /// Program node.
    pub node: Option<u32>,
    /// Its name.
    pub node_name: Option<String>,
    /// Its op.
    pub op: Option<String>,
    /// Element of its output.
    pub element: Option<u64>,
    /// The defender's value of that element.
    pub value: Option<Scalar>,
    /// The element's step count `K`.
    pub k_steps: Option<u64>,
    /// The checked step `t` (from `s_t` to `s_{t+1}`).
    pub step: Option<u64>,
    /// `s_t` (accepted).
    pub s_prev: Option<FoldState>,
    /// `s_{t+1}` as the defender claimed it.
    pub s_next: Option<FoldState>,
    /// `s_{t+1}` as the referee computed it, when it differs.
    pub expected: Option<FoldState>,
    /// The operands the step read.
    pub operands: Vec<OperandValue>,
}

/// How a game ended.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Resolution {
    /// Who won (and received the escrow).
    pub winner: Side,
    /// Why.
    pub reason: ResolutionReason,
    /// When.
    pub at_ms: u64,
    /// What was pinned.
    pub pinpoint: Pinpoint,
}

/// One accepted move.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct MoveRecord {
    /// Position in the game (0-based).
    pub seq: u32,
    /// Who moved.
    pub side: Side,
    /// When.
    pub at_ms: u64,
    /// The level the game was at.
    pub level: Level,
    /// The dissection cursor `(tree, level, index)` the move applied to.
    pub cursor: Option<(TreeKind, u32, u64)>,
    /// Encoded size of the move.
    pub bytes: u64,
    /// The mover's clock left after the move.
    pub clock_left_ms: u64,
    /// The move.
    pub mv: Move,
}

impl GameView {
    /// The claim under dispute.
    pub fn claim(&self) -> Claim {
        Claim {
            program_root: self.record.program_root,
            input_root: self.record.input_root,
            output_root: self.record.output_root,
        }
    }

    /// The transaction that plays `mv` as the next move.
    pub fn tx(&self, mv: Move) -> Tx {
        Tx::Move { game: self.id, seq: self.moves, mv }
    }

    /// The account of the side to move.
    pub fn mover(&self) -> Option<AccountId> {
        self.to_move.map(|s| match s {
            Side::Defender => self.defender,
            Side::Challenger => self.challenger,
        })
    }

    /// Bytes sent by `side` so far.
    pub fn bytes_sent(&self, side: Side) -> u64 {
        self.transcript.iter().filter(|m| m.side == side).map(|m| m.bytes).sum()
    }
}
