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
use verinfer_sequencer::node::CompileCheck;
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
    fn program_root(&self, onnx: &[u8], opts: &LoadOptions) -> Result<Hash32, String> {
        match self {
            Guard::Agree => load_model(onnx, opts).map(|m| m.program_root).map_err(|e| e.to_string()),
            Guard::Disagree => {
                let mut r = load_model(onnx, opts).map_err(|e| e.to_string())?.program_root;
                r.0[0] ^= 1;
                Ok(r)
            }
            Guard::Fail => Err("child exited with status 1".into()),
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
