//! Small shared types: account ids, sides, signatures.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::hash::Hash32;

/// An account: the 32 bytes of its ed25519 public key. The same bytes are
/// the `sequencer` field of the batch headers the account posts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// As the 32-byte id batch headers carry.
    pub fn as_hash(&self) -> Hash32 {
        Hash32(self.0)
    }

    /// Of an ed25519 verifying key.
    pub fn of_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters, with or without `0x`.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        Ok(Self(Hash32::from_hex(s)?.0))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", self.to_hex()))
    }
}

impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        AccountId::from_hex(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid account id: {}", Hash32::explain_hex_error(&s, &e))))
    }
}

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Sig64(pub [u8; 64]);

impl fmt::Debug for Sig64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}…", hex::encode(&self.0[..8]))
    }
}

impl serde::Serialize for Sig64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(self.0)))
    }
}

impl<'de> serde::Deserialize<'de> for Sig64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let s = s.strip_prefix("0x").unwrap_or(&s);
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|e| serde::de::Error::custom(format!("invalid signature: {e}")))?;
        Ok(Self(out))
    }
}

/// A party of a game.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The sequencer whose record is disputed.
    Defender,
    /// The account that opened the game.
    Challenger,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Defender => Side::Challenger,
            Side::Challenger => Side::Defender,
        }
    }

    /// 0 for the defender, 1 for the challenger (index into per-side arrays).
    pub fn idx(self) -> usize {
        match self {
            Side::Defender => 0,
            Side::Challenger => 1,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Defender => "defender",
            Side::Challenger => "challenger",
        })
    }
}

/// Serde as the hex of the borsh encoding (for types without serde, e.g.
/// batch bodies inside a JSON transaction).
pub mod borsh_hex {
    use borsh::{BorshDeserialize, BorshSerialize};

    /// Serialises `v` as hex of its borsh bytes.
    pub fn serialize<T: BorshSerialize, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let bytes = borsh::to_vec(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&hex::encode(bytes))
    }

    /// Parses hex of borsh bytes.
    pub fn deserialize<'de, T: BorshDeserialize, D: serde::Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(serde::de::Error::custom)?;
        borsh::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}
