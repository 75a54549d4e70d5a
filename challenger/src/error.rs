//! The library's one error type.

use verinfer_prover::game::agent::AgentError;

/// Everything that can stop the challenger or one of its tasks.
///
/// Network input never panics the bot: malformed answers from the node come
/// back as [`ChallengerError::BadResponse`] and the task that saw them
/// retries or skips, with a log line saying which.
#[derive(Debug, thiserror::Error)]
pub enum ChallengerError {
    /// The JSON-RPC transport or the node answered an error.
    #[error("rpc {method}: {message}")]
    Rpc {
        /// The method called.
        method: &'static str,
        /// The error (code and message when the node sent one).
        message: String,
        /// The JSON-RPC error code, if the node sent one.
        code: Option<i32>,
    },
    /// The node's answer does not decode or does not check out (a body
    /// that does not hash to its header, a program whose root is not the
    /// record's, …).
    #[error("bad response from {method}: {message}")]
    BadResponse {
        /// The method called.
        method: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The referee rejected a transaction (its reason).
    #[error("transaction {tx} rejected: {reason}")]
    TxRejected {
        /// `Tx::name()`.
        tx: &'static str,
        /// The referee's reason.
        reason: String,
    },
    /// One more dispute bond cannot be posted: the free balance is short,
    /// or the bond would exceed the `--bond` budget (the message's advice
    /// names the limit that binds).
    #[error("account {account}: {shortfall}")]
    InsufficientBond {
        /// The challenger's account (`0x`-hex).
        account: String,
        /// Which limit binds, with the figures.
        shortfall: crate::solver::Shortfall,
    },
    /// The node did not serve data the referee holds a commitment to (a
    /// model's program, a batch's body): no answer, an error, or an answer
    /// that does not check out against the commitment. A sequencer may
    /// withhold the data of a wrong record on purpose, so this is retried
    /// while the record's window is open (`solver::fetch_retry`).
    #[error("{what} not served: {message}")]
    NotServed {
        /// What was asked for (`program`, `body`).
        what: &'static str,
        /// The last failure.
        message: String,
    },
    /// The move solver failed (prover error or a corrupt view).
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
    /// Canonical execution failed.
    #[error("prover: {0}")]
    Prover(#[from] verinfer_prover::ProverError),
    /// The challenger's own database.
    #[error("database: {0}")]
    Db(String),
    /// Configuration or key file.
    #[error("config: {0}")]
    Config(String),
    /// I/O (key file, metrics listener).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<verinfer_state::store::KvError> for ChallengerError {
    fn from(e: verinfer_state::store::KvError) -> Self {
        ChallengerError::Db(e.to_string())
    }
}

/// Result alias.
pub type Result<T, E = ChallengerError> = std::result::Result<T, E>;
