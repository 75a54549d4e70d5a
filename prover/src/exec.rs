//! The reference executor: runs a [`Program`] on request inputs.
//!
//! Nodes run in program order; each node's output is dropped after its last
//! reader unless the caller asked to keep everything. With
//! [`ExecOptions::node_roots`] the root of every node output is computed as
//! it is produced (the trace), so tracing costs hashing but no extra memory.

use verinfer_state::hash::Hash32;
use verinfer_state::tensor::{Tensor, tensor_list_root};

use crate::error::ProverError;
use crate::ops;
use crate::program::{Program, ValueRef, ValueType};

/// What to keep besides the outputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// Compute every node output's root.
    pub node_roots: bool,
    /// Keep every node output tensor.
    pub keep_all: bool,
}

/// The result of running a program.
#[derive(Clone, Debug)]
pub struct Execution {
    /// Outputs in the program's output order.
    pub outputs: Vec<Tensor>,
    /// Root of each input tensor.
    pub input_roots: Vec<Hash32>,
    /// Commitment to the inputs (`tensor_list_root` of `input_roots`).
    pub input_root: Hash32,
    /// Root of each output tensor.
    pub output_roots: Vec<Hash32>,
    /// Commitment to the outputs.
    pub output_root: Hash32,
    /// Per-node output roots, when asked for.
    pub node_roots: Option<Vec<Hash32>>,
    /// Every node output, when asked for.
    pub node_outputs: Option<Vec<Tensor>>,
}

/// Checks request inputs against the program's signature.
pub fn check_inputs(program: &Program, inputs: &[Tensor]) -> Result<(), ProverError> {
    if inputs.len() != program.inputs.len() {
        return Err(ProverError::InputCount { expected: program.inputs.len(), got: inputs.len() });
    }
    for (i, (t, info)) in inputs.iter().zip(&program.inputs).enumerate() {
        if t.dtype() != info.dtype || t.shape_u64() != info.shape {
            return Err(ProverError::InputMismatch {
                index: i,
                name: info.name.clone(),
                expected: format!("{}{:?}", info.dtype, info.shape),
                got: format!("{}{:?}", t.dtype(), t.shape()),
            });
        }
    }
    Ok(())
}

/// Runs `program` on `inputs` with the reference semantics.
pub fn execute(program: &Program, inputs: &[Tensor]) -> Result<Execution, ProverError> {
    execute_with(program, inputs, ExecOptions::default())
}

/// Runs `program` with options.
pub fn execute_with(program: &Program, inputs: &[Tensor], opts: ExecOptions) -> Result<Execution, ProverError> {
    check_inputs(program, inputs)?;
    let n = program.nodes.len();
    // Last reader of each node output, to free memory early.
    let mut last_use = vec![0usize; n];
    for (i, node) in program.nodes.iter().enumerate() {
        for r in &node.inputs {
            if let ValueRef::Node(k) = r {
                last_use[*k as usize] = i;
            }
        }
    }
    let is_output: Vec<bool> = {
        let mut v = vec![false; n];
        for o in &program.outputs {
            v[o.node as usize] = true;
        }
        v
    };
    let mut values: Vec<Option<Tensor>> = vec![None; n];
    let mut node_roots = opts.node_roots.then(|| Vec::with_capacity(n));
    let mut kept = opts.keep_all.then(|| Vec::with_capacity(n));
    for (i, node) in program.nodes.iter().enumerate() {
        let mut args: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for r in &node.inputs {
            let t = match *r {
                ValueRef::Input(k) => &inputs[k as usize],
                ValueRef::Const(k) => &program.constants[k as usize],
                ValueRef::Node(k) => values[k as usize].as_ref().ok_or_else(|| ProverError::InvalidProgram {
                    node: node.name.clone(),
                    why: format!("node {k} read after it was freed"),
                })?,
            };
            args.push(t);
        }
        let out = ops::exec_node(&node.op, &args, &node.output).map_err(|e| match e {
            ProverError::Exec { why, op, .. } => ProverError::Exec { node: node.name.clone(), op, why },
            other => other,
        })?;
        if ValueType::of(&out) != node.output {
            return Err(ProverError::InvalidProgram {
                node: node.name.clone(),
                why: format!("produced {:?}, declared {:?}", ValueType::of(&out), node.output),
            });
        }
        if let Some(r) = node_roots.as_mut() {
            r.push(out.root());
        }
        if let Some(k) = kept.as_mut() {
            k.push(out.clone());
        }
        values[i] = Some(out);
        // Free inputs whose last reader this was.
        for r in &node.inputs {
            if let ValueRef::Node(k) = r {
                let k = *k as usize;
                if last_use[k] == i && !is_output[k] {
                    values[k] = None;
                }
            }
        }
    }
    let outputs: Vec<Tensor> =
        program.outputs.iter().map(|o| values[o.node as usize].clone().expect("outputs are never freed")).collect();
    let input_roots: Vec<Hash32> = inputs.iter().map(Tensor::root).collect();
    let output_roots: Vec<Hash32> = match &node_roots {
        Some(r) => program.outputs.iter().map(|o| r[o.node as usize]).collect(),
        None => outputs.iter().map(Tensor::root).collect(),
    };
    Ok(Execution {
        input_root: tensor_list_root(&input_roots),
        input_roots,
        output_root: tensor_list_root(&output_roots),
        output_roots,
        outputs,
        node_roots,
        node_outputs: kept,
    })
}
