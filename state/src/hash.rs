//! Domain-separated SHA-256.
//!
//! Every hash in the protocol is `SHA-256(tag || payload)` where `tag` is one
//! byte naming what is hashed. No two kinds of object share a tag, so a leaf
//! can never be read as an inner node, a record as a header, and so on. The
//! table of tags is part of the protocol (`docs/commitments.md`); a new kind
//! of object gets a new tag, never a reused one.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero hash, used only as an explicit "absent" marker.
    pub const ZERO: Self = Self([0u8; 32]);

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters, with or without a `0x` prefix.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }

    /// Why `s` is not a 32-byte hex hash, for messages: what was expected
    /// and what was found (hex's own errors say only "Invalid string
    /// length" or "Odd number of digits").
    pub fn explain_hex_error(s: &str, e: &hex::FromHexError) -> String {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        match e {
            hex::FromHexError::InvalidHexCharacter { c, index } => {
                format!("{c:?} at position {index} of the digits is not a hex digit")
            }
            _ => format!("expected 64 hex digits (32 bytes, `0x` optional), got {}", digits.chars().count()),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl From<[u8; 32]> for Hash32 {
    fn from(b: [u8; 32]) -> Self {
        Self(b)
    }
}

impl serde::Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", self.to_hex()))
    }
}

impl<'de> serde::Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Hash32::from_hex(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid hash: {}", Hash32::explain_hex_error(&s, &e))))
    }
}

/// The one-byte domain tags. Values are protocol constants: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Domain {
    /// Inner node of any Merkle tree: `tag || left || right`.
    MerkleInner = 0x01,
    /// A tree's root bound to its leaf count: `tag || n:u64le || inner_root`.
    MerkleRoot = 0x02,
    /// One chunk of a tensor's canonical bytes: `tag || bytes`.
    TensorChunk = 0x10,
    /// A tensor root: `tag || dtype || rank || dims || chunk_tree_root`.
    Tensor = 0x11,
    /// A list of tensor roots (a request's inputs, a record's outputs).
    TensorList = 0x12,
    /// Program leaf 0: the program header (input and output signatures).
    ProgramHeader = 0x20,
    /// Program leaf: one node descriptor.
    ProgramNode = 0x21,
    /// Program leaf: one constant tensor's root.
    ProgramConst = 0x22,
    /// The program root: `tag || program_tree_root`.
    Program = 0x23,
    /// Trace leaf 0: binds the program root and the input root.
    TraceBinding = 0x30,
    /// Trace leaf: `(i, node_output_root_i)`.
    TraceNode = 0x31,
    /// The trace root.
    Trace = 0x32,
    /// A micro-step fold state of one element.
    FoldState = 0x40,
    /// An inference record (a batch leaf).
    Record = 0x50,
    /// A batch header.
    BatchHeader = 0x51,
    /// A model id (hash of the ONNX bytes).
    ModelBytes = 0x52,
    /// A request id.
    Request = 0x53,
}

/// `SHA-256(tag || parts[0] || parts[1] || …)`.
pub fn hash_parts(domain: Domain, parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([domain as u8]);
    for p in parts {
        h.update(p);
    }
    Hash32(h.finalize().into())
}

/// `SHA-256(tag || data)`.
pub fn hash(domain: Domain, data: &[u8]) -> Hash32 {
    hash_parts(domain, &[data])
}

/// An incremental domain-separated hasher, for payloads built in pieces.
#[derive(Clone)]
pub struct DomainHasher(Sha256);

impl fmt::Debug for DomainHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainHasher")
    }
}

impl DomainHasher {
    /// Starts a hash with `domain`'s tag.
    pub fn new(domain: Domain) -> Self {
        let mut h = Sha256::new();
        h.update([domain as u8]);
        Self(h)
    }

    /// Appends bytes.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(v.to_le_bytes());
        self
    }

    /// Appends a hash.
    pub fn hash32(&mut self, h: &Hash32) -> &mut Self {
        self.0.update(h.0);
        self
    }

    /// The digest.
    pub fn finish(self) -> Hash32 {
        Hash32(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_say_what_was_expected() {
        let msg = |s: &str| Hash32::explain_hex_error(s, &Hash32::from_hex(s).unwrap_err());
        assert_eq!(msg("0x12"), "expected 64 hex digits (32 bytes, `0x` optional), got 2");
        assert_eq!(msg("0x123"), "expected 64 hex digits (32 bytes, `0x` optional), got 3");
        let bad = format!("0x{}g", "0".repeat(63));
        assert_eq!(msg(&bad), "'g' at position 63 of the digits is not a hex digit");
    }

    #[test]
    fn domains_separate() {
        let a = hash(Domain::TensorChunk, b"x");
        let b = hash(Domain::Record, b"x");
        assert_ne!(a, b);
        assert_eq!(a, hash_parts(Domain::TensorChunk, &[b"", b"x"]));
    }

    #[test]
    fn hex_round_trip() {
        let h = hash(Domain::Program, b"abc");
        assert_eq!(Hash32::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash32::from_hex(&format!("0x{}", h.to_hex())).unwrap(), h);
        assert!(Hash32::from_hex("00").is_err());
        assert!(Hash32::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn known_vector() {
        // SHA-256(0x10 || "") computed independently (python hashlib).
        assert_eq!(
            hash(Domain::TensorChunk, b"").to_hex(),
            "c555eab45d08845ae9f10d452a99bfcb06f74a50b988fe7e48dd323789b88ee3"
        );
    }
}
