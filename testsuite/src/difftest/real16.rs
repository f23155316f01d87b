//! 16-bit code through the translator against the interpreter (the reference semantics): the
//! host cannot run real-mode code for us, so here the interpreter is the oracle.
//!
//! A case runs in real mode with CS, DS, ES, SS, FS and GS at six different bases, every
//! byte of CS not holding the case a HLT, and every interrupt vector pointing at one: the
//! case ends at a HLT (IF is clear), an exception, or after [`MAX_STEPS`] instructions on
//! the interpreter (a loop: the case is left out). Registers, IP, RFLAGS (without the flags
//! the executed instructions leave undefined), the segment registers, the exception and
//! every segment's 64 KiB must match.

use std::sync::Arc;

use emu_core::interp::cpu::{flags, sreg, Cpu};
use emu_core::interp::fault::Stop;
use emu_core::interp::memory::PhysMem;
use emu_core::interp::Interp;
use emu_core::platform::NoDevices;
use emu_core::state::{CpuState, Segment};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gen::{self, Rng};

/// Instructions a case may run on the interpreter (beyond: a loop, left out).
pub const MAX_STEPS: usize = 100;
/// The segments' selectors (bases: 16 times these) for ES, CS, SS, DS, FS, GS.
const SELECTORS: [u16; 6] = [0x3000, 0x1000, 0x4000, 0x2000, 0x5000, 0x6000];
/// Where the case starts in CS.
const IP: u64 = 0x100;
/// RAM: the six segments below 1 MiB plus what an offset past the last reaches.
const RAM: usize = 2 << 20;

/// How a 16-bit case ended on one engine.
#[derive(Debug, PartialEq, Eq)]
pub struct End16 {
    pub regs: [u64; 8],
    pub rip: u64,
    pub rflags: u64,
    pub selectors: [u16; 6],
    /// `None`: a HLT; else the exception's vector (or 0xff: a stop other than those).
    pub exception: Option<u8>,
    /// The instructions retired (not compared: a translated run that faults does not count
    /// them).
    pub steps: u64,
    /// FNV-1a of the first 512 KiB (the IVT and the six segments).
    pub memory: u64,
}

/// One engine's run of `code` from `regs` (RAX…RDI: real-mode code sees their low halves,
/// but keeps the rest) with `rflags` (IF forced clear); also
/// the instructions that ran translated, and for the interpreter the flags its run leaves
/// undefined (`None`: it read one, or ran into a loop — the case is left out).
pub fn run(code: &[u8], regs: [u64; 8], rflags: u64, translate: bool) -> (End16, u64, Option<u64>) {
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).expect("RAM");
    let cs_base = u64::from(SELECTORS[sreg::CS]) << 4;
    let mut text = vec![0xf4u8; 0x10000];
    text[IP as usize..IP as usize + code.len()].copy_from_slice(code);
    ram.write_slice(&text, GuestAddress(cs_base)).expect("code");
    // Every vector at CS:0xfff0 (a HLT).
    for v in 0..256u64 {
        ram.write_obj(
            u32::from(SELECTORS[sreg::CS]) << 16 | 0xfff0,
            GuestAddress(4 * v),
        )
        .expect("vector");
    }
    // The data segments hold a pattern, so loads see something other than zeros.
    for s in [sreg::DS, sreg::ES, sreg::SS, sreg::FS, sreg::GS] {
        let base = u64::from(SELECTORS[s]) << 4;
        let pattern: Vec<u8> = (0..0x10000u32).map(|k| (k * 7 + s as u32) as u8).collect();
        ram.write_slice(&pattern, GuestAddress(base)).expect("data");
    }
    let mut state = CpuState::reset();
    let seg = |s: usize| Segment::real_mode(SELECTORS[s], s == sreg::CS);
    (state.es, state.cs, state.ss, state.ds, state.fs, state.gs) = (
        seg(sreg::ES),
        seg(sreg::CS),
        seg(sreg::SS),
        seg(sreg::DS),
        seg(sreg::FS),
        seg(sreg::GS),
    );
    state.gpr[..8].copy_from_slice(&regs);
    state.rip = IP;
    state.rflags = (rflags & 0xcd5) | 0x2;
    let mem = PhysMem::new(ram.clone(), Arc::new(NoDevices));
    let mut interp = Interp::new(Cpu::from_state(&state), mem);
    interp.model = &emu_core::cpu_model::MAX;
    let (exception, steps, translated, undefined) = if translate {
        let (e, n, t) = run_translated(&mut interp);
        (e, n, t, None)
    } else {
        let (e, n, u) = run_interpreted(&mut interp);
        (e, n, 0, u)
    };
    let cpu = &interp.cpu;
    let mut regs = [0; 8];
    regs.copy_from_slice(&cpu.regs[..8]);
    let mut bytes = vec![0u8; 0x80000];
    ram.read_slice(&mut bytes, GuestAddress(0)).expect("memory");
    let memory = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let end = End16 {
        regs,
        rip: cpu.rip,
        rflags: cpu.rflags,
        selectors: std::array::from_fn(|s| cpu.seg[s].selector),
        exception,
        steps,
        memory,
    };
    (end, translated, undefined)
}

fn stopped(stop: Stop) -> Option<u8> {
    match stop {
        Stop::Halt => None,
        Stop::Fault(f) | Stop::Trap(f) => Some(f.vector),
        _ => Some(0xff),
    }
}

/// The interpreter's run, with the flags it leaves undefined (`None`: an instruction read
/// one, or the run did not end within [`MAX_STEPS`]).
fn run_interpreted(interp: &mut Interp) -> (Option<u8>, u64, Option<u64>) {
    let (mut steps, mut undef, mut read_undefined) = (0, 0, false);
    loop {
        if steps > MAX_STEPS as u64 {
            return (Some(0xfe), steps, None);
        }
        // An instruction that faults leaves the flags as they were.
        let before = undef;
        if let Some(i) = interp.peek_instruction() {
            // A software interrupt pushes FLAGS: it reads every flag.
            let reads = if i.flow_control() == iced_x86::FlowControl::Interrupt {
                u64::MAX
            } else {
                super::soft::to_bits(i.rflags_read())
            };
            read_undefined |= reads & undef != 0;
            undef = super::soft::flags_after(undef, &i);
        }
        match interp.execute_one() {
            Ok(()) => steps += 1,
            Err(stop) => {
                if matches!(stop, Stop::Fault(_)) {
                    undef = before;
                }
                let e = stopped(stop);
                return (e, steps, (!read_undefined).then_some(undef));
            }
        }
    }
}

/// Through the translator, the interpreter taking what it declines; returns the
/// instructions that ran in translated blocks too.
fn run_translated(interp: &mut Interp) -> (Option<u8>, u64, u64) {
    use emu_core::engine::ExecEngine;
    let mut jit = jit::Jit::new().expect("translator");
    let mut steps = 0u64;
    let exception = loop {
        // Far more than the interpreter's bound: a translated run that loops is a mismatch.
        if steps > 100 * MAX_STEPS as u64 {
            break Some(0xfe);
        }
        match jit.run(interp, 16) {
            Ok(0) => {}
            Ok(n) => {
                steps += u64::from(n);
                continue;
            }
            Err(stop) => break stopped(stop),
        }
        match interp.execute_one() {
            Ok(()) => steps += 1,
            Err(stop) => break stopped(stop),
        }
    };
    (exception, steps, jit.stats().instructions)
}

/// The outcome of comparing one case: `Ok((true, n))` compared and equal (`n` instructions
/// ran translated), `Ok((false, _))` left out.
pub fn compare(code: &[u8], regs: [u64; 8], rflags: u64) -> Result<(bool, u64), String> {
    let (mut want, _, undef) = run(code, regs, rflags, false);
    let Some(undef) = undef else {
        return Ok((false, 0));
    };
    let (mut got, translated, _) = run(code, regs, rflags, true);
    want.rflags &= !undef;
    got.rflags &= !undef;
    // A run that faults does not report the instructions it retired before the fault.
    (want.steps, got.steps) = (0, 0);
    if want == got {
        Ok((true, translated))
    } else {
        let decoder = iced_x86::Decoder::with_ip(16, code, IP, iced_x86::DecoderOptions::NONE);
        let listing: Vec<String> = decoder
            .into_iter()
            .map(|i| format!("  {:#06x}: {i}", i.ip()))
            .collect();
        Err(format!(
            "16-bit code:\n{}\nregs {regs:x?} rflags {rflags:#x}\ninterpreter: {want:x?}\ntranslator:  {got:x?}",
            listing.join("\n")
        ))
    }
}

/// Random 16-bit cases: each class's 32-bit encodings from the generator, decoded as 16-bit
/// code (operand sizes swap, ModR/M memory forms become 16-bit addressing), from random small
/// registers. Returns the cases compared, how many instructions ran translated, and the
/// mismatches' reports.
pub fn random_cases(count: usize, seed: u64) -> (usize, u64, Vec<String>) {
    let mut rng = Rng::new(seed);
    let (mut compared, mut translated, mut bad) = (0, 0, Vec::new());
    let classes: Vec<&str> = gen::CLASSES.iter().map(|(n, _)| *n).collect();
    for k in 0..count {
        let class = classes[k % classes.len()];
        let Some(case) = gen::generate(&mut rng, class, true, 8) else {
            continue;
        };
        let regs: [u64; 8] = std::array::from_fn(|r| {
            let low = match r {
                // SP: room both ways, sometimes at the wrap; the others mostly small,
                // sometimes near 64 KiB.
                4 if rng.below(8) == 0 => rng.below(4) * 2,
                4 => 0x8000 + rng.below(0x100) * 2,
                _ if rng.below(8) == 0 => 0xfff0 + rng.below(16),
                _ => rng.below(0x4000),
            };
            // Upper halves, which 16-bit writes keep and 32-bit addressing sees.
            if rng.below(4) == 0 {
                low | rng.next_u64() << 16
            } else {
                low
            }
        });
        match compare(&case.code, regs, case.rflags & !flags::IF) {
            Ok((true, n)) => {
                compared += 1;
                translated += n;
            }
            Ok((false, _)) => {}
            Err(report) => bad.push(report),
        }
    }
    (compared, translated, bad)
}
