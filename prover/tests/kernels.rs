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
        .filter(|p| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("input_") && f.ends_with(".npy")))
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
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/golden/corpus_roots.json")).expect("golden"))
            .expect("json");
    for name in MODELS {
        let (model, inputs) = model_inputs(name);
        let reference = execute_with(&model.program, &inputs, ExecOptions { node_roots: true, keep_all: false })
            .expect("reference");
        let ref_roots = reference.node_roots.clone().expect("roots");
        let g = &golden[name];
        let golden_nodes: Vec<String> =
            g["node_roots"].as_array().expect("golden nodes").iter().map(|v| v.as_str().expect("str").to_string()).collect();
        for isa in Isa::supported() {
            let opts = PlanOptions { isa: Some(isa), program_root: Some(model.program_root), ..Default::default() };
            let mut plan = Plan::with_options(&model.program, &opts).expect("plan");
            let (ex, trace) = plan.run_traced(&inputs).expect("traced run");
            let roots = ex.node_roots.clone().expect("node roots");
            for (i, (a, b)) in roots.iter().zip(&ref_roots).enumerate() {
                assert_eq!(
                    a, b,
                    "{name} [{isa}]: node {i} ({} {}) differs from the reference",
                    model.program.nodes[i].op.name(),
                    model.program.nodes[i].name
                );
                assert_eq!(a.to_string(), golden_nodes[i], "{name} [{isa}]: node {i} differs from golden");
            }
            assert_eq!(trace.root.to_string(), g["trace_root"].as_str().expect("trace root"), "{name} [{isa}]: trace root");
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
