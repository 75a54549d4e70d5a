//! The three evaluators of the canonical semantics agree bit for bit, for
//! every op of the canonical set: the fold (`fold_for` + `eval_element`,
//! what the referee checks one step of), the reference executor
//! (`exec::execute_with`) and the fast planned executor (`fast::Plan`, every
//! ISA this CPU supports, fused and unfused, plain and traced). A mismatch
//! would make an honest sequencer, which runs the fast executor, lose a
//! dispute. Small random programs with adversarial values (NaN payloads,
//! ±Inf, −0, denormals, integer extremes, shifts past the width, zero-size
//! dims), plus exhaustive sweeps over special values; for a few elements per
//! case the honest `DisputeProver`'s states commit and one-step proofs are
//! verified too. The first mismatch per op family is reported with the
//! operands the fold step read.
//!
//! Written as an audit (2026-11-24); it found no mismatch, and one panic of
//! the fast EinSum on empty outputs (now `kernels::einsum_with_empty_operands_or_output`).
//! `VERINFER_FUZZ_CASES` scales the random cases (60 = the default scale),
//! `VERINFER_AGREEMENT_SEED` changes the seed, and
//! `VERINFER_AGREEMENT_SANITY=1` flips one fold bit to show the harness
//! catches it (every family then fails).

use std::collections::BTreeMap;

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_prover::dispute::{
    DisputeProver, StepVerdict, verify_commit, verify_node_reveal, verify_one_step, verify_states_commit,
};
use verinfer_prover::exec::{ExecOptions, execute_with};
use verinfer_prover::fast::{Isa, Plan, PlanOptions};
use verinfer_prover::ops::{self, OperandReader, TensorReader, eval_element, fold_for};
use verinfer_prover::program::*;
use verinfer_state::hash::Hash32;
use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

// ---------------------------------------------------------------------------
// Values.

const F32_SPECIAL: &[u32] = &[
    0x0000_0000,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000, // ±0, ±inf
    0x7fc0_0000,
    0xffc0_0000,
    0x7f80_0001,
    0xffbf_ffff,
    0x7fc0_1234,
    0xff80_0abc,
    0x7fff_ffff, // NaNs
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x807f_ffff,
    0x0040_0000,
    0x8000_0100, // denormals
    0x0080_0000,
    0x8080_0000,
    0x7f7f_ffff,
    0xff7f_ffff, // min normal, max
    0x3f80_0000,
    0xbf80_0000,
    0x3f00_0000,
    0xbf00_0000,
    0x3fc0_0000,
    0xc020_0000,
    0x4000_0000, // ±1 ±.5 1.5 -2.5 2
    0x4b00_0000,
    0x4aff_ffff,
    0x4b7f_ffff,
    0x4b80_0001,
    0xcb00_0001,
    0x4affffff, // around 2^23, 2^24
    0x42b1_7218,
    0xc2cf_f1b5,
    0x42b2_0000,
    0xc2c8_0000, // exp limits
    0x7149_f2ca,
    0xf149_f2ca,
    0x0da2_4260,
    0x8da2_4260, // ±1e30, ±1e-30
    0x4f00_0000,
    0xcf00_0000,
    0x5f00_0000,
    0xdf00_0000,
    0x4f80_0000,
    0x477f_ff00,
    0x4380_0000,
    0xc300_0000,
    0x4e80_0000,
    0xceff_ffff,
    0x5effffff, // 2^30, near 2^31/2^63
    0x3e2a_aaab,
    0x4040_0000,
    0xc040_0000,
    0x40c0_0000,
    0xc0c0_0000, // 1/6, ±3, ±6
];

const PALETTE: [f32; 8] = [0.0, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-45];

fn rand_f32(rng: &mut ChaCha8Rng, sp: f64) -> f32 {
    if sp < 0.0 {
        // Palette mode: ties, signed zeros and NaN payloads everywhere.
        if rng.gen_bool(0.1) {
            return f32::from_bits(0xff80_0001 | rng.gen_range(0..0x007f_ffffu32));
        }
        return PALETTE[rng.gen_range(0..PALETTE.len())];
    }
    if rng.gen_bool(sp) {
        return match rng.gen_range(0..10) {
            0 => f32::from_bits(rng.r#gen::<u32>()),
            1 => f32::from_bits(rng.gen_range(0..0x0080_0000u32) | (rng.gen_range(0..2u32) << 31)),
            2 => f32::from_bits(0x7f80_0001 | rng.gen_range(0..0x007f_ffffu32) | (rng.gen_range(0..2u32) << 31)),
            _ => f32::from_bits(F32_SPECIAL[rng.gen_range(0..F32_SPECIAL.len())]),
        };
    }
    match rng.gen_range(0..6) {
        0 => (rng.gen_range(-8i32..8) as f32) * 0.5,
        1 => {
            let e = rng.gen_range(-40i32..40);
            rng.gen_range(-1.0f32..1.0) * 2f32.powi(e)
        }
        _ => rng.gen_range(-3.0f32..3.0),
    }
}

fn int_range(d: DType) -> (i128, i128) {
    match d {
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::Bool => (0, 1),
        DType::F32 => unreachable!(),
    }
}

fn rand_int(rng: &mut ChaCha8Rng, d: DType, sp: f64) -> i128 {
    let (lo, hi) = int_range(d);
    if sp < 0.0 {
        let c = [lo, hi, 0, 1, -1];
        return c[rng.gen_range(0..c.len())].clamp(lo, hi);
    }
    if rng.gen_bool(sp) {
        let c = [lo, hi, 0, 1, -1, lo + 1, hi - 1, 2, 7, 8, 31, 32, 63, 64, 65, -2, 100];
        let v = c[rng.gen_range(0..c.len())];
        return v.clamp(lo, hi);
    }
    match rng.gen_range(0..3) {
        0 => rng.gen_range(lo..=hi),
        _ => rng.gen_range(-10i128..10).clamp(lo, hi),
    }
}

fn ints_tensor(d: DType, shape: &[u64], v: Vec<i128>) -> Tensor {
    let data = match d {
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I16 => TensorData::I16(v.iter().map(|&x| x as i16).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U64 => TensorData::U64(v.iter().map(|&x| x as u64).collect()),
        DType::U32 => TensorData::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U16 => TensorData::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0).collect()),
        DType::F32 => unreachable!(),
    };
    Tensor::new(shape.iter().map(|&d| d as usize).collect(), data).expect("tensor")
}

fn rand_tensor(rng: &mut ChaCha8Rng, d: DType, shape: &[u64], sp: f64) -> Tensor {
    let n: u64 = shape.iter().product();
    if d == DType::F32 {
        let v = (0..n).map(|_| rand_f32(rng, sp)).collect();
        return Tensor::from_f32(shape.iter().map(|&d| d as usize).collect(), v).expect("f32");
    }
    let v = (0..n).map(|_| rand_int(rng, d, sp)).collect();
    ints_tensor(d, shape, v)
}

fn sp(rng: &mut ChaCha8Rng) -> f64 {
    [0.0, 0.1, 0.3, 0.6, 0.9, -1.0, -1.0][rng.gen_range(0..7)]
}

fn vt(d: DType, s: &[u64]) -> ValueType {
    ValueType { dtype: d, shape: s.to_vec() }
}

fn rand_shape(rng: &mut ChaCha8Rng, max_rank: usize, max_dim: u64) -> Vec<u64> {
    loop {
        let r = rng.gen_range(0..=max_rank);
        let s: Vec<u64> = (0..r).map(|_| rng.gen_range(1..=max_dim)).collect();
        if s.iter().product::<u64>() <= 400 {
            return s;
        }
    }
}

fn sub_shape(rng: &mut ChaCha8Rng, out: &[u64]) -> Vec<u64> {
    let skip = rng.gen_range(0..=out.len());
    out[skip..].iter().map(|&d| if rng.gen_bool(0.35) { 1 } else { d }).collect()
}

fn shuffle<T>(rng: &mut ChaCha8Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.gen_range(0..=i);
        v.swap(i, j);
    }
}

const INT_DTYPES: [DType; 8] =
    [DType::I64, DType::I32, DType::I16, DType::I8, DType::U64, DType::U32, DType::U16, DType::U8];

// ---------------------------------------------------------------------------
// Program builder.

use common::Builder as B;

// ---------------------------------------------------------------------------
// The three evaluators.

fn fold_all(p: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let mut outs: Vec<Tensor> = Vec::new();
    for node in &p.nodes {
        let args: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|r| match *r {
                ValueRef::Input(k) => &inputs[k as usize],
                ValueRef::Const(k) => &p.constants[k as usize],
                ValueRef::Node(k) => &outs[k as usize],
            })
            .collect();
        let types: Vec<ValueType> = args.iter().map(|t| ValueType::of(t)).collect();
        let f = fold_for(&node.op, &types, &node.output).map_err(|e| format!("fold_for: {e}"))?;
        let n = node.output.numel() as usize;
        let mut data = TensorData::zeros(node.output.dtype, n);
        let mut rd = TensorReader { inputs: &args };
        for e in 0..n {
            data.set_scalar(e, eval_element(f.as_ref(), e as u64, &mut rd).map_err(|e| format!("fold eval: {e}"))?);
        }
        outs.push(Tensor::new(node.output.shape_usize(), data).map_err(|e| e.to_string())?);
    }
    Ok(outs)
}

struct Rec<'a> {
    inner: TensorReader<'a>,
    reads: Vec<(usize, u64, Scalar)>,
}
impl OperandReader for Rec<'_> {
    fn read(&mut self, slot: usize, index: u64) -> Result<Scalar, verinfer_prover::ProverError> {
        let v = self.inner.read(slot, index)?;
        self.reads.push((slot, index, v));
        Ok(v)
    }
}

fn node_args<'a>(p: &'a Program, inputs: &'a [Tensor], outs: &'a [Tensor], k: usize) -> Vec<&'a Tensor> {
    p.nodes[k]
        .inputs
        .iter()
        .map(|r| match *r {
            ValueRef::Input(i) => &inputs[i as usize],
            ValueRef::Const(i) => &p.constants[i as usize],
            ValueRef::Node(i) => &outs[i as usize],
        })
        .collect()
}

/// The operands element `e` of node `k` reads, through its fold.
fn element_reads(p: &Program, inputs: &[Tensor], outs: &[Tensor], k: usize, e: u64) -> Vec<(usize, u64, Scalar)> {
    let args = node_args(p, inputs, outs, k);
    let types: Vec<ValueType> = args.iter().map(|t| ValueType::of(t)).collect();
    let f = fold_for(&p.nodes[k].op, &types, &p.nodes[k].output).expect("fold");
    let mut rd = Rec { inner: TensorReader { inputs: &args }, reads: Vec::new() };
    let _ = eval_element(f.as_ref(), e, &mut rd);
    rd.reads
}

fn sbits(t: &Tensor, i: u64) -> u64 {
    t.scalar(i).expect("in range").bits
}

fn first_diff(a: &Tensor, b: &Tensor) -> Option<u64> {
    if a.len() != b.len() || a.dtype() != b.dtype() {
        return Some(u64::MAX);
    }
    (0..a.len() as u64).find(|&i| sbits(a, i) != sbits(b, i))
}

#[derive(Default)]
struct Stats {
    cases: BTreeMap<String, usize>,
    mismatches: BTreeMap<String, (usize, String)>,
    skipped: BTreeMap<String, usize>,
    dispute_checked: BTreeMap<String, usize>,
    fast_kernel: BTreeMap<String, usize>,
}

impl Stats {
    fn bad(&mut self, fam: &str, msg: String) {
        // One entry per family and kind (PLAN/FAST panic, FAST bits, FOLD, ...).
        let kind: String = msg.split(['[', ' ']).next().unwrap_or("").to_string();
        let kind = if msg.contains("PANICKED") { format!("{kind} panic") } else { kind };
        let e = self.mismatches.entry(format!("{fam} / {kind}")).or_insert((0, msg));
        e.0 += 1;
    }
}

fn hex(t: &Tensor, i: u64) -> String {
    let s = t.scalar(i).expect("in range");
    format!("{s:?}")
}

/// The message of a caught panic.
fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs one program through the three evaluators (and optionally the
/// dispute prover). Records the first mismatch.
fn run(st: &mut Stats, fam: &str, p: &Program, inputs: &[Tensor], rng: &mut ChaCha8Rng, dispute: bool) {
    *st.cases.entry(fam.to_string()).or_default() += 1;
    let fold = fold_all(p, inputs);
    let reference = execute_with(p, inputs, ExecOptions { node_roots: true, keep_all: true });
    let (fold, reference) = match (fold, reference) {
        (Err(_), Err(_)) => {
            *st.skipped.entry(fam.to_string()).or_default() += 1;
            return;
        }
        (Ok(_), Err(e)) => {
            st.bad(fam, format!("reference failed ({e}) but fold succeeded\n{p:?}"));
            return;
        }
        (Err(e), Ok(_)) => {
            st.bad(fam, format!("fold failed ({e}) but reference succeeded\n{p:?}"));
            return;
        }
        (Ok(f), Ok(r)) => (f, r),
    };
    // Harness self-check: VERINFER_AGREEMENT_SANITY=1 corrupts the fold's last output.
    let mut fold = fold;
    if std::env::var("VERINFER_AGREEMENT_SANITY").is_ok() {
        let k = fold.len() - 1;
        if !fold[k].is_empty() {
            let mut s = fold[k].scalar(0).expect("test case");
            s.bits ^= 1;
            fold[k].data_mut().set_scalar(0, s);
        }
    }
    let ref_nodes = reference.node_outputs.as_ref().expect("kept");
    for (k, (f, r)) in fold.iter().zip(ref_nodes).enumerate() {
        if let Some(e) = first_diff(f, r) {
            let reads = element_reads(p, inputs, &fold, k, e);
            st.bad(
                fam,
                format!(
                    "FOLD vs REFERENCE node {k} {:?} element {e}: fold {} ref {}\n  reads {reads:?}\n  program {p:?}",
                    p.nodes[k].op,
                    hex(f, e),
                    hex(r, e)
                ),
            );
            return;
        }
    }
    // Fast: every ISA, plain fused / plain unfused / traced.
    for isa in Isa::supported() {
        for fuse in [false, true] {
            let opts = PlanOptions { isa: Some(isa), fuse, program_root: Some(Hash32::ZERO), ..Default::default() };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Plan::with_options(p, &opts)));
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let msg = panic_text(e);
                    st.bad(
                        fam,
                        format!(
                            "PLAN[{isa:?} fuse={fuse}] PANICKED: {msg}\n  input shapes {:?}\n  program {p:?}",
                            inputs.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
                        ),
                    );
                    return;
                }
            };
            let mut plan = match r {
                Ok(pl) => pl,
                Err(e) => {
                    st.bad(fam, format!("[{isa:?} fuse={fuse}] plan failed: {e}\n{p:?}"));
                    return;
                }
            };
            if isa == Isa::Scalar && !fuse {
                let fb = &plan.stats().fallback_ops;
                let fast = p.nodes.iter().filter(|n| !fb.contains(&n.op.name())).count();
                *st.fast_kernel.entry(fam.to_string()).or_default() += usize::from(fast == p.nodes.len());
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(inputs)));
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let msg = panic_text(e);
                    st.bad(
                        fam,
                        format!(
                            "FAST[{isa:?} fuse={fuse}] PANICKED: {msg}\n  input shapes {:?}\n  program {p:?}",
                            inputs.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
                        ),
                    );
                    return;
                }
            };
            let ex = match r {
                Ok(x) => x,
                Err(e) => {
                    st.bad(fam, format!("[{isa:?} fuse={fuse}] fast run failed: {e} (fold/ref succeeded)\n{p:?}"));
                    return;
                }
            };
            for (o, (got, info)) in ex.outputs.iter().zip(&p.outputs).enumerate() {
                let k = info.node as usize;
                if let Some(e) = first_diff(got, &fold[k]) {
                    let reads = element_reads(p, inputs, &fold, k, e);
                    st.bad(
                        fam,
                        format!(
                            "FAST[{isa:?} fuse={fuse}] output {o} (node {k} {:?}) element {e}: fast {} fold {} ref {}\n  reads {reads:?}\n  program {p:?}",
                            p.nodes[k].op,
                            hex(got, e),
                            hex(&fold[k], e),
                            hex(&ref_nodes[k], e)
                        ),
                    );
                    return;
                }
            }
            if !fuse {
                let (tx, _) = match plan.run_traced(inputs) {
                    Ok(x) => x,
                    Err(e) => {
                        st.bad(fam, format!("[{isa:?}] traced run failed: {e}\n{p:?}"));
                        return;
                    }
                };
                let roots = tx.node_roots.expect("roots");
                for (k, r) in roots.iter().enumerate() {
                    if *r != fold[k].root() {
                        st.bad(
                            fam,
                            format!("TRACED[{isa:?}] node {k} {:?} root differs from fold\n{p:?}", p.nodes[k].op),
                        );
                        return;
                    }
                }
            }
        }
    }
    if dispute {
        dispute_check(st, fam, p, inputs, &fold, rng);
    }
}

/// The honest prover's states commitment (against the fold's value) and a
/// few one-step proofs of the last node verify.
fn dispute_check(st: &mut Stats, fam: &str, p: &Program, inputs: &[Tensor], fold: &[Tensor], rng: &mut ChaCha8Rng) {
    let k = p.nodes.len() - 1;
    let n = p.nodes[k].output.numel();
    if n == 0 {
        return;
    }
    let dp = match DisputeProver::new(p.clone(), inputs.to_vec(), None) {
        Ok(d) => d,
        Err(e) => return st.bad(fam, format!("DisputeProver::new: {e}")),
    };
    let claim = dp.claim().expect("claim");
    let commit = verify_commit(&claim, &dp.commit().expect("commit")).expect("valid commit");
    let leaf = dp.trace_tree().expect("trace").node(0, 1 + k as u64).expect("leaf");
    let ctx = match verify_node_reveal(&claim, &commit, 1 + k as u64, &leaf, &dp.node_reveal(k as u32).expect("reveal"))
    {
        Ok(c) => c,
        Err(e) => return st.bad(fam, format!("node reveal rejected: {e}\n{p:?}")),
    };
    let fl = ctx.fold().expect("fold");
    for _ in 0..3 {
        let e = rng.gen_range(0..n);
        let v = fold[k].scalar(e).expect("e");
        let sc = dp.states_commit(k as u32, e).expect("states commit");
        if let Err(err) = verify_states_commit(&ctx, e, &v, &sc) {
            return st.bad(fam, format!("states commit of element {e} rejected against the fold value: {err}\n{p:?}"));
        }
        let (states, tree) = dp.states(k as u32, e).expect("states");
        let kk = states.len() as u64 - 1;
        if kk == 0 || fl.steps(e) != kk {
            continue;
        }
        for j in [1, kk, rng.gen_range(1..=kk)] {
            let proof = dp.one_step(k as u32, e, j).expect("one step");
            let r =
                verify_one_step(&claim, &commit, &ctx, e, &tree.root(), kk, j, &tree.node(0, j).expect("leaf"), &proof);
            if r != Ok(StepVerdict::Correct) {
                return st
                    .bad(fam, format!("honest one-step proof (element {e}, step {j}) not accepted: {r:?}\n{p:?}"));
            }
        }
    }
    *st.dispute_checked.entry(fam.to_string()).or_default() += 1;
}

// ---------------------------------------------------------------------------
// Generators.

fn all_unary(rng: &mut ChaCha8Rng) -> Vec<UnaryOp> {
    let attr = |rng: &mut ChaCha8Rng| -> F32Bits {
        let c =
            [0.01f32, 0.1, 0.2, -1.0, 0.0, -0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -2.0, 1.0 / 3.0, 1.0 / 6.0, 0.3, 4.0, -3.0];
        if rng.gen_bool(0.1) {
            F32Bits(F32_SPECIAL[rng.gen_range(0..F32_SPECIAL.len())])
        } else if rng.gen_bool(0.2) {
            F32Bits::new(rng.gen_range(-4.0f32..4.0))
        } else {
            F32Bits::new(c[rng.gen_range(0..c.len())])
        }
    };
    let mut ops = UnaryOp::F32_PLAIN.to_vec();
    ops.extend([
        UnaryOp::PowConst(attr(rng)),
        UnaryOp::LeakyRelu(attr(rng)),
        UnaryOp::HardSwish,
        UnaryOp::HardSigmoid { alpha: attr(rng), beta: attr(rng) },
    ]);
    ops
}

fn unary_name(u: &UnaryOp) -> String {
    let s = format!("{u:?}");
    s.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string()
}

fn gen_unary(st: &mut Stats, rng: &mut ChaCha8Rng, reps: usize) {
    for rep in 0..reps {
        for u in all_unary(rng) {
            let shape = rand_shape(rng, 3, 9);
            let mut b = B::default();
            let x = b.value(rand_tensor(rng, DType::F32, &shape, [0.3, 0.7, 1.0][rep % 3]), rng.gen_bool(0.3));
            let v = b.node(Op::Unary(u), vec![x], vt(DType::F32, &shape)).expect("unary");
            let (p, ins) = b.finish(&[v]);
            run(st, &format!("Unary::{}", unary_name(&u)), &p, &ins, rng, rep < 3);
        }
        // Integer and bool variants.
        for d in INT_DTYPES.iter().copied().chain([DType::Bool]) {
            for u in [UnaryOp::Not, UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign] {
                let shape = rand_shape(rng, 2, 8);
                let mut b = B::default();
                let x = b.value(rand_tensor(rng, d, &shape, 0.4), false);
                let Ok(v) = b.node(Op::Unary(u), vec![x], vt(d, &shape)) else { continue };
                let (p, ins) = b.finish(&[v]);
                run(st, &format!("Unary::{}<int/bool>", unary_name(&u)), &p, &ins, rng, rep == 0);
            }
        }
    }
}

fn gen_binary(st: &mut Stats, rng: &mut ChaCha8Rng, reps: usize) {
    for rep in 0..reps {
        for op in BinaryOp::ALL {
            for d in [DType::F32].into_iter().chain(INT_DTYPES).chain([DType::Bool]) {
                // Floats get more cases.
                if d != DType::F32 && rep % 3 != 0 {
                    continue;
                }
                let out = rand_shape(rng, 4, 6);
                let (sa, sb) = (sub_shape(rng, &out), sub_shape(rng, &out));
                let full = ops::layout::broadcast_shapes(&sa, &sb).expect("compatible");
                let od = if op.is_comparison() { DType::Bool } else { d };
                let s = sp(rng);
                let mut b = B::default();
                let mut ta = rand_tensor(rng, d, &sa, s);
                let mut tb = rand_tensor(rng, d, &sb, s);
                if rng.gen_bool(0.2) && sa == sb {
                    // Same values on both sides (x - x, x == x).
                    tb = ta.clone();
                }
                if matches!(op, BinaryOp::ShiftLeft | BinaryOp::ShiftRight) && d != DType::F32 && rng.gen_bool(0.5) {
                    let n = tb.len();
                    tb = ints_tensor(d, &sb, (0..n).map(|_| rng.gen_range(0..70i128)).collect());
                }
                if rng.gen_bool(0.1) {
                    std::mem::swap(&mut ta, &mut tb);
                    let (x, y) = (b.value(ta, rng.gen_bool(0.3)), b.value(tb, rng.gen_bool(0.3)));
                    let Ok(v) = b.node(Op::Binary(op), vec![x, y], vt(od, &full)) else { continue };
                    let (p, ins) = b.finish(&[v]);
                    run(st, &format!("Binary::{op:?}<{d}>"), &p, &ins, rng, rep < 2);
                    continue;
                }
                let (x, y) = (b.value(ta, rng.gen_bool(0.3)), b.value(tb, rng.gen_bool(0.3)));
                let Ok(v) = b.node(Op::Binary(op), vec![x, y], vt(od, &full)) else { continue };
                let (p, ins) = b.finish(&[v]);
                run(st, &format!("Binary::{op:?}<{d}>"), &p, &ins, rng, rep < 2);
            }
        }
    }
}

fn gen_where_cast(st: &mut Stats, rng: &mut ChaCha8Rng, reps: usize) {
    let all = [DType::F32].into_iter().chain(INT_DTYPES).chain([DType::Bool]).collect::<Vec<_>>();
    for rep in 0..reps {
        for &d in &all {
            let out = rand_shape(rng, 4, 5);
            let (sc, sa, sb) = (sub_shape(rng, &out), sub_shape(rng, &out), sub_shape(rng, &out));
            let full = ops::layout::broadcast_shapes(&sc, &sa)
                .and_then(|s| ops::layout::broadcast_shapes(&s, &sb))
                .expect("test case");
            let mut b = B::default();
            let c = b.value(rand_tensor(rng, DType::Bool, &sc, 0.0), rng.gen_bool(0.3));
            let x = b.value(rand_tensor(rng, d, &sa, 0.5), rng.gen_bool(0.3));
            let y = b.value(rand_tensor(rng, d, &sb, 0.5), rng.gen_bool(0.3));
            let v = b.node(Op::Where, vec![c, x, y], vt(d, &full)).expect("where");
            let (p, ins) = b.finish(&[v]);
            run(st, &format!("Where<{d}>"), &p, &ins, rng, rep < 2);
            for &to in &all {
                let shape = rand_shape(rng, 3, 6);
                let mut b = B::default();
                let x = b.value(rand_tensor(rng, d, &shape, 0.6), false);
                let v = b.node(Op::Cast, vec![x], vt(to, &shape)).expect("cast");
                let (p, ins) = b.finish(&[v]);
                run(st, &format!("Cast<{d}->{to}>"), &p, &ins, rng, rep == 0);
            }
        }
    }
}

fn gen_reduce(st: &mut Stats, rng: &mut ChaCha8Rng, reps: usize) {
    for rep in 0..reps {
        for r in Reducer::ALL {
            for d in [DType::F32, DType::F32, DType::F32].into_iter().chain(INT_DTYPES).chain([DType::Bool]) {
                if d != DType::F32 && d != DType::Bool && rep % 2 == 1 {
                    continue;
                }
                let rank = rng.gen_range(1..5usize);
                let mut shape: Vec<u64> = (0..rank).map(|_| rng.gen_range(1..7)).collect();
                while shape.iter().product::<u64>() > 400 {
                    shape[0] = (shape[0] / 2).max(1);
                    let l = shape.len() - 1;
                    shape[l] = (shape[l] / 2).max(1);
                }
                if rng.gen_bool(0.05) {
                    let a = rng.gen_range(0..rank);
                    shape[a] = 0;
                }
                let mut axes: Vec<u32> = (0..rank as u32).filter(|_| rng.gen_bool(0.5)).collect();
                if axes.is_empty() && rng.gen_bool(0.8) {
                    axes.push(rng.gen_range(0..rank as u32));
                }
                let mut out = shape.clone();
                for &a in &axes {
                    out[a as usize] = 1;
                }
                let Some(od) = ops::reduce::reduce_out_dtype(r, d) else { continue };
                let mut b = B::default();
                let x = b.value(
                    {
                        let s_ = sp(rng);
                        rand_tensor(rng, d, &shape, s_)
                    },
                    false,
                );
                let Ok(v) = b.node(Op::Reduce { reducer: r, axes: axes.clone() }, vec![x], vt(od, &out)) else {
                    continue;
                };
                let (p, ins) = b.finish(&[v]);
                run(
                    st,
                    &format!("Reduce::{r:?}<{}>", if d == DType::F32 { "f32" } else { "int/bool" }),
                    &p,
                    &ins,
                    rng,
                    rep < 2,
                );
            }
        }
        // Softmax / LogSoftmax / RmsNorm.
        for kind in (0..3).cycle().take(15) {
            let rank = rng.gen_range(1..4usize);
            let shape: Vec<u64> = (0..rank).map(|_| if rng.gen_bool(0.04) { 0 } else { rng.gen_range(1..8) }).collect();
            let mut axes: Vec<u32> = (0..rank as u32).filter(|_| rng.gen_bool(0.5)).collect();
            if axes.is_empty() {
                axes.push(rng.gen_range(0..rank as u32));
            }
            let mut b = B::default();
            let mut t = {
                let s_ = sp(rng);
                rand_tensor(rng, DType::F32, &shape, s_)
            };
            if rng.gen_bool(0.1) {
                // All -inf rows.
                let n = t.len();
                t = Tensor::from_f32(t.shape().to_vec(), vec![f32::NEG_INFINITY; n]).expect("test case");
            }
            let x = b.value(t, false);
            let (op, fam) = match kind {
                0 => (Op::Softmax { axes, log: false }, "Softmax"),
                1 => (Op::Softmax { axes, log: true }, "LogSoftmax"),
                _ => {
                    let eps = [1e-5f32, 0.0, 1e-12, -0.0, 1.0, f32::MIN_POSITIVE, 1e-45][rng.gen_range(0..7)];
                    (Op::RmsNorm { axis: rng.gen_range(0..rank as u32), eps: F32Bits::new(eps) }, "RmsNorm")
                }
            };
            let v = b.node(op, vec![x], vt(DType::F32, &shape)).expect("norm");
            let (p, ins) = b.finish(&[v]);
            run(st, fam, &p, &ins, rng, rep < 4);
        }
    }
}

/// Random einsum (after prover/tests/kernels.rs, smaller).
fn rand_einsum(rng: &mut ChaCha8Rng) -> (EinSumSpec, Vec<u64>, Vec<u64>, Vec<u64>) {
    #[derive(Clone, Copy)]
    struct Ax {
        a: bool,
        b: bool,
        out: bool,
        dim: u64,
        a1: bool,
        b1: bool,
    }
    let n_axes = rng.gen_range(1..=5usize);
    let mut axes = Vec::new();
    for _ in 0..n_axes {
        let dim = if rng.gen_bool(0.03) {
            0
        } else if rng.gen_bool(0.2) {
            1
        } else {
            rng.gen_range(1..=9u64)
        };
        let mut ax = match rng.gen_range(0..10) {
            0 | 1 => Ax { a: true, b: false, out: true, dim, a1: false, b1: false },
            2 | 3 => Ax { a: false, b: true, out: true, dim, a1: false, b1: false },
            4 | 5 => Ax { a: true, b: true, out: false, dim, a1: false, b1: false },
            6 => Ax { a: true, b: true, out: true, dim: dim.min(4), a1: false, b1: false },
            7 => Ax { a: true, b: false, out: false, dim: dim.min(4), a1: false, b1: false },
            8 => Ax { a: false, b: true, out: false, dim: dim.min(4), a1: false, b1: false },
            _ => Ax { a: true, b: true, out: true, dim: dim.min(3), a1: false, b1: false },
        };
        if ax.a && ax.b && rng.gen_bool(0.2) {
            if rng.gen_bool(0.5) { ax.a1 = true } else { ax.b1 = true }
        }
        axes.push(ax);
    }
    let order = |rng: &mut ChaCha8Rng, sel: &dyn Fn(&Ax) -> bool| -> Vec<usize> {
        let mut v: Vec<usize> = (0..axes.len()).filter(|&i| sel(&axes[i])).collect();
        shuffle(rng, &mut v);
        v
    };
    let ao = order(rng, &|x| x.a);
    let bo = order(rng, &|x| x.b);
    let oo = order(rng, &|x| x.out);
    let pos = |o: &[usize], i: usize| o.iter().position(|&k| k == i).map(|p| p as u32);
    let mut free = Vec::new();
    let mut contracted = Vec::new();
    for (i, ax) in axes.iter().enumerate() {
        let e = EinAxis { a: pos(&ao, i), b: pos(&bo, i), out: pos(&oo, i), dim: ax.dim };
        if ax.out { free.push(e) } else { contracted.push(e) }
    }
    shuffle(rng, &mut contracted);
    let sa: Vec<u64> = ao.iter().map(|&i| if axes[i].a1 { 1 } else { axes[i].dim }).collect();
    let sb: Vec<u64> = bo.iter().map(|&i| if axes[i].b1 { 1 } else { axes[i].dim }).collect();
    let so: Vec<u64> = oo.iter().map(|&i| axes[i].dim).collect();
    (EinSumSpec { free, contracted }, sa, sb, so)
}

/// Element-wise epilogue chain (fusable ops, adversarial operands).
fn rand_chain(rng: &mut ChaCha8Rng, b: &mut B, mut v: ValueRef, shape: &[u64], s: f64) -> ValueRef {
    let len = rng.gen_range(1..6);
    for _ in 0..len {
        let kind = rng.gen_range(0..10);
        let nv = if kind < 6 {
            let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min]
                [rng.gen_range(0..6)];
            let oshape: Vec<u64> = match rng.gen_range(0..5) {
                0 => vec![],
                1 => vec![1],
                2 => shape.to_vec(),
                _ => sub_shape(rng, shape),
            };
            let t = if oshape.iter().product::<u64>() == 1 && rng.gen_bool(0.6) {
                // A scalar constant: ±0, NaN, inf, ... (MaxConst/MinConst forms).
                let c = [0.0f32, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 6.0, 1e-45, -1e-45, 1.0];
                let mut c = c[rng.gen_range(0..c.len())];
                if rng.gen_bool(0.1) {
                    c = f32::from_bits(0xffc0_0123);
                }
                Tensor::from_f32(oshape.iter().map(|&d| d as usize).collect(), vec![c]).expect("test case")
            } else {
                rand_tensor(rng, DType::F32, &oshape, s)
            };
            let other = b.value(t, rng.gen_bool(0.7));
            let ins = if rng.gen_bool(0.5) { vec![v, other] } else { vec![other, v] };
            b.node(Op::Binary(op), ins, vt(DType::F32, shape))
        } else {
            let us = all_unary(rng);
            let u = us[rng.gen_range(0..us.len())];
            b.node(Op::Unary(u), vec![v], vt(DType::F32, shape))
        };
        if let Ok(nv) = nv {
            v = nv;
        }
    }
    v
}

fn gen_einsum(st: &mut Stats, rng: &mut ChaCha8Rng, n: usize) {
    let mut done = 0;
    while done < n {
        let (spec, sa, sb, so) = rand_einsum(rng);
        let k: u64 = spec.contracted.iter().map(|a| a.dim).product();
        if so.iter().product::<u64>() > 300 || so.iter().product::<u64>() * k > 4000 {
            continue;
        }
        let s = sp(rng);
        let mut b = B::default();
        let x = b.value(rand_tensor(rng, DType::F32, &sa, s), rng.gen_bool(0.4));
        let y = b.value(rand_tensor(rng, DType::F32, &sb, s), rng.gen_bool(0.5));
        let Ok(e) = b.node(Op::EinSum(spec), vec![x, y], vt(DType::F32, &so)) else { continue };
        let chain = rng.gen_bool(0.4);
        let out = if chain { rand_chain(rng, &mut b, e, &so, s) } else { e };
        let (p, ins) = b.finish(&[out]);
        run(st, if chain { "EinSum+epilogue" } else { "EinSum" }, &p, &ins, rng, done % 10 == 0);
        done += 1;
    }
}

struct ConvCase {
    spec: ConvSpec,
    x: Vec<u64>,
    w: Vec<u64>,
    out: Vec<u64>,
    bias: Option<u64>,
}

fn rand_geo(rng: &mut ChaCha8Rng, sr: usize) -> (Geometry, Vec<u64>, Vec<u64>) {
    let layout =
        [DataLayout::Nchw, DataLayout::Nchw, DataLayout::Chw, DataLayout::Nhwc, DataLayout::Hwc][rng.gen_range(0..5)];
    let kernel: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..4)).collect();
    let strides: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..4)).collect();
    let dilations: Vec<u64> = (0..sr).map(|_| if rng.gen_bool(0.7) { 1 } else { rng.gen_range(2..4) }).collect();
    let pad_before: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..3)).collect();
    let pad_after: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..3)).collect();
    let spatial: Vec<u64> = (0..sr)
        .map(|i| {
            let lo = ((kernel[i] - 1) * dilations[i] + 1).saturating_sub(pad_before[i] + pad_after[i]).max(1);
            rng.gen_range(lo..lo + 7)
        })
        .collect();
    let out_sp: Vec<u64> = (0..sr)
        .map(|i| (spatial[i] + pad_before[i] + pad_after[i] - ((kernel[i] - 1) * dilations[i] + 1)) / strides[i] + 1)
        .collect();
    (Geometry { layout, kernel, strides, dilations, pad_before, pad_after }, spatial, out_sp)
}

fn shape_of(layout: DataLayout, nb: u64, c: u64, sp: &[u64]) -> Vec<u64> {
    let mut s = Vec::new();
    if layout.has_n() {
        s.push(nb);
    }
    if layout.channels_last() {
        s.extend_from_slice(sp);
        s.push(c);
    } else {
        s.push(c);
        s.extend_from_slice(sp);
    }
    s
}

fn rand_conv(rng: &mut ChaCha8Rng) -> ConvCase {
    let sr = [1, 2, 2, 2, 3][rng.gen_range(0..5)];
    let (geo, spatial, out_sp) = rand_geo(rng, sr);
    let depthwise = rng.gen_bool(0.3);
    let group = if depthwise { rng.gen_range(1..=4u64) } else { rng.gen_range(1..3u64) };
    let ci = if depthwise {
        group
    } else {
        {
            let lo = if rng.gen_bool(0.03) { 0 } else { 1 };
            group * rng.gen_range(lo..4u64)
        }
    };
    let co = group * rng.gen_range(1..4u64);
    let nb = rng.gen_range(1..3u64);
    let kernel_layout = [KernelLayout::Oihw, KernelLayout::Hwio, KernelLayout::Ohwi][rng.gen_range(0..3)];
    let k = geo.kernel.clone();
    let w: Vec<u64> = match kernel_layout {
        KernelLayout::Oihw => [vec![co, ci / group], k.clone()].concat(),
        KernelLayout::Hwio => [k.clone(), vec![ci / group, co]].concat(),
        KernelLayout::Ohwi => [vec![co], k.clone(), vec![ci / group]].concat(),
    };
    let bias = rng.gen_bool(0.6).then(|| if rng.gen_bool(0.2) { 1 } else { co });
    let layout = geo.layout;
    ConvCase {
        spec: ConvSpec { geo, kernel_layout, group, bias: bias.is_some() },
        x: shape_of(layout, nb, ci, &spatial),
        w,
        out: shape_of(layout, nb, co, &out_sp),
        bias,
    }
}

fn gen_conv(st: &mut Stats, rng: &mut ChaCha8Rng, n: usize) {
    let mut done = 0;
    while done < n {
        let c = rand_conv(rng);
        if c.out.iter().product::<u64>() > 400 || c.x.iter().product::<u64>() > 1500 {
            continue;
        }
        let s = sp(rng);
        let mut b = B::default();
        let x = b.value(rand_tensor(rng, DType::F32, &c.x, s), false);
        let w = b.value(rand_tensor(rng, DType::F32, &c.w, s / 3.0), rng.gen_bool(0.9));
        let mut ins = vec![x, w];
        if let Some(bl) = c.bias {
            ins.push(b.value(rand_tensor(rng, DType::F32, &[bl], s), rng.gen_bool(0.7)));
        }
        let Ok(v) = b.node(Op::Conv(c.spec.clone()), ins, vt(DType::F32, &c.out)) else { continue };
        let chain = rng.gen_bool(0.4);
        let out = if chain { rand_chain(rng, &mut b, v, &c.out, s) } else { v };
        let (p, inputs) = b.finish(&[out]);
        run(st, if chain { "Conv+epilogue" } else { "Conv" }, &p, &inputs, rng, done % 10 == 0);
        done += 1;
    }
}

fn gen_deconv(st: &mut Stats, rng: &mut ChaCha8Rng, n: usize) {
    let mut done = 0;
    while done < n {
        let sr = rng.gen_range(1..3usize);
        let (geo, spatial, _) = rand_geo(rng, sr);
        let out_sp: Vec<i64> = (0..sr)
            .map(|i| {
                (spatial[i] as i64 - 1) * geo.strides[i] as i64 + ((geo.kernel[i] - 1) * geo.dilations[i] + 1) as i64
                    - geo.pad_before[i] as i64
                    - geo.pad_after[i] as i64
            })
            .collect();
        if out_sp.iter().any(|&o| o < 1) {
            continue;
        }
        let out_sp: Vec<u64> = out_sp.iter().map(|&o| o as u64).collect();
        let group = rng.gen_range(1..3u64);
        let ci = group * rng.gen_range(1..3u64);
        let co = group * rng.gen_range(1..3u64);
        let kl = [KernelLayout::Oihw, KernelLayout::Hwio, KernelLayout::Ohwi][rng.gen_range(0..3)];
        let k = geo.kernel.clone();
        let w: Vec<u64> = match kl {
            KernelLayout::Oihw => [vec![co, ci / group], k.clone()].concat(),
            KernelLayout::Hwio => [k.clone(), vec![ci / group, co]].concat(),
            KernelLayout::Ohwi => [vec![co], k.clone(), vec![ci / group]].concat(),
        };
        let bias = rng.gen_bool(0.5);
        let layout = geo.layout;
        let xs = shape_of(layout, 1, ci, &spatial);
        let os = shape_of(layout, 1, co, &out_sp);
        if os.iter().product::<u64>() > 400 {
            continue;
        }
        let s = sp(rng);
        let mut b = B::default();
        let x = b.value(rand_tensor(rng, DType::F32, &xs, s), false);
        let wv = b.value(rand_tensor(rng, DType::F32, &w, s / 3.0), true);
        let mut ins = vec![x, wv];
        if bias {
            ins.push(b.value(rand_tensor(rng, DType::F32, &[co], s), true));
        }
        let spec = DeconvSpec { geo, kernel_layout: kl, group, bias };
        let Ok(v) = b.node(Op::Deconv(spec), ins, vt(DType::F32, &os)) else { continue };
        let (p, inputs) = b.finish(&[v]);
        run(st, "Deconv", &p, &inputs, rng, done % 5 == 0);
        done += 1;
    }
}

fn gen_pool(st: &mut Stats, rng: &mut ChaCha8Rng, n: usize) {
    let mut done = 0;
    while done < n {
        let sr = [1, 2, 2, 3][rng.gen_range(0..4)];
        let (geo, spatial, mut out_sp) = rand_geo(rng, sr);
        // Ceil mode: sometimes one more output position.
        let ceil = rng.gen_bool(0.2);
        if ceil {
            for o in out_sp.iter_mut() {
                *o += 1;
            }
        }
        let c = rng.gen_range(1..4u64);
        let nb = rng.gen_range(1..3u64);
        let xs = shape_of(geo.layout, nb, c, &spatial);
        let os = shape_of(geo.layout, nb, c, &out_sp);
        if os.iter().product::<u64>() > 400 || xs.iter().product::<u64>() > 1500 {
            continue;
        }
        let max = rng.gen_bool(0.5);
        let d = if max && rng.gen_bool(0.2) { INT_DTYPES[rng.gen_range(0..8)] } else { DType::F32 };
        let spec = PoolSpec { geo, normalize: rng.gen_bool(0.6), count_include_pad: rng.gen_bool(0.5) };
        let mut b = B::default();
        let x = b.value(
            {
                let s_ = sp(rng);
                rand_tensor(rng, d, &xs, s_)
            },
            false,
        );
        let op = if max { Op::MaxPool(spec) } else { Op::SumPool(spec) };
        let Ok(v) = b.node(op, vec![x], vt(d, &os)) else { continue };
        let (p, inputs) = b.finish(&[v]);
        let fam = format!(
            "{}{}{}",
            if max { "MaxPool" } else { "SumPool" },
            if d == DType::F32 { "" } else { "<int>" },
            if ceil { "(ceil)" } else { "" }
        );
        run(st, &fam, &p, &inputs, rng, done % 5 == 0);
        done += 1;
    }
}

fn rand_dtype(rng: &mut ChaCha8Rng) -> DType {
    if rng.gen_bool(0.6) { DType::F32 } else { DType::ALL[rng.gen_range(0..DType::ALL.len())] }
}

fn gen_movement(st: &mut Stats, rng: &mut ChaCha8Rng, reps: usize) {
    for rep in 0..reps {
        let dis = rep < 3;
        let d = rand_dtype(rng);
        let rank = rng.gen_range(1..5usize);
        let shape: Vec<u64> = (0..rank).map(|_| rng.gen_range(1..6)).collect();
        if shape.iter().product::<u64>() > 300 {
            continue;
        }
        let n: u64 = shape.iter().product();
        let x = rand_tensor(rng, d, &shape, 0.5);
        let xc = rng.gen_bool(0.3);
        let mk = |op: Op, ins: Vec<Tensor>, out: ValueType, c: bool| {
            let mut b = B::default();
            let refs: Vec<ValueRef> = ins.into_iter().map(|t| b.value(t, c)).collect();
            b.node(op, refs, out).map(|v| b.finish(&[v]))
        };
        let mut cases: Vec<(&str, Op, Vec<Tensor>, ValueType)> = Vec::new();
        // Reshape.
        cases.push(("Reshape", Op::Reshape, vec![x.clone()], vt(d, &[n])));
        // Transpose.
        let mut perm: Vec<u32> = (0..rank as u32).collect();
        shuffle(rng, &mut perm);
        let ts: Vec<u64> = perm.iter().map(|&p| shape[p as usize]).collect();
        cases.push(("Transpose", Op::Transpose { perm }, vec![x.clone()], vt(d, &ts)));
        // Broadcast.
        let big: Vec<u64> = shape.iter().map(|&s| if s == 1 { rng.gen_range(1..4) } else { s }).collect();
        let bshape = sub_shape(rng, &big);
        let bx = rand_tensor(rng, d, &bshape, 0.5);
        cases.push(("Broadcast", Op::Broadcast, vec![bx], vt(d, &big)));
        // Tile.
        let mult: Vec<u64> = (0..rank).map(|_| rng.gen_range(1..3)).collect();
        let tshape: Vec<u64> = shape.iter().zip(&mult).map(|(a, b)| a * b).collect();
        if tshape.iter().product::<u64>() <= 600 {
            cases.push(("Tile", Op::Tile { multiples: mult }, vec![x.clone()], vt(d, &tshape)));
        }
        // Slice.
        let a = rng.gen_range(0..rank);
        let start = rng.gen_range(0..=shape[a]);
        let end = rng.gen_range(start..=shape[a]);
        let mut ss = shape.clone();
        ss[a] = end - start;
        cases.push(("Slice", Op::Slice { axis: a as u32, start, end }, vec![x.clone()], vt(d, &ss)));
        // Downsample.
        let stride: i64 = [1i64, 2, 3, -1, -2][rng.gen_range(0..5)];
        let start = rng.gen_range(0..shape[a]);
        let cnt = if stride > 0 { (shape[a] - start).div_ceil(stride as u64) } else { start / (-stride) as u64 + 1 };
        let mut ds = shape.clone();
        ds[a] = cnt;
        cases.push(("Downsample", Op::Downsample { axis: a as u32, stride, start }, vec![x.clone()], vt(d, &ds)));
        // Concat.
        let k = rng.gen_range(1..4);
        let mut parts = vec![x.clone()];
        let mut cs = shape.clone();
        for _ in 1..k {
            let mut s2 = shape.clone();
            s2[a] = rng.gen_range(0..4);
            cs[a] += s2[a];
            parts.push(rand_tensor(rng, d, &s2, 0.5));
        }
        cases.push(("Concat", Op::Concat { axis: a as u32 }, parts, vt(d, &cs)));
        // Pad.
        for mode in 0..3 {
            let pads: Vec<(u64, u64)> = shape
                .iter()
                .map(|&s| {
                    if mode == 1 {
                        (rng.gen_range(0..s), rng.gen_range(0..s))
                    } else {
                        (rng.gen_range(0..3), rng.gen_range(0..3))
                    }
                })
                .collect();
            let ps: Vec<u64> = shape.iter().zip(&pads).map(|(s, p)| s + p.0 + p.1).collect();
            if ps.iter().product::<u64>() > 800 {
                continue;
            }
            let m = match mode {
                0 => {
                    let c = rand_tensor(rng, d, &[1], 0.7).scalar(0).expect("test case");
                    PadMode::Constant(c.bits)
                }
                1 => PadMode::Reflect,
                _ => PadMode::Edge,
            };
            cases.push(("Pad", Op::Pad { pads, mode: m }, vec![x.clone()], vt(d, &ps)));
        }
        // Gather.
        let idx_dt = [DType::I64, DType::I32, DType::I64, DType::U8, DType::I8, DType::U64][rng.gen_range(0..6)];
        let ir = rng.gen_range(0..3usize);
        let ishape: Vec<u64> = (0..ir).map(|_| rng.gen_range(1..4)).collect();
        let dim = shape[a] as i128;
        let signed = idx_dt.is_signed_int();
        let gen_idx = |rng: &mut ChaCha8Rng, dim: i128, cnt: u64| -> Vec<i128> {
            (0..cnt).map(|_| if signed { rng.gen_range(-dim..dim) } else { rng.gen_range(0..dim) }).collect()
        };
        let ni: u64 = ishape.iter().product();
        let it = ints_tensor(idx_dt, &ishape, gen_idx(rng, dim, ni));
        let gs: Vec<u64> = [&shape[..a], &ishape[..], &shape[a + 1..]].concat();
        cases.push(("Gather", Op::Gather { axis: a as u32 }, vec![x.clone(), it], vt(d, &gs)));
        // GatherElements.
        let mut es = shape.clone();
        es[a] = rng.gen_range(1..4);
        let ne: u64 = es.iter().product();
        let it = ints_tensor(idx_dt, &es, gen_idx(rng, dim, ne));
        cases.push(("GatherElements", Op::GatherElements { axis: a as u32 }, vec![x.clone(), it], vt(d, &es)));
        // GatherNd.
        let bd = rng.gen_range(0..rank);
        let kk = rng.gen_range(1..=rank - bd);
        let m = rng.gen_range(1..4u64);
        let mut is: Vec<u64> = shape[..bd].to_vec();
        is.push(m);
        is.push(kk as u64);
        let nb: u64 = shape[..bd].iter().product::<u64>() * m;
        let mut iv = Vec::new();
        for _ in 0..nb {
            for j in 0..kk {
                let dj = shape[bd + j] as i128;
                iv.push(if signed { rng.gen_range(-dj..dj) } else { rng.gen_range(0..dj) });
            }
        }
        let it = ints_tensor(idx_dt, &is, iv);
        let os: Vec<u64> = [&is[..is.len() - 1], &shape[bd + kk..]].concat();
        cases.push(("GatherNd", Op::GatherNd { batch_dims: bd as u32 }, vec![x.clone(), it], vt(d, &os)));
        for (fam, op, ins, out) in cases {
            match mk(op.clone(), ins, out.clone(), xc) {
                Ok((p, inputs)) => run(st, fam, &p, &inputs, rng, dis),
                Err(e) => st.bad(fam, format!("generator produced an invalid node ({e}): {op:?} -> {out:?}")),
            }
        }
        // Movement feeding a fast kernel (Gather f32 -> Reshape -> unary), as a multi-node check.
        if d == DType::F32 {
            let mut b = B::default();
            let xv = b.value(x.clone(), false);
            let it = ints_tensor(DType::I64, &[2], vec![0, -1]);
            let iv = b.value(it, rng.gen_bool(0.5));
            let gs: Vec<u64> = [&shape[..a], &[2u64][..], &shape[a + 1..]].concat();
            if let Ok(g) = b.node(Op::Gather { axis: a as u32 }, vec![xv, iv], vt(d, &gs)) {
                let nn: u64 = gs.iter().product();
                let r = b.node(Op::Reshape, vec![g], vt(d, &[nn])).expect("test case");
                let u = b.node(Op::Unary(UnaryOp::Round), vec![r], vt(d, &[nn])).expect("test case");
                let (p, inputs) = b.finish(&[u, g]);
                run(st, "Gather->Reshape->Round", &p, &inputs, rng, false);
            }
        }
    }
}

fn gen_resize(st: &mut Stats, rng: &mut ChaCha8Rng, n: usize) {
    let mut done = 0;
    while done < n {
        let rank = rng.gen_range(1..5usize);
        let shape: Vec<u64> = (0..rank).map(|_| rng.gen_range(1..6)).collect();
        let mut out = shape.clone();
        let mut scales = Vec::new();
        for a in 0..rank {
            let resized = rng.gen_bool(0.6);
            let s = if resized { [0.5f32, 2.0, 1.5, 3.0, 0.75, 1.0, 0.6, 2.5][rng.gen_range(0..8)] } else { 1.0 };
            let o = ((shape[a] as f32) * s).floor().max(1.0) as u64;
            out[a] = if rng.gen_bool(0.2) { rng.gen_range(1..8) } else { o };
            let sc = if rng.gen_bool(0.5) { s } else { out[a] as f32 / shape[a] as f32 };
            scales.push(F32Bits::new(sc));
        }
        if out.iter().product::<u64>() > 400 {
            continue;
        }
        let spec = ResizeSpec {
            mode: [ResizeMode::Nearest, ResizeMode::Linear][rng.gen_range(0..2)],
            coord: [
                ResizeCoord::HalfPixel,
                ResizeCoord::PytorchHalfPixel,
                ResizeCoord::AlignCorners,
                ResizeCoord::Asymmetric,
                ResizeCoord::HalfPixelSymmetric,
            ][rng.gen_range(0..5)],
            nearest: [
                ResizeNearest::RoundPreferFloor,
                ResizeNearest::RoundPreferCeil,
                ResizeNearest::Floor,
                ResizeNearest::Ceil,
            ][rng.gen_range(0..4)],
            scales,
        };
        let mut b = B::default();
        let x = b.value(
            {
                let s_ = sp(rng);
                rand_tensor(rng, DType::F32, &shape, s_)
            },
            false,
        );
        let fam = format!("Resize::{:?}", spec.mode);
        let Ok(v) = b.node(Op::Resize(spec), vec![x], vt(DType::F32, &out)) else { continue };
        let (p, inputs) = b.finish(&[v]);
        run(st, &fam, &p, &inputs, rng, done % 5 == 0);
        done += 1;
    }
}

#[test]
fn fold_reference_and_fast_agree_on_random_programs() {
    let mut st = Stats::default();
    let cases: usize = std::env::var("VERINFER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let scale = (cases / 60).max(1);
    let seed: u64 = std::env::var("VERINFER_AGREEMENT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xa0d1_7f01);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    gen_unary(&mut st, &mut rng, 12 * scale);
    gen_binary(&mut st, &mut rng, 9 * scale);
    gen_where_cast(&mut st, &mut rng, 3 * scale);
    gen_reduce(&mut st, &mut rng, 8 * scale);
    gen_einsum(&mut st, &mut rng, 400 * scale);
    gen_conv(&mut st, &mut rng, 300 * scale);
    gen_deconv(&mut st, &mut rng, 60 * scale);
    gen_pool(&mut st, &mut rng, 200 * scale);
    gen_movement(&mut st, &mut rng, 40 * scale);
    gen_resize(&mut st, &mut rng, 80 * scale);
    let total: usize = st.cases.values().sum();
    println!("ISAs: {:?}", Isa::supported());
    println!("{total} cases over {} families", st.cases.len());
    for (fam, n) in &st.cases {
        println!(
            "  {fam}: {n} cases, all-fast {} , skipped(both error) {}, dispute-checked {}",
            st.fast_kernel.get(fam).copied().unwrap_or(0),
            st.skipped.get(fam).copied().unwrap_or(0),
            st.dispute_checked.get(fam).copied().unwrap_or(0)
        );
    }
    for (fam, (count, msg)) in &st.mismatches {
        println!("\n=== MISMATCH {fam} ({count} cases) ===\n{msg}");
    }
    assert!(st.mismatches.is_empty(), "{} families with mismatches", st.mismatches.len());
}

/// Exhaustive sweeps over the special values: every f32 binary op on every
/// pair, every unary op with a sweep of attributes, casts of every special,
/// integer extremes, and every fusable epilogue op with every special
/// constant after an exact EinSum / Conv (acc = x).
#[test]
fn fold_reference_and_fast_agree_on_special_value_sweeps() {
    let mut st = Stats::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sv: Vec<f32> = F32_SPECIAL.iter().map(|&b| f32::from_bits(b)).collect();
    let n = sv.len();
    let col = Tensor::from_f32(vec![n, 1], sv.clone()).expect("test case");
    let row = Tensor::from_f32(vec![1, n], sv.clone()).expect("test case");
    for op in BinaryOp::ALL {
        let Some(od) = ops::elementwise::binary_out_dtype(op, DType::F32) else { continue };
        for c in [false, true] {
            let mut b = B::default();
            let x = b.value(col.clone(), c);
            let y = b.value(row.clone(), !c);
            let v = b.node(Op::Binary(op), vec![x, y], vt(od, &[n as u64, n as u64])).expect("test case");
            let (p, ins) = b.finish(&[v]);
            run(&mut st, &format!("Sweep Binary::{op:?}<f32>"), &p, &ins, &mut rng, false);
        }
        // Scalar right operand (the reference's `b.len() == 1` path).
        for &c in &sv {
            let mut b = B::default();
            let x = b.value(col.clone(), false);
            let y = b.value(Tensor::from_f32(vec![], vec![c]).expect("test case"), true);
            let v = b.node(Op::Binary(op), vec![x, y], vt(od, &[n as u64, 1])).expect("test case");
            let (p, ins) = b.finish(&[v]);
            run(&mut st, &format!("Sweep Binary::{op:?}<f32,scalar>"), &p, &ins, &mut rng, false);
        }
    }
    for d in INT_DTYPES {
        let (lo, hi) = int_range(d);
        let mut vals: Vec<i128> = vec![lo, lo + 1, -2, -1, 0, 1, 2, 7, 8, 31, 32, 63, 64, hi - 1, hi];
        vals.retain(|v| *v >= lo && *v <= hi);
        vals.dedup();
        let m = vals.len() as u64;
        let a = ints_tensor(d, &[m, 1], vals.clone());
        let bb = ints_tensor(d, &[1, m], vals.clone());
        for op in BinaryOp::ALL {
            let Some(od) = ops::elementwise::binary_out_dtype(op, d) else { continue };
            let mut b = B::default();
            let x = b.value(a.clone(), false);
            let y = b.value(bb.clone(), true);
            let v = b.node(Op::Binary(op), vec![x, y], vt(od, &[m, m])).expect("test case");
            let (p, ins) = b.finish(&[v]);
            run(&mut st, &format!("Sweep Binary::{op:?}<int>"), &p, &ins, &mut rng, false);
        }
        for to in DType::ALL {
            let mut b = B::default();
            let x = b.value(a.clone(), false);
            let v = b.node(Op::Cast, vec![x], vt(to, &[m, 1])).expect("test case");
            let (p, ins) = b.finish(&[v]);
            run(&mut st, &format!("Sweep Cast<int->{to}>"), &p, &ins, &mut rng, false);
        }
    }
    for to in DType::ALL {
        let mut b = B::default();
        let x = b.value(col.clone(), false);
        let v = b.node(Op::Cast, vec![x], vt(to, &[n as u64, 1])).expect("test case");
        let (p, ins) = b.finish(&[v]);
        run(&mut st, &format!("Sweep Cast<f32->{to}>"), &p, &ins, &mut rng, false);
    }
    // Unary with attribute sweeps; input: specials + 200 random values.
    let mut xs = sv.clone();
    xs.extend((0..200).map(|_| rand_f32(&mut rng, 0.2)));
    let xt = Tensor::from_f32(vec![xs.len()], xs.clone()).expect("test case");
    let mut attrs: Vec<F32Bits> = F32_SPECIAL.iter().map(|&b| F32Bits(b)).collect();
    for v in [0.01f32, 0.1, 0.2, 1.0 / 3.0, 1.0 / 6.0, 0.3, 4.0, -3.0, 0.25, -0.25, 2.0, -1.5, 5.0] {
        attrs.push(F32Bits::new(v));
    }
    let mut unary_ops: Vec<UnaryOp> = all_unary(&mut rng);
    for &a in &attrs {
        unary_ops.push(UnaryOp::PowConst(a));
        unary_ops.push(UnaryOp::LeakyRelu(a));
        for &bt in [F32Bits::new(0.5), F32Bits::new(0.0), F32Bits::new(-0.0), a].iter() {
            unary_ops.push(UnaryOp::HardSigmoid { alpha: a, beta: bt });
            unary_ops.push(UnaryOp::HardSigmoid { alpha: F32Bits::new(0.2), beta: a });
            let _ = bt;
        }
    }
    for u in &unary_ops {
        let mut b = B::default();
        let x = b.value(xt.clone(), false);
        let v = b.node(Op::Unary(*u), vec![x], vt(DType::F32, &[xs.len() as u64])).expect("test case");
        let (p, ins) = b.finish(&[v]);
        run(&mut st, &format!("Sweep Unary::{}", unary_name(u)), &p, &ins, &mut rng, false);
    }
    // Fused epilogues: acc = x exactly (EinSum x[n,1]·1[1,1], Conv 1x1 with w = 1),
    // then every fusable op with every special constant, both operand orders.
    let fusable_bin = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min];
    let fusable_un: Vec<UnaryOp> = unary_ops
        .iter()
        .copied()
        .filter(|u| {
            matches!(
                u,
                UnaryOp::Neg
                    | UnaryOp::Abs
                    | UnaryOp::Sign
                    | UnaryOp::Sqrt
                    | UnaryOp::Recip
                    | UnaryOp::Square
                    | UnaryOp::Floor
                    | UnaryOp::Ceil
                    | UnaryOp::Round
                    | UnaryOp::LeakyRelu(_)
                    | UnaryOp::HardSigmoid { .. }
                    | UnaryOp::HardSwish
            )
        })
        .collect();
    let nn = n as u64;
    for producer in 0..2 {
        let make = |b: &mut B| -> (ValueRef, Vec<u64>) {
            if producer == 0 {
                let x = b.value(col.clone(), false);
                let one = b.value(Tensor::from_f32(vec![1, 1], vec![1.0]).expect("test case"), true);
                let spec = EinSumSpec {
                    free: vec![
                        EinAxis { a: Some(0), b: None, out: Some(0), dim: nn },
                        EinAxis { a: None, b: Some(1), out: Some(1), dim: 1 },
                    ],
                    contracted: vec![EinAxis { a: Some(1), b: Some(0), out: None, dim: 1 }],
                };
                (b.node(Op::EinSum(spec), vec![x, one], vt(DType::F32, &[nn, 1])).expect("test case"), vec![nn, 1])
            } else {
                let x = b.value(Tensor::from_f32(vec![1, 1, 1, n], sv.clone()).expect("test case"), false);
                let w = b.value(Tensor::from_f32(vec![1, 1, 1, 1], vec![1.0]).expect("test case"), true);
                let geo = Geometry {
                    layout: DataLayout::Nchw,
                    kernel: vec![1, 1],
                    strides: vec![1, 1],
                    dilations: vec![1, 1],
                    pad_before: vec![0, 0],
                    pad_after: vec![0, 0],
                };
                let spec = ConvSpec { geo, kernel_layout: KernelLayout::Oihw, group: 1, bias: false };
                (
                    b.node(Op::Conv(spec), vec![x, w], vt(DType::F32, &[1, 1, 1, nn])).expect("test case"),
                    vec![1, 1, 1, nn],
                )
            }
        };
        let fam = if producer == 0 { "Sweep EinSum+epilogue" } else { "Sweep Conv+epilogue" };
        for op in fusable_bin {
            for &c in &sv {
                for (left, shape1) in [(true, false), (false, false), (true, true), (false, true)] {
                    let mut b = B::default();
                    let (v, shape) = make(&mut b);
                    let cs: Vec<usize> = if shape1 { vec![1] } else { vec![] };
                    let k = b.value(Tensor::from_f32(cs, vec![c]).expect("test case"), true);
                    let ins = if left { vec![v, k] } else { vec![k, v] };
                    let out = b.node(Op::Binary(op), ins, vt(DType::F32, &shape)).expect("test case");
                    // A second op so the chain is longer than one.
                    let out2 = b.node(Op::Unary(UnaryOp::Neg), vec![out], vt(DType::F32, &shape)).expect("test case");
                    let (p, ins) = b.finish(&[out2]);
                    run(&mut st, &format!("{fam} {op:?}"), &p, &ins, &mut rng, false);
                }
            }
        }
        for u in &fusable_un {
            let mut b = B::default();
            let (v, shape) = make(&mut b);
            let out = b.node(Op::Unary(*u), vec![v], vt(DType::F32, &shape)).expect("test case");
            let (p, ins) = b.finish(&[out]);
            run(&mut st, &format!("{fam} {}", unary_name(u)), &p, &ins, &mut rng, false);
        }
    }
    let total: usize = st.cases.values().sum();
    println!("sweeps: {total} cases over {} families", st.cases.len());
    for (fam, n) in &st.cases {
        println!("  {fam}: {n} cases, all-fast {}", st.fast_kernel.get(fam).copied().unwrap_or(0));
    }
    for (fam, (count, msg)) in &st.mismatches {
        println!("\n=== MISMATCH {fam} ({count} cases) ===\n{msg}");
    }
    assert!(st.mismatches.is_empty(), "{} families with mismatches", st.mismatches.len());
}
