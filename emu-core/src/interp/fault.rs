//! Exceptions raised while executing an instruction.

/// Exception vectors the interpreter raises.
pub mod vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
}

/// An exception on its way to delivery; `error_code` for the vectors that push one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error_code: Option<u32>,
    /// For #PF: the faulting linear address (loaded into CR2 at delivery).
    pub cr2: Option<u64>,
}

impl Fault {
    pub const fn new(vector: u8) -> Self {
        Fault {
            vector,
            error_code: None,
            cr2: None,
        }
    }
    pub const fn with_code(vector: u8, code: u32) -> Self {
        Fault {
            vector,
            error_code: Some(code),
            cr2: None,
        }
    }
    pub const fn ud() -> Self {
        Self::new(vector::UD)
    }
    pub const fn gp(code: u32) -> Self {
        Self::with_code(vector::GP, code)
    }
    pub const fn ss(code: u32) -> Self {
        Self::with_code(vector::SS, code)
    }
    pub const fn np(code: u32) -> Self {
        Self::with_code(vector::NP, code)
    }
    pub const fn ts(code: u32) -> Self {
        Self::with_code(vector::TS, code)
    }
    pub const fn de() -> Self {
        Self::new(vector::DE)
    }
    pub const fn pf(addr: u64, code: u32) -> Self {
        Fault {
            vector: vector::PF,
            error_code: Some(code),
            cr2: Some(addr),
        }
    }

    /// Contributory exceptions for the double-fault rules (SDM Vol. 3, Table 6-5).
    pub fn is_contributory(&self) -> bool {
        matches!(self.vector, 0 | 10 | 11 | 12 | 13)
    }
}

/// What a step of execution can end with, beyond completing the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An exception to deliver, with RIP at the faulting instruction.
    Fault(Fault),
    /// A trap (single-step #DB) to deliver after the instruction completed: RIP at the next.
    Trap(Fault),
    /// HLT.
    Halt,
    /// The CPU shut down (triple fault).
    Shutdown,
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Stop::Fault(f)
    }
}

pub type Result<T> = std::result::Result<T, Stop>;
