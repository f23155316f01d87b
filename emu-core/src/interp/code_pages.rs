//! Which guest-RAM pages hold decoded code, and a generation per page that any store to such
//! a page bumps: how a vCPU learns that its decoded instructions for a page are stale, when
//! the store came from itself (self-modifying code) or from another vCPU (cross-modifying
//! code: Linux patches kernel text while other CPUs run).
//!
//! One map per machine, shared by its vCPUs. A page's word is its generation with bit 0 as
//! "some vCPU decoded code here": decoders set the bit before reading the bytes, and a store
//! bumps the generation (clearing the bit) only when it is set, so stores to data pages cost
//! one shared, read-mostly load. Decoded instructions remember the word they were decoded
//! under (bit 0 set); a word that moved means the page was written since.
//!
//! Known gap: a store and a first decode of the same page racing on two vCPUs can leave
//! the decoder with the old bytes (the store's load of the word may pass the store itself
//! on the host). Architecturally the modifying CPU must synchronise with the executing one
//! afterwards; pages that already hold decoded code, as kernel text does, are not affected.

use std::sync::atomic::{AtomicU32, Ordering};

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The "decoded code present" bit of a page's word.
const CODE: u32 = 1;

struct Region {
    first_page: u64,
    words: Box<[AtomicU32]>,
}

pub struct CodePages {
    regions: Box<[Region]>,
}

impl CodePages {
    /// A word for every page of `ram`'s regions (addresses outside RAM are not tracked:
    /// code fetched from MMIO is decoded each time).
    pub fn new(ram: &GuestMemoryMmap) -> Self {
        let regions = ram
            .iter()
            .map(|r| {
                let first_page = r.start_addr().0 >> 12;
                let pages = r.len().div_ceil(0x1000) as usize;
                Region {
                    first_page,
                    words: (0..pages).map(|_| AtomicU32::new(0)).collect(),
                }
            })
            .collect();
        CodePages { regions }
    }

    #[inline]
    fn word(&self, page: u64) -> Option<&AtomicU32> {
        self.regions.iter().find_map(|r| {
            let i = page.wrapping_sub(r.first_page);
            r.words.get(usize::try_from(i).ok()?)
        })
    }

    /// The page's word itself, for code that checks it on every store (the translator's
    /// inline stores); `None` for untracked pages.
    #[inline]
    pub fn word_ref(&self, page: u64) -> Option<&AtomicU32> {
        self.word(page)
    }

    /// The page's current word (0 for untracked pages, which then never match a decode).
    #[inline]
    pub fn current(&self, page: u64) -> u32 {
        self.word(page).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Marks `page` as holding decoded code before its bytes are read; returns the word
    /// decodes of it are valid under, or `None` for untracked pages (not cached).
    pub fn mark(&self, page: u64) -> Option<u32> {
        let w = self.word(page)?;
        let old = w.fetch_or(CODE, Ordering::SeqCst);
        Some(old | CODE)
    }

    /// A store to `len` bytes at physical `addr`: pages with decoded code move on.
    #[inline]
    pub fn wrote(&self, addr: u64, len: usize) {
        let first = addr >> 12;
        let last = addr.wrapping_add(len.max(1) as u64 - 1) >> 12;
        self.bump(first);
        if last != first {
            self.bump(last);
        }
    }

    #[inline]
    fn bump(&self, page: u64) {
        let Some(w) = self.word(page) else { return };
        if w.load(Ordering::Relaxed) & CODE == 0 {
            return;
        }
        // Bit 0 set: adding one clears it and carries into the generation.
        let _ = w.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| {
            (v & CODE != 0).then(|| v.wrapping_add(1))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    #[test]
    fn stores_move_only_pages_with_code() {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap();
        let pages = CodePages::new(&ram);
        assert_eq!(pages.current(1), 0);
        pages.wrote(0x1000, 4);
        assert_eq!(pages.current(1), 0, "a data page stays put");
        let g = pages.mark(1).unwrap();
        assert_eq!(pages.current(1), g);
        pages.wrote(0x1ffe, 4); // straddles pages 1 and 2
        let moved = pages.current(1);
        assert_ne!(moved, g);
        assert_eq!(moved & CODE, 0);
        assert_eq!(pages.current(2), 0);
        assert!(pages.mark(0x10).is_none(), "outside RAM");
        assert_eq!(pages.current(0x10), 0);
    }
}
