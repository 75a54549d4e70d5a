//! Convolution (dense, grouped, depthwise) as an implicit GEMM, and pooling,
//! over zero-copy-free *staged* inputs.
//!
//! ## Staging
//! For each batch item and group, the group's input channels are copied
//! once into padded, stride-phase-split planes: plane `(ci, ry, rx)` holds
//! `Xpad[i·sy + ry][j·sx + rx]`, where `Xpad` is the input surrounded by
//! the pad value (`+0.0` for convolution, exactly the reference's padded
//! tap; `-inf` for max pooling and `-0.0` for sum pooling, each an exact
//! identity of its fold step). Tap `(ky, kx)` of output `(y, x)` then sits
//! at plane `(ky·dy mod sy, kx·dx mod sx)`, position `(y + ⌊ky·dy/sy⌋,
//! x + ⌊kx·dx/sx⌋)`: consecutive `x` are consecutive floats for every
//! stride, so the lane side of the GEMM is read in place.
//!
//! ## Convolution as GEMM
//! Rows are the group's output channels (weights packed once at plan time,
//! `[t][r]` per block), lanes are output positions along `x` within one
//! output row, and step `t` runs over `(ci, ky, kx)` in row-major order — the
//! reference fold order — through an offset table. The bias is the first
//! epilogue op (`acc + bias[co]`, the fold's last step), fused activations
//! follow.
#![allow(unsafe_code)]

use super::Kernels;
use super::gemm::{Blocking, EpArg, EpOp, Fam, PackedA, Table, TileArgs, pack_rows};
use super::simd::Simd;
use crate::ops::layout::strides;
use crate::program::{ConvSpec, DataLayout, Geometry, KernelLayout, PoolSpec, ValueType};

/// Most fused epilogue ops (bias included).
pub(crate) const MAX_EP: usize = 8;

/// 2-D window geometry over staged planes (1-D windows are 2-D with a unit
/// leading axis).
#[derive(Debug, Clone)]
pub(crate) struct Staging {
    /// Batch items.
    pub n: usize,
    /// Input channels, input spatial extent.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output spatial extent.
    pub ho: usize,
    pub wo: usize,
    /// Kernel extent, strides, dilations, leading pads.
    pub kh: usize,
    pub kw: usize,
    pub sy: usize,
    pub sx: usize,
    pub dy: usize,
    pub dx: usize,
    pub pt: usize,
    pub pl: usize,
    /// Phase plane extent.
    pub hph: usize,
    pub wph: usize,
    /// Read slack after the last plane (garbage lanes of partial panels).
    pub slack: usize,
}

/// Most taps of a window the fast conv/pool kernels plan (2^20: a
/// 1024x1024 window, far beyond any real model's).
const MAX_TAPS: usize = 1 << 20;

impl Staging {
    /// From a geometry over NCHW/CHW shapes of rank 1 or 2; `None` otherwise.
    pub fn new(geo: &Geometry, input: &[u64], out: &[u64], slack: usize) -> Option<Self> {
        if !matches!(geo.layout, DataLayout::Nchw | DataLayout::Chw) {
            return None;
        }
        let sr = geo.kernel.len();
        let off = usize::from(geo.layout.has_n());
        if !(1..=2).contains(&sr) || input.len() != off + 1 + sr || out.len() != off + 1 + sr {
            return None;
        }
        let u = |v: u64| v as usize;
        let n = if off == 1 { u(input[0]) } else { 1 };
        // Spatial axis i of a 1-D window is the "x" axis.
        let pick = |v: &[u64], i: usize| -> usize {
            if sr == 2 {
                u(v[i])
            } else if i == 0 {
                1
            } else {
                u(v[0])
            }
        };
        let pick0 = |v: &[u64], i: usize, one: usize| -> usize {
            if sr == 2 {
                u(v[i])
            } else if i == 0 {
                one
            } else {
                u(v[0])
            }
        };
        let (h, w) = (pick(&input[off + 1..], 0), pick(&input[off + 1..], 1));
        let (ho, wo) = (pick(&out[off + 1..], 0), pick(&out[off + 1..], 1));
        let (kh, kw) = (pick(&geo.kernel, 0), pick(&geo.kernel, 1));
        let (sy, sx) = (pick(&geo.strides, 0), pick(&geo.strides, 1));
        let (dy, dx) = (pick(&geo.dilations, 0), pick(&geo.dilations, 1));
        let (pt, pl) = (pick0(&geo.pad_before, 0, 0), pick0(&geo.pad_before, 1, 0));
        if [h, w, ho, wo, kh, kw, sy, sx, dy, dx].contains(&0) {
            return None;
        }
        // The planned tables grow with the window (a tap offset each), and
        // a window can be far larger than its input: a 2^32-tap pool over
        // 8x8 aborted a node on its taps table (found by an audit). Such
        // windows take the reference path, whose cost the step limit
        // bounds; checked arithmetic keeps absurd geometry from wrapping.
        if kh.checked_mul(kw)? > MAX_TAPS {
            return None;
        }
        let extent = |o: usize, s: usize, k: usize, d: usize| {
            (o - 1).checked_mul(s)?.checked_add((k - 1).checked_mul(d)?)?.checked_add(1)
        };
        let hpad = extent(ho, sy, kh, dy)?;
        let wpad = extent(wo, sx, kw, dx)?;
        sy.checked_mul(sx)?.checked_mul(hpad.div_ceil(sy))?.checked_mul(wpad.div_ceil(sx))?;
        Some(Self {
            n,
            c: u(input[off]),
            h,
            w,
            ho,
            wo,
            kh,
            kw,
            sy,
            sx,
            dy,
            dx,
            pt,
            pl,
            hph: hpad.div_ceil(sy),
            wph: wpad.div_ceil(sx),
            slack,
        })
    }

    /// Floats of one staged channel (all its phases).
    pub fn channel_len(&self) -> usize {
        self.sy * self.sx * self.hph * self.wph
    }

    /// Offset of tap `(ky, kx)` within a staged channel.
    pub fn tap_off(&self, ky: usize, kx: usize) -> usize {
        let (qy, ry) = ((ky * self.dy) / self.sy, (ky * self.dy) % self.sy);
        let (qx, rx) = ((kx * self.dx) / self.sx, (kx * self.dx) % self.sx);
        (ry * self.sx + rx) * self.hph * self.wph + qy * self.wph + qx
    }

    /// Stages channels `c0..c0+count` of batch item `n` into `dst`
    /// (`count · channel_len() + slack` floats), padding with `pad`.
    pub fn stage(&self, kern: Kernels, x: &[f32], n: usize, c0: usize, count: usize, pad: f32, dst: &mut [f32]) {
        // Plain Rust, compiled per family so the copies vectorise.
        #[inline(always)]
        unsafe fn body<S: Simd>(st: &Staging, x: &[f32], n: usize, c0: usize, count: usize, pad: f32, dst: &mut [f32]) {
            st.stage_impl(x, n, c0, count, pad, dst)
        }
        let st = self;
        super::dispatch::dispatch!(kern, body, (st: &Staging, x: &[f32], n: usize, c0: usize, count: usize, pad: f32, dst: &mut [f32]))
    }

    #[inline(always)]
    fn stage_impl(&self, x: &[f32], n: usize, c0: usize, count: usize, pad: f32, dst: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let plane = self.hph * self.wph;
        let cl = self.channel_len();
        for ci in 0..count {
            let src = &x[((n * self.c) + c0 + ci) * h * w..][..h * w];
            let ch = &mut dst[ci * cl..(ci + 1) * cl];
            for ry in 0..self.sy {
                for rx in 0..self.sx {
                    let pl = &mut ch[(ry * self.sx + rx) * plane..][..plane];
                    // Column range j whose source column j·sx + rx − pl is inside.
                    let jlo = (self.pl.saturating_sub(rx)).div_ceil(self.sx).min(self.wph);
                    let jhi = ((w + self.pl).saturating_sub(rx)).div_ceil(self.sx).min(self.wph).max(jlo);
                    for i in 0..self.hph {
                        let row = &mut pl[i * self.wph..(i + 1) * self.wph];
                        let u = (i * self.sy + ry) as isize - self.pt as isize;
                        if u < 0 || u >= h as isize {
                            row.fill(pad);
                            continue;
                        }
                        let srow = &src[u as usize * w..(u as usize + 1) * w];
                        row[..jlo].fill(pad);
                        row[jhi..].fill(pad);
                        if jhi > jlo {
                            let v0 = jlo * self.sx + rx - self.pl;
                            let d = &mut row[jlo..jhi];
                            let len = d.len();
                            if self.sx == 1 {
                                d.copy_from_slice(&srow[v0..v0 + len]);
                            } else if self.sx == 2 {
                                // Whole pairs, then the last element alone.
                                let (body, last) = d.split_at_mut(len - 1);
                                for (o, pair) in body.iter_mut().zip(srow[v0..v0 + 2 * (len - 1)].chunks_exact(2)) {
                                    *o = pair[0];
                                }
                                last[0] = srow[v0 + 2 * (len - 1)];
                            } else {
                                for (o, s) in d.iter_mut().zip(srow[v0..].iter().step_by(self.sx)) {
                                    *o = *s;
                                }
                            }
                        }
                    }
                }
            }
        }
        dst[count * cl..count * cl + self.slack].fill(pad);
    }
}

/// Weight index for (output channel, input channel within group, ky, kx).
fn kernel_index(layout: KernelLayout, ks: &[usize], sr: usize, o: usize, i: usize, k: &[usize; 2]) -> usize {
    // k is (ky, kx) for 2-D, (·, kx) for 1-D.
    let kk: &[usize] = if sr == 2 { &k[..] } else { &k[1..] };
    let mut idx = 0;
    match layout {
        KernelLayout::Oihw => {
            idx += o * ks[0] + i * ks[1];
            for j in 0..sr {
                idx += kk[j] * ks[2 + j];
            }
        }
        KernelLayout::Hwio => {
            for j in 0..sr {
                idx += kk[j] * ks[j];
            }
            idx += i * ks[sr] + o * ks[sr + 1];
        }
        KernelLayout::Ohwi => {
            idx += o * ks[0];
            for j in 0..sr {
                idx += kk[j] * ks[1 + j];
            }
            idx += i * ks[sr + 1];
        }
    }
    idx
}

/// A planned convolution node.
#[derive(Debug, Clone)]
pub(crate) struct ConvKernel {
    kern: Kernels,
    blk: Blocking,
    st: Staging,
    group: usize,
    cig: usize,
    cog: usize,
    k: usize,
    /// Packed weights per group: `cog · k` floats each.
    wpack: Vec<f32>,
    koff: Vec<usize>,
    /// Bias index per output channel.
    bias_offs: Vec<usize>,
    has_bias: bool,
    batched: bool,
    out_len: usize,
    in_len: usize,
}

impl ConvKernel {
    /// Plans a convolution whose weights are the constant `w`. `None` when
    /// the layout or rank has no fast path.
    pub fn new(kern: Kernels, spec: &ConvSpec, inputs: &[ValueType], out: &ValueType, w: &[f32]) -> Option<Self> {
        let blk = Blocking::of(kern);
        let st = Staging::new(&spec.geo, &inputs[0].shape, &out.shape, blk.nr)?;
        let sr = spec.geo.kernel.len();
        let off = usize::from(spec.geo.layout.has_n());
        let co = out.shape[off] as usize;
        let group = spec.group as usize;
        if group == 0 || !st.c.is_multiple_of(group) || !co.is_multiple_of(group) {
            return None;
        }
        let (cig, cog) = (st.c / group, co / group);
        let k = cig * st.kh * st.kw;
        if k == 0 || cog == 0 {
            return None;
        }
        let ks: Vec<usize> = strides(&inputs[1].shape).iter().map(|&s| s as usize).collect();
        if w.len() as u64 != inputs[1].numel() {
            return None;
        }
        // Step table (over staged planes) and weight offsets, fold order.
        let mut koff = Vec::with_capacity(k);
        let mut wk = Vec::with_capacity(k);
        for ci in 0..cig {
            for ky in 0..st.kh {
                for kx in 0..st.kw {
                    koff.push(ci * st.channel_len() + st.tap_off(ky, kx));
                    wk.push(kernel_index(spec.kernel_layout, &ks, sr, 0, ci, &[ky, kx]));
                }
            }
        }
        let mut wpack = vec![0f32; group * cog * k];
        for g in 0..group {
            let moff: Vec<usize> =
                (0..cog).map(|o| kernel_index(spec.kernel_layout, &ks, sr, g * cog + o, 0, &[0, 0])).collect();
            pack_rows(w, 0, &moff, &wk, blk.mr, &mut wpack[g * cog * k..(g + 1) * cog * k]);
        }
        let bias_len = if spec.bias { inputs.get(2).map(|b| b.numel() as usize)? } else { 0 };
        let bias_offs = (0..co).map(|c| if bias_len == 1 { 0 } else { c }).collect();
        Some(Self {
            kern,
            blk,
            group,
            cig,
            cog,
            k,
            wpack,
            koff,
            bias_offs,
            has_bias: spec.bias,
            batched: spec.geo.layout.has_n(),
            out_len: out.numel() as usize,
            in_len: inputs[0].numel() as usize,
            st,
        })
    }

    /// Scratch floats a run needs.
    pub fn scratch_len(&self) -> usize {
        self.cig * self.st.channel_len() + self.st.slack
    }

    /// Output channels (the GEMM rows of all groups together).
    pub fn out_channels(&self) -> usize {
        self.group * self.cog
    }

    /// Position of the channel axis in the output shape.
    pub fn channel_axis(&self) -> usize {
        usize::from(self.batched)
    }

    /// Floats of packed weights.
    pub fn packed_len(&self) -> usize {
        self.wpack.len()
    }

    /// Runs the node. `ep` ops' `Row` operands are indexed by output
    /// channel; `Full` operands by output element.
    pub fn run(&self, x: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut [f32], ep: &[EpOp<'_>]) {
        assert!(x.len() == self.in_len && out.len() == self.out_len, "conv: lengths");
        assert!(ep.len() < MAX_EP, "conv: epilogue too long");
        if self.has_bias {
            let b = bias.expect("conv: bias input");
            assert!(self.bias_offs.iter().all(|&o| o < b.len()), "conv: bias length");
        }
        for op in ep {
            if let EpOp::Binary { arg, .. } = op {
                match arg {
                    EpArg::Scalar(_) => {}
                    EpArg::Row { vals, offs } => {
                        assert!(
                            offs.len() >= self.out_channels()
                                && offs.iter().take(self.out_channels()).all(|&o| o < vals.len()),
                            "conv: row operand"
                        )
                    }
                    EpArg::Full { vals } => assert!(vals.len() >= self.out_len, "conv: full operand"),
                    EpArg::Lane { .. } => panic!("conv: lane operands are not supported"),
                }
            }
        }
        let st = &self.st;
        let sc_len = self.scratch_len();
        let stage = &mut scratch[..sc_len];
        let plane = st.ho * st.wo;
        let mut ops: [EpOp<'_>; MAX_EP] = [EpOp::Unary(super::elementwise::VUnary::Neg); MAX_EP];
        for n in 0..st.n {
            for g in 0..self.group {
                st.stage(self.kern, x, n, g * self.cig, self.cig, 0.0, stage);
                // Shift per-channel operands to this group's channels.
                let co0 = g * self.cog;
                let mut len = 0;
                if self.has_bias {
                    let b = bias.unwrap_or(&[]);
                    ops[0] = EpOp::Binary {
                        op: super::elementwise::VBinary::Add,
                        arg: EpArg::Row { vals: b, offs: &self.bias_offs[co0..] },
                        acc_left: true,
                    };
                    len = 1;
                }
                for op in ep {
                    ops[len] = match *op {
                        EpOp::Binary { op, arg: EpArg::Row { vals, offs }, acc_left } => {
                            EpOp::Binary { op, arg: EpArg::Row { vals, offs: &offs[co0..] }, acc_left }
                        }
                        other => other,
                    };
                    len += 1;
                }
                let out_base = (n * self.out_channels() + co0) * plane;
                let call = ConvCall {
                    st,
                    k: self.k,
                    cog: self.cog,
                    w: &self.wpack[g * self.cog * self.k..(g + 1) * self.cog * self.k],
                    koff: &self.koff,
                    stage,
                    out_base,
                    ep: &ops[..len],
                };
                conv_group(self.kern, &call, out);
            }
        }
        let _ = self.blk;
    }
}

/// One (batch item, group) of a convolution.
#[derive(Debug)]
pub(crate) struct ConvCall<'a> {
    st: &'a Staging,
    k: usize,
    cog: usize,
    w: &'a [f32],
    koff: &'a [usize],
    stage: &'a [f32],
    out_base: usize,
    ep: &'a [EpOp<'a>],
}

#[inline(always)]
unsafe fn conv_group_body<S: Fam>(c: &ConvCall<'_>, out: &mut [f32]) {
    let st = c.st;
    let nr = S::NR;
    let xpanels = st.wo.div_ceil(nr);
    let plane = st.ho * st.wo;
    let outp = out.as_mut_ptr();
    let mut rows_off = [0usize; 8];
    let mut bases = [std::ptr::null::<f32>(); 4];
    for y in 0..st.ho {
        let mut m0 = 0;
        while m0 < c.cog {
            let r = S::MR.min(c.cog - m0);
            for i in 0..r {
                rows_off[i] = i * plane;
            }
            // SAFETY: block at m0·k holds r·k packed weights.
            let a = PackedA(unsafe { c.w.as_ptr().add(m0 * c.k) });
            let mut p = 0;
            while p < xpanels {
                let cc = S::cmax(r).min(xpanels - p);
                for i in 0..cc {
                    // SAFETY: row y, column (p+i)·nr of plane (0,0,0) is
                    // inside the stage (columns < wph + slack).
                    bases[i] = unsafe { c.stage.as_ptr().add(y * st.wph + (p + i) * nr) };
                }
                let lane0 = y * st.wo + p * nr;
                let t = TileArgs {
                    k: c.k,
                    a,
                    koff: Table(c.koff),
                    n_rem: st.wo - p * nr,
                    ep: c.ep,
                    m0,
                    n0: lane0,
                    out_off: c.out_base + m0 * plane + lane0,
                };
                // SAFETY: rows m0..m0+r of this group, lanes p·nr..wo of row
                // y: inside the output (checked by `conv_group`); reads are
                // inside the stage (koff < cig·channel_len, lanes < slack).
                unsafe {
                    S::run_tile(r, cc, &t, &bases[..cc], outp.add(c.out_base + m0 * plane + lane0), &rows_off[..r])
                };
                p += cc;
            }
            m0 += r;
        }
    }
}

fn conv_group(kern: Kernels, c: &ConvCall<'_>, out: &mut [f32]) {
    let st = c.st;
    assert!(c.out_base + c.cog * st.ho * st.wo <= out.len(), "conv: output too small");
    assert!(c.w.len() >= c.cog * c.k && c.koff.len() == c.k, "conv: weights");
    let max_k = c.koff.iter().copied().max().unwrap_or(0);
    let last_base = (st.ho - 1) * st.wph + (st.wo.div_ceil(Blocking::of(kern).nr) - 1) * Blocking::of(kern).nr;
    assert!(last_base + max_k + Blocking::of(kern).nr <= c.stage.len(), "conv: stage too small");
    super::dispatch::dispatch!(kern, conv_group_body, (c: &ConvCall<'_>, out: &mut [f32]));
}

// ---------------------------------------------------------------------------
// Pooling.

/// A planned pooling node (max, sum or average).
#[derive(Debug, Clone)]
pub(crate) struct PoolKernel {
    kern: Kernels,
    st: Staging,
    max: bool,
    /// Average-pool divisors per output position (empty: no division).
    div: Vec<f32>,
    taps: Vec<usize>,
    out_len: usize,
    in_len: usize,
}

impl PoolKernel {
    /// Plans a pool; `None` when the layout or rank has no fast path.
    pub fn new(kern: Kernels, spec: &PoolSpec, input: &ValueType, out: &ValueType, max: bool) -> Option<Self> {
        let blk = Blocking::of(kern);
        let st = Staging::new(&spec.geo, &input.shape, &out.shape, blk.lanes)?;
        let off = usize::from(spec.geo.layout.has_n());
        if input.shape[off] != out.shape[off] {
            return None;
        }
        let mut taps = Vec::with_capacity(st.kh * st.kw);
        for ky in 0..st.kh {
            for kx in 0..st.kw {
                taps.push(st.tap_off(ky, kx));
            }
        }
        let div = if !max && spec.normalize {
            let w = crate::ops::conv::Window::new(&spec.geo, input, out).ok()?;
            let sr = spec.geo.kernel.len();
            let mut d = Vec::with_capacity(st.ho * st.wo);
            for y in 0..st.ho {
                for x in 0..st.wo {
                    let sp: Vec<u64> = if sr == 2 { vec![y as u64, x as u64] } else { vec![x as u64] };
                    d.push(w.pool_count(&sp, spec.count_include_pad) as f32);
                }
            }
            d
        } else {
            Vec::new()
        };
        Some(Self { kern, st, max, div, taps, out_len: out.numel() as usize, in_len: input.numel() as usize })
    }

    /// Scratch floats a run needs.
    pub fn scratch_len(&self) -> usize {
        self.st.channel_len() + self.st.slack
    }

    /// Runs the node.
    pub fn run(&self, x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        assert!(x.len() == self.in_len && out.len() == self.out_len, "pool: lengths");
        let st = &self.st;
        let pad = if self.max { f32::NEG_INFINITY } else { -0.0 };
        let stage = &mut scratch[..self.scratch_len()];
        let plane = st.ho * st.wo;
        for n in 0..st.n {
            for ch in 0..st.c {
                st.stage(self.kern, x, n, ch, 1, pad, stage);
                let o = &mut out[(n * st.c + ch) * plane..][..plane];
                let call = PoolCall { st, max: self.max, div: &self.div, taps: &self.taps, stage };
                pool_channel(self.kern, &call, o);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct PoolCall<'a> {
    st: &'a Staging,
    max: bool,
    div: &'a [f32],
    taps: &'a [usize],
    stage: &'a [f32],
}

#[inline(always)]
unsafe fn pool_body<S: Simd>(c: &PoolCall<'_>, out: &mut [f32]) {
    let st = c.st;
    let l = S::LANES;
    let op = out.as_mut_ptr();
    let sp = c.stage.as_ptr();
    // SAFETY: reads are inside the stage (taps < channel_len, garbage lanes
    // < slack, checked by `pool_channel`), writes inside one output plane.
    unsafe {
        let init = S::splat(if c.max { f32::NEG_INFINITY } else { -0.0 });
        for y in 0..st.ho {
            let mut x0 = 0;
            while x0 < st.wo {
                let nv = (st.wo - x0).min(l);
                let base = sp.add(y * st.wph + x0);
                let mut acc = init;
                for &t in c.taps {
                    let v = S::load(base.add(t));
                    acc = if c.max { S::fmax(acc, v) } else { S::add(acc, v) };
                }
                let e = y * st.wo + x0;
                if !c.div.is_empty() {
                    let d = if nv == l { S::load(c.div.as_ptr().add(e)) } else { S::load_n(c.div.as_ptr().add(e), nv) };
                    acc = S::div(acc, d);
                }
                let v = S::canon(acc);
                if nv == l {
                    S::store(op.add(e), v)
                } else {
                    S::store_n(op.add(e), v, nv)
                }
                x0 += l;
            }
        }
    }
}

fn pool_channel(kern: Kernels, c: &PoolCall<'_>, out: &mut [f32]) {
    let st = c.st;
    let l = Blocking::of(kern).lanes;
    assert!(out.len() >= st.ho * st.wo && (c.div.is_empty() || c.div.len() >= st.ho * st.wo), "pool: output");
    let max_t = c.taps.iter().copied().max().unwrap_or(0);
    let last = (st.ho - 1) * st.wph + (st.wo.div_ceil(l) - 1) * l;
    assert!(last + max_t + l <= c.stage.len(), "pool: stage too small");
    super::dispatch::dispatch!(kern, pool_body, (c: &PoolCall<'_>, out: &mut [f32]));
}
