//! The register-blocked GEMM core shared by EinSum and convolution.
//!
//! ## Bit-exactness
//! Output element `(m, n)` is `acc₀ = -0.0`, then for `t = 0..K` in order
//! `acc ← fma(row[m, t], lane[n, t], acc)`, then (optionally) the fused
//! epilogue, then NaN canonicalisation: exactly the reference fold. The
//! micro-kernel keeps an `R × C·G` block of accumulators in registers, one
//! output element per lane, and walks `t` sequentially: it vectorises across
//! independent outputs and never splits or reorders a sum. `fma` is
//! commutative in its two factors (the exact product is rounded once), so
//! which operand is broadcast and which is loaded does not matter.
//!
//! ## Layouts
//! * **Row side** (broadcast operand), packed: rows in blocks of `MR`; the
//!   block starting at row `m0` with `r` rows lives at `m0·K` as `[t][r]`.
//! * **Lane side** (vector operand): panels of `NR = G·LANES` columns,
//!   either packed (`[panel][t][NR]`, zero-padded) or read in place from a
//!   row-major matrix whose columns are contiguous (`ld` between steps), in
//!   which case a partial last panel is packed separately.
//! * **Steps** are addressed through a [`KOff`]: `t·ld` for matrices, a table
//!   for implicit (im2col-free) convolution.
#![allow(unsafe_code)]

use super::elementwise::{VBinary, VUnary, binary_v, unary_v};
use super::simd::{Scalar, Simd};

/// Register-blocking parameters of a family.
pub(crate) trait Fam: Simd {
    /// Rows per full block.
    const MR: usize;
    /// Vectors per lane panel.
    const G: usize;
    /// Columns per lane panel.
    const NR: usize = Self::G * Self::LANES;
    /// Largest number of panels one tile may cover for `r` rows.
    fn cmax(r: usize) -> usize;
    /// Runs the `r × c` tile (dispatch to a monomorphic kernel).
    unsafe fn run_tile<K: KOff, A: ARows>(
        r: usize,
        c: usize,
        t: &TileArgs<'_, K, A>,
        bases: &[*const f32],
        out: *mut f32,
        out_rows: &[usize],
    );
}

/// Column-step addressing of the lane side.
pub(crate) trait KOff: Copy {
    /// Offset of step `t` from a panel's base.
    fn off(&self, t: usize) -> usize;
}

/// `t · ld`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided(pub usize);

impl KOff for Strided {
    #[inline(always)]
    fn off(&self, t: usize) -> usize {
        t * self.0
    }
}

/// `table[t]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table<'a>(pub &'a [usize]);

impl KOff for Table<'_> {
    #[inline(always)]
    fn off(&self, t: usize) -> usize {
        // SAFETY-free: callers guarantee `t < len` (K steps, table of K).
        self.0[t]
    }
}

/// Where the row side's value for (step `s`, row `r`) of a tile is.
pub(crate) trait ARows: Copy {
    /// Row `r` of an `R`-row block, step `s`.
    unsafe fn get<const R: usize>(&self, s: usize, r: usize) -> f32;
}

/// Packed block `[t][R]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackedA(pub *const f32);

impl ARows for PackedA {
    #[inline(always)]
    unsafe fn get<const R: usize>(&self, s: usize, r: usize) -> f32 {
        // SAFETY: the caller guarantees s < k and r < R for a block of R·k.
        unsafe { *self.0.add(s * R + r) }
    }
}

/// Rows read in place: row `r` at `rows[r]`, steps contiguous.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectA(pub [*const f32; 8]);

impl ARows for DirectA {
    #[inline(always)]
    unsafe fn get<const R: usize>(&self, s: usize, r: usize) -> f32 {
        // SAFETY: the caller guarantees rows[r] + s is inside the row side.
        unsafe { *self.0[r].add(s) }
    }
}

/// An operand of a fused epilogue op.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EpArg<'a> {
    /// The same value everywhere.
    Scalar(f32),
    /// One value per GEMM row `m`: `vals[offs[m]]`.
    Row { vals: &'a [f32], offs: &'a [usize] },
    /// One value per lane index `n` (contiguous): `vals[n]`.
    Lane { vals: &'a [f32] },
    /// One value per output element, at the output's own offset.
    Full { vals: &'a [f32] },
}

/// One fused element-wise op applied to a finished accumulator.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EpOp<'a> {
    /// `acc ← op(acc)`.
    Unary(VUnary),
    /// `acc ← acc ∘ arg` (or `arg ∘ acc` when `!acc_left`).
    Binary { op: VBinary, arg: EpArg<'a>, acc_left: bool },
    /// `acc ← fmax(acc, c)` for a constant `c` that is neither NaN nor
    /// `-0.0`: then `fmax` is `maxps(acc, c)` except on NaN lanes, which
    /// keep `acc` (canonicalised at the store).
    MaxConst(f32),
    /// `acc ← fmin(acc, c)`, `c` neither NaN nor `+0.0`.
    MinConst(f32),
}

/// Everything a tile needs besides its panel bases and output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileArgs<'a, K: KOff, A: ARows> {
    /// Steps.
    pub k: usize,
    /// Row side of the block.
    pub a: A,
    /// Step addressing of the lane side.
    pub koff: K,
    /// Valid lanes counted from the tile's first lane (≥ 1).
    pub n_rem: usize,
    /// Fused epilogue.
    pub ep: &'a [EpOp<'a>],
    /// GEMM row index of the tile's first row (for `EpArg::Row`).
    pub m0: usize,
    /// Lane index of the tile's first lane (for `EpArg::Lane`).
    pub n0: usize,
    /// Element offset of `out` in the whole output (for `EpArg::Full`).
    pub out_off: usize,
}

#[inline(always)]
unsafe fn apply_ep<S: Simd>(mut v: S::V, ep: &[EpOp<'_>], m: usize, n: usize, e: usize, nv: usize) -> S::V {
    for op in ep {
        // SAFETY: the planner only builds epilogues whose operand slices
        // cover every row/lane/element index a tile can pass here.
        unsafe {
            v = match *op {
                EpOp::Unary(u) => unary_v::<S>(u, v),
                EpOp::MaxConst(c) => S::select(S::unord(v, v), v, S::max_gt(v, S::splat(c))),
                EpOp::MinConst(c) => S::select(S::unord(v, v), v, S::min_lt(v, S::splat(c))),
                EpOp::Binary { op, arg, acc_left } => {
                    let w = match arg {
                        EpArg::Scalar(x) => S::splat(x),
                        EpArg::Row { vals, offs } => S::splat(*vals.as_ptr().add(*offs.as_ptr().add(m))),
                        EpArg::Lane { vals } => {
                            if nv == S::LANES {
                                S::load(vals.as_ptr().add(n))
                            } else {
                                S::load_n(vals.as_ptr().add(n), nv)
                            }
                        }
                        EpArg::Full { vals } => {
                            if nv == S::LANES {
                                S::load(vals.as_ptr().add(e))
                            } else {
                                S::load_n(vals.as_ptr().add(e), nv)
                            }
                        }
                    };
                    if acc_left { binary_v::<S>(op, v, w) } else { binary_v::<S>(op, w, v) }
                }
            };
        }
    }
    v
}

/// Expands `$body` once per literal `$i` in `0..8` with `$i < $n`, so that
/// every array index in the body is a constant and the accumulators stay in
/// registers (LLVM's scalar replacement runs before loop unrolling).
macro_rules! unroll {
    ($i:ident < $n:expr => $body:block) => {{
        unroll!(@ $i, $n, $body, 0 1 2 3 4 5 6 7)
    }};
    ($i:ident < $n:expr ; 4 => $body:block) => {{
        unroll!(@ $i, $n, $body, 0 1 2 3)
    }};
    (@ $i:ident, $n:expr, $body:block, $($k:literal)*) => {{
        $( { #[allow(clippy::identity_op)] let $i: usize = $k; if $i < $n $body } )*
    }};
}

/// The micro-kernel and its store: an `R × C` tile of panels.
///
/// Reads `a[t·R + r]` and `bases[c] + koff(t) + g·LANES` for `t < k`;
/// writes lanes `< n_rem` of row `r` at `out + out_rows[r] + c·NR + g·LANES`.
#[inline(always)]
unsafe fn tile<S: Fam, K: KOff, A: ARows, const R: usize, const C: usize>(
    t: &TileArgs<'_, K, A>,
    bases: &[*const f32],
    out: *mut f32,
    out_rows: &[usize],
) {
    // SAFETY: the caller guarantees the reads and writes listed above are
    // in bounds (the drivers derive them from planned shapes).
    unsafe {
        // Accumulators: R rows × C panels × G vectors (R ≤ 8, C ≤ 4, G ≤ 4).
        let z = S::splat(-0.0);
        let mut acc = [[[z; 4]; 4]; 8];
        let mut bp = [std::ptr::null::<f32>(); 4];
        unroll!(c < C; 4 => { bp[c] = bases[c]; });
        let a = t.a;
        for s in 0..t.k {
            let o = t.koff.off(s);
            let mut bv = [[z; 4]; 4];
            unroll!(c < C; 4 => { unroll!(g < S::G; 4 => { bv[c][g] = S::load(bp[c].add(o + g * S::LANES)); }); });
            unroll!(r < R => {
                let av = S::splat(a.get::<R>(s, r));
                unroll!(c < C; 4 => { unroll!(g < S::G; 4 => { acc[r][c][g] = S::fma(av, bv[c][g], acc[r][c][g]); }); });
            });
        }
        unroll!(r < R => {
            let row = out.add(out_rows[r]);
            unroll!(c < C; 4 => {
                unroll!(g < S::G; 4 => {
                    let lane0 = c * S::NR + g * S::LANES;
                    if lane0 < t.n_rem {
                        let nv = (t.n_rem - lane0).min(S::LANES);
                        let mut v = acc[r][c][g];
                        if !t.ep.is_empty() {
                            v = apply_ep::<S>(v, t.ep, t.m0 + r, t.n0 + lane0, t.out_off + out_rows[r] + lane0, nv);
                        }
                        let v = S::canon(v);
                        if nv == S::LANES {
                            S::store(row.add(lane0), v);
                        } else {
                            S::store_n(row.add(lane0), v, nv);
                        }
                    }
                });
            });
        });
    }
}

macro_rules! tiles {
    ($S:ty, $r:expr, $c:expr, $t:expr, $bases:expr, $out:expr, $rows:expr; $(($R:literal, $C:literal)),* $(,)?) => {
        match ($r, $c) {
            $(($R, $C) => tile::<$S, K, A, $R, $C>($t, $bases, $out, $rows),)*
            _ => unreachable!("no {}x{} tile", $r, $c),
        }
    };
}

impl Fam for Scalar {
    const MR: usize = 4;
    const G: usize = 4;
    fn cmax(r: usize) -> usize {
        if r == 1 { 2 } else { 1 }
    }
    #[inline(always)]
    unsafe fn run_tile<K: KOff, A: ARows>(
        r: usize,
        c: usize,
        t: &TileArgs<'_, K, A>,
        bases: &[*const f32],
        out: *mut f32,
        rows: &[usize],
    ) {
        // SAFETY: forwarded tile contract.
        unsafe { tiles!(Scalar, r, c, t, bases, out, rows; (1, 1), (1, 2), (2, 1), (3, 1), (4, 1)) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Fam for super::simd::Avx2 {
    const MR: usize = 6;
    const G: usize = 2;
    fn cmax(r: usize) -> usize {
        match r {
            1 => 4,
            2 => 2,
            _ => 1,
        }
    }
    #[inline(always)]
    unsafe fn run_tile<K: KOff, A: ARows>(
        r: usize,
        c: usize,
        t: &TileArgs<'_, K, A>,
        bases: &[*const f32],
        out: *mut f32,
        rows: &[usize],
    ) {
        use super::simd::Avx2;
        // SAFETY: forwarded tile contract.
        unsafe {
            tiles!(Avx2, r, c, t, bases, out, rows;
                (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (3, 1), (4, 1), (5, 1), (6, 1))
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Fam for super::simd::Avx512 {
    const MR: usize = 8;
    const G: usize = 2;
    fn cmax(r: usize) -> usize {
        match r {
            1 => 4,
            2 | 3 => 2,
            _ => 1,
        }
    }
    #[inline(always)]
    unsafe fn run_tile<K: KOff, A: ARows>(
        r: usize,
        c: usize,
        t: &TileArgs<'_, K, A>,
        bases: &[*const f32],
        out: *mut f32,
        rows: &[usize],
    ) {
        use super::simd::Avx512;
        // SAFETY: forwarded tile contract.
        unsafe {
            tiles!(Avx512, r, c, t, bases, out, rows;
                (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (3, 1), (3, 2),
                (4, 1), (5, 1), (6, 1), (7, 1), (8, 1))
        }
    }
}

/// Blocking parameters of a family, for planning (packing layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Rows per block.
    pub mr: usize,
    /// Columns per panel.
    pub nr: usize,
    /// Lanes per vector.
    pub lanes: usize,
}

impl Blocking {
    /// The blocking of a family.
    pub fn of(k: super::Kernels) -> Self {
        fn b<S: Fam>() -> Blocking {
            Blocking { mr: S::MR, nr: S::NR, lanes: S::LANES }
        }
        match k.isa() {
            super::Isa::Scalar => b::<Scalar>(),
            #[cfg(target_arch = "x86_64")]
            super::Isa::Avx2 => b::<super::simd::Avx2>(),
            #[cfg(target_arch = "x86_64")]
            super::Isa::Avx512 => b::<super::simd::Avx512>(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => b::<Scalar>(),
        }
    }
}

// ---------------------------------------------------------------------------
// Packing (plain Rust: bounds-checked, family-independent given a Blocking).

/// Packs an `m × k` row side: row `i`, step `t` is
/// `src[base + moff[i] + koff[t]]`.
pub(crate) fn pack_rows(src: &[f32], base: usize, moff: &[usize], koff: &[usize], mr: usize, dst: &mut [f32]) {
    let (m, k) = (moff.len(), koff.len());
    assert!(dst.len() >= m * k, "pack_rows: destination too small");
    let mut m0 = 0;
    while m0 < m {
        let r = mr.min(m - m0);
        let blk = &mut dst[m0 * k..(m0 + r) * k];
        for i in 0..r {
            let row = base + moff[m0 + i];
            for (t, &o) in koff.iter().enumerate() {
                blk[t * r + i] = src[row + o];
            }
        }
        m0 += r;
    }
}

/// Packs lane panels `first..first+count` of an `n × k` lane side (column
/// `j`, step `t` is `src[noff[j] + koff[t]]`) as `[panel][t][nr]`,
/// zero-padded past `n`.
pub(crate) fn pack_lanes(
    src: &[f32],
    base: usize,
    noff: &[usize],
    koff: &[usize],
    nr: usize,
    first: usize,
    count: usize,
    dst: &mut [f32],
) {
    let (n, k) = (noff.len(), koff.len());
    assert!(dst.len() >= count * k * nr, "pack_lanes: destination too small");
    for p in 0..count {
        let j0 = (first + p) * nr;
        let w = nr.min(n.saturating_sub(j0));
        let panel = &mut dst[p * k * nr..(p + 1) * k * nr];
        let contiguous = w > 0 && (1..w).all(|j| noff[j0 + j] == noff[j0] + j);
        for (t, &o) in koff.iter().enumerate() {
            let row = &mut panel[t * nr..(t + 1) * nr];
            if contiguous {
                let s = base + noff[j0] + o;
                row[..w].copy_from_slice(&src[s..s + w]);
            } else {
                for j in 0..w {
                    row[j] = src[base + noff[j0 + j] + o];
                }
            }
            row[w..].fill(0.0);
        }
    }
}

// ---------------------------------------------------------------------------
// The 2-D driver.

/// Where the lane side of one 2-D GEMM comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lanes<'a> {
    /// Packed panels (`[panel][t][NR]`, all panels).
    Packed(&'a [f32]),
    /// In place: column `j` step `t` at `src[j + t·ld]`; the partial last
    /// panel (if any) packed in `tail` as `[t][NR]`.
    Direct { src: &'a [f32], ld: usize, tail: &'a [f32] },
}

/// Where the row side of one 2-D GEMM comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rows<'a> {
    /// Packed ([`pack_rows`] layout, `m·k` floats).
    Packed(&'a [f32]),
    /// In place: row `m`, step `t` at `src[moff[m] + t]`.
    Direct { src: &'a [f32], moff: &'a [usize] },
}

/// One 2-D GEMM `out[m, n] = Σ_t row[m, t]·lane[n, t]` (+ epilogue).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm2d<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Row side.
    pub rows: Rows<'a>,
    pub lanes: Lanes<'a>,
    /// Output element offset of row `m` (relative to `out_base`).
    pub out_moff: &'a [usize],
    /// Output offset of lane `n` relative to its row: `None` = `n`
    /// (contiguous), else a table.
    pub out_noff: Option<&'a [usize]>,
    /// Offset of this GEMM's element 0 in the output slice.
    pub out_base: usize,
    pub ep: &'a [EpOp<'a>],
}

/// Panels processed together before moving to the next row block.
const PANEL_GROUP: usize = 4;

#[inline(always)]
unsafe fn gemm2d_body<S: Fam>(g: &Gemm2d<'_>, out: &mut [f32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    let nr = S::NR;
    let npanels = n.div_ceil(nr);
    let full_panels = n / nr;
    let outp = out.as_mut_ptr();
    // Scatter tile for non-contiguous outputs: MR rows × 4 panels.
    let mut tmp = [0f32; 8 * 4 * 64];
    let mut tmp_rows = [0usize; 8];
    for i in 0..S::MR {
        tmp_rows[i] = i * 4 * nr;
    }
    let mut rows_off = [0usize; 8];
    let mut bases = [std::ptr::null::<f32>(); 4];
    let mut pg = 0;
    while pg < npanels {
        let pend = (pg + PANEL_GROUP).min(npanels);
        let mut m0 = 0;
        while m0 < m {
            let r = S::MR.min(m - m0);
            let mut p = pg;
            while p < pend {
                // Panels in one call share their step addressing: in Direct
                // mode the packed tail panel is called alone.
                let (c, koff) = match g.lanes {
                    Lanes::Packed(buf) => {
                        let c = S::cmax(r).min(pend - p);
                        for i in 0..c {
                            // SAFETY: panel p+i starts at (p+i)·k·nr < len.
                            bases[i] = unsafe { buf.as_ptr().add((p + i) * k * nr) };
                        }
                        (c, Strided(nr))
                    }
                    Lanes::Direct { src, ld, tail } => {
                        if p >= full_panels {
                            bases[0] = tail.as_ptr();
                            (1, Strided(nr))
                        } else {
                            let c = S::cmax(r).min(full_panels - p).min(pend - p);
                            for i in 0..c {
                                // SAFETY: full panel columns are < n.
                                bases[i] = unsafe { src.as_ptr().add((p + i) * nr) };
                            }
                            (c, Strided(ld))
                        }
                    }
                };
                let n0 = p * nr;
                let (dst, dst_rows, out_off): (*mut f32, &[usize], usize) = match g.out_noff {
                    None => {
                        rows_off[..r].copy_from_slice(&g.out_moff[m0..m0 + r]);
                        // SAFETY: rows m0..m0+r, lanes n0..n are inside the
                        // output (planned offsets, length checked by caller).
                        (unsafe { outp.add(g.out_base + n0) }, &rows_off[..r], g.out_base + n0)
                    }
                    Some(_) => (tmp.as_mut_ptr(), &tmp_rows[..r], 0),
                };
                match g.rows {
                    Rows::Packed(buf) => {
                        // SAFETY: block at m0·k holds r·k floats (pack_rows layout).
                        let a = PackedA(unsafe { buf.as_ptr().add(m0 * k) });
                        let t = TileArgs { k, a, koff, n_rem: n - n0, ep: g.ep, m0, n0, out_off };
                        // SAFETY: see `dst` above; reads checked by `gemm2d`.
                        unsafe { S::run_tile(r, c, &t, &bases[..c], dst, dst_rows) };
                    }
                    Rows::Direct { src, moff } => {
                        let mut rp = [std::ptr::null::<f32>(); 8];
                        for i in 0..r {
                            // SAFETY: moff[m] + k ≤ src.len() (checked by `gemm2d`).
                            rp[i] = unsafe { src.as_ptr().add(moff[m0 + i]) };
                        }
                        let t = TileArgs { k, a: DirectA(rp), koff, n_rem: n - n0, ep: g.ep, m0, n0, out_off };
                        // SAFETY: as above.
                        unsafe { S::run_tile(r, c, &t, &bases[..c], dst, dst_rows) };
                    }
                }
                match g.out_noff {
                    None => {}
                    Some(noff) => {
                        let w = (c * nr).min(n - n0);
                        for i in 0..r {
                            let ro = g.out_base + g.out_moff[m0 + i];
                            for j in 0..w {
                                // SAFETY: offsets inside the output (checked by `gemm2d`).
                                unsafe { *outp.add(ro + noff[n0 + j]) = tmp[tmp_rows[i] + j] };
                            }
                        }
                    }
                }
                p += c;
            }
            m0 += r;
        }
        pg = pend;
    }
}

/// Runs one 2-D GEMM with family `k`. Panics if the output or operands are
/// too small for the planned offsets.
pub(crate) fn gemm2d(kern: super::Kernels, g: &Gemm2d<'_>, out: &mut [f32]) {
    if g.m == 0 || g.n == 0 {
        return;
    }
    let b = Blocking::of(kern);
    // Bounds of everything the kernels touch through raw pointers.
    match g.rows {
        Rows::Packed(buf) => assert!(buf.len() >= g.m * g.k, "gemm: row pack too small"),
        Rows::Direct { src, moff } => {
            assert!(
                moff.len() >= g.m && moff[..g.m].iter().all(|&o| o + g.k <= src.len()),
                "gemm: direct rows out of bounds"
            )
        }
    }
    assert_eq!(g.out_moff.len(), g.m, "gemm: row offsets");
    let max_row = *g.out_moff.iter().max().unwrap_or(&0);
    let max_lane = match g.out_noff {
        None => g.n - 1,
        Some(t) => {
            assert_eq!(t.len(), g.n, "gemm: lane offsets");
            *t.iter().max().unwrap_or(&0)
        }
    };
    assert!(g.out_base + max_row + max_lane < out.len(), "gemm: output too small");
    let npanels = g.n.div_ceil(b.nr);
    match g.lanes {
        Lanes::Packed(buf) => assert!(buf.len() >= npanels * g.k * b.nr, "gemm: lane pack too small"),
        Lanes::Direct { src, ld, tail } => {
            let full = g.n / b.nr;
            if full > 0 && g.k > 0 {
                assert!((g.k - 1) * ld + full * b.nr <= src.len(), "gemm: direct lanes out of bounds");
            }
            if full < npanels {
                assert!(tail.len() >= g.k * b.nr, "gemm: tail pack too small");
            }
        }
    }
    for op in g.ep {
        if let EpOp::Binary { arg, .. } = op {
            match arg {
                EpArg::Scalar(_) => {}
                EpArg::Row { vals, offs } => {
                    assert!(offs.len() >= g.m && offs[..g.m].iter().all(|&o| o < vals.len()), "gemm: row operand")
                }
                EpArg::Lane { vals } => assert!(g.out_noff.is_none() && vals.len() >= g.n, "gemm: lane operand"),
                EpArg::Full { vals } => {
                    assert!(g.out_noff.is_none() && vals.len() > g.out_base + max_row + max_lane, "gemm: full operand")
                }
            }
        }
    }
    super::dispatch::dispatch!(kern, gemm2d_body, (g: &Gemm2d<'_>, out: &mut [f32]));
}
