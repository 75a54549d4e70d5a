//! Prometheus metrics, served as text on `--metrics` (`GET /metrics`).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `verinfer_challenger_records_verified_total` | counter, `verdict` | records judged (`correct`, `wrong`, `not_sampled`, `unverifiable`, `window_closed`) |
//! | `verinfer_challenger_reexecution_seconds` | histogram | one record's re-execution |
//! | `verinfer_challenger_batches_verified` | gauge | the watermark: every batch ≤ it is judged |
//! | `verinfer_challenger_head` | gauge | the node's newest batch |
//! | `verinfer_challenger_lag_batches` | gauge | head − watermark |
//! | `verinfer_challenger_disputes_opened_total` | counter | |
//! | `verinfer_challenger_disputes_won_total` | counter | |
//! | `verinfer_challenger_disputes_lost_total` | counter | |
//! | `verinfer_challenger_games_open` | gauge | games being played |
//! | `verinfer_challenger_moves_total` | counter, `kind` | transactions sent (`pick`, `pick_element`, `claim_timeout`, `open_dispute`) |
//! | `verinfer_challenger_balance` | gauge | free balance at the referee |
//! | `verinfer_challenger_bond_locked` | gauge | challenger bonds locked in our open games |
//! | `verinfer_challenger_fetch_retries_total` | counter, `what` | fetches of committed data (`program`, `body`) not served while the window was open, retried |
//! | `verinfer_challenger_batches_unchecked_total` | counter, `reason` | batches done without checking their records (`past_window`: settled or window closed when met; `body_withheld`: body not served until the window closed) |
//! | `verinfer_challenger_games_waiting` | gauge | games found open at start waiting for a place under `max_games` |

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The challenger's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records judged by verdict.
    pub records: IntCounterVec,
    /// Re-execution time per record.
    pub reexec: Histogram,
    /// Watermark.
    pub verified: IntGauge,
    /// Node head.
    pub head: IntGauge,
    /// Head − watermark.
    pub lag: IntGauge,
    /// Disputes opened.
    pub opened: IntCounter,
    /// Games won.
    pub won: IntCounter,
    /// Games lost.
    pub lost: IntCounter,
    /// Games in play.
    pub open_games: IntGauge,
    /// Transactions sent by kind.
    pub moves: IntCounterVec,
    /// Free balance.
    pub balance: IntGauge,
    /// Bonds locked in open games.
    pub locked: IntGauge,
    /// Fetches of committed data not served while the window was open.
    pub fetch_retries: IntCounterVec,
    /// Batches done without checking their records, by reason.
    pub unchecked: IntCounterVec,
    /// Games found open at start waiting for a place under `max_games`.
    pub games_waiting: IntGauge,
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
        let p = "verinfer_challenger_";
        let m = Self {
            records: reg!(IntCounterVec::new(
                Opts::new(format!("{p}records_verified_total"), "Records judged, by verdict"),
                &["verdict"]
            )),
            reexec: reg!(Histogram::with_opts(
                HistogramOpts::new(format!("{p}reexecution_seconds"), "Re-execution time of one record").buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
                ])
            )),
            verified: reg!(IntGauge::new(format!("{p}batches_verified"), "Every batch up to this one is judged")),
            head: reg!(IntGauge::new(format!("{p}head"), "The node's newest batch")),
            lag: reg!(IntGauge::new(format!("{p}lag_batches"), "Batches behind the node's head")),
            opened: reg!(IntCounter::new(format!("{p}disputes_opened_total"), "Disputes opened")),
            won: reg!(IntCounter::new(format!("{p}disputes_won_total"), "Games won")),
            lost: reg!(IntCounter::new(format!("{p}disputes_lost_total"), "Games lost")),
            open_games: reg!(IntGauge::new(format!("{p}games_open"), "Games being played")),
            moves: reg!(IntCounterVec::new(
                Opts::new(format!("{p}moves_total"), "Transactions sent, by kind"),
                &["kind"]
            )),
            balance: reg!(IntGauge::new(format!("{p}balance"), "Free balance at the referee")),
            locked: reg!(IntGauge::new(format!("{p}bond_locked"), "Challenger bonds locked in open games")),
            fetch_retries: reg!(IntCounterVec::new(
                Opts::new(
                    format!("{p}fetch_retries_total"),
                    "Fetches of committed data not served while the window was open, retried"
                ),
                &["what"]
            )),
            unchecked: reg!(IntCounterVec::new(
                Opts::new(
                    format!("{p}batches_unchecked_total"),
                    "Batches done without checking their records, by reason"
                ),
                &["reason"]
            )),
            games_waiting: reg!(IntGauge::new(
                format!("{p}games_waiting"),
                "Games found open at start waiting for a place under max_games"
            )),
            registry,
        };
        Arc::new(m)
    }

    /// Sets head and lag from the node's head and our watermark.
    pub fn set_progress(&self, head: u64, watermark: u64) {
        self.head.set(head as i64);
        self.verified.set(watermark as i64);
        self.lag.set(head.saturating_sub(watermark) as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped (one
/// response per connection, then close; the request head is bounded).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let read = async {
                loop {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return false,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                        return true;
                    }
                }
            };
            match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
                Ok(true) => {}
                _ => return,
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("");
            let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found; try GET /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds `addr` and serves metrics on it in a background task; returns the
/// bound address (useful with port 0).
pub async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    Ok((local, tokio::spawn(serve(l, metrics))))
}
