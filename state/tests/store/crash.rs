//! Crash recovery: a writer child is killed with SIGKILL at random moments.
//!
//! The parent re-executes this test binary with [`CHILD_DIR`] set, running
//! only [`crash_child_writer`]. The child opens the store (recovering from
//! the previous kill), prints `READY`, then accepts requests and seals
//! batches in a loop, printing an `ACK` line for each only after the store
//! call returned, exactly as the RPC would acknowledge. The parent kills it
//! a random time after `READY`, reopens the store, and checks:
//!
//! * no partial batch and an intact header chain: `fsck` recomputes every
//!   body's roots against its header, walks the parent links, and checks
//!   that batched and pending records are disjoint and contiguous;
//! * every acknowledged request is present with the sequence it was
//!   acknowledged with, and every acknowledged batch has the acknowledged
//!   header hash;
//! * at the end, everything pending is sealed and every acknowledged request
//!   is in a batch, unchanged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_state::Hash32;

use crate::common::{open, params, submission};

const CHILD_DIR: &str = "VERINFER_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "VERINFER_CRASH_CHILD_SEED";
const ROUNDS: usize = 24;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The writer. A no-op unless the parent set [`CHILD_DIR`].
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let seed: u64 = std::env::var(CHILD_SEED).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = open(Path::new(&dir));
    // The leading newline ends libtest's "test … " prefix, which it prints
    // without a newline before running a test.
    println!("\nREADY {} {}", s.next_sequence(), s.pending_count());
    // Bounded so a child the parent failed to kill cannot run forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut salt = seed << 32;
    while Instant::now() < deadline {
        for _ in 0..rng.gen_range(1..=60) {
            salt += 1;
            let r = s.accept(submission(salt, now_ms())).unwrap();
            println!("ACK R {} {}", r.request_id.to_hex(), r.sequence);
        }
        if rng.gen_bool(0.5) {
            let ts = now_ms().max(s.head().map_or(0, |h| h.timestamp_ms));
            let max = rng.gen_range(1..=400);
            println!("SEAL {max}");
            if let Some(b) = s.seal(&params(ts, max)).unwrap() {
                println!("ACK B {} {} {}", b.header.number, b.header.hash().to_hex(), b.header.record_count);
            }
        }
    }
}

#[derive(Default)]
struct Acks {
    requests: HashMap<Hash32, u64>,
    batches: HashMap<u64, Hash32>,
}

#[test]
fn crash_recovery_under_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0xc0ffee);
    let mut acks = Acks::default();
    let mut killed_mid_seal = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill at a random moment after the store is open, so the kill lands
        // in the write loop rather than in process start-up.
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l.starts_with("READY") => break,
                Ok(_) => {}
                Err(e) => panic!("round {round}: child never got ready: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(2..120)));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: child exited by itself");
        reader.join().unwrap();

        let mut last_line = String::new();
        for line in rx.try_iter() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["ACK", "R", id, seq] => {
                    acks.requests.insert(Hash32::from_hex(id).unwrap(), seq.parse().unwrap());
                }
                ["ACK", "B", n, h, _] => {
                    acks.batches.insert(n.parse().unwrap(), Hash32::from_hex(h).unwrap());
                }
                _ => {}
            }
            last_line = line;
        }
        if last_line.starts_with("SEAL") {
            killed_mid_seal += 1;
        }

        let s = open(dir.path());
        let summary = s.fsck().unwrap_or_else(|e| panic!("round {round}: {e}"));
        check_acks(&s, &acks, round);
        assert_eq!(summary.batches as usize, s.headers(.., false).unwrap().count());
    }

    // Finally seal everything: every acknowledged request ends up batched
    // with the record it was acknowledged with.
    let s = open(dir.path());
    while s.seal(&params(now_ms(), 10_000)).unwrap().is_some() {}
    let summary = s.fsck().unwrap();
    assert_eq!(summary.pending, 0);
    check_acks(&s, &acks, ROUNDS);
    for id in acks.requests.keys() {
        let rc = s.receipt(id).unwrap().unwrap();
        assert!(rc.inclusion.is_some(), "request {id} not batched");
    }
    assert!(acks.requests.len() > 100, "too little work: {} requests", acks.requests.len());
    assert!(!acks.batches.is_empty());
    eprintln!(
        "crash test: {ROUNDS} kills ({killed_mid_seal} during a seal), {} acknowledged requests, \
         {} acknowledged batches, final chain {} batches / {} records, {:.1}s",
        acks.requests.len(),
        acks.batches.len(),
        summary.batches,
        summary.batched_records,
        started.elapsed().as_secs_f64()
    );
}

fn check_acks(s: &verinfer_state::store::RocksStore, acks: &Acks, round: usize) {
    for (id, seq) in &acks.requests {
        let r = s.record(id).unwrap().unwrap_or_else(|| panic!("round {round}: acknowledged request {id} lost"));
        assert_eq!(r.sequence, *seq, "round {round}: request {id} changed sequence");
        assert!(s.record_tensors(id).unwrap().is_some());
        assert!(s.receipt(id).unwrap().is_some());
    }
    for (n, h) in &acks.batches {
        let header = s.header(*n).unwrap().unwrap_or_else(|| panic!("round {round}: acknowledged batch {n} lost"));
        assert_eq!(header.hash(), *h, "round {round}: batch {n} changed");
    }
}
