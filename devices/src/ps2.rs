//! The PS/2 keyboard and mouse behind the i8042: the command sets a guest's driver uses to
//! find, identify and set them up (reset, identify, LEDs, typematic rate, sample rate,
//! resolution, status), answered at once the way QEMU's ps2.c answers them.
//!
//! Nothing types or moves yet: there is no input source, so the devices only ever answer
//! commands. A driver that finds no answer waits out a timeout for each command (Linux's
//! i8042 driver: half a second per controller command, spent in a busy loop), which is why
//! both are here rather than an empty port.

use std::collections::VecDeque;

/// Acknowledge: the byte was taken.
pub const ACK: u8 = 0xfa;
/// Resend: the byte was not understood (a real device's answer to an unknown command).
pub const RESEND: u8 = 0xfe;
/// The basic assurance test passed (after reset).
const BAT_OK: u8 = 0xaa;
/// A device holds at most this many bytes for the host to read; a guest that keeps
/// writing commands without reading the answers loses the oldest bytes, never host memory.
const QUEUE: usize = 16;

/// The bytes a device has for the controller, bounded.
#[derive(Default)]
struct Queue(VecDeque<u8>);

impl Queue {
    fn push(&mut self, b: u8) {
        if self.0.len() == QUEUE {
            self.0.pop_front();
        }
        self.0.push_back(b);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A PS/2 keyboard (MF2: identifies as AB 83, or AB 41 through the controller's
/// translation).
pub struct Keyboard {
    out: Queue,
    /// The command whose parameter byte comes next.
    awaiting: Option<u8>,
    scancode_set: u8,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard {
            out: Queue::default(),
            awaiting: None,
            scancode_set: 2,
        }
    }
}

impl Keyboard {
    /// A byte from the host (the controller's data port). `translated`: the controller
    /// translates set 2 to set 1, which changes what identify and the set query report.
    pub fn write(&mut self, v: u8, translated: bool) {
        if let Some(cmd) = self.awaiting.take() {
            match cmd {
                // Scancode set: 0 asks which; 1-3 selects.
                0xf0 => {
                    self.out.push(ACK);
                    match v {
                        0 => self.out.push(if translated {
                            // What set 1/2/3 look like after translation.
                            [0x43, 0x41, 0x3f][usize::from(self.scancode_set - 1)]
                        } else {
                            self.scancode_set
                        }),
                        1..=3 => self.scancode_set = v,
                        _ => {}
                    }
                }
                // LEDs, typematic rate: taken.
                _ => self.out.push(ACK),
            }
            return;
        }
        match v {
            0xff => {
                *self = Keyboard::default();
                self.out.push(ACK);
                self.out.push(BAT_OK);
            }
            0xf2 => {
                self.out.push(ACK);
                self.out.push(0xab);
                self.out.push(if translated { 0x41 } else { 0x83 });
            }
            0xee => self.out.push(0xee),
            0xed | 0xf0 | 0xf3 => {
                self.awaiting = Some(v);
                self.out.push(ACK);
            }
            // Enable, disable, defaults, the set-3 key modes and resend.
            0xf4..=0xfe => self.out.push(ACK),
            _ => self.out.push(RESEND),
        }
    }

    /// The next byte for the controller.
    pub fn pop(&mut self) -> Option<u8> {
        self.out.0.pop_front()
    }
}

/// A PS/2 mouse (a plain three-byte one: identifies as 00).
#[derive(Default)]
pub struct Mouse {
    out: Queue,
    awaiting: Option<u8>,
    rate: u8,
    resolution: u8,
    scaling_2_1: bool,
    enabled: bool,
    remote: bool,
    /// Wrap (echo) mode: every byte but reset and reset-wrap comes back.
    wrap: bool,
}

impl Mouse {
    pub fn new() -> Self {
        Mouse {
            rate: 100,
            resolution: 2,
            ..Mouse::default()
        }
    }

    /// A byte from the host (the controller's "write to auxiliary device" command).
    pub fn write(&mut self, v: u8) {
        if let Some(cmd) = self.awaiting.take() {
            match cmd {
                0xf3 => self.rate = v,
                _ => self.resolution = v & 3,
            }
            self.out.push(ACK);
            return;
        }
        if self.wrap && v != 0xec && v != 0xff {
            self.out.push(v);
            return;
        }
        match v {
            0xff => {
                self.out.clear();
                *self = Mouse::new();
                self.out.push(ACK);
                self.out.push(BAT_OK);
                self.out.push(0x00);
            }
            0xf2 => {
                self.out.push(ACK);
                self.out.push(0x00);
            }
            0xe8 | 0xf3 => {
                self.awaiting = Some(v);
                self.out.push(ACK);
            }
            0xe9 => {
                let status = u8::from(self.remote) << 6
                    | u8::from(self.enabled) << 5
                    | u8::from(self.scaling_2_1) << 4;
                self.out.push(ACK);
                self.out.push(status);
                self.out.push(self.resolution);
                self.out.push(self.rate);
            }
            // Read data: one packet with nothing moved or pressed (bit 3 is always set).
            0xeb => {
                self.out.push(ACK);
                for b in [0x08, 0, 0] {
                    self.out.push(b);
                }
            }
            _ => {
                match v {
                    0xe6 => self.scaling_2_1 = false,
                    0xe7 => self.scaling_2_1 = true,
                    0xea => self.remote = false,
                    0xf0 => self.remote = true,
                    0xee => self.wrap = true,
                    0xec => self.wrap = false,
                    0xf4 => self.enabled = true,
                    0xf5 => self.enabled = false,
                    0xf6 => {
                        let keep = std::mem::take(&mut self.out);
                        *self = Mouse::new();
                        self.out = keep;
                    }
                    _ => {
                        self.out.push(RESEND);
                        return;
                    }
                }
                self.out.push(ACK);
            }
        }
    }

    /// The next byte for the controller.
    pub fn pop(&mut self) -> Option<u8> {
        self.out.0.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: impl FnMut() -> Option<u8>) -> Vec<u8> {
        std::iter::from_fn(f).collect()
    }

    #[test]
    fn keyboard_resets_identifies_and_takes_parameters() {
        let mut k = Keyboard::default();
        k.write(0xff, true);
        assert_eq!(drain(|| k.pop()), [ACK, BAT_OK]);
        k.write(0xf2, true);
        assert_eq!(drain(|| k.pop()), [ACK, 0xab, 0x41]);
        k.write(0xf2, false);
        assert_eq!(drain(|| k.pop()), [ACK, 0xab, 0x83]);
        // LEDs: the parameter byte is not a command (0xff would reset).
        k.write(0xed, true);
        k.write(0xff, true);
        assert_eq!(drain(|| k.pop()), [ACK, ACK]);
        k.write(0xf0, false);
        k.write(3, false);
        k.write(0xf0, false);
        k.write(0, false);
        assert_eq!(drain(|| k.pop()), [ACK, ACK, ACK, ACK, 3]);
        k.write(0x12, false);
        assert_eq!(drain(|| k.pop()), [RESEND]);
    }

    #[test]
    fn mouse_answers_status_and_echoes_in_wrap_mode() {
        let mut m = Mouse::new();
        m.write(0xff);
        assert_eq!(drain(|| m.pop()), [ACK, BAT_OK, 0]);
        m.write(0xf3);
        m.write(200);
        m.write(0xe8);
        m.write(3);
        m.write(0xe7);
        m.write(0xf4);
        m.write(0xe9);
        assert_eq!(
            drain(|| m.pop()),
            [ACK, ACK, ACK, ACK, ACK, ACK, ACK, 0x30, 3, 200]
        );
        m.write(0xee);
        m.write(0x42);
        m.write(0xec);
        m.write(0xf2);
        assert_eq!(drain(|| m.pop()), [ACK, 0x42, ACK, ACK, 0]);
    }

    #[test]
    fn unread_answers_stay_bounded() {
        let mut m = Mouse::new();
        for _ in 0..1000 {
            m.write(0xe9);
        }
        assert_eq!(drain(|| m.pop()).len(), QUEUE);
    }
}
