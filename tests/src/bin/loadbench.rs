//! Load benchmark: many concurrent clients submitting over HTTP on loopback
//! to an in-process node (RocksDB datadir, synced seals: durable batches),
//! against the bare executor running the same model on the same number of
//! threads, in the same binary.
//!
//! ```text
//! cargo run --release -p verinfer-e2e --bin loadbench -- [--model mlp|mobilenetv2|lenet5]...
//!     [--clients N] [--seconds S] [--workers N] [--b64] [--settlement] [--in-process]
//! ```
//! `--in-process` skips HTTP and JSON: the clients call `Node::submit` with
//! an already-parsed request on the node's runtime (the node's floor for
//! any wire format: base64, checks, hashing, the store, batches).
//! Prints requests/s, p50/p99/max latency, busy answers, batches sealed,
//! and the node's throughput relative to the bare executor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use verinfer_e2e::{model_bytes, model_input};
use verinfer_prover::ProverError;
use verinfer_prover::program::Program;
use verinfer_rpc::tensor::WireTensor;
use verinfer_rpc::{Encoding, SubmitRequest};
use verinfer_sequencer::{Executor, FastExecutor, NodeConfig, Prepared, RunningNode, StubPoster};
use verinfer_state::tensor::Tensor;

#[derive(Debug, Clone)]
struct Opts {
    models: Vec<String>,
    clients: usize,
    seconds: f64,
    workers: usize,
    b64: bool,
    null_exec: bool,
    max_records: Option<u64>,
    interval_ms: Option<u64>,
    settlement: bool,
    in_process: bool,
}

/// An executor that returns zeros of the output shapes: not canonical, only
/// to measure the node's own ceiling (RPC, checks, store, batches) without
/// the cost of execution.
struct NullExec;
struct NullPrepared(Vec<(verinfer_state::tensor::DType, Vec<usize>)>);

impl Prepared for NullPrepared {
    fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, ProverError> {
        self.0.iter().map(|(d, s)| Tensor::zeros(*d, s.clone()).map_err(ProverError::from)).collect()
    }
}

impl Executor for NullExec {
    fn name(&self) -> &'static str {
        "null"
    }
    fn prepare(&self, p: Arc<Program>) -> Result<Arc<dyn Prepared>, ProverError> {
        let outs = p
            .outputs
            .iter()
            .map(|o| {
                let t = &p.nodes[o.node as usize].output;
                (t.dtype, t.shape_usize())
            })
            .collect();
        Ok(Arc::new(NullPrepared(outs)))
    }
}

const USAGE: &str = "usage: loadbench [--model mlp|lenet5|mobilenetv2]... [--clients N] [--seconds S] [--workers N]
                 [--b64] [--null-exec] [--max-records N] [--interval-ms MS] [--settlement]
                 [--in-process]";

/// Parses the command line; a bad argument prints the usage and exits 2.
fn parse() -> Opts {
    match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                std::process::exit(0);
            }
            eprintln!("loadbench: {msg}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// `Err("")` for `--help`.
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut o = Opts {
        models: vec![],
        clients: 64,
        seconds: 10.0,
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        b64: false,
        null_exec: false,
        max_records: None,
        interval_ms: None,
        settlement: false,
        in_process: false,
    };
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: {v:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => o.models.push(it.next().ok_or("--model needs a value")?),
            "--clients" => o.clients = num("--clients", it.next())?,
            "--seconds" => o.seconds = num("--seconds", it.next())?,
            "--workers" => o.workers = num("--workers", it.next())?,
            "--b64" => o.b64 = true,
            "--null-exec" => o.null_exec = true,
            "--max-records" => o.max_records = Some(num("--max-records", it.next())?),
            "--interval-ms" => o.interval_ms = Some(num("--interval-ms", it.next())?),
            "--settlement" => o.settlement = true,
            "--in-process" => o.in_process = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(m) = o.models.iter().find(|m| !["mlp", "lenet5", "mobilenetv2"].contains(&m.as_str())) {
        return Err(format!("--model: unknown model {m:?}"));
    }
    if o.models.is_empty() {
        o.models = vec!["mlp".into(), "mobilenetv2".into()];
    }
    Ok(o)
}

/// Runs the bare executor the node uses (the fast planned executor) on
/// `workers` threads for about `seconds`; returns runs per second.
fn bare(model: &str, workers: usize, seconds: f64) -> (f64, Duration, f64) {
    let m = verinfer_prover::load_model(&model_bytes(model), &Default::default()).expect("model loads");
    let prog = FastExecutor.prepare(Arc::new(m.program)).expect("plans");
    let x = model_input(model);
    // One warm-up run, timed (single-run latency).
    let t = Instant::now();
    prog.run(std::slice::from_ref(&x)).expect("runs");
    let single = t.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(false);
    let t0 = Instant::now();
    let hs: Vec<_> = (0..workers)
        .map(|_| {
            let (p, x, stop, count) = (prog.clone(), x.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let e = p.run(std::slice::from_ref(&x)).expect("runs");
                    std::hint::black_box(e);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().expect("bare worker");
    }
    let n = count.load(Ordering::Relaxed);
    let cpu_per_run = (cpu_seconds(false) - cpu0) / n.max(1) as f64;
    (n as f64 / t0.elapsed().as_secs_f64(), single, cpu_per_run)
}

struct ClientStats {
    /// (completion time, latency µs) of every successful request.
    done: Vec<(Instant, u64)>,
    busy: u64,
    errors: u64,
}

async fn read_response(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    buf.clear();
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .ok_or_else(|| std::io::Error::other("no content-length"))?;
            let start = pos + 4;
            while buf.len() < start + len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::Error::other("closed"));
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body = buf[start..start + len].to_vec();
            buf.drain(..start + len);
            return Ok(body);
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn client(addr: SocketAddr, request: Arc<Vec<u8>>, stop: Arc<AtomicBool>) -> ClientStats {
    let mut st = ClientStats { done: Vec::with_capacity(1 << 16), busy: 0, errors: 0 };
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        st.errors += 1;
        return st;
    };
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if s.write_all(&request).await.is_err() {
            st.errors += 1;
            break;
        }
        match read_response(&mut s, &mut buf).await {
            Ok(body) => {
                let ok = body.windows(8).any(|w| w == b"\"result\"");
                if ok {
                    st.done.push((Instant::now(), t.elapsed().as_micros() as u64));
                } else if body.windows(12).any(|w| w == b"\"code\":5030,") {
                    st.busy += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    st.errors += 1;
                    if st.errors == 1 {
                        eprintln!("error response: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                    }
                }
            }
            Err(_) => {
                st.errors += 1;
                break;
            }
        }
    }
    st
}

/// A client without the wire: clones the parsed request on the load
/// thread, then has the node's runtime run `Node::submit` (so the node's
/// share of the work is counted as node CPU, the clone as the load
/// generator's).
async fn in_process_client(
    rt: tokio::runtime::Handle,
    node: Arc<verinfer_sequencer::node::Node>,
    request: Arc<SubmitRequest>,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let mut st = ClientStats { done: Vec::with_capacity(1 << 16), busy: 0, errors: 0 };
    while !stop.load(Ordering::Relaxed) {
        let req = (*request).clone();
        let n = node.clone();
        let t = Instant::now();
        match rt.spawn(async move { n.submit(req).await.map(|_| ()) }).await {
            Ok(Ok(())) => st.done.push((Instant::now(), t.elapsed().as_micros() as u64)),
            Ok(Err(e)) if e.code == verinfer_rpc::error::BUSY => {
                st.busy += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(Err(e)) => {
                st.errors += 1;
                if st.errors == 1 {
                    eprintln!("error: {} {}", e.code, e.message);
                }
            }
            Err(_) => {
                st.errors += 1;
                break;
            }
        }
    }
    st
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn run_model(o: &Opts, model: &str) {
    println!(
        "== {model}: {} clients, {} workers, {:.0} s{}",
        o.clients,
        o.workers,
        o.seconds,
        if o.null_exec { ", NULL executor (node ceiling, not canonical)" } else { "" }
    );
    println!("load average before: {}", loadavg());
    let (bare_rps, single, bare_cpu) = bare(model, o.workers, o.seconds.min(20.0));
    println!(
        "bare executor: {bare_rps:.1} runs/s on {} threads (one run {:.2} ms, {:.3} ms CPU per run)",
        o.workers,
        single.as_secs_f64() * 1e3,
        bare_cpu * 1e3
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = NodeConfig { datadir: dir.path().join("db"), ..Default::default() };
    cfg.rpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.metrics.listen = None;
    cfg.exec.workers = o.workers as u32;
    cfg.mempool.capacity = 4096;
    cfg.rpc.max_connections = (o.clients + 16) as u32;
    if let Some(m) = o.max_records {
        cfg.batcher.max_records = m;
    }
    if let Some(i) = o.interval_ms {
        cfg.batcher.interval_ms = i;
    }
    println!("batcher: max_records {}, interval {} ms", cfg.batcher.max_records, cfg.batcher.interval_ms);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(o.workers).enable_all().build().expect("rt");
    let exec: Arc<dyn Executor> = if o.null_exec { Arc::new(NullExec) } else { Arc::new(FastExecutor) };
    let node = if o.settlement {
        // The embedded referee (dev parameters): every sealed batch is
        // signed and posted with its body, as `verinfer node --dev` does.
        cfg.dev = true;
        cfg.settlement.enabled = true;
        rt.block_on(RunningNode::start_embedded(cfg, exec))
    } else {
        rt.block_on(RunningNode::start(cfg, exec, Arc::new(StubPoster::new())))
    }
    .expect("node starts");
    let info = node.node.register(model, &model_bytes(model), &Default::default()).expect("registers");
    let x = model_input(model);
    let wire = if o.b64 || x.len() > 100_000 { WireTensor::b64(&x) } else { WireTensor::json(&x) };
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "infer_submit",
        "params": [{"model_id": info.model_id, "inputs": [wire], "output_encoding": "json"}]})
    .to_string();
    let addr = node.rpc_addr;
    let request = Arc::new(
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    println!(
        "request body: {} bytes ({}){}",
        body.len(),
        if wire.b64.is_some() { "b64" } else { "json" },
        if o.in_process { "; IN-PROCESS: no HTTP or JSON, Node::submit called directly" } else { "" }
    );
    let parsed =
        Arc::new(SubmitRequest { model_id: info.model_id, inputs: vec![wire], output_encoding: Encoding::Json });
    let (in_process, rt_handle, core) = (o.in_process, rt.handle().clone(), node.node.clone());

    // Clients on their own single-threaded runtime.
    let stop = Arc::new(AtomicBool::new(false));
    let warmup = Duration::from_secs_f64((o.seconds * 0.1).clamp(0.5, 3.0));
    let (clients, seconds) = (o.clients, o.seconds);
    let (stop2, req2) = (stop.clone(), request.clone());
    let load = std::thread::spawn(move || {
        let crt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client rt");
        let client_cpu0 = cpu_seconds(true);
        let r = crt.block_on(async move {
            let measure_from = Instant::now() + warmup;
            let hs: Vec<_> = (0..clients)
                .map(|_| {
                    if in_process {
                        tokio::spawn(in_process_client(rt_handle.clone(), core.clone(), parsed.clone(), stop2.clone()))
                    } else {
                        tokio::spawn(client(addr, req2.clone(), stop2.clone()))
                    }
                })
                .collect();
            tokio::time::sleep(warmup + Duration::from_secs_f64(seconds)).await;
            let measure_to = Instant::now();
            stop2.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for h in hs {
                all.push(h.await.expect("client task"));
            }
            (all, measure_from, measure_to)
        });
        (r, cpu_seconds(true) - client_cpu0)
    });
    let cpu0 = cpu_seconds(false);
    let ((stats, from, to), client_cpu) = load.join().expect("load thread");
    let total_cpu = cpu_seconds(false) - cpu0;
    let window = to - from;
    // Requests completed inside the measurement window.
    let mut lat: Vec<u64> =
        stats.iter().flat_map(|s| s.done.iter().filter(|(at, _)| *at >= from && *at <= to).map(|(_, l)| *l)).collect();
    lat.sort_unstable();
    let busy: u64 = stats.iter().map(|s| s.busy).sum();
    let errors: u64 = stats.iter().map(|s| s.errors).sum();
    let rps = lat.len() as f64 / window.as_secs_f64();
    let st = node.node.stats();
    rt.block_on(node.shutdown(Duration::from_secs(30)));
    let store =
        verinfer_state::store::RocksStore::open_path(dir.path().join("db"), Default::default()).expect("reopen");
    let head = store.head().map_or(0, |h| h.number);
    println!(
        "node: {rps:.1} req/s over {:.1} s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  busy {busy}  errors {errors}",
        window.as_secs_f64(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );
    println!(
        "batches sealed (synced): {head}, records accepted {} , pending at end {}",
        st.accepted_since_start,
        store.pending_count()
    );
    let all_done: usize = stats.iter().map(|s| s.done.len()).sum();
    let node_cpu = (total_cpu - client_cpu).max(0.0) / all_done.max(1) as f64;
    println!(
        "CPU per request: node {:.3} ms (load generator {:.3} ms more); bare executor {:.3} ms per run",
        node_cpu * 1e3,
        client_cpu / all_done.max(1) as f64 * 1e3,
        bare_cpu * 1e3
    );
    println!(
        "node CPU efficiency (bare CPU per run / node CPU per request): {:.3}  (contention-independent estimate of node/bare throughput)",
        bare_cpu / node_cpu.max(1e-12)
    );
    println!("load average after: {}  peak RSS of the process so far: {}", loadavg(), peak_rss());
    println!("node / bare executor throughput: {:.3} ({:+.1}%)", rps / bare_rps, (rps / bare_rps - 1.0) * 100.0);
    println!();
}

/// `VmHWM` from /proc (the process's peak resident set), as printed there.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string())))
        .unwrap_or_else(|| "unknown".into())
}

/// CPU seconds (user + system) of the process or of the calling thread,
/// from /proc (clock ticks, usually 10 ms resolution).
fn cpu_seconds(thread_only: bool) -> f64 {
    let path = if thread_only { "/proc/thread-self/stat" } else { "/proc/self/stat" };
    let Ok(s) = std::fs::read_to_string(path) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let o = parse();
    for m in o.models.clone() {
        run_model(&o, &m);
    }
}
