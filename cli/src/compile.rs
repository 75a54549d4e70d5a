//! `verinfer compile`: ONNX → canonical program, without running it; and
//! the registration guard of decision 0005 that runs it in a child process.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_rpc::error::ApiError;
use verinfer_sequencer::node::CompileCheckError;
use verinfer_state::hash::Hash32;

use crate::run::parse_shape;

/// Arguments of `verinfer compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The ONNX model (`-` reads it from stdin).
    model: PathBuf,
    /// Concrete shape for a named input, e.g. `--shape input_ids=1,16`
    /// (needed for inputs whose shape in the file is symbolic).
    #[arg(long = "shape", value_name = "NAME=D1,D2,…")]
    shapes: Vec<String>,
    /// Write the encoded program to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text. A model the
    /// frontend refuses prints `{"error": "…", "code": N, "rpc_message":
    /// "…"}` and exits with status 2: `code` and `rpc_message` are what the
    /// node's `model_register` answers for that model (e.g. 4005
    /// UNSUPPORTED_OP).
    #[arg(long)]
    json: bool,
    /// The model's name in messages (default: the file name, `-` for stdin).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Limit this process's address space to this many MiB (RLIMIT_AS), so
    /// a model whose lowering would exhaust memory fails in this process
    /// instead of taking the machine's memory: with status 2 and an error
    /// when tract reports the failed allocation, or by an abort when the
    /// allocation is outside tract's checks. The node's registration guard
    /// sets it (and answers INVALID_MODEL or INTERNAL respectively). Limits
    /// below a few hundred MiB leave too little for the binary itself.
    #[arg(long, value_name = "MIB")]
    max_memory_mib: Option<u64>,
    /// Give up after this many milliseconds: exit with status 3 (the
    /// registration guard's deadline, so an orphaned child never spins on).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,
}

/// The frontend refused the model (exit status 2 of `verinfer compile`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModelRefused(pub String);

/// Sets RLIMIT_AS for this process.
fn limit_address_space(mib: u64) -> Result<()> {
    #[cfg(unix)]
    {
        let bytes = mib.saturating_mul(1 << 20) as libc::rlim_t;
        let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
        // SAFETY: setrlimit reads the struct we pass and touches no Rust memory.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
        if rc != 0 {
            anyhow::bail!("--max-memory-mib {mib}: setrlimit failed: {}", std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = mib;
    Ok(())
}

/// Runs `verinfer compile`.
pub fn compile(args: CompileArgs) -> Result<()> {
    if let Some(mib) = args.max_memory_mib {
        limit_address_space(mib)?;
    }
    if let Some(ms) = args.deadline_ms {
        // tract can loop for ever on some malformed attributes (an audit's
        // LayerNormalization with axis -7 spun in its type inference).
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            eprintln!("verinfer compile: gave up after {ms} ms (--deadline-ms)");
            std::process::exit(3);
        });
    }
    let bytes = if args.model.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading the model from stdin")?;
        b
    } else {
        std::fs::read(&args.model).with_context(|| format!("reading model {}", args.model.display()))?
    };
    let shapes = args.shapes.iter().map(|s| parse_shape(s)).collect::<Result<Vec<_>>>()?;
    let opts = LoadOptions {
        name: args.name.clone().unwrap_or_else(|| args.model.display().to_string()),
        shapes,
        positional_shapes: vec![],
        constant_inputs: vec![],
    };
    let model = match load_model(&bytes, &opts) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            if args.json {
                // The registration guard answers with the node's own code
                // and message, so a model refused in its child gets the
                // same answer as one refused by the in-process compile.
                let rpc = verinfer_sequencer::node::model_error(e);
                println!("{}", json!({ "error": msg, "code": rpc.code, "rpc_message": rpc.message }));
            }
            return Err(ModelRefused(msg).into());
        }
    };
    let program = &model.program;
    if let Some(p) = &args.out {
        std::fs::write(p, program.to_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    let mut ops = std::collections::BTreeMap::<String, u32>::new();
    for n in &program.nodes {
        *ops.entry(n.op.name()).or_default() += 1;
    }
    if args.json {
        let inputs: Vec<_> =
            program.inputs.iter().map(|i| json!({"name": i.name, "dtype": i.dtype, "shape": i.shape})).collect();
        println!(
            "{}",
            json!({
                "model_id": model.model_id,
                "program_root": model.program_root,
                "nodes": program.nodes.len(),
                "constants": program.constants.len(),
                "inputs": inputs,
                "ops": ops,
            })
        );
        return Ok(());
    }
    println!("model id      {}", model.model_id);
    println!("program root  {}", model.program_root);
    println!("nodes         {} ({} constants)", program.nodes.len(), program.constants.len());
    for i in &program.inputs {
        println!("  input       {} {}{:?}", i.name, i.dtype, i.shape);
    }
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    println!("ops           {}", ops.join(" "));
    Ok(())
}

/// The registration guard of decision 0005: compiles the model again in a
/// child `verinfer compile` with tract forced to its generic kernels and
/// returns that program root, which the node compares with its own.
#[derive(Debug)]
pub struct ChildCompileCheck {
    exe: PathBuf,
    max_memory_mib: Option<u64>,
    deadline: Option<std::time::Duration>,
}

impl ChildCompileCheck {
    /// Uses the running `verinfer` binary; the child's address space is
    /// limited to `max_memory_mib` (`None`: unlimited).
    pub fn current(max_memory_mib: Option<u64>) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the verinfer binary for the registration guard")?;
        Ok(Self { exe, max_memory_mib, deadline: None })
    }

    /// Refuses a model whose compile takes longer than `ms` (0: no limit):
    /// the child is killed (and exits by itself if the node is gone).
    pub fn with_deadline_ms(mut self, ms: u64) -> Self {
        self.deadline = (ms > 0).then(|| std::time::Duration::from_millis(ms));
        self
    }

    /// The child's limit for a node whose models may plan up to
    /// `max_model_mib` (0: unlimited): twice that (tract holds the model and
    /// its folded copy) plus 2 GiB for the binary, its threads and tract.
    pub fn limit_for(max_model_mib: u64) -> Option<u64> {
        (max_model_mib > 0).then(|| max_model_mib.saturating_mul(2).saturating_add(2048))
    }
}

/// Waits for `child`, collecting its output; `Ok(None)` if it was still
/// running at `deadline` (it is then killed).
fn wait_within(
    mut child: std::process::Child,
    deadline: Option<std::time::Duration>,
) -> std::io::Result<Option<std::process::Output>> {
    fn drain<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut b);
            }
            b
        })
    }
    let Some(deadline) = deadline else { return child.wait_with_output().map(Some) };
    // Drained while we wait, so a chatty child never blocks on a full pipe.
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    Ok(Some(std::process::Output { status, stdout, stderr }))
}

impl verinfer_sequencer::node::CompileCheck for ChildCompileCheck {
    fn program_root(&self, onnx: &[u8], opts: &LoadOptions) -> Result<Hash32, CompileCheckError> {
        use CompileCheckError::Failed;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("compile").arg("-").arg("--json").arg("--name").arg(&opts.name);
        cmd.env("TRACT_CPU_ISA", crate::bench::TRACT_GENERIC_ISA);
        if let Some(mib) = self.max_memory_mib {
            cmd.arg("--max-memory-mib").arg(mib.to_string());
        }
        if let Some(d) = self.deadline {
            // A second later than ours: we answer first; the child's own
            // watchdog is for when we are gone.
            cmd.arg("--deadline-ms").arg((d.as_millis() + 1000).to_string());
        }
        for (name, dims) in &opts.shapes {
            let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
            cmd.arg("--shape").arg(format!("{name}={}", dims.join(",")));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failed(format!("spawning {}: {e}", self.exe.display())))?;
        // Write on another thread: a child that fails early stops reading.
        let mut stdin = child.stdin.take().ok_or_else(|| Failed("child stdin".into()))?;
        let bytes = onnx.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out =
            wait_within(child, self.deadline).map_err(|e| Failed(format!("waiting for the child compile: {e}")))?;
        let _ = writer.join();
        let too_slow = || {
            let ms = self.deadline.map_or(0, |d| d.as_millis());
            CompileCheckError::Model(ApiError::new(
                verinfer_rpc::error::INVALID_MODEL,
                format!(
                    "model {}: compiling it took longer than {ms} ms (the node's exec.max_compile_ms); refused",
                    opts.name
                ),
            ))
        };
        let Some(out) = out else { return Err(too_slow()) };
        if out.status.code() == Some(3) {
            return Err(too_slow()); // its own watchdog (`--deadline-ms`)
        }
        let v: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            // Status 2 with {"error"}: the frontend refused the model (an
            // allocation beyond the limit inside tract is one such refusal).
            if out.status.code() == Some(2)
                && let Some(v) = &v
                && let Some(msg) = v.get("rpc_message").and_then(|e| e.as_str())
                && let Some(code) = v.get("code").and_then(|c| c.as_i64()).and_then(|c| i32::try_from(c).ok())
            {
                let msg = match self.max_memory_mib {
                    Some(mib) if msg.contains("allocat") => {
                        format!("{msg} (compiling this model needs more than the guard's {mib} MiB)")
                    }
                    _ => msg.to_string(),
                };
                return Err(CompileCheckError::Model(ApiError::new(code, msg)));
            }
            return Err(Failed(format!(
                "the child compile failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let v = v.ok_or_else(|| Failed("the child compile printed no JSON".into()))?;
        let root = v
            .get("program_root")
            .and_then(|r| r.as_str())
            .ok_or_else(|| Failed("the child compile printed no program_root".into()))?;
        Hash32::from_hex(root)
            .map_err(|e| Failed(format!("program_root {root:?}: {}", Hash32::explain_hex_error(root, &e))))
    }
}
