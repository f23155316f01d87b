//! The guest-physical memory map as firmware reports it (E820 types).

use crate::layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Type,
}

/// Guest RAM as the board laid it out: below the PCI hole and above 4 GiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    /// RAM from 0 up to here (the start of the PCI hole or the end of RAM).
    pub low_end: u64,
    /// RAM from 4 GiB, if any: its size.
    pub high_size: u64,
}

impl MemoryMap {
    /// The map firmware reports: conventional memory, the EBDA and BIOS ROM holes, RAM from
    /// 1 MiB to the hole, and RAM above 4 GiB.
    pub fn e820(&self) -> Vec<E820Entry> {
        let mut v = vec![
            E820Entry {
                addr: 0,
                size: layout::EBDA,
                kind: E820Type::Ram,
            },
            E820Entry {
                addr: layout::EBDA,
                size: 0xa0000 - layout::EBDA,
                kind: E820Type::Reserved,
            },
            E820Entry {
                addr: layout::BIOS_ROM,
                size: layout::HIGH_MEMORY - layout::BIOS_ROM,
                kind: E820Type::Reserved,
            },
        ];
        if self.low_end > layout::HIGH_MEMORY {
            v.push(E820Entry {
                addr: layout::HIGH_MEMORY,
                size: self.low_end - layout::HIGH_MEMORY,
                kind: E820Type::Ram,
            });
        }
        if self.high_size > 0 {
            v.push(E820Entry {
                addr: 1 << 32,
                size: self.high_size,
                kind: E820Type::Ram,
            });
        }
        v
    }

    /// KiB of contiguous RAM from 1 MiB (Multiboot's `mem_upper`).
    pub fn upper_kib(&self) -> u64 {
        self.low_end.saturating_sub(layout::HIGH_MEMORY) / 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_has_holes_and_high_ram() {
        let m = MemoryMap {
            low_end: 0xc000_0000,
            high_size: 1 << 30,
        };
        let e = m.e820();
        assert_eq!(e.len(), 5);
        assert_eq!(e[3].addr + e[3].size, 0xc000_0000);
        assert_eq!(e[4].addr, 1 << 32);
        assert_eq!(m.upper_kib(), (0xc000_0000 - 0x10_0000) / 1024);
    }
}
