//! Instruction-set selection: which kernel family runs.
//!
//! Every family computes exactly the same bits (that is what the kernels
//! are tested for); the choice only changes speed. The best family the CPU
//! supports is used unless `VERINFER_ISA=scalar|avx2|avx512` forces one
//! (read once per process). Tests force each supported family through
//! [`Kernels::new`].

use std::sync::OnceLock;

/// A kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, `f32::mul_add` for fma. Runs everywhere (on aarch64
    /// too: there is no NEON family yet, see `docs/performance.md`).
    Scalar,
    /// x86-64 AVX2 + FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
}

impl Isa {
    /// Every family, in order of preference (worst first).
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name used by `VERINFER_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses [`Isa::name`].
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "generic" => Some(Isa::Scalar),
            "avx2" | "avx2+fma" | "fma" => Some(Isa::Avx2),
            "avx512" | "avx512f" | "avx-512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Whether this CPU can run the family.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// Every family this CPU supports.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest supported family.
    pub fn best() -> Isa {
        Isa::ALL.into_iter().rev().find(|i| i.is_supported()).unwrap_or(Isa::Scalar)
    }

    /// The family to use: `VERINFER_ISA` if set (read once), else
    /// [`Isa::best`]. An unknown or unsupported forced family is an error,
    /// never a silent fallback.
    pub fn from_env() -> Result<Isa, String> {
        static CHOICE: OnceLock<Result<Isa, String>> = OnceLock::new();
        CHOICE
            .get_or_init(|| match std::env::var("VERINFER_ISA") {
                Ok(v) if !v.trim().is_empty() => match Isa::parse(&v) {
                    Some(i) if i.is_supported() => Ok(i),
                    Some(i) => Err(format!("VERINFER_ISA={v}: this CPU does not support {}", i.name())),
                    None => Err(format!("VERINFER_ISA={v}: expected scalar, avx2 or avx512")),
                },
                _ => Ok(Isa::best()),
            })
            .clone()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Proof that a family is supported by this CPU: the only way kernels are
/// reached, so an unsupported instruction can never run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernels {
    isa: Isa,
}

impl Kernels {
    /// The token for `isa`, if this CPU supports it.
    pub fn new(isa: Isa) -> Option<Self> {
        isa.is_supported().then_some(Self { isa })
    }

    /// The family chosen by [`Isa::from_env`].
    pub fn from_env() -> Result<Self, String> {
        let isa = Isa::from_env()?;
        Ok(Self { isa })
    }

    /// The portable family (always available).
    pub fn scalar() -> Self {
        Self { isa: Isa::Scalar }
    }

    /// The family.
    pub fn isa(self) -> Isa {
        self.isa
    }
}
