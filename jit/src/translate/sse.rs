//! SSE instructions as host SSE on `Cpu`'s XMM registers, scalar floating point under the
//! guest's MXCSR when it has its reset controls.

use super::*;

/// The SSE instructions with host code of their own: legacy encodings on XMM registers,
/// general registers or 16-byte memory operands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sse {
    /// MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU (the aligned forms #GP on a misaligned
    /// memory operand, as every other legacy SSE instruction with one does).
    Move {
        aligned: bool,
    },
    /// dest = dest OP source (logic, compares, adds, subtracts, unpacks).
    Binary,
    Pshufd,
    Pmovmskb,
    /// MOVD/MOVQ from a general register (the rest of the XMM register cleared).
    ToXmm,
    /// MOVD/MOVQ to a general register.
    FromXmm,
    /// Scalar floating point on the low lane, the rest of the destination kept: the
    /// arithmetic (ADD/SUB/MUL/DIV/MIN/MAX/SQRT, SD and SS) and CVTSD2SS/CVTSS2SD. Like the
    /// other floating-point forms, only under MXCSR's reset controls (see
    /// `BlockBuilder::mxcsr_enter`).
    FpScalar,
    /// COMISD/UCOMISD/COMISS/UCOMISS: ZF, PF, CF (the others cleared).
    FpCompare,
    /// CVTSI2SD/CVTSI2SS from a 32- or 64-bit register or memory.
    IntToFp,
    /// CVT(T)SD2SI/CVT(T)SS2SI to a 32- or 64-bit register.
    FpToInt,
    /// The scalar moves: MOVSS and MOVSD (between registers the rest of the destination
    /// stays; a load clears it), MOVQ (which always clears it), MOVD with memory; `bytes`
    /// moved, 4 or 8.
    Scalar {
        bytes: u8,
        keeps_rest: bool,
    },
    /// PCMPISTRI (SSE4.2): ECX and the status flags.
    Pcmpistri,
}

/// `Ctx::sse_ok` bits: SSE and SSE2 usable now, and the model's SSSE3 and SSE4.2 with them.
pub const SSE_BASE: u8 = 1;
pub const SSE_SSSE3: u8 = 2;
pub const SSE_SSE42: u8 = 4;

pub(super) fn xmm_index(r: Register) -> Option<i32> {
    r.is_xmm()
        .then(|| (r as i32) - (Register::XMM0 as i32))
        .filter(|n| (0..16).contains(n))
}

pub(super) fn sse(i: &Instruction) -> Option<Sse> {
    if i.encoding() != iced_x86::EncodingKind::Legacy || i.has_lock_prefix() {
        return None;
    }
    let xmm = |k: u32| i.op_kind(k) == OpKind::Register && xmm_index(i.op_register(k)).is_some();
    let m128 =
        |k: u32| i.op_kind(k) == OpKind::Memory && i.memory_size().size() == 16 && memory_ok(i);
    let wide_gpr = |k: u32| {
        i.op_kind(k) == OpKind::Register && matches!(gpr(i.op_register(k)), Some((_, 4 | 8, false)))
    };
    let m64 = |k: u32| i.op_kind(k) == OpKind::Memory && memory_ok(i);
    let scalar = |bytes: u8, keeps_rest: bool| {
        let fits = |k: u32| i.memory_size().size() == usize::from(bytes) && m64(k);
        ((xmm(0) && (xmm(1) || fits(1))) || (fits(0) && xmm(1)))
            .then_some(Sse::Scalar { bytes, keeps_rest })
    };
    let op = match i.mnemonic() {
        // MOVSD and MOVSS between registers keep the rest of the destination.
        M::Movsd
            if i.code() == iced_x86::Code::Movsd_xmm_xmmm64
                || i.code() == iced_x86::Code::Movsd_xmmm64_xmm =>
        {
            scalar(8, true)
        }
        M::Movss => scalar(4, true),
        M::Movq
            if i.code() == iced_x86::Code::Movq_xmm_xmmm64
                || i.code() == iced_x86::Code::Movq_xmmm64_xmm =>
        {
            scalar(8, false)
        }
        M::Movd if !wide_gpr(0) && !wide_gpr(1) && (m64(0) || m64(1)) => scalar(4, false),
        M::Pcmpistri => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Pcmpistri),
        m @ (M::Movaps | M::Movapd | M::Movdqa | M::Movups | M::Movupd | M::Movdqu) => {
            let aligned = matches!(m, M::Movaps | M::Movapd | M::Movdqa);
            ((xmm(0) && (xmm(1) || m128(1))) || (m128(0) && xmm(1)))
                .then_some(Sse::Move { aligned })
        }
        m if binary_sse(m) => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Binary),
        M::Pshufd => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Pshufd),
        M::Pmovmskb => (wide_gpr(0) && xmm(1)).then_some(Sse::Pmovmskb),
        m if fp_scalar(m) => (xmm(0) && (xmm(1) || m64(1))).then_some(Sse::FpScalar),
        M::Comisd | M::Ucomisd | M::Comiss | M::Ucomiss => {
            (xmm(0) && (xmm(1) || m64(1))).then_some(Sse::FpCompare)
        }
        M::Cvtsi2sd | M::Cvtsi2ss => (xmm(0) && (wide_gpr(1) || m64(1))).then_some(Sse::IntToFp),
        M::Cvttsd2si | M::Cvtsd2si | M::Cvttss2si | M::Cvtss2si => {
            (wide_gpr(0) && (xmm(1) || m64(1))).then_some(Sse::FpToInt)
        }
        M::Movd | M::Movq if xmm(0) && wide_gpr(1) => Some(Sse::ToXmm),
        M::Movd | M::Movq if wide_gpr(0) && xmm(1) => Some(Sse::FromXmm),
        _ => None,
    }?;
    Some(op)
}

/// The scalar floating-point operations of [`Sse::FpScalar`].
pub(super) fn fp_scalar(m: M) -> bool {
    matches!(
        m,
        M::Addsd
            | M::Subsd
            | M::Mulsd
            | M::Divsd
            | M::Minsd
            | M::Maxsd
            | M::Sqrtsd
            | M::Addss
            | M::Subss
            | M::Mulss
            | M::Divss
            | M::Minss
            | M::Maxss
            | M::Sqrtss
            | M::Cvtsd2ss
            | M::Cvtss2sd
    )
}

/// MXCSR relative to XMM0 (`Ctx::xmm`, in R8 in SSE code).
pub(super) const MXCSR_FROM_XMM: i32 = offset_of!(emu_core::interp::simd::FpuState, mxcsr) as i32
    - offset_of!(emu_core::interp::simd::FpuState, xmm) as i32;

pub(super) fn binary_sse(m: M) -> bool {
    matches!(
        m,
        M::Pxor
            | M::Por
            | M::Pand
            | M::Pandn
            | M::Xorps
            | M::Xorpd
            | M::Andps
            | M::Andpd
            | M::Orps
            | M::Orpd
            | M::Andnps
            | M::Andnpd
            | M::Pcmpeqb
            | M::Pcmpeqw
            | M::Pcmpeqd
            | M::Pcmpgtb
            | M::Pcmpgtw
            | M::Pcmpgtd
            | M::Paddb
            | M::Paddw
            | M::Paddd
            | M::Paddq
            | M::Psubb
            | M::Psubw
            | M::Psubd
            | M::Psubq
            | M::Pminub
            | M::Pmaxub
            | M::Punpcklbw
            | M::Punpcklwd
            | M::Punpckldq
            | M::Punpcklqdq
            | M::Punpckhbw
            | M::Punpckhwd
            | M::Punpckhdq
            | M::Pshufb
            | M::Punpckhqdq
    )
}

impl BlockBuilder<'_> {
    /// An SSE instruction as host SSE on `Cpu`'s XMM registers (R8 = their base), its
    /// memory operand through the soft TLB; anything else — SSE not usable now (the
    /// interpreter raises #UD or #NM), a misaligned operand (#GP), a TLB miss — runs the
    /// whole instruction through the interpreter.
    pub(super) fn sse(&mut self, i: &Instruction, k: u32, op: Sse) {
        let mem = (0..i.op_count()).find(|&n| i.op_kind(n) == OpKind::Memory);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        if mem.is_some() {
            self.effective_address(i);
        }
        let fill = mem.map(|n| (seg, n == 0));
        if matches!(op, Sse::Pcmpistri | Sse::FpCompare) {
            // Its flags replace the pending ones whichever way it runs (see below).
            self.flush_flags();
        }
        let (slow, done) = self.slow_path_for(i, k, SlowCall::Interpret { fill }, false);
        let need = match i.mnemonic() {
            M::Pshufb => SSE_SSSE3,
            M::Pcmpistri => SSE_SSE42,
            _ => SSE_BASE,
        } as i8;
        dynasm!(self.ops
            ; .arch x64
            ; test BYTE [rbx + helpers::SSE_OK], need
            ; jz =>slow
            ; mov r8, [rbx + helpers::XMM]
        );
        // PCMPISTRI's memory operand may be misaligned (unlike the other 16-byte ones).
        let aligned = !matches!(op, Sse::Move { aligned: false } | Sse::Pcmpistri);
        let reg = |n: u32| 16 * xmm_index(i.op_register(n)).unwrap_or(0);
        // XMM1 = the source (operand 1), from a register or memory.
        let load_source = |b: &mut Self| {
            if mem == Some(1) {
                b.tlb_lookup(seg, 16, false, slow);
                if aligned {
                    dynasm!(b.ops ; .arch x64 ; test esi, 15 ; jnz =>slow);
                }
                dynasm!(b.ops ; .arch x64 ; movdqu xmm1, [rsi]);
            } else {
                let s = reg(1);
                dynasm!(b.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
            }
        };
        match op {
            Sse::Move { .. } if mem == Some(0) => {
                let s = reg(1);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
                self.tlb_lookup(seg, 16, true, slow);
                if aligned {
                    dynasm!(self.ops ; .arch x64 ; test esi, 15 ; jnz =>slow);
                }
                dynasm!(self.ops ; .arch x64 ; movdqu [rsi], xmm1);
            }
            Sse::Move { .. } => {
                load_source(self);
                let d = reg(0);
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm1);
            }
            Sse::Binary => {
                load_source(self);
                let d = reg(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                self.binary_sse_op(i.mnemonic());
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
            }
            Sse::Pshufd => {
                load_source(self);
                let (d, imm) = (reg(0), i.immediate8() as i8);
                dynasm!(self.ops
                    ; .arch x64
                    ; pshufd xmm0, xmm1, imm
                    ; movdqu [r8 + d], xmm0
                );
            }
            Sse::Pmovmskb => {
                let (s, (r, _, _)) = (reg(1), gpr(i.op_register(0)).expect("checked"));
                let off_r = 8 * r as i32;
                dynasm!(self.ops
                    ; .arch x64
                    ; movdqu xmm1, [r8 + s]
                    ; pmovmskb eax, xmm1
                    ; mov [r12 + off_r], rax
                );
                self.wrote_rax_to(r);
            }
            Sse::ToXmm => {
                let (d, (r, size, _)) = (reg(0), gpr(i.op_register(1)).expect("checked"));
                let off_r = 8 * r as i32;
                if size == 8 {
                    dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov eax, [r12 + off_r]);
                }
                dynasm!(self.ops
                    ; .arch x64
                    ; mov [r8 + d], rax
                    ; mov QWORD [r8 + d + 8], 0
                );
            }
            Sse::FromXmm => {
                let (s, (r, size, _)) = (reg(1), gpr(i.op_register(0)).expect("checked"));
                let off_r = 8 * r as i32;
                if size == 8 {
                    dynasm!(self.ops ; .arch x64 ; mov rax, [r8 + s]);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov eax, [r8 + s]);
                }
                dynasm!(self.ops ; .arch x64 ; mov [r12 + off_r], rax);
                self.wrote_rax_to(r);
            }
            Sse::Scalar { bytes, keeps_rest } => {
                let size = u32::from(bytes);
                match mem {
                    // A store of the source's low bytes.
                    Some(0) => {
                        let s = reg(1);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov rax, [r8 + s]);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov eax, [r8 + s]);
                        }
                        self.tlb_lookup(seg, size, true, slow);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov [rsi], rax);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov [rsi], eax);
                        }
                    }
                    // A load: the rest of the destination cleared.
                    Some(_) => {
                        let d = reg(0);
                        self.tlb_lookup(seg, size, false, slow);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov rax, [rsi]);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov eax, [rsi]);
                        }
                        dynasm!(self.ops
                            ; .arch x64
                            ; mov [r8 + d], rax
                            ; mov QWORD [r8 + d + 8], 0
                        );
                    }
                    None => {
                        let (d, s) = (reg(0), reg(1));
                        match (bytes, keeps_rest) {
                            (8, true) => dynasm!(self.ops
                                ; .arch x64
                                ; mov rax, [r8 + s]
                                ; mov [r8 + d], rax
                            ),
                            (_, true) => dynasm!(self.ops
                                ; .arch x64
                                ; mov eax, [r8 + s]
                                ; mov [r8 + d], eax
                            ),
                            // MOVQ between registers.
                            _ => dynasm!(self.ops
                                ; .arch x64
                                ; mov rax, [r8 + s]
                                ; mov [r8 + d], rax
                                ; mov QWORD [r8 + d + 8], 0
                            ),
                        }
                    }
                }
            }
            Sse::FpScalar | Sse::FpCompare | Sse::IntToFp | Sse::FpToInt => {
                self.fp(i, op, mem, seg, slow);
            }
            Sse::Pcmpistri => {
                // ECX and every status flag: the flags go to RFLAGS before `done`, where
                // the slow path (the interpreter) leaves its own.
                load_source(self);
                let (d, imm) = (reg(0), i.immediate8() as i8);
                dynasm!(self.ops
                    ; .arch x64
                    ; movdqu xmm0, [r8 + d]
                    ; pcmpistri xmm0, xmm1, imm
                    ; mov eax, ecx
                );
                self.save_flags(i);
                self.store_reg(Register::ECX);
                self.flush_flags();
            }
        }
        dynasm!(self.ops ; .arch x64 ; =>done);
    }

    /// Host floating point under the guest's MXCSR: only when it has its reset controls
    /// (every exception masked, round to nearest, no DAZ or FTZ) — the host's own
    /// controls, so the host computes exactly the guest's results — else the interpreter
    /// (`slow`). The host's exception flags are cleared first and ORed into the guest's
    /// after (`mxcsr_leave`). Clobbers RAX.
    pub(super) fn mxcsr_enter(&mut self, slow: DynamicLabel) {
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, [r8 + MXCSR_FROM_XMM]
            ; and eax, 0xffc0
            ; cmp eax, 0x1f80
            ; jne =>slow
            ; mov DWORD [rbx + SCRATCH1], 0x1f80
            ; ldmxcsr [rbx + SCRATCH1]
        );
    }

    /// The exception flags the host raised into the guest's MXCSR. Clobbers RCX and the
    /// host's flags.
    pub(super) fn mxcsr_leave(&mut self) {
        dynasm!(self.ops
            ; .arch x64
            ; stmxcsr [rbx + SCRATCH1]
            ; mov ecx, [rbx + SCRATCH1]
            ; and ecx, 0x3f
            ; or [r8 + MXCSR_FROM_XMM], ecx
        );
    }

    /// XMM1 = the scalar source `i`'s operand 1 (an XMM register, or `bytes` from memory,
    /// the rest zero) for [`Self::fp`].
    pub(super) fn fp_source(
        &mut self,
        i: &Instruction,
        mem: Option<u32>,
        seg: i32,
        slow: DynamicLabel,
    ) {
        if mem == Some(1) {
            let bytes = i.memory_size().size() as u32;
            self.tlb_lookup(seg, bytes, false, slow);
            if bytes == 8 {
                dynasm!(self.ops ; .arch x64 ; movq xmm1, [rsi]);
            } else {
                dynasm!(self.ops ; .arch x64 ; movd xmm1, [rsi]);
            }
        } else {
            let s = 16 * xmm_index(i.op_register(1)).unwrap_or(0);
            dynasm!(self.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
        }
    }

    /// The floating-point forms of [`Sse`] (R8 = XMM0's address, the effective address
    /// in RDX for a memory operand).
    pub(super) fn fp(
        &mut self,
        i: &Instruction,
        op: Sse,
        mem: Option<u32>,
        seg: i32,
        slow: DynamicLabel,
    ) {
        self.mxcsr_enter(slow);
        let m = i.mnemonic();
        match op {
            Sse::FpScalar | Sse::FpCompare => {
                self.fp_source(i, mem, seg, slow);
                let d = 16 * xmm_index(i.op_register(0)).unwrap_or(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                macro_rules! ops {
                    ($($name:ident => $op:ident),* $(,)?) => {
                        match m {
                            $(M::$name => dynasm!(self.ops ; .arch x64 ; $op xmm0, xmm1),)*
                            _ => unreachable!("checked by sse"),
                        }
                    };
                }
                ops!(
                    Addsd => addsd, Subsd => subsd, Mulsd => mulsd, Divsd => divsd,
                    Minsd => minsd, Maxsd => maxsd, Sqrtsd => sqrtsd,
                    Addss => addss, Subss => subss, Mulss => mulss, Divss => divss,
                    Minss => minss, Maxss => maxss, Sqrtss => sqrtss,
                    Cvtsd2ss => cvtsd2ss, Cvtss2sd => cvtss2sd,
                    Comisd => comisd, Ucomisd => ucomisd, Comiss => comiss, Ucomiss => ucomiss,
                );
                if op == Sse::FpCompare {
                    // The flags before MXCSR's update clobbers them; to RFLAGS before
                    // `done`, where the interpreter leaves its own.
                    self.save_flags(i);
                    self.flags_in_host = 0;
                    self.mxcsr_leave();
                    self.flush_flags();
                } else {
                    dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
                    self.mxcsr_leave();
                }
            }
            Sse::IntToFp => {
                let wide = if mem == Some(1) {
                    let bytes = i.memory_size().size() as u32;
                    self.tlb_lookup(seg, bytes, false, slow);
                    if bytes == 8 {
                        dynasm!(self.ops ; .arch x64 ; mov rax, [rsi]);
                    } else {
                        dynasm!(self.ops ; .arch x64 ; mov eax, [rsi]);
                    }
                    bytes == 8
                } else {
                    self.load_reg(i.op_register(1), false);
                    reg_slot(i.op_register(1)).expect("checked").1 == 8
                };
                let d = 16 * xmm_index(i.op_register(0)).unwrap_or(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                match (m, wide) {
                    (M::Cvtsi2sd, true) => dynasm!(self.ops ; .arch x64 ; cvtsi2sd xmm0, rax),
                    (M::Cvtsi2sd, false) => dynasm!(self.ops ; .arch x64 ; cvtsi2sd xmm0, eax),
                    (_, true) => dynasm!(self.ops ; .arch x64 ; cvtsi2ss xmm0, rax),
                    (_, false) => dynasm!(self.ops ; .arch x64 ; cvtsi2ss xmm0, eax),
                }
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
                self.mxcsr_leave();
            }
            _ => {
                self.fp_source(i, mem, seg, slow);
                let wide = reg_slot(i.op_register(0)).expect("checked").1 == 8;
                match (m, wide) {
                    (M::Cvttsd2si, true) => dynasm!(self.ops ; .arch x64 ; cvttsd2si rax, xmm1),
                    (M::Cvttsd2si, false) => dynasm!(self.ops ; .arch x64 ; cvttsd2si eax, xmm1),
                    (M::Cvtsd2si, true) => dynasm!(self.ops ; .arch x64 ; cvtsd2si rax, xmm1),
                    (M::Cvtsd2si, false) => dynasm!(self.ops ; .arch x64 ; cvtsd2si eax, xmm1),
                    (M::Cvttss2si, true) => dynasm!(self.ops ; .arch x64 ; cvttss2si rax, xmm1),
                    (M::Cvttss2si, false) => dynasm!(self.ops ; .arch x64 ; cvttss2si eax, xmm1),
                    (_, true) => dynasm!(self.ops ; .arch x64 ; cvtss2si rax, xmm1),
                    (_, false) => dynasm!(self.ops ; .arch x64 ; cvtss2si eax, xmm1),
                }
                self.store_reg(i.op_register(0));
                self.mxcsr_leave();
            }
        }
    }

    /// XMM0 = XMM0 op XMM1.
    pub(super) fn binary_sse_op(&mut self, m: M) {
        macro_rules! ops {
            ($($name:ident => $op:ident),* $(,)?) => {
                match m {
                    $(M::$name => dynasm!(self.ops ; .arch x64 ; $op xmm0, xmm1),)*
                    _ => unreachable!("checked by binary_sse"),
                }
            };
        }
        ops!(
            Pxor => pxor, Por => por, Pand => pand, Pandn => pandn,
            Xorps => xorps, Xorpd => xorpd, Andps => andps, Andpd => andpd,
            Orps => orps, Orpd => orpd, Andnps => andnps, Andnpd => andnpd,
            Pcmpeqb => pcmpeqb, Pcmpeqw => pcmpeqw, Pcmpeqd => pcmpeqd,
            Pcmpgtb => pcmpgtb, Pcmpgtw => pcmpgtw, Pcmpgtd => pcmpgtd,
            Paddb => paddb, Paddw => paddw, Paddd => paddd, Paddq => paddq,
            Psubb => psubb, Psubw => psubw, Psubd => psubd, Psubq => psubq,
            Pminub => pminub, Pmaxub => pmaxub,
            Punpcklbw => punpcklbw, Punpcklwd => punpcklwd, Punpckldq => punpckldq,
            Punpcklqdq => punpcklqdq, Punpckhbw => punpckhbw, Punpckhwd => punpckhwd,
            Punpckhdq => punpckhdq, Punpckhqdq => punpckhqdq, Pshufb => pshufb,
        );
    }
}
