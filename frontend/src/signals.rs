//! SIGTERM, SIGINT and SIGHUP stop the VM cleanly, as QEMU does.
//!
//! The handler only records the signal; a small thread polls for it and stops the VM from
//! ordinary code. A second signal while the first is pending means the VM did not stop: the
//! handler then restores the terminal and leaves at once.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::terminal;

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The signal received and not yet acted on; 0 for none.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if PENDING.swap(sig, Ordering::SeqCst) != 0 {
        terminal::restore();
        // SAFETY: _exit is async-signal-safe and ends the process without running anything.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers.
pub fn install() -> io::Result<()> {
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point (no flags, empty mask) for
        // filling in; the handler is an `extern "C" fn(c_int)` that only touches atomics,
        // tcsetattr and _exit, all async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal received and not yet acted on, for code that polls instead of [`watch`]ing;
/// 0 for none.
pub fn pending() -> i32 {
    PENDING.load(Ordering::SeqCst)
}

/// Calls `stop` with the signal number on a thread of its own when a signal arrives.
pub fn watch(stop: impl Fn(i32) + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let sig = PENDING.load(Ordering::SeqCst);
            if sig != 0 {
                stop(sig);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        })
        .map(drop)
}
