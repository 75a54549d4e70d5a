//! TEMPORARY stub: replaced by the deterministic implementation.
#![allow(missing_docs)]
pub const CANONICAL_NAN: f32 = f32::from_bits(0x7fc0_0000);
#[inline(always)]
pub fn canon(x: f32) -> f32 { if x.is_nan() { CANONICAL_NAN } else { x } }
macro_rules! stub { ($($n:ident => $e:expr),*) => { $( #[inline(always)] pub fn $n(x: f32) -> f32 { canon(($e)(x as f64) as f32) } )* } }
stub!(exp => f64::exp, ln => f64::ln, tanh => f64::tanh, sin => f64::sin, cos => f64::cos, atan => f64::atan,
      sigmoid => |x: f64| 1.0 / (1.0 + (-x).exp()), rsqrt => |x: f64| 1.0 / x.sqrt(),
      erf => |x: f64| { let t = 1.0 / (1.0 + 0.3275911 * x.abs()); let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * (-x * x).exp(); if x >= 0.0 { y } else { -y } },
      silu => |x: f64| x / (1.0 + (-x).exp()), softplus => |x: f64| (1.0 + x.exp()).ln());
#[inline(always)]
pub fn gelu(x: f32) -> f32 { canon((0.5 * x as f64 * (1.0 + erf((x as f64 / 2f64.sqrt()) as f32) as f64)) as f32) }
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 { let x = x as f64; canon((0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())) as f32) }
#[inline(always)]
pub fn pow(x: f32, y: f32) -> f32 { canon((x as f64).powf(y as f64) as f32) }
/// `a mod b` with the sign of `a` (C fmod). The result is exact, so every
/// correct implementation agrees.
#[inline(always)]
pub fn fmod(a: f32, b: f32) -> f32 { canon(a % b) }
