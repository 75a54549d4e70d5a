//! Events: what the state machine reports for explorers and logs. Every
//! applied transaction returns its events in order.

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::hash::Hash32;

use crate::game::{Level, Pinpoint, ResolutionReason, TreeKind};
use crate::tx::MoveKind;
use crate::types::{AccountId, Side};

/// Where value sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "holder", rename_all = "snake_case")]
pub enum Holder {
    /// Outside the state machine (deposits come from, withdrawals go to).
    Outside,
    /// An account's free balance.
    Free {
        /// Account.
        account: AccountId,
    },
    /// A sequencer's bond.
    Bond {
        /// Sequencer.
        account: AccountId,
    },
    /// A game's escrow.
    Escrow {
        /// Game.
        game: u64,
    },
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Value moved between holders (deposit, withdrawal, bond, escrow, payout).
    Transfer {
        /// From.
        from: Holder,
        /// To.
        to: Holder,
        /// Amount.
        amount: u64,
    },
    /// A batch was posted.
    BatchPosted {
        /// Number.
        number: u64,
        /// Header hash.
        hash: Hash32,
        /// Poster.
        sequencer: AccountId,
        /// Records.
        records: u64,
        /// End of its challenge window.
        window_end_ms: u64,
    },
    /// A game was opened.
    DisputeOpened {
        /// Game id.
        game: u64,
        /// Batch.
        batch: u64,
        /// Record index.
        index: u64,
        /// Challenger.
        challenger: AccountId,
        /// Defender.
        defender: AccountId,
        /// Challenger bond locked.
        challenger_bond: u64,
        /// Defender stake locked.
        defender_stake: u64,
    },
    /// A move was accepted.
    MoveMade {
        /// Game id.
        game: u64,
        /// Position in the game.
        seq: u32,
        /// Mover.
        side: Side,
        /// Kind.
        kind: MoveKind,
        /// Level the game was at.
        level: Level,
        /// Cursor `(tree, level, index)` the move applied to.
        cursor: Option<(TreeKind, u32, u64)>,
        /// Encoded size.
        bytes: u64,
        /// The mover's clock left.
        clock_left_ms: u64,
    },
    /// A game ended.
    GameResolved {
        /// Game id.
        game: u64,
        /// Winner.
        winner: Side,
        /// Why.
        reason: ResolutionReason,
        /// What was pinned (node, element, step, operands, values).
        pinpoint: Pinpoint,
        /// Escrow paid to the winner.
        payout: u64,
    },
    /// A record was proven fraudulent.
    RecordVoided {
        /// Batch.
        batch: u64,
        /// Index.
        index: u64,
        /// The game that proved it.
        game: u64,
    },
    /// Every record of a batch is final or void; its body need no longer be served.
    BatchSettled {
        /// Batch.
        number: u64,
        /// Void records.
        void: Vec<u64>,
    },
}
