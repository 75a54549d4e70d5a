//! Determinism of `verinfer run` across tract's CPU tiers: the same roots
//! (program, inputs, outputs, every node, trace) with tract's kernels forced
//! to the generic tier (`TRACT_CPU_ISA=-avx512f,-fma,…`) and without, and
//! equal to the committed golden roots (produced by a release build).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const GENERIC: &str = "-avx512f,-fma,-avx2,-f16c,-avx,-avx512vnni,-avx512fp16,-avxvnni,-amx-int8,-amx-bf16";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(model: &str, isa: Option<&str>) -> Value {
    let dir = root().join("fixtures/models").join(model);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("input_")))
        .collect();
    inputs.sort();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verinfer"));
    cmd.arg("run").arg(dir.join("model.onnx")).arg("--trace").arg("--json");
    for i in &inputs {
        cmd.arg("--input").arg(i);
    }
    cmd.env_remove("TRACT_CPU_ISA");
    if let Some(isa) = isa {
        cmd.env("TRACT_CPU_ISA", isa);
    }
    let out = cmd.output().expect("spawn verinfer");
    assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json output")
}

fn roots(v: &Value) -> Vec<String> {
    let mut r = vec![
        v["program_root"].to_string(),
        v["input_root"].to_string(),
        v["output_root"].to_string(),
        v["trace_root"].to_string(),
    ];
    for o in v["outputs"].as_array().expect("outputs") {
        r.push(o["root"].to_string());
    }
    for n in v["trace"].as_array().expect("trace") {
        r.push(n["root"].to_string());
    }
    r
}

#[test]
fn roots_do_not_depend_on_tract_cpu_tier_and_match_golden() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/golden/corpus_roots.json")).expect("golden file"),
    )
    .expect("golden json");
    for model in ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"] {
        let native = run(model, None);
        let generic = run(model, Some(GENERIC));
        assert_eq!(roots(&native), roots(&generic), "{model}: roots differ under TRACT_CPU_ISA");
        let g = &golden[model];
        assert_eq!(native["program_root"], g["program_root"], "{model}: program root vs golden");
        assert_eq!(native["trace_root"], g["trace_root"], "{model}: trace root vs golden");
        let nodes: Vec<&Value> = native["trace"].as_array().expect("trace").iter().map(|n| &n["root"]).collect();
        let gnodes: Vec<&Value> = g["node_roots"].as_array().expect("golden nodes").iter().collect();
        assert_eq!(nodes, gnodes, "{model}: node roots vs golden");
    }
}

#[test]
fn run_writes_outputs_and_reports_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = root().join("fixtures/models/mlp");
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .args(["run"])
        .arg(m.join("model.onnx"))
        .arg("--input")
        .arg(m.join("input_0.npy"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written =
        verinfer_state::npy::read_tensor(&std::fs::read(dir.path().join("output_0.npy")).expect("output file"))
            .expect("npy");
    assert_eq!(written.shape(), &[1, 10]);

    // A wrong-shaped input is a clear error naming the input, not a panic.
    let bad = dir.path().join("bad.npy");
    let t = verinfer_state::tensor::Tensor::from_f32(vec![1, 783], vec![0.0; 783]).expect("t");
    std::fs::write(&bad, verinfer_state::npy::write_tensor(&t)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("run")
        .arg(m.join("model.onnx"))
        .arg("--input")
        .arg(&bad)
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");

    // Not an ONNX file.
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("run")
        .arg(&bad)
        .arg("--input")
        .arg(&bad)
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ONNX") && !err.contains("panicked"), "{err}");

    // A malformed --shape.
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("run")
        .arg(m.join("model.onnx"))
        .args(["--shape", "input=1,x"])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--shape"), "{err}");
}

/// `verinfer compile` (what the node's registration guard runs in a child,
/// decision 0005) gives the golden program root for every corpus model with
/// tract forced to its generic kernels, reading the model from stdin.
#[test]
fn compile_from_stdin_under_generic_isa_gives_the_golden_program_roots() {
    use std::io::Write;
    let golden: Value =
        serde_json::from_slice(&std::fs::read(root().join("fixtures/golden/corpus_roots.json")).expect("golden roots"))
            .expect("golden json");
    for model in ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"] {
        let bytes = std::fs::read(root().join("fixtures/models").join(model).join("model.onnx")).expect("model");
        let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer"))
            .args(["compile", "-", "--json"])
            .env("TRACT_CPU_ISA", GENERIC)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn verinfer compile");
        child.stdin.take().expect("stdin").write_all(&bytes).expect("write model");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let expected = &golden[model]["program_root"];
        assert!(expected.is_string(), "golden file lacks {model}.program_root: {golden}");
        assert_eq!(&v["program_root"], expected, "{model}");
    }
}

#[test]
fn compile_reports_an_unreadable_model_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .args(["compile", "/nonexistent/model.onnx"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading model /nonexistent/model.onnx"), "{err}");
}
