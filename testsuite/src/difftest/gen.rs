//! Random cases: instructions of one class, every encoding iced knows for its mnemonics, with
//! random operands, registers and flags.

use iced_x86::{
    Code, Encoder, Instruction, MemoryOperand, Mnemonic as M, OpCodeOperandKind as K, Register,
};

use super::case::Case;
use super::{DATA_ADDR, DATA_BASE, DATA_SIZE, STACK_TOP};

/// The instruction classes the harness covers: the integer ISA, then SSE/SSE2 on XMM
/// registers (legacy encodings).
pub const CLASSES: &[(&str, &[M])] = &[
    (
        "arith",
        &[
            M::Add,
            M::Adc,
            M::Sub,
            M::Sbb,
            M::Cmp,
            M::Inc,
            M::Dec,
            M::Neg,
        ],
    ),
    ("logic", &[M::And, M::Or, M::Xor, M::Not, M::Test]),
    (
        "shift",
        &[
            M::Shl,
            M::Sal,
            M::Shr,
            M::Sar,
            M::Rol,
            M::Ror,
            M::Rcl,
            M::Rcr,
            M::Shld,
            M::Shrd,
        ],
    ),
    ("muldiv", &[M::Mul, M::Imul, M::Div, M::Idiv]),
    (
        "move",
        &[
            M::Mov,
            M::Movzx,
            M::Movsx,
            M::Movsxd,
            M::Xchg,
            M::Lea,
            M::Bswap,
            M::Movbe,
            M::Cbw,
            M::Cwde,
            M::Cdqe,
            M::Cwd,
            M::Cdq,
            M::Cqo,
        ],
    ),
    (
        "cond",
        &[
            M::Cmova,
            M::Cmovae,
            M::Cmovb,
            M::Cmovbe,
            M::Cmove,
            M::Cmovg,
            M::Cmovge,
            M::Cmovl,
            M::Cmovle,
            M::Cmovne,
            M::Cmovno,
            M::Cmovnp,
            M::Cmovns,
            M::Cmovo,
            M::Cmovp,
            M::Cmovs,
            M::Seta,
            M::Setae,
            M::Setb,
            M::Setbe,
            M::Sete,
            M::Setg,
            M::Setge,
            M::Setl,
            M::Setle,
            M::Setne,
            M::Setno,
            M::Setnp,
            M::Setns,
            M::Seto,
            M::Setp,
            M::Sets,
        ],
    ),
    (
        "bit",
        &[
            M::Bt,
            M::Bts,
            M::Btr,
            M::Btc,
            M::Bsf,
            M::Bsr,
            M::Popcnt,
            M::Lzcnt,
            M::Tzcnt,
        ],
    ),
    (
        "bmi",
        &[
            M::Andn,
            M::Bextr,
            M::Blsi,
            M::Blsmsk,
            M::Blsr,
            M::Bzhi,
            M::Pdep,
            M::Pext,
            M::Mulx,
            M::Rorx,
            M::Sarx,
            M::Shlx,
            M::Shrx,
            M::Adcx,
            M::Adox,
        ],
    ),
    (
        "stack",
        &[
            M::Push,
            M::Pop,
            M::Pushf,
            M::Pushfq,
            M::Popf,
            M::Popfq,
            M::Enter,
            M::Leave,
        ],
    ),
    (
        "flags",
        &[M::Clc, M::Stc, M::Cmc, M::Cld, M::Std, M::Lahf, M::Sahf],
    ),
    (
        "atomic",
        &[M::Xadd, M::Cmpxchg, M::Cmpxchg8b, M::Cmpxchg16b],
    ),
    ("string", &[]),
    // Decimal arithmetic (32-bit code only), mixed with the additions it adjusts.
    (
        "bcd",
        &[
            M::Daa,
            M::Das,
            M::Aaa,
            M::Aas,
            M::Aam,
            M::Aad,
            M::Add,
            M::Sub,
            M::Adc,
        ],
    ),
    // Instructions of the 16/32-bit world (invalid in 64-bit code): BOUND, ARPL, and XLAT.
    ("legacy", &[M::Bound, M::Arpl, M::Xlatb, M::Inc, M::Dec]),
    // Conditional branches, LOOP/JRCXZ and short jumps over arithmetic: every condition
    // code meets flags real instructions produced.
    (
        "branch",
        &[
            M::Add,
            M::Sub,
            M::Cmp,
            M::And,
            M::Xor,
            M::Inc,
            M::Dec,
            M::Neg,
            M::Shr,
            M::Sar,
        ],
    ),
    (
        "sse-int",
        &[
            M::Paddb,
            M::Paddw,
            M::Paddd,
            M::Paddq,
            M::Psubb,
            M::Psubw,
            M::Psubd,
            M::Psubq,
            M::Paddsb,
            M::Paddsw,
            M::Paddusb,
            M::Paddusw,
            M::Psubsb,
            M::Psubsw,
            M::Psubusb,
            M::Psubusw,
            M::Pmullw,
            M::Pmulhw,
            M::Pmulhuw,
            M::Pmuludq,
            M::Pmaddwd,
            M::Pavgb,
            M::Pavgw,
            M::Pminub,
            M::Pmaxub,
            M::Pminsw,
            M::Pmaxsw,
            M::Psadbw,
            M::Pcmpeqb,
            M::Pcmpeqw,
            M::Pcmpeqd,
            M::Pcmpgtb,
            M::Pcmpgtw,
            M::Pcmpgtd,
            M::Psllw,
            M::Pslld,
            M::Psllq,
            M::Psrlw,
            M::Psrld,
            M::Psrlq,
            M::Psraw,
            M::Psrad,
            M::Pslldq,
            M::Psrldq,
            M::Packsswb,
            M::Packssdw,
            M::Packuswb,
        ],
    ),
    (
        "sse-move",
        &[
            M::Movd,
            M::Movq,
            M::Movdqa,
            M::Movdqu,
            M::Movaps,
            M::Movups,
            M::Movapd,
            M::Movupd,
            M::Movntdq,
            M::Movntps,
            M::Movntpd,
            M::Movnti,
            M::Movss,
            M::Movsd,
            M::Movlps,
            M::Movhps,
            M::Movlpd,
            M::Movhpd,
            M::Movhlps,
            M::Movlhps,
            M::Pshufd,
            M::Pshuflw,
            M::Pshufhw,
            M::Shufps,
            M::Shufpd,
            M::Pextrw,
            M::Pinsrw,
            M::Pmovmskb,
            M::Movmskps,
            M::Movmskpd,
            M::Punpcklbw,
            M::Punpcklwd,
            M::Punpckldq,
            M::Punpcklqdq,
            M::Punpckhbw,
            M::Punpckhwd,
            M::Punpckhdq,
            M::Punpckhqdq,
            M::Unpcklps,
            M::Unpckhps,
            M::Unpcklpd,
            M::Unpckhpd,
            M::Pand,
            M::Pandn,
            M::Por,
            M::Pxor,
            M::Andps,
            M::Andpd,
            M::Andnps,
            M::Andnpd,
            M::Orps,
            M::Orpd,
            M::Xorps,
            M::Xorpd,
        ],
    ),
    (
        "sse-float",
        &[
            M::Addps,
            M::Addpd,
            M::Addss,
            M::Addsd,
            M::Subps,
            M::Subpd,
            M::Subss,
            M::Subsd,
            M::Mulps,
            M::Mulpd,
            M::Mulss,
            M::Mulsd,
            M::Divps,
            M::Divpd,
            M::Divss,
            M::Divsd,
            M::Sqrtps,
            M::Sqrtpd,
            M::Sqrtss,
            M::Sqrtsd,
            M::Minps,
            M::Minpd,
            M::Minss,
            M::Minsd,
            M::Maxps,
            M::Maxpd,
            M::Maxss,
            M::Maxsd,
            M::Cmpps,
            M::Cmppd,
            M::Cmpss,
            M::Cmpsd,
            M::Comiss,
            M::Comisd,
            M::Ucomiss,
            M::Ucomisd,
            // Part-specific approximations: run (so the interpreter's side is exercised),
            // then left out of the comparison.
            M::Rcpps,
            M::Rcpss,
            M::Rsqrtps,
            M::Rsqrtss,
        ],
    ),
    (
        "sse-cvt",
        &[
            M::Cvtsi2ss,
            M::Cvtsi2sd,
            M::Cvtss2si,
            M::Cvtsd2si,
            M::Cvttss2si,
            M::Cvttsd2si,
            M::Cvtss2sd,
            M::Cvtsd2ss,
            M::Cvtps2pd,
            M::Cvtpd2ps,
            M::Cvtdq2ps,
            M::Cvtps2dq,
            M::Cvttps2dq,
            M::Cvtdq2pd,
            M::Cvtpd2dq,
            M::Cvttpd2dq,
        ],
    ),
    (
        "mmx",
        &[
            M::Movd,
            M::Movq,
            M::Movntq,
            M::Paddb,
            M::Paddw,
            M::Paddd,
            M::Paddq,
            M::Psubb,
            M::Psubw,
            M::Psubd,
            M::Psubq,
            M::Paddsb,
            M::Paddsw,
            M::Paddusb,
            M::Paddusw,
            M::Psubsb,
            M::Psubsw,
            M::Psubusb,
            M::Psubusw,
            M::Pmullw,
            M::Pmulhw,
            M::Pmulhuw,
            M::Pmuludq,
            M::Pmaddwd,
            M::Pavgb,
            M::Pavgw,
            M::Pminub,
            M::Pmaxub,
            M::Pminsw,
            M::Pmaxsw,
            M::Psadbw,
            M::Pcmpeqb,
            M::Pcmpeqw,
            M::Pcmpeqd,
            M::Pcmpgtb,
            M::Pcmpgtw,
            M::Pcmpgtd,
            M::Psllw,
            M::Pslld,
            M::Psllq,
            M::Psrlw,
            M::Psrld,
            M::Psrlq,
            M::Psraw,
            M::Psrad,
            M::Packsswb,
            M::Packssdw,
            M::Packuswb,
            M::Punpcklbw,
            M::Punpcklwd,
            M::Punpckldq,
            M::Punpckhbw,
            M::Punpckhwd,
            M::Punpckhdq,
            M::Pand,
            M::Pandn,
            M::Por,
            M::Pxor,
            M::Pshufw,
            M::Pextrw,
            M::Pinsrw,
            M::Pmovmskb,
            M::Movdq2q,
            M::Movq2dq,
            M::Cvtpi2ps,
            M::Cvtps2pi,
            M::Cvttps2pi,
            M::Cvtpi2pd,
            M::Cvtpd2pi,
            M::Cvttpd2pi,
            M::Emms,
        ],
    ),
    (
        "x87",
        &[
            M::Fninit,
            M::Fnclex,
            M::Wait,
            M::Fnstsw,
            M::Fnstcw,
            M::Fldcw,
            M::Fld,
            M::Fst,
            M::Fstp,
            M::Fild,
            M::Fist,
            M::Fistp,
            M::Fxch,
            M::Ffree,
            M::Fincstp,
            M::Fdecstp,
            M::Fldz,
            M::Fld1,
            M::Fchs,
            M::Fabs,
            M::Ftst,
            M::Fxam,
            M::Fnop,
            M::Fcom,
            M::Fcomp,
            M::Fcompp,
            M::Fucom,
            M::Fucomp,
            M::Fucompp,
            M::Fcomi,
            M::Fcomip,
            M::Fucomi,
            M::Fucomip,
            M::Fcmovb,
            M::Fcmove,
            M::Fcmovbe,
            M::Fcmovu,
            M::Fcmovnb,
            M::Fcmovne,
            M::Fcmovnbe,
            M::Fcmovnu,
            M::Fnstenv,
            M::Fldenv,
            M::Fnsave,
            M::Frstor,
        ],
    ),
    (
        "x87-arith",
        &[
            M::Fadd,
            M::Faddp,
            M::Fiadd,
            M::Fsub,
            M::Fsubp,
            M::Fisub,
            M::Fsubr,
            M::Fsubrp,
            M::Fisubr,
            M::Fmul,
            M::Fmulp,
            M::Fimul,
            M::Fdiv,
            M::Fdivp,
            M::Fidiv,
            M::Fdivr,
            M::Fdivrp,
            M::Fidivr,
            M::Fsqrt,
            M::Frndint,
            M::Fld,
            M::Fst,
            M::Fstp,
        ],
    ),
    (
        "x87-misc",
        &[
            M::Fldpi,
            M::Fldl2e,
            M::Fldl2t,
            M::Fldlg2,
            M::Fldln2,
            M::Ficom,
            M::Ficomp,
            M::Fxtract,
            M::Fscale,
            M::Fprem,
            M::Fprem1,
            M::Fbld,
            M::Fbstp,
            M::Fld,
            M::Fstp,
        ],
    ),
    (
        "ssse3",
        &[
            M::Pshufb,
            M::Phaddw,
            M::Phaddd,
            M::Phaddsw,
            M::Phsubw,
            M::Phsubd,
            M::Phsubsw,
            M::Pmaddubsw,
            M::Pmulhrsw,
            M::Psignb,
            M::Psignw,
            M::Psignd,
            M::Pabsb,
            M::Pabsw,
            M::Pabsd,
            M::Palignr,
            M::Movdqa,
            M::Movq,
        ],
    ),
    (
        "sse41",
        &[
            M::Pblendw,
            M::Blendps,
            M::Blendpd,
            M::Blendvps,
            M::Blendvpd,
            M::Pblendvb,
            M::Packusdw,
            M::Pcmpeqq,
            M::Pmaxsb,
            M::Pmaxsd,
            M::Pmaxuw,
            M::Pmaxud,
            M::Pminsb,
            M::Pminsd,
            M::Pminuw,
            M::Pminud,
            M::Pmuldq,
            M::Pmulld,
            M::Phminposuw,
            M::Mpsadbw,
            M::Ptest,
            M::Pmovsxbw,
            M::Pmovsxbd,
            M::Pmovsxbq,
            M::Pmovsxwd,
            M::Pmovsxwq,
            M::Pmovsxdq,
            M::Pmovzxbw,
            M::Pmovzxbd,
            M::Pmovzxbq,
            M::Pmovzxwd,
            M::Pmovzxwq,
            M::Pmovzxdq,
            M::Pextrb,
            M::Pextrw,
            M::Pextrd,
            M::Pextrq,
            M::Pinsrb,
            M::Pinsrd,
            M::Pinsrq,
            M::Extractps,
            M::Insertps,
            M::Movntdqa,
        ],
    ),
    (
        "sse41-float",
        &[
            M::Roundps,
            M::Roundpd,
            M::Roundss,
            M::Roundsd,
            M::Dpps,
            M::Dppd,
            M::Blendvps,
            M::Movaps,
        ],
    ),
    (
        "sse42",
        &[
            M::Pcmpestri,
            M::Pcmpestrm,
            M::Pcmpistri,
            M::Pcmpistrm,
            M::Pcmpgtq,
            M::Crc32,
        ],
    ),
    (
        "aes",
        &[
            M::Aesenc,
            M::Aesenclast,
            M::Aesdec,
            M::Aesdeclast,
            M::Aesimc,
            M::Aeskeygenassist,
            M::Pclmulqdq,
        ],
    ),
    (
        "x87-trans",
        &[
            M::F2xm1,
            M::Fyl2x,
            M::Fyl2xp1,
            M::Fptan,
            M::Fpatan,
            M::Fsin,
            M::Fcos,
            M::Fsincos,
        ],
    ),
    (
        "sse3",
        &[
            M::Addsubps,
            M::Addsubpd,
            M::Haddps,
            M::Haddpd,
            M::Hsubps,
            M::Hsubpd,
            M::Movddup,
            M::Movshdup,
            M::Movsldup,
            M::Lddqu,
            M::Fisttp,
        ],
    ),
];

/// A small deterministic PRNG (xorshift64*): cases are reproducible from their seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Interesting values: boundaries, small numbers, sign bits, and random.
    pub fn value(&mut self) -> u64 {
        match self.below(8) {
            0 => self.below(16),
            1 => u64::MAX - self.below(16),
            2 => 1 << self.below(64),
            3 => (1u64 << self.below(64)).wrapping_sub(1),
            4 => 0x8000_0000_0000_0000 ^ self.below(4),
            5 => 0x7fff_ffff ^ (self.below(4) << 30),
            _ => self.next_u64(),
        }
    }
}

/// Registers reserved for addressing: base (the middle of the data page) and index (small).
fn base_index(bits: u32) -> (Register, Register) {
    if bits == 64 {
        (Register::R15, Register::R14)
    } else {
        (Register::EDI, Register::ESI)
    }
}

fn reg_of_size(n: usize, size: u32, bits: u32) -> Register {
    let (first, count) = match size {
        1 if bits == 64 => (Register::AL, 16),
        1 => (Register::AL, 8),
        2 => (Register::AX, if bits == 64 { 16 } else { 8 }),
        4 => (Register::EAX, if bits == 64 { 16 } else { 8 }),
        _ => (Register::RAX, 16),
    };
    let n = n % count;
    if size == 1 && bits == 64 {
        // AL CL DL BL SPL BPL SIL DIL R8L…R15L (skip AH…BH: they cannot mix with REX).
        let idx = if n < 4 { n } else { n + 4 };
        return Register::try_from(first as usize + idx).unwrap_or(Register::AL);
    }
    Register::try_from(first as usize + n).unwrap_or(first)
}

/// A random general register of `size` bytes, never the reserved base/index or the stack
/// pointer.
fn random_reg(rng: &mut Rng, size: u32, bits: u32) -> Register {
    let (base, index) = base_index(bits);
    loop {
        let r = reg_of_size(rng.below(16) as usize, size, bits);
        let full = r.full_register();
        if full != base.full_register() && full != index.full_register() && full != Register::RSP {
            return r;
        }
    }
}

fn random_mem(rng: &mut Rng, bits: u32) -> MemoryOperand {
    let (mut base, mut index) = base_index(bits);
    let disp = rng.below(256) as i64 - 128;
    match (bits, rng.below(6)) {
        // 32-bit addressing in 64-bit code (address-size prefix): the base fits in 32 bits.
        (64, 0) => {
            base = Register::R15D;
            index = Register::R14D;
        }
        // 16-bit addressing in 32-bit code: [BX+SI]-style forms reach only the first 64 KiB,
        // which neither side maps, so both must fault alike.
        (32, 0) => {
            return MemoryOperand::with_base_index_scale_displ_size(
                Register::BX,
                Register::SI,
                1,
                disp,
                1,
            );
        }
        _ => {}
    }
    if rng.below(3) == 0 {
        let scale = 1 << rng.below(4);
        MemoryOperand::with_base_index_scale_displ_size(base, index, scale, disp, 1)
    } else {
        MemoryOperand::with_base_displ_size(base, disp, 1)
    }
}

/// XMM0–15 in 64-bit code, XMM0–7 in 32-bit code.
fn random_xmm(rng: &mut Rng, bits: u32) -> Register {
    let n = if bits == 64 { 16 } else { 8 };
    Register::try_from(Register::XMM0 as usize + rng.below(n) as usize).unwrap_or(Register::XMM0)
}

/// One extended-precision value: zeros, denormals, values near the exponent limits,
/// infinities, NaNs, small integers and random normals (no unsupported encodings).
fn random_ext(rng: &mut Rng) -> [u8; 10] {
    let sign = (rng.below(2) as u128) << 79;
    let frac = u128::from(rng.next_u64() & !(1 << 63));
    let int = 1u128 << 63;
    let with_exp = |e: u128, sig: u128| sign | e << 64 | sig;
    let v = match rng.below(9) {
        0 => sign,
        1 => with_exp(0, frac.max(1)),
        2 => with_exp(1 + rng.below(3) as u128, int | frac),
        3 => with_exp(0x7ffe - rng.below(3) as u128, int | frac),
        4 => with_exp(0x7fff, int),
        5 => with_exp(0x7fff, int | 1 << 62 | (frac & ((1 << 62) - 1))),
        6 => with_exp(0x7fff, int | (frac & ((1 << 62) - 1)).max(1)),
        7 => {
            // A small integer: exactly representable in every format.
            let n = 1 + rng.below(1000) as u128;
            let shift = n.leading_zeros() - 64;
            with_exp(0x3fff + 63 - u128::from(shift), n << shift)
        }
        _ => with_exp(0x3fff - 40 + rng.below(80) as u128, int | frac),
    };
    v.to_le_bytes()[..10].try_into().unwrap()
}

/// An x87 state for a case: some registers in use from TOP down, any rounding and
/// precision control, exceptions mostly masked, random condition codes.
fn random_fpu(rng: &mut Rng, all_masked: bool, trans: bool) -> super::case::FpuInit {
    let top = rng.below(8) as u16;
    let used = rng.below(9) as usize;
    let mut ftw = 0u8;
    for k in 0..used {
        ftw |= 1 << ((top as usize + k) & 7);
    }
    if rng.below(4) == 0 {
        ftw = rng.below(256) as u8;
    }
    let masks = if !all_masked && rng.below(8) == 0 {
        rng.below(64) as u16
    } else {
        0x3f
    };
    let fcw = 0x1040 | masks | (rng.below(4) as u16) << 10 | (rng.below(4) as u16) << 8;
    let cc = rng.below(16) as u16;
    let fsw = top << 11 | (cc & 7) << 8 | (cc >> 3) << 14;
    super::case::FpuInit {
        fcw: fcw & !0x1000 | 0x0040,
        fsw,
        ftw,
        st: std::array::from_fn(|_| {
            if trans {
                random_trans_ext(rng)
            } else {
                random_ext(rng)
            }
        }),
    }
}

/// An operand for the transcendental instructions: the special values, values inside
/// F2XM1's and FYL2XP1's domains down to the tiny, large ones up past the trigonometric
/// range (2^63), values near multiples of π/2 (where reduction matters) and near 1 (where
/// logarithms cancel).
fn random_trans_ext(rng: &mut Rng) -> [u8; 10] {
    let sign = (rng.below(2) as u128) << 79;
    let sig = u128::from(rng.next_u64() | 1 << 63);
    let with_exp = |e: u128, sig: u128| sign | e << 64 | sig;
    let v = match rng.below(10) {
        0..=2 => return random_ext(rng),
        3..=5 => with_exp(0x3ffe - rng.below(66) as u128, sig),
        6 => with_exp(1 + rng.below(0x3fff) as u128, sig),
        7 => with_exp(0x3fff + rng.below(70) as u128, sig),
        8 => {
            let k = 1 + rng.below(2000);
            let x = k as f64 * std::f64::consts::FRAC_PI_2;
            let b = x.to_bits();
            let e = ((b >> 52) & 0x7ff) as u128 - 1023 + 0x3fff;
            let s = u128::from((b << 11) | 1 << 63) ^ u128::from(rng.below(1 << 16));
            with_exp(e, s)
        }
        _ => {
            // 1 ± a few ulps or a small amount.
            let d = u128::from(rng.below(1 << 20));
            if rng.below(2) == 0 {
                with_exp(0x3fff, 1 << 63 | d)
            } else {
                with_exp(0x3ffe, u128::from(u64::MAX) - d)
            }
        }
    };
    v.to_le_bytes()[..10].try_into().unwrap()
}

fn random_mm(rng: &mut Rng) -> Register {
    Register::try_from(Register::MM0 as usize + rng.below(8) as usize).unwrap_or(Register::MM0)
}

/// A 128-bit value whose lanes are often boundary values (0, all ones, sign bits).
fn random_xmm_value(rng: &mut Rng) -> u128 {
    match rng.below(4) {
        0 => {
            let words: [u64; 8] = std::array::from_fn(|_| match rng.below(4) {
                0 => 0,
                1 => 0xffff,
                2 => 0x8000 | rng.below(2),
                _ => rng.below(0x1_0000),
            });
            words
                .iter()
                .enumerate()
                .fold(0, |v, (k, w)| v | u128::from(*w) << (16 * k))
        }
        _ => u128::from(rng.value()) | u128::from(rng.value()) << 64,
    }
}

/// One float lane of `bits` (32 or 64): zeros, denormals, values near the exponent range's
/// ends, infinities, quiet and signaling NaNs, small exact values, and random normals.
fn random_float_lane(rng: &mut Rng, bits: u32) -> u64 {
    let (exp_bits, frac_bits) = if bits == 32 { (8, 23) } else { (11, 52) };
    let sign = rng.below(2) << (bits - 1);
    let frac_mask = (1u64 << frac_bits) - 1;
    let max_exp = (1u64 << exp_bits) - 1;
    let frac = rng.next_u64() & frac_mask;
    let with_exp = |e: u64, f: u64| sign | (e << frac_bits) | (f & frac_mask);
    match rng.below(10) {
        0 => sign,
        1 => with_exp(0, frac.max(1)),
        2 => with_exp(1 + rng.below(3), frac),
        3 => with_exp(max_exp - 1 - rng.below(3), frac),
        4 => with_exp(max_exp, 0),
        5 => with_exp(max_exp, frac | (1 << (frac_bits - 1))),
        6 => with_exp(max_exp, (frac & !(1 << (frac_bits - 1))).max(1)),
        7 => {
            let v =
                [1.0f64, 2.0, 3.0, 0.5, 10.0, 0.1, 1e-3, 7.0, 65536.0, 1.5][rng.below(10) as usize];
            if bits == 32 {
                sign | u64::from((v as f32).to_bits())
            } else {
                sign | v.to_bits()
            }
        }
        _ => with_exp(1 + rng.below(max_exp - 1), frac),
    }
}

/// An XMM value of float lanes, all single or all double.
fn random_float_xmm(rng: &mut Rng) -> u128 {
    if rng.below(2) == 0 {
        (0..4).fold(0, |v, k| {
            v | u128::from(random_float_lane(rng, 32)) << (32 * k)
        })
    } else {
        (0..2).fold(0, |v, k| {
            v | u128::from(random_float_lane(rng, 64)) << (64 * k)
        })
    }
}

/// An XMM value shaped like string data for PCMPxSTRx: bytes (or words) from a small
/// alphabet, so that elements match, with a zero terminator somewhere half the time.
fn random_string_xmm(rng: &mut Rng) -> u128 {
    let alphabet = [b'a', b'b', b'c', b'z', 0x80, 0xff];
    let mut v: u128 = (0..16).fold(0, |v, k| {
        let b = if rng.below(8) == 0 {
            rng.below(256) as u8
        } else {
            alphabet[rng.below(alphabet.len() as u64) as usize]
        };
        v | u128::from(b) << (8 * k)
    });
    if rng.below(2) == 0 {
        let at = rng.below(16) as u32;
        v &= !(0xffff << (8 * at));
    }
    v
}

/// MXCSR for a float case: all exceptions masked, any rounding mode, sometimes DAZ and FTZ,
/// sometimes flags already set.
fn random_mxcsr(rng: &mut Rng) -> u32 {
    let mut m = 0x1f80 | ((rng.below(4) as u32) << 13);
    if rng.below(4) == 0 {
        m |= 0x40; // DAZ
    }
    if rng.below(4) == 0 {
        m |= 0x8000; // FTZ
    }
    if rng.below(4) == 0 {
        m |= rng.below(64) as u32;
    }
    m
}

enum Op {
    Reg(Register),
    Mem(MemoryOperand),
    Imm(i64),
    /// An operand the encoding implies (XLAT's [rBX+AL]).
    Implicit,
}

fn operand(rng: &mut Rng, kind: K, bits: u32) -> Option<Op> {
    let mem = |rng: &mut Rng, _size: u32| Op::Mem(random_mem(rng, bits));
    Some(match kind {
        K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem => {
            let size = match kind {
                K::r8_or_mem => 1,
                K::r16_or_mem => 2,
                K::r32_or_mem => 4,
                _ => 8,
            };
            if rng.below(2) == 0 {
                mem(rng, size)
            } else {
                Op::Reg(random_reg(rng, size, bits))
            }
        }
        K::r8_reg | K::r8_opcode => Op::Reg(random_reg(rng, 1, bits)),
        K::r16_reg | K::r16_opcode => Op::Reg(random_reg(rng, 2, bits)),
        K::r32_reg | K::r32_opcode | K::r32_vvvv => Op::Reg(random_reg(rng, 4, bits)),
        K::r64_reg | K::r64_opcode | K::r64_vvvv => Op::Reg(random_reg(rng, 8, bits)),
        K::mem => mem(rng, 8),
        K::imm8 | K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => {
            Op::Imm(rng.below(256) as i64 - 128)
        }
        K::imm16 => Op::Imm(rng.below(0x1_0000) as i64 - 0x8000),
        K::imm32 | K::imm32sex64 => Op::Imm(rng.next_u64() as i32 as i64),
        K::imm64 => Op::Imm(rng.value() as i64),
        K::al => Op::Reg(Register::AL),
        K::ax => Op::Reg(Register::AX),
        K::eax => Op::Reg(Register::EAX),
        K::rax => Op::Reg(Register::RAX),
        K::cl => Op::Reg(Register::CL),
        K::imm8_const_1 => Op::Imm(1),
        K::seg_rBX_al => return Some(Op::Implicit),
        K::xmm_reg | K::xmm_rm => Op::Reg(random_xmm(rng, bits)),
        K::mm_reg | K::mm_rm => Op::Reg(random_mm(rng)),
        K::st0 => Op::Reg(Register::ST0),
        K::sti_opcode => Op::Reg(
            Register::try_from(Register::ST0 as usize + rng.below(8) as usize)
                .unwrap_or(Register::ST1),
        ),
        K::mm_or_mem => {
            if rng.below(2) == 0 {
                mem(rng, 8)
            } else {
                Op::Reg(random_mm(rng))
            }
        }
        K::xmm_or_mem => {
            if rng.below(2) == 0 {
                mem(rng, 16)
            } else {
                Op::Reg(random_xmm(rng, bits))
            }
        }
        _ => return None,
    })
}

fn build(code: Code, ops: &[Op]) -> Option<Instruction> {
    use Op::*;
    if matches!(ops, [Implicit]) {
        return None; // encoded by the caller (XLAT is one byte)
    }
    let r = match ops {
        [] => Ok(Instruction::with(code)),
        [Reg(a)] => Instruction::with1(code, *a),
        [Mem(a)] => Instruction::with1(code, *a),
        [Imm(a)] => Instruction::with1(code, *a as i32),
        [Reg(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Mem(b)] => Instruction::with2(code, *a, *b),
        [Mem(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Imm(b)] => {
            if code == Code::Mov_r64_imm64 {
                Instruction::with2(code, *a, *b as u64)
            } else {
                Instruction::with2(code, *a, *b as i32)
            }
        }
        [Mem(a), Imm(b)] => Instruction::with2(code, *a, *b as i32),
        [Imm(a), Imm(b)] => Instruction::with2(code, *a as i32, *b as i32),
        [Reg(a), Reg(b), Imm(c)] => Instruction::with3(code, *a, *b, *c as i32),
        [Reg(a), Mem(b), Imm(c)] => Instruction::with3(code, *a, *b, *c as i32),
        [Mem(a), Reg(b), Imm(c)] => Instruction::with3(code, *a, *b, *c as i32),
        [Reg(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Mem(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        _ => return None,
    };
    r.ok()
}

/// An encoding with XMM operands (or MOVNTI) qualifies when it is a legacy SSE/SSE2 form:
/// the VEX and later-extension forms of the same mnemonics are not implemented yet.
fn simd_ok(c: Code) -> bool {
    use iced_x86::CpuidFeature as F;
    let features = c.cpuid_features();
    let simd = features.iter().any(|f| {
        matches!(
            f,
            F::FPU | F::MMX | F::SSE | F::SSE2 | F::SSE3 | F::SSSE3 | F::SSE4_1 | F::AVX | F::D3NOW
        )
    });
    !simd
        || c.op_code().encoding() == iced_x86::EncodingKind::Legacy
            && features.iter().all(|f| {
                matches!(
                    f,
                    F::FPU
                        | F::CMOV
                        | F::MMX
                        | F::SSE
                        | F::SSE2
                        | F::SSE3
                        | F::SSSE3
                        | F::SSE4_1
                        | F::SSE4_2
                        | F::AES
                        | F::PCLMULQDQ
                )
            })
}

/// The encodings of `mnemonics` valid in `bits`-bit code with operands the generator fills.
pub fn codes_for(mnemonics: &[M], bits: u32) -> Vec<Code> {
    Code::values()
        .filter(|c| {
            let op = c.op_code();
            op.is_instruction()
                && matches!(
                    op.encoding(),
                    iced_x86::EncodingKind::Legacy | iced_x86::EncodingKind::VEX
                )
                && mnemonics.contains(&c.mnemonic())
                && if bits == 64 { op.mode64() } else { op.mode32() }
                && (0..op.op_count()).all(|k| {
                    matches!(
                        op.op_kind(k),
                        K::r8_or_mem
                            | K::r16_or_mem
                            | K::r32_or_mem
                            | K::r64_or_mem
                            | K::r8_reg
                            | K::r8_opcode
                            | K::r16_reg
                            | K::r16_opcode
                            | K::r32_reg
                            | K::r32_opcode
                            | K::r64_reg
                            | K::r64_opcode
                            | K::r32_vvvv
                            | K::r64_vvvv
                            | K::mem
                            | K::imm8
                            | K::imm8sex16
                            | K::imm8sex32
                            | K::imm8sex64
                            | K::imm16
                            | K::imm32
                            | K::imm32sex64
                            | K::imm64
                            | K::al
                            | K::ax
                            | K::eax
                            | K::rax
                            | K::cl
                            | K::imm8_const_1
                            | K::seg_rBX_al
                            | K::xmm_reg
                            | K::xmm_rm
                            | K::xmm_or_mem
                            | K::mm_reg
                            | K::mm_rm
                            | K::mm_or_mem
                            | K::st0
                            | K::sti_opcode
                    )
                })
                && simd_ok(*c)
        })
        .collect()
}

/// One random instruction of `codes`, encoded.
fn random_instruction(rng: &mut Rng, codes: &[Code], bits: u32, lockable: bool) -> Option<Vec<u8>> {
    for _ in 0..8 {
        let code = codes[rng.below(codes.len() as u64) as usize];
        let op = code.op_code();
        let ops: Option<Vec<Op>> = (0..op.op_count())
            .map(|k| operand(rng, op.op_kind(k), bits))
            .collect();
        let Some(ops) = ops else { continue };
        if matches!(ops.as_slice(), [Op::Implicit]) {
            return Some(vec![0xd7]); // XLAT [rBX+AL]
        }
        let Some(mut instr) = build(code, &ops) else {
            continue;
        };
        if lockable && matches!(ops.first(), Some(Op::Mem(_))) && rng.below(2) == 0 {
            instr.set_has_lock_prefix(true);
        }
        let mut enc = Encoder::new(bits);
        if enc.encode(&instr, 0).is_ok() {
            return Some(enc.take_buffer());
        }
    }
    None
}

/// A string instruction: optional REP/REPE/REPNE, operand and address size, one of
/// MOVS STOS LODS CMPS SCAS.
fn random_string(rng: &mut Rng, bits: u32) -> Vec<u8> {
    let mut b = Vec::new();
    match rng.below(4) {
        0 => b.push(0xf3),
        1 => b.push(0xf2),
        _ => {}
    }
    let wide = rng.below(2) == 1;
    if wide && rng.below(3) == 0 {
        b.push(0x66);
    }
    if bits == 64 && rng.below(4) == 0 {
        b.push(0x67); // 32-bit addresses (ESI/EDI/ECX) in 64-bit code
    }
    if bits == 64 && wide && rng.below(3) == 0 {
        b.push(0x48);
    }
    let op = [0xa4u8, 0xaa, 0xac, 0xa6, 0xae][rng.below(5) as usize];
    b.push(op + u8::from(wide));
    b
}

/// Generates a case of `class` (a name from [`CLASSES`]) with 1–`max_len` instructions.
pub fn generate(rng: &mut Rng, class: &str, compat: bool, max_len: usize) -> Option<Case> {
    let bits = if compat { 32 } else { 64 };
    let mnemonics = CLASSES.iter().find(|(n, _)| *n == class)?.1;
    let codes = codes_for(mnemonics, bits);
    if class != "string" && codes.is_empty() {
        return None;
    }
    // A transcendental result is compared to within an ulp (parts differ in the last bit),
    // so its case holds that one instruction: nothing downstream amplifies the difference.
    let n = if class == "x87-trans" {
        1
    } else {
        1 + rng.below(max_len as u64) as usize
    };
    let mut code = Vec::new();
    for _ in 0..n {
        let bytes = if class == "string" {
            random_string(rng, bits)
        } else {
            random_instruction(rng, &codes, bits, class == "atomic" || class == "arith")?
        };
        if class == "branch" {
            // A forward branch over this instruction: Jcc rel8, JMP rel8, LOOPcc, JrCXZ.
            let skip = bytes.len() as u8;
            match rng.below(6) {
                0 => code.extend_from_slice(&[0xeb, skip]),
                1 => code.extend_from_slice(&[0xe0 + rng.below(4) as u8, skip]),
                _ => code.extend_from_slice(&[0x70 + rng.below(16) as u8, skip]),
            }
        }
        code.extend_from_slice(&bytes);
    }
    code.extend_from_slice(&[0x0f, 0x0b]); // UD2 ends the case
    let mut regs = [0u64; 16];
    for r in regs.iter_mut() {
        *r = rng.value();
    }
    let (base, index) = base_index(bits);
    let slot = |r: Register| r.full_register() as usize - Register::RAX as usize;
    regs[slot(base)] = DATA_BASE;
    regs[slot(index)] = rng.below(32);
    regs[4] = STACK_TOP - 8 * rng.below(16);
    if class == "stack" {
        regs[5] = DATA_BASE + 8 * rng.below(16); // ENTER/LEAVE use RBP
    }
    if class == "string" {
        regs[1] = rng.below(24); // RCX
        regs[6] = DATA_ADDR + 0x100 + rng.below(0x200); // RSI
        regs[7] = DATA_ADDR + 0x500 + rng.below(0x200); // RDI
    }
    if class == "branch" {
        regs[1] = rng.below(4); // RCX: LOOP and JRCXZ take both ways
    }
    if class == "legacy" {
        // XLAT reads [EBX + AL]: keep EBX on the data page.
        regs[3] = DATA_BASE - rng.below(0x100);
    }
    if class == "bit" {
        // Register bit offsets into memory reach ±offset/8 bytes: keep them on the page.
        for r in regs.iter_mut().take(14) {
            if rng.below(2) == 0 {
                *r = rng.below(2048);
            }
        }
        regs[4] = STACK_TOP;
    }
    if compat {
        for r in regs.iter_mut() {
            *r &= 0xffff_ffff;
        }
    }
    let mut data = vec![0u8; DATA_SIZE];
    for chunk in data.chunks_mut(8) {
        let v = rng.value().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    // Half the x87-misc cases get a data page of valid packed-BCD bytes, for FBLD.
    if class == "x87-misc" && rng.below(2) == 0 {
        for b in data.iter_mut() {
            let n = *b % 100;
            *b = (n / 10) << 4 | (n % 10);
        }
    }
    let status = rng.next_u64() & 0x8d5; // CF PF AF ZF SF OF
    let df = if class == "string" && rng.below(2) == 0 {
        0x400
    } else {
        0
    };
    let float = matches!(class, "sse-float" | "sse-cvt" | "sse3" | "sse41-float");
    let xmm = std::array::from_fn(|_| {
        if float {
            random_float_xmm(rng)
        } else if class == "sse42" && rng.below(4) != 0 {
            random_string_xmm(rng)
        } else {
            random_xmm_value(rng)
        }
    });
    if class == "sse42" {
        // Explicit string lengths (EAX, EDX): mostly small, of either sign.
        for r in [0, 2] {
            if rng.below(4) != 0 {
                regs[r] = (rng.below(41) as i64 - 20) as u64;
                if compat {
                    regs[r] &= 0xffff_ffff;
                }
            }
        }
    }
    let mxcsr = if float { random_mxcsr(rng) } else { 0x1f80 };
    Some(Case {
        code,
        compat,
        regs,
        rflags: status | df,
        data,
        instructions: n,
        xmm,
        mxcsr,
        mm: std::array::from_fn(|_| rng.value()),
        // Arithmetic cases keep exceptions masked: unmasked ones (the biased results, #MF) are
        // exercised by the x87 class on exact operations and by the transcendental class
        // (one instruction per case, so the pending #MF does not end it early).
        fpu: (class.starts_with("x87") || class == "sse3").then(|| {
            random_fpu(
                rng,
                !matches!(class, "x87" | "x87-trans"),
                class == "x87-trans",
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mnemonic_of_every_class_has_an_encoding() {
        for (class, mnemonics) in CLASSES {
            let mut codes = codes_for(mnemonics, 64);
            codes.extend(codes_for(mnemonics, 32));
            for m in mnemonics.iter() {
                // String instructions and XLAT come from their own generators.
                if matches!(class, &"string") || *m == M::Xlatb {
                    continue;
                }
                assert!(
                    codes.iter().any(|c| c.mnemonic() == *m),
                    "{class}: no encoding of {m:?}"
                );
            }
        }
    }
}
