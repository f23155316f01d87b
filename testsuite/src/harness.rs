//! Runs a guest kernel on a [`machine::Vm`] and collects what it did.

use std::path::Path;
use std::sync::Arc;

use machine::{Accel, DebugExitConfig, ExitReason, VmConfig};
use parking_lot::Mutex;

use crate::kit::DEBUG_EXIT_PORT;

/// Serial output captured in memory.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub exit: ExitReason,
    pub serial: String,
}

impl Outcome {
    /// True when the kernel wrote the kit's pass value to the debug-exit port.
    pub fn passed(&self) -> bool {
        self.exit == ExitReason::DebugExit(crate::kit::PASS)
    }

    /// True when the kernel found it cannot run here (it printed a `SKIP:` line saying why).
    pub fn skipped(&self) -> bool {
        self.exit == ExitReason::DebugExit(crate::kit::SKIP)
    }
}

/// A machine as the kit's kernels expect it: COM1 captured, isa-debug-exit at 0xf4/4.
pub fn config(kernel: &Path, accel: Accel, memory: u64) -> (VmConfig, Capture) {
    let cap = Capture::default();
    let mut cfg = VmConfig::new(
        memory,
        bios::KernelConfig {
            kernel: kernel.to_owned(),
            ..Default::default()
        },
    );
    cfg.accel = accel;
    cfg.serials = vec![Some(Arc::new(Mutex::new(cap.clone())))];
    cfg.debug_exit = Some(DebugExitConfig {
        iobase: DEBUG_EXIT_PORT,
        iosize: 4,
    });
    (cfg, cap)
}

/// Boots `cfg` and waits for it to stop (a watchdog stops it after `timeout`).
pub fn run(
    cfg: &VmConfig,
    cap: &Capture,
    timeout: std::time::Duration,
) -> machine::Result<Outcome> {
    let vm = machine::Vm::new(cfg)?;
    let handle = vm.handle();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if start.elapsed() > timeout {
                    handle.stop();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let exit = vm.run();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watchdog.join();
    Ok(Outcome {
        exit: exit?,
        serial: cap.text(),
    })
}

/// A kernel image written to a temporary file, removed again on drop.
pub struct TempFile {
    path: std::path::PathBuf,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `image` to a temporary file unique to this process and name.
pub fn temp_kernel(name: &str, image: &[u8]) -> TempFile {
    let path = std::env::temp_dir().join(format!("ferrite-{}-{name}", std::process::id()));
    std::fs::write(&path, image).expect("write a temporary kernel file");
    TempFile { path }
}
