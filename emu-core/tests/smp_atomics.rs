//! LOCK'ed instructions are atomic between software vCPUs on different host threads: two
//! interpreters in one CPU group hammer the same memory, and no update may be lost.

use std::sync::Arc;

use emu_core::interp::cpu::Cpu;
use emu_core::interp::cpu_group::CpuGroup;
use emu_core::interp::fault::Stop;
use emu_core::interp::memory::PhysMem;
use emu_core::interp::Interp;
use emu_core::{CpuState, Platform};
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

struct NoDevices;
impl Platform for NoDevices {
    fn pio_read(&self, _port: u16, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn pio_write(&self, _port: u16, _data: &[u8]) {}
    fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&self, _addr: u64, _data: &[u8]) {}
}

const CODE: u64 = 0x1000;
/// Counters: aligned (host compare-and-swap) and split across a page (exclusive gate).
const ALIGNED: u64 = 0x2000;
const SPLIT: u64 = 0x2ffe;
/// An XCHG spinlock and the plain counter it protects.
const LOCK: u64 = 0x4000;
const GUARDED: u64 = 0x4004;
const ROUNDS: u32 = 20_000;

/// Each round: LOCK INC on the aligned counter, LOCK ADD across the page boundary, XADD,
/// and a plain read-modify-write under an XCHG spinlock released by a plain store.
fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut spin = a.create_label();
    let mut out = a.create_label();
    a.mov(ecx, ROUNDS).unwrap();
    // A lost XCHG store leaves the lock taken by nobody: give up after this many spins
    // instead of hanging (the counts then fail the test).
    a.mov(esi, 2_000_000).unwrap();
    a.set_label(&mut top).unwrap();
    a.lock().inc(dword_ptr(ALIGNED as u32)).unwrap();
    a.lock().add(dword_ptr(SPLIT as u32), 1).unwrap();
    a.mov(ebx, 2).unwrap();
    a.lock().xadd(dword_ptr(ALIGNED as u32 + 8), ebx).unwrap();
    a.set_label(&mut spin).unwrap();
    a.dec(esi).unwrap();
    a.jz(out).unwrap();
    a.mov(eax, 1).unwrap();
    a.xchg(dword_ptr(LOCK as u32), eax).unwrap();
    a.test(eax, eax).unwrap();
    a.jnz(spin).unwrap();
    a.mov(edx, dword_ptr(GUARDED as u32)).unwrap();
    a.inc(edx).unwrap();
    a.mov(dword_ptr(GUARDED as u32), edx).unwrap();
    a.mov(dword_ptr(LOCK as u32), 0).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.set_label(&mut out).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE).unwrap()
}

fn run_cpu(ram: GuestMemoryMmap, group: Arc<CpuGroup>) {
    let mem = PhysMem::new(ram, Arc::new(NoDevices));
    let mut cpu = Interp::new(Cpu::from_state(&CpuState::flat_protected(CODE as u32)), mem);
    cpu.join(group);
    loop {
        // Batches as the vCPU loop runs them: the exclusive gate waits at their ends.
        cpu.begin_batch();
        for _ in 0..256 {
            match cpu.step() {
                Ok(()) => {}
                Err(Stop::Halt) => return,
                Err(e) => panic!("unexpected stop: {e:?}"),
            }
        }
        cpu.end_batch();
    }
}

#[test]
fn locked_updates_from_two_vcpus_are_never_lost() {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    ram.write_slice(&program(), GuestAddress(CODE)).unwrap();
    let group = Arc::new(CpuGroup::new(&ram, 2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (ram, group) = (ram.clone(), group.clone());
            std::thread::spawn(move || run_cpu(ram, group))
        })
        .collect();
    for t in threads {
        t.join().expect("vCPU thread");
    }
    let read = |a| ram.read_obj::<u32>(GuestAddress(a)).unwrap();
    let n = 2 * ROUNDS;
    assert_eq!(read(ALIGNED), n, "LOCK INC");
    assert_eq!(read(SPLIT), n, "split LOCK ADD");
    assert_eq!(read(ALIGNED + 8), 2 * n, "LOCK XADD");
    assert_eq!(read(GUARDED), n, "XCHG spinlock");
    assert_eq!(read(LOCK), 0);
}
