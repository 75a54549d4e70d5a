//! Child processes for tests that run the `verinfer` binary: killed and
//! reaped when dropped, their stdout readable line by line, their stderr in
//! a log file printed when a test fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL, by its pid) and reaped when dropped, so
/// that a failing assertion leaks no process; on a panic its stderr log is
/// printed.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    stdout: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `exe args…` with `RUST_LOG=info`, stderr to `log`, stdout
    /// drained into [`Proc::line`].
    pub fn spawn(exe: &Path, name: &str, args: &[String], log: &Path) -> Proc {
        let err = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn verinfer");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Drains stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { name: name.into(), child: Some(child), log: log.to_path_buf(), stdout: rx }
    }

    /// The first stdout line starting with `prefix`, without it.
    pub fn line(&self, prefix: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let left = limit.saturating_sub(t0.elapsed());
            match self.stdout.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(e) => panic!("{}: no stdout line {prefix:?} within {limit:?} ({e})", self.name),
            }
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- {} (last lines of {}) ----", self.name, self.log.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Proc {
    /// `exe node --dev --config DIR/node.toml --metrics-addr off EXTRA…`
    /// with `toml` written to `DIR/node.toml` and stderr to `DIR/node.log`;
    /// returns the process and its RPC URL once it serves (60 s at most).
    pub fn dev_node(exe: &Path, dir: &Path, toml: &str, extra: &[String]) -> (Proc, String) {
        let config = dir.join("node.toml");
        std::fs::write(&config, toml).expect("write the node's config");
        let mut args: Vec<String> = ["node", "--dev", "--config"].map(String::from).to_vec();
        args.push(config.display().to_string());
        args.extend(["--metrics-addr", "off"].map(String::from));
        args.extend_from_slice(extra);
        let node = Proc::spawn(exe, "node", &args, &dir.join("node.log"));
        let url = node.line("RPC (HTTP and WebSocket): ", Duration::from_secs(60));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        (node, url)
    }
}
