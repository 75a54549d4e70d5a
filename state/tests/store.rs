//! Integration tests of the store over RocksDB: reopening, schema checks,
//! checkpoints, explorer reads, and recovery after SIGKILL at random moments.
//!
//! One binary (so RocksDB links once); the crash test re-executes this binary
//! as its writer child.

#[path = "store/common.rs"]
mod common;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/rocks.rs"]
mod rocks;
