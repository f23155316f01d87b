//! String instructions (REP STOS/MOVS as the host's inside a page) and the interpreter run
//! in place inside a block.

use super::*;

impl BlockBuilder<'_> {
    /// REP STOS / REP MOVS as the host's own, when DF is clear, the count is at most a page
    /// of elements and the destination (and source) bytes lie inside one page each that the
    /// soft TLB maps (a store: no decoded code there), and a copy's destination does not
    /// start inside its source above it (element order would show); else the interpreter
    /// runs it in place (which may stop part way: then the block ends there). With 32-bit
    /// addressing (32-bit code, flat) ECX, EDI and ESI are the count and offsets, and they
    /// are written back zero-extended, as the interpreter's `advance` does.
    pub(super) fn rep_string(&mut self, i: &Instruction, k: u32, elem: u32, movs: bool) {
        let asz32 = i.op0_kind() == OpKind::MemoryESEDI;
        // The interpreter's way may leave the block with RIP at this instruction (a REP it
        // stops part way): pending flags go to RFLAGS first.
        self.flush_flags();
        let (slow, back) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let (max, shift) = ((0x1000 / elem) as i32, elem.trailing_zeros() as i8);
        let df = 1 << 10;
        self.load_gpr64(1, true);
        if asz32 {
            dynasm!(self.ops ; .arch x64 ; mov eax, eax);
        }
        // No elements: nothing happens (whatever DF is).
        dynasm!(self.ops
            ; .arch x64
            ; test rax, rax
            ; jz =>back
            ; test DWORD [r12 + FLAGS_AT], df
            ; jnz =>slow
            ; cmp rax, max
            ; ja =>slow
            ; mov [rbx + SCRATCH1], rax
        );
        // RCX = where the last element ends, within the page of the address in RDX.
        let in_page = |b: &mut Self| {
            dynasm!(b.ops
                ; .arch x64
                ; mov ecx, edx
                ; and ecx, 0xfff
                ; shl rax, shift
                ; add rcx, rax
                ; shr rax, shift
                ; cmp rcx, 0x1000
                ; ja =>slow
            );
        };
        self.load_gpr64(7, false);
        if asz32 {
            dynasm!(self.ops ; .arch x64 ; mov edx, edx);
        }
        in_page(self);
        let es = emu_core::interp::cpu::sreg::ES as i32;
        self.tlb_lookup(es, 1, true, slow);
        if movs {
            dynasm!(self.ops ; .arch x64 ; mov r8, rsi);
            self.load_gpr64(6, false);
            if asz32 {
                dynasm!(self.ops ; .arch x64 ; mov edx, edx);
            }
            in_page(self);
            let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
            self.tlb_lookup(seg, 1, false, slow);
            // Slow if source < destination < source + bytes.
            dynasm!(self.ops
                ; .arch x64
                ; mov rcx, rax
                ; shl rcx, shift
                ; add rcx, rsi
                ; cmp r8, rsi
                ; jbe >apart
                ; cmp r8, rcx
                ; jb =>slow
                ; apart:
                ; mov rdi, r8
                ; mov rcx, rax
            );
            match elem {
                1 => dynasm!(self.ops ; .arch x64 ; rep movsb),
                2 => dynasm!(self.ops ; .arch x64 ; rep movsw),
                4 => dynasm!(self.ops ; .arch x64 ; rep movsd),
                _ => dynasm!(self.ops ; .arch x64 ; rep movsq),
            }
        } else {
            dynasm!(self.ops ; .arch x64 ; mov rdi, rsi ; mov rcx, rax);
            self.load_gpr64(0, true);
            match elem {
                1 => dynasm!(self.ops ; .arch x64 ; rep stosb),
                2 => dynasm!(self.ops ; .arch x64 ; rep stosw),
                4 => dynasm!(self.ops ; .arch x64 ; rep stosd),
                _ => dynasm!(self.ops ; .arch x64 ; rep stosq),
            }
        }
        // RDI (and RSI) past the elements, RCX = 0.
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, [rbx + SCRATCH1]
            ; shl rax, shift
            ; mov QWORD [r12 + 8], 0
        );
        let regs: &[i32] = if movs { &[56, 48] } else { &[56] };
        for &off in regs {
            if asz32 {
                // Within one page below 4 GiB: no carry out of the low half.
                dynasm!(self.ops
                    ; .arch x64
                    ; add DWORD [r12 + off], eax
                    ; mov DWORD [r12 + off + 4], 0
                );
            } else {
                dynasm!(self.ops ; .arch x64 ; add [r12 + off], rax);
            }
        }
        if movs {
            self.refresh(6);
        }
        self.refresh(7);
        self.refresh(1);
        dynasm!(self.ops ; .arch x64 ; jmp =>back ; =>slow);
        self.interpret_string(i, k, Some(movs));
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The instruction at RIP through the interpreter (see [`interpreted`]).
    pub(super) fn interpret(&mut self, i: &Instruction, k: u32) {
        self.interpret_string(i, k, None);
    }

    /// [`Self::interpret`]; for a REP STOS/MOVS (`string`: whether it is a MOVS), the
    /// soft TLB then gets the pages its destination (and source) started in, so its next
    /// run finds them inline.
    pub(super) fn interpret_string(&mut self, i: &Instruction, k: u32, string: Option<bool>) {
        let (at, next) = (i.ip() as i64, i.next_ip() as i64);
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, QWORD at
            ; mov [r12 + RIP_AT], rax
            ; mov rdi, rbx
        );
        match string {
            None => {
                let f = helpers::interpret_decoded as *const () as usize as i64;
                let index = (self.env.decoded_base + self.decoded.len()) as i32;
                self.decoded.push(*i);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov esi, index
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            Some(movs) => {
                let f = helpers::interpret_string as *const () as usize as i64;
                let src_seg = if movs {
                    seg_index(i.memory_segment()).unwrap_or(3) as i32
                } else {
                    -1
                };
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rsi, QWORD i64::from(src_seg)
                    ; mov rdx, [r12 + 56]
                    ; mov rcx, [r12 + 48]
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
        }
        self.reload_cached();
        self.interpreting = true;
        self.check(i, k);
        self.interpreting = false;
        // An instruction that did not end at the next one (a REP string instruction the
        // interpreter interrupts part way) leaves the block where it stopped.
        let count = (k + 1) as i32;
        let on = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, QWORD next
            ; cmp [r12 + RIP_AT], rax
            ; je =>on
            ; add QWORD [rbx + RETIRED], count
        );
        self.jmp_exit();
        dynasm!(self.ops ; .arch x64 ; =>on);
    }
}
