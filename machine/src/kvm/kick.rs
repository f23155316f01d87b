//! Getting a vCPU thread out of `KVM_RUN`: a flag checked before every entry, plus a signal
//! that makes a running `KVM_RUN` return `EINTR`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use parking_lot::Mutex;

fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op handler once per process, so the signal interrupts `KVM_RUN` instead of
/// killing the process.
pub(crate) fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick) {
            log::error!("cannot install the vCPU kick signal handler: {e}");
        }
    });
}

#[derive(Default)]
pub struct KvmKicker {
    pub(crate) kicked: AtomicBool,
    /// The thread currently owning the vCPU; cleared before that thread can exit.
    thread: Mutex<Option<libc::pthread_t>>,
}

impl KvmKicker {
    /// Records the calling thread as the vCPU's thread.
    pub(crate) fn bind_current_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        *self.thread.lock() = Some(me);
    }

    /// Forgets the thread; after this no signal is sent to it.
    pub(crate) fn unbind(&self) {
        *self.thread.lock() = None;
    }

    pub(crate) fn take(&self) -> bool {
        self.kicked.swap(false, Ordering::AcqRel)
    }
}

impl emu_core::VcpuKicker for KvmKicker {
    fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        let thread = self.thread.lock();
        if let Some(t) = *thread {
            // SAFETY: `t` is a live thread: the vCPU unbinds (under this same lock) before its
            // thread can exit, so the id cannot be stale while we hold the lock.
            unsafe {
                libc::pthread_kill(t, kick_signal());
            }
        }
    }
}
