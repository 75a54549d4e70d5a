//! The prover's error type.

use verinfer_state::merkle::MerkleError;
use verinfer_state::tensor::{DType, TensorError};

/// Everything that can go wrong turning a model into a program or running it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProverError {
    /// tract could not load, type or declutter the model.
    #[error("model {model}: the ONNX frontend (tract) failed: {message}")]
    Frontend {
        /// Model name (file name or id).
        model: String,
        /// tract's message.
        message: String,
    },
    /// An op outside the canonical set.
    #[error("model {model}: node {node:?} uses op {op}, which is not in the canonical op set")]
    UnsupportedOp {
        /// Model name.
        model: String,
        /// Node name.
        node: String,
        /// The op (tract's name and attributes).
        op: String,
    },
    /// A dtype outside the canonical set, or an op/dtype combination without
    /// a definition.
    #[error("model {model}: node {node:?}: {why}")]
    UnsupportedDType {
        /// Model name.
        model: String,
        /// Node name.
        node: String,
        /// What is not supported.
        why: String,
    },
    /// A model input has symbolic dimensions and no shape was given.
    #[error(
        "model {model}: input {input:?} has symbolic shape {shape}; give a concrete shape (e.g. --shape {input}=1,3,224,224)"
    )]
    SymbolicInput {
        /// Model name.
        model: String,
        /// Input name.
        input: String,
        /// The shape as tract reports it.
        shape: String,
    },
    /// A shape was given whose rank differs from the one the model declares
    /// for that input.
    #[error(
        "model {model}: input {input:?} is declared with shape {declared}, but the shape given has rank {rank}: {given}"
    )]
    InputRank {
        /// Model name.
        model: String,
        /// Input name.
        input: String,
        /// The shape the model declares (symbols by name).
        declared: String,
        /// The shape given.
        given: String,
        /// Its rank.
        rank: usize,
    },
    /// A shape was given for an input the model does not have.
    #[error("model {model}: no input named {input:?} (inputs: {known})")]
    UnknownInput {
        /// Model name.
        model: String,
        /// Name given.
        input: String,
        /// The model's input names.
        known: String,
    },
    /// Request inputs do not match the program's signature.
    #[error("input {index} ({name}): expected {expected}, got {got}")]
    InputMismatch {
        /// Input position.
        index: usize,
        /// Input name.
        name: String,
        /// Expected dtype and shape.
        expected: String,
        /// Given dtype and shape.
        got: String,
    },
    /// Wrong number of request inputs.
    #[error("the program takes {expected} inputs, got {got}")]
    InputCount {
        /// Inputs the program takes.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// A structurally invalid program.
    #[error("invalid program at {node}: {why}")]
    InvalidProgram {
        /// Node (or input/output) name.
        node: String,
        /// What is wrong.
        why: String,
    },
    /// Planning the program would take more memory than the caller allows
    /// ([`crate::fast::PlanOptions::memory_limit`]).
    #[error("{what} needs {bytes} bytes, above the limit of {limit} bytes")]
    ResourceLimit {
        /// What needs the memory (a value, or the whole plan).
        what: String,
        /// Bytes it needs.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A program needs more fold steps per inference than allowed
    /// ([`crate::fast::PlanOptions::step_limit`]).
    #[error("one inference needs about {steps} fold steps (multiply-adds and the like), above the limit of {limit}")]
    ComputeLimit {
        /// Steps one inference needs ([`crate::program::Program::steps`]).
        steps: u64,
        /// The limit.
        limit: u64,
    },
    /// A dispute over one of the program's records would keep more node
    /// outputs than allowed ([`crate::fast::PlanOptions::trace_limit`]):
    /// the dispute prover holds every node's output at once.
    #[error("a dispute's trace (every node's output) needs {bytes} bytes, above the limit of {limit} bytes")]
    TraceLimit {
        /// Bytes of all node outputs ([`crate::program::Program::trace_bytes`]).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// One output element of a node folds more steps than allowed
    /// ([`crate::fast::PlanOptions::fold_limit`]): a dispute commits to the
    /// state after every step of the element it pins.
    #[error(
        "node {node} ({name}): one output element folds {steps} steps, above the limit of {limit} (a dispute \
         holds every step's state)"
    )]
    FoldLimit {
        /// The node's index.
        node: u32,
        /// The node's name.
        name: String,
        /// Steps of its longest element.
        steps: u64,
        /// The limit.
        limit: u64,
    },
    /// A data-dependent failure during execution (e.g. a gather index out of
    /// range): the request is invalid and gets no record.
    #[error("node {node:?} ({op}): {why}")]
    Exec {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What failed.
        why: String,
    },
    /// An operand read by a fold step was refused or out of range.
    #[error("fold: {0}")]
    Fold(String),
    /// A dtype the op does not define.
    #[error("{op} is not defined for {dtype}")]
    OpDType {
        /// Op name.
        op: String,
        /// Dtype.
        dtype: DType,
    },
    /// Bytes that do not decode.
    #[error("decode: {0}")]
    Decode(String),
    /// Tensor error.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Merkle error.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}
