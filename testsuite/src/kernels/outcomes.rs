//! Kernels that end in each way a test runner must tell apart: a chosen debug-exit value, a
//! triple fault, a power-off without a result. `ferrite test`'s own tests run them.

use iced_x86::code_asm::*;

use crate::kit::{check, Kernel};

/// Prints a line, then writes `value` to isa-debug-exit (0 pass, 77 skip, others fail).
pub fn exit_with(value: u32) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        if value == crate::kit::SKIP {
            c.print("SKIP: this kernel always skips\n");
        } else {
            c.print(&format!("exiting with {value}\n"));
        }
        c.exit(value);
    })
}

/// Loads an empty IDT and raises an exception: #GP on the #BP delivery, #DF on that, then
/// shutdown.
pub fn triple_fault() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        c.print("about to triple-fault\n");
        check(c.a.push(0));
        check(c.a.push(0));
        check(c.a.lidt(ptr(esp)));
        check(c.a.int3());
    })
}

/// Resets the machine through the PIIX reset register (port 0xCF9) without writing a result:
/// with -no-reboot the run ends as a shutdown.
pub fn reset_without_result() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        c.print("resetting\n");
        check(c.a.mov(dx, 0xcf9u32));
        check(c.a.mov(al, 0x06u32));
        check(c.a.out(dx, al));
        let mut l = c.label();
        c.here(&mut l);
        check(c.a.jmp(l));
    })
}

/// Prints a line in a loop, as fast as the serial port takes it, forever.
pub fn flood() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        let mut again = c.label();
        c.here(&mut again);
        c.print("flooding the serial port\n");
        check(c.a.jmp(again));
    })
}

/// Says "echo ready", then sends back every byte COM1 receives until a 'q', then passes:
/// a guest for the serial backends' input side.
pub fn serial_echo() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        c.print("echo ready\n");
        let (mut poll, mut done) = (c.label(), c.label());
        c.here(&mut poll);
        check(c.a.mov(dx, u32::from(crate::kit::COM1) + 5));
        check(c.a.in_(al, dx));
        check(c.a.test(al, 1));
        check(c.a.jz(poll));
        check(c.a.mov(dx, u32::from(crate::kit::COM1)));
        check(c.a.in_(al, dx));
        check(c.a.cmp(al, b'q' as i32));
        check(c.a.je(done));
        check(c.a.out(dx, al));
        check(c.a.jmp(poll));
        c.here(&mut done);
        c.print("\necho done\n");
        c.exit(crate::kit::PASS);
    })
}
