//! Guest memory from translated code: effective addresses, the inline soft-TLB lookup and
//! the out-of-line slow paths that call the interpreter's helpers (faults, MMIO, misses).

use super::*;

impl BlockBuilder<'_> {
    /// RDX = the offset of `i`'s memory operand (its segment is applied by the helper).
    pub(super) fn effective_address(&mut self, i: &Instruction) {
        // 32-bit addressing (32-bit code, or an address-size prefix in 64-bit code) wraps
        // at 4 GiB: the displacement as a signed 32-bit value, the sum truncated below.
        let (wraps16, wraps32) = (addr16(i), wraps32(i));
        let disp = if i.is_ip_rel_memory_operand() {
            i.ip_rel_memory_address() as i64
        } else if wraps16 {
            i64::from(i.memory_displacement32() as i16)
        } else if wraps32 {
            i64::from(i.memory_displacement32() as i32)
        } else {
            i.memory_displacement64() as i64
        };
        let base = gpr(i.memory_base()).map(|(b, _, _)| b);
        let index = gpr(i.memory_index()).map(|(x, _, _)| x);
        match (base, index, i32::try_from(disp)) {
            // One LEA for base + index * scale + disp32, on the registers' host copies
            // where they have them (else RDX holds the base, RAX the index).
            (b, Some(x), Ok(d)) => {
                let xr = self.host[x].unwrap_or_else(|| {
                    self.load_gpr64(x, true);
                    0
                });
                let br = b.map(|b| {
                    self.host[b].unwrap_or_else(|| {
                        self.load_gpr64(b, false);
                        2
                    })
                });
                match (br, i.memory_index_scale()) {
                    (Some(br), 1) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) + d]),
                    (Some(br), 2) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 2 + d])
                    }
                    (Some(br), 4) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 4 + d])
                    }
                    (Some(br), _) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 8 + d])
                    }
                    (None, 1) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) + d]),
                    (None, 2) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 2 + d]),
                    (None, 4) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 4 + d]),
                    (None, _) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 8 + d]),
                }
            }
            (Some(b), None, Ok(d)) => match self.host[b] {
                Some(h) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(h) + d]),
                None => {
                    self.load_gpr64(b, false);
                    if d != 0 {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + d]);
                    }
                }
            },
            (None, None, Ok(d)) => dynasm!(self.ops ; .arch x64 ; mov rdx, d),
            // A displacement beyond 32 bits (RIP-relative or absolute, far from zero).
            (b, x, Err(_)) => {
                if let Some(x) = x {
                    let shift = i.memory_index_scale().trailing_zeros() as i8;
                    self.load_gpr64(x, true);
                    dynasm!(self.ops ; .arch x64 ; shl rax, shift);
                } else {
                    dynasm!(self.ops ; .arch x64 ; xor eax, eax);
                }
                match b {
                    Some(b) => self.load_gpr64(b, false),
                    None => dynasm!(self.ops ; .arch x64 ; xor edx, edx),
                }
                dynasm!(self.ops
                    ; .arch x64
                    ; add rdx, rax
                    ; mov rax, QWORD disp
                    ; add rdx, rax
                );
            }
        }
        if wraps16 {
            dynasm!(self.ops ; .arch x64 ; movzx edx, dx);
        } else if wraps32 {
            dynasm!(self.ops ; .arch x64 ; mov edx, edx);
        }
    }

    /// RAX = the memory operand (`size` bytes, zero-extended); with `keep`, its offset
    /// stays in scratch 0 (for a store back to it).
    pub(super) fn load_mem(&mut self, i: &Instruction, k: u32, size: u32, keep: bool) {
        self.effective_address(i);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        if keep {
            dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rdx);
        }
        self.mem_load(i, k, seg, size);
    }

    /// RAX = the memory operand of a read-modify-write instruction (`stores_back`), through
    /// one soft-TLB lookup for writing (a writable page is readable too), its host address
    /// kept in scratch 0 for the store. A miss runs the whole instruction on the interpreter
    /// (which fills the entry) and comes back after the store (`store_dest`), with R15
    /// loaded from the flags it left, so flags are pending in R15 after either way.
    pub(super) fn rmw_load(&mut self, i: &Instruction, k: u32, size: u32) {
        // The interpreter reads RFLAGS (a shift by zero leaves the flags before it, which
        // iced then counts as unwritten).
        self.flush_flags();
        self.effective_address(i);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let (slow, back) = self.slow_path_for(
            i,
            k,
            SlowCall::Interpret {
                fill: Some((seg, true)),
            },
            false,
        );
        if written_flags(i) != 0 {
            if let Some(s) = self.slow.last_mut() {
                s.flags_to_r15 = true;
            }
        }
        self.tlb_lookup(seg, size, true, slow);
        dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rsi);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [rsi]),
            2 => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [rsi]),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rsi]),
            _ => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD [rsi]),
        }
        self.rmw_back = Some(back);
    }

    /// Stores RAX's low `size` bytes to the memory operand whose offset is in scratch 0.
    pub(super) fn store_mem(&mut self, i: &Instruction, k: u32, size: u32) {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        dynasm!(self.ops ; .arch x64 ; mov rdx, [rbx + SCRATCH0]);
        self.mem_store(i, k, seg, size);
    }

    /// RSI = the host address of the `size` bytes at `seg`:RDX, through the soft TLB, or a
    /// jump to `slow` (a miss, a page-crossing access, a store to a page with decoded code).
    /// Keeps RAX and RDX; clobbers RCX and RDI.
    pub(super) fn tlb_lookup(&mut self, seg: i32, size: u32, write: bool, slow: DynamicLabel) {
        let fs_gs = seg == emu_core::interp::cpu::sreg::FS as i32
            || seg == emu_core::interp::cpu::sreg::GS as i32;
        let base = SEG_BASE + 8 * seg;
        // 16-bit code adds every segment's base and checks its limit; 32-bit code FS's and
        // GS's (its others are flat); 64-bit code adds FS's and GS's base only.
        let segmented = match self.env.bits {
            16 => true,
            32 => fs_gs,
            _ => false,
        };
        if segmented {
            // The last byte's offset within the segment's limit (RDX is zero-extended, so
            // an access wrapping past 4 GiB fails too), then the base added with 32-bit
            // wrap-around, as the interpreter's `seg_linear`.
            let (last, end) = (
                size as i32 - 1,
                SEG_ENDS + 16 * seg + if write { 8 } else { 0 },
            );
            dynasm!(self.ops
                ; .arch x64
                ; lea rcx, [rdx + last]
                ; cmp rcx, [rbx + end]
                ; jae =>slow
                ; mov esi, edx
                ; add esi, [rbx + base]
            );
        } else if fs_gs {
            dynasm!(self.ops
                ; .arch x64
                ; mov rsi, rdx
                ; add rsi, [rbx + base]
            );
        }
        // The linear address: RSI where a base was added, else RDX itself.
        let linear = if fs_gs || segmented { 6 } else { 2 };
        // RDI = the entry's offset in the table: the page number's low bits, scaled.
        let (mask, shift, last) = (
            ((tlb::ENTRIES - 1) << tlb::ENTRY_SHIFT) as i32,
            (12 - tlb::ENTRY_SHIFT) as i8,
            size as i32 - 1,
        );
        // The tag is compared with the last byte's page, indexed by the first byte's: an
        // access crossing pages can never match (consecutive pages have different indices).
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, Rq(linear)
            ; shr rdi, shift
            ; and edi, mask
        );
        if last == 0 {
            dynasm!(self.ops ; .arch x64 ; mov rcx, Rq(linear));
        } else {
            dynasm!(self.ops ; .arch x64 ; lea rcx, [Rq(linear) + last]);
        }
        dynasm!(self.ops ; .arch x64 ; and rcx, -4096);
        if write {
            dynasm!(self.ops
                ; .arch x64
                ; cmp rcx, [rbp + rdi + tlb::WRITE_TAG]
                ; jne =>slow
                ; mov rcx, [rbp + rdi + tlb::CODE]
                ; test BYTE [rcx], 1
                ; jnz =>slow
            );
        } else {
            dynasm!(self.ops
                ; .arch x64
                ; cmp rcx, [rbp + rdi + tlb::READ_TAG]
                ; jne =>slow
            );
        }
        if linear == 6 {
            dynasm!(self.ops ; .arch x64 ; add rsi, [rbp + rdi + tlb::ADDEND]);
        } else {
            dynasm!(self.ops
                ; .arch x64
                ; mov rsi, [rbp + rdi + tlb::ADDEND]
                ; add rsi, rdx
            );
        }
    }

    /// Registers a slow path and returns its label and the label to come back to.
    pub(super) fn slow_path_for(
        &mut self,
        i: &Instruction,
        k: u32,
        call: SlowCall,
        fault_only: bool,
    ) -> (DynamicLabel, DynamicLabel) {
        let (label, back) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        self.slow.push(Slow {
            label,
            back,
            call,
            instr: *i,
            k,
            before: self.before,
            unmerged: self.unmerged,
            fault_only,
            flags_to_r15: false,
            dirty: self.dirty,
            remat: self.remat.map(|(r, _)| r),
        });
        (label, back)
    }

    /// RAX = the `size` bytes at `seg`:RDX, zero-extended.
    pub(super) fn mem_load(&mut self, i: &Instruction, k: u32, seg: i32, size: u32) {
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Load { seg, size }, false);
        self.tlb_lookup(seg, size, false, slow);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [rsi]),
            2 => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [rsi]),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rsi]),
            _ => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD [rsi]),
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The `size` bytes at `seg`:RDX = RAX's low bytes.
    pub(super) fn mem_store(&mut self, i: &Instruction, k: u32, seg: i32, size: u32) {
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Store { seg, size }, false);
        self.tlb_lookup(seg, size, true, slow);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; mov BYTE [rsi], al),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [rsi], ax),
            4 => dynasm!(self.ops ; .arch x64 ; mov DWORD [rsi], eax),
            _ => dynasm!(self.ops ; .arch x64 ; mov QWORD [rsi], rax),
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// EDX = ESP (SP in 16-bit code), zero-extended: 32- and 16-bit code's stack pointer.
    pub(super) fn load_sp(&mut self) {
        match (self.host[4], self.env.bits) {
            (Some(h), 16) => dynasm!(self.ops ; .arch x64 ; movzx edx, Rw(h)),
            (Some(h), _) => dynasm!(self.ops ; .arch x64 ; mov edx, Rd(h)),
            (None, 16) => dynasm!(self.ops ; .arch x64 ; movzx edx, WORD [r12 + 32]),
            (None, _) => dynasm!(self.ops ; .arch x64 ; mov edx, DWORD [r12 + 32]),
        }
    }

    /// EDX += `delta`, wrapping as the stack pointer does (at 4 GiB; 64 KiB in 16-bit code).
    pub(super) fn step_sp(&mut self, delta: i32) {
        dynasm!(self.ops ; .arch x64 ; add edx, delta);
        if self.env.bits == 16 {
            dynasm!(self.ops ; .arch x64 ; movzx edx, dx);
        }
    }

    /// ESP (SP) = EDX, the rest of RSP kept (the interpreter's `adjust_rsp` with a 32- or
    /// 16-bit stack), in `Cpu::regs` and the copy.
    pub(super) fn store_sp(&mut self) {
        if self.env.bits == 16 {
            dynasm!(self.ops ; .arch x64 ; mov WORD [r12 + 32], dx);
            if let Some(h) = self.host[4] {
                dynasm!(self.ops ; .arch x64 ; mov Rw(h), dx);
            }
            return;
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [r12 + 32], edx);
        if let Some(h) = self.host[4] {
            dynasm!(self.ops
                ; .arch x64
                ; shr Rq(h), 32
                ; shl Rq(h), 32
                ; or Rq(h), rdx
            );
        }
    }

    /// PUSH of RAX (the stack's word: 8 bytes, 4 in 32-bit code, 2 in 16-bit code): RSP
    /// moves once the store is done.
    pub(super) fn push_rax(&mut self, i: &Instruction, k: u32, fault_only: bool) {
        let ss = emu_core::interp::cpu::sreg::SS as i32;
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Push, fault_only);
        if self.env.bits != 64 {
            let word = self.env.bits / 8;
            self.load_sp();
            self.step_sp(-(word as i32));
            self.tlb_lookup(ss, word, true, slow);
            if word == 2 {
                dynasm!(self.ops ; .arch x64 ; mov [rsi], ax);
            } else {
                dynasm!(self.ops ; .arch x64 ; mov [rsi], eax);
            }
            self.store_sp();
            dynasm!(self.ops ; .arch x64 ; =>back);
            return;
        }
        self.load_gpr64(4, false);
        dynasm!(self.ops ; .arch x64 ; sub rdx, 8);
        self.tlb_lookup(ss, 8, true, slow);
        dynasm!(self.ops
            ; .arch x64
            ; mov [rsi], rax
            ; mov [r12 + 32], rdx
        );
        if let Some(h) = self.host[4] {
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), rdx);
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The body of a slow path (after the block's code).
    pub(super) fn slow_path(&mut self, path: Slow) {
        dynasm!(self.ops ; .arch x64 ; =>path.label);
        if let Some(r) = path.remat {
            // The flags an earlier instruction left uncaptured, for the fault exit: RAX
            // (a store's value) kept in RSI meanwhile.
            dynasm!(self.ops ; .arch x64 ; mov rsi, rax);
            self.rematerialize(r);
            dynasm!(self.ops
                ; .arch x64
                ; lahf
                ; seto al
                ; movzx r15d, ax
                ; mov rax, rsi
            );
        }
        self.flush_set(path.dirty);
        match path.call {
            SlowCall::Load { seg, size } => {
                let (size, f) = (size as i32, helpers::load as *const () as usize as i64);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov esi, seg
                    ; mov ecx, size
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Store { seg, size } => {
                let (size, f) = (size as i32, helpers::store as *const () as usize as i64);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r8, rax
                    ; mov rdi, rbx
                    ; mov esi, seg
                    ; mov ecx, size
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Push => {
                let f = helpers::push as *const () as usize as i64;
                let word = (self.env.bits / 8) as i32;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rsi, rax
                    ; mov rdi, rbx
                    ; mov edx, word
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Interpret { fill } => {
                let (seg, write) = fill.map_or((-1, false), |(s, w)| (s, w));
                let (at, f, write) = (
                    path.instr.ip() as i64,
                    helpers::interpret_fill as *const () as usize as i64,
                    i32::from(write),
                );
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, QWORD at
                    ; mov [r12 + RIP_AT], rax
                    ; mov rdi, rbx
                    ; mov rsi, QWORD i64::from(seg)
                    ; mov ecx, write
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Gp => {
                let f = helpers::gp as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Ret => {
                let f = helpers::ret as *const () as usize as i64;
                let word = (self.env.bits / 8) as i32;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov esi, word
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
        }
        // The helper may have changed any guest register (the interpreter ran the
        // instruction, or a push or return moved RSP).
        self.reload_cached();
        let (before, unmerged) = (self.before, self.unmerged);
        (self.before, self.unmerged) = (path.before, path.unmerged);
        if path.fault_only {
            self.check_fault(&path.instr, path.k);
        } else {
            self.check(&path.instr, path.k);
        }
        (self.before, self.unmerged) = (before, unmerged);
        if path.flags_to_r15 {
            // RFLAGS' low byte to bits 8–15, OF to bit 0 (`save_flags`' layout).
            dynasm!(self.ops
                ; .arch x64
                ; mov edi, [r12 + FLAGS_AT]
                ; movzx esi, dil
                ; shl esi, 8
                ; shr edi, 11
                ; and edi, 1
                ; or esi, edi
                ; mov r15d, esi
            );
        }
        dynasm!(self.ops ; .arch x64 ; jmp =>path.back);
    }
}
