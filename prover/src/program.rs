//! The canonical program: Verinfer's own IR, its encoding and its root.
//!
//! A [`Program`] is what a model *is* to the protocol: nodes in evaluation
//! order, each with an op from the canonical set ([`Op`]), its attributes,
//! its input references and its output dtype and shape; plus the constant
//! tensors (after tract's folding) and the input/output signatures.
//! Execution needs only this, never tract.
//!
//! ## Commitment
//! ```text
//! leaf 0        H(ProgramHeader || borsh(version, inputs, outputs, #nodes, #consts))
//! leaf 1+i      H(ProgramNode   || borsh(node_i))
//! leaf 1+N+c    H(ProgramConst  || tensor_root(const_c))
//! program_root  H(Program || merkle_root(leaves))
//! ```
//! so a referee can check one node descriptor, or one element of one
//! constant, against the program root with a single path.
//!
//! ## Invariants (checked by [`Program::validate`])
//! * Node `i` reads only inputs, constants and nodes `< i`.
//! * Every output names a node.
//! * Shapes are concrete and bounded ([`verinfer_state::tensor::MAX_ELEMENTS`]).

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_state::hash::{Domain, Hash32, hash, hash_parts};
use verinfer_state::merkle::{MerkleProof, MerkleTree};
use verinfer_state::tensor::{DType, Tensor, checked_numel};

use crate::error::ProverError;

/// Version of the program encoding and op semantics. Bumped on any change
/// that alters a program root or an op's bits.
pub const PROGRAM_VERSION: u8 = 1;

/// An f32 attribute, stored by its bits so that encoding and equality are
/// exact (and NaN attributes survive borsh, which rejects NaN floats).
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct F32Bits(pub u32);

impl F32Bits {
    /// From a value.
    pub fn new(v: f32) -> Self {
        Self(v.to_bits())
    }
    /// The value.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl std::fmt::Debug for F32Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

/// Name, dtype and shape of a program input or output.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct TensorInfo {
    /// The ONNX name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Concrete shape.
    pub shape: Vec<u64>,
}

/// Dtype and shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ValueType {
    /// Element type.
    pub dtype: DType,
    /// Concrete shape.
    pub shape: Vec<u64>,
}

impl ValueType {
    /// Element count.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Shape as usize.
    pub fn shape_usize(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }
    /// Of a tensor.
    pub fn of(t: &Tensor) -> Self {
        Self { dtype: t.dtype(), shape: t.shape_u64() }
    }
}

/// Where a node input comes from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub enum ValueRef {
    /// Request input `i`.
    Input(u32),
    /// Constant `c`.
    Const(u32),
    /// Output of node `n` (always an earlier node).
    Node(u32),
}

/// A program output: its name and the node that produces it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct OutputInfo {
    /// The ONNX name.
    pub name: String,
    /// Producing node.
    pub node: u32,
}

/// One node.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Name (from the ONNX graph, via tract).
    pub name: String,
    /// The op and its attributes.
    pub op: Op,
    /// Inputs, in the op's slot order.
    pub inputs: Vec<ValueRef>,
    /// Output dtype and shape.
    pub output: ValueType,
}

/// Element-wise functions of one input.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Exp,
    Ln,
    Sqrt,
    Rsqrt,
    Recip,
    Square,
    Tanh,
    Sigmoid,
    Erf,
    GeluExact,
    GeluTanh,
    Silu,
    Softplus,
    Sin,
    Cos,
    Atan,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    /// Logical not (bool) or bitwise not (integers).
    Not,
    /// `x ^ exponent`.
    PowConst(F32Bits),
    /// `x ≥ 0 ? x : alpha·x`.
    LeakyRelu(F32Bits),
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid {
        alpha: F32Bits,
        beta: F32Bits,
    },
}

/// Element-wise functions of two broadcast inputs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the dividend (C `fmod` / Rust `%`).
    Rem,
    Pow,
    Min,
    Max,
    And,
    Or,
    Xor,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl UnaryOp {
    /// The f32 functions without an attribute, in declaration order: every
    /// unary op but `Not` (integers and bool), `HardSwish`, and the ones
    /// with attributes. What tests and fuzzers enumerate.
    pub const F32_PLAIN: [UnaryOp; 22] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Exp,
        UnaryOp::Ln,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Square,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
        UnaryOp::GeluExact,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Softplus,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Atan,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ];
}

impl BinaryOp {
    /// Every binary op, in declaration order.
    pub const ALL: [BinaryOp; 22] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::BitAnd,
        BinaryOp::BitOr,
        BinaryOp::BitXor,
        BinaryOp::ShiftLeft,
        BinaryOp::ShiftRight,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];

    /// True when the output is bool whatever the input dtype.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
}

#[cfg(test)]
mod op_list_tests {
    use super::*;

    /// A new variant fails to compile here until it is sorted into or out
    /// of the lists; the lists hold no duplicates.
    #[test]
    fn op_lists_are_complete() {
        for b in BinaryOp::ALL {
            match b {
                BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Rem
                | BinaryOp::Pow
                | BinaryOp::Min
                | BinaryOp::Max
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
                | BinaryOp::BitAnd
                | BinaryOp::BitOr
                | BinaryOp::BitXor
                | BinaryOp::ShiftLeft
                | BinaryOp::ShiftRight
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge => {}
            }
        }
        let plain = |u: UnaryOp| match u {
            UnaryOp::Not
            | UnaryOp::HardSwish
            | UnaryOp::PowConst(_)
            | UnaryOp::LeakyRelu(_)
            | UnaryOp::HardSigmoid { .. } => false,
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Exp
            | UnaryOp::Ln
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Recip
            | UnaryOp::Square
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Erf
            | UnaryOp::GeluExact
            | UnaryOp::GeluTanh
            | UnaryOp::Silu
            | UnaryOp::Softplus
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Atan
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round => true,
        };
        assert!(UnaryOp::F32_PLAIN.into_iter().all(plain));
        for r in Reducer::ALL {
            match r {
                Reducer::Sum
                | Reducer::Prod
                | Reducer::Max
                | Reducer::Min
                | Reducer::MeanOfSquares
                | Reducer::ArgMax { .. }
                | Reducer::ArgMin { .. }
                | Reducer::All
                | Reducer::Any => {}
            }
        }
        let distinct: std::collections::HashSet<_> = Reducer::ALL.into_iter().collect();
        assert_eq!(distinct.len(), Reducer::ALL.len());
        let distinct: std::collections::HashSet<_> = BinaryOp::ALL.into_iter().collect();
        assert_eq!(distinct.len(), BinaryOp::ALL.len());
        let distinct: std::collections::HashSet<_> = UnaryOp::F32_PLAIN.into_iter().collect();
        assert_eq!(distinct.len(), UnaryOp::F32_PLAIN.len());
    }
}

/// One axis of an Einstein summation over two inputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct EinAxis {
    /// Position in input 0, if present.
    pub a: Option<u32>,
    /// Position in input 1, if present.
    pub b: Option<u32>,
    /// Position in the output; `None` for a contracted (summed) axis.
    pub out: Option<u32>,
    /// Extent.
    pub dim: u64,
}

/// `out[o] = Σ_{contracted} a[..]·b[..]` (see `docs/semantics.md#einsum`).
/// Contracted axes are listed in fold order (outermost first).
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct EinSumSpec {
    /// Axes that appear in the output, any order.
    pub free: Vec<EinAxis>,
    /// Summed axes, in fold order: the first is the outermost loop.
    pub contracted: Vec<EinAxis>,
}

/// Layout of a convolution or pool input/output.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub enum DataLayout {
    /// Batch, channels, spatial…
    Nchw,
    /// Batch, spatial…, channels.
    Nhwc,
    /// Channels, spatial… (no batch axis).
    Chw,
    /// Spatial…, channels (no batch axis).
    Hwc,
}

impl DataLayout {
    /// True when there is a batch axis.
    pub fn has_n(self) -> bool {
        matches!(self, DataLayout::Nchw | DataLayout::Nhwc)
    }
    /// True when channels come last.
    pub fn channels_last(self) -> bool {
        matches!(self, DataLayout::Nhwc | DataLayout::Hwc)
    }
}

/// Layout of a convolution kernel.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub enum KernelLayout {
    /// Out-channels, in-channels per group, spatial…
    Oihw,
    /// Spatial…, in-channels per group, out-channels.
    Hwio,
    /// Out-channels, spatial…, in-channels per group.
    Ohwi,
}

/// Spatial geometry shared by convolutions and pools.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    /// Input/output layout.
    pub layout: DataLayout,
    /// Kernel extent per spatial axis.
    pub kernel: Vec<u64>,
    /// Stride per spatial axis.
    pub strides: Vec<u64>,
    /// Dilation per spatial axis.
    pub dilations: Vec<u64>,
    /// Padding before, per spatial axis.
    pub pad_before: Vec<u64>,
    /// Padding after, per spatial axis (positions past it are "overflow" of
    /// ceil-mode pools: they exist in no window count).
    pub pad_after: Vec<u64>,
}

/// A convolution (`Conv`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ConvSpec {
    /// Geometry.
    pub geo: Geometry,
    /// Kernel layout.
    pub kernel_layout: KernelLayout,
    /// Group count.
    pub group: u64,
    /// Whether input 2 is a bias (per output channel, or a single scalar).
    pub bias: bool,
}

/// A transposed convolution (`ConvTranspose`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct DeconvSpec {
    /// Geometry (pads are the ones removed from the full output).
    pub geo: Geometry,
    /// Kernel layout, with O = output channels and I = input channels per
    /// group (tract's frontend reorders the ONNX `Ci, Co/g, spatial…`
    /// ConvTranspose kernel into OIHW `Co, Ci/g, spatial…`).
    pub kernel_layout: KernelLayout,
    /// Group count.
    pub group: u64,
    /// Whether input 2 is a bias.
    pub bias: bool,
}

/// A pooling window op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct PoolSpec {
    /// Geometry.
    pub geo: Geometry,
    /// For sum pools: divide by the window count (average pooling).
    pub normalize: bool,
    /// For average pooling: padded positions count in the divisor.
    pub count_include_pad: bool,
}

/// Reduction kinds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum Reducer {
    Sum,
    Prod,
    Max,
    Min,
    MeanOfSquares,
    /// Index of the first (or last) maximum, as i64.
    ArgMax {
        last: bool,
    },
    /// Index of the first (or last) minimum, as i64.
    ArgMin {
        last: bool,
    },
    /// Logical and over bools.
    All,
    /// Logical or over bools.
    Any,
}

impl Reducer {
    /// Every reduction, both ends of ArgMax and ArgMin included, in
    /// declaration order.
    pub const ALL: [Reducer; 11] = [
        Reducer::Sum,
        Reducer::Prod,
        Reducer::Max,
        Reducer::Min,
        Reducer::MeanOfSquares,
        Reducer::ArgMax { last: false },
        Reducer::ArgMax { last: true },
        Reducer::ArgMin { last: false },
        Reducer::ArgMin { last: true },
        Reducer::All,
        Reducer::Any,
    ];
}

/// Pad modes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub enum PadMode {
    /// Fill with a constant (stored by its bits in the output dtype).
    Constant(u64),
    /// Mirror without repeating the edge.
    Reflect,
    /// Repeat the edge.
    Edge,
}

/// Resize interpolation (nearest or n-linear), with the coordinate transform
/// and rounding mode ONNX names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ResizeSpec {
    /// Interpolation.
    pub mode: ResizeMode,
    /// Coordinate transformation.
    pub coord: ResizeCoord,
    /// Nearest rounding (ignored for linear).
    pub nearest: ResizeNearest,
    /// Per-axis scale (output/input), as f32 bits; used by the coordinate
    /// transform exactly as ONNX specifies.
    pub scales: Vec<F32Bits>,
}

/// Resize interpolation modes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum ResizeMode {
    Nearest,
    Linear,
}

/// Resize coordinate transformations.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum ResizeCoord {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    HalfPixelSymmetric,
}

/// Nearest-mode rounding.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum ResizeNearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// The canonical op set. Each op's exact definition (its fold) is in
/// `docs/semantics.md` and implemented in [`crate::ops`].
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// Same elements, same order, possibly a new shape (reshape, add/remove
    /// unit axes, flatten, squeeze, identity).
    Reshape,
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<u32>,
    },
    /// Element-wise function of one input.
    Unary(UnaryOp),
    /// Element-wise function of two inputs, numpy-broadcast.
    Binary(BinaryOp),
    /// `cond ? a : b`, broadcast.
    Where,
    /// Conversion to the output dtype.
    Cast,
    /// Two-input Einstein summation (MatMul, Gemm, 1×1 convolutions…).
    EinSum(EinSumSpec),
    /// Convolution.
    Conv(ConvSpec),
    /// Transposed convolution.
    Deconv(DeconvSpec),
    /// Max pooling.
    MaxPool(PoolSpec),
    /// Sum or average pooling.
    SumPool(PoolSpec),
    /// Reduction over axes, keeping them with extent 1.
    Reduce {
        /// Kind.
        reducer: Reducer,
        /// Reduced axes, ascending.
        axes: Vec<u32>,
    },
    /// Softmax or log-softmax over axes.
    Softmax {
        /// Axes, ascending.
        axes: Vec<u32>,
        /// Log-softmax.
        log: bool,
    },
    /// `x / sqrt(mean(x²) + eps)` along one axis.
    RmsNorm {
        /// Axis.
        axis: u32,
        /// Epsilon.
        eps: F32Bits,
    },
    /// Broadcast to the output shape.
    Broadcast,
    /// Repeat along each axis.
    Tile {
        /// Repeat count per axis.
        multiples: Vec<u64>,
    },
    /// `[start, end)` along one axis.
    Slice {
        /// Axis.
        axis: u32,
        /// Start.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// Every `stride`-th element along an axis starting at `start` (strided
    /// slice; negative strides are lowered with a reversal).
    Downsample {
        /// Axis.
        axis: u32,
        /// Stride (may be negative).
        stride: i64,
        /// First index taken.
        start: u64,
    },
    /// Concatenation along an axis.
    Concat {
        /// Axis.
        axis: u32,
    },
    /// Padding.
    Pad {
        /// `(before, after)` per axis.
        pads: Vec<(u64, u64)>,
        /// Mode.
        mode: PadMode,
    },
    /// ONNX Gather.
    Gather {
        /// Axis of the data indexed.
        axis: u32,
    },
    /// ONNX GatherElements.
    GatherElements {
        /// Axis.
        axis: u32,
    },
    /// ONNX GatherND.
    GatherNd {
        /// Leading batch dims.
        batch_dims: u32,
    },
    /// ONNX Resize (nearest, linear).
    Resize(ResizeSpec),
}

impl Op {
    /// A short name for messages and traces.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{u:?}"),
            Op::Binary(b) => format!("{b:?}"),
            Op::Reduce { reducer, .. } => format!("Reduce<{reducer:?}>"),
            Op::Softmax { log: true, .. } => "LogSoftmax".into(),
            other => {
                let s = format!("{other:?}");
                s.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string()
            }
        }
    }
}

/// A whole program.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// [`PROGRAM_VERSION`].
    pub version: u8,
    /// Request inputs, in the model's input order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in the model's output order.
    pub outputs: Vec<OutputInfo>,
    /// Nodes in evaluation order.
    pub nodes: Vec<Node>,
    /// Constant tensors.
    #[serde(skip)]
    pub constants: Vec<Tensor>,
}

/// Leaf 0 of the program tree: the signatures and the sizes.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ProgramHeader {
    /// Program version.
    pub version: u8,
    /// Inputs.
    pub inputs: Vec<TensorInfo>,
    /// Outputs.
    pub outputs: Vec<OutputInfo>,
    /// Node count.
    pub nodes: u64,
    /// Constant count.
    pub constants: u64,
}

impl ProgramHeader {
    /// Of a program.
    pub fn of(p: &Program) -> Self {
        Self {
            version: p.version,
            inputs: p.inputs.clone(),
            outputs: p.outputs.clone(),
            nodes: p.nodes.len() as u64,
            constants: p.constants.len() as u64,
        }
    }
    /// The leaf hash.
    pub fn leaf(&self) -> Hash32 {
        hash(Domain::ProgramHeader, &borsh::to_vec(self).expect("in-memory encoding"))
    }
    /// Leaves in the program tree.
    pub fn program_leaves(&self) -> u64 {
        1 + self.nodes + self.constants
    }
    /// Leaves in the trace tree.
    pub fn trace_leaves(&self) -> u64 {
        1 + self.nodes
    }
}

impl Program {
    /// The type of a value reference.
    pub fn value_type(&self, r: ValueRef) -> Option<ValueType> {
        match r {
            ValueRef::Input(i) => {
                self.inputs.get(i as usize).map(|t| ValueType { dtype: t.dtype, shape: t.shape.clone() })
            }
            ValueRef::Const(c) => self.constants.get(c as usize).map(ValueType::of),
            ValueRef::Node(n) => self.nodes.get(n as usize).map(|n| n.output.clone()),
        }
    }

    /// Input types of node `n`.
    pub fn node_input_types(&self, n: usize) -> Vec<ValueType> {
        self.nodes[n].inputs.iter().filter_map(|r| self.value_type(*r)).collect()
    }

    /// Checks the structural invariants (see module docs).
    pub fn validate(&self) -> Result<(), ProverError> {
        let bad = |node: &str, why: String| ProverError::InvalidProgram { node: node.to_string(), why };
        if self.version != PROGRAM_VERSION {
            return Err(bad("-", format!("version {} (expected {PROGRAM_VERSION})", self.version)));
        }
        for t in &self.inputs {
            checked_numel(&t.shape).map_err(|e| bad(&t.name, e.to_string()))?;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            checked_numel(&n.output.shape).map_err(|e| bad(&n.name, e.to_string()))?;
            for r in &n.inputs {
                let ok = match *r {
                    ValueRef::Input(k) => (k as usize) < self.inputs.len(),
                    ValueRef::Const(k) => (k as usize) < self.constants.len(),
                    ValueRef::Node(k) => (k as usize) < i,
                };
                if !ok {
                    return Err(bad(&n.name, format!("input {r:?} is not available at node {i}")));
                }
            }
        }
        for o in &self.outputs {
            if o.node as usize >= self.nodes.len() {
                return Err(bad(&o.name, format!("output refers to missing node {}", o.node)));
            }
        }
        Ok(())
    }

    /// Refuses ([`ProverError::ResourceLimit`]) an input or node output
    /// larger than `limit` bytes. Call after [`Program::validate`].
    pub fn check_value_bytes(&self, limit: u64) -> Result<(), ProverError> {
        let values = self.inputs.iter().map(|t| (format!("input {:?}", t.name), t.dtype, &t.shape));
        let values =
            values.chain(self.nodes.iter().map(|n| (format!("node {:?}", n.name), n.output.dtype, &n.output.shape)));
        for (what, dtype, shape) in values {
            let bytes = checked_numel(shape).unwrap_or(u64::MAX).saturating_mul(dtype.size() as u64);
            if bytes > limit {
                return Err(ProverError::ResourceLimit { what: format!("{what} ({dtype}{shape:?})"), bytes, limit });
            }
        }
        Ok(())
    }

    /// About how many fold steps one inference takes: for every node, its
    /// output elements times the steps of a typical element (the most of
    /// the first, middle and last; at least 1). A measure of compute that
    /// is the same on every machine (a multiply-add is one step), used to
    /// refuse programs too costly to serve or to re-execute. Saturates.
    /// Call on a validated program.
    pub fn steps(&self) -> Result<u64, ProverError> {
        let mut total = 0u64;
        for i in 0..self.nodes.len() {
            let (numel, per) = self.element_steps(i)?;
            total = total.saturating_add(numel.saturating_mul(per.max(1)));
        }
        Ok(total)
    }

    /// Node `i`'s output elements and the steps of one element's fold: the
    /// most of its first, middle and last element's (saturating).
    fn element_steps(&self, i: usize) -> Result<(u64, u64), ProverError> {
        let n = &self.nodes[i];
        let fold = crate::ops::fold_for(&n.op, &self.node_input_types(i), &n.output)?;
        let numel = checked_numel(&n.output.shape).unwrap_or(u64::MAX);
        let last = numel.saturating_sub(1);
        Ok((numel, [0, last / 2, last].into_iter().map(|e| fold.steps(e)).max().unwrap_or(0)))
    }

    /// Bytes of every node's output: what a dispute's prover holds at once
    /// (it keeps the whole trace to answer any node and element).
    pub fn trace_bytes(&self) -> u64 {
        self.nodes.iter().fold(0u64, |acc, n| {
            let numel = checked_numel(&n.output.shape).unwrap_or(u64::MAX);
            acc.saturating_add(numel.saturating_mul(n.output.dtype.size() as u64))
        })
    }

    /// Refuses a program whose dispute would hold more than `trace_limit`
    /// bytes of node outputs ([`Program::trace_bytes`]) or commit to more
    /// than `fold_limit` states of one element (the longest fold of one
    /// output element, sampled as in [`Program::steps`]). A dispute's
    /// memory is bounded by these, not by the plan's arena.
    pub fn check_dispute(&self, trace_limit: Option<u64>, fold_limit: Option<u64>) -> Result<(), ProverError> {
        if let Some(limit) = trace_limit {
            let bytes = self.trace_bytes();
            if bytes > limit {
                return Err(ProverError::TraceLimit { bytes, limit });
            }
        }
        if let Some(limit) = fold_limit
            && let Some((node, steps)) = self.longest_fold()?
            && steps > limit
        {
            let name = self.nodes[node as usize].name.clone();
            return Err(ProverError::FoldLimit { node, name, steps, limit });
        }
        Ok(())
    }

    /// The node with the longest fold of one output element, and its steps
    /// (sampled at the first, middle and last element, as in
    /// [`Program::steps`]); `None` for a program without nodes.
    pub fn longest_fold(&self) -> Result<Option<(u32, u64)>, ProverError> {
        let mut best: Option<(u32, u64)> = None;
        for i in 0..self.nodes.len() {
            let (_, steps) = self.element_steps(i)?;
            if best.is_none_or(|(_, b)| steps > b) {
                best = Some((i as u32, steps));
            }
        }
        Ok(best)
    }

    /// Refuses a program whose [`Program::steps`] exceed `limit`.
    pub fn check_steps(&self, limit: u64) -> Result<(), ProverError> {
        let steps = self.steps()?;
        if steps > limit {
            return Err(ProverError::ComputeLimit { steps, limit });
        }
        Ok(())
    }

    /// Leaf 0.
    pub fn header_leaf(&self) -> Hash32 {
        ProgramHeader::of(self).leaf()
    }

    /// The leaf of a node descriptor.
    pub fn node_leaf(node: &Node) -> Hash32 {
        hash(Domain::ProgramNode, &borsh::to_vec(node).expect("in-memory encoding"))
    }

    /// The leaf of a constant, from its tensor root.
    pub fn const_leaf(root: &Hash32) -> Hash32 {
        hash(Domain::ProgramConst, &root.0)
    }

    /// All leaves, in commitment order.
    pub fn leaves(&self) -> Vec<Hash32> {
        let mut leaves = Vec::with_capacity(1 + self.nodes.len() + self.constants.len());
        leaves.push(self.header_leaf());
        leaves.extend(self.nodes.iter().map(Self::node_leaf));
        leaves.extend(self.constants.iter().map(|c| Self::const_leaf(&c.root())));
        leaves
    }

    /// The Merkle tree over [`Program::leaves`].
    pub fn tree(&self) -> MerkleTree {
        MerkleTree::from_leaves(&self.leaves()).expect("program far below MAX_LEAVES")
    }

    /// The program root.
    pub fn root(&self) -> Hash32 {
        program_root_from_tree(&self.tree())
    }

    /// Proof that node `n`'s descriptor is in the program.
    pub fn node_proof(tree: &MerkleTree, n: u32) -> Result<MerkleProof, ProverError> {
        Ok(tree.proof(1 + u64::from(n))?)
    }

    /// Proof that constant `c`'s root is in the program.
    pub fn const_proof(&self, tree: &MerkleTree, c: u32) -> Result<MerkleProof, ProverError> {
        Ok(tree.proof(1 + self.nodes.len() as u64 + u64::from(c))?)
    }

    /// Canonical bytes (borsh); constants are included.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("in-memory encoding")
    }

    /// Decodes and validates canonical bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ProverError> {
        let p: Program = borsh::from_slice(b).map_err(|e| ProverError::Decode(format!("program: {e}")))?;
        p.validate()?;
        Ok(p)
    }
}

/// `H(Program || tree.root())`.
pub fn program_root_from_tree(tree: &MerkleTree) -> Hash32 {
    hash_parts(Domain::Program, &[&tree.root().0])
}
