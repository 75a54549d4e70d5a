//! `verinfer challenger`: runs the challenger bot against a node.
//!
//! Configuration comes from a TOML file (`--config`, every field optional,
//! the fields of `verinfer_challenger::Config`) and flags, which override
//! the file. Design, persistence and metrics: docs/challenger.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use verinfer_challenger::{Config, Overrides, RunningChallenger};

/// Arguments of `verinfer challenger`.
#[derive(Debug, Args, Default)]
pub struct ChallengerArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's RPC URL (HTTP; the WebSocket URL is derived from it).
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
    /// Data directory (the challenger's RocksDB; its key unless --key).
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Signing key file (64 hex characters); created if missing.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Most value locked in open games' bonds at once (0: no cap).
    #[arg(long, value_name = "N")]
    pub bond: Option<u64>,
    /// Records re-executed at once (0: one per core).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Most games played at once (each holds a prover and its trace in
    /// memory); a dispute beyond it waits for one to end.
    #[arg(long, value_name = "N")]
    pub max_games: Option<usize>,
    /// Fraction of records re-executed, in [0, 1].
    #[arg(long, value_name = "RATE")]
    pub sample: Option<f64>,
    /// Prometheus metrics address (`GET /metrics`), e.g. 127.0.0.1:9101.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Dev nodes only: top the balance up from `settlement_faucet` at start.
    #[arg(long)]
    pub dev_faucet: bool,
    /// Local models (`DIR/*/model.onnx`) for nodes without `model_program`.
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Drill: dispute record INDEX of batch BATCH whatever re-execution says
    /// (`BATCH:INDEX`, repeatable; replaces the file's list). Disputing a
    /// correct record loses the bond.
    #[arg(long, value_name = "BATCH:INDEX")]
    pub force_dispute: Vec<String>,
    /// Log format: plain or json.
    #[arg(long, value_name = "plain|json")]
    pub log_format: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Defaults ← file ← flags.
pub fn effective_config(args: &ChallengerArgs) -> Result<Config> {
    let mut c = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => Config::default(),
    };
    c.apply(&Overrides {
        rpc: args.rpc.clone(),
        datadir: args.datadir.clone(),
        key: args.key.clone(),
        bond: args.bond,
        concurrency: args.concurrency,
        max_games: args.max_games,
        sample: args.sample,
        metrics: args.metrics,
        dev_faucet: args.dev_faucet,
        models_dir: args.models_dir.clone(),
        force_dispute: args.force_dispute.clone(),
        log_format: args.log_format.clone(),
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    c.validate().map_err(|e| anyhow::anyhow!(e))?;
    Ok(c)
}

/// Runs `verinfer challenger` until Ctrl-C / SIGTERM.
pub fn run(args: ChallengerArgs, cfg: Config) -> Result<()> {
    if args.print_config {
        print!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("challenger").build()?;
    rt.block_on(async move {
        let c = RunningChallenger::start(cfg).await?;
        println!("challenger account: {}", c.account);
        if let Some(m) = c.metrics_addr {
            println!("metrics: http://{m}/metrics");
        }
        crate::node::wait_for_signal().await;
        // Everything needed to resume is already persisted; stopping is
        // aborting.
        c.stop();
        Ok::<(), anyhow::Error>(())
    })
}
