//! Frontend errors: every bad model is a precise error, never a panic.

use verinfer_prover::ProverError;
use verinfer_prover::frontend::{LoadOptions, load_model};
use verinfer_prover::onnx_builder::{Attr, Dim, OnnxBuilder};
use verinfer_state::tensor::{DType, Tensor};

fn opts(name: &str) -> LoadOptions {
    LoadOptions { name: name.into(), ..Default::default() }
}

fn relu_model(dims: &[Dim]) -> Vec<u8> {
    OnnxBuilder::new(17)
        .input("x", DType::F32, dims)
        .node("Relu", &["x"], &["y"], &[])
        .output("y", DType::F32, dims)
        .build()
}

#[test]
fn symbolic_input_without_shape_names_the_input() {
    let bytes = relu_model(&[Dim::Sym("batch".into()), Dim::Fixed(4)]);
    let err = load_model(&bytes, &opts("sym.onnx")).expect_err("symbolic");
    match &err {
        ProverError::SymbolicInput { input, model, .. } => {
            assert_eq!(input, "x");
            assert_eq!(model, "sym.onnx");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("--shape x="), "{err}");
    // With a shape it loads, and the shape is part of the program.
    let mut o = opts("sym.onnx");
    o.shapes = vec![("x".into(), vec![3, 4])];
    let m = load_model(&bytes, &o).expect("with shape");
    assert_eq!(m.program.inputs[0].shape, vec![3, 4]);
    o.shapes = vec![("x".into(), vec![2, 4])];
    let m2 = load_model(&bytes, &o).expect("other shape");
    assert_ne!(m.program_root, m2.program_root, "shapes are committed");
}

#[test]
fn unknown_input_name_lists_the_inputs() {
    let bytes = relu_model(&[Dim::Fixed(2)]);
    let mut o = opts("m");
    o.shapes = vec![("nope".into(), vec![2])];
    let err = load_model(&bytes, &o).expect_err("unknown");
    assert!(matches!(&err, ProverError::UnknownInput { input, known, .. } if input == "nope" && known == "x"), "{err}");
}

#[test]
fn unsupported_op_names_op_node_and_model() {
    // tract knows Sinh; the canonical op set does not define it.
    let bytes = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(3)])
        .node("Sinh", &["x"], &["y"], &[])
        .output("y", DType::F32, &[Dim::Fixed(3)])
        .build();
    let err = load_model(&bytes, &opts("sinh.onnx")).expect_err("unsupported");
    match &err {
        ProverError::UnsupportedOp { model, node, op } => {
            assert_eq!(model, "sinh.onnx");
            assert!(node.contains("sinh"), "{node}");
            assert!(op.contains("Sinh"), "{op}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn non_canonical_dtype_is_named() {
    let bytes = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(3)])
        .node("Cast", &["x"], &["y"], &[("to", Attr::Int(11))]) // DOUBLE
        .output("y", DType::F32, &[Dim::Fixed(3)])
        .build();
    let err = load_model(&bytes, &opts("f64.onnx")).expect_err("f64");
    assert!(matches!(err, ProverError::UnsupportedDType { .. } | ProverError::Frontend { .. }), "{err}");
}

#[test]
fn garbage_and_truncated_models_are_errors() {
    let good = relu_model(&[Dim::Fixed(2)]);
    assert!(load_model(&good, &opts("ok")).is_ok());
    for cut in [1, 7, good.len() / 2, good.len() - 1] {
        let r = load_model(&good[..cut], &opts("cut"));
        assert!(r.is_err(), "cut at {cut} loaded");
    }
    for junk in [&b""[..], b"\x00\x01\x02", b"not an onnx model at all"] {
        assert!(load_model(junk, &opts("junk")).is_err());
    }
    // A graph whose node reads a value nobody produces.
    let dangling = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(2)])
        .node("Add", &["x", "missing"], &["y"], &[])
        .output("y", DType::F32, &[Dim::Fixed(2)])
        .build();
    assert!(load_model(&dangling, &opts("dangling")).is_err());
}

#[test]
fn constant_inputs_are_frozen() {
    let bytes = OnnxBuilder::new(17)
        .input("x", DType::F32, &[Dim::Fixed(2), Dim::Fixed(3)])
        .input("axes", DType::I64, &[Dim::Fixed(1)])
        .node("ReduceSum", &["x", "axes"], &["y"], &[("keepdims", Attr::Int(1))])
        .output("y", DType::F32, &[Dim::Fixed(2), Dim::Fixed(1)])
        .build();
    let mut o = opts("reduce");
    o.constant_inputs =
        vec![("axes".into(), Tensor::new(vec![1], verinfer_state::TensorData::I64(vec![1])).expect("t"))];
    let m = load_model(&bytes, &o).expect("frozen axes");
    assert_eq!(m.program.inputs.len(), 1);
    let x = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("x");
    let ex = verinfer_prover::execute(&m.program, &[x]).expect("run");
    assert_eq!(ex.outputs[0].as_f32().expect("f32"), &[6.0, 15.0]);
}

#[test]
fn a_shape_of_the_wrong_rank_names_the_input_and_both_shapes() {
    let bytes = relu_model(&[Dim::Fixed(2), Dim::Sym("n".into())]);
    let mut o = opts("m");
    // Positional shapes are what `verinfer run` takes from its `.npy` files.
    o.positional_shapes = vec![vec![6]];
    let err = load_model(&bytes, &o).expect_err("rank");
    assert!(matches!(&err, ProverError::InputRank { input, rank: 1, .. } if input == "x"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "model m: input \"x\" is declared with shape [2, n], but the shape given has rank 1: [6]"
    );
}

#[test]
fn an_inconsistent_override_of_a_declared_dim_is_noted_in_the_error() {
    // Adding a [2, 3] weight pins the first dim, so overriding the input's
    // fails in tract's analysis; the error says which given shape caused it.
    let dims = [Dim::Fixed(2), Dim::Fixed(3)];
    let w = Tensor::from_f32(vec![2, 3], vec![1.0; 6]).unwrap();
    let bytes = OnnxBuilder::new(17)
        .input("x", DType::F32, &dims)
        .initializer("w", &w)
        .node("Add", &["x", "w"], &["y"], &[])
        .output("y", DType::F32, &dims)
        .build();
    let mut o = opts("m");
    o.shapes = vec![("x".into(), vec![4, 3])];
    let err = load_model(&bytes, &o).expect_err("override");
    assert!(err.to_string().ends_with("(note: input \"x\" is declared [2, 3] and was given [4, 3])"), "{err}");
}
