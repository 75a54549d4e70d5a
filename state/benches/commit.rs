//! Durable commit throughput of the RocksDB store.
//!
//! For batch sizes 1, 100 and 10,000 this accepts `size` requests (each one
//! unsynced write to the pending log, as the RPC acknowledges them), builds
//! the batch (`prepare_seal`: read the pending log, hash, build the tree and
//! every proof, encode) and commits it (`commit_seal`: one atomic
//! WriteBatch). It runs the identical workload twice, on two fresh stores:
//! once with the commit's WAL fsync (the production setting) and once
//! without, so the fsync's cost is the difference between two commits of the
//! same batch (the runs are deterministic and the header hashes are checked
//! to be equal).
//!
//! Each request has one f32[16] input and one f32[4] output. Run with
//! `cargo bench -p verinfer-state --features rocksdb --bench commit`; set
//! `VERINFER_BENCH_DIR` to put the databases on a specific disk (default:
//! the system temp directory, which must be a real disk for fsync to mean
//! anything).

use std::time::{Duration, Instant};

use verinfer_state::model::{ModelEntry, TensorSpec, model_id};
use verinfer_state::store::{RocksStore, SealParams, StoreOptions, Submission};
use verinfer_state::{DType, Hash32, Tensor};

const ONNX: &[u8] = b"bench model";

fn entry() -> ModelEntry {
    ModelEntry {
        model_id: model_id(ONNX),
        name: "bench".into(),
        program_root: Hash32([1; 32]),
        inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![16] }],
        outputs: vec![TensorSpec { name: "y".into(), dtype: DType::F32, shape: vec![4] }],
        registered_at_ms: 0,
    }
}

fn submission(i: u64) -> Submission {
    let x: Vec<f32> = (0..16).map(|k| (i * 16 + k) as f32).collect();
    Submission {
        model_id: model_id(ONNX),
        inputs: vec![Tensor::from_f32(vec![16], x).expect("shape")],
        outputs: vec![Tensor::from_f32(vec![4], vec![i as f32; 4]).expect("shape")],
        accepted_at_ms: i,
    }
}

#[derive(Default)]
struct Run {
    accept: Duration,
    prepare: Duration,
    commits: Vec<Duration>,
    bytes: usize,
    heads: Vec<Hash32>,
}

fn run(size: u64, batches: u64, warmup: u64, sync: bool, base: &std::path::Path) -> Run {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let store = RocksStore::open_path(dir.path(), StoreOptions { sync_seals: sync }).expect("open");
    store.register_model(&entry(), ONNX, b"program").expect("register");
    let mut out = Run::default();
    let mut seq = 0u64;
    for b in 0..warmup + batches {
        let subs: Vec<Submission> = (0..size).map(|k| submission(seq + k)).collect();
        seq += size;
        let t = Instant::now();
        for s in subs {
            store.accept(s).expect("accept");
        }
        let accept = t.elapsed();
        let params = SealParams { timestamp_ms: b, sequencer: Hash32([2; 32]), max_records: size };
        let t = Instant::now();
        let prepared = store.prepare_seal(&params).expect("prepare").expect("pending");
        let prepare = t.elapsed();
        let bytes = prepared.write_bytes();
        let t = Instant::now();
        let sealed = store.commit_seal(prepared).expect("commit");
        let commit = t.elapsed();
        if b >= warmup {
            out.accept += accept;
            out.prepare += prepare;
            out.commits.push(commit);
            out.bytes += bytes;
            out.heads.push(sealed.header.hash());
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let base = std::env::var_os("VERINFER_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    println!("store commit benchmark (RocksDB, dir {})", base.display());
    println!("each record: f32[16] input, f32[4] output; times per batch unless noted\n");
    println!(
        "| batch size | batches | accept µs/rec | prepare ms | commit unsynced ms (median / mean) | commit synced ms (median / mean) | fsync ms (median) | KiB written | rec/s sealed, synced | rec/s end-to-end, synced | rec/s end-to-end, unsynced |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (size, batches, warmup) in [(1u64, 400u64, 20u64), (100, 100, 5), (10_000, 6, 1)] {
        let synced = run(size, batches, warmup, true, &base);
        let unsynced = run(size, batches, warmup, false, &base);
        assert_eq!(synced.heads, unsynced.heads, "both runs must commit identical batches");
        let recs = (size * batches) as f64;
        let commit_s = mean(&synced.commits);
        let commit_u = mean(&unsynced.commits);
        let fsync = median(&synced.commits).saturating_sub(median(&unsynced.commits));
        let prepare = synced.prepare / batches as u32;
        let accept_per_rec = (synced.accept + unsynced.accept).as_secs_f64() / (2.0 * recs);
        let sealed_rps = size as f64 / (prepare + commit_s).as_secs_f64();
        let e2e = |r: &Run| recs / (r.accept + r.prepare + r.commits.iter().sum::<Duration>()).as_secs_f64();
        println!(
            "| {size} | {batches} | {:.1} | {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} | {:.1} | {:.0} | {:.0} | {:.0} |",
            accept_per_rec * 1e6,
            ms(prepare),
            ms(median(&unsynced.commits)),
            ms(commit_u),
            ms(median(&synced.commits)),
            ms(commit_s),
            ms(fsync),
            synced.bytes as f64 / batches as f64 / 1024.0,
            sealed_rps,
            e2e(&synced),
            e2e(&unsynced),
        );
    }
    println!("\nfsync = median synced commit − median unsynced commit of the same batch.");
    println!("rec/s sealed = records ÷ (prepare + synced commit); end-to-end adds the accepts.");
}
