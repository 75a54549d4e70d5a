//! Read-only views for RPC, explorers and agents.

use verinfer_prover::dispute::Claim;
use verinfer_state::hash::Hash32;
use verinfer_state::record::InferenceRecord;
use verinfer_state::tensor::{DType, Scalar};

use crate::game::{Game, Level, MoveRecord, Phase, Resolution, TreeKind};
use crate::tx::{Move, MoveKind, Tx};
use crate::types::{AccountId, Side};

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

impl GameView {
    /// The view of `g` at `now_ms`.
    pub fn of(g: &Game, now_ms: u64) -> Self {
        let cursor = g.cursor().map(|d| CursorView {
            tree: d.tree,
            leaf_count: d.leaf_count,
            level: d.level,
            index: d.index,
            span: d.span(g.dissection_exp),
            first_child: d.first_child(g.dissection_exp),
            revealed: d.revealed.clone(),
        });
        let node = g.node.as_ref().map(|n| n.node).or(match &g.phase {
            Phase::AwaitNodeReveal { leaf_index, .. } => Some((*leaf_index - 1) as u32),
            _ => None,
        });
        let (chunk, chunk_bytes) = match &g.phase {
            Phase::AwaitChunkReveal { chunk, .. } => (Some(*chunk), None),
            Phase::AwaitElementPick { chunk, bytes } => (Some(*chunk), Some(bytes.clone())),
            _ => (g.element.map(|e| e.chunk), None),
        };
        Self {
            id: g.id,
            batch: g.batch,
            index: g.index,
            record: g.record,
            challenger: g.challenger,
            defender: g.defender,
            challenger_bond: g.challenger_bond,
            defender_stake: g.defender_stake,
            dissection_exp: g.dissection_exp,
            opened_at_ms: g.opened_at_ms,
            level: g.phase.level(),
            to_move: g.to_move(),
            awaiting: g.phase.awaiting(),
            moves: g.transcript.len() as u32,
            clocks: Clocks {
                defender_left_ms: g.clock_left_ms(Side::Defender, now_ms),
                challenger_left_ms: g.clock_left_ms(Side::Challenger, now_ms),
                deadline_ms: g.deadline_ms(),
            },
            cursor,
            node,
            output_dtype: g.node.as_ref().map(|n| n.output.dtype),
            chunk,
            chunk_bytes,
            element: g.element.map(|e| (e.index, e.value)),
            k_steps: g.states.map(|s| s.k_steps),
            state_leaf: match &g.phase {
                Phase::AwaitOneStep { j, .. } => Some(*j),
                _ => None,
            },
            transcript: g.transcript.clone(),
            resolution: g.resolution.clone(),
        }
    }

    /// The claim under dispute.
    pub fn claim(&self) -> Claim {
        Claim { program_root: self.record.program_root, input_root: self.record.input_root, output_root: self.record.output_root }
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

impl crate::Settlement {
    /// The view of game `id` at `now_ms`.
    pub fn game_view(&self, id: u64, now_ms: u64) -> Option<GameView> {
        self.game(id).map(|g| GameView::of(g, now_ms))
    }
}
