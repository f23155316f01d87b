//! The MC146818 CMOS RTC and NVRAM at ports 0x70/0x71.
//!
//! The clock follows the host's UTC time (QEMU's default `-rtc base=utc`); a guest that sets the
//! clock moves an offset, not the host's time. The NVRAM carries the memory-size bytes that
//! firmware and old kernels read.
//!
//! With [`Cmos::with_interrupts`] the RTC raises IRQ 8 for its three sources, timed on the
//! machine clock: the periodic interrupt (register A's rate, 2 Hz to 8192 Hz), the
//! update-ended interrupt once a second, and the alarm (seconds, minutes, hours, each a
//! "don't care" from 0xC0 up). Register C reports and clears them; the line stays high until
//! it is read, as on the MC146818. Periods missed between two polls coalesce into one.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

pub const INDEX_PORT: u16 = 0x70;
pub const DATA_PORT: u16 = 0x71;

const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
const REG_B_24H: u8 = 1 << 1;
const REG_B_BINARY: u8 = 1 << 2;
const REG_B_SET: u8 = 1 << 7;
const REG_B_PIE: u8 = 1 << 6;
const REG_B_AIE: u8 = 1 << 5;
const REG_B_UIE: u8 = 1 << 4;
const REG_C_IRQF: u8 = 1 << 7;
const REG_C_PF: u8 = 1 << 6;
const REG_C_AF: u8 = 1 << 5;
const REG_C_UF: u8 = 1 << 4;
const NS_PER_S: u64 = 1_000_000_000;

/// What the RTC needs to interrupt: the machine clock, IRQ 8, and its next deadlines.
struct RtcTimer {
    clock: Arc<dyn Clock>,
    irq: Arc<dyn IrqLine>,
    next_periodic: Option<u64>,
    next_update: Option<u64>,
}
const CENTURY: usize = 0x32;

pub struct Cmos {
    index: u8,
    nvram: [u8; 128],
    /// Guest time minus host time, in seconds.
    offset: i64,
    /// Where the time of day comes from, in Unix seconds: the host's clock, or the
    /// deterministic clock's seconds from a fixed date (a fixed clock in tests).
    now: Box<dyn Fn() -> i64 + Send>,
    timer: Option<RtcTimer>,
}

fn host_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Cmos {
    /// `low_mem` is RAM below the PCI hole, `high_mem` RAM above 4 GiB, in bytes.
    pub fn new(low_mem: u64, high_mem: u64) -> Self {
        Self::with_clock(low_mem, high_mem, host_now)
    }

    pub fn with_clock(low_mem: u64, high_mem: u64, now: impl Fn() -> i64 + Send + 'static) -> Self {
        let mut nvram = [0u8; 128];
        nvram[REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
        nvram[REG_B] = REG_B_24H;
        nvram[REG_D] = 0x80; // valid RAM and time
                             // Equipment byte: a math coprocessor, no floppies, VGA/EGA.
        nvram[0x14] = 0x02;
        // Base memory in KiB (640).
        nvram[0x15] = 0x80;
        nvram[0x16] = 0x02;
        // Extended memory from 1 MiB, in KiB, saturating at 63 MiB.
        let ext_kib = (low_mem.saturating_sub(1 << 20) / 1024).min(0xfc00) as u16;
        for reg in [0x17, 0x30] {
            nvram[reg] = ext_kib as u8;
            nvram[reg + 1] = (ext_kib >> 8) as u8;
        }
        // Memory above 16 MiB in 64 KiB units.
        let above16 = (low_mem.saturating_sub(16 << 20) >> 16).min(0xffff) as u16;
        nvram[0x34] = above16 as u8;
        nvram[0x35] = (above16 >> 8) as u8;
        // Memory above 4 GiB in 64 KiB units (24 bits).
        let above4g = (high_mem >> 16).min(0xff_ffff) as u32;
        nvram[0x5b] = above4g as u8;
        nvram[0x5c] = (above4g >> 8) as u8;
        nvram[0x5d] = (above4g >> 16) as u8;
        Cmos {
            index: 0,
            nvram,
            offset: 0,
            now: Box::new(now),
            timer: None,
        }
    }

    /// Lets the RTC interrupt on `irq` (IRQ 8), timed by `clock`; [`Cmos::poll`] must be
    /// called for the interrupts to come.
    pub fn with_interrupts(mut self, clock: Arc<dyn Clock>, irq: Arc<dyn IrqLine>) -> Self {
        self.timer = Some(RtcTimer {
            clock,
            irq,
            next_periodic: None,
            next_update: None,
        });
        self
    }

    /// The periodic interrupt's period (ns) from register A's rate select, if it runs.
    fn periodic_ns(&self) -> Option<u64> {
        let rs = u32::from(self.nvram[REG_A] & 0xf);
        let hz = match rs {
            0 => return None,
            // Rates 1 and 2 repeat 256 and 128 Hz on a 32.768 kHz time base.
            1 | 2 => 65536u64 >> (rs + 7),
            _ => 65536u64 >> rs,
        };
        Some(NS_PER_S / hz)
    }

    /// Whether the alarm registers match the time now (0xC0 and up: any value).
    fn alarm_matches(&self) -> bool {
        [(0x01, 0x00), (0x03, 0x02), (0x05, 0x04)]
            .iter()
            .all(|&(alarm, time)| {
                let a = self.nvram[alarm];
                a >= 0xc0 || self.time_register(time) == Some(a)
            })
    }

    /// Sets the flags in `bits`, and IRQF with the line raised if one of them is enabled.
    fn flag(&mut self, bits: u8) {
        self.nvram[REG_C] |= bits;
        let enabled = self.nvram[REG_C] & self.nvram[REG_B] & (REG_C_PF | REG_C_AF | REG_C_UF);
        if enabled != 0 && self.nvram[REG_C] & REG_C_IRQF == 0 {
            self.nvram[REG_C] |= REG_C_IRQF;
            if let Some(t) = &self.timer {
                t.irq.set_level(true);
            }
        }
    }

    /// The deadlines after a change of rate or enables: the next period and second
    /// boundaries from now.
    fn rearm(&mut self) {
        let period = self.periodic_ns();
        let Some(t) = &mut self.timer else { return };
        let now = t.clock.now_ns();
        t.next_periodic = period.map(|p| (now / p + 1) * p);
        t.next_update = Some((now / NS_PER_S + 1) * NS_PER_S);
    }

    /// Lets the RTC's interrupts catch up with the machine clock; returns when it next needs
    /// a poll (ns), if any interrupt is enabled.
    pub fn poll(&mut self) -> Option<u64> {
        let (now, periodic, update) = {
            let t = self.timer.as_ref()?;
            (t.clock.now_ns(), t.next_periodic, t.next_update)
        };
        let b = self.nvram[REG_B];
        let mut flags = 0;
        let mut next_periodic = None;
        if let (Some(period), true) = (self.periodic_ns(), b & REG_B_PIE != 0) {
            let due = periodic.unwrap_or((now / period + 1) * period);
            if now >= due {
                flags |= REG_C_PF;
            }
            next_periodic = Some(if now >= due {
                (now / period + 1) * period
            } else {
                due
            });
        }
        let mut next_update = None;
        if b & (REG_B_UIE | REG_B_AIE) != 0 {
            let due = update.unwrap_or((now / NS_PER_S + 1) * NS_PER_S);
            if now >= due {
                flags |= REG_C_UF;
                if self.alarm_matches() {
                    flags |= REG_C_AF;
                }
            }
            next_update = Some(if now >= due {
                (now / NS_PER_S + 1) * NS_PER_S
            } else {
                due
            });
        }
        if let Some(t) = &mut self.timer {
            t.next_periodic = next_periodic;
            t.next_update = next_update;
        }
        if flags != 0 {
            self.flag(flags);
        }
        match (next_periodic, next_update) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn binary(&self) -> bool {
        self.nvram[REG_B] & REG_B_BINARY != 0
    }

    fn encode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            (v >> 4) * 10 + (v & 0xf)
        }
    }

    fn time_register(&self, reg: usize) -> Option<u8> {
        let t = civil_from_unix((self.now)() + self.offset);
        Some(match reg {
            0x00 => self.encode(t.second),
            0x02 => self.encode(t.minute),
            0x04 => {
                if self.nvram[REG_B] & REG_B_24H != 0 {
                    self.encode(t.hour)
                } else {
                    let h12 = match t.hour % 12 {
                        0 => 12,
                        h => h,
                    };
                    self.encode(h12) | if t.hour >= 12 { 0x80 } else { 0 }
                }
            }
            0x06 => self.encode(t.weekday + 1),
            0x07 => self.encode(t.day),
            0x08 => self.encode(t.month),
            0x09 => self.encode((t.year % 100) as u8),
            CENTURY => self.encode((t.year / 100) as u8),
            _ => return None,
        })
    }

    /// A guest write to a clock register: recompute the offset so the clock reads the new
    /// field from now on.
    fn set_time_register(&mut self, reg: usize, raw: u8) {
        let mut t = civil_from_unix((self.now)() + self.offset);
        let pm = raw & 0x80 != 0 && self.nvram[REG_B] & REG_B_24H == 0;
        let v = self.decode(raw & if reg == 0x04 { 0x7f } else { 0xff });
        match reg {
            0x00 => t.second = v.min(59),
            0x02 => t.minute = v.min(59),
            0x04 => t.hour = if pm { (v % 12) + 12 } else { v.min(23) },
            0x07 => t.day = v.clamp(1, 31),
            0x08 => t.month = v.clamp(1, 12),
            0x09 => t.year = t.year - t.year % 100 + i64::from(v.min(99)),
            CENTURY => t.year = i64::from(v) * 100 + t.year % 100,
            _ => return,
        }
        self.offset = unix_from_civil(&t) - (self.now)();
    }
}

impl crate::clock::Timer for Cmos {
    fn poll(&mut self) -> Option<u64> {
        Cmos::poll(self)
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let port = base + offset;
        let value = if port == u64::from(INDEX_PORT) {
            self.index
        } else {
            let reg = usize::from(self.index & 0x7f);
            match reg {
                // Reading C acknowledges pending interrupts and lowers IRQ 8.
                REG_C => {
                    let c = std::mem::take(&mut self.nvram[REG_C]);
                    if c & REG_C_IRQF != 0 {
                        if let Some(t) = &self.timer {
                            t.irq.set_level(false);
                        }
                    }
                    c
                }
                _ => self.time_register(reg).unwrap_or(self.nvram[reg]),
            }
        };
        data.fill(value);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        if base + offset == u64::from(INDEX_PORT) {
            // Bit 7 is the NMI mask, not part of the index.
            self.index = value & 0x7f;
            return;
        }
        let reg = usize::from(self.index);
        match reg {
            REG_C | REG_D => {}                        // read-only
            REG_A => self.nvram[REG_A] = value & 0x7f, // UIP is read-only
            _ if self.time_register(reg).is_some() => self.set_time_register(reg, value),
            _ => self.nvram[reg] = value,
        }
        if reg == REG_B && value & REG_B_SET != 0 {
            log::debug!("cmos: guest is setting the clock");
        }
        if reg == REG_A || reg == REG_B {
            // A new rate or new enables: the deadlines start over from now; a flag already
            // set raises IRQ 8 once enabled.
            self.rearm();
            self.flag(0);
        }
    }
}

/// A broken-down UTC time.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// 0 = Sunday.
    weekday: u8,
}

// Days/civil conversions after Howard Hinnant's public-domain algorithms.
fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        weekday: (days + 4).rem_euclid(7) as u8,
    }
}

fn unix_from_civil(t: &Civil) -> i64 {
    let y = t.year - i64::from(t.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(t.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(t.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25 18:45:59 UTC, a Wednesday.
    fn fixed() -> i64 {
        1_795_632_359
    }

    fn reg(c: &mut Cmos, r: u8) -> u8 {
        c.write(0x70, 0, &[r]);
        let mut d = [0];
        c.read(0x70, 1, &mut d);
        d[0]
    }

    #[test]
    fn clock_reads_bcd_host_time() {
        let mut c = Cmos::with_clock(512 << 20, 0, fixed);
        assert_eq!(reg(&mut c, 0x09), 0x26);
        assert_eq!(reg(&mut c, 0x32), 0x20);
        assert_eq!(reg(&mut c, 0x08), 0x11);
        assert_eq!(reg(&mut c, 0x07), 0x25);
        assert_eq!(reg(&mut c, 0x04), 0x18);
        assert_eq!(reg(&mut c, 0x02), 0x45);
        assert_eq!(reg(&mut c, 0x00), 0x59);
        assert_eq!(reg(&mut c, 0x06), 4); // Wednesday = 4 (Sunday = 1)
    }

    #[test]
    fn guest_can_set_the_clock_without_touching_the_host() {
        let mut c = Cmos::with_clock(512 << 20, 0, fixed);
        c.write(0x70, 0, &[0x09]);
        c.write(0x70, 1, &[0x99]);
        assert_eq!(reg(&mut c, 0x09), 0x99);
        assert_eq!(reg(&mut c, 0x08), 0x11);
        // Binary mode.
        c.write(0x70, 0, &[0x0b]);
        c.write(0x70, 1, &[REG_B_24H | REG_B_BINARY]);
        assert_eq!(reg(&mut c, 0x09), 99);
    }

    #[test]
    fn memory_size_bytes() {
        let mut c = Cmos::with_clock(3 << 30, 1 << 30, fixed);
        assert_eq!(reg(&mut c, 0x15), 0x80);
        assert_eq!(reg(&mut c, 0x16), 0x02);
        assert_eq!((reg(&mut c, 0x31), reg(&mut c, 0x30)), (0xfc, 0x00));
        let above16 = u16::from(reg(&mut c, 0x35)) << 8 | u16::from(reg(&mut c, 0x34));
        assert_eq!(u64::from(above16) << 16, (3 << 30) - (16 << 20));
        assert_eq!(reg(&mut c, 0x5c), 0x40); // 1 GiB = 0x4000 × 64 KiB
    }

    struct Line(std::sync::atomic::AtomicBool);

    impl IrqLine for Line {
        fn set_level(&self, high: bool) {
            self.0.store(high, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn rtc_with_irq() -> (Cmos, Arc<crate::clock::ManualClock>, Arc<Line>) {
        let clock = Arc::new(crate::clock::ManualClock::default());
        let line = Arc::new(Line(Default::default()));
        let c = Cmos::with_clock(512 << 20, 0, fixed).with_interrupts(clock.clone(), line.clone());
        (c, clock, line)
    }

    fn set(c: &mut Cmos, r: u8, v: u8) {
        c.write(0x70, 0, &[r]);
        c.write(0x70, 1, &[v]);
    }

    fn high(l: &Line) -> bool {
        l.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn periodic_interrupt_at_the_rate_of_register_a_until_register_c_is_read() {
        let (mut c, clock, line) = rtc_with_irq();
        assert_eq!(c.poll(), None, "nothing enabled");
        set(&mut c, 0x0b, REG_B_24H | REG_B_PIE);
        // The default rate 6: 1024 Hz.
        let due = c.poll().expect("a deadline");
        assert_eq!(due, NS_PER_S / 1024);
        assert!(!high(&line));
        clock.set(due);
        c.poll();
        assert!(high(&line));
        // Many periods later: one interrupt, not a backlog.
        clock.set(due * 50);
        c.poll();
        assert_eq!(reg(&mut c, 0x0c), REG_C_IRQF | REG_C_PF);
        assert!(!high(&line), "reading C lowers IRQ 8");
        assert_eq!(reg(&mut c, 0x0c), 0);
        // Rate 15 is 2 Hz; rate 0 stops it.
        set(&mut c, 0x0a, 0x2f);
        assert_eq!(c.poll(), Some((due * 50 / 500_000_000 + 1) * 500_000_000));
        set(&mut c, 0x0a, 0x20);
        assert_eq!(c.poll(), None);
    }

    #[test]
    fn update_ended_and_alarm_interrupts_once_a_second() {
        let (mut c, clock, line) = rtc_with_irq();
        // The alarm at the fixed clock's 18:45:59, every field checked.
        set(&mut c, 0x01, 0x59);
        set(&mut c, 0x03, 0x45);
        set(&mut c, 0x05, 0x18);
        set(&mut c, 0x0b, REG_B_24H | REG_B_AIE);
        assert_eq!(c.poll(), Some(NS_PER_S));
        clock.set(NS_PER_S);
        c.poll();
        assert!(high(&line));
        // UF is set too (not enabled, but reported).
        assert_eq!(reg(&mut c, 0x0c), REG_C_IRQF | REG_C_AF | REG_C_UF);
        // A minute that does not match: no alarm; update-ended alone interrupts with UIE.
        set(&mut c, 0x03, 0x44);
        set(&mut c, 0x0b, REG_B_24H | REG_B_AIE | REG_B_UIE);
        clock.set(2 * NS_PER_S);
        c.poll();
        assert_eq!(reg(&mut c, 0x0c), REG_C_IRQF | REG_C_UF);
        // "Don't care" minutes match any.
        set(&mut c, 0x03, 0xc0);
        clock.set(3 * NS_PER_S);
        c.poll();
        assert_eq!(reg(&mut c, 0x0c), REG_C_IRQF | REG_C_AF | REG_C_UF);
    }

    #[test]
    fn civil_round_trip() {
        for s in [0, 951_782_400, 1_795_632_359, 4_102_444_800] {
            assert_eq!(unix_from_civil(&civil_from_unix(s)), s);
        }
    }
}
