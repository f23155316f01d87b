//! The controlling terminal in raw mode while the guest owns it.
//!
//! Input reaches the guest byte by byte, unechoed, with Ctrl-C and friends as plain bytes;
//! output post-processing stays on, so a guest's bare `\n` still starts a new line, as QEMU's
//! stdio backend does. The saved settings are restored by the guard, by [`restore`] on a panic
//! and from the signal handler, so no exit path leaves a raw terminal behind.

use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

const STDIN: libc::c_int = libc::STDIN_FILENO;

/// The terminal settings from before raw mode.
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// Whether raw mode is in force (so restoring twice is harmless).
static RAW: AtomicBool = AtomicBool::new(false);

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor; any value is allowed.
    unsafe { libc::isatty(STDIN) == 1 }
}

/// Raw mode on stdin for as long as this lives.
pub struct RawMode(());

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let mut t = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a complete termios into the pointer on success, which is
        // checked before the value is read.
        let orig = unsafe {
            if libc::tcgetattr(STDIN, t.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            t.assume_init()
        };
        let orig = *SAVED.get_or_init(|| orig);
        let mut raw = orig;
        raw.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        raw.c_oflag |= libc::OPOST;
        raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
        raw.c_cflag &= !(libc::CSIZE | libc::PARENB);
        raw.c_cflag |= libc::CS8;
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios derived from the one the kernel returned.
        if unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        RAW.store(true, Ordering::SeqCst);
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was before raw mode, if raw mode is on. Async-signal-safe
/// (an atomic swap, an atomic load and tcsetattr), so the signal handler may call it.
pub fn restore() {
    if !RAW.swap(false, Ordering::SeqCst) {
        return;
    }
    if let Some(t) = SAVED.get() {
        // SAFETY: `t` is the termios tcgetattr returned for this descriptor.
        unsafe {
            libc::tcsetattr(STDIN, libc::TCSANOW, t);
        }
    }
}
