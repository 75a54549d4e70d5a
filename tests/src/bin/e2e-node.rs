//! A node process for the crash test: `e2e-node DATADIR [INTERVAL_MS]`.
//! Registers the corpus mlp (idempotent), prints `READY <rpc addr>
//! <mlp model id>` on stdout, serves until SIGTERM/SIGINT (graceful) or
//! SIGKILL (the point of the crash test).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use verinfer_e2e::{model_bytes, test_config};
use verinfer_sequencer::{FastExecutor, RunningNode, StubPoster};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).with_writer(std::io::stderr).init();
    let mut args = std::env::args().skip(1);
    let datadir = args.next().ok_or_else(|| anyhow::anyhow!("usage: e2e-node DATADIR [INTERVAL_MS]"))?;
    let interval: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let mut cfg = test_config(std::path::Path::new(&datadir));
    cfg.batcher.interval_ms = interval;
    cfg.batcher.max_records = 256;
    cfg.metrics.listen = None;
    cfg.rpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let node = RunningNode::start(cfg, Arc::new(FastExecutor), Arc::new(StubPoster::new())).await?;
    let n = node.node.clone();
    let info = tokio::task::spawn_blocking(move || n.register("mlp", &model_bytes("mlp"), &Default::default()))
        .await?
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    println!("READY {} {}", node.rpc_addr, info.model_id);
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    node.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
