//! Canonical encoding of protocol messages: strict borsh with a version byte.
//!
//! Every byte the protocol stores or hashes is borsh. Top-level messages
//! (anything stored as a value or hashed on its own: model entries, records,
//! headers, bodies, receipts, …) are declared with [`versioned_message!`](crate::versioned_message),
//! whose borsh encoding is `version:u8 || fields…`. A later format gets a new
//! version number and a decoder that dispatches on that byte, so old and new
//! values can coexist in one store or on one wire.
//!
//! [`decode`] is the only way bytes from disk or the network become values:
//! it rejects trailing bytes, truncated input and unknown versions with
//! precise [`DecodeError`] variants, and relies on borsh (plus the checks in
//! [`crate::tensor`]) never to allocate much more than the input supplies, so
//! an absurd length prefix costs an error, not memory.
//!
//! ## Invariants
//! * `encode(decode(b)?) == b` for every accepted `b`: each value has
//!   exactly one encoding, and extra invariants a type has (checked by its
//!   `check` hook) are enforced at decode time, so nothing that decodes can
//!   re-encode differently.
//! * Hashes are always taken over [`encode`]d values, never over received
//!   bytes.

use borsh::{BorshDeserialize, BorshSerialize};

/// A top-level message: a value stored or hashed on its own.
pub trait Message: BorshSerialize + BorshDeserialize {
    /// The message's name, used in errors.
    const NAME: &'static str;
    /// The version byte this build writes (and the only one it reads).
    const VERSION: u8;
}

/// Why bytes were not accepted as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("{what}: input truncated")]
    Truncated {
        /// The type being decoded.
        what: &'static str,
    },
    /// The value ended before the input did.
    #[error("{what}: {extra} trailing bytes")]
    TrailingBytes {
        /// The type being decoded.
        what: &'static str,
        /// Bytes left over.
        extra: usize,
    },
    /// A version byte this build does not read.
    #[error("{what}: unsupported version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The message.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A field violates an invariant of its type (see [`Malformed`]).
    #[error("{what}: {source}")]
    Malformed {
        /// The type being decoded.
        what: &'static str,
        /// The violated invariant.
        source: Malformed,
    },
    /// Borsh rejected the bytes (bad enum tag, bool, UTF-8, tensor bytes, …).
    #[error("{what}: invalid encoding: {detail}")]
    Invalid {
        /// The type being decoded.
        what: &'static str,
        /// Borsh's description.
        detail: String,
    },
}

/// An invariant violated inside a message, raised by decoders and carried
/// through borsh's `io::Error` so that [`decode`] can report it precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A nested message with an unknown version byte.
    #[error("nested {what} has unsupported version {found} (reads {supported})")]
    Version {
        /// The nested message.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A type-specific invariant, named.
    #[error("{0}")]
    Invariant(&'static str),
}

impl Malformed {
    /// Wraps into the `io::Error` borsh decoders return.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }
}

/// The canonical bytes of `value`.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and no protocol type's serializer
    // returns an error of its own.
    value.serialize(&mut out).expect("borsh serialization into a Vec is infallible");
    out
}

/// Decodes a top-level message, requiring its version byte and every byte
/// of `bytes` to be consumed.
pub fn decode<T: Message>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.first() {
        None => return Err(DecodeError::Truncated { what: T::NAME }),
        Some(&v) if v != T::VERSION => {
            return Err(DecodeError::UnsupportedVersion { what: T::NAME, found: v, supported: T::VERSION });
        }
        Some(_) => {}
    }
    decode_as(T::NAME, bytes)
}

/// Decodes any borsh value strictly (no trailing bytes), naming it `what` in
/// errors. Use [`decode`] for top-level messages.
pub fn decode_as<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let mut rest = bytes;
    let value = T::deserialize(&mut rest).map_err(|e| io_to_decode(what, e))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { what, extra: rest.len() });
    }
    Ok(value)
}

fn io_to_decode(what: &'static str, e: std::io::Error) -> DecodeError {
    // Borsh reports running out of input as InvalidData with this fixed
    // message (borsh 1.x, `ERROR_UNEXPECTED_LENGTH_OF_INPUT`); our own
    // readers use UnexpectedEof.
    if e.kind() == std::io::ErrorKind::UnexpectedEof || e.to_string() == "Unexpected length of input" {
        return DecodeError::Truncated { what };
    }
    if let Some(m) = e.get_ref().and_then(|inner| inner.downcast_ref::<Malformed>()) {
        if let Malformed::Version { what: inner_what, found, supported } = m
            && *inner_what == what
        {
            return DecodeError::UnsupportedVersion { what, found: *found, supported: *supported };
        }
        return DecodeError::Malformed { what, source: m.clone() };
    }
    DecodeError::Invalid { what, detail: e.to_string() }
}

/// Declares a top-level message: a struct whose borsh encoding is its
/// version byte followed by its fields in declaration order, and which
/// implements [`Message`]. An optional `check = path` names a
/// `fn(&Self) -> Result<(), Malformed>` run after decoding, for invariants
/// borsh cannot express.
#[macro_export]
macro_rules! versioned_message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident (name = $label:literal, version = $ver:literal $(, check = $check:path)?) {
            $( $(#[$fmeta:meta])* pub $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name { $( $(#[$fmeta])* pub $field : $fty ),* }

        impl $crate::codec::Message for $name {
            const NAME: &'static str = $label;
            const VERSION: u8 = $ver;
        }

        impl ::borsh::BorshSerialize for $name {
            fn serialize<W: ::std::io::Write>(&self, w: &mut W) -> ::std::io::Result<()> {
                ::borsh::BorshSerialize::serialize(&($ver as u8), w)?;
                $( ::borsh::BorshSerialize::serialize(&self.$field, w)?; )*
                Ok(())
            }
        }

        impl ::borsh::BorshDeserialize for $name {
            fn deserialize_reader<R: ::std::io::Read>(r: &mut R) -> ::std::io::Result<Self> {
                let v = <u8 as ::borsh::BorshDeserialize>::deserialize_reader(r)?;
                if v != $ver {
                    return Err($crate::codec::Malformed::Version {
                        what: $label,
                        found: v,
                        supported: $ver,
                    }
                    .into_io());
                }
                let value = Self {
                    $( $field: ::borsh::BorshDeserialize::deserialize_reader(r)?, )*
                };
                $( $check(&value).map_err($crate::codec::Malformed::into_io)?; )?
                Ok(value)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    versioned_message! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Probe (name = "Probe", version = 1, check = probe_check) {
            pub a: u64,
            pub b: Vec<u8>,
        }
    }

    fn probe_check(p: &Probe) -> Result<(), Malformed> {
        if p.a == 7 { Err(Malformed::Invariant("a must not be 7")) } else { Ok(()) }
    }

    versioned_message! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Outer (name = "Outer", version = 3) {
            pub inner: Probe,
        }
    }

    #[test]
    fn version_byte_leads() {
        let p = Probe { a: 1, b: vec![9] };
        let enc = encode(&p);
        assert_eq!(enc[0], 1);
        assert_eq!(decode::<Probe>(&enc).unwrap(), p);
    }

    #[test]
    fn precise_errors() {
        let p = Probe { a: 1, b: vec![9, 9] };
        let enc = encode(&p);
        let mut trailing = enc.clone();
        trailing.push(0);
        assert_eq!(decode::<Probe>(&trailing), Err(DecodeError::TrailingBytes { what: "Probe", extra: 1 }));
        assert_eq!(decode::<Probe>(&enc[..enc.len() - 1]), Err(DecodeError::Truncated { what: "Probe" }));
        assert_eq!(decode::<Probe>(&[]), Err(DecodeError::Truncated { what: "Probe" }));
        let mut v2 = enc.clone();
        v2[0] = 2;
        assert_eq!(
            decode::<Probe>(&v2),
            Err(DecodeError::UnsupportedVersion { what: "Probe", found: 2, supported: 1 })
        );
        let seven = encode(&Probe { a: 7, b: vec![] });
        assert_eq!(
            decode::<Probe>(&seven),
            Err(DecodeError::Malformed { what: "Probe", source: Malformed::Invariant("a must not be 7") })
        );
        // A nested version error names the nested type.
        let mut outer = encode(&Outer { inner: p });
        outer[1] = 9;
        assert_eq!(
            decode::<Outer>(&outer),
            Err(DecodeError::Malformed {
                what: "Outer",
                source: Malformed::Version { what: "Probe", found: 9, supported: 1 }
            })
        );
    }

    #[test]
    fn absurd_length_is_cheap() {
        // version 1, a = 0, b's length prefix u32::MAX, then nothing.
        let mut enc = vec![1u8];
        enc.extend(0u64.to_le_bytes());
        enc.extend(u32::MAX.to_le_bytes());
        crate::test_alloc::reset();
        assert_eq!(decode::<Probe>(&enc), Err(DecodeError::Truncated { what: "Probe" }));
        let peak = crate::test_alloc::peak();
        assert!(peak <= 2 << 20, "peak single allocation {peak} bytes");
    }
}
