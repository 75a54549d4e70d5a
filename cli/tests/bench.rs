//! `verinfer bench`: JSON shape, forced kernel families, bad `VERINFER_ISA`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench(isa: Option<&str>, extra: &[&str]) -> std::process::Output {
    let dir = root().join("fixtures/models/mlp");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verinfer"));
    cmd.arg("bench").arg(dir.join("model.onnx")).arg("--input").arg(dir.join("input_0.npy"));
    cmd.args(["--iters", "3", "--json"]).args(extra);
    cmd.env_remove("VERINFER_ISA");
    if let Some(i) = isa {
        cmd.env("VERINFER_ISA", i);
    }
    cmd.output().expect("spawn verinfer")
}

#[test]
fn bench_prints_timing_json_for_every_family() {
    for isa in [None, Some("scalar"), Some("avx2"), Some("avx512")] {
        let out = bench(isa, &[]);
        if !out.status.success() {
            // A family this CPU lacks must be refused, not silently replaced.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(isa.is_some() && err.contains("does not support"), "{isa:?}: {err}");
            continue;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        for key in ["median_ms", "min_ms", "max_ms"] {
            assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{isa:?}: {key} in {v}");
        }
        assert_eq!(v["iters"], 3, "{v}");
        let (min, med, max) = (
            v["min_ms"].as_f64().unwrap_or(0.0),
            v["median_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
        );
        assert!(min <= med && med <= max, "{v}");
    }
}

#[test]
fn bench_rejects_an_unknown_family() {
    let out = bench(Some("neon-please"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("VERINFER_ISA"));
}

#[test]
fn bench_times_other_engines() {
    for engine in ["reference", "fast-traced", "fast-roots"] {
        let out = bench(None, &["--engine", engine]);
        assert!(out.status.success(), "{engine}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(v["median_ms"].as_f64().is_some(), "{engine}: {v}");
    }
}

#[test]
fn bench_names_the_input_when_a_file_has_the_wrong_rank() {
    let dir = root().join("fixtures/models");
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("bench")
        .arg(dir.join("lenet5/model.onnx"))
        .arg("--input")
        .arg(dir.join("mlp/input_0.npy"))
        .output()
        .expect("spawn verinfer");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("input \"input\" is declared with shape [1, 1, 28, 28], but the shape given has rank 2: [1, 784]"),
        "{err}"
    );
}

#[test]
fn compare_refuses_an_empty_models_dir_and_a_model_argument() {
    let empty = std::env::temp_dir().join(format!("verinfer-bench-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("mkdir");
    let run =
        |args: &[&std::ffi::OsStr]| Command::new(env!("CARGO_BIN_EXE_verinfer")).args(args).output().expect("spawn");
    let out = run(&["bench".as_ref(), "--compare".as_ref(), "--models".as_ref(), empty.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model directories"), "{out:?}");
    // A directory given as MODEL used to be ignored in favour of the default.
    let out = run(&["bench".as_ref(), "--compare".as_ref(), empty.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"), "{out:?}");
    let _ = std::fs::remove_dir_all(&empty);
}
