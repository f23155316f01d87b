//! The Intel 8254 programmable interval timer (ports 0x40–0x43) and the PC's port 0x61
//! (channel 2's gate, the speaker enable, OUT2 and the refresh toggle).
//!
//! Counters are computed from the machine's clock rather than stepped: a channel remembers
//! when its count was loaded, and its count and output at any moment follow from the elapsed
//! 1.193182 MHz ticks (modes 0–5, as QEMU's hw/timer/i8254 does). Channel 0's output drives
//! IRQ 0: [`Pit::poll`] raises it when a period (or a one-shot count) has run out and says
//! when the next one is due, which is how a halted CPU knows how long it may sleep. However
//! small the divisor, at most one interrupt is raised per poll, so a guest cannot flood the
//! host.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

pub const PIT_PORT: u16 = 0x40;
pub const PORT_61: u16 = 0x61;
/// The 8254's input clock.
pub const FREQ_HZ: u64 = 1_193_182;

fn ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(FREQ_HZ) / 1_000_000_000) as u64
}

/// The first nanosecond at which `t` ticks have elapsed.
fn ns_for(t: u64) -> u64 {
    (u128::from(t) * 1_000_000_000).div_ceil(u128::from(FREQ_HZ)) as u64
}

#[derive(Clone, Debug)]
struct Channel {
    /// The reload value, 1–0x10000 (0 written means 0x10000).
    count: u64,
    /// When `count` was loaded (ns on the machine clock).
    loaded_at: u64,
    latched: u16,
    /// 0: no latch; 1: LSB; 2: MSB; 3: LSB then MSB.
    count_latched: u8,
    status: u8,
    status_latched: bool,
    read_state: u8,
    write_state: u8,
    write_lsb: u8,
    /// Access mode: 1 LSB, 2 MSB, 3 LSB then MSB.
    rw_mode: u8,
    mode: u8,
    bcd: bool,
    gate: bool,
    /// Channel 0's next interrupt (ns), if one is due.
    next_irq: Option<u64>,
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            count: 0x10000,
            loaded_at: 0,
            latched: 0,
            count_latched: 0,
            status: 0,
            status_latched: false,
            read_state: 3,
            write_state: 3,
            write_lsb: 0,
            rw_mode: 3,
            mode: 0,
            bcd: false,
            gate: true,
            next_irq: None,
        }
    }
}

impl Channel {
    fn elapsed(&self, now: u64) -> u64 {
        ticks(now.saturating_sub(self.loaded_at))
    }

    fn current(&self, now: u64) -> u16 {
        let d = self.elapsed(now);
        let c = self.count;
        (match self.mode {
            2 => c - d % c,
            3 => c - (2 * d) % c,
            _ => c.wrapping_sub(d),
        } & 0xffff) as u16
    }

    fn out(&self, now: u64) -> bool {
        let d = self.elapsed(now);
        let c = self.count;
        match self.mode {
            0 => d >= c,
            1 => d < c,
            // Low for the one tick when the count is 1.
            2 => d % c != c - 1,
            3 => d % c < c.div_ceil(2),
            _ => d != c,
        }
    }

    fn latch(&mut self, now: u64) {
        if self.count_latched == 0 {
            self.latched = self.current(now);
            self.count_latched = self.rw_mode;
        }
    }

    fn load(&mut self, value: u16, now: u64) {
        self.count = if value == 0 {
            0x10000
        } else {
            u64::from(value)
        };
        self.loaded_at = now;
        self.schedule(now);
    }

    /// The first interrupt after `now`: periodic modes fire every `count` ticks from the
    /// load, the others once, when the count runs out.
    fn schedule(&mut self, now: u64) {
        let c = self.count;
        let d = self.elapsed(now);
        self.next_irq = match self.mode {
            2 | 3 => Some(self.loaded_at + ns_for((d / c + 1) * c)),
            0 | 4 if d < c => Some(self.loaded_at + ns_for(c)),
            _ => None,
        };
    }

    fn read(&mut self, now: u64) -> u8 {
        if self.status_latched {
            self.status_latched = false;
            return self.status;
        }
        match self.count_latched {
            1 => {
                self.count_latched = 0;
                self.latched as u8
            }
            2 => {
                self.count_latched = 0;
                (self.latched >> 8) as u8
            }
            3 => {
                self.count_latched = 2;
                self.latched as u8
            }
            _ => {
                let c = self.current(now);
                match self.read_state {
                    1 => c as u8,
                    2 => (c >> 8) as u8,
                    3 => {
                        self.read_state = 4;
                        c as u8
                    }
                    _ => {
                        self.read_state = 3;
                        (c >> 8) as u8
                    }
                }
            }
        }
    }

    fn write(&mut self, val: u8, now: u64) {
        match self.write_state {
            1 => self.load(u16::from(val), now),
            2 => self.load(u16::from(val) << 8, now),
            3 => {
                self.write_lsb = val;
                self.write_state = 4;
            }
            _ => {
                self.load(u16::from(self.write_lsb) | u16::from(val) << 8, now);
                self.write_state = 3;
            }
        }
    }

    fn set_gate(&mut self, gate: bool, now: u64) {
        // A rising edge restarts modes 1, 2, 3 and 5; modes 0 and 4 just go on counting
        // (as QEMU's model does).
        if gate && !self.gate && matches!(self.mode, 1 | 2 | 3 | 5) {
            self.loaded_at = now;
            self.schedule(now);
        }
        self.gate = gate;
    }
}

/// The timer, its IRQ 0 line and port 0x61.
pub struct Pit {
    channels: [Channel; 3],
    clock: Arc<dyn Clock>,
    irq0: Arc<dyn IrqLine>,
    speaker: bool,
}

impl Pit {
    pub fn new(clock: Arc<dyn Clock>, irq0: Arc<dyn IrqLine>) -> Self {
        Pit {
            channels: Default::default(),
            clock,
            irq0,
            speaker: false,
        }
    }

    fn control(&mut self, val: u8, now: u64) {
        let ch = usize::from(val >> 6);
        if ch == 3 {
            // Read-back: latch the count and/or status of the selected channels.
            for (k, c) in self.channels.iter_mut().enumerate() {
                if val & (2 << k) == 0 {
                    continue;
                }
                if val & 0x20 == 0 {
                    c.latch(now);
                }
                if val & 0x10 == 0 && !c.status_latched {
                    c.status =
                        u8::from(c.out(now)) << 7 | c.rw_mode << 4 | c.mode << 1 | u8::from(c.bcd);
                    c.status_latched = true;
                }
            }
            return;
        }
        let c = &mut self.channels[ch];
        let access = (val >> 4) & 3;
        if access == 0 {
            c.latch(now);
            return;
        }
        c.rw_mode = access;
        c.read_state = access;
        c.write_state = access;
        let mode = (val >> 1) & 7;
        c.mode = if mode >= 6 { mode & 3 } else { mode };
        c.bcd = val & 1 != 0;
        if c.bcd {
            log::debug!("8254: BCD counting is not supported (counting in binary)");
        }
        // Programming a mode stops the counter until a count is written.
        c.next_irq = None;
    }

    /// Raises IRQ 0 if channel 0's interrupt is due; returns when the next one is (ns).
    pub fn poll(&mut self) -> Option<u64> {
        let now = self.clock.now_ns();
        let c = &mut self.channels[0];
        if let Some(t) = c.next_irq {
            if now >= t {
                c.schedule(now);
                self.irq0.pulse();
            }
        }
        self.channels[0].next_irq
    }

    pub fn read_port(&mut self, port: u16) -> u8 {
        let now = self.clock.now_ns();
        match port {
            0x40..=0x42 => self.channels[usize::from(port - 0x40)].read(now),
            PORT_61 => {
                let c2 = &self.channels[2];
                // Bit 4 toggles with the DRAM refresh, every 15.085 µs.
                u8::from(c2.gate)
                    | u8::from(self.speaker) << 1
                    | (((now / 15_085) & 1) as u8) << 4
                    | u8::from(c2.out(now)) << 5
            }
            _ => 0xff,
        }
    }

    pub fn write_port(&mut self, port: u16, val: u8) {
        let now = self.clock.now_ns();
        match port {
            0x40..=0x42 => self.channels[usize::from(port - 0x40)].write(val, now),
            0x43 => self.control(val, now),
            PORT_61 => {
                self.channels[2].set_gate(val & 1 != 0, now);
                self.speaker = val & 2 != 0;
            }
            _ => {}
        }
    }
}

impl BusDevice for Pit {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        crate::bus::bytewise_read((base + offset) as u16, data, |p| self.read_port(p));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        crate::bus::bytewise_write((base + offset) as u16, data, |p, v| self.write_port(p, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Counter(AtomicU32);
    impl IrqLine for Counter {
        fn set_level(&self, high: bool) {
            if high {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn pit() -> (Pit, Arc<ManualClock>, Arc<Counter>) {
        let clock = Arc::new(ManualClock::default());
        let irq = Arc::new(Counter::default());
        (Pit::new(clock.clone(), irq.clone()), clock, irq)
    }

    #[test]
    fn periodic_interrupts_and_counting() {
        let (mut p, clock, irq) = pit();
        // Channel 0, LSB then MSB, mode 2, 1193 (about 1 ms).
        p.write_port(0x43, 0x34);
        p.write_port(0x40, (1193u16 & 0xff) as u8);
        p.write_port(0x40, (1193u16 >> 8) as u8);
        let due = p.poll().expect("scheduled");
        assert!((999_000..1_001_000).contains(&due), "{due}");
        clock.set(500_000);
        assert_eq!(p.poll(), Some(due));
        assert_eq!(irq.0.load(Ordering::SeqCst), 0);
        // Latch and read the count halfway: about 1193 - 596.
        p.write_port(0x43, 0x00);
        let lo = p.read_port(0x40);
        let hi = p.read_port(0x40);
        let count = u16::from(lo) | u16::from(hi) << 8;
        assert!((595..=598).contains(&count), "{count}");
        clock.set(1_000_500);
        let next = p.poll().expect("periodic");
        assert_eq!(irq.0.load(Ordering::SeqCst), 1);
        assert!(next > 1_000_500 && next < 2_001_000, "{next}");
        // Ten periods later: one interrupt, not ten (ticks are lost, not queued).
        clock.set(12_000_000);
        p.poll();
        assert_eq!(irq.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn one_shot_channel_2_gate_and_port_61() {
        let (mut p, clock, irq) = pit();
        // Linux's calibration: channel 2 gated on, mode 0, count 0xffff; OUT2 rises at zero.
        p.write_port(PORT_61, 0x01);
        p.write_port(0x43, 0xb0);
        p.write_port(0x42, 0xff);
        p.write_port(0x42, 0xff);
        assert_eq!(p.read_port(PORT_61) & 0x20, 0);
        clock.set(ns_for(0xffff) + 1);
        assert_eq!(p.read_port(PORT_61) & 0x21, 0x21);
        // Channel 2 never interrupts.
        p.poll();
        assert_eq!(irq.0.load(Ordering::SeqCst), 0);
        // Read-back of channel 2's status: OUT high, LSB/MSB, mode 0.
        p.write_port(0x43, 0xe8);
        assert_eq!(p.read_port(0x42), 0x80 | 0x30);
    }

    #[test]
    fn absurd_divisors_stay_bounded() {
        let (mut p, clock, irq) = pit();
        p.write_port(0x43, 0x34);
        p.write_port(0x40, 1);
        p.write_port(0x40, 0);
        for k in 1..=100 {
            clock.set(k * 1_000_000);
            p.poll();
        }
        assert_eq!(irq.0.load(Ordering::SeqCst), 100);
        // Zero means 65536.
        p.write_port(0x43, 0x30);
        p.write_port(0x40, 0);
        p.write_port(0x40, 0);
        p.write_port(0x43, 0x00);
        assert_eq!(p.read_port(0x40), 0);
        assert_eq!(p.read_port(0x40), 0);
    }
}
