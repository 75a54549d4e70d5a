//! Convolution, transposed convolution and pooling windows.
//!
//! Definitions (`docs/semantics.md#conv`):
//! * **Conv**: output `(n, co, y…)`, group `g = co / (Co/G)`. `acc₀ = -0.0`;
//!   for `ci` in the group's `Ci/G` input channels, then kernel positions
//!   `k…` in row-major order: `x = input[n, ci, y·s + k·d − pad]`, or `+0.0`
//!   where that position is padding (zero padding: the product is still
//!   taken, so a NaN or infinite weight meets `0·w`), `acc ← fma(x, w, acc)`.
//!   With a bias, one last step `acc ← acc + bias[co]`.
//! * **Deconv** (ConvTranspose): output `(n, co, o…)`, kernel `(Co, Ci/G, k…)`
//!   (OIHW or its HWIO/OHWI permutations; OIHW is how tract's frontend lays out the ONNX `(Ci, Co/G, k…)` kernel);
//!   fold over `ci` of the group then kernel positions; a position contributes when
//!   `(o + pad − k·d)` is divisible by the stride and the quotient is inside
//!   the input, and is an identity step otherwise; bias last.
//! * **MaxPool**: `acc₀ = −∞`, `acc ← max(acc, x)` over in-range window
//!   positions (NaN-propagating max), padding is an identity step. Integer
//!   inputs: `acc₀` is the dtype's minimum and the step is the integer max.
//! * **SumPool**: `acc₀ = −0.0`, `acc ← acc + x` over in-range positions;
//!   average pooling divides at the end by the window count (in-range
//!   positions, or also padded ones with `count_include_pad`; ceil-mode
//!   overflow positions never count).

use verinfer_state::tensor::{DType, Scalar, Tensor};

use super::elementwise::fmax;
use super::layout::{strides, unravel};
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::math::canon;
use crate::program::{ConvSpec, DataLayout, DeconvSpec, Geometry, KernelLayout, PoolSpec, ValueType};

/// Position of the batch, channel and first spatial axes for a layout and rank.
#[derive(Debug, Clone)]
pub(crate) struct Axes {
    n: Option<usize>,
    c: usize,
    spatial: Vec<usize>,
}

impl Axes {
    pub fn new(layout: DataLayout, rank: usize, spatial_rank: usize) -> Result<Self, ProverError> {
        let need = spatial_rank + 1 + usize::from(layout.has_n());
        if rank != need {
            return Err(ProverError::InvalidProgram {
                node: "conv".into(),
                why: format!("rank {rank} does not fit layout {layout:?} with {spatial_rank} spatial axes"),
            });
        }
        let off = usize::from(layout.has_n());
        Ok(if layout.channels_last() {
            Axes { n: layout.has_n().then_some(0), c: rank - 1, spatial: (off..off + spatial_rank).collect() }
        } else {
            Axes { n: layout.has_n().then_some(0), c: off, spatial: (off + 1..off + 1 + spatial_rank).collect() }
        })
    }
}

/// Precomputed geometry of a window op over concrete shapes.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub geo: Geometry,
    pub in_axes: Axes,
    pub in_shape: Vec<u64>,
    pub in_strides: Vec<u64>,
    pub out_shape: Vec<u64>,
    pub kernel_len: u64,
}

impl Window {
    pub fn new(geo: &Geometry, input: &ValueType, out: &ValueType) -> Result<Self, ProverError> {
        let sr = geo.kernel.len();
        if geo.strides.len() != sr
            || geo.dilations.len() != sr
            || geo.pad_before.len() != sr
            || geo.pad_after.len() != sr
        {
            return Err(ProverError::InvalidProgram { node: "window".into(), why: "geometry ranks differ".into() });
        }
        // ONNX requires these positive; tract accepted zero dilations
        // (found by an audit), which have no meaning as a window.
        for (what, v) in [("kernel", &geo.kernel), ("strides", &geo.strides), ("dilations", &geo.dilations)] {
            if v.contains(&0) {
                return Err(ProverError::InvalidProgram {
                    node: "window".into(),
                    why: format!("{what} {v:?} has a zero"),
                });
            }
        }
        let in_axes = Axes::new(geo.layout, input.shape.len(), sr)?;
        Axes::new(geo.layout, out.shape.len(), sr)?;
        Ok(Self {
            geo: geo.clone(),
            in_strides: strides(&input.shape),
            in_shape: input.shape.clone(),
            out_shape: out.shape.clone(),
            // Checked: a wrapped product would count an absurd window as
            // a few steps (the compute limit) and then loop over it.
            kernel_len: geo.kernel.iter().try_fold(1u64, |a, &k| a.checked_mul(k)).ok_or_else(|| {
                ProverError::InvalidProgram { node: "window".into(), why: "the kernel's size overflows u64".into() }
            })?,
            in_axes,
        })
    }

    /// (n, c, spatial coords) of an output element.
    pub fn out_coords(&self, e: u64) -> (u64, u64, Vec<u64>) {
        let mut c = vec![0; self.out_shape.len()];
        unravel(e, &self.out_shape, &mut c);
        let n = self.in_axes.n.map(|a| c[a]).unwrap_or(0);
        let ch = c[self.in_axes.c];
        let sp = self.in_axes.spatial.iter().map(|&a| c[a]).collect();
        (n, ch, sp)
    }

    /// Kernel coordinates of kernel position `kp`.
    pub fn kernel_coords(&self, kp: u64) -> Vec<u64> {
        let mut k = vec![0; self.geo.kernel.len()];
        unravel(kp, &self.geo.kernel, &mut k);
        k
    }

    /// Input spatial coordinate for an output coordinate and kernel offset
    /// along axis `i`, or `None` where that is padding.
    pub fn conv_in(&self, i: usize, out: u64, k: u64) -> Option<u64> {
        let p = (out * self.geo.strides[i] + k * self.geo.dilations[i]) as i64 - self.geo.pad_before[i] as i64;
        let dim = self.in_shape[self.in_axes.spatial[i]] as i64;
        (p >= 0 && p < dim).then_some(p as u64)
    }

    /// Flat input index of (n, c, spatial).
    pub fn in_index(&self, n: u64, c: u64, sp: &[u64]) -> u64 {
        let mut idx = c * self.in_strides[self.in_axes.c];
        if let Some(a) = self.in_axes.n {
            idx += n * self.in_strides[a];
        }
        for (i, &a) in self.in_axes.spatial.iter().enumerate() {
            idx += sp[i] * self.in_strides[a];
        }
        idx
    }

    /// The input index read by window position `kp` of output `(n,c,sp)`.
    pub fn window_input(&self, n: u64, c: u64, sp: &[u64], kp: u64) -> Option<u64> {
        let k = self.kernel_coords(kp);
        let mut pos = Vec::with_capacity(sp.len());
        for i in 0..sp.len() {
            pos.push(self.conv_in(i, sp[i], k[i])?);
        }
        Some(self.in_index(n, c, &pos))
    }

    /// Average-pool divisor of output spatial position `sp`.
    pub fn pool_count(&self, sp: &[u64], include_pad: bool) -> u64 {
        let mut count = 1u64;
        for i in 0..sp.len() {
            let dim = self.in_shape[self.in_axes.spatial[i]] as i64;
            let (lo, hi) = if include_pad {
                (-(self.geo.pad_before[i] as i64), dim + self.geo.pad_after[i] as i64)
            } else {
                (0, dim)
            };
            let mut c = 0;
            for k in 0..self.geo.kernel[i] {
                let p =
                    (sp[i] * self.geo.strides[i] + k * self.geo.dilations[i]) as i64 - self.geo.pad_before[i] as i64;
                if p >= lo && p < hi {
                    c += 1;
                }
            }
            count *= c;
        }
        count
    }
}

/// Kernel index for (output channel within all, input channel within group,
/// kernel coords).
fn kernel_index(layout: KernelLayout, kshape: &[u64], kstrides: &[u64], o: u64, i: u64, k: &[u64]) -> u64 {
    let sr = k.len();
    let mut idx = 0;
    match layout {
        KernelLayout::Oihw => {
            idx += o * kstrides[0] + i * kstrides[1];
            for j in 0..sr {
                idx += k[j] * kstrides[2 + j];
            }
        }
        KernelLayout::Hwio => {
            for j in 0..sr {
                idx += k[j] * kstrides[j];
            }
            idx += i * kstrides[sr] + o * kstrides[sr + 1];
        }
        KernelLayout::Ohwi => {
            idx += o * kstrides[0];
            for j in 0..sr {
                idx += k[j] * kstrides[1 + j];
            }
            idx += i * kstrides[sr + 1];
        }
    }
    let _ = kshape;
    idx
}

/// Plan of one convolution node.
#[derive(Debug, Clone)]
pub(crate) struct ConvPlan {
    pub w: Window,
    pub spec: ConvSpec,
    pub kshape: Vec<u64>,
    pub kstrides: Vec<u64>,
    pub ci_per_group: u64,
    pub co_per_group: u64,
    pub bias_len: u64,
}

impl ConvPlan {
    pub fn new(spec: &ConvSpec, inputs: &[ValueType], out: &ValueType) -> Result<Self, ProverError> {
        let bad = |why: String| ProverError::InvalidProgram { node: "conv".into(), why };
        let w = Window::new(&spec.geo, &inputs[0], out)?;
        let ci = inputs[0].shape[w.in_axes.c];
        let co = out.shape[w.in_axes.c];
        if spec.group == 0 || !ci.is_multiple_of(spec.group) || !co.is_multiple_of(spec.group) {
            return Err(bad(format!("channels {ci}→{co} not divisible by group {}", spec.group)));
        }
        let kshape = inputs[1].shape.clone();
        let sr = spec.geo.kernel.len();
        let (ko, ki, ksp): (u64, u64, Vec<u64>) = match spec.kernel_layout {
            KernelLayout::Oihw => (kshape[0], kshape[1], kshape[2..].to_vec()),
            KernelLayout::Hwio => (kshape[sr + 1], kshape[sr], kshape[..sr].to_vec()),
            KernelLayout::Ohwi => (kshape[0], kshape[sr + 1], kshape[1..=sr].to_vec()),
        };
        if kshape.len() != sr + 2 || ko != co || ki != ci / spec.group || ksp != spec.geo.kernel {
            return Err(bad(format!("kernel shape {kshape:?} does not fit {ci}→{co} channels, group {}", spec.group)));
        }
        let bias_len =
            if spec.bias { inputs.get(2).map(|b| b.numel()).ok_or_else(|| bad("missing bias".into()))? } else { 0 };
        if spec.bias && bias_len != 1 && bias_len != co {
            return Err(bad(format!("bias has {bias_len} elements for {co} channels")));
        }
        Ok(Self {
            kstrides: strides(&kshape),
            kshape,
            ci_per_group: ci / spec.group,
            co_per_group: co / spec.group,
            spec: spec.clone(),
            w,
            bias_len,
        })
    }

    fn k_main(&self) -> u64 {
        self.ci_per_group * self.w.kernel_len
    }
}

pub(crate) struct ConvFold {
    pub plan: ConvPlan,
}

impl ElementFold for ConvFold {
    fn steps(&self, _e: u64) -> u64 {
        self.plan.k_main() + u64::from(self.plan.spec.bias)
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32(-0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let p = &self.plan;
        let (n, co, sp) = p.w.out_coords(e);
        if t == p.k_main() {
            let b = rd.read(2, if p.bias_len == 1 { 0 } else { co })?.f32();
            return Ok(FoldState::f32(canon(s.f0() + b)));
        }
        let ci_l = t / p.w.kernel_len;
        let kp = t % p.w.kernel_len;
        let g = co / p.co_per_group;
        let ci = g * p.ci_per_group + ci_l;
        let x = match p.w.window_input(n, ci, &sp, kp) {
            Some(idx) => rd.read(0, idx)?.f32(),
            None => 0.0,
        };
        let k = p.w.kernel_coords(kp);
        let wv = rd.read(1, kernel_index(p.spec.kernel_layout, &p.kshape, &p.kstrides, co, ci_l, &k))?.f32();
        Ok(FoldState::f32(canon(x.mul_add(wv, s.f0()))))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

/// Direct reference loop for Conv.
pub(crate) fn exec_conv(spec: &ConvSpec, inputs: &[&Tensor], out: &ValueType) -> Result<Tensor, ProverError> {
    let types: Vec<ValueType> = inputs.iter().map(|t| ValueType::of(t)).collect();
    let p = ConvPlan::new(spec, &types, out)?;
    let get =
        |t: &Tensor| t.as_f32().map(|v| v.to_vec()).ok_or(ProverError::OpDType { op: "Conv".into(), dtype: t.dtype() });
    let x = get(inputs[0])?;
    let wt = get(inputs[1])?;
    let bias = if spec.bias { Some(get(inputs[2])?) } else { None };
    let n_out = out.numel() as usize;
    let kl = p.w.kernel_len;
    // Kernel coordinates and kernel-index offsets per kernel position, once.
    let kcoords: Vec<Vec<u64>> = (0..kl).map(|kp| p.w.kernel_coords(kp)).collect();
    let mut res = vec![0f32; n_out];
    let mut pos = vec![0u64; kcoords.first().map(Vec::len).unwrap_or(0)];
    for (e, r) in res.iter_mut().enumerate() {
        let (n, co, sp) = p.w.out_coords(e as u64);
        let g = co / p.co_per_group;
        let mut acc = -0.0f32;
        for ci_l in 0..p.ci_per_group {
            let ci = g * p.ci_per_group + ci_l;
            for (kp, k) in kcoords.iter().enumerate() {
                let mut inside = true;
                for i in 0..sp.len() {
                    match p.w.conv_in(i, sp[i], k[i]) {
                        Some(v) => pos[i] = v,
                        None => {
                            inside = false;
                            break;
                        }
                    }
                }
                let xv = if inside { x[p.w.in_index(n, ci, &pos) as usize] } else { 0.0 };
                let _ = kp;
                let wv = wt[kernel_index(spec.kernel_layout, &p.kshape, &p.kstrides, co, ci_l, k) as usize];
                acc = xv.mul_add(wv, acc);
            }
        }
        if let Some(b) = &bias {
            acc += b[if p.bias_len == 1 { 0 } else { co as usize }];
        }
        *r = canon(acc);
    }
    Ok(Tensor::from_f32(out.shape_usize(), res)?)
}

/// Plan of one transposed convolution.
#[derive(Debug, Clone)]
pub(crate) struct DeconvPlan {
    /// Window over the *output* (its in_shape is the deconv input).
    pub w: Window,
    pub spec: DeconvSpec,
    pub kshape: Vec<u64>,
    pub kstrides: Vec<u64>,
    pub ci_per_group: u64,
    pub co_per_group: u64,
    pub bias_len: u64,
}

impl DeconvPlan {
    pub fn new(spec: &DeconvSpec, inputs: &[ValueType], out: &ValueType) -> Result<Self, ProverError> {
        let bad = |why: String| ProverError::InvalidProgram { node: "deconv".into(), why };
        let w = Window::new(&spec.geo, &inputs[0], out)?;
        let ci = inputs[0].shape[w.in_axes.c];
        let co = out.shape[w.in_axes.c];
        let g = spec.group;
        if g == 0 || !ci.is_multiple_of(g) || !co.is_multiple_of(g) {
            return Err(bad(format!("channels {ci}→{co} not divisible by group {g}")));
        }
        let kshape = inputs[1].shape.clone();
        let sr = spec.geo.kernel.len();
        // The ONNX ConvTranspose kernel is (Ci, Co/g, k…); tract's frontend
        // reorders it (split Ci into (g, Ci/g), swap) into OIHW: (Co, Ci/g, k…),
        // output channel `co = g·(Co/g) + co_l` first, like a convolution kernel.
        if kshape.len() != sr + 2 {
            return Err(bad(format!("kernel shape {kshape:?} does not fit {ci}→{co}, group {g}")));
        }
        let (ko, ki, ksp): (u64, u64, &[u64]) = match spec.kernel_layout {
            KernelLayout::Oihw => (kshape[0], kshape[1], &kshape[2..]),
            KernelLayout::Hwio => (kshape[sr + 1], kshape[sr], &kshape[..sr]),
            KernelLayout::Ohwi => (kshape[0], kshape[sr + 1], &kshape[1..=sr]),
        };
        if ko != co || ki != ci / g || ksp != &spec.geo.kernel[..] {
            return Err(bad(format!("kernel shape {kshape:?} does not fit {ci}→{co}, group {g}")));
        }
        let bias_len =
            if spec.bias { inputs.get(2).map(|b| b.numel()).ok_or_else(|| bad("missing bias".into()))? } else { 0 };
        if spec.bias && bias_len != 1 && bias_len != co {
            return Err(bad(format!("bias has {bias_len} elements for {co} channels")));
        }
        Ok(Self {
            kstrides: strides(&kshape),
            kshape,
            ci_per_group: ci / g,
            co_per_group: co / g,
            spec: spec.clone(),
            w,
            bias_len,
        })
    }

    fn k_main(&self) -> u64 {
        self.ci_per_group * self.w.kernel_len
    }

    /// The input spatial position feeding output `o` through kernel `k`.
    fn source(&self, o: &[u64], k: &[u64]) -> Option<Vec<u64>> {
        let geo = &self.w.geo;
        let mut pos = Vec::with_capacity(o.len());
        for i in 0..o.len() {
            let num = o[i] as i64 + geo.pad_before[i] as i64 - (k[i] * geo.dilations[i]) as i64;
            let s = geo.strides[i] as i64;
            if num < 0 || num % s != 0 {
                return None;
            }
            let p = num / s;
            if p >= self.w.in_shape[self.w.in_axes.spatial[i]] as i64 {
                return None;
            }
            pos.push(p as u64);
        }
        Some(pos)
    }
}

pub(crate) struct DeconvFold {
    pub plan: DeconvPlan,
}

impl ElementFold for DeconvFold {
    fn steps(&self, _e: u64) -> u64 {
        self.plan.k_main() + u64::from(self.plan.spec.bias)
    }
    fn init(&self, _e: u64) -> FoldState {
        FoldState::f32(-0.0)
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let p = &self.plan;
        let (n, co, o) = p.w.out_coords(e);
        if t == p.k_main() {
            let b = rd.read(2, if p.bias_len == 1 { 0 } else { co })?.f32();
            return Ok(FoldState::f32(canon(s.f0() + b)));
        }
        let ci_l = t / p.w.kernel_len;
        let k = p.w.kernel_coords(t % p.w.kernel_len);
        let g = co / p.co_per_group;
        let ci = g * p.ci_per_group + ci_l;
        let Some(pos) = p.source(&o, &k) else { return Ok(s) };
        let x = rd.read(0, p.w.in_index(n, ci, &pos))?.f32();
        let wv = rd.read(1, kernel_index(p.spec.kernel_layout, &p.kshape, &p.kstrides, co, ci_l, &k))?.f32();
        Ok(FoldState::f32(canon(x.mul_add(wv, s.f0()))))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar::from_f32(s.f0())
    }
}

/// Plan of a pooling node.
pub(crate) struct PoolFold {
    pub w: Window,
    pub spec: PoolSpec,
    pub max: bool,
    /// Element dtype: f32, or (max pooling only) an integer type.
    pub dtype: DType,
}

impl PoolFold {
    pub fn new(spec: &PoolSpec, input: &ValueType, out: &ValueType, max: bool) -> Result<Self, ProverError> {
        if !(input.dtype == DType::F32 || (max && input.dtype.is_int())) {
            return Err(ProverError::OpDType {
                op: if max { "MaxPool" } else { "SumPool" }.into(),
                dtype: input.dtype,
            });
        }
        Ok(Self { w: Window::new(&spec.geo, input, out)?, spec: spec.clone(), max, dtype: input.dtype })
    }
}

impl ElementFold for PoolFold {
    fn steps(&self, _e: u64) -> u64 {
        self.w.kernel_len
    }
    fn init(&self, _e: u64) -> FoldState {
        if self.dtype != DType::F32 {
            // Integer max pooling: the dtype's minimum, like Reduce<Max>.
            return super::reduce::reduce_init(crate::program::Reducer::Max, self.dtype);
        }
        FoldState::f32(if self.max { f32::NEG_INFINITY } else { -0.0 })
    }
    fn step(&self, e: u64, t: u64, s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        let (n, c, sp) = self.w.out_coords(e);
        let Some(idx) = self.w.window_input(n, c, &sp, t) else { return Ok(s) };
        if self.dtype != DType::F32 {
            return super::reduce::reduce_step(crate::program::Reducer::Max, s, rd.read(0, idx)?, t);
        }
        let x = rd.read(0, idx)?.f32();
        Ok(FoldState::f32(if self.max { fmax(s.f0(), x) } else { canon(s.f0() + x) }))
    }
    fn finish(&self, e: u64, s: FoldState) -> Scalar {
        if self.dtype != DType::F32 {
            return Scalar { dtype: self.dtype, bits: s.0[0] };
        }
        if self.max || !self.spec.normalize {
            return Scalar::from_f32(s.f0());
        }
        let (_, _, sp) = self.w.out_coords(e);
        let count = self.w.pool_count(&sp, self.spec.count_include_pad);
        Scalar::from_f32(canon(s.f0() / count as f32))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod window_op_tests {
    use super::*;
    use crate::ops::{eval_generic, fold_for};
    use crate::program::Op;
    use verinfer_state::tensor::TensorData;

    /// Integer max pooling: padding is an identity step (never a 0 read)
    /// and the fold starts at the dtype's minimum.
    #[test]
    fn integer_max_pool_ignores_padding() {
        let spec = PoolSpec {
            geo: Geometry {
                layout: DataLayout::Chw,
                kernel: vec![2],
                strides: vec![1],
                dilations: vec![1],
                pad_before: vec![1],
                pad_after: vec![1],
            },
            normalize: false,
            count_include_pad: false,
        };
        let x = Tensor::new(vec![1, 3], TensorData::I8(vec![-5, -7, -128])).unwrap();
        let out = ValueType { dtype: DType::I8, shape: vec![1, 4] };
        let op = Op::MaxPool(spec.clone());
        let f = fold_for(&op, &[ValueType::of(&x)], &out).unwrap();
        let y = eval_generic(f.as_ref(), &[&x], &out).unwrap();
        assert!(matches!(y.data(), TensorData::I8(v) if v == &[-5, -5, -7, -128]));
        assert!(crate::ops::check_types(&op, &[ValueType::of(&x)], &out).is_ok());
        // Average pooling stays f32-only.
        assert!(fold_for(&Op::SumPool(spec), &[ValueType::of(&x)], &out).is_err());
    }

    /// ConvTranspose against the ONNX definition written as a scatter, with
    /// the kernel given in ONNX layout `(Ci, Co/g, k)` and reordered into
    /// `(Co, Ci/g, k)` as tract's frontend does.
    #[test]
    fn grouped_strided_deconv_matches_onnx_scatter() {
        let (ci, co, g, len, k, s, d, pad) = (4usize, 6usize, 2usize, 3usize, 3usize, 2usize, 2usize, 1usize);
        let (cig, cog) = (ci / g, co / g);
        let x: Vec<f32> = (0..ci * len).map(|v| (v % 7) as f32 - 3.0).collect();
        let w_onnx: Vec<f32> = (0..ci * cog * k).map(|v| (v % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..co).map(|v| v as f32).collect();
        let full_len = (len - 1) * s + (k - 1) * d + 1;
        let out_len = full_len - 2 * pad;
        let mut full = vec![0f32; co * full_len];
        for c in 0..ci {
            let grp = c / cig;
            for col in 0..cog {
                for i in 0..len {
                    for kk in 0..k {
                        full[(grp * cog + col) * full_len + i * s + kk * d] +=
                            x[c * len + i] * w_onnx[(c * cog + col) * k + kk];
                    }
                }
            }
        }
        let want: Vec<f32> =
            (0..co * out_len).map(|e| full[(e / out_len) * full_len + e % out_len + pad] + bias[e / out_len]).collect();
        // tract: split Ci into (g, Ci/g), swap with Co/g, merge (g, Co/g).
        let mut w = vec![0f32; co * cig * k];
        for o in 0..co {
            for il in 0..cig {
                for kk in 0..k {
                    let (grp, col) = (o / cog, o % cog);
                    w[(o * cig + il) * k + kk] = w_onnx[((grp * cig + il) * cog + col) * k + kk];
                }
            }
        }
        let spec = DeconvSpec {
            geo: Geometry {
                layout: DataLayout::Nchw,
                kernel: vec![k as u64],
                strides: vec![s as u64],
                dilations: vec![d as u64],
                pad_before: vec![pad as u64],
                pad_after: vec![pad as u64],
            },
            kernel_layout: KernelLayout::Oihw,
            group: g as u64,
            bias: true,
        };
        let xt = Tensor::from_f32(vec![1, ci, len], x).unwrap();
        let wt = Tensor::from_f32(vec![co, cig, k], w).unwrap();
        let bt = Tensor::from_f32(vec![co], bias).unwrap();
        let out = ValueType { dtype: DType::F32, shape: vec![1, co as u64, out_len as u64] };
        let op = Op::Deconv(spec);
        let types = [ValueType::of(&xt), ValueType::of(&wt), ValueType::of(&bt)];
        let f = fold_for(&op, &types, &out).unwrap();
        let got = eval_generic(f.as_ref(), &[&xt, &wt, &bt], &out).unwrap();
        assert_eq!(got.as_f32().unwrap(), &want[..]);
        // The ONNX layout itself is rejected (its shape does not fit).
        let w_onnx_t = Tensor::from_f32(vec![ci, cog, k], w_onnx).unwrap();
        assert!(fold_for(&op, &[types[0].clone(), ValueType::of(&w_onnx_t), types[2].clone()], &out).is_err());
    }
}
