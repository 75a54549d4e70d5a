//! # verinfer-settlement
//!
//! The referee as a pure, deterministic state machine (PROTOCOL.md §4,
//! `docs/dispute-game.md`, `docs/settlement.md`): accounts and deposits,
//! sequencer bonds, batch posting with bodies (data availability), per-batch
//! challenge windows, record finality, and dispute games with chess clocks
//! that descend the trace, the pinned node's output and the pinned element's
//! fold states down to one step, which the referee recomputes.
//!
//! ## Design
//! * [`Settlement`] holds the whole state in `BTreeMap`s; it is borsh
//!   encodable ([`Settlement::to_bytes`]) so a host persists and restores it.
//! * No clock and no I/O: every entry point takes `now_ms`. Entry points:
//!   [`Settlement::deposit`] (privileged), [`Settlement::apply_signed`]
//!   (ed25519 [`SignedTx`] with nonces), [`Settlement::apply`] (unsigned, for
//!   in-process callers), [`Settlement::tick`] (settles batches whose window
//!   passed). Each returns [`Event`]s.
//! * A transaction is validated completely before anything is written: a
//!   rejected one returns a precise [`TxError`] and changes nothing.
//! * Every move is checked by [`game::Game::advance`] with the verifier
//!   functions of `verinfer_prover::dispute`.
//! * [`agent`] holds the pure move solvers both the node's defender and the
//!   challenger bot use; [`view::GameView`] is what they (and explorers) read.
//!
//! ## Invariants
//! * `total deposited = total withdrawn + Σ free + Σ bonds + Σ open escrows`
//!   ([`Settlement::check_conservation`]).
//! * A record is void exactly when a game on it was won by its challenger.
//! * Time never goes backwards across applied transactions.

pub mod agent;
pub mod error;
pub mod event;
pub mod game;
pub mod params;
pub mod state;
pub mod tx;
pub mod types;
pub mod view;

pub use error::{MoveError, TxError};
pub use event::{Event, Holder};
pub use game::{Game, Level, Phase, Pinpoint, Resolution, ResolutionReason, TreeKind};
pub use params::Params;
pub use state::{Account, BatchEntry, QueryError, RecordDisputes, Sequencer, Settlement, Totals};
pub use tx::{Move, MoveKind, SignedTx, Tx};
pub use types::{AccountId, Side};
pub use view::GameView;
