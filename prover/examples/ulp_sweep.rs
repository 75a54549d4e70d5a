//! Exhaustive accuracy sweep of the deterministic math functions.
//!
//! For every function of one `f32` argument, evaluates all 2^32 bit patterns
//! and compares each result with a reference computed in `f64` with the host's
//! `f64` libm (about 2^-52 accurate, good enough to grade `f32` results; erf
//! and GELU use a series / continued-fraction reference implemented below).
//! `pow` is graded on random (x, y) pairs (10^8 by default).
//!
//! For each function it prints the maximum error in ulps (of the `f32`
//! result, measured against the `f64` reference), the input where it occurs,
//! and how many inputs are not correctly rounded (the result differs from
//! the reference rounded to `f32`); "near-mid" counts those mismatches whose
//! reference lies so close to a rounding midpoint (within 2^-24 ulp) that the
//! `f64` reference cannot decide them. It also checks that every NaN result
//! is the canonical NaN. For `rsqrt`, correct rounding is decided exactly
//! (sign of m^2 x - 1 for the two midpoints m around the result, which is
//! exact with one `mul_add`) instead of with the reference.
//!
//! Usage (2 threads by default; build with --release):
//!
//! ```text
//! cargo run --release --example ulp_sweep -- [--threads N] [--pow-samples N]
//!     [--stride N] [--dump DIR] [FUNCTION ...]
//! ```
//!
//! `--stride N` grades only every N-th bit pattern (a quick check; the
//! default 1 is the exhaustive sweep).
//!
//! `--hash` skips grading and prints, per function, a 64-bit FNV-1a digest of
//! the output bits for all 2^32 inputs (for pow, for the 10^7 first random
//! pairs; with `--stride N`, of every N-th input only). Builds for different
//! targets/CPU features (e.g. with and without `-C target-cpu=native`, debug
//! and release) must print identical digests.
//!
//! With `--dump DIR`, the inputs that are not correctly rounded are written to
//! `DIR/<function>.txt` (hex bits of x, of the result, and the reference), so
//! that they can be checked with an arbitrary-precision tool.

use std::f64::consts;
use std::io::Write;
use std::time::Instant;

// In the main repository this is `use verinfer_prover::math;`.
use verinfer_prover::math;

type F1 = fn(f32) -> f32;
type R1 = fn(f64) -> f64;

// ---------------------------------------------------------------------------
// References (host f64 libm + series for erf)
// ---------------------------------------------------------------------------

/// erf(z) for 0 <= z < 1 by the positive series
/// e^{-z^2} * 2/sqrt(pi) * sum 2^n z^{2n+1} / (1*3*...*(2n+1)).
fn erf_series(z: f64, zz: f64) -> f64 {
    let mut term = z;
    let mut sum = z;
    let mut n = 0.0;
    while term > sum * 1e-18 {
        term *= 2.0 * zz / (2.0 * n + 3.0);
        sum += term;
        n += 1.0;
    }
    consts::FRAC_2_SQRT_PI * (-zz).exp() * sum
}

/// erfc(z) for z >= 0, with zz = z^2 given exactly: continued fraction
/// e^{-z^2}/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))) for z >= 1
/// (relative error ~2e-16), 1 - erf below.
fn erfc_ref(z: f64, zz: f64) -> f64 {
    if z < 1.0 {
        return 1.0 - erf_series(z, zz);
    }
    let mut f = z;
    let mut n = if z < 3.0 { 200 } else { 60 };
    while n > 0 {
        f = z + (n as f64 * 0.5) / f;
        n -= 1;
    }
    (-zz).exp() / consts::PI.sqrt() / f
}

fn ref_erf(x: f64) -> f64 {
    let a = x.abs();
    if a >= 6.0 {
        return 1f64.copysign(x);
    }
    let v = if a < 1.0 { erf_series(a, a * a) } else { 1.0 - erfc_ref(a, a * a) };
    v.copysign(x)
}

/// For 0 < |x| < 2^-60, silu/gelu/gelu_tanh(x) = x/2 + c x^2 (c > 0) with
/// c x^2 far below the f64 ulp of x/2, and x/2 may be an exact f32 midpoint
/// (x subnormal): the reference is x/2 moved one f64 ulp towards +inf, which
/// lies on the same side of every f32 midpoint as the exact value.
fn tiny_half_up(x: f64) -> f64 {
    let v = 0.5 * x;
    if v > 0.0 { f64::from_bits(v.to_bits() + 1) } else { f64::from_bits(v.to_bits() - 1) }
}

fn is_tiny(x: f64) -> bool {
    x != 0.0 && x.abs() < 2f64.powi(-60)
}

fn ref_gelu(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if is_tiny(x) {
        return tiny_half_up(x);
    }
    if x > 12.0 {
        return x;
    }
    if x < -16.0 {
        return -0.0;
    }
    let z = x.abs() * consts::FRAC_1_SQRT_2;
    let zz = 0.5 * x * x; // exact for f32 x
    if z < 1.0 {
        let e = erf_series(z, zz);
        x * 0.5 * (1.0 + if x < 0.0 { -e } else { e })
    } else {
        let c = erfc_ref(z, zz);
        x * if x < 0.0 { 0.5 * c } else { 1.0 - 0.5 * c }
    }
}

fn ref_gelu_tanh(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if is_tiny(x) {
        return tiny_half_up(x);
    }
    if x < -20.0 {
        return -0.0;
    }
    if x > 20.0 {
        return x;
    }
    let w = 2.0 * (2.0 / consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x / (1.0 + (-w).exp())
}

fn ref_sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn ref_silu(x: f64) -> f64 {
    if is_tiny(x) {
        return tiny_half_up(x);
    }
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    if x < -200.0 {
        return -0.0;
    }
    x / (1.0 + (-x).exp())
}

fn ref_softplus(x: f64) -> f64 {
    if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
}

fn ref_rsqrt(x: f64) -> f64 {
    1.0 / x.sqrt()
}

fn ref_recip(x: f64) -> f64 {
    1.0 / x
}

fn ref_expm1(x: f64) -> f64 {
    x.exp_m1()
}

fn ref_log1p(x: f64) -> f64 {
    x.ln_1p()
}

// ---------------------------------------------------------------------------
// Grading
// ---------------------------------------------------------------------------

/// Error of `got` in ulps of the f32 format at the reference value `r`.
/// Infinite results count as 2^128 (the first value that rounds to inf).
fn ulp_err(got: f32, r: f64) -> f64 {
    let lim = 2f64.powi(128);
    let g = if got.is_infinite() { lim.copysign(got as f64) } else { got as f64 };
    let rc = r.clamp(-lim, lim);
    let e = if rc == 0.0 { -1000 } else { ((rc.abs().to_bits() >> 52) as i64) - 1023 };
    let ulp = f64::from_bits(((e.clamp(-126, 127) - 23 + 1023) as u64) << 52);
    (g - rc).abs() / ulp
}

/// Exact correct-rounding test for rsqrt: both midpoints around r must
/// bracket 1/sqrt(x).
fn rsqrt_is_cr(x: f32, r: f32) -> bool {
    if !(x > 0.0 && x < f32::INFINITY) {
        return true; // specials are checked against the reference
    }
    let rb = r.to_bits();
    let lo = (r as f64 + f32::from_bits(rb - 1) as f64) * 0.5;
    let hi = (r as f64 + f32::from_bits(rb + 1) as f64) * 0.5;
    (lo * lo).mul_add(x as f64, -1.0) < 0.0 && (hi * hi).mul_add(x as f64, -1.0) > 0.0
}

#[derive(Default)]
struct Acc {
    count: u64,
    max: f64,
    worst: u64,
    worst_got: f32,
    worst_ref: f64,
    not_cr: u64,
    near_mid: u64,
    bad_nan: u64,
    dump: Vec<(u64, u32, f64)>,
}

impl Acc {
    fn merge(&mut self, o: Acc) {
        self.count += o.count;
        if o.max > self.max {
            self.max = o.max;
            self.worst = o.worst;
            self.worst_got = o.worst_got;
            self.worst_ref = o.worst_ref;
        }
        self.not_cr += o.not_cr;
        self.near_mid += o.near_mid;
        self.bad_nan += o.bad_nan;
        self.dump.extend(o.dump);
    }

    fn grade(&mut self, key: u64, got: f32, want: f64, exact_cr: Option<bool>, dump: bool) {
        self.count += 1;
        if got.is_nan() && got.to_bits() != 0x7fc0_0000 {
            self.bad_nan += 1;
        }
        let want32 = math::canon(want as f32);
        let e = if want.is_nan() || got.is_nan() {
            if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY }
        } else {
            ulp_err(got, want)
        };
        if e > self.max {
            self.max = e;
            self.worst = key;
            self.worst_got = got;
            self.worst_ref = want;
        }
        let cr = match exact_cr {
            Some(c) => c && (got.to_bits() == want32.to_bits() || e < 1.0),
            None => got.to_bits() == want32.to_bits(),
        };
        if !cr {
            self.not_cr += 1;
            if exact_cr.is_none() && (e - 0.5).abs() < 2f64.powi(-24) {
                self.near_mid += 1;
            }
            if dump && self.dump.len() < 2_000_000 {
                self.dump.push((key, got.to_bits(), want));
            }
        }
    }
}

fn sweep1(name: &str, f: F1, r: R1, threads: u32, stride: u64, dump: bool) -> Acc {
    const CHUNKS: u64 = 1024;
    let per = (1u64 << 32) / CHUNKS;
    let is_rsqrt = name == "rsqrt";
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut acc = Acc::default();
                let mut c = t as u64;
                while c < CHUNKS {
                    for b in ((c * per)..((c + 1) * per)).step_by(stride as usize) {
                        let x = f32::from_bits(b as u32);
                        let got = f(x);
                        let want = r(x as f64);
                        let exact = if is_rsqrt { Some(rsqrt_is_cr(x, got)) } else { None };
                        acc.grade(b, got, want, exact, dump);
                    }
                    c += threads as u64;
                }
                acc
            })
        })
        .collect();
    let mut acc = Acc::default();
    for h in handles {
        acc.merge(h.join().expect("sweep thread panicked"));
    }
    acc
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(h: u64, v: u32) -> u64 {
    let mut h = h;
    for b in v.to_le_bytes() {
        h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Digest of f over all 2^32 inputs, independent of the thread count: one
/// digest per chunk, combined in chunk order.
fn hash1(f: F1, threads: u32, stride: u64) -> u64 {
    const CHUNKS: u64 = 256;
    let per = (1u64 << 32) / CHUNKS;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut c = t as u64;
                while c < CHUNKS {
                    let mut h = FNV_OFFSET;
                    for b in ((c * per)..((c + 1) * per)).step_by(stride as usize) {
                        h = fnv(h, f(f32::from_bits(b as u32)).to_bits());
                    }
                    out.push((c, h));
                    c += threads as u64;
                }
                out
            })
        })
        .collect();
    let mut all: Vec<(u64, u64)> = handles.into_iter().flat_map(|h| h.join().expect("hash thread panicked")).collect();
    all.sort();
    all.iter().fold(FNV_OFFSET, |h, &(_, d)| fnv(fnv(h, d as u32), (d >> 32) as u32))
}

fn hash_pow(samples: u64) -> u64 {
    let mut rng = SplitMix(0x5eed_0000);
    let mut h = FNV_OFFSET;
    for _ in 0..samples {
        let (x, y) = pow_pair(&mut rng);
        h = fnv(h, math::pow(x, y).to_bits());
    }
    h
}

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random (x, y) pairs for pow, mixed so that most results are finite and
/// non-trivial:
/// * 40%: x = random positive finite f32 (all binades), y chosen so that
///   y*log2(x) is uniform in [-155, 130];
/// * 30%: x uniform in (0, 4), y uniform in [-60, 60];
/// * 20%: x uniform in (-4, 4) (negative bases), y a random integer
///   in [-150, 150];
/// * 10%: raw random bit patterns for both (special cases, NaN, inf, ...).
fn pow_pair(rng: &mut SplitMix) -> (f32, f32) {
    let sel = rng.next() % 10;
    if sel < 4 {
        loop {
            let x = f32::from_bits(rng.next() as u32 & 0x7fff_ffff);
            if !(x > 0.0 && x.is_finite()) || x == 1.0 {
                continue;
            }
            let t = -155.0 + 285.0 * rng.unit();
            let y = (t / (x as f64).log2()) as f32;
            if y.is_finite() {
                return (x, y);
            }
        }
    } else if sel < 7 {
        ((4.0 * rng.unit()) as f32, (-60.0 + 120.0 * rng.unit()) as f32)
    } else if sel < 9 {
        ((-4.0 + 8.0 * rng.unit()) as f32, ((rng.next() % 301) as i32 - 150) as f32)
    } else {
        (f32::from_bits(rng.next() as u32), f32::from_bits(rng.next() as u32))
    }
}

fn sweep_pow(samples: u64, threads: u32, dump: bool) -> Acc {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = SplitMix(0x5eed_0000 + t as u64);
                let mut acc = Acc::default();
                let n = samples / threads as u64 + if (t as u64) < samples % threads as u64 { 1 } else { 0 };
                for _ in 0..n {
                    let (x, y) = pow_pair(&mut rng);
                    let got = math::pow(x, y);
                    let want = (x as f64).powf(y as f64);
                    let key = ((x.to_bits() as u64) << 32) | y.to_bits() as u64;
                    acc.grade(key, got, want, None, dump);
                }
                acc
            })
        })
        .collect();
    let mut acc = Acc::default();
    for h in handles {
        acc.merge(h.join().expect("pow thread panicked"));
    }
    acc
}

fn main() {
    let all: [(&str, F1, R1); 19] = [
        ("exp", math::exp, f64::exp),
        ("exp2", math::exp2, f64::exp2),
        ("expm1", math::expm1, ref_expm1),
        ("ln", math::ln, f64::ln),
        ("log2", math::log2, f64::log2),
        ("log1p", math::log1p, ref_log1p),
        ("sqrt", math::sqrt, f64::sqrt),
        ("rsqrt", math::rsqrt, ref_rsqrt),
        ("recip", math::recip, ref_recip),
        ("tanh", math::tanh, f64::tanh),
        ("sigmoid", math::sigmoid, ref_sigmoid),
        ("silu", math::silu, ref_silu),
        ("softplus", math::softplus, ref_softplus),
        ("erf", math::erf, ref_erf),
        ("gelu", math::gelu, ref_gelu),
        ("gelu_tanh", math::gelu_tanh, ref_gelu_tanh),
        ("sin", math::sin, f64::sin),
        ("cos", math::cos, f64::cos),
        ("atan", math::atan, f64::atan),
    ];

    let mut threads = 2u32;
    let mut stride = 1u64;
    let mut hash = false;
    let mut pow_samples = 100_000_000u64;
    let mut dump_dir: Option<String> = None;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--pow-samples" => pow_samples = args.next().and_then(|v| v.parse().ok()).expect("--pow-samples N"),
            "--stride" => stride = args.next().and_then(|v| v.parse().ok()).expect("--stride N"),
            "--hash" => hash = true,
            "--dump" => dump_dir = Some(args.next().expect("--dump DIR")),
            _ => only.push(a),
        }
    }
    let want = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    if let Some(d) = &dump_dir {
        std::fs::create_dir_all(d).expect("create dump dir");
    }

    if hash {
        for (name, f, _) in all {
            if want(name) {
                println!("{name:<10} {:016x}", hash1(f, threads, stride));
            }
        }
        if want("pow") {
            println!("{:<10} {:016x}", "pow", hash_pow(10_000_000));
        }
        return;
    }

    println!(
        "{:<10} {:>11} {:>12} {:>16} {:>16} {:>12} {:>14} {:>9} {:>7} {:>8}",
        "function",
        "max_ulp",
        "worst_x",
        "worst_x_value",
        "result",
        "not_CR",
        "CR_fraction",
        "near_mid",
        "bad_nan",
        "time_s"
    );
    let report = |name: &str, acc: &Acc, x_desc: String, secs: f64| {
        let frac = 1.0 - acc.not_cr as f64 / acc.count as f64;
        println!(
            "{:<10} {:>11.9} {:>12} {:>16} {:>16.9e} {:>12} {:>14.10} {:>9} {:>7} {:>8.1}",
            name,
            acc.max,
            format!("{:#x}", acc.worst),
            x_desc,
            acc.worst_got,
            acc.not_cr,
            frac,
            acc.near_mid,
            acc.bad_nan,
            secs
        );
        let _ = std::io::stdout().flush();
    };
    let write_dump = |name: &str, acc: &Acc| {
        if let Some(d) = &dump_dir {
            let mut s = String::new();
            for (x, g, r) in &acc.dump {
                s.push_str(&format!("{x:x} {g:08x} {:016x}\n", r.to_bits()));
            }
            std::fs::write(format!("{d}/{name}.txt"), s).expect("write dump");
        }
    };

    for (name, f, r) in all {
        if !want(name) {
            continue;
        }
        let t0 = Instant::now();
        let acc = sweep1(name, f, r, threads, stride, dump_dir.is_some());
        report(name, &acc, format!("{:e}", f32::from_bits(acc.worst as u32)), t0.elapsed().as_secs_f64());
        write_dump(name, &acc);
    }
    if want("pow") && pow_samples > 0 {
        let t0 = Instant::now();
        let acc = sweep_pow(pow_samples, threads, dump_dir.is_some());
        let (wx, wy) = (f32::from_bits((acc.worst >> 32) as u32), f32::from_bits(acc.worst as u32));
        report("pow", &acc, format!("{wx:e},{wy:e}"), t0.elapsed().as_secs_f64());
        write_dump("pow", &acc);
        println!("(pow: {} random pairs; worst_x is (x bits << 32 | y bits), the value column shows x,y)", acc.count);
    }
}
