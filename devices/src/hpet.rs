//! The HPET (IA-PC High Precision Event Timer, spec 1.0a): a 64-bit main counter at 100 MHz
//! on the machine clock and three comparators, at 0xFED00000 as on QEMU's pc.
//!
//! Timer 0 can be periodic; all three can run in 32-bit mode. In legacy-replacement mode
//! (LEG_RT_CNF) timer 0 drives IRQ 0 and timer 1 IRQ 8, which is how Linux uses it as its
//! boot clock event; otherwise a timer drives the IOAPIC input its route field names (10 or
//! 11 here: the lines no other device uses). Legacy replacement does not mute the PIT or the
//! RTC: an OS that takes the HPET stops programming the PIT, as Linux does. No FSB (MSI)
//! delivery. Edge-triggered timers pulse their line; level-triggered ones hold it and set
//! their bit in the interrupt status register until the OS writes it back. Expiries missed
//! between two polls coalesce into one, so no comparator can flood the host.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::clock::{Clock, Timer};
use crate::IrqLine;

pub const DEFAULT_BASE: u64 = 0xfed0_0000;
pub const MMIO_LEN: u64 = 0x400;
/// Counter period in femtoseconds: 10 ns, a 100 MHz counter (QEMU's).
pub const PERIOD_FS: u64 = 10_000_000;
const NS_PER_TICK: u64 = PERIOD_FS / 1_000_000;
pub const TIMERS: usize = 3;
/// The IOAPIC inputs a timer may be routed to outside legacy replacement.
pub const ROUTE_CAP: u32 = (1 << 10) | (1 << 11);
/// GCAP_ID's low half: revision 1, TIMERS comparators, 64-bit counter, legacy-replacement
/// capable, vendor 0x8086 (the ACPI HPET table repeats it).
pub const BLOCK_ID: u32 = 1 | ((TIMERS as u32 - 1) << 8) | (1 << 13) | (1 << 15) | (0x8086 << 16);

const CONF_ENABLE: u64 = 1 << 0;
const CONF_LEGACY: u64 = 1 << 1;

const TN_LEVEL: u64 = 1 << 1;
const TN_ENABLE: u64 = 1 << 2;
const TN_PERIODIC: u64 = 1 << 3;
const TN_PERIODIC_CAP: u64 = 1 << 4;
const TN_SIZE_CAP: u64 = 1 << 5;
const TN_SETVAL: u64 = 1 << 6;
const TN_32BIT: u64 = 1 << 8;
const TN_ROUTE_SHIFT: u32 = 9;
const TN_ROUTE: u64 = 0x1f << TN_ROUTE_SHIFT;
const TN_WRITABLE: u64 = TN_LEVEL | TN_ENABLE | TN_PERIODIC | TN_SETVAL | TN_32BIT | TN_ROUTE;

#[derive(Clone, Copy, Default)]
struct Comparator {
    config: u64,
    cmp: u64,
    period: u64,
    /// The counter value up to which expiries have been looked at.
    checked: u64,
}

impl Comparator {
    fn mask(&self) -> u64 {
        if self.config & TN_32BIT != 0 {
            0xffff_ffff
        } else {
            u64::MAX
        }
    }

    fn periodic(&self) -> bool {
        self.config & TN_PERIODIC != 0
    }

    /// Ticks from `from` until the comparator matches (a whole wrap when it equals `from`).
    fn ticks_until(&self, from: u64) -> u64 {
        let d = self.cmp.wrapping_sub(from) & self.mask();
        if d == 0 {
            self.mask()
        } else {
            d
        }
    }
}

pub struct Hpet {
    clock: Arc<dyn Clock>,
    /// Line `gsi` for a global system interrupt (0 and 8 in legacy mode, the routes else).
    line: Box<dyn Fn(u32) -> Arc<dyn IrqLine> + Send>,
    config: u64,
    status: u64,
    /// The counter when last loaded or stopped, and the clock then (while enabled).
    counter_base: u64,
    base_ns: u64,
    timers: [Comparator; TIMERS],
    /// The line each level-triggered timer holds high, if it does.
    held: [Option<u32>; TIMERS],
}

impl Hpet {
    /// An HPET on `clock`, raising interrupts through `line(gsi)`.
    pub fn new(
        clock: Arc<dyn Clock>,
        line: impl Fn(u32) -> Arc<dyn IrqLine> + Send + 'static,
    ) -> Self {
        let mut timers = [Comparator::default(); TIMERS];
        for (i, t) in timers.iter_mut().enumerate() {
            t.config = TN_SIZE_CAP | (u64::from(ROUTE_CAP) << 32);
            if i == 0 {
                t.config |= TN_PERIODIC_CAP;
            }
            t.cmp = u64::MAX;
        }
        Hpet {
            clock,
            line: Box::new(line),
            config: 0,
            status: 0,
            counter_base: 0,
            base_ns: 0,
            timers,
            held: [None; TIMERS],
        }
    }

    fn enabled(&self) -> bool {
        self.config & CONF_ENABLE != 0
    }

    fn counter(&self, now: u64) -> u64 {
        if self.enabled() {
            let ticks = now.saturating_sub(self.base_ns) / NS_PER_TICK;
            self.counter_base.wrapping_add(ticks)
        } else {
            self.counter_base
        }
    }

    /// The interrupt input timer `n` drives now.
    fn gsi(&self, n: usize) -> u32 {
        match (self.config & CONF_LEGACY != 0, n) {
            (true, 0) => 0,
            (true, 1) => 8,
            _ => ((self.timers[n].config & TN_ROUTE) >> TN_ROUTE_SHIFT) as u32,
        }
    }

    /// Timer `n` matched: its interrupt, if enabled.
    fn fire(&mut self, n: usize) {
        let t = self.timers[n];
        if t.config & TN_LEVEL != 0 {
            self.status |= 1 << n;
            if t.config & TN_ENABLE != 0 && self.held[n].is_none() {
                let gsi = self.gsi(n);
                (self.line)(gsi).set_level(true);
                self.held[n] = Some(gsi);
            }
        } else if t.config & TN_ENABLE != 0 {
            (self.line)(self.gsi(n)).pulse();
        }
    }

    /// Lowers what level-triggered timer `n` holds.
    fn release(&mut self, n: usize) {
        if let Some(gsi) = self.held[n].take() {
            (self.line)(gsi).set_level(false);
        }
    }

    /// Looks at every comparator up to `now`; returns the next match on the machine clock.
    fn run_timers(&mut self, now: u64) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let counter = self.counter(now);
        let mut next: Option<u64> = None;
        for n in 0..TIMERS {
            let t = self.timers[n];
            let elapsed = counter.wrapping_sub(t.checked);
            let until = t.ticks_until(t.checked);
            if elapsed >= until && elapsed != 0 {
                self.fire(n);
                let t = &mut self.timers[n];
                if t.periodic() && t.period != 0 {
                    // The next period after `counter` (missed ones coalesce).
                    let late = counter.wrapping_sub(t.cmp) & t.mask();
                    let periods = late / t.period + 1;
                    t.cmp = t.cmp.wrapping_add(periods.wrapping_mul(t.period)) & t.mask();
                }
            }
            let t = &mut self.timers[n];
            t.checked = counter;
            if t.config & TN_ENABLE != 0 {
                let ns = t.ticks_until(counter).saturating_mul(NS_PER_TICK);
                let at = now.saturating_add(ns);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    fn read_reg(&self, reg: u64, now: u64) -> u64 {
        match reg {
            0x000 => u64::from(BLOCK_ID) | (PERIOD_FS << 32),
            0x010 => self.config,
            0x020 => self.status,
            0x0f0 => self.counter(now),
            0x100..=0x15f => {
                let t = &self.timers[((reg - 0x100) / 0x20) as usize];
                match reg & 0x1f {
                    0x00 => t.config,
                    0x08 => t.cmp,
                    _ => 0, // FSB route: no FSB delivery
                }
            }
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, value: u64, mask: u64, now: u64) {
        let merge = |old: u64| (old & !mask) | (value & mask);
        match reg {
            0x010 => {
                let was = self.enabled();
                let old_legacy = self.config & CONF_LEGACY;
                let new = merge(self.config) & (CONF_ENABLE | CONF_LEGACY);
                if was && new & CONF_ENABLE == 0 {
                    self.counter_base = self.counter(now);
                }
                if new & CONF_LEGACY != old_legacy {
                    // The routes change: lines held on the old ones go down.
                    for n in 0..TIMERS {
                        self.release(n);
                    }
                }
                self.config = new;
                if !was && self.enabled() {
                    self.base_ns = now;
                    for t in self.timers.iter_mut() {
                        t.checked = self.counter_base;
                    }
                }
            }
            0x020 => {
                // Write 1 to clear a level-triggered timer's status and lower its line.
                let clear = value & mask & self.status;
                for n in 0..TIMERS {
                    if clear & (1 << n) != 0 {
                        self.status &= !(1 << n);
                        self.release(n);
                    }
                }
            }
            0x0f0 => {
                if self.enabled() {
                    log::warn!("HPET: main counter written while running; ignored");
                    return;
                }
                self.counter_base = merge(self.counter_base);
                for t in self.timers.iter_mut() {
                    t.checked = self.counter_base;
                }
            }
            0x100..=0x15f => {
                let n = ((reg - 0x100) / 0x20) as usize;
                match reg & 0x1f {
                    0x00 => self.write_timer_config(n, merge(self.timers[n].config)),
                    0x08 => {
                        let t = &mut self.timers[n];
                        let v = merge(t.cmp) & t.mask();
                        // QEMU's rule: a periodic timer's comparator is set only with
                        // SETVAL; every write sets its period.
                        if !t.periodic() || t.config & TN_SETVAL != 0 {
                            t.cmp = v;
                        }
                        if t.periodic() {
                            t.period = merge(t.period) & t.mask();
                        }
                        t.config &= !TN_SETVAL;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn write_timer_config(&mut self, n: usize, value: u64) {
        let t = self.timers[n];
        let mut writable = TN_WRITABLE;
        if t.config & TN_PERIODIC_CAP == 0 {
            writable &= !TN_PERIODIC;
        }
        let mut new = (t.config & !writable) | (value & writable);
        let route = ((new & TN_ROUTE) >> TN_ROUTE_SHIFT) as u32;
        if ROUTE_CAP & (1 << route) == 0 {
            // A route the timer cannot take: keep the old one.
            new = (new & !TN_ROUTE) | (t.config & TN_ROUTE);
        }
        let was_level = t.config & TN_LEVEL != 0;
        let off =
            new & TN_ENABLE == 0 || new & TN_LEVEL == 0 || new & TN_ROUTE != t.config & TN_ROUTE;
        if was_level && off {
            self.release(n);
        }
        let t = &mut self.timers[n];
        t.config = new;
        if t.config & TN_32BIT != 0 {
            t.cmp &= 0xffff_ffff;
            t.period &= 0xffff_ffff;
        }
        // A level interrupt still pending reaches the line once enabled.
        if new & TN_LEVEL != 0 && new & TN_ENABLE != 0 && self.status & (1 << n) != 0 {
            let gsi = self.gsi(n);
            if self.held[n].is_none() {
                (self.line)(gsi).set_level(true);
                self.held[n] = Some(gsi);
            }
        }
    }
}

impl Timer for Hpet {
    fn poll(&mut self) -> Option<u64> {
        let now = self.clock.now_ns();
        self.run_timers(now)
    }
}

impl BusDevice for Hpet {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let now = self.clock.now_ns();
        self.run_timers(now);
        let v = self.read_reg(offset & !7, now) >> ((offset & 7) * 8);
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.checked_shr(8 * i as u32).unwrap_or(0) as u8;
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // 32- and 64-bit accesses, naturally aligned; others are dropped.
        if !matches!(data.len(), 4 | 8) || !offset.is_multiple_of(data.len() as u64) {
            log::warn!("HPET: a {}-byte write at {offset:#x} dropped", data.len());
            return;
        }
        let mut b = [0u8; 8];
        b[..data.len()].copy_from_slice(data);
        let shift = (offset & 7) * 8;
        let value = u64::from_le_bytes(b) << shift;
        let mask = (u64::MAX >> (64 - 8 * data.len() as u32)) << shift;
        let now = self.clock.now_ns();
        self.run_timers(now);
        self.write_reg(offset & !7, value, mask, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Mutex;

    /// Records edges and levels per GSI.
    #[derive(Default)]
    struct Lines {
        pulses: Mutex<Vec<u32>>,
        high: Mutex<Vec<u32>>,
    }

    struct Line(Arc<Lines>, u32);

    impl IrqLine for Line {
        fn set_level(&self, high: bool) {
            let mut h = self.0.high.lock().unwrap();
            h.retain(|&g| g != self.1);
            if high {
                h.push(self.1);
            }
        }
        fn pulse(&self) {
            self.0.pulses.lock().unwrap().push(self.1);
        }
    }

    fn hpet() -> (Hpet, Arc<ManualClock>, Arc<Lines>) {
        let clock = Arc::new(ManualClock::default());
        let lines = Arc::new(Lines::default());
        let l = lines.clone();
        let h = Hpet::new(clock.clone(), move |gsi| Arc::new(Line(l.clone(), gsi)));
        (h, clock, lines)
    }

    fn w64(h: &mut Hpet, off: u64, v: u64) {
        h.write(DEFAULT_BASE, off, &v.to_le_bytes());
    }

    fn w32(h: &mut Hpet, off: u64, v: u32) {
        h.write(DEFAULT_BASE, off, &v.to_le_bytes());
    }

    fn r64(h: &mut Hpet, off: u64) -> u64 {
        let mut b = [0u8; 8];
        h.read(DEFAULT_BASE, off, &mut b);
        u64::from_le_bytes(b)
    }

    #[test]
    fn the_counter_runs_at_100_mhz_only_while_enabled() {
        let (mut h, clock, _) = hpet();
        let cap = r64(&mut h, 0);
        assert_eq!(cap >> 32, PERIOD_FS);
        assert_eq!((cap >> 8) & 0x1f, 2, "three timers");
        assert_ne!(cap & (1 << 15), 0, "legacy-replacement capable");
        clock.set(1_000);
        assert_eq!(r64(&mut h, 0xf0), 0);
        w64(&mut h, 0x10, 1);
        clock.set(11_000);
        assert_eq!(r64(&mut h, 0xf0), 1_000);
        w64(&mut h, 0x10, 0);
        clock.set(50_000);
        assert_eq!(r64(&mut h, 0xf0), 1_000, "stopped");
        w64(&mut h, 0xf0, 5);
        assert_eq!(r64(&mut h, 0xf0), 5);
        let mut lo = [0u8; 4];
        h.read(DEFAULT_BASE, 4, &mut lo);
        assert_eq!(
            u32::from_le_bytes(lo),
            PERIOD_FS as u32,
            "high half of GCAP_ID"
        );
    }

    #[test]
    fn legacy_periodic_timer_0_drives_irq_0_and_coalesces() {
        let (mut h, clock, lines) = hpet();
        // Linux's periodic legacy set-up: enable, periodic, SETVAL; comparator; period.
        w64(&mut h, 0x100, TN_ENABLE | TN_PERIODIC | TN_SETVAL);
        w64(&mut h, 0x108, 100_000); // first match at 1 ms
        w64(&mut h, 0x108, 100_000); // period 1 ms
        w64(&mut h, 0x10, CONF_ENABLE | CONF_LEGACY);
        assert_eq!(h.poll(), Some(1_000_000));
        clock.set(1_000_000);
        assert_eq!(h.poll(), Some(2_000_000));
        assert_eq!(*lines.pulses.lock().unwrap(), [0]);
        // Ten periods late: one interrupt, the next on the period grid.
        clock.set(12_500_000);
        assert_eq!(h.poll(), Some(13_000_000));
        assert_eq!(*lines.pulses.lock().unwrap(), [0, 0]);
    }

    #[test]
    fn one_shot_level_timer_holds_its_route_until_status_is_cleared() {
        let (mut h, clock, lines) = hpet();
        w64(&mut h, 0x10, CONF_ENABLE);
        // Timer 2, level, routed to input 11, 32-bit mode, 500 ticks ahead.
        w64(
            &mut h,
            0x140,
            TN_ENABLE | TN_LEVEL | TN_32BIT | (11 << TN_ROUTE_SHIFT),
        );
        w32(&mut h, 0x148, 500);
        assert_eq!(h.poll(), Some(5_000));
        clock.set(5_000);
        h.poll();
        assert_eq!(*lines.high.lock().unwrap(), [11]);
        assert_eq!(r64(&mut h, 0x20), 1 << 2);
        w64(&mut h, 0x20, 1 << 2);
        assert!(lines.high.lock().unwrap().is_empty());
        assert_eq!(r64(&mut h, 0x20), 0);
        // A route outside the capability is refused; the old one stays.
        w64(&mut h, 0x140, TN_ENABLE | (3 << TN_ROUTE_SHIFT));
        assert_eq!((r64(&mut h, 0x140) & TN_ROUTE) >> TN_ROUTE_SHIFT, 11);
        // Timers 1 and 2 cannot be periodic.
        w64(&mut h, 0x120, TN_PERIODIC);
        assert_eq!(r64(&mut h, 0x120) & TN_PERIODIC, 0);
        // A byte write is dropped.
        h.write(DEFAULT_BASE, 0x10, &[0]);
        assert_eq!(r64(&mut h, 0x10), CONF_ENABLE);
    }
}
