//! Tensors, their canonical bytes and their roots.
//!
//! A tensor's canonical encoding is its elements in row-major order, each in
//! little-endian bytes (`bool` as one byte, 0 or 1). Its root commits to the
//! dtype, the shape and those bytes:
//!
//! ```text
//! chunk_i   = H(TensorChunk || bytes[i·256 .. min(len, (i+1)·256)])
//! chunks    = merkle_root(chunk_0 … chunk_{m-1})        (bound to m)
//! root      = H(Tensor || dtype:u8 || rank:u64 || dim_0:u64 … || chunks)
//! ```
//!
//! [`CHUNK_BYTES`] is a protocol constant: small enough that a one-step
//! proof carrying two operand chunks stays well under 4 KiB, large enough
//! that hashing adds little to the cost of producing a tensor.

use std::borrow::Cow;
use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::hash::{Domain, DomainHasher, Hash32, hash};
use crate::merkle::{MAX_LEAVES, MerkleError, MerkleProof, MerkleTree};

/// Bytes per tensor chunk (the leaf size of a tensor's Merkle tree).
pub const CHUNK_BYTES: usize = 256;

/// Largest element count of any tensor the protocol accepts (2^32).
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// Largest rank the protocol accepts.
pub const MAX_RANK: usize = 16;

/// Element types of the canonical op set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum DType {
    /// IEEE-754 binary32.
    F32 = 1,
    /// Signed 64-bit integer.
    I64 = 2,
    /// Signed 32-bit integer.
    I32 = 3,
    /// Signed 16-bit integer.
    I16 = 4,
    /// Signed 8-bit integer.
    I8 = 5,
    /// Unsigned 64-bit integer.
    U64 = 6,
    /// Unsigned 32-bit integer.
    U32 = 7,
    /// Unsigned 16-bit integer.
    U16 = 8,
    /// Unsigned 8-bit integer.
    U8 = 9,
    /// Boolean, one byte, 0 or 1.
    Bool = 10,
}

impl DType {
    /// All dtypes.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I64 | DType::U64 => 8,
            DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The lower-case name used on the wire and in `.npy` descriptors.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U64 => "u64",
            DType::U32 => "u32",
            DType::U16 => "u16",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// Parses [`DType::name`] (also accepts numpy-style `float32`, `int64`, …).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "f32" | "float32" | "float" => DType::F32,
            "i64" | "int64" => DType::I64,
            "i32" | "int32" => DType::I32,
            "i16" | "int16" => DType::I16,
            "i8" | "int8" => DType::I8,
            "u64" | "uint64" => DType::U64,
            "u32" | "uint32" => DType::U32,
            "u16" | "uint16" => DType::U16,
            "u8" | "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// True for the integer dtypes.
    pub fn is_int(self) -> bool {
        !matches!(self, DType::F32 | DType::Bool)
    }

    /// True for the signed integer dtypes.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::I16 | DType::I8)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for DType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for DType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        DType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown dtype {s:?}; expected one of f32, i64, i32, i16, i8, u64, u32, u16, u8, bool"
            ))
        })
    }
}

/// Why bytes or a shape do not make a tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// Byte length is not element count × element size.
    #[error("{dtype} tensor of shape {shape:?} needs {expected} bytes, got {got}")]
    ByteLength {
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<u64>,
        /// Bytes needed.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
    /// Element count does not match the shape.
    #[error("shape {shape:?} has {expected} elements, got {got}")]
    ElementCount {
        /// The shape.
        shape: Vec<u64>,
        /// Elements the shape has.
        expected: u64,
        /// Elements given.
        got: u64,
    },
    /// More than [`MAX_ELEMENTS`] elements or more than [`MAX_RANK`] dims.
    #[error("shape {0:?} is too large (at most {MAX_RANK} dims and {MAX_ELEMENTS} elements)")]
    TooLarge(Vec<u64>),
    /// A bool byte other than 0 or 1.
    #[error("bool element {index} has byte {byte:#04x}; only 0 and 1 are canonical")]
    BadBool {
        /// Element index.
        index: u64,
        /// The byte.
        byte: u8,
    },
    /// Element index out of range.
    #[error("element {index} out of range for {len} elements")]
    ElementOutOfRange {
        /// Index asked for.
        index: u64,
        /// Element count.
        len: u64,
    },
    /// Merkle failure.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// Element count of `shape`, or an error if it is absurd.
///
/// The bound applies to the product of the non-zero dims, so an empty
/// tensor cannot carry dims whose strides overflow `u64` (`[0, 2^40, 2^40]`
/// is rejected like `[2^40, 2^40]`): every stride and flat index of an
/// accepted shape fits in `u64` with room to spare.
pub fn checked_numel(shape: &[u64]) -> Result<u64, TensorError> {
    if shape.len() > MAX_RANK {
        return Err(TensorError::TooLarge(shape.to_vec()));
    }
    let mut extent: u64 = 1;
    let mut empty = false;
    for &d in shape {
        empty |= d == 0;
        extent = extent
            .checked_mul(d.max(1))
            .filter(|&e| e <= MAX_ELEMENTS)
            .ok_or_else(|| TensorError::TooLarge(shape.to_vec()))?;
    }
    Ok(if empty { 0 } else { extent })
}

/// One element, as its dtype and its value widened to 64 bits (floats as
/// their bit pattern, signed integers sign-extended, bool 0/1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Scalar {
    /// The dtype.
    pub dtype: DType,
    /// The value's bits.
    pub bits: u64,
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dtype {
            DType::F32 => write!(f, "{:?}f32({:#010x})", self.f32(), self.bits as u32),
            DType::Bool => write!(f, "{}", self.bits != 0),
            d if d.is_signed_int() => write!(f, "{}{}", self.bits as i64, d),
            d => write!(f, "{}{}", self.bits, d),
        }
    }
}

impl Scalar {
    /// An f32.
    pub fn f32(&self) -> f32 {
        f32::from_bits(self.bits as u32)
    }
    /// From an f32.
    pub fn from_f32(v: f32) -> Self {
        Self { dtype: DType::F32, bits: u64::from(v.to_bits()) }
    }
    /// From a signed value in a given integer dtype (wrapped to its width).
    pub fn from_i64(dtype: DType, v: i64) -> Self {
        let bits = match dtype {
            DType::I64 | DType::U64 => v as u64,
            DType::I32 => v as i32 as i64 as u64,
            DType::I16 => v as i16 as i64 as u64,
            DType::I8 => v as i8 as i64 as u64,
            DType::U32 => u64::from(v as u32),
            DType::U16 => u64::from(v as u16),
            DType::U8 => u64::from(v as u8),
            DType::Bool => u64::from(v != 0),
            DType::F32 => u64::from((v as f32).to_bits()),
        };
        Self { dtype, bits }
    }
    /// From a bool.
    pub fn from_bool(v: bool) -> Self {
        Self { dtype: DType::Bool, bits: u64::from(v) }
    }
    /// The integer value as i64 (u64 values above i64::MAX wrap).
    pub fn as_i64(&self) -> i64 {
        self.bits as i64
    }
    /// The bool value.
    pub fn as_bool(&self) -> bool {
        self.bits != 0
    }
    /// Canonical little-endian bytes of this element.
    pub fn le_bytes(&self) -> Vec<u8> {
        self.bits.to_le_bytes()[..self.dtype.size()].to_vec()
    }

    /// The element whose canonical bytes are `bytes` (`dtype.size()` of
    /// them): signed integers sign-extended, everything else zero-extended.
    /// Two scalars with the same bytes but other high bits are different
    /// values to the folds (`as_bool` reads `bits != 0`, `as_i64` every bit),
    /// so an opening's value must equal this exactly.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Self {
        let sz = dtype.size().min(8);
        let mut buf = [0u8; 8];
        buf[..sz].copy_from_slice(&bytes[..sz]);
        let raw = u64::from_le_bytes(buf);
        let bits = if dtype.is_signed_int() && sz < 8 {
            let shift = 64 - 8 * sz as u32;
            (((raw << shift) as i64) >> shift) as u64
        } else {
            raw
        };
        Self { dtype, bits }
    }
}

/// Typed element storage.
#[derive(Clone, PartialEq)]
#[allow(missing_docs)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U64(Vec<u64>),
    U32(Vec<u32>),
    U16(Vec<u16>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

/// Applies `$body` to the vector inside any [`TensorData`] variant.
#[macro_export]
macro_rules! dispatch_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::TensorData::F32($v) => $body,
            $crate::tensor::TensorData::I64($v) => $body,
            $crate::tensor::TensorData::I32($v) => $body,
            $crate::tensor::TensorData::I16($v) => $body,
            $crate::tensor::TensorData::I8($v) => $body,
            $crate::tensor::TensorData::U64($v) => $body,
            $crate::tensor::TensorData::U32($v) => $body,
            $crate::tensor::TensorData::U16($v) => $body,
            $crate::tensor::TensorData::U8($v) => $body,
            $crate::tensor::TensorData::Bool($v) => $body,
        }
    };
}

impl TensorData {
    /// The dtype.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::I16(_) => DType::I16,
            TensorData::I8(_) => DType::I8,
            TensorData::U64(_) => DType::U64,
            TensorData::U32(_) => DType::U32,
            TensorData::U16(_) => DType::U16,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Element count.
    pub fn len(&self) -> usize {
        dispatch_data!(self, v => v.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zero elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; n]),
            DType::I64 => TensorData::I64(vec![0; n]),
            DType::I32 => TensorData::I32(vec![0; n]),
            DType::I16 => TensorData::I16(vec![0; n]),
            DType::I8 => TensorData::I8(vec![0; n]),
            DType::U64 => TensorData::U64(vec![0; n]),
            DType::U32 => TensorData::U32(vec![0; n]),
            DType::U16 => TensorData::U16(vec![0; n]),
            DType::U8 => TensorData::U8(vec![0; n]),
            DType::Bool => TensorData::Bool(vec![false; n]),
        }
    }

    /// Element `i` as a [`Scalar`].
    pub fn scalar(&self, i: usize) -> Option<Scalar> {
        let dtype = self.dtype();
        let bits = match self {
            TensorData::F32(v) => u64::from(v.get(i)?.to_bits()),
            TensorData::I64(v) => *v.get(i)? as u64,
            TensorData::I32(v) => i64::from(*v.get(i)?) as u64,
            TensorData::I16(v) => i64::from(*v.get(i)?) as u64,
            TensorData::I8(v) => i64::from(*v.get(i)?) as u64,
            TensorData::U64(v) => *v.get(i)?,
            TensorData::U32(v) => u64::from(*v.get(i)?),
            TensorData::U16(v) => u64::from(*v.get(i)?),
            TensorData::U8(v) => u64::from(*v.get(i)?),
            TensorData::Bool(v) => u64::from(*v.get(i)?),
        };
        Some(Scalar { dtype, bits })
    }

    /// Writes `s` (which must have this dtype) at `i`.
    pub fn set_scalar(&mut self, i: usize, s: Scalar) {
        match self {
            TensorData::F32(v) => v[i] = f32::from_bits(s.bits as u32),
            TensorData::I64(v) => v[i] = s.bits as i64,
            TensorData::I32(v) => v[i] = s.bits as i32,
            TensorData::I16(v) => v[i] = s.bits as i16,
            TensorData::I8(v) => v[i] = s.bits as i8,
            TensorData::U64(v) => v[i] = s.bits,
            TensorData::U32(v) => v[i] = s.bits as u32,
            TensorData::U16(v) => v[i] = s.bits as u16,
            TensorData::U8(v) => v[i] = s.bits as u8,
            TensorData::Bool(v) => v[i] = s.bits != 0,
        }
    }

    /// Canonical little-endian bytes (borrowed where the layout allows).
    pub fn le_bytes(&self) -> Cow<'_, [u8]> {
        #[cfg(target_endian = "little")]
        {
            match self {
                TensorData::F32(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::I64(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::I32(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::I16(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::I8(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::U64(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::U32(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::U16(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
                TensorData::U8(v) => Cow::Borrowed(v),
                TensorData::Bool(v) => Cow::Owned(v.iter().map(|&b| u8::from(b)).collect()),
            }
        }
        #[cfg(not(target_endian = "little"))]
        {
            let mut out = Vec::with_capacity(self.len() * self.dtype().size());
            for i in 0..self.len() {
                out.extend(self.scalar(i).map(|s| s.le_bytes()).unwrap_or_default());
            }
            Cow::Owned(out)
        }
    }

    /// Decodes canonical little-endian bytes.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Result<Self, TensorError> {
        let sz = dtype.size();
        if !bytes.len().is_multiple_of(sz) {
            return Err(TensorError::ByteLength {
                dtype,
                shape: vec![],
                expected: (bytes.len() / sz * sz) as u64,
                got: bytes.len() as u64,
            });
        }
        Self::from_le_fill(dtype, bytes.len() / sz, |dst| {
            dst.copy_from_slice(bytes);
            Ok(())
        })
    }

    /// `n` elements of `dtype` whose canonical little-endian bytes
    /// (`n × size` of them) `fill` writes straight into the storage. On a
    /// little-endian host those bytes are the storage, so decoding is one
    /// copy (or one base64 decode, `verinfer-rpc`) instead of an
    /// element-by-element conversion. Bool bytes other than 0 and 1 are
    /// rejected by index.
    pub fn from_le_fill<E: From<TensorError>>(
        dtype: DType,
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        fn typed<T: bytemuck::Pod, E>(
            n: usize,
            fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
            from_le: fn(T) -> T,
        ) -> Result<Vec<T>, E> {
            let mut v = vec![T::zeroed(); n];
            fill(bytemuck::cast_slice_mut(&mut v))?;
            if cfg!(target_endian = "big") {
                for x in &mut v {
                    *x = from_le(*x);
                }
            }
            Ok(v)
        }
        Ok(match dtype {
            DType::F32 => TensorData::F32(typed(n, fill, |x: f32| f32::from_bits(u32::from_le(x.to_bits())))?),
            DType::I64 => TensorData::I64(typed(n, fill, i64::from_le)?),
            DType::I32 => TensorData::I32(typed(n, fill, i32::from_le)?),
            DType::I16 => TensorData::I16(typed(n, fill, i16::from_le)?),
            DType::I8 => TensorData::I8(typed(n, fill, i8::from_le)?),
            DType::U64 => TensorData::U64(typed(n, fill, u64::from_le)?),
            DType::U32 => TensorData::U32(typed(n, fill, u32::from_le)?),
            DType::U16 => TensorData::U16(typed(n, fill, u16::from_le)?),
            DType::U8 => TensorData::U8(typed(n, fill, u8::from_le)?),
            DType::Bool => {
                let bytes: Vec<u8> = typed(n, fill, u8::from_le)?;
                let mut v = Vec::with_capacity(bytes.len());
                for (i, &b) in bytes.iter().enumerate() {
                    match b {
                        0 => v.push(false),
                        1 => v.push(true),
                        _ => return Err(TensorError::BadBool { index: i as u64, byte: b }.into()),
                    }
                }
                TensorData::Bool(v)
            }
        })
    }
}

impl fmt::Debug for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Element dumps of large tensors are useless in logs; name the type
        // and length only.
        write!(f, "TensorData<{}>[{}]", self.dtype(), self.len())
    }
}

/// A dense row-major tensor.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype(), self.shape)?;
        let n = self.len().min(8);
        let items: Vec<String> = (0..n).filter_map(|i| self.data.scalar(i)).map(|s| format!("{s:?}")).collect();
        write!(f, "[{}{}]", items.join(", "), if self.len() > n { ", …" } else { "" })
    }
}

impl Tensor {
    /// A tensor from typed data; the element count must match the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self, TensorError> {
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let n = checked_numel(&shape64)?;
        if n != data.len() as u64 {
            return Err(TensorError::ElementCount { shape: shape64, expected: n, got: data.len() as u64 });
        }
        Ok(Self { shape, data })
    }

    /// An f32 tensor.
    pub fn from_f32(shape: Vec<usize>, v: Vec<f32>) -> Result<Self, TensorError> {
        Self::new(shape, TensorData::F32(v))
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Self, TensorError> {
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let n = checked_numel(&shape64)? as usize;
        Ok(Self { shape, data: TensorData::zeros(dtype, n) })
    }

    /// A tensor from canonical bytes.
    pub fn from_le_bytes(dtype: DType, shape: &[u64], bytes: &[u8]) -> Result<Self, TensorError> {
        let n = checked_numel(shape)?;
        let expected = n * dtype.size() as u64;
        if bytes.len() as u64 != expected {
            return Err(TensorError::ByteLength { dtype, shape: shape.to_vec(), expected, got: bytes.len() as u64 });
        }
        let data = TensorData::from_le_bytes(dtype, bytes)?;
        Ok(Self { shape: shape.iter().map(|&d| d as usize).collect(), data })
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The shape as u64.
    pub fn shape_u64(&self) -> Vec<u64> {
        self.shape.iter().map(|&d| d as u64).collect()
    }
    /// Element count.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The data.
    pub fn data(&self) -> &TensorData {
        &self.data
    }
    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut TensorData {
        &mut self.data
    }
    /// Consumes into the data.
    pub fn into_data(self) -> TensorData {
        self.data
    }
    /// The f32 elements, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
    /// Same data, new shape (element counts must agree).
    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Self, TensorError> {
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let n = checked_numel(&shape64)?;
        if n != self.len() as u64 {
            return Err(TensorError::ElementCount { shape: shape64, expected: n, got: self.len() as u64 });
        }
        self.shape = shape;
        Ok(self)
    }
    /// Element `i`.
    pub fn scalar(&self, i: u64) -> Result<Scalar, TensorError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.data.scalar(i))
            .ok_or(TensorError::ElementOutOfRange { index: i, len: self.len() as u64 })
    }
    /// Canonical little-endian bytes.
    pub fn le_bytes(&self) -> Cow<'_, [u8]> {
        self.data.le_bytes()
    }
    /// The tensor's root (see the module docs).
    pub fn root(&self) -> Hash32 {
        tensor_root(self.dtype(), &self.shape_u64(), &self.le_bytes())
    }
    /// The full chunk tree, for openings.
    pub fn chunk_tree(&self) -> MerkleTree {
        chunk_tree(&self.le_bytes())
    }
}

/// Number of chunks `n_bytes` bytes make.
pub fn chunk_count(n_bytes: usize) -> usize {
    n_bytes.div_ceil(CHUNK_BYTES)
}

/// The leaf hash of one chunk.
pub fn chunk_leaf(chunk: &[u8]) -> Hash32 {
    hash(Domain::TensorChunk, chunk)
}

/// The leaf hashes of `bytes`' chunks, full chunks four at a time
/// ([`crate::hash_many`]).
pub fn chunk_leaves(bytes: &[u8]) -> Vec<Hash32> {
    let full = bytes.len() / CHUNK_BYTES;
    let mut leaves = Vec::with_capacity(chunk_count(bytes.len()));
    crate::hash_many::tagged_many(
        Domain::TensorChunk as u8,
        CHUNK_BYTES,
        full,
        |i, dst| dst.copy_from_slice(&bytes[i * CHUNK_BYTES..(i + 1) * CHUNK_BYTES]),
        &mut leaves,
    );
    if bytes.len() > full * CHUNK_BYTES {
        leaves.push(chunk_leaf(&bytes[full * CHUNK_BYTES..]));
    }
    leaves
}

/// The chunk tree of `bytes`.
pub fn chunk_tree(bytes: &[u8]) -> MerkleTree {
    let leaves = chunk_leaves(bytes);
    // A tensor has at most MAX_ELEMENTS × 8 bytes, far fewer chunks than
    // MAX_LEAVES, so construction cannot fail.
    debug_assert!((leaves.len() as u64) < MAX_LEAVES);
    MerkleTree::from_leaves(&leaves).expect("chunk count below MAX_LEAVES")
}

/// The bound root of `bytes`' chunk tree, without keeping the tree: what
/// [`chunk_tree`]`(bytes).root()` is, at a fraction of the cost (every
/// request's inputs and outputs, and every node output of a trace, go
/// through here).
pub fn chunks_root(bytes: &[u8]) -> Hash32 {
    crate::merkle::root_of_leaves(chunk_leaves(bytes))
}

/// Binds a chunk-tree root to dtype and shape.
pub fn bind_tensor_root(dtype: DType, shape: &[u64], chunks_root: &Hash32) -> Hash32 {
    let mut h = DomainHasher::new(Domain::Tensor);
    h.update(&[dtype as u8]).u64(shape.len() as u64);
    for &d in shape {
        h.u64(d);
    }
    h.hash32(chunks_root);
    h.finish()
}

/// The root of a tensor given its canonical bytes.
pub fn tensor_root(dtype: DType, shape: &[u64], bytes: &[u8]) -> Hash32 {
    bind_tensor_root(dtype, shape, &chunks_root(bytes))
}

/// The commitment to an ordered list of tensor roots (a request's inputs,
/// a record's outputs): a Merkle root over `H(TensorList || root_i)`.
pub fn tensor_list_root(roots: &[Hash32]) -> Hash32 {
    let leaves: Vec<Hash32> = roots.iter().map(tensor_list_leaf).collect();
    MerkleTree::from_leaves(&leaves).expect("list below MAX_LEAVES").root()
}

/// The leaf of one tensor root in a tensor list.
pub fn tensor_list_leaf(root: &Hash32) -> Hash32 {
    hash(Domain::TensorList, &root.0)
}

/// An opening of one element: the chunk that holds it and the chunk's path.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ElementOpening {
    /// The chunk's bytes.
    pub chunk: Vec<u8>,
    /// Path of the chunk leaf to the chunk-tree root.
    pub proof: MerkleProof,
}

/// Chunk index and byte offset of element `index` of a `dtype` tensor.
pub fn element_position(dtype: DType, index: u64) -> (u64, usize) {
    let byte = index * dtype.size() as u64;
    (byte / CHUNK_BYTES as u64, (byte % CHUNK_BYTES as u64) as usize)
}

/// Verifies that element `index` of the tensor with root `root`, dtype and
/// shape has value `value`, using `opening`.
pub fn verify_element(
    root: &Hash32,
    dtype: DType,
    shape: &[u64],
    index: u64,
    value: &Scalar,
    opening: &ElementOpening,
) -> Result<(), ElementError> {
    let n = checked_numel(shape).map_err(|_| ElementError::BadShape)?;
    if index >= n {
        return Err(ElementError::IndexOutOfRange { index, len: n });
    }
    if value.dtype != dtype {
        return Err(ElementError::DTypeMismatch { expected: dtype, got: value.dtype });
    }
    let total_bytes = n * dtype.size() as u64;
    let chunks = total_bytes.div_ceil(CHUNK_BYTES as u64);
    let (chunk_idx, off) = element_position(dtype, index);
    if opening.proof.index != chunk_idx || opening.proof.leaf_count != chunks {
        return Err(ElementError::WrongChunk { expected: chunk_idx, got: opening.proof.index });
    }
    let expected_len = (total_bytes - chunk_idx * CHUNK_BYTES as u64).min(CHUNK_BYTES as u64);
    if opening.chunk.len() as u64 != expected_len {
        return Err(ElementError::ChunkLength { expected: expected_len, got: opening.chunk.len() as u64 });
    }
    let bytes = &opening.chunk[off..off + dtype.size()];
    // The whole scalar, not only its low bytes: high bits the bytes do not
    // bind would change what a fold reads (a Bool of bits 0x100 reads as
    // true while its byte says false).
    if Scalar::from_le_bytes(dtype, bytes) != *value {
        return Err(ElementError::ValueMismatch);
    }
    // Bool bytes must be canonical.
    if dtype == DType::Bool && bytes[0] > 1 {
        return Err(ElementError::ValueMismatch);
    }
    // Recompute the tensor root from the chunk-tree root implied by the path.
    let leaf = chunk_leaf(&opening.chunk);
    let chunks_root = crate::merkle::root_from_proof(0, &leaf, &opening.proof)?;
    if &bind_tensor_root(dtype, shape, &chunks_root) != root {
        return Err(ElementError::RootMismatch);
    }
    Ok(())
}

/// Why an element opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    /// The shape is absurd.
    #[error("bad shape")]
    BadShape,
    /// Index beyond the tensor.
    #[error("element {index} out of range for {len} elements")]
    IndexOutOfRange {
        /// Index.
        index: u64,
        /// Element count.
        len: u64,
    },
    /// Scalar of the wrong dtype.
    #[error("expected a {expected} element, got {got}")]
    DTypeMismatch {
        /// Tensor dtype.
        expected: DType,
        /// Scalar dtype.
        got: DType,
    },
    /// The opening is for another chunk.
    #[error("opening is for chunk {got}, element lies in chunk {expected}")]
    WrongChunk {
        /// Chunk the element is in.
        expected: u64,
        /// Chunk opened.
        got: u64,
    },
    /// The chunk has the wrong length.
    #[error("chunk has {got} bytes, expected {expected}")]
    ChunkLength {
        /// Expected length.
        expected: u64,
        /// Given length.
        got: u64,
    },
    /// The chunk does not hold the claimed value.
    #[error("chunk does not hold the claimed value")]
    ValueMismatch,
    /// The path does not lead to the tensor root.
    #[error("opening does not lead to the tensor root")]
    RootMismatch,
    /// Merkle path malformed.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

impl Tensor {
    /// Opening of element `index` (chunk and path).
    pub fn open_element(&self, tree: &MerkleTree, index: u64) -> Result<ElementOpening, TensorError> {
        if index >= self.len() as u64 {
            return Err(TensorError::ElementOutOfRange { index, len: self.len() as u64 });
        }
        let (chunk_idx, _) = element_position(self.dtype(), index);
        let bytes = self.le_bytes();
        let start = chunk_idx as usize * CHUNK_BYTES;
        let end = (start + CHUNK_BYTES).min(bytes.len());
        Ok(ElementOpening { chunk: bytes[start..end].to_vec(), proof: tree.proof(chunk_idx)? })
    }
}

/// Borsh: `dtype, shape: Vec<u64>, bytes: Vec<u8>` with the byte length and
/// bool bytes checked on decode, so every accepted encoding is canonical.
impl BorshSerialize for Tensor {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        self.dtype().serialize(w)?;
        self.shape_u64().serialize(w)?;
        self.le_bytes().as_ref().serialize(w)
    }
}

impl BorshDeserialize for Tensor {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let dtype = DType::deserialize_reader(r)?;
        let shape = Vec::<u64>::deserialize_reader(r)?;
        let n =
            checked_numel(&shape).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        // Read the length prefix ourselves so a hostile length cannot make us
        // allocate more than the shape allows.
        let len = u32::deserialize_reader(r)? as u64;
        let expected = n * dtype.size() as u64;
        if len != expected {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("tensor byte length {len} does not match {dtype}{shape:?} ({expected})"),
            ));
        }
        // The shape may legitimately allow up to 4 GiB, so do not trust it for
        // the allocation either: grow the buffer only as bytes actually arrive
        // (a truncated hostile input then costs at most what it supplied).
        let mut bytes = Vec::with_capacity((len as usize).min(1 << 20));
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut *r, len), &mut bytes)?;
        if bytes.len() as u64 != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("tensor bytes truncated: {} of {len}", bytes.len()),
            ));
        }
        Tensor::from_le_bytes(dtype, &shape, &bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast root (leaves four at a time, no tree kept) is the tree's
    /// root for every tail length and for counts around powers of two.
    #[test]
    fn chunks_root_equals_chunk_tree_root() {
        for len in (0..3 * CHUNK_BYTES).chain([
            4 * CHUNK_BYTES - 1,
            64 * CHUNK_BYTES,
            64 * CHUNK_BYTES + 5,
            1000 * CHUNK_BYTES + 17,
            2352 * CHUNK_BYTES,
        ]) {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 253) as u8).collect();
            let leaves: Vec<Hash32> = bytes.chunks(CHUNK_BYTES).map(chunk_leaf).collect();
            let tree = MerkleTree::from_leaves(&leaves).expect("tree");
            assert_eq!(chunk_leaves(&bytes), leaves, "{len} bytes");
            assert_eq!(chunks_root(&bytes), tree.root(), "{len} bytes");
        }
    }

    #[test]
    fn bytes_round_trip_every_dtype() {
        for dt in DType::ALL {
            let n = 300;
            let bytes: Vec<u8> = (0..n * dt.size())
                .map(|i| if dt == DType::Bool { (i % 2) as u8 } else { (i * 37 % 251) as u8 })
                .collect();
            let t = Tensor::from_le_bytes(dt, &[3, 100], &bytes).unwrap();
            assert_eq!(t.le_bytes().as_ref(), bytes.as_slice());
            assert_eq!(t.dtype(), dt);
            let enc = borsh::to_vec(&t).unwrap();
            let back: Tensor = borsh::from_slice(&enc).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn checked_numel_bounds_empty_shapes_too() {
        assert_eq!(checked_numel(&[]).unwrap(), 1);
        assert_eq!(checked_numel(&[0, 5]).unwrap(), 0);
        assert_eq!(checked_numel(&[MAX_ELEMENTS]).unwrap(), MAX_ELEMENTS);
        assert_eq!(checked_numel(&[0, MAX_ELEMENTS]).unwrap(), 0);
        assert!(checked_numel(&[MAX_ELEMENTS + 1]).is_err());
        // Zero elements, but strides of 2^80: rejected like the non-empty shape.
        assert!(checked_numel(&[0, 1 << 40, 1 << 40]).is_err());
        assert!(checked_numel(&[1 << 20, 0, 1 << 20]).is_err());
        assert!(checked_numel(&[1; MAX_RANK + 1]).is_err());
    }

    #[test]
    fn bad_bool_and_lengths_rejected() {
        assert!(matches!(
            Tensor::from_le_bytes(DType::Bool, &[2], &[0, 2]),
            Err(TensorError::BadBool { index: 1, byte: 2 })
        ));
        assert!(Tensor::from_le_bytes(DType::F32, &[2], &[0; 7]).is_err());
        assert!(Tensor::from_le_bytes(DType::F32, &[u64::MAX, 2], &[]).is_err());
        assert!(Tensor::from_f32(vec![2, 2], vec![1.0; 3]).is_err());
    }

    #[test]
    fn root_binds_dtype_and_shape() {
        let bytes = vec![0u8; 16];
        let a = tensor_root(DType::F32, &[4], &bytes);
        let b = tensor_root(DType::F32, &[2, 2], &bytes);
        let c = tensor_root(DType::I32, &[4], &bytes);
        let d = tensor_root(DType::U8, &[16], &bytes);
        assert!(a != b && a != c && b != c && a != d);
    }

    #[test]
    fn element_openings_verify_and_tamper_fails() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
        let t = Tensor::from_f32(vec![10, 100], v).unwrap();
        let tree = t.chunk_tree();
        let root = t.root();
        for idx in [0u64, 1, 63, 64, 65, 511, 999] {
            let o = t.open_element(&tree, idx).unwrap();
            let s = t.scalar(idx).unwrap();
            verify_element(&root, DType::F32, &[10, 100], idx, &s, &o).unwrap();
            let wrong = Scalar::from_f32(s.f32() + 1.0);
            assert_eq!(
                verify_element(&root, DType::F32, &[10, 100], idx, &wrong, &o),
                Err(ElementError::ValueMismatch)
            );
            assert!(verify_element(&root, DType::F32, &[100, 10], idx, &s, &o).is_err());
            let mut o2 = o.clone();
            o2.chunk[0] ^= 1;
            assert!(verify_element(&root, DType::F32, &[10, 100], idx, &s, &o2).is_err());
        }
        assert!(
            verify_element(
                &root,
                DType::F32,
                &[10, 100],
                1000,
                &Scalar::from_f32(0.0),
                &t.open_element(&tree, 999).unwrap()
            )
            .is_err()
        );
    }

    /// An opening's scalar must be the canonical widening of the element's
    /// bytes: the same bytes with other high bits are another value to the
    /// folds, and are refused.
    #[test]
    fn element_openings_bind_every_bit_of_the_scalar() {
        let cases = [
            Tensor::new(vec![3], TensorData::I32(vec![-1, 0, 7])).unwrap(),
            Tensor::new(vec![3], TensorData::U8(vec![255, 0, 1])).unwrap(),
            Tensor::new(vec![3], TensorData::Bool(vec![false, true, false])).unwrap(),
            Tensor::new(vec![3], TensorData::I8(vec![-128, 5, -1])).unwrap(),
            Tensor::from_f32(vec![3], vec![-0.0, 1.0, f32::NAN]).unwrap(),
        ];
        for t in cases {
            let (tree, root, d) = (t.chunk_tree(), t.root(), t.dtype());
            for idx in 0..3 {
                let o = t.open_element(&tree, idx).unwrap();
                let s = t.scalar(idx).unwrap();
                assert_eq!(Scalar::from_le_bytes(d, &s.le_bytes()), s, "{d} {idx}");
                verify_element(&root, d, &[3], idx, &s, &o).unwrap();
                for flip in [1u64 << 63, 1 << 32, 1 << 8] {
                    if d.size() * 8 > flip.trailing_zeros() as usize {
                        continue; // a bit the bytes do bind
                    }
                    let forged = Scalar { dtype: d, bits: s.bits ^ flip };
                    assert_eq!(forged.le_bytes(), s.le_bytes(), "same bytes");
                    assert_eq!(
                        verify_element(&root, d, &[3], idx, &forged, &o),
                        Err(ElementError::ValueMismatch),
                        "{d} {idx} {flip:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_borsh_length_is_rejected_cheaply() {
        // dtype f32, shape [1], byte length u32::MAX.
        let mut enc = borsh::to_vec(&DType::F32).unwrap();
        enc.extend(borsh::to_vec(&vec![1u64]).unwrap());
        enc.extend(u32::MAX.to_le_bytes());
        assert!(borsh::from_slice::<Tensor>(&enc).is_err());
        // Trailing bytes are rejected too.
        let t = Tensor::from_f32(vec![1], vec![1.0]).unwrap();
        let mut enc = borsh::to_vec(&t).unwrap();
        enc.push(0);
        assert!(borsh::from_slice::<Tensor>(&enc).is_err());
    }
}
