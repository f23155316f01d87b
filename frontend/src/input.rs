//! The input thread: stdin to the guest's console UART, with QEMU's Ctrl-A escapes.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::escape::{Action, Escapes, HELP};
use crate::session::Session;

/// Starts reading stdin on a thread of its own. End of input ends the thread, not the VM.
pub fn spawn(session: Arc<Session>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || forward(&session))
        .map(drop)
}

fn forward(session: &Session) {
    let mut stdin = io::stdin().lock();
    let mut escapes = Escapes::new();
    let mut buf = [0u8; 256];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("reading stdin failed, no more input reaches the guest: {e}");
                return;
            }
        };
        out.clear();
        for &byte in &buf[..n] {
            match escapes.feed(byte) {
                Action::Send(b) => out.push(b),
                Action::Nothing => {}
                Action::Help => {
                    session.send_all(&out);
                    out.clear();
                    let _ = io::stderr().write_all(HELP.as_bytes());
                }
                Action::Quit => {
                    session.send_all(&out);
                    let _ = io::stderr().write_all(b"\nferrite: terminated (C-a x)\n");
                    session.stop();
                    return;
                }
            }
        }
        session.send_all(&out);
    }
}
