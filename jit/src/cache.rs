//! Translated blocks by guest physical address and RIP, in one bounded code buffer, and the
//! call into them.
//!
//! A block is valid while its code page's word (emu-core's `CodePages`) is the one it was
//! translated under: any store to the page, by this vCPU or another, moves the word, and the
//! next lookup translates the block again. The key includes RIP because relative targets
//! depend on the linear address the same physical bytes run at. When the buffer passes
//! [`MAX_CODE_BYTES`] or the map [`MAX_BLOCKS`], everything is dropped and translation
//! starts over (the cache never grows without bound, whatever the guest does).

use dynasmrt::x64::Assembler;
use dynasmrt::{AssemblyOffset, DynasmApi, Executor};
use iced_x86::{Decoder, DecoderOptions};

use emu_core::interp::cpu::{flags, Mode};
use emu_core::interp::fasthash::FastMap;
use emu_core::interp::fault::Stop;
use emu_core::interp::Interp;

use crate::helpers::{self, Ctx};
use crate::translate::{supported, BlockBuilder, MAX_BLOCK};
use crate::Stats;

/// Host code bytes kept at most before the cache starts over.
const MAX_CODE_BYTES: usize = 64 << 20;
/// Blocks (and "cannot translate here" marks) kept at most.
const MAX_BLOCKS: usize = 1 << 18;

#[derive(Clone, Copy)]
struct Block {
    /// `None`: the instruction here is not translated (the interpreter runs it).
    entry: Option<AssemblyOffset>,
    word: u32,
    /// For a block that is not there: the instruction the interpreter runs instead (for the
    /// statistics), as iced's mnemonic and operand size.
    fallback: (iced_x86::Mnemonic, u8),
}

pub struct Cache {
    ops: Assembler,
    reader: Executor,
    blocks: FastMap<(u64, u64), Block>,
}

/// A translated block: the context in, the guest instructions retired out.
type BlockFn = extern "sysv64" fn(*mut Ctx) -> u32;

impl Cache {
    pub fn new() -> std::io::Result<Cache> {
        let ops = Assembler::new()?;
        let reader = ops.reader();
        Ok(Cache {
            ops,
            reader,
            blocks: FastMap::default(),
        })
    }

    fn flush(&mut self, stats: &mut Stats) {
        match Assembler::new() {
            Ok(ops) => {
                self.reader = ops.reader();
                self.ops = ops;
            }
            Err(e) => log::warn!("translator: cannot renew the code buffer ({e}); reusing it"),
        }
        self.blocks.clear();
        stats.flushes += 1;
    }

    /// Translates the block at `phys` (RIP `rip`).
    fn translate(&mut self, interp: &mut Interp, phys: u64, rip: u64, stats: &mut Stats) -> Block {
        if self.ops.offset().0 > MAX_CODE_BYTES || self.blocks.len() > MAX_BLOCKS {
            self.flush(stats);
        }
        // Marked before the bytes are read, so a later store moves the word.
        let Some(word) = interp.mark_code(phys) else {
            return Block {
                entry: None,
                word: 0,
                fallback: (iced_x86::Mnemonic::INVALID, 0),
            };
        };
        let mut bytes = vec![0u8; (0x1000 - (phys & 0xfff)) as usize];
        interp.mem.read(phys, &mut bytes);
        let mut decoder = Decoder::with_ip(64, &bytes, rip, DecoderOptions::NONE);
        let mut instrs = Vec::new();
        let mut fallback = (iced_x86::Mnemonic::INVALID, 0);
        while instrs.len() < MAX_BLOCK && decoder.can_decode() {
            let i = decoder.decode();
            // Invalid includes an instruction cut by the end of the page.
            if i.is_invalid() {
                break;
            }
            match supported(&i) {
                None => {
                    let size = match i.op0_kind() {
                        iced_x86::OpKind::Register => i.op0_register().size(),
                        iced_x86::OpKind::Memory => i.memory_size().size(),
                        _ => 0,
                    };
                    fallback = (i.mnemonic(), size as u8);
                    break;
                }
                Some(flow) => {
                    instrs.push(i);
                    if flow == crate::translate::Flow::End {
                        break;
                    }
                }
            }
        }
        let block = if instrs.is_empty() {
            Block {
                entry: None,
                word,
                fallback,
            }
        } else {
            let entry = BlockBuilder::build(&mut self.ops, &instrs);
            if let Err(e) = self.ops.commit() {
                log::warn!("translator: commit failed ({e}); interpreting");
                return Block {
                    entry: None,
                    word,
                    fallback,
                };
            }
            stats.blocks += 1;
            stats.translated_instructions += instrs.len() as u64;
            Block {
                entry: Some(entry),
                word,
                fallback,
            }
        };
        self.blocks.insert((phys, rip), block);
        block
    }

    /// Runs translated blocks from the current state until `budget` instructions have
    /// retired, a block ends on a store into its own code, or the next instruction is not
    /// translated (then the interpreter takes it; 0 if that was the first).
    pub fn run(
        &mut self,
        interp: &mut Interp,
        budget: u32,
        stats: &mut Stats,
    ) -> Result<u32, Stop> {
        let mut total = 0u32;
        loop {
            match self.run_block(interp, stats)? {
                Some((retired, more)) => {
                    total += retired;
                    if !more || total >= budget {
                        return Ok(total);
                    }
                }
                None => {
                    if total == 0 {
                        stats.declined += 1;
                    }
                    return Ok(total);
                }
            }
        }
    }

    /// One block: `None` if there is none here; else the instructions it retired and
    /// whether another may follow at once.
    fn run_block(
        &mut self,
        interp: &mut Interp,
        stats: &mut Stats,
    ) -> Result<Option<(u32, bool)>, Stop> {
        let cpu = &interp.cpu;
        if cpu.mode() != Mode::Long64 || cpu.flag(flags::TF) || cpu.dr[7] & 0xff != 0 {
            return Ok(None);
        }
        // A fetch fault is the interpreter's to raise.
        let Ok((phys, word)) = interp.code_location() else {
            return Ok(None);
        };
        let rip = interp.cpu.rip;
        let block = match self.blocks.get(&(phys, rip)) {
            Some(b) if b.word == word => *b,
            stale => {
                if stale.is_some() {
                    stats.invalidated += 1;
                }
                self.translate(interp, phys, rip, stats)
            }
        };
        let Some(entry) = block.entry else {
            *stats.fallbacks.entry(block.fallback).or_default() += 1;
            return Ok(None);
        };
        let p: *mut Interp = interp;
        let mut ctx = Ctx {
            // SAFETY: field addresses of the live interpreter behind `p`; no reference to it
            // is used while the block runs (helpers reach it through `ctx.interp`).
            regs: unsafe { std::ptr::addr_of_mut!((*p).cpu.regs) }.cast(),
            // SAFETY: as above.
            rflags: unsafe { std::ptr::addr_of_mut!((*p).cpu.rflags) },
            // SAFETY: as above.
            rip: unsafe { std::ptr::addr_of_mut!((*p).cpu.rip) },
            status: helpers::OK,
            scratch: [0; 2],
            interp: p,
            fault: None,
            page: phys >> 12,
            word: block.word,
        };
        let retired = {
            let code = self.reader.lock();
            // SAFETY: `entry` is the start of a block `BlockBuilder` emitted and committed
            // into this buffer (the cache is cleared whenever the buffer is replaced), with
            // the `BlockFn` signature; the buffer stays mapped and executable while `code`
            // is held.
            let f: BlockFn = unsafe { std::mem::transmute(code.ptr(entry)) };
            f(&mut ctx)
        };
        stats.runs += 1;
        stats.instructions += u64::from(retired);
        interp.stats.instructions += u64::from(retired);
        if retired > 0 {
            interp.interrupt_shadow = false;
        }
        match (ctx.status, ctx.fault) {
            (helpers::FAULT, Some(f)) => {
                stats.faults += 1;
                interp.interrupt_shadow = false;
                Err(Stop::Fault(f))
            }
            (status, _) => Ok(Some((retired, status == helpers::OK))),
        }
    }
}
