//! Guest-physical memory as the interpreter sees it: RAM through vm-memory, everything else
//! through the platform's MMIO bus.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory};

use crate::Platform;

pub struct PhysMem {
    ram: GuestMemoryMmap,
    platform: Arc<dyn Platform>,
    /// The platform's A20 gate (open = true); without one, address bit 20 always passes.
    a20: Option<Arc<AtomicBool>>,
}

impl PhysMem {
    pub fn new(ram: GuestMemoryMmap, platform: Arc<dyn Platform>) -> Self {
        PhysMem {
            ram,
            platform,
            a20: None,
        }
    }

    /// Applies the platform's A20 gate to every physical address the CPU forms.
    pub fn with_a20(mut self, gate: Arc<AtomicBool>) -> Self {
        self.a20 = Some(gate);
        self
    }

    /// The mask for physical addresses: bit 20 cleared while the A20 gate is closed.
    pub fn a20_mask(&self) -> u64 {
        match &self.a20 {
            Some(g) if !g.load(Ordering::Relaxed) => !(1 << 20),
            _ => u64::MAX,
        }
    }

    /// Guest RAM.
    pub fn ram(&self) -> &GuestMemoryMmap {
        &self.ram
    }

    /// The `size`-byte (1, 2, 4 or 8) little-endian value at `addr`, read with one host
    /// atomic load; `None` unless `addr` is naturally aligned RAM.
    pub fn atomic_load(&self, addr: u64, size: usize) -> Option<u64> {
        let s = self.ram.get_slice(GuestAddress(addr), size).ok()?;
        Some(match size {
            1 => u64::from(s.get_atomic_ref::<AtomicU8>(0).ok()?.load(Ordering::SeqCst)),
            2 => u64::from(
                s.get_atomic_ref::<AtomicU16>(0)
                    .ok()?
                    .load(Ordering::SeqCst),
            ),
            4 => u64::from(
                s.get_atomic_ref::<AtomicU32>(0)
                    .ok()?
                    .load(Ordering::SeqCst),
            ),
            8 => s
                .get_atomic_ref::<AtomicU64>(0)
                .ok()?
                .load(Ordering::SeqCst),
            _ => return None,
        })
    }

    /// Replaces the `size`-byte value at `addr` with `new` if it is still `old`, as one
    /// host compare-and-swap (a locked CMPXCHG on an x86 host). `Some(false)`: another CPU
    /// changed it; `None` unless `addr` is naturally aligned RAM.
    pub fn atomic_cas(&self, addr: u64, size: usize, old: u64, new: u64) -> Option<bool> {
        let s = self.ram.get_slice(GuestAddress(addr), size).ok()?;
        let (ok, fail) = (Ordering::SeqCst, Ordering::SeqCst);
        Some(match size {
            1 => s
                .get_atomic_ref::<AtomicU8>(0)
                .ok()?
                .compare_exchange(old as u8, new as u8, ok, fail)
                .is_ok(),
            2 => s
                .get_atomic_ref::<AtomicU16>(0)
                .ok()?
                .compare_exchange(old as u16, new as u16, ok, fail)
                .is_ok(),
            4 => s
                .get_atomic_ref::<AtomicU32>(0)
                .ok()?
                .compare_exchange(old as u32, new as u32, ok, fail)
                .is_ok(),
            8 => s
                .get_atomic_ref::<AtomicU64>(0)
                .ok()?
                .compare_exchange(old, new, ok, fail)
                .is_ok(),
            _ => return None,
        })
    }

    pub fn platform(&self) -> &dyn Platform {
        self.platform.as_ref()
    }

    /// Reads `buf.len()` bytes (at most 16) at `addr`; bytes outside RAM come from MMIO.
    pub fn read(&self, addr: u64, buf: &mut [u8]) {
        // The common case, inside one RAM region, without vm-memory's multi-region iterator.
        if let Ok(slice) = self.ram.get_slice(GuestAddress(addr), buf.len()) {
            slice.copy_to(buf);
            return;
        }
        if self.ram.read_slice(buf, GuestAddress(addr)).is_ok() {
            return;
        }
        // Outside RAM, or straddling its end: byte by byte, MMIO as one access where it can.
        if !self.ram_contains(addr) {
            self.platform.mmio_read(addr, buf);
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u64);
            let mut one = [0u8; 1];
            if self.ram.read_slice(&mut one, GuestAddress(a)).is_err() {
                self.platform.mmio_read(a, &mut one);
            }
            *b = one[0];
        }
    }

    pub fn write(&self, addr: u64, buf: &[u8]) {
        if let Ok(slice) = self.ram.get_slice(GuestAddress(addr), buf.len()) {
            slice.copy_from(buf);
            return;
        }
        if self.ram.write_slice(buf, GuestAddress(addr)).is_ok() {
            return;
        }
        if !self.ram_contains(addr) {
            self.platform.mmio_write(addr, buf);
            return;
        }
        for (i, b) in buf.iter().enumerate() {
            let a = addr.wrapping_add(i as u64);
            if self.ram.write_slice(&[*b], GuestAddress(a)).is_err() {
                self.platform.mmio_write(a, &[*b]);
            }
        }
    }

    fn ram_contains(&self, addr: u64) -> bool {
        self.ram.address_in_range(GuestAddress(addr))
    }

    pub fn read_u64(&self, addr: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(addr, &mut b);
        u64::from_le_bytes(b)
    }

    pub fn read_u32(&self, addr: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(addr, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn write_u64(&self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes());
    }

    pub fn write_u32(&self, addr: u64, v: u32) {
        self.write(addr, &v.to_le_bytes());
    }
}
