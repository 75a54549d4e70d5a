//! Node configuration: a TOML file (every field optional, `#[serde(default)]`)
//! and command-line flags that override it (the CLI applies them).
//!
//! A sketch of the common keys; `docs/node.md` lists every key with its
//! default.
//!
//! ```toml
//! datadir = "/var/lib/verinfer"
//!
//! [rpc]
//! listen = "127.0.0.1:8545"          # HTTP and WebSocket on one port
//! max_request_body_bytes = 33554432  # 32 MiB (a base64 mobilenetv2 is ~19 MiB)
//! max_response_body_bytes = 33554432
//! request_body_timeout_ms = 30000     # the whole body within this of the headers
//! max_batch_len = 64                 # entries per JSON-RPC batch
//! max_connections = 1024
//! max_subscriptions_per_connection = 1024
//! rate_limit_per_s = 0               # node-wide, 0 = unlimited
//! rate_limit_burst = 0               # bucket size (0 = one second's worth)
//! cors_origins = ["*"]               # [] = no CORS headers
//!
//! [metrics]
//! listen = "127.0.0.1:9615"          # Prometheus text at /metrics; "" = off
//!
//! [mempool]
//! capacity = 4096                    # admitted, unanswered submissions
//!
//! [exec]
//! workers = 0                        # 0 = one per core
//! max_model_mib = 2048               # refuse models whose plan needs more; 0 = no limit
//! max_model_msteps = 100000          # refuse models whose inference takes more million steps; 0 = no limit
//! max_trace_mib = 1024               # refuse models whose node outputs (a dispute's trace) take more; 0 = no limit
//! max_fold_steps = 1048576           # refuse models with an output element folding more steps; 0 = no limit
//! max_compile_ms = 120000            # refuse models the guard's child cannot compile in time; 0 = no limit
//! max_total_model_mib = 4096         # refuse a registration taking all programs above this; 0 = no limit
//!
//! [batcher]
//! max_records = 4096                 # seal when this many are pending…
//! interval_ms = 1000                 # …or this long after the last seal
//!
//! [log]
//! format = "plain"                   # or "json"
//!
//! [settlement]                       # the embedded referee (docs/node.md)
//! enabled = true
//! challenge_window_ms = 120000       # unset: Params::dev() with --dev, else production
//! tick_ms = 250                      # settle windows / check games this often
//! key_file = "…/sequencer.key"       # default: <datadir>/sequencer.key
//! auto_bond = false                  # default: true with --dev
//! defender_cache_mib = 1024          # dispute provers kept between moves
//! defender_threads = 0               # games defended at once; 0 = one per core
//!
//! [dev]                              # refused unless the node runs with --dev
//! inject_fault = "every=3"           # docs/node.md#fault-injection
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use verinfer_state::hash::Hash32;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The RocksDB directory (created if missing).
    pub datadir: PathBuf,
    /// The 32-byte id written into every batch header when the embedded
    /// settlement is off; with it on (the default) headers name the
    /// sequencer key's account instead (the referee checks
    /// `header.sequencer == sender`).
    pub sequencer_id: Hash32,
    /// RPC server.
    pub rpc: RpcConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Mempool.
    pub mempool: MempoolConfig,
    /// Execution workers.
    pub exec: ExecConfig,
    /// Batcher.
    pub batcher: BatcherConfig,
    /// Logging.
    pub log: LogConfig,
    /// The embedded settlement layer.
    pub settlement: SettlementConfig,
    /// Development-only options (refused unless [`NodeConfig::dev`]); TOML
    /// section `[dev]`.
    #[serde(rename = "dev")]
    pub dev_options: DevConfig,
    /// Development mode. Only the `--dev` flag (or a test harness) sets it,
    /// never a config file, so that a TOML file alone cannot switch on
    /// dev-only features (faucet, fault injection).
    #[serde(skip)]
    pub dev: bool,
}

/// The default sequencer id of a dev node: `"verinfer-dev-sequencer"`,
/// zero-padded to 32 bytes.
pub fn dev_sequencer_id() -> Hash32 {
    let mut b = [0u8; 32];
    let name = b"verinfer-dev-sequencer";
    b[..name.len()].copy_from_slice(name);
    Hash32(b)
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            datadir: PathBuf::from("verinfer-data"),
            sequencer_id: dev_sequencer_id(),
            rpc: RpcConfig::default(),
            metrics: MetricsConfig::default(),
            mempool: MempoolConfig::default(),
            exec: ExecConfig::default(),
            batcher: BatcherConfig::default(),
            log: LogConfig::default(),
            settlement: SettlementConfig::default(),
            dev_options: DevConfig::default(),
            dev: false,
        }
    }
}

/// RPC server settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Address for HTTP and WebSocket.
    pub listen: SocketAddr,
    /// Largest request body (bytes).
    pub max_request_body_bytes: u32,
    /// Largest response body (bytes).
    pub max_response_body_bytes: u32,
    /// Most entries in one JSON-RPC batch.
    pub max_batch_len: u32,
    /// Most concurrent connections.
    pub max_connections: u32,
    /// Most subscriptions per WebSocket connection.
    pub max_subscriptions_per_connection: u32,
    /// Node-wide calls per second (every call, including each batch entry);
    /// 0 = unlimited.
    pub rate_limit_per_s: u32,
    /// Token-bucket size; 0 = `rate_limit_per_s`.
    pub rate_limit_burst: u32,
    /// Allowed CORS origins; `["*"]` allows any, `[]` sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// A request body must arrive whole within this many ms of its headers,
    /// or the node answers HTTP 408 with -32700 naming this setting: a
    /// client cannot hold a connection (or a buffered body) open by
    /// sending slowly. 1..=86400000.
    pub request_body_timeout_ms: u64,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_request_body_bytes: 32 << 20,
            max_response_body_bytes: 32 << 20,
            max_batch_len: 64,
            max_connections: 1024,
            max_subscriptions_per_connection: 1024,
            rate_limit_per_s: 0,
            rate_limit_burst: 0,
            cors_origins: vec!["*".into()],
            request_body_timeout_ms: 30_000,
        }
    }
}

/// Metrics endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address for `GET /metrics`; `None` (or `""` in TOML) disables it.
    #[serde(with = "opt_addr")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: Some(SocketAddr::from(([127, 0, 0, 1], 9615))) }
    }
}

mod opt_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Mempool settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most submissions admitted and not yet answered; beyond it a
    /// submission is answered `BUSY` with a retry hint.
    pub capacity: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self { capacity: 4096 }
    }
}

/// Execution settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// Worker threads; 0 = one per core.
    pub workers: u32,
    /// Compile every newly registered model a second time in a child
    /// process with tract's generic kernels and refuse it if the program
    /// roots differ (docs/decisions/0005). Used by `verinfer node`.
    pub cross_check_folding: bool,
    /// Refuse to register a model whose plan (one value, or packed weights
    /// plus one worker's arena and scratch) needs more than this many MiB;
    /// 0 = no limit. Each worker holds its own arena, so a model can take
    /// up to `workers ×` this.
    pub max_model_mib: u64,
    /// Refuse to register a model whose one inference takes more than this
    /// many million fold steps (about its multiply-adds; mobilenetv2 takes
    /// 320); 0 = no limit. Each request occupies a worker for its whole
    /// run, so this bounds how long one request can hold one.
    pub max_model_msteps: u64,
    /// Refuse to register a model when the programs of all loaded models
    /// would then take more than this many MiB (what a model keeps in
    /// memory and on disk grows with its program, and anyone may register);
    /// 0 = no limit. Models already stored still load at start.
    pub max_total_model_mib: u64,
    /// Refuse to register a model whose node outputs take more than this
    /// many MiB in all (mobilenetv2: 88); 0 = no limit. A dispute over one
    /// of its records holds every node's output at once (the defender's
    /// prover), so this bounds a dispute's memory, which the plan's arena
    /// does not (docs/decisions/0018).
    pub max_trace_mib: u64,
    /// Refuse to register a model with an output element that folds more
    /// than this many steps (a MatMul's contracted length, a reduction's
    /// size); 0 = no limit. A dispute holds the state after each step of
    /// the element it pins, about 200 bytes each.
    pub max_fold_steps: u64,
    /// Refuse a model whose compile in the registration guard's child
    /// (`cross_check_folding`) takes longer than this many ms; 0 = no
    /// limit. tract can spin for ever on some malformed attributes, and
    /// registrations run one at a time, so one such model would otherwise
    /// block every later registration.
    pub max_compile_ms: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            cross_check_folding: true,
            max_model_mib: 2048,
            max_model_msteps: 100_000,
            max_total_model_mib: 4096,
            max_trace_mib: 1024,
            max_fold_steps: 1 << 20,
            max_compile_ms: 120_000,
        }
    }
}

impl ExecConfig {
    /// [`ExecConfig::max_model_mib`] in bytes, `None` for no limit.
    pub fn memory_limit(&self) -> Option<u64> {
        verinfer_prover::fast::PlanOptions::memory_limit_mib(self.max_model_mib)
    }

    /// [`ExecConfig::max_total_model_mib`] in bytes, `None` for no limit.
    pub fn total_model_limit(&self) -> Option<u64> {
        verinfer_prover::fast::PlanOptions::memory_limit_mib(self.max_total_model_mib)
    }

    /// Both model limits.
    pub fn limits(&self) -> crate::exec::Limits {
        crate::exec::Limits {
            memory: self.memory_limit(),
            steps: verinfer_prover::fast::PlanOptions::step_limit_m(self.max_model_msteps),
            trace: verinfer_prover::fast::PlanOptions::memory_limit_mib(self.max_trace_mib),
            fold: verinfer_prover::fast::PlanOptions::fold_limit_of(self.max_fold_steps),
        }
    }

    /// The worker count to use.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers as usize
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        }
    }
}

/// Batcher settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatcherConfig {
    /// Seal as soon as this many records are pending (at most 2^20).
    pub max_records: u64,
    /// Seal whatever is pending this long after the previous seal (ms).
    pub interval_ms: u64,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self { max_records: 4096, interval_ms: 1000 }
    }
}

/// Log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Plain or JSON.
    pub format: LogFormat,
    /// Filter (`info`, `verinfer_sequencer=debug`, …).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Plain, filter: "info".into() }
    }
}

/// The embedded settlement layer (`docs/node.md#settlement`). Unset
/// parameters come from `Params::dev()` with `--dev`, `Params::production()`
/// otherwise. They are fixed when the settlement state is first created in
/// the datadir; later changes to them are ignored (with a warning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettlementConfig {
    /// Host the referee in-process and post batches to it.
    pub enabled: bool,
    /// Signed-transaction domain.
    pub chain_id: Option<u64>,
    /// Challenge window per batch (ms).
    pub challenge_window_ms: Option<u64>,
    /// Chess clock per side (ms).
    pub clock_ms: Option<u64>,
    /// Minimum sequencer bond.
    pub min_sequencer_bond: Option<u64>,
    /// Challenger bond per game.
    pub challenger_bond: Option<u64>,
    /// Defender stake per game.
    pub defender_stake: Option<u64>,
    /// Dissection exponent (degree `2^d`).
    pub dissection_exp: Option<u32>,
    /// How often the node ticks the referee (settles windows) and checks
    /// its games (ms).
    pub tick_ms: u64,
    /// The sequencer's ed25519 key (32 bytes, hex). Default
    /// `<datadir>/sequencer.key`; created on first start.
    pub key_file: Option<PathBuf>,
    /// Fund and bond the sequencer from the genesis allocation at startup
    /// when its bond is below the minimum. Default: only with `--dev`.
    pub auto_bond: Option<bool>,
    /// Answer disputes automatically (the defender).
    pub defender: bool,
    /// Delete the inputs and outputs of batches that are final (settled by
    /// the referee: window over, no game open) once their window ended at
    /// least this long ago; records, receipts and proofs stay. 0 = keep
    /// every tensor forever (the default). See `docs/node.md#pruning`.
    pub prune_after_ms: u64,
    /// MiB of dispute provers the defender keeps between moves (each holds
    /// its record's whole trace: about 130 MiB for mobilenetv2). Beyond
    /// it the least recently used is dropped and rebuilt when its game
    /// next needs a move. At least one is always kept.
    pub defender_cache_mib: u64,
    /// Games the defender plays at once (each move may need a trace built
    /// first); 0 = one per core.
    pub defender_threads: u32,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            chain_id: None,
            challenge_window_ms: None,
            clock_ms: None,
            min_sequencer_bond: None,
            challenger_bond: None,
            defender_stake: None,
            dissection_exp: None,
            tick_ms: 250,
            key_file: None,
            auto_bond: None,
            defender: true,
            prune_after_ms: 0,
            defender_cache_mib: 1024,
            defender_threads: 0,
        }
    }
}

/// Development-only options. [`NodeConfig::validate`] refuses them unless
/// the node runs with `--dev`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevConfig {
    /// Corrupt chosen results (`docs/node.md#fault-injection`), e.g.
    /// `"every=3"` or `"request=2,node=4,element=42,step=0"`.
    pub inject_fault: Option<String>,
}

impl NodeConfig {
    /// Parses a TOML document.
    pub fn from_toml(s: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(s)
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        Self::from_toml(&s).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    /// Checks values that have no sensible meaning.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.batcher.max_records == 0 || self.batcher.max_records > verinfer_state::batch::MAX_BATCH_RECORDS {
            bail!("batcher.max_records must be in 1..=1048576");
        }
        // Upper bounds keep `Instant + Duration` and the timers' arithmetic
        // from overflowing: a day is far beyond any useful setting.
        const DAY_MS: u64 = 86_400_000;
        if self.batcher.interval_ms == 0 || self.batcher.interval_ms > DAY_MS {
            bail!("batcher.interval_ms must be in 1..={DAY_MS} (got {})", self.batcher.interval_ms);
        }
        if self.mempool.capacity == 0 {
            bail!("mempool.capacity must be positive");
        }
        if !(1..=DAY_MS).contains(&self.rpc.request_body_timeout_ms) {
            bail!("rpc.request_body_timeout_ms must be in 1..={DAY_MS} (got {})", self.rpc.request_body_timeout_ms);
        }
        if self.rpc.max_batch_len == 0 {
            bail!("rpc.max_batch_len must be positive");
        }
        // Zero would make the node refuse everything (every request 413 or
        // 429, every response too large, no subscription).
        for (name, v) in [
            ("rpc.max_request_body_bytes", self.rpc.max_request_body_bytes),
            ("rpc.max_response_body_bytes", self.rpc.max_response_body_bytes),
            ("rpc.max_connections", self.rpc.max_connections),
            ("rpc.max_subscriptions_per_connection", self.rpc.max_subscriptions_per_connection),
        ] {
            if v == 0 {
                bail!("{name} must be positive");
            }
        }
        // Each worker is an OS thread with its own arena; thousands only
        // exhaust memory and thread limits.
        if self.exec.workers > 1024 {
            bail!("exec.workers must be at most 1024 (got {}; 0 = one per core)", self.exec.workers);
        }
        if self.settlement.tick_ms == 0 || self.settlement.tick_ms > DAY_MS {
            bail!("settlement.tick_ms must be in 1..={DAY_MS} (got {})", self.settlement.tick_ms);
        }
        if self.settlement.prune_after_ms > 0 && !self.settlement.enabled {
            bail!(
                "settlement.prune_after_ms needs the embedded settlement (settlement.enabled = true): without it the node cannot tell when a batch is final"
            );
        }
        if let Some(spec) = &self.dev_options.inject_fault {
            // Corrupting results is a test tool; a production node must not
            // be able to do it by a config mistake.
            if !self.dev {
                bail!("fault injection (--inject-fault / [dev] inject_fault) requires --dev");
            }
            if !self.settlement.enabled {
                bail!("fault injection needs the embedded settlement (settlement.enabled = true)");
            }
            spec.parse::<crate::fault::FaultSpec>().map_err(|e| anyhow::anyhow!("inject_fault {spec:?}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_partial_toml() {
        assert_eq!(NodeConfig::from_toml("").unwrap(), NodeConfig::default());
        let c = NodeConfig::from_toml("[batcher]\ninterval_ms = 50\n[metrics]\nlisten = \"\"\n").unwrap();
        assert_eq!(c.batcher.interval_ms, 50);
        assert_eq!(c.batcher.max_records, 4096);
        assert_eq!(c.metrics.listen, None);
        assert!(NodeConfig::from_toml("[rpc]\nbogus = 1\n").is_err());
        assert_eq!(c.exec.memory_limit(), Some(2048 << 20));
        assert_eq!(c.exec.limits().steps, Some(100_000_000_000));
        let unlimited = NodeConfig::from_toml(
            "[exec]\nmax_model_mib = 0\nmax_model_msteps = 0\nmax_trace_mib = 0\nmax_fold_steps = 0\n",
        )
        .unwrap();
        assert_eq!(unlimited.exec.limits(), crate::exec::Limits::default());
        // Pruning needs finality, which only the embedded settlement knows.
        let c = NodeConfig::from_toml("[settlement]\nenabled = false\nprune_after_ms = 1000\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("prune_after_ms needs the embedded settlement"));
        for (toml, needle) in [
            ("[rpc]\nmax_connections = 0\n", "rpc.max_connections must be positive"),
            ("[rpc]\nmax_request_body_bytes = 0\n", "rpc.max_request_body_bytes must be positive"),
            ("[exec]\nworkers = 100000\n", "exec.workers must be at most 1024"),
        ] {
            let e = NodeConfig::from_toml(toml).unwrap().validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{toml}: {e}");
        }
        let c = NodeConfig::from_toml("[batcher]\ninterval_ms = 9223372036854775807\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("batcher.interval_ms must be in 1..=86400000"));
        let round = toml::to_string(&NodeConfig::default()).unwrap();
        assert_eq!(NodeConfig::from_toml(&round).unwrap(), NodeConfig::default());
    }
}
