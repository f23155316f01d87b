//! REP MOVS and REP STOS a page at a time: the iterations that stay inside one page of the
//! destination (and of the source) are translated once and done as one host copy or fill.
//! Kernels clear and copy pages with `rep stosb`/`rep movsq`; element by element, each
//! iteration paid a segment check, an MMU lookup and a RAM lookup.
//!
//! The result is the element-by-element one: a chunk is only taken when nothing in it can
//! fault (the segment check covers the whole chunk, both pages translate), both ranges are
//! RAM, and the copy cannot see its own stores (a destination just above its source, where
//! element order matters, goes element by element). Anything else returns 0 and the caller
//! runs one element the ordinary way, which raises the fault at the exact iteration.

use iced_x86::Mnemonic;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::cpu::{flags::DF, sreg};
use super::mmu::Access;
use super::operand::mask;
use super::Interp;

/// What one chunk needs to know about the instruction.
pub(crate) struct BulkOp {
    pub mnemonic: Mnemonic,
    /// Address size in bytes (2, 4 or 8).
    pub asz: u32,
    /// Element size in bytes.
    pub elem: u32,
    pub src_seg: usize,
    /// Iterations this step may still run.
    pub budget: u32,
}

impl Interp {
    /// Runs as many iterations as fit in one page of each operand, at most `op.budget` and
    /// at most the count in rCX; returns how many ran (RSI/RDI/RCX advanced by them).
    pub(crate) fn string_bulk(&mut self, op: &BulkOp) -> u32 {
        let is_movs = matches!(
            op.mnemonic,
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq
        );
        let is_stos = matches!(
            op.mnemonic,
            Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq
        );
        if !(is_movs || is_stos)
            || self.cpu.flag(DF)
            || self.capture.is_some()
            || self.alignment_checked()
        {
            return 0;
        }
        let cm = mask(op.asz);
        let elem = u64::from(op.elem);
        let di = self.cpu.regs[7] & cm;
        let si = self.cpu.regs[6] & cm;
        let count = self.cpu.regs[1] & cm;
        // Elements before the destination (or source) leaves its page, or its offset wraps.
        let fit = |off: u64, linear: u64| -> u64 {
            let to_page = (0x1000 - (linear & 0xfff)) / elem;
            if op.asz == 8 {
                return to_page;
            }
            to_page.min((cm - off + 1) / elem)
        };
        let Ok(dst_lin) = self.seg_linear(sreg::ES, di, op.elem, true) else {
            return 0;
        };
        let dst_lin = self.wrap_linear(dst_lin);
        let mut n = count.min(u64::from(op.budget)).min(fit(di, dst_lin));
        let mut src_lin = 0;
        if is_movs {
            let Ok(l) = self.seg_linear(op.src_seg, si, op.elem, false) else {
                return 0;
            };
            src_lin = self.wrap_linear(l);
            n = n.min(fit(si, src_lin));
        }
        if n < 2 {
            return 0;
        }
        let len = n * elem;
        // The segment checks for the whole chunk (limits, canonical form).
        let Ok(len32) = u32::try_from(len) else {
            return 0;
        };
        if self.seg_linear(sreg::ES, di, len32, true).is_err()
            || (is_movs && self.seg_linear(op.src_seg, si, len32, false).is_err())
        {
            return 0;
        }
        let priv_ = self.privilege();
        let src_phys = if is_movs {
            match self
                .mmu
                .translate(&mut self.cpu, &self.mem, src_lin, Access::Read, priv_)
            {
                Ok(p) => p,
                Err(_) => return 0,
            }
        } else {
            0
        };
        let Ok(dst_phys) =
            self.mmu
                .translate(&mut self.cpu, &self.mem, dst_lin, Access::Write, priv_)
        else {
            return 0;
        };
        let ram = self.mem.ram();
        let in_ram = |p: u64| ram.get_slice(GuestAddress(p), len as usize).is_ok();
        if !in_ram(dst_phys) || (is_movs && !in_ram(src_phys)) {
            return 0;
        }
        if is_movs && dst_phys > src_phys && dst_phys < src_phys + len {
            // Forward element order differs from a plain copy only when the destination
            // starts inside the source above it: later elements would read earlier stores.
            return 0;
        }
        let mut buf = std::mem::take(&mut self.bulk);
        let chunk = &mut buf[..len as usize];
        if is_movs {
            self.mem.read(src_phys, chunk);
        } else {
            let v = self.cpu.regs[0].to_le_bytes();
            let pattern = &v[..op.elem as usize];
            for element in chunk.chunks_exact_mut(op.elem as usize) {
                element.copy_from_slice(pattern);
            }
        }
        self.write_phys(dst_phys, chunk);
        self.bulk = buf;
        self.advance_by(7, op.asz, len);
        if is_movs {
            self.advance_by(6, op.asz, len);
        }
        let c = count - n;
        self.cpu.regs[1] = if op.asz == 4 {
            c
        } else {
            (self.cpu.regs[1] & !cm) | c
        };
        n as u32
    }

    /// Adds `bytes` to an index register at an address size (forward direction only).
    fn advance_by(&mut self, reg: usize, asz: u32, bytes: u64) {
        let m = mask(asz);
        let v = self.cpu.regs[reg];
        self.cpu.regs[reg] = if asz == 4 {
            v.wrapping_add(bytes) & m
        } else {
            (v & !m) | (v.wrapping_add(bytes) & m)
        };
    }
}
