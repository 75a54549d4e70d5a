//! # verinfer-state
//!
//! The protocol's data: tensors and their canonical bytes, domain-separated
//! hashing, Merkle commitments with single-leaf proofs, and (later) records,
//! batches and the RocksDB store.
//!
//! ## Design
//! * One hash function, SHA-256, with a one-byte domain tag in front of every
//!   preimage ([`hash::Domain`]). The tag table is a protocol constant.
//! * Merkle trees are built by `rs_merkle` and wrapped ([`merkle`]): inner
//!   nodes carry their own tag, roots are bound to the leaf count, proofs are
//!   single-leaf and verified by our own code.
//! * A tensor's root ([`tensor::Tensor::root`]) commits to its dtype, shape
//!   and little-endian bytes in 256-byte chunks, so one element can be
//!   opened with one chunk and one path.
//!
//! ## Invariants
//! * Every encoding has exactly one accepted form: borsh with strict
//!   decoding, tensors checked for length and canonical bools.
//! * Nothing here reads a clock or the network; nothing panics on bytes
//!   from outside (every decoder returns a typed error).

pub mod hash;
pub mod merkle;
pub mod npy;
pub mod tensor;

pub use hash::{Domain, Hash32};
pub use merkle::{MerkleError, MerkleProof, MerkleTree};
pub use tensor::{DType, Scalar, Tensor, TensorData, TensorError};
