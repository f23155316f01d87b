//! The translator's soft TLB: linear page → host address, looked up inline by translated
//! loads and stores (QEMU's fast path: a dozen host instructions on a hit).
//!
//! Direct-mapped, [`ENTRIES`] entries indexed by the linear page's low bits. An entry holds
//! the page's linear address as a read tag and, once a write went through the slow path
//! (so the page is writable at this privilege and its dirty bit is set), as a write tag;
//! the host address of the page's RAM minus its linear address; and the page's code word
//! (emu-core's `CodePages`), whose bit 0 ("decoded code here") sends a store to the slow
//! path, where it moves the word so any vCPU's blocks of that page go stale.
//!
//! Only whole RAM pages are entered (MMIO always takes the slow path, which is the
//! interpreter's). Entries are filled by the slow path after the interpreter's own access
//! succeeded, so every permission, A/D-bit and fault decision is the interpreter's; the
//! table is dropped whenever the interpreter's MMU flushed (its generation moved), CR0.WP or
//! the A20 gate changed, or alignment checking came on (then nothing is entered) — all but
//! its global pages' entries when the flush was a CR3 load that keeps them (the kernel's
//! pages: a process switch would otherwise send every kernel access and jump to the slow
//! path once more). There is
//! one table for user code and one for supervisor code (QEMU's MMU indexes), so system calls
//! and interrupts do not empty it: each is valid for its own privilege's page permissions.

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use emu_core::interp::Interp;

/// Entries (a power of two) per privilege.
pub const ENTRIES: usize = 1024;
/// Bytes per entry (the index is scaled by this in translated code).
pub const ENTRY_SHIFT: u8 = 5;
/// Field offsets within an entry.
pub const READ_TAG: i32 = 0;
pub const WRITE_TAG: i32 = 8;
pub const ADDEND: i32 = 16;
pub const CODE: i32 = 24;
/// A tag no page-aligned address equals.
const INVALID: u64 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Entry {
    read_tag: u64,
    write_tag: u64,
    /// Host address of the page minus its linear address.
    addend: u64,
    /// The page's code word.
    code: *const std::sync::atomic::AtomicU32,
}

const EMPTY: Entry = Entry {
    read_tag: INVALID,
    write_tag: INVALID,
    addend: 0,
    code: std::ptr::null(),
};

/// What the entries are valid under.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Key {
    interp: u64,
    generation: u64,
    global_generation: u64,
    a20: u64,
    wp: bool,
    aligned: bool,
}

/// Jump-cache entries (a power of two): linear RIP → the entry of the block there, for
/// returns, indirect and cross-page jumps. Valid under the same key as the TLB (the
/// linear-to-physical mapping and CPL the dispatcher found the block under); the block's
/// own entry check covers its code page's word.
pub const JUMPS: usize = 4096;
/// Bytes per jump-cache entry (RIP tag, block address).
pub const JUMP_SHIFT: u8 = 4;

/// A RIP's jump-cache entry: its low bits folded with its page number's, so functions
/// at the same offset in different pages (aligned entries, returns after calls) do not
/// all meet in a few entries. Translated code computes the same (`jump_through_cache`).
pub fn jump_slot(rip: u64) -> usize {
    ((rip ^ (rip >> 12)) as usize) % JUMPS
}
/// A RIP tag no instruction has (not canonical).
const NO_RIP: u64 = 1 << 63;

pub struct Tlb {
    /// Supervisor (0) and user (1) tables, and the one in use.
    entries: Box<[[Entry; ENTRIES]; 2]>,
    jumps: Box<[[[u64; 2]; JUMPS]; 2]>,
    /// Which entries and jump targets are of global pages.
    global: Box<[[bool; ENTRIES]; 2]>,
    global_jumps: Box<[[bool; JUMPS]; 2]>,
    user: usize,
    key: Key,
    /// The code mode (`cache::code_mode`'s key) each privilege's jump targets were found
    /// for: a RIP names another block in another mode, or under another CS base.
    jump_mode: [u64; 2],
    /// The entries and jump targets filled since their table was last emptied, so a drop
    /// touches those alone (a process switch or an INVLPG emptied all 2 × 1024 entries
    /// and 2 × 4096 jump targets: 2–3 % of a pipeline's host time).
    filled: [Filled; 2],
    filled_jumps: [Filled; 2],
}

/// The indices of one table's entries filled since it was last emptied (each once: an
/// index is noted when its entry goes from empty to filled), or `None` once they outgrew
/// the table (then a drop goes over all of it).
#[derive(Default)]
struct Filled(Option<Vec<u16>>);

impl Filled {
    fn note(&mut self, index: usize, size: usize) {
        if let Some(v) = &mut self.0 {
            if v.len() < size {
                v.push(index as u16);
            } else {
                self.0 = None;
            }
        }
    }

    /// Empties the entries of `table` that `keep` does not keep, by the list where there
    /// is one; the list then holds the kept ones.
    fn drop_from<T: Copy>(&mut self, table: &mut [T], empty: T, keep: impl Fn(usize) -> bool) {
        match &mut self.0 {
            Some(v) => v.retain(|&i| {
                let kept = keep(usize::from(i));
                if !kept {
                    table[usize::from(i)] = empty;
                }
                kept
            }),
            None => {
                let mut kept = Vec::new();
                for (i, e) in table.iter_mut().enumerate() {
                    if keep(i) {
                        kept.push(i as u16);
                    } else {
                        *e = empty;
                    }
                }
                self.0 = Some(kept);
            }
        }
    }

    /// Empties every entry of `table`.
    fn drop_all<T: Copy>(&mut self, table: &mut [T], empty: T) {
        match &mut self.0 {
            Some(v) => {
                for &i in v.iter() {
                    table[usize::from(i)] = empty;
                }
                v.clear();
            }
            None => {
                table.fill(empty);
                self.0 = Some(Vec::new());
            }
        }
    }
}

// SAFETY: the code-word pointers point into the vCPU group's `CodePages`, shared by design
// between the machine's vCPU threads (atomics); the table itself belongs to one vCPU.
unsafe impl Send for Tlb {}

impl Tlb {
    pub fn new() -> Tlb {
        Tlb {
            entries: Box::new([[EMPTY; ENTRIES]; 2]),
            jumps: Box::new([[[NO_RIP, 0]; JUMPS]; 2]),
            global: Box::new([[false; ENTRIES]; 2]),
            global_jumps: Box::new([[false; JUMPS]; 2]),
            user: 0,
            key: Key::default(),
            jump_mode: [0; 2],
            filled: [Filled(Some(Vec::new())), Filled(Some(Vec::new()))],
            filled_jumps: [Filled(Some(Vec::new())), Filled(Some(Vec::new()))],
        }
    }

    /// The jump cache, for translated code.
    pub fn jumps(&mut self) -> *mut [u64; 2] {
        self.jumps[self.user].as_mut_ptr()
    }

    /// Remembers that the block for `rip` (on a global page: `global`) starts at host
    /// address `entry`.
    pub fn remember_jump(&mut self, rip: u64, entry: usize, global: bool) {
        let slot = jump_slot(rip);
        if self.jumps[self.user][slot][0] == NO_RIP {
            self.filled_jumps[self.user].note(slot, JUMPS);
        }
        self.jumps[self.user][slot] = [rip, entry as u64];
        self.global_jumps[self.user][slot] = global;
    }

    /// The current privilege's jump targets are for code mode `mode` from now on (forgotten
    /// if they were for another).
    pub fn code_mode(&mut self, mode: u64) {
        if self.jump_mode[self.user] != mode {
            let u = self.user;
            self.filled_jumps[u].drop_all(&mut self.jumps[u][..], [NO_RIP, 0]);
            self.jump_mode[u] = mode;
        }
    }

    /// Forgets every jump target (their code is gone).
    pub fn forget_jumps(&mut self) {
        for (set, filled) in self.jumps.iter_mut().zip(self.filled_jumps.iter_mut()) {
            filled.drop_all(&mut set[..], [NO_RIP, 0]);
        }
    }

    /// The table, for translated code.
    pub fn base(&mut self) -> *mut Entry {
        self.entries[self.user].as_mut_ptr()
    }

    /// Drops every entry if what they were made under changed.
    pub fn revalidate(&mut self, interp: &Interp) {
        let key = Key {
            interp: interp.identity(),
            generation: interp.mmu.generation,
            global_generation: interp.mmu.global_generation,
            a20: interp.mem.a20_mask(),
            wp: interp.cpu.cr0 & emu_core::state::bits::CR0_WP != 0,
            aligned: interp.alignment_checked(),
        };
        if key != self.key {
            let keeps_global = Key {
                generation: self.key.generation,
                ..key
            } == self.key;
            if keeps_global {
                self.drop_non_global();
            } else {
                for (set, filled) in self.entries.iter_mut().zip(self.filled.iter_mut()) {
                    filled.drop_all(&mut set[..], EMPTY);
                }
                self.forget_jumps();
            }
            self.key = key;
        }
        self.user = usize::from(interp.cpu.cpl() == 3);
    }

    /// Drops every entry and jump target but those of global pages.
    fn drop_non_global(&mut self) {
        for u in 0..2 {
            let global = &self.global[u];
            self.filled[u].drop_from(&mut self.entries[u][..], EMPTY, |i| global[i]);
            let global = &self.global_jumps[u];
            self.filled_jumps[u].drop_from(&mut self.jumps[u][..], [NO_RIP, 0], |i| global[i]);
        }
    }

    /// Enters the page of a data access at `seg:offset` that the interpreter just did (a
    /// write too if `write`), if it is a whole page of RAM and the key still holds.
    pub fn fill(&mut self, interp: &mut Interp, seg: usize, offset: u64, write: bool) {
        if self.key.aligned || self.key.generation != interp.mmu.generation {
            return;
        }
        let Some((linear, phys)) = interp.data_page(seg, offset, write) else {
            return;
        };
        let ram = interp.mem.ram();
        let Some((region, at)) = ram.to_region_addr(GuestAddress(phys)) else {
            return;
        };
        if at
            .0
            .checked_add(0x1000)
            .is_none_or(|end| end > region.len())
        {
            return;
        }
        let Ok(host) = region.get_host_address(at) else {
            return;
        };
        let Some(code) = interp.code_word_ref(phys) else {
            return;
        };
        // The CPL cannot have changed since `revalidate`: nothing translated changes it.
        let index = (linear >> 12) as usize % ENTRIES;
        self.global[self.user][index] = interp.mmu.is_global(linear);
        if self.entries[self.user][index].read_tag == INVALID {
            self.filled[self.user].note(index, ENTRIES);
        }
        let e = &mut self.entries[self.user][index];
        let addend = (host as u64).wrapping_sub(linear);
        if e.read_tag != linear || e.addend != addend {
            *e = EMPTY;
        }
        e.read_tag = linear;
        e.addend = addend;
        e.code = code;
        if write {
            e.write_tag = linear;
        }
    }
}
