//! The i8042 keyboard controller with a PS/2 keyboard and mouse behind it ([`crate::ps2`]),
//! as QEMU's pckbd.c models it: the command byte (0x20/0x60), the self-tests, enabling and
//! disabling either port, the loopback writes (0xD2/0xD3), writes to the mouse (0xD4), the
//! output port (0xD0/0xD1: bit 0 low resets, bit 1 is the A20 gate), 0xDD/0xDF for A20 and
//! the reset pulse (0xFE). Bytes reach the host through the one-byte output buffer, raising
//! IRQ 1 (keyboard and controller) or IRQ 12 (mouse) while the command byte enables them.
//!
//! vm-superio's I8042Device only knows the reset command; a driver that probes the
//! controller (Linux does at every boot) then waits out a timeout per command, so the
//! controller is modelled here in full.
//!
//! It sits at two single ports, 0x60 and 0x64, because port 0x61 between them belongs to the
//! system-control port B.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::irq::IrqLine;
use crate::ps2::{Keyboard, Mouse};
use crate::system::{SystemControl, SystemEvent};

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;
/// The ISA interrupts of the keyboard and the mouse.
pub const KBD_IRQ: u32 = 1;
pub const AUX_IRQ: u32 = 12;

const CMD_READ_CTR: u8 = 0x20;
const CMD_WRITE_CTR: u8 = 0x60;
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_READ_INPUT_PORT: u8 = 0xc0;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_KBD_LOOP: u8 = 0xd2;
const CMD_AUX_LOOP: u8 = 0xd3;
const CMD_AUX_SEND: u8 = 0xd4;
const CMD_A20_OFF: u8 = 0xdd;
const CMD_A20_ON: u8 = 0xdf;
const CMD_READ_TEST_INPUTS: u8 = 0xe0;

/// Status: output buffer full.
const STATUS_OBF: u8 = 0x01;
/// Status: the self-test passed (the system flag).
const STATUS_SYS: u8 = 0x04;
/// Status: the last write was to the command port.
const STATUS_CMD: u8 = 0x08;
/// Status: the keyboard is not inhibited by the key lock.
const STATUS_UNLOCKED: u8 = 0x10;
/// Status: the output buffer holds a byte from the mouse.
const STATUS_AUX: u8 = 0x20;

/// Command byte: interrupt for keyboard bytes, for mouse bytes.
const CTR_KBD_INT: u8 = 0x01;
const CTR_AUX_INT: u8 = 0x02;
const CTR_SYS: u8 = 0x04;
/// Command byte: keyboard clock off, mouse clock off.
const CTR_KBD_DISABLE: u8 = 0x10;
const CTR_AUX_DISABLE: u8 = 0x20;
/// Command byte: translate the keyboard's set 2 to set 1.
const CTR_XLATE: u8 = 0x40;
/// What a PC BIOS leaves (SeaBIOS): keyboard interrupt on, mouse off, translation on.
const CTR_AT_BOOT: u8 = CTR_KBD_INT | CTR_SYS | CTR_AUX_DISABLE | CTR_XLATE;
/// The controller's own answers waiting for the output buffer, bounded like the devices'.
const CONTROLLER_QUEUE: usize = 16;

/// Where a byte in the output buffer came from: the mouse sets the status's AUX bit and
/// raises IRQ 12, everything else is the keyboard side.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    Keyboard,
    Aux,
}

pub struct I8042 {
    control: Arc<dyn SystemControl>,
    a20: Option<crate::a20::A20Gate>,
    kbd_irq: Arc<dyn IrqLine>,
    aux_irq: Arc<dyn IrqLine>,
    /// The levels last driven on the keyboard's and the mouse's line.
    levels: (bool, bool),
    ctr: u8,
    status: u8,
    /// The last command awaits its data byte on port 0x60.
    pending_command: Option<u8>,
    /// The output buffer, and the byte a read of an empty buffer returns again.
    output: Option<(u8, Source)>,
    last: u8,
    /// The controller's answers, ahead of the devices' bytes.
    answers: VecDeque<(u8, Source)>,
    keyboard: Keyboard,
    mouse: Mouse,
}

impl I8042 {
    pub fn new(
        control: Arc<dyn SystemControl>,
        kbd_irq: Arc<dyn IrqLine>,
        aux_irq: Arc<dyn IrqLine>,
    ) -> Self {
        I8042 {
            control,
            a20: None,
            kbd_irq,
            aux_irq,
            levels: (false, false),
            ctr: CTR_AT_BOOT,
            status: STATUS_SYS | STATUS_UNLOCKED,
            pending_command: None,
            output: None,
            last: 0,
            answers: VecDeque::new(),
            keyboard: Keyboard::default(),
            mouse: Mouse::new(),
        }
    }

    /// Wires the output port's A20 line to `gate`.
    pub fn with_a20(mut self, gate: crate::a20::A20Gate) -> Self {
        self.a20 = Some(gate);
        self
    }

    fn output_port(&self) -> u8 {
        // Bit 0: not in reset; bit 1: A20; bits 4/5: output buffer full (keyboard/mouse).
        let full = match self.output {
            Some((_, Source::Keyboard)) => 0x10,
            Some((_, Source::Aux)) => 0x20,
            None => 0,
        };
        1 | (u8::from(self.a20.as_ref().is_none_or(|g| g.enabled())) << 1) | full
    }

    fn answer(&mut self, b: u8, source: Source) {
        if self.answers.len() == CONTROLLER_QUEUE {
            self.answers.pop_front();
        }
        self.answers.push_back((b, source));
        self.refill();
    }

    /// Moves the next byte into an empty output buffer (the controller's answers first, then
    /// the keyboard's and the mouse's while their clocks run) and sets the interrupt lines.
    fn refill(&mut self) {
        if self.output.is_none() {
            self.output = self.answers.pop_front().or_else(|| {
                let kbd = (self.ctr & CTR_KBD_DISABLE == 0)
                    .then(|| self.keyboard.pop())
                    .flatten()
                    .map(|b| (b, Source::Keyboard));
                kbd.or_else(|| {
                    (self.ctr & CTR_AUX_DISABLE == 0)
                        .then(|| self.mouse.pop())
                        .flatten()
                        .map(|b| (b, Source::Aux))
                })
            });
        }
        self.update_irqs();
    }

    /// Drives both lines from the output buffer, each only when its level changes (under
    /// KVM every change is an ioctl).
    fn update_irqs(&mut self) {
        let source = self.output.map(|(_, s)| s);
        let kbd = source == Some(Source::Keyboard) && self.ctr & CTR_KBD_INT != 0;
        let aux = source == Some(Source::Aux) && self.ctr & CTR_AUX_INT != 0;
        if kbd != self.levels.0 {
            self.kbd_irq.set_level(kbd);
        }
        if aux != self.levels.1 {
            self.aux_irq.set_level(aux);
        }
        self.levels = (kbd, aux);
    }

    fn read_data(&mut self) -> u8 {
        if let Some((b, _)) = self.output.take() {
            self.last = b;
            // Lower the line before the next byte raises it: each byte is its own edge.
            self.update_irqs();
            self.refill();
        }
        self.last
    }

    fn read_status(&self) -> u8 {
        let full = match self.output {
            Some((_, Source::Keyboard)) => STATUS_OBF,
            Some((_, Source::Aux)) => STATUS_OBF | STATUS_AUX,
            None => 0,
        };
        self.status | full
    }

    fn write_data(&mut self, v: u8) {
        self.status &= !STATUS_CMD;
        match self.pending_command.take() {
            Some(CMD_WRITE_CTR) => {
                self.ctr = v;
                self.status = self.status & !STATUS_SYS | v & CTR_SYS;
                self.refill();
            }
            Some(CMD_WRITE_OUTPUT_PORT) => {
                if let Some(g) = &self.a20 {
                    g.set(v & 2 != 0);
                }
                if v & 1 == 0 {
                    log::info!("i8042: guest pulled the reset line through the output port");
                    self.control.request(SystemEvent::Reset);
                }
            }
            Some(CMD_KBD_LOOP) => self.answer(v, Source::Keyboard),
            Some(CMD_AUX_LOOP) => self.answer(v, Source::Aux),
            Some(CMD_AUX_SEND) => {
                self.mouse.write(v);
                self.refill();
            }
            _ => {
                self.keyboard.write(v, self.ctr & CTR_XLATE != 0);
                // Sending to the keyboard enables its port again (as QEMU's pckbd does).
                self.ctr &= !CTR_KBD_DISABLE;
                self.refill();
            }
        }
    }

    fn write_command(&mut self, v: u8) {
        self.status |= STATUS_CMD;
        self.pending_command = None;
        match v {
            CMD_READ_CTR => self.answer(self.ctr, Source::Keyboard),
            CMD_WRITE_CTR | CMD_WRITE_OUTPUT_PORT | CMD_KBD_LOOP | CMD_AUX_LOOP | CMD_AUX_SEND => {
                self.pending_command = Some(v)
            }
            CMD_AUX_DISABLE => self.ctr |= CTR_AUX_DISABLE,
            CMD_AUX_ENABLE => {
                self.ctr &= !CTR_AUX_DISABLE;
                self.refill();
            }
            CMD_KBD_DISABLE => self.ctr |= CTR_KBD_DISABLE,
            CMD_KBD_ENABLE => {
                self.ctr &= !CTR_KBD_DISABLE;
                self.refill();
            }
            // Port tests: 0 = no clock or data line stuck.
            CMD_AUX_TEST | CMD_KBD_TEST => self.answer(0x00, Source::Keyboard),
            CMD_SELF_TEST => {
                self.status |= STATUS_SYS;
                self.answer(0x55, Source::Keyboard);
            }
            // Input port: bit 7 = keyboard not inhibited (the key lock is open).
            CMD_READ_INPUT_PORT => self.answer(0x80, Source::Keyboard),
            CMD_READ_OUTPUT_PORT => self.answer(self.output_port(), Source::Keyboard),
            CMD_READ_TEST_INPUTS => self.answer(0x00, Source::Keyboard),
            CMD_A20_OFF | CMD_A20_ON => {
                if let Some(g) = &self.a20 {
                    g.set(v == CMD_A20_ON);
                }
            }
            // Pulse output lines 0-3 low for 6 us (0xFE: the reset line, bit 0, alone).
            0xf0..=0xff => {
                if v & 1 == 0 {
                    log::info!("i8042: guest pulsed the reset line");
                    self.control.request(SystemEvent::Reset);
                }
            }
            _ => log::debug!("i8042: command {v:#04x} ignored"),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let value = if base + offset == u64::from(DATA_PORT) {
            self.read_data()
        } else {
            self.read_status()
        };
        data.fill(value);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        if base + offset == u64::from(DATA_PORT) {
            self.write_data(v);
        } else {
            self.write_command(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::irq::NoIrq;
    use crate::ps2::ACK;
    use crate::testing::Record;
    use parking_lot::Mutex;

    /// An interrupt line that remembers its level and counts rising edges.
    #[derive(Default)]
    struct Line(Mutex<(bool, u32)>);

    impl IrqLine for Line {
        fn set_level(&self, high: bool) {
            let mut l = self.0.lock();
            if high && !l.0 {
                l.1 += 1;
            }
            l.0 = high;
        }
    }

    fn port(k: &mut I8042, port: u64) -> u8 {
        let mut b = [0];
        k.read(port, 0, &mut b);
        b[0]
    }

    /// What Linux's i8042 driver does at boot: read and write the command byte, self-test,
    /// loop a byte through the mouse side with its interrupt on, and talk to the keyboard.
    #[test]
    fn linux_probe_sequence_is_answered_at_once() {
        let (kbd, aux) = (Arc::new(Line::default()), Arc::new(Line::default()));
        let mut k = I8042::new(Arc::new(Record::default()), kbd.clone(), aux.clone());
        // Interrupts off while the driver polls.
        k.write(0x64, 0, &[0x20]);
        assert_eq!(port(&mut k, 0x64) & (STATUS_OBF | STATUS_AUX), STATUS_OBF);
        let ctr = port(&mut k, 0x60);
        assert_eq!(ctr, CTR_AT_BOOT);
        assert_eq!(
            port(&mut k, 0x64) & STATUS_OBF,
            0,
            "the read emptied the buffer"
        );
        k.write(0x64, 0, &[0x60]);
        k.write(0x60, 0, &[ctr & !(CTR_KBD_INT | CTR_AUX_INT)]);
        k.write(0x64, 0, &[0xaa]);
        assert_eq!(port(&mut k, 0x60), 0x55);
        // The mouse-side loopback comes back marked as the mouse's, without an interrupt.
        k.write(0x64, 0, &[0xd3]);
        k.write(0x60, 0, &[0x5a]);
        assert_eq!(
            port(&mut k, 0x64) & (STATUS_OBF | STATUS_AUX),
            STATUS_OBF | STATUS_AUX
        );
        assert_eq!(port(&mut k, 0x60), 0x5a);
        assert_eq!(aux.0.lock().1, 0);
        // With the mouse's interrupt on, the loopback raises IRQ 12 until read.
        k.write(0x64, 0, &[0x60]);
        k.write(0x60, 0, &[CTR_XLATE | CTR_KBD_INT | CTR_AUX_INT]);
        k.write(0x64, 0, &[0xd3]);
        k.write(0x60, 0, &[0xa5]);
        assert_eq!(*aux.0.lock(), (true, 1));
        assert_eq!(port(&mut k, 0x60), 0xa5);
        assert_eq!(*aux.0.lock(), (false, 1));
        // The keyboard identifies itself (translated), one IRQ 1 edge per byte.
        k.write(0x60, 0, &[0xf2]);
        let mut got = Vec::new();
        while port(&mut k, 0x64) & STATUS_OBF != 0 {
            got.push(port(&mut k, 0x60));
        }
        assert_eq!(got, [ACK, 0xab, 0x41]);
        // Three edges, and one for the first command-byte read: the BIOS left IRQ 1 on.
        assert_eq!(*kbd.0.lock(), (false, 4));
        // A byte sent to the keyboard enables its port again.
        k.write(0x64, 0, &[0xad]);
        k.write(0x60, 0, &[0xee]);
        assert_eq!(port(&mut k, 0x60), 0xee);
        // The mouse answers through 0xD4; its bytes wait while its clock is off.
        k.write(0x64, 0, &[0xa7]);
        k.write(0x64, 0, &[0xd4]);
        k.write(0x60, 0, &[0xf2]);
        assert_eq!(port(&mut k, 0x64) & STATUS_OBF, 0);
        k.write(0x64, 0, &[0xa8]);
        assert_eq!(
            port(&mut k, 0x64) & (STATUS_OBF | STATUS_AUX),
            STATUS_OBF | STATUS_AUX
        );
        assert_eq!((port(&mut k, 0x60), port(&mut k, 0x60)), (ACK, 0x00));
        assert_eq!(aux.0.lock().1, 3);
    }

    #[test]
    fn output_port_switches_a20_and_reads_back() {
        let rec = Arc::new(Record::default());
        let gate = crate::a20::A20Gate::new(true);
        let mut k =
            I8042::new(rec.clone(), Arc::new(NoIrq), Arc::new(NoIrq)).with_a20(gate.clone());
        k.write(0x64, 0, &[0xd1]);
        k.write(0x60, 0, &[0x01]);
        assert!(!gate.enabled());
        k.write(0x64, 0, &[0xd0]);
        let mut b = [0];
        k.read(0x64, 0, &mut b);
        assert_eq!(b[0] & 1, 1, "output buffer full");
        k.read(0x60, 0, &mut b);
        assert_eq!(b[0], 0x01);
        k.write(0x64, 0, &[0xdf]);
        assert!(gate.enabled());
        assert!(rec.0.lock().is_empty());
        k.write(0x64, 0, &[0xd1]);
        k.write(0x60, 0, &[0x02]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }

    #[test]
    fn command_fe_resets_and_other_writes_do_not() {
        let rec = Arc::new(Record::default());
        let mut k = I8042::new(rec.clone(), Arc::new(NoIrq), Arc::new(NoIrq));
        k.write(0x64, 0, &[0xaa]);
        k.write(0x60, 0, &[0xfe]);
        assert!(rec.0.lock().is_empty());
        k.write(0x64, 0, &[0xfe]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }
}
