//! Differential testing of the interpreter against the host CPU.
//!
//! A case is a short random instruction sequence (encoded with iced-x86) ending in UD2, plus
//! initial registers, flags and a data page. The host runs it natively in a traced child
//! process ([`host`]); the interpreter runs it at CPL 3 in long mode with the same pages
//! mapped ([`soft`]). Registers, RIP, RFLAGS (without the flags the executed instructions
//! leave undefined), the data page and the exception raised must match.

pub mod case;
pub mod gen;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod host;
#[cfg(target_arch = "x86_64")]
pub mod real16;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod runner;
pub mod soft;

pub use case::{Case, Exception, Outcome};

/// Where the snippet and its data live, in both worlds (below 4 GiB for compatibility mode).
pub const CODE_ADDR: u64 = 0x1000_0000;
pub const DATA_ADDR: u64 = 0x2000_0000;
pub const DATA_SIZE: usize = 0x1000;
/// Base register value for memory operands: the middle of the data page.
pub const DATA_BASE: u64 = DATA_ADDR + 0x800;
/// The stack: at the top of the data page.
pub const STACK_TOP: u64 = DATA_ADDR + 0xf00;
