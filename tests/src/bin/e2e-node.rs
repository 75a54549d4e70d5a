//! A node process for the crash tests:
//! `e2e-node DATADIR [INTERVAL_MS] [--inject-fault SPEC] [--window-ms MS] [--clock-ms MS]`.
//!
//! Runs the node as `verinfer node --dev` does — the embedded settlement
//! layer with the dev parameters (or `--window-ms` / `--clock-ms`, fixed
//! when the datadir's settlement state is created), the sequencer bonded,
//! the defender on, the faucet and fault injection available — on
//! ephemeral loopback ports. Registers the corpus mlp (idempotent), prints
//! `READY <rpc addr> <mlp model id>` on stdout, serves until SIGTERM/SIGINT
//! (graceful) or SIGKILL (the point of the crash tests).
//! `E2E_INJECT_FAULT` is read when `--inject-fault` is not given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use verinfer_e2e::{model_bytes, test_config};
use verinfer_sequencer::{FastExecutor, RunningNode};

const USAGE: &str = "usage: e2e-node DATADIR [INTERVAL_MS] [--inject-fault SPEC] [--window-ms MS] [--clock-ms MS]";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut positional = Vec::new();
    let (mut fault, mut window, mut clock) = (std::env::var("E2E_INJECT_FAULT").ok(), None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value; {USAGE}"));
        match a.as_str() {
            "--inject-fault" => fault = Some(value("--inject-fault")?),
            "--window-ms" => window = Some(value("--window-ms")?.parse().context("--window-ms")?),
            "--clock-ms" => clock = Some(value("--clock-ms")?.parse().context("--clock-ms")?),
            _ if a.starts_with("--") => anyhow::bail!("unknown flag {a}; {USAGE}"),
            _ => positional.push(a),
        }
    }
    let datadir = positional.first().with_context(|| USAGE.to_string())?;
    let interval: u64 = positional.get(1).map(|s| s.parse()).transpose().context("INTERVAL_MS")?.unwrap_or(50);
    let mut cfg = test_config(std::path::Path::new(datadir));
    cfg.dev = true;
    cfg.batcher.interval_ms = interval;
    cfg.batcher.max_records = 256;
    cfg.metrics.listen = None;
    cfg.rpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.dev_options.inject_fault = fault.filter(|f| !f.is_empty());
    cfg.settlement.challenge_window_ms = window;
    cfg.settlement.clock_ms = clock;
    cfg.settlement.tick_ms = 50;
    let node = RunningNode::start_embedded(cfg, Arc::new(FastExecutor)).await?;
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
