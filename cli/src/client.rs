//! Client subcommands: `verinfer submit`, `receipt`, `batch`, `models`.
//! They talk to a node over HTTP JSON-RPC (`--rpc`, default
//! `http://127.0.0.1:8545`, or `VERINFER_RPC`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use verinfer_rpc::api::{ExplorerApiClient, InferApiClient, ModelApiClient};
use verinfer_rpc::error::ApiError;
use verinfer_rpc::tensor::{Encoding, WireTensor};
use verinfer_rpc::types::*;
use verinfer_state::hash::Hash32;
use verinfer_state::npy;
use verinfer_state::receipt::Status;

/// Where the node is.
#[derive(Debug, Args, Clone)]
pub struct RpcArgs {
    /// The node's RPC URL.
    #[arg(long, env = "VERINFER_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The node URL of this invocation, for transport error messages.
static RPC_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn client(a: &RpcArgs) -> Result<HttpClient> {
    let _ = RPC_URL.set(a.rpc.clone());
    HttpClientBuilder::default()
        .max_request_size(64 << 20)
        .max_response_size(64 << 20)
        .request_timeout(Duration::from_secs(120))
        .build(&a.rpc)
        .with_context(|| format!("connecting to {}", a.rpc))
}

/// Turns a client error into a readable one (code name and message).
fn rpc_err(e: verinfer_rpc::jsonrpsee::core::ClientError) -> anyhow::Error {
    match e {
        verinfer_rpc::jsonrpsee::core::ClientError::Call(obj) => {
            let api = ApiError::from(obj);
            let name = verinfer_rpc::error::name(api.code).unwrap_or("ERROR");
            match api.retry_after_ms {
                Some(ms) => anyhow::anyhow!("{name} ({}): {} (retry after {ms} ms)", api.code, api.message),
                None => anyhow::anyhow!("{name} ({}): {}", api.code, api.message),
            }
        }
        other => {
            let url = RPC_URL.get().map_or("the node", String::as_str);
            anyhow::anyhow!("{url} (--rpc / VERINFER_RPC): {other}")
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Batched { batch, index } => format!("batched (batch {batch}, index {index})"),
        Status::Disputed => "disputed (a dispute game on this result is open)".into(),
        Status::Fraudulent => "fraudulent: the referee VOIDED this result (a challenger proved it wrong)".into(),
        other => other.name().to_string(),
    }
}

/// Resolves a model given as a 0x-hex id or a registered name.
async fn resolve_model(c: &HttpClient, m: &str) -> Result<Hash32> {
    if let Ok(h) = Hash32::from_hex(m) {
        return Ok(h);
    }
    let models = c.list_models().await.map_err(rpc_err)?;
    let found: Vec<&ModelInfo> = models.iter().filter(|i| i.name == m).collect();
    match found.as_slice() {
        [one] => Ok(one.model_id),
        [] => bail!("no model named {m:?} (see `verinfer models`)"),
        _ => bail!("several models are named {m:?}; give the model id"),
    }
}

/// `verinfer models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Lists registered models.
pub async fn models(a: ModelsArgs) -> Result<()> {
    let c = client(&a.rpc)?;
    let models = c.list_models().await.map_err(rpc_err)?;
    if a.rpc.json {
        return print_json(&models);
    }
    if models.is_empty() {
        println!("no models registered");
    }
    for m in models {
        let sig = |v: &[verinfer_state::model::TensorSpec]| {
            v.iter().map(|s| format!("{}:{}{:?}", s.name, s.dtype, s.shape)).collect::<Vec<_>>().join(", ")
        };
        println!("{}  {}", m.model_id, m.name);
        println!("    program {}  ({} nodes)", m.program_root, m.nodes);
        println!("    inputs  {}", sig(&m.inputs));
        println!("    outputs {}", sig(&m.outputs));
    }
    Ok(())
}

/// `verinfer submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Model id (0x…) or name.
    #[arg(long, short = 'm')]
    model: String,
    /// Input `.npy` files in the model's input order.
    #[arg(long = "input", short = 'i', value_name = "FILE.npy", num_args = 1.., required = true)]
    inputs: Vec<PathBuf>,
    /// Send inputs as base64 (compact for large tensors).
    #[arg(long)]
    b64: bool,
    /// Write output `i` as `DIR/output_i.npy`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Wait until the request is batched and print its receipt.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Submits one inference.
pub async fn submit(a: SubmitArgs) -> Result<()> {
    let c = client(&a.rpc)?;
    let model_id = resolve_model(&c, &a.model).await?;
    let mut inputs = Vec::new();
    for p in &a.inputs {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let t = npy::read_tensor(&b).with_context(|| format!("input {}", p.display()))?;
        inputs.push(if a.b64 { WireTensor::b64(&t) } else { WireTensor::json(&t) });
    }
    // Before submitting: a bad --out must not cost an accepted request.
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    }
    let req = SubmitRequest { model_id, inputs, output_encoding: Encoding::B64 };
    let resp = c.submit(req).await.map_err(rpc_err)?;
    let mut outputs = Vec::new();
    for (i, w) in resp.outputs.iter().enumerate() {
        outputs.push(w.decode_output(&format!("outputs[{i}]")).map_err(|e| anyhow::anyhow!("{}", e.message))?);
    }
    if let Some(dir) = &a.out {
        for (i, t) in outputs.iter().enumerate() {
            let p = dir.join(format!("output_{i}.npy"));
            std::fs::write(&p, npy::write_tensor(t)).with_context(|| {
                format!("request {} was accepted, but writing {} failed", resp.request_id, p.display())
            })?;
        }
    }
    let receipt = if a.wait { Some(wait_batched(&c, resp.request_id).await?) } else { None };
    if a.rpc.json {
        let shown: Vec<WireTensor> = outputs.iter().map(WireTensor::json).collect();
        return print_json(&serde_json::json!({
            "request_id": resp.request_id,
            "status": receipt.as_ref().map_or(resp.status, |r| r.status),
            "record": resp.record,
            "outputs": shown,
            "receipt": receipt,
        }));
    }
    println!("request   {}", resp.request_id);
    println!("status    {}", status_text(&receipt.as_ref().map_or(resp.status, |r| r.status)));
    println!("sequence  {}", resp.record.sequence);
    println!("inputs    {}", resp.record.input_root);
    println!("outputs   {}", resp.record.output_root);
    for (i, t) in outputs.iter().enumerate() {
        let preview = match t.as_f32() {
            Some(v) => {
                let head: Vec<String> = v.iter().take(10).map(|x| format!("{x}")).collect();
                let argmax = v
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| format!("  argmax {i}"))
                    .unwrap_or_default();
                format!("[{}{}]{argmax}", head.join(", "), if v.len() > 10 { ", …" } else { "" })
            }
            None => format!("{t:?}"),
        };
        println!("output {i}  {}{:?} {preview}", t.dtype(), t.shape());
    }
    Ok(())
}

async fn wait_batched(c: &HttpClient, id: Hash32) -> Result<verinfer_state::receipt::Receipt> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = c.receipt(id).await.map_err(rpc_err)?;
        if r.status != Status::Pending {
            return Ok(r);
        }
        if std::time::Instant::now() > deadline {
            bail!("request {id} still pending after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `verinfer receipt`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The request id.
    request_id: String,
    /// Wait until batched.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Shows a receipt and, once batched, checks its inclusion proof against
/// the batch header locally.
pub async fn receipt(a: ReceiptArgs) -> Result<()> {
    let c = client(&a.rpc)?;
    let id = Hash32::from_hex(&a.request_id).map_err(|e| {
        anyhow::anyhow!("request id {:?}: {}", a.request_id, Hash32::explain_hex_error(&a.request_id, &e))
    })?;
    let r = if a.wait { wait_batched(&c, id).await? } else { c.receipt(id).await.map_err(rpc_err)? };
    let verified = match &r.inclusion {
        Some(inc) => {
            let batch = c.batch(inc.batch).await.map_err(rpc_err)?;
            let rec = c.record(id, None).await.map_err(rpc_err)?;
            Some(inc.verify(&batch.header, &rec.record).map(|_| batch.hash).map_err(|e| e.to_string()))
        }
        None => None,
    };
    if a.rpc.json {
        return print_json(&serde_json::json!({
            "receipt": r,
            "proof_verified": verified.as_ref().map(|v| v.is_ok()),
            "void": r.status == Status::Fraudulent,
        }));
    }
    for line in receipt_text(&r.request_id, &r.status, verified) {
        println!("{line}");
    }
    Ok(())
}

/// The text of `verinfer receipt`. The inclusion proof shows only that the
/// record is in the batch; for a voided record it must not read as if the
/// result were good.
fn receipt_text(request_id: &Hash32, status: &Status, verified: Option<Result<Hash32, String>>) -> Vec<String> {
    let proof = match (verified, status) {
        (Some(Ok(h)), Status::Fraudulent) => format!(
            "proof    verified against batch header {h}: the record is in the batch, but the referee voided its \
             result; do not use its outputs"
        ),
        (Some(Ok(h)), _) => format!("proof    verified against batch header {h}"),
        (Some(Err(e)), _) => format!("proof    DOES NOT VERIFY: {e}"),
        (None, _) => "proof    none yet (pending: durable against a node crash, not yet committed to a batch)".into(),
    };
    vec![format!("request  {request_id}"), format!("status   {}", status_text(status)), proof]
}

/// `verinfer batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Batch number (default: the head).
    number: Option<u64>,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Shows a batch header and its records.
pub async fn batch(a: BatchArgs) -> Result<()> {
    let c = client(&a.rpc)?;
    let number = match a.number {
        Some(n) => n,
        None => match c.head().await.map_err(rpc_err)?.head {
            Some(h) => h.number,
            None => bail!("no batch sealed yet"),
        },
    };
    let b = c.batch(number).await.map_err(rpc_err)?;
    if a.rpc.json {
        return print_json(&b);
    }
    let h = &b.header;
    println!("batch      {}", h.number);
    println!("hash       {}", b.hash);
    println!("parent     {}", h.parent_hash);
    println!("records    {} (root {})", h.record_count, h.records_root);
    println!("timestamp  {} ms", h.timestamp_ms);
    println!("sequencer  {}", h.sequencer);
    for (i, r) in b.records.iter().enumerate().take(20) {
        println!("  {i:>5}  {}  seq {}", r.request_id, r.sequence);
    }
    if b.records.len() > 20 {
        println!("  … {} more (use --json)", b.records.len() - 20);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voided_result_does_not_read_as_verified() {
        let (id, h) = (Hash32([1; 32]), Hash32([2; 32]));
        let text = receipt_text(&id, &Status::Fraudulent, Some(Ok(h))).join("\n");
        assert!(text.contains("status   fraudulent: the referee VOIDED this result"), "{text}");
        assert!(text.contains("the record is in the batch, but the referee voided its result"), "{text}");
        let ok = receipt_text(&id, &Status::Final, Some(Ok(h))).join("\n");
        assert!(ok.ends_with(&format!("proof    verified against batch header {h}")), "{ok}");
        assert!(!ok.contains("void"), "{ok}");
    }
}
