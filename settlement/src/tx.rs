//! Transactions and game moves, and their signed envelope. Defined in
//! [`verinfer_prover::game::tx`] (shared with the challenger, which does not
//! link the referee); re-exported here.

pub use verinfer_prover::game::tx::*;
