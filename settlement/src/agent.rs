//! Move solvers for the two sides; defined in [`verinfer_prover::game::agent`]
//! (the challenger bot uses them without linking the referee).

pub use verinfer_prover::game::agent::*;
