//! The local APIC of one vCPU: xAPIC registers by MMIO offset, x2APIC registers by MSR, the
//! priority rules (TPR, PPR, IRR/ISR), EOI, the timer (one-shot, periodic, TSC-deadline) and
//! interrupt-command writes, which become [`Ipi`]s for the machine to route.
//!
//! Semantics follow QEMU's hw/intc/apic.c where the SDM leaves room: the timer counts a
//! 1 GHz bus clock divided by the divide-configuration register; after reset the boot CPU's
//! LINT0 is in ExtINT mode and unmasked, as firmware leaves it, so the 8259's INTR reaches
//! the CPU until the OS reprograms LINT0; the register layout and version (0x14, six LVT
//! entries) are QEMU's. A timer that has run out more than once between two polls fires once
//! (no backlog), so a guest programming a tiny period cannot flood the host.

/// The architectural default base of the xAPIC's registers.
pub const DEFAULT_BASE: u64 = 0xfee0_0000;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// The x2APIC's MSRs: 0x800 + (xAPIC offset >> 4).
pub const MSR_X2APIC_FIRST: u32 = 0x800;
pub const MSR_X2APIC_LAST: u32 = 0x8ff;

pub const BASE_BSP: u64 = 1 << 8;
pub const BASE_X2APIC: u64 = 1 << 10;
pub const BASE_ENABLE: u64 = 1 << 11;

const VERSION: u32 = 0x14 | ((LVT_COUNT as u32 - 1) << 16);
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_MODE_SHIFT: u32 = 17;
const LVT_COUNT: usize = 6;
/// ESR bit: a vector below 16 was received.
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;

/// LVT entries in register order from 0x320 (the CMCI entry at 0x2f0 is not modelled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lvt {
    Timer = 0,
    Lint0 = 3,
    Lint1 = 4,
    Error = 5,
}

/// An interrupt-command write: what the machine must deliver, and to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub vector: u8,
    /// Delivery mode (ICR bits 8–10): 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT,
    /// 6 start-up.
    pub mode: u8,
    /// Logical (true) or physical destination mode.
    pub logical: bool,
    /// INIT level de-assert (mode 5, level 0, trigger level): ignored by targets.
    pub deassert: bool,
    /// Destination shorthand: 0 none, 1 self, 2 all including self, 3 all excluding self.
    pub shorthand: u8,
    /// The destination field: 8 bits in xAPIC mode, 32 in x2APIC mode.
    pub dest: u32,
    /// The sender's APIC ID.
    pub source: u32,
}

pub const MODE_FIXED: u8 = 0;
pub const MODE_LOWEST: u8 = 1;
pub const MODE_NMI: u8 = 4;
pub const MODE_INIT: u8 = 5;
pub const MODE_STARTUP: u8 = 6;

/// Why a register access could not be done (the CPU raises #GP for MSR accesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// Not an x2APIC register, or the APIC is not in x2APIC mode, or a read-only/write-only
    /// register accessed the wrong way.
    Invalid,
}

#[derive(Clone)]
pub struct LocalApic {
    id: u32,
    base: u64,
    tpr: u32,
    svr: u32,
    ldr: u32,
    dfr: u32,
    esr: u32,
    /// ESR bits collected since the last ESR write (a write latches them into `esr`).
    pending_esr: u32,
    isr: [u32; 8],
    irr: [u32; 8],
    tmr: [u32; 8],
    lvt: [u32; LVT_COUNT],
    icr: u64,
    divide: u32,
    initial: u32,
    /// When `initial` was written (ns on the machine clock).
    loaded_at: u64,
    /// The one-shot/periodic timer's next expiry (ns), if armed.
    timer_next: Option<u64>,
    /// IA32_TSC_DEADLINE (TSC units; 0 disarms).
    tsc_deadline: u64,
}

fn bit(regs: &[u32; 8], v: u8) -> bool {
    regs[usize::from(v >> 5)] & (1 << (v & 31)) != 0
}

fn set_bit(regs: &mut [u32; 8], v: u8, on: bool) {
    let w = &mut regs[usize::from(v >> 5)];
    if on {
        *w |= 1 << (v & 31);
    } else {
        *w &= !(1 << (v & 31));
    }
}

/// The highest vector set, if any.
fn highest(regs: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| regs[i] != 0)
        .map(|i| (i as u32 * 32 + 31 - regs[i].leading_zeros()) as u8)
}

impl LocalApic {
    /// The APIC of the CPU with APIC ID `id`; `bsp` for the boot CPU.
    pub fn new(id: u32, bsp: bool) -> Self {
        let mut a = LocalApic {
            id,
            base: DEFAULT_BASE | BASE_ENABLE | if bsp { BASE_BSP } else { 0 },
            tpr: 0,
            svr: 0xff,
            ldr: 0,
            dfr: 0xffff_ffff,
            esr: 0,
            pending_esr: 0,
            isr: [0; 8],
            irr: [0; 8],
            tmr: [0; 8],
            lvt: [LVT_MASKED; LVT_COUNT],
            icr: 0,
            divide: 0,
            initial: 0,
            loaded_at: 0,
            timer_next: None,
            tsc_deadline: 0,
        };
        if bsp {
            // What firmware leaves: the 8259 through LINT0 (ExtINT), NMI on LINT1.
            a.lvt[Lvt::Lint0 as usize] = 0x700;
            a.lvt[Lvt::Lint1 as usize] = 0x400;
        }
        a
    }

    /// INIT: every register back to its power-on value but the APIC ID and IA32_APIC_BASE
    /// (SDM 10.4.7.3).
    pub fn init(&mut self) {
        let base = self.base;
        *self = LocalApic::new(self.id, false);
        self.base = base;
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// IA32_APIC_BASE.
    pub fn base_msr(&self) -> u64 {
        self.base
    }

    /// Globally enabled (IA32_APIC_BASE bit 11).
    pub fn hw_enabled(&self) -> bool {
        self.base & BASE_ENABLE != 0
    }

    pub fn x2apic(&self) -> bool {
        self.base & (BASE_ENABLE | BASE_X2APIC) == BASE_ENABLE | BASE_X2APIC
    }

    fn sw_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The physical address of the xAPIC registers, while they are decoded there.
    pub fn mmio_base(&self) -> Option<u64> {
        (self.hw_enabled() && !self.x2apic()).then_some(self.base & 0xf_ffff_f000)
    }

    /// A WRMSR of IA32_APIC_BASE: `Err` for a reserved bit or a transition the SDM forbids
    /// (x2APIC back to xAPIC without disabling first, x2APIC while disabled).
    pub fn set_base_msr(&mut self, value: u64) -> Result<(), AccessError> {
        const RESERVED: u64 = !(0xf_ffff_f000 | BASE_BSP | BASE_X2APIC | BASE_ENABLE);
        if value & RESERVED != 0 {
            return Err(AccessError::Invalid);
        }
        let (en, x2) = (value & BASE_ENABLE != 0, value & BASE_X2APIC != 0);
        if x2 && !en {
            return Err(AccessError::Invalid);
        }
        if self.x2apic() && en && !x2 {
            return Err(AccessError::Invalid);
        }
        let was_enabled = self.hw_enabled();
        // The BSP flag is read-only.
        self.base = (value & !BASE_BSP) | (self.base & BASE_BSP);
        if was_enabled && !en {
            // A global disable resets the APIC's state but its ID and base.
            let keep = (self.id, self.base);
            *self = LocalApic::new(self.id, false);
            self.lvt = [LVT_MASKED; LVT_COUNT];
            (self.id, self.base) = keep;
        }
        Ok(())
    }

    /// Processor priority: the higher class of TPR and the highest in-service vector.
    fn ppr(&self) -> u32 {
        let isrv = highest(&self.isr).map_or(0, u32::from);
        if (self.tpr >> 4) >= (isrv >> 4) {
            self.tpr & 0xff
        } else {
            isrv & 0xf0
        }
    }

    /// The vector the APIC would deliver now, if any (for the CPU's INTR check).
    pub fn pending(&self) -> Option<u8> {
        if !self.hw_enabled() {
            return None;
        }
        let v = highest(&self.irr)?;
        (u32::from(v) >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The interrupt-acknowledge cycle: the pending vector moves from IRR to ISR. With
    /// nothing deliverable (it was masked by TPR meanwhile) the spurious vector.
    pub fn acknowledge(&mut self) -> u8 {
        match self.pending() {
            Some(v) => {
                set_bit(&mut self.irr, v, false);
                set_bit(&mut self.isr, v, true);
                v
            }
            None => (self.svr & 0xff) as u8,
        }
    }

    /// An interrupt arrives (from the IOAPIC, an IPI or an LVT entry); `level` records it
    /// as level-triggered, so its EOI is broadcast to the IOAPIC.
    pub fn accept(&mut self, vector: u8, level: bool) {
        if !self.hw_enabled() {
            return;
        }
        if vector < 16 {
            self.pending_esr |= ESR_RECEIVE_ILLEGAL_VECTOR;
            self.lvt_error();
            return;
        }
        set_bit(&mut self.irr, vector, true);
        set_bit(&mut self.tmr, vector, level);
    }

    fn lvt_error(&mut self) {
        let e = self.lvt[Lvt::Error as usize];
        let v = (e & 0xff) as u8;
        if e & LVT_MASKED == 0 && v >= 16 {
            set_bit(&mut self.irr, v, true);
            set_bit(&mut self.tmr, v, false);
        }
    }

    /// EOI: the highest in-service vector is done. A level-triggered one returns its
    /// vector for the IOAPIC (whose remote IRR it clears).
    fn eoi(&mut self) -> Option<u8> {
        let v = highest(&self.isr)?;
        set_bit(&mut self.isr, v, false);
        if bit(&self.tmr, v) {
            set_bit(&mut self.tmr, v, false);
            Some(v)
        } else {
            None
        }
    }

    /// Whether the 8259's INTR reaches the CPU through this APIC: with the APIC globally
    /// disabled, or with LINT0 unmasked (QEMU's rule; LINT0 is in ExtINT mode in practice).
    pub fn accepts_pic(&self) -> bool {
        !self.hw_enabled() || self.lvt[Lvt::Lint0 as usize] & LVT_MASKED == 0
    }

    // ----- the timer ----------------------------------------------------------------------

    fn timer_mode(&self) -> u32 {
        (self.lvt[Lvt::Timer as usize] >> LVT_TIMER_MODE_SHIFT) & 3
    }

    /// log2 of the divisor (divide-configuration bits 0, 1 and 3; 0b111 is divide by 1).
    fn divide_shift(&self) -> u32 {
        let v = (self.divide & 3) | ((self.divide >> 1) & 4);
        (v + 1) & 7
    }

    fn period_ns(&self) -> u64 {
        u64::from(self.initial) << self.divide_shift()
    }

    /// The current-count register at `now`.
    fn current_count(&self, now: u64) -> u32 {
        if self.initial == 0 || self.timer_mode() == 2 {
            return 0;
        }
        let ticks = now.saturating_sub(self.loaded_at) >> self.divide_shift();
        let initial = u64::from(self.initial);
        if self.timer_mode() == 1 {
            (initial - ticks % initial) as u32
        } else if ticks >= initial {
            0
        } else {
            (initial - ticks) as u32
        }
    }

    fn arm(&mut self, now: u64) {
        self.loaded_at = now;
        self.timer_next = (self.initial != 0 && self.timer_mode() != 2)
            .then(|| now.saturating_add(self.period_ns()));
    }

    fn fire_timer(&mut self) {
        let lvt = self.lvt[Lvt::Timer as usize];
        if lvt & LVT_MASKED == 0 {
            self.accept((lvt & 0xff) as u8, false);
        }
    }

    /// Lets the timer catch up with the clock: `now` in ns, `tsc` the guest's TSC at that
    /// moment (for TSC-deadline mode). Returns when the timer next needs a poll (ns).
    pub fn poll(&mut self, now: u64, tsc: u64) -> Option<u64> {
        if self.timer_mode() == 2 {
            if self.tsc_deadline == 0 {
                return None;
            }
            if tsc >= self.tsc_deadline {
                self.tsc_deadline = 0;
                self.fire_timer();
                return None;
            }
            return Some(now.saturating_add(self.tsc_deadline - tsc));
        }
        let next = self.timer_next?;
        if now < next {
            return Some(next);
        }
        self.fire_timer();
        if self.timer_mode() == 1 {
            // The next period boundary after now: expiries missed meanwhile coalesce.
            let period = self.period_ns().max(1);
            let periods = (now - self.loaded_at) / period + 1;
            self.timer_next = Some(
                self.loaded_at
                    .saturating_add(periods.saturating_mul(period)),
            );
        } else {
            self.timer_next = None;
        }
        self.timer_next
    }

    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// WRMSR IA32_TSC_DEADLINE: armed only in TSC-deadline mode (ignored otherwise).
    pub fn set_tsc_deadline(&mut self, value: u64) {
        if self.timer_mode() == 2 {
            self.tsc_deadline = value;
        }
    }

    // ----- registers ------------------------------------------------------------------------

    /// Reads the 32-bit register at xAPIC `offset` (16-byte aligned); `now` for the timer.
    pub fn read(&self, offset: u32, now: u64) -> u32 {
        match offset {
            0x20 => {
                if self.x2apic() {
                    self.id
                } else {
                    self.id << 24
                }
            }
            0x30 => VERSION,
            0x80 => self.tpr,
            0x90 => 0, // arbitration priority: not modelled (QEMU returns 0 as well)
            0xa0 => self.ppr(),
            0xd0 => {
                if self.x2apic() {
                    // Cluster in bits 16-31, one bit of 16 in the cluster.
                    ((self.id >> 4) << 16) | (1 << (self.id & 15))
                } else {
                    self.ldr
                }
            }
            0xe0 => self.dfr,
            0xf0 => self.svr,
            0x100..=0x170 => self.isr[((offset - 0x100) >> 4) as usize],
            0x180..=0x1f0 => self.tmr[((offset - 0x180) >> 4) as usize],
            0x200..=0x270 => self.irr[((offset - 0x200) >> 4) as usize],
            0x280 => self.esr,
            0x300 => self.icr as u32,
            0x310 => (self.icr >> 32) as u32,
            0x320..=0x370 => self.lvt[((offset - 0x320) >> 4) as usize],
            0x380 => self.initial,
            0x390 => self.current_count(now),
            0x3e0 => self.divide,
            _ => 0,
        }
    }

    /// Writes the register at xAPIC `offset`. Returns an IPI to route (an ICR write) and
    /// the vector of a level-triggered EOI for the IOAPIC.
    pub fn write(&mut self, offset: u32, value: u32, now: u64) -> (Option<Ipi>, Option<u8>) {
        match offset {
            0x20 if !self.x2apic() => self.id = value >> 24,
            0x80 => self.tpr = value & 0xff,
            0xb0 => return (None, self.eoi()),
            0xd0 if !self.x2apic() => self.ldr = value & 0xff00_0000,
            0xe0 if !self.x2apic() => self.dfr = value | 0x0fff_ffff,
            0xf0 => {
                self.svr = value & 0x1ff;
                if !self.sw_enabled() {
                    for l in self.lvt.iter_mut() {
                        *l |= LVT_MASKED;
                    }
                }
            }
            0x280 => {
                self.esr = self.pending_esr;
                self.pending_esr = 0;
            }
            0x300 => {
                self.icr = (self.icr & !0xffff_ffff) | u64::from(value & !(1 << 12));
                return (self.send(), None);
            }
            0x310 if !self.x2apic() => {
                self.icr = (self.icr & 0xffff_ffff) | (u64::from(value) << 32);
            }
            0x320..=0x370 => {
                let i = ((offset - 0x320) >> 4) as usize;
                let mut v = value & lvt_writable(i);
                if !self.sw_enabled() {
                    v |= LVT_MASKED;
                }
                let old_mode = self.timer_mode();
                self.lvt[i] = v;
                if i == Lvt::Timer as usize && self.timer_mode() != old_mode {
                    // Switching modes disarms both the count and the deadline.
                    self.tsc_deadline = 0;
                    self.initial = 0;
                    self.timer_next = None;
                }
            }
            // The initial count means nothing in TSC-deadline mode.
            0x380 if self.timer_mode() != 2 => {
                self.initial = value;
                self.arm(now);
            }
            0x3e0 => {
                // What the count does across a divisor change is undefined: it restarts
                // with the new divisor.
                self.divide = value & 0xb;
                if self.timer_next.is_some() {
                    self.arm(now);
                }
            }
            0x3f0 if self.x2apic() => {
                // SELF IPI: a fixed, edge-triggered interrupt to this APIC.
                self.accept((value & 0xff) as u8, false);
            }
            _ => {}
        }
        (None, None)
    }

    /// The IPI an ICR-low write sends.
    fn send(&mut self) -> Option<Ipi> {
        let lo = self.icr as u32;
        let vector = (lo & 0xff) as u8;
        let mode = ((lo >> 8) & 7) as u8;
        let ipi = Ipi {
            vector,
            mode,
            logical: lo & (1 << 11) != 0,
            deassert: mode == MODE_INIT && lo & (1 << 14) == 0 && lo & (1 << 15) != 0,
            shorthand: ((lo >> 18) & 3) as u8,
            dest: if self.x2apic() {
                (self.icr >> 32) as u32
            } else {
                (self.icr >> 56) as u32
            },
            source: self.id,
        };
        if matches!(mode, MODE_FIXED | MODE_LOWEST) && vector < 16 {
            self.pending_esr |= ESR_SEND_ILLEGAL_VECTOR;
            self.lvt_error();
            return None;
        }
        Some(ipi)
    }

    /// Whether this APIC is a destination of `ipi` (shorthands aside).
    pub fn is_destination(&self, logical: bool, dest: u32) -> bool {
        if self.x2apic() {
            if !logical {
                return dest == 0xffff_ffff || dest == self.id;
            }
            let ldr = self.read(0xd0, 0);
            return dest == 0xffff_ffff
                || ((dest >> 16) == (ldr >> 16) && dest & ldr & 0xffff != 0);
        }
        if !logical {
            return dest & 0xff == 0xff || dest & 0xff == self.id & 0xff;
        }
        let mda = dest & 0xff;
        if mda == 0xff {
            return true;
        }
        let logical_id = self.ldr >> 24;
        if self.dfr >> 28 == 0xf {
            // Flat model: one bit per APIC.
            mda & logical_id != 0
        } else {
            // Cluster model: cluster in the high nibble, members in the low.
            (mda >> 4) == (logical_id >> 4) && mda & logical_id & 0xf != 0
        }
    }

    /// RDMSR of an x2APIC register.
    pub fn read_msr(&self, msr: u32, now: u64) -> Result<u64, AccessError> {
        if !self.x2apic() || !(MSR_X2APIC_FIRST..=MSR_X2APIC_LAST).contains(&msr) {
            return Err(AccessError::Invalid);
        }
        let offset = (msr - MSR_X2APIC_FIRST) << 4;
        match offset {
            0x300 => Ok(self.icr),
            // Write-only (EOI, SELF IPI) and absent (DFR, ICR high, reserved) registers.
            0xb0 | 0x3f0 | 0xe0 | 0x310 => Err(AccessError::Invalid),
            0x20
            | 0x30
            | 0x80
            | 0xa0
            | 0xd0
            | 0xf0
            | 0x100..=0x270
            | 0x280
            | 0x320..=0x390
            | 0x3e0 => Ok(u64::from(self.read(offset, now))),
            _ => Err(AccessError::Invalid),
        }
    }

    /// WRMSR of an x2APIC register.
    pub fn write_msr(
        &mut self,
        msr: u32,
        value: u64,
        now: u64,
    ) -> Result<(Option<Ipi>, Option<u8>), AccessError> {
        if !self.x2apic() || !(MSR_X2APIC_FIRST..=MSR_X2APIC_LAST).contains(&msr) {
            return Err(AccessError::Invalid);
        }
        let offset = (msr - MSR_X2APIC_FIRST) << 4;
        match offset {
            0x300 => {
                self.icr = value & !(1 << 12);
                Ok((self.send(), None))
            }
            0x80 | 0xb0 | 0xf0 | 0x280 | 0x320..=0x370 | 0x380 | 0x3e0 | 0x3f0 => {
                if value >> 32 != 0 {
                    return Err(AccessError::Invalid);
                }
                Ok(self.write(offset, value as u32, now))
            }
            _ => Err(AccessError::Invalid),
        }
    }
}

/// The writable bits of LVT entry `i` (vector, delivery mode, polarity, trigger, mask, and
/// the timer's mode).
fn lvt_writable(i: usize) -> u32 {
    match i {
        0 => 0xff | LVT_MASKED | (3 << LVT_TIMER_MODE_SHIFT),
        3 | 4 => 0xff | (7 << 8) | (1 << 13) | (1 << 15) | LVT_MASKED,
        _ => 0xff | (7 << 8) | LVT_MASKED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> LocalApic {
        let mut a = LocalApic::new(0, true);
        a.write(0xf0, 0x1ff, 0);
        a
    }

    #[test]
    fn reset_state_is_what_firmware_leaves() {
        let a = LocalApic::new(0, true);
        assert_eq!(a.base_msr(), DEFAULT_BASE | BASE_ENABLE | BASE_BSP);
        assert_eq!(a.read(0x30, 0), 0x50014);
        assert_eq!(a.read(0x350, 0), 0x700, "LINT0 ExtINT for the 8259");
        assert!(a.accepts_pic());
        assert_eq!(a.read(0x320, 0), LVT_MASKED);
        let ap = LocalApic::new(1, false);
        assert_eq!(ap.read(0x20, 0), 1 << 24);
        assert_eq!(ap.read(0x350, 0), LVT_MASKED);
        assert!(!ap.accepts_pic());
    }

    #[test]
    fn priority_rules_tpr_ppr_and_eoi_order() {
        let mut a = enabled();
        a.accept(0x31, false);
        a.accept(0x52, false);
        assert_eq!(a.pending(), Some(0x52));
        // TPR at class 5 holds back 0x52 (class 5) and below.
        a.write(0x80, 0x50, 0);
        assert_eq!(a.pending(), None);
        assert_eq!(
            a.acknowledge(),
            0xff,
            "spurious when nothing is deliverable"
        );
        a.write(0x80, 0, 0);
        assert_eq!(a.acknowledge(), 0x52);
        assert_eq!(a.read(0xa0, 0), 0x50, "PPR follows the in-service class");
        // 0x31 is a lower class: it waits for the EOI.
        assert_eq!(a.pending(), None);
        a.accept(0x61, false);
        assert_eq!(a.acknowledge(), 0x61, "a higher class nests");
        assert_eq!(a.write(0xb0, 0, 0), (None, None));
        assert_eq!(a.write(0xb0, 0, 0), (None, None));
        assert_eq!(a.acknowledge(), 0x31);
        assert_eq!(a.read(0x100 + 0x10, 0), 1 << 17, "ISR bit of 0x31");
    }

    #[test]
    fn level_triggered_eoi_is_reported_for_the_ioapic() {
        let mut a = enabled();
        a.accept(0x40, true);
        assert_eq!(a.read(0x180 + 0x20, 0), 1, "TMR bit of 0x40");
        assert_eq!(a.acknowledge(), 0x40);
        assert_eq!(a.write(0xb0, 0, 0), (None, Some(0x40)));
    }

    #[test]
    fn illegal_vectors_set_the_error_status() {
        let mut a = enabled();
        a.write(0x370, 0xfe, 0);
        a.accept(3, false);
        assert_eq!(a.read(0x280, 0), 0, "ESR latches on write");
        a.write(0x280, 0, 0);
        assert_eq!(a.read(0x280, 0), ESR_RECEIVE_ILLEGAL_VECTOR);
        assert_eq!(a.pending(), Some(0xfe), "the error LVT fired");
        // Sending a fixed IPI with vector 2 is refused the same way.
        assert_eq!(a.write(0x300, 0x4002, 0), (None, None));
    }

    #[test]
    fn one_shot_and_periodic_timer_count_a_divided_1ghz_clock() {
        let mut a = enabled();
        a.write(0x3e0, 0x3, 0); // divide by 16
        a.write(0x320, 0x30, 0); // one-shot, vector 0x30
        a.write(0x380, 1000, 100);
        assert_eq!(a.read(0x390, 100 + 16 * 250), 750);
        assert_eq!(a.poll(100 + 15_999, 0), Some(16_100));
        assert_eq!(a.pending(), None);
        assert_eq!(a.poll(16_100, 0), None);
        assert_eq!(a.pending(), Some(0x30));
        assert_eq!(a.read(0x390, 20_000), 0);
        a.acknowledge();
        a.write(0xb0, 0, 0);
        // Periodic, divide by 1: missed periods coalesce into one interrupt.
        a.write(0x3e0, 0xb, 0);
        a.write(0x320, 0x20031, 0);
        a.write(0x380, 100, 0);
        assert_eq!(a.read(0x390, 250), 50);
        assert_eq!(a.poll(1_050, 0), Some(1_100));
        assert_eq!(a.pending(), Some(0x31));
        assert_eq!(
            a.poll(1_060, 0),
            Some(1_100),
            "no second interrupt for the same period"
        );
    }

    #[test]
    fn tsc_deadline_in_the_past_fires_once_and_far_future_waits() {
        let mut a = enabled();
        a.write(0x320, 0x40041, 0); // TSC-deadline mode, vector 0x41
        a.set_tsc_deadline(5);
        assert_eq!(a.poll(1_000, 10_000), None, "a past deadline fires at once");
        assert_eq!(a.pending(), Some(0x41));
        assert_eq!(a.tsc_deadline(), 0, "and disarms");
        a.acknowledge();
        a.write(0xb0, 0, 0);
        a.set_tsc_deadline(u64::MAX);
        assert_eq!(a.poll(1_000, 10_000), Some(1_000 + (u64::MAX - 10_000)));
        assert_eq!(a.pending(), None);
        // Writing the initial count does nothing in this mode; leaving it disarms.
        a.write(0x380, 5, 0);
        assert_eq!(a.read(0x380, 0), 0);
        a.write(0x320, 0x41, 0);
        assert_eq!(a.tsc_deadline(), 0);
    }

    #[test]
    fn software_disable_masks_every_lvt_entry() {
        let mut a = enabled();
        a.write(0x320, 0x30, 0);
        a.write(0xf0, 0xff, 0);
        assert_eq!(a.read(0x320, 0) & LVT_MASKED, LVT_MASKED);
        a.write(0x320, 0x30, 0);
        assert_eq!(
            a.read(0x320, 0) & LVT_MASKED,
            LVT_MASKED,
            "stays masked while disabled"
        );
    }

    #[test]
    fn icr_writes_become_ipis() {
        let mut a = enabled();
        a.write(0x310, 3 << 24, 0);
        let (ipi, _) = a.write(0x300, 0x0000_4500, 0); // INIT, assert, physical
        let ipi = ipi.unwrap();
        assert_eq!(
            (ipi.mode, ipi.dest, ipi.logical, ipi.deassert),
            (MODE_INIT, 3, false, false)
        );
        let (ipi, _) = a.write(0x300, 0x000c_4698, 0); // SIPI 0x98, all excluding self
        let ipi = ipi.unwrap();
        assert_eq!(
            (ipi.mode, ipi.vector, ipi.shorthand),
            (MODE_STARTUP, 0x98, 3)
        );
        assert_eq!(a.read(0x300, 0) & (1 << 12), 0, "delivery status idle");
    }

    #[test]
    fn logical_destinations_flat_and_cluster() {
        let mut a = enabled();
        a.write(0xd0, 0x0400_0000, 0);
        assert!(a.is_destination(true, 0x04));
        assert!(a.is_destination(true, 0x06));
        assert!(!a.is_destination(true, 0x02));
        assert!(a.is_destination(true, 0xff));
        a.write(0xe0, 0x0fff_ffff, 0); // cluster model
        a.write(0xd0, 0x2100_0000, 0);
        assert!(a.is_destination(true, 0x21));
        assert!(!a.is_destination(true, 0x11));
        assert!(a.is_destination(false, 0));
        assert!(!a.is_destination(false, 1));
    }

    #[test]
    fn x2apic_mode_by_msr() {
        let mut a = enabled();
        assert_eq!(
            a.read_msr(0x802, 0),
            Err(AccessError::Invalid),
            "not in x2APIC mode"
        );
        assert_eq!(
            a.set_base_msr(DEFAULT_BASE | BASE_X2APIC),
            Err(AccessError::Invalid)
        );
        a.set_base_msr(DEFAULT_BASE | BASE_ENABLE | BASE_X2APIC)
            .unwrap();
        assert_eq!(a.mmio_base(), None);
        assert_eq!(a.read_msr(0x802, 0), Ok(0), "the full 32-bit ID");
        assert_eq!(a.read_msr(0x80d, 0), Ok(1), "LDR: cluster 0, bit 0");
        assert_eq!(
            a.read_msr(0x80b, 0),
            Err(AccessError::Invalid),
            "EOI is write-only"
        );
        a.write_msr(0x83f, 0x55, 0).unwrap();
        assert_eq!(a.pending(), Some(0x55), "SELF IPI");
        let (ipi, _) = a.write_msr(0x830, (7u64 << 32) | 0x4031, 0).unwrap();
        assert_eq!(ipi.unwrap().dest, 7);
        assert_eq!(a.write_msr(0x808, 1 << 32, 0), Err(AccessError::Invalid));
        // Back to xAPIC only through disabled.
        assert_eq!(
            a.set_base_msr(DEFAULT_BASE | BASE_ENABLE),
            Err(AccessError::Invalid)
        );
        a.set_base_msr(DEFAULT_BASE).unwrap();
        assert!(!a.hw_enabled());
        assert!(a.accepts_pic(), "a disabled APIC passes the 8259 through");
        a.set_base_msr(DEFAULT_BASE | BASE_ENABLE).unwrap();
        assert_eq!(a.mmio_base(), Some(DEFAULT_BASE));
        assert_eq!(a.base_msr() & BASE_BSP, BASE_BSP, "the BSP flag survives");
    }
}
