//! `.npy` files: a strict reader and a writer.
//!
//! The reader accepts format versions 1–3, little-endian or byte-order-free
//! descriptors, C order only, and checks that the data length matches the
//! header exactly. Every malformed file yields an [`NpyError`] that says what
//! is wrong; nothing panics and nothing allocates more than the file's size.

use crate::tensor::{DType, Tensor, TensorError, checked_numel};

/// Why a `.npy` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    /// Missing `\x93NUMPY` magic.
    #[error("not a .npy file (bad magic)")]
    BadMagic,
    /// Unsupported format version.
    #[error("unsupported .npy format version {0}.{1}")]
    Version(u8, u8),
    /// File shorter than its header says.
    #[error("truncated .npy file")]
    Truncated,
    /// Header is not the expected dictionary.
    #[error("malformed .npy header: {0}")]
    Header(String),
    /// A dtype the protocol does not carry.
    #[error(
        "unsupported .npy dtype {0:?} (supported: <f4 <i8 <i4 <i2 |i1 <u8 <u4 <u2 |u1 |b1, and <f8 for references)"
    )]
    DType(String),
    /// Fortran order.
    #[error("Fortran-ordered .npy arrays are not supported; save with C order")]
    FortranOrder,
    /// Data length differs from shape × item size.
    #[error("data has {got} bytes, header implies {expected}")]
    DataLength {
        /// Bytes implied by the header.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The tensor itself is invalid.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// The element type of a `.npy` array: a protocol dtype or f64 (reference
/// outputs only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDType {
    /// A protocol dtype.
    Canonical(DType),
    /// float64.
    F64,
}

/// A parsed `.npy` array.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Element type.
    pub dtype: NpyDType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Little-endian data bytes.
    pub data: Vec<u8>,
}

impl NpyArray {
    /// As a protocol tensor (f64 arrays are rejected).
    pub fn into_tensor(self) -> Result<Tensor, NpyError> {
        match self.dtype {
            NpyDType::Canonical(dt) => Ok(Tensor::from_le_bytes(dt, &self.shape, &self.data)?),
            NpyDType::F64 => Err(NpyError::DType("<f8".into())),
        }
    }

    /// Every element widened to f64 (for comparisons against references).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, NpyError> {
        match self.dtype {
            NpyDType::F64 => {
                Ok(self.data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
            }
            NpyDType::Canonical(DType::F32) => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
                .collect()),
            NpyDType::Canonical(dt) => {
                let t = Tensor::from_le_bytes(dt, &self.shape, &self.data)?;
                (0..t.len() as u64)
                    .map(|i| {
                        let s = t.scalar(i)?;
                        Ok(if dt.is_signed_int() { s.as_i64() as f64 } else { s.bits as f64 })
                    })
                    .collect::<Result<_, TensorError>>()
                    .map_err(NpyError::from)
            }
        }
    }
}

fn parse_descr(d: &str) -> Result<NpyDType, NpyError> {
    let dt = match d {
        "<f4" => DType::F32,
        "<f8" => return Ok(NpyDType::F64),
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "<i2" => DType::I16,
        "|i1" | "<i1" => DType::I8,
        "<u8" => DType::U64,
        "<u4" => DType::U32,
        "<u2" => DType::U16,
        "|u1" | "<u1" => DType::U8,
        "|b1" | "<b1" => DType::Bool,
        other => return Err(NpyError::DType(other.to_string())),
    };
    Ok(NpyDType::Canonical(dt))
}

fn descr_of(dt: DType) -> &'static str {
    match dt {
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "|i1",
        DType::U64 => "<u8",
        DType::U32 => "<u4",
        DType::U16 => "<u2",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    }
}

/// Value of `'key': <value>` in a Python dict literal, up to the next
/// top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let pat = format!("'{key}'");
    let start = header.find(&pat).ok_or_else(|| NpyError::Header(format!("missing key {key:?}")))? + pat.len();
    let rest = header[start..].trim_start();
    let rest = rest.strip_prefix(':').ok_or_else(|| NpyError::Header(format!("no ':' after {key:?}")))?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(rest[..i].trim()),
            _ => {}
        }
        if depth < 0 {
            return Err(NpyError::Header("unbalanced brackets".into()));
        }
    }
    Err(NpyError::Header(format!("unterminated value for {key:?}")))
}

/// Parses a `.npy` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::BadMagic);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, hstart): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::Truncated);
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err(NpyError::Version(major, minor)),
    };
    let hend = hstart.checked_add(hlen).ok_or(NpyError::Truncated)?;
    if bytes.len() < hend {
        return Err(NpyError::Truncated);
    }
    let header =
        std::str::from_utf8(&bytes[hstart..hend]).map_err(|_| NpyError::Header("header is not UTF-8".into()))?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = parse_descr(descr)?;
    match dict_value(header, "fortran_order")? {
        "False" => {}
        "True" => return Err(NpyError::FortranOrder),
        other => return Err(NpyError::Header(format!("fortran_order is {other:?}"))),
    }
    let shape_s = dict_value(header, "shape")?;
    let inner = shape_s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| NpyError::Header(format!("shape {shape_s:?} is not a tuple")))?;
    let mut shape = Vec::new();
    for part in inner.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let p = p.strip_suffix('L').unwrap_or(p);
        shape.push(p.parse::<u64>().map_err(|_| NpyError::Header(format!("shape entry {p:?} is not a size")))?);
    }
    let n = checked_numel(&shape)?;
    let item = match dtype {
        NpyDType::Canonical(dt) => dt.size() as u64,
        NpyDType::F64 => 8,
    };
    let expected = n * item;
    let data = &bytes[hend..];
    if data.len() as u64 != expected {
        return Err(NpyError::DataLength { expected, got: data.len() as u64 });
    }
    Ok(NpyArray { dtype, shape, data: data.to_vec() })
}

/// Reads a tensor from `.npy` bytes.
pub fn read_tensor(bytes: &[u8]) -> Result<Tensor, NpyError> {
    parse(bytes)?.into_tensor()
}

/// Encodes a tensor as a version-1.0 `.npy` file.
pub fn write_tensor(t: &Tensor) -> Vec<u8> {
    let shape = t.shape();
    let shape_s = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_of(t.dtype()), shape_s);
    // Pad so that the data starts on a 64-byte boundary, ending with '\n'.
    let unpadded = 10 + header.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.len() * t.dtype().size());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for dt in DType::ALL {
            let t = Tensor::zeros(dt, vec![2, 3]).unwrap();
            let b = write_tensor(&t);
            assert_eq!(b.len() % 64, (2 * 3 * dt.size()) % 64);
            assert_eq!(read_tensor(&b).unwrap(), t);
        }
        let s = Tensor::from_f32(vec![], vec![1.5]).unwrap();
        assert_eq!(read_tensor(&write_tensor(&s)).unwrap(), s);
    }

    #[test]
    fn malformed_files_are_errors() {
        let t = Tensor::from_f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let good = write_tensor(&t);
        assert_eq!(read_tensor(b"hello"), Err(NpyError::BadMagic));
        for cut in [0, 5, 9, 20, good.len() - 1] {
            assert!(read_tensor(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(read_tensor(&extra), Err(NpyError::DataLength { .. })));
        let replace = |from: &[u8], to: &[u8]| {
            let mut b = good.clone();
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + from.len()].copy_from_slice(to);
            b
        };
        assert!(matches!(read_tensor(&replace(b"<f4", b">f4")), Err(NpyError::DType(_))));
        assert_eq!(read_tensor(&replace(b"False", b"True ")), Err(NpyError::FortranOrder));
        // A huge declared header length.
        let mut h = good.clone();
        h[8] = 0xff;
        h[9] = 0xff;
        assert_eq!(read_tensor(&h), Err(NpyError::Truncated));
    }
}
