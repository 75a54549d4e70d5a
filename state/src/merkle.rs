//! Merkle trees: rs_merkle for construction, our own verifier for proofs.
//!
//! rs_merkle builds the layers (with [`NodeHasher`] doing domain-separated
//! inner hashing); everything that reaches the protocol goes through this
//! wrapper, which closes the gaps measured in rs_merkle 1.5:
//!
//! * leaves and inner nodes are hashed under different tags (leaves are
//!   hashed by the caller under its own [`Domain`]; inner nodes here under
//!   [`Domain::MerkleInner`]), so a leaf can never pass for a subtree;
//! * the root is bound to the leaf count, `H(MerkleRoot || n || inner)`, so a
//!   one-leaf tree's root differs from its leaf and a proof is only valid for
//!   the tree size it was made for;
//! * proofs are single-leaf, carry their index and leaf count, and are checked
//!   by [`verify`], which rejects an out-of-range index, a missing or an extra
//!   path hash and a leaf count above [`MAX_LEAVES`].
//!
//! ## Shape
//! The tree is rs_merkle's: layer `l+1` pairs the nodes of layer `l`
//! left to right; the last node of an odd layer is promoted unchanged. The node
//! at `(level, index)` therefore covers leaves `[index·2^level,
//! min(n, (index+1)·2^level))`, which is what the dissection game descends.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::hash::{Domain, DomainHasher, Hash32, hash_parts};

/// The largest leaf count any protocol tree may have (2^40).
pub const MAX_LEAVES: u64 = 1 << 40;

/// rs_merkle hasher: inner nodes are `H(MerkleInner || left || right)`; the
/// last node of an odd layer is promoted unchanged (rs_merkle's shape).
#[derive(Clone, Debug)]
pub struct NodeHasher;

impl rs_merkle::Hasher for NodeHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        // Only reached through rs_merkle's default helpers, which this
        // wrapper does not use; hash under the inner tag so that even then
        // nothing collides with a leaf domain.
        hash_parts(Domain::MerkleInner, &[data]).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => inner(&Hash32(*left), &Hash32(*r)).0,
            None => *left,
        }
    }
}

/// `H(MerkleInner || left || right)`.
pub fn inner(left: &Hash32, right: &Hash32) -> Hash32 {
    hash_parts(Domain::MerkleInner, &[&left.0, &right.0])
}

/// `H(MerkleRoot || n || inner_root)`; the empty tree uses [`Hash32::ZERO`].
pub fn bind_root(leaf_count: u64, inner_root: &Hash32) -> Hash32 {
    let mut h = DomainHasher::new(Domain::MerkleRoot);
    h.u64(leaf_count).hash32(inner_root);
    h.finish()
}

/// Why a tree could not be built or a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// More leaves than [`MAX_LEAVES`].
    #[error("leaf count {0} exceeds the maximum {MAX_LEAVES}")]
    TooManyLeaves(u64),
    /// The proof is for an empty tree.
    #[error("a proof needs at least one leaf")]
    EmptyTree,
    /// The leaf index is not below the leaf count.
    #[error("leaf index {index} out of range for {leaf_count} leaves")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree's leaf count.
        leaf_count: u64,
    },
    /// The path ran out of hashes before reaching the root.
    #[error("proof path too short: needs more than {0} hashes")]
    PathTooShort(usize),
    /// The path has hashes left over after reaching the root.
    #[error("proof path too long: {extra} trailing hashes")]
    PathTooLong {
        /// How many hashes were not used.
        extra: usize,
    },
    /// The recomputed root differs from the expected one.
    #[error("root mismatch: proof gives {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash32,
        /// The root it should lead to.
        expected: Hash32,
    },
    /// A node coordinate that does not exist in the tree.
    #[error("no node at level {level}, index {index}")]
    NoSuchNode {
        /// Level (0 = leaves).
        level: u32,
        /// Index in the level.
        index: u64,
    },
}

/// A single-leaf inclusion proof, bound to its index and the tree's size.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct MerkleProof {
    /// The leaf's index.
    pub index: u64,
    /// The tree's leaf count.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf's level upwards; levels where the node is
    /// promoted (no sibling) contribute nothing.
    pub path: Vec<Hash32>,
}

/// Number of nodes in `level` of a tree with `leaf_count` leaves.
pub fn level_width(leaf_count: u64, level: u32) -> u64 {
    if level >= 64 {
        return u64::from(leaf_count > 0);
    }
    let w = 1u64 << level;
    leaf_count.div_ceil(w)
}

/// The number of levels above the leaves (0 for one leaf).
pub fn depth(leaf_count: u64) -> u32 {
    if leaf_count <= 1 { 0 } else { 64 - (leaf_count - 1).leading_zeros() }
}

/// Climbs from `node` at `(level, index)` to the inner root using `path`,
/// returning the inner root and how many path hashes were used.
fn climb(
    leaf_count: u64,
    mut level: u32,
    mut index: u64,
    mut node: Hash32,
    path: &[Hash32],
) -> Result<(Hash32, usize), MerkleError> {
    let top = depth(leaf_count);
    let mut used = 0usize;
    while level < top {
        let width = level_width(leaf_count, level);
        if index % 2 == 1 {
            let sib = path.get(used).ok_or(MerkleError::PathTooShort(used))?;
            node = inner(sib, &node);
            used += 1;
        } else if index + 1 < width {
            let sib = path.get(used).ok_or(MerkleError::PathTooShort(used))?;
            node = inner(&node, sib);
            used += 1;
        }
        index /= 2;
        level += 1;
    }
    Ok((node, used))
}

/// Checks that `leaf` sits at `proof.index` of a tree of `proof.leaf_count`
/// leaves whose bound root is `root`. Uses every path hash exactly once.
pub fn verify(root: &Hash32, leaf: &Hash32, proof: &MerkleProof) -> Result<(), MerkleError> {
    verify_node(root, 0, leaf, proof)
}

/// Like [`verify`] for a node at `level` (0 = leaf): `proof.index` is the
/// node's index within its level. Used by dissection, which reveals subtree
/// roots rather than leaves.
pub fn verify_node(root: &Hash32, level: u32, node: &Hash32, proof: &MerkleProof) -> Result<(), MerkleError> {
    let computed = root_from_proof(level, node, proof)?;
    if &computed != root {
        return Err(MerkleError::RootMismatch { computed, expected: *root });
    }
    Ok(())
}

/// The bound root that `proof` leads to from `node` at `level`, after checking
/// the proof's shape (leaf count, index, exact path length).
pub fn root_from_proof(level: u32, node: &Hash32, proof: &MerkleProof) -> Result<Hash32, MerkleError> {
    let n = proof.leaf_count;
    if n == 0 {
        return Err(MerkleError::EmptyTree);
    }
    if n > MAX_LEAVES {
        return Err(MerkleError::TooManyLeaves(n));
    }
    let width = level_width(n, level);
    if level > depth(n) || proof.index >= width {
        return Err(MerkleError::IndexOutOfRange { index: proof.index, leaf_count: n });
    }
    let (inner_root, used) = climb(n, level, proof.index, *node, &proof.path)?;
    if used != proof.path.len() {
        return Err(MerkleError::PathTooLong { extra: proof.path.len() - used });
    }
    Ok(bind_root(n, &inner_root))
}

/// A built tree: all layers kept, so proofs and subtree nodes are cheap.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `layers[0]` are the leaves; the last layer has one node (or none).
    layers: Vec<Vec<Hash32>>,
    leaf_count: u64,
}

impl MerkleTree {
    /// Builds the tree over already domain-hashed leaves.
    pub fn from_leaves(leaves: &[Hash32]) -> Result<Self, MerkleError> {
        let n = leaves.len() as u64;
        if n > MAX_LEAVES {
            return Err(MerkleError::TooManyLeaves(n));
        }
        if n == 0 {
            return Ok(Self { layers: vec![Vec::new()], leaf_count: 0 });
        }
        if n == 1 {
            // rs_merkle's PartialTree yields no layer for a single leaf.
            return Ok(Self { layers: vec![leaves.to_vec()], leaf_count: 1 });
        }
        let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
        let partial = rs_merkle::PartialTree::<NodeHasher>::from_leaves(&raw).map_err(|_| MerkleError::EmptyTree)?;
        let mut layers: Vec<Vec<Hash32>> =
            partial.layers().iter().map(|layer| layer.iter().map(|(_, h)| Hash32(*h)).collect()).collect();
        // rs_merkle sizes the tree by the bit length of n, so for a power of
        // two it adds a layer that only promotes the root; drop it.
        layers.truncate(depth(n) as usize + 1);
        if layers.len() as u32 != depth(n) + 1 || layers.last().map(Vec::len) != Some(1) {
            panic!("rs_merkle layer shape changed: {} layers for {n} leaves", layers.len());
        }
        Ok(Self { layers, leaf_count: n })
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> u64 {
        self.leaf_count
    }

    /// Levels above the leaves.
    pub fn depth(&self) -> u32 {
        depth(self.leaf_count)
    }

    /// The unbound root of the layers (the single top node).
    pub fn inner_root(&self) -> Hash32 {
        self.layers.last().and_then(|l| l.first()).copied().unwrap_or(Hash32::ZERO)
    }

    /// The protocol root: the inner root bound to the leaf count.
    pub fn root(&self) -> Hash32 {
        bind_root(self.leaf_count, &self.inner_root())
    }

    /// The node at `(level, index)`, level 0 being the leaves.
    pub fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError> {
        self.layers
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MerkleError::NoSuchNode { level, index })
    }

    /// The leaves.
    pub fn leaves(&self) -> &[Hash32] {
        &self.layers[0]
    }

    /// Proof for leaf `index`.
    pub fn proof(&self, index: u64) -> Result<MerkleProof, MerkleError> {
        self.node_proof(0, index)
    }

    /// Proof for the node at `(level, index)` up to the root.
    pub fn node_proof(&self, level: u32, index: u64) -> Result<MerkleProof, MerkleError> {
        self.node(level, index)?;
        let mut path = Vec::new();
        let mut i = index;
        for layer in &self.layers[level as usize..self.layers.len() - 1] {
            let sib = if i % 2 == 1 { Some(i - 1) } else { Some(i + 1) };
            if let Some(h) = sib.and_then(|s| layer.get(s as usize)) {
                path.push(*h);
            }
            i /= 2;
        }
        Ok(MerkleProof { index, leaf_count: self.leaf_count, path })
    }
}

/// Indices (in level `level - d`) of the nodes `d` levels below the node at
/// `(level, index)`, as the tree's shape has them.
pub fn descendant_range(leaf_count: u64, level: u32, index: u64, d: u32) -> std::ops::Range<u64> {
    let below = level.saturating_sub(d);
    let d = level - below;
    let width = level_width(leaf_count, below);
    let start = index.saturating_mul(1u64 << d).min(width);
    let end = index.saturating_add(1).saturating_mul(1u64 << d).min(width);
    start..end
}

/// Recomputes the node at `(level, index)` from all its descendants `d`
/// levels below (pairing left to right, promoting an odd last node, exactly
/// as the tree was built). Used by dissection: a reveal is valid when this
/// equals the node being dissected.
pub fn node_from_descendants(
    leaf_count: u64,
    level: u32,
    index: u64,
    d: u32,
    nodes: &[Hash32],
) -> Result<Hash32, MerkleError> {
    if leaf_count == 0 {
        return Err(MerkleError::EmptyTree);
    }
    if leaf_count > MAX_LEAVES {
        return Err(MerkleError::TooManyLeaves(leaf_count));
    }
    if level > depth(leaf_count) || index >= level_width(leaf_count, level) || d > level {
        return Err(MerkleError::NoSuchNode { level, index });
    }
    let range = descendant_range(leaf_count, level, index, d);
    if nodes.len() as u64 != range.end - range.start {
        return Err(MerkleError::PathTooShort(nodes.len()));
    }
    let mut cur: Vec<Hash32> = nodes.to_vec();
    let mut first = range.start;
    for l in (level - d)..level {
        let width = level_width(leaf_count, l);
        let mut next = Vec::with_capacity(cur.len().div_ceil(2));
        let mut i = 0usize;
        while i < cur.len() {
            let pos = first + i as u64;
            if pos + 1 < width && i + 1 < cur.len() {
                next.push(inner(&cur[i], &cur[i + 1]));
                i += 2;
            } else {
                // The last node of an odd layer is promoted.
                next.push(cur[i]);
                i += 1;
            }
        }
        cur = next;
        first /= 2;
    }
    debug_assert_eq!(cur.len(), 1);
    cur.pop().ok_or(MerkleError::NoSuchNode { level, index })
}

impl MerkleTree {
    /// The nodes `d` levels below `(level, index)`.
    pub fn descendants(&self, level: u32, index: u64, d: u32) -> Result<Vec<Hash32>, MerkleError> {
        self.node(level, index)?;
        let below = level.saturating_sub(d);
        let r = descendant_range(self.leaf_count, level, index, d);
        (r.start..r.end).map(|i| self.node(below, i)).collect()
    }
}

/// The bound root of `leaves`.
pub fn merkle_root(leaves: &[Hash32]) -> Result<Hash32, MerkleError> {
    let n = leaves.len() as u64;
    if n > MAX_LEAVES {
        return Err(MerkleError::TooManyLeaves(n));
    }
    Ok(root_of_leaves(leaves.to_vec()))
}

/// The bound root of at most [`MAX_LEAVES`] leaves, layer by layer with the
/// inner hashes four at a time, keeping no tree. The same shape as
/// [`MerkleTree`] (pairs left to right, an odd last node promoted), which
/// the tests check.
pub(crate) fn root_of_leaves(mut layer: Vec<Hash32>) -> Hash32 {
    let n = layer.len() as u64;
    debug_assert!(n <= MAX_LEAVES);
    let mut next = Vec::with_capacity(layer.len().div_ceil(2));
    while layer.len() > 1 {
        next.clear();
        let pairs = layer.len() / 2;
        let prev = &layer;
        crate::hash_many::tagged_many(
            Domain::MerkleInner as u8,
            64,
            pairs,
            |i, dst| {
                dst[..32].copy_from_slice(&prev[2 * i].0);
                dst[32..].copy_from_slice(&prev[2 * i + 1].0);
            },
            &mut next,
        );
        if layer.len() % 2 == 1 {
            next.push(layer[layer.len() - 1]);
        }
        std::mem::swap(&mut layer, &mut next);
    }
    bind_root(n, &layer.first().copied().unwrap_or(Hash32::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n).map(|i| hash(Domain::TensorChunk, &(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn every_proof_verifies_and_matches_rs_merkle() {
        for n in 1..=70usize {
            let l = leaves(n);
            let t = MerkleTree::from_leaves(&l).unwrap();
            let raw: Vec<[u8; 32]> = l.iter().map(|h| h.0).collect();
            let rs = rs_merkle::MerkleTree::<NodeHasher>::from_leaves(&raw);
            assert_eq!(rs.root().unwrap(), t.inner_root().0, "n={n}");
            for i in 0..n {
                let p = t.proof(i as u64).unwrap();
                let rs_path: Vec<Hash32> = rs.proof(&[i]).proof_hashes().iter().map(|h| Hash32(*h)).collect();
                assert_eq!(p.path, rs_path, "n={n} i={i}");
                verify(&t.root(), &l[i], &p).unwrap();
            }
        }
    }

    #[test]
    fn root_without_tree_equals_tree_root() {
        for n in (0..70).chain([127, 128, 129, 255, 256, 257, 1000, 2345]) {
            let l = leaves(n);
            let tree = MerkleTree::from_leaves(&l).expect("tree");
            assert_eq!(merkle_root(&l), Ok(tree.root()), "{n} leaves");
        }
    }

    #[test]
    fn one_leaf_root_is_not_the_leaf() {
        let l = leaves(1);
        let t = MerkleTree::from_leaves(&l).unwrap();
        assert_ne!(t.root(), l[0]);
        assert_eq!(t.inner_root(), l[0]);
        let p = t.proof(0).unwrap();
        assert!(p.path.is_empty());
        verify(&t.root(), &l[0], &p).unwrap();
    }

    #[test]
    fn empty_tree() {
        let t = MerkleTree::from_leaves(&[]).unwrap();
        assert_eq!(t.root(), bind_root(0, &Hash32::ZERO));
        assert!(t.proof(0).is_err());
        let p = MerkleProof { index: 0, leaf_count: 0, path: vec![] };
        assert_eq!(verify(&t.root(), &Hash32::ZERO, &p), Err(MerkleError::EmptyTree));
    }

    #[test]
    fn tampered_proofs_are_rejected() {
        let l = leaves(13);
        let t = MerkleTree::from_leaves(&l).unwrap();
        let root = t.root();
        for i in 0..13u64 {
            let p = t.proof(i).unwrap();
            // Wrong leaf.
            assert!(verify(&root, &l[((i + 1) % 13) as usize], &p).is_err());
            // Wrong index.
            let mut q = p.clone();
            q.index = (i + 1) % 13;
            assert!(verify(&root, &l[i as usize], &q).is_err());
            // Out-of-range index.
            q.index = 13;
            assert!(matches!(verify(&root, &l[i as usize], &q), Err(MerkleError::IndexOutOfRange { .. })));
            // Wrong leaf count, in both directions.
            for n in [12u64, 14, 16, 26] {
                let mut q = p.clone();
                q.leaf_count = n;
                assert!(verify(&root, &l[i as usize], &q).is_err(), "i={i} n={n}");
            }
            // Trailing hash.
            let mut q = p.clone();
            q.path.push(l[0]);
            assert!(matches!(verify(&root, &l[i as usize], &q), Err(MerkleError::PathTooLong { extra: 1 })));
            // Missing hash.
            let mut q = p.clone();
            q.path.pop();
            assert!(verify(&root, &l[i as usize], &q).is_err());
            // Each single-bit flip in each path hash.
            for k in 0..p.path.len() {
                for bit in [0usize, 7, 100, 255] {
                    let mut q = p.clone();
                    q.path[k].0[bit / 8] ^= 1 << (bit % 8);
                    assert!(verify(&root, &l[i as usize], &q).is_err());
                }
            }
        }
    }

    #[test]
    fn duplicate_leaves_are_bound_to_their_position() {
        let x = hash(Domain::TensorChunk, b"same");
        let l = vec![x, x, x, x, x];
        let t = MerkleTree::from_leaves(&l).unwrap();
        for i in 0..5u64 {
            let p = t.proof(i).unwrap();
            verify(&t.root(), &x, &p).unwrap();
            for j in 0..5u64 {
                if i == j {
                    continue;
                }
                // A proof made for one position never verifies at another
                // position whose path differs.
                let mut q = p.clone();
                q.index = j;
                let ok = verify(&t.root(), &x, &q).is_ok();
                let same_path = t.proof(j).unwrap().path == p.path;
                assert_eq!(ok, same_path, "i={i} j={j}");
            }
        }
    }

    #[test]
    fn leaf_cannot_pose_as_inner_node() {
        // A two-leaf tree's inner root is H(inner||a||b); presenting it as a
        // leaf of a one-leaf tree gives a different bound root.
        let l = leaves(2);
        let t = MerkleTree::from_leaves(&l).unwrap();
        let fake = MerkleProof { index: 0, leaf_count: 1, path: vec![] };
        assert!(verify(&t.root(), &t.inner_root(), &fake).is_err());
    }

    #[test]
    fn too_many_leaves_rejected_without_allocation() {
        let p = MerkleProof { index: 0, leaf_count: MAX_LEAVES + 1, path: vec![] };
        assert_eq!(verify(&Hash32::ZERO, &Hash32::ZERO, &p), Err(MerkleError::TooManyLeaves(MAX_LEAVES + 1)));
        let p = MerkleProof { index: 0, leaf_count: u64::MAX, path: vec![] };
        assert!(verify(&Hash32::ZERO, &Hash32::ZERO, &p).is_err());
    }

    #[test]
    fn subtree_nodes_verify() {
        let l = leaves(37);
        let t = MerkleTree::from_leaves(&l).unwrap();
        for level in 0..=t.depth() {
            for i in 0..level_width(37, level) {
                let node = t.node(level, i).unwrap();
                let p = t.node_proof(level, i).unwrap();
                verify_node(&t.root(), level, &node, &p).unwrap();
                let mut q = p.clone();
                q.index = level_width(37, level);
                assert!(verify_node(&t.root(), level, &node, &q).is_err());
            }
        }
        assert!(t.node(0, 37).is_err());
    }

    #[test]
    fn nodes_recompute_from_descendants() {
        for n in [1u64, 2, 3, 5, 8, 13, 37, 64, 100] {
            let l = leaves(n as usize);
            let t = MerkleTree::from_leaves(&l).unwrap();
            for level in 0..=t.depth() {
                for index in 0..level_width(n, level) {
                    for d in 0..=level {
                        let desc = t.descendants(level, index, d).unwrap();
                        let got = node_from_descendants(n, level, index, d, &desc).unwrap();
                        assert_eq!(got, t.node(level, index).unwrap(), "n={n} level={level} index={index} d={d}");
                        if !desc.is_empty() && d > 0 {
                            let mut bad = desc.clone();
                            bad[0].0[0] ^= 1;
                            assert_ne!(node_from_descendants(n, level, index, d, &bad).unwrap(), got);
                            bad.pop();
                            if desc.len() > 1 {
                                assert!(node_from_descendants(n, level, index, d, &bad).is_err());
                            }
                        }
                    }
                }
            }
        }
    }
}
