//! EinSum (MatMul, Gemm, batched matmul, 1×1 convolution) on the GEMM core.
//!
//! The einsum's output axes are split into *batch* axes, *row* axes (only
//! the broadcast operand moves along them) and *lane* axes (only the vector
//! operand moves); the contracted tuples, in the reference's row-major fold
//! order, become the steps `t = 0..K` through offset tables. Which operand
//! is the lane side is chosen per node (contiguous output lanes first, then
//! a constant lane side, which is packed once at plan time).
#![deny(unsafe_code)]

use super::Kernels;
use super::gemm::{Blocking, EpOp, Gemm2d, Lanes, Rows, gemm2d, pack_lanes, pack_rows};
use crate::error::ProverError;
use crate::ops::einsum::EinPlan;
use crate::ops::layout::strides;
use crate::program::{EinSumSpec, ValueType};

/// A constant operand packed at plan time: one pack per batch position
/// (or one shared pack when the operand does not move along batch axes).
#[derive(Debug, Clone)]
struct ConstPack {
    data: Vec<f32>,
    per_batch: usize,
    shared: bool,
}

impl ConstPack {
    fn get(&self, b: usize) -> &[f32] {
        let i = if self.shared { 0 } else { b };
        &self.data[i * self.per_batch..(i + 1) * self.per_batch]
    }
}

/// A planned EinSum node.
#[derive(Debug, Clone)]
pub(crate) struct EinsumKernel {
    kern: Kernels,
    blk: Blocking,
    /// Whether input 0 is the row (broadcast) side.
    row_is_a: bool,
    m: usize,
    n: usize,
    k: usize,
    /// Per batch position: (row offset, lane offset, out offset).
    batches: Vec<(usize, usize, usize)>,
    row_moff: Vec<usize>,
    row_koff: Vec<usize>,
    row_k_contig: bool,
    lane_noff: Vec<usize>,
    lane_koff: Vec<usize>,
    out_moff: Vec<usize>,
    out_noff: Option<Vec<usize>>,
    row_pack: Option<ConstPack>,
    lane_pack: Option<ConstPack>,
    /// Dynamic lane side read in place, with this step stride.
    lane_direct: Option<usize>,
    /// Elements of the output.
    out_len: usize,
}

struct Side {
    n_axes: Vec<(usize, usize, usize)>, // (dim, stride in this operand, stride in out)
    m_axes: Vec<(usize, usize, usize)>, // (dim, stride in other operand, stride in out)
    batch: Vec<(usize, usize, usize, usize)>, // (dim, stride row, stride lane, stride out)
}

/// Row-major enumeration of `axes` (dim, s1, s2) → (Σ c·s1, Σ c·s2).
fn enumerate(axes: &[(usize, usize, usize)]) -> (Vec<usize>, Vec<usize>) {
    let total: usize = axes.iter().map(|a| a.0).product();
    let (mut v1, mut v2) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let mut coord = vec![0usize; axes.len()];
    let (mut o1, mut o2) = (0usize, 0usize);
    for _ in 0..total {
        v1.push(o1);
        v2.push(o2);
        for ax in (0..axes.len()).rev() {
            let (d, s1, s2) = axes[ax];
            coord[ax] += 1;
            o1 += s1;
            o2 += s2;
            if coord[ax] < d {
                break;
            }
            o1 -= s1 * d;
            o2 -= s2 * d;
            coord[ax] = 0;
        }
    }
    (v1, v2)
}

/// Largest batch count planned with per-batch tables.
const MAX_BATCHES: usize = 1 << 16;

impl EinsumKernel {
    /// Plans `spec` over these types; `a_const`/`b_const` are the operands'
    /// values when they are program constants (packed now). `None` when
    /// the shape is degenerate enough that the reference is as good.
    pub fn new(
        kern: Kernels,
        spec: &EinSumSpec,
        a: &ValueType,
        b: &ValueType,
        out: &ValueType,
        a_const: Option<&[f32]>,
        b_const: Option<&[f32]>,
    ) -> Result<Option<Self>, ProverError> {
        let plan = EinPlan::new(spec, a, b, out)?;
        // Empty operands or output: nothing to block or pack (an extent-0
        // axis has stride 0 and would be taken for a batch axis); the
        // reference fallback produces the empty (or all −0) result.
        if [a, b, out].iter().any(|t| t.shape.contains(&0)) {
            return Ok(None);
        }
        let blk = Blocking::of(kern);
        let k = plan.k() as usize;
        let so = strides(&out.shape);
        let (mut koff_a, mut koff_b) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for t in 0..k as u64 {
            let (x, y) = plan.step_offsets(t);
            koff_a.push(x as usize);
            koff_b.push(y as usize);
        }
        // Output axes of extent > 1: (dim, stride a, stride b, stride out).
        let axes: Vec<(usize, usize, usize, usize)> = (0..out.shape.len())
            .filter(|&i| out.shape[i] != 1)
            .map(|i| (out.shape[i] as usize, plan.free[i].0 as usize, plan.free[i].1 as usize, so[i] as usize))
            .collect();
        let side = |lane_is_b: bool| -> Side {
            let mut s = Side { n_axes: vec![], m_axes: vec![], batch: vec![] };
            for &(d, sa, sb, sout) in &axes {
                let (sl, sr) = if lane_is_b { (sb, sa) } else { (sa, sb) };
                if sl != 0 && sr == 0 {
                    s.n_axes.push((d, sl, sout));
                } else if sr != 0 && sl == 0 {
                    s.m_axes.push((d, sr, sout));
                } else {
                    s.batch.push((d, sr, sl, sout));
                }
            }
            s
        };
        // Score both orientations.
        let mut best: Option<(u32, bool)> = None;
        for lane_is_b in [true, false] {
            let s = side(lane_is_b);
            let n: usize = s.n_axes.iter().map(|a| a.0).product();
            let (_, out_noff) = enumerate(&s.n_axes);
            let contig = n > 1 && out_noff.iter().enumerate().all(|(j, &o)| o == j);
            let lane_const = if lane_is_b { b_const.is_some() } else { a_const.is_some() };
            let m: usize = s.m_axes.iter().map(|a| a.0).product();
            let score =
                8 * u32::from(contig) + 4 * u32::from(lane_const) + 2 * u32::from(n >= m) + u32::from(lane_is_b);
            if best.is_none_or(|(bs, _)| score > bs) {
                best = Some((score, lane_is_b));
            }
        }
        let lane_is_b = best.map(|b| b.1).unwrap_or(true);
        let s = side(lane_is_b);
        let (lane_noff, out_noff) = enumerate(&s.n_axes);
        let (row_moff, out_moff) = enumerate(&s.m_axes);
        let (n, m) = (lane_noff.len(), row_moff.len());
        let nbatch: usize = s.batch.iter().map(|a| a.0).product();
        if nbatch > MAX_BATCHES {
            return Ok(None);
        }
        let batch_axes: Vec<(usize, usize, usize)> = s.batch.iter().map(|&(d, r, l, _)| (d, r, l)).collect();
        let (b_row, b_lane) = enumerate(&batch_axes);
        let out_axes: Vec<(usize, usize, usize)> = s.batch.iter().map(|&(d, _, _, o)| (d, o, 0)).collect();
        let (b_out, _) = enumerate(&out_axes);
        let batches: Vec<(usize, usize, usize)> = (0..nbatch).map(|i| (b_row[i], b_lane[i], b_out[i])).collect();
        let (row_koff, lane_koff) = if lane_is_b { (koff_a, koff_b) } else { (koff_b, koff_a) };
        let (row_const, lane_const) = if lane_is_b { (a_const, b_const) } else { (b_const, a_const) };
        let row_k_contig = row_koff.iter().enumerate().all(|(t, &o)| o == t);
        let contiguous_out = out_noff.iter().enumerate().all(|(j, &o)| o == j);
        let npanels = n.div_ceil(blk.nr);

        let row_pack = row_const.map(|src| {
            let shared = s.batch.iter().all(|a| a.1 == 0);
            let per_batch = m * k;
            let count = if shared { 1 } else { nbatch };
            let mut data = vec![0f32; per_batch * count];
            for bi in 0..count {
                pack_rows(
                    src,
                    batches[bi].0,
                    &row_moff,
                    &row_koff,
                    blk.mr,
                    &mut data[bi * per_batch..(bi + 1) * per_batch],
                );
            }
            ConstPack { data, per_batch, shared }
        });
        let lane_pack = lane_const.map(|src| {
            let shared = s.batch.iter().all(|a| a.2 == 0);
            let per_batch = npanels * k * blk.nr;
            let count = if shared { 1 } else { nbatch };
            let mut data = vec![0f32; per_batch * count];
            for bi in 0..count {
                let dst = &mut data[bi * per_batch..(bi + 1) * per_batch];
                pack_lanes(src, batches[bi].1, &lane_noff, &lane_koff, blk.nr, 0, npanels, dst);
            }
            ConstPack { data, per_batch, shared }
        });
        let lane_direct =
            if lane_pack.is_none() && k > 0 && n >= blk.nr && lane_noff.iter().enumerate().all(|(j, &o)| o == j) {
                let ld = if k > 1 { lane_koff[1] } else { n };
                lane_koff.iter().enumerate().all(|(t, &o)| o == t * ld).then_some(ld)
            } else {
                None
            };
        Ok(Some(Self {
            kern,
            blk,
            row_is_a: lane_is_b,
            m,
            n,
            k,
            batches,
            row_moff,
            row_koff,
            row_k_contig,
            lane_noff,
            lane_koff,
            out_moff,
            out_noff: (!contiguous_out).then_some(out_noff),
            row_pack,
            lane_pack,
            lane_direct,
            out_len: out.numel() as usize,
        }))
    }

    /// GEMM rows, lanes and steps.
    pub fn mnk(&self) -> (usize, usize, usize) {
        (self.m, self.n, self.k)
    }

    /// Floats of packed constants.
    pub fn packed_len(&self) -> usize {
        self.row_pack.as_ref().map_or(0, |p| p.data.len()) + self.lane_pack.as_ref().map_or(0, |p| p.data.len())
    }

    /// Batch positions.
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// Whether output lanes are contiguous (lane-varying epilogue operands
    /// are possible).
    pub fn lanes_contiguous(&self) -> bool {
        self.out_noff.is_none()
    }

    /// Output element offset of GEMM row `m` (batch 0).
    pub fn out_row_offsets(&self) -> &[usize] {
        &self.out_moff
    }

    /// Output element offset of lane `n` within a row (batch 0).
    pub fn out_lane_offset(&self, n: usize) -> usize {
        self.out_noff.as_ref().map(|t| t[n]).unwrap_or(n)
    }

    /// Scratch floats a run needs.
    pub fn scratch_len(&self) -> usize {
        let rows = if self.row_pack.is_none() && !(self.row_k_contig && self.k > 0) { self.m * self.k } else { 0 };
        let lanes = if self.lane_pack.is_some() {
            0
        } else if self.lane_direct.is_some() {
            self.k * self.blk.nr
        } else {
            self.n.div_ceil(self.blk.nr) * self.k * self.blk.nr
        };
        rows + lanes
    }

    /// Runs the node: `a`, `b` are the inputs (ignored where packed),
    /// `out` the output, `scratch` at least [`Self::scratch_len`] floats.
    pub fn run(&self, a: &[f32], b: &[f32], out: &mut [f32], scratch: &mut [f32], ep: &[EpOp<'_>]) {
        assert_eq!(out.len(), self.out_len, "einsum: output length");
        let (row_src, lane_src) = if self.row_is_a { (a, b) } else { (b, a) };
        let (m, n, k) = (self.m, self.n, self.k);
        let nr = self.blk.nr;
        let npanels = n.div_ceil(nr);
        // A dynamic row side whose steps are contiguous is read in place.
        let rows_direct = self.row_pack.is_none() && self.row_k_contig && k > 0;
        let rows_len = if self.row_pack.is_none() && !rows_direct { m * k } else { 0 };
        let (row_scr, lane_scr) = scratch.split_at_mut(rows_len);
        for (bi, &(ro, lo, oo)) in self.batches.iter().enumerate() {
            let rows = match &self.row_pack {
                Some(p) => Rows::Packed(p.get(bi)),
                None if rows_direct => Rows::Direct { src: &row_src[ro..], moff: &self.row_moff },
                None => {
                    pack_rows(row_src, ro, &self.row_moff, &self.row_koff, self.blk.mr, row_scr);
                    Rows::Packed(&row_scr[..m * k])
                }
            };
            let lanes = match (&self.lane_pack, self.lane_direct) {
                (Some(p), _) => Lanes::Packed(p.get(bi)),
                (None, Some(ld)) => {
                    let full = n / nr;
                    let tail_len = if full < npanels {
                        pack_lanes(lane_src, lo, &self.lane_noff, &self.lane_koff, nr, full, 1, lane_scr);
                        k * nr
                    } else {
                        0
                    };
                    Lanes::Direct { src: &lane_src[lo..], ld, tail: &lane_scr[..tail_len] }
                }
                (None, None) => {
                    pack_lanes(lane_src, lo, &self.lane_noff, &self.lane_koff, nr, 0, npanels, lane_scr);
                    Lanes::Packed(&lane_scr[..npanels * k * nr])
                }
            };
            let g = Gemm2d {
                m,
                n,
                k,
                rows,
                lanes,
                out_moff: &self.out_moff,
                out_noff: self.out_noff.as_deref(),
                out_base: oo,
                ep,
            };
            gemm2d(self.kern, &g, out);
        }
    }
}
