//! LOCK'ed instructions (and XCHG with memory, which is always locked) made atomic against
//! the machine's other vCPUs, as QEMU's MTTCG does.
//!
//! With one vCPU nothing else can touch memory between an instruction's read and its write,
//! so this path is only taken on SMP machines. There, a naturally aligned operand of 1 to 8
//! bytes in RAM is done optimistically: its value is loaded with a host atomic, the
//! instruction runs against that captured value (its store lands in the capture, not in
//! memory), and the result is committed with one host compare-and-swap; if another vCPU
//! changed the value meanwhile, the registers are put back and the instruction runs again.
//! Plain stores of other vCPUs are thereby ordered before or after it, as on hardware.
//! Everything else (split or misaligned operands, CMPXCHG16B, MMIO) runs with every other
//! vCPU stopped (the group's exclusive gate).

use iced_x86::{Instruction, Mnemonic as M};

use super::fault::Result;
use super::mmu::Access;
use super::Interp;

/// The memory operand of the instruction being made atomic.
pub(crate) struct Capture {
    linear: u64,
    len: usize,
    bytes: [u8; 16],
    wrote: bool,
}

impl Capture {
    /// Where `size` bytes at `linear` sit in the capture, if they are inside it.
    fn offset(&self, linear: u64, size: usize) -> Option<usize> {
        let off = usize::try_from(linear.wrapping_sub(self.linear)).ok()?;
        (off.checked_add(size)? <= self.len).then_some(off)
    }
}

/// Whether `i` must be atomic against other CPUs' accesses to its memory operand.
pub(crate) fn is_atomic(i: &Instruction) -> bool {
    i.has_lock_prefix()
        || (i.mnemonic() == M::Xchg && (Interp::is_mem(i, 0) || Interp::is_mem(i, 1)))
}

impl Interp {
    /// A memory-operand read served from the capture, if it covers it.
    #[inline]
    pub(crate) fn captured_read(&self, linear: u64, size: u32) -> Option<u64> {
        let c = self.capture.as_ref()?;
        let off = c.offset(linear, size as usize)?;
        let mut b = [0u8; 8];
        b[..size as usize].copy_from_slice(&c.bytes[off..off + size as usize]);
        Some(u64::from_le_bytes(b))
    }

    /// A memory-operand store taken by the capture, if it covers it.
    #[inline]
    pub(crate) fn captured_write(&mut self, linear: u64, size: u32, value: u64) -> bool {
        let Some(c) = self.capture.as_mut() else {
            return false;
        };
        let Some(off) = c.offset(linear, size as usize) else {
            return false;
        };
        c.bytes[off..off + size as usize].copy_from_slice(&value.to_le_bytes()[..size as usize]);
        c.wrote = true;
        true
    }

    /// The segment, offset and size of the memory operand `i` locks.
    fn locked_operand(&self, i: &Instruction) -> (usize, u64, u32) {
        match i.mnemonic() {
            M::Cmpxchg8b | M::Cmpxchg16b => {
                let (seg, off) = self.mem_operand(i, 0);
                (seg, off, if i.mnemonic() == M::Cmpxchg8b { 8 } else { 16 })
            }
            M::Xchg if !Self::is_mem(i, 0) => {
                let (seg, off) = self.mem_operand(i, 1);
                (seg, off, self.op_size(i, 1))
            }
            M::Bts | M::Btr | M::Btc if i.op_kind(1) == iced_x86::OpKind::Register => {
                let (seg, off) = self.bit_string_address(i, self.get_reg(i.op_register(1)));
                (seg, off, self.op_size(i, 0))
            }
            _ => {
                let (seg, off) = self.mem_operand(i, 0);
                (seg, off, self.op_size(i, 0))
            }
        }
    }

    /// Executes `i` atomically against the group's other vCPUs (see the module comment).
    pub(crate) fn execute_atomic(&mut self, i: &Instruction) -> Result<()> {
        let (seg, off, size) = self.locked_operand(i);
        if size <= 8 {
            let linear = self.seg_linear(seg, off, size, true)?;
            self.check_alignment(linear, size)?;
            let linear = self.wrap_linear(linear);
            if linear & u64::from(size - 1) == 0 {
                let priv_ = self.privilege();
                let phys =
                    self.mmu
                        .translate(&mut self.cpu, &self.mem, linear, Access::Write, priv_)?;
                if let Some(old) = self.mem.atomic_load(phys, size as usize) {
                    return self.execute_captured(i, linear, phys, size as usize, old);
                }
            }
        }
        self.execute_alone(i)
    }

    /// Runs `i` against the captured `old` and commits with compare-and-swap, again until
    /// no other vCPU got in between.
    fn execute_captured(
        &mut self,
        i: &Instruction,
        linear: u64,
        phys: u64,
        size: usize,
        mut old: u64,
    ) -> Result<()> {
        loop {
            let (regs, rflags) = (self.cpu.regs, self.cpu.rflags);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&old.to_le_bytes());
            self.capture = Some(Capture {
                linear,
                len: size,
                bytes,
                wrote: false,
            });
            let done = self.semantics(i);
            let Some(c) = self.capture.take() else {
                return done;
            };
            done?;
            if !c.wrote {
                return Ok(());
            }
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&c.bytes[..size]);
            let new = u64::from_le_bytes(b);
            match self.mem.atomic_cas(phys, size, old, new) {
                Some(true) => {
                    self.group.code.wrote(phys, size);
                    return Ok(());
                }
                Some(false) => {
                    self.cpu.regs = regs;
                    self.cpu.rflags = rflags;
                    old = self.mem.atomic_load(phys, size).unwrap_or(old);
                }
                // The page stopped being RAM under us (cannot happen today): alone, then.
                None => {
                    self.cpu.regs = regs;
                    self.cpu.rflags = rflags;
                    return self.execute_alone(i);
                }
            }
        }
    }

    /// Runs `i` with every other vCPU of the group stopped between instructions.
    fn execute_alone(&mut self, i: &Instruction) -> Result<()> {
        let was_running = self.running.take().is_some();
        let group = self.group.clone();
        let done = group.exclusive(|| self.semantics(i));
        if was_running {
            self.running = Some(group.enter());
        }
        done
    }
}
