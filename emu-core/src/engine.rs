//! A faster way to run guest code than the interpreter's one instruction at a time: the
//! translator in `jit` plugs in here, and the software vCPU asks it first.
//!
//! The engine runs whole blocks and stops at their ends, so the vCPU still takes interrupts,
//! polls timers and looks at kicks between them; whatever the engine does not handle (an
//! instruction it cannot translate, a mode it does not cover, TF set) it declines and the
//! interpreter runs that one instruction. Exceptions raised in translated code leave the
//! guest state exactly as the interpreter's `execute_one` would (RIP at the faulting
//! instruction, nothing of it committed, the instructions before it retired and counted) and
//! come back undelivered as `Err(Stop::Fault)`, for the caller to deliver (the vCPU) or
//! compare (the differential harness).

use crate::interp::fault::Stop;
use crate::interp::Interp;

pub trait ExecEngine: Send {
    /// Runs guest code from `interp`'s current state, one block (at most about `budget`
    /// instructions). Returns how many guest instructions retired; 0 means the engine
    /// declined and the interpreter must run the next instruction. `Err(Stop::Fault)` is an
    /// exception at the instruction RIP now points at, not yet delivered.
    fn run(&mut self, interp: &mut Interp, budget: u32) -> Result<u32, Stop>;

    /// A line of statistics for the vCPU's report.
    fn summary(&self) -> String;
}
