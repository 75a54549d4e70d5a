//! `verinfer node`: dev-only options are refused without `--dev` (flag or
//! TOML), and a malformed fault spec is named. Every invocation gets its
//! own datadir, an ephemeral RPC port and no metrics port, and is killed if
//! it starts serving instead of exiting (a refused option must not start a
//! node).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn node(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .arg("node")
        .arg("--datadir")
        .arg(dir.join("db"))
        .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "off"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VERINFER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verinfer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("`verinfer node {args:?}` kept running: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a non-zero exit, got {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn inject_fault_without_dev_is_refused_naming_dev() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(&node(dir.path(), &["--inject-fault", "every=2"]));
    assert!(err.contains("--dev") && err.contains("fault injection"), "{err}");
    assert!(!dir.path().join("db").exists(), "nothing was created");
}

#[test]
fn inject_fault_in_the_config_file_without_dev_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[dev]\ninject_fault = \"every=2\"\n").expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let err = refused(&node(dir.path(), &["--config", cfg]));
    assert!(err.contains("--dev") && err.contains("inject_fault"), "{err}");
}

#[test]
fn a_malformed_fault_spec_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(&node(dir.path(), &["--dev", "--inject-fault", "garbage"]));
    assert!(err.contains("garbage") && err.contains("key=value"), "{err}");
    let err = refused(&node(dir.path(), &["--dev", "--inject-fault", "every=2,node=4"]));
    assert!(err.contains("every=2,node=4") && err.contains("node, element and step"), "{err}");
}

#[test]
fn the_same_fault_spec_is_accepted_with_dev() {
    // The control: with --dev the options above are valid (checked without
    // starting a node).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = node(dir.path(), &["--dev", "--inject-fault", "every=2", "--print-config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(cfg.contains("inject_fault = \"every=2\""), "{cfg}");
}
