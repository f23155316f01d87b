//! The CPUID model: it advertises exactly what the interpreter implements.

use crate::cpu_model::CpuModel;
use crate::paravirt;

/// Leaves (EAX, EBX, ECX, EDX) of `model` for `leaf`/`subleaf`; `apic_id` goes into leaf 1 and
/// 0xB. Leaves past the model's maxima answer like the highest basic leaf, as on Intel parts.
pub fn cpuid(model: &CpuModel, leaf: u32, subleaf: u32, apic_id: u32) -> (u32, u32, u32, u32) {
    cpuid_with(
        model,
        leaf,
        subleaf,
        apic_id,
        0,
        super::simd::xsave::XCR0_X87,
    )
}

/// [`cpuid`] for a CPU whose CR4 and XCR0 are as given: CR4.OSXSAVE shows in leaf 1 ECX,
/// and leaf 0xD describes the XSAVE area.
pub fn cpuid_with(
    model: &CpuModel,
    leaf: u32,
    subleaf: u32,
    apic_id: u32,
    cr4: u64,
    xcr0: u64,
) -> (u32, u32, u32, u32) {
    let words = |s: &[u8]| {
        let mut b = [0u8; 16];
        b[..s.len().min(16)].copy_from_slice(&s[..s.len().min(16)]);
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (w(0), w(4), w(8), w(12))
    };
    // Out-of-range leaves answer like the highest basic leaf, as Intel parts and QEMU do.
    const TSC_HZ: u32 = 1_000_000_000;
    let hypervisor_range = (0x4000_0000..=0x4000_00ff).contains(&leaf);
    let in_range = if leaf >= 0x8000_0000 {
        leaf <= model.max_ext_leaf
    } else {
        hypervisor_range || leaf <= model.max_leaf
    };
    let leaf = if in_range { leaf } else { model.max_leaf };
    let f = &model.features;
    match leaf {
        0 => {
            let (b, d, c, _) = words(model.vendor);
            (model.max_leaf, b, c, d)
        }
        1 => {
            // EBX: initial APIC ID, one logical processor, CLFLUSH line size 64.
            let ebx = (apic_id << 24) | (1 << 16) | (8 << 8);
            let osxsave = if cr4 & super::simd::xsave::CR4_OSXSAVE != 0 {
                crate::cpu_model::ecx1::OSXSAVE
            } else {
                0
            };
            (model.signature, ebx, f.ecx1 | osxsave, f.edx1)
        }
        7 if subleaf == 0 => (0, f.ebx7, 0, 0),
        0xd if f.ecx1 & crate::cpu_model::ecx1::XSAVE != 0 => {
            super::simd::xsave::cpuid_leaf_d(subleaf, xcr0)
        }
        0xb => {
            let kind = if subleaf == 0 { 1 } else { 0 };
            (0, u32::from(subleaf == 0), subleaf | (kind << 8), apic_id)
        }
        // The TSC counts the machine clock's nanoseconds: a 1 GHz crystal, ratio 1/1 (so an
        // OS takes the frequency from here instead of calibrating against the PIT).
        0x15 => (1, 1, TSC_HZ, 0),
        0x4000_0000 => {
            // The software CPU has no KVM leaves: Ferrite's signature is the first.
            let (b, c, d) = paravirt::signature_registers();
            (0x4000_0001, b, c, d)
        }
        0x8000_0000 => (model.max_ext_leaf, 0, 0, 0),
        0x8000_0001 => (0, 0, f.ecx81, f.edx81),
        0x8000_0002..=0x8000_0004 => {
            let base = ((leaf - 0x8000_0002) * 16) as usize;
            let brand = model.brand.as_bytes();
            words(brand.get(base..).unwrap_or(&[]))
        }
        // Invariant TSC: the TSC counts the machine clock at one rate whatever the CPU does
        // (Linux then trusts it without the clocksource watchdog, with TSC_ADJUST).
        0x8000_0007 if f.edx1 & crate::cpu_model::edx1::TSC != 0 => (0, 0, 0, 1 << 8),
        0x8000_0008 => {
            let virt = if f.edx81 & crate::cpu_model::edx81::LM != 0 {
                48
            } else {
                32
            };
            (super::mmu::PHYS_ADDR_BITS | (virt << 8), 0, 0, 0)
        }
        _ => (0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_model::{MAX, PENTIUM};

    #[test]
    fn advertises_long_mode_and_the_vendor() {
        let (max, b, c, d) = cpuid(&MAX, 0, 0, 0);
        assert!(max >= 1);
        let mut v = Vec::new();
        for r in [b, d, c] {
            v.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&v, b"GenuineIntel");
        assert_ne!(cpuid(&MAX, 0x8000_0001, 0, 0).3 & (1 << 29), 0);
        assert_eq!(cpuid(&MAX, 1, 0, 3).1 >> 24, 3);
    }

    #[test]
    fn a_32_bit_model_has_no_extended_leaves_and_its_own_identity() {
        let (max, ..) = cpuid(&PENTIUM, 0, 0, 0);
        assert_eq!(max, 1);
        assert_eq!(cpuid(&PENTIUM, 1, 0, 0).0, PENTIUM.signature);
        // Past the maximum, Intel parts answer with the highest basic leaf.
        assert_eq!(cpuid(&PENTIUM, 0x8000_0000, 0, 0), cpuid(&PENTIUM, 1, 0, 0));
        assert_eq!(cpuid(&PENTIUM, 1, 0, 0).3 & (1 << 15), 0, "no CMOV");
        let brand: Vec<u8> = (0x8000_0002..=0x8000_0004u32)
            .flat_map(|l| {
                let (a, b, c, d) = cpuid(&MAX, l, 0, 0);
                [a, b, c, d].into_iter().flat_map(u32::to_le_bytes)
            })
            .collect();
        assert!(brand.starts_with(MAX.brand.as_bytes()));
    }
}
