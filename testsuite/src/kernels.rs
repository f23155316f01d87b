//! The kernels of the test-kernel kit, one function each.

use crate::kit::{Kernel, PASS};

/// Prints a line in 32-bit protected mode and passes: the smallest end-to-end check.
pub fn hello32() -> Vec<u8> {
    Kernel::build(|k| {
        k.c32.print("hello from protected mode\n");
        k.c32.exit(PASS);
    })
}
