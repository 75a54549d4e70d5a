//! Read-only views for RPC, explorers and agents: the types are
//! [`verinfer_prover::game::view`]'s; the referee builds them here.

pub use verinfer_prover::game::view::{Clocks, CursorView, GameView};

use crate::game::{Game, Phase};
use crate::types::Side;

/// The view of `g` at `now_ms`.
pub fn view_of(g: &Game, now_ms: u64) -> GameView {
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
    GameView {
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

impl crate::Settlement {
    /// The view of game `id` at `now_ms`.
    pub fn game_view(&self, id: u64, now_ms: u64) -> Option<GameView> {
        self.game(id).map(|g| view_of(g, now_ms))
    }
}
