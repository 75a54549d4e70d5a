//! # verinfer-prover
//!
//! Turns an ONNX model into a canonical [`program::Program`] and executes it
//! with bit-exact, platform-independent semantics; produces traces and (in
//! the dispute game) the openings and one-step proofs the referee checks.
//!
//! ## Design
//! * **Frontend** ([`frontend`]): ONNX bytes + concrete input shapes →
//!   tract-onnx `into_typed().into_decluttered()` → lowering into the
//!   canonical op set. tract is only the frontend; its kernels are never used
//!   for canonical results because they differ across CPUs.
//! * **Semantics** ([`ops`]): every output element of every op is a fold
//!   `init → step… → finish` with an explicit order; the same code defines
//!   the operands a step reads and what it computes ([`ops::ElementFold`]).
//! * **Arithmetic**: IEEE binary32, round-to-nearest-even, no flush-to-zero,
//!   `fma` only where an op's definition says so, canonical NaN
//!   (`0x7fc00000`) for every NaN produced, transcendentals from [`math`]
//!   (own algorithms, never the platform libm).
//! * **Pipeline types**: `Model → Program → Trace`.
//!
//! ## Invariants
//! * The program root depends only on the ONNX bytes, the input shapes and
//!   the pinned tract version, never on the machine.
//! * Execution results depend only on the program and the inputs.
//! * Nothing here reads a clock or the network.

pub mod dispute;
pub mod error;
pub mod exec;
pub mod fast;
pub mod frontend;
pub mod game;
pub mod math;
pub mod onnx_builder;
pub mod ops;
pub mod program;
pub mod trace;

pub use error::ProverError;
pub use exec::{Execution, execute};
pub use frontend::{Model, load_model};
pub use program::Program;
pub use trace::Trace;
