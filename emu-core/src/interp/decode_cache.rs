//! Decoded instructions cached per guest-physical page, so hot code is not decoded again.
//!
//! Entries are keyed by physical address and code size and carry the page's word from
//! [`super::code_pages::CodePages`] at decode time: after any store to the page (by any
//! vCPU) the word has moved and the entries no longer match. Instructions that cross a page
//! are not cached.

use iced_x86::Instruction;

/// Pages kept at most; past that the cache starts over (bounded host memory).
const MAX_PAGES: usize = 4096;

use super::fasthash::FastMap;

/// Entries of the direct-mapped front cache (a power of two).
const FRONT: usize = 8192;

/// A page's entries by (offset, code size).
type PageEntries = FastMap<(u16, u8), Instruction>;

/// A front-cache entry: physical address, code size, code word, the instruction.
type FrontEntry = (u64, u8, u32, Instruction);

pub struct DecodeCache {
    /// Per physical page: the code word the entries were decoded under, and the entries.
    pages: FastMap<u64, (u32, PageEntries)>,
    /// Direct-mapped by physical address; checked before the per-page maps.
    front: Box<[Option<FrontEntry>]>,
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
    /// The instruction cached at `phys` for `bits` under code word `word` when it was
    /// decoded at `rip` too (the hot path: the caller copies it once, whole, from here).
    #[inline]
    pub fn lookup(&self, phys: u64, bits: u32, word: u32, rip: u64) -> Option<&Instruction> {
        match &self.front[slot(phys)] {
            Some((p, b, w, i))
                if *p == phys && u32::from(*b) == bits && *w == word && i.ip() == rip =>
            {
                Some(i)
            }
            _ => None,
        }
    }

    /// The instruction cached at `phys` for `bits` under `word`, with its IP fields set to
    /// `rip`.
    #[inline(never)]
    pub fn get(&mut self, phys: u64, bits: u32, word: u32, rip: u64) -> Option<Instruction> {
        let k = slot(phys);
        let mut instr = match &self.front[k] {
            Some((p, b, w, i)) if *p == phys && u32::from(*b) == bits && *w == word => *i,
            _ => {
                let page = match self.pages.get(&(phys >> 12)) {
                    Some((w, page)) if *w == word => page,
                    Some(_) => {
                        // Written since: its entries are stale.
                        self.pages.remove(&(phys >> 12));
                        return None;
                    }
                    None => return None,
                };
                let i = *page.get(&((phys & 0xfff) as u16, bits as u8))?;
                self.front[k] = Some((phys, bits as u8, word, i));
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

    /// Caches `instr`, decoded at `phys` for `bits` from bytes read after the page's code
    /// word became `word`.
    pub fn insert(&mut self, phys: u64, bits: u32, word: u32, instr: Instruction) {
        if self.pages.len() >= MAX_PAGES && !self.pages.contains_key(&(phys >> 12)) {
            self.pages.clear();
            self.front.fill(None);
        }
        let (w, page) = self
            .pages
            .entry(phys >> 12)
            .or_insert_with(|| (word, FastMap::default()));
        if *w != word {
            page.clear();
            *w = word;
        }
        page.insert(((phys & 0xfff) as u16, bits as u8), instr);
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
