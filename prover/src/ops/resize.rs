//! ONNX Resize (nearest and n-linear).
//!
//! Definition (`docs/semantics.md#resize`). Input `X` of rank `r`, output `Y`
//! of the same rank, a scale `s_a` per axis ([`ResizeSpec::scales`], f32).
//! An axis is *resized* when `len_in ≠ len_out` or `s_a ≠ 1`; every other
//! axis maps output coordinate `x` to input coordinate `x`.
//!
//! **Source coordinate** of output coordinate `x` on a resized axis, in f32
//! with round-to-nearest-even, each operation in the order written (`X =
//! x as f32`, `I = len_in as f32`, `O = len_out as f32`, all exact because
//! extents are at most 2^24):
//! * `HalfPixel`: `(X + 0.5) / s − 0.5`
//! * `PytorchHalfPixel`: `len_out > 1 ? (X + 0.5) / s − 0.5 : −0.5`
//! * `AlignCorners`: `w = s · I`; `w == 1 ? 0 : (X · (I − 1)) / (w − 1)`
//! * `Asymmetric`: `X / s`
//! * `HalfPixelSymmetric`: `adj = O / (s · I)`; `off = (I / 2) · (1 − adj)`;
//!   `(off + (X + 0.5) / s) − 0.5`
//!
//! Then `f = floor(c)` and `frac = c − f` (both exact); indices are clamped
//! into `[0, len_in − 1]` (edge replication).
//!
//! **Nearest** (a map: one step that reads one element): on each resized axis
//! the index is `f` when `frac == 0`, otherwise `f` or `f + 1` by the
//! rounding mode: `RoundPreferFloor` takes `f + 1` iff `frac > 0.5`,
//! `RoundPreferCeil` iff `frac ≥ 0.5`, `Floor` never, `Ceil` always; then
//! clamped. The value is that input element (canonical NaN).
//!
//! **Linear** (n-linear over the `d` resized axes): per resized axis the two
//! taps are `lo = clamp(f)` with weight `1 − frac` and `hi = clamp(f + 1)`
//! with weight `frac`. The fold has `2^d` steps, one per corner, corners in
//! row-major order over the resized axes in ascending axis order with `lo`
//! before `hi` (corner `t`: bit `d−1−k` of `t` selects `hi` on the `k`-th
//! resized axis). `acc₀ = −0.0`; step `t` reads the corner element `x_t`,
//! forms its weight `w_t` as the f32 product of the per-axis weights in
//! ascending axis order (`((w_{a0} · w_{a1}) · w_{a2})…`) and does
//! `acc ← fma(w_t, x_t, acc)`. Every corner is a step, also one of weight 0
//! (so an infinite or NaN neighbour makes the result NaN, as in a convolution
//! over zero padding). With no resized axis the single corner has weight 1.
//!
//! Everything but the element values depends only on the node's attributes
//! and shapes; the per-axis tables are computed once per node. Cubic
//! interpolation, antialiasing, `exclude_outside` for linear and
//! `tf_crop_and_resize` are not in the canonical op set.

use tract_onnx::prelude::{Tensor as TractTensor, TypedModel, TypedNode};
use tract_onnx::tract_core::ops::nn::resize as core;
use tract_onnx_opl::resize as opl;
use verinfer_state::tensor::{DType, Scalar};

use super::elementwise::floor;
use super::layout::{strides, unravel};
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::math::canon;
use crate::program::{F32Bits, ResizeCoord, ResizeMode, ResizeNearest, ResizeSpec, ValueType};

/// Largest axis extent Resize accepts: coordinates are exact in f32 up to it.
pub const MAX_RESIZE_EXTENT: u64 = 1 << 24;

/// The source coordinate of output coordinate `x` (see the module docs).
pub fn source_coord(coord: ResizeCoord, x: u64, scale: f32, len_in: u64, len_out: u64) -> f32 {
    let xo = x as f32;
    let li = len_in as f32;
    match coord {
        ResizeCoord::HalfPixel => (xo + 0.5) / scale - 0.5,
        ResizeCoord::PytorchHalfPixel => {
            if len_out > 1 {
                (xo + 0.5) / scale - 0.5
            } else {
                -0.5
            }
        }
        ResizeCoord::AlignCorners => {
            let w = scale * li;
            if w == 1.0 { 0.0 } else { (xo * (li - 1.0)) / (w - 1.0) }
        }
        ResizeCoord::Asymmetric => xo / scale,
        ResizeCoord::HalfPixelSymmetric => {
            let adj = len_out as f32 / (scale * li);
            let off = (li / 2.0) * (1.0 - adj);
            (off + (xo + 0.5) / scale) - 0.5
        }
    }
}

fn clamp_index(i: f32, len_in: u64) -> u64 {
    // `i` is integral and finite (checked); clamp before converting.
    if i <= 0.0 {
        0
    } else if i >= (len_in - 1) as f32 {
        len_in - 1
    } else {
        i as u64
    }
}

/// The input index nearest-mode reads for source coordinate `c`.
pub fn nearest_index(mode: ResizeNearest, c: f32, len_in: u64) -> u64 {
    let f = floor(c);
    let frac = c - f;
    let up = frac != 0.0
        && match mode {
            ResizeNearest::RoundPreferFloor => frac > 0.5,
            ResizeNearest::RoundPreferCeil => frac >= 0.5,
            ResizeNearest::Floor => false,
            ResizeNearest::Ceil => true,
        };
    clamp_index(if up { f + 1.0 } else { f }, len_in)
}

/// Linear taps of source coordinate `c`: `(lo, hi, w_lo, w_hi)`.
pub fn linear_taps(c: f32, len_in: u64) -> (u64, u64, f32, f32) {
    let f = floor(c);
    let frac = c - f;
    (clamp_index(f, len_in), clamp_index(f + 1.0, len_in), 1.0 - frac, frac)
}

/// One resized axis: its position, input stride and per-output-coordinate taps.
#[derive(Debug, Clone)]
struct AxisTable {
    axis: usize,
    /// Per output coordinate: `(lo, hi, w_lo, w_hi)` (nearest: `lo == hi`, weights unused).
    taps: Vec<(u64, u64, f32, f32)>,
}

/// The fold of one Resize node.
#[derive(Debug, Clone)]
pub(crate) struct ResizeFold {
    mode: ResizeMode,
    out_shape: Vec<u64>,
    in_strides: Vec<u64>,
    /// Resized axes, ascending.
    tables: Vec<AxisTable>,
}

impl ResizeFold {
    pub fn new(spec: &ResizeSpec, input: &ValueType, out: &ValueType) -> Result<Self, ProverError> {
        let bad = |why: String| ProverError::InvalidProgram { node: "Resize".into(), why };
        let r = input.shape.len();
        if input.dtype != DType::F32 || out.dtype != DType::F32 {
            return Err(ProverError::OpDType { op: "Resize".into(), dtype: input.dtype });
        }
        if out.shape.len() != r || spec.scales.len() != r {
            return Err(bad(format!("rank {r} input, {} output axes, {} scales", out.shape.len(), spec.scales.len())));
        }
        let mut tables = Vec::new();
        for a in 0..r {
            let (li, lo) = (input.shape[a], out.shape[a]);
            let s = spec.scales[a].get();
            if li > MAX_RESIZE_EXTENT || lo > MAX_RESIZE_EXTENT {
                return Err(bad(format!("axis {a} extent above 2^24")));
            }
            if !(s.is_finite() && s > 0.0) {
                return Err(bad(format!("scale {s} on axis {a} is not finite and positive")));
            }
            if li == lo && s == 1.0 {
                continue;
            }
            if li == 0 {
                if lo == 0 {
                    continue;
                }
                return Err(bad(format!("axis {a}: cannot resize an empty axis to {lo}")));
            }
            let mut taps = Vec::with_capacity(lo as usize);
            for x in 0..lo {
                let c = source_coord(spec.coord, x, s, li, lo);
                if !c.is_finite() {
                    return Err(bad(format!("axis {a}: source coordinate of {x} is {c}")));
                }
                taps.push(match spec.mode {
                    ResizeMode::Nearest => {
                        let i = nearest_index(spec.nearest, c, li);
                        (i, i, 1.0, 0.0)
                    }
                    ResizeMode::Linear => linear_taps(c, li),
                });
            }
            tables.push(AxisTable { axis: a, taps });
        }
        Ok(Self { mode: spec.mode, out_shape: out.shape.clone(), in_strides: strides(&input.shape), tables })
    }

    /// Input index of corner `t` of output element `e` (nearest: `t = 0`),
    /// and the corner's weight.
    fn corner(&self, e: u64, t: u64) -> (u64, f32) {
        let mut c = vec![0u64; self.out_shape.len()];
        unravel(e, &self.out_shape, &mut c);
        let d = self.tables.len();
        let mut w = 1.0f32;
        for (k, tab) in self.tables.iter().enumerate() {
            let (lo, hi, wlo, whi) = tab.taps[c[tab.axis] as usize];
            let high = self.mode == ResizeMode::Linear && (t >> (d - 1 - k)) & 1 == 1;
            c[tab.axis] = if high { hi } else { lo };
            let wa = if high { whi } else { wlo };
            w = if k == 0 { wa } else { w * wa };
        }
        (c.iter().zip(&self.in_strides).map(|(ci, s)| ci * s).sum(), w)
    }
}

impl ElementFold for ResizeFold {
    fn steps(&self, _e: u64) -> u64 {
        match self.mode {
            ResizeMode::Nearest => 1,
            ResizeMode::Linear => 1u64 << self.tables.len(),
        }
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32(-0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let (idx, w) = self.corner(e, t);
        let x = rd.read(0, idx)?.f32();
        Ok(FoldState::f32(match self.mode {
            ResizeMode::Nearest => canon(x),
            ResizeMode::Linear => canon(w.mul_add(x, s.f0())),
        }))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

// ---------------------------------------------------------------------------
// Lowering from tract.

fn konst_f32(model: &TypedModel, node: &TypedNode, ix: Option<usize>) -> Option<Vec<f32>> {
    let fact = model.outlet_fact(*node.inputs.get(ix?)?).ok()?;
    let k: &TractTensor = fact.konst.as_deref()?;
    let k = k.cast_to::<f32>().ok()?;
    let plain = k.try_as_plain_ram().ok()?;
    Some(plain.as_slice::<f32>().ok()?.to_vec())
}

fn coord_of(t: &core::CoordTransformer) -> Result<ResizeCoord, String> {
    Ok(match t {
        core::CoordTransformer::HalfPixel => ResizeCoord::HalfPixel,
        core::CoordTransformer::PytorchHalfPixel => ResizeCoord::PytorchHalfPixel,
        core::CoordTransformer::AlignCorners => ResizeCoord::AlignCorners,
        core::CoordTransformer::Asymmetric => ResizeCoord::Asymmetric,
        core::CoordTransformer::HalfPixelSymmetric => ResizeCoord::HalfPixelSymmetric,
        core::CoordTransformer::TfHalfPixelForNn => {
            return Err("coordinate transformation tf_half_pixel_for_nn is not in the canonical op set".into());
        }
    })
}

fn mode_of(i: &core::Interpolator) -> Result<ResizeMode, String> {
    match i {
        core::Interpolator::Nearest => Ok(ResizeMode::Nearest),
        core::Interpolator::Linear => Ok(ResizeMode::Linear),
        core::Interpolator::Cubic => Err("cubic interpolation is not in the canonical op set".into()),
    }
}

/// `len_out / len_in` in f32: the scale of an axis resized to a size.
fn size_scale(len_in: u64, len_out: u64) -> f32 {
    len_out as f32 / len_in as f32
}

/// Lowers tract-core's Resize (scales or sizes as a constant input 1).
pub(crate) fn lower(
    op: &core::Resize,
    scales: Option<&[f32]>,
    input: &ValueType,
    out: &ValueType,
) -> Result<ResizeSpec, String> {
    let r = input.shape.len();
    let scales: Vec<f32> = match scales.filter(|s| s.len() == r) {
        Some(s) => s.to_vec(),
        None => (0..r).map(|a| size_scale(input.shape[a], out.shape[a])).collect(),
    };
    Ok(ResizeSpec {
        mode: mode_of(&op.interpolator)?,
        coord: coord_of(&op.coord_transformer)?,
        nearest: match op.nearest {
            core::Nearest::Floor => ResizeNearest::Floor,
            core::Nearest::RoundPreferCeil => ResizeNearest::RoundPreferCeil,
        },
        scales: scales.into_iter().map(F32Bits::new).collect(),
    })
}

/// Lowers the ONNX edge-case Resize of tract-onnx-opl (axes, all nearest
/// modes, aspect-ratio policies).
pub(crate) fn lower_onnx(
    op: &opl::Resize,
    scales: Option<&[f32]>,
    sizes: Option<&[f32]>,
    input: &ValueType,
    out: &ValueType,
) -> Result<ResizeSpec, String> {
    if op.antialias {
        return Err("antialiased resize is not in the canonical op set".into());
    }
    let mode = mode_of(&op.interpolator)?;
    if op.exclude_outside && mode == ResizeMode::Linear {
        return Err("linear resize with exclude_outside is not in the canonical op set".into());
    }
    let coord = match &op.coord_transformer {
        opl::CoordTransform::Plain(t) => coord_of(t)?,
        opl::CoordTransform::TfCropAndResize => {
            return Err("coordinate transformation tf_crop_and_resize is not in the canonical op set".into());
        }
    };
    let r = input.shape.len();
    let axes: Vec<usize> = match &op.axes {
        None => (0..r).collect(),
        Some(axes) => axes
            .iter()
            .map(|&a| {
                let a = if a < 0 { a + r as i64 } else { a };
                usize::try_from(a).ok().filter(|&a| a < r).ok_or_else(|| format!("resize axis {a} out of rank {r}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut per_axis = vec![1.0f32; r];
    if let Some(s) = scales.filter(|s| s.len() == axes.len()) {
        for (&a, &v) in axes.iter().zip(s) {
            per_axis[a] = v;
        }
    } else if op.keep_aspect_ratio_policy != opl::AspectRatio::Stretch {
        let sizes =
            sizes.filter(|s| s.len() == axes.len()).ok_or("resize aspect-ratio policy without constant sizes")?;
        let ratios = axes.iter().zip(sizes).map(|(&a, &size)| size / input.shape[a] as f32);
        let pick = if op.keep_aspect_ratio_policy == opl::AspectRatio::NotLarger { f32::min } else { f32::max };
        let scale = ratios.reduce(pick).ok_or("resize with no axes")?;
        for &a in &axes {
            per_axis[a] = scale;
        }
    } else {
        for &a in &axes {
            per_axis[a] = size_scale(input.shape[a], out.shape[a]);
        }
    }
    Ok(ResizeSpec {
        mode,
        coord,
        nearest: match op.nearest {
            opl::Nearest::Floor => ResizeNearest::Floor,
            opl::Nearest::Ceil => ResizeNearest::Ceil,
            opl::Nearest::RoundPreferFloor => ResizeNearest::RoundPreferFloor,
            opl::Nearest::RoundPreferCeil => ResizeNearest::RoundPreferCeil,
        },
        scales: per_axis.into_iter().map(F32Bits::new).collect(),
    })
}

/// Lowers a tract Resize node of either flavour, or `None` if `node` is not one.
pub(crate) fn lower_node(
    model: &TypedModel,
    node: &TypedNode,
    input: &ValueType,
    out: &ValueType,
) -> Option<Result<ResizeSpec, String>> {
    if let Some(op) = node.op_as::<core::Resize>() {
        let scales = konst_f32(model, node, op.optional_scales_input);
        if op.optional_scales_input.is_some() && scales.is_none() {
            return Some(Err("resize scales are not a constant".into()));
        }
        if op.optional_scales_input.is_none() && konst_f32(model, node, op.optional_sizes_input).is_none() {
            return Some(Err("resize sizes are not a constant".into()));
        }
        return Some(lower(op, scales.as_deref(), input, out));
    }
    if let Some(op) = node.op_as::<opl::Resize>() {
        let scales = konst_f32(model, node, op.optional_scales_input);
        let sizes = konst_f32(model, node, op.optional_sizes_input);
        if scales.as_ref().is_none_or(|s| s.is_empty()) && sizes.is_none() {
            return Some(Err("resize scales and sizes are not constants".into()));
        }
        return Some(lower_onnx(op, scales.as_deref(), sizes.as_deref(), input, out));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ops::{TensorReader, eval_generic, fold_states};
    use verinfer_state::tensor::Tensor;

    fn spec(mode: ResizeMode, coord: ResizeCoord, nearest: ResizeNearest, scales: &[f32]) -> ResizeSpec {
        ResizeSpec { mode, coord, nearest, scales: scales.iter().map(|&s| F32Bits::new(s)).collect() }
    }

    fn run(spec: &ResizeSpec, x: &Tensor, out_shape: &[u64]) -> Vec<f32> {
        let out = ValueType { dtype: DType::F32, shape: out_shape.to_vec() };
        let f = ResizeFold::new(spec, &ValueType::of(x), &out).unwrap();
        eval_generic(&f, &[x], &out).unwrap().as_f32().unwrap().to_vec()
    }

    #[test]
    fn coordinates() {
        // Upsampling ×2, half pixel: -0.25, 0.25, 0.75, 1.25.
        let c: Vec<f32> = (0..4).map(|x| source_coord(ResizeCoord::HalfPixel, x, 2.0, 2, 4)).collect();
        assert_eq!(c, [-0.25, 0.25, 0.75, 1.25]);
        let c: Vec<f32> = (0..4).map(|x| source_coord(ResizeCoord::AlignCorners, x, 2.0, 2, 4)).collect();
        assert_eq!(c, [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(source_coord(ResizeCoord::Asymmetric, 3, 2.0, 2, 4), 1.5);
        assert_eq!(source_coord(ResizeCoord::PytorchHalfPixel, 0, 0.25, 4, 1), -0.5);
        assert_eq!(source_coord(ResizeCoord::AlignCorners, 0, 0.25, 4, 1), 0.0);
        // Half-pixel symmetric equals half pixel when the output is exact.
        assert_eq!(source_coord(ResizeCoord::HalfPixelSymmetric, 3, 2.0, 2, 4), 1.25);
    }

    #[test]
    fn nearest_rounding_modes() {
        use ResizeNearest::*;
        for (c, pf, pc, fl, ce) in
            [(0.5f32, 0, 1, 0, 1), (1.5, 1, 2, 1, 2), (0.25, 0, 0, 0, 1), (0.75, 1, 1, 0, 1), (2.0, 2, 2, 2, 2)]
        {
            assert_eq!(nearest_index(RoundPreferFloor, c, 10), pf, "{c}");
            assert_eq!(nearest_index(RoundPreferCeil, c, 10), pc, "{c}");
            assert_eq!(nearest_index(Floor, c, 10), fl, "{c}");
            assert_eq!(nearest_index(Ceil, c, 10), ce, "{c}");
        }
        // Clamping at both ends.
        assert_eq!(nearest_index(Ceil, -0.25, 3), 0);
        assert_eq!(nearest_index(Ceil, 2.5, 3), 2);
        assert_eq!(nearest_index(Floor, -3.5, 3), 0);
    }

    #[test]
    fn linear_1d_and_2d() {
        let x = Tensor::from_f32(vec![1, 2], vec![1.0, 3.0]).unwrap();
        let s = spec(ResizeMode::Linear, ResizeCoord::HalfPixel, ResizeNearest::Floor, &[1.0, 2.0]);
        assert_eq!(run(&s, &x, &[1, 4]), [1.0, 1.5, 2.5, 3.0]);
        let s = spec(ResizeMode::Linear, ResizeCoord::AlignCorners, ResizeNearest::Floor, &[1.0, 1.5]);
        assert_eq!(run(&s, &x, &[1, 3]), [1.0, 2.0, 3.0]);
        // Bilinear: the centre of a 2×2 block.
        let x = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let s = spec(ResizeMode::Linear, ResizeCoord::AlignCorners, ResizeNearest::Floor, &[1.5, 1.5]);
        let y = run(&s, &x, &[3, 3]);
        assert_eq!(y, [1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]);
    }

    #[test]
    fn linear_fold_order_and_signed_zero() {
        let x = Tensor::from_f32(vec![2, 2], vec![-0.0, -0.0, -0.0, -0.0]).unwrap();
        let s = spec(ResizeMode::Linear, ResizeCoord::HalfPixel, ResizeNearest::Floor, &[2.0, 2.0]);
        let out = ValueType { dtype: DType::F32, shape: vec![4, 4] };
        let f = ResizeFold::new(&s, &ValueType::of(&x), &out).unwrap();
        assert_eq!(f.steps(0), 4);
        // −0 · w summed onto −0 stays −0.
        for v in run(&s, &x, &[4, 4]) {
            assert_eq!(v.to_bits(), (-0.0f32).to_bits());
        }
        // Corner order: (lo,lo), (lo,hi), (hi,lo), (hi,hi); element 5 = (1,1)
        // reads rows 0/1 and columns 0/1 with weights 0.75·0.75, 0.75·0.25, …
        let x = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let mut rd = TensorReader { inputs: &[&x] };
        let states = fold_states(&f, 5, &mut rd).unwrap();
        let mut acc = -0.0f32;
        for (w, v) in [(0.5625f32, 1.0f32), (0.1875, 2.0), (0.1875, 3.0), (0.0625, 4.0)] {
            acc = w.mul_add(v, acc);
        }
        assert_eq!(states.last().unwrap().f0(), acc);
        assert_eq!(states[1].f0(), 0.5625);
    }

    #[test]
    fn zero_weight_corner_still_multiplies() {
        // Asymmetric ×2: output 0 sits exactly on input 0 (hi weight 0); an
        // infinite right neighbour gives 0·∞ = NaN.
        let x = Tensor::from_f32(vec![2], vec![1.0, f32::INFINITY]).unwrap();
        let s = spec(ResizeMode::Linear, ResizeCoord::Asymmetric, ResizeNearest::Floor, &[2.0]);
        let y = run(&s, &x, &[4]);
        assert_eq!(y[0].to_bits(), crate::math::CANONICAL_NAN.to_bits());
        assert_eq!(y[3], f32::INFINITY);
        let s = spec(ResizeMode::Nearest, ResizeCoord::Asymmetric, ResizeNearest::Floor, &[2.0]);
        assert_eq!(run(&s, &x, &[4]), [1.0, 1.0, f32::INFINITY, f32::INFINITY]);
    }

    #[test]
    fn nearest_downsample_and_identity_axes() {
        let x = Tensor::from_f32(vec![1, 1, 2, 4], (1..=8).map(|v| v as f32).collect()).unwrap();
        // ONNX test_resize_downsample_scales_nearest: scales 0.6 → [1, 3].
        let s =
            spec(ResizeMode::Nearest, ResizeCoord::HalfPixel, ResizeNearest::RoundPreferFloor, &[1.0, 1.0, 0.6, 0.6]);
        assert_eq!(run(&s, &x, &[1, 1, 1, 2]), [1.0, 3.0]);
        let s =
            spec(ResizeMode::Nearest, ResizeCoord::HalfPixel, ResizeNearest::RoundPreferFloor, &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(run(&s, &x, &[1, 1, 2, 4]), (1..=8).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn rejects_bad_geometry() {
        let inp = ValueType { dtype: DType::F32, shape: vec![4] };
        let out = ValueType { dtype: DType::F32, shape: vec![8] };
        for bad in [0.0f32, -2.0, f32::NAN, f32::INFINITY] {
            let s = spec(ResizeMode::Linear, ResizeCoord::HalfPixel, ResizeNearest::Floor, &[bad]);
            assert!(ResizeFold::new(&s, &inp, &out).is_err(), "{bad}");
        }
        let s = spec(ResizeMode::Linear, ResizeCoord::HalfPixel, ResizeNearest::Floor, &[2.0, 2.0]);
        assert!(ResizeFold::new(&s, &inp, &out).is_err());
        let inp = ValueType { dtype: DType::I32, shape: vec![4] };
        let s = spec(ResizeMode::Linear, ResizeCoord::HalfPixel, ResizeNearest::Floor, &[2.0]);
        assert!(ResizeFold::new(&s, &inp, &out).is_err());
    }
}
