//! The dynamic binary translator: guest blocks become host code (dynasmrt), cached by guest
//! physical address, run by the software vCPU through emu-core's [`ExecEngine`].
//!
//! The interpreter stays the reference semantics: the translator covers a subset of
//! instructions (see [`translate`]) and ends a block before anything else, which the
//! interpreter then runs. Guest ALU operations run as the same host instruction, so the
//! host's flags are the guest's (`pushfq` after the operation, merged into RFLAGS for the
//! flags the instruction writes). Guest memory is reached through helpers that call the
//! interpreter's own segmentation, paging and MMIO paths, so faults are the interpreter's
//! too, and precise: the block stops at the faulting instruction with everything before it
//! committed and nothing of it.
//!
//! x86-64 hosts only (`cfg(target_arch = "x86_64")`): elsewhere [`Jit::new`] says so and the
//! interpreter runs alone.

#[cfg(target_arch = "x86_64")]
mod cache;
#[cfg(target_arch = "x86_64")]
mod code_buffer;
#[cfg(target_arch = "x86_64")]
mod helpers;
#[cfg(target_arch = "x86_64")]
mod tlb;
#[cfg(target_arch = "x86_64")]
pub mod translate;

use emu_core::engine::ExecEngine;

/// Counters for `RUST_LOG=ferrite::stats=info`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Blocks translated (and their guest instructions).
    pub blocks: u64,
    pub translated_instructions: u64,
    /// Entries into translated code from the dispatcher (each may run many chained
    /// blocks), and the guest instructions retired in translated code.
    pub dispatches: u64,
    pub instructions: u64,
    /// Jumps patched to go straight to their target's block.
    pub chained: u64,
    /// Of the instructions retired in translated code, those the interpreter ran inside a
    /// block (instructions without a translation of their own).
    pub interpreted: u64,
    /// Times the interpreter took over: an instruction no block starts with, or a state the
    /// translator does not cover (not 64-bit code, TF, debug breakpoints).
    pub declined: u64,
    /// Blocks dropped because their page was written since they were translated.
    pub invalidated: u64,
    /// Whole-cache flushes (the code buffer reached its bound).
    pub flushes: u64,
    /// Exceptions raised in translated code.
    pub faults: u64,
    /// Instructions a block could hold but no block starts with (they cross into the next
    /// page), run by the interpreter without leaving the translated run.
    pub stepped: u64,
    /// The instructions the interpreter ran because no block starts with them, by iced
    /// mnemonic and operand size (bytes), with how often.
    pub fallbacks: emu_core::interp::fasthash::FastMap<(iced_x86::Mnemonic, u8), u64>,
    /// The instructions the interpreter ran inside blocks, the same way (counted only while
    /// the statistics are logged).
    pub interpreted_kinds: emu_core::interp::fasthash::FastMap<(iced_x86::Mnemonic, u8), u64>,
}

/// An instruction's mnemonic and operand size (bytes), for the statistics.
pub fn kind(i: &iced_x86::Instruction) -> (iced_x86::Mnemonic, u8) {
    let size = match i.op0_kind() {
        iced_x86::OpKind::Register => i.op0_register().size(),
        iced_x86::OpKind::Memory => i.memory_size().size(),
        _ => 0,
    };
    (i.mnemonic(), size as u8)
}

/// The `n` most frequent of `counts`, as text.
fn top(
    counts: &emu_core::interp::fasthash::FastMap<(iced_x86::Mnemonic, u8), u64>,
    n: usize,
) -> String {
    let mut all: Vec<_> = counts.iter().collect();
    all.sort_by(|a, b| b.1.cmp(a.1));
    all.iter()
        .take(n)
        .map(|((m, size), n)| format!("{m:?}/{size} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The translator for one vCPU.
pub struct Jit {
    #[cfg(target_arch = "x86_64")]
    cache: cache::Cache,
    stats: Stats,
}

impl Jit {
    /// A translator, or why there is none on this host.
    pub fn new() -> Result<Jit, String> {
        #[cfg(target_arch = "x86_64")]
        {
            Ok(Jit {
                cache: cache::Cache::new().map_err(|e| format!("no executable memory: {e}"))?,
                stats: Stats::default(),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Err("the translator has an x86-64 host backend only; the interpreter runs".into())
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl ExecEngine for Jit {
    fn run(
        &mut self,
        interp: &mut emu_core::interp::Interp,
        budget: u32,
    ) -> Result<u32, emu_core::interp::fault::Stop> {
        #[cfg(target_arch = "x86_64")]
        {
            self.cache.run(interp, budget, &mut self.stats)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (interp, budget);
            self.stats.declined += 1;
            Ok(0)
        }
    }

    fn summary(&self) -> String {
        let s = &self.stats;
        let inside = if s.interpreted_kinds.is_empty() {
            String::new()
        } else {
            format!("; inside blocks: {}", top(&s.interpreted_kinds, 16))
        };
        format!(
            "translator: {} blocks ({} instructions) translated, {} jumps chained, {} dispatches \
             retired {} instructions ({} of them by the interpreter inside blocks), {} handed to \
             the interpreter ({} crossing a page run in place), {} invalidated, {} flushes, \
             {} faults; the interpreter's most frequent: {}{}",
            s.blocks,
            s.translated_instructions,
            s.chained,
            s.dispatches,
            s.instructions,
            s.interpreted,
            s.declined,
            s.stepped,
            s.invalidated,
            s.flushes,
            s.faults,
            top(&s.fallbacks, 12),
            inside
        )
    }
}
