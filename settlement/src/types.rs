//! Small shared types: account ids, sides, signatures. Defined in
//! [`verinfer_prover::game::types`] (shared with the challenger, which does
//! not link the referee); re-exported here.

pub use verinfer_prover::game::types::*;
