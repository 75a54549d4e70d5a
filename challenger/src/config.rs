//! Configuration: a TOML file whose every field is optional
//! (`#[serde(default)]`), overridden by `verinfer challenger` flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The challenger's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The node's RPC URL (`http://host:port`; the WebSocket URL is derived
    /// from it).
    pub rpc: String,
    /// Data directory: the challenger's RocksDB and, unless `key` is given,
    /// its key file.
    pub datadir: PathBuf,
    /// The ed25519 signing key file (64 hex characters: the 32-byte seed).
    /// Created with a fresh key if missing.
    pub key: Option<PathBuf>,
    /// Most value locked in open games' challenger bonds at once (0: no cap
    /// beyond the free balance). A guard against a runaway bot on a node
    /// that lies about every record.
    pub bond: u64,
    /// Records re-executed at once (0: one per core).
    pub concurrency: usize,
    /// Most games played at once (≥ 1). Each holds our honest prover and,
    /// once dissection reaches it, the record's full trace (≈ 118 MiB for
    /// mobilenetv2), so this bounds the bot's memory for games. A dispute
    /// beyond it waits (within the record's window) for one of our games
    /// to end; games found open at a restart beyond it wait for a place.
    pub max_games: usize,
    /// Fraction of records re-executed, in `[0, 1]`. Sampling is keyed by
    /// the challenger's secret key, so the sequencer cannot predict which
    /// records a given challenger checks.
    pub sample: f64,
    /// Prometheus metrics address (`GET /metrics`); none disables.
    pub metrics: Option<SocketAddr>,
    /// Dev nodes only: at start, top the free balance up to `max(bond, 10 ×
    /// challenger_bond)` from `settlement_faucet`.
    pub dev_faucet: bool,
    /// Fallback period for reading open games (ms). Players are woken by
    /// `settlement_subscribeEvents` notifications of their game; this poll
    /// only bounds what a missed event (a dropped subscription) can cost
    /// our clock.
    pub poll_ms: u64,
    /// In-process attempts at opening one dispute (a bond we cannot afford
    /// yet, a send lost on the network) before giving up until a restart.
    pub dispute_retries: u32,
    /// Longest delay between two such attempts (ms); the first is
    /// `reconnect_min_ms`, doubling.
    pub dispute_retry_max_ms: u64,
    /// First reconnect delay after the WebSocket drops (ms); doubles up to
    /// `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay (ms).
    pub reconnect_max_ms: u64,
    /// Local ONNX models (`DIR/*/model.onnx`) used when the node does not
    /// serve `model_program`; matched by program root.
    pub models_dir: Option<PathBuf>,
    /// Drills and tests only: dispute these `(batch, index)` records whatever
    /// re-execution says. A correct record disputed this way loses the bond.
    pub force_dispute: Vec<(u64, u64)>,
    /// Log format: `plain` or `json`.
    pub log_format: String,
    /// Log filter (`info`, `verinfer_challenger=debug`, …).
    pub log_filter: String,
    /// Refuse to plan a model program (fetched from the node, which may be
    /// the party being checked) whose plan needs more than this many MiB;
    /// 0 = no limit. Its records are then left unchecked, with an error in
    /// the log.
    pub max_model_mib: u64,
    /// Refuse to plan a model program whose one run takes more than this
    /// many million fold steps (about its multiply-adds; mobilenetv2 takes
    /// 320), so a costly program cannot stall re-execution; 0 = no limit.
    /// Its records are then left unchecked, with an error in the log.
    pub max_model_msteps: u64,
    /// Refuse to plan a model program whose node outputs take more than
    /// this many MiB in all: a dispute's prover holds every one (the
    /// node's `exec.max_trace_mib`, docs/decisions/0018); 0 = no limit.
    pub max_trace_mib: u64,
    /// Refuse to plan a model program with an output element folding more
    /// than this many steps: a dispute holds each step's state (the node's
    /// `exec.max_fold_steps`); 0 = no limit.
    pub max_fold_steps: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rpc: "http://127.0.0.1:8545".into(),
            datadir: PathBuf::from("verinfer-challenger"),
            key: None,
            bond: 0,
            concurrency: 0,
            max_games: 2,
            sample: 1.0,
            metrics: None,
            dev_faucet: false,
            poll_ms: 2_000,
            dispute_retries: 10,
            dispute_retry_max_ms: 60_000,
            reconnect_min_ms: 250,
            reconnect_max_ms: 10_000,
            models_dir: None,
            force_dispute: Vec::new(),
            log_format: "plain".into(),
            log_filter: "info".into(),
            max_model_mib: 2048,
            max_model_msteps: 100_000,
            max_trace_mib: 1024,
            max_fold_steps: 1 << 20,
        }
    }
}

/// The values given as `verinfer challenger` flags. Each one given
/// replaces the configuration file's value — lists too: `--force-dispute`
/// names the whole list, it does not add to the file's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--rpc`.
    pub rpc: Option<String>,
    /// `--datadir`.
    pub datadir: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--bond`.
    pub bond: Option<u64>,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--max-games`.
    pub max_games: Option<usize>,
    /// `--sample`.
    pub sample: Option<f64>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--dev-faucet` (a switch: given turns it on).
    pub dev_faucet: bool,
    /// `--models-dir`.
    pub models_dir: Option<PathBuf>,
    /// `--force-dispute BATCH:INDEX`, each occurrence (none: keep the file's).
    pub force_dispute: Vec<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

impl Config {
    /// Applies flags over this configuration (the file's, or the
    /// defaults); see [`Overrides`].
    pub fn apply(&mut self, o: &Overrides) -> Result<(), String> {
        fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *field = v.clone();
            }
        }
        set(&mut self.rpc, &o.rpc);
        set(&mut self.datadir, &o.datadir);
        set(&mut self.bond, &o.bond);
        set(&mut self.concurrency, &o.concurrency);
        set(&mut self.max_games, &o.max_games);
        set(&mut self.sample, &o.sample);
        set(&mut self.log_format, &o.log_format);
        if o.key.is_some() {
            self.key = o.key.clone();
        }
        if o.metrics.is_some() {
            self.metrics = o.metrics;
        }
        if o.models_dir.is_some() {
            self.models_dir = o.models_dir.clone();
        }
        self.dev_faucet |= o.dev_faucet;
        if !o.force_dispute.is_empty() {
            self.force_dispute = o.force_dispute.iter().map(|f| parse_record(f)).collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample) || self.sample.is_nan() {
            return Err(format!("sample: {} is not in [0, 1]", self.sample));
        }
        if !(self.rpc.starts_with("http://") || self.rpc.starts_with("https://")) {
            return Err(format!("rpc: {:?} is not an http:// or https:// URL", self.rpc));
        }
        if self.poll_ms == 0 || self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err("poll_ms and reconnect_min_ms must be > 0 and reconnect_max_ms ≥ reconnect_min_ms".into());
        }
        // Backoffs double these; a day is far beyond any useful setting.
        const DAY_MS: u64 = 86_400_000;
        for (name, v) in [
            ("poll_ms", self.poll_ms),
            ("reconnect_max_ms", self.reconnect_max_ms),
            ("dispute_retry_max_ms", self.dispute_retry_max_ms),
        ] {
            if v > DAY_MS {
                return Err(format!("{name}: {v} is above {DAY_MS} (one day)"));
            }
        }
        // Each re-execution worker holds a workspace of up to
        // max_model_mib, and the pipeline sizes its queue by workers ×
        // 4: a huge value overflowed it (found by an audit). The node caps
        // exec.workers the same way.
        if self.concurrency > 1024 {
            return Err(format!("concurrency: {} is above 1024", self.concurrency));
        }
        if self.max_games == 0 {
            return Err("max_games must be ≥ 1 (a dispute needs a game to play)".into());
        }
        if self.dispute_retries == 0 {
            return Err("dispute_retries must be ≥ 1 (the first attempt counts)".into());
        }
        // Checked before any connection: a bot retrying an unreachable node
        // would otherwise never report these.
        if let Some(d) = &self.models_dir
            && !d.is_dir()
        {
            return Err(format!("models_dir: {} is not a directory", d.display()));
        }
        if !matches!(self.log_format.as_str(), "plain" | "json") {
            return Err(format!("log_format: {:?}: expected plain or json", self.log_format));
        }
        Ok(())
    }

    /// Workers that re-execute records.
    pub fn workers(&self) -> usize {
        if self.concurrency == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            self.concurrency
        }
    }

    /// How disputes are retried in-process.
    pub fn retry_policy(&self) -> crate::solver::RetryPolicy {
        crate::solver::RetryPolicy {
            max_attempts: self.dispute_retries,
            min_ms: self.reconnect_min_ms,
            max_ms: self.dispute_retry_max_ms.max(self.reconnect_min_ms),
        }
    }

    /// [`Config::max_model_mib`] in bytes, `None` for no limit.
    pub fn memory_limit(&self) -> Option<u64> {
        verinfer_prover::fast::PlanOptions::memory_limit_mib(self.max_model_mib)
    }

    /// [`Config::max_model_msteps`] in steps, `None` for no limit.
    pub fn step_limit(&self) -> Option<u64> {
        verinfer_prover::fast::PlanOptions::step_limit_m(self.max_model_msteps)
    }

    /// How model programs are planned: every limit above.
    pub fn plan_options(&self) -> verinfer_prover::fast::PlanOptions {
        use verinfer_prover::fast::PlanOptions;
        PlanOptions {
            memory_limit: self.memory_limit(),
            step_limit: self.step_limit(),
            trace_limit: PlanOptions::memory_limit_mib(self.max_trace_mib),
            fold_limit: PlanOptions::fold_limit_of(self.max_fold_steps),
            ..Default::default()
        }
    }

    /// The WebSocket URL of the node.
    pub fn ws_url(&self) -> String {
        if let Some(rest) = self.rpc.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.rpc.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.rpc.clone()
        }
    }

    /// The key file: `key`, or `DATADIR/key`.
    pub fn key_path(&self) -> PathBuf {
        self.key.clone().unwrap_or_else(|| self.datadir.join("key"))
    }
}

/// `BATCH:INDEX` (a `--force-dispute` value).
fn parse_record(f: &str) -> Result<(u64, u64), String> {
    let (b, i) = f.split_once(':').ok_or_else(|| format!("--force-dispute {f:?}: expected BATCH:INDEX"))?;
    let b = b.parse().map_err(|e| format!("--force-dispute {f:?}: batch: {e}"))?;
    let i = i.parse().map_err(|e| format!("--force-dispute {f:?}: index: {e}"))?;
    Ok((b, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_urls_derive() {
        let c = Config::default();
        c.validate().expect("defaults are valid");
        assert_eq!(c.ws_url(), "ws://127.0.0.1:8545");
        assert_eq!(Config { rpc: "https://x:1".into(), ..c.clone() }.ws_url(), "wss://x:1");
        assert!(Config { sample: 1.5, ..c.clone() }.validate().is_err());
        assert!(Config { sample: f64::NAN, ..c.clone() }.validate().is_err());
        assert!(Config { rpc: "ws://x".into(), ..c.clone() }.validate().is_err());
        assert!(Config { poll_ms: u64::MAX, ..c.clone() }.validate().is_err());
        let e = Config { models_dir: Some("/nonexistent/models".into()), ..c.clone() }.validate().unwrap_err();
        assert!(e.contains("models_dir: /nonexistent/models"), "{e}");
        assert!(Config { reconnect_max_ms: u64::MAX / 2 + 1, ..c.clone() }.validate().is_err());
        assert_eq!(c.key_path(), c.datadir.join("key"));
    }

    #[test]
    fn partial_json_fills_defaults() {
        // serde(default): any subset of fields is a valid configuration.
        let c: Config = serde_json::from_str(r#"{"sample": 0.5, "bond": 300}"#).expect("parses");
        assert_eq!(c.sample, 0.5);
        assert_eq!(c.bond, 300);
        assert_eq!(c.poll_ms, Config::default().poll_ms);
    }

    #[test]
    fn max_games_is_at_least_one() {
        assert_eq!(Config::default().max_games, 2);
        let e = Config { max_games: 0, ..Config::default() }.validate().unwrap_err();
        assert!(e.contains("max_games"), "{e}");
    }

    #[test]
    fn concurrency_is_capped() {
        let e = Config { concurrency: 1 << 62, ..Config::default() }.validate().unwrap_err();
        assert!(e.contains("concurrency"), "{e}");
        Config { concurrency: 1024, ..Config::default() }.validate().expect("1024 is fine");
    }

    /// Flags override the file, lists included: `--force-dispute` replaces
    /// the file's `force_dispute` instead of adding to it.
    #[test]
    fn flags_replace_the_files_values_lists_included() {
        let file = Config {
            force_dispute: vec![(1, 0), (2, 3)],
            bond: 500,
            max_games: 4,
            concurrency: 3,
            dev_faucet: true,
            ..Config::default()
        };
        // No flags: the file stands.
        let mut c = file.clone();
        c.apply(&Overrides::default()).expect("applies");
        assert_eq!(c, file);
        let mut c = file.clone();
        c.apply(&Overrides {
            force_dispute: vec!["7:1".into()],
            bond: Some(0),
            max_games: Some(1),
            rpc: Some("http://node:1".into()),
            ..Overrides::default()
        })
        .expect("applies");
        assert_eq!(c.force_dispute, vec![(7, 1)], "the flag's list replaces the file's");
        assert_eq!((c.bond, c.max_games, c.rpc.as_str()), (0, 1, "http://node:1"));
        assert_eq!((c.concurrency, c.dev_faucet), (3, true), "what no flag names stays");
        for bad in ["7", "x:1", "7:y", "7:-1"] {
            let e = file.clone().apply(&Overrides { force_dispute: vec![bad.into()], ..Overrides::default() });
            assert!(e.unwrap_err().contains("--force-dispute"), "{bad}");
        }
    }
}
