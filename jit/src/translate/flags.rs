//! The guest's status flags in translated code: captured from the host's after each
//! operation into R15 (LAHF/SETO layout), kept there across blocks, loaded into the host's
//! for readers, and merged into RFLAGS only where something outside the block may read it.

use super::*;

/// iced's flag bits as RFLAGS bits (the six status flags).
pub(super) fn status_bits(iced: u32) -> u32 {
    [
        (RflagsBits::CF, 1 << 0),
        (RflagsBits::PF, 1 << 2),
        (RflagsBits::AF, 1 << 4),
        (RflagsBits::ZF, 1 << 6),
        (RflagsBits::SF, 1 << 7),
        (RflagsBits::OF, 1 << 11),
    ]
    .iter()
    .filter(|(rf, _)| iced & rf != 0)
    .fold(0, |f, (_, bit)| f | bit)
}

/// Where R15 (LAHF's AH in bits 8-15, SETO's AL in bit 0) keeps the status flags `flags`.
pub(super) fn lahf_bits(flags: u32) -> u32 {
    (flags & (STATUS_FLAGS & 0xff)) << 8 | u32::from(flags & OF != 0)
}

/// R15 = RFLAGS' six status flags in R15's layout (see `BlockBuilder::save_flags`), with
/// LAHF's always-set bit 1. Clobbers RAX. The trampoline runs this on every entry from the
/// dispatcher; blocks after flags went to RFLAGS on the way to a jump between blocks.
pub fn load_r15_from_rflags(ops: &mut Asm) {
    dynasm!(ops
        ; .arch x64
        ; mov eax, [r12 + FLAGS_AT]
        ; movzx r15d, al
        ; and r15d, (STATUS_FLAGS & 0xff) as i32
        ; shl r15d, 8
        ; or r15d, 0x200
        ; shr eax, 11
        ; and eax, 1
        ; or r15d, eax
    );
}

pub(super) fn written_flags(i: &Instruction) -> u32 {
    status_bits(i.rflags_modified())
}

impl BlockBuilder<'_> {
    /// The guest's status flags in `need` into the host's (for instructions that read
    /// them); the others become undefined. Keeps RAX, RCX and RDX; clobbers RSI and RDI.
    ///
    /// No POPFQ (microcoded, tens of cycles): CF alone is one BT; otherwise SAHF takes SF,
    /// ZF, AF, PF and CF from the low byte of RFLAGS, and OF, where needed, comes from an
    /// addition that overflows exactly when it is set.
    pub(super) fn load_flags(&mut self, need: u32) {
        if need & !self.unmerged == 0 {
            // All pending in R15: its bits 8-15 are SAHF's AH, and AL (OF: 0 or 1) plus
            // 0x7F overflows exactly when OF is set.
            if need & !CF == 0 {
                dynasm!(self.ops ; .arch x64 ; bt r15d, 8);
                return;
            }
            dynasm!(self.ops ; .arch x64 ; mov rdi, rax ; mov eax, r15d);
            if need & OF != 0 {
                dynasm!(self.ops ; .arch x64 ; add al, 0x7f);
            }
            dynasm!(self.ops ; .arch x64 ; sahf ; mov rax, rdi);
            return;
        }
        self.flush_flags();
        if need & !CF == 0 {
            dynasm!(self.ops ; .arch x64 ; bt DWORD [r12 + FLAGS_AT], 0);
            return;
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, rax
            ; mov eax, [r12 + FLAGS_AT]
        );
        if need & OF != 0 {
            // 0x80000000 + 0x80000000 overflows; 0 + 0x80000000 does not.
            dynasm!(self.ops
                ; .arch x64
                ; mov esi, eax
                ; shl eax, 8
                ; and esi, OF as i32
                ; shl esi, 20
                ; add esi, i32::MIN
            );
        } else {
            dynasm!(self.ops ; .arch x64 ; shl eax, 8);
        }
        dynasm!(self.ops
            ; .arch x64
            ; sahf
            ; mov rax, rdi
        );
    }

    /// The host's flags into R15 (right after the operation of `i`), pending until merged.
    ///
    /// R15 holds them as LAHF and SETO leave AX — RFLAGS' low byte (SF ZF AF PF CF) in bits
    /// 8–15, OF in bit 0 — which `merge_flags` puts back in RFLAGS' order: a few simple
    /// instructions where PUSHFQ is microcoded. Keeps RAX; clobbers RSI and RDI.
    pub(super) fn save_flags(&mut self, i: &Instruction) {
        self.capture_flags(i, true);
    }

    /// `save_flags` once RAX is free (the result stored): three instructions, no copies.
    pub(super) fn save_flags_free_rax(&mut self, i: &Instruction) {
        self.capture_flags(i, false);
    }

    pub(super) fn capture_flags(&mut self, i: &Instruction, keep_rax: bool) {
        let preloaded = std::mem::take(&mut self.preloaded);
        if self.flags_dead(i) {
            self.flags_in_host = 0;
            return;
        }
        let written = written_flags(i);
        if written == 0 {
            // Nothing to keep (NOT): R15 and RFLAGS stay as they were.
            self.flags_in_host = 0;
            return;
        }
        // The host's flags hold the guest's for these (`preloaded`): R15 is replaced whole.
        let whole = written | preloaded;
        if !keep_rax && self.unmerged & !whole == 0 {
            dynasm!(self.ops
                ; .arch x64
                ; lahf
                ; seto al
                ; movzx r15d, ax
            );
            self.flags_in_host = written;
            self.unmerged = whole;
            return;
        }
        if keep_rax {
            dynasm!(self.ops ; .arch x64 ; mov rsi, rax);
        }
        dynasm!(self.ops
            ; .arch x64
            ; lahf
            ; seto al
            ; movzx edi, ax
        );
        if keep_rax {
            dynasm!(self.ops ; .arch x64 ; mov rax, rsi);
        }
        if self.unmerged & !whole != 0 {
            // Some of the earlier flags survive this instruction: R15 keeps them and takes
            // the new ones (RDI) beside them.
            let new = lahf_bits(whole) as i32;
            dynasm!(self.ops
                ; .arch x64
                ; and edi, new
                ; and r15d, !new
                ; or r15d, edi
            );
            self.flags_in_host = 0;
            self.unmerged |= whole;
        } else {
            dynasm!(self.ops ; .arch x64 ; mov r15, rdi);
            self.flags_in_host = written;
            self.unmerged = whole;
        }
    }

    /// R15 gets all six status flags, as every jump between blocks leaves them: the ones
    /// not pending come from RFLAGS (the pending ones merged there first). A block starts
    /// with them there (`build`; the trampoline loads them on entry from the dispatcher),
    /// so a block whose flags all came from its own instructions passes them on without
    /// touching RFLAGS. Clobbers RAX, RSI and RDI, and the host's flags.
    pub(super) fn complete_flags(&mut self) {
        if self.unmerged == STATUS_FLAGS {
            return;
        }
        self.merge_flags_free_rax(self.unmerged);
        load_r15_from_rflags(self.ops);
        self.unmerged = STATUS_FLAGS;
    }

    /// The flags of POPCNT, LZCNT or TZCNT (just run by the host, the result stored): ZF
    /// and CF as the host left them, the ones the manual leaves undefined cleared, as the
    /// interpreter does — and LAHF's always-set bit 1 kept (RFLAGS' reserved bit, which
    /// `merge_flags_free_rax` stores with the rest of the byte).
    pub(super) fn save_bit_count_flags(&mut self, i: &Instruction) {
        self.flags_in_host = 0;
        if self.flags_dead(i) {
            return;
        }
        // Every status flag is written: the pending ones are all replaced.
        dynasm!(self.ops
            ; .arch x64
            ; lahf
            ; seto al
            ; movzx r15d, ax
            ; and r15d, 0x4300
        );
        self.unmerged = written_flags(i);
    }

    /// Whether the flags `i` writes are dead: the next instruction in the block overwrites
    /// them all with nothing in between that could read them — it reads no flags (not even
    /// as translated: a shift whose count may be zero keeps them), has no memory operand
    /// (no helper, no fault whose exit would need them) and continues the block; and `i`
    /// itself stores nothing to memory (a store into the block's own code would end the
    /// block right after `i`, needing its flags).
    ///
    /// Looks past instructions with nothing but register and immediate operands that
    /// neither read flags nor can fault (see [`flag_transparent`]): the flags are dead when
    /// such instructions, between them, overwrite them all before anything else comes.
    pub(super) fn flags_dead(&self, i: &Instruction) -> bool {
        if i.op0_kind() == OpKind::Memory {
            return false;
        }
        let mut live = written_flags(i);
        for n in &self.instrs[self.at + 1..] {
            if !flag_transparent(n) {
                return false;
            }
            live &= !written_flags(n);
            if live == 0 {
                return true;
            }
        }
        false
    }

    /// After an instruction whose flags `save_flags` left in the host's flags and nothing
    /// clobbered since (no store to memory): a Jcc, CMOVcc or SETcc right after it that
    /// tests only those reads them there (see [`tests_host_flags`]) — no round trip through
    /// RFLAGS. A Jcc's two ways both merge them.
    pub(super) fn fuse_with_next(&mut self, stored_to_memory: bool) {
        let live = std::mem::take(&mut self.flags_in_host);
        if !stored_to_memory
            && live != 0
            && self.next.is_some_and(|n| {
                tests_host_flags(&n) && native(&n).is_some() && jcc_flags(&n) & !live == 0
            })
        {
            self.live_flags = live;
        }
    }

    /// RFLAGS gets the flags pending in R15.
    pub(super) fn flush_flags(&mut self) {
        self.merge_flags(self.unmerged);
        self.unmerged = 0;
        // Part way through an instruction, its fault exit has nothing left to merge.
        self.before = 0;
    }

    /// `flush_flags` where RAX is free (between instructions, on the way out).
    pub(super) fn flush_flags_free_rax(&mut self) {
        self.merge_flags_free_rax(self.unmerged);
        self.unmerged = 0;
        self.before = 0;
    }

    /// `merge_flags` where RAX is free: when `which` has all five flags of RFLAGS' low
    /// byte, that byte is R15's bits 8–15 as they are (LAHF's AH), and OF one bit moved —
    /// half the instructions of the general merge. Clobbers RAX, RSI and RDI.
    pub(super) fn merge_flags_free_rax(&mut self, which: u32) {
        const LOW: u32 = STATUS_FLAGS & 0xff;
        if which & LOW != LOW {
            self.merge_flags(which);
            return;
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, r15d
            ; lea rsi, [r12 + FLAGS_AT]
            ; mov [rsi], ah
        );
        if which & OF != 0 {
            dynasm!(self.ops
                ; .arch x64
                ; shl al, 3
                ; and BYTE [rsi + 1], !8i8
                ; or [rsi + 1], al
            );
        }
    }

    /// RFLAGS = RFLAGS with the flags in `which` from R15 (see `save_flags` for its layout),
    /// which stays as it was: a fault exit may merge flags a flush already merged. Clobbers
    /// RSI and RDI.
    pub(super) fn merge_flags(&mut self, which: u32) {
        if which != 0 {
            dynasm!(self.ops ; .arch x64 ; mov edi, r15d);
            self.merge_flags_from(which, 7);
        }
    }

    /// RFLAGS = RFLAGS with the flags in `which` from register `src` (R15's layout), which
    /// it clobbers, with RSI.
    pub(super) fn merge_flags_from(&mut self, which: u32, src: u8) {
        if which == 0 {
            return;
        }
        if which & OF != 0 {
            dynasm!(self.ops
                ; .arch x64
                ; mov esi, Rd(src)
                ; shr esi, 8
                ; and Rd(src), 1
                ; shl Rd(src), 11
                ; or Rd(src), esi
            );
        } else {
            dynasm!(self.ops ; .arch x64 ; shr Rd(src), 8);
        }
        let (keep, take) = (!(which as i32), which as i32);
        dynasm!(self.ops
            ; .arch x64
            ; mov rsi, [r12 + FLAGS_AT]
            ; and rsi, keep
            ; and Rd(src), take
            ; or rsi, Rq(src)
            ; mov [r12 + FLAGS_AT], rsi
        );
    }
}
