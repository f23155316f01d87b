//! REP MOVS and REP STOS, which the interpreter runs a page at a time where it can: the
//! results must be the element-by-element ones — across page boundaries, with elements
//! straddling a page, with overlapping copies, and when a fault stops the instruction
//! part-way (RCX, RSI and RDI then say exactly how far it got).

use std::sync::Arc;

use emu_core::interp::cpu::{sreg, Cpu};
use emu_core::interp::fault::Stop;
use emu_core::interp::memory::PhysMem;
use emu_core::interp::Interp;
use emu_core::platform::NoDevices;
use emu_core::CpuState;
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const CODE: u64 = 0x1000;
const RAM: usize = 0x40_0000;
/// 32-bit page tables (paging on, identity map of the first 4 MiB).
const PD: u64 = 0x2000;
const PT: u64 = 0x3000;

/// A flat 32-bit CPU at CODE running `body` then HLT, with memory prepared by `fill`.
fn machine(body: impl FnOnce(&mut CodeAssembler)) -> Interp {
    let mut a = CodeAssembler::new(32).unwrap();
    body(&mut a);
    a.hlt().unwrap();
    let code = a.assemble(CODE).unwrap();
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    ram.write_slice(&code, GuestAddress(CODE)).unwrap();
    let mem = PhysMem::new(ram, Arc::new(NoDevices));
    Interp::new(Cpu::from_state(&CpuState::flat_protected(CODE as u32)), mem)
}

/// Runs until HLT; a fault comes back undelivered.
fn run(cpu: &mut Interp) -> Result<(), Stop> {
    for _ in 0..100_000 {
        match cpu.execute_one() {
            Ok(()) => {}
            Err(Stop::Halt) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    panic!("no HLT");
}

fn bytes(cpu: &Interp, at: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    cpu.mem.ram().read_slice(&mut v, GuestAddress(at)).unwrap();
    v
}

fn put(cpu: &Interp, at: u64, data: &[u8]) {
    cpu.mem.ram().write_slice(data, GuestAddress(at)).unwrap();
}

/// Identity paging of the first 4 MiB, with the page at `hole` not present.
fn page_with_hole(cpu: &mut Interp, hole: u64) {
    put(cpu, PD, &(PT as u32 | 3).to_le_bytes());
    for p in 0..1024u64 {
        let pte = if p << 12 == hole {
            0
        } else {
            (p << 12) as u32 | 3
        };
        put(cpu, PT + 4 * p, &pte.to_le_bytes());
    }
    cpu.cpu.cr3 = PD;
    cpu.cpu.cr0 |= 1 << 31;
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 7 + 3) as u8).collect()
}

#[test]
fn stos_fills_across_pages_and_leaves_the_rest() {
    // 10000 bytes from an unaligned address: three page boundaries.
    let mut cpu = machine(|a| {
        a.mov(edi, 0x10003u32).unwrap();
        a.mov(ecx, 10000u32).unwrap();
        a.mov(eax, 0x1234_56abu32).unwrap();
        a.rep().stosb().unwrap();
    });
    put(&cpu, 0x10000, &[0xee; 0x3000]);
    run(&mut cpu).unwrap();
    let got = bytes(&cpu, 0x10000, 0x3000);
    assert_eq!(&got[..3], &[0xee; 3]);
    assert!(got[3..10003].iter().all(|&b| b == 0xab));
    assert!(got[10003..].iter().all(|&b| b == 0xee));
    assert_eq!(cpu.cpu.regs[7], 0x10003 + 10000);
    assert_eq!(cpu.cpu.regs[1], 0);
}

#[test]
fn stos_dwords_straddling_a_page() {
    // 0x10ffe: the first element straddles the page boundary; the value's bytes repeat
    // in element order.
    let mut cpu = machine(|a| {
        a.mov(edi, 0x10ffeu32).unwrap();
        a.mov(ecx, 1500u32).unwrap();
        a.mov(eax, 0x4433_2211u32).unwrap();
        a.rep().stosd().unwrap();
    });
    run(&mut cpu).unwrap();
    let got = bytes(&cpu, 0x10ffe, 6000);
    for (k, b) in got.iter().enumerate() {
        assert_eq!(*b, [0x11, 0x22, 0x33, 0x44][k % 4], "byte {k}");
    }
    assert_eq!(cpu.cpu.regs[7], 0x10ffe + 6000);
}

#[test]
fn movs_copies_and_overlapping_copies_match_element_order() {
    // A plain copy across pages; a copy one byte up onto itself (each element reads the
    // one the previous iteration stored: the first byte spreads); a copy down by 3 dwords.
    let mut cpu = machine(|a| {
        a.mov(esi, 0x20010u32).unwrap();
        a.mov(edi, 0x30ff0u32).unwrap();
        a.mov(ecx, 9000u32).unwrap();
        a.rep().movsb().unwrap();
        a.mov(esi, 0x40000u32).unwrap();
        a.mov(edi, 0x40001u32).unwrap();
        a.mov(ecx, 5000u32).unwrap();
        a.rep().movsb().unwrap();
        a.mov(esi, 0x5000cu32).unwrap();
        a.mov(edi, 0x50000u32).unwrap();
        a.mov(ecx, 2000u32).unwrap();
        a.rep().movsd().unwrap();
    });
    let src = pattern(9000);
    put(&cpu, 0x20010, &src);
    put(&cpu, 0x40000, &pattern(6000));
    let down = pattern(8012);
    put(&cpu, 0x50000, &down);
    run(&mut cpu).unwrap();
    assert_eq!(bytes(&cpu, 0x30ff0, 9000), src);
    let spread = bytes(&cpu, 0x40000, 5001);
    assert!(spread.iter().all(|&b| b == 3), "the first byte spreads");
    assert_eq!(bytes(&cpu, 0x40000 + 5001, 10), &pattern(6000)[5001..5011]);
    assert_eq!(bytes(&cpu, 0x50000, 8000), &down[12..8012]);
    assert_eq!(cpu.cpu.regs[6], 0x5000c + 8000);
    assert_eq!(cpu.cpu.regs[7], 0x50000 + 8000);
}

#[test]
fn a_page_fault_part_way_leaves_exact_registers() {
    // The copy's destination runs into a page that is not present: #PF at the first byte
    // there, everything before it copied, RCX/RSI/RDI at that element.
    let mut cpu = machine(|a| {
        a.mov(esi, 0x20000u32).unwrap();
        a.mov(edi, 0x33800u32).unwrap();
        a.mov(ecx, 0x2000u32).unwrap();
        a.rep().movsd().unwrap();
    });
    page_with_hole(&mut cpu, 0x35000);
    let src = pattern(0x8000);
    put(&cpu, 0x20000, &src);
    let stop = run(&mut cpu).unwrap_err();
    let Stop::Fault(f) = stop else {
        panic!("{stop:?}")
    };
    assert_eq!(f.vector, 14);
    assert_eq!(f.cr2, Some(0x35000));
    let done = (0x35000 - 0x33800) / 4;
    assert_eq!(cpu.cpu.regs[1], 0x2000 - done);
    assert_eq!(cpu.cpu.regs[6], 0x20000 + 4 * done);
    assert_eq!(cpu.cpu.regs[7], 0x35000);
    assert_eq!(bytes(&cpu, 0x33800, 0x1800), &src[..0x1800]);
}

#[test]
fn a_segment_limit_part_way_stops_at_the_limit() {
    // ES ends at 0x60bff, inside a page: the stores stop there with #GP, the bytes below
    // it written.
    let mut cpu = machine(|a| {
        a.mov(edi, 0x60800u32).unwrap();
        a.mov(ecx, 0x1000u32).unwrap();
        a.mov(al, 0x5au32).unwrap();
        a.rep().stosb().unwrap();
    });
    cpu.cpu.seg[sreg::ES].limit = 0x60bff;
    let stop = run(&mut cpu).unwrap_err();
    let Stop::Fault(f) = stop else {
        panic!("{stop:?}")
    };
    assert_eq!(f.vector, 13);
    assert_eq!(cpu.cpu.regs[7], 0x60c00);
    assert_eq!(cpu.cpu.regs[1], 0xc00);
    assert!(bytes(&cpu, 0x60800, 0x400).iter().all(|&b| b == 0x5a));
    assert_eq!(bytes(&cpu, 0x60c00, 1), [0]);
}

#[test]
fn sixteen_bit_addresses_wrap_inside_the_segment() {
    // An address-size prefix in 32-bit code: DI wraps from 0xffff to 0, as element by
    // element.
    let mut cpu = machine(|a| {
        a.mov(edi, 0x1_fff0u32).unwrap();
        a.mov(ecx, 0x20u32).unwrap();
        a.mov(al, 0x77u32).unwrap();
        a.db(&[0x67, 0xf3, 0xaa]).unwrap(); // a16 rep stosb
    });
    run(&mut cpu).unwrap();
    assert!(bytes(&cpu, 0xfff0, 0x10).iter().all(|&b| b == 0x77));
    assert!(bytes(&cpu, 0, 0x10).iter().all(|&b| b == 0x77));
    assert_eq!(cpu.cpu.regs[7], 0x1_0010);
    assert_eq!(cpu.cpu.regs[1], 0);
}
