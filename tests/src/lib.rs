//! # verinfer-e2e
//!
//! Helpers for the end-to-end tests (`tests/tests/*.rs`): an in-process node
//! on loopback with a temporary datadir, RPC clients (HTTP and WebSocket),
//! a raw HTTP poster for malformed requests, and the corpus fixtures. The
//! crate also builds `e2e-node` (a node process for the crash test) and
//! `loadbench` (the load benchmark).

pub mod gate;
pub mod play;
pub mod proc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use verinfer_rpc::types::RegisterModel;
use verinfer_sequencer::{Executor, FastExecutor, NodeConfig, RunningNode, StubPoster};
use verinfer_state::tensor::Tensor;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A corpus model's ONNX bytes.
pub fn model_bytes(name: &str) -> Vec<u8> {
    let p = repo_root().join("fixtures/models").join(name).join("model.onnx");
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn read_npy(p: &Path) -> Tensor {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    verinfer_state::npy::read_tensor(&b).expect("fixture input decodes")
}

/// A corpus model's first input.
pub fn model_input(name: &str) -> Tensor {
    read_npy(&repo_root().join("fixtures/models").join(name).join("input_0.npy"))
}

/// Every input of a corpus model (`input_0.npy`, `input_1.npy`, …), in order.
pub fn model_inputs(name: &str) -> Vec<Tensor> {
    let dir = repo_root().join("fixtures/models").join(name);
    (0..).map(|k| dir.join(format!("input_{k}.npy"))).take_while(|p| p.exists()).map(|p| read_npy(&p)).collect()
}

/// `model_register` parameters for a corpus model.
pub fn register_request(name: &str) -> RegisterModel {
    register_onnx(name, &model_bytes(name))
}

/// A `model_register` request for `onnx` bytes, with no input shapes.
pub fn register_onnx(name: &str, onnx: &[u8]) -> RegisterModel {
    RegisterModel {
        name: name.into(),
        onnx_b64: base64::engine::general_purpose::STANDARD.encode(onnx),
        input_shapes: Default::default(),
    }
}

/// A one-node model whose op (Sinh) is outside the canonical op set, and
/// the message a node refuses it with (UNSUPPORTED_OP) when registered as
/// `sinh`, in-process or through the registration guard's child.
pub fn unsupported_op_model() -> (Vec<u8>, &'static str) {
    use verinfer_prover::onnx_builder::{Dim, OnnxBuilder};
    use verinfer_state::tensor::DType;
    let onnx = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(1), Dim::Fixed(4)])
        .output("y", DType::F32, &[Dim::Fixed(1), Dim::Fixed(4)])
        .node("Sinh", &["x"], &["y"], &[])
        .build();
    (onnx, "model sinh: node \"sinh_0\" uses op Sinh [ElementWiseOp(Sinh, None)], which is not in the canonical op set")
}

/// A Relu whose input has a symbolic batch dimension (`x: [batch, 4]`):
/// registering it needs `input_shapes`.
pub fn symbolic_model() -> Vec<u8> {
    use verinfer_prover::onnx_builder::{Dim, OnnxBuilder};
    use verinfer_state::tensor::DType;
    OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Sym("batch".into()), Dim::Fixed(4)])
        .output("y", DType::F32, &[Dim::Sym("batch".into()), Dim::Fixed(4)])
        .node("Relu", &["x"], &["y"], &[])
        .build()
}

/// A configuration for tests: loopback, ephemeral ports, short seals.
pub fn test_config(datadir: &Path) -> NodeConfig {
    let mut c = NodeConfig { datadir: datadir.to_path_buf(), ..Default::default() };
    c.rpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    c.batcher.interval_ms = 100;
    c.rpc.max_request_body_bytes = 4 << 20;
    c.rpc.max_batch_len = 8;
    c
}

/// An in-process node with its temporary datadir.
#[derive(Debug)]
pub struct TestNode {
    /// The running node.
    pub node: Option<RunningNode>,
    /// Its datadir (kept for reopening).
    pub dir: tempfile::TempDir,
}

impl TestNode {
    /// Starts a node with `tweak` applied to the test configuration.
    pub async fn start(tweak: impl FnOnce(&mut NodeConfig)) -> Self {
        Self::start_with(tweak, Arc::new(FastExecutor)).await
    }

    /// Starts a node with a custom executor.
    pub async fn start_with(tweak: impl FnOnce(&mut NodeConfig), exec: Arc<dyn Executor>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(&dir.path().join("db"));
        tweak(&mut cfg);
        let node = RunningNode::start(cfg, exec, Arc::new(StubPoster::new())).await.expect("node starts");
        Self { node: Some(node), dir }
    }

    /// Starts a node that hosts the embedded settlement layer (dev mode, so
    /// the faucet and fault injection are available), with `tweak` applied
    /// to the test configuration.
    pub async fn start_settled(tweak: impl FnOnce(&mut NodeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(&dir.path().join("db"));
        cfg.dev = true;
        tweak(&mut cfg);
        let node = RunningNode::start_embedded(cfg, Arc::new(FastExecutor)).await.expect("node starts");
        Self { node: Some(node), dir }
    }

    /// Stops the node gracefully and starts it again on the same datadir
    /// with `cfg` (e.g. the configuration it ran with).
    pub async fn restart_settled(&mut self, cfg: NodeConfig) {
        self.stop().await;
        let node = RunningNode::start_embedded(cfg, Arc::new(FastExecutor)).await.expect("node restarts");
        self.node = Some(node);
    }

    /// The running node.
    pub fn running(&self) -> &RunningNode {
        self.node.as_ref().expect("node running")
    }

    /// `http://addr`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.running().rpc_addr)
    }

    /// An HTTP client.
    pub fn http(&self) -> HttpClient {
        http_client(&self.http_url())
    }

    /// A WebSocket client.
    pub async fn ws(&self) -> WsClient {
        WsClientBuilder::default()
            .max_request_size(64 << 20)
            .max_response_size(64 << 20)
            .build(format!("ws://{}", self.running().rpc_addr))
            .await
            .expect("ws connects")
    }

    /// Gracefully stops the node.
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown(Duration::from_secs(10)).await;
        }
    }
}

/// An HTTP client for `url` with generous limits.
pub fn http_client(url: &str) -> HttpClient {
    HttpClientBuilder::default()
        .max_request_size(64 << 20)
        .max_response_size(64 << 20)
        .request_timeout(Duration::from_secs(60))
        .build(url)
        .expect("http client")
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header block.
    pub headers: String,
    /// Body.
    pub body: String,
}

impl RawResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// POSTs `body` to `addr` over a fresh connection, with arbitrary bytes
/// (malformed JSON, oversized bodies), and reads the whole response.
pub async fn raw_post(addr: SocketAddr, body: &[u8], extra_headers: &str) -> std::io::Result<RawResponse> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    // The server may answer (and close) before reading a large body.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

/// Sends an arbitrary HTTP request (e.g. a CORS preflight).
pub async fn raw_request(addr: SocketAddr, request: &str) -> std::io::Result<RawResponse> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> std::io::Result<RawResponse> {
    let text = String::from_utf8_lossy(buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // Chunked bodies: join the chunks.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    Ok(RawResponse { status, headers: head.to_string(), body })
}

/// GETs `http://addr/path` and returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<RawResponse> {
    raw_request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await
}
