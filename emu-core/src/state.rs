//! Architectural register state in a backend-neutral form.
//!
//! Loaders describe the CPU state a kernel expects at its entry point with [`CpuState`]; each
//! backend translates it into its own representation (KVM's `kvm_regs`/`kvm_sregs`, the
//! interpreter's registers).

/// A segment register with its hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    /// Byte-granular limit (already scaled when the descriptor's G bit is set).
    pub limit: u32,
    /// Descriptor type (4 bits: for code/data, bit 3 = code, bit 1 = writable/readable,
    /// bit 0 = accessed; for system segments, the system type).
    pub type_: u8,
    /// S: 1 for code/data, 0 for system segments.
    pub s: bool,
    pub dpl: u8,
    pub present: bool,
    /// L: 64-bit code segment.
    pub l: bool,
    /// D/B: 32-bit default operand size / stack size.
    pub db: bool,
    /// G: limit granularity is 4 KiB.
    pub g: bool,
    pub avl: bool,
    /// Unusable (null selector loaded); KVM needs to know.
    pub unusable: bool,
}

impl Segment {
    /// A real-mode segment: base = selector × 16, 64 KiB limit.
    pub fn real_mode(selector: u16, code: bool) -> Self {
        Segment {
            selector,
            base: u64::from(selector) << 4,
            limit: 0xffff,
            type_: if code { 0xb } else { 0x3 },
            s: true,
            present: true,
            ..Default::default()
        }
    }

    /// A flat 4 GiB protected-mode segment at DPL 0.
    pub fn flat32(selector: u16, code: bool) -> Self {
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            type_: if code { 0xb } else { 0x3 },
            s: true,
            present: true,
            db: true,
            g: true,
            ..Default::default()
        }
    }

    /// A 64-bit code segment (L=1, D=0) at DPL 0.
    pub fn code64(selector: u16) -> Self {
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            type_: 0xb,
            s: true,
            present: true,
            l: true,
            g: true,
            ..Default::default()
        }
    }

    /// A busy 32/64-bit TSS, as `LTR` leaves it.
    pub fn tss(selector: u16, base: u64, limit: u32) -> Self {
        Segment {
            selector,
            base,
            limit,
            type_: 0xb,
            present: true,
            ..Default::default()
        }
    }

    /// The access-rights byte pair of the descriptor (bits 8..24 of the high dword), as
    /// `LAR` returns it and GDT entries store it.
    pub fn attributes(&self) -> u16 {
        u16::from(self.type_ & 0xf)
            | (u16::from(self.s) << 4)
            | (u16::from(self.dpl & 3) << 5)
            | (u16::from(self.present) << 7)
            | (u16::from(self.avl) << 12)
            | (u16::from(self.l) << 13)
            | (u16::from(self.db) << 14)
            | (u16::from(self.g) << 15)
    }

    /// The 8-byte descriptor that loads into this segment (bases and limits above 32 bits
    /// are dropped; 64-bit system descriptors need a second slot that this does not build).
    pub fn to_descriptor(&self) -> u64 {
        let limit = if self.g { self.limit >> 12 } else { self.limit };
        let base = self.base as u32;
        let attrs = u64::from(self.attributes());
        u64::from(limit & 0xffff)
            | (u64::from(base & 0xff_ffff) << 16)
            | ((attrs & 0xff) << 40)
            | (u64::from((limit >> 16) & 0xf) << 48)
            | (((attrs >> 12) & 0xf) << 52)
            | (u64::from(base >> 24) << 56)
    }
}

/// GDTR / IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// Control-register bits the loaders and backends name.
pub mod bits {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_MP: u64 = 1 << 1;
    pub const CR0_ET: u64 = 1 << 4;
    pub const CR0_NE: u64 = 1 << 5;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const EFER_SCE: u64 = 1 << 0;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_NXE: u64 = 1 << 11;
    /// RFLAGS bit 1 always reads as one.
    pub const RFLAGS_FIXED: u64 = 1 << 1;
}

/// The registers a loader sets before the first instruction, and that a backend can report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8–R15, in encoding order.
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub ldt: Segment,
    pub tr: Segment,
    pub gdt: DescriptorTable,
    pub idt: DescriptorTable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// Indices into [`CpuState::gpr`].
pub mod reg {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
}

impl CpuState {
    /// The state after RESET/INIT: real mode at F000:FFF0 with CS.base = 0xFFFF0000.
    pub fn reset() -> Self {
        let mut cs = Segment::real_mode(0xf000, true);
        cs.base = 0xffff_0000;
        let data = Segment::real_mode(0, false);
        CpuState {
            gpr: [0; 16],
            rip: 0xfff0,
            rflags: bits::RFLAGS_FIXED,
            cs,
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            ldt: Segment {
                type_: 2,
                present: true,
                limit: 0xffff,
                ..Default::default()
            },
            tr: Segment {
                type_: 0xb,
                present: true,
                limit: 0xffff,
                ..Default::default()
            },
            gdt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            idt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: bits::CR0_ET,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            efer: 0,
        }
    }

    /// 32-bit protected mode with flat segments (selectors 0x10 code, 0x18 data, as the Linux
    /// boot protocol and Multiboot describe), paging off, interrupts off.
    pub fn flat_protected(entry: u32) -> Self {
        let mut s = Self::reset();
        s.cs = Segment::flat32(0x10, true);
        let data = Segment::flat32(0x18, false);
        s.ds = data;
        s.es = data;
        s.fs = data;
        s.gs = data;
        s.ss = data;
        s.tr = Segment::tss(0, 0, 0xffff);
        s.rip = u64::from(entry);
        s.cr0 = bits::CR0_PE | bits::CR0_ET;
        s
    }

    pub fn is_long_mode(&self) -> bool {
        self.efer & bits::EFER_LMA != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_code_descriptor_matches_the_classic_encoding() {
        // 0x00cf9b000000ffff is the canonical flat ring-0 32-bit code descriptor (accessed).
        assert_eq!(
            Segment::flat32(0x10, true).to_descriptor(),
            0x00cf_9b00_0000_ffff
        );
        assert_eq!(
            Segment::flat32(0x18, false).to_descriptor(),
            0x00cf_9300_0000_ffff
        );
        assert_eq!(Segment::code64(0x10).to_descriptor(), 0x00af_9b00_0000_ffff);
    }

    #[test]
    fn reset_state_starts_at_the_reset_vector() {
        let s = CpuState::reset();
        assert_eq!(s.cs.base + s.rip, 0xffff_fff0);
        assert!(!s.is_long_mode());
    }
}
