//! Why a transaction or a move was rejected. A rejected transaction changes
//! nothing: no balance, no clock, no nonce.

use verinfer_prover::dispute::DisputeError;
use verinfer_state::batch::{BodyError, InclusionError};
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::MerkleError;

use crate::game::TreeKind;
use crate::tx::MoveKind;
use crate::types::{AccountId, Side};

/// Why a move's payload was rejected by the referee.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MoveError {
    /// A dissection reveal has the wrong number of nodes or coordinates.
    #[error("{tree} reveal at level {level} index {index}: {source}")]
    RevealShape {
        /// The tree.
        tree: TreeKind,
        /// Cursor level.
        level: u32,
        /// Cursor index.
        index: u64,
        /// Why.
        source: MerkleError,
    },
    /// The revealed nodes do not hash to the cursor node.
    #[error("{tree} reveal at level {level} index {index} does not hash to the cursor node")]
    RevealMismatch {
        /// The tree.
        tree: TreeKind,
        /// Cursor level.
        level: u32,
        /// Cursor index.
        index: u64,
    },
    /// A pick outside the revealed list.
    #[error("pick {pick} out of range: {children} children revealed")]
    PickOutOfRange {
        /// The pick.
        pick: u64,
        /// Revealed children.
        children: u64,
    },
    /// A check of `prover::dispute` failed.
    #[error(transparent)]
    Dispute(#[from] DisputeError),
}

/// Why a transaction was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify for the signer and chain.
    #[error("bad signature")]
    BadSignature,
    /// The nonce is not the signer's next one.
    #[error("nonce {got}, expected {expected}")]
    BadNonce {
        /// The signer's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// `now` is earlier than the last applied transaction's time.
    #[error("time went backwards: {now_ms} < {last_ms}")]
    TimeRegression {
        /// The argument.
        now_ms: u64,
        /// The state's time.
        last_ms: u64,
    },
    /// A zero amount.
    #[error("amount must be positive")]
    ZeroAmount,
    /// Not enough free balance.
    #[error("{account:?} has {available}, needs {needed}")]
    InsufficientBalance {
        /// The account.
        account: AccountId,
        /// Needed.
        needed: u64,
        /// Free balance.
        available: u64,
    },
    /// An amount overflowed 64 bits.
    #[error("amount overflow")]
    Overflow,
    /// The sender has no sequencer bond.
    #[error("{0:?} is not a bonded sequencer")]
    NotSequencer(AccountId),
    /// The sender's bond is below the minimum to post.
    #[error("sequencer bond {bond} below the minimum {min}")]
    BondBelowMinimum {
        /// The bond.
        bond: u64,
        /// The minimum.
        min: u64,
    },
    /// Unbonding with a game open against the sequencer.
    #[error("{open} game(s) open against the sequencer")]
    UnbondOpenGames {
        /// Open games.
        open: u32,
    },
    /// Unbonding before a posted batch's window closed.
    #[error("batch windows open until {until_ms} ms")]
    UnbondWindowOpen {
        /// When the last window closes.
        until_ms: u64,
    },
    /// The batch is not the next in the chain.
    #[error("batch number {got}, expected {expected}")]
    WrongBatchNumber {
        /// Expected.
        expected: u64,
        /// Given.
        got: u64,
    },
    /// The parent hash is not the head's hash.
    #[error("parent hash {got}, expected {expected}")]
    WrongParent {
        /// The head's hash.
        expected: Hash32,
        /// Given.
        got: Hash32,
    },
    /// The header names another sequencer than the sender.
    #[error("header sequencer {header} is not the sender")]
    WrongSequencer {
        /// The header's field.
        header: Hash32,
    },
    /// The header's timestamp is before its parent's.
    #[error("timestamp {got} before the parent's {parent}")]
    TimestampBeforeParent {
        /// The parent's.
        parent: u64,
        /// Given.
        got: u64,
    },
    /// The body does not match the header.
    #[error("body: {0}")]
    Body(#[from] BodyError),
    /// No such batch.
    #[error("no batch {0}")]
    UnknownBatch(u64),
    /// The batch is settled (its records are final or void).
    #[error("batch {0} is settled")]
    BatchSettled(u64),
    /// The challenge window is closed.
    #[error("challenge window of batch {batch} closed at {window_end_ms} ms")]
    WindowClosed {
        /// Batch.
        batch: u64,
        /// Window end.
        window_end_ms: u64,
    },
    /// The record is not in the batch at that index.
    #[error("inclusion: {0}")]
    Inclusion(#[from] InclusionError),
    /// The proof is for another index than the one named.
    #[error("proof is for index {proof}, dispute names {index}")]
    IndexMismatch {
        /// The proof's.
        proof: u64,
        /// The named index.
        index: u64,
    },
    /// The record is already void.
    #[error("record {batch}/{index} is already void")]
    RecordVoid {
        /// Batch.
        batch: u64,
        /// Index.
        index: u64,
    },
    /// A sequencer disputing its own batch.
    #[error("a sequencer cannot dispute its own batch")]
    SelfDispute,
    /// No such game.
    #[error("no game {0}")]
    UnknownGame(u64),
    /// The game is over.
    #[error("game {0} is resolved")]
    GameOver(u64),
    /// The sender is not a party of the game.
    #[error("{0:?} is not a party of this game")]
    NotAParty(AccountId),
    /// Not the sender's turn.
    #[error("it is the {to_move}'s turn")]
    NotYourTurn {
        /// Who must move.
        to_move: Side,
    },
    /// The move's `seq` is not the game's move count.
    #[error("move seq {got}, the game is at {expected}")]
    StaleMove {
        /// The game's move count.
        expected: u32,
        /// Given.
        got: u32,
    },
    /// The mover's clock has run out; the move is rejected (claim the timeout).
    #[error("{side}'s clock ran out at {deadline_ms} ms")]
    ClockExpired {
        /// The side.
        side: Side,
        /// When its clock ran out.
        deadline_ms: u64,
    },
    /// A timeout claimed before the clock ran out.
    #[error("the {side}'s clock runs until {deadline_ms} ms")]
    ClockRunning {
        /// The side to move.
        side: Side,
        /// When its clock runs out.
        deadline_ms: u64,
    },
    /// A move of the wrong kind for the game's state.
    #[error("expected a {expected:?} move, got {got:?}")]
    WrongMove {
        /// Expected.
        expected: MoveKind,
        /// Given.
        got: MoveKind,
    },
    /// The move's payload failed the referee's checks.
    #[error("invalid {kind:?}: {source}")]
    InvalidMove {
        /// The move.
        kind: MoveKind,
        /// Why.
        source: MoveError,
    },
}
