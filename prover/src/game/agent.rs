//! Move solvers for the two sides: pure functions from a game's view and a
//! prover to the next move. The sequencer's defender and the challenger bot
//! wrap them with I/O (fetch the view, send [`GameView::tx`]).
//!
//! * [`defender_move`] answers whatever the game awaits from the defender
//!   out of the defender's own [`DisputeProver`] (whose trace it committed).
//! * [`challenger_move`] plays the honest strategy: at each dissection the
//!   leftmost revealed child that differs from its own computation, at a
//!   chunk the first differing element.
//!
//! Both return `Ok(None)` when it is not their turn (or the game is over),
//! and the honest challenger also when it finds nothing to dispute (it then
//! stays silent: it was wrong to open the game).

use crate::ProverError;
use crate::dispute::{DisputeProver, leftmost_difference};
use verinfer_state::record::InferenceRecord;

use super::tx::{Move, MoveKind};
use super::types::Side;
use super::view::{CursorView, GameView, TreeKind};

/// Why an agent could not compute a move.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The prover failed.
    #[error("prover: {0}")]
    Prover(String),
    /// The view lacks what the awaited move needs (a corrupt view).
    #[error("view: {0}")]
    View(&'static str),
    /// The prover is for another program or inputs than the record.
    #[error("the prover's program or inputs are not the record's")]
    WrongRecord,
}

impl From<ProverError> for AgentError {
    fn from(e: ProverError) -> Self {
        AgentError::Prover(e.to_string())
    }
}

impl From<verinfer_state::merkle::MerkleError> for AgentError {
    fn from(e: verinfer_state::merkle::MerkleError) -> Self {
        AgentError::Prover(e.to_string())
    }
}

fn node_of(v: &GameView) -> Result<u32, AgentError> {
    v.node.ok_or(AgentError::View("no pinned node"))
}

fn element_of(v: &GameView) -> Result<u64, AgentError> {
    v.element.map(|e| e.0).ok_or(AgentError::View("no pinned element"))
}

/// `p`'s nodes below the cursor.
fn own_nodes(v: &GameView, c: &CursorView, p: &DisputeProver) -> Result<Vec<verinfer_state::hash::Hash32>, AgentError> {
    Ok(match c.tree {
        TreeKind::Trace => p.trace_tree()?.descendants(c.level, c.index, c.span)?,
        TreeKind::Chunks => p.chunk_tree(node_of(v)?)?.descendants(c.level, c.index, c.span)?,
        TreeKind::States => p.states(node_of(v)?, element_of(v)?)?.1.descendants(c.level, c.index, c.span)?,
    })
}

/// The defender's next move from its prover, or `None` if not its turn.
pub fn defender_move(v: &GameView, p: &DisputeProver) -> Result<Option<Move>, AgentError> {
    if v.to_move != Some(Side::Defender) {
        return Ok(None);
    }
    let Some(kind) = v.awaiting else {
        return Ok(None);
    };
    Ok(Some(match kind {
        MoveKind::Commit => Move::Commit(p.commit()?),
        MoveKind::Reveal => {
            let c = v.cursor.as_ref().ok_or(AgentError::View("no cursor"))?;
            Move::Reveal { nodes: own_nodes(v, c, p)? }
        }
        MoveKind::NodeReveal => Move::NodeReveal(p.node_reveal(node_of(v)?)?),
        MoveKind::ChunkReveal => Move::ChunkReveal {
            bytes: p.chunk_bytes(node_of(v)?, v.chunk.ok_or(AgentError::View("no pinned chunk"))?)?,
        },
        MoveKind::StatesCommit => Move::StatesCommit(p.states_commit(node_of(v)?, element_of(v)?)?),
        MoveKind::OneStep => Move::OneStep(p.one_step(
            node_of(v)?,
            element_of(v)?,
            v.state_leaf.ok_or(AgentError::View("no pinned state"))?,
        )?),
        MoveKind::Pick | MoveKind::PickElement => return Ok(None),
    }))
}

/// The honest challenger's next move, or `None` if not its turn or it
/// finds no difference.
pub fn challenger_move(v: &GameView, honest: &DisputeProver) -> Result<Option<Move>, AgentError> {
    if v.to_move != Some(Side::Challenger) {
        return Ok(None);
    }
    match v.awaiting {
        Some(MoveKind::Pick) => {
            let c = v.cursor.as_ref().ok_or(AgentError::View("no cursor"))?;
            let theirs = c.revealed.as_ref().ok_or(AgentError::View("no reveal"))?;
            let own = own_nodes(v, c, honest)?;
            Ok(leftmost_difference(&own, theirs).map(|i| Move::Pick { child: i as u32 }))
        }
        Some(MoveKind::PickElement) => {
            let theirs = v.chunk_bytes.as_ref().ok_or(AgentError::View("no chunk bytes"))?;
            let own = honest.chunk_bytes(node_of(v)?, v.chunk.ok_or(AgentError::View("no pinned chunk"))?)?;
            let sz = v.output_dtype.ok_or(AgentError::View("no output dtype"))?.size();
            let n = theirs.len() / sz;
            Ok((0..n)
                .find(|&i| own.get(i * sz..(i + 1) * sz) != theirs.get(i * sz..(i + 1) * sz))
                .map(|i| Move::PickElement { offset: i as u64 }))
        }
        _ => Ok(None),
    }
}

/// Whether an honest re-execution disagrees with `record`: `Ok(true)` means
/// the record's outputs are wrong and a dispute will be won.
pub fn record_is_wrong(record: &InferenceRecord, honest: &DisputeProver) -> Result<bool, AgentError> {
    let c = honest.claim()?;
    if c.program_root != record.program_root || c.input_root != record.input_root {
        return Err(AgentError::WrongRecord);
    }
    Ok(c.output_root != record.output_root)
}
