//! `verinfer node`: dev-only options are refused without `--dev` (flag or
//! TOML), and a malformed fault spec is named. Every invocation gets its
//! own datadir, an ephemeral RPC port and no metrics port, and is killed if
//! it starts serving instead of exiting (a refused option must not start a
//! node). Also: a model whose compile would exhaust memory is refused by the
//! registration guard's memory-limited child while the node keeps serving,
//! and `node --check` verifies a stopped node's datadir.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn node(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("node")
        .arg("--datadir")
        .arg(dir.join("db"))
        .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "off"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VERINFER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verinfer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("`verinfer node {args:?}` kept running: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a non-zero exit, got {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn inject_fault_without_dev_is_refused_naming_dev() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(&node(dir.path(), &["--inject-fault", "every=2"]));
    assert!(err.contains("--dev") && err.contains("fault injection"), "{err}");
    assert!(!dir.path().join("db").exists(), "nothing was created");
}

#[test]
fn inject_fault_in_the_config_file_without_dev_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[dev]\ninject_fault = \"every=2\"\n").expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let err = refused(&node(dir.path(), &["--config", cfg]));
    assert!(err.contains("--dev") && err.contains("inject_fault"), "{err}");
}

#[test]
fn a_malformed_fault_spec_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(&node(dir.path(), &["--dev", "--inject-fault", "garbage"]));
    assert!(err.contains("garbage") && err.contains("key=value"), "{err}");
    let err = refused(&node(dir.path(), &["--dev", "--inject-fault", "every=2,node=4"]));
    assert!(err.contains("every=2,node=4") && err.contains("node, element and step"), "{err}");
}

#[test]
fn the_same_fault_spec_is_accepted_with_dev() {
    // The control: with --dev the options above are valid (checked without
    // starting a node).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = node(dir.path(), &["--dev", "--inject-fault", "every=2", "--print-config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(cfg.contains("inject_fault = \"every=2\""), "{cfg}");
}

/// A model whose lowering makes tract materialise a constant (a
/// `ConstantOfShape` of a constant 32768×32768 shape: gigabytes) fails in
/// the registration guard's memory-limited child, not in the node: the
/// registration gets INVALID_MODEL naming the allocation, and the node keeps
/// serving. `verinfer compile --max-memory-mib` exits 2 with `{"error"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_compile_exhausts_memory_fails_in_the_guard_not_the_node() {
    use verinfer_prover::onnx_builder::{Dim, OnnxBuilder};
    use verinfer_rpc::api::ModelApiClient;
    use verinfer_state::tensor::{DType, Tensor, TensorData};

    let shape = Tensor::new(vec![2], TensorData::I64(vec![32_768, 32_768])).expect("shape");
    let onnx = OnnxBuilder::new(13)
        .input("x", DType::F32, &[Dim::Fixed(1)])
        .output("y", DType::F32, &[Dim::Fixed(32_768), Dim::Fixed(32_768)])
        .initializer("s", &shape)
        .node("ConstantOfShape", &["s"], &["c"], &[])
        .node("Add", &["c", "x"], &["y"], &[])
        .build();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("big.onnx"), &onnx).expect("write model");

    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("compile")
        .arg(d.join("big.onnx"))
        .args(["--json", "--max-memory-mib", "1024"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run compile");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("allocate")), "{v}");

    // 64 MiB models: the guard's child gets 2 × 64 + 2048 MiB.
    let toml = format!(
        "datadir = \"{}\"\n[rpc]\nlisten = \"127.0.0.1:0\"\n[exec]\nmax_model_mib = 64\n",
        d.join("node").display()
    );
    let exe = Path::new(env!("CARGO_BIN_EXE_verinfer"));
    let (_node, url) = verinfer_e2e::proc::Proc::dev_node(exe, d, &toml, &[]);
    let c = verinfer_e2e::http_client(&url);
    let before = c.list_models().await.expect("models").len();
    let req = verinfer_e2e::register_onnx("big", &onnx);
    let e = verinfer_e2e::play::api_err(c.register_model(req).await.expect_err("refused"));
    assert_eq!(e.code, verinfer_rpc::error::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("allocate") && e.message.contains("2176 MiB"), "{}", e.message);
    assert_eq!(c.list_models().await.expect("the node still serves").len(), before, "nothing registered");
}

/// `verinfer node --check`: refuses a missing datadir (instead of creating
/// one) and a datadir in use, and passes on a datadir whose node was
/// SIGKILLed under load (the store is crash-consistent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_a_stopped_nodes_datadir() {
    use verinfer_rpc::api::{InferApiClient, ModelApiClient};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let db = d.join("node");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_verinfer"))
            .args(["node", "--check", "--datadir"])
            .arg(&db)
            .output()
            .expect("run check")
    };
    let err = refused(&check());
    assert!(err.contains("no database in"), "{err}");
    assert!(!db.exists(), "--check created nothing");

    let toml = format!("datadir = \"{}\"\n[rpc]\nlisten = \"127.0.0.1:0\"\n", db.display());
    let exe = Path::new(env!("CARGO_BIN_EXE_verinfer"));
    let (mut node, url) = verinfer_e2e::proc::Proc::dev_node(exe, d, &toml, &[]);
    let c = verinfer_e2e::http_client(&url);
    let mlp = c.list_models().await.expect("models").into_iter().find(|m| m.name == "mlp").expect("mlp");
    let x = verinfer_rpc::tensor::WireTensor::json(&verinfer_e2e::model_input("mlp"));
    for _ in 0..5 {
        let req = verinfer_rpc::types::SubmitRequest {
            model_id: mlp.model_id,
            inputs: vec![x.clone()],
            output_encoding: Default::default(),
        };
        c.submit(req).await.expect("submit");
    }
    let err = refused(&check());
    assert!(err.contains("is in use; stop the node first"), "{err}");

    node.kill();
    // Logs written to a file carry no terminal colour codes.
    assert!(!node.log_text().contains('\x1b'), "{}", node.log_text());
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(": consistent") && text.contains("next sequence    5"), "{text}");
}

/// A default node (the registration guard on: its child compiles first)
/// answers a refused model exactly as the in-process compile does: an op
/// outside the canonical set is UNSUPPORTED_OP naming the op and the model
/// by its registered name (it was INVALID_MODEL with `model: model -: …`,
/// the child's stdin name), and a symbolic input asks for `input_shapes`,
/// not the CLI's `--shape`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_keeps_the_in_process_code_and_message() {
    use verinfer_rpc::api::ModelApiClient;
    use verinfer_rpc::error as codes;

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let toml = format!("datadir = \"{}\"\n[rpc]\nlisten = \"127.0.0.1:0\"\n", d.join("node").display());
    let exe = Path::new(env!("CARGO_BIN_EXE_verinfer"));
    let (_node, url) = verinfer_e2e::proc::Proc::dev_node(exe, d, &toml, &[]);
    let c = verinfer_e2e::http_client(&url);
    let register = |name: &str, onnx: Vec<u8>| {
        let c = c.clone();
        let req = verinfer_e2e::register_onnx(name, &onnx);
        async move { verinfer_e2e::play::api_err(c.register_model(req).await.expect_err("refused")) }
    };

    let (sinh, refused) = verinfer_e2e::unsupported_op_model();
    let e = register("sinh", sinh).await;
    assert_eq!(e.code, codes::UNSUPPORTED_OP, "{e:?}");
    assert_eq!(e.message, refused);
    let e = register("sym", verinfer_e2e::symbolic_model()).await;
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.starts_with("input_shapes: model sym: input \"x\" has symbolic shape"), "{}", e.message);
    assert!(e.message.contains("in input_shapes, e.g. {\"x\": [1, 16]}"), "{}", e.message);
    assert!(!e.message.contains("--shape"), "{}", e.message);
}

/// A model whose compile never ends is refused after `exec.max_compile_ms`
/// and the node keeps registering (found by an audit: a 226-byte
/// LayerNormalization with axis -7 made tract spin for ever in the guard's
/// child, which held the registration lock, so every later registration
/// hung too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_that_never_ends_is_refused_at_the_deadline() {
    use verinfer_prover::onnx_builder::{Attr, Dim, OnnxBuilder};
    use verinfer_rpc::api::ModelApiClient;
    use verinfer_rpc::error as codes;
    use verinfer_state::tensor::{DType, Tensor};

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let toml = format!(
        "datadir = \"{}\"\n[rpc]\nlisten = \"127.0.0.1:0\"\n[exec]\nmax_compile_ms = 3000\n",
        d.join("node").display()
    );
    let exe = Path::new(env!("CARGO_BIN_EXE_verinfer"));
    let (_node, url) = verinfer_e2e::proc::Proc::dev_node(exe, d, &toml, &[]);
    let c = verinfer_e2e::http_client(&url);
    let ones = Tensor::from_f32(vec![8], vec![1.0; 8]).expect("t");
    let layer_norm = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(8)])
        .output("y", DType::F32, &[Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(8)])
        .initializer("g", &ones)
        .initializer("b", &ones)
        .node("LayerNormalization", &["x", "g", "b"], &["y"], &[("axis", Attr::Int(-7))])
        .build();
    let t = std::time::Instant::now();
    let e = verinfer_e2e::play::api_err(
        c.register_model(verinfer_e2e::register_onnx("ln", &layer_norm)).await.expect_err("refused"),
    );
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("took longer than 3000 ms (the node's exec.max_compile_ms)"), "{}", e.message);
    assert!(t.elapsed() < std::time::Duration::from_secs(30), "answered at the deadline");
    c.register_model(verinfer_e2e::register_request("mlp")).await.expect("the next registration goes through");
}

/// `--print-config` prints what the node would run with: `VERINFER_LOG`
/// (the global `--log`) and `--dev`'s short seals and dev settlement
/// parameters, and no `datadir` for the temporary one `--dev` makes at start.
#[test]
fn print_config_applies_the_environment_and_dev() {
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .args(["node", "--dev", "--print-config"])
        .env_remove("RUST_LOG")
        .env("VERINFER_LOG", "verinfer=debug")
        .output()
        .expect("run node --print-config");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("filter = \"verinfer=debug\"") && text.contains("interval_ms = 500"), "{text}");
    assert!(text.contains("challenge_window_ms = 120000") && text.contains("auto_bond = true"), "{text}");
    assert!(!text.contains("datadir = ") && text.contains("# datadir: a new temporary directory"), "{text}");
}
