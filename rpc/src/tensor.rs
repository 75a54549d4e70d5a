//! Tensors on the wire.
//!
//! Two encodings, chosen per tensor:
//!
//! ```json
//! { "dtype": "f32", "shape": [1, 4], "data": [0.5, -1, 3.4028235e38, 1e-45] }
//! { "dtype": "f32", "shape": [1, 4], "b64": "AAAAPwAAgL//f39/AQAAAA==" }
//! ```
//!
//! * `data` is a flat JSON array in row-major order. f32 values are written
//!   in the shortest decimal form that parses back to the same f32 (ryu) and
//!   are parsed from their decimal text directly to f32 (correctly rounded,
//!   never through f64), so every finite f32 round-trips bit for bit.
//!   Integers are JSON integers; bools are `true`/`false`.
//! * `b64` is standard base64 (with padding) of the canonical little-endian
//!   element bytes, the same bytes the tensor root commits to. It is the
//!   compact form for large tensors.
//! * Non-finite values (the NaN policy, docs/decisions/0007): an *input*
//!   containing NaN or ±Infinity (in either encoding, including a decimal
//!   that overflows f32) is rejected with
//!   [`crate::error::NON_FINITE_INPUT`] and a message naming the element
//!   (`inputs[0].data[17] is NaN`). *Outputs* may contain them; in the JSON
//!   form they are written as the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"` (every NaN an op produces is the canonical quiet NaN, so
//!   nothing is lost).
//!
//! Decoding never panics and never allocates more than the declared shape
//! allows once the shape has been checked against the model.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use verinfer_state::tensor::{DType, Tensor, TensorData, checked_numel};

use crate::error::{ApiError, INVALID_TENSOR, NON_FINITE_INPUT};

/// How tensors are encoded in a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `data`: a JSON array.
    #[default]
    Json,
    /// `b64`: base64 of the little-endian bytes.
    B64,
}

/// A tensor as it travels in JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTensor {
    /// `f32`, `i64`, `i32`, `i16`, `i8`, `u64`, `u32`, `u16`, `u8` or `bool`.
    pub dtype: String,
    /// Concrete shape.
    pub shape: Vec<u64>,
    /// Row-major elements as a flat JSON array (exactly one of `data`, `b64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Base64 little-endian bytes (exactly one of `data`, `b64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
}

impl PartialEq for WireTensor {
    fn eq(&self, o: &Self) -> bool {
        self.dtype == o.dtype
            && self.shape == o.shape
            && self.data.as_ref().map(|d| d.get()) == o.data.as_ref().map(|d| d.get())
            && self.b64 == o.b64
    }
}

fn tensor_err(msg: String) -> ApiError {
    ApiError::new(INVALID_TENSOR, msg)
}

fn fmt_shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Appends one f32 as JSON: shortest round-trip decimal, or a string for
/// non-finite values.
fn push_f32(out: &mut String, v: f32, buf: &mut ryu_like::Buffer) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v == f32::INFINITY {
        out.push_str("\"Infinity\"");
    } else if v == f32::NEG_INFINITY {
        out.push_str("\"-Infinity\"");
    } else {
        out.push_str(buf.format_f32(v));
    }
}

/// Shortest round-trip formatting via serde_json's float writer (ryu).
mod ryu_like {
    /// A reusable formatting buffer.
    #[derive(Default)]
    pub struct Buffer(String);

    impl Buffer {
        /// Formats a finite f32 in its shortest round-trip decimal form.
        pub fn format_f32(&mut self, v: f32) -> &str {
            self.0.clear();
            // serde_json writes finite f32 with ryu's shortest f32 algorithm.
            match serde_json::to_string(&v) {
                Ok(s) => self.0 = s,
                Err(_) => self.0.push_str("null"),
            }
            &self.0
        }
    }
}

impl WireTensor {
    /// Encodes `t` in `enc`.
    pub fn encode(t: &Tensor, enc: Encoding) -> Self {
        match enc {
            Encoding::Json => Self::json(t),
            Encoding::B64 => Self::b64(t),
        }
    }

    /// The JSON-array form.
    pub fn json(t: &Tensor) -> Self {
        let mut s = String::with_capacity(2 + t.len() * 12);
        s.push('[');
        let mut buf = ryu_like::Buffer::default();
        macro_rules! ints {
            ($v:expr) => {
                for (i, x) in $v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&x.to_string());
                }
            };
        }
        match t.data() {
            TensorData::F32(v) => {
                for (i, &x) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    push_f32(&mut s, x, &mut buf);
                }
            }
            TensorData::I64(v) => ints!(v),
            TensorData::I32(v) => ints!(v),
            TensorData::I16(v) => ints!(v),
            TensorData::I8(v) => ints!(v),
            TensorData::U64(v) => ints!(v),
            TensorData::U32(v) => ints!(v),
            TensorData::U16(v) => ints!(v),
            TensorData::U8(v) => ints!(v),
            TensorData::Bool(v) => ints!(v),
        }
        s.push(']');
        let raw = RawValue::from_string(s).unwrap_or_else(|_| {
            // Unreachable: the text above is always valid JSON.
            RawValue::from_string("[]".into()).expect("valid JSON")
        });
        Self { dtype: t.dtype().name().into(), shape: t.shape_u64(), data: Some(raw), b64: None }
    }

    /// The base64 form.
    pub fn b64(t: &Tensor) -> Self {
        Self { dtype: t.dtype().name().into(), shape: t.shape_u64(), data: None, b64: Some(B64.encode(t.le_bytes())) }
    }

    /// The dtype, or an error naming `field.dtype`.
    pub fn parse_dtype(&self, field: &str) -> Result<DType, ApiError> {
        DType::parse(&self.dtype).ok_or_else(|| {
            tensor_err(format!(
                "{field}.dtype: unknown dtype {:?}; expected one of f32, i64, i32, i16, i8, u64, u32, u16, u8, bool",
                self.dtype
            ))
        })
    }

    /// Decodes an *input*: non-finite f32 values are refused with
    /// [`NON_FINITE_INPUT`]. `field` names the tensor in messages
    /// (e.g. `inputs[0]`).
    pub fn decode_input(&self, field: &str) -> Result<Tensor, ApiError> {
        self.decode(field, false)
    }

    /// Decodes an *output* (non-finite values allowed).
    pub fn decode_output(&self, field: &str) -> Result<Tensor, ApiError> {
        self.decode(field, true)
    }

    /// Decodes the tensor; `allow_non_finite` is false for inputs.
    pub fn decode(&self, field: &str, allow_non_finite: bool) -> Result<Tensor, ApiError> {
        let dtype = self.parse_dtype(field)?;
        let n = checked_numel(&self.shape)
            .map_err(|e| tensor_err(format!("{field}.shape: {} is not a valid shape ({e})", fmt_shape(&self.shape))))?;
        let data = match (&self.data, &self.b64) {
            (Some(_), Some(_)) => {
                return Err(tensor_err(format!("{field}: give either \"data\" or \"b64\", not both")));
            }
            (None, None) => return Err(tensor_err(format!("{field}: missing \"data\" or \"b64\""))),
            (Some(raw), None) => parse_json_data(field, dtype, n, raw.get(), allow_non_finite)?,
            (None, Some(b)) => {
                let expected = n.saturating_mul(dtype.size() as u64);
                // Reject before decoding anything absurd: base64 is 4/3 the bytes.
                if (b.len() as u64) / 4 * 3 > expected + 3 {
                    return Err(tensor_err(format!(
                        "{field}.b64: {} base64 characters cannot hold {expected} bytes ({} {dtype} elements of shape {})",
                        b.len(),
                        n,
                        fmt_shape(&self.shape)
                    )));
                }
                let wrong_length = |got: String| {
                    tensor_err(format!(
                        "{field}.b64: expected {expected} bytes ({n} {dtype} elements of shape {}), got {got}",
                        fmt_shape(&self.shape),
                    ))
                };
                let invalid = |e: base64::DecodeError| tensor_err(format!("{field}.b64: invalid base64 ({e})"));
                // Allocate for the shape only when the string can fill it
                // (the check above bounded the string by the shape);
                // otherwise decode what is there to say what it held.
                if expected > (b.len() as u64).div_ceil(4) * 3 {
                    let got = B64.decode(b.as_bytes()).map_err(invalid)?.len();
                    return Err(wrong_length(got.to_string()));
                }
                let data = decode_b64_elements(dtype, n as usize, b.as_bytes()).map_err(|e| match e {
                    B64Error::Invalid(e) => invalid(e),
                    B64Error::Length(got) => wrong_length(got.to_string()),
                    B64Error::TooLong => wrong_length("more".to_string()),
                    B64Error::Tensor(e) => tensor_err(format!("{field}.b64: {e}")),
                })?;
                if !allow_non_finite
                    && let TensorData::F32(v) = &data
                    && !v.iter().all(|x| x.is_finite())
                    && let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite())
                {
                    return Err(ApiError::new(
                        NON_FINITE_INPUT,
                        format!("{field}.b64: element {i} is {}", non_finite_name(*x)),
                    ));
                }
                data
            }
        };
        let shape: Vec<usize> = self.shape.iter().map(|&d| d as usize).collect();
        Tensor::new(shape, data).map_err(|e| tensor_err(format!("{field}: {e}")))
    }
}

enum B64Error {
    Invalid(base64::DecodeError),
    /// Decoded to this many bytes, not the expected count.
    Length(usize),
    /// Decodes to more bytes than expected.
    TooLong,
    Tensor(verinfer_state::TensorError),
}

impl From<verinfer_state::TensorError> for B64Error {
    fn from(e: verinfer_state::TensorError) -> Self {
        B64Error::Tensor(e)
    }
}

/// Decodes base64 straight into the storage of `n` elements of `dtype`
/// (`TensorData::from_le_fill`): no intermediate byte buffer and no
/// per-element conversion pass, which for a 600 KB image were two of the
/// request's copies (docs/node.md).
fn decode_b64_elements(dtype: DType, n: usize, b64: &[u8]) -> Result<TensorData, B64Error> {
    TensorData::from_le_fill(dtype, n, |dst| {
        // The SIMD decoder (3.4× the base64 crate here, docs/node.md) takes
        // the well-formed string of the right length; anything else goes
        // through the base64 crate, whose verdict and error message count.
        let simd = base64_simd::STANDARD;
        if simd.decoded_length(b64).ok() != Some(dst.len())
            || simd.decode(b64, base64_simd::Out::from_slice(dst)).is_err()
        {
            let got = B64.decode_slice(b64, dst).map_err(|e| match e {
                base64::DecodeSliceError::DecodeError(e) => B64Error::Invalid(e),
                base64::DecodeSliceError::OutputSliceTooSmall => B64Error::TooLong,
            })?;
            if got != dst.len() {
                return Err(B64Error::Length(got));
            }
        }
        Ok(())
    })
}

fn non_finite_name(x: f32) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

const TOO_MANY: &str = "more elements than the shape holds";

/// A JSON array of at most `n` raw elements: parsing stops at element
/// `n + 1`, so an array of millions of elements sent for a small shape costs
/// neither the time to scan it all nor a pointer per element.
struct AtMost(u64);

impl<'de> serde::de::DeserializeSeed<'de> for AtMost {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AtMost {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of {} elements", self.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(self.0.min(1 << 20) as usize);
        while let Some(x) = seq.next_element::<&RawValue>()? {
            if v.len() as u64 == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            v.push(x);
        }
        Ok(v)
    }
}

/// Parses a flat JSON array of `n` elements of `dtype` from its text.
fn parse_json_data(
    field: &str,
    dtype: DType,
    n: u64,
    text: &str,
    allow_non_finite: bool,
) -> Result<TensorData, ApiError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let items = serde::de::DeserializeSeed::deserialize(AtMost(n), &mut de).and_then(|v| de.end().map(|()| v));
    let items = match items {
        Ok(v) => v,
        Err(e) if e.to_string().starts_with(TOO_MANY) => {
            return Err(tensor_err(format!("{field}.data: expected {n} elements, got more")));
        }
        Err(_) => return Err(tensor_err(format!("{field}.data: expected a flat JSON array of {n} {dtype} values"))),
    };
    if items.len() as u64 != n {
        return Err(tensor_err(format!("{field}.data: expected {n} elements, got {}", items.len())));
    }
    let bad =
        |i: usize, tok: &str, what: &str| tensor_err(format!("{field}.data[{i}]: {} is not {what}", truncate(tok)));
    macro_rules! ints {
        ($t:ty, $variant:ident) => {{
            let mut v: Vec<$t> = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let tok = it.get();
                v.push(tok.parse::<$t>().map_err(|_| bad(i, tok, concat!("a ", stringify!($t))))?);
            }
            TensorData::$variant(v)
        }};
    }
    Ok(match dtype {
        DType::F32 => {
            let mut v = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let tok = it.get();
                let x = match tok {
                    "\"NaN\"" => f32::NAN,
                    "\"Infinity\"" => f32::INFINITY,
                    "\"-Infinity\"" => f32::NEG_INFINITY,
                    // The text is validated JSON: a token that parses as a
                    // float is a JSON number (Rust's float grammar accepts
                    // every JSON number; `inf`/`nan` cannot occur unquoted).
                    t => t.parse::<f32>().map_err(|_| bad(i, tok, "an f32"))?,
                };
                if !allow_non_finite && !x.is_finite() {
                    let what = if tok.starts_with('"') {
                        format!("{field}.data[{i}] is {}", non_finite_name(x))
                    } else {
                        format!("{field}.data[{i}] = {} overflows f32 (is {})", truncate(tok), non_finite_name(x))
                    };
                    return Err(ApiError::new(NON_FINITE_INPUT, what));
                }
                v.push(x);
            }
            TensorData::F32(v)
        }
        DType::I64 => ints!(i64, I64),
        DType::I32 => ints!(i32, I32),
        DType::I16 => ints!(i16, I16),
        DType::I8 => ints!(i8, I8),
        DType::U64 => ints!(u64, U64),
        DType::U32 => ints!(u32, U32),
        DType::U16 => ints!(u16, U16),
        DType::U8 => ints!(u8, U8),
        DType::Bool => {
            let mut v = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                v.push(match it.get() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    tok => return Err(bad(i, tok, "a bool")),
                });
            }
            TensorData::Bool(v)
        }
    })
}

fn truncate(s: &str) -> String {
    if s.len() <= 40 {
        s.to_string()
    } else {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f32_tensor(v: Vec<f32>) -> Tensor {
        let n = v.len();
        Tensor::from_f32(vec![n], v).unwrap()
    }

    fn via_json(w: &WireTensor) -> WireTensor {
        serde_json::from_str(&serde_json::to_string(w).unwrap()).unwrap()
    }

    proptest! {
        #[test]
        fn every_finite_f32_round_trips(bits in proptest::collection::vec(any::<u32>(), 0..64)) {
            let v: Vec<f32> = bits.into_iter().map(f32::from_bits).filter(|x| x.is_finite()).collect();
            let t = f32_tensor(v);
            for enc in [Encoding::Json, Encoding::B64] {
                let back = via_json(&WireTensor::encode(&t, enc)).decode_input("x").unwrap();
                prop_assert_eq!(back.le_bytes(), t.le_bytes());
            }
        }
    }

    #[test]
    fn hard_f32_cases_round_trip() {
        let v = vec![
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            -0.0,
            0.1,
            16777217.0,
            f32::from_bits(0x3f7f_ffff),
            f32::EPSILON,
        ];
        let t = f32_tensor(v);
        let w = WireTensor::json(&t);
        let back = via_json(&w).decode_input("x").unwrap();
        assert_eq!(back.le_bytes(), t.le_bytes());
        // A decimal that is a near-tie between two f32s parses to the
        // correctly rounded f32, not via f64.
        let w: WireTensor =
            serde_json::from_str(r#"{"dtype":"f32","shape":[1],"data":[1.00000005960464477539062500000001]}"#).unwrap();
        assert_eq!(w.decode_input("x").unwrap().as_f32().unwrap()[0].to_bits(), 0x3f80_0001);
    }

    #[test]
    fn non_finite_inputs_are_refused_and_outputs_written_as_strings() {
        let t = f32_tensor(vec![1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        let w = WireTensor::json(&t);
        assert_eq!(w.data.as_ref().unwrap().get(), r#"[1.0,"NaN","Infinity","-Infinity"]"#);
        let e = w.decode_input("inputs[0]").unwrap_err();
        assert_eq!(e.code, NON_FINITE_INPUT);
        assert_eq!(e.message, "inputs[0].data[1] is NaN");
        let back = w.decode_output("outputs[0]").unwrap();
        assert!(back.as_f32().unwrap()[1].is_nan());
        assert_eq!(back.as_f32().unwrap()[3], f32::NEG_INFINITY);
        let e = WireTensor::b64(&t).decode_input("inputs[2]").unwrap_err();
        assert_eq!(e.message, "inputs[2].b64: element 1 is NaN");
        let w: WireTensor = serde_json::from_str(r#"{"dtype":"f32","shape":[2],"data":[1, 1e39]}"#).unwrap();
        let e = w.decode_input("inputs[0]").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (NON_FINITE_INPUT, "inputs[0].data[1] = 1e39 overflows f32 (is Infinity)")
        );
    }

    #[test]
    fn malformed_data_names_the_field() {
        let cases = [
            (r#"{"dtype":"f64","shape":[1],"data":[1]}"#, "inputs[0].dtype: unknown dtype \"f64\""),
            (r#"{"dtype":"f32","shape":[3],"data":[1,2]}"#, "inputs[0].data: expected 3 elements, got 2"),
            // Parsing stops at the element past the shape.
            (r#"{"dtype":"f32","shape":[2],"data":[1,2,3,4,5]}"#, "inputs[0].data: expected 2 elements, got more"),
            (r#"{"dtype":"f32","shape":[0],"data":[1]}"#, "inputs[0].data: expected 0 elements, got more"),
            (r#"{"dtype":"f32","shape":[1],"data":["x"]}"#, "inputs[0].data[0]: \"x\" is not an f32"),
            (r#"{"dtype":"f32","shape":[1],"data":[[1]]}"#, "inputs[0].data[0]: [1] is not an f32"),
            (r#"{"dtype":"i64","shape":[1],"data":[1.5]}"#, "inputs[0].data[0]: 1.5 is not a i64"),
            (r#"{"dtype":"u8","shape":[1],"data":[256]}"#, "inputs[0].data[0]: 256 is not a u8"),
            (r#"{"dtype":"f32","shape":[1],"data":{"a":1}}"#, "inputs[0].data: expected a flat JSON array"),
            (r#"{"dtype":"f32","shape":[2],"b64":"AAAA"}"#, "inputs[0].b64: expected 8 bytes"),
            (r#"{"dtype":"f32","shape":[1],"b64":"!!!!"}"#, "inputs[0].b64: invalid base64"),
            (
                r#"{"dtype":"f32","shape":[1],"b64":"AAAAAAAA"}"#,
                "inputs[0].b64: expected 4 bytes (1 f32 elements of shape [1]), got more",
            ),
            (
                r#"{"dtype":"f32","shape":[2],"b64":"AAAAAAA="}"#,
                "inputs[0].b64: expected 8 bytes (2 f32 elements of shape [2]), got 5",
            ),
            (
                r#"{"dtype":"i16","shape":[2],"b64":"AAAA"}"#,
                "inputs[0].b64: expected 4 bytes (2 i16 elements of shape [2]), got 3",
            ),
            (r#"{"dtype":"bool","shape":[1],"b64":"Ag=="}"#, "inputs[0].b64: "),
            (
                r#"{"dtype":"f32","shape":[1073741824],"b64":"AAAA"}"#,
                "inputs[0].b64: expected 4294967296 bytes (1073741824 f32 elements of shape [1073741824]), got 3",
            ),
            (r#"{"dtype":"f32","shape":[1]}"#, "inputs[0]: missing \"data\" or \"b64\""),
            (
                r#"{"dtype":"f32","shape":[4294967296,4294967296],"data":[]}"#,
                "inputs[0].shape: [4294967296,4294967296] is not a valid shape",
            ),
        ];
        for (json, want) in cases {
            let w: WireTensor = serde_json::from_str(json).unwrap();
            let e = w.decode_input("inputs[0]").unwrap_err();
            assert_eq!(e.code, INVALID_TENSOR, "{json}");
            assert!(e.message.starts_with(want), "{json}: {} does not start with {want}", e.message);
        }
    }

    #[test]
    fn integer_and_bool_tensors_round_trip() {
        let t = Tensor::new(vec![3], TensorData::I64(vec![i64::MIN, 0, i64::MAX])).unwrap();
        assert_eq!(via_json(&WireTensor::json(&t)).decode_input("x").unwrap(), t);
        let t = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
        assert_eq!(via_json(&WireTensor::json(&t)).decode_input("x").unwrap(), t);
        assert_eq!(via_json(&WireTensor::b64(&t)).decode_input("x").unwrap(), t);
    }

    proptest! {
        /// The SIMD decoder never changes a verdict: over strings of
        /// base64 symbols, padding and a few strays, a u8 tensor decodes
        /// exactly when the base64 crate decodes the string to that many
        /// bytes, and to the same bytes.
        #[test]
        fn simd_base64_agrees_with_the_base64_crate(
            symbols in proptest::collection::vec(
                prop_oneof![8 => 0u8..64, 1 => Just(64u8), 1 => Just(65u8)], 0..40),
            n in 0u64..32,
        ) {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!";
            let s: String = symbols.iter().map(|&i| ALPHABET[i as usize] as char).collect();
            // The lengths a well-formed string could decode to, and one more.
            let full = (s.len() / 4 * 3) as u64;
            for n in [n, full, full.saturating_sub(1), full.saturating_sub(2)] {
                let w = WireTensor { dtype: "u8".into(), shape: vec![n], data: None, b64: Some(s.clone()) };
                let want = B64.decode(s.as_bytes()).ok().filter(|b| b.len() as u64 == n);
                match w.decode_input("x") {
                    Ok(t) => prop_assert_eq!(Some(t.le_bytes().into_owned()), want, "{} as {}", s, n),
                    Err(_) => prop_assert!(want.is_none(), "{} as {} rejected", s, n),
                }
            }
        }
    }

    /// Base64 decodes straight into each dtype's storage: every dtype and
    /// every element count modulo 3 (base64 padding) round-trips.
    #[test]
    fn every_dtype_round_trips_through_b64() {
        for dt in DType::ALL {
            for n in [0u64, 1, 2, 3, 4, 5, 17] {
                let bytes: Vec<u8> = (0..n as usize * dt.size())
                    .map(|i| if dt == DType::Bool { (i % 2) as u8 } else { (i * 37 % 251) as u8 })
                    .collect();
                let t = Tensor::from_le_bytes(dt, &[n], &bytes).unwrap();
                let back = via_json(&WireTensor::b64(&t)).decode_output("x").unwrap();
                assert_eq!(back.le_bytes(), t.le_bytes(), "{dt} × {n}");
                assert_eq!(back.dtype(), dt);
            }
        }
    }
}
