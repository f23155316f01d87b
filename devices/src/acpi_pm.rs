//! The ACPI fixed hardware an OS needs to find in the FADT: the PM1a event and control
//! blocks and the PM timer, at QEMU's PIIX4 addresses (0x600–0x60b).
//!
//! The board has no SMM, so the FADT names no SMI command port and the hardware is in ACPI
//! mode from reset (SCI_EN reads 1). Writing SLP_EN with the S5 sleep type (0, as the
//! DSDT's `_S5` package says) powers the machine off; other sleep states are not offered
//! (the DSDT has only `_S5`). The PM timer is the 24-bit 3.579545 MHz counter, read from the
//! machine clock. No event is ever enabled in hardware, so the SCI is never raised.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::system::{SystemControl, SystemEvent};

/// The first port of the block: PM1a_EVT (4 bytes), PM1a_CNT (2), a gap (2), PM_TMR (4).
pub const PM_BASE: u16 = 0x600;
pub const PM1_EVT: u16 = PM_BASE;
pub const PM1_CNT: u16 = PM_BASE + 4;
pub const PM_TMR: u16 = PM_BASE + 8;
/// Ports the block spans.
pub const PM_LEN: u16 = 12;
const LEN: usize = PM_LEN as usize;
/// The SCI's ISA interrupt (the FADT's SCI_INT), as on QEMU's pc.
pub const SCI_IRQ: u16 = 9;
/// The PM timer's frequency (Hz).
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The SLP_TYP value the DSDT's `_S5` package gives: soft off.
pub const SLP_TYP_S5: u16 = 0;

const SCI_EN: u16 = 1 << 0;
const SLP_EN: u16 = 1 << 13;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 7;
/// PM1_STS bits that are write-1-to-clear (TMR_STS, BM_STS, GBL_STS, PWRBTN_STS, SLPBTN_STS,
/// RTC_STS, WAK_STS).
const STS_W1C: u16 = 0x8d31;

pub struct AcpiPm {
    clock: Arc<dyn Clock>,
    control: Arc<dyn SystemControl>,
    sts: u16,
    en: u16,
    cnt: u16,
}

impl AcpiPm {
    pub fn new(clock: Arc<dyn Clock>, control: Arc<dyn SystemControl>) -> Self {
        AcpiPm {
            clock,
            control,
            sts: 0,
            en: 0,
            cnt: SCI_EN,
        }
    }

    /// The PM timer: ticks of the 3.579545 MHz clock since power-on, 24 bits.
    fn timer(&self) -> u32 {
        let ns = u128::from(self.clock.now_ns());
        ((ns * u128::from(PM_TIMER_HZ) / 1_000_000_000) & 0xff_ffff) as u32
    }

    /// The register bytes at `offset` from [`PM_BASE`], little-endian, as a 12-byte view.
    fn regs(&self) -> [u8; LEN] {
        let mut r = [0u8; PM_LEN as usize];
        r[0..2].copy_from_slice(&self.sts.to_le_bytes());
        r[2..4].copy_from_slice(&self.en.to_le_bytes());
        r[4..6].copy_from_slice(&self.cnt.to_le_bytes());
        r[8..12].copy_from_slice(&self.timer().to_le_bytes());
        r
    }

    fn write_cnt(&mut self, value: u16) {
        // SLP_EN is write-only; SCI_EN stays set (there is no legacy mode to return to).
        self.cnt = (value & !SLP_EN) | SCI_EN;
        if value & SLP_EN != 0 {
            let typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
            if typ == SLP_TYP_S5 {
                self.control.request(SystemEvent::Poweroff);
            } else {
                log::warn!("ACPI: sleep type {typ} requested; only S5 (off) exists, ignored");
            }
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let regs = self.regs();
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| regs.get(o as usize).copied())
                .unwrap_or(0xff);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // Assemble the registers the write touches from what is there, then apply each.
        let mut regs = self.regs();
        let mut touched = [false; LEN];
        for (i, b) in data.iter().enumerate() {
            let Some(o) = offset
                .checked_add(i as u64)
                .filter(|o| *o < u64::from(PM_LEN))
            else {
                continue;
            };
            regs[o as usize] = *b;
            touched[o as usize] = true;
        }
        let word = |r: &[u8; LEN], at: usize| u16::from_le_bytes([r[at], r[at + 1]]);
        if touched[0] || touched[1] {
            // Only the bytes written clear status bits.
            let mut w = word(&regs, 0);
            if !touched[0] {
                w &= 0xff00;
            }
            if !touched[1] {
                w &= 0x00ff;
            }
            self.sts &= !(w & STS_W1C);
        }
        if touched[2] || touched[3] {
            self.en = word(&regs, 2);
        }
        if touched[4] || touched[5] {
            self.write_cnt(word(&regs, 4));
        }
        // The timer is read-only.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Events(Mutex<Vec<SystemEvent>>);

    impl SystemControl for Events {
        fn request(&self, event: SystemEvent) {
            self.0.lock().push(event);
        }
    }

    fn pm() -> (AcpiPm, Arc<ManualClock>, Arc<Events>) {
        let clock = Arc::new(ManualClock::default());
        let events = Arc::new(Events::default());
        (AcpiPm::new(clock.clone(), events.clone()), clock, events)
    }

    fn read32(p: &mut AcpiPm, port: u16) -> u32 {
        let mut b = [0u8; 4];
        p.read(u64::from(PM_BASE), u64::from(port - PM_BASE), &mut b);
        u32::from_le_bytes(b)
    }

    fn write16(p: &mut AcpiPm, port: u16, v: u16) {
        p.write(
            u64::from(PM_BASE),
            u64::from(port - PM_BASE),
            &v.to_le_bytes(),
        );
    }

    #[test]
    fn pm_timer_counts_at_3_58_mhz_and_wraps_at_24_bits() {
        let (mut p, clock, _) = pm();
        assert_eq!(read32(&mut p, PM_TMR), 0);
        clock.set(1_000_000_000);
        assert_eq!(read32(&mut p, PM_TMR), 3_579_545);
        // 2^24 ticks are about 4.687 s: at 5 s the counter has wrapped.
        clock.set(5_000_000_000);
        assert_eq!(read32(&mut p, PM_TMR), (5 * 3_579_545) & 0xff_ffff);
    }

    #[test]
    fn acpi_mode_from_reset_and_s5_powers_off() {
        let (mut p, _, events) = pm();
        assert_eq!(read32(&mut p, PM1_CNT) & 0xffff, u32::from(SCI_EN));
        // Another sleep type: ignored.
        write16(&mut p, PM1_CNT, SLP_EN | (5 << SLP_TYP_SHIFT) | SCI_EN);
        assert!(events.0.lock().is_empty());
        // SLP_EN reads back as 0; the type stays.
        assert_eq!(read32(&mut p, PM1_CNT) & u32::from(SLP_EN), 0);
        write16(
            &mut p,
            PM1_CNT,
            SLP_EN | (SLP_TYP_S5 << SLP_TYP_SHIFT) | SCI_EN,
        );
        assert_eq!(events.0.lock().as_slice(), &[SystemEvent::Poweroff]);
    }

    #[test]
    fn status_bits_clear_by_writing_one_and_enables_read_back() {
        let (mut p, _, _) = pm();
        p.sts = 0x8001;
        write16(&mut p, PM1_EVT, 0x0001);
        assert_eq!(read32(&mut p, PM1_EVT) & 0xffff, 0x8000);
        write16(&mut p, PM1_EVT + 2, 0x0120);
        assert_eq!(read32(&mut p, PM1_EVT) >> 16, 0x0120);
        // Reads past the block are open bus; writes there change nothing.
        let mut b = [0u8; 2];
        p.read(u64::from(PM_BASE), u64::from(PM_LEN) - 1, &mut b);
        assert_eq!(b[1], 0xff);
        p.write(u64::from(PM_BASE), u64::from(PM_LEN) + 4, &[1, 2]);
    }
}
