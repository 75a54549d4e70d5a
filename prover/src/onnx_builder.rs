//! Builds small ONNX models in code, for tests and tools (e.g. a model with a
//! symbolic input, an unsupported op or a specific attribute).

use prost::Message;
use tract_onnx::pb;
use verinfer_state::tensor::{DType, Tensor};

/// One dimension of a graph input/output.
#[derive(Clone, Debug)]
pub enum Dim {
    /// A fixed extent.
    Fixed(i64),
    /// A symbolic extent (`dim_param`).
    Sym(String),
}

/// An ONNX attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f32),
    /// Integers.
    Ints(Vec<i64>),
    /// String.
    Str(String),
}

/// Accumulates a graph and encodes it as ONNX bytes.
#[derive(Debug, Default)]
pub struct OnnxBuilder {
    graph: pb::GraphProto,
    opset: i64,
}

fn onnx_dtype(d: DType) -> i32 {
    use pb::tensor_proto::DataType as T;
    (match d {
        DType::F32 => T::Float,
        DType::I64 => T::Int64,
        DType::I32 => T::Int32,
        DType::I16 => T::Int16,
        DType::I8 => T::Int8,
        DType::U64 => T::Uint64,
        DType::U32 => T::Uint32,
        DType::U16 => T::Uint16,
        DType::U8 => T::Uint8,
        DType::Bool => T::Bool,
    }) as i32
}

fn value_info(name: &str, dtype: DType, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Fixed(v) => Value::DimValue(*v),
                Dim::Sym(s) => Value::DimParam(s.clone()),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: onnx_dtype(dtype),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

impl OnnxBuilder {
    /// An empty graph at `opset`.
    pub fn new(opset: i64) -> Self {
        Self { graph: pb::GraphProto { name: "g".into(), ..Default::default() }, opset }
    }

    /// Adds a graph input.
    pub fn input(mut self, name: &str, dtype: DType, dims: &[Dim]) -> Self {
        self.graph.input.push(value_info(name, dtype, dims));
        self
    }

    /// Adds a graph output.
    pub fn output(mut self, name: &str, dtype: DType, dims: &[Dim]) -> Self {
        self.graph.output.push(value_info(name, dtype, dims));
        self
    }

    /// Adds an initializer.
    pub fn initializer(mut self, name: &str, t: &Tensor) -> Self {
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: t.shape().iter().map(|&d| d as i64).collect(),
            data_type: onnx_dtype(t.dtype()),
            raw_data: t.le_bytes().into_owned(),
            ..Default::default()
        });
        self
    }

    /// Adds a node.
    pub fn node(mut self, op_type: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Self {
        use pb::attribute_proto::AttributeType as A;
        let attribute = attrs
            .iter()
            .map(|(n, a)| {
                let mut p = pb::AttributeProto { name: (*n).into(), ..Default::default() };
                match a {
                    Attr::Int(v) => {
                        p.i = *v;
                        p.r#type = A::Int as i32;
                    }
                    Attr::Float(v) => {
                        p.f = *v;
                        p.r#type = A::Float as i32;
                    }
                    Attr::Ints(v) => {
                        p.ints = v.clone();
                        p.r#type = A::Ints as i32;
                    }
                    Attr::Str(v) => {
                        p.s = v.as_bytes().to_vec();
                        p.r#type = A::String as i32;
                    }
                }
                p
            })
            .collect();
        let name = format!("{}_{}", op_type.to_lowercase(), self.graph.node.len());
        self.graph.node.push(pb::NodeProto {
            name,
            op_type: op_type.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
        self
    }

    /// The model's bytes.
    pub fn build(self) -> Vec<u8> {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: self.opset }],
            producer_name: "verinfer".into(),
            graph: Some(self.graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}
