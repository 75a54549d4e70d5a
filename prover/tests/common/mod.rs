//! Shared by the prover's test binaries (`kernels`, `agreement`): a builder
//! of small programs, type-checked node by node as the frontend would.

use verinfer_prover::ops::check_types;
use verinfer_prover::program::*;
use verinfer_state::tensor::Tensor;

/// Builds a small program.
#[derive(Default)]
pub struct Builder {
    inputs: Vec<TensorInfo>,
    input_vals: Vec<Tensor>,
    consts: Vec<Tensor>,
    nodes: Vec<Node>,
}

impl Builder {
    /// A request input (`as_const = false`) or a constant.
    pub fn value(&mut self, t: Tensor, as_const: bool) -> ValueRef {
        if as_const {
            self.consts.push(t);
            ValueRef::Const(self.consts.len() as u32 - 1)
        } else {
            self.inputs.push(TensorInfo {
                name: format!("in{}", self.inputs.len()),
                dtype: t.dtype(),
                shape: t.shape_u64(),
            });
            self.input_vals.push(t);
            ValueRef::Input(self.inputs.len() as u32 - 1)
        }
    }

    /// The type of a value.
    pub fn ty(&self, r: ValueRef) -> ValueType {
        match r {
            ValueRef::Input(i) => {
                ValueType { dtype: self.inputs[i as usize].dtype, shape: self.inputs[i as usize].shape.clone() }
            }
            ValueRef::Const(c) => ValueType::of(&self.consts[c as usize]),
            ValueRef::Node(n) => self.nodes[n as usize].output.clone(),
        }
    }

    /// Adds a node if the reference accepts its types (else why not).
    pub fn node(&mut self, op: Op, inputs: Vec<ValueRef>, out: ValueType) -> Result<ValueRef, String> {
        let types: Vec<ValueType> = inputs.iter().map(|r| self.ty(*r)).collect();
        check_types(&op, &types, &out).map_err(|e| format!("{e}"))?;
        self.nodes.push(Node { name: format!("n{}", self.nodes.len()), op, inputs, output: out });
        Ok(ValueRef::Node(self.nodes.len() as u32 - 1))
    }

    /// The program with `outputs` (nodes), and the request's input values.
    pub fn finish(self, outputs: &[ValueRef]) -> (Program, Vec<Tensor>) {
        let outputs = outputs
            .iter()
            .enumerate()
            .map(|(i, r)| match r {
                ValueRef::Node(n) => OutputInfo { name: format!("out{i}"), node: *n },
                _ => panic!("outputs are nodes"),
            })
            .collect();
        let p = Program {
            version: PROGRAM_VERSION,
            inputs: self.inputs,
            outputs,
            nodes: self.nodes,
            constants: self.consts,
        };
        (p, self.input_vals)
    }
}
