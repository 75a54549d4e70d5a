//! # verinfer-state
//!
//! The protocol's data: tensors and their canonical bytes, domain-separated
//! hashing, Merkle commitments with single-leaf proofs, models, inference
//! records, batches and receipts, and the node's crash-safe store (RocksDB
//! behind the `rocksdb` feature, an in-memory backend always).
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
//! * Top-level messages ([`codec`]) encode as `version:u8 || borsh fields`,
//!   so later formats can coexist with this one.
//! * Records are batch leaves ([`record`]); headers commit to them with a
//!   bound Merkle root, and [`batch::verify_inclusion`] checks a record
//!   against a header with nothing else.
//! * The store ([`store`]) acknowledges a request once it is in a durable
//!   but unsynced pending log, and seals a batch with one atomic, synced
//!   write (docs/decisions/0003-acknowledgement-and-durability.md).
//!
//! ## Invariants
//! * Every encoding has exactly one accepted form: borsh with strict
//!   decoding, tensors checked for length and canonical bools.
//! * Nothing here reads a clock or the network; nothing panics on bytes
//!   from outside (every decoder returns a typed error).

pub mod batch;
pub mod codec;
pub mod hash;
mod hash_many;
pub mod merkle;
pub mod model;
pub mod npy;
pub mod receipt;
pub mod record;
pub mod store;
pub mod tensor;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_alloc;

pub use batch::{BatchBody, BatchHeader, BodyEntry, Inclusion, InclusionError, verify_inclusion};
pub use codec::{DecodeError, Message, decode, encode};
pub use hash::{Domain, Hash32};
pub use merkle::{MerkleError, MerkleProof, MerkleTree};
pub use model::{ModelEntry, TensorSpec};
pub use receipt::{Receipt, Status};
pub use record::{InferenceRecord, RecordTensors};
pub use store::{Store, StoreError, StoreOptions};
pub use tensor::{DType, Scalar, Tensor, TensorData, TensorError};
