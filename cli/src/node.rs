//! `verinfer node`: runs the sequencer node.
//!
//! Configuration comes from a TOML file (`--config`, every field optional)
//! and flags, which override the file. `--dev` starts on a temporary
//! datadir (unless `--datadir` is given) with the demo models (mlp, lenet5)
//! registered, and prints a curl command for a first inference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use verinfer_rpc::tensor::WireTensor;
use verinfer_sequencer::config::LogFormat;
use verinfer_sequencer::{FastExecutor, NodeConfig, RunningNode};
use verinfer_state::npy;

/// The demo models, embedded so that `--dev` works from any directory.
pub const DEV_MODELS: [(&str, &[u8], &[u8]); 2] = [
    (
        "mlp",
        include_bytes!("../../fixtures/models/mlp/model.onnx"),
        include_bytes!("../../fixtures/models/mlp/input_0.npy"),
    ),
    (
        "lenet5",
        include_bytes!("../../fixtures/models/lenet5/model.onnx"),
        include_bytes!("../../fixtures/models/lenet5/input_0.npy"),
    ),
];

/// Arguments of `verinfer node`.
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: temporary datadir (unless --datadir), demo models
    /// registered, a first curl command printed.
    #[arg(long)]
    pub dev: bool,
    /// RocksDB data directory.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// RPC address (HTTP and WebSocket), e.g. 127.0.0.1:8545.
    #[arg(long, value_name = "ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// Metrics address (`GET /metrics`); `off` disables.
    #[arg(long, value_name = "ADDR|off")]
    pub metrics_addr: Option<String>,
    /// Seal when this many records are pending.
    #[arg(long, value_name = "N")]
    pub batch_max_records: Option<u64>,
    /// Seal this long after the previous seal (ms).
    #[arg(long, value_name = "MS")]
    pub batch_interval_ms: Option<u64>,
    /// Mempool capacity (admitted, unanswered submissions).
    #[arg(long, value_name = "N")]
    pub mempool: Option<u32>,
    /// Execution worker threads (0 = one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Node-wide rate limit, calls per second (0 = unlimited).
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Rate-limit bucket size (0 = one second's worth).
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Largest request body in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u32>,
    /// Most entries in one JSON-RPC batch.
    #[arg(long, value_name = "N")]
    pub max_batch_len: Option<u32>,
    /// Most concurrent connections.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// A request body must arrive whole within this many ms of its headers
    /// (1..=86400000).
    #[arg(long, value_name = "MS")]
    pub request_body_timeout_ms: Option<u64>,
    /// Allowed CORS origin (repeatable; `*` for any, `none` for no CORS).
    #[arg(long = "cors", value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Log format (overrides `[log] format`).
    #[arg(long, value_name = "plain|json")]
    pub log_format: Option<String>,
    /// Dev only: corrupt chosen results so the dispute game has something
    /// to find, e.g. `every=3`, `request=2,node=4,element=42,step=0`
    /// (docs/node.md#fault-injection). Refused without --dev.
    #[arg(long, value_name = "SPEC")]
    pub inject_fault: Option<String>,
    /// Do not host the settlement layer (batches are sealed, not posted).
    #[arg(long)]
    pub no_settlement: bool,
    /// Print the effective configuration as TOML and exit: the file, the
    /// flags, `--log`/`VERINFER_LOG`/`RUST_LOG` and `--dev` applied, unset
    /// settlement parameters filled in from their preset (dev or
    /// production). What is only decided at start (a `--dev` temporary
    /// datadir, the sequencer key's account) is said in comments.
    #[arg(long)]
    pub print_config: bool,
    /// Check the datadir's store and exit (0: consistent): every batch's
    /// chain link, records root, inputs and outputs, receipt and inclusion
    /// proof, recomputed. The node must be stopped.
    #[arg(long, conflicts_with = "dev")]
    pub check: bool,
    /// The global `--log` (or `VERINFER_LOG`), which overrides `[log] filter`.
    #[arg(skip)]
    pub log: Option<String>,
}

/// Whether the node runs on a temporary datadir, created at start and
/// removed at exit.
fn temporary_datadir(args: &NodeArgs) -> bool {
    args.dev && args.datadir.is_none() && args.config.is_none()
}

/// `verinfer node --check`: opens the store (never creating one) and runs
/// its full consistency check.
fn check(datadir: &Path) -> Result<()> {
    // RocksDB would create an empty database where none is.
    if !datadir.join("CURRENT").is_file() {
        anyhow::bail!("--check: no database in {} (give the node's --datadir or --config)", datadir.display());
    }
    let store = verinfer_state::store::RocksStore::open_path(datadir, Default::default()).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("LOCK") || msg.contains("lock") {
            anyhow::anyhow!("--check: {} is in use; stop the node first ({msg})", datadir.display())
        } else {
            anyhow::anyhow!("--check: opening {}: {msg}", datadir.display())
        }
    })?;
    let t = std::time::Instant::now();
    let s = store.fsck().map_err(|e| anyhow::anyhow!("--check: {} is NOT consistent: {e}", datadir.display()))?;
    let head = s.head.map_or("none".to_string(), |h| format!("batch {} ({})", h.number, h.hash));
    println!("{}: consistent ({:.1} s)", datadir.display(), t.elapsed().as_secs_f64());
    println!("head             {head}");
    println!("batches          {}", s.batches);
    println!("batched records  {}", s.batched_records);
    println!("pending records  {}", s.pending);
    println!("next sequence    {}", s.next_sequence);
    let pruned = store.pruned().through_batch;
    if pruned > 0 {
        println!("pruned through   batch {pruned} (records checked, inputs and outputs deleted)");
    }
    Ok(())
}

/// Builds the effective configuration: defaults ← file ← flags ← `--log`
/// ← `RUST_LOG`.
pub fn effective_config(args: &NodeArgs) -> Result<NodeConfig> {
    effective_config_with(args, std::env::var("RUST_LOG").ok())
}

/// [`effective_config`] with `RUST_LOG`'s value given.
fn effective_config_with(args: &NodeArgs, rust_log: Option<String>) -> Result<NodeConfig> {
    let mut c = match &args.config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::default(),
    };
    c.dev = args.dev;
    if let Some(f) = &args.inject_fault {
        c.dev_options.inject_fault = Some(f.clone());
    }
    if args.no_settlement {
        c.settlement.enabled = false;
    }
    if args.dev && args.config.is_none() {
        // Short seals so that receipts turn `batched` quickly in a demo.
        c.batcher.interval_ms = 500;
    }
    if let Some(d) = &args.datadir {
        c.datadir = d.clone();
    }
    if let Some(a) = args.rpc_addr {
        c.rpc.listen = a;
    }
    if let Some(m) = &args.metrics_addr {
        c.metrics.listen = if m == "off" || m.is_empty() {
            None
        } else {
            Some(m.parse().with_context(|| format!("--metrics-addr {m:?}"))?)
        };
    }
    macro_rules! set {
        ($flag:expr, $field:expr) => {
            if let Some(v) = $flag {
                $field = v;
            }
        };
    }
    set!(args.batch_max_records, c.batcher.max_records);
    set!(args.batch_interval_ms, c.batcher.interval_ms);
    set!(args.mempool, c.mempool.capacity);
    set!(args.workers, c.exec.workers);
    set!(args.rate_limit, c.rpc.rate_limit_per_s);
    set!(args.rate_burst, c.rpc.rate_limit_burst);
    set!(args.max_body_bytes, c.rpc.max_request_body_bytes);
    set!(args.max_batch_len, c.rpc.max_batch_len);
    set!(args.max_connections, c.rpc.max_connections);
    set!(args.request_body_timeout_ms, c.rpc.request_body_timeout_ms);
    if !args.cors.is_empty() {
        c.rpc.cors_origins = args.cors.iter().filter(|o| o.as_str() != "none").cloned().collect();
    }
    if let Some(f) = &args.log_format {
        c.log.format = match f.as_str() {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            o => anyhow::bail!("--log-format {o:?}: expected plain or json"),
        };
    }
    if let Some(l) = &args.log {
        c.log.filter = l.clone();
    }
    // The logger takes RUST_LOG over everything when it parses (as
    // tracing's EnvFilter does); the configuration says so too.
    if let Some(l) = rust_log.filter(|l| tracing_subscriber::EnvFilter::try_new(l).is_ok()) {
        c.log.filter = l;
    }
    c.validate()?;
    Ok(c)
}

/// What `--print-config` prints for `cfg` (see the flag's help).
fn printed_config(args: &NodeArgs, cfg: &NodeConfig) -> Result<String> {
    let mut c = cfg.clone();
    let mut notes =
        vec!["# verinfer node: the effective configuration (file, flags, environment and --dev applied).".to_string()];
    if c.settlement.enabled {
        let preset = if c.dev { "Params::dev() (--dev)" } else { "Params::production()" };
        // Invalid parameters fail the node's start, which names them; here
        // they are printed as configured.
        if let Ok(p) = verinfer_sequencer::settlement::params_of(&c.settlement, c.dev) {
            let s = &mut c.settlement;
            s.chain_id = Some(p.chain_id);
            s.challenge_window_ms = Some(p.challenge_window_ms);
            s.clock_ms = Some(p.clock_ms);
            s.min_sequencer_bond = Some(p.min_sequencer_bond);
            s.challenger_bond = Some(p.challenger_bond);
            s.defender_stake = Some(p.defender_stake);
            s.dissection_exp = Some(p.dissection_exp);
        }
        c.settlement.auto_bond = Some(c.settlement.auto_bond.unwrap_or(c.dev));
        notes.push(format!(
            "# [settlement]: parameters the file leaves unset are filled in from {preset}. A datadir whose settlement \
             state exists keeps the parameters it was created with (settlement_info)."
        ));
        notes.push(
            "# sequencer_id: batch headers carry the sequencer key's account instead (key_file, created at first start)."
                .into(),
        );
        if !temporary_datadir(args) {
            c.settlement.key_file = Some(verinfer_sequencer::settlement::key_path(&c));
        }
    }
    let mut text = toml::to_string(&c)?;
    if temporary_datadir(args) {
        // A path made at start does not exist yet; printing the default
        // would name a directory this node never uses.
        text = text.lines().filter(|l| !l.starts_with("datadir = ")).map(|l| format!("{l}\n")).collect();
        notes.push(format!(
            "# datadir: a new temporary directory ({}/verinfer-dev-…/db), created at start and removed at exit \
             (--dev without --datadir or --config); key_file is in it.",
            std::env::temp_dir().display()
        ));
    }
    Ok(format!("{}\n{text}", notes.join("\n")))
}

/// The request file and curl command printed by `--dev`.
fn first_inference(dir: &Path, rpc: SocketAddr, model_id: &str, input_npy: &[u8]) -> Result<String> {
    let t = npy::read_tensor(input_npy).context("demo input")?;
    let req = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "infer_submit",
        "params": [{ "model_id": model_id, "inputs": [WireTensor::json(&t)] }],
    });
    let path = dir.join("mlp-request.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&req)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(format!("curl -s -X POST -H 'Content-Type: application/json' --data @{} http://{rpc}", path.display()))
}

/// Runs `verinfer node`.
pub fn run(args: NodeArgs) -> Result<()> {
    let mut cfg = effective_config(&args)?;
    if args.print_config {
        print!("{}", printed_config(&args, &cfg)?);
        return Ok(());
    }
    if args.check {
        return check(&cfg.datadir);
    }
    // `--dev` without --datadir: a temporary directory, removed at exit.
    let tmp = if temporary_datadir(&args) {
        let t = tempfile::Builder::new().prefix("verinfer-dev-").tempdir()?;
        cfg.datadir = t.path().join("db");
        Some(t)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rpc").build()?;
    rt.block_on(async move {
        let cross_check = cfg.exec.cross_check_folding;
        let guard_mib = crate::compile::ChildCompileCheck::limit_for(cfg.exec.max_model_mib);
        let compile_ms = cfg.exec.max_compile_ms;
        let node = RunningNode::start_embedded(cfg, Arc::new(FastExecutor)).await?;
        if cross_check {
            let check = crate::compile::ChildCompileCheck::current(guard_mib)?.with_deadline_ms(compile_ms);
            node.node.set_compile_check(Arc::new(check));
        }
        if args.dev {
            let mut curl = None;
            for (name, onnx, input) in DEV_MODELS {
                let n = node.node.clone();
                let info = tokio::task::spawn_blocking(move || n.register(name, onnx, &Default::default()))
                    .await?
                    .map_err(|e| anyhow::anyhow!("registering {name}: {}", e.message))?;
                println!("model {name}: {} (program {})", info.model_id, info.program_root);
                if name == "mlp" {
                    let dir =
                        tmp.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_else(|| node.node.cfg.datadir.clone());
                    curl = Some(first_inference(&dir, node.rpc_addr, &info.model_id.to_string(), input)?);
                }
            }
            println!("RPC (HTTP and WebSocket): http://{}", node.rpc_addr);
            if let Some(m) = node.metrics_addr {
                println!("metrics: http://{m}/metrics");
            }
            if let Some(c) = curl {
                println!("first inference:\n  {c}");
            }
            println!("then: verinfer receipt <request_id> --rpc http://{}", node.rpc_addr);
            if let Some(h) = &node.settlement {
                println!(
                    "settlement: sequencer {} (settlement_info, settlement_games; docs/rpc.md#settlement)",
                    h.account()
                );
            }
        }
        wait_for_signal().await;
        node.shutdown(Duration::from_secs(30)).await;
        drop(tmp);
        Ok::<(), anyhow::Error>(())
    })
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(args: &NodeArgs, rust_log: Option<&str>) -> String {
        let cfg = effective_config_with(args, rust_log.map(str::to_string)).expect("valid");
        printed_config(args, &cfg).expect("prints")
    }

    #[test]
    fn print_config_shows_the_dev_adjustments_and_the_log_filter() {
        let dev = NodeArgs { dev: true, log: Some("verinfer=debug".into()), ..Default::default() };
        let text = printed(&dev, None);
        assert!(text.contains("interval_ms = 500"), "{text}");
        assert!(text.contains("filter = \"verinfer=debug\""), "{text}");
        assert!(text.contains("challenge_window_ms = 120000") && text.contains("auto_bond = true"), "{text}");
        assert!(!text.contains("datadir = ") && text.contains("# datadir: a new temporary directory"), "{text}");
        // RUST_LOG wins, as in the logger.
        assert!(printed(&dev, Some("warn")).contains("filter = \"warn\""));
        // What is printed reads back as a configuration.
        let body: String = text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        let back = NodeConfig::from_toml(&body).expect("reads back");
        assert_eq!(back.batcher.interval_ms, 500);
    }

    #[test]
    fn print_config_without_dev_shows_the_production_settlement() {
        let args = NodeArgs { datadir: Some("/srv/v".into()), ..Default::default() };
        let text = printed(&args, None);
        assert!(text.contains("datadir = \"/srv/v\"") && text.contains("key_file = \"/srv/v/sequencer.key\""));
        assert!(text.contains("challenge_window_ms = 604800000") && text.contains("auto_bond = false"), "{text}");
        assert!(text.contains("interval_ms = 1000") && text.contains("filter = \"info\""), "{text}");
        let off = printed(&NodeArgs { no_settlement: true, ..Default::default() }, None);
        assert!(!off.contains("challenge_window_ms") && !off.contains("sequencer key"), "{off}");
    }
}
