//! The ONNX frontend: ONNX bytes + concrete input shapes → [`Program`].
//!
//! tract-onnx (pinned) parses the model, types it for the given shapes and
//! declutters it (`into_typed().into_decluttered()`), which folds constants
//! and rewrites ONNX ops into a small core set (MatMul/Gemm → EinSum,
//! Clip → Max/Min, LayerNorm → Reduce/Sub/RmsNorm, …). The decluttered graph
//! with concrete shapes is the same on every CPU; tract's kernels are never
//! used. Each decluttered op is then lowered into the canonical op set; an op
//! with no canonical definition is an error that names it, the node and the
//! model.
//!
//! tract can panic on malformed graphs; the frontend runs it under
//! `catch_unwind` so that bad input is an error, never a crash.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tract_hir::infer::Factoid;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, OutletId, TDim, TypedFact, TypedModel, TypedNode,
};
use tract_onnx::tract_core::ops as tops;
use verinfer_state::hash::{Domain, Hash32, hash};
use verinfer_state::tensor::{DType, Tensor, TensorData};

use crate::error::ProverError;
use crate::ops::check_types;
use crate::program::*;

/// A loaded model: its id, its program and the program's root.
#[derive(Clone, Debug)]
pub struct Model {
    /// Display name.
    pub name: String,
    /// `H(ModelBytes || onnx bytes)`.
    pub model_id: Hash32,
    /// The canonical program.
    pub program: Program,
    /// Its root.
    pub program_root: Hash32,
}

/// Options for [`load_model`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Name used in error messages.
    pub name: String,
    /// Concrete shapes for inputs, by input name.
    pub shapes: Vec<(String, Vec<u64>)>,
    /// Concrete shapes by input position (used where no name is given), e.g.
    /// the shapes of the input files.
    pub positional_shapes: Vec<Vec<u64>>,
    /// Inputs to freeze into constants (by name), e.g. the axes or shape
    /// operands of conformance-test models.
    pub constant_inputs: Vec<(String, Tensor)>,
}

/// `H(ModelBytes || bytes)`.
pub fn model_id(onnx: &[u8]) -> Hash32 {
    hash(Domain::ModelBytes, onnx)
}

fn frontend_err(model: &str, e: impl std::fmt::Display) -> ProverError {
    let msg = e.to_string();
    ProverError::Frontend { model: model.to_string(), message: msg.lines().next().unwrap_or("").to_string() }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Loads, types, declutters and lowers an ONNX model.
pub fn load_model(onnx: &[u8], opts: &LoadOptions) -> Result<Model, ProverError> {
    let name = if opts.name.is_empty() { "model".to_string() } else { opts.name.clone() };
    let typed = catch_unwind(AssertUnwindSafe(|| typed_model(onnx, &name, opts)))
        .map_err(|p| frontend_err(&name, format!("tract panicked: {}", panic_message(p))))??;
    let (typed, overridden) = typed;
    let program = catch_unwind(AssertUnwindSafe(|| lower(&typed, &name)))
        .map_err(|p| frontend_err(&name, format!("lowering panicked: {}", panic_message(p))))?
        .map_err(|e| noted(e, &overridden))?;
    program.validate()?;
    let program_root = program.root();
    Ok(Model { name, model_id: model_id(onnx), program, program_root })
}

fn to_tract_tensor(t: &Tensor) -> tract_onnx::prelude::Tensor {
    use tract_onnx::prelude::Tensor as TT;
    let shape = t.shape().to_vec();
    macro_rules! mk {
        ($v:expr) => {
            TT::from_shape(&shape, $v).expect("shape matches data")
        };
    }
    match t.data() {
        TensorData::F32(v) => mk!(v),
        TensorData::I64(v) => mk!(v),
        TensorData::I32(v) => mk!(v),
        TensorData::I16(v) => mk!(v),
        TensorData::I8(v) => mk!(v),
        TensorData::U64(v) => mk!(v),
        TensorData::U32(v) => mk!(v),
        TensorData::U16(v) => mk!(v),
        TensorData::U8(v) => mk!(v),
        TensorData::Bool(v) => mk!(v),
    }
}

/// tract's decluttered model for the given shapes, and the notes of
/// [`noted`].
fn typed_model(onnx: &[u8], name: &str, opts: &LoadOptions) -> Result<(TypedModel, Vec<String>), ProverError> {
    let fw = tract_onnx::onnx();
    let mut proto = fw
        .proto_model_for_read(&mut &onnx[..])
        .map_err(|e| frontend_err(name, format!("not a valid ONNX protobuf: {e}")))?;
    if !opts.constant_inputs.is_empty() {
        freeze_inputs(&mut proto, &opts.constant_inputs, name)?;
    }
    let mut model = fw.model_for_proto_model(&proto).map_err(|e| frontend_err(name, format!("{e:#}")))?;
    let outlets = model.input_outlets().map_err(|e| frontend_err(name, e))?.to_vec();
    let names: Vec<String> = outlets.iter().map(|o| model.node(o.node).name.clone()).collect();
    for (given, _) in &opts.shapes {
        if !names.contains(given) {
            return Err(ProverError::UnknownInput {
                model: name.into(),
                input: given.clone(),
                known: names.join(", "),
            });
        }
    }
    // Declared dims a given shape overrides. tract takes the given shape in
    // place of the declared one, so a differing dim is legal (a batch size
    // a model pinned to 1, say) until analysis finds it inconsistent; the
    // analysis error then names a node, not the input, so it gets a note.
    let mut overridden = Vec::new();
    for (i, input) in names.iter().enumerate() {
        let fact = model.input_fact(i).map_err(|e| frontend_err(name, e))?.clone();
        let given = opts.shapes.iter().find(|(n, _)| n == input).map(|(_, s)| s).or(opts.positional_shapes.get(i));
        if let Some(shape) = given {
            let declared = || {
                let dims: Vec<String> =
                    fact.shape.dims().map(|d| d.concretize().map_or("?".into(), |d| d.to_string())).collect();
                format!("[{}]", dims.join(", "))
            };
            let given = || format!("{shape:?}");
            if !fact.shape.is_open() && fact.shape.dims().count() != shape.len() {
                return Err(ProverError::InputRank {
                    model: name.into(),
                    input: input.clone(),
                    declared: declared(),
                    given: given(),
                    rank: shape.len(),
                });
            }
            let differs = fact.shape.dims().zip(shape).any(|(d, &g)| {
                d.concretize().and_then(|d| d.to_i64().ok()).is_some_and(|d| u64::try_from(d).ok() != Some(g))
            });
            if differs {
                overridden.push(format!("input {input:?} is declared {} and was given {}", declared(), given()));
            }
            let dt = fact.datum_type.concretize().unwrap_or(DatumType::F32);
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            model.set_input_fact(i, InferenceFact::dt_shape(dt, dims)).map_err(|e| frontend_err(name, e))?;
        } else {
            let concrete = fact.shape.as_concrete_finite().ok().flatten();
            if concrete.is_none() {
                return Err(ProverError::SymbolicInput {
                    model: name.into(),
                    input: input.clone(),
                    shape: format!("{:?}", fact.shape),
                });
            }
        }
    }
    let typed = model.into_typed().map_err(|e| noted(frontend_err(name, format!("{e:#}")), &overridden))?;
    let typed = typed.into_decluttered().map_err(|e| noted(frontend_err(name, format!("{e:#}")), &overridden))?;
    Ok((typed, overridden))
}

/// Appends to a load error the declared input dims the given shapes
/// overrode: the likeliest cause when analysis or lowering then fails.
fn noted(e: ProverError, overridden: &[String]) -> ProverError {
    if overridden.is_empty() {
        return e;
    }
    let note = format!(" (note: {})", overridden.join("; "));
    match e {
        ProverError::Frontend { model, message } => ProverError::Frontend { model, message: message + &note },
        ProverError::UnsupportedDType { model, node, why } => {
            ProverError::UnsupportedDType { model, node, why: why + &note }
        }
        e => e,
    }
}

/// Moves named graph inputs into initializers.
fn freeze_inputs(
    proto: &mut tract_onnx::pb::ModelProto,
    consts: &[(String, Tensor)],
    name: &str,
) -> Result<(), ProverError> {
    use tract_onnx::pb::{TensorProto, tensor_proto::DataType};
    let graph = proto.graph.as_mut().ok_or_else(|| frontend_err(name, "model has no graph"))?;
    for (input, t) in consts {
        let pos = graph.input.iter().position(|i| &i.name == input).ok_or_else(|| ProverError::UnknownInput {
            model: name.into(),
            input: input.clone(),
            known: graph.input.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", "),
        })?;
        graph.input.remove(pos);
        let dt = match t.dtype() {
            DType::F32 => DataType::Float,
            DType::I64 => DataType::Int64,
            DType::I32 => DataType::Int32,
            DType::I16 => DataType::Int16,
            DType::I8 => DataType::Int8,
            DType::U64 => DataType::Uint64,
            DType::U32 => DataType::Uint32,
            DType::U16 => DataType::Uint16,
            DType::U8 => DataType::Uint8,
            DType::Bool => DataType::Bool,
        };
        let _ = to_tract_tensor;
        graph.initializer.push(TensorProto {
            name: input.clone(),
            dims: t.shape().iter().map(|&d| d as i64).collect(),
            data_type: dt as i32,
            raw_data: t.le_bytes().into_owned(),
            ..Default::default()
        });
    }
    Ok(())
}

/// tract dtype → canonical dtype.
pub fn dtype_of(dt: DatumType) -> Option<DType> {
    Some(match dt {
        DatumType::F32 => DType::F32,
        DatumType::I64 => DType::I64,
        DatumType::I32 => DType::I32,
        DatumType::I16 => DType::I16,
        DatumType::I8 => DType::I8,
        DatumType::U64 => DType::U64,
        DatumType::U32 => DType::U32,
        DatumType::U16 => DType::U16,
        DatumType::U8 => DType::U8,
        DatumType::Bool => DType::Bool,
        _ => return None,
    })
}

/// A tract tensor as a canonical tensor.
pub fn from_tract(t: &tract_onnx::prelude::Tensor) -> Result<Tensor, String> {
    let dt =
        dtype_of(t.datum_type()).ok_or_else(|| format!("dtype {:?} is not in the canonical set", t.datum_type()))?;
    let shape = t.shape().to_vec();
    let plain = t.try_as_plain_ram().map_err(|e| e.to_string())?;
    macro_rules! get {
        ($ty:ty, $var:ident) => {
            TensorData::$var(plain.as_slice::<$ty>().map_err(|e| e.to_string())?.to_vec())
        };
    }
    let data = match dt {
        DType::F32 => TensorData::F32(
            plain.as_slice::<f32>().map_err(|e| e.to_string())?.iter().map(|&v| crate::math::canon(v)).collect(),
        ),
        DType::I64 => get!(i64, I64),
        DType::I32 => get!(i32, I32),
        DType::I16 => get!(i16, I16),
        DType::I8 => get!(i8, I8),
        DType::U64 => get!(u64, U64),
        DType::U32 => get!(u32, U32),
        DType::U16 => get!(u16, U16),
        DType::U8 => get!(u8, U8),
        DType::Bool => get!(bool, Bool),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

struct Lowering<'a> {
    model: &'a str,
    typed: &'a TypedModel,
    map: HashMap<OutletId, ValueRef>,
    nodes: Vec<Node>,
    /// The names in `nodes` (a scan per node was quadratic: 12 s of an
    /// 80,000-node model's lowering, found by an audit).
    names: HashSet<String>,
    consts: Vec<Tensor>,
    const_ids: HashMap<Hash32, u32>,
    /// Outlets tract computes in f64 that the program carries as f32 (the
    /// mixed integer/float `Pow`, see [`Lowering::lower_f64`]).
    f64_as_f32: HashSet<OutletId>,
}

fn concrete(fact: &TypedFact) -> Option<Vec<u64>> {
    fact.shape.as_concrete().map(|s| s.iter().map(|&d| d as u64).collect())
}

fn tdim(d: &TDim) -> Option<u64> {
    d.to_i64().ok().and_then(|v| u64::try_from(v).ok())
}

impl<'a> Lowering<'a> {
    fn unsupported(&self, node: &TypedNode, why: Option<String>) -> ProverError {
        let desc = format!("{:?}", node.op);
        let desc: String = desc.chars().take(160).collect();
        ProverError::UnsupportedOp {
            model: self.model.into(),
            node: node.name.clone(),
            op: match why {
                Some(w) => format!("{} ({w})", node.op.name()),
                None => format!("{} [{desc}]", node.op.name()),
            },
        }
    }

    fn dtype_err(&self, node: &TypedNode, why: String) -> ProverError {
        ProverError::UnsupportedDType { model: self.model.into(), node: node.name.clone(), why }
    }

    fn value_type(&self, node: &TypedNode, fact: &TypedFact) -> Result<ValueType, ProverError> {
        let dtype = dtype_of(fact.datum_type).ok_or_else(|| {
            self.dtype_err(
                node,
                format!("dtype {:?} is not in the canonical set (f32, integers, bool)", fact.datum_type),
            )
        })?;
        let shape = concrete(fact).ok_or_else(|| {
            self.dtype_err(node, format!("shape {:?} is not concrete; give concrete input shapes", fact.shape))
        })?;
        Ok(ValueType { dtype, shape })
    }

    fn add_const(&mut self, node: &TypedNode, t: &tract_onnx::prelude::Tensor) -> Result<ValueRef, ProverError> {
        let t = from_tract(t).map_err(|e| self.dtype_err(node, format!("constant: {e}")))?;
        let root = t.root();
        if let Some(&c) = self.const_ids.get(&root) {
            return Ok(ValueRef::Const(c));
        }
        let c = self.consts.len() as u32;
        self.consts.push(t);
        self.const_ids.insert(root, c);
        Ok(ValueRef::Const(c))
    }

    fn input_types(&self, refs: &[ValueRef]) -> Vec<ValueType> {
        refs.iter()
            .map(|r| match *r {
                ValueRef::Const(c) => ValueType::of(&self.consts[c as usize]),
                ValueRef::Node(n) => self.nodes[n as usize].output.clone(),
                ValueRef::Input(i) => {
                    let o = self.typed.input_outlets().expect("typed model has inputs")[i as usize];
                    let f = self.typed.outlet_fact(o).expect("input fact");
                    ValueType {
                        dtype: dtype_of(f.datum_type).unwrap_or(DType::F32),
                        shape: concrete(f).unwrap_or_default(),
                    }
                }
            })
            .collect()
    }

    fn push(
        &mut self,
        node: &TypedNode,
        op: Op,
        inputs: Vec<ValueRef>,
        out: ValueType,
    ) -> Result<ValueRef, ProverError> {
        let types = self.input_types(&inputs);
        check_types(&op, &types, &out).map_err(|e| match e {
            ProverError::OpDType { op, dtype } => self.dtype_err(node, format!("{op} is not defined for {dtype}")),
            ProverError::InvalidProgram { why, .. } => self.unsupported(node, Some(why)),
            other => other,
        })?;
        let name = if self.names.contains(&node.name) {
            format!("{}#{}", node.name, self.nodes.len())
        } else {
            node.name.clone()
        };
        self.names.insert(name.clone());
        self.nodes.push(Node { name, op, inputs, output: out });
        Ok(ValueRef::Node(self.nodes.len() as u32 - 1))
    }

    fn lower_node(&mut self, node: &TypedNode) -> Result<(), ProverError> {
        if node.op_as::<tops::source::TypedSource>().is_some() {
            let pos = self
                .typed
                .input_outlets()
                .map_err(|e| frontend_err(self.model, e))?
                .iter()
                .position(|o| o.node == node.id);
            let pos = pos.ok_or_else(|| self.unsupported(node, Some("source that is not a model input".into())))?;
            self.map.insert(OutletId::new(node.id, 0), ValueRef::Input(pos as u32));
            return Ok(());
        }
        if let Some(k) = node.op_as::<tops::konst::Const>() {
            if k.val().datum_type() == DatumType::F64 {
                return self.carry_f64_const(node, k.val());
            }
            let r = self.add_const(node, k.val())?;
            self.map.insert(OutletId::new(node.id, 0), r);
            return Ok(());
        }
        if node.outputs.len() != 1 {
            return Err(self.unsupported(node, Some(format!("{} outputs; canonical ops have one", node.outputs.len()))));
        }
        // A value tract could fold is a constant whatever op made it.
        if let Some(k) = node.outputs[0].fact.konst.clone() {
            if k.datum_type() == DatumType::F64 {
                return self.carry_f64_const(node, &k);
            }
            let r = self.add_const(node, &k)?;
            self.map.insert(OutletId::new(node.id, 0), r);
            return Ok(());
        }
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            inputs.push(
                *self.map.get(i).ok_or_else(|| self.unsupported(node, Some(format!("input {i:?} was not lowered"))))?,
            );
        }
        if node.outputs[0].fact.datum_type == DatumType::F64 || node.inputs.iter().any(|i| self.f64_as_f32.contains(i))
        {
            let r = self.lower_f64(node, inputs)?;
            self.map.insert(OutletId::new(node.id, 0), r);
            return Ok(());
        }
        let out = self.value_type(node, &node.outputs[0].fact)?;
        let in_types = self.input_types(&inputs);
        let r = self.lower_op(node, inputs, &in_types, out)?;
        self.map.insert(OutletId::new(node.id, 0), r);
        Ok(())
    }

    /// tract computes a `Pow` whose operands mix integers and floats in f64:
    /// `Cast(→f64)` of both operands, `Pow` in f64, `Cast(→ base dtype)`.
    /// f64 is not canonical, so that round trip is carried in f32: an integer
    /// operand is cast to f32 (round to nearest even), the f32 operand is
    /// used as is, `Pow` is the canonical f32 `Pow`, and the final cast is
    /// the canonical `Cast` from f32 (the identity when the base is f32).
    /// tract rewrites `Pow` by a constant 2 or 0.5 into `Square` or `Sqrt`,
    /// which are then the canonical f32 `Square`/`Sqrt`. Any other use of an
    /// f64 value is a dtype error.
    /// An f64 constant can only feed the f64 round trip of a mixed-type
    /// `Pow` ([`Lowering::lower_f64`]); it is carried as f32 (rounded to nearest).
    fn carry_f64_const(&mut self, node: &TypedNode, k: &tract_onnx::prelude::Tensor) -> Result<(), ProverError> {
        let k = k.cast_to::<f32>().map_err(|e| frontend_err(self.model, e))?.into_owned();
        let r = self.add_const(node, &k)?;
        self.map.insert(OutletId::new(node.id, 0), r);
        self.f64_as_f32.insert(OutletId::new(node.id, 0));
        Ok(())
    }

    fn lower_f64(&mut self, node: &TypedNode, inputs: Vec<ValueRef>) -> Result<ValueRef, ProverError> {
        let outlet = OutletId::new(node.id, 0);
        let reads: Vec<bool> = node.inputs.iter().map(|i| self.f64_as_f32.contains(i)).collect();
        let types = self.input_types(&inputs);
        let shape = concrete(&node.outputs[0].fact)
            .ok_or_else(|| self.dtype_err(node, format!("shape {:?} is not concrete", node.outputs[0].fact.shape)))?;
        let carried = ValueType { dtype: DType::F32, shape };
        if let Some(c) = node.op_as::<tops::cast::Cast>() {
            if c.to == DatumType::F64 && !reads[0] && (types[0].dtype == DType::F32 || types[0].dtype.is_int()) {
                let r =
                    if types[0].dtype == DType::F32 { inputs[0] } else { self.push(node, Op::Cast, inputs, carried)? };
                self.f64_as_f32.insert(outlet);
                return Ok(r);
            }
            if c.to != DatumType::F64 && reads[0] {
                let out = self.value_type(node, &node.outputs[0].fact)?;
                return if out.dtype == DType::F32 { Ok(inputs[0]) } else { self.push(node, Op::Cast, inputs, out) };
            }
        }
        if let Some(op) = node.op_as::<tops::element_wise::ElementWiseOp>()
            && op.1.is_none()
            && reads.len() == 1
            && reads[0]
        {
            let u = match op.0.name().as_ref() {
                "Square" => Some(UnaryOp::Square),
                "Sqrt" => Some(UnaryOp::Sqrt),
                _ => None,
            };
            if let Some(u) = u {
                let r = self.push(node, Op::Unary(u), inputs, carried)?;
                self.f64_as_f32.insert(outlet);
                return Ok(r);
            }
        }
        if let Some(op) = node.op_as::<tops::binary::TypedBinOp>()
            && op.0.name() == "Pow"
            && op.1.is_none()
            && reads.len() == 2
            && reads.iter().all(|&r| r)
        {
            let r = self.push(node, Op::Binary(BinaryOp::Pow), inputs, carried)?;
            self.f64_as_f32.insert(outlet);
            return Ok(r);
        }
        Err(self.dtype_err(
            node,
            format!("{} over f64: f64 is not in the canonical set (only the f64 round trip of a mixed integer/float Pow is lowered)", node.op.name()),
        ))
    }

    fn geometry(
        &self,
        node: &TypedNode,
        spec: &tops::cnn::PoolSpec,
        input: &ValueType,
        deconv_adjust: Option<&[usize]>,
    ) -> Result<Geometry, ProverError> {
        use tops::nn::DataFormat;
        let layout = match spec.data_format {
            DataFormat::NCHW => DataLayout::Nchw,
            DataFormat::NHWC => DataLayout::Nhwc,
            DataFormat::CHW => DataLayout::Chw,
            DataFormat::HWC => DataLayout::Hwc,
        };
        let sr = spec.kernel_shape.len();
        let off = usize::from(layout.has_n());
        let spatial: Vec<usize> = if layout.channels_last() {
            (off..off + sr).map(|a| input.shape.get(a).copied().unwrap_or(0) as usize).collect()
        } else {
            (off + 1..off + 1 + sr).map(|a| input.shape.get(a).copied().unwrap_or(0) as usize).collect()
        };
        if input.shape.len() != sr + 1 + off {
            return Err(
                self.unsupported(node, Some(format!("input rank {} does not fit {layout:?}", input.shape.len())))
            );
        }
        let strides = spec.strides().to_vec();
        let dilations = spec.dilations().to_vec();
        let padded = match deconv_adjust {
            None => spec.computed_padding(&spatial),
            Some(adj) => spec
                .padding
                .compute_for_deconv(&spatial, &spec.kernel_shape, &dilations, &strides, adj)
                .map_err(|e| frontend_err(self.model, e))?,
        };
        Ok(Geometry {
            layout,
            kernel: spec.kernel_shape.iter().map(|&k| k as u64).collect(),
            strides: strides.iter().map(|&s| s as u64).collect(),
            dilations: dilations.iter().map(|&d| d as u64).collect(),
            pad_before: padded.iter().map(|p| p.pad_before as u64).collect(),
            pad_after: padded.iter().map(|p| p.pad_after as u64).collect(),
        })
    }

    fn lower_op(
        &mut self,
        node: &TypedNode,
        inputs: Vec<ValueRef>,
        types: &[ValueType],
        out: ValueType,
    ) -> Result<ValueRef, ProverError> {
        use tops::binary::TypedBinOp;
        use tops::element_wise::ElementWiseOp;
        if let Some(op) = node.op_as::<TypedBinOp>() {
            if op.1.is_some() {
                return Err(self.unsupported(node, Some("quantized output type".into())));
            }
            let (b, swap) = match op.0.name() {
                "Add" => (BinaryOp::Add, false),
                "Sub" => (BinaryOp::Sub, false),
                "SubF" => (BinaryOp::Sub, true),
                "Mul" => (BinaryOp::Mul, false),
                "Div" => (BinaryOp::Div, false),
                "Rem" => (BinaryOp::Rem, false),
                "Pow" => (BinaryOp::Pow, false),
                "Min" => (BinaryOp::Min, false),
                "Max" => (BinaryOp::Max, false),
                "And" => (BinaryOp::And, false),
                "Or" => (BinaryOp::Or, false),
                "Xor" => (BinaryOp::Xor, false),
                "BitAnd" => (BinaryOp::BitAnd, false),
                "BitOr" => (BinaryOp::BitOr, false),
                "BitXor" => (BinaryOp::BitXor, false),
                "ShiftLeft" => (BinaryOp::ShiftLeft, false),
                "ShiftRight" => (BinaryOp::ShiftRight, false),
                "Eq" => (BinaryOp::Eq, false),
                "NE" => (BinaryOp::Ne, false),
                "LT" => (BinaryOp::Lt, false),
                "GT" => (BinaryOp::Gt, false),
                "LTE" => (BinaryOp::Le, false),
                "GTE" => (BinaryOp::Ge, false),
                _ => return Err(self.unsupported(node, None)),
            };
            let mut inputs = inputs;
            if swap {
                inputs.swap(0, 1);
            }
            return self.push(node, Op::Binary(b), inputs, out);
        }
        if let Some(op) = node.op_as::<ElementWiseOp>() {
            if op.1.is_some() {
                return Err(self.unsupported(node, Some("quantized output type".into())));
            }
            let m = &op.0;
            let u = if let Some(p) = m.downcast_ref::<tops::math::PowConst>() {
                UnaryOp::PowConst(F32Bits::new(p.exponent))
            } else if let Some(l) = m.downcast_ref::<tops::nn::LeakyRelu>() {
                UnaryOp::LeakyRelu(F32Bits::new(l.alpha))
            } else if let Some(g) = m.downcast_ref::<tops::nn::gelu_approximate::GeluApproximate>() {
                if g.fast_impl {
                    return Err(self.unsupported(node, Some("GeluApproximate with fast_impl".into())));
                }
                UnaryOp::GeluTanh
            } else {
                match m.name().as_ref() {
                    "Abs" => UnaryOp::Abs,
                    "Exp" => UnaryOp::Exp,
                    "Ln" => UnaryOp::Ln,
                    "Square" => UnaryOp::Square,
                    "Sqrt" => UnaryOp::Sqrt,
                    "Recip" => UnaryOp::Recip,
                    "Rsqrt" => UnaryOp::Rsqrt,
                    "Ceil" => UnaryOp::Ceil,
                    "Floor" => UnaryOp::Floor,
                    "RoundHalfToEven" => UnaryOp::Round,
                    "Cos" => UnaryOp::Cos,
                    "Sin" => UnaryOp::Sin,
                    "Atan" => UnaryOp::Atan,
                    "Tanh" => UnaryOp::Tanh,
                    "Erf" => UnaryOp::Erf,
                    "Neg" => UnaryOp::Neg,
                    "Sign" => UnaryOp::Sign,
                    "Sigmoid" => UnaryOp::Sigmoid,
                    "HardSwish" => UnaryOp::HardSwish,
                    "GeluExact" => UnaryOp::GeluExact,
                    "Silu" => UnaryOp::Silu,
                    "Not" | "BitNot" => UnaryOp::Not,
                    _ => return Err(self.unsupported(node, None)),
                }
            };
            return self.push(node, Op::Unary(u), inputs, out);
        }
        if let Some(op) = node.op_as::<tops::einsum::EinSum>() {
            if op.q_params.is_some() || op.operating_dt != DatumType::F32 || inputs.len() != 2 {
                return Err(self.unsupported(
                    node,
                    Some(format!("EinSum {} over {:?} with {} inputs", op.axes, op.operating_dt, inputs.len())),
                ));
            }
            let mut free = Vec::new();
            let mut contracted = Vec::new();
            for ax in op.axes.iter_all_axes() {
                let one = |v: &[usize]| -> Result<Option<u32>, ProverError> {
                    match v.len() {
                        0 => Ok(None),
                        1 => Ok(Some(v[0] as u32)),
                        _ => Err(self
                            .unsupported(node, Some(format!("EinSum {} repeats an axis within one operand", op.axes)))),
                    }
                };
                let a = one(&ax.inputs[0])?;
                let b = one(&ax.inputs[1])?;
                let o = one(&ax.outputs[0])?;
                let mut dim = 1;
                if let Some(p) = a {
                    dim = dim.max(types[0].shape[p as usize]);
                }
                if let Some(p) = b {
                    dim = dim.max(types[1].shape[p as usize]);
                }
                if let Some(p) = o {
                    dim = out.shape[p as usize];
                }
                let axis = EinAxis { a, b, out: o, dim };
                if o.is_some() { free.push(axis) } else { contracted.push(axis) }
            }
            let ra = types[0].shape.len() as u32;
            contracted.sort_by_key(|ax| ax.a.unwrap_or(ra + ax.b.unwrap_or(0)));
            free.sort_by_key(|ax| ax.out);
            return self.push(node, Op::EinSum(EinSumSpec { free, contracted }), inputs, out);
        }
        if let Some(op) = node.op_as::<tops::change_axes::AxisOp>() {
            use tops::change_axes::AxisOp;
            return match op {
                AxisOp::Move(from, to) => {
                    let r = types[0].shape.len();
                    let mut order: Vec<u32> = (0..r as u32).collect();
                    let v = order.remove(*from);
                    order.insert(*to, v);
                    self.push(node, Op::Transpose { perm: order }, inputs, out)
                }
                _ => self.push(node, Op::Reshape, inputs, out),
            };
        }
        if node.op_as::<tops::identity::Identity>().is_some() {
            return self.push(node, Op::Reshape, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::cast::Cast>() {
            if dtype_of(op.to).is_none() {
                return Err(self.dtype_err(node, format!("cast to {:?} is not in the canonical set", op.to)));
            }
            return self.push(node, Op::Cast, inputs, out);
        }
        if node.op_as::<tops::logic::Iff>().is_some() {
            return self.push(node, Op::Where, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::cnn::Conv>() {
            if op.q_params.is_some() {
                return Err(self.unsupported(node, Some("quantized convolution".into())));
            }
            let geo = self.geometry(node, &op.pool_spec, &types[0], None)?;
            let kernel_layout = match op.kernel_fmt {
                tops::cnn::KernelFormat::OIHW => KernelLayout::Oihw,
                tops::cnn::KernelFormat::HWIO => KernelLayout::Hwio,
                tops::cnn::KernelFormat::OHWI => KernelLayout::Ohwi,
            };
            let bias = inputs.len() == 3;
            let spec = ConvSpec { geo, kernel_layout, group: op.group as u64, bias };
            return self.push(node, Op::Conv(spec), inputs, out);
        }
        if let Some(op) = node.op_as::<tops::cnn::Deconv>() {
            let adj: Vec<usize> = op.adjustments.to_vec();
            let geo = self.geometry(node, &op.pool_spec, &types[0], Some(&adj))?;
            let kernel_layout = match op.kernel_format {
                tops::cnn::KernelFormat::OIHW => KernelLayout::Oihw,
                tops::cnn::KernelFormat::HWIO => KernelLayout::Hwio,
                tops::cnn::KernelFormat::OHWI => KernelLayout::Ohwi,
            };
            let spec = DeconvSpec { geo, kernel_layout, group: op.group as u64, bias: inputs.len() == 3 };
            return self.push(node, Op::Deconv(spec), inputs, out);
        }
        if let Some(op) = node.op_as::<tops::cnn::MaxPool>() {
            if op.with_index_outputs.is_some() {
                return Err(self.unsupported(node, Some("MaxPool with index outputs".into())));
            }
            let geo = self.geometry(node, &op.pool_spec, &types[0], None)?;
            return self.push(
                node,
                Op::MaxPool(PoolSpec { geo, normalize: false, count_include_pad: false }),
                inputs,
                out,
            );
        }
        if let Some(op) = node.op_as::<tops::cnn::SumPool>() {
            let geo = self.geometry(node, &op.pool_spec, &types[0], None)?;
            let spec = PoolSpec { geo, normalize: op.normalize, count_include_pad: op.count_include_pad };
            return self.push(node, Op::SumPool(spec), inputs, out);
        }
        if let Some(op) = node.op_as::<tops::nn::Reduce>() {
            use tops::nn::Reducer as R;
            let boolean = types[0].dtype == DType::Bool;
            let reducer = match op.reducer {
                R::Sum => Reducer::Sum,
                R::Prod => Reducer::Prod,
                // Max/min of bools are any/all.
                R::Max if boolean => Reducer::Any,
                R::Min if boolean => Reducer::All,
                R::Max => Reducer::Max,
                R::Min => Reducer::Min,
                R::MeanOfSquares => Reducer::MeanOfSquares,
                R::ArgMax(last) => Reducer::ArgMax { last },
                R::ArgMin(last) => Reducer::ArgMin { last },
                R::All => Reducer::All,
                R::Any => Reducer::Any,
            };
            let mut axes: Vec<u32> = op.axes.iter().map(|&a| a as u32).collect();
            axes.sort_unstable();
            axes.dedup();
            return self.push(node, Op::Reduce { reducer, axes }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::nn::Softmax>() {
            if op.quant_output_dt.is_some() {
                return Err(self.unsupported(node, Some("quantized softmax".into())));
            }
            let mut axes: Vec<u32> = op.axes.iter().map(|&a| a as u32).collect();
            axes.sort_unstable();
            let log = matches!(op.kind, tops::nn::SoftmaxKind::LogSoftmax);
            return self.push(node, Op::Softmax { axes, log }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::nn::RmsNorm>() {
            let eps = op.eps.cast_to_scalar::<f32>().map_err(|e| frontend_err(self.model, e))?;
            return self.push(node, Op::RmsNorm { axis: op.axis as u32, eps: F32Bits::new(eps) }, inputs, out);
        }
        if node.op_as::<tops::array::MultiBroadcastTo>().is_some() {
            return self.push(node, Op::Broadcast, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::Tile>() {
            let multiples: Option<Vec<u64>> = op.multipliers.iter().map(tdim).collect();
            let multiples =
                multiples.ok_or_else(|| self.unsupported(node, Some("symbolic tile multipliers".into())))?;
            return self.push(node, Op::Tile { multiples }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::Slice>() {
            let (Some(start), Some(end)) = (tdim(&op.start), tdim(&op.end)) else {
                return Err(self.unsupported(node, Some("symbolic slice bounds".into())));
            };
            return self.push(node, Op::Slice { axis: op.axis as u32, start, end }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::downsample::Downsample>() {
            let len = types[0].shape[op.axis] as i64;
            let start = if op.stride > 0 { op.modulo as i64 } else { len - 1 };
            let start = start.max(0) as u64;
            return self.push(
                node,
                Op::Downsample { axis: op.axis as u32, stride: op.stride as i64, start },
                inputs,
                out,
            );
        }
        if let Some(op) = node.op_as::<tops::array::TypedConcat>() {
            return self.push(node, Op::Concat { axis: op.axis as u32 }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::Pad>() {
            let mode = match &op.mode {
                tops::array::PadMode::Constant(v) => {
                    let t = from_tract(v).map_err(|e| self.dtype_err(node, e))?;
                    let s = t.scalar(0).map_err(|e| self.dtype_err(node, e.to_string()))?;
                    PadMode::Constant(crate::ops::elementwise::cast_scalar(s, out.dtype).bits)
                }
                tops::array::PadMode::Reflect => PadMode::Reflect,
                tops::array::PadMode::Edge => PadMode::Edge,
            };
            let pads = op.pads.iter().map(|&(a, b)| (a as u64, b as u64)).collect();
            return self.push(node, Op::Pad { pads, mode }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::Gather>() {
            if op.output_type.is_some() {
                return Err(self.unsupported(node, Some("gather with output type".into())));
            }
            return self.push(node, Op::Gather { axis: op.axis as u32 }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::GatherElements>() {
            return self.push(node, Op::GatherElements { axis: op.axis as u32 }, inputs, out);
        }
        if let Some(op) = node.op_as::<tops::array::GatherNd>() {
            return self.push(node, Op::GatherNd { batch_dims: op.batch_dims as u32 }, inputs, out);
        }
        if let Some(spec) = crate::ops::resize::lower_node(self.typed, node, &types[0], &out) {
            let spec = spec.map_err(|why| self.unsupported(node, Some(why)))?;
            return self.push(node, Op::Resize(spec), inputs[..1].to_vec(), out);
        }
        if let Some(op) = node.op_as::<tops::nn::NearestUpsample>() {
            // Integer pixel replication: split each upsampled axis `d` into
            // `(d, 1)`, broadcast to `(d, s)`, merge back into `d·s`.
            let (mut split, mut spread) = (Vec::new(), Vec::new());
            for (&d, &s) in types[0].shape.iter().zip(op.scales.iter()) {
                split.push(d);
                spread.push(d);
                if s != 1 {
                    split.push(1);
                    spread.push(s as u64);
                }
            }
            let dtype = out.dtype;
            let a = self.push(node, Op::Reshape, inputs, ValueType { dtype, shape: split })?;
            let b = self.push(node, Op::Broadcast, vec![a], ValueType { dtype, shape: spread })?;
            return self.push(node, Op::Reshape, vec![b], out);
        }
        Err(self.unsupported(node, None))
    }
}

fn lower(typed: &TypedModel, name: &str) -> Result<Program, ProverError> {
    let mut l = Lowering {
        model: name,
        typed,
        map: HashMap::new(),
        nodes: Vec::new(),
        names: HashSet::new(),
        consts: Vec::new(),
        const_ids: HashMap::new(),
        f64_as_f32: HashSet::new(),
    };
    let order = typed.eval_order().map_err(|e| frontend_err(name, e))?;
    for id in order {
        l.lower_node(typed.node(id))?;
    }
    let mut inputs = Vec::new();
    for o in typed.input_outlets().map_err(|e| frontend_err(name, e))? {
        let node = typed.node(o.node);
        let vt = l.value_type(node, &node.outputs[o.slot].fact)?;
        inputs.push(TensorInfo { name: node.name.clone(), dtype: vt.dtype, shape: vt.shape });
    }
    let mut outputs = Vec::new();
    for o in typed.output_outlets().map_err(|e| frontend_err(name, e))? {
        let label = typed.outlet_label(*o).map(|s| s.to_string()).unwrap_or_else(|| typed.node(o.node).name.clone());
        let r = *l.map.get(o).ok_or_else(|| frontend_err(name, format!("output {label} was not lowered")))?;
        if l.f64_as_f32.contains(o) {
            return Err(ProverError::UnsupportedDType {
                model: name.into(),
                node: label,
                why: "f64 output is not in the canonical set".into(),
            });
        }
        let node = match r {
            ValueRef::Node(n) => n,
            // An output that is an input or a constant still gets a node, so
            // that every output has a trace leaf.
            other => {
                let out = l.input_types(&[other]).remove(0);
                l.nodes.push(Node { name: format!("{label}.copy"), op: Op::Reshape, inputs: vec![other], output: out });
                l.nodes.len() as u32 - 1
            }
        };
        outputs.push(OutputInfo { name: label, node });
    }
    Ok(Program { version: PROGRAM_VERSION, inputs, outputs, nodes: l.nodes, constants: l.consts })
}
