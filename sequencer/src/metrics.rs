//! Prometheus metrics, served as text on their own port (`GET /metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `verinfer_rpc_requests_total` | counter | `method`, `outcome` (`ok`/`error`) |
//! | `verinfer_rpc_request_duration_seconds` | histogram | `method` |
//! | `verinfer_rpc_errors_total` | counter | `code` |
//! | `verinfer_mempool_depth` | gauge | |
//! | `verinfer_mempool_capacity` | gauge | |
//! | `verinfer_pending_records` | gauge | |
//! | `verinfer_accepted_total` | counter | |
//! | `verinfer_rejected_total` | counter | `reason` (`busy`, `rate_limited`, …) |
//! | `verinfer_execution_seconds` | histogram | `model` (model id prefix) |
//! | `verinfer_batches_sealed_total` | counter | |
//! | `verinfer_batch_records` | histogram | |
//! | `verinfer_seal_duration_seconds` | histogram | |
//! | `verinfer_head` | gauge | |
//!
//! With the embedded settlement layer ([`Metrics::register_settlement`]),
//! read from the referee's state at every scrape (so they survive restarts
//! and never drift from it):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `verinfer_settlement_batches_posted` | gauge | |
//! | `verinfer_settlement_last_posted_batch` | gauge | |
//! | `verinfer_settlement_games_open` | gauge | |
//! | `verinfer_settlement_defender_games` | gauge | `outcome` (`won`/`lost`) |
//! | `verinfer_settlement_sequencer_bond` | gauge | |
//! | `verinfer_settlement_sequencer_free` | gauge | |
//! | `verinfer_settlement_log_entries` | gauge | |
//!
//! Label values come only from known sets (method names the node serves,
//! registered model ids), never from arbitrary client input.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// All the node's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The registry they live in.
    pub registry: Registry,
    /// RPC calls by method and outcome.
    pub rpc_requests: IntCounterVec,
    /// RPC latency by method.
    pub rpc_latency: HistogramVec,
    /// RPC errors by code.
    pub rpc_errors: IntCounterVec,
    /// Admitted, unanswered submissions.
    pub mempool_depth: IntGauge,
    /// Mempool capacity.
    pub mempool_capacity: IntGauge,
    /// Accepted, not yet sealed.
    pub pending_records: IntGauge,
    /// Accepted requests.
    pub accepted: IntCounter,
    /// Refused submissions by reason.
    pub rejected: IntCounterVec,
    /// Execution time per model.
    pub execution: HistogramVec,
    /// Sealed batches.
    pub batches: IntCounter,
    /// Records per batch.
    pub batch_records: Histogram,
    /// Time to prepare and commit a seal.
    pub seal_duration: Histogram,
    /// Newest batch number.
    pub head: IntGauge,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric definition");
                registry.register(Box::new(m.clone())).expect("unique metric name");
                m
            }};
        }
        let m = Self {
            rpc_requests: reg!(IntCounterVec::new(
                Opts::new("verinfer_rpc_requests_total", "JSON-RPC calls by method and outcome"),
                &["method", "outcome"]
            )),
            rpc_latency: reg!(HistogramVec::new(
                HistogramOpts::new("verinfer_rpc_request_duration_seconds", "JSON-RPC call latency")
                    .buckets(latency_buckets()),
                &["method"]
            )),
            rpc_errors: reg!(IntCounterVec::new(
                Opts::new("verinfer_rpc_errors_total", "JSON-RPC errors by code"),
                &["code"]
            )),
            mempool_depth: reg!(IntGauge::new("verinfer_mempool_depth", "Admitted, unanswered submissions")),
            mempool_capacity: reg!(IntGauge::new("verinfer_mempool_capacity", "Mempool capacity")),
            pending_records: reg!(IntGauge::new("verinfer_pending_records", "Accepted records not yet sealed")),
            accepted: reg!(IntCounter::new("verinfer_accepted_total", "Accepted requests")),
            rejected: reg!(IntCounterVec::new(
                Opts::new("verinfer_rejected_total", "Refused submissions by reason"),
                &["reason"]
            )),
            execution: reg!(HistogramVec::new(
                HistogramOpts::new("verinfer_execution_seconds", "Execution time per model").buckets(latency_buckets()),
                &["model"]
            )),
            batches: reg!(IntCounter::new("verinfer_batches_sealed_total", "Sealed batches")),
            batch_records: reg!(Histogram::with_opts(
                HistogramOpts::new("verinfer_batch_records", "Records per sealed batch")
                    .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0])
            )),
            seal_duration: reg!(Histogram::with_opts(
                HistogramOpts::new("verinfer_seal_duration_seconds", "Time to build and commit a batch (incl. fsync)")
                    .buckets(latency_buckets())
            )),
            head: reg!(IntGauge::new("verinfer_head", "Newest batch number")),
            registry,
        };
        Arc::new(m)
    }

    /// Exports the settlement layer's figures, read from `source` at every
    /// scrape (`None`: the layer is gone, the last values stay).
    pub fn register_settlement(
        &self,
        source: impl Fn() -> Option<SettlementFigures> + Send + Sync + 'static,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(SettlementCollector::new(Box::new(source))?))
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The settlement layer's figures at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettlementFigures {
    /// Batches this node's sequencer posted to the referee.
    pub batches_posted: u64,
    /// The referee's newest batch (0: none).
    pub last_posted_batch: u64,
    /// Open dispute games.
    pub games_open: u64,
    /// Games on the sequencer's records it won.
    pub defender_won: u64,
    /// Games on the sequencer's records it lost (records voided).
    pub defender_lost: u64,
    /// The sequencer's bond.
    pub sequencer_bond: u64,
    /// The sequencer's free balance.
    pub sequencer_free: u64,
    /// Settlement log entries since the last snapshot (what a start replays).
    pub log_entries: u64,
}

type FiguresSource = Box<dyn Fn() -> Option<SettlementFigures> + Send + Sync>;

/// Gauges refreshed from the referee on every scrape: a pull collector
/// rather than pushes from every transaction, so the values are the
/// state's own and cost nothing between scrapes.
struct SettlementCollector {
    source: FiguresSource,
    batches_posted: IntGauge,
    last_posted_batch: IntGauge,
    games_open: IntGauge,
    defender_games: IntGaugeVec,
    sequencer_bond: IntGauge,
    sequencer_free: IntGauge,
    log_entries: IntGauge,
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SettlementCollector {
    fn new(source: FiguresSource) -> Result<Self, prometheus::Error> {
        Ok(Self {
            source,
            batches_posted: IntGauge::new(
                "verinfer_settlement_batches_posted",
                "Batches the node's sequencer posted to the settlement layer",
            )?,
            last_posted_batch: IntGauge::new(
                "verinfer_settlement_last_posted_batch",
                "Newest batch number the settlement layer holds",
            )?,
            games_open: IntGauge::new("verinfer_settlement_games_open", "Open dispute games")?,
            defender_games: IntGaugeVec::new(
                Opts::new(
                    "verinfer_settlement_defender_games",
                    "Resolved games on the sequencer's records, by outcome",
                ),
                &["outcome"],
            )?,
            sequencer_bond: IntGauge::new("verinfer_settlement_sequencer_bond", "The sequencer's bond")?,
            sequencer_free: IntGauge::new("verinfer_settlement_sequencer_free", "The sequencer's free balance")?,
            log_entries: IntGauge::new(
                "verinfer_settlement_log_entries",
                "Settlement log entries since the last snapshot (replayed at start)",
            )?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 7] {
        [
            &self.batches_posted,
            &self.last_posted_batch,
            &self.games_open,
            &self.defender_games,
            &self.sequencer_bond,
            &self.sequencer_free,
            &self.log_entries,
        ]
    }
}

impl std::fmt::Debug for SettlementCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettlementCollector").finish_non_exhaustive()
    }
}

impl Collector for SettlementCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.collectors().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(f) = (self.source)() {
            self.batches_posted.set(gauge_value(f.batches_posted));
            self.last_posted_batch.set(gauge_value(f.last_posted_batch));
            self.games_open.set(gauge_value(f.games_open));
            self.defender_games.with_label_values(&["won"]).set(gauge_value(f.defender_won));
            self.defender_games.with_label_values(&["lost"]).set(gauge_value(f.defender_lost));
            self.sequencer_bond.set(gauge_value(f.sequencer_bond));
            self.sequencer_free.set(gauge_value(f.sequencer_free));
            self.log_entries.set(gauge_value(f.log_entries));
        }
        self.collectors().into_iter().flat_map(|c| c.collect()).collect()
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. A minimal
/// HTTP/1.1 responder: one response per connection, then close.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded; we only need the first line).
            let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    r = sock.read(&mut buf[n..]) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    },
                    _ = &mut deadline => return,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("");
            let (status, ctype, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
                ("200 OK", "text/plain; version=0.0.4", metrics.render())
            } else {
                ("404 Not Found", "text/plain", "not found; try GET /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
