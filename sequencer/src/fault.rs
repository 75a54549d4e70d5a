//! Dev-only fault injection: the node corrupts chosen results so that the
//! dispute game has something to find (`docs/node.md#fault-injection`).
//!
//! A corrupted result is produced by `prover::dispute::execute_all` with a
//! [`Fault`] — the same consistent lie a `DisputeProver` built with that
//! fault tells — so the faulty trace the defender later commits to is
//! self-consistent and the game pins exactly the injected
//! `(node, element, step)`. The node stores the fault with the record's
//! roots before it accepts the record; the defender reads it back.
//!
//! Refused unless the node runs with `--dev` (`NodeConfig::validate`).

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use verinfer_prover::dispute::{DisputeProver, Fault, execute_all};
use verinfer_prover::program::Program;
use verinfer_state::hash::Hash32;
use verinfer_state::record::tensors_root;
use verinfer_state::tensor::Tensor;

/// Bit flipped in word 0 of the fold state by default: the top mantissa
/// bit of an f32, large enough that the change reaches the outputs of most
/// models (a low bit is often rounded away downstream).
pub const DEFAULT_XOR: u64 = 0x0040_0000;

/// Attempts at a random position that changes the outputs before giving
/// up on a request (a fault in a value that is later discarded, e.g. by a
/// ReLU or a max, does not change the record).
const RANDOM_ATTEMPTS: usize = 64;

/// Which requests to corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every N-th executed request since the node started (N, 2N, …).
    Every(u64),
    /// Only the K-th executed request since the node started (1-based).
    Request(u64),
}

/// A parsed `--inject-fault` value: comma-separated `key=value` pairs.
///
/// * `every=N` or `request=K` (exactly one) — which requests;
/// * `node=A,element=B,step=C` (all three) — where; omitted: a random
///   position that changes the outputs;
/// * `xor=X` — the bits flipped in the fold state (default `0x400000`);
/// * `seed=S` — the random positions' seed;
/// * `model=NAME` — only requests to the model with this name or id prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// Which requests.
    pub which: Which,
    /// Where (`None`: random).
    pub at: Option<(u32, u64, u64)>,
    /// Bits flipped.
    pub xor: u64,
    /// Seed for random positions.
    pub seed: Option<u64>,
    /// Only this model (name or `0x` id prefix).
    pub model: Option<String>,
}

fn num(k: &str, v: &str) -> Result<u64, String> {
    let r = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|e| format!("{k}={v}: {e}"))
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (mut which, mut node, mut element, mut step) = (None, None, None, None);
        let mut spec = FaultSpec { which: Which::Every(1), at: None, xor: DEFAULT_XOR, seed: None, model: None };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let set_which = |w: &mut Option<Which>, x: Which| {
                if w.replace(x).is_some() { Err("give one of every=N, request=K".to_string()) } else { Ok(()) }
            };
            match k {
                "every" => {
                    let n = num(k, v)?;
                    if n == 0 {
                        return Err("every=0: must be at least 1".into());
                    }
                    set_which(&mut which, Which::Every(n))?;
                }
                "request" => {
                    let n = num(k, v)?;
                    if n == 0 {
                        return Err("request=0: requests count from 1".into());
                    }
                    set_which(&mut which, Which::Request(n))?;
                }
                "node" => node = Some(u32::try_from(num(k, v)?).map_err(|_| format!("node={v}: too large"))?),
                "element" => element = Some(num(k, v)?),
                "step" => step = Some(num(k, v)?),
                "xor" => {
                    spec.xor = num(k, v)?;
                    if spec.xor == 0 {
                        return Err("xor=0 changes nothing".into());
                    }
                }
                "seed" => spec.seed = Some(num(k, v)?),
                "model" => spec.model = Some(v.to_string()),
                other => {
                    return Err(format!(
                        "unknown key {other:?} (every, request, node, element, step, xor, seed, model)"
                    ));
                }
            }
        }
        spec.which = which.unwrap_or(Which::Every(1));
        spec.at = match (node, element, step) {
            (Some(n), Some(e), Some(t)) => Some((n, e, t)),
            (None, None, None) => None,
            _ => return Err("give all of node, element and step, or none (random position)".into()),
        };
        Ok(spec)
    }
}

/// The store key under which the node keeps the fault of a corrupted
/// record, by the record's roots (known before the record is accepted, so
/// the fault is durable before the record exists).
pub fn fault_key(input_root: &Hash32, output_root: &Hash32) -> Vec<u8> {
    let mut k = b"fault/".to_vec();
    k.extend_from_slice(&input_root.0);
    k.extend_from_slice(&output_root.0);
    k
}

/// A corrupted result.
#[derive(Clone, Debug)]
pub struct Injected {
    /// The fault.
    pub fault: Fault,
    /// The faulty outputs, in the program's output order.
    pub outputs: Vec<Tensor>,
    /// Their root (the record's `output_root`).
    pub output_root: Hash32,
}

/// The node's injector: counts executed requests and corrupts the chosen
/// ones.
#[derive(Debug)]
pub struct FaultInjector {
    spec: FaultSpec,
    count: AtomicU64,
    rng: Mutex<rand_chacha::ChaCha8Rng>,
}

fn outputs_of(program: &Program, all: &[Tensor]) -> Vec<Tensor> {
    program.outputs.iter().map(|o| all[o.node as usize].clone()).collect()
}

impl FaultInjector {
    /// An injector for `spec`.
    pub fn new(spec: FaultSpec) -> Self {
        let seed = spec.seed.unwrap_or_else(rand::random);
        Self { spec, count: AtomicU64::new(0), rng: Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed)) }
    }

    /// The spec.
    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    /// Counts one executed request of the model (`name`, `id`) and says
    /// whether to corrupt it.
    pub fn pick(&self, name: &str, id: &Hash32) -> bool {
        if let Some(m) = &self.spec.model {
            let hex = id.to_string();
            if m != name && !(m.starts_with("0x") && hex.starts_with(m.as_str())) {
                return false;
            }
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        match self.spec.which {
            Which::Every(k) => n.is_multiple_of(k),
            Which::Request(k) => n == k,
        }
    }

    /// Corrupts the result of `program` on `inputs`: at the spec's position,
    /// or at a random one that changes the outputs. `Ok(None)` when the
    /// fault does not change the outputs (the record stays correct).
    pub fn corrupt(&self, program: &Program, inputs: &[Tensor]) -> Result<Option<Injected>, String> {
        let honest_root = || -> Result<Hash32, String> {
            let all = execute_all(program, inputs, None).map_err(|e| e.to_string())?;
            Ok(tensors_root(&outputs_of(program, &all)))
        };
        let try_fault = |fault: Fault, honest: &Hash32| -> Result<Option<Injected>, String> {
            let all = execute_all(program, inputs, Some(&fault)).map_err(|e| e.to_string())?;
            let outputs = outputs_of(program, &all);
            let output_root = tensors_root(&outputs);
            Ok((output_root != *honest).then_some(Injected { fault, outputs, output_root }))
        };
        let honest = honest_root()?;
        if let Some((node, element, step)) = self.spec.at {
            return try_fault(Fault { node, element, step, xor: self.spec.xor }, &honest);
        }
        // Random: a position (node, element, step) inside the honest trace.
        let prover = DisputeProver::new(program.clone(), inputs.to_vec(), None).map_err(|e| e.to_string())?;
        let nodes = program.nodes.len() as u32;
        if nodes == 0 {
            return Ok(None);
        }
        for _ in 0..RANDOM_ATTEMPTS {
            let (node, element) = {
                let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let node = rng.gen_range(0..nodes);
                let elems = program.nodes[node as usize].output.shape.iter().product::<u64>();
                if elems == 0 {
                    continue;
                }
                (node, rng.gen_range(0..elems))
            };
            let Ok((states, _)) = prover.states(node, element) else { continue };
            let k = states.len() as u64 - 1;
            if k == 0 {
                continue;
            }
            let step = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).gen_range(0..k);
            if let Some(i) = try_fault(Fault { node, element, step, xor: self.spec.xor }, &honest)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_reject() {
        let s: FaultSpec = "every=3".parse().unwrap();
        assert_eq!((s.which, s.at, s.xor), (Which::Every(3), None, DEFAULT_XOR));
        let s: FaultSpec = "request=2, node=4, element=42, step=0, xor=0x1, seed=7, model=mlp".parse().unwrap();
        assert_eq!((s.which, s.at, s.xor, s.seed), (Which::Request(2), Some((4, 42, 0)), 1, Some(7)));
        assert_eq!(s.model.as_deref(), Some("mlp"));
        for bad in ["every=0", "request=0", "every=1,request=2", "node=1", "bogus=1", "every", "xor=0", "every=x"] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn pick_counts_requests() {
        let i = FaultInjector::new("every=2".parse().unwrap());
        let id = Hash32([0; 32]);
        let v: Vec<bool> = (0..5).map(|_| i.pick("m", &id)).collect();
        assert_eq!(v, [false, true, false, true, false]);
        let i = FaultInjector::new("request=3,model=other".parse().unwrap());
        assert!(!(0..5).any(|_| i.pick("m", &id)));
        let i = FaultInjector::new("request=3".parse().unwrap());
        let v: Vec<bool> = (0..5).map(|_| i.pick("m", &id)).collect();
        assert_eq!(v, [false, false, true, false, false]);
    }
}
