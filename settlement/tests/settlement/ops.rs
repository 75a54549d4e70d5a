//! One-step proofs for every op of the canonical set: the honest proof is
//! accepted (and is at most 4 KiB), a proof with any single field altered is
//! rejected, and the proof is a committed golden fixture
//! (`fixtures/golden/proofs/<case>.hex`, regenerated with `VERINFER_BLESS=1`).
//!
//! Each case is a two-node program: node 0 reshapes request input 0 (so
//! slot 0 of the op is an earlier node's output, proven into the trace), and
//! node 1 is the op, reading slot 1 from request input 1 (proven into the
//! record's input root) and slot 2 from constant 0 (proven into the program).

use std::collections::BTreeSet;
use std::path::PathBuf;

use borsh::{BorshDeserialize, BorshSerialize};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_prover::dispute::{
    Claim, CommitInfo, DisputeProver, NodeContext, OneStep, RootEvidence, StepVerdict, verify_commit,
    verify_node_reveal, verify_one_step,
};
use verinfer_prover::program::*;
use verinfer_state::hash::Hash32;
use verinfer_state::tensor::{DType, Tensor, TensorData};

/// One op under test.
struct Case {
    name: String,
    op: Op,
    /// Slot 0 (a request input reshaped by node 0), slot 1 (request input 1),
    /// slot 2 (constant 0).
    args: Vec<Tensor>,
    out: ValueType,
}

fn rng_for(name: &str) -> ChaCha8Rng {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    ChaCha8Rng::seed_from_u64(seed)
}

fn f32s(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(shape.to_vec(), (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect()).expect("f32 tensor")
}

fn positive(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(shape.to_vec(), (0..n).map(|_| rng.gen_range(0.1f32..3.0)).collect()).expect("f32 tensor")
}

fn bools(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(shape.to_vec(), TensorData::Bool((0..n).map(|_| rng.gen_bool(0.5)).collect())).expect("bool tensor")
}

fn ints(dtype: DType, rng: &mut ChaCha8Rng, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<i64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    let data = match dtype {
        DType::I64 => TensorData::I64(v),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I16 => TensorData::I16(v.iter().map(|&x| x as i16).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U64 => TensorData::U64(v.iter().map(|&x| x as u64).collect()),
        DType::U32 => TensorData::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U16 => TensorData::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        other => panic!("not an integer dtype: {other}"),
    };
    Tensor::new(shape.to_vec(), data).expect("int tensor")
}

fn vt(dtype: DType, shape: &[u64]) -> ValueType {
    ValueType { dtype, shape: shape.to_vec() }
}

/// Every unary op (attributed ones with one value each).
fn all_unary() -> Vec<UnaryOp> {
    UnaryOp::F32_PLAIN
        .into_iter()
        .chain([
            UnaryOp::Not,
            UnaryOp::PowConst(F32Bits(0x4040_0000)),
            UnaryOp::LeakyRelu(F32Bits(0x3c23_d70a)),
            UnaryOp::HardSwish,
            UnaryOp::HardSigmoid { alpha: F32Bits(0x3e4c_cccd), beta: F32Bits(0x3f00_0000) },
        ])
        .collect()
}

/// The op's family name. An exhaustive match: a new op does not compile
/// until it is named here (and then the coverage test asks for a case).
fn family(op: &Op) -> String {
    match op {
        Op::Reshape => "Reshape".into(),
        Op::Transpose { .. } => "Transpose".into(),
        Op::Unary(u) => format!("Unary::{}", unary_name(*u)),
        Op::Binary(b) => format!("Binary::{b:?}"),
        Op::Where => "Where".into(),
        Op::Cast => "Cast".into(),
        Op::EinSum(_) => "EinSum".into(),
        Op::Conv(_) => "Conv".into(),
        Op::Deconv(_) => "Deconv".into(),
        Op::MaxPool(_) => "MaxPool".into(),
        Op::SumPool(_) => "SumPool".into(),
        Op::Reduce { reducer, .. } => format!("Reduce::{reducer:?}"),
        Op::Softmax { log, .. } => format!("Softmax(log={log})"),
        Op::RmsNorm { .. } => "RmsNorm".into(),
        Op::Broadcast => "Broadcast".into(),
        Op::Tile { .. } => "Tile".into(),
        Op::Slice { .. } => "Slice".into(),
        Op::Downsample { .. } => "Downsample".into(),
        Op::Concat { .. } => "Concat".into(),
        Op::Pad { mode, .. } => format!(
            "Pad::{}",
            match mode {
                PadMode::Constant(_) => "Constant",
                PadMode::Reflect => "Reflect",
                PadMode::Edge => "Edge",
            }
        ),
        Op::Gather { .. } => "Gather".into(),
        Op::GatherElements { .. } => "GatherElements".into(),
        Op::GatherNd { .. } => "GatherNd".into(),
        Op::Resize(spec) => format!("Resize::{:?}", spec.mode),
    }
}

fn unary_name(u: UnaryOp) -> &'static str {
    match u {
        UnaryOp::Neg => "Neg",
        UnaryOp::Abs => "Abs",
        UnaryOp::Sign => "Sign",
        UnaryOp::Exp => "Exp",
        UnaryOp::Ln => "Ln",
        UnaryOp::Sqrt => "Sqrt",
        UnaryOp::Rsqrt => "Rsqrt",
        UnaryOp::Recip => "Recip",
        UnaryOp::Square => "Square",
        UnaryOp::Tanh => "Tanh",
        UnaryOp::Sigmoid => "Sigmoid",
        UnaryOp::Erf => "Erf",
        UnaryOp::GeluExact => "GeluExact",
        UnaryOp::GeluTanh => "GeluTanh",
        UnaryOp::Silu => "Silu",
        UnaryOp::Softplus => "Softplus",
        UnaryOp::Sin => "Sin",
        UnaryOp::Cos => "Cos",
        UnaryOp::Atan => "Atan",
        UnaryOp::Floor => "Floor",
        UnaryOp::Ceil => "Ceil",
        UnaryOp::Round => "Round",
        UnaryOp::Not => "Not",
        UnaryOp::PowConst(_) => "PowConst",
        UnaryOp::LeakyRelu(_) => "LeakyRelu",
        UnaryOp::HardSwish => "HardSwish",
        UnaryOp::HardSigmoid { .. } => "HardSigmoid",
    }
}

fn file_name(family: &str, suffix: &str) -> String {
    let base: String =
        family.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let base = base.split('_').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("_");
    if suffix.is_empty() { base } else { format!("{base}_{suffix}") }
}

fn case(op: Op, args: Vec<Tensor>, out: ValueType, suffix: &str) -> Case {
    Case { name: file_name(&family(&op), suffix), op, args, out }
}

fn geo2(kernel: u64, stride: u64, pad: u64) -> Geometry {
    Geometry {
        layout: DataLayout::Nchw,
        kernel: vec![kernel, kernel],
        strides: vec![stride, stride],
        dilations: vec![1, 1],
        pad_before: vec![pad, pad],
        pad_after: vec![pad, pad],
    }
}

fn all_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let s = [4usize, 24];
    let su = [4u64, 24];
    // Unary, f32 (all but Not), and the integer and bool variants.
    for u in all_unary() {
        let name = unary_name(u);
        let mut rng = rng_for(name);
        if u == UnaryOp::Not {
            out.push(case(Op::Unary(u), vec![bools(&mut rng, &s)], vt(DType::Bool, &su), "bool"));
            out.push(case(Op::Unary(u), vec![ints(DType::U8, &mut rng, &s, 0, 256)], vt(DType::U8, &su), "u8"));
            continue;
        }
        let x = if matches!(u, UnaryOp::Ln | UnaryOp::Sqrt | UnaryOp::Rsqrt) {
            positive(&mut rng, &s)
        } else {
            f32s(&mut rng, &s)
        };
        out.push(case(Op::Unary(u), vec![x], vt(DType::F32, &su), ""));
        if matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign) {
            out.push(case(Op::Unary(u), vec![ints(DType::I32, &mut rng, &s, -1000, 1000)], vt(DType::I32, &su), "i32"));
        }
    }
    // Binary: f32 arithmetic and comparisons with broadcasting ([4,24] op [24]),
    // bool logic, integer bit ops and shifts.
    for b in BinaryOp::ALL {
        let mut rng = rng_for(&format!("{b:?}"));
        let (a, c, dt) = match b {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => (bools(&mut rng, &s), bools(&mut rng, &[24]), DType::Bool),
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => (
                ints(DType::I32, &mut rng, &s, -5000, 5000),
                ints(DType::I32, &mut rng, &[24], -5000, 5000),
                DType::I32,
            ),
            BinaryOp::ShiftLeft | BinaryOp::ShiftRight => {
                (ints(DType::U32, &mut rng, &s, 0, 1 << 20), ints(DType::U32, &mut rng, &[24], 0, 12), DType::U32)
            }
            BinaryOp::Pow => (positive(&mut rng, &s), f32s(&mut rng, &[24]), DType::F32),
            _ => (f32s(&mut rng, &s), f32s(&mut rng, &[24]), DType::F32),
        };
        let out_dt = if b.is_comparison() { DType::Bool } else { dt };
        out.push(case(Op::Binary(b), vec![a.clone(), c.clone()], vt(out_dt, &su), ""));
        if matches!(b, BinaryOp::Add | BinaryOp::Div | BinaryOp::Rem | BinaryOp::Max) {
            let mut rng = rng_for(&format!("{b:?}/i64"));
            let a = ints(DType::I64, &mut rng, &s, -1000, 1000);
            let c = ints(DType::I64, &mut rng, &[24], -9, 9);
            out.push(case(Op::Binary(b), vec![a, c], vt(DType::I64, &su), "i64"));
        }
    }
    let mut rng = rng_for("where");
    out.push(case(
        Op::Where,
        vec![bools(&mut rng, &s), f32s(&mut rng, &s), f32s(&mut rng, &[24])],
        vt(DType::F32, &su),
        "",
    ));
    let mut rng = rng_for("cast");
    out.push(case(Op::Cast, vec![f32s(&mut rng, &s)], vt(DType::I32, &su), "f32_i32"));
    out.push(case(Op::Cast, vec![ints(DType::I64, &mut rng, &s, -300, 300)], vt(DType::F32, &su), "i64_f32"));

    // Contractions and windows.
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let mut rng = rng_for("einsum");
    let spec = EinSumSpec {
        free: vec![ax(Some(0), None, Some(0), 4), ax(None, Some(1), Some(1), 8)],
        contracted: vec![ax(Some(1), Some(0), None, 24)],
    };
    out.push(case(Op::EinSum(spec), vec![f32s(&mut rng, &s), f32s(&mut rng, &[24, 8])], vt(DType::F32, &[4, 8]), ""));
    let mut rng = rng_for("conv");
    let conv = ConvSpec { geo: geo2(3, 1, 1), kernel_layout: KernelLayout::Oihw, group: 1, bias: true };
    out.push(case(
        Op::Conv(conv),
        vec![f32s(&mut rng, &[1, 2, 6, 6]), f32s(&mut rng, &[3, 2, 3, 3]), f32s(&mut rng, &[3])],
        vt(DType::F32, &[1, 3, 6, 6]),
        "",
    ));
    let mut rng = rng_for("conv_dw");
    let conv = ConvSpec { geo: geo2(3, 2, 1), kernel_layout: KernelLayout::Oihw, group: 2, bias: false };
    out.push(case(
        Op::Conv(conv),
        vec![f32s(&mut rng, &[1, 2, 6, 6]), f32s(&mut rng, &[2, 1, 3, 3])],
        vt(DType::F32, &[1, 2, 3, 3]),
        "depthwise",
    ));
    let mut rng = rng_for("deconv");
    let deconv = DeconvSpec {
        geo: Geometry {
            layout: DataLayout::Nchw,
            kernel: vec![3],
            strides: vec![2],
            dilations: vec![1],
            pad_before: vec![1],
            pad_after: vec![1],
        },
        kernel_layout: KernelLayout::Oihw,
        group: 1,
        bias: true,
    };
    out.push(case(
        Op::Deconv(deconv),
        vec![f32s(&mut rng, &[1, 2, 5]), f32s(&mut rng, &[3, 2, 3]), f32s(&mut rng, &[3])],
        vt(DType::F32, &[1, 3, 9]),
        "",
    ));
    let mut rng = rng_for("pool");
    let x = f32s(&mut rng, &[1, 2, 6, 6]);
    out.push(case(
        Op::MaxPool(PoolSpec { geo: geo2(3, 2, 1), normalize: false, count_include_pad: false }),
        vec![x.clone()],
        vt(DType::F32, &[1, 2, 3, 3]),
        "",
    ));
    out.push(case(
        Op::SumPool(PoolSpec { geo: geo2(3, 2, 1), normalize: true, count_include_pad: false }),
        vec![x.clone()],
        vt(DType::F32, &[1, 2, 3, 3]),
        "avg",
    ));

    // Reductions and normalisations.
    for r in Reducer::ALL {
        let mut rng = rng_for(&format!("{r:?}"));
        let (x, dt, suffix) = match r {
            Reducer::All | Reducer::Any => (bools(&mut rng, &s), DType::Bool, ""),
            Reducer::ArgMax { last } | Reducer::ArgMin { last } => {
                (f32s(&mut rng, &s), DType::I64, if last { "last" } else { "first" })
            }
            _ => (f32s(&mut rng, &s), DType::F32, ""),
        };
        out.push(case(Op::Reduce { reducer: r, axes: vec![1] }, vec![x], vt(dt, &[4, 1]), suffix));
    }
    let mut rng = rng_for("sum2");
    out.push(case(
        Op::Reduce { reducer: Reducer::Sum, axes: vec![0, 1] },
        vec![f32s(&mut rng, &s)],
        vt(DType::F32, &[1, 1]),
        "all_axes",
    ));
    for log in [false, true] {
        let mut rng = rng_for(&format!("softmax{log}"));
        out.push(case(Op::Softmax { axes: vec![1], log }, vec![f32s(&mut rng, &s)], vt(DType::F32, &su), ""));
    }
    let mut rng = rng_for("rms");
    out.push(case(Op::RmsNorm { axis: 1, eps: F32Bits::new(1e-5) }, vec![f32s(&mut rng, &s)], vt(DType::F32, &su), ""));

    // Movement.
    let mut rng = rng_for("movement");
    let x = f32s(&mut rng, &s);
    out.push(case(Op::Reshape, vec![x.clone()], vt(DType::F32, &[8, 12]), ""));
    out.push(case(Op::Transpose { perm: vec![1, 0] }, vec![x.clone()], vt(DType::F32, &[24, 4]), ""));
    out.push(case(Op::Broadcast, vec![f32s(&mut rng, &[1, 24])], vt(DType::F32, &su), ""));
    out.push(case(Op::Tile { multiples: vec![1, 2] }, vec![x.clone()], vt(DType::F32, &[4, 48]), ""));
    out.push(case(Op::Slice { axis: 1, start: 3, end: 20 }, vec![x.clone()], vt(DType::F32, &[4, 17]), ""));
    out.push(case(Op::Downsample { axis: 1, stride: -2, start: 23 }, vec![x.clone()], vt(DType::F32, &[4, 12]), ""));
    out.push(case(Op::Concat { axis: 0 }, vec![x.clone(), f32s(&mut rng, &[2, 24])], vt(DType::F32, &[6, 24]), ""));
    for mode in [PadMode::Constant(u64::from(0.5f32.to_bits())), PadMode::Reflect, PadMode::Edge] {
        out.push(case(Op::Pad { pads: vec![(1, 1), (2, 3)], mode }, vec![x.clone()], vt(DType::F32, &[6, 29]), ""));
    }
    let idx = Tensor::new(vec![2, 3], TensorData::I64(vec![0, -1, 5, 23, 7, 2])).expect("idx");
    out.push(case(Op::Gather { axis: 1 }, vec![x.clone(), idx], vt(DType::F32, &[4, 2, 3]), ""));
    let idx = ints(DType::I64, &mut rng, &[4, 5], -24, 24);
    out.push(case(Op::GatherElements { axis: 1 }, vec![x.clone(), idx], vt(DType::F32, &[4, 5]), ""));
    let idx = Tensor::new(vec![3, 2], TensorData::I64(vec![0, 5, 3, -1, 2, 17])).expect("idx");
    out.push(case(Op::GatherNd { batch_dims: 0 }, vec![x.clone(), idx], vt(DType::F32, &[3]), ""));
    let mut rng = rng_for("resize");
    let img = f32s(&mut rng, &[1, 1, 4, 6]);
    let scales: Vec<F32Bits> = [1.0f32, 1.0, 2.0, 2.0].iter().map(|&v| F32Bits::new(v)).collect();
    let nearest = ResizeSpec {
        mode: ResizeMode::Nearest,
        coord: ResizeCoord::Asymmetric,
        nearest: ResizeNearest::Floor,
        scales: scales.clone(),
    };
    out.push(case(Op::Resize(nearest), vec![img.clone()], vt(DType::F32, &[1, 1, 8, 12]), ""));
    let linear = ResizeSpec {
        mode: ResizeMode::Linear,
        coord: ResizeCoord::HalfPixel,
        nearest: ResizeNearest::RoundPreferFloor,
        scales,
    };
    out.push(case(Op::Resize(linear), vec![img], vt(DType::F32, &[1, 1, 8, 12]), ""));
    out
}

/// The two-node program of a case and its request inputs.
fn program_of(c: &Case) -> (Program, Vec<Tensor>) {
    let info = |i: usize, t: &Tensor| TensorInfo { name: format!("in{i}"), dtype: t.dtype(), shape: t.shape_u64() };
    let mut inputs = vec![c.args[0].clone()];
    let mut refs = vec![ValueRef::Node(0)];
    if let Some(t) = c.args.get(1) {
        inputs.push(t.clone());
        refs.push(ValueRef::Input(1));
    }
    let constants: Vec<Tensor> = c.args.get(2).cloned().into_iter().collect();
    if !constants.is_empty() {
        refs.push(ValueRef::Const(0));
    }
    let p = Program {
        version: PROGRAM_VERSION,
        inputs: inputs.iter().enumerate().map(|(i, t)| info(i, t)).collect(),
        outputs: vec![OutputInfo { name: "y".into(), node: 1 }],
        nodes: vec![
            Node {
                name: "input".into(),
                op: Op::Reshape,
                inputs: vec![ValueRef::Input(0)],
                output: ValueType::of(&c.args[0]),
            },
            Node { name: c.name.clone(), op: c.op.clone(), inputs: refs, output: c.out.clone() },
        ],
        constants,
    };
    p.validate().unwrap_or_else(|e| panic!("{}: {e}", c.name));
    (p, inputs)
}

/// Everything `verify_one_step` needs: the golden fixture's content.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
struct StepCase {
    claim: Claim,
    commit: CommitInfo,
    ctx: NodeContext,
    element: u64,
    states_root: Hash32,
    k_steps: u64,
    j: u64,
    leaf: Hash32,
    proof: OneStep,
}

impl StepCase {
    fn verify(&self, p: &OneStep) -> Result<StepVerdict, verinfer_prover::dispute::DisputeError> {
        verify_one_step(
            &self.claim,
            &self.commit,
            &self.ctx,
            self.element,
            &self.states_root,
            self.k_steps,
            self.j,
            &self.leaf,
            p,
        )
    }
}

/// Builds the honest one-step proof of the case's op node, at the (element,
/// step) that reads the most distinct slots (then the most operands).
fn step_case(c: &Case) -> StepCase {
    let (program, inputs) = program_of(c);
    let p = DisputeProver::new(program, inputs, None).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let claim = p.claim().expect("claim");
    let commit = verify_commit(&claim, &p.commit().expect("commit")).expect("valid commit");
    let leaf = p.trace_tree().expect("trace").node(0, 2).expect("leaf");
    let ctx = verify_node_reveal(&claim, &commit, 2, &leaf, &p.node_reveal(1).expect("reveal")).expect("valid reveal");
    let fold = ctx.fold().expect("fold");
    let n = c.out.numel();
    assert!(n > 0, "{}: empty output", c.name);
    let mut candidates: Vec<(u64, u64)> = Vec::new();
    let mut elements = vec![n / 2, n - 1, 0, n / 3, (2 * n) / 3];
    elements.extend((0..17).map(|i| ((n * i) / 17 + 2 * i + 1) % n));
    for e in elements {
        let k = fold.steps(e);
        for j in [k, 1, k.div_ceil(2), k.saturating_sub(1), 2] {
            if (1..=k).contains(&j) && !candidates.contains(&(e, j)) {
                candidates.push((e, j));
            }
        }
    }
    let mut best: Option<((usize, usize), StepCase)> = None;
    for (e, j) in candidates {
        let (states, tree) = p.states(1, e).expect("states");
        let proof = p.one_step(1, e, j).expect("proof");
        let slots: BTreeSet<u32> = proof.operands.iter().map(|o| o.slot).collect();
        let score = (slots.len(), proof.operands.len());
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            let sc = StepCase {
                claim,
                commit: commit.clone(),
                ctx: ctx.clone(),
                element: e,
                states_root: tree.root(),
                k_steps: states.len() as u64 - 1,
                j,
                leaf: tree.node(0, j).expect("leaf"),
                proof,
            };
            best = Some((score, sc));
        }
    }
    best.expect("a candidate").1
}

/// Every single-field alteration of `p`, named.
fn mutations(p: &OneStep) -> Vec<(String, OneStep)> {
    let mut out: Vec<(String, OneStep)> = Vec::new();
    let mut m = |name: String, f: &dyn Fn(&mut OneStep)| {
        let mut q = p.clone();
        f(&mut q);
        assert_ne!(&q, p, "{name} changes nothing");
        out.push((name, q));
    };
    m("s_prev word 0".into(), &|q| q.s_prev.0[0] ^= 1);
    m("s_prev word 1".into(), &|q| q.s_prev.0[1] ^= 1 << 40);
    m("s_next word 0".into(), &|q| q.s_next.0[0] ^= 1);
    m("s_next word 1".into(), &|q| q.s_next.0[1] ^= 1);
    m("s_prev proof index".into(), &|q| q.s_prev_proof.index ^= 1);
    m("s_prev proof leaf count".into(), &|q| q.s_prev_proof.leaf_count += 1);
    m("s_prev proof path".into(), &|q| mutate_path(&mut q.s_prev_proof.path));
    m("operand appended".into(), &|q| {
        let extra = q.operands.last().cloned();
        if let Some(o) = extra {
            q.operands.push(o);
        } else {
            q.operands.push(bogus_operand());
        }
    });
    for i in 0..p.operands.len() {
        m(format!("operand {i} removed"), &|q| {
            q.operands.remove(i);
        });
        m(format!("operand {i} value"), &|q| q.operands[i].value.bits ^= 1);
        m(format!("operand {i} dtype"), &|q| {
            q.operands[i].value.dtype = if q.operands[i].value.dtype == DType::F32 { DType::I32 } else { DType::F32 }
        });
        m(format!("operand {i} index"), &|q| q.operands[i].index += 1);
        m(format!("operand {i} slot"), &|q| q.operands[i].slot += 1);
        m(format!("operand {i} chunk byte"), &|q| {
            let c = &mut q.operands[i].opening.chunk;
            let last = c.len() - 1;
            c[last] ^= 0x80;
        });
        m(format!("operand {i} chunk length"), &|q| q.operands[i].opening.chunk.push(0));
        m(format!("operand {i} opening index"), &|q| q.operands[i].opening.proof.index += 1);
        m(format!("operand {i} opening leaf count"), &|q| q.operands[i].opening.proof.leaf_count += 1);
        m(format!("operand {i} opening path"), &|q| mutate_path(&mut q.operands[i].opening.proof.path));
        match &p.operands[i].root {
            RootEvidence::Trace { .. } | RootEvidence::Input { .. } => {
                m(format!("operand {i} root"), &|q| match &mut q.operands[i].root {
                    RootEvidence::Trace { root, .. } | RootEvidence::Input { root, .. } => root.0[0] ^= 1,
                    RootEvidence::Const => {}
                });
                m(format!("operand {i} root proof index"), &|q| match &mut q.operands[i].root {
                    RootEvidence::Trace { proof, .. } | RootEvidence::Input { proof, .. } => proof.index += 1,
                    RootEvidence::Const => {}
                });
                m(format!("operand {i} root proof leaf count"), &|q| match &mut q.operands[i].root {
                    RootEvidence::Trace { proof, .. } | RootEvidence::Input { proof, .. } => proof.leaf_count += 1,
                    RootEvidence::Const => {}
                });
                m(format!("operand {i} root proof path"), &|q| match &mut q.operands[i].root {
                    RootEvidence::Trace { proof, .. } | RootEvidence::Input { proof, .. } => {
                        mutate_path(&mut proof.path)
                    }
                    RootEvidence::Const => {}
                });
                m(format!("operand {i} root evidence kind"), &|q| q.operands[i].root = RootEvidence::Const);
            }
            RootEvidence::Const => {
                let o = p.operands[i].clone();
                m(format!("operand {i} root evidence kind"), &|q| {
                    q.operands[i].root = RootEvidence::Trace { root: Hash32([7; 32]), proof: o.opening.proof.clone() }
                });
            }
        }
    }
    if p.operands.len() >= 2 && (p.operands[0].slot, p.operands[0].index) != (p.operands[1].slot, p.operands[1].index) {
        m("operands 0 and 1 swapped".into(), &|q| q.operands.swap(0, 1));
    }
    out
}

fn mutate_path(path: &mut Vec<Hash32>) {
    match path.first_mut() {
        Some(h) => h.0[31] ^= 1,
        None => path.push(Hash32([1; 32])),
    }
}

fn bogus_operand() -> verinfer_prover::dispute::OperandOpening {
    use verinfer_state::merkle::MerkleProof;
    use verinfer_state::tensor::{ElementOpening, Scalar};
    verinfer_prover::dispute::OperandOpening {
        slot: 0,
        index: 0,
        value: Scalar::from_f32(0.0),
        opening: ElementOpening { chunk: vec![0; 4], proof: MerkleProof { index: 0, leaf_count: 1, path: vec![] } },
        root: RootEvidence::Const,
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/proofs")
}

#[test]
fn every_op_has_a_case() {
    let names: BTreeSet<String> = all_cases().iter().map(|c| family(&c.op)).collect();
    let mut want: Vec<String> = all_unary().iter().map(|u| family(&Op::Unary(*u))).collect();
    want.extend(BinaryOp::ALL.iter().map(|b| family(&Op::Binary(*b))));
    want.extend(Reducer::ALL.iter().map(|r| family(&Op::Reduce { reducer: *r, axes: vec![] })));
    for f in [
        "Reshape",
        "Transpose",
        "Where",
        "Cast",
        "EinSum",
        "Conv",
        "Deconv",
        "MaxPool",
        "SumPool",
        "Softmax(log=false)",
        "Softmax(log=true)",
        "RmsNorm",
        "Broadcast",
        "Tile",
        "Slice",
        "Downsample",
        "Concat",
        "Pad::Constant",
        "Pad::Reflect",
        "Pad::Edge",
        "Gather",
        "GatherElements",
        "GatherNd",
        "Resize::Nearest",
        "Resize::Linear",
    ] {
        want.push(f.to_string());
    }
    let missing: Vec<&String> = want.iter().filter(|w| !names.contains(*w)).collect();
    assert!(missing.is_empty(), "ops without a one-step proof case: {missing:?}");
    let files: BTreeSet<String> = all_cases().iter().map(|c| c.name.clone()).collect();
    assert_eq!(files.len(), all_cases().len(), "case names are unique");
}

#[test]
fn every_op_one_step_proof_is_accepted_and_every_alteration_rejected() {
    let bless = std::env::var("VERINFER_BLESS").is_ok_and(|v| v == "1");
    let dir = golden_dir();
    if bless {
        std::fs::create_dir_all(&dir).expect("mkdir");
    }
    let mut failures = Vec::new();
    let mut slot_kinds = BTreeSet::new();
    let mut max_size = 0;
    let cases = all_cases();
    for c in &cases {
        let sc = step_case(c);
        assert_eq!(sc.verify(&sc.proof), Ok(StepVerdict::Correct), "{}: honest proof", c.name);
        let size = borsh::to_vec(&sc.proof).expect("enc").len();
        max_size = max_size.max(size);
        assert!(size <= 4096, "{}: one-step proof is {size} bytes", c.name);
        assert!(!sc.proof.operands.is_empty(), "{}: the chosen step reads no operand", c.name);
        for o in &sc.proof.operands {
            slot_kinds.insert(match o.root {
                RootEvidence::Trace { .. } => "trace",
                RootEvidence::Input { .. } => "input",
                RootEvidence::Const => "const",
            });
        }
        for (what, q) in mutations(&sc.proof) {
            if let Ok(v) = sc.verify(&q) {
                failures.push(format!("{}: {what} accepted ({v:?})", c.name));
            }
        }
        // A different claimed next state with the right leaf is impossible
        // (the leaf binds it); a right proof at the wrong position is not.
        let mut wrong_j = sc.clone();
        wrong_j.j = if sc.j > 1 { sc.j - 1 } else { sc.j + 1 };
        if wrong_j.j <= sc.k_steps {
            assert!(wrong_j.verify(&sc.proof).is_err(), "{}: proof accepted for another step", c.name);
        }
        // Golden fixture.
        let bytes = borsh::to_vec(&sc).expect("enc");
        let path = dir.join(format!("{}.hex", c.name));
        if bless {
            std::fs::write(&path, hex::encode(&bytes) + "\n").expect("write golden");
        } else {
            let stored = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("missing golden {} (VERINFER_BLESS=1 creates it)", path.display()));
            let stored = hex::decode(stored.trim()).expect("hex");
            let decoded = StepCase::try_from_slice(&stored).expect("golden decodes");
            assert_eq!(
                decoded.verify(&decoded.proof),
                Ok(StepVerdict::Correct),
                "{}: golden proof still verifies",
                c.name
            );
            assert!(stored == bytes, "{}: proof bytes differ from the golden fixture", c.name);
        }
    }
    assert!(failures.is_empty(), "{} alterations accepted:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(slot_kinds.len(), 3, "operands proven into the trace, the inputs and the program: {slot_kinds:?}");
    eprintln!("{} op cases, largest one-step proof {max_size} bytes", cases.len());
}

#[test]
fn golden_directory_has_no_stale_fixtures() {
    let names: BTreeSet<String> = all_cases().iter().map(|c| format!("{}.hex", c.name)).collect();
    let Ok(rd) = std::fs::read_dir(golden_dir()) else { return };
    for e in rd {
        let f = e.expect("entry").file_name().to_string_lossy().to_string();
        assert!(names.contains(&f), "stale golden fixture {f}");
    }
}
