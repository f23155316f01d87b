//! From mnemonic to semantics.

use iced_x86::{Instruction, Mnemonic as M, OpKind};

use super::fault::{vector, Fault, Result};
use super::operand::seg_index;
use super::Interp;

impl Interp {
    pub(crate) fn execute(&mut self, i: &Instruction) -> Result<()> {
        if i.has_lock_prefix() && !lockable(i) {
            return Err(Fault::ud().into());
        }
        if self.smp && super::atomic::is_atomic(i) {
            return self.execute_atomic(i);
        }
        self.semantics(i)
    }

    /// What `i` does, with its memory accesses as they come (no atomicity against other
    /// vCPUs: [`Interp::execute`] sees to that).
    pub(crate) fn semantics(&mut self, i: &Instruction) -> Result<()> {
        if let Some(done) = self.simd(i) {
            return done;
        }
        match i.mnemonic() {
            M::Nop | M::Pause | M::Lfence | M::Mfence | M::Sfence | M::Endbr32 | M::Endbr64 => {
                Ok(())
            }
            M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 | M::Prefetchw => Ok(()),
            M::Mov => {
                let special = (0..i.op_count()).any(|k| {
                    i.op_kind(k) == OpKind::Register && {
                        let r = i.op_register(k);
                        seg_index(r).is_some() || r.is_cr() || r.is_dr()
                    }
                });
                if special {
                    self.mov_special(i)
                } else {
                    self.mov(i)
                }
            }
            M::Movzx | M::Movsx | M::Movsxd => self.movzx_movsx(i),
            M::Lea => self.lea(i),
            M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
                self.alu2(i)
            }
            M::Inc | M::Dec | M::Neg | M::Not => self.alu1(i),
            M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => self.shift(i),
            M::Shld | M::Shrd => self.shift_double(i),
            M::Mul | M::Imul | M::Div | M::Idiv => self.muldiv(i),
            M::Xchg => self.xchg(i),
            M::Xadd => self.xadd(i),
            M::Cmpxchg => self.cmpxchg(i),
            M::Cmpxchg8b | M::Cmpxchg16b => {
                self.require_feature(i)?;
                self.cmpxchg_wide(i)
            }
            M::Bt | M::Bts | M::Btr | M::Btc => self.bit_test(i),
            M::Bsf | M::Bsr => self.bit_scan(i),
            M::Popcnt | M::Lzcnt | M::Tzcnt => {
                // Without LZCNT/BMI1 the F3 prefix is ignored: the CPU runs BSR/BSF.
                if self.runs_as_bit_scan(i) {
                    self.bit_scan(i)
                } else {
                    self.require_feature(i)?;
                    self.bit_count(i)
                }
            }
            M::Andn | M::Bextr | M::Blsi | M::Blsmsk | M::Blsr => {
                self.require_feature(i)?;
                self.bmi1(i)
            }
            M::Bzhi | M::Pdep | M::Pext | M::Mulx | M::Rorx | M::Sarx | M::Shlx | M::Shrx => {
                self.require_feature(i)?;
                self.bmi2(i)
            }
            M::Adcx | M::Adox => {
                self.require_feature(i)?;
                self.adx(i)
            }
            M::Movbe => {
                self.require_feature(i)?;
                self.movbe(i)
            }
            M::Seta
            | M::Setae
            | M::Setb
            | M::Setbe
            | M::Sete
            | M::Setg
            | M::Setge
            | M::Setl
            | M::Setle
            | M::Setne
            | M::Setno
            | M::Setnp
            | M::Setns
            | M::Seto
            | M::Setp
            | M::Sets => self.setcc(i),
            M::Cmova
            | M::Cmovae
            | M::Cmovb
            | M::Cmovbe
            | M::Cmove
            | M::Cmovg
            | M::Cmovge
            | M::Cmovl
            | M::Cmovle
            | M::Cmovne
            | M::Cmovno
            | M::Cmovnp
            | M::Cmovns
            | M::Cmovo
            | M::Cmovp
            | M::Cmovs => {
                self.require_edx1(crate::cpu_model::edx1::CMOV)?;
                self.cmovcc(i)
            }
            M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => self.convert(i),
            M::Bswap => self.bswap(i),
            M::Daa | M::Das | M::Aaa | M::Aas | M::Aam | M::Aad => self.bcd(i),
            M::Bound => self.bound(i),
            M::Arpl => self.arpl(i),
            M::Xlatb => self.xlat(i),
            M::Lahf | M::Sahf => {
                self.require_feature(i)?;
                self.lahf_sahf(i)
            }
            M::Push => self.push_insn(i),
            M::Pop => self.pop_insn(i),
            M::Pushf | M::Pushfd | M::Pushfq => self.pushf(i),
            M::Popf | M::Popfd | M::Popfq => self.popf(i),
            M::Pusha | M::Pushad => self.pusha(i),
            M::Popa | M::Popad => self.popa(i),
            M::Enter => self.enter(i),
            M::Leave => self.leave(i),
            M::Jmp => self.jmp(i),
            M::Ja
            | M::Jae
            | M::Jb
            | M::Jbe
            | M::Je
            | M::Jg
            | M::Jge
            | M::Jl
            | M::Jle
            | M::Jne
            | M::Jno
            | M::Jnp
            | M::Jns
            | M::Jo
            | M::Jp
            | M::Js => self.jcc(i),
            M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz | M::Jrcxz => self.loop_jcxz(i),
            M::Call => self.call(i),
            M::Ret => self.ret_near(i),
            M::Retf => {
                let size = self.far_operand_size(i);
                let imm = if i.op_count() > 0 { i.immediate(0) } else { 0 };
                self.far_return(size, imm)
            }
            M::Int => self.software_interrupt(i.immediate(0) as u8),
            M::Int3 => self.software_interrupt(vector::BP),
            M::Into => {
                if self.cpu.mode() == super::cpu::Mode::Long64 {
                    return Err(Fault::ud().into());
                }
                if self.cpu.flag(super::cpu::flags::OF) {
                    self.software_interrupt(vector::OF)
                } else {
                    Ok(())
                }
            }
            M::Iret | M::Iretd | M::Iretq => {
                let size = match i.mnemonic() {
                    M::Iret => 2,
                    M::Iretd => 4,
                    _ => 8,
                };
                self.iret(size)
            }
            M::Ud0 | M::Ud1 | M::Ud2 => Err(Fault::ud().into()),
            M::Movsb
            | M::Movsw
            | M::Movsq
            | M::Stosb
            | M::Stosw
            | M::Stosd
            | M::Stosq
            | M::Lodsb
            | M::Lodsw
            | M::Lodsd
            | M::Lodsq
            | M::Cmpsb
            | M::Cmpsw
            | M::Cmpsq
            | M::Scasb
            | M::Scasw
            | M::Scasd
            | M::Scasq
            | M::Insb
            | M::Insw
            | M::Insd
            | M::Outsb
            | M::Outsw
            | M::Outsd => self.string_op(i),
            // MOVSD and CMPSD are also SSE mnemonics: only the string forms lack registers.
            M::Movsd | M::Cmpsd if i.op_count() == 2 && !has_xmm(i) => self.string_op(i),
            M::In | M::Out => self.in_out(i),
            M::Lgdt | M::Lidt | M::Sgdt | M::Sidt => self.descriptor_table(i),
            M::Lldt | M::Ltr | M::Sldt | M::Str => self.system_segment(i),
            M::Lar | M::Lsl | M::Verr | M::Verw => self.descriptor_query(i),
            M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => self.load_far_pointer(i),
            M::Hlt
            | M::Cli
            | M::Sti
            | M::Clc
            | M::Stc
            | M::Cmc
            | M::Cld
            | M::Std
            | M::Rdmsr
            | M::Wrmsr
            | M::Rdtsc
            | M::Rdtscp
            | M::Cpuid
            | M::Invlpg
            | M::Wbinvd
            | M::Invd
            | M::Clts
            | M::Smsw
            | M::Lmsw
            | M::Swapgs
            | M::Syscall
            | M::Sysret
            | M::Sysretq
            | M::Sysenter
            | M::Sysexit
            | M::Sysexitq => self.system(i),
            _ => self.unimplemented(i),
        }
    }

    /// Operand size of RETF: 16, 32 or 64 bits, from the instruction.
    fn far_operand_size(&self, i: &Instruction) -> u32 {
        let os = i.code().op_code().operand_size();
        if os != 0 {
            os / 8
        } else {
            match self.cpu.code_bits() {
                16 => 2,
                _ => 4,
            }
        }
    }
}

fn has_xmm(i: &Instruction) -> bool {
    (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Register && i.op_register(k).is_xmm())
}

/// LOCK is valid only on read-modify-write instructions with a memory destination.
fn lockable(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        M::Add
            | M::Adc
            | M::And
            | M::Btc
            | M::Btr
            | M::Bts
            | M::Cmpxchg
            | M::Cmpxchg8b
            | M::Cmpxchg16b
            | M::Dec
            | M::Inc
            | M::Neg
            | M::Not
            | M::Or
            | M::Sbb
            | M::Sub
            | M::Xor
            | M::Xadd
            | M::Xchg
    ) && Interp::is_mem(i, 0)
}
