//! The registration guard of decision 0005: a model whose second compile
//! (in `verinfer node`, a child process with tract's generic kernels) gives
//! another program root is refused with a clear error, a guard that cannot
//! run refuses the model (fail closed), and nothing is registered either way.

use std::sync::Arc;

use verinfer_e2e::play::api_err;
use verinfer_e2e::*;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_rpc::api::ModelApiClient;
use verinfer_rpc::error as codes;
use verinfer_sequencer::node::{CompileCheck, CompileCheckError};
use verinfer_state::hash::Hash32;

/// A guard that compiles in-process (agrees), flips a bit of the root
/// (disagrees) or fails.
#[derive(Debug)]
enum Guard {
    Agree,
    Disagree,
    Fail,
}

impl CompileCheck for Guard {
    fn program_root(&self, onnx: &[u8], opts: &LoadOptions) -> Result<Hash32, CompileCheckError> {
        let model = |e| CompileCheckError::Model(verinfer_sequencer::node::model_error(e));
        match self {
            Guard::Agree => load_model(onnx, opts).map(|m| m.program_root).map_err(model),
            Guard::Disagree => {
                let mut r = load_model(onnx, opts).map_err(model)?.program_root;
                r.0[0] ^= 1;
                Ok(r)
            }
            Guard::Fail => Err(CompileCheckError::Failed("child exited with status 1".into())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_folding_depends_on_the_cpu_is_refused() {
    for (guard, code, needle) in [
        (Guard::Disagree, codes::INVALID_MODEL, "constant folding of this model depends on the CPU"),
        (Guard::Fail, codes::INTERNAL, "constant-folding cross-check failed: child exited"),
    ] {
        let mut n = TestNode::start(|_| {}).await;
        n.running().node.set_compile_check(Arc::new(guard));
        let c = n.http();
        let e = api_err(c.register_model(register_request("mlp")).await.unwrap_err());
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(needle), "{}", e.message);
        assert!(c.list_models().await.unwrap().is_empty(), "nothing is registered");
        n.stop().await;
    }
    let mut n = TestNode::start(|_| {}).await;
    n.running().node.set_compile_check(Arc::new(Guard::Agree));
    let c = n.http();
    let info = c.register_model(register_request("lenet5")).await.expect("agreeing guard registers");
    assert_eq!(c.list_models().await.unwrap().len(), 1);
    // Idempotent re-registration does not need the guard again.
    assert!(c.register_model(register_request("lenet5")).await.unwrap().already_registered);
    assert_eq!(c.get_model(info.model_id).await.unwrap().program_root, info.program_root);
    n.stop().await;
}

/// A registration of one f32 element-wise `op` over an input of `dims`.
fn unary_model(name: &str, op: &str, dims: &[i64]) -> verinfer_rpc::types::RegisterModel {
    use verinfer_prover::onnx_builder::{Dim, OnnxBuilder};
    use verinfer_state::tensor::DType;
    let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Fixed(d)).collect();
    let onnx = OnnxBuilder::new(13)
        .input("x", DType::F32, &dims)
        .output("y", DType::F32, &dims)
        .node(op, &["x"], &["y"], &[])
        .build();
    register_onnx(name, &onnx)
}

/// A model the node could not plan within `exec.max_model_mib` is refused
/// before anything is stored (it used to be stored first, and a model that
/// could not be planned then stopped every restart); a stored model that no
/// longer fits after the limit is lowered is not served, and the node still
/// starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_above_the_memory_limit_is_refused_and_not_stored() {
    // Neg over a 65536×65536 f32 input: 16 GiB for each value.
    let huge = unary_model("huge", "Neg", &[65_536, 65_536]);
    // Default limit (2048 MiB); bodies large enough for MobileNetV2's 14 MB.
    let mut n = TestNode::start(|c| c.rpc.max_request_body_bytes = 32 << 20).await;
    let c = n.http();
    let e = api_err(c.register_model(huge).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("17179869184 bytes") && e.message.contains("exec.max_model_mib"), "{}", e.message);
    assert!(c.list_models().await.unwrap().is_empty(), "nothing is registered");
    // The node keeps serving.
    let lenet = c.register_model(register_request("lenet5")).await.expect("lenet5 registers");
    let mobilenet = c.register_model(register_request("mobilenetv2")).await.expect("mobilenetv2 registers");
    n.stop().await;

    // MobileNetV2's plan needs ~20 MiB: with an 8 MiB limit it is not
    // served after a restart, lenet5 (< 1 MiB) is, and the node starts.
    let mut cfg = test_config(&n.dir.path().join("db"));
    cfg.exec.max_model_mib = 8;
    cfg.rpc.max_request_body_bytes = 32 << 20;
    let node = verinfer_sequencer::RunningNode::start(
        cfg,
        Arc::new(verinfer_sequencer::FastExecutor),
        Arc::new(verinfer_sequencer::StubPoster::new()),
    )
    .await
    .expect("the node starts with a model it cannot plan in its store");
    n.node = Some(node);
    let c = n.http();
    assert_eq!(c.get_model(lenet.model_id).await.unwrap().program_root, lenet.program_root);
    let e = api_err(c.get_model(mobilenet.model_id).await.unwrap_err());
    assert_eq!(e.code, codes::UNKNOWN_MODEL, "{e:?}");
    n.stop().await;
}

/// A model whose inference takes more than `exec.max_model_msteps` million
/// fold steps is refused and not stored; the node keeps serving the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_above_the_compute_limit_is_refused_and_not_stored() {
    // lenet5 takes 0.44 M steps, mobilenetv2 320 M.
    let mut n = TestNode::start(|c| {
        c.rpc.max_request_body_bytes = 32 << 20;
        c.exec.max_model_msteps = 1;
    })
    .await;
    let c = n.http();
    let e = api_err(c.register_model(register_request("mobilenetv2")).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert_eq!(
        e.message,
        "model: one inference needs about 319945352 fold steps (multiply-adds and the like), above the limit of \
         1000000 (the node's exec.max_model_msteps)"
    );
    assert!(c.list_models().await.unwrap().is_empty(), "nothing is registered");
    c.register_model(register_request("lenet5")).await.expect("lenet5 registers");
    n.stop().await;
}

/// A model whose dispute would need more memory than the node allows is
/// refused, although its plan is small (found by an audit: `x[1] → Expand
/// to 4 MiB → 1,200 Adds` planned in 8 MiB, and one dispute over one of its
/// records made the defender's prover hold every node output and crashed
/// the node). The trace (every node output) and the longest fold of one
/// element are bounded, by `exec.max_trace_mib` and `exec.max_fold_steps`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_dispute_needs_too_much_memory_is_refused() {
    use verinfer_prover::onnx_builder::{Attr, Dim, OnnxBuilder};
    use verinfer_state::tensor::{DType, Tensor, TensorData};
    let expand = |numel: i64| {
        let shape = Tensor::new(vec![1], TensorData::I64(vec![numel])).expect("shape");
        OnnxBuilder::new(13).input("x", DType::F32, &[Dim::Fixed(1)]).initializer("shape", &shape).node(
            "Expand",
            &["x", "shape"],
            &["y0"],
            &[],
        )
    };
    // 300 values of 4 MiB: a 1.2 GiB trace, an 8 MiB plan.
    let (n_adds, numel) = (300, 1i64 << 20);
    let mut chain = expand(numel).output(&format!("y{n_adds}"), DType::F32, &[Dim::Fixed(numel)]);
    for i in 0..n_adds {
        let c = Tensor::from_f32(vec![1], vec![i as f32]).expect("c");
        chain = chain.initializer(&format!("c{i}"), &c).node(
            "Add",
            &[&format!("y{i}"), &format!("c{i}")],
            &[&format!("y{}", i + 1)],
            &[],
        );
    }
    // One element summing 2^21 values.
    let reduce =
        expand(1 << 21).output("y", DType::F32, &[]).node("ReduceSum", &["y0"], &["y"], &[("keepdims", Attr::Int(0))]);
    let mut n = TestNode::start(|_| {}).await;
    let c = n.http();
    let e = api_err(c.register_model(register_onnx("chain", &chain.build())).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("a dispute's trace") && e.message.contains("exec.max_trace_mib"), "{}", e.message);
    let e = api_err(c.register_model(register_onnx("reduce", &reduce.build())).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("2097152 steps") && e.message.contains("exec.max_fold_steps"), "{}", e.message);
    assert!(c.list_models().await.unwrap().is_empty(), "nothing is registered");
    n.stop().await;
}

/// Outputs that no answer could carry are refused before anything is
/// accepted (found by an audit: a tiny request to a model with huge outputs
/// was committed, then answered -32008, so the caller lost its request id
/// and a retry committed it again). Registration refuses outputs too big
/// even as base64; a submission asking for JSON outputs that could exceed
/// the response limit is refused, naming `output_encoding`, and nothing is
/// accepted; the same request with `b64` goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_too_big_for_an_answer_are_refused_before_acceptance() {
    use verinfer_rpc::api::{ExplorerApiClient, InferApiClient};
    use verinfer_rpc::tensor::{Encoding, WireTensor};
    use verinfer_rpc::types::SubmitRequest;
    use verinfer_state::tensor::Tensor;

    let relu = |n: i64| unary_model(&format!("relu{n}"), "Relu", &[1, n]);
    let mut n = TestNode::start(|c| c.rpc.max_response_body_bytes = 16 << 10).await;
    let c = n.http();
    // 10,000 f32 outputs: 53,336 bytes as base64, above 16 KiB.
    let e = api_err(c.register_model(relu(10_000)).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("even as base64") && e.message.contains("rpc.max_response_body_bytes"), "{}", e.message);
    // 1,000 f32 outputs: up to 20,096 bytes as JSON, 9,432 as base64.
    let info = c.register_model(relu(1_000)).await.expect("fits as base64");
    let x = WireTensor::b64(&Tensor::from_f32(vec![1, 1000], vec![0.5; 1000]).expect("tensor"));
    let req = |output_encoding| SubmitRequest { model_id: info.model_id, inputs: vec![x.clone()], output_encoding };
    let before = c.head().await.expect("head").next_sequence;
    let e = api_err(c.submit(req(Encoding::Json)).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_ARGUMENT, "{e:?}");
    assert!(
        e.message.starts_with("output_encoding: this model's outputs can take up to 20096 bytes as JSON"),
        "{}",
        e.message
    );
    assert_eq!(c.head().await.expect("head").next_sequence, before, "nothing was accepted");
    let ok = c.submit(req(Encoding::B64)).await.expect("b64 outputs fit");
    assert_eq!(ok.record.sequence, before);
    // explorer_record refuses before building an answer that could not be
    // sent (it used to build it whole first: many times the tensors' size).
    let opts = |encoding| Some(verinfer_rpc::types::RecordOptions { encoding });
    let e = api_err(c.record(ok.request_id, opts(Encoding::Json)).await.unwrap_err());
    assert_eq!(e.code, codes::OVERSIZED_RESPONSE, "{e:?}");
    assert!(e.message.contains("rpc.max_response_body_bytes (16384); ask for"), "{}", e.message);
    c.record(ok.request_id, opts(Encoding::B64)).await.expect("fits as base64");
    n.stop().await;
}

/// Anyone may register, and what a loaded model keeps grows with its
/// program, so the programs' total is bounded (`exec.max_total_model_mib`;
/// found by an audit: models of a few hundred ONNX bytes kept gigabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_beyond_the_total_program_limit_are_refused() {
    let mut n = TestNode::start(|c| {
        c.rpc.max_request_body_bytes = 32 << 20;
        c.exec.max_total_model_mib = 2;
    })
    .await;
    let c = n.http();
    c.register_model(register_request("lenet5")).await.expect("lenet5's program fits");
    let e = api_err(c.register_model(register_request("mobilenetv2")).await.unwrap_err());
    assert_eq!(e.code, codes::INVALID_MODEL, "{e:?}");
    assert!(e.message.contains("above the node's exec.max_total_model_mib (2)"), "{}", e.message);
    assert_eq!(c.list_models().await.unwrap().len(), 1, "only lenet5 is registered");
    // Re-registering what is there compiles nothing and is not refused.
    assert!(c.register_model(register_request("lenet5")).await.unwrap().already_registered);
    n.stop().await;
}
