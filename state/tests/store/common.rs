//! Fixtures shared by the integration tests.

use verinfer_state::model::{ModelEntry, TensorSpec, model_id};
use verinfer_state::store::{RocksStore, SealParams, StoreOptions, Submission};
use verinfer_state::{DType, Hash32, Tensor};

pub const ONNX: &[u8] = b"integration-test model bytes";
pub const INPUT_LEN: usize = 64;

pub fn entry() -> ModelEntry {
    ModelEntry {
        model_id: model_id(ONNX),
        name: "it".into(),
        program_root: Hash32([0x42; 32]),
        inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![INPUT_LEN as u64] }],
        outputs: vec![TensorSpec { name: "y".into(), dtype: DType::F32, shape: vec![2] }],
        registered_at_ms: 0,
    }
}

pub fn submission(salt: u64, at_ms: u64) -> Submission {
    let x: Vec<f32> = (0..INPUT_LEN).map(|i| (salt as f32) * 0.5 + i as f32).collect();
    Submission {
        model_id: model_id(ONNX),
        inputs: vec![Tensor::from_f32(vec![INPUT_LEN], x).unwrap()],
        outputs: vec![Tensor::from_f32(vec![2], vec![salt as f32, 1.0]).unwrap()],
        accepted_at_ms: at_ms,
    }
}

pub fn params(ts: u64, max: u64) -> SealParams {
    SealParams { timestamp_ms: ts, sequencer: Hash32([0x5e; 32]), max_records: max }
}

pub fn open(dir: &std::path::Path) -> RocksStore {
    let s = RocksStore::open_path(dir, StoreOptions::default()).unwrap();
    s.register_model(&entry(), ONNX, b"program bytes").unwrap();
    s
}
