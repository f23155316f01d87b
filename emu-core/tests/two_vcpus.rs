//! Two software vCPUs on two host threads, as `-smp 2` runs them: LOCK'ed instructions are
//! atomic between them (no update lost), and a store by one drops the other's decoded copy
//! of the code it changed (cross-modifying code).

use std::sync::Arc;

use emu_core::interp::cpu::Cpu;
use emu_core::interp::cpu_group::CpuGroup;
use emu_core::interp::fault::Stop;
use emu_core::interp::memory::PhysMem;
use emu_core::interp::Interp;
use emu_core::platform::NoDevices;
use emu_core::CpuState;
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

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
    run_cpu_at(ram, group, CODE);
}

/// Runs a vCPU of `group` from `entry` (32-bit flat) until it halts; returns its EAX.
fn run_cpu_at(ram: GuestMemoryMmap, group: Arc<CpuGroup>, entry: u64) -> u64 {
    let mem = PhysMem::new(ram, Arc::new(NoDevices));
    let mut cpu = Interp::new(
        Cpu::from_state(&CpuState::flat_protected(entry as u32)),
        mem,
    );
    cpu.join(group);
    loop {
        // Batches as the vCPU loop runs them: the exclusive gate waits at their ends.
        cpu.begin_batch();
        for _ in 0..256 {
            match cpu.step() {
                Ok(()) => {}
                Err(Stop::Halt) => return cpu.cpu.regs[0],
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

/// The spinning vCPU: `MOV EAX, 1` then loop while EAX is 1, at most this many rounds.
const SPIN: u64 = 0x6000;
const SPIN_ROUNDS: u32 = 50_000_000;
/// The patching vCPU's code.
const PATCHER: u64 = 0x7000;
/// Set by the spinner once it has run its loop (its decodes are cached by then).
const SPINNING: u64 = 0x8000;

#[test]
fn a_store_by_one_vcpu_reaches_code_the_other_has_decoded() {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    // Spinner: announce, then `mov eax, 1; dec ecx; jz out; cmp eax, 1; je top`.
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut out = a.create_label();
    a.mov(ecx, SPIN_ROUNDS).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(eax, 1u32).unwrap();
    a.mov(dword_ptr(SPINNING as u32), 1u32).unwrap();
    a.dec(ecx).unwrap();
    a.jz(out).unwrap();
    a.cmp(eax, 1).unwrap();
    a.je(top).unwrap();
    a.set_label(&mut out).unwrap();
    a.hlt().unwrap();
    let spinner = a.assemble(SPIN).unwrap();
    // `mov eax, imm32` is B8 followed by the immediate: its byte 1 is the one to patch.
    let mov_at = SPIN + 5;
    assert_eq!(spinner[5], 0xb8);
    ram.write_slice(&spinner, GuestAddress(SPIN)).unwrap();
    // Patcher: wait until the spinner runs, then store 2 into its MOV's immediate.
    let mut p = CodeAssembler::new(32).unwrap();
    let mut wait = p.create_label();
    p.set_label(&mut wait).unwrap();
    p.cmp(dword_ptr(SPINNING as u32), 0).unwrap();
    p.je(wait).unwrap();
    p.mov(byte_ptr(mov_at as u32 + 1), 2u32).unwrap();
    p.hlt().unwrap();
    ram.write_slice(&p.assemble(PATCHER).unwrap(), GuestAddress(PATCHER))
        .unwrap();

    let group = Arc::new(CpuGroup::new(&ram, 2));
    let spin = {
        let (ram, group) = (ram.clone(), group.clone());
        std::thread::spawn(move || run_cpu_at(ram, group, SPIN))
    };
    run_cpu_at(ram.clone(), group, PATCHER);
    let result = spin.join().expect("spinning vCPU");
    assert_eq!(
        result, 2,
        "the spinner kept running its stale decode of MOV EAX, 1"
    );
}
