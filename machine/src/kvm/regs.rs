//! Translation between the backend-neutral [`CpuState`] and KVM's register structures.

use emu_core::{CpuState, DescriptorTable, Segment};
use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};

fn to_kvm_seg(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: u8::from(s.present),
        dpl: s.dpl,
        db: u8::from(s.db),
        s: u8::from(s.s),
        l: u8::from(s.l),
        g: u8::from(s.g),
        avl: u8::from(s.avl),
        unusable: u8::from(s.unusable),
        padding: 0,
    }
}

fn from_kvm_seg(s: &kvm_segment) -> Segment {
    Segment {
        selector: s.selector,
        base: s.base,
        limit: s.limit,
        type_: s.type_,
        s: s.s != 0,
        dpl: s.dpl,
        present: s.present != 0,
        l: s.l != 0,
        db: s.db != 0,
        g: s.g != 0,
        avl: s.avl != 0,
        unusable: s.unusable != 0,
    }
}

fn to_kvm_dt(d: &DescriptorTable) -> kvm_dtable {
    kvm_dtable {
        base: d.base,
        limit: d.limit,
        padding: [0; 3],
    }
}

fn from_kvm_dt(d: &kvm_dtable) -> DescriptorTable {
    DescriptorTable {
        base: d.base,
        limit: d.limit,
    }
}

pub fn to_kvm_regs(s: &CpuState) -> kvm_regs {
    let g = &s.gpr;
    kvm_regs {
        rax: g[0],
        rcx: g[1],
        rdx: g[2],
        rbx: g[3],
        rsp: g[4],
        rbp: g[5],
        rsi: g[6],
        rdi: g[7],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        rip: s.rip,
        rflags: s.rflags,
    }
}

/// Fills the architectural parts of `sregs`, keeping what KVM owns (APIC base, pending
/// interrupt bitmap, CR8).
pub fn apply_sregs(s: &CpuState, sregs: &mut kvm_sregs) {
    sregs.cs = to_kvm_seg(&s.cs);
    sregs.ds = to_kvm_seg(&s.ds);
    sregs.es = to_kvm_seg(&s.es);
    sregs.fs = to_kvm_seg(&s.fs);
    sregs.gs = to_kvm_seg(&s.gs);
    sregs.ss = to_kvm_seg(&s.ss);
    sregs.ldt = to_kvm_seg(&s.ldt);
    sregs.tr = to_kvm_seg(&s.tr);
    sregs.gdt = to_kvm_dt(&s.gdt);
    sregs.idt = to_kvm_dt(&s.idt);
    sregs.cr0 = s.cr0;
    sregs.cr2 = s.cr2;
    sregs.cr3 = s.cr3;
    sregs.cr4 = s.cr4;
    sregs.efer = s.efer;
}

pub fn from_kvm(regs: &kvm_regs, sregs: &kvm_sregs) -> CpuState {
    CpuState {
        gpr: [
            regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
            regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
        ],
        rip: regs.rip,
        rflags: regs.rflags,
        cs: from_kvm_seg(&sregs.cs),
        ds: from_kvm_seg(&sregs.ds),
        es: from_kvm_seg(&sregs.es),
        fs: from_kvm_seg(&sregs.fs),
        gs: from_kvm_seg(&sregs.gs),
        ss: from_kvm_seg(&sregs.ss),
        ldt: from_kvm_seg(&sregs.ldt),
        tr: from_kvm_seg(&sregs.tr),
        gdt: from_kvm_dt(&sregs.gdt),
        idt: from_kvm_dt(&sregs.idt),
        cr0: sregs.cr0,
        cr2: sregs.cr2,
        cr3: sregs.cr3,
        cr4: sregs.cr4,
        efer: sregs.efer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let mut s = CpuState::flat_protected(0x100000);
        s.gpr = std::array::from_fn(|i| i as u64 * 0x1111);
        s.efer = 0x500;
        let mut sregs = kvm_sregs::default();
        apply_sregs(&s, &mut sregs);
        assert_eq!(from_kvm(&to_kvm_regs(&s), &sregs), s);
    }
}
