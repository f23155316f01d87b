//! One differential test case and what running it produced.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// The exception a run ended with (the final UD2 is the normal end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #UD (SIGILL).
    InvalidOpcode,
    /// #DE (SIGFPE).
    DivideError,
    /// #GP, #SS or #PF: the host reports all as SIGSEGV/SIGBUS, which do not always tell
    /// them apart, so they compare as one class.
    Protection,
    /// #DB or #BP (SIGTRAP).
    Trap,
    /// Anything else (the vector, or the host's signal number).
    Other(u8),
}

/// A case: 64-bit or compatibility-mode code, initial state, and the data page.
#[derive(Clone, Debug)]
pub struct Case {
    pub code: Vec<u8>,
    /// 32-bit code in a compatibility-mode segment (CS 0x23) instead of 64-bit.
    pub compat: bool,
    pub regs: [u64; 16],
    /// Initial arithmetic flags and DF.
    pub rflags: u64,
    pub data: Vec<u8>,
    /// How many instructions precede the final UD2.
    pub instructions: usize,
    /// Initial XMM0–XMM15 and MXCSR.
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    /// Initial MM0–MM7 (the x87 registers' significands; TOP 0, all tags empty).
    pub mm: [u64; 8],
    /// For x87 cases: the whole x87 state to start from instead (replaces `mm`).
    pub fpu: Option<FpuInit>,
}

/// An x87 state: control, status (TOP and condition codes), abridged tags (by physical
/// register) and ST0–ST7 (stack order).
#[derive(Clone, Debug)]
pub struct FpuInit {
    pub fcw: u16,
    pub fsw: u16,
    pub ftw: u8,
    pub st: [[u8; 10]; 8],
}

/// The state after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub regs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub data: Vec<u8>,
    pub exception: Exception,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    /// ST0–ST7 as FXSAVE stores them (80 bits each), FSW and the abridged tag word.
    pub st: [[u8; 10]; 8],
    pub fcw: u16,
    pub fsw: u16,
    pub ftw: u8,
    /// Set by the interpreter side when the run depended on something the architecture
    /// leaves undefined (vendors differ there), with what it was: the case is left out.
    pub undefined: Option<String>,
}

impl Case {
    pub fn bitness(&self) -> u32 {
        if self.compat {
            32
        } else {
            64
        }
    }

    /// The code as assembly text, one instruction a line.
    pub fn disassemble(&self) -> String {
        let mut d = Decoder::with_ip(
            self.bitness(),
            &self.code,
            super::CODE_ADDR,
            DecoderOptions::NONE,
        );
        let mut f = IntelFormatter::new();
        let mut out = String::new();
        for i in &mut d {
            let mut s = String::new();
            f.format(&i, &mut s);
            out.push_str(&format!("  {:#x}: {s}\n", i.ip()));
        }
        out
    }
}

pub const REG_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];
