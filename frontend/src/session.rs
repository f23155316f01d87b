//! The VM currently running, as the input and signal threads see it.
//!
//! A run may go through several VMs (a guest reset rebuilds the board); the threads that
//! outlive one VM reach the current one here, and a stop requested between two VMs still
//! prevents the next from starting.

use std::time::Duration;

use machine::SerialInput;
use machine::{Vm, VmHandle};
use parking_lot::Mutex;

#[derive(Default)]
struct State {
    quit: bool,
    handle: Option<VmHandle>,
    /// Every COM port's input side, COM1 first.
    inputs: Vec<Option<SerialInput>>,
}

pub struct Session {
    /// The COM port (0 = COM1) the terminal is connected to.
    console: Option<usize>,
    state: Mutex<State>,
}

impl Session {
    pub fn new(console: Option<usize>) -> Self {
        Session {
            console,
            state: Mutex::new(State::default()),
        }
    }

    /// Makes `vm` the current VM; false if a stop was requested meanwhile (do not run it).
    pub fn attach(&self, vm: &Vm) -> bool {
        let mut s = self.state.lock();
        if s.quit {
            return false;
        }
        s.handle = Some(vm.handle());
        s.inputs = (0..devices::serial::COM_PORTS.len())
            .map(|n| vm.serial_input(n))
            .collect();
        true
    }

    /// The current VM has ended.
    pub fn detach(&self) {
        let mut s = self.state.lock();
        s.handle = None;
        s.inputs.clear();
    }

    /// Stops the current VM and any that would follow it.
    pub fn stop(&self) {
        let mut s = self.state.lock();
        s.quit = true;
        if let Some(h) = &s.handle {
            h.stop();
        }
    }

    pub fn quitting(&self) -> bool {
        self.state.lock().quit
    }

    /// Hands `bytes` to the guest's console UART (the one on the terminal).
    pub fn send_all(&self, bytes: &[u8]) {
        if let Some(port) = self.console {
            self.send_to(port, bytes);
        }
    }

    /// Hands `bytes` to COM`port+1`, waiting while its FIFO is full or while the board is
    /// being rebuilt; gives up only when the run is ending.
    pub fn send_to(&self, port: usize, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let input = {
                let s = self.state.lock();
                if s.quit {
                    return;
                }
                s.inputs.get(port).cloned().flatten()
            };
            let taken = input.map_or(0, |i| i.send(bytes));
            bytes = &bytes[taken.min(bytes.len())..];
            if !bytes.is_empty() {
                std::thread::sleep(Duration::from_millis(if taken == 0 { 10 } else { 1 }));
            }
        }
    }
}
