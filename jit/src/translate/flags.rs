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
        if let Some(window) = self.remat_window(i) {
            // Pending in R15 as far as exits know: every slow path in the window puts
            // them there first.
            self.remat = Some(window);
            self.unmerged = written_flags(i);
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

    /// Whether the flags of `i` (just run on register copies, not captured yet) may be left
    /// to the slow paths (see `BlockBuilder::remat`): `i` is a 32- or 64-bit ADD, SUB, AND,
    /// OR, XOR, CMP or TEST of a copy with a copy or an immediate, whose flags a later
    /// instruction of the block overwrites all at once before anything could read them (no
    /// instruction writes some of them before); in between only instructions the copies
    /// stay dirty across (`keeps_copies`), run as host code,
    /// reading no flags, writing neither operand of `i`, whose memory operands are only
    /// read, or written by MOV (their slow paths are plain loads and stores, whose fault
    /// exits merge R15). Returns how to compute the flags again and the index of the
    /// instruction that overwrites the last of them.
    fn remat_window(&self, i: &Instruction) -> Option<(Remat, usize)> {
        let m = i.mnemonic();
        if !matches!(
            m,
            M::Add | M::Sub | M::And | M::Or | M::Xor | M::Cmp | M::Test
        ) {
            return None;
        }
        let size = op_size(i)?;
        if !matches!(size, 4 | 8) || i.op_kind(0) != OpKind::Register {
            return None;
        }
        let dst = self.cached(i.op_register(0))?;
        let (src, imm) = match i.op_kind(1) {
            OpKind::Register => (Some(self.cached(i.op_register(1))?), None),
            OpKind::Memory => return None,
            _ => (None, Some(i.immediate(1) as i32)),
        };
        // ADD and SUB take their input back from the result and the source.
        if matches!(m, M::Add | M::Sub) && src == Some(dst) {
            return None;
        }
        let operands: Vec<usize> = [Some(i.op_register(0)), src.map(|_| i.op_register(1))]
            .into_iter()
            .flatten()
            .filter_map(|r| gpr(r).map(|(idx, _, _)| idx))
            .collect();
        let mut factory = InstructionInfoFactory::new();
        let mut live = written_flags(i);
        for (k, n) in self.instrs.iter().enumerate().skip(self.at + 1) {
            if n.rflags_read() != 0
                || keeps_flags_sometimes(n)
                || native(n) != Some(Flow::Next)
                || !self.runs_natively(n)
                || !keeps_copies(n)
                || stores_back(n)
                || (n.op0_kind() == OpKind::Memory
                    && !matches!(n.mnemonic(), M::Mov | M::Cmp | M::Test))
            {
                return None;
            }
            let writes_operand = factory.info(n).used_registers().iter().any(|u| {
                !matches!(u.access(), OpAccess::Read | OpAccess::CondRead)
                    && gpr(u.register()).is_some_and(|(idx, _, _)| operands.contains(&idx))
            });
            if writes_operand {
                return None;
            }
            // The first instruction that writes flags must write them all: one that writes
            // some would have its capture overwritten by the slow path's, and INC and DEC
            // take CF from R15, where the operation's never went.
            let written = written_flags(n);
            if written != 0 && live & !written != 0 {
                return None;
            }
            live &= !written;
            if live == 0 {
                let remat = Remat {
                    m,
                    size,
                    dst,
                    src,
                    imm,
                };
                return Some((remat, k));
            }
        }
        None
    }

    /// The host's flags = those `r`'s operation left (its operands unchanged since, its
    /// result in its destination). Clobbers RAX.
    pub(super) fn rematerialize(&mut self, r: Remat) {
        macro_rules! op {
            ($op:ident, $reg:expr) => {
                match (r.size, r.src, r.imm) {
                    (4, Some(s), _) => dynasm!(self.ops ; .arch x64 ; $op Rd($reg), Rd(s)),
                    (_, Some(s), _) => dynasm!(self.ops ; .arch x64 ; $op Rq($reg), Rq(s)),
                    (4, None, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op Rd($reg), v),
                    (_, None, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op Rq($reg), v),
                    _ => unreachable!("a register or an immediate source"),
                }
            };
        }
        match r.m {
            M::Cmp => op!(cmp, r.dst),
            M::Test => op!(test, r.dst),
            // A logical operation's flags follow from its result (CF and OF clear, AF
            // undefined).
            M::And | M::Or | M::Xor => {
                if r.size == 4 {
                    dynasm!(self.ops ; .arch x64 ; test Rd(r.dst), Rd(r.dst));
                } else {
                    dynasm!(self.ops ; .arch x64 ; test Rq(r.dst), Rq(r.dst));
                }
            }
            // The input again (the result minus the source), then the operation itself.
            M::Add => {
                dynasm!(self.ops ; .arch x64 ; mov rax, Rq(r.dst));
                op!(sub, 0);
                op!(add, 0);
            }
            _ => {
                dynasm!(self.ops ; .arch x64 ; mov rax, Rq(r.dst));
                op!(add, 0);
                op!(sub, 0);
            }
        }
    }
}

/// How to compute an ALU operation's flags again (see `BlockBuilder::remat_window`).
#[derive(Clone, Copy)]
pub(super) struct Remat {
    m: M,
    size: u32,
    dst: u8,
    src: Option<u8>,
    imm: Option<i32>,
}
