//! CPU models for the software CPU (`-cpu NAME`).
//!
//! A model fixes the identity CPUID reports (vendor, family/model/stepping, brand) and which
//! features exist. A model never advertises more than the interpreter implements: each model's
//! feature bits are its real CPU's bits intersected with [`IMPLEMENTED`], so a model whose real
//! part has SSSE3 shows none until the interpreter has it. A feature a model lacks is also absent in behaviour:
//! its instructions raise #UD and its control bits (CR4, EFER) raise #GP, as on the real part,
//! so software that probes by trying sees the same CPU that CPUID describes.

use std::fmt;

/// CPUID feature bits, by the register and leaf they live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Leaf 1 EDX.
    pub edx1: u32,
    /// Leaf 1 ECX.
    pub ecx1: u32,
    /// Leaf 0x8000_0001 EDX.
    pub edx81: u32,
    /// Leaf 0x8000_0001 ECX.
    pub ecx81: u32,
    /// Leaf 7 (subleaf 0) EBX.
    pub ebx7: u32,
}

/// Leaf 1 EDX bits.
pub mod edx1 {
    pub const FPU: u32 = 1 << 0;
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    pub const CX8: u32 = 1 << 8;
    /// Not a model property: the platform's local APIC, globally enabled.
    pub const APIC: u32 = 1 << 9;
    pub const SEP: u32 = 1 << 11;
    pub const MTRR: u32 = 1 << 12;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const PAT: u32 = 1 << 16;
    pub const PSE36: u32 = 1 << 17;
    pub const MMX: u32 = 1 << 23;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}

/// Leaf 1 ECX bits.
pub mod ecx1 {
    pub const SSE3: u32 = 1 << 0;
    pub const PCLMULQDQ: u32 = 1 << 1;
    pub const AES: u32 = 1 << 25;
    pub const SSSE3: u32 = 1 << 9;
    pub const SSE41: u32 = 1 << 19;
    pub const SSE42: u32 = 1 << 20;
    pub const CX16: u32 = 1 << 13;
    pub const XSAVE: u32 = 1 << 26;
    /// Not a model property: the platform's local APIC has the TSC-deadline timer.
    pub const TSC_DEADLINE: u32 = 1 << 24;
    /// Not a model property: CPUID reports CR4.OSXSAVE here.
    pub const OSXSAVE: u32 = 1 << 27;
    pub const MOVBE: u32 = 1 << 22;
    pub const POPCNT: u32 = 1 << 23;
    pub const HYPERVISOR: u32 = 1 << 31;
}

/// Leaf 0x8000_0001 EDX bits.
pub mod edx81 {
    pub const SYSCALL: u32 = 1 << 11;
    pub const NX: u32 = 1 << 20;
    pub const RDTSCP: u32 = 1 << 27;
    pub const LM: u32 = 1 << 29;
}

/// Leaf 0x8000_0001 ECX bits.
pub mod ecx81 {
    pub const LAHF_LM: u32 = 1 << 0;
    pub const LZCNT: u32 = 1 << 5;
}

/// Leaf 7 EBX bits.
pub mod ebx7 {
    /// IA32_TSC_ADJUST (MSR 0x3b).
    pub const TSC_ADJUST: u32 = 1 << 1;
    pub const BMI1: u32 = 1 << 3;
    pub const BMI2: u32 = 1 << 8;
    pub const ADX: u32 = 1 << 19;
}

/// Leaf-1 EDX of the P6 family and its successors (FPU through PSE36, less APIC and MCA).
const P6_EDX1: u32 = edx1::FPU
    | edx1::PSE
    | edx1::TSC
    | edx1::MSR
    | edx1::PAE
    | edx1::CX8
    | edx1::SEP
    | edx1::MTRR
    | edx1::PGE
    | edx1::CMOV
    | edx1::PAT
    | edx1::PSE36;

/// Everything the interpreter implements; no model advertises a bit outside this set.
pub const IMPLEMENTED: Features = Features {
    edx1: edx1::FPU
        | edx1::MMX
        | edx1::PSE
        | edx1::TSC
        | edx1::MSR
        | edx1::PAE
        | edx1::CX8
        | edx1::SEP
        | edx1::MTRR
        | edx1::PGE
        | edx1::CMOV
        | edx1::PAT
        | edx1::PSE36
        | edx1::FXSR
        | edx1::SSE
        | edx1::SSE2,
    ecx1: ecx1::SSE3
        | ecx1::SSSE3
        | ecx1::SSE41
        | ecx1::SSE42
        | ecx1::AES
        | ecx1::PCLMULQDQ
        | ecx1::CX16
        | ecx1::MOVBE
        | ecx1::POPCNT
        | ecx1::XSAVE
        | ecx1::HYPERVISOR,
    edx81: edx81::SYSCALL | edx81::NX | edx81::RDTSCP | edx81::LM,
    ecx81: ecx81::LAHF_LM | ecx81::LZCNT,
    ebx7: ebx7::TSC_ADJUST | ebx7::BMI1 | ebx7::BMI2 | ebx7::ADX,
};

impl Features {
    const fn and(self, o: Features) -> Features {
        Features {
            edx1: self.edx1 & o.edx1,
            ecx1: self.ecx1 & o.ecx1,
            edx81: self.edx81 & o.edx81,
            ecx81: self.ecx81 & o.ecx81,
            ebx7: self.ebx7 & o.ebx7,
        }
    }
}

/// One CPU model.
#[derive(Debug, PartialEq, Eq)]
pub struct CpuModel {
    /// The `-cpu` name.
    pub name: &'static str,
    /// What `-cpu help` says about it.
    pub description: &'static str,
    pub vendor: &'static [u8; 12],
    /// CPUID leaf 1 EAX (stepping, model, family).
    pub signature: u32,
    /// Highest basic leaf.
    pub max_leaf: u32,
    /// Highest extended leaf; 0 means the 0x8000_0000 range does not exist.
    pub max_ext_leaf: u32,
    pub brand: &'static str,
    pub features: Features,
}

impl CpuModel {
    /// Whether a leaf-1 EDX feature exists.
    pub fn has_edx1(&self, bit: u32) -> bool {
        self.features.edx1 & bit != 0
    }

    /// Whether a leaf-0x8000_0001 EDX feature exists.
    pub fn has_edx81(&self, bit: u32) -> bool {
        self.features.edx81 & bit != 0
    }

    /// Whether a leaf-1 ECX feature exists.
    pub fn has_ecx1(&self, bit: u32) -> bool {
        self.features.ecx1 & bit != 0
    }

    /// The model called `name` (case-insensitive), including the aliases `ferrite` and `host`
    /// for the default.
    pub fn by_name(name: &str) -> Option<&'static CpuModel> {
        let name = name.to_ascii_lowercase();
        let name = match name.as_str() {
            "ferrite" | "host" | "base" => "max",
            n => n,
        };
        MODELS.iter().copied().find(|m| m.name == name)
    }
}

impl fmt::Display for CpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<10} {}", self.name, self.description)
    }
}

/// The default model: every implemented feature, 64-bit.
pub static MAX: CpuModel = CpuModel {
    name: "max",
    description: "everything the software CPU implements (default; aliases: ferrite, host)",
    vendor: b"GenuineIntel",
    signature: 0x0003_06a9,
    // Up to leaf 0x15, which states the TSC's frequency.
    max_leaf: 0x15,
    max_ext_leaf: 0x8000_0008,
    brand: "Ferrite software CPU (interpreter)",
    features: IMPLEMENTED,
};

/// QEMU's default model.
pub static QEMU64: CpuModel = CpuModel {
    name: "qemu64",
    description: "QEMU's default 64-bit model (AMD identity): x87, MMX, SSE to SSE3, long mode",
    vendor: b"AuthenticAMD",
    signature: 0x0006_0fb1,
    max_leaf: 0xd,
    max_ext_leaf: 0x8000_000a,
    brand: "QEMU Virtual CPU version 2.5+",
    features: IMPLEMENTED.and(Features {
        edx1: P6_EDX1 | edx1::MMX | edx1::FXSR | edx1::SSE | edx1::SSE2,
        ecx1: ecx1::SSE3 | ecx1::CX16 | ecx1::HYPERVISOR,
        edx81: edx81::SYSCALL | edx81::NX | edx81::LM,
        ecx81: ecx81::LAHF_LM,
        ebx7: 0,
    }),
};

/// A P6-family 32-bit part: PAE, PGE, CMOV, SYSENTER, SSE (no SSE2), no long mode.
pub static PENTIUM3: CpuModel = CpuModel {
    name: "pentium3",
    description: "Intel Pentium III: 32-bit, PAE, PGE, CMOV, SYSENTER, SSE; no long mode",
    vendor: b"GenuineIntel",
    signature: 0x0000_0673,
    max_leaf: 2,
    max_ext_leaf: 0,
    brand: "",
    features: IMPLEMENTED.and(Features {
        edx1: P6_EDX1 | edx1::MMX | edx1::FXSR | edx1::SSE,
        ecx1: ecx1::HYPERVISOR,
        edx81: 0,
        ecx81: 0,
        ebx7: 0,
    }),
};

/// The original Pentium: TSC, MSRs, CMPXCHG8B and 4 MiB pages, but no PAE, PGE or CMOV.
pub static PENTIUM: CpuModel = CpuModel {
    name: "pentium",
    description: "Intel Pentium: 32-bit, TSC, CMPXCHG8B, 4 MiB pages; no PAE, PGE, CMOV",
    vendor: b"GenuineIntel",
    signature: 0x0000_0543,
    max_leaf: 1,
    max_ext_leaf: 0,
    brand: "",
    features: IMPLEMENTED.and(Features {
        edx1: edx1::FPU | edx1::PSE | edx1::TSC | edx1::MSR | edx1::CX8,
        ecx1: ecx1::HYPERVISOR,
        edx81: 0,
        ecx81: 0,
        ebx7: 0,
    }),
};

/// A late 486 (with CPUID): none of the Pentium additions.
pub static I486: CpuModel = CpuModel {
    name: "486",
    description: "Intel 486: 32-bit paging only; no TSC, MSRs, CMPXCHG8B or 4 MiB pages",
    vendor: b"GenuineIntel",
    signature: 0x0000_0480,
    max_leaf: 1,
    max_ext_leaf: 0,
    brand: "",
    features: IMPLEMENTED.and(Features {
        edx1: edx1::FPU,
        ecx1: ecx1::HYPERVISOR,
        edx81: 0,
        ecx81: 0,
        ebx7: 0,
    }),
};

/// QEMU's names for the feature bits Ferrite implements, with where each bit lives.
pub const FEATURE_NAMES: &[(&str, Leaf, u32)] = &[
    ("fpu", Leaf::Edx1, edx1::FPU),
    ("pse", Leaf::Edx1, edx1::PSE),
    ("tsc", Leaf::Edx1, edx1::TSC),
    ("msr", Leaf::Edx1, edx1::MSR),
    ("pae", Leaf::Edx1, edx1::PAE),
    ("cx8", Leaf::Edx1, edx1::CX8),
    ("sep", Leaf::Edx1, edx1::SEP),
    ("mtrr", Leaf::Edx1, edx1::MTRR),
    ("pge", Leaf::Edx1, edx1::PGE),
    ("cmov", Leaf::Edx1, edx1::CMOV),
    ("pat", Leaf::Edx1, edx1::PAT),
    ("pse36", Leaf::Edx1, edx1::PSE36),
    ("mmx", Leaf::Edx1, edx1::MMX),
    ("fxsr", Leaf::Edx1, edx1::FXSR),
    ("sse", Leaf::Edx1, edx1::SSE),
    ("sse2", Leaf::Edx1, edx1::SSE2),
    ("pni", Leaf::Ecx1, ecx1::SSE3),
    ("sse3", Leaf::Ecx1, ecx1::SSE3),
    ("ssse3", Leaf::Ecx1, ecx1::SSSE3),
    ("sse4.1", Leaf::Ecx1, ecx1::SSE41),
    ("sse4_1", Leaf::Ecx1, ecx1::SSE41),
    ("sse4.2", Leaf::Ecx1, ecx1::SSE42),
    ("sse4_2", Leaf::Ecx1, ecx1::SSE42),
    ("aes", Leaf::Ecx1, ecx1::AES),
    ("pclmulqdq", Leaf::Ecx1, ecx1::PCLMULQDQ),
    ("cx16", Leaf::Ecx1, ecx1::CX16),
    ("movbe", Leaf::Ecx1, ecx1::MOVBE),
    ("popcnt", Leaf::Ecx1, ecx1::POPCNT),
    ("xsave", Leaf::Ecx1, ecx1::XSAVE),
    ("hypervisor", Leaf::Ecx1, ecx1::HYPERVISOR),
    ("syscall", Leaf::Edx81, edx81::SYSCALL),
    ("nx", Leaf::Edx81, edx81::NX),
    ("rdtscp", Leaf::Edx81, edx81::RDTSCP),
    ("lm", Leaf::Edx81, edx81::LM),
    ("lahf_lm", Leaf::Ecx81, ecx81::LAHF_LM),
    ("abm", Leaf::Ecx81, ecx81::LZCNT),
    ("tsc_adjust", Leaf::Ebx7, ebx7::TSC_ADJUST),
    ("bmi1", Leaf::Ebx7, ebx7::BMI1),
    ("bmi2", Leaf::Ebx7, ebx7::BMI2),
    ("adx", Leaf::Ebx7, ebx7::ADX),
];

/// Which CPUID register a feature bit is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Edx1,
    Ecx1,
    Edx81,
    Ecx81,
    Ebx7,
}

impl Features {
    fn word(&mut self, leaf: Leaf) -> &mut u32 {
        match leaf {
            Leaf::Edx1 => &mut self.edx1,
            Leaf::Ecx1 => &mut self.ecx1,
            Leaf::Edx81 => &mut self.edx81,
            Leaf::Ecx81 => &mut self.ecx81,
            Leaf::Ebx7 => &mut self.ebx7,
        }
    }
}

impl CpuModel {
    /// This model with QEMU-style feature changes: `+name`/`-name` or `name=on|off`, comma
    /// separated. A feature Ferrite does not implement cannot be added.
    pub fn with_flags(&'static self, flags: &str) -> Result<&'static CpuModel, String> {
        let mut features = self.features;
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            let (name, on) = if let Some(n) = flag.strip_prefix('+') {
                (n, true)
            } else if let Some(n) = flag.strip_prefix('-') {
                (n, false)
            } else {
                match flag.split_once('=') {
                    Some((n, "on" | "true")) => (n, true),
                    Some((n, "off" | "false")) => (n, false),
                    _ => {
                        return Err(format!(
                            "'{flag}': use +feature, -feature or feature=on|off"
                        ))
                    }
                }
            };
            let name = name.replace('-', "_");
            let Some(&(_, leaf, bit)) = FEATURE_NAMES.iter().find(|(n, ..)| *n == name) else {
                return Err(format!(
                    "'{flag}': '{name}' is not a feature the software CPU implements \
                     (it has: {})",
                    FEATURE_NAMES
                        .iter()
                        .map(|f| f.0)
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            };
            let word = features.word(leaf);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        if features == self.features {
            return Ok(self);
        }
        // One model per process: leaking it gives the `'static` every vCPU shares.
        Ok(Box::leak(Box::new(CpuModel { features, ..*self })))
    }
}

/// Every model, for `-cpu help` and name lookup.
pub static MODELS: [&CpuModel; 5] = [&MAX, &QEMU64, &PENTIUM3, &PENTIUM, &I486];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_model_advertises_more_than_is_implemented() {
        for m in MODELS {
            assert_eq!(m.features.and(IMPLEMENTED), m.features, "{}", m.name);
        }
    }

    #[test]
    fn names_resolve_case_insensitively_with_aliases() {
        assert_eq!(CpuModel::by_name("Pentium").unwrap().name, "pentium");
        assert_eq!(CpuModel::by_name("host").unwrap().name, "max");
        assert!(CpuModel::by_name("core2duo").is_none());
        assert!(!I486.has_edx1(edx1::TSC));
        assert!(PENTIUM3.has_edx1(edx1::SEP) && !PENTIUM3.has_edx81(edx81::LM));
    }

    #[test]
    fn flags_add_and_remove_implemented_features_only() {
        let m = PENTIUM3.with_flags("+popcnt,-cmov,nx=on").unwrap();
        assert!(m.has_ecx1(ecx1::POPCNT) && !m.has_edx1(edx1::CMOV) && m.has_edx81(edx81::NX));
        assert!(std::ptr::eq(MAX.with_flags("+lm").unwrap(), &MAX));
        assert!(MAX.with_flags("+avx").unwrap_err().contains("'avx'"));
        assert!(MAX.with_flags("lm=maybe").is_err());
        for (name, ..) in FEATURE_NAMES {
            let on = I486.with_flags(&format!("+{name}")).unwrap();
            assert_eq!(on.features.and(IMPLEMENTED), on.features, "{name}");
        }
    }
}
