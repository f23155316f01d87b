//! Linear-to-physical translation: no paging, 32-bit paging (with 4 MiB pages), PAE and
//! 4-level paging; U/S, R/W (with CR0.WP), NX; accessed and dirty bits; #PF error codes; and a
//! TLB that caches the walk's result with its permissions.

use super::cpu::Cpu;
use super::fault::{Fault, Result};
use super::memory::PhysMem;
use crate::state::bits::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Who performs the access: the current CPL, or the processor itself (descriptor tables,
/// TSS, IDT: supervisor accesses whatever the CPL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    User,
    Supervisor,
}

const CR4_PSE: u64 = 1 << 4;
const CR4_PGE: u64 = 1 << 7;
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_PS: u64 = 1 << 7;
const PTE_G: u64 = 1 << 8;
const PTE_NX: u64 = 1 << 63;
/// Physical-address bits the model implements (CPUID 0x80000008).
pub const PHYS_ADDR_BITS: u32 = 40;
const ADDR_MASK: u64 = ((1u64 << PHYS_ADDR_BITS) - 1) & !0xfff;
/// Bits PHYS_ADDR_BITS..=51 of a PAE/4-level entry must be zero.
const RESERVED_ADDR_BITS: u64 = ((1u64 << 52) - 1) & !((1u64 << PHYS_ADDR_BITS) - 1);

/// #PF error-code bits.
const PF_P: u32 = 1 << 0;
const PF_W: u32 = 1 << 1;
const PF_U: u32 = 1 << 2;
const PF_RSVD: u32 = 1 << 3;
const PF_I: u32 = 1 << 4;

#[derive(Clone, Copy, Debug, Default)]
struct TlbEntry {
    /// Physical address of the 4 KiB frame.
    frame: u64,
    writable: bool,
    user: bool,
    nx: bool,
    global: bool,
    /// The dirty bit is set in the leaf entry already (a write needs no walk).
    dirty: bool,
}

/// Caps the TLB so a guest touching many pages cannot grow host memory without bound.
const TLB_CAPACITY: usize = 4096;

/// Entries of the direct-mapped front of the TLB.
const FRONT: usize = 64;

/// A direct-mapped copy of recently used TLB entries (page number plus one, 0 = empty) in
/// front of the hash map: the interpreter's data accesses (x87 and other instructions run
/// in place by the translator, each translating its operand anew) spent 5 % of a 32-bit
/// floating-point loop's host time hashing. Emptied whenever the map changes.
struct Front([(u64, TlbEntry); FRONT]);

impl Default for Front {
    fn default() -> Front {
        Front([(0, TlbEntry::default()); FRONT])
    }
}

impl Front {
    fn clear(&mut self) {
        self.0.fill((0, TlbEntry::default()));
    }
}

#[derive(Default)]
pub struct Mmu {
    tlb: super::fasthash::FastMap<u64, TlbEntry>,
    front: Front,
    /// Bumped by every flush: translations cached outside the TLB (the fetch page) are valid
    /// only while it is unchanged.
    pub generation: u64,
    /// Bumped by the flushes that may drop global pages (all but a CR3 load with
    /// CR4.PGE): translations of global pages cached outside stay valid while it is
    /// unchanged.
    pub global_generation: u64,
}

impl Mmu {
    pub fn flush_all(&mut self) {
        self.tlb.clear();
        self.front.clear();
        self.generation += 1;
        self.global_generation += 1;
    }

    /// CR3 load: non-global entries go (all of them without CR4.PGE).
    pub fn flush_non_global(&mut self, cr4: u64) {
        self.front.clear();
        if cr4 & CR4_PGE != 0 {
            self.tlb.retain(|_, e| e.global);
        } else {
            self.tlb.clear();
            self.global_generation += 1;
        }
        self.generation += 1;
    }

    pub fn invlpg(&mut self, linear: u64) {
        self.tlb.remove(&(linear >> 12));
        self.front.clear();
        self.generation += 1;
        self.global_generation += 1;
    }

    /// Whether the TLB holds `linear`'s page as a global one (kept across CR3 loads).
    pub fn is_global(&self, linear: u64) -> bool {
        self.tlb.get(&(linear >> 12)).is_some_and(|e| e.global)
    }

    /// Translates one byte's linear address (callers split accesses at page boundaries).
    pub fn translate(
        &mut self,
        cpu: &mut Cpu,
        mem: &PhysMem,
        linear: u64,
        access: Access,
        privilege: Privilege,
    ) -> Result<u64> {
        let a20 = mem.a20_mask();
        if !cpu.paging() {
            // Without paging, linear = physical (32 bits), through the A20 gate.
            return Ok(linear & 0xffff_ffff & a20);
        }
        let user = privilege == Privilege::User;
        let wp = cpu.cr0 & CR0_WP != 0;
        let nxe = cpu.efer & EFER_NXE != 0;
        let vpn = linear >> 12;
        let slot = vpn as usize % FRONT;
        let cached = match self.front.0[slot] {
            (tag, e) if tag == vpn + 1 => Some(e),
            _ => self
                .tlb
                .get(&vpn)
                .copied()
                .inspect(|&e| self.front.0[slot] = (vpn + 1, e)),
        };
        if let Some(e) = cached {
            let ok = (!user || e.user)
                && (access != Access::Write || e.writable || (!user && !wp))
                && (access != Access::Execute || !e.nx)
                && (access != Access::Write || e.dirty);
            if ok {
                return Ok((e.frame | (linear & 0xfff)) & a20);
            }
        }
        let e = walk(cpu, mem, linear, access, user, wp, nxe)?;
        if self.tlb.len() >= TLB_CAPACITY {
            self.tlb.clear();
            self.front.clear();
            self.generation += 1;
            self.global_generation += 1;
        }
        self.tlb.insert(vpn, e);
        self.front.0[slot] = (vpn + 1, e);
        Ok((e.frame | (linear & 0xfff)) & a20)
    }
}

fn fault_code(access: Access, user: bool, present: bool, nxe: bool) -> u32 {
    let mut code = 0;
    if present {
        code |= PF_P;
    }
    if access == Access::Write {
        code |= PF_W;
    }
    if user {
        code |= PF_U;
    }
    if access == Access::Execute && nxe {
        code |= PF_I;
    }
    code
}

/// Walks the page tables for `linear`, setting accessed (and, for a write, dirty) bits.
fn walk(
    cpu: &Cpu,
    mem: &PhysMem,
    linear: u64,
    access: Access,
    user: bool,
    wp: bool,
    nxe: bool,
) -> Result<TlbEntry> {
    // Another vCPU changing an entry between the walk and its A/D update makes the update
    // fail: walk again, as hardware's locked update works on the entry as it is then. A
    // pathological run of failures ends with an entry that is not marked dirty, so the
    // next write walks again rather than trusting a D bit that never reached memory.
    for _ in 0..16 {
        if let (entry, true) = walk_once(cpu, mem, linear, access, user, wp, nxe, false)? {
            return Ok(entry);
        }
    }
    let (entry, updated) = walk_once(cpu, mem, linear, access, user, wp, nxe, true)?;
    Ok(TlbEntry {
        dirty: entry.dirty && updated,
        ..entry
    })
}

/// One walk; `false` when an A/D update lost a race with another vCPU's change to the
/// entry (nothing of that entry was written). With `finish` the walk completes anyway on
/// what it read (the caller then does not trust the D bit).
#[allow(clippy::too_many_arguments)]
fn walk_once(
    cpu: &Cpu,
    mem: &PhysMem,
    linear: u64,
    access: Access,
    user: bool,
    wp: bool,
    nxe: bool,
    finish: bool,
) -> Result<(TlbEntry, bool)> {
    let not_present = || Fault::pf(linear, fault_code(access, user, false, nxe));
    let rsvd = || Fault::pf(linear, fault_code(access, user, true, nxe) | PF_RSVD);
    let long = cpu.efer & EFER_LMA != 0;
    let pae = cpu.cr4 & CR4_PAE != 0;

    // (entry address, entry, 64-bit entry) per level, collected as the walk goes.
    let mut entries: Vec<(u64, u64, bool)> = Vec::with_capacity(4);
    let leaf = if !pae {
        // 32-bit paging: 10/10/12, optional 4 MiB pages.
        let lin = linear & 0xffff_ffff;
        let pde_addr = (cpu.cr3 & 0xffff_f000) + ((lin >> 22) << 2);
        let pde = u64::from(mem.read_u32(pde_addr));
        if pde & PTE_P == 0 {
            return Err(not_present().into());
        }
        entries.push((pde_addr, pde, false));
        if pde & PTE_PS != 0 && cpu.cr4 & CR4_PSE != 0 {
            // Bits 13..20 of a 4 MiB PDE are address bits 32..39 (PSE-36).
            let frame = (pde & 0xffc0_0000) | ((pde & 0x001f_e000) << 19);
            frame | (lin & 0x3f_f000)
        } else {
            let pte_addr = (pde & 0xffff_f000) + (((lin >> 12) & 0x3ff) << 2);
            let pte = u64::from(mem.read_u32(pte_addr));
            if pte & PTE_P == 0 {
                return Err(not_present().into());
            }
            entries.push((pte_addr, pte, false));
            pte & 0xffff_f000
        }
    } else {
        // PAE (3 levels from a 4-entry PDPT) or 4-level paging.
        let mut table;
        let mut level;
        if long {
            table = cpu.cr3 & ADDR_MASK;
            level = 4;
        } else {
            let pdpte_addr = (cpu.cr3 & 0xffff_ffe0) + (((linear >> 30) & 3) << 3);
            let pdpte = mem.read_u64(pdpte_addr);
            if pdpte & PTE_P == 0 {
                return Err(not_present().into());
            }
            // PAE PDPTEs have no U/S, R/W or A bits: they do not restrict access.
            table = pdpte & ADDR_MASK;
            level = 2;
        }
        loop {
            let shift = 12 + 9 * (level - 1);
            let addr = table + (((linear >> shift) & 0x1ff) << 3);
            let e = mem.read_u64(addr);
            if e & PTE_P == 0 {
                return Err(not_present().into());
            }
            // Reserved: NX without EFER.NXE, and address bits at or above MAXPHYADDR.
            if (!nxe && e & PTE_NX != 0) || e & RESERVED_ADDR_BITS != 0 {
                return Err(rsvd().into());
            }
            entries.push((addr, e, true));
            let large = level > 1 && e & PTE_PS != 0;
            if large && level == 4 {
                return Err(rsvd().into());
            }
            if level == 1 || large {
                let page_mask = (1u64 << shift) - 1;
                let frame = (e & ADDR_MASK & !page_mask) | (linear & page_mask & !0xfff);
                break frame;
            }
            table = e & ADDR_MASK;
            level -= 1;
        }
    };

    // Permissions are the AND of every level's.
    let writable = entries.iter().all(|(_, e, _)| e & PTE_RW != 0);
    let user_ok = entries.iter().all(|(_, e, _)| e & PTE_US != 0);
    let nx = nxe && entries.iter().any(|(_, e, _)| e & PTE_NX != 0);
    let denied = (user && !user_ok)
        || (access == Access::Write && !writable && (user || wp))
        || (access == Access::Execute && nx);
    if denied {
        return Err(Fault::pf(linear, fault_code(access, user, true, nxe)).into());
    }
    // Accessed bits on every level, dirty on the leaf for writes.
    let last = entries.len() - 1;
    let mut updated = true;
    for (i, (addr, e, wide)) in entries.iter().enumerate() {
        let mut new = e | PTE_A;
        if i == last && access == Access::Write {
            new |= PTE_D;
        }
        if new != *e {
            // Compare-and-swap, as hardware sets A/D with a locked cycle: another vCPU may
            // have cleared or replaced the entry since the walk (Linux's xchg in
            // ptep_get_and_clear), and writing the old entry back would resurrect it.
            let size = if *wide { 8 } else { 4 };
            match mem.atomic_cas(*addr, size, *e, new) {
                Some(true) => {}
                Some(false) if finish => updated = false,
                Some(false) => return Ok((TlbEntry::default(), false)),
                None => {
                    if *wide {
                        mem.write_u64(*addr, new);
                    } else {
                        mem.write_u32(*addr, new as u32);
                    }
                }
            }
        }
    }
    let leaf_e = entries[last].1;
    Ok((
        TlbEntry {
            frame: leaf,
            writable,
            user: user_ok,
            nx,
            global: leaf_e & PTE_G != 0,
            dirty: access == Access::Write || leaf_e & PTE_D != 0,
        },
        updated,
    ))
}
