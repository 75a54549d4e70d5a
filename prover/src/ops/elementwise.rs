//! Element-wise ops: unary functions, broadcast binary functions, `Where`
//! and `Cast`. Each output element is a one-step fold (a map): it reads its
//! operands and computes its value with the scalar functions below, which
//! are the definitions (`docs/semantics.md#element-wise`).

use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

use super::layout::{BroadcastIter, broadcast_index, broadcast_strides};
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::math::{self, canon};
use crate::program::{BinaryOp, UnaryOp, ValueType};

// ---------------------------------------------------------------------------
// Scalar definitions.

/// Round half to even, exactly (no libm).
#[inline(always)]
pub fn round_even(x: f32) -> f32 {
    const TWO23: f32 = 8_388_608.0;
    let a = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    // Not `a >= TWO23`: the negation also sends NaN down this branch.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(a < TWO23) {
        // |x| ≥ 2^23 is already integral; NaN falls through here too.
        return canon(x);
    }
    // Adding 2^23 makes the ulp 1, so the FPU's round-to-nearest-even does
    // the rounding; subtracting it back is exact.
    let r = (a + TWO23) - TWO23;
    f32::from_bits(r.to_bits() | (x.to_bits() & 0x8000_0000))
}

/// Floor, exactly.
#[inline(always)]
pub fn floor(x: f32) -> f32 {
    let r = round_even(x);
    if r > x { r - 1.0 } else { r }
}

/// Ceiling, exactly (ceil(-0.5) = -0).
#[inline(always)]
pub fn ceil(x: f32) -> f32 {
    let r = round_even(x);
    if r < x { r + 1.0 } else { r }
}

/// NaN-propagating maximum; max(-0, +0) = +0.
#[inline(always)]
// The branches spell out the definition case by case (docs/semantics.md).
#[allow(clippy::if_same_then_else)]
pub fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        math::CANONICAL_NAN
    } else if a > b {
        a
    } else if b > a {
        b
    } else if a.is_sign_negative() {
        b
    } else {
        a
    }
}

/// NaN-propagating minimum; min(-0, +0) = -0.
#[inline(always)]
pub fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        math::CANONICAL_NAN
    } else if a < b {
        a
    } else if b < a {
        b
    } else if a.is_sign_negative() {
        a
    } else {
        b
    }
}

/// `fma(a, b, c)` with canonical NaN.
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    canon(a.mul_add(b, c))
}

/// The f32 unary functions.
#[inline(always)]
pub fn unary_f32(op: UnaryOp, x: f32) -> f32 {
    canon(match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => f32::from_bits(x.to_bits() & 0x7fff_ffff),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        UnaryOp::Exp => math::exp(x),
        UnaryOp::Ln => math::ln(x),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => math::rsqrt(x),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => math::tanh(x),
        UnaryOp::Sigmoid => math::sigmoid(x),
        UnaryOp::Erf => math::erf(x),
        UnaryOp::GeluExact => math::gelu(x),
        UnaryOp::GeluTanh => math::gelu_tanh(x),
        UnaryOp::Silu => math::silu(x),
        UnaryOp::Softplus => math::softplus(x),
        UnaryOp::Sin => math::sin(x),
        UnaryOp::Cos => math::cos(x),
        UnaryOp::Atan => math::atan(x),
        UnaryOp::Floor => floor(x),
        UnaryOp::Ceil => ceil(x),
        UnaryOp::Round => round_even(x),
        UnaryOp::Not => return math::CANONICAL_NAN,
        UnaryOp::PowConst(p) => math::pow(x, p.get()),
        UnaryOp::LeakyRelu(alpha) => {
            if x >= 0.0 || x.is_nan() {
                x
            } else {
                alpha.get() * x
            }
        }
        UnaryOp::HardSigmoid { alpha, beta } => fmax(0.0, fmin(1.0, alpha.get().mul_add(x, beta.get()))),
        UnaryOp::HardSwish => {
            // x · max(0, min(1, x/6 + 1/2)), the ONNX definition with alpha=1/6.
            let h = fmax(0.0, fmin(1.0, (1.0f32 / 6.0).mul_add(x, 0.5)));
            x * h
        }
    })
}

/// Whether `op` is defined for `dtype` (and the output dtype it gives).
pub fn unary_out_dtype(op: UnaryOp, dtype: DType) -> Option<DType> {
    match (op, dtype) {
        (_, DType::F32) if op != UnaryOp::Not => Some(DType::F32),
        (UnaryOp::Not, DType::Bool) => Some(DType::Bool),
        (UnaryOp::Not, d) if d.is_int() => Some(d),
        (UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign, d) if d.is_signed_int() => Some(d),
        (UnaryOp::Abs | UnaryOp::Sign, d) if d.is_int() => Some(d),
        _ => None,
    }
}

/// A unary op on any defined dtype.
pub fn unary_scalar(op: UnaryOp, x: Scalar) -> Result<Scalar, ProverError> {
    let dt = x.dtype;
    if dt == DType::F32 && op != UnaryOp::Not {
        return Ok(Scalar::from_f32(unary_f32(op, x.f32())));
    }
    if dt == DType::Bool && op == UnaryOp::Not {
        return Ok(Scalar::from_bool(!x.as_bool()));
    }
    if dt.is_int() {
        let v = x.as_i64();
        let signed = dt.is_signed_int();
        let r = match op {
            UnaryOp::Not => !v,
            UnaryOp::Neg if signed => v.wrapping_neg(),
            UnaryOp::Abs if signed => v.wrapping_abs(),
            UnaryOp::Abs => v,
            UnaryOp::Sign if signed => v.signum(),
            UnaryOp::Sign => i64::from(x.bits != 0),
            _ => return Err(ProverError::OpDType { op: format!("{op:?}"), dtype: dt }),
        };
        return Ok(Scalar::from_i64(dt, r));
    }
    Err(ProverError::OpDType { op: format!("{op:?}"), dtype: dt })
}

/// The f32 binary arithmetic functions (non-comparison).
#[inline(always)]
pub fn binary_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    canon(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Rem => math::fmod(a, b),
        BinaryOp::Pow => math::pow(a, b),
        BinaryOp::Min => fmin(a, b),
        BinaryOp::Max => fmax(a, b),
        _ => math::CANONICAL_NAN,
    })
}

/// The f32 comparisons (IEEE: NaN compares unordered).
#[inline(always)]
pub fn compare_f32(op: BinaryOp, a: f32, b: f32) -> bool {
    match op {
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        BinaryOp::Ge => a >= b,
        _ => false,
    }
}

/// Output dtype of a binary op on `dtype` inputs, if defined.
pub fn binary_out_dtype(op: BinaryOp, dtype: DType) -> Option<DType> {
    use BinaryOp::*;
    match op {
        Eq | Ne => Some(DType::Bool),
        Lt | Le | Gt | Ge if dtype != DType::Bool => Some(DType::Bool),
        And | Or | Xor if dtype == DType::Bool => Some(DType::Bool),
        BitAnd | BitOr | BitXor if dtype.is_int() || dtype == DType::Bool => Some(dtype),
        ShiftLeft | ShiftRight if dtype.is_int() => Some(dtype),
        Add | Sub | Mul | Div | Rem | Pow | Min | Max if dtype != DType::Bool => Some(dtype),
        _ => None,
    }
}

fn int_pow(base: i64, exp: i64, signed: bool) -> i64 {
    if signed && exp < 0 {
        return match base {
            1 => 1,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let mut e = exp as u64;
    let mut b = base;
    let mut r: i64 = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

/// A binary op on two scalars of the same dtype.
pub fn binary_scalar(op: BinaryOp, a: Scalar, b: Scalar) -> Result<Scalar, ProverError> {
    use BinaryOp::*;
    let dt = a.dtype;
    let undefined = || ProverError::OpDType { op: format!("{op:?}"), dtype: dt };
    if b.dtype != dt || binary_out_dtype(op, dt).is_none() {
        return Err(undefined());
    }
    if dt == DType::F32 {
        let (x, y) = (a.f32(), b.f32());
        return Ok(if op.is_comparison() {
            Scalar::from_bool(compare_f32(op, x, y))
        } else {
            Scalar::from_f32(binary_f32(op, x, y))
        });
    }
    if dt == DType::Bool {
        let (x, y) = (a.as_bool(), b.as_bool());
        return Ok(Scalar::from_bool(match op {
            And | BitAnd => x && y,
            Or | BitOr => x || y,
            Xor | BitXor => x ^ y,
            Eq => x == y,
            Ne => x != y,
            _ => return Err(undefined()),
        }));
    }
    let signed = dt.is_signed_int();
    let bits = (dt.size() * 8) as u32;
    let (x, y) = (a.as_i64(), b.as_i64());
    let (ux, uy) = (a.bits, b.bits);
    let ord = if signed { x.cmp(&y) } else { ux.cmp(&uy) };
    let r: i64 = match op {
        Eq => return Ok(Scalar::from_bool(x == y)),
        Ne => return Ok(Scalar::from_bool(x != y)),
        Lt => return Ok(Scalar::from_bool(ord.is_lt())),
        Le => return Ok(Scalar::from_bool(ord.is_le())),
        Gt => return Ok(Scalar::from_bool(ord.is_gt())),
        Ge => return Ok(Scalar::from_bool(ord.is_ge())),
        Add => x.wrapping_add(y),
        Sub => x.wrapping_sub(y),
        Mul => x.wrapping_mul(y),
        Div => {
            if y == 0 {
                0
            } else if signed {
                x.wrapping_div(y)
            } else {
                (ux / uy) as i64
            }
        }
        Rem => {
            if y == 0 {
                0
            } else if signed {
                x.wrapping_rem(y)
            } else {
                (ux % uy) as i64
            }
        }
        Pow => int_pow(x, y, signed),
        Min => {
            if ord.is_le() {
                x
            } else {
                y
            }
        }
        Max => {
            if ord.is_ge() {
                x
            } else {
                y
            }
        }
        BitAnd => x & y,
        BitOr => x | y,
        BitXor => x ^ y,
        ShiftLeft => {
            if uy >= u64::from(bits) {
                0
            } else {
                (ux << uy) as i64
            }
        }
        ShiftRight => {
            if uy >= u64::from(bits) {
                0
            } else {
                (ux >> uy) as i64
            }
        }
        And | Or | Xor => return Err(undefined()),
    };
    Ok(Scalar::from_i64(dt, r))
}

/// Conversion to `to` (see `docs/semantics.md#cast`): float→int saturates
/// (NaN→0), int→int wraps, anything→bool is `x ≠ 0` (NaN→true), int→f32
/// rounds to nearest even.
pub fn cast_scalar(x: Scalar, to: DType) -> Scalar {
    let from = x.dtype;
    if from == to {
        return if to == DType::F32 { Scalar::from_f32(canon(x.f32())) } else { x };
    }
    if to == DType::Bool {
        return Scalar::from_bool(if from == DType::F32 { x.f32() != 0.0 || x.f32().is_nan() } else { x.bits != 0 });
    }
    if from == DType::F32 {
        let v = x.f32();
        return match to {
            DType::F32 | DType::Bool => unreachable!(),
            DType::I64 => Scalar::from_i64(to, v as i64),
            DType::I32 => Scalar::from_i64(to, i64::from(v as i32)),
            DType::I16 => Scalar::from_i64(to, i64::from(v as i16)),
            DType::I8 => Scalar::from_i64(to, i64::from(v as i8)),
            DType::U64 => Scalar { dtype: to, bits: v as u64 },
            DType::U32 => Scalar { dtype: to, bits: u64::from(v as u32) },
            DType::U16 => Scalar { dtype: to, bits: u64::from(v as u16) },
            DType::U8 => Scalar { dtype: to, bits: u64::from(v as u8) },
        };
    }
    if to == DType::F32 {
        let f = if from == DType::Bool {
            if x.bits != 0 { 1.0 } else { 0.0 }
        } else if from.is_signed_int() {
            x.as_i64() as f32
        } else {
            x.bits as f32
        };
        return Scalar::from_f32(f);
    }
    // Integer or bool to integer: two's-complement truncation of the widened value.
    Scalar::from_i64(to, x.bits as i64)
}

// ---------------------------------------------------------------------------
// Folds.

/// A one-step fold: `s1.w0 = value bits`.
fn map_state(s: Scalar) -> FoldState {
    FoldState([s.bits, 0])
}

pub(crate) struct UnaryFold {
    pub op: UnaryOp,
    pub out: DType,
}

impl ElementFold for UnaryFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, e: u64, _t: u64, _s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        Ok(map_state(unary_scalar(self.op, rd.read(0, e)?)?))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar { dtype: self.out, bits: s.0[0] }
    }
}

pub(crate) struct BinaryFold {
    pub op: BinaryOp,
    pub out: ValueType,
    pub a_strides: Vec<u64>,
    pub b_strides: Vec<u64>,
}

impl BinaryFold {
    pub fn new(op: BinaryOp, a: &ValueType, b: &ValueType, out: &ValueType) -> Self {
        Self {
            op,
            out: out.clone(),
            a_strides: broadcast_strides(&a.shape, out.shape.len()),
            b_strides: broadcast_strides(&b.shape, out.shape.len()),
        }
    }
}

impl ElementFold for BinaryFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, e: u64, _t: u64, _s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let a = rd.read(0, broadcast_index(e, &self.out.shape, &self.a_strides))?;
        let b = rd.read(1, broadcast_index(e, &self.out.shape, &self.b_strides))?;
        Ok(map_state(binary_scalar(self.op, a, b)?))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar { dtype: self.out.dtype, bits: s.0[0] }
    }
}

pub(crate) struct WhereFold {
    pub out: ValueType,
    pub strides: [Vec<u64>; 3],
}

impl WhereFold {
    pub fn new(c: &ValueType, a: &ValueType, b: &ValueType, out: &ValueType) -> Self {
        let r = out.shape.len();
        Self {
            out: out.clone(),
            strides: [broadcast_strides(&c.shape, r), broadcast_strides(&a.shape, r), broadcast_strides(&b.shape, r)],
        }
    }
}

impl ElementFold for WhereFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, e: u64, _t: u64, _s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let c = rd.read(0, broadcast_index(e, &self.out.shape, &self.strides[0]))?;
        // Only the selected branch is an operand.
        let slot = if c.as_bool() { 1 } else { 2 };
        let v = rd.read(slot, broadcast_index(e, &self.out.shape, &self.strides[slot]))?;
        Ok(map_state(v))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar { dtype: self.out.dtype, bits: s.0[0] }
    }
}

pub(crate) struct CastFold {
    pub to: DType,
}

impl ElementFold for CastFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, e: u64, _t: u64, _s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        Ok(map_state(cast_scalar(rd.read(0, e)?, self.to)))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar { dtype: self.to, bits: s.0[0] }
    }
}

// ---------------------------------------------------------------------------
// Direct reference implementations (same definitions, whole-tensor loops).

pub(crate) fn exec_unary(op: UnaryOp, x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    if let (TensorData::F32(v), true) = (x.data(), op != UnaryOp::Not) {
        let r: Vec<f32> = v.iter().map(|&a| unary_f32(op, a)).collect();
        return Ok(Tensor::from_f32(out.shape_usize(), r)?);
    }
    let mut data = TensorData::zeros(out.dtype, x.len());
    for i in 0..x.len() {
        data.set_scalar(i, unary_scalar(op, x.scalar(i as u64)?)?);
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

pub(crate) fn exec_binary(op: BinaryOp, a: &Tensor, b: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let n = out.numel() as usize;
    let mut ia = BroadcastIter::new(&a.shape_u64(), &out.shape);
    let mut ib = BroadcastIter::new(&b.shape_u64(), &out.shape);
    if let (TensorData::F32(x), TensorData::F32(y)) = (a.data(), b.data()) {
        if op.is_comparison() {
            let r: Vec<bool> =
                (0..n).map(|_| compare_f32(op, x[ia.next_index() as usize], y[ib.next_index() as usize])).collect();
            return Ok(Tensor::new(out.shape_usize(), TensorData::Bool(r))?);
        }
        let r: Vec<f32> = if a.len() == n && b.len() == n {
            x.iter().zip(y).map(|(&p, &q)| binary_f32(op, p, q)).collect()
        } else if b.len() == 1 && a.len() == n {
            x.iter().map(|&p| binary_f32(op, p, y[0])).collect()
        } else {
            (0..n).map(|_| binary_f32(op, x[ia.next_index() as usize], y[ib.next_index() as usize])).collect()
        };
        return Ok(Tensor::from_f32(out.shape_usize(), r)?);
    }
    let mut data = TensorData::zeros(out.dtype, n);
    for i in 0..n {
        let s = binary_scalar(op, a.scalar(ia.next_index())?, b.scalar(ib.next_index())?)?;
        data.set_scalar(i, s);
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

pub(crate) fn exec_where(c: &Tensor, a: &Tensor, b: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let n = out.numel() as usize;
    let mut ic = BroadcastIter::new(&c.shape_u64(), &out.shape);
    let mut ia = BroadcastIter::new(&a.shape_u64(), &out.shape);
    let mut ib = BroadcastIter::new(&b.shape_u64(), &out.shape);
    let mut data = TensorData::zeros(out.dtype, n);
    for i in 0..n {
        let (kc, ka, kb) = (ic.next_index(), ia.next_index(), ib.next_index());
        let v = if c.scalar(kc)?.as_bool() { a.scalar(ka)? } else { b.scalar(kb)? };
        data.set_scalar(i, v);
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

pub(crate) fn exec_cast(x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    let mut data = TensorData::zeros(out.dtype, x.len());
    for i in 0..x.len() {
        data.set_scalar(i, cast_scalar(x.scalar(i as u64)?, out.dtype));
    }
    Ok(Tensor::new(out.shape_usize(), data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::F32Bits;

    const NAN: f32 = math::CANONICAL_NAN;

    fn bits(x: f32) -> u32 {
        x.to_bits()
    }

    #[test]
    fn rounding_is_exact_with_signed_zero() {
        let cases: &[(f32, f32, f32, f32)] = &[
            // x, floor, ceil, round_even
            (0.5, 0.0, 1.0, 0.0),
            (-0.5, -1.0, -0.0, -0.0),
            (1.5, 1.0, 2.0, 2.0),
            (2.5, 2.0, 3.0, 2.0),
            (-2.5, -3.0, -2.0, -2.0),
            (-0.0, -0.0, -0.0, -0.0),
            (0.0, 0.0, 0.0, 0.0),
            (8388609.0, 8388609.0, 8388609.0, 8388609.0),
            (f32::INFINITY, f32::INFINITY, f32::INFINITY, f32::INFINITY),
            (f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY),
            (1e-45, 0.0, 1.0, 0.0),
            (-1e-45, -1.0, -0.0, -0.0),
        ];
        for &(x, f, c, r) in cases {
            assert_eq!(bits(floor(x)), bits(f), "floor({x})");
            assert_eq!(bits(ceil(x)), bits(c), "ceil({x})");
            assert_eq!(bits(round_even(x)), bits(r), "round({x})");
        }
        assert_eq!(bits(floor(f32::from_bits(0x7fc0_1234))), bits(NAN));
    }

    #[test]
    fn max_min_nan_and_zero() {
        assert_eq!(bits(fmax(-0.0, 0.0)), bits(0.0));
        assert_eq!(bits(fmax(0.0, -0.0)), bits(0.0));
        assert_eq!(bits(fmin(-0.0, 0.0)), bits(-0.0));
        assert_eq!(bits(fmin(0.0, -0.0)), bits(-0.0));
        assert_eq!(bits(fmax(f32::NAN, 1.0)), bits(NAN));
        assert_eq!(bits(fmax(1.0, -f32::NAN)), bits(NAN));
        assert_eq!(bits(fmin(f32::NEG_INFINITY, 3.0)), bits(f32::NEG_INFINITY));
        // Relu as max(x, 0): -0 → +0, denormals kept.
        assert_eq!(bits(fmax(-0.0, 0.0)), 0);
        assert_eq!(fmax(1e-45, 0.0), 1e-45);
    }

    #[test]
    fn arithmetic_canonical_nan_and_denormals() {
        let weird_nan = f32::from_bits(0xffc0_0001);
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow] {
            assert_eq!(bits(binary_f32(op, weird_nan, 1.0)), bits(NAN), "{op:?}");
        }
        assert_eq!(bits(binary_f32(BinaryOp::Sub, f32::INFINITY, f32::INFINITY)), bits(NAN));
        assert_eq!(bits(binary_f32(BinaryOp::Div, 0.0, 0.0)), bits(NAN));
        assert_eq!(binary_f32(BinaryOp::Div, 1.0, -0.0), f32::NEG_INFINITY);
        // No flush to zero.
        let d = f32::from_bits(1);
        assert_eq!(binary_f32(BinaryOp::Add, d, d).to_bits(), 2);
        assert_eq!(binary_f32(BinaryOp::Mul, 1e-20, 1e-20).to_bits(), (1e-40f32).to_bits());
        assert_eq!(bits(binary_f32(BinaryOp::Add, -0.0, -0.0)), bits(-0.0));
        assert_eq!(bits(binary_f32(BinaryOp::Add, -0.0, 0.0)), bits(0.0));
        assert_eq!(bits(unary_f32(UnaryOp::Neg, weird_nan)), bits(NAN));
        assert_eq!(bits(unary_f32(UnaryOp::Abs, -0.0)), bits(0.0));
        assert_eq!(bits(unary_f32(UnaryOp::Sign, -0.0)), bits(-0.0));
        assert_eq!(bits(unary_f32(UnaryOp::Sqrt, -1.0)), bits(NAN));
        assert_eq!(bits(unary_f32(UnaryOp::Sqrt, -0.0)), bits(-0.0));
        assert_eq!(unary_f32(UnaryOp::Recip, 0.0), f32::INFINITY);
    }

    #[test]
    fn comparisons_with_nan() {
        let n = f32::NAN;
        for op in [BinaryOp::Eq, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge] {
            assert!(!compare_f32(op, n, n));
            assert!(!compare_f32(op, n, 1.0));
        }
        assert!(compare_f32(BinaryOp::Ne, n, n));
        assert!(compare_f32(BinaryOp::Eq, -0.0, 0.0));
    }

    #[test]
    fn leaky_hard_activations() {
        let a = F32Bits::new(0.1);
        assert_eq!(bits(unary_f32(UnaryOp::LeakyRelu(a), -0.0)), bits(-0.0));
        assert_eq!(unary_f32(UnaryOp::LeakyRelu(a), -2.0), 0.1f32 * -2.0);
        assert_eq!(bits(unary_f32(UnaryOp::LeakyRelu(a), f32::NAN)), bits(NAN));
        assert_eq!(unary_f32(UnaryOp::HardSwish, 3.0), 3.0);
        assert_eq!(unary_f32(UnaryOp::HardSwish, -3.0), -0.0);
        assert_eq!(unary_f32(UnaryOp::HardSwish, 10.0), 10.0);
        let hs = UnaryOp::HardSigmoid { alpha: F32Bits::new(0.2), beta: F32Bits::new(0.5) };
        assert_eq!(unary_f32(hs, 10.0), 1.0);
        assert_eq!(unary_f32(hs, -10.0), 0.0);
        assert_eq!(bits(unary_f32(hs, f32::NAN)), bits(NAN));
    }

    #[test]
    fn integer_ops_wrap_and_define_zero_division() {
        let i8s = |v: i64| Scalar::from_i64(DType::I8, v);
        assert_eq!(binary_scalar(BinaryOp::Add, i8s(127), i8s(1)).unwrap().as_i64(), -128);
        assert_eq!(binary_scalar(BinaryOp::Div, i8s(-128), i8s(-1)).unwrap().as_i64(), -128);
        assert_eq!(binary_scalar(BinaryOp::Div, i8s(7), i8s(0)).unwrap().as_i64(), 0);
        assert_eq!(binary_scalar(BinaryOp::Div, i8s(-7), i8s(2)).unwrap().as_i64(), -3);
        assert_eq!(binary_scalar(BinaryOp::Rem, i8s(-7), i8s(2)).unwrap().as_i64(), -1);
        assert_eq!(binary_scalar(BinaryOp::Pow, i8s(2), i8s(7)).unwrap().as_i64(), -128);
        assert_eq!(binary_scalar(BinaryOp::Pow, i8s(-1), i8s(-3)).unwrap().as_i64(), -1);
        let u8s = |v: i64| Scalar::from_i64(DType::U8, v);
        assert_eq!(binary_scalar(BinaryOp::Sub, u8s(0), u8s(1)).unwrap().bits, 255);
        assert!(binary_scalar(BinaryOp::Lt, u8s(1), u8s(200)).unwrap().as_bool());
        assert_eq!(binary_scalar(BinaryOp::ShiftLeft, u8s(1), u8s(9)).unwrap().bits, 0);
        let i64s = |v: i64| Scalar::from_i64(DType::I64, v);
        assert_eq!(binary_scalar(BinaryOp::Div, i64s(i64::MIN), i64s(-1)).unwrap().as_i64(), i64::MIN);
        assert!(binary_scalar(BinaryOp::Add, i64s(1), u8s(1)).is_err());
        assert!(binary_scalar(BinaryOp::And, i64s(1), i64s(1)).is_err());
    }

    #[test]
    fn casts() {
        let f = Scalar::from_f32;
        assert_eq!(cast_scalar(f(f32::NAN), DType::I32).as_i64(), 0);
        assert_eq!(cast_scalar(f(1e10), DType::I32).as_i64(), i64::from(i32::MAX));
        assert_eq!(cast_scalar(f(-1e10), DType::U8).bits, 0);
        assert_eq!(cast_scalar(f(-2.7), DType::I8).as_i64(), -2);
        assert!(cast_scalar(f(f32::NAN), DType::Bool).as_bool());
        assert!(!cast_scalar(f(-0.0), DType::Bool).as_bool());
        assert_eq!(cast_scalar(Scalar::from_i64(DType::I64, 16_777_217), DType::F32).f32(), 16_777_216.0);
        assert_eq!(cast_scalar(Scalar::from_i64(DType::I64, 300), DType::U8).bits, 44);
        assert_eq!(cast_scalar(Scalar::from_i64(DType::I8, -1), DType::U16).bits, 65535);
        assert_eq!(cast_scalar(Scalar::from_bool(true), DType::F32).f32(), 1.0);
        assert_eq!(cast_scalar(f(f32::from_bits(0xffc0_0001)), DType::F32).bits, 0x7fc0_0000);
    }
}
