//! Fast kernels and the planned executor against the scalar reference.
//!
//! * `corpus_*`: for the five corpus models, every node root, the trace
//!   root and the outputs of the planned executor (plain and traced, every
//!   kernel family this CPU supports) equal the reference executor's and
//!   the committed golden roots.
//! * `diff_*`: random single-node and fused multi-node programs, each run
//!   through the planned executor with every supported family forced, equal
//!   the reference bit for bit. Fixed seeds; `VERINFER_FUZZ_CASES` scales
//!   the case counts (default totals ≥ 10,000 cases).

mod common;

use std::path::PathBuf;

use serde_json::Value;
use verinfer_prover::exec::{ExecOptions, execute_with};
use verinfer_prover::fast::{Isa, Plan, PlanOptions};
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_state::npy;
use verinfer_state::tensor::Tensor;

const MODELS: [&str; 5] = ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_inputs(name: &str) -> (verinfer_prover::Model, Vec<Tensor>) {
    let dir = root().join("fixtures/models").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("input_") && f.ends_with(".npy"))
        })
        .collect();
    files.sort();
    let inputs: Vec<Tensor> =
        files.iter().map(|p| npy::read_tensor(&std::fs::read(p).expect("read")).expect("npy")).collect();
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    let opts = LoadOptions {
        name: name.into(),
        positional_shapes: inputs.iter().map(|t| t.shape_u64()).collect(),
        ..Default::default()
    };
    (load_model(&bytes, &opts).expect("load"), inputs)
}

fn bits(t: &Tensor) -> Vec<u8> {
    t.le_bytes().into_owned()
}

#[test]
fn corpus_models_match_reference_and_golden_roots() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/golden/corpus_roots.json")).expect("golden"),
    )
    .expect("json");
    for name in MODELS {
        let (model, inputs) = model_inputs(name);
        let reference = execute_with(&model.program, &inputs, ExecOptions { node_roots: true, keep_all: false })
            .expect("reference");
        let ref_roots = reference.node_roots.clone().expect("roots");
        let g = &golden[name];
        let golden_nodes: Vec<String> = g["node_roots"]
            .as_array()
            .expect("golden nodes")
            .iter()
            .map(|v| v.as_str().expect("str").to_string())
            .collect();
        for isa in Isa::supported() {
            let opts = PlanOptions { isa: Some(isa), program_root: Some(model.program_root), ..Default::default() };
            let mut plan = Plan::with_options(&model.program, &opts).expect("plan");
            let (ex, trace) = plan.run_traced(&inputs).expect("traced run");
            let roots = ex.node_roots.clone().expect("node roots");
            for (i, (a, b)) in roots.iter().zip(&ref_roots).enumerate() {
                assert_eq!(
                    a,
                    b,
                    "{name} [{isa}]: node {i} ({} {}) differs from the reference",
                    model.program.nodes[i].op.name(),
                    model.program.nodes[i].name
                );
                assert_eq!(a.to_string(), golden_nodes[i], "{name} [{isa}]: node {i} differs from golden");
            }
            assert_eq!(
                trace.root.to_string(),
                g["trace_root"].as_str().expect("trace root"),
                "{name} [{isa}]: trace root"
            );
            assert_eq!(ex.output_root, reference.output_root, "{name} [{isa}]: output root (traced)");
            assert_eq!(ex.input_root, reference.input_root, "{name} [{isa}]: input root");
            // Plain (fused) mode, twice (buffer reuse must not leak state).
            for _ in 0..2 {
                let plain = plan.run(&inputs).expect("plain run");
                assert_eq!(plain.output_root, reference.output_root, "{name} [{isa}]: output root (plain)");
                assert_eq!(plain.output_roots, reference.output_roots, "{name} [{isa}]");
                for (a, b) in plain.outputs.iter().zip(&reference.outputs) {
                    assert_eq!(bits(a), bits(b), "{name} [{isa}]: output bits");
                }
            }
            println!("{name} [{isa}]: {:?}", plan.stats());
        }
    }
}

// ---------------------------------------------------------------------------
// Differential tests on random programs.

mod diff {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use verinfer_prover::exec::{ExecOptions, execute_with};
    use verinfer_prover::fast::{Isa, Plan, PlanOptions};
    use verinfer_prover::program::*;
    use verinfer_state::hash::Hash32;
    use verinfer_state::tensor::{DType, Tensor, TensorData};

    /// Cases per test = `base × max(1, VERINFER_FUZZ_CASES / 60)` (60 is the
    /// ops tests' default per-test count, so the variable scales both).
    pub fn scaled(base: usize) -> usize {
        let n: usize = std::env::var("VERINFER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
        base * (n / 60).max(1)
    }

    const SPECIALS: [f32; 14] = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        1e-45,
        -3e-39,
        f32::MAX,
        -f32::MAX,
        1.0,
        -2.5,
        0.1,
        65504.0,
        -1e-30,
    ];

    pub fn rand_f32(rng: &mut ChaCha8Rng, special: f64) -> f32 {
        if special > 0.0 && rng.gen_bool(special) {
            if rng.gen_bool(0.15) {
                // NaN with a random payload and sign.
                return f32::from_bits(0x7f80_0001 | rng.gen_range(0..0x007f_ffffu32) | (rng.gen_range(0..2u32) << 31));
            }
            return SPECIALS[rng.gen_range(0..SPECIALS.len())];
        }
        rng.gen_range(-2.0f32..2.0)
    }

    pub fn rand_tensor(rng: &mut ChaCha8Rng, shape: &[u64], special: f64) -> Tensor {
        let n: u64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rand_f32(rng, special)).collect();
        Tensor::from_f32(shape.iter().map(|&d| d as usize).collect(), v).expect("shape")
    }

    pub fn special_rate(rng: &mut ChaCha8Rng) -> f64 {
        [0.0, 0.0, 0.02, 0.1, 0.4][rng.gen_range(0..5)]
    }

    pub use crate::common::Builder;

    fn bits(t: &Tensor) -> Vec<u8> {
        t.le_bytes().into_owned()
    }

    /// Outcome of one differential check.
    pub struct Checked {
        /// Whether every family ran the op under test with a fast kernel.
        pub fast: bool,
    }

    /// Runs `p` with the reference and with the planned executor under
    /// every supported family (traced and plain) and demands identical
    /// bits for every node and output. `fast_op`: op name that should not
    /// fall back (reported, not asserted).
    pub fn check(p: &Program, inputs: &[Tensor], fast_op: &str, what: &str) -> Checked {
        let reference = execute_with(p, inputs, ExecOptions { node_roots: true, keep_all: true });
        let mut fast = true;
        for isa in Isa::supported() {
            let opts = PlanOptions { isa: Some(isa), program_root: Some(Hash32::ZERO), ..Default::default() };
            let mut plan = Plan::with_options(p, &opts).unwrap_or_else(|e| panic!("{what} [{isa}]: plan: {e}\n{p:#?}"));
            fast &= !plan.stats().fallback_ops.iter().any(|o| o == fast_op);
            match &reference {
                Err(e) => {
                    assert!(plan.run(inputs).is_err(), "{what} [{isa}]: reference failed ({e}) but fast succeeded");
                }
                Ok(r) => {
                    let (ex, _) = plan.run_traced(inputs).unwrap_or_else(|e| panic!("{what} [{isa}]: traced: {e}"));
                    let rr = r.node_roots.as_ref().expect("roots");
                    let fr = ex.node_roots.as_ref().expect("roots");
                    for (i, (a, b)) in fr.iter().zip(rr).enumerate() {
                        if a != b {
                            let got = &plan_node_output(p, &opts, inputs, i);
                            let want = &r.node_outputs.as_ref().expect("kept")[i];
                            panic!(
                                "{what} [{isa}]: node {i} ({:?}) differs\n{}\nprogram: {p:#?}",
                                p.nodes[i].op,
                                first_diff(got, want)
                            );
                        }
                    }
                    let plain = plan.run(inputs).unwrap_or_else(|e| panic!("{what} [{isa}]: plain: {e}"));
                    for (k, (a, b)) in plain.outputs.iter().zip(&r.outputs).enumerate() {
                        if bits(a) != bits(b) {
                            panic!("{what} [{isa}]: plain output {k} differs\n{}\nprogram: {p:#?}", first_diff(a, b));
                        }
                    }
                }
            }
        }
        Checked { fast }
    }

    /// Output of node `i` under the planned executor (traced mode keeps
    /// every node; re-run as a one-output program).
    fn plan_node_output(p: &Program, opts: &PlanOptions, inputs: &[Tensor], i: usize) -> Tensor {
        let mut q = p.clone();
        q.outputs = vec![OutputInfo { name: "probe".into(), node: i as u32 }];
        let mut plan = Plan::with_options(&q, &PlanOptions { fuse: false, ..opts.clone() }).expect("plan");
        plan.run(inputs).expect("run").outputs.remove(0)
    }

    fn first_diff(a: &Tensor, b: &Tensor) -> String {
        let (TensorData::F32(x), TensorData::F32(y)) = (a.data(), b.data()) else {
            return format!("fast {a:?}\nreference {b:?}");
        };
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            if p.to_bits() != q.to_bits() {
                return format!(
                    "element {i}: fast {p:?} ({:#010x}) vs reference {q:?} ({:#010x}) (shape {:?})",
                    p.to_bits(),
                    q.to_bits(),
                    a.shape()
                );
            }
        }
        "lengths differ".into()
    }

    pub fn vt(shape: &[u64]) -> ValueType {
        ValueType { dtype: DType::F32, shape: shape.to_vec() }
    }

    // -- generators --------------------------------------------------------

    /// A random two-input einsum: batch, row, lane, contracted and
    /// broadcast axes in random positions; returns (spec, a shape, b shape,
    /// out shape).
    pub fn rand_einsum(rng: &mut ChaCha8Rng) -> (EinSumSpec, Vec<u64>, Vec<u64>, Vec<u64>) {
        #[derive(Clone, Copy)]
        struct Ax {
            a: bool,
            b: bool,
            out: bool,
            dim: u64,
            a1: bool,
            b1: bool,
        }
        let big = rng.gen_bool(0.3);
        let n_axes = rng.gen_range(1..=5usize);
        let mut axes = Vec::new();
        for _ in 0..n_axes {
            let role = rng.gen_range(0..10);
            let dim = if big { rng.gen_range(1..=70u64) } else { rng.gen_range(1..=9u64) };
            let mut ax = match role {
                0 | 1 => Ax { a: true, b: false, out: true, dim, a1: false, b1: false }, // row
                2 | 3 => Ax { a: false, b: true, out: true, dim, a1: false, b1: false }, // lane
                4 | 5 => Ax { a: true, b: true, out: false, dim: dim.min(40), a1: false, b1: false }, // contracted
                6 => Ax { a: true, b: true, out: true, dim: dim.min(6), a1: false, b1: false }, // batch
                7 => Ax { a: true, b: false, out: false, dim: dim.min(5), a1: false, b1: false }, // contracted, a only
                8 => Ax { a: true, b: true, out: false, dim: dim.min(5), a1: false, b1: false },
                _ => Ax { a: false, b: true, out: true, dim: dim.min(5), a1: false, b1: false },
            };
            if ax.a && ax.b && rng.gen_bool(0.15) {
                if rng.gen_bool(0.5) { ax.a1 = true } else { ax.b1 = true }
            }
            axes.push(ax);
        }
        let order = |rng: &mut ChaCha8Rng, sel: &dyn Fn(&Ax) -> bool| -> Vec<usize> {
            let mut v: Vec<usize> = (0..axes.len()).filter(|&i| sel(&axes[i])).collect();
            for i in (1..v.len()).rev() {
                let j = rng.gen_range(0..=i);
                v.swap(i, j);
            }
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
        // Fold order of contracted axes: random.
        for i in (1..contracted.len()).rev() {
            let j = rng.gen_range(0..=i);
            contracted.swap(i, j);
        }
        let sa: Vec<u64> = ao.iter().map(|&i| if axes[i].a1 { 1 } else { axes[i].dim }).collect();
        let sb: Vec<u64> = bo.iter().map(|&i| if axes[i].b1 { 1 } else { axes[i].dim }).collect();
        let so: Vec<u64> = oo.iter().map(|&i| axes[i].dim).collect();
        (EinSumSpec { free, contracted }, sa, sb, so)
    }

    pub struct ConvCase {
        pub spec: ConvSpec,
        pub x: Vec<u64>,
        pub w: Vec<u64>,
        pub bias: Option<u64>,
        pub out: Vec<u64>,
    }

    pub fn rand_conv(rng: &mut ChaCha8Rng) -> ConvCase {
        let sr = if rng.gen_bool(0.75) { 2 } else { 1 };
        let layout = match rng.gen_range(0..10) {
            0..=4 => DataLayout::Nchw,
            5..=7 => DataLayout::Chw,
            8 => DataLayout::Nhwc,
            _ => DataLayout::Hwc,
        };
        let depthwise = rng.gen_bool(0.3);
        let group = if depthwise { rng.gen_range(1..=12u64) } else { rng.gen_range(1..4u64) };
        let ci = if depthwise { group } else { group * rng.gen_range(1..5u64) };
        let co = group * if depthwise { rng.gen_range(1..3u64) } else { rng.gen_range(1..6u64) };
        let kernel: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..6)).collect();
        let strides: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..4)).collect();
        let dilations: Vec<u64> = (0..sr).map(|_| if rng.gen_bool(0.7) { 1 } else { rng.gen_range(2..4) }).collect();
        let pad_before: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..4)).collect();
        let pad_after: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..4)).collect();
        let maxw = if rng.gen_bool(0.3) { 80 } else { 20 };
        let spatial: Vec<u64> = (0..sr)
            .map(|i| {
                let lo = ((kernel[i] - 1) * dilations[i] + 1).saturating_sub(pad_before[i] + pad_after[i]).max(1);
                rng.gen_range(lo..lo + if i + 1 == sr { maxw } else { 12 })
            })
            .collect();
        let out_sp: Vec<u64> = (0..sr)
            .map(|i| {
                (spatial[i] + pad_before[i] + pad_after[i] - ((kernel[i] - 1) * dilations[i] + 1)) / strides[i] + 1
            })
            .collect();
        let nb = rng.gen_range(1..3u64);
        let shape_of = |c: u64, sp: &[u64]| -> Vec<u64> {
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
        };
        let kernel_layout =
            [KernelLayout::Oihw, KernelLayout::Oihw, KernelLayout::Hwio, KernelLayout::Ohwi][rng.gen_range(0..4)];
        let w: Vec<u64> = match kernel_layout {
            KernelLayout::Oihw => [vec![co, ci / group], kernel.clone()].concat(),
            KernelLayout::Hwio => [kernel.clone(), vec![ci / group, co]].concat(),
            KernelLayout::Ohwi => [vec![co], kernel.clone(), vec![ci / group]].concat(),
        };
        let bias = rng.gen_bool(0.6).then(|| if rng.gen_bool(0.2) { 1 } else { co });
        let spec = ConvSpec {
            geo: Geometry { layout, kernel, strides, dilations, pad_before, pad_after },
            kernel_layout,
            group,
            bias: bias.is_some(),
        };
        ConvCase { spec, x: shape_of(ci, &spatial), w, bias, out: shape_of(co, &out_sp) }
    }

    /// A random broadcast-compatible operand shape for `out`.
    pub fn rand_sub_shape(rng: &mut ChaCha8Rng, out: &[u64]) -> Vec<u64> {
        let r = out.len();
        let skip = rng.gen_range(0..=r);
        out[skip..].iter().map(|&d| if rng.gen_bool(0.35) { 1 } else { d }).collect()
    }

    /// Appends a random element-wise epilogue chain to `v` (shape `shape`).
    pub fn rand_chain(
        rng: &mut ChaCha8Rng,
        b: &mut Builder,
        mut v: ValueRef,
        shape: &[u64],
        sp: f64,
        row_shape: Option<Vec<u64>>,
    ) -> ValueRef {
        let len = rng.gen_range(0..5);
        for _ in 0..len {
            let kind = rng.gen_range(0..10);
            let nv = if kind < 6 {
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min]
                    [rng.gen_range(0..6)];
                let oshape: Vec<u64> = match rng.gen_range(0..5) {
                    0 => vec![],
                    1 => vec![1],
                    2 => shape.to_vec(),
                    3 => row_shape.clone().unwrap_or_else(|| rand_sub_shape(rng, shape)),
                    _ => rand_sub_shape(rng, shape),
                };
                let t = rand_tensor(rng, &oshape, sp);
                let other = b.value(t, rng.gen_bool(0.7));
                let ins = if rng.gen_bool(0.5) { vec![v, other] } else { vec![other, v] };
                b.node(Op::Binary(op), ins, vt(shape)).ok()
            } else {
                let op = [
                    UnaryOp::Neg,
                    UnaryOp::Abs,
                    UnaryOp::Sqrt,
                    UnaryOp::LeakyRelu(F32Bits::new(0.1)),
                    UnaryOp::HardSwish,
                    UnaryOp::HardSigmoid { alpha: F32Bits::new(0.2), beta: F32Bits::new(0.5) },
                    UnaryOp::Floor,
                    UnaryOp::Round,
                    UnaryOp::Tanh,
                ][rng.gen_range(0..9)];
                b.node(Op::Unary(op), vec![v], vt(shape)).ok()
            };
            if let Some(nv) = nv {
                v = nv;
            }
        }
        v
    }

    pub fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }
}

use diff::*;
use rand::Rng;
use verinfer_prover::program::*;
use verinfer_state::tensor::DType;

fn report(name: &str, cases: usize, fast: usize) {
    println!("{name}: {cases} cases × {} families, fast path taken in {fast}", Isa::supported().len());
}

#[test]
fn diff_einsum() {
    let mut rng = rng(101);
    let n = scaled(6000);
    let (mut done, mut fast) = (0, 0);
    while done < n {
        let (spec, sa, sb, so) = rand_einsum(&mut rng);
        // Keep the reference's work per case small.
        let k: u64 = spec.contracted.iter().map(|a| a.dim).product();
        let work = so.iter().product::<u64>() * k.max(1);
        if work > 200_000 || sa.iter().product::<u64>() > 20_000 || sb.iter().product::<u64>() > 20_000 {
            continue;
        }
        let sp = special_rate(&mut rng);
        let mut b = Builder::default();
        let (ca, cb) = (rng.gen_bool(0.4), rng.gen_bool(0.5));
        let x = b.value(rand_tensor(&mut rng, &sa, sp), ca);
        let y = b.value(rand_tensor(&mut rng, &sb, sp), cb);
        let Ok(e) = b.node(Op::EinSum(spec), vec![x, y], vt(&so)) else { continue };
        let row = rng
            .gen_bool(0.5)
            .then(|| so.iter().enumerate().map(|(i, &d)| if i + 1 == so.len() { 1 } else { d }).collect());
        let out = if rng.gen_bool(0.4) { rand_chain(&mut rng, &mut b, e, &so, sp, row) } else { e };
        let (p, inputs) = b.finish(&[out]);
        let c = check(&p, &inputs, "EinSum", "einsum");
        done += 1;
        fast += usize::from(c.fast);
    }
    report("einsum", done, fast);
    assert!(fast * 10 >= done * 9, "einsum fast path too rare");
}

/// EinSums with an empty operand or output (found by an audit: the planner
/// took an extent-0 axis for a batch axis and indexed an empty batch list,
/// or sliced past an empty operand while running) fall back to the
/// reference and agree with it, on every family.
#[test]
fn einsum_with_empty_operands_or_output() {
    let mut rng = rng(109);
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let mut cases = vec![
        // const [0, 0] × input [0, 2] → [0, 2]: two extent-0 axes.
        (
            EinSumSpec {
                free: vec![ax(Some(0), None, Some(0), 0), ax(None, Some(1), Some(1), 2)],
                contracted: vec![ax(Some(1), Some(0), None, 0)],
            },
            vec![0, 0],
            vec![0, 2],
            vec![0, 2],
            true,
        ),
        // input [3, 4] × input [0, 3, 4] → [3, 0]: a batched dot with N = 0.
        (
            EinSumSpec {
                free: vec![ax(Some(0), Some(1), Some(0), 3), ax(None, Some(0), Some(1), 0)],
                contracted: vec![ax(Some(1), Some(2), None, 4)],
            },
            vec![3, 4],
            vec![0, 3, 4],
            vec![3, 0],
            false,
        ),
    ];
    for (m, k, n) in [(2, 3, 0), (0, 3, 2), (2, 0, 3), (2, 0, 17), (1, 0, 1)] {
        let spec = EinSumSpec {
            free: vec![ax(Some(0), None, Some(0), m), ax(None, Some(1), Some(1), n)],
            contracted: vec![ax(Some(1), Some(0), None, k)],
        };
        cases.push((spec, vec![m, k], vec![k, n], vec![m, n], false));
    }
    for (spec, sa, sb, so, a_const) in cases {
        for b_const in [false, true] {
            let mut b = Builder::default();
            let x = b.value(rand_tensor(&mut rng, &sa, 0.0), a_const);
            let y = b.value(rand_tensor(&mut rng, &sb, 0.0), b_const);
            let e = b.node(Op::EinSum(spec.clone()), vec![x, y], vt(&so)).expect("valid einsum");
            let (p, inputs) = b.finish(&[e]);
            check(&p, &inputs, "EinSum", "einsum");
        }
    }
}

#[test]
fn diff_conv() {
    let mut rng = rng(102);
    let n = scaled(4800);
    let (mut done, mut fast) = (0, 0);
    while done < n {
        let c = rand_conv(&mut rng);
        let sp = special_rate(&mut rng);
        let mut b = Builder::default();
        let x = b.value(rand_tensor(&mut rng, &c.x, sp), false);
        let w = b.value(rand_tensor(&mut rng, &c.w, sp / 4.0), rng.gen_bool(0.9));
        let mut ins = vec![x, w];
        if let Some(bl) = c.bias {
            ins.push(b.value(rand_tensor(&mut rng, &[bl], sp), rng.gen_bool(0.7)));
        }
        let chw = !c.spec.geo.layout.channels_last();
        let Ok(v) = b.node(Op::Conv(c.spec.clone()), ins, vt(&c.out)) else { continue };
        // Per-channel operand shape ([C,1,…]) for NCHW/CHW outputs.
        let cax = usize::from(c.spec.geo.layout.has_n());
        let row = chw.then(|| {
            c.out.iter().enumerate().map(|(i, &d)| if i == cax { d } else { 1 }).collect::<Vec<u64>>()[cax..].to_vec()
        });
        let out = if rng.gen_bool(0.4) { rand_chain(&mut rng, &mut b, v, &c.out, sp, row) } else { v };
        let (p, inputs) = b.finish(&[out]);
        let r = check(&p, &inputs, "Conv", "conv");
        done += 1;
        fast += usize::from(r.fast);
    }
    report("conv", done, fast);
    assert!(fast * 10 >= done * 6, "conv fast path too rare");
}

#[test]
fn diff_pools() {
    let mut rng = rng(103);
    let n = scaled(1600);
    let (mut done, mut fast) = (0, 0);
    while done < n {
        let c = rand_conv(&mut rng);
        let sp = special_rate(&mut rng);
        let mut b = Builder::default();
        let x = b.value(rand_tensor(&mut rng, &c.x, sp), false);
        let xt = b.ty(x);
        // Same geometry, channels kept.
        let cax =
            if c.spec.geo.layout.channels_last() { c.x.len() - 1 } else { usize::from(c.spec.geo.layout.has_n()) };
        let mut out = c.out.clone();
        out[cax] = xt.shape[cax];
        let max = rng.gen_bool(0.5);
        let spec =
            PoolSpec { geo: c.spec.geo.clone(), normalize: rng.gen_bool(0.7), count_include_pad: rng.gen_bool(0.5) };
        let op = if max { Op::MaxPool(spec) } else { Op::SumPool(spec) };
        let name = if max { "MaxPool" } else { "SumPool" };
        let Ok(v) = b.node(op, vec![x], vt(&out)) else { continue };
        let (p, inputs) = b.finish(&[v]);
        let r = check(&p, &inputs, name, "pool");
        done += 1;
        fast += usize::from(r.fast);
    }
    report("pools", done, fast);
    assert!(fast * 10 >= done * 6, "pool fast path too rare");
}

#[test]
fn diff_elementwise() {
    let mut rng = rng(104);
    let unary: Vec<UnaryOp> = UnaryOp::F32_PLAIN
        .into_iter()
        .chain([
            UnaryOp::PowConst(F32Bits::new(3.0)),
            UnaryOp::PowConst(F32Bits::new(0.5)),
            UnaryOp::LeakyRelu(F32Bits::new(0.01)),
            UnaryOp::HardSwish,
            UnaryOp::HardSigmoid { alpha: F32Bits::new(0.2), beta: F32Bits::new(0.5) },
        ])
        .collect();
    let binary = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Pow,
        BinaryOp::Rem,
    ];
    let n_un = scaled(1600);
    let n_bin = scaled(3000);
    for case in 0..n_un {
        let r = rng.gen_range(0..4usize);
        let shape: Vec<u64> = (0..r).map(|_| rng.gen_range(1..40)).collect();
        let mut b = Builder::default();
        let sp = [0.05, 0.3, 0.6][case % 3];
        let x = b.value(rand_tensor(&mut rng, &shape, sp), false);
        let v = b.node(Op::Unary(unary[case % unary.len()]), vec![x], vt(&shape)).expect("unary");
        let (p, inputs) = b.finish(&[v]);
        check(&p, &inputs, "-", "unary");
    }
    for case in 0..n_bin {
        let r = rng.gen_range(0..5usize);
        let out: Vec<u64> =
            (0..r).map(|_| if rng.gen_bool(0.3) { rng.gen_range(1..40) } else { rng.gen_range(1..5) }).collect();
        let (sa, sb) = (rand_sub_shape(&mut rng, &out), rand_sub_shape(&mut rng, &out));
        let full = verinfer_prover::ops::layout::broadcast_shapes(&sa, &sb).expect("compatible");
        let mut b = Builder::default();
        let sp = special_rate(&mut rng);
        let x = b.value(rand_tensor(&mut rng, &sa, sp), rng.gen_bool(0.3));
        let y = b.value(rand_tensor(&mut rng, &sb, sp), rng.gen_bool(0.3));
        let v = b.node(Op::Binary(binary[case % binary.len()]), vec![x, y], vt(&full)).expect("binary");
        let (p, inputs) = b.finish(&[v]);
        check(&p, &inputs, "-", "binary");
    }
    report("elementwise", n_un + n_bin, n_un + n_bin);
}

#[test]
fn diff_reductions() {
    let mut rng = rng(105);
    let n_red = scaled(1600);
    let n_norm = scaled(1200);
    let reducers = [Reducer::Sum, Reducer::Prod, Reducer::Max, Reducer::Min, Reducer::MeanOfSquares];
    for case in 0..n_red + n_norm {
        let r = rng.gen_range(1..5usize);
        let shape: Vec<u64> = (0..r).map(|_| rng.gen_range(1..12)).collect();
        let mut axes: Vec<u32> = (0..r as u32).filter(|_| rng.gen_bool(0.5)).collect();
        if axes.is_empty() {
            axes.push(rng.gen_range(0..r as u32));
        }
        let sp = special_rate(&mut rng);
        let mut b = Builder::default();
        let x = b.value(rand_tensor(&mut rng, &shape, sp), false);
        let v = if case < n_red {
            let mut out = shape.clone();
            for &a in &axes {
                out[a as usize] = 1;
            }
            b.node(Op::Reduce { reducer: reducers[case % reducers.len()], axes }, vec![x], vt(&out))
        } else if case % 2 == 0 {
            b.node(Op::Softmax { axes, log: rng.gen_bool(0.3) }, vec![x], vt(&shape))
        } else {
            let axis = rng.gen_range(0..r as u32);
            b.node(Op::RmsNorm { axis, eps: F32Bits::new([1e-5, 0.0, 1e-12][case % 3]) }, vec![x], vt(&shape))
        }
        .expect("valid node");
        let (p, inputs) = b.finish(&[v]);
        check(&p, &inputs, "-", "reduction");
    }
    report("reductions", n_red + n_norm, n_red + n_norm);
}

#[test]
fn diff_gather_and_reshape() {
    let mut rng = rng(106);
    let n = scaled(600);
    for _ in 0..n {
        let r = rng.gen_range(1..4usize);
        let shape: Vec<u64> = (0..r).map(|_| rng.gen_range(1..9)).collect();
        let axis = rng.gen_range(0..r);
        let ir = rng.gen_range(0..3usize);
        let ishape: Vec<u64> = (0..ir).map(|_| rng.gen_range(1..5)).collect();
        let dim = shape[axis] as i64;
        let ni: u64 = ishape.iter().product();
        let idx: Vec<i64> = (0..ni).map(|_| rng.gen_range(-dim..dim)).collect();
        let mut b = Builder::default();
        let x = b.value(rand_tensor(&mut rng, &shape, 0.1), rng.gen_bool(0.5));
        let it = verinfer_state::tensor::Tensor::new(
            ishape.iter().map(|&d| d as usize).collect(),
            verinfer_state::tensor::TensorData::I64(idx),
        )
        .expect("idx");
        let i = b.value(it, rng.gen_bool(0.5));
        let out: Vec<u64> = [&shape[..axis], &ishape[..], &shape[axis + 1..]].concat();
        let g = b.node(Op::Gather { axis: axis as u32 }, vec![x, i], vt(&out)).expect("gather");
        let n_out: u64 = out.iter().product();
        let rs = b.node(Op::Reshape, vec![g], vt(&[n_out])).expect("reshape");
        let sq = b.node(Op::Unary(UnaryOp::Square), vec![rs], vt(&[n_out])).expect("square");
        let (p, inputs) = b.finish(&[sq, g]);
        check(&p, &inputs, "Gather", "gather");
    }
    report("gather", n, n);
    let _ = DType::F32;
}

#[test]
fn isa_selection() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
        assert_eq!(verinfer_prover::fast::Kernels::new(isa).is_some(), isa.is_supported());
    }
    assert!(Isa::Scalar.is_supported());
    assert!(Isa::supported().contains(&Isa::best()));
    assert_eq!(Isa::parse("AVX512"), Some(Isa::Avx512));
    assert_eq!(Isa::parse("neon"), None);
    // Forcing an unsupported family is an error, never a silent fallback.
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        let p = Program { version: PROGRAM_VERSION, inputs: vec![], outputs: vec![], nodes: vec![], constants: vec![] };
        assert!(Plan::with_options(&p, &PlanOptions { isa: Some(isa), ..Default::default() }).is_err());
    }
    println!("supported families: {:?}", Isa::supported());
}

/// Counts this thread's allocations (test-only global allocator).
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    fn note() {
        // `try_with`: allocations during thread teardown must not panic.
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    /// Forwards to the system allocator, counting requests.
    pub struct Counting;

    // SAFETY: every method forwards to `System` with the caller's arguments.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: forwarded contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations this thread made so far.
    pub fn count() -> usize {
        COUNT.with(Cell::get)
    }
}

#[test]
fn plain_runs_allocate_nothing_in_the_node_loop() {
    for name in ["mlp", "lenet5", "mobilenetv2", "gpt2"] {
        let (model, inputs) = model_inputs(name);
        let reference = execute_with(&model.program, &inputs, ExecOptions::default()).expect("reference");
        for isa in Isa::supported() {
            let opts = PlanOptions { isa: Some(isa), program_root: Some(model.program_root), ..Default::default() };
            let plan = Plan::with_options(&model.program, &opts).expect("plan");
            assert!(plan.stats().fallback_ops.is_empty(), "{name}: {:?}", plan.stats().fallback_ops);
            let mut ws = plan.workspace();
            plan.execute_in(&mut ws, &inputs).expect("warm-up");
            let before = counting::count();
            plan.execute_in(&mut ws, &inputs).expect("run");
            let allocs = counting::count() - before;
            assert_eq!(allocs, 0, "{name} [{isa}]: {allocs} allocations in the node loop");
            for (i, want) in reference.outputs.iter().enumerate() {
                let got = plan.output_f32(&ws, i).expect("f32 output");
                let want = want.as_f32().expect("f32");
                assert!(got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name} [{isa}]: output {i}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lane-wise ports of the transcendental functions (`fast::vmath`) against
// the scalar `math::` definitions, bit for bit, with every supported family.
//
// Default (CI): special values, every exponent boundary, neighbourhoods of
// the functions' thresholds, all tail lengths, and 1,000,000 random bit
// patterns plus 250,000 random values in |x| ∈ [2^-31, 2^9) per function per
// family (fixed seeds).
//
// `VERINFER_MATH_EXHAUSTIVE=1` (every one-argument function and pow(x, y)
// for y = 3, 2, 0.5, −3; or `=exp,erf,pow(7.0),…` to choose) also runs every
// one of the 2^32 inputs per function per family in
// `vmath_exhaustive` (ignored otherwise; meant for a release build:
// `VERINFER_MATH_EXHAUSTIVE=1 cargo test --release -p verinfer-prover --test
// kernels vmath_exhaustive -- --nocapture`).

mod vmath_diff {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use verinfer_prover::fast::vmath::{self, MathFn};
    use verinfer_prover::fast::{Isa, Kernels};

    /// The exponents `pow` is tested with (3 is GPT-2's GELU; 2 has its own
    /// branch; ±0, ±∞ and NaN are not vectorised but go through the same
    /// entry point).
    pub const POW_EXPONENTS: [f32; 20] = [
        3.0,
        2.0,
        0.5,
        -0.5,
        1.0,
        -1.0,
        -2.0,
        -3.0,
        4.0,
        1.5,
        7.0,
        0.1,
        -2.75,
        1e30,
        16_777_216.0,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];

    /// Every function under test.
    pub fn functions() -> Vec<MathFn> {
        let mut v = MathFn::ALL.to_vec();
        v.extend(POW_EXPONENTS.iter().map(|&y| MathFn::PowConst(y)));
        v
    }

    /// Thresholds of the algorithms (clamps, branch points, overflow and
    /// underflow limits, reduction boundaries), both signs.
    const THRESHOLDS: [f32; 34] = [
        0.75,
        6.0,
        3.92,
        20.0,
        9.011,
        112.0,
        100.0,
        88.72284,
        87.33655,
        103.27893,
        103.97208,
        120.0,
        17.33,
        14.5,
        12.0,
        1.06066,
        9.313_226e-10, // 2^-30
        2.4142137,
        0.41421357,
        1.0,
        core::f32::consts::FRAC_1_SQRT_2,
        core::f32::consts::SQRT_2,
        0.3465736,
        0.5,
        2.0,
        400.0,
        42.0,
        29.5,
        1e-20,
        3.0,
        10.6,
        0.7499,
        2.0f32 * 1.0e-38,
        1.5e-45,
    ];

    /// Special values, every exponent boundary, threshold neighbourhoods.
    pub fn special_inputs() -> Vec<f32> {
        let mut v: Vec<u32> = vec![
            0x7fc0_0000,
            0xffc0_0000,
            0x7f80_0001,
            0xff80_0001,
            0x7fff_ffff,
            0xffff_ffff,
            0x7fa0_0000,
            0xffbf_ffff,
        ];
        for s in [0u32, 0x8000_0000] {
            for e in 0..=255u32 {
                for m in [0u32, 1, 2, 3, 0x40_0000, 0x40_0001, 0x7f_fffe, 0x7f_ffff] {
                    v.push(s | (e << 23) | m);
                }
            }
        }
        for t in THRESHOLDS {
            for s in [0u32, 0x8000_0000] {
                let b = t.to_bits() | s;
                for d in 0..=64u32 {
                    v.push(b.wrapping_add(d));
                    v.push(b.wrapping_sub(d));
                }
            }
        }
        v.into_iter().map(f32::from_bits).collect()
    }

    /// `n` random bit patterns, then `n / 4` random values with
    /// |x| in [2^-31, 2^9) (where the polynomials work).
    pub fn random_inputs(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n).map(|_| f32::from_bits(rng.r#gen::<u32>())).collect();
        v.extend((0..n / 4).map(|_| {
            let e = rng.gen_range(96u32..136);
            f32::from_bits((rng.r#gen::<u32>() & 0x807f_ffff) | (e << 23))
        }));
        v
    }

    /// Checks `vmath::map` with the family `isa` against `want` (the scalar
    /// definition per element); returns the number of inputs checked.
    #[track_caller]
    pub fn check(isa: Isa, f: MathFn, xs: &[f32], want: &[u32], out: &mut Vec<f32>) -> usize {
        let k = Kernels::new(isa).expect("supported");
        out.clear();
        out.resize(xs.len(), 0.0);
        vmath::map(k, f, xs, out);
        for (i, (&x, &o)) in xs.iter().zip(out.iter()).enumerate() {
            assert_eq!(
                o.to_bits(),
                want[i],
                "{} [{isa}]: x = {x:e} ({:#010x}): port gives {o:e} ({:#010x}), math:: gives {:e} ({:#010x})",
                f.name(),
                x.to_bits(),
                o.to_bits(),
                f32::from_bits(want[i]),
                want[i]
            );
        }
        xs.len()
    }

    /// The whole default check for one function.
    pub fn run(f: MathFn, seed: u64) {
        let specials = special_inputs();
        let random = random_inputs(seed, 1_000_000);
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for xs in [&specials, &random] {
            // The scalar definition, called from code compiled without any
            // target feature (software-or-libm fma on x86).
            let want: Vec<u32> = xs.iter().map(|&x| f.reference(x).to_bits()).collect();
            for isa in Isa::supported() {
                counts.push(check(isa, f, xs, &want, &mut out));
                // The fast reference of the exhaustive check (the scalar
                // function compiled with the family's target features) agrees.
                let k = Kernels::new(isa).expect("supported");
                vmath::map_reference(k, f, xs, &mut out);
                assert!(out.iter().zip(&want).all(|(o, w)| o.to_bits() == *w), "{} [{isa}]: map_reference", f.name());
            }
        }
        // Every tail length and start offset.
        let want: Vec<u32> = specials.iter().map(|&x| f.reference(x).to_bits()).collect();
        for isa in Isa::supported() {
            for start in 0..9 {
                for len in 0..=40 {
                    let xs = &specials[1000 + start * 37..][..len];
                    let w = &want[1000 + start * 37..][..len];
                    check(isa, f, xs, w, &mut out);
                }
            }
        }
        println!(
            "vmath {}: {} special + {} random inputs × {} families bit-identical (vectorised: {})",
            f.name(),
            specials.len(),
            random.len(),
            Isa::supported().len(),
            f.is_vectorised()
        );
        let _ = counts;
    }
}

macro_rules! vmath_tests {
    ($($name:ident: $f:expr, $seed:expr;)*) => {$(
        #[test]
        fn $name() {
            vmath_diff::run($f, $seed);
        }
    )*};
}

use verinfer_prover::fast::vmath::MathFn;

vmath_tests! {
    vmath_exp: MathFn::Exp, 1;
    vmath_ln: MathFn::Ln, 2;
    vmath_rsqrt: MathFn::Rsqrt, 3;
    vmath_tanh: MathFn::Tanh, 4;
    vmath_sigmoid: MathFn::Sigmoid, 5;
    vmath_silu: MathFn::Silu, 6;
    vmath_softplus: MathFn::Softplus, 7;
    vmath_erf: MathFn::Erf, 8;
    vmath_gelu: MathFn::Gelu, 9;
    vmath_gelu_tanh: MathFn::GeluTanh, 10;
    vmath_atan: MathFn::Atan, 11;
    vmath_pow3: MathFn::PowConst(3.0), 12;
    vmath_pow2: MathFn::PowConst(2.0), 13;
    vmath_pow_half: MathFn::PowConst(0.5), 14;
    vmath_pow_minus3: MathFn::PowConst(-3.0), 15;
}

/// Every `pow` exponent of the list on the special inputs and 100,000
/// random ones (the main exponents have their own 1,000,000-input tests).
#[test]
fn vmath_pow_exponents() {
    let specials = vmath_diff::special_inputs();
    let random = vmath_diff::random_inputs(99, 100_000);
    let mut out = Vec::new();
    for &y in &vmath_diff::POW_EXPONENTS {
        let f = MathFn::PowConst(y);
        for xs in [&specials, &random] {
            let want: Vec<u32> = xs.iter().map(|&x| f.reference(x).to_bits()).collect();
            for isa in Isa::supported() {
                vmath_diff::check(isa, f, xs, &want, &mut out);
            }
        }
    }
}

/// All 2^32 inputs per function per family (`VERINFER_MATH_EXHAUSTIVE`).
#[test]
fn vmath_exhaustive() {
    let Ok(sel) = std::env::var("VERINFER_MATH_EXHAUSTIVE") else {
        println!("vmath_exhaustive: skipped (set VERINFER_MATH_EXHAUSTIVE=1)");
        return;
    };
    let sel = sel.trim().to_string();
    if sel.is_empty() || sel == "0" {
        println!("vmath_exhaustive: skipped");
        return;
    }
    // `1`/`all`: every one-argument function and pow with the exponents
    // that have their own default test; or a list of names.
    let all = sel == "1" || sel == "all";
    let fns: Vec<MathFn> = vmath_diff::functions()
        .into_iter()
        .filter(|f| match f {
            _ if !all => sel.split(',').any(|s| s.trim() == f.name()),
            MathFn::PowConst(y) => [3.0, 2.0, 0.5, -3.0].contains(y),
            _ => true,
        })
        .collect();
    assert!(!fns.is_empty(), "VERINFER_MATH_EXHAUSTIVE={sel}: no such function");
    // The reference for this sweep: the scalar function compiled with the
    // best family's target features (hardware fma; the default test checks
    // it equals the plain call).
    let best = verinfer_prover::fast::Kernels::new(Isa::best()).expect("best");
    const CHUNK: usize = 1 << 20;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    for f in fns {
        let t0 = std::time::Instant::now();
        let next = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let (mut xs, mut want, mut got) = (vec![0f32; CHUNK], vec![0f32; CHUNK], vec![0f32; CHUNK]);
                    loop {
                        let start = next.fetch_add(CHUNK as u64, std::sync::atomic::Ordering::Relaxed);
                        if start >= 1 << 32 {
                            break;
                        }
                        for (i, x) in xs.iter_mut().enumerate() {
                            *x = f32::from_bits((start + i as u64) as u32);
                        }
                        verinfer_prover::fast::vmath::map_reference(best, f, &xs, &mut want);
                        for isa in Isa::supported() {
                            let k = verinfer_prover::fast::Kernels::new(isa).expect("supported");
                            verinfer_prover::fast::vmath::map(k, f, &xs, &mut got);
                            for i in 0..CHUNK {
                                assert_eq!(
                                    got[i].to_bits(),
                                    want[i].to_bits(),
                                    "{} [{isa}]: x = {:#010x}",
                                    f.name(),
                                    xs[i].to_bits()
                                );
                            }
                        }
                    }
                });
            }
        });
        println!(
            "vmath exhaustive {}: all 2^32 inputs × {:?} bit-identical ({:.0} s)",
            f.name(),
            Isa::supported(),
            t0.elapsed().as_secs_f64()
        );
    }
}

/// A memory limit refuses a program before its large allocations: a value
/// larger than the limit (here 16 GiB, which would abort the process if
/// allocated) and a plan whose workspace is, each with `ResourceLimit`.
#[test]
fn memory_limit_refuses_before_allocating() {
    use verinfer_prover::ProverError;
    use verinfer_prover::program::*;
    use verinfer_state::tensor::DType;
    let huge = vec![65_536u64, 65_536];
    let p = Program {
        version: PROGRAM_VERSION,
        inputs: vec![TensorInfo { name: "x".into(), dtype: DType::F32, shape: huge.clone() }],
        outputs: vec![OutputInfo { name: "y".into(), node: 0 }],
        nodes: vec![Node {
            name: "neg".into(),
            op: Op::Unary(UnaryOp::Neg),
            inputs: vec![ValueRef::Input(0)],
            output: ValueType { dtype: DType::F32, shape: huge },
        }],
        constants: vec![],
    };
    let opts = PlanOptions { memory_limit: Some(1 << 30), ..Default::default() };
    match Plan::with_options(&p, &opts) {
        Err(ProverError::ResourceLimit { bytes, limit, what }) => {
            assert_eq!((bytes, limit), (1 << 34, 1 << 30));
            assert!(what.contains("input \"x\""), "{what}");
        }
        other => panic!("expected ResourceLimit, got {:?}", other.map(|p| p.stats().clone())),
    }
    // A real model: refused below its plan size, planned at it.
    let (model, inputs) = model_inputs("lenet5");
    let plan = Plan::new(&model.program).expect("plan");
    let s = plan.stats();
    let need = (s.arena_bytes.0.max(s.arena_bytes.1) + s.scratch_bytes + s.packed_bytes) as u64;
    let tight = PlanOptions { memory_limit: Some(need / 2), ..Default::default() };
    assert!(matches!(Plan::with_options(&model.program, &tight), Err(ProverError::ResourceLimit { .. })));
    let roomy = PlanOptions { memory_limit: Some(need + 4096), ..Default::default() };
    let mut plan = Plan::with_options(&model.program, &roomy).expect("plan within the limit");
    assert_eq!(plan.infer(&inputs).expect("run").len(), 1);
}

/// The compute measure: a Gemm's steps are its multiply-adds; the corpus
/// models' totals are pinned (they are the same on every machine); a step
/// limit refuses a program above it and plans one at it.
#[test]
fn step_counts_measure_compute_and_the_step_limit_refuses_above_it() {
    use verinfer_prover::ProverError;
    let mut got = Vec::new();
    for name in ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"] {
        let (model, _) = model_inputs(name);
        let t = std::time::Instant::now();
        let steps = model.program.steps().expect("steps");
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{name}: counting is cheap");
        got.push((name, steps));
    }
    let want = [
        ("mlp", 235_530),
        ("lenet5", 435_850),
        ("mobilenetv2", 319_945_352),
        ("gpt2", 12_243_024),
        ("bert_tiny", 8_018_928),
    ];
    assert_eq!(got, want);
    let (model, inputs) = model_inputs("lenet5");
    let steps = model.program.steps().expect("steps");
    let tight = PlanOptions { step_limit: Some(steps - 1), ..Default::default() };
    match Plan::with_options(&model.program, &tight) {
        Err(ProverError::ComputeLimit { steps: s, limit }) => assert_eq!((s, limit), (steps, steps - 1)),
        other => panic!("expected ComputeLimit, got {:?}", other.map(|p| p.stats().clone())),
    }
    let exact = PlanOptions { step_limit: Some(steps), ..Default::default() };
    let mut plan = Plan::with_options(&model.program, &exact).expect("plan at the limit");
    assert_eq!(plan.infer(&inputs).expect("run").len(), 1);
}

/// A dispute holds every node output and every state of the pinned
/// element's fold; the plan's arena bounds neither (an audit crashed a node
/// with one dispute over a model that planned in 8 MiB). `trace_limit` and
/// `fold_limit` bound both, at planning time, and the corpus fits the
/// defaults (1 GiB, 2^20 steps) with room to spare.
#[test]
fn dispute_footprint_is_measured_and_the_trace_and_fold_limits_refuse_above_it() {
    let mut got = Vec::new();
    for name in ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"] {
        let (model, _) = model_inputs(name);
        let p = &model.program;
        let (_, fold) = p.longest_fold().expect("folds").expect("nodes");
        assert!(p.trace_bytes() < 128 << 20 && fold < 1 << 16, "{name}: {} bytes, fold {fold}", p.trace_bytes());
        got.push((name, p.trace_bytes(), fold));
    }
    eprintln!("{got:?}");
    let (model, inputs) = model_inputs("lenet5");
    let p = &model.program;
    let (bytes, (node, fold)) = (p.trace_bytes(), p.longest_fold().expect("folds").expect("nodes"));
    let over_trace = PlanOptions { trace_limit: Some(bytes - 1), ..Default::default() };
    match Plan::with_options(p, &over_trace) {
        Err(verinfer_prover::ProverError::TraceLimit { bytes: b, limit }) => assert_eq!((b, limit), (bytes, bytes - 1)),
        other => panic!("expected TraceLimit, got {:?}", other.map(|p| p.stats().clone())),
    }
    let over_fold = PlanOptions { fold_limit: Some(fold - 1), ..Default::default() };
    match Plan::with_options(p, &over_fold) {
        Err(verinfer_prover::ProverError::FoldLimit { node: n, steps, limit, .. }) => {
            assert_eq!((n, steps, limit), (node, fold, fold - 1))
        }
        other => panic!("expected FoldLimit, got {:?}", other.map(|p| p.stats().clone())),
    }
    let exact = PlanOptions { trace_limit: Some(bytes), fold_limit: Some(fold), ..Default::default() };
    let mut plan = Plan::with_options(p, &exact).expect("plan at both limits");
    assert_eq!(plan.infer(&inputs).expect("run").len(), 1);
}

/// A window far larger than its input plans without building a table per
/// tap (an audit's 118-byte model, a MaxPool with a 2^32 x 1 window over
/// 8x8, aborted the node on a 32 GiB allocation while planning): it takes
/// the reference path, and the fold limit (what a node applies, 2^20 steps
/// by default) refuses it, since each output element folds the window.
#[test]
fn absurd_pool_windows_plan_without_allocating_per_tap() {
    use verinfer_prover::onnx_builder::{Attr, Dim, OnnxBuilder};
    use verinfer_state::tensor::DType;
    let pool = |kernel: Vec<i64>| {
        OnnxBuilder::new(17)
            .input("x", DType::F32, &[Dim::Fixed(1), Dim::Fixed(2), Dim::Fixed(8), Dim::Fixed(8)])
            .node("MaxPool", &["x"], &["y"], &[("kernel_shape", Attr::Ints(kernel))])
            .output("y", DType::F32, &[])
            .build()
    };
    for kernel in [vec![1 << 32, 1], vec![1 << 28, 1], vec![1 << 21, 1]] {
        let model = match load_model(&pool(kernel.clone()), &LoadOptions::default()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{kernel:?}: not loaded: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        if let Err(e) = Plan::new(&model.program) {
            eprintln!("{kernel:?}: refused: {e}");
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "{kernel:?}: planning is cheap");
        let node_limits = PlanOptions { fold_limit: Some(1 << 20), ..Default::default() };
        match Plan::with_options(&model.program, &node_limits) {
            Err(verinfer_prover::ProverError::FoldLimit { steps, .. }) => assert!(steps > 1 << 20),
            other => panic!("{kernel:?}: expected FoldLimit, got {:?}", other.map(|p| p.stats().clone())),
        }
    }
    if let Ok(m) = load_model(&pool(vec![1 << 32, 1 << 32]), &LoadOptions::default()) {
        assert!(Plan::new(&m.program).is_err(), "a window whose size overflows is refused");
    }
}

/// Zero strides or dilations have no meaning as a window; tract accepts
/// zero dilations, the program refuses them (found by an audit).
#[test]
fn zero_dilations_are_refused() {
    use verinfer_prover::onnx_builder::{Attr, Dim, OnnxBuilder};
    use verinfer_state::tensor::DType;
    let w = Tensor::from_f32(vec![1, 1, 2, 2], vec![1.0; 4]).expect("w");
    let conv = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(4)])
        .initializer("w", &w)
        .node("Conv", &["x", "w"], &["y"], &[("dilations", Attr::Ints(vec![0, 0]))])
        .output("y", DType::F32, &[])
        .build();
    let e = load_model(&conv, &LoadOptions::default()).map(|_| ()).expect_err("refused");
    assert!(e.to_string().contains("dilations [0, 0] has a zero"), "{e}");
}
