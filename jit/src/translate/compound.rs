//! Instructions with more to them than one host instruction: the atomics on the soft TLB's
//! host address, BT on memory, multiply and divide.

use super::*;

impl BlockBuilder<'_> {
    /// CMPXCHG with a memory destination as the host's LOCK CMPXCHG on the soft TLB's
    /// host address (atomic whatever the prefix, which the guest cannot tell from a plain
    /// one); a miss or a misaligned operand (see `atomic_operand`) runs the whole instruction
    /// on the interpreter. Flags go to RFLAGS on both ways (pending flags were merged
    /// first).
    pub(super) fn cmpxchg(&mut self, i: &Instruction, k: u32, size: u32) {
        let back = self.atomic_operand(i, k, size);
        self.load_reg(i.op_register(1), true);
        dynasm!(self.ops ; .arch x64 ; mov rax, [r12]);
        if size == 4 {
            dynasm!(self.ops ; .arch x64 ; lock cmpxchg [rsi], ecx);
        } else {
            dynasm!(self.ops ; .arch x64 ; lock cmpxchg [rsi], rcx);
        }
        // A failed 32-bit compare zero-extends into RAX, as on the guest.
        dynasm!(self.ops
            ; .arch x64
            ; mov rdx, rax
            ; lahf
            ; seto al
            ; movzx edi, ax
            ; mov [r12], rdx
        );
        self.merge_flags_from(written_flags(i), 7);
        dynasm!(self.ops ; .arch x64 ; =>back);
        self.refresh(0);
    }

    /// RSI = the host address of an atomic instruction's memory operand, looked up for
    /// writing and aligned to `size`; else the whole instruction runs on the interpreter
    /// (which fills the soft TLB), coming back to the label returned. A misaligned operand
    /// may straddle cache lines: a split lock on the host (a fault under split-lock
    /// detection, a system-wide stall otherwise), where the interpreter stops the other
    /// vCPUs instead.
    pub(super) fn atomic_operand(&mut self, i: &Instruction, k: u32, size: u32) -> DynamicLabel {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        self.effective_address(i);
        let (slow, back) = self.slow_path_for(
            i,
            k,
            SlowCall::Interpret {
                fill: Some((seg, true)),
            },
            false,
        );
        self.tlb_lookup(seg, size, true, slow);
        let mask = size as i32 - 1;
        dynasm!(self.ops ; .arch x64 ; test esi, mask ; jnz =>slow);
        back
    }

    /// XCHG with memory as the host's (always atomic) XCHG on the soft TLB's host address;
    /// a miss or a misaligned operand runs it on the interpreter.
    pub(super) fn xchg_memory(&mut self, i: &Instruction, k: u32, size: u32) {
        let back = self.atomic_operand(i, k, size);
        self.load_reg(i.op_register(1), false);
        if size == 4 {
            dynasm!(self.ops ; .arch x64 ; xchg [rsi], eax);
        } else {
            dynasm!(self.ops ; .arch x64 ; xchg [rsi], rax);
        }
        self.store_reg(i.op_register(1));
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// BT on memory: with an immediate, the bit (modulo the operand size) of the operand;
    /// with a register, the bit string starting there — the register's signed value picks
    /// the operand-sized element (its address may be far below or above) and the bit in it.
    pub(super) fn bit_test_memory(&mut self, i: &Instruction, k: u32, size: u32) {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let bits = 8 * size;
        self.effective_address(i);
        if i.op_kind(1) == OpKind::Register {
            let (r, _, _) = gpr(i.op_register(1)).expect("checked");
            let off_r = 8 * r as i32;
            match size {
                2 => dynasm!(self.ops ; .arch x64 ; movsx rax, WORD [r12 + off_r]),
                4 => dynasm!(self.ops ; .arch x64 ; movsxd rax, DWORD [r12 + off_r]),
                _ => dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]),
            }
            let (shift, mask) = (bits.trailing_zeros() as i8, (bits - 1) as i32);
            dynasm!(self.ops
                ; .arch x64
                ; mov rcx, rax
                ; sar rax, shift
                ; and ecx, mask
                ; mov [rbx + SCRATCH1], rcx
            );
            match size {
                2 => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 2]),
                4 => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 4]),
                _ => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 8]),
            }
            if wraps32(i) {
                dynasm!(self.ops ; .arch x64 ; mov edx, edx);
            }
            self.mem_load(i, k, seg, size);
            dynasm!(self.ops ; .arch x64 ; mov rcx, [rbx + SCRATCH1] ; bt rax, rcx);
        } else {
            let bit = (i.immediate8() as u32 & (bits - 1)) as i8;
            self.mem_load(i, k, seg, size);
            dynasm!(self.ops ; .arch x64 ; bt rax, bit);
        }
        self.save_flags(i);
    }

    /// A one-operand multiply's RDX:RAX (AX for bytes) to the guest's registers.
    pub(super) fn store_product(&mut self, size: u32) {
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; mov [r12], ax),
            2 => dynasm!(self.ops ; .arch x64 ; mov [r12], ax ; mov [r12 + 16], dx),
            // 32-bit results are zero-extended in the host registers already.
            _ => dynasm!(self.ops ; .arch x64 ; mov [r12], rax ; mov [r12 + 16], rdx),
        }
        self.refresh(0);
        self.refresh(2);
    }

    /// DIV: a zero divisor or a quotient too large for its register (#DE) goes to the
    /// interpreter, which raises it; the host divides everything else. The flags are left
    /// as they were (all undefined), as the interpreter does.
    pub(super) fn divide(&mut self, i: &Instruction, k: u32, size: u32) {
        self.load_dest(i, k, size);
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Interpret { fill: None }, false);
        dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
        match size {
            1 => dynasm!(self.ops
                ; .arch x64
                ; movzx eax, WORD [r12]
                ; test cl, cl
                ; jz =>slow
                ; cmp ah, cl
                ; jae =>slow
                ; div cl
                ; mov [r12], ax
            ),
            2 => dynasm!(self.ops
                ; .arch x64
                ; movzx eax, WORD [r12]
                ; movzx edx, WORD [r12 + 16]
                ; test cx, cx
                ; jz =>slow
                ; cmp dx, cx
                ; jae =>slow
                ; div cx
                ; mov [r12], ax
                ; mov [r12 + 16], dx
            ),
            4 => dynasm!(self.ops
                ; .arch x64
                ; mov eax, [r12]
                ; mov edx, [r12 + 16]
                ; test ecx, ecx
                ; jz =>slow
                ; cmp edx, ecx
                ; jae =>slow
                ; div ecx
                ; mov [r12], rax
                ; mov [r12 + 16], rdx
            ),
            _ => dynasm!(self.ops
                ; .arch x64
                ; mov rax, [r12]
                ; mov rdx, [r12 + 16]
                ; test rcx, rcx
                ; jz =>slow
                ; cmp rdx, rcx
                ; jae =>slow
                ; div rcx
                ; mov [r12], rax
                ; mov [r12 + 16], rdx
            ),
        }
        self.refresh(0);
        self.refresh(2);
        dynasm!(self.ops ; .arch x64 ; =>back);
    }
}
