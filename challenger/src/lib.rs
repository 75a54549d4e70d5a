//! # verinfer-challenger
//!
//! The challenger bot: follows the node's batches, re-executes every
//! (sampled) record with the canonical executor, disputes records whose
//! output root differs, and plays each game to its end with the honest
//! strategy, claiming timeouts when the defender is silent.
//!
//! Shape (after Optimism's op-challenger): a loader ([`chain`]) reads and
//! checks what the node serves; a pure solver ([`solver`]) turns state into
//! actions (judge a record; the next move of a game); a responder
//! ([`runner`]) signs and sends them. Progress, verdicts and games are
//! persisted in the bot's own RocksDB ([`db`]) so a killed bot resumes and
//! still wins. Design, flags and metrics: `docs/challenger.md`.
//!
//! Dependencies are `state`, `prover` and the `rpc` client only
//! (PROTOCOL.md §1): the bot talks to the referee through its API and never
//! links it (decision 0009).

pub mod chain;
pub mod config;
pub mod db;
pub mod error;
pub mod exec;
pub mod metrics;
pub mod runner;
pub mod solver;

pub use config::{Config, Overrides};
pub use error::{ChallengerError, Result};
pub use runner::RunningChallenger;
