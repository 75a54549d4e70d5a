//! ONNX backend node conformance suite.
//!
//! Runs every `test_*` case of the ONNX backend node tests (folders with a
//! `model.onnx` and `test_data_set_0/{input,output}_*.pb`) through the
//! Verinfer frontend and the canonical reference executor, and compares the
//! outputs with the reference outputs shipped with each case.
//!
//! * Corpus: `$VERINFER_ONNX_NODE_DIR`, else `<workspace>/../shared/corpus/onnx-node`.
//!   When the folder is absent the suite prints a "skipped" line and passes.
//!   `VERINFER_ONNX_NODE_FILTER=substr` restricts the run to matching cases.
//! * Loading: first with every graph input as a request input; if that fails
//!   (tract needs axes, shapes, pads, scales… as constants), again with every
//!   non-float input but input 0 frozen into an initializer; then with every
//!   input but input 0 frozen. Input 0 (the data) is never frozen, so every
//!   case runs at least one canonical node on request data. The attempt that
//!   worked is recorded.
//! * Comparison: floats within `max_abs ≤ 1e-5·max|ref| + 1e-6` with NaN at
//!   the same positions (and infinities equal); integers and bools exact;
//!   dtype and shape must match.
//! * Verdict: PASS, FAIL (wrong values, or an execution error) or
//!   UNSUPPORTED (the model cannot be lowered into the canonical op set, e.g.
//!   an op or dtype outside it). The test fails when any case of an op
//!   family in [`CANONICAL_OPS`] is not PASS and is not covered by
//!   [`ALLOW`], or when an [`ALLOW`] entry covers no non-passing case (stale
//!   entries are removed, so the list stays minimal).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tract_onnx::prelude::Framework;
use verinfer_prover::frontend::{LoadOptions, from_tract, load_model};
use verinfer_state::tensor::{DType, Tensor, TensorData};

/// ONNX op families (test-folder prefixes after `test_`) the canonical op set
/// covers. Longest prefix wins when classifying a folder.
const CANONICAL_OPS: &[&str] = &[
    "abs",
    "add",
    "averagepool",
    "batchnorm",
    "cast",
    "clip",
    "concat",
    "conv",
    "convtranspose",
    "div",
    "equal",
    "erf",
    "exp",
    "expand",
    "flatten",
    "gather",
    "gelu",
    "gemm",
    "globalaveragepool",
    "globalmaxpool",
    "greater",
    "hardsigmoid",
    "hardswish",
    "identity",
    "instancenorm",
    "layer_normalization",
    "leakyrelu",
    "less",
    "log",
    "logsoftmax",
    "matmul",
    "max",
    "maxpool",
    "min",
    "mul",
    "neg",
    "pad",
    "pow",
    "reciprocal",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "relu",
    "reshape",
    "resize",
    "sigmoid",
    "slice",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "sub",
    "tanh",
    "transpose",
    "unsqueeze",
    "where",
];

/// Folder prefixes that name an op differently from its family.
const ALIASES: &[(&str, &str)] = &[
    ("basic_conv", "conv"),
    ("constant_pad", "pad"),
    ("edge_pad", "pad"),
    ("reflect_pad", "pad"),
    ("wrap_pad", "pad"),
];

/// How an allow-listed case is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// It cannot be lowered (op or dtype outside the canonical set).
    Unsupported,
    /// It runs but does not match the reference.
    Fail,
}

/// Cases of canonical ops that are allowed not to pass: pattern (a case name,
/// `*` matches any run of characters), how the case ends, and why. A case
/// that ends differently from its entry (e.g. an allowed UNSUPPORTED that
/// starts to FAIL) is not covered.
const ALLOW: &[(&str, Expect, &str)] = &[
    // Values the canonical set has no dtype for.
    ("test_cast_*FLOAT16*", Expect::Unsupported, "f16/bf16 are not canonical dtypes"),
    ("test_cast_*DOUBLE*", Expect::Unsupported, "f64 is not a canonical dtype"),
    ("test_cast_*FLOAT8*", Expect::Unsupported, "float8 types are not canonical dtypes"),
    ("test_cast_*FLOAT4E2M1*", Expect::Unsupported, "float4 is not a canonical dtype"),
    ("test_cast_*INT4*", Expect::Unsupported, "int4/uint4 are not canonical dtypes"),
    ("test_cast_*INT2*", Expect::Unsupported, "int2/uint2 are not canonical dtypes"),
    ("test_*_float16", Expect::Unsupported, "f16 is not a canonical dtype"),
    ("test_*_float64", Expect::Unsupported, "f64 is not a canonical dtype"),
    ("test_equal_string*", Expect::Unsupported, "string tensors are not canonical"),
    ("test_identity_opt", Expect::Unsupported, "the input is an ONNX optional, not a tensor"),
    ("test_identity_sequence", Expect::Unsupported, "the input is an ONNX sequence, not a tensor"),
    // Variants outside the canonical op set.
    ("test_resize_*cubic*", Expect::Unsupported, "cubic interpolation is not canonical (nearest and linear are)"),
    ("test_resize_*linear_antialias", Expect::Unsupported, "antialiased resize is not canonical"),
    (
        "test_resize_tf_crop_and_resize*",
        Expect::Unsupported,
        "tf_crop_and_resize (ROI, extrapolation) is not canonical",
    ),
    (
        "test_maxpool_with_argmax_*",
        Expect::Unsupported,
        "MaxPool's second output (Indices) is not canonical: canonical ops have one output",
    ),
    (
        "test_batchnorm_*_training_mode",
        Expect::Unsupported,
        "training-mode BatchNormalization (running mean/var outputs) is not inference; tract 0.23.9 rejects it",
    ),
    // Limits of the pinned frontend.
    (
        "test_matmul_1d_1d",
        Expect::Unsupported,
        "tract 0.23.9 rejects MatMul of two 1-D operands while typing the model",
    ),
    ("test_wrap_pad", Expect::Unsupported, "tract 0.23.9 has no Pad mode=wrap"),
    (
        "test_reduce_max_empty_set",
        Expect::Fail,
        "tract folds ReduceMax over the empty input while typing the model, with f32::MIN as the identity; \
         ONNX expects -inf. The frontend keeps tract's folded constant, so the canonical Reduce<Max> \
         (which starts at -inf) never runs",
    ),
    // Reference data.
    (
        "test_averagepool_2d_ceil_last_window_starts_on_pad",
        Expect::Fail,
        "the reference output is hand-rounded to 4 decimals (0.2841 for (0.8816+0.4353+0.5772+0.6623)/9 = \
         0.284044); the canonical result is the exact 9-position average",
    ),
];

#[derive(Clone, Debug)]
enum Verdict {
    Pass,
    Fail(String),
    Unsupported(String),
}

#[derive(Debug)]
struct CaseResult {
    name: String,
    op: String,
    verdict: Verdict,
    /// Which load attempt worked.
    attempt: Option<&'static str>,
}

fn corpus_dir() -> PathBuf {
    match std::env::var_os("VERINFER_ONNX_NODE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/onnx-node"),
    }
}

fn op_of(case: &str) -> String {
    let s = case.strip_prefix("test_").unwrap_or(case);
    let fits = |k: &str| s == k || s.starts_with(&format!("{k}_"));
    for (alias, op) in ALIASES {
        if fits(alias) {
            return (*op).to_string();
        }
    }
    CANONICAL_OPS
        .iter()
        .filter(|k| fits(k))
        .max_by_key(|k| k.len())
        .map(|k| k.to_string())
        .unwrap_or_else(|| s.split('_').next().unwrap_or(s).to_string())
}

fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(pos) = rest.find(p) else { return false };
            rest = &rest[pos + p.len()..];
        }
    }
    true
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// A `.pb` tensor: its name and the canonical tensor (or why it has none).
type PbTensor = (String, Result<Tensor, String>);

fn read_pb(path: &Path) -> Result<PbTensor, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let proto = tract_onnx::tensor::proto_from_reader(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = proto.name.clone();
    let t = catch_unwind(AssertUnwindSafe(|| {
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, &proto, None)
    }))
    .map_err(|p| format!("loading {}: {}", path.display(), panic_message(p)))?;
    let t = match t {
        Ok(t) => from_tract(&t),
        Err(e) => Err(format!("{e}")),
    };
    Ok((name, t))
}

fn read_set(dir: &Path, prefix: &str) -> Result<Vec<PbTensor>, String> {
    let mut v = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("{prefix}_{i}.pb"));
        if !p.exists() {
            break;
        }
        v.push(read_pb(&p)?);
    }
    Ok(v)
}

/// Compares one output with its reference; `Err` says why it differs.
fn compare(got: &Tensor, want: &Tensor) -> Result<f64, String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} (expected {})", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Err(format!("shape {:?} (expected {:?})", got.shape(), want.shape()));
    }
    match (got.data(), want.data()) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            let max_ref = w.iter().filter(|v| v.is_finite()).fold(0f64, |m, &v| m.max(f64::from(v).abs()));
            let tol = 1e-5 * max_ref + 1e-6;
            let mut max_err = 0f64;
            let mut worst = 0usize;
            for (i, (&a, &b)) in g.iter().zip(w).enumerate() {
                if a.is_nan() != b.is_nan() {
                    return Err(format!("NaN mismatch at {i}: got {a}, expected {b}"));
                }
                if a.is_nan() || a == b {
                    continue;
                }
                let err = (f64::from(a) - f64::from(b)).abs();
                let err = if err.is_nan() { f64::INFINITY } else { err };
                if err > max_err {
                    max_err = err;
                    worst = i;
                }
            }
            if max_err > tol {
                return Err(format!(
                    "max_abs {max_err:.3e} > tol {tol:.3e} (at {worst}: got {}, expected {})",
                    g[worst], w[worst]
                ));
            }
            Ok(max_err)
        }
        _ => {
            for i in 0..got.len() as u64 {
                let (a, b) = (got.scalar(i).map_err(|e| e.to_string())?, want.scalar(i).map_err(|e| e.to_string())?);
                if a.bits != b.bits {
                    return Err(format!("element {i}: got {:?}, expected {:?}", a, b));
                }
            }
            Ok(0.0)
        }
    }
}

/// Graph inputs of a model (initializers excluded), in order.
fn graph_inputs(onnx: &[u8]) -> Result<Vec<String>, String> {
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &onnx[..]).map_err(|e| format!("{e}"))?;
    let g = proto.graph.ok_or("model has no graph")?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
    Ok(g.input.iter().filter(|i| !inits.contains(i.name.as_str())).map(|i| i.name.clone()).collect())
}

fn run_case(dir: &Path) -> (Verdict, Option<&'static str>) {
    let name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let onnx = match std::fs::read(dir.join("model.onnx")) {
        Ok(b) => b,
        Err(e) => return (Verdict::Unsupported(format!("no model.onnx: {e}")), None),
    };
    let data = dir.join("test_data_set_0");
    let (inputs, outputs) = match (read_set(&data, "input"), read_set(&data, "output")) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return (Verdict::Unsupported(e), None),
    };
    let names = match graph_inputs(&onnx) {
        Ok(n) => n,
        Err(e) => return (Verdict::Unsupported(format!("model: {e}")), None),
    };
    if names.len() != inputs.len() {
        return (Verdict::Unsupported(format!("{} graph inputs but {} input files", names.len(), inputs.len())), None);
    }
    let mut tensors = Vec::new();
    for (i, (_, t)) in inputs.iter().enumerate() {
        match t {
            Ok(t) => tensors.push(t.clone()),
            Err(e) => return (Verdict::Unsupported(format!("input {i}: {e}")), None),
        }
    }
    let mut wants = Vec::new();
    for (i, (_, t)) in outputs.iter().enumerate() {
        match t {
            Ok(t) => wants.push(t.clone()),
            Err(e) => return (Verdict::Unsupported(format!("output {i}: {e}")), None),
        }
    }

    // Input 0 (the data) is never frozen: a program without request inputs
    // is whatever tract's constant folding computed, which tests nothing.
    let non_float: Vec<usize> = (1..tensors.len()).filter(|&i| tensors[i].dtype() != DType::F32).collect();
    let not_first: Vec<usize> = (1..tensors.len()).collect();
    let mut attempts: Vec<(&'static str, Vec<usize>)> = vec![("runtime inputs", Vec::new())];
    if !non_float.is_empty() {
        attempts.push(("non-float inputs frozen", non_float.clone()));
    }
    if !not_first.is_empty() && not_first != non_float {
        attempts.push(("inputs 1.. frozen", not_first));
    }
    let mut last_err = String::new();
    for (label, frozen) in attempts {
        let opts = LoadOptions {
            name: name.clone(),
            shapes: names
                .iter()
                .enumerate()
                .filter(|(i, _)| !frozen.contains(i))
                .map(|(i, n)| (n.clone(), tensors[i].shape_u64()))
                .collect(),
            positional_shapes: Vec::new(),
            constant_inputs: frozen.iter().map(|&i| (names[i].clone(), tensors[i].clone())).collect(),
        };
        let model = match load_model(&onnx, &opts) {
            Ok(m) => m,
            Err(e) => {
                last_err = e.to_string();
                continue;
            }
        };
        let p = &model.program;
        let mut args = Vec::new();
        for info in &p.inputs {
            match names.iter().position(|n| n == &info.name) {
                Some(i) => args.push(tensors[i].clone()),
                None => {
                    return (Verdict::Fail(format!("program input {} is not a graph input", info.name)), Some(label));
                }
            }
        }
        let exec = catch_unwind(AssertUnwindSafe(|| verinfer_prover::execute(p, &args)));
        let exec = match exec {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return (Verdict::Fail(format!("execution: {e}")), Some(label)),
            Err(pn) => return (Verdict::Fail(format!("execution panicked: {}", panic_message(pn))), Some(label)),
        };
        if exec.outputs.len() != wants.len() {
            return (Verdict::Fail(format!("{} outputs, expected {}", exec.outputs.len(), wants.len())), Some(label));
        }
        for (i, (g, w)) in exec.outputs.iter().zip(&wants).enumerate() {
            if let Err(e) = compare(g, w) {
                return (Verdict::Fail(format!("output {i}: {e}")), Some(label));
            }
        }
        return (Verdict::Pass, Some(label));
    }
    (Verdict::Unsupported(last_err), None)
}

#[test]
fn onnx_node_conformance() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!("skipped: corpus not found at {} (set VERINFER_ONNX_NODE_DIR)", dir.display());
        return;
    }
    let filter = std::env::var("VERINFER_ONNX_NODE_FILTER").ok();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("readable corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_"))
                && filter.as_deref().is_none_or(|f| p.to_string_lossy().contains(f))
        })
        .collect();
    cases.sort();
    let started = Instant::now();
    // Quiet tract's and our own panics: they are caught and reported.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut results = Vec::new();
    for c in &cases {
        let name = c.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (verdict, attempt) = run_case(c);
        results.push(CaseResult { op: op_of(&name), name, verdict, attempt });
    }
    std::panic::set_hook(hook);

    // Per-op table.
    let mut table: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for r in &results {
        let row = table.entry(r.op.as_str()).or_default();
        let expect = match r.verdict {
            Verdict::Pass => {
                row[0] += 1;
                continue;
            }
            Verdict::Fail(_) => {
                row[1] += 1;
                Expect::Fail
            }
            Verdict::Unsupported(_) => {
                row[2] += 1;
                Expect::Unsupported
            }
        };
        if ALLOW.iter().any(|(p, e, _)| *e == expect && glob(p, &r.name)) {
            row[3] += 1;
        }
    }
    println!("\nONNX node conformance: {} cases from {} in {:.1?}", results.len(), dir.display(), started.elapsed());
    println!("{:<22} {:>5} {:>5} {:>5} {:>8}  canonical", "op", "pass", "fail", "unsup", "allowed");
    let mut tot = [0usize; 4];
    for (op, row) in &table {
        let canon = CANONICAL_OPS.contains(op);
        println!(
            "{op:<22} {:>5} {:>5} {:>5} {:>8}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            if canon { "yes" } else { "no" }
        );
        for i in 0..4 {
            tot[i] += row[i];
        }
    }
    println!("{:<22} {:>5} {:>5} {:>5} {:>8}", "TOTAL", tot[0], tot[1], tot[2], tot[3]);

    let frozen: Vec<String> = results
        .iter()
        .filter(|r| r.attempt.is_some_and(|a| a != "runtime inputs"))
        .map(|r| format!("{} ({})", r.name, r.attempt.unwrap_or("")))
        .collect();
    if !frozen.is_empty() {
        println!("\nloaded with frozen inputs: {}", frozen.join(", "));
    }

    // Non-passing cases.
    let mut unexpected = Vec::new();
    let mut used = vec![false; ALLOW.len()];
    println!("\nnon-passing cases:");
    for r in &results {
        let (kind, why, expect) = match &r.verdict {
            Verdict::Pass => continue,
            Verdict::Fail(w) => ("FAIL", w, Expect::Fail),
            Verdict::Unsupported(w) => ("UNSUPPORTED", w, Expect::Unsupported),
        };
        let allowed = ALLOW.iter().position(|(p, e, _)| *e == expect && glob(p, &r.name));
        if let Some(a) = allowed {
            used[a] = true;
        }
        let canonical = CANONICAL_OPS.contains(&r.op.as_str());
        let mark = match (canonical, allowed) {
            (false, _) => "not canonical".to_string(),
            (true, Some(a)) => format!("allowed: {}", ALLOW[a].2),
            (true, None) => {
                unexpected.push(r.name.clone());
                "NOT ALLOWED".to_string()
            }
        };
        println!("  {kind:<11} {:<58} {why}\n  {:>11} [{mark}]", r.name, "");
    }
    // Stale allow-list entries only make sense when the whole corpus ran.
    let stale: Vec<&str> = if filter.is_none() {
        ALLOW.iter().zip(&used).filter(|(_, u)| !**u).map(|(a, _)| a.0).collect()
    } else {
        Vec::new()
    };
    if !stale.is_empty() {
        println!("\nstale allow-list entries (no non-passing case matches them): {stale:?}");
    }
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} canonical-op cases neither pass nor are allow-listed: {unexpected:?}; stale allow-list entries: {stale:?}",
        unexpected.len()
    );
}

#[test]
fn op_classification() {
    assert_eq!(op_of("test_reduce_sum_keepdims_example"), "reduce_sum");
    assert_eq!(op_of("test_averagepool_2d_ceil"), "averagepool");
    assert_eq!(op_of("test_globalaveragepool"), "globalaveragepool");
    assert_eq!(op_of("test_convtranspose_1d"), "convtranspose");
    assert_eq!(op_of("test_conv_with_strides_padding"), "conv");
    assert_eq!(op_of("test_basic_conv_with_padding"), "conv");
    assert_eq!(op_of("test_logsoftmax_axis_0"), "logsoftmax");
    assert_eq!(op_of("test_log_example"), "log");
    assert_eq!(op_of("test_max_float16"), "max");
    assert_eq!(op_of("test_maxpool_2d_ceil"), "maxpool");
    assert_eq!(op_of("test_reflect_pad"), "pad");
    assert_eq!(op_of("test_layer_normalization_2d_axis0"), "layer_normalization");
    assert!(glob("test_cast_*FLOAT16*", "test_cast_FLOAT_to_FLOAT16"));
    assert!(glob("test_max_float16", "test_max_float16"));
    assert!(!glob("test_max_float16", "test_max_float16_x"));
    assert!(glob("test_*_float64", "test_min_float64"));
    assert!(!glob("test_*_float64", "test_min_float32"));
}
