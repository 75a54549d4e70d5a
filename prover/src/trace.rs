//! Traces: the commitment to every intermediate result of one execution.
//!
//! ```text
//! leaf 0      H(TraceBinding || program_root || input_root)
//! leaf 1+i    H(TraceNode || i:u64le || node_output_root_i)
//! trace_root  H(Trace || merkle_root(leaves))
//! ```
//! The dispute game descends this tree to the first node whose output the
//! parties disagree on; every node before it was accepted, and every input
//! of a node is an earlier node, a constant or a request input, so the
//! disputed node's operands are all accepted values (DAG-correct dissection).

use verinfer_state::hash::{Domain, DomainHasher, Hash32, hash_parts};
use verinfer_state::merkle::{MerkleProof, MerkleTree};
use verinfer_state::tensor::Tensor;

use crate::error::ProverError;
use crate::exec::{ExecOptions, execute_with};
use crate::program::Program;

/// Leaf 0: binds the program and the inputs.
pub fn binding_leaf(program_root: &Hash32, input_root: &Hash32) -> Hash32 {
    hash_parts(Domain::TraceBinding, &[&program_root.0, &input_root.0])
}

/// Leaf of node `i`'s output root.
pub fn node_leaf(i: u64, root: &Hash32) -> Hash32 {
    let mut h = DomainHasher::new(Domain::TraceNode);
    h.u64(i).hash32(root);
    h.finish()
}

/// `H(Trace || tree root)`.
pub fn trace_root_from_tree(tree: &MerkleTree) -> Hash32 {
    hash_parts(Domain::Trace, &[&tree.root().0])
}

/// A computed trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The program's root.
    pub program_root: Hash32,
    /// The inputs' commitment.
    pub input_root: Hash32,
    /// Output root of every node.
    pub node_roots: Vec<Hash32>,
    /// The tree over the trace leaves.
    pub tree: MerkleTree,
    /// The trace root.
    pub root: Hash32,
}

impl Trace {
    /// Builds the trace from node roots.
    pub fn new(program_root: Hash32, input_root: Hash32, node_roots: Vec<Hash32>) -> Self {
        let mut leaves = Vec::with_capacity(node_roots.len() + 1);
        leaves.push(binding_leaf(&program_root, &input_root));
        leaves.extend(node_roots.iter().enumerate().map(|(i, r)| node_leaf(i as u64, r)));
        let tree = MerkleTree::from_leaves(&leaves).expect("trace far below MAX_LEAVES");
        let root = trace_root_from_tree(&tree);
        Self { program_root, input_root, node_roots, tree, root }
    }

    /// Runs the program and builds its trace.
    pub fn compute(program: &Program, program_root: Hash32, inputs: &[Tensor]) -> Result<Self, ProverError> {
        let ex = execute_with(program, inputs, ExecOptions { node_roots: true, keep_all: false })?;
        let roots = ex.node_roots.expect("asked for node roots");
        Ok(Self::new(program_root, ex.input_root, roots))
    }

    /// Proof of node `i`'s leaf.
    pub fn node_proof(&self, i: u32) -> Result<MerkleProof, ProverError> {
        Ok(self.tree.proof(1 + u64::from(i))?)
    }
}
