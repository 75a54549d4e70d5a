//! The settlement crate's integration tests (one binary):
//!
//! * `rules` — game and settlement rules on a toy program (no ONNX), each
//!   test named after the rule it checks;
//! * `forgery` — forged evidence that once won a game for a lying defender,
//!   now refused;
//! * `ops` — a one-step proof for every op of the canonical set, accepted,
//!   and rejected with any single field altered; golden proof fixtures;
//! * `soundness` — randomized games over the corpus models with faults and
//!   dishonest strategies for either side (`VERINFER_FUZZ_CASES` for more);
//! * `report` — rounds, bytes, proof sizes and times per model
//!   (`--ignored --nocapture`, release build).
//!
//! Every state change goes through [`common::Chain`], which checks after
//! each transaction that value is conserved and that a rejected transaction
//! changed nothing.

#[path = "settlement/common.rs"]
mod common;
#[path = "settlement/forgery.rs"]
mod forgery;
#[path = "settlement/ops.rs"]
mod ops;
#[path = "settlement/report.rs"]
mod report;
#[path = "settlement/rules.rs"]
mod rules;
#[path = "settlement/soundness.rs"]
mod soundness;
