//! Decoded instructions cached per guest-physical page, so hot code is not decoded again.
//!
//! Entries are keyed by physical address and code size; any store to a page drops that
//! page's entries (self-modifying code). Instructions that cross a page are not cached.

use iced_x86::Instruction;

/// Pages kept at most; past that the cache starts over (bounded host memory).
const MAX_PAGES: usize = 4096;

use super::fasthash::FastMap;

/// Entries of the direct-mapped front cache (a power of two).
const FRONT: usize = 8192;

pub struct DecodeCache {
    pages: FastMap<u64, FastMap<(u16, u8), Instruction>>,
    /// Direct-mapped by physical address: (physical address, code size) and the
    /// instruction; checked before the per-page maps.
    front: Box<[Option<(u64, u8, Instruction)>]>,
}

impl Default for DecodeCache {
    fn default() -> Self {
        DecodeCache {
            pages: FastMap::default(),
            front: vec![None; FRONT].into_boxed_slice(),
        }
    }
}

fn slot(phys: u64) -> usize {
    ((phys ^ (phys >> 10)) as usize) & (FRONT - 1)
}

impl DecodeCache {
    /// The instruction cached at `phys` for `bits` when it was decoded at `rip` too (the
    /// hot path: the caller copies it once, whole, from here).
    #[inline]
    pub fn lookup(&self, phys: u64, bits: u32, rip: u64) -> Option<&Instruction> {
        match &self.front[slot(phys)] {
            Some((p, b, i)) if *p == phys && u32::from(*b) == bits && i.ip() == rip => Some(i),
            _ => None,
        }
    }

    /// The instruction cached at `phys` for `bits`, with its IP fields set to `rip`.
    pub fn get(&mut self, phys: u64, bits: u32, rip: u64) -> Option<Instruction> {
        self.get_slow(phys, bits, rip)
    }

    #[inline(never)]
    fn get_slow(&mut self, phys: u64, bits: u32, rip: u64) -> Option<Instruction> {
        let k = slot(phys);
        let mut instr = match &self.front[k] {
            Some((p, b, i)) if *p == phys && u32::from(*b) == bits => *i,
            _ => {
                let page = self.pages.get(&(phys >> 12))?;
                let i = *page.get(&((phys & 0xfff) as u16, bits as u8))?;
                self.front[k] = Some((phys, bits as u8, i));
                i
            }
        };
        if instr.ip() != rip {
            // The same physical bytes reached through another linear address: relative
            // targets depend on the IP, so rebase.
            let delta = rip.wrapping_sub(instr.ip());
            rebase(&mut instr, delta);
        }
        Some(instr)
    }

    pub fn insert(&mut self, phys: u64, bits: u32, instr: Instruction) {
        if self.pages.len() >= MAX_PAGES && !self.pages.contains_key(&(phys >> 12)) {
            self.pages.clear();
            self.front.fill(None);
        }
        self.pages
            .entry(phys >> 12)
            .or_default()
            .insert(((phys & 0xfff) as u16, bits as u8), instr);
    }

    /// A store of `len` bytes at `phys`.
    pub fn invalidate(&mut self, phys: u64, len: usize) {
        if self.pages.is_empty() {
            return;
        }
        let first = phys >> 12;
        let last = phys.wrapping_add(len.max(1) as u64 - 1) >> 12;
        let mut dropped = self.pages.remove(&first).is_some();
        if last != first {
            dropped |= self.pages.remove(&last).is_some();
        }
        if dropped {
            // A store into code: forget that page's front entries too (rare: self-modifying
            // code and pages reused for new code).
            for e in self.front.iter_mut() {
                if matches!(e, Some((p, _, _)) if *p >> 12 == first || *p >> 12 == last) {
                    *e = None;
                }
            }
        }
    }
}

/// Moves an instruction decoded at one IP to another, fixing IP-relative operands.
fn rebase(instr: &mut Instruction, delta: u64) {
    use iced_x86::OpKind;
    let new_ip = instr.ip().wrapping_add(delta);
    for i in 0..instr.op_count() {
        match instr.op_kind(i) {
            OpKind::NearBranch16 => {
                instr.set_near_branch16(instr.near_branch16().wrapping_add(delta as u16))
            }
            OpKind::NearBranch32 => {
                instr.set_near_branch32(instr.near_branch32().wrapping_add(delta as u32))
            }
            OpKind::NearBranch64 => {
                instr.set_near_branch64(instr.near_branch64().wrapping_add(delta))
            }
            _ => {}
        }
    }
    if instr.is_ip_rel_memory_operand() {
        instr.set_memory_displacement64(instr.memory_displacement64().wrapping_add(delta));
    }
    instr.set_ip(new_ip);
}
