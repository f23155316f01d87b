//! A bounded differential run in CI: every integer class, 64-bit and compatibility-mode code,
//! against the host CPU. `ferrite-difftest` runs the large campaigns.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn interpreter_matches_the_host_cpu() {
    use testsuite::difftest::gen::CLASSES;
    use testsuite::difftest::runner::run_class;

    let Some(mut differ) = host_differ(false) else {
        return;
    };
    let mut failures = Vec::new();
    let mut instructions = 0;
    for (class, _) in CLASSES {
        for compat in [false, true] {
            let r = run_class(&mut differ, class, compat, 400, 0x00fe_771e, true).expect("oracle");
            instructions += r.instructions;
            if r.mismatches > 0 {
                failures.push(format!(
                    "{class} ({}-bit): {} of {} cases differ\n{}",
                    if compat { 32 } else { 64 },
                    r.mismatches,
                    r.cases,
                    r.examples.join("\n")
                ));
            }
        }
    }
    eprintln!("differential: {instructions} instructions compared with the host CPU");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same cases through the translator (the interpreter running what it declines).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translator_matches_the_host_cpu() {
    use testsuite::difftest::gen::CLASSES;
    use testsuite::difftest::runner::run_class;

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    let mut failures = Vec::new();
    let mut instructions = 0;
    for (class, _) in CLASSES {
        // 64-bit code, and 32-bit code in a compatibility-mode segment.
        for compat in [false, true] {
            let r = run_class(&mut differ, class, compat, 400, 0x7a51_a7ed, true).expect("oracle");
            instructions += r.instructions;
            if r.mismatches > 0 {
                failures.push(format!(
                    "{class} ({}-bit): {} of {} cases differ\n{}",
                    if compat { 32 } else { 64 },
                    r.mismatches,
                    r.cases,
                    r.examples.join("\n")
                ));
            }
        }
    }
    let translated = differ.soft.translated.get();
    eprintln!(
        "differential (translator): {instructions} instructions compared with the host CPU, \
         {translated} of them run by translated blocks"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        translated > instructions / 10,
        "the translator ran only {translated} of {instructions} instructions"
    );
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[test]
fn interpreter_matches_the_host_cpu() {
    eprintln!("SKIP: the differential harness needs an x86-64 Linux host as its oracle");
}

/// Self-modifying code inside one translated block: a store rewrites the immediate of the
/// very next instruction, which the block had already translated; and a loop whose body a
/// later store changes (a second block run after the first was translated).
#[test]
fn translated_code_sees_its_own_stores() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_SIZE};

    // Absolute addresses (the code sits below 2 GiB): the instructions' lengths are fixed.
    let at = |offset: u64| (CODE_ADDR + offset) as u32;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut body = a.create_label();
    // +0, 11 bytes: the next instruction's imm32 (byte 1 of `mov ecx, imm32` at +11).
    a.mov(dword_ptr(at(12)), 0x2222_2222u32).unwrap();
    a.mov(ecx, 0x1111_1111u32).unwrap(); // +11, 5 bytes
    a.mov(esi, 2u32).unwrap(); // +16, 5 bytes
                               // +21: `add edx, imm32` (81 /0 id; the immediate at +23), patched after the first round.
    a.set_label(&mut body).unwrap();
    a.add(edx, 0x1000_0010u32).unwrap();
    a.mov(dword_ptr(at(23)), 0x100u32).unwrap();
    a.dec(esi).unwrap();
    a.jnz(body).unwrap();
    // A counter on the code page itself: every DEC is a store into the block's own page
    // (the block ends after it) and the JNZ needs the DEC's flags.
    let mut down = a.create_label();
    a.mov(dword_ptr(at(0x800)), 3u32).unwrap();
    a.set_label(&mut down).unwrap();
    a.dec(dword_ptr(at(0x800))).unwrap();
    a.jnz(down).unwrap();
    a.mov(edi, dword_ptr(at(0x800))).unwrap();
    a.inc(edi).unwrap();
    a.ud2().unwrap();
    let code = a.assemble(CODE_ADDR).unwrap();
    let case = code_case(code, vec![0; DATA_SIZE], 15);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(
        interpreted.regs[1], 0x2222_2222,
        "interpreter: the patched MOV"
    );
    assert_eq!(
        interpreted.regs[2], 0x1000_0110,
        "interpreter: the patched ADD"
    );
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
    assert!(ran > 0, "nothing ran translated");
}

/// Translated code merges flags into RFLAGS lazily: an exception raised after a
/// flag-writing instruction, in the same block, must still find that instruction's flags
/// (and not the faulting one's), whatever raises it — a load, a store to a memory
/// destination, a push, a non-canonical indirect jump, CLI at CPL 3 (run by the interpreter
/// inside the block).
#[test]
fn translated_faults_keep_earlier_flags() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_SIZE};

    type Body = fn(&mut CodeAssembler);
    let bodies: [(&str, Body); 9] = [
        ("load", |a| a.mov(rcx, qword_ptr(rbx)).unwrap()),
        // CMP and BT only read memory: pending flags are not merged before them.
        ("compare with memory", |a| {
            a.cmp(dword_ptr(rbx), ecx).unwrap()
        }),
        ("bit test in memory", |a| a.bt(qword_ptr(rbx), 3).unwrap()),
        // CLI at CPL 3 (IOPL 0), run by the interpreter inside the block.
        ("cli", |a| a.cli().unwrap()),
        // SETcc loads the flags (a flush part way through it) before its store faults.
        ("setcc to memory", |a| a.sete(byte_ptr(rbx)).unwrap()),
        ("memory destination", |a| {
            a.add(dword_ptr(rbx), ecx).unwrap()
        }),
        ("push", |a| {
            a.mov(rsp, rbx).unwrap();
            a.push(rax).unwrap()
        }),
        ("indirect jump", |a| a.jmp(rbx).unwrap()),
        // INC leaves CF alone: the ADD's CF and the INC's other flags, both pending.
        ("after an INC", |a| {
            a.inc(edx).unwrap();
            a.mov(qword_ptr(rbx), rdx).unwrap()
        }),
    ];
    for (what, body) in bodies {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(eax, -1i32 as u32).unwrap();
        a.mov(rbx, 0x8000_0000_0000_0000u64).unwrap(); // not canonical: #GP
        a.mov(edx, 0x3000_0001u32).unwrap();
        a.add(eax, 1).unwrap(); // ZF, CF, PF, AF set
        body(&mut a);
        a.ud2().unwrap();
        let case = code_case(a.assemble(CODE_ADDR).unwrap(), vec![0; DATA_SIZE], 10);
        let (interpreted, translated, ran) = interpreted_and_translated(&case);
        assert!(
            matches!(
                interpreted.exception,
                testsuite::difftest::Exception::Protection
            ),
            "{what}: the fault is the one meant"
        );
        assert!(ran > 0, "{what}: nothing ran translated");
        assert_eq!(translated.rflags, interpreted.rflags, "{what}: RFLAGS");
        assert_eq!(translated.rip, interpreted.rip, "{what}: RIP");
        assert_eq!(translated.regs, interpreted.regs, "{what}: registers");
        assert_eq!(
            translated.exception, interpreted.exception,
            "{what}: exception"
        );
    }
}

/// Code reached through the jump cache (here a routine jumped to the second time) that
/// stores into its own page must see the store: the store is checked against the running
/// block's page, not the page the run started in. The routine patches the instruction
/// right after a REP STOSB (run by the interpreter inside the block), which stores only the
/// second time. (Indirect jumps, not calls: there is no stack page to push to that would
/// not itself move a code page's word.)
#[test]
fn translated_code_reached_indirectly_sees_its_own_stores() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    // The routine, in the data page: REP STOSB; ADD EDX, imm8 (its immediate at +4);
    // JMP R11.
    let routine = [0xf3, 0xaa, 0x83, 0xc2, 0x01, 0x41, 0xff, 0xe3];
    let mut data = vec![0; DATA_SIZE];
    data[..routine.len()].copy_from_slice(&routine);
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut back1, mut back2) = (a.create_label(), a.create_label());
    a.mov(rbx, DATA_ADDR).unwrap();
    a.mov(rdi, DATA_ADDR + 4).unwrap();
    a.mov(eax, 5u32).unwrap();
    a.xor(ecx, ecx).unwrap();
    a.lea(r11, ptr(back1)).unwrap();
    a.jmp(rbx).unwrap(); // stores nothing: EDX += 1
    a.set_label(&mut back1).unwrap();
    a.mov(ecx, 1u32).unwrap();
    a.lea(r11, ptr(back2)).unwrap();
    a.jmp(rbx).unwrap(); // patches the immediate to 5 first: EDX += 5
    a.set_label(&mut back2).unwrap();
    a.ud2().unwrap();
    let case = code_case(a.assemble(CODE_ADDR).unwrap(), data, 20);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(interpreted.regs[2], 6, "interpreter: 1 then the patched 5");
    assert!(ran > 0, "nothing ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
}

/// A CALL whose push lands in the running block's code page (a stack inside the code page)
/// ends the run there: code reached afterwards must not see the store's status as its own
/// (a load through the helper in the called function would be dropped). The code and data
/// pages share a soft-TLB slot, so the push's entry evicts the data page's and the
/// function's load misses.
#[test]
fn translated_call_pushing_into_its_code_page() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    // The function, in the data page: MOV EAX, [RDI]; ADD EDX, EAX; RET.
    let function = [0x8b, 0x07, 0x01, 0xc2, 0xc3];
    let mut data = vec![0; DATA_SIZE];
    data[..function.len()].copy_from_slice(&function);
    data[0x800] = 7;
    data[0x808] = 9;
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rsp, CODE_ADDR + 0xf00).unwrap(); // the stack inside the code page
    a.mov(rbx, DATA_ADDR).unwrap();
    a.mov(rdi, DATA_ADDR + 0x800).unwrap();
    a.call(rbx).unwrap(); // EDX += 7
    a.mov(rdi, DATA_ADDR + 0x808).unwrap(); // (no store: the function's page stays valid)
    a.call(rbx).unwrap(); // EDX += 9
    a.ud2().unwrap();
    let case = code_case(a.assemble(CODE_ADDR).unwrap(), data, 20);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(interpreted.regs[2], 16, "interpreter: 7 then 9");
    assert!(ran > 0, "nothing ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
}

/// Flag readers right after a flag writer (SETcc and CMOVcc testing the host's flags as
/// the writer left them) and further away (from RFLAGS: SAHF and an overflow for OF, one
/// BT for ADC's CF), for every condition, several writers and operands that set each
/// flag: the translated results equal the interpreter's.
#[test]
fn translated_flag_readers_match_the_interpreter() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    // Writers as (opcode bytes, mnemonic): CMP EAX,ECX; ADD EAX,ECX; SUB RAX,RCX;
    // IMUL EAX,ECX; TEST EAX,ECX; INC EAX (CF kept from before).
    let writers: [(&[u8], &str); 6] = [
        (&[0x39, 0xc8], "cmp"),
        (&[0x01, 0xc8], "add"),
        (&[0x48, 0x29, 0xc8], "sub"),
        (&[0x0f, 0xaf, 0xc1], "imul"),
        (&[0x85, 0xc8], "test"),
        (&[0xff, 0xc0], "inc"),
    ];
    let operands: [(u32, u32); 7] = [
        (0, 0),
        (1, 2),
        (2, 1),
        (0x7fff_ffff, 1),
        (0x8000_0000, 1),
        (0xffff_ffff, 1),
        (0x4000_0000, 4),
    ];
    // One case per writer, operands and condition (the harness runs 64 instructions).
    let mut translated_total = 0;
    for (writer, what) in writers {
        for (x, y) in operands {
            for cc in 0u8..16 {
                // IMUL leaves SF, ZF, AF and PF undefined: only its O and B conditions.
                let imul = what == "imul";
                if imul && cc > 3 {
                    continue;
                }
                let mut a = CodeAssembler::new(64).unwrap();
                a.mov(eax, x).unwrap();
                a.mov(ecx, y).unwrap();
                a.mov(edi, 1u32).unwrap();
                a.mov(rbx, DATA_ADDR).unwrap();
                // A fused SETcc, then an unfused CMOVcc (the SETcc took the host's flags).
                a.db(writer).unwrap();
                a.db(&[0x0f, 0x90 + cc, 0xc2]).unwrap(); // setcc dl
                a.db(&[0x0f, 0x40 + cc, 0xf7]).unwrap(); // cmovcc esi, edi
                                                         // A fused CMOVcc, then ADC reading CF from RFLAGS.
                a.mov(eax, x).unwrap();
                a.db(writer).unwrap();
                a.db(&[0x44, 0x0f, 0x40 + cc, 0xc7]).unwrap(); // cmovcc r8d, edi
                a.adc(r9d, 0).unwrap();
                // A CMOVcc from memory right after a writer (its load's TLB lookup
                // clobbers the host's flags: not fused).
                a.mov(eax, x).unwrap();
                a.db(writer).unwrap();
                a.db(&[0x44, 0x0f, 0x40 + cc, 0x13]).unwrap(); // cmovcc r10d, [rbx]
                                                               // A shift by CL = 0 keeps every flag (OF too) of the writer before it.
                a.mov(eax, x).unwrap();
                a.mov(ecx, y).unwrap();
                a.db(writer).unwrap();
                a.mov(ecx, 0u32).unwrap();
                a.shl(edx, cl).unwrap();
                a.ud2().unwrap();
                let mut data = vec![0; DATA_SIZE];
                data[0] = 7;
                let case = code_case(a.assemble(CODE_ADDR).unwrap(), data, 30);
                let (interpreted, translated, ran) = interpreted_and_translated(&case);
                translated_total += ran;
                let at = format!("{what} {x:#x}, {y:#x}, condition {cc:#x}");
                assert_eq!(translated.regs, interpreted.regs, "{at}: registers");
                let defined = if imul { !0xd4 } else { !0 };
                assert_eq!(
                    translated.rflags & defined,
                    interpreted.rflags & defined,
                    "{at}: RFLAGS"
                );
                assert_eq!(translated.rip, interpreted.rip, "{at}: RIP");
            }
        }
    }
    assert!(translated_total > 0, "nothing ran translated");
}

/// Guest registers a block keeps copies of in host registers: every way an instruction
/// writes one — an ordinary destination, a partial (8- and 16-bit, AH) write, MUL's and
/// DIV's RDX:RAX, CQO, PUSH and POP moving RSP, POP's destination, an instruction the
/// interpreter runs inside the block, MOVD and PMOVMSKB from XMM — is seen by the
/// instructions after it in the same block.
#[test]
fn translated_register_copies_follow_every_write() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rsp, DATA_ADDR + 0x800).unwrap();
    a.mov(rax, 0x1234_5678_9abc_def1u64).unwrap();
    a.mov(rcx, 0x0fed_cba9_8765_4321u64).unwrap();
    a.mov(rbx, rax).unwrap();
    a.mul(rcx).unwrap(); // RDX:RAX
    a.add(rbx, rax).unwrap();
    a.add(rbx, rdx).unwrap();
    a.cqo().unwrap(); // RDX
    a.xor(rbx, rdx).unwrap();
    a.mov(ah, cl).unwrap(); // AH
    a.add(rbx, rax).unwrap();
    a.mov(ax, cx).unwrap(); // 16 bits
    a.add(rbx, rax).unwrap();
    a.mov(al, 0x5au32).unwrap(); // 8 bits
    a.add(rbx, rax).unwrap();
    a.push(rbx).unwrap(); // RSP
    a.add(rbx, rsp).unwrap();
    a.pop(rcx).unwrap(); // RSP and RCX
    a.add(rbx, rsp).unwrap();
    a.add(rbx, rcx).unwrap();
    a.bswap(rax).unwrap(); // the interpreter, inside the block
    a.add(rbx, rax).unwrap();
    a.movq(xmm0, rbx).unwrap();
    a.movd(eax, xmm0).unwrap(); // from XMM
    a.add(rbx, rax).unwrap();
    a.pmovmskb(ecx, xmm0).unwrap();
    a.add(rbx, rcx).unwrap();
    a.xor(edx, edx).unwrap();
    a.mov(ecx, 7u32).unwrap();
    a.div(rcx).unwrap(); // RDX:RAX
    a.add(rbx, rax).unwrap();
    a.add(rbx, rdx).unwrap();
    a.add(rax, rbx).unwrap();
    a.add(rcx, rax).unwrap();
    a.add(rdx, rcx).unwrap();
    a.ud2().unwrap();
    let case = code_case(a.assemble(CODE_ADDR).unwrap(), vec![0; DATA_SIZE], 64);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert!(ran > 30, "the block ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
    assert_eq!(translated.data, interpreted.data);
}

/// Register copies are written back lazily: a copy written by the common forms stays
/// dirty until something else looks at `Cpu::regs`. Each body makes copies dirty, then
/// reaches them another way: a high-byte write, a shift by CL, MUL, PUSH, the interpreter
/// in place, a soft-TLB miss's slow path, a fault there, and a loop whose Jcc leaves the
/// block on its taken way.
#[test]
fn translated_dirty_register_copies_reach_every_reader() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    type Body = fn(&mut CodeAssembler);
    let bodies: [(&str, Body); 8] = [
        ("high byte", |a| {
            a.mov(ah, 0x5au32).unwrap();
            a.add(ebx, eax).unwrap();
        }),
        ("shift by CL", |a| {
            a.shl(rbx, cl).unwrap();
            a.add(rbx, rcx).unwrap();
        }),
        ("mul", |a| {
            a.mul(rcx).unwrap();
            a.add(rbx, rdx).unwrap();
        }),
        ("push", |a| {
            a.push(rax).unwrap();
            a.pop(rdx).unwrap();
            a.add(rbx, rdx).unwrap();
        }),
        ("interpreter in place", |a| {
            a.cpuid().unwrap();
            a.add(rbx, rcx).unwrap();
        }),
        // The first access to the data page misses in the soft TLB.
        ("slow path", |a| {
            a.mov(qword_ptr(rsi + rcx * 8), rax).unwrap();
            a.add(rbx, qword_ptr(rsi + 8)).unwrap();
        }),
        ("fault", |a| {
            a.mov(rdx, 0x8000_0000_0000_0000u64).unwrap();
            a.mov(qword_ptr(rdx), rbx).unwrap();
        }),
        ("loop", |a| {
            let mut top = a.create_label();
            a.set_label(&mut top).unwrap();
            a.add(rax, rcx).unwrap();
            a.xor(rbx, rax).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(top).unwrap();
            a.add(rbx, rax).unwrap();
        }),
    ];
    for (what, body) in bodies {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rsp, DATA_ADDR + 0x800).unwrap();
        a.mov(rsi, DATA_ADDR).unwrap();
        a.mov(eax, 0x1234_5678u32).unwrap();
        a.mov(ecx, 5u32).unwrap();
        // RAX, RBX and RCX written twice or more: copies, dirty.
        a.add(eax, 0x1111u32).unwrap();
        a.lea(rbx, qword_ptr(rax + rcx * 2 + 3)).unwrap();
        a.add(ecx, 1).unwrap();
        a.xor(rbx, rcx).unwrap();
        body(&mut a);
        a.add(rax, rbx).unwrap();
        a.add(rcx, rax).unwrap();
        a.ud2().unwrap();
        let case = code_case(a.assemble(CODE_ADDR).unwrap(), vec![0; DATA_SIZE], 60);
        let (interpreted, translated, ran) = interpreted_and_translated(&case);
        assert!(ran > 5, "{what}: the block ran translated");
        assert_eq!(translated.regs, interpreted.regs, "{what}: registers");
        assert_eq!(translated.rip, interpreted.rip, "{what}: RIP");
        assert_eq!(
            translated.exception, interpreted.exception,
            "{what}: exception"
        );
        assert_eq!(translated.data, interpreted.data, "{what}: memory");
    }
}

/// x87 instructions run by the interpreter inside a block, decoded at translation: the
/// last-instruction pointers FNSTENV reports (FIP, FDP and the opcode, which the block
/// passes from the bytes it decoded) are the interpreter's own. (The host cannot be the
/// oracle here: AMD parts store FOP only with an exception pending.)
#[test]
fn translated_x87_keeps_the_last_instruction_pointers() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.mov(rsi, DATA_ADDR).unwrap();
    a.mov(ecx, 3u32).unwrap();
    a.set_label(&mut top).unwrap();
    a.fld(qword_ptr(rsi + rcx * 8)).unwrap();
    a.fadd_2(st0, st0).unwrap();
    a.fstp(qword_ptr(rsi + rcx * 8 + 0x40)).unwrap();
    // 0x20 bytes per round: RDX = RCX * 32.
    a.lea(rdx, qword_ptr(rcx * 8)).unwrap();
    a.shl(rdx, 2).unwrap();
    a.fnstenv(ptr(rsi + rdx + 0x100)).unwrap();
    a.fld1().unwrap();
    a.fstp(st0).unwrap();
    a.fnstenv(ptr(rsi + rdx + 0x200)).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.ud2().unwrap();
    let mut data = vec![0; DATA_SIZE];
    for (k, v) in [1.5f64, -2.25, 1e300, 3.0].iter().enumerate() {
        data[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    let case = code_case(a.assemble(CODE_ADDR).unwrap(), data, 40);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert!(ran > 10, "the loop ran translated");
    assert_ne!(interpreted.data[0x120..0x140], [0; 0x20], "FNSTENV stored");
    assert_eq!(translated.data, interpreted.data);
    assert_eq!(translated.regs, interpreted.regs);
}

/// An ALU operation's flags that only a fault could see are not captured: the slow path of
/// a load or store that faults computes them again from the operation's operands. Each
/// operation here is followed by a load (through a non-canonical address: #GP, or a first
/// access to the data page: a soft-TLB miss that does not fault) and then a CMP that
/// overwrites every flag; at the fault RFLAGS must be the operation's.
#[test]
fn translated_flags_left_to_slow_paths_are_exact_at_faults() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    type Op = fn(&mut CodeAssembler);
    let ops: [(&str, Op); 11] = [
        ("add 32", |a| a.add(eax, ecx).unwrap()),
        ("add 64", |a| a.add(rax, rcx).unwrap()),
        ("add imm", |a| a.add(eax, 0x7fff_ffff).unwrap()),
        ("sub 32", |a| a.sub(eax, ecx).unwrap()),
        ("sub 64 imm", |a| a.sub(rax, -3).unwrap()),
        ("and", |a| a.and(eax, ecx).unwrap()),
        ("or 64", |a| a.or(rax, rcx).unwrap()),
        ("xor", |a| a.xor(eax, 0x8000_0000u32 as i32).unwrap()),
        ("cmp", |a| a.cmp(eax, ecx).unwrap()),
        ("cmp 64 imm", |a| a.cmp(rax, 5).unwrap()),
        ("test", |a| a.test(eax, ecx).unwrap()),
    ];
    let values: [(u64, u64); 3] = [
        (0x7fff_ffff, 1),
        (0xffff_ffff_8000_0000, 0x8000_0000),
        (5, 5),
    ];
    for (what, op) in ops {
        for (x, y) in values {
            for (base, store) in [(0x8000_0000_0000_0000u64, false), (DATA_ADDR, true)] {
                let mut a = CodeAssembler::new(64).unwrap();
                a.mov(rbx, base).unwrap();
                a.mov(rax, x).unwrap();
                a.mov(rcx, y).unwrap();
                op(&mut a);
                if store {
                    a.mov(qword_ptr(rbx + 8), rax).unwrap();
                }
                // INC writes all flags but CF (and takes CF from R15): the operation's
                // flags are no longer the ones a fault sees, nor is its CF dead.
                if x == 5 {
                    a.inc(esi).unwrap();
                }
                a.mov(rdx, qword_ptr(rbx)).unwrap();
                a.cmp(edx, 0x1234).unwrap();
                a.setb(dl).unwrap();
                a.add(rax, rcx).unwrap();
                a.ud2().unwrap();
                let case = code_case(a.assemble(CODE_ADDR).unwrap(), vec![0; DATA_SIZE], 12);
                let (interpreted, translated, ran) = interpreted_and_translated(&case);
                let what = format!("{what} {x:#x} {y:#x} at {base:#x}");
                assert!(ran > 0, "{what}: nothing ran translated");
                assert_eq!(translated.rflags, interpreted.rflags, "{what}: RFLAGS");
                assert_eq!(translated.regs, interpreted.regs, "{what}: registers");
                assert_eq!(translated.rip, interpreted.rip, "{what}: RIP");
                assert_eq!(
                    translated.exception, interpreted.exception,
                    "{what}: exception"
                );
                assert_eq!(translated.data, interpreted.data, "{what}: memory");
            }
        }
    }
}

/// A JNZ crossing into the next page (no block can hold it: the interpreter runs it without
/// leaving the translated run) jumps back into the page of the block that jumped to it.
/// That block's jump, waiting to be chained to the JNZ, must not be chained to where the
/// JNZ went.
#[test]
fn translated_jump_to_an_instruction_crossing_pages() {
    use testsuite::difftest::{CODE_ADDR, DATA_SIZE};

    let mut code = vec![0xcc; 0x2000];
    // MOV ECX, 5; XOR EAX, EAX; JMP 0xf81.
    code[..12].copy_from_slice(&[0xb9, 5, 0, 0, 0, 0x31, 0xc0, 0xe9, 0x75, 0x0f, 0, 0]);
    // 0xf81: ADD EAX, 3; DEC ECX; JMP 0xfff.
    code[0xf81..0xf88].copy_from_slice(&[0x83, 0xc0, 0x03, 0xff, 0xc9, 0xeb, 0x77]);
    // 0xfff: JNZ 0xf81 (75 80: its displacement in the next page); then UD2.
    code[0xfff] = 0x75;
    code[0x1000] = 0x80;
    code[0x1001..0x1003].copy_from_slice(&[0x0f, 0x0b]);
    let case = code_case(code, vec![0; DATA_SIZE], 30);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(interpreted.regs[0], 15, "interpreter: five rounds");
    assert_eq!(interpreted.rip, CODE_ADDR + 0x1001);
    assert!(ran > 0, "nothing ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
    assert_eq!(translated.exception, interpreted.exception);
}

/// An instruction crossing into the next page runs as a block of its own, valid while that
/// page's code is: here a loop stores into the crossing ADD's immediate (its bytes in the
/// second page) after the first round, so later rounds must add the new value.
#[test]
fn translated_instruction_crossing_pages_sees_stores_to_its_second_page() {
    use testsuite::difftest::{CODE_ADDR, DATA_SIZE};

    let mut code = vec![0xcc; 0x2000];
    // MOV ECX, 3; XOR EAX, EAX; JMP 0xffd.
    code[..12].copy_from_slice(&[0xb9, 3, 0, 0, 0, 0x31, 0xc0, 0xe9, 0xf1, 0x0f, 0, 0]);
    // 0xffd: ADD EAX, 1 (05 imm32: its last two bytes in the second page).
    code[0xffd..0x1002].copy_from_slice(&[0x05, 1, 0, 0, 0]);
    // 0x1002: MOV BYTE [RIP - 8], 1 (the immediate's top byte, 0x1001); DEC ECX;
    // JNZ 0xffd; UD2.
    code[0x1002..0x100f].copy_from_slice(&[
        0xc6, 0x05, 0xf8, 0xff, 0xff, 0xff, 1, 0xff, 0xc9, 0x75, 0xf0, 0x0f, 0x0b,
    ]);
    let case = code_case(code, vec![0; DATA_SIZE], 30);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(
        interpreted.regs[0], 0x0200_0003,
        "interpreter: 1 + 2 × 0x01000001"
    );
    assert_eq!(interpreted.rip, CODE_ADDR + 0x100d);
    assert!(ran > 0, "nothing ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
    assert_eq!(translated.exception, interpreted.exception);
}

/// The SSE instructions the translator runs as host code of their own that the generated
/// classes reach seldom: the scalar moves (MOVSD, MOVSS, MOVQ, MOVD with memory; between
/// registers MOVSD and MOVSS keep the rest of the destination, MOVQ clears it), PSHUFB, and
/// PCMPISTRI (ECX and flags, a misaligned memory operand) — against the host CPU.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translated_scalar_moves_and_string_compares_match_the_host() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    let mut data = vec![0u8; DATA_SIZE];
    for (k, b) in data.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(37).wrapping_add(11);
    }
    for (at, text) in [
        (0x200, &b"hello, world\0abcdefghijklmnopqrs"[..]),
        (0x240, b"lo, w\0z"),
    ] {
        data[at..at + text.len()].copy_from_slice(text);
    }
    type Body = Box<dyn Fn(&mut CodeAssembler)>;
    let mut bodies: Vec<(String, Body)> = vec![
        (
            "scalar moves".into(),
            Box::new(|a: &mut CodeAssembler| {
                a.movsd_2(xmm0, xmm1).unwrap();
                a.movss(xmm1, xmm2).unwrap();
                a.movq(xmm3, xmm4).unwrap();
                a.movsd_2(xmm5, qword_ptr(rbx + 40)).unwrap();
                a.movss(xmm6, dword_ptr(rbx + 52)).unwrap();
                a.movq(xmm7, qword_ptr(rbx + 8)).unwrap();
                a.movd(xmm8, dword_ptr(rbx + 4)).unwrap();
                a.movsd_2(qword_ptr(rbx + 64), xmm9).unwrap();
                a.movss(dword_ptr(rbx + 80), xmm10).unwrap();
                a.movq(qword_ptr(rbx + 96), xmm11).unwrap();
                a.movd(dword_ptr(rbx + 113), xmm12).unwrap();
            }),
        ),
        (
            "pshufb".into(),
            Box::new(|a: &mut CodeAssembler| {
                a.pshufb(xmm0, xmm1).unwrap();
                a.pshufb(xmm2, xmmword_ptr(rbx + 48)).unwrap();
            }),
        ),
    ];
    for imm in [
        0x00u32, 0x04, 0x08, 0x0c, 0x18, 0x1a, 0x3a, 0x40, 0x44, 0x4c, 0x70,
    ] {
        bodies.push((
            format!("pcmpistri {imm:#x}"),
            Box::new(move |a: &mut CodeAssembler| {
                a.movdqu(xmm0, xmmword_ptr(rbx + 0x240)).unwrap();
                a.pcmpistri(xmm0, xmmword_ptr(rbx + 0x203), imm).unwrap();
                a.mov(edx, ecx).unwrap();
                a.movdqu(xmm1, xmmword_ptr(rbx + 0x200)).unwrap();
                a.pcmpistri(xmm1, xmm0, imm).unwrap();
                a.adc(edx, ecx).unwrap();
            }),
        ));
    }
    for (what, body) in &bodies {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rbx, DATA_ADDR).unwrap();
        body(&mut a);
        a.ud2().unwrap();
        let mut case = code_case(a.assemble(CODE_ADDR).unwrap(), data.clone(), 20);
        for (k, x) in case.xmm.iter_mut().enumerate() {
            *x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128.rotate_left(8 * k as u32)
                ^ (k as u128 * 0x1111);
        }
        check_translated(&mut differ, &case, what);
    }
}

/// The instructions blocks run as the host's own since the interpreter ran them in place:
/// scalar SSE floating point (under MXCSR's reset controls the host's; with other
/// rounding, or exception flags already set, the interpreter's or the host's with the
/// flags kept), CMPXCHG and XCHG with memory, BSWAP, POPCNT/LZCNT/TZCNT; and flag writers
/// whose flags a later instruction overwrites only in part — against the host CPU.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translated_floating_point_atomics_and_bit_counts_match_the_host() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    let mut data = vec![0u8; DATA_SIZE];
    for (k, b) in data.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(37).wrapping_add(11);
    }
    // Doubles and floats worth computing with, and a 32-bit integer.
    for (at, v) in [
        (0x100, 3.25f64),
        (0x108, -0.1),
        (0x110, 1e300),
        (0x118, 2.5e9),
    ] {
        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    data[0x120..0x124].copy_from_slice(&7.5f32.to_le_bytes());
    data[0x124..0x128].copy_from_slice(&(-123456i32).to_le_bytes());
    type Body = Box<dyn Fn(&mut CodeAssembler)>;
    let bodies: Vec<(&str, Body)> = vec![
        (
            "scalar floating point",
            Box::new(|a: &mut CodeAssembler| {
                a.movsd_2(xmm0, qword_ptr(rbx + 0x100)).unwrap();
                a.movsd_2(xmm1, qword_ptr(rbx + 0x108)).unwrap();
                a.addsd(xmm0, xmm1).unwrap();
                a.subsd(xmm2, qword_ptr(rbx + 0x110)).unwrap();
                a.mulsd(xmm0, qword_ptr(rbx + 0x110)).unwrap();
                a.mulsd(xmm0, qword_ptr(rbx + 0x110)).unwrap();
                a.divsd(xmm1, xmm0).unwrap();
                a.xorpd(xmm9, xmm9).unwrap();
                a.divsd(xmm3, xmm9).unwrap();
                a.sqrtsd(xmm4, xmm1).unwrap();
                a.minsd(xmm5, xmm1).unwrap();
                a.maxsd(xmm6, qword_ptr(rbx + 0x100)).unwrap();
                a.addss(xmm7, dword_ptr(rbx + 0x120)).unwrap();
                a.mulss(xmm8, xmm7).unwrap();
                a.divss(xmm10, xmm7).unwrap();
                a.cvtsd2ss(xmm11, xmm0).unwrap();
                a.cvtss2sd(xmm12, dword_ptr(rbx + 0x120)).unwrap();
                a.mov(rax, -12345i64).unwrap();
                a.cvtsi2sd(xmm13, rax).unwrap();
                a.cvtsi2sd(xmm14, dword_ptr(rbx + 0x124)).unwrap();
                a.cvtsi2ss(xmm15, eax).unwrap();
                a.cvttsd2si(ecx, qword_ptr(rbx + 0x118)).unwrap();
                a.cvtsd2si(rdx, qword_ptr(rbx + 0x118)).unwrap();
                a.cvttsd2si(rsi, xmm0).unwrap();
                a.cvttss2si(edi, xmm7).unwrap();
                a.comisd(xmm1, qword_ptr(rbx + 0x100)).unwrap();
                a.setb(r8b).unwrap();
                a.ucomisd(xmm0, xmm0).unwrap();
                a.setp(r9b).unwrap();
                a.comiss(xmm7, xmm15).unwrap();
                a.adc(r10d, 0).unwrap();
            }),
        ),
        (
            "atomics",
            Box::new(|a: &mut CodeAssembler| {
                a.mov(ecx, 0x1234_5678).unwrap();
                a.mov(rax, -1i64).unwrap();
                // Fails: EAX gets the memory (zero-extended); then succeeds.
                a.lock().cmpxchg(dword_ptr(rbx + 8), ecx).unwrap();
                a.setz(dl).unwrap();
                a.cmpxchg(dword_ptr(rbx + 8), ecx).unwrap();
                a.setz(dh).unwrap();
                a.mov(rax, qword_ptr(rbx + 16)).unwrap();
                a.lock().cmpxchg(qword_ptr(rbx + 16), rbx).unwrap();
                a.mov(esi, 77).unwrap();
                a.xchg(dword_ptr(rbx + 24), esi).unwrap();
                a.xchg(qword_ptr(rbx + 32), rdi).unwrap();
                a.mov(r8, qword_ptr(rbx + 8)).unwrap();
                a.mov(r9, qword_ptr(rbx + 16)).unwrap();
                // Fails again, now with the page in the soft TLB.
                a.mov(rax, -5i64).unwrap();
                a.lock().cmpxchg(dword_ptr(rbx + 8), edx).unwrap();
                // Misaligned, across a cache line: the interpreter's (no host split lock).
                a.mov(eax, dword_ptr(rbx + 0x3e)).unwrap();
                a.lock().cmpxchg(dword_ptr(rbx + 0x3e), esi).unwrap();
                a.xchg(qword_ptr(rbx + 0x7c), rcx).unwrap();
                a.mov(r10, qword_ptr(rbx + 0x3c)).unwrap();
                a.mov(r11, qword_ptr(rbx + 0x78)).unwrap();
            }),
        ),
        (
            "bit counts",
            Box::new(|a: &mut CodeAssembler| {
                a.lea(rsp, qword_ptr(rbx + 0x800)).unwrap();
                a.mov(ecx, 0x00f0_0100).unwrap();
                // Its flags as they go to RFLAGS on the way into the interpreter (PUSHFQ):
                // all of them, the reserved bit 1 too.
                a.popcnt(eax, ecx).unwrap();
                a.pushfq().unwrap();
                a.pop(r15).unwrap();
                a.popcnt(eax, ecx).unwrap();
                a.setz(r8b).unwrap();
                a.lzcnt(rdx, qword_ptr(rbx + 40)).unwrap();
                a.setc(r9b).unwrap();
                a.tzcnt(esi, ecx).unwrap();
                a.tzcnt(edi, r11d).unwrap();
                a.setc(r10b).unwrap();
                a.setz(r12b).unwrap();
                a.lzcnt(r13d, ecx).unwrap();
                a.bswap(ecx).unwrap();
                a.bswap(rdx).unwrap();
                a.mov(r14, rdx).unwrap();
                a.bswap(r14d).unwrap();
                // The flags the manual leaves undefined are overwritten.
                a.cmp(eax, ecx).unwrap();
            }),
        ),
        (
            "read-modify-write",
            Box::new(|a: &mut CodeAssembler| {
                a.mov(eax, 0x7fff_ffffu32).unwrap();
                // The first write to the page misses the soft TLB (the interpreter runs
                // it, with the CMP's flags: a rotate by zero keeps them); the rest hit.
                a.cmp(eax, -1).unwrap();
                a.rcl(dword_ptr(rbx + 0x70), 0).unwrap();
                a.adc(r15d, 0).unwrap();
                a.add(dword_ptr(rbx + 0x40), eax).unwrap();
                a.adc(ecx, 0).unwrap();
                a.sbb(dword_ptr(rbx + 0x44), 1).unwrap();
                a.seto(dl).unwrap();
                a.inc(byte_ptr(rbx + 0x48)).unwrap();
                a.setz(dh).unwrap();
                a.shl(qword_ptr(rbx + 0x50), 3).unwrap();
                a.adc(r8d, 0).unwrap();
                a.cmp(eax, -1).unwrap();
                a.rcl(dword_ptr(rbx + 0x58), 0).unwrap();
                a.adc(r9d, 0).unwrap();
                a.not(word_ptr(rbx + 0x5a)).unwrap();
                a.neg(dword_ptr(rbx + 0x5c)).unwrap();
                a.sbb(r10d, 0).unwrap();
                a.mov(r11, -3i64).unwrap();
                a.shrd(qword_ptr(rbx + 0x60), r11, 4).unwrap();
                a.xor(word_ptr(rbx + 0x6a), 0x1234).unwrap();
                a.sets(r12b).unwrap();
                a.mov(r13, qword_ptr(rbx + 0x40)).unwrap();
                a.mov(r14, qword_ptr(rbx + 0x58)).unwrap();
            }),
        ),
        (
            "flags overwritten in part",
            Box::new(|a: &mut CodeAssembler| {
                a.mov(eax, -1i32).unwrap();
                a.mov(ecx, 1).unwrap();
                // CF from the ADD outlives the INC (which leaves CF alone) and the moves.
                a.add(eax, ecx).unwrap();
                a.mov(edx, ecx).unwrap();
                a.lea(rsi, qword_ptr(rdx + 4)).unwrap();
                a.inc(edx).unwrap();
                a.adc(edi, 0).unwrap();
                // OF and CF of the SUB outlive a NOT and a BSWAP.
                a.mov(eax, 0x8000_0000u32).unwrap();
                a.sub(eax, 1).unwrap();
                a.not(edx).unwrap();
                a.bswap(esi).unwrap();
                a.seto(r8b).unwrap();
                a.dec(ecx).unwrap();
                a.adc(r9d, 0).unwrap();
            }),
        ),
    ];
    for (what, body) in &bodies {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rbx, DATA_ADDR).unwrap();
        body(&mut a);
        a.ud2().unwrap();
        let code = a.assemble(CODE_ADDR).unwrap();
        // MXCSR's reset value; exception flags already set; rounding down (the
        // interpreter's); denormals as zero.
        for mxcsr in [0x1f80, 0x1fbf, 0x3f80, 0x1fc0] {
            let mut case = code_case(code.clone(), data.clone(), 60);
            case.mxcsr = mxcsr;
            for (k, x) in case.xmm.iter_mut().enumerate() {
                *x = u128::from((k as f64 * 1.75 - 6.0).to_bits())
                    | u128::from((k as f32 * 0.5).to_bits()) << 64;
            }
            check_translated(&mut differ, &case, &format!("{what}, MXCSR {mxcsr:#x}"));
        }
    }
}

/// The status flags pass from block to block in R15 (RFLAGS is written only on the way
/// to the dispatcher): through chained jumps, both ways of a Jcc, the jump cache (indirect
/// jumps, CALL and RET), a loop of DECs that must keep an older CF, partial writers
/// (rotates, BT) that keep the rest, an instruction run by the interpreter between two
/// blocks, and a fault in a later block that must find the earlier block's flags —
/// against the host CPU.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translated_flags_pass_between_blocks() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    type Body = fn(&mut CodeAssembler);
    let bodies: [(&str, Body); 7] = [
        ("chained jumps and both ways of a Jcc", |a| {
            let (mut l1, mut l2, mut l3) = (a.create_label(), a.create_label(), a.create_label());
            a.lea(rsp, qword_ptr(rbx + 0x800)).unwrap();
            a.mov(eax, -1i32).unwrap();
            a.add(eax, 1).unwrap(); // CF ZF PF AF
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            a.adc(ecx, 0).unwrap();
            a.cmp(ecx, 1).unwrap();
            a.je(l2).unwrap(); // taken
            a.ud2().unwrap();
            a.set_label(&mut l2).unwrap();
            a.sete(dl).unwrap();
            a.sub(ecx, 2).unwrap(); // CF SF
            a.jz(l3).unwrap(); // not taken
            a.sbb(esi, 0).unwrap();
            a.set_label(&mut l3).unwrap();
            a.pushfq().unwrap();
            a.pop(rdi).unwrap();
        }),
        ("a DEC loop keeps the CF before it", |a| {
            // Blocks start with the host's CF set (their budget check): the guest's is clear.
            let (mut top, mut l1, mut l2) = (a.create_label(), a.create_label(), a.create_label());
            a.mov(ecx, 7).unwrap();
            a.clc().unwrap();
            a.set_label(&mut top).unwrap();
            a.inc(edx).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(top).unwrap();
            a.adc(eax, 0).unwrap();
            a.mov(ecx, 1).unwrap();
            a.cmp(ecx, 0).unwrap(); // CF clear
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            a.dec(ecx).unwrap(); // ZF; CF kept
            a.adc(esi, 0).unwrap();
            a.stc().unwrap();
            a.jmp(l2).unwrap();
            a.set_label(&mut l2).unwrap();
            a.inc(edi).unwrap();
            a.adc(r8d, 0).unwrap();
        }),
        ("partial writers keep the rest", |a| {
            let (mut l1, mut l2) = (a.create_label(), a.create_label());
            a.mov(eax, 0x8000_0001u32).unwrap();
            a.cmp(eax, eax).unwrap(); // ZF
            a.rol(eax, 1).unwrap(); // CF OF only
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            a.setz(cl).unwrap();
            a.setc(ch).unwrap();
            a.mov(edx, 0x10).unwrap();
            a.test(edx, edx).unwrap(); // ZF clear
            a.bt(edx, 4).unwrap(); // CF only
            a.jmp(l2).unwrap();
            a.set_label(&mut l2).unwrap();
            a.setnz(sil).unwrap();
            a.adc(edi, 0).unwrap();
        }),
        ("the jump cache: indirect jump, call and return", |a| {
            let (mut there, mut func, mut back) =
                (a.create_label(), a.create_label(), a.create_label());
            a.lea(rsp, qword_ptr(rbx + 0x800)).unwrap();
            a.lea(rsi, qword_ptr(there)).unwrap();
            a.mov(eax, 0x7fff_ffffu32).unwrap();
            a.add(eax, 1).unwrap(); // OF SF
            a.jmp(rsi).unwrap();
            a.set_label(&mut there).unwrap();
            a.seto(cl).unwrap();
            a.cmp(eax, 0).unwrap(); // no CF
            a.stc().unwrap();
            a.call(func).unwrap();
            a.jmp(back).unwrap();
            a.set_label(&mut func).unwrap();
            a.adc(edx, 0).unwrap();
            a.neg(edx).unwrap(); // CF
            a.ret().unwrap();
            a.set_label(&mut back).unwrap();
            a.sbb(edi, 0).unwrap();
        }),
        ("an interpreted instruction between blocks", |a| {
            let (mut l1, mut l2) = (a.create_label(), a.create_label());
            a.lea(rsp, qword_ptr(rbx + 0x800)).unwrap();
            a.mov(eax, 5).unwrap();
            a.sub(eax, 6).unwrap(); // CF SF
            a.pushfq().unwrap(); // the interpreter's, in the block
            a.pop(rcx).unwrap();
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            a.adc(edx, 0).unwrap();
            a.mov(rsi, 0x08d5u64).unwrap(); // every status flag
            a.push(rsi).unwrap();
            a.popfq().unwrap();
            a.jmp(l2).unwrap();
            a.set_label(&mut l2).unwrap();
            a.adc(edi, 0).unwrap();
            a.seto(r8b).unwrap();
        }),
        ("a fault in a later block", |a| {
            let mut l1 = a.create_label();
            a.mov(eax, -1i32).unwrap();
            a.add(eax, 1).unwrap();
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            a.mov(rdx, 0x8000_0000_0000_0000u64).unwrap();
            a.mov(rcx, qword_ptr(rdx)).unwrap(); // #GP: RFLAGS from the first block
        }),
        ("a store into the running page after flags", |a| {
            let mut l1 = a.create_label();
            a.mov(eax, -1i32).unwrap();
            a.add(eax, 1).unwrap();
            a.jmp(l1).unwrap();
            a.set_label(&mut l1).unwrap();
            // A store to the code page (a fault or code written, as on the host) with the
            // flags of the block before and an INC's pending.
            a.inc(edx).unwrap();
            a.lea(rsi, qword_ptr(l1)).unwrap();
            a.mov(byte_ptr(rsi), 0x90u32).unwrap();
        }),
    ];
    for (what, body) in bodies {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rbx, DATA_ADDR).unwrap();
        body(&mut a);
        a.ud2().unwrap();
        let code = a.assemble(CODE_ADDR).unwrap();
        check_translated(&mut differ, &code_case(code, vec![0; DATA_SIZE], 80), what);
    }
}

/// 32-bit code through the translator (compatibility mode, as the differential classes run
/// it): CALL and RET direct, through a register and through memory; PUSH and POP (POP ESP
/// too) with ESP-based operands in a loop; addresses wrapping at 4 GiB (base plus index,
/// and a displacement); FS and GS, unusable here, faulting through the slow path; a jump
/// table — against the host CPU.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translated_compat_code_matches_the_host() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    type Body = fn(&mut CodeAssembler);
    let bodies: [(&str, Body); 7] = [
        // REP STOS and MOVS with 32-bit addressing, in a loop so later rounds find their
        // pages in the soft TLB (the host's own string instructions).
        ("rep stos and movs", |a| {
            let mut top = a.create_label();
            a.mov(edx, 4).unwrap();
            a.set_label(&mut top).unwrap();
            a.lea(edi, dword_ptr(ebx + edx * 8 + 0x100)).unwrap();
            a.lea(eax, dword_ptr(edx + 0x41)).unwrap();
            a.mov(ecx, 37).unwrap();
            a.rep().stosb().unwrap();
            a.mov(ebp, edi).unwrap();
            a.lea(esi, dword_ptr(ebx + 0x100)).unwrap();
            a.lea(edi, dword_ptr(ebx + edx * 4 + 0x400)).unwrap();
            a.mov(ecx, 9).unwrap();
            a.rep().movsd().unwrap();
            a.add(ebp, ecx).unwrap();
            a.dec(edx).unwrap();
            a.jnz(top).unwrap();
            a.mov(eax, dword_ptr(ebx + 0x410)).unwrap();
        }),
        ("calls and returns", |a| {
            // The CALL pushes the function's address (right after it) for `main` to pop.
            let (mut main, mut func) = (a.create_label(), a.create_label());
            a.call(main).unwrap();
            a.set_label(&mut func).unwrap();
            a.lea(eax, dword_ptr(eax + ecx * 2 + 1)).unwrap();
            a.add(ecx, 1).unwrap();
            a.ret().unwrap();
            a.set_label(&mut main).unwrap();
            a.pop(edx).unwrap();
            a.mov(dword_ptr(ebx), edx).unwrap();
            a.mov(ecx, 3).unwrap();
            a.call(edx).unwrap();
            a.call(dword_ptr(ebx)).unwrap();
            a.call(func).unwrap();
            a.push(eax).unwrap();
            a.push(ecx).unwrap();
            a.pop(esi).unwrap();
            a.pop(edi).unwrap();
            // PUSH of immediates and of memory (addressed from ESP before the push).
            a.push(0x1234_5678).unwrap();
            a.push(-5).unwrap();
            a.push(dword_ptr(esp + 4)).unwrap();
            a.pop(eax).unwrap();
            a.pop(ecx).unwrap();
            a.pop(edx).unwrap();
            a.mov(dword_ptr(ebx + 0x7f0), 0x1234_5678u32).unwrap();
            a.lea(esp, dword_ptr(ebx + 0x7f0)).unwrap();
            a.pop(esp).unwrap(); // the loaded value wins over the increment
            a.mov(ebp, esp).unwrap();
        }),
        ("a loop over the stack", |a| {
            let mut top = a.create_label();
            a.mov(ecx, 6).unwrap();
            a.set_label(&mut top).unwrap();
            a.push(ecx).unwrap();
            a.add(eax, dword_ptr(esp)).unwrap();
            a.imul_3(edx, dword_ptr(esp), 3).unwrap();
            a.add(esi, edx).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(top).unwrap();
            a.pop(edi).unwrap();
            a.add(esp, 5 * 4).unwrap();
            a.pushfd().unwrap();
            a.pop(ebp).unwrap();
        }),
        ("addresses wrap at 4 GiB", |a| {
            a.mov(dword_ptr(ebx + 0x10), 0x0bad_f00du32).unwrap();
            a.mov(ecx, 0xf000_0000u32).unwrap();
            a.mov(esi, (DATA_ADDR + 0x1000_0000) as u32).unwrap();
            a.mov(eax, dword_ptr(ecx + esi + 0x10)).unwrap();
            a.mov(dword_ptr(ecx + esi + 0x20), eax).unwrap();
            a.add(dword_ptr(ecx + esi + 0x20), 5).unwrap();
            a.mov(edx, dword_ptr(ebx + 0x20)).unwrap();
            // A displacement that wraps: ESI + (-0x1000_0000).
            a.mov(edi, dword_ptr(esi - 0x1000_0000 + 0x10)).unwrap();
            a.mov(ebp, dword_ptr(0x2000_0010u32)).unwrap();
        }),
        ("FS unusable", |a| {
            // The page in the soft TLB first: the fault must not depend on a miss.
            a.mov(edx, dword_ptr(ebx)).unwrap();
            a.mov(eax, 7).unwrap();
            a.add(eax, 1).unwrap();
            a.mov(ecx, dword_ptr(ebx).fs()).unwrap();
        }),
        ("GS unusable, a store", |a| {
            a.mov(dword_ptr(ebx + 8), edx).unwrap();
            a.mov(eax, 7).unwrap();
            a.mov(dword_ptr(ebx + 8).gs(), eax).unwrap();
        }),
        ("a jump table", |a| {
            let (mut main, mut t1, mut t2) = (a.create_label(), a.create_label(), a.create_label());
            a.call(main).unwrap();
            a.set_label(&mut t1).unwrap();
            a.add(eax, 100).unwrap();
            a.jmp(dword_ptr(ebx + ecx * 4 + 0x100)).unwrap();
            a.set_label(&mut t2).unwrap();
            a.add(eax, 1).unwrap();
            a.dec(ecx).unwrap();
            a.jmp(dword_ptr(ebx + ecx * 4 + 0x100)).unwrap();
            a.set_label(&mut main).unwrap();
            // The CALL pushed t1's address; t2 is 9 bytes past it (ADD EAX, imm8: 3 bytes;
            // JMP [EBX+ECX*4+disp32]: 7).
            a.pop(edx).unwrap();
            a.mov(dword_ptr(ebx + 0x100), edx).unwrap();
            a.lea(esi, dword_ptr(edx + 10)).unwrap();
            a.mov(dword_ptr(ebx + 0x104), esi).unwrap();
            a.mov(dword_ptr(ebx + 0x108), esi).unwrap();
            a.mov(dword_ptr(ebx + 0x10c), esi).unwrap();
            a.mov(ecx, 3).unwrap();
            a.jmp(dword_ptr(ebx + ecx * 4 + 0x100)).unwrap();
        }),
    ];
    for (what, body) in bodies {
        let mut a = CodeAssembler::new(32).unwrap();
        a.mov(ebx, DATA_ADDR as u32).unwrap();
        a.lea(esp, dword_ptr(ebx + 0x800)).unwrap();
        body(&mut a);
        a.ud2().unwrap();
        let code = a.assemble(CODE_ADDR).unwrap();
        let mut case = code_case(code, vec![0; DATA_SIZE], 200);
        case.compat = true;
        check_translated(&mut differ, &case, what);
    }
}

/// 16-bit code through the translator against the interpreter (no host oracle for real
/// mode): hand-written cases — CALL and RET near, direct, through a register and memory,
/// PUSH and POP with SP wrapping at 64 KiB, 16-bit addressing on every segment (BP on SS),
/// offsets past the limit (#GP, #SS), 32-bit addressing and operands, a loop — and random
/// ones from every class's encodings.
#[cfg(target_arch = "x86_64")]
#[test]
fn translated_16bit_code_matches_the_interpreter() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::real16::{compare, random_cases};

    type Body = fn(&mut CodeAssembler);
    let bodies: [(&str, Body); 6] = [
        ("calls and returns", |a| {
            let (mut main, mut func) = (a.create_label(), a.create_label());
            a.call(main).unwrap();
            a.set_label(&mut func).unwrap();
            a.lea(ax, word_ptr(bx + si + 3)).unwrap();
            a.add(cx, ax).unwrap();
            a.ret().unwrap();
            a.set_label(&mut main).unwrap();
            a.pop(dx).unwrap(); // the function's IP
            a.mov(word_ptr(0x40), dx).unwrap();
            a.call(dx).unwrap();
            a.call(word_ptr(0x40)).unwrap();
            a.call(func).unwrap();
            a.push(0x1234).unwrap();
            a.push(word_ptr(bp + 2)).unwrap();
            a.pop(si).unwrap();
            a.pop(di).unwrap();
            a.hlt().unwrap();
        }),
        ("SP wraps at 64 KiB", |a| {
            a.mov(sp, 2).unwrap();
            a.push(ax).unwrap();
            a.push(bx).unwrap(); // at SS:0xfffe
            a.pop(cx).unwrap();
            a.pop(dx).unwrap();
            a.pop(si).unwrap(); // from SS:0x0002
            a.hlt().unwrap();
        }),
        ("every segment, 16-bit addressing", |a| {
            a.mov(ax, word_ptr(bx + si + 5)).unwrap();
            a.add(word_ptr(bp + di - 3), ax).unwrap(); // SS
            a.mov(cx, word_ptr(bx).es()).unwrap();
            a.xor(word_ptr(si + 0x100).fs(), cx).unwrap();
            a.mov(dx, word_ptr(di).gs()).unwrap();
            a.mov(byte_ptr(0x80).cs(), dl).unwrap(); // real mode: CS is writable
            a.mov(al, byte_ptr(0x80).cs()).unwrap();
            a.lea(si, word_ptr(bx + si + 0x7000)).unwrap();
            a.mov(edi, dword_ptr(ebx + esi * 2 + 0x10)).unwrap(); // 32-bit addressing
            a.inc(dword_ptr(bx + 0x20)).unwrap();
            a.hlt().unwrap();
        }),
        ("an offset past the limit: #GP", |a| {
            a.mov(bx, 0xffff).unwrap();
            a.mov(ax, 1).unwrap();
            a.mov(word_ptr(bx), ax).unwrap();
            a.hlt().unwrap();
        }),
        ("an offset past the stack's limit: #SS", |a| {
            a.mov(bp, 0xffff).unwrap();
            a.mov(ax, word_ptr(bp)).unwrap();
            a.hlt().unwrap();
        }),
        ("a loop", |a| {
            let mut top = a.create_label();
            a.mov(cx, 9).unwrap();
            a.set_label(&mut top).unwrap();
            a.add(ax, word_ptr(bx + si)).unwrap();
            a.adc(dx, 0).unwrap();
            a.add(si, 2).unwrap();
            a.dec(cx).unwrap();
            a.jnz(top).unwrap();
            a.hlt().unwrap();
        }),
    ];
    // RSP's upper half is set: 16-bit stack writes keep it.
    let regs = [0x11, 0x22, 0x33, 0x100, 0x5_0000_8000, 0x200, 0x300, 0x400];
    let mut cases: Vec<(&str, Vec<u8>)> = bodies
        .iter()
        .map(|(what, body)| {
            let mut a = CodeAssembler::new(16).unwrap();
            body(&mut a);
            (*what, a.assemble(0x100).unwrap())
        })
        .collect();
    // GCC's -m16 CALLL/RETL: an operand-size prefixed CALL pushes 4 bytes.
    cases.push((
        "CALLL and RETL",
        vec![
            0x40, // 0x100: INC AX
            0x66, 0xe8, 2, 0, 0, 0, // 0x101: CALLL 0x109
            0xf4, 0xf4, // 0x107: HLT
            0x66, 0xc3, // 0x109: RETL
        ],
    ));
    // The same bytes under two CS bases (blocks and jump targets keyed by CS's base).
    cases.push((
        "one code under two CS bases",
        vec![
            0x40, // 0x100 (CS 0x1010: 0): INC AX
            0x3d, 0x14, 0, // CMP AX, 0x14 (AX starts at 0x11: three rounds)
            0x74, 5, // JE +5
            0xea, 0, 0, 0x10, 0x10, // JMP FAR 0x1010:0000
            0xf4, // HLT
        ],
    ));
    for (what, code) in cases {
        match compare(&code, regs, 0) {
            Ok((true, translated)) => assert!(translated > 0, "{what}: nothing ran translated"),
            Ok((false, _)) => panic!("{what}: left out"),
            Err(report) => panic!("{what}: {report}"),
        }
    }
    let (compared, translated, bad) = random_cases(1500, 0x16b1_7c0d);
    eprintln!("16-bit: {compared} random cases compared, {translated} instructions translated");
    assert!(
        bad.is_empty(),
        "{} of {compared} differ:\n{}",
        bad.len(),
        bad[..bad.len().min(5)].join("\n\n")
    );
    assert!(compared > 1200, "only {compared} cases compared");
    assert!(
        translated > 1500,
        "only {translated} instructions ran translated"
    );
}

/// REP STOS and REP MOVS, which blocks run as the host's own inside a page and hand to the
/// interpreter otherwise: in a page, with no elements, reaching past the data page (a page
/// fault part way), overlapping copies both ways, with DF set — against the host CPU.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn translated_rep_strings_match_the_host() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

    let Some(mut differ) = host_differ(true) else {
        return;
    };
    let mut data = vec![0u8; DATA_SIZE];
    for (k, b) in data.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(29).wrapping_add(3);
    }
    // (what, destination offset, source offset, count, DF, instruction)
    type Op = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let stosb: Op = |a| a.rep().stosb();
    let stosq: Op = |a| a.rep().stosq();
    let stosd: Op = |a| a.rep().stosd();
    let movsb: Op = |a| a.rep().movsb();
    let movsq: Op = |a| a.rep().movsq();
    let movsw: Op = |a| a.rep().movsw();
    let cases: [(&str, u64, u64, u64, bool, Op); 15] = [
        ("stosb in the page", 0x123, 0, 300, false, stosb),
        ("stosq in the page", 0x208, 0, 40, false, stosq),
        ("stosd unaligned", 0x3f1, 0, 33, false, stosd),
        ("stosb to the page's end", 0xf00, 0, 0x100, false, stosb),
        ("stosb past the page", 0xf00, 0, 0x180, false, stosb),
        ("stosq, no elements", 0x100, 0, 0, false, stosq),
        ("stosb with DF", 0x400, 0, 50, true, stosb),
        ("movsb apart", 0x800, 0x100, 500, false, movsb),
        ("movsq down onto itself", 0x100, 0x108, 60, false, movsq),
        ("movsb up onto itself", 0x101, 0x100, 200, false, movsb),
        ("movsw from past the page", 0x100, 0xff0, 20, false, movsw),
        ("movsq with DF", 0x300, 0x500, 10, true, movsq),
        ("movsb, a huge count", 0x100, 0x200, 1 << 40, false, movsb),
        ("stosb, count above a page", 0x0, 0, 0x1001, false, stosb),
        // Times eight, the count wraps to 0: it must not look like a page's worth.
        (
            "movsq, a count that wraps",
            0x100,
            0x200,
            1 << 61,
            false,
            movsq,
        ),
    ];
    for (what, dst, src, count, df, op) in cases {
        // A load and a store of the data page first fill the soft TLB (the REP's own first
        // run, if it goes to the interpreter, fills it for the second).
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rdx, DATA_ADDR).unwrap();
        a.mov(bl, byte_ptr(rdx)).unwrap();
        a.mov(byte_ptr(rdx), bl).unwrap();
        for value in [0x1122_3344_5566_7788u64, 0x99aa_bbcc_ddee_ff01] {
            a.mov(rdi, DATA_ADDR + dst).unwrap();
            a.mov(rsi, DATA_ADDR + src).unwrap();
            a.mov(rcx, count).unwrap();
            a.mov(rax, value).unwrap();
            if df {
                a.std().unwrap();
            }
            op(&mut a).unwrap();
            a.cld().unwrap();
        }
        a.ud2().unwrap();
        let case = code_case(a.assemble(CODE_ADDR).unwrap(), data.clone(), 20);
        check_translated(&mut differ, &case, what);
    }
}

/// A flag reader the interpreter runs (a REP-prefixed CMOVcc) right after a flag writer
/// takes its flags from RFLAGS; the Jcc after it must too, not from the host's flags as
/// the interpreter call left them.
#[test]
fn translated_jcc_after_an_interpreted_flag_reader() {
    use iced_x86::code_asm::*;
    use testsuite::difftest::{CODE_ADDR, DATA_SIZE};

    let mut a = CodeAssembler::new(64).unwrap();
    let mut taken = a.create_label();
    a.mov(eax, 1u32).unwrap();
    a.cmp(eax, 2).unwrap();
    a.db(&[0xf3, 0x0f, 0x45, 0xca]).unwrap(); // rep cmovne ecx, edx
    a.jne(taken).unwrap();
    a.mov(esi, 7u32).unwrap();
    a.set_label(&mut taken).unwrap();
    a.ud2().unwrap();
    let case = code_case(a.assemble(CODE_ADDR).unwrap(), vec![0; DATA_SIZE], 10);
    let (interpreted, translated, ran) = interpreted_and_translated(&case);
    assert_eq!(interpreted.regs[6], 0, "interpreter: the branch is taken");
    assert!(ran > 0, "nothing ran translated");
    assert_eq!(translated.regs, interpreted.regs);
    assert_eq!(translated.rip, interpreted.rip);
}

/// `case` on the interpreter, then through the translator: both outcomes, and how many
/// instructions ran in translated blocks.
fn interpreted_and_translated(
    case: &testsuite::difftest::Case,
) -> (
    testsuite::difftest::Outcome,
    testsuite::difftest::Outcome,
    u64,
) {
    let mut soft = testsuite::difftest::soft::SoftRunner::new();
    let (interpreted, _) = soft.run(case);
    soft.translate = true;
    let (translated, _) = soft.run(case);
    (interpreted, translated, soft.translated.get())
}

/// `case` through the translator against the host CPU: the same outcome, and some of it
/// ran in translated blocks.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn check_translated(
    differ: &mut testsuite::difftest::runner::Differ,
    case: &testsuite::difftest::Case,
    what: &str,
) {
    let before = differ.soft.translated.get();
    let verdict = differ.check(case).expect("oracle");
    assert!(!verdict.differs(), "{what}: {verdict:?}");
    assert!(
        differ.soft.translated.get() > before,
        "{what}: nothing ran translated"
    );
}

/// The host CPU against the interpreter (`translate`: through the translator), or `None`
/// (a SKIP printed) where the traced host process cannot start.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn host_differ(translate: bool) -> Option<testsuite::difftest::runner::Differ> {
    match testsuite::difftest::runner::Differ::new() {
        Ok(mut d) => {
            d.soft.translate = translate;
            Some(d)
        }
        Err(e) => {
            eprintln!("SKIP: cannot start the traced host process: {e}");
            None
        }
    }
}

/// A 64-bit case at CPL 3 with zeroed registers and flags and default x87/SSE state: the
/// translator tests' hand-written code, `data` on the data page, `instructions` at most.
fn code_case(code: Vec<u8>, data: Vec<u8>, instructions: usize) -> testsuite::difftest::Case {
    testsuite::difftest::Case {
        code,
        compat: false,
        regs: [0; 16],
        rflags: 0,
        data,
        instructions,
        xmm: [0; 16],
        mxcsr: 0x1f80,
        mm: [0; 8],
        fpu: None,
    }
}
