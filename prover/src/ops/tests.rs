//! Cross-checks: every direct reference loop equals the per-element fold
//! evaluation bit for bit, on random shapes and on edge-case values; plus
//! edge cases of the fold definitions themselves.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_state::tensor::{DType, Scalar, Tensor, TensorData};

use super::*;
use crate::math::CANONICAL_NAN;
use crate::program::*;

/// Values that stress every definition: signed zeros, infinities, NaN with
/// odd payloads, denormals, extremes, and ordinary numbers.
const SPECIALS: [f32; 12] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MIN_POSITIVE,
    1e-45,
    -3e-39,
    f32::MAX,
    -f32::MAX,
    1.0,
    -2.5,
    0.1,
];

fn rand_f32(rng: &mut ChaCha8Rng, special_rate: f64) -> f32 {
    if rng.gen_bool(special_rate) {
        if rng.gen_bool(0.1) {
            // A NaN with a random payload and sign.
            return f32::from_bits(0x7f80_0001 | rng.gen_range(0..0x007f_ffffu32) | (rng.gen_range(0..2u32) << 31));
        }
        return SPECIALS[rng.gen_range(0..SPECIALS.len())];
    }
    rng.gen_range(-2.0f32..2.0)
}

fn rand_tensor(rng: &mut ChaCha8Rng, shape: &[u64], special_rate: f64) -> Tensor {
    let n: u64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rand_f32(rng, special_rate)).collect();
    Tensor::from_f32(shape.iter().map(|&d| d as usize).collect(), v).expect("shape")
}

fn bits(t: &Tensor) -> Vec<u64> {
    (0..t.len() as u64).map(|i| t.scalar(i).expect("in range").bits).collect()
}

/// Runs both implementations and demands identical bits.
fn cross_check(op: &Op, inputs: &[Tensor], out: &ValueType) -> Tensor {
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let types: Vec<ValueType> = inputs.iter().map(ValueType::of).collect();
    check_types(op, &types, out).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    let direct = exec_node(op, &refs, out).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    let f = fold_for(op, &types, out).expect("fold");
    let folded = eval_generic(f.as_ref(), &refs, out).expect("fold eval");
    assert_eq!(bits(&direct), bits(&folded), "{op:?} direct vs fold");
    for i in 0..direct.len() as u64 {
        let s = direct.scalar(i).expect("in range");
        if s.dtype == DType::F32 && s.f32().is_nan() {
            assert_eq!(s.bits, u64::from(CANONICAL_NAN.to_bits()), "{op:?}: non-canonical NaN");
        }
    }
    direct
}

fn vt(dtype: DType, shape: &[u64]) -> ValueType {
    ValueType { dtype, shape: shape.to_vec() }
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_f32().expect("f32").to_vec()
}

fn cases() -> usize {
    std::env::var("VERINFER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

#[test]
fn einsum_matches_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in 0..cases() {
        let (m, k, n, b) =
            (rng.gen_range(1..5u64), rng.gen_range(0..9u64), rng.gen_range(1..5u64), rng.gen_range(1..3u64));
        // bmk,bkn->bmn with b possibly broadcast in one input.
        let b_a = if rng.gen_bool(0.3) { 1 } else { b };
        let ax = |a, bb, out, dim| EinAxis { a, b: bb, out, dim };
        let spec = EinSumSpec {
            free: vec![ax(Some(0), Some(0), Some(0), b), ax(Some(1), None, Some(1), m), ax(None, Some(2), Some(2), n)],
            contracted: vec![ax(Some(2), Some(1), None, k)],
        };
        let a = rand_tensor(&mut rng, &[b_a, m, k], if case % 3 == 0 { 0.3 } else { 0.0 });
        let bt = rand_tensor(&mut rng, &[b, k, n], 0.05);
        let out = cross_check(&Op::EinSum(spec), &[a, bt], &vt(DType::F32, &[b, m, n]));
        if k == 0 {
            assert!(f32s(&out).iter().all(|v| v.to_bits() == (-0.0f32).to_bits()), "empty sum is -0");
        }
    }
}

#[test]
fn einsum_two_contracted_axes_order_is_row_major() {
    // mbak,nbak->n (lenet's flatten + linear): contracted m, b, a, k in
    // input-0 order equals a dot product over the flattened input.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = rand_tensor(&mut rng, &[1, 3, 2, 2], 0.0);
    let w = rand_tensor(&mut rng, &[4, 3, 2, 2], 0.0);
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let spec = EinSumSpec {
        free: vec![ax(None, Some(0), Some(0), 4)],
        contracted: vec![
            ax(Some(0), None, None, 1),
            ax(Some(1), Some(1), None, 3),
            ax(Some(2), Some(2), None, 2),
            ax(Some(3), Some(3), None, 2),
        ],
    };
    let out = cross_check(&Op::EinSum(spec), &[x.clone(), w.clone()], &vt(DType::F32, &[4]));
    let (xv, wv) = (f32s(&x), f32s(&w));
    for o in 0..4 {
        let mut acc = -0.0f32;
        for i in 0..12 {
            acc = xv[i].mul_add(wv[o * 12 + i], acc);
        }
        assert_eq!(f32s(&out)[o].to_bits(), acc.to_bits());
    }
}

fn rand_conv(rng: &mut ChaCha8Rng, special: f64) -> (ConvSpec, Vec<Tensor>, ValueType) {
    let sr = rng.gen_range(1..3usize);
    let layout = [DataLayout::Nchw, DataLayout::Nhwc, DataLayout::Chw, DataLayout::Hwc][rng.gen_range(0..4)];
    let group = rng.gen_range(1..4u64);
    let ci = group * rng.gen_range(1..3u64);
    let co = group * rng.gen_range(1..3u64);
    let kernel: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..4)).collect();
    let strides: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..3)).collect();
    let dilations: Vec<u64> = (0..sr).map(|_| rng.gen_range(1..3)).collect();
    let pad_before: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..3)).collect();
    let pad_after: Vec<u64> = (0..sr).map(|_| rng.gen_range(0..3)).collect();
    let spatial: Vec<u64> = (0..sr).map(|i| rng.gen_range(((kernel[i] - 1) * dilations[i] + 1)..9)).collect();
    let out_sp: Vec<u64> = (0..sr)
        .map(|i| (spatial[i] + pad_before[i] + pad_after[i] - ((kernel[i] - 1) * dilations[i] + 1)) / strides[i] + 1)
        .collect();
    let shape_of = |c: u64, sp: &[u64]| -> Vec<u64> {
        let mut s = Vec::new();
        if layout.has_n() {
            s.push(1 + (sp.len() as u64 % 2));
        }
        if layout.channels_last() {
            s.extend_from_slice(sp);
            s.push(c);
        } else {
            s.push(c);
            s.extend_from_slice(sp);
        }
        s
    };
    let kernel_layout = [KernelLayout::Oihw, KernelLayout::Hwio, KernelLayout::Ohwi][rng.gen_range(0..3)];
    let kshape: Vec<u64> = match kernel_layout {
        KernelLayout::Oihw => [vec![co, ci / group], kernel.clone()].concat(),
        KernelLayout::Hwio => [kernel.clone(), vec![ci / group, co]].concat(),
        KernelLayout::Ohwi => [vec![co], kernel.clone(), vec![ci / group]].concat(),
    };
    let bias = rng.gen_bool(0.5);
    let mut inputs = vec![rand_tensor(rng, &shape_of(ci, &spatial), special), rand_tensor(rng, &kshape, special / 4.0)];
    if bias {
        let bl = if rng.gen_bool(0.2) { 1 } else { co };
        inputs.push(rand_tensor(rng, &[bl], special));
    }
    let spec = ConvSpec {
        geo: Geometry { layout, kernel, strides, dilations, pad_before, pad_after },
        kernel_layout,
        group,
        bias,
    };
    let out = vt(DType::F32, &shape_of(co, &out_sp));
    (spec, inputs, out)
}

#[test]
fn conv_matches_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for case in 0..cases() {
        let (spec, inputs, out) = rand_conv(&mut rng, if case % 4 == 0 { 0.2 } else { 0.0 });
        cross_check(&Op::Conv(spec), &inputs, &out);
    }
}

#[test]
fn conv_zero_padding_multiplies_by_zero() {
    // One padded tap with an infinite weight: 0·∞ = NaN, per ONNX zero padding.
    let spec = ConvSpec {
        geo: Geometry {
            layout: DataLayout::Chw,
            kernel: vec![2],
            strides: vec![1],
            dilations: vec![1],
            pad_before: vec![1],
            pad_after: vec![0],
        },
        kernel_layout: KernelLayout::Oihw,
        group: 1,
        bias: false,
    };
    let x = Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).expect("x");
    let w = Tensor::from_f32(vec![1, 1, 2], vec![f32::INFINITY, 3.0]).expect("w");
    let out = cross_check(&Op::Conv(spec), &[x, w], &vt(DType::F32, &[1, 2]));
    let v = f32s(&out);
    assert_eq!(v[0].to_bits(), CANONICAL_NAN.to_bits());
    assert_eq!(v[1], f32::INFINITY);
}

#[test]
fn pools_match_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for case in 0..cases() {
        let (cspec, inputs, _) = rand_conv(&mut rng, if case % 3 == 0 { 0.2 } else { 0.0 });
        let geo = cspec.geo;
        let x = inputs[0].clone();
        let c_axis = if geo.layout.channels_last() { x.shape().len() - 1 } else { usize::from(geo.layout.has_n()) };
        let mut out_shape = x.shape_u64();
        let sp_axes: Vec<usize> =
            (0..x.shape().len()).filter(|&a| a != c_axis && !(geo.layout.has_n() && a == 0)).collect();
        for (i, &a) in sp_axes.iter().enumerate() {
            out_shape[a] = (x.shape_u64()[a] + geo.pad_before[i] + geo.pad_after[i]
                - ((geo.kernel[i] - 1) * geo.dilations[i] + 1))
                / geo.strides[i]
                + 1;
        }
        let out = vt(DType::F32, &out_shape);
        cross_check(
            &Op::MaxPool(PoolSpec { geo: geo.clone(), normalize: false, count_include_pad: false }),
            std::slice::from_ref(&x),
            &out,
        );
        for (normalize, cip) in [(true, false), (true, true), (false, false)] {
            cross_check(
                &Op::SumPool(PoolSpec { geo: geo.clone(), normalize, count_include_pad: cip }),
                std::slice::from_ref(&x),
                &out,
            );
        }
    }
}

#[test]
fn average_pool_counts() {
    // 1-D, kernel 3, pad 1 each side, input [1, 2, 3].
    let geo = Geometry {
        layout: DataLayout::Chw,
        kernel: vec![3],
        strides: vec![1],
        dilations: vec![1],
        pad_before: vec![1],
        pad_after: vec![1],
    };
    let x = Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).expect("x");
    let out = vt(DType::F32, &[1, 3]);
    let excl = cross_check(
        &Op::SumPool(PoolSpec { geo: geo.clone(), normalize: true, count_include_pad: false }),
        std::slice::from_ref(&x),
        &out,
    );
    assert_eq!(f32s(&excl), vec![1.5, 2.0, 2.5]);
    let incl = cross_check(
        &Op::SumPool(PoolSpec { geo: geo.clone(), normalize: true, count_include_pad: true }),
        std::slice::from_ref(&x),
        &out,
    );
    assert_eq!(f32s(&incl), vec![1.0, 2.0, 5.0 / 3.0]);
    let max = cross_check(&Op::MaxPool(PoolSpec { geo, normalize: false, count_include_pad: false }), &[x], &out);
    assert_eq!(f32s(&max), vec![2.0, 3.0, 3.0]);
}

#[test]
fn binary_broadcasting_matches_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Rem,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];
    for case in 0..cases() {
        let r = rng.gen_range(0..4usize);
        let out_shape: Vec<u64> = (0..r).map(|_| rng.gen_range(1..4)).collect();
        let sub = |rng: &mut ChaCha8Rng| -> Vec<u64> {
            let skip = rng.gen_range(0..=r);
            out_shape[skip..].iter().map(|&d| if rng.gen_bool(0.3) { 1 } else { d }).collect()
        };
        let (sa, sb) = (sub(&mut rng), sub(&mut rng));
        let full = layout::broadcast_shapes(&sa, &sb).expect("compatible");
        let a = rand_tensor(&mut rng, &sa, 0.2);
        let b = rand_tensor(&mut rng, &sb, 0.2);
        let op = ops[case % ops.len()];
        let dt = if op.is_comparison() { DType::Bool } else { DType::F32 };
        cross_check(&Op::Binary(op), &[a, b], &vt(dt, &full));
    }
}

#[test]
fn unary_ops_match_fold_on_specials() {
    let x = Tensor::from_f32(
        vec![SPECIALS.len() + 2],
        SPECIALS.iter().copied().chain([f32::NAN, f32::from_bits(0xffc0_0abc)]).collect(),
    )
    .expect("x");
    let ops: Vec<UnaryOp> = UnaryOp::F32_PLAIN
        .into_iter()
        .chain([
            UnaryOp::PowConst(F32Bits::new(3.0)),
            UnaryOp::LeakyRelu(F32Bits::new(0.01)),
            UnaryOp::HardSwish,
            UnaryOp::HardSigmoid { alpha: F32Bits::new(0.2), beta: F32Bits::new(0.5) },
        ])
        .collect();
    for op in ops {
        cross_check(&Op::Unary(op), std::slice::from_ref(&x), &vt(DType::F32, &x.shape_u64()));
    }
}

#[test]
fn reductions_match_fold_including_empty_axes() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let reducers = [
        Reducer::Sum,
        Reducer::Prod,
        Reducer::Max,
        Reducer::Min,
        Reducer::MeanOfSquares,
        Reducer::ArgMax { last: false },
        Reducer::ArgMax { last: true },
        Reducer::ArgMin { last: false },
    ];
    for case in 0..cases() {
        let r = rng.gen_range(1..4usize);
        let shape: Vec<u64> = (0..r).map(|_| rng.gen_range(if case % 7 == 0 { 0 } else { 1 }..4)).collect();
        let mut axes: Vec<u32> = (0..r as u32).filter(|_| rng.gen_bool(0.5)).collect();
        if axes.is_empty() {
            axes.push(0);
        }
        let mut out_shape = shape.clone();
        for &a in &axes {
            out_shape[a as usize] = 1;
        }
        let x = rand_tensor(&mut rng, &shape, 0.15);
        let reducer = reducers[case % reducers.len()];
        let dt =
            if matches!(reducer, Reducer::ArgMax { .. } | Reducer::ArgMin { .. }) { DType::I64 } else { DType::F32 };
        cross_check(&Op::Reduce { reducer, axes: axes.clone() }, std::slice::from_ref(&x), &vt(dt, &out_shape));
        if shape.iter().all(|&d| d > 0) {
            cross_check(
                &Op::Softmax { axes: axes.clone(), log: case % 2 == 0 },
                std::slice::from_ref(&x),
                &vt(DType::F32, &shape),
            );
            cross_check(&Op::RmsNorm { axis: axes[0], eps: F32Bits::new(1e-5) }, &[x], &vt(DType::F32, &shape));
        }
    }
}

#[test]
fn empty_reductions_give_identities() {
    let x = Tensor::from_f32(vec![2, 0], vec![]).expect("x");
    let out = vt(DType::F32, &[2, 1]);
    let sum = cross_check(&Op::Reduce { reducer: Reducer::Sum, axes: vec![1] }, std::slice::from_ref(&x), &out);
    assert!(f32s(&sum).iter().all(|v| v.to_bits() == (-0.0f32).to_bits()));
    let max = cross_check(&Op::Reduce { reducer: Reducer::Max, axes: vec![1] }, std::slice::from_ref(&x), &out);
    assert!(f32s(&max).iter().all(|&v| v == f32::NEG_INFINITY));
    let prod = cross_check(&Op::Reduce { reducer: Reducer::Prod, axes: vec![1] }, std::slice::from_ref(&x), &out);
    assert!(f32s(&prod).iter().all(|&v| v == 1.0));
    let ms = cross_check(&Op::Reduce { reducer: Reducer::MeanOfSquares, axes: vec![1] }, &[x], &out);
    assert!(f32s(&ms).iter().all(|v| v.to_bits() == CANONICAL_NAN.to_bits()), "0/0 is NaN");
}

#[test]
fn reduction_edge_values() {
    let out = vt(DType::F32, &[1]);
    let t = |v: Vec<f32>| Tensor::from_f32(vec![v.len()], v).expect("t");
    let sum = |v| f32s(&cross_check(&Op::Reduce { reducer: Reducer::Sum, axes: vec![0] }, &[t(v)], &out))[0];
    assert_eq!(sum(vec![-0.0]).to_bits(), (-0.0f32).to_bits(), "one-term sum is the term");
    assert_eq!(sum(vec![-0.0, 0.0]).to_bits(), 0);
    assert_eq!(sum(vec![f32::INFINITY, f32::NEG_INFINITY]).to_bits(), CANONICAL_NAN.to_bits());
    assert_eq!(sum(vec![1e-45, 1e-45]).to_bits(), 2, "denormals are not flushed");
    // Sequential order is observable: (1e8 + 1) - 1e8 = 0 in f32, 1e8 - 1e8 + 1 = 1.
    assert_eq!(sum(vec![1e8, 1.0, -1e8]), 0.0);
    assert_eq!(sum(vec![1e8, -1e8, 1.0]), 1.0);
    let max = |v| f32s(&cross_check(&Op::Reduce { reducer: Reducer::Max, axes: vec![0] }, &[t(v)], &out))[0];
    assert_eq!(max(vec![1.0, f32::NAN, 2.0]).to_bits(), CANONICAL_NAN.to_bits());
    assert_eq!(max(vec![-0.0, 0.0]).to_bits(), 0);
    let amax = |v| {
        cross_check(
            &Op::Reduce { reducer: Reducer::ArgMax { last: false }, axes: vec![0] },
            &[t(v)],
            &vt(DType::I64, &[1]),
        )
        .scalar(0)
        .expect("s")
        .as_i64()
    };
    assert_eq!(amax(vec![1.0, 3.0, 3.0]), 1);
    assert_eq!(amax(vec![1.0, f32::NAN, 5.0, f32::NAN]), 1, "first NaN wins");
}

#[test]
fn softmax_edge_values() {
    let t = |v: Vec<f32>| Tensor::from_f32(vec![v.len()], v).expect("t");
    let sm = |v: Vec<f32>| {
        f32s(&cross_check(
            &Op::Softmax { axes: vec![0], log: false },
            &[t(v.clone())],
            &vt(DType::F32, &[v.len() as u64]),
        ))
    };
    let r = sm(vec![0.0, f32::NEG_INFINITY]);
    assert_eq!(r, vec![1.0, 0.0]);
    let r = sm(vec![1000.0, 1000.0]);
    assert_eq!(r, vec![0.5, 0.5], "max subtraction prevents overflow");
    let r = sm(vec![f32::NEG_INFINITY, f32::NEG_INFINITY]);
    assert!(r.iter().all(|v| v.to_bits() == CANONICAL_NAN.to_bits()), "all −∞ is NaN");
    let r = sm(vec![1.0, f32::NAN]);
    assert!(r.iter().all(|v| v.to_bits() == CANONICAL_NAN.to_bits()));
}

#[test]
fn movement_ops_match_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = rand_tensor(&mut rng, &[2, 3, 4], 0.1);
    let f = |s: &[u64]| vt(DType::F32, s);
    cross_check(&Op::Transpose { perm: vec![2, 0, 1] }, std::slice::from_ref(&x), &f(&[4, 2, 3]));
    cross_check(&Op::Reshape, std::slice::from_ref(&x), &f(&[6, 4]));
    cross_check(&Op::Tile { multiples: vec![1, 2, 1] }, std::slice::from_ref(&x), &f(&[2, 6, 4]));
    cross_check(&Op::Slice { axis: 2, start: 1, end: 3 }, std::slice::from_ref(&x), &f(&[2, 3, 2]));
    cross_check(&Op::Downsample { axis: 2, stride: 2, start: 1 }, std::slice::from_ref(&x), &f(&[2, 3, 2]));
    cross_check(&Op::Downsample { axis: 1, stride: -1, start: 2 }, std::slice::from_ref(&x), &f(&[2, 3, 4]));
    cross_check(&Op::Concat { axis: 1 }, &[x.clone(), rand_tensor(&mut rng, &[2, 1, 4], 0.0)], &f(&[2, 4, 4]));
    for mode in [PadMode::Constant(u64::from(7.5f32.to_bits())), PadMode::Reflect, PadMode::Edge] {
        let out = cross_check(
            &Op::Pad { pads: vec![(0, 0), (1, 2), (2, 1)], mode },
            std::slice::from_ref(&x),
            &f(&[2, 6, 7]),
        );
        if let PadMode::Constant(_) = mode {
            assert_eq!(f32s(&out)[0], 7.5);
        }
    }
    let b = rand_tensor(&mut rng, &[3, 1], 0.0);
    cross_check(&Op::Broadcast, &[b], &f(&[2, 3, 4]));
    let idx = Tensor::new(vec![2, 2], TensorData::I64(vec![0, -1, 2, 1])).expect("idx");
    cross_check(&Op::Gather { axis: 1 }, &[x.clone(), idx], &f(&[2, 2, 2, 4]));
    let idx = Tensor::new(vec![2, 3, 1], TensorData::I64(vec![0, 3, -1, 2, 1, 0])).expect("idx");
    cross_check(&Op::GatherElements { axis: 2 }, &[x.clone(), idx], &f(&[2, 3, 1]));
    let idx = Tensor::new(vec![2, 2], TensorData::I64(vec![1, 2, 0, 0])).expect("idx");
    cross_check(&Op::GatherNd { batch_dims: 0 }, &[x.clone(), idx], &f(&[2, 4]));
}

#[test]
fn gather_out_of_range_is_an_error_not_a_panic() {
    let x = Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).expect("x");
    let idx = Tensor::new(vec![1], TensorData::I64(vec![3])).expect("idx");
    let err = exec_node(&Op::Gather { axis: 0 }, &[&x, &idx], &vt(DType::F32, &[1])).expect_err("out of range");
    assert!(err.to_string().contains("out of range"), "{err}");
    let idx = Tensor::new(vec![1], TensorData::I64(vec![-4])).expect("idx");
    assert!(exec_node(&Op::Gather { axis: 0 }, &[&x, &idx], &vt(DType::F32, &[1])).is_err());
}

#[test]
fn where_and_cast_match_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let c = Tensor::new(vec![3, 1], TensorData::Bool(vec![true, false, true])).expect("c");
    let a = rand_tensor(&mut rng, &[1, 4], 0.3);
    let b = rand_tensor(&mut rng, &[3, 4], 0.3);
    cross_check(&Op::Where, &[c, a, b.clone()], &vt(DType::F32, &[3, 4]));
    for to in DType::ALL {
        cross_check(&Op::Cast, std::slice::from_ref(&b), &vt(to, &[3, 4]));
    }
    let ints = Tensor::new(vec![4], TensorData::I64(vec![i64::MIN, -1, 300, 1 << 40])).expect("ints");
    for to in DType::ALL {
        cross_check(&Op::Cast, std::slice::from_ref(&ints), &vt(to, &[4]));
    }
}

#[test]
fn integer_binary_ops_match_fold() {
    let a = Tensor::new(vec![5], TensorData::I32(vec![i32::MIN, -7, 0, 7, i32::MAX])).expect("a");
    let b = Tensor::new(vec![5], TensorData::I32(vec![-1, 2, 0, -3, 1])).expect("b");
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem, BinaryOp::Min, BinaryOp::Max]
    {
        cross_check(&Op::Binary(op), &[a.clone(), b.clone()], &vt(DType::I32, &[5]));
    }
    let out = cross_check(&Op::Binary(BinaryOp::Div), &[a, b], &vt(DType::I32, &[5]));
    assert_eq!(out.scalar(0).expect("s").as_i64(), i64::from(i32::MIN), "MIN / -1 wraps");
    assert_eq!(out.scalar(2).expect("s").as_i64(), 0, "x / 0 = 0");
}

#[test]
fn fold_api_exposes_steps_operands_and_states() {
    // 2×3 · 3×2 matmul: K = 3 steps, step t reads a[i, t] and b[t, j].
    let a = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("a");
    let b = Tensor::from_f32(vec![3, 2], vec![1.0, 0.5, -1.0, 2.0, 0.25, 1.0]).expect("b");
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let spec = EinSumSpec {
        free: vec![ax(Some(0), None, Some(0), 2), ax(None, Some(1), Some(1), 2)],
        contracted: vec![ax(Some(1), Some(0), None, 3)],
    };
    let types = [ValueType::of(&a), ValueType::of(&b)];
    let f = fold_for(&Op::EinSum(spec), &types, &vt(DType::F32, &[2, 2])).expect("fold");
    let e = 3; // element (1, 1)
    assert_eq!(f.steps(e), 3);
    let refs = [&a, &b];
    let mut rd = TensorReader { inputs: &refs };
    let states = fold_states(f.as_ref(), e, &mut rd).expect("states");
    assert_eq!(states.len(), 4);
    assert_eq!(states[0].f0().to_bits(), (-0.0f32).to_bits());
    for t in 0..3u64 {
        let ops = step_operands(f.as_ref(), e, t, states[t as usize], &mut rd).expect("operands");
        assert_eq!(ops.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(0, 3 + t), (1, t * 2 + 1)]);
        let next = f.step(e, t, states[t as usize], &mut rd).expect("step");
        assert_eq!(next, states[t as usize + 1]);
    }
    let v = f.finish(e, states[3]);
    assert_eq!(v, Scalar::from_f32(4.0f32.mul_add(0.5, 5.0f32.mul_add(2.0, 6.0 * 1.0))));
}

/// Folds are built from types alone, and the referee builds one from a
/// node descriptor the other party chose: absurd types are errors, never an
/// allocation sized by a dim, an overflow or an out-of-range index.
#[test]
fn folds_from_hostile_types_fail_cleanly() {
    let f = |s: &[u64]| vt(DType::F32, s);
    let invalid = |r: Result<Box<dyn ElementFold>, ProverError>| matches!(r, Err(ProverError::InvalidProgram { .. }));
    let sum0 = Op::Reduce { reducer: Reducer::Sum, axes: vec![0] };
    // 2^40 elements in: rejected before any offset is computed (this asked
    // for an 8 TiB table before inputs were checked).
    assert!(invalid(fold_for(&sum0, &[f(&[1 << 40])], &f(&[1]))));
    assert!(invalid(fold_for(&Op::Softmax { axes: vec![0], log: false }, &[f(&[1 << 40])], &f(&[1 << 40]))));
    // Empty, but with strides of 2^80.
    assert!(invalid(fold_for(&sum0, &[f(&[0, 1 << 40, 1 << 40])], &f(&[1, 1 << 40, 1 << 40]))));
    // The largest legal group builds at once: its offsets are not tabulated.
    let fold = fold_for(&sum0, &[f(&[1 << 32])], &f(&[1])).unwrap();
    assert_eq!(fold.steps(0), 1 << 32);
    let sm = fold_for(&Op::Softmax { axes: vec![1], log: false }, &[f(&[1, 1 << 32])], &f(&[1, 1 << 32])).unwrap();
    assert_eq!(sm.steps(5), 2 * (1 << 32) + 1);
    // Attribute arithmetic that would overflow.
    assert!(invalid(fold_for(&Op::Tile { multiples: vec![u64::MAX] }, &[f(&[2])], &f(&[2]))));
    let pad = Op::Pad { pads: vec![(u64::MAX, 3)], mode: PadMode::Constant(0) };
    assert!(invalid(fold_for(&pad, &[f(&[2])], &f(&[4]))));
    let down = Op::Downsample { axis: 0, stride: i64::MAX, start: 1 };
    assert!(invalid(fold_for(&down, &[f(&[4])], &f(&[3]))));
    let gnd = Op::GatherNd { batch_dims: 0 };
    assert!(invalid(fold_for(&gnd, &[f(&[4]), vt(DType::I64, &[u64::MAX])], &f(&[]))));
    assert!(invalid(fold_for(&gnd, &[f(&[4, 4]), vt(DType::I64, &[1])], &f(&[]))));
    // An EinSum axis position past the input's rank.
    let ax = |a, b, out, dim| EinAxis { a, b, out, dim };
    let spec = EinSumSpec { free: vec![ax(Some(7), None, Some(0), 2)], contracted: vec![] };
    assert!(fold_for(&Op::EinSum(spec), &[f(&[2]), f(&[2])], &f(&[2])).is_err());
}

/// Groups larger than the offset table compute their offsets per step, and
/// still agree with the direct reduction bit for bit.
#[test]
fn reductions_over_untabulated_groups_match_the_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    // Group of 3 * 25_000 = 75_000 > OFFSET_TABLE_MAX positions over axes 0 and 2.
    let x = rand_tensor(&mut rng, &[3, 2, 25_000], 0.01);
    const { assert!(3 * 25_000 > reduce::OFFSET_TABLE_MAX) };
    cross_check(
        &Op::Reduce { reducer: Reducer::Sum, axes: vec![0, 2] },
        std::slice::from_ref(&x),
        &vt(DType::F32, &[1, 2, 1]),
    );
    cross_check(
        &Op::Reduce { reducer: Reducer::Max, axes: vec![0, 2] },
        std::slice::from_ref(&x),
        &vt(DType::F32, &[1, 2, 1]),
    );
}
