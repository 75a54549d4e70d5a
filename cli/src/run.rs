//! `verinfer run`: load a model, execute it canonically, print roots.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use verinfer_prover::exec::{ExecOptions, execute_with};
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::trace::Trace;
use verinfer_state::npy;

/// Arguments of `verinfer run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The ONNX model.
    model: PathBuf,
    /// Input `.npy` files, in the model's input order.
    #[arg(long = "input", short = 'i', value_name = "FILE.npy", num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Concrete shape for a named input, e.g. `--shape input_ids=1,16`
    /// (defaults to the shape of the corresponding `.npy`).
    #[arg(long = "shape", value_name = "NAME=D1,D2,…")]
    shapes: Vec<String>,
    /// Write output `i` as `DIR/output_i.npy`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print every node's op, output shape and root, and the trace root.
    #[arg(long)]
    trace: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_shape(s: &str) -> Result<(String, Vec<u64>)> {
    let (name, dims) = s.split_once('=').with_context(|| format!("--shape {s:?}: expected NAME=D1,D2,…"))?;
    let dims = if dims.trim().is_empty() {
        Vec::new()
    } else {
        dims.split(',')
            .map(|d| d.trim().parse::<u64>().with_context(|| format!("--shape {s:?}: {d:?} is not a dimension")))
            .collect::<Result<_>>()?
    };
    Ok((name.to_string(), dims))
}

/// Runs `verinfer run`.
pub fn run(args: RunArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading model {}", args.model.display()))?;
    let mut inputs = Vec::new();
    for p in &args.inputs {
        let b = std::fs::read(p).with_context(|| format!("reading input {}", p.display()))?;
        inputs.push(npy::read_tensor(&b).with_context(|| format!("input {}", p.display()))?);
    }
    let shapes = args.shapes.iter().map(|s| parse_shape(s)).collect::<Result<Vec<_>>>()?;
    let opts = LoadOptions {
        name: args.model.display().to_string(),
        shapes,
        positional_shapes: inputs.iter().map(|t| t.shape_u64()).collect(),
        constant_inputs: vec![],
    };
    let model = load_model(&bytes, &opts)?;
    let program = &model.program;
    if inputs.len() != program.inputs.len() {
        let names: Vec<&str> = program.inputs.iter().map(|i| i.name.as_str()).collect();
        bail!("the model takes {} inputs ({}), {} given with --input", names.len(), names.join(", "), inputs.len());
    }
    let ex = execute_with(program, &inputs, ExecOptions { node_roots: args.trace, keep_all: false })?;
    let trace = ex.node_roots.clone().map(|r| Trace::new(model.program_root, ex.input_root, r));

    let mut files = Vec::new();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (i, t) in ex.outputs.iter().enumerate() {
            let p = dir.join(format!("output_{i}.npy"));
            std::fs::write(&p, npy::write_tensor(t)).with_context(|| format!("writing {}", p.display()))?;
            files.push(p.display().to_string());
        }
    }

    if args.json {
        let outputs: Vec<_> = program
            .outputs
            .iter()
            .zip(&ex.outputs)
            .zip(&ex.output_roots)
            .enumerate()
            .map(|(i, ((o, t), r))| {
                json!({"name": o.name, "dtype": t.dtype(), "shape": t.shape(), "root": r, "file": files.get(i)})
            })
            .collect();
        let inputs_j: Vec<_> = program
            .inputs
            .iter()
            .zip(&ex.input_roots)
            .map(|(i, r)| json!({"name": i.name, "dtype": i.dtype, "shape": i.shape, "root": r}))
            .collect();
        let mut obj = json!({
            "model": args.model.display().to_string(),
            "model_id": model.model_id,
            "program_root": model.program_root,
            "input_root": ex.input_root,
            "output_root": ex.output_root,
            "inputs": inputs_j,
            "outputs": outputs,
            "nodes": program.nodes.len(),
            "constants": program.constants.len(),
        });
        if let Some(tr) = &trace {
            let nodes: Vec<_> = program
                .nodes
                .iter()
                .zip(&tr.node_roots)
                .enumerate()
                .map(|(i, (n, r))| json!({"index": i, "name": n.name, "op": n.op.name(), "dtype": n.output.dtype, "shape": n.output.shape, "root": r}))
                .collect();
            obj["trace"] = json!(nodes);
            obj["trace_root"] = json!(tr.root);
        }
        println!("{obj}");
        return Ok(());
    }

    println!("model         {}", args.model.display());
    println!("model id      {}", model.model_id);
    println!("program root  {}", model.program_root);
    println!("nodes         {} ({} constants)", program.nodes.len(), program.constants.len());
    println!("input root    {}", ex.input_root);
    for (i, (inp, r)) in program.inputs.iter().zip(&ex.input_roots).enumerate() {
        println!("  input[{i}]    {} {}{:?} {}", inp.name, inp.dtype, inp.shape, r);
    }
    println!("output root   {}", ex.output_root);
    for (i, ((o, t), r)) in program.outputs.iter().zip(&ex.outputs).zip(&ex.output_roots).enumerate() {
        let file = files.get(i).map(|f| format!(" → {f}")).unwrap_or_default();
        println!("  output[{i}]   {} {}{:?} {}{file}", o.name, t.dtype(), t.shape(), r);
    }
    if let Some(tr) = &trace {
        println!("trace root    {}", tr.root);
        for (i, (n, r)) in program.nodes.iter().zip(&tr.node_roots).enumerate() {
            println!(
                "  #{i:<4} {:<16} {:<5}{:<18} {}  {}",
                n.op.name(),
                n.output.dtype.name(),
                format!("{:?}", n.output.shape),
                r,
                n.name
            );
        }
    }
    Ok(())
}
