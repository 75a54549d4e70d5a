//! Integration tests of the store over RocksDB: reopening, schema checks,
//! checkpoints, explorer reads, and recovery after SIGKILL at random moments.
//!
//! One binary (so RocksDB links once); the crash test re-executes this binary
//! as its writer child.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "store/common.rs"]
mod common;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/rocks.rs"]
mod rocks;
