//! Data movement: every output element is a copy of one input element (or a
//! pad constant). A one-step fold whose only work is index arithmetic; the
//! gather family first reads its index operand(s), then the element they
//! select (`docs/semantics.md#data-movement`).

use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

use super::layout::{broadcast_index, broadcast_strides, coords, ravel, strides};
use super::{ElementFold, FoldState, OperandReader};
use crate::error::ProverError;
use crate::program::{Op, PadMode, ValueType};

/// The index map of one movement node.
#[derive(Debug, Clone)]
pub(crate) struct MoveFold {
    op: Op,
    inputs: Vec<ValueType>,
    out: ValueType,
    in_strides: Vec<Vec<u64>>,
    bstrides: Vec<u64>,
}

fn exec_err(op: &Op, why: String) -> ProverError {
    ProverError::Exec { node: String::new(), op: op.name(), why }
}

/// Reads an index operand as i64 and resolves it against `dim` (negative
/// indices count from the end).
fn resolve_index(op: &Op, v: Scalar, dim: u64) -> Result<u64, ProverError> {
    let i = match v.dtype {
        DType::I64 | DType::I32 | DType::I16 | DType::I8 => v.as_i64(),
        DType::U64 | DType::U32 | DType::U16 | DType::U8 => v.bits as i64,
        d => return Err(exec_err(op, format!("index tensor has dtype {d}"))),
    };
    let r = if i < 0 { i + dim as i64 } else { i };
    if r < 0 || r >= dim as i64 {
        return Err(exec_err(op, format!("index {i} out of range for axis of extent {dim}")));
    }
    Ok(r as u64)
}

impl MoveFold {
    pub fn new(op: &Op, inputs: &[ValueType], out: &ValueType) -> Result<Self, ProverError> {
        let bad = |why: String| ProverError::InvalidProgram { node: op.name(), why };
        let need = match op {
            Op::Concat { .. } => inputs.len().max(1),
            Op::Gather { .. } | Op::GatherElements { .. } | Op::GatherNd { .. } => 2,
            _ => 1,
        };
        if inputs.len() != need {
            return Err(bad(format!("expects {need} inputs, has {}", inputs.len())));
        }
        let x = &inputs[0];
        let dtype_ok = inputs.iter().take(1).all(|i| i.dtype == out.dtype)
            && (!matches!(op, Op::Concat { .. }) || inputs.iter().all(|i| i.dtype == out.dtype));
        if !dtype_ok {
            return Err(bad("dtype changes across a data-movement op".into()));
        }
        let r = out.shape.len();
        let ok = match op {
            Op::Reshape => x.numel() == out.numel(),
            Op::Transpose { perm } => {
                let mut p: Vec<u32> = perm.clone();
                p.sort_unstable();
                perm.len() == r
                    && x.shape.len() == r
                    && p.iter().enumerate().all(|(i, &v)| v as usize == i)
                    && perm.iter().enumerate().all(|(i, &v)| out.shape[i] == x.shape[v as usize])
            }
            Op::Broadcast => {
                x.shape.len() <= r
                    && super::layout::broadcast_shapes(&x.shape, &out.shape).as_deref() == Some(&out.shape[..])
            }
            Op::Tile { multiples } => {
                multiples.len() == r
                    && x.shape.len() == r
                    && (0..r).all(|i| x.shape[i].checked_mul(multiples[i]) == Some(out.shape[i]))
            }
            Op::Slice { axis, start, end } => {
                let a = *axis as usize;
                a < r
                    && x.shape.len() == r
                    && start <= end
                    && *end <= x.shape[a]
                    && (0..r).all(|i| if i == a { out.shape[i] == end - start } else { out.shape[i] == x.shape[i] })
            }
            Op::Downsample { axis, stride, start } => {
                let a = *axis as usize;
                a < r
                    && x.shape.len() == r
                    && *stride != 0
                    && (0..r).all(|i| i == a || out.shape[i] == x.shape[i])
                    && (out.shape[a] == 0 || {
                        // i128: start, stride and the extent come from a descriptor.
                        let last = *start as i128 + (out.shape[a] as i128 - 1) * *stride as i128;
                        (*start < x.shape[a] || x.shape[a] == 0) && last >= 0 && last < x.shape[a] as i128
                    })
            }
            Op::Concat { axis } => {
                let a = *axis as usize;
                a < r
                    && inputs.iter().all(|i| i.shape.len() == r && (0..r).all(|k| k == a || i.shape[k] == out.shape[k]))
                    && inputs.iter().try_fold(0u64, |s, i| s.checked_add(i.shape[a])) == Some(out.shape[a])
            }
            Op::Pad { pads, mode } => {
                pads.len() == r
                    && x.shape.len() == r
                    && (0..r).all(|i| {
                        x.shape[i].checked_add(pads[i].0).and_then(|v| v.checked_add(pads[i].1)) == Some(out.shape[i])
                    })
                    && match mode {
                        PadMode::Reflect => {
                            (0..r).all(|i| pads[i].0 < x.shape[i].max(1) && pads[i].1 < x.shape[i].max(1))
                        }
                        PadMode::Edge => (0..r).all(|i| x.shape[i] > 0 || (pads[i] == (0, 0))),
                        PadMode::Constant(_) => true,
                    }
            }
            Op::Gather { axis } => {
                let a = *axis as usize;
                let ir = inputs[1].shape.len();
                a < x.shape.len()
                    && r == x.shape.len() - 1 + ir
                    && out.shape[..a] == x.shape[..a]
                    && out.shape[a..a + ir] == inputs[1].shape[..]
                    && out.shape[a + ir..] == x.shape[a + 1..]
            }
            Op::GatherElements { axis } => (*axis as usize) < r && inputs[1].shape == out.shape && x.shape.len() == r,
            Op::GatherNd { batch_dims } => {
                let b = *batch_dims as usize;
                let is = &inputs[1].shape;
                match is.last() {
                    Some(&k) => {
                        let bk = usize::try_from(k).ok().and_then(|k| b.checked_add(k));
                        match bk {
                            Some(bk) if is.len() > b && bk <= x.shape.len() => {
                                r == is.len() - 1 + (x.shape.len() - bk)
                                    && out.shape[..is.len() - 1] == is[..is.len() - 1]
                                    && out.shape[is.len() - 1..] == x.shape[bk..]
                                    && x.shape[..b] == is[..b]
                            }
                            _ => false,
                        }
                    }
                    None => false,
                }
            }
            _ => return Err(bad("not a data-movement op".into())),
        };
        if !ok {
            return Err(bad(format!(
                "shapes {:?} → {:?} do not fit",
                inputs.iter().map(|i| &i.shape).collect::<Vec<_>>(),
                out.shape
            )));
        }
        Ok(Self {
            op: op.clone(),
            in_strides: inputs.iter().map(|i| strides(&i.shape)).collect(),
            bstrides: if matches!(op, Op::Broadcast) { broadcast_strides(&x.shape, r) } else { Vec::new() },
            inputs: inputs.to_vec(),
            out: out.clone(),
        })
    }

    /// The value of output element `e`.
    pub fn value(&self, e: u64, rd: &mut dyn OperandReader) -> Result<Scalar, ProverError> {
        let x = &self.inputs[0];
        let st = &self.in_strides[0];
        match &self.op {
            Op::Reshape => rd.read(0, e),
            Op::Broadcast => rd.read(0, broadcast_index(e, &self.out.shape, &self.bstrides)),
            Op::Transpose { perm } => {
                let c = coords(e, &self.out.shape);
                let mut idx = 0;
                for (i, &p) in perm.iter().enumerate() {
                    idx += c[i] * st[p as usize];
                }
                rd.read(0, idx)
            }
            Op::Tile { .. } => {
                let c = coords(e, &self.out.shape);
                let idx: u64 = c.iter().enumerate().map(|(i, &ci)| (ci % x.shape[i]) * st[i]).sum();
                rd.read(0, idx)
            }
            Op::Slice { axis, start, .. } => {
                let mut c = coords(e, &self.out.shape);
                c[*axis as usize] += start;
                rd.read(0, ravel(&c, st))
            }
            Op::Downsample { axis, stride, start } => {
                let mut c = coords(e, &self.out.shape);
                let a = *axis as usize;
                c[a] = (*start as i64 + c[a] as i64 * stride) as u64;
                rd.read(0, ravel(&c, st))
            }
            Op::Concat { axis } => {
                let a = *axis as usize;
                let mut c = coords(e, &self.out.shape);
                for (slot, inp) in self.inputs.iter().enumerate() {
                    if c[a] < inp.shape[a] {
                        return rd.read(slot, ravel(&c, &self.in_strides[slot]));
                    }
                    c[a] -= inp.shape[a];
                }
                Err(exec_err(&self.op, "concat coordinate beyond inputs".into()))
            }
            Op::Pad { pads, mode } => {
                let c = coords(e, &self.out.shape);
                let mut src = Vec::with_capacity(c.len());
                for i in 0..c.len() {
                    let p = c[i] as i64 - pads[i].0 as i64;
                    let d = x.shape[i] as i64;
                    let q = if p >= 0 && p < d {
                        p
                    } else {
                        match mode {
                            PadMode::Constant(bits) => return Ok(Scalar { dtype: self.out.dtype, bits: *bits }),
                            PadMode::Edge => p.clamp(0, d - 1),
                            PadMode::Reflect => {
                                if p < 0 {
                                    -p
                                } else {
                                    2 * (d - 1) - p
                                }
                            }
                        }
                    };
                    src.push(q as u64);
                }
                rd.read(0, ravel(&src, st))
            }
            Op::Gather { axis } => {
                let a = *axis as usize;
                let ir = self.inputs[1].shape.len();
                let c = coords(e, &self.out.shape);
                let iidx = ravel(&c[a..a + ir], &self.in_strides[1]);
                let k = resolve_index(&self.op, rd.read(1, iidx)?, x.shape[a])?;
                let mut src: Vec<u64> = c[..a].to_vec();
                src.push(k);
                src.extend_from_slice(&c[a + ir..]);
                rd.read(0, ravel(&src, st))
            }
            Op::GatherElements { axis } => {
                let a = *axis as usize;
                let mut c = coords(e, &self.out.shape);
                let k = resolve_index(&self.op, rd.read(1, e)?, x.shape[a])?;
                if c.iter().enumerate().any(|(i, &ci)| i != a && ci >= x.shape[i]) {
                    return Err(exec_err(&self.op, "indices extent exceeds data".into()));
                }
                c[a] = k;
                rd.read(0, ravel(&c, st))
            }
            Op::GatherNd { batch_dims } => {
                let b = *batch_dims as usize;
                let is = &self.inputs[1].shape;
                let k = *is.last().expect("checked") as usize;
                let c = coords(e, &self.out.shape);
                let prefix = &c[..is.len() - 1];
                let mut src: Vec<u64> = prefix[..b].to_vec();
                for j in 0..k {
                    let mut ic = prefix.to_vec();
                    ic.push(j as u64);
                    let v = rd.read(1, ravel(&ic, &self.in_strides[1]))?;
                    src.push(resolve_index(&self.op, v, x.shape[b + j])?);
                }
                src.extend_from_slice(&c[is.len() - 1..]);
                rd.read(0, ravel(&src, st))
            }
            _ => Err(exec_err(&self.op, "not a data-movement op".into())),
        }
    }
}

impl ElementFold for MoveFold {
    fn steps(&self, _e: u64) -> u64 {
        1
    }
    fn step(&self, e: u64, _t: u64, _s: FoldState, rd: &mut dyn OperandReader) -> Result<FoldState, ProverError> {
        Ok(FoldState([self.value(e, rd)?.bits, 0]))
    }
    fn finish(&self, _e: u64, s: FoldState) -> Scalar {
        Scalar { dtype: self.out.dtype, bits: s.0[0] }
    }
}

/// Reshape: same data.
pub(crate) fn exec_reshape(x: &Tensor, out: &ValueType) -> Result<Tensor, ProverError> {
    Ok(x.clone().reshaped(out.shape_usize())?)
}

/// Direct execution of any movement op through its index map.
pub(crate) fn exec_move(f: &MoveFold, inputs: &[&Tensor]) -> Result<Tensor, ProverError> {
    let n = f.out.numel() as usize;
    let mut rd = super::TensorReader { inputs };
    // f32 fast path keeps the common case allocation-light.
    if f.out.dtype == DType::F32 {
        let mut v = Vec::with_capacity(n);
        for e in 0..n {
            v.push(f.value(e as u64, &mut rd)?.f32());
        }
        return Ok(Tensor::from_f32(f.out.shape_usize(), v)?);
    }
    let mut data = TensorData::zeros(f.out.dtype, n);
    for e in 0..n {
        data.set_scalar(e, f.value(e as u64, &mut rd)?);
    }
    Ok(Tensor::new(f.out.shape_usize(), data)?)
}
