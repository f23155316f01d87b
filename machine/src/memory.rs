//! Guest RAM: one anonymous mapping per region, with the PCI hole below 4 GiB.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::{Error, Result};

/// RAM below 4 GiB ends here at the latest; 3–4 GiB is left for PCI MMIO, the IOAPIC, the
/// LAPIC, the HPET and the BIOS flash, as on QEMU's `pc` machine with large memory.
pub const PCI_HOLE_START: u64 = 0xc000_0000;
pub const FOUR_GIB: u64 = 1 << 32;
/// Below this a kernel cannot be loaded at 1 MiB with room to run.
pub const MIN_MEMORY: u64 = 2 << 20;

fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Allocates `size` bytes of guest RAM and describes its layout for firmware.
/// `rom` bytes of firmware, if any, get a region of their own ending at 4 GiB.
pub fn create(size: u64, rom: u64) -> Result<(GuestMemoryMmap, bios::MemoryMap)> {
    if size < MIN_MEMORY {
        return Err(Error::Memory(format!(
            "{} KiB is too little; at least {} MiB is needed",
            size / 1024,
            MIN_MEMORY >> 20
        )));
    }
    if let Some(host) = host_memory() {
        if size > host {
            return Err(Error::Memory(format!(
                "{} MiB asked for, but the host has only {} MiB",
                size >> 20,
                host >> 20
            )));
        }
    }
    let low = size.min(PCI_HOLE_START);
    let high = size - low;
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if rom > 0 {
        ranges.push((GuestAddress(FOUR_GIB - rom), rom as usize));
    }
    if high > 0 {
        ranges.push((GuestAddress(FOUR_GIB), high as usize));
    }
    let mem = GuestMemoryMmap::from_ranges(&ranges)
        .map_err(|e| Error::Memory(format!("cannot map {} MiB: {e}", size >> 20)))?;
    Ok((
        mem,
        bios::MemoryMap {
            low_end: low,
            high_size: high,
        },
    ))
}

/// Parses a QEMU-style size: a number with an optional K/M/G/T suffix (default unit MiB, as
/// `-m 512` means 512 MiB).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        'b' | 'B' => (&s[..s.len() - 1], 1),
        _ => (s, 1 << 20),
    };
    let num = num.trim();
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let f: f64 = num.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f * (mult as f64) < u64::MAX as f64)
        .then_some((f * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    #[test]
    fn sizes_parse_like_qemu() {
        assert_eq!(parse_size("512"), Some(512 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999T"), None);
    }

    #[test]
    fn large_memory_splits_around_the_pci_hole() {
        let (mem, map) = create(4 << 30, 0).unwrap();
        assert_eq!(map.low_end, PCI_HOLE_START);
        assert_eq!(map.high_size, 1 << 30);
        assert_eq!(mem.num_regions(), 2);
        assert!(mem.address_in_range(GuestAddress(FOUR_GIB + (1 << 30) - 1)));
        assert!(!mem.address_in_range(GuestAddress(PCI_HOLE_START)));
    }

    #[test]
    fn firmware_gets_the_top_of_4_gib() {
        let (mem, _) = create(64 << 20, 64 << 10).unwrap();
        assert_eq!(mem.num_regions(), 2);
        assert!(mem.address_in_range(GuestAddress(FOUR_GIB - 16)));
        assert!(!mem.address_in_range(GuestAddress(FOUR_GIB - (64 << 10) - 1)));
    }

    #[test]
    fn absurd_sizes_are_clear_errors() {
        assert!(matches!(create(1 << 10, 0), Err(Error::Memory(_))));
        let e = create(1 << 50, 0).unwrap_err().to_string();
        assert!(e.contains("host has only"), "{e}");
    }
}
