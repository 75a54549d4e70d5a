//! The dispute game's messages and views, shared by the referee
//! (`verinfer_settlement`), the sequencer's defender and the challenger bot.
//!
//! They live in `prover` because the moves carry the prover's dispute
//! payloads and because the challenger may depend on `state`, `prover` and
//! `rpc` but not on the referee (PROTOCOL.md §1): a real deployment's bot
//! talks to a contract, it does not link it. The referee's transition
//! function, clocks and bonds stay in `verinfer_settlement`.
//!
//! * [`types`]: account ids (ed25519 public keys), sides, signatures.
//! * [`tx`]: transactions, moves, the signed envelope.
//! * [`view`]: what a game looks like from outside ([`view::GameView`]) and
//!   the records a game keeps (transcript, resolution, pinpoint).
//! * [`agent`]: the pure move solvers of both sides.
//! * [`keyfile`]: the key files of the sequencer and the challenger.

pub mod agent;
pub mod keyfile;
pub mod tx;
pub mod types;
pub mod view;
