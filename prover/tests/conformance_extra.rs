//! Hand-built ONNX cases for ops and variants the backend node corpus in
//! `../shared/corpus/onnx-node` does not cover (Mod, Tile, GatherElements,
//! GatherND, logic ops, canonical casts, grouped and dilated Conv, …).
//!
//! Each case is a one-node ONNX model written with the crate's
//! [`OnnxBuilder`], loaded through the frontend (tract decluttering and
//! lowering) and run by the reference executor; the expected outputs are
//! the ONNX definitions, computed by hand or by a naive loop here. Values are
//! chosen so that every result is exact in f32, so comparisons are bitwise
//! unless a case says otherwise.

use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::onnx_builder::{Attr as OnnxAttr, Dim, OnnxBuilder};
use verinfer_state::tensor::{DType, Tensor, TensorData};

// ---------------------------------------------------------------------------
// Models, through the crate's ONNX builder.

/// An attribute: name and value.
#[derive(Clone, Debug)]
enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Str(&'static str, &'static str),
}

struct NodeDef {
    op: &'static str,
    inputs: Vec<&'static str>,
    outputs: Vec<&'static str>,
    attrs: Vec<Attr>,
}

fn node(op: &'static str, inputs: &[&'static str], outputs: &[&'static str], attrs: Vec<Attr>) -> NodeDef {
    NodeDef { op, inputs: inputs.to_vec(), outputs: outputs.to_vec(), attrs }
}

fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d as i64)).collect()
}

/// A model: nodes, initializers, request inputs (name, value), outputs
/// (name, dtype, shape), at `opset`.
fn model(
    nodes: &[NodeDef],
    inits: &[(&str, Tensor)],
    inputs: &[(&str, &Tensor)],
    outputs: &[(&str, DType, &[usize])],
    opset: i64,
) -> Vec<u8> {
    let mut b = OnnxBuilder::new(opset);
    for (name, t) in inputs {
        b = b.input(name, t.dtype(), &dims(t.shape()));
    }
    for (name, t) in inits {
        b = b.initializer(name, t);
    }
    for n in nodes {
        let attrs: Vec<(&str, OnnxAttr)> = n
            .attrs
            .iter()
            .map(|a| match a {
                Attr::Int(k, v) => (*k, OnnxAttr::Int(*v)),
                Attr::Ints(k, v) => (*k, OnnxAttr::Ints(v.clone())),
                Attr::Str(k, v) => (*k, OnnxAttr::Str(v.to_string())),
            })
            .collect();
        b = b.node(n.op, &n.inputs, &n.outputs, &attrs);
    }
    for (name, dt, shape) in outputs {
        b = b.output(name, *dt, &dims(shape));
    }
    b.build()
}

// ---------------------------------------------------------------------------
// Tensors and the runner.

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v.to_vec()).expect("shape")
}
fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I64(v.to_vec())).expect("shape")
}
fn i32s(shape: &[usize], v: &[i32]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I32(v.to_vec())).expect("shape")
}
fn bools(shape: &[usize], v: &[bool]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::Bool(v.to_vec())).expect("shape")
}

/// Loads and runs a model; returns its outputs or the error as text.
fn run(onnx: &[u8], inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, String> {
    let opts = LoadOptions {
        name: "synthetic".into(),
        shapes: inputs.iter().map(|(n, t)| (n.to_string(), t.shape_u64())).collect(),
        ..Default::default()
    };
    let m = load_model(onnx, &opts).map_err(|e| e.to_string())?;
    let args: Vec<Tensor> = m
        .program
        .inputs
        .iter()
        .map(|i| inputs.iter().find(|(n, _)| *n == i.name).map(|(_, t)| (*t).clone()).expect("input by name"))
        .collect();
    Ok(verinfer_prover::execute(&m.program, &args).map_err(|e| e.to_string())?.outputs)
}

/// One single-node case: `op(inputs…) → y`, checked bit for bit.
fn check(
    what: &str,
    n: NodeDef,
    inits: &[(&str, Tensor)],
    inputs: &[(&str, &Tensor)],
    want: &Tensor,
    opset: i64,
) -> Result<(), String> {
    let onnx = model(&[n], inits, inputs, &[("y", want.dtype(), want.shape())], opset);
    let got = run(&onnx, inputs).map_err(|e| format!("{what}: {e}"))?;
    let g = &got[0];
    if g.dtype() != want.dtype() || g.shape() != want.shape() || g.le_bytes() != want.le_bytes() {
        return Err(format!(
            "{what}: got {:?} {:?} {}, want {:?} {:?} {}",
            g.dtype(),
            g.shape(),
            show(g),
            want.dtype(),
            want.shape(),
            show(want)
        ));
    }
    Ok(())
}

fn show(t: &Tensor) -> String {
    (0..t.len() as u64)
        .map(|i| {
            let s = t.scalar(i).expect("in range");
            match t.dtype() {
                DType::F32 => format!("{:?}", s.f32()),
                DType::Bool => format!("{}", s.as_bool()),
                DType::U64 | DType::U32 | DType::U16 | DType::U8 => format!("{}", s.bits),
                _ => format!("{}", s.as_i64()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn all(results: Vec<Result<(), String>>) {
    let errs: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errs.is_empty(), "{} cases failed:\n{}", errs.len(), errs.join("\n"));
}

// ---------------------------------------------------------------------------
// Cases.

#[test]
fn mod_sign_follows_divisor_or_dividend() {
    let a = i32s(&[6], &[-7, 7, -7, 7, 5, -4]);
    let b = i32s(&[6], &[2, -2, -2, 2, 3, 2]);
    let af = f32s(&[4], &[-7.5, 7.5, -7.5, 7.5]);
    let bf = f32s(&[4], &[2.0, -2.0, -2.0, 2.0]);
    all(vec![
        // fmod = 0: the sign of the divisor (Python %).
        check(
            "Mod int32",
            node("Mod", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &a), ("b", &b)],
            &i32s(&[6], &[1, -1, -1, 1, 2, 0]),
            13,
        ),
        // fmod = 1: the sign of the dividend (C fmod).
        check(
            "Mod int32 fmod",
            node("Mod", &["a", "b"], &["y"], vec![Attr::Int("fmod", 1)]),
            &[],
            &[("a", &a), ("b", &b)],
            &i32s(&[6], &[-1, 1, -1, 1, 2, 0]),
            13,
        ),
        check(
            "Mod f32 fmod",
            node("Mod", &["a", "b"], &["y"], vec![Attr::Int("fmod", 1)]),
            &[],
            &[("a", &af), ("b", &bf)],
            &f32s(&[4], &[-1.5, 1.5, -1.5, 1.5]),
            13,
        ),
    ]);
}

#[test]
fn movement_ops() {
    let x = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let data = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    all(vec![
        check(
            "Tile",
            node("Tile", &["x", "r"], &["y"], vec![]),
            &[("r", i64s(&[2], &[2, 2]))],
            &[("x", &x)],
            &f32s(
                &[4, 6],
                &[1., 2., 3., 1., 2., 3., 4., 5., 6., 4., 5., 6., 1., 2., 3., 1., 2., 3., 4., 5., 6., 4., 5., 6.],
            ),
            13,
        ),
        check(
            "GatherElements axis 1, negative index",
            node("GatherElements", &["d", "i"], &["y"], vec![Attr::Int("axis", 1)]),
            &[("i", i64s(&[2, 2], &[0, 0, -1, 0]))],
            &[("d", &data)],
            &f32s(&[2, 2], &[1.0, 1.0, 4.0, 3.0]),
            13,
        ),
        check(
            "GatherElements axis 0",
            node("GatherElements", &["d", "i"], &["y"], vec![Attr::Int("axis", 0)]),
            &[("i", i64s(&[1, 2], &[1, 0]))],
            &[("d", &data)],
            &f32s(&[1, 2], &[3.0, 2.0]),
            13,
        ),
        check(
            "GatherND",
            node("GatherND", &["d", "i"], &["y"], vec![]),
            &[("i", i64s(&[2, 2], &[0, 0, 1, 1]))],
            &[("d", &data)],
            &f32s(&[2], &[1.0, 4.0]),
            13,
        ),
        check(
            "GatherND slices",
            node("GatherND", &["d", "i"], &["y"], vec![]),
            &[("i", i64s(&[2, 1], &[1, 0]))],
            &[("d", &data)],
            &f32s(&[2, 2], &[3.0, 4.0, 1.0, 2.0]),
            13,
        ),
        check(
            "GatherND batch_dims 1",
            node("GatherND", &["d", "i"], &["y"], vec![Attr::Int("batch_dims", 1)]),
            &[("i", i64s(&[2, 1], &[1, 0]))],
            &[("d", &data)],
            &f32s(&[2], &[2.0, 3.0]),
            13,
        ),
        check(
            "Gather axis 1, int data",
            node("Gather", &["d", "i"], &["y"], vec![Attr::Int("axis", 1)]),
            &[("i", i64s(&[3], &[2, -3, 1]))],
            &[("d", &i32s(&[2, 3], &[1, 2, 3, 4, 5, 6]))],
            &i32s(&[2, 3], &[3, 1, 2, 6, 4, 5]),
            13,
        ),
        check(
            "Expand",
            node("Expand", &["x", "s"], &["y"], vec![]),
            &[("s", i64s(&[3], &[2, 1, 3]))],
            &[("x", &f32s(&[2, 1], &[1.0, 2.0]))],
            &f32s(&[2, 2, 3], &[1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2.]),
            13,
        ),
        check(
            "Pad reflect",
            node("Pad", &["x", "p"], &["y"], vec![Attr::Str("mode", "reflect")]),
            &[("p", i64s(&[4], &[0, 2, 0, 1]))],
            &[("x", &x)],
            &f32s(&[2, 6], &[3., 2., 1., 2., 3., 2., 6., 5., 4., 5., 6., 5.]),
            13,
        ),
        check(
            "Pad edge",
            node("Pad", &["x", "p"], &["y"], vec![Attr::Str("mode", "edge")]),
            &[("p", i64s(&[4], &[1, 0, 0, 1]))],
            &[("x", &x)],
            &f32s(&[3, 4], &[1., 2., 3., 3., 1., 2., 3., 3., 4., 5., 6., 6.]),
            13,
        ),
        check(
            "Pad constant int",
            node("Pad", &["x", "p", "v"], &["y"], vec![]),
            &[("p", i64s(&[2], &[1, 2])), ("v", i32s(&[], &[-9]))],
            &[("x", &i32s(&[2], &[5, 6]))],
            &i32s(&[5], &[-9, 5, 6, -9, -9]),
            13,
        ),
        check(
            "Split",
            node("Split", &["x", "s"], &["y", "z"], vec![Attr::Int("axis", 1)]),
            &[("s", i64s(&[2], &[1, 2]))],
            &[("x", &x)],
            &f32s(&[2, 1], &[1.0, 4.0]),
            13,
        ),
        check(
            "Slice negative step",
            node("Slice", &["x", "s", "e", "a", "t"], &["y"], vec![]),
            &[("s", i64s(&[1], &[-1])), ("e", i64s(&[1], &[-10])), ("a", i64s(&[1], &[1])), ("t", i64s(&[1], &[-2]))],
            &[("x", &x)],
            &f32s(&[2, 2], &[3., 1., 6., 4.]),
            13,
        ),
        check(
            "Transpose",
            node("Transpose", &["x"], &["y"], vec![Attr::Ints("perm", vec![1, 0])]),
            &[],
            &[("x", &x)],
            &f32s(&[3, 2], &[1., 4., 2., 5., 3., 6.]),
            13,
        ),
        check(
            "Concat int64",
            node("Concat", &["a", "b"], &["y"], vec![Attr::Int("axis", 0)]),
            &[],
            &[("a", &i64s(&[1], &[7])), ("b", &i64s(&[2], &[8, 9]))],
            &i64s(&[3], &[7, 8, 9]),
            13,
        ),
    ]);
}

#[test]
fn logic_comparisons_and_where() {
    let p = bools(&[4], &[true, true, false, false]);
    let q = bools(&[4], &[true, false, true, false]);
    let a = i64s(&[4], &[1, 2, 3, 4]);
    let b = i64s(&[1], &[2]);
    let fa = f32s(&[4], &[f32::NAN, -0.0, 1.0, 2.0]);
    let fb = f32s(&[4], &[f32::NAN, 0.0, 2.0, 1.0]);
    all(vec![
        check(
            "And",
            node("And", &["p", "q"], &["y"], vec![]),
            &[],
            &[("p", &p), ("q", &q)],
            &bools(&[4], &[true, false, false, false]),
            13,
        ),
        check(
            "Or",
            node("Or", &["p", "q"], &["y"], vec![]),
            &[],
            &[("p", &p), ("q", &q)],
            &bools(&[4], &[true, true, true, false]),
            13,
        ),
        check(
            "Xor",
            node("Xor", &["p", "q"], &["y"], vec![]),
            &[],
            &[("p", &p), ("q", &q)],
            &bools(&[4], &[false, true, true, false]),
            13,
        ),
        check(
            "Not",
            node("Not", &["p"], &["y"], vec![]),
            &[],
            &[("p", &p)],
            &bools(&[4], &[false, false, true, true]),
            13,
        ),
        check(
            "LessOrEqual int",
            node("LessOrEqual", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &a), ("b", &b)],
            &bools(&[4], &[true, true, false, false]),
            13,
        ),
        check(
            "GreaterOrEqual int",
            node("GreaterOrEqual", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &a), ("b", &b)],
            &bools(&[4], &[false, true, true, true]),
            13,
        ),
        check(
            "Equal f32 NaN/-0",
            node("Equal", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &fa), ("b", &fb)],
            &bools(&[4], &[false, true, false, false]),
            13,
        ),
        check(
            "Less f32 NaN",
            node("Less", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &fa), ("b", &fb)],
            &bools(&[4], &[false, false, true, false]),
            13,
        ),
        check(
            "Where int64 broadcast",
            node("Where", &["c", "a", "b"], &["y"], vec![]),
            &[],
            &[("c", &bools(&[2, 1], &[true, false])), ("a", &i64s(&[1, 2], &[1, 2])), ("b", &i64s(&[1], &[9]))],
            &i64s(&[2, 2], &[1, 2, 9, 9]),
            13,
        ),
        check(
            "BitwiseAnd int32",
            node("BitwiseAnd", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &i32s(&[2], &[6, -1])), ("b", &i32s(&[2], &[3, 5]))],
            &i32s(&[2], &[2, 5]),
            18,
        ),
    ]);
}

#[test]
fn canonical_casts() {
    let x = f32s(&[5], &[-2.7, 2.7, -0.0, 0.5, 3.0]);
    all(vec![
        check(
            "Cast f32→i32 truncates",
            node("Cast", &["x"], &["y"], vec![Attr::Int("to", 6)]),
            &[],
            &[("x", &x)],
            &i32s(&[5], &[-2, 2, 0, 0, 3]),
            13,
        ),
        check(
            "Cast f32→bool",
            node("Cast", &["x"], &["y"], vec![Attr::Int("to", 9)]),
            &[],
            &[("x", &x)],
            &bools(&[5], &[true, true, false, true, true]),
            13,
        ),
        check(
            "Cast i64→f32",
            node("Cast", &["x"], &["y"], vec![Attr::Int("to", 1)]),
            &[],
            &[("x", &i64s(&[3], &[-3, 16_777_217, 1 << 40]))],
            &f32s(&[3], &[-3.0, 16_777_216.0, 1_099_511_627_776.0]),
            13,
        ),
        check(
            "Cast i32→i8 wraps",
            node("Cast", &["x"], &["y"], vec![Attr::Int("to", 3)]),
            &[],
            &[("x", &i32s(&[3], &[300, -129, 127]))],
            &Tensor::new(vec![3], TensorData::I8(vec![44, 127, 127])).expect("shape"),
            13,
        ),
        check(
            "Cast bool→f32",
            node("Cast", &["x"], &["y"], vec![Attr::Int("to", 1)]),
            &[],
            &[("x", &bools(&[2], &[true, false]))],
            &f32s(&[2], &[1.0, 0.0]),
            13,
        ),
    ]);
}

#[test]
fn unary_and_activation_ops() {
    let x = f32s(&[6], &[-2.5, -0.5, -0.0, 0.5, 1.5, 2.5]);
    all(vec![
        check(
            "Floor",
            node("Floor", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[-3.0, -1.0, -0.0, 0.0, 1.0, 2.0]),
            13,
        ),
        check(
            "Ceil",
            node("Ceil", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[-2.0, -0.0, -0.0, 1.0, 2.0, 3.0]),
            13,
        ),
        check(
            "Round half to even",
            node("Round", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[-2.0, -0.0, -0.0, 0.0, 2.0, 2.0]),
            13,
        ),
        check(
            "Sign",
            node("Sign", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[-1.0, -1.0, -0.0, 1.0, 1.0, 1.0]),
            13,
        ),
        check(
            "Abs",
            node("Abs", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[2.5, 0.5, 0.0, 0.5, 1.5, 2.5]),
            13,
        ),
        check(
            "Reciprocal",
            node("Reciprocal", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[-0.4, -2.0, f32::NEG_INFINITY, 2.0, 1.0 / 1.5, 0.4]),
            13,
        ),
        check(
            "LeakyRelu default",
            node("LeakyRelu", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[0.01 * -2.5, 0.01 * -0.5, -0.0, 0.5, 1.5, 2.5]),
            13,
        ),
        check(
            "Relu",
            node("Relu", &["x"], &["y"], vec![]),
            &[],
            &[("x", &x)],
            &f32s(&[6], &[0.0, 0.0, 0.0, 0.5, 1.5, 2.5]),
            13,
        ),
        check(
            "Neg int8 wraps",
            node("Neg", &["x"], &["y"], vec![]),
            &[],
            &[("x", &Tensor::new(vec![2], TensorData::I8(vec![-128, 5])).expect("shape"))],
            &Tensor::new(vec![2], TensorData::I8(vec![-128, -5])).expect("shape"),
            13,
        ),
        check(
            "Abs int32",
            node("Abs", &["x"], &["y"], vec![]),
            &[],
            &[("x", &i32s(&[2], &[-3, 4]))],
            &i32s(&[2], &[3, 4]),
            13,
        ),
        check(
            "Sum of three",
            node("Sum", &["a", "b", "c"], &["y"], vec![]),
            &[],
            &[("a", &f32s(&[2], &[1.0, 2.0])), ("b", &f32s(&[1], &[10.0])), ("c", &f32s(&[2], &[100.0, 200.0]))],
            &f32s(&[2], &[111.0, 212.0]),
            13,
        ),
        check(
            "Max of three int",
            node("Max", &["a", "b", "c"], &["y"], vec![]),
            &[],
            &[("a", &i32s(&[2], &[1, 9])), ("b", &i32s(&[2], &[5, 2])), ("c", &i32s(&[2], &[3, 3]))],
            &i32s(&[2], &[5, 9]),
            13,
        ),
    ]);
}

#[test]
fn pow_with_integer_exponent() {
    // tract computes mixed integer/float Pow in f64; the program carries it in f32.
    let x = f32s(&[4], &[-2.0, 0.5, 3.0, -0.0]);
    all(vec![
        check(
            "Pow f32 ^ int64 constant 2",
            node("Pow", &["x", "e"], &["y"], vec![]),
            &[("e", i64s(&[], &[2]))],
            &[("x", &x)],
            &f32s(&[4], &[4.0, 0.25, 9.0, 0.0]),
            13,
        ),
        check(
            "Pow f32 ^ int32 constant 3",
            node("Pow", &["x", "e"], &["y"], vec![]),
            &[("e", i32s(&[1], &[3]))],
            &[("x", &x)],
            &f32s(&[4], &[-8.0, 0.125, 27.0, -0.0]),
            13,
        ),
        check(
            "Pow int32 ^ f32",
            node("Pow", &["x", "e"], &["y"], vec![]),
            &[],
            &[("x", &i32s(&[3], &[2, 3, -2])), ("e", &f32s(&[3], &[10.0, 0.5, 3.0]))],
            &i32s(&[3], &[1024, 1, -8]),
            13,
        ),
        check(
            "Pow int32 ^ f32 constant 0.5 (tract: Sqrt)",
            node("Pow", &["x", "e"], &["y"], vec![]),
            &[("e", f32s(&[], &[0.5]))],
            &[("x", &i32s(&[3], &[4, 9, 2]))],
            &i32s(&[3], &[2, 3, 1]),
            13,
        ),
    ]);
}

#[test]
fn reductions_and_arg_reductions() {
    let x = f32s(&[2, 3], &[1.0, 5.0, 5.0, -2.0, -7.0, -7.0]);
    all(vec![
        check(
            "ArgMax first",
            node("ArgMax", &["x"], &["y"], vec![Attr::Int("axis", 1), Attr::Int("keepdims", 0)]),
            &[],
            &[("x", &x)],
            &i64s(&[2], &[1, 0]),
            13,
        ),
        check(
            "ArgMax last",
            node("ArgMax", &["x"], &["y"], vec![Attr::Int("axis", 1), Attr::Int("select_last_index", 1)]),
            &[],
            &[("x", &x)],
            &i64s(&[2, 1], &[2, 0]),
            13,
        ),
        check(
            "ArgMin last",
            node("ArgMin", &["x"], &["y"], vec![Attr::Int("axis", 1), Attr::Int("select_last_index", 1)]),
            &[],
            &[("x", &x)],
            &i64s(&[2, 1], &[0, 2]),
            13,
        ),
        check(
            "ReduceMin",
            node("ReduceMin", &["x"], &["y"], vec![Attr::Ints("axes", vec![0]), Attr::Int("keepdims", 0)]),
            &[],
            &[("x", &x)],
            &f32s(&[3], &[-2.0, -7.0, -7.0]),
            13,
        ),
        check(
            "ReduceProd",
            node("ReduceProd", &["x"], &["y"], vec![Attr::Ints("axes", vec![1])]),
            &[],
            &[("x", &x)],
            &f32s(&[2, 1], &[25.0, -98.0]),
            13,
        ),
        check(
            "ReduceSumSquare",
            node("ReduceSumSquare", &["x"], &["y"], vec![Attr::Ints("axes", vec![1])]),
            &[],
            &[("x", &x)],
            &f32s(&[2, 1], &[51.0, 102.0]),
            13,
        ),
        check(
            "ReduceSum int64",
            node("ReduceSum", &["x", "a"], &["y"], vec![Attr::Int("keepdims", 0)]),
            &[("a", i64s(&[1], &[0]))],
            &[("x", &i64s(&[2, 2], &[1, 2, 3, 4]))],
            &i64s(&[2], &[4, 6]),
            13,
        ),
    ]);
}

/// Naive ONNX Conv (NCHW, 2-D) with groups, strides, dilations and pads.
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    k: &[f32],
    (m, kh, kw): (usize, usize, usize),
    group: usize,
    strides: [usize; 2],
    dil: [usize; 2],
    pads: [usize; 4],
) -> (Vec<f32>, [usize; 4]) {
    let oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) / strides[0] + 1;
    let ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) / strides[1] + 1;
    let (cg, mg) = (c / group, m / group);
    let mut y = vec![0f32; n * m * oh * ow];
    for b in 0..n {
        for o in 0..m {
            let g = o / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0f32;
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * strides[0] + ky * dil[0]) as isize - pads[0] as isize;
                                let ix = (ox * strides[1] + kx * dil[1]) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((b * c + g * cg + ci) * h + iy as usize) * w + ix as usize];
                                acc += xv * k[((o * cg + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y[((b * m + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    (y, [n, m, oh, ow])
}

#[test]
fn conv_groups_strides_dilations_pads() {
    let (n, c, h, w) = (1usize, 4usize, 6usize, 7usize);
    let x: Vec<f32> = (0..n * c * h * w).map(|v| ((v * 7) % 11) as f32 - 5.0).collect();
    let mut results = Vec::new();
    for (group, m, strides, dil, pads) in [
        (4usize, 4usize, [1usize, 1usize], [1usize, 1usize], [1usize, 1usize, 1usize, 1usize]), // depthwise
        (2, 6, [2, 1], [1, 2], [0, 2, 1, 0]),
        (1, 3, [1, 2], [2, 1], [2, 0, 0, 1]),
        (4, 8, [2, 2], [2, 2], [1, 1, 1, 1]), // depthwise, multiplier 2
    ] {
        let (kh, kw) = (3usize, 2usize);
        let k: Vec<f32> = (0..m * (c / group) * kh * kw).map(|v| ((v * 5) % 7) as f32 - 3.0).collect();
        let bias: Vec<f32> = (0..m).map(|v| v as f32 * 0.5).collect();
        let (mut want, oshape) = naive_conv(&x, (n, c, h, w), &k, (m, kh, kw), group, strides, dil, pads);
        let plane = oshape[2] * oshape[3];
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[(i / plane) % m];
        }
        let xt = f32s(&[n, c, h, w], &x);
        let what = format!("Conv group {group} strides {strides:?} dilations {dil:?} pads {pads:?}");
        let nd = node(
            "Conv",
            &["x", "k", "b"],
            &["y"],
            vec![
                Attr::Int("group", group as i64),
                Attr::Ints("strides", strides.iter().map(|&v| v as i64).collect()),
                Attr::Ints("dilations", dil.iter().map(|&v| v as i64).collect()),
                Attr::Ints("pads", pads.iter().map(|&v| v as i64).collect()),
                Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]),
            ],
        );
        results.push(check(
            &what,
            nd,
            &[("k", f32s(&[m, c / group, kh, kw], &k)), ("b", f32s(&[m], &bias))],
            &[("x", &xt)],
            &f32s(&oshape, &want),
            13,
        ));
    }
    all(results);
}

#[test]
fn einsum_and_matmul_variants() {
    let a = f32s(&[2, 2, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    let b = f32s(&[2, 3, 1], &[1., 0., -1., 2., 1., 0.]);
    all(vec![
        check(
            "Einsum batched",
            node("Einsum", &["a", "b"], &["y"], vec![Attr::Str("equation", "bij,bjk->bik")]),
            &[],
            &[("a", &a), ("b", &b)],
            &f32s(&[2, 2, 1], &[-2., -2., 22., 31.]),
            13,
        ),
        check(
            "MatMul broadcast 2-D × 3-D",
            node("MatMul", &["a", "b"], &["y"], vec![]),
            &[],
            &[("a", &f32s(&[1, 3], &[1., 2., 3.])), ("b", &b)],
            &f32s(&[2, 1, 1], &[-2., 4.]),
            13,
        ),
    ]);
}
