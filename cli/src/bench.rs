//! `verinfer bench`: time single-threaded inferences.
//!
//! * `verinfer bench MODEL.onnx --input F.npy… [--iters N] [--json]` loads
//!   and plans once, then times `N` runs of the fast executor (plain mode:
//!   outputs plus input and output roots, what the sequencer needs per
//!   request) and prints the median, min and max milliseconds.
//! * `--engine reference|tract|fast-traced` times another engine instead
//!   (tract: its optimised plan, native kernels unless `TRACT_CPU_ISA`
//!   says otherwise).
//! * `verinfer bench --compare [--models DIR]` runs, for every model
//!   directory (`model.onnx` + `input_*.npy`), in one child process per
//!   model: tract native, the reference executor, the fast executor (plain
//!   and traced), plus tract under the generic ISA in a grandchild process
//!   with `TRACT_CPU_ISA` set; then prints one table.
//!
//! Peak memory is the process's peak resident set while an engine plans
//! and runs (Linux: `VmHWM` after resetting it through
//! `/proc/self/clear_refs`), so it includes what the process already holds
//! (the loaded program, inputs); the baseline is printed too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use verinfer_prover::exec::{ExecOptions, execute_with};
use verinfer_prover::fast::{Plan, PlanOptions};
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_state::npy;
use verinfer_state::tensor::{Tensor, TensorData};

/// `TRACT_CPU_ISA` value that forces tract's generic (portable) kernels.
pub const TRACT_GENERIC_ISA: &str =
    "-avx512f,-fma,-avx2,-f16c,-avx,-avx512vnni,-avx512fp16,-avxvnni,-amx-int8,-amx-bf16";

/// Which executor to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The planned fast executor, plain mode, outputs only (no roots).
    Fast,
    /// The planned fast executor, plain mode, with the input and output
    /// roots a sequencer records per request.
    FastRoots,
    /// The planned fast executor, traced mode (every node root + trace root).
    FastTraced,
    /// The scalar reference executor.
    Reference,
    /// tract's optimised plan (its own kernels; not canonical).
    Tract,
}

/// Arguments of `verinfer bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model (not with `--compare`, which takes `--models DIR`).
    #[arg(conflicts_with = "compare")]
    model: Option<PathBuf>,
    /// Input `.npy` files, in the model's input order.
    #[arg(long = "input", short = 'i', value_name = "FILE.npy", num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Concrete shape for a named input (`NAME=D1,D2,…`).
    #[arg(long = "shape", value_name = "NAME=D1,D2,…")]
    shapes: Vec<String>,
    /// Timed inferences (after warm-up).
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// Stop an engine after this many seconds of timed runs (at least 3
    /// runs are always done).
    #[arg(long, default_value_t = 20.0)]
    budget_s: f64,
    /// Engine to time.
    #[arg(long, value_enum, default_value_t = Engine::Fast)]
    engine: Engine,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Compare engines over every model directory in `--models`.
    #[arg(long)]
    compare: bool,
    /// Model directories for `--compare` (default: `fixtures/models`).
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// Print a per-step profile of the fast executor (plain mode).
    #[arg(long)]
    profile: bool,
    /// Internal: run every engine on one model and print JSON.
    #[arg(long, hide = true)]
    compare_one: bool,
}

/// Timing summary.
#[derive(Debug, Clone)]
struct Timing {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    iters: usize,
}

impl Timing {
    fn of(mut d: Vec<Duration>) -> Self {
        d.sort();
        let ms = |x: Duration| x.as_secs_f64() * 1e3;
        let n = d.len();
        let median = if n % 2 == 1 { ms(d[n / 2]) } else { (ms(d[n / 2 - 1]) + ms(d[n / 2])) / 2.0 };
        Self { median_ms: median, min_ms: ms(d[0]), max_ms: ms(d[n - 1]), iters: n }
    }
    fn json(&self) -> Value {
        json!({"median_ms": self.median_ms, "min_ms": self.min_ms, "max_ms": self.max_ms, "iters": self.iters})
    }
}

/// Runs `f` for warm-up then `iters` timed times (bounded by `budget`).
fn time(iters: usize, budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    let warm = (iters / 10).clamp(1, 5);
    for _ in 0..warm {
        f()?;
    }
    let start = Instant::now();
    // The budget, not `--iters`, usually ends the loop: do not reserve by a
    // user-supplied count.
    let mut d = Vec::with_capacity(iters.min(1 << 16));
    for i in 0..iters.max(1) {
        let t = Instant::now();
        f()?;
        d.push(t.elapsed());
        if i >= 2 && start.elapsed() > budget {
            break;
        }
    }
    Ok(Timing::of(d))
}

// ---------------------------------------------------------------------------
// Peak memory (Linux).

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

/// Resets the peak-RSS counter; returns the current RSS in KiB.
fn reset_peak() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kb("VmRSS:")
}

fn peak_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

// ---------------------------------------------------------------------------
// Loading.

use crate::run::parse_shape;

struct Loaded {
    bytes: Vec<u8>,
    inputs: Vec<Tensor>,
    model: verinfer_prover::Model,
}

fn load(model: &Path, inputs: &[PathBuf], shapes: &[String]) -> Result<Loaded> {
    let bytes = std::fs::read(model).with_context(|| format!("reading model {}", model.display()))?;
    let mut ins = Vec::new();
    for p in inputs {
        let b = std::fs::read(p).with_context(|| format!("reading input {}", p.display()))?;
        ins.push(npy::read_tensor(&b).with_context(|| format!("input {}", p.display()))?);
    }
    let opts = LoadOptions {
        name: model.display().to_string(),
        shapes: shapes.iter().map(|s| parse_shape(s)).collect::<Result<_>>()?,
        positional_shapes: ins.iter().map(|t| t.shape_u64()).collect(),
        constant_inputs: vec![],
    };
    let m = load_model(&bytes, &opts)?;
    if ins.len() != m.program.inputs.len() {
        bail!("the model takes {} inputs, {} given with --input", m.program.inputs.len(), ins.len());
    }
    Ok(Loaded { bytes, inputs: ins, model: m })
}

// ---------------------------------------------------------------------------
// Engines.

fn to_tract(t: &Tensor) -> Result<tract_onnx::prelude::Tensor> {
    use tract_onnx::prelude::Tensor as TT;
    let shape = t.shape().to_vec();
    Ok(match t.data() {
        TensorData::F32(v) => TT::from_shape(&shape, v)?,
        TensorData::I64(v) => TT::from_shape(&shape, v)?,
        TensorData::I32(v) => TT::from_shape(&shape, v)?,
        TensorData::I16(v) => TT::from_shape(&shape, v)?,
        TensorData::I8(v) => TT::from_shape(&shape, v)?,
        TensorData::U64(v) => TT::from_shape(&shape, v)?,
        TensorData::U32(v) => TT::from_shape(&shape, v)?,
        TensorData::U16(v) => TT::from_shape(&shape, v)?,
        TensorData::U8(v) => TT::from_shape(&shape, v)?,
        TensorData::Bool(v) => TT::from_shape(&shape, v)?,
    })
}

/// Result of timing one engine.
struct EngineRun {
    timing: Timing,
    /// Peak RSS while planning and running, and RSS before (KiB).
    peak_kb: Option<u64>,
    base_kb: Option<u64>,
    plan_ms: f64,
    /// Bytes the fast executor's plan holds (packed constants, arena, scratch).
    plan_bytes: usize,
    note: String,
}

impl EngineRun {
    fn json(&self) -> Value {
        let mut v = self.timing.json();
        v["peak_rss_kb"] = json!(self.peak_kb);
        v["base_rss_kb"] = json!(self.base_kb);
        v["plan_ms"] = json!(self.plan_ms);
        v["plan_bytes"] = json!(self.plan_bytes);
        v["note"] = json!(self.note);
        v
    }
}

fn run_engine(engine: Engine, l: &Loaded, iters: usize, budget: Duration) -> Result<EngineRun> {
    let base_kb = reset_peak();
    let t0 = Instant::now();
    let mut plan_bytes = 0usize;
    let (timing, plan_ms, note) = match engine {
        Engine::Fast | Engine::FastRoots | Engine::FastTraced => {
            let opts = PlanOptions { program_root: Some(l.model.program_root), ..Default::default() };
            let mut plan = Plan::with_options(&l.model.program, &opts)?;
            let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
            let s = plan.stats().clone();
            plan_bytes = s.packed_bytes
                + if engine == Engine::FastTraced { s.arena_bytes.1 } else { s.arena_bytes.0 }
                + s.scratch_bytes;
            let note = format!(
                "isa={} fallback={:?} fused={} arena={}KiB scratch={}KiB packed={}KiB",
                plan.isa(),
                s.fallback_ops,
                s.fused_nodes,
                if engine == Engine::Fast { s.arena_bytes.0 } else { s.arena_bytes.1 } / 1024,
                s.scratch_bytes / 1024,
                s.packed_bytes / 1024
            );
            let timing = time(iters, budget, || {
                match engine {
                    Engine::FastTraced => drop(std::hint::black_box(plan.run_traced(&l.inputs)?)),
                    Engine::FastRoots => drop(std::hint::black_box(plan.run(&l.inputs)?)),
                    _ => drop(std::hint::black_box(plan.infer(&l.inputs)?)),
                }
                Ok(())
            })?;
            (timing, plan_ms, note)
        }
        Engine::Reference => {
            let timing = time(iters, budget, || {
                std::hint::black_box(execute_with(&l.model.program, &l.inputs, ExecOptions::default())?);
                Ok(())
            })?;
            (timing, 0.0, String::new())
        }
        Engine::Tract => {
            use tract_onnx::prelude::*;
            let mut model = tract_onnx::onnx().model_for_read(&mut &l.bytes[..])?;
            let ins: Vec<tract_onnx::prelude::Tensor> = l.inputs.iter().map(to_tract).collect::<Result<_>>()?;
            for (i, t) in ins.iter().enumerate() {
                model.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape().to_vec()))?;
            }
            let plan = model.into_optimized()?.into_runnable()?;
            let mut state = tract_onnx::tract_core::plan::SimpleState::new(&plan)?;
            let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
            let timing = time(iters, budget, || {
                let tv: TVec<TValue> = ins.iter().map(|t| t.clone().into_tvalue()).collect();
                // tract panics on some bad inputs (an out-of-range Gather
                // index) where our executors return an error.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.run(tv)));
                let out = run.map_err(|_| anyhow::anyhow!("tract panicked on these inputs (see the message above)"))?;
                std::hint::black_box(out?);
                Ok(())
            })?;
            let isa = std::env::var("TRACT_CPU_ISA")
                .map(|v| format!("TRACT_CPU_ISA={v}"))
                .unwrap_or_else(|_| "native".into());
            (timing, plan_ms, isa)
        }
    };
    Ok(EngineRun { timing, peak_kb: peak_kb(), base_kb, plan_ms, plan_bytes, note })
}

/// `--budget-s` as a duration: finite, positive, at most a day.
fn budget_of(s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        anyhow::bail!("--budget-s {s}: expected seconds in (0, 86400]");
    }
    Ok(Duration::from_secs_f64(s))
}

/// Runs `verinfer bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    if args.compare {
        return compare(&args);
    }
    let model = args.model.as_ref().context("give a model (or --compare)")?;
    let l = load(model, &args.inputs, &args.shapes)?;
    let budget = budget_of(args.budget_s)?;
    if args.compare_one {
        let v = compare_one(model, &args, &l, budget)?;
        println!("{v}");
        return Ok(());
    }
    if args.profile {
        let mut plan = Plan::with_options(
            &l.model.program,
            &PlanOptions { program_root: Some(l.model.program_root), ..Default::default() },
        )?;
        let mut acc: Vec<(String, String, u128)> = plan.profile(&l.inputs)?;
        for _ in 1..args.iters.max(1) {
            for (a, b) in acc.iter_mut().zip(plan.profile(&l.inputs)?) {
                a.2 = a.2.min(b.2);
            }
        }
        let total: u128 = acc.iter().map(|a| a.2).sum();
        let mut by_op: std::collections::BTreeMap<String, u128> = Default::default();
        for (op, name, ns) in &acc {
            println!("{:>10.3} us  {op:<28} {name}", *ns as f64 / 1e3);
            *by_op.entry(op.split('+').next().unwrap_or("").to_string()).or_default() += ns;
        }
        println!("total (min per step) {:.3} ms", total as f64 / 1e6);
        for (op, ns) in by_op {
            println!("  {op:<16} {:>10.3} us", ns as f64 / 1e3);
        }
        return Ok(());
    }
    let r = run_engine(args.engine, &l, args.iters, budget)?;
    if args.json {
        println!("{}", r.timing.json());
    } else {
        println!(
            "{}  {:?}: median {:.3} ms, min {:.3} ms, max {:.3} ms over {} runs ({})",
            model.display(),
            args.engine,
            r.timing.median_ms,
            r.timing.min_ms,
            r.timing.max_ms,
            r.timing.iters,
            r.note
        );
    }
    Ok(())
}

fn compare_one(model: &Path, args: &BenchArgs, l: &Loaded, budget: Duration) -> Result<Value> {
    // Fast first: it also checks the reference's roots below.
    let fast = run_engine(Engine::Fast, l, args.iters, budget)?;
    let roots = run_engine(Engine::FastRoots, l, args.iters, budget)?;
    let traced = run_engine(Engine::FastTraced, l, args.iters, budget)?;
    let tract = run_engine(Engine::Tract, l, args.iters, budget)?;
    let reference = run_engine(Engine::Reference, l, args.iters.min(20), budget)?;
    // Equality of the fast executor with the reference on this input.
    let mut plan = Plan::with_options(
        &l.model.program,
        &PlanOptions { program_root: Some(l.model.program_root), ..Default::default() },
    )?;
    let ex = plan.run(&l.inputs)?;
    let rf = execute_with(&l.model.program, &l.inputs, ExecOptions::default())?;
    let equal = ex.output_root == rf.output_root;
    // tract under the generic ISA, in a child process.
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench").arg(model).arg("--engine").arg("tract").arg("--json");
    cmd.arg("--iters").arg(args.iters.to_string()).arg("--budget-s").arg(args.budget_s.to_string());
    for i in &args.inputs {
        cmd.arg("--input").arg(i);
    }
    for s in &args.shapes {
        cmd.arg("--shape").arg(s);
    }
    cmd.env("TRACT_CPU_ISA", TRACT_GENERIC_ISA);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("tract generic run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let generic: Value = serde_json::from_slice(&out.stdout)?;
    Ok(json!({
        "model": model.display().to_string(),
        "fast": fast.json(),
        "fast_roots": roots.json(),
        "fast_traced": traced.json(),
        "tract_native": tract.json(),
        "tract_generic": generic,
        "reference": reference.json(),
        "fast_equals_reference": equal,
    }))
}

fn model_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    // Corpus order when the names are the known ones, else alphabetical.
    const ORDER: [&str; 5] = ["mlp", "lenet5", "mobilenetv2", "gpt2", "bert_tiny"];
    v.sort_by_key(|p| {
        let n = p.file_name().and_then(|f| f.to_str()).unwrap_or("").to_string();
        (ORDER.iter().position(|o| *o == n).unwrap_or(ORDER.len()), n)
    });
    Ok(v)
}

fn compare(args: &BenchArgs) -> Result<()> {
    budget_of(args.budget_s)?;
    let root = args.models.clone().unwrap_or_else(|| PathBuf::from("fixtures/models"));
    let exe = std::env::current_exe()?;
    let dirs = model_dirs(&root)?;
    if dirs.is_empty() {
        bail!("--models {}: no model directories in it (each needs a model.onnx and input_*.npy)", root.display());
    }
    let mut rows = Vec::new();
    for dir in dirs {
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("input_") && f.ends_with(".npy"))
            })
            .collect();
        inputs.sort();
        let mut cmd = Command::new(&exe);
        cmd.arg("bench").arg(dir.join("model.onnx")).arg("--compare-one");
        cmd.arg("--iters").arg(args.iters.to_string()).arg("--budget-s").arg(args.budget_s.to_string());
        for i in &inputs {
            cmd.arg("--input").arg(i);
        }
        cmd.env_remove("TRACT_CPU_ISA");
        eprintln!("benchmarking {} …", dir.display());
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("{}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        }
        let mut v: Value = serde_json::from_slice(&out.stdout)?;
        v["name"] = json!(dir.file_name().and_then(|f| f.to_str()).unwrap_or("?"));
        rows.push(v);
    }
    let med = |v: &Value, k: &str| v[k]["median_ms"].as_f64().unwrap_or(f64::NAN);
    let ratios: Vec<f64> = rows.iter().map(|r| med(r, "fast") / med(r, "tract_native")).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median_ratio = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    if args.json {
        println!("{}", json!({"models": rows, "median_fast_over_tract_native": median_ratio}));
        return Ok(());
    }
    println!(
        "{:<12} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>5}",
        "model",
        "tract-nat",
        "tract-gen",
        "reference",
        "fast",
        "fast/nat",
        "fast+root",
        "traced",
        "tr/plain",
        "plan MiB",
        "RSS fast",
        "RSS trac",
        "equal"
    );
    let mib = |v: &Value, k: &str, f: &str| v[k][f].as_f64().map(|x| x / 1024.0).unwrap_or(f64::NAN);
    for (r, ratio) in rows.iter().zip(&ratios) {
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>10.3} {:>8.3} {:>8.2} {:>9.3} {:>9.3} {:>8.2} {:>8.1} {:>8.1} {:>8.1} {:>5}",
            r["name"].as_str().unwrap_or("?"),
            med(r, "tract_native"),
            med(r, "tract_generic"),
            med(r, "reference"),
            med(r, "fast"),
            ratio,
            med(r, "fast_roots"),
            med(r, "fast_traced"),
            med(r, "fast_traced") / med(r, "fast"),
            r["fast"]["plan_bytes"].as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0),
            mib(r, "fast", "peak_rss_kb"),
            mib(r, "tract_native", "peak_rss_kb"),
            r["fast_equals_reference"].as_bool().unwrap_or(false),
        );
    }
    println!("median fast/tract-native over {} models: {median_ratio:.2}", rows.len());
    for r in &rows {
        println!("  {}: {}", r["name"].as_str().unwrap_or("?"), r["fast"]["note"].as_str().unwrap_or(""));
    }
    Ok(())
}
