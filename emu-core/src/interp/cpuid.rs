//! The CPUID model: it advertises exactly what the interpreter implements.

use crate::paravirt;

/// Leaves (EAX, EBX, ECX, EDX) for `leaf`/`subleaf`; `apic_id` goes into leaf 1 and 0xB.
pub fn cpuid(leaf: u32, subleaf: u32, apic_id: u32) -> (u32, u32, u32, u32) {
    let vendor = |s: &[u8; 12]| {
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        (w(0), w(4), w(8))
    };
    match leaf {
        0 => {
            // "GenuineIntel": guests key errata and MSR choices off it; QEMU TCG does the same.
            let (b, d, c) = vendor(b"GenuineIntel");
            (7, b, c, d)
        }
        1 => {
            // Family 6, model 0x3a-like signature; EDX: PSE TSC MSR PAE CX8 PGE CMOV PAT PSE36;
            // ECX: CX16, hypervisor.
            let edx = (1 << 3)
                | (1 << 4)
                | (1 << 5)
                | (1 << 6)
                | (1 << 8)
                | (1 << 13)
                | (1 << 15)
                | (1 << 16)
                | (1 << 17);
            let ecx = (1 << 13) | (1 << 31);
            let ebx = (apic_id << 24) | (1 << 16) | (8 << 8);
            (0x0003_06a9, ebx, ecx, edx)
        }
        7 => (0, 0, 0, 0),
        0xb => {
            let kind = if subleaf == 0 { 1 } else { 0 };
            (0, u32::from(subleaf == 0), subleaf | (kind << 8), apic_id)
        }
        0x4000_0000 => {
            // The software CPU has no KVM leaves: Ferrite's signature is the first.
            let (b, c, d) = paravirt::signature_registers();
            (0x4000_0001, b, c, d)
        }
        0x4000_0001 => (0, 0, 0, 0),
        0x8000_0000 => (0x8000_0008, 0, 0, 0),
        0x8000_0001 => {
            // ECX: LAHF/SAHF in 64-bit mode. EDX: SYSCALL, NX, LM.
            (0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29))
        }
        0x8000_0002..=0x8000_0004 => {
            let name = *b"Ferrite software CPU (interpreter)\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            let base = ((leaf - 0x8000_0002) * 16) as usize;
            let w = |i: usize| {
                u32::from_le_bytes([
                    name[base + i],
                    name[base + i + 1],
                    name[base + i + 2],
                    name[base + i + 3],
                ])
            };
            (w(0), w(4), w(8), w(12))
        }
        0x8000_0008 => (super::mmu::PHYS_ADDR_BITS | (48 << 8), 0, 0, 0),
        _ => (0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_long_mode_and_the_vendor() {
        let (max, b, c, d) = cpuid(0, 0, 0);
        assert!(max >= 1);
        let mut v = Vec::new();
        for r in [b, d, c] {
            v.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&v, b"GenuineIntel");
        assert_ne!(cpuid(0x8000_0001, 0, 0).3 & (1 << 29), 0);
        assert_eq!(cpuid(1, 0, 3).1 >> 24, 3);
    }
}
