//! `verinfer compile`: ONNX → canonical program, without running it; and
//! the registration guard of decision 0005 that runs it in a child process.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use verinfer_prover::frontend::{LoadOptions, load_model};
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
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `verinfer compile`.
pub fn compile(args: CompileArgs) -> Result<()> {
    let bytes = if args.model.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading the model from stdin")?;
        b
    } else {
        std::fs::read(&args.model).with_context(|| format!("reading model {}", args.model.display()))?
    };
    let shapes = args.shapes.iter().map(|s| parse_shape(s)).collect::<Result<Vec<_>>>()?;
    let opts = LoadOptions {
        name: args.model.display().to_string(),
        shapes,
        positional_shapes: vec![],
        constant_inputs: vec![],
    };
    let model = load_model(&bytes, &opts)?;
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
}

impl ChildCompileCheck {
    /// Uses the running `verinfer` binary.
    pub fn current() -> Result<Self> {
        Ok(Self { exe: std::env::current_exe().context("locating the verinfer binary for the registration guard")? })
    }
}

impl verinfer_sequencer::node::CompileCheck for ChildCompileCheck {
    fn program_root(&self, onnx: &[u8], opts: &LoadOptions) -> Result<Hash32, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("compile").arg("-").arg("--json").env("TRACT_CPU_ISA", crate::bench::TRACT_GENERIC_ISA);
        for (name, dims) in &opts.shapes {
            let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
            cmd.arg("--shape").arg(format!("{name}={}", dims.join(",")));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", self.exe.display()))?;
        // Write on another thread: a child that fails early stops reading.
        let mut stdin = child.stdin.take().ok_or("child stdin")?;
        let bytes = onnx.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output().map_err(|e| format!("waiting for the child compile: {e}"))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(format!("the child compile failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("the child compile printed no JSON: {e}"))?;
        let root = v.get("program_root").and_then(|r| r.as_str()).ok_or("the child compile printed no program_root")?;
        Hash32::from_hex(root).map_err(|e| format!("program_root {root:?}: {e}"))
    }
}
