//! QEMU's terminal escapes on the serial console: Ctrl-A followed by a command key.
//!
//! A pure state machine fed one input byte at a time; the input thread acts on what it says.

/// The escape character, Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// What `C-a h` prints (raw mode keeps output processing on, so `\n` is a full new line).
pub const HELP: &str = "\n\
C-a h    print this help\n\
C-a x    exit emulator\n\
C-a C-a  sends C-a\n";

/// What to do with one input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand this byte to the guest.
    Send(u8),
    /// Stop the VM (`C-a x`).
    Quit,
    /// Print [`HELP`] (`C-a h`).
    Help,
    /// Nothing (the escape character itself, or an unknown command, which QEMU drops too).
    Nothing,
}

#[derive(Debug, Default)]
pub struct Escapes {
    after_escape: bool,
}

impl Escapes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, byte: u8) -> Action {
        if !std::mem::take(&mut self.after_escape) {
            if byte == ESCAPE {
                self.after_escape = true;
                return Action::Nothing;
            }
            return Action::Send(byte);
        }
        match byte {
            ESCAPE => Action::Send(ESCAPE),
            b'x' | b'X' => Action::Quit,
            b'h' | b'H' | b'?' => Action::Help,
            _ => Action::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(bytes: &[u8]) -> Vec<Action> {
        let mut e = Escapes::new();
        bytes.iter().map(|&b| e.feed(b)).collect()
    }

    #[test]
    fn plain_bytes_pass_through() {
        assert_eq!(
            feed_all(b"ls\r\x03"),
            [b'l', b's', b'\r', 3].map(Action::Send)
        );
    }

    #[test]
    fn ctrl_a_x_quits_and_ctrl_a_h_helps() {
        assert_eq!(
            feed_all(b"a\x01x"),
            [Action::Send(b'a'), Action::Nothing, Action::Quit]
        );
        assert_eq!(feed_all(b"\x01h"), [Action::Nothing, Action::Help]);
        assert_eq!(feed_all(b"\x01?"), [Action::Nothing, Action::Help]);
    }

    #[test]
    fn ctrl_a_ctrl_a_sends_one_ctrl_a() {
        assert_eq!(
            feed_all(b"\x01\x01\x01\x01x"),
            [
                Action::Nothing,
                Action::Send(ESCAPE),
                Action::Nothing,
                Action::Send(ESCAPE),
                Action::Send(b'x')
            ]
        );
    }

    #[test]
    fn unknown_commands_are_dropped_and_reset_the_state() {
        assert_eq!(
            feed_all(b"\x01zx"),
            [Action::Nothing, Action::Nothing, Action::Send(b'x')]
        );
    }

    #[test]
    fn help_lists_the_commands() {
        for cmd in ["C-a h", "C-a x", "C-a C-a"] {
            assert!(HELP.contains(cmd));
        }
    }
}
