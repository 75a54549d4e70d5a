//! # verinfer-rpc
//!
//! The node's JSON-RPC API: the method traits ([`api`], jsonrpsee
//! `#[rpc(server, client)]`), the wire types ([`types`]), tensors on the wire
//! ([`tensor`]) and the error codes ([`error`]). Depends only on
//! `verinfer-state`; the node implements the `…Server` traits, clients use
//! the `…Client` traits over HTTP or WebSocket.
//!
//! ## Invariants
//! * Every error is a JSON-RPC error with a code from [`error`] and a message
//!   naming the field at fault.
//! * Every finite f32 survives the JSON encoding bit for bit; inputs may not
//!   be non-finite, outputs may (as the strings `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`).

pub mod api;
pub mod error;
pub mod tensor;
pub mod types;

pub use api::{
    ExplorerApiClient, ExplorerApiServer, InferApiClient, InferApiServer, ModelApiClient, ModelApiServer,
    SettlementApiClient, SettlementApiServer,
};
pub use error::ApiError;
pub use tensor::{Encoding, WireTensor};
pub use types::*;

/// The jsonrpsee this API is built on (for client error types).
pub use jsonrpsee;
