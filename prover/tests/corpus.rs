//! The five corpus models (fixtures/models): accuracy against ONNX Runtime
//! and the float64 reference, golden roots, and determinism across runs and
//! threads.
//!
//! Golden roots live in `fixtures/golden/corpus_roots.json`. They were
//! produced by a release build (`VERINFER_BLESS=1 cargo test --release -p
//! verinfer-prover --test corpus`) and are checked here in whatever profile
//! runs the tests (CI uses the dev profile), which is the debug-vs-release
//! determinism check; `cli/tests/determinism.rs` covers tract's CPU tiers.

use std::path::PathBuf;

use serde_json::{Value, json};
use verinfer_prover::exec::{ExecOptions, execute_with};
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::trace::Trace;
use verinfer_state::npy;
use verinfer_state::tensor::Tensor;

const MODELS: [&str; 5] = ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &PathBuf, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with(prefix) && f.ends_with(".npy"))
        })
        .collect();
    v.sort();
    v
}

struct Run {
    model: verinfer_prover::Model,
    outputs: Vec<Tensor>,
    output_roots: Vec<String>,
    input_root: String,
    output_root: String,
    trace: Trace,
}

fn run(name: &str) -> Run {
    let dir = root().join("fixtures/models").join(name);
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    let inputs: Vec<Tensor> = files(&dir, "input_")
        .iter()
        .map(|p| npy::read_tensor(&std::fs::read(p).expect("read")).expect("npy"))
        .collect();
    let opts = LoadOptions {
        name: name.into(),
        positional_shapes: inputs.iter().map(|t| t.shape_u64()).collect(),
        ..Default::default()
    };
    let model = load_model(&bytes, &opts).expect("load");
    let ex = execute_with(&model.program, &inputs, ExecOptions { node_roots: true, keep_all: false }).expect("execute");
    let trace = Trace::new(model.program_root, ex.input_root, ex.node_roots.clone().expect("roots"));
    Run {
        output_roots: ex.output_roots.iter().map(|r| r.to_string()).collect(),
        input_root: ex.input_root.to_string(),
        output_root: ex.output_root.to_string(),
        outputs: ex.outputs,
        model,
        trace,
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    t.as_f32().expect("f32 output").iter().map(|&v| f64::from(v)).collect()
}

fn golden_path() -> PathBuf {
    root().join("fixtures/golden/corpus_roots.json")
}

fn golden_entry(r: &Run) -> Value {
    json!({
        "program_root": r.model.program_root.to_string(),
        "input_root": r.input_root,
        "output_root": r.output_root,
        "output_roots": r.output_roots,
        "trace_root": r.trace.root.to_string(),
        "node_roots": r.trace.node_roots.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    })
}

#[test]
fn corpus_accuracy_and_golden_roots() {
    let bless = std::env::var("VERINFER_BLESS").is_ok_and(|v| v == "1");
    let golden: Value = if bless {
        json!({})
    } else {
        serde_json::from_str(&std::fs::read_to_string(golden_path()).expect("golden roots file")).expect("golden json")
    };
    let mut blessed = serde_json::Map::new();
    println!(
        "{:<12} {:>3} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "model", "out", "|ours-ORT|", "tolerance", "|ours-f64|", "|ORT-f64|", "ratio"
    );
    let mut failures = Vec::new();
    for name in MODELS {
        let r = run(name);
        let dir = root().join("fixtures/models").join(name);
        let ort = files(&dir, "output_");
        let f64s = files(&dir, "expected_f64_");
        assert_eq!(ort.len(), r.outputs.len(), "{name}: output count");
        for (i, out) in r.outputs.iter().enumerate() {
            let ours = as_f64(out);
            let ort_v = npy::parse(&std::fs::read(&ort[i]).expect("read")).expect("npy").to_f64_vec().expect("f64");
            let ref_v = npy::parse(&std::fs::read(&f64s[i]).expect("read")).expect("npy").to_f64_vec().expect("f64");
            assert_eq!(ours.len(), ort_v.len(), "{name} output {i}: element count");
            let max_ref = ort_v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let tol = 1e-5 * max_ref + 1e-6;
            let d_ort = max_abs_diff(&ours, &ort_v);
            let d_ours_ref = max_abs_diff(&ours, &ref_v);
            let d_ort_ref = max_abs_diff(&ort_v, &ref_v);
            println!(
                "{name:<12} {i:>3} {d_ort:>12.3e} {tol:>12.3e} {d_ours_ref:>12.3e} {d_ort_ref:>12.3e} {:>8.2}",
                d_ours_ref / d_ort_ref.max(f64::MIN_POSITIVE)
            );
            if d_ort > tol {
                failures.push(format!("{name} output {i}: max |ours − ORT| = {d_ort:e} > {tol:e}"));
            }
        }
        let entry = golden_entry(&r);
        if bless {
            blessed.insert(name.to_string(), entry);
        } else {
            let g = &golden[name];
            for key in ["program_root", "input_root", "output_root", "output_roots", "trace_root"] {
                if g[key] != entry[key] {
                    failures.push(format!("{name}: {key} differs from golden: {} vs {}", entry[key], g[key]));
                }
            }
            let gn = g["node_roots"].as_array().cloned().unwrap_or_default();
            let en = entry["node_roots"].as_array().cloned().unwrap_or_default();
            if gn.len() != en.len() {
                failures.push(format!("{name}: {} nodes, golden has {}", en.len(), gn.len()));
            }
            for (k, (a, b)) in en.iter().zip(&gn).enumerate() {
                if a != b {
                    failures
                        .push(format!("{name}: node {k} ({}) root differs from golden", r.model.program.nodes[k].name));
                    break;
                }
            }
        }
    }
    if bless {
        std::fs::create_dir_all(golden_path().parent().expect("parent")).expect("mkdir");
        std::fs::write(golden_path(), serde_json::to_string_pretty(&Value::Object(blessed)).expect("json") + "\n")
            .expect("write golden");
        println!("blessed {}", golden_path().display());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn repeated_and_concurrent_runs_are_identical() {
    for name in ["mlp", "lenet5", "gpt2", "bert_tiny"] {
        let a = run(name);
        let b = run(name);
        assert_eq!(a.trace.root, b.trace.root, "{name}: repeated run");
        assert_eq!(a.trace.node_roots, b.trace.node_roots, "{name}");
        let handles: Vec<_> = (0..2).map(|_| std::thread::spawn(move || run(name).trace.root)).collect();
        for h in handles {
            assert_eq!(h.join().expect("thread"), a.trace.root, "{name}: concurrent run");
        }
    }
}

#[test]
fn program_encoding_round_trips() {
    for name in ["mlp", "lenet5", "gpt2", "bert_tiny"] {
        let r = run(name);
        let bytes = r.model.program.to_bytes();
        let back = verinfer_prover::Program::from_bytes(&bytes).expect("decode");
        assert_eq!(back.root(), r.model.program_root, "{name}");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(verinfer_prover::Program::from_bytes(&extra).is_err(), "{name}: trailing byte accepted");
    }
}
