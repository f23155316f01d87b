//! The oracle: the host CPU, running cases in a child process under ptrace.
//!
//! The child maps the code and data pages at fixed addresses and stops itself; for each case
//! the parent writes the pages (process_vm_writev), sets the registers (PTRACE_SETREGS, CS
//! 0x23 for compatibility mode), continues it until the signal the snippet ends with, and
//! reads everything back. All `unsafe` here is system calls on that child.

use std::io;

use super::case::{Case, Exception, Outcome};
use super::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

const USER_CS64: u64 = 0x33;
const USER_CS32: u64 = 0x23;
const USER_DS: u64 = 0x2b;

pub struct HostOracle {
    pid: libc::pid_t,
    base_regs: libc::user_regs_struct,
}

fn check(r: libc::c_long, what: &str) -> io::Result<libc::c_long> {
    if r == -1 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

impl HostOracle {
    /// Forks the traced child and waits until it has mapped its pages and stopped.
    pub fn new() -> io::Result<Self> {
        // SAFETY: fork in a possibly multi-threaded process; the child only calls
        // async-signal-safe functions (mmap, ptrace, raise, _exit) before it is stopped
        // and thereafter only runs the snippets the parent gives it.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: the child maps two fixed pages it owns, asks to be traced and stops;
            // on any failure it exits without touching the parent's state.
            unsafe {
                let code = libc::mmap(
                    CODE_ADDR as *mut libc::c_void,
                    0x1000,
                    libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                );
                let data = libc::mmap(
                    DATA_ADDR as *mut libc::c_void,
                    DATA_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                );
                if code == libc::MAP_FAILED || data == libc::MAP_FAILED {
                    libc::_exit(2);
                }
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    libc::_exit(3);
                }
                libc::raise(libc::SIGSTOP);
                libc::_exit(4);
            }
        }
        let mut oracle = HostOracle {
            pid,
            base_regs: zeroed_regs(),
        };
        let sig = oracle.wait_stop()?;
        if sig != libc::SIGSTOP {
            return Err(io::Error::other(format!(
                "oracle child stopped with signal {sig}"
            )));
        }
        oracle.base_regs = oracle.get_regs()?;
        Ok(oracle)
    }

    fn wait_stop(&self) -> io::Result<i32> {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        check(r as libc::c_long, "waitpid")?;
        if libc::WIFSTOPPED(status) {
            Ok(libc::WSTOPSIG(status))
        } else {
            Err(io::Error::other(format!(
                "oracle child ended (status {status:#x})"
            )))
        }
    }

    fn get_regs(&self) -> io::Result<libc::user_regs_struct> {
        let mut regs = zeroed_regs();
        // SAFETY: PTRACE_GETREGS fills a user_regs_struct of the stopped tracee.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                self.pid,
                0,
                &mut regs as *mut libc::user_regs_struct,
            )
        };
        check(r, "PTRACE_GETREGS")?;
        Ok(regs)
    }

    fn set_regs(&self, regs: &libc::user_regs_struct) -> io::Result<()> {
        // SAFETY: PTRACE_SETREGS reads a user_regs_struct for the stopped tracee.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGS,
                self.pid,
                0,
                regs as *const libc::user_regs_struct,
            )
        };
        check(r, "PTRACE_SETREGS").map(drop)
    }

    fn get_fpregs(&self) -> io::Result<libc::user_fpregs_struct> {
        // SAFETY: all-zero is a valid user_fpregs_struct (plain integers).
        let mut f: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETFPREGS fills a user_fpregs_struct of the stopped tracee.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETFPREGS,
                self.pid,
                0,
                &mut f as *mut libc::user_fpregs_struct,
            )
        };
        check(r, "PTRACE_GETFPREGS")?;
        Ok(f)
    }

    fn set_fpregs(&self, f: &libc::user_fpregs_struct) -> io::Result<()> {
        // SAFETY: PTRACE_SETFPREGS reads a user_fpregs_struct for the stopped tracee.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETFPREGS,
                self.pid,
                0,
                f as *const libc::user_fpregs_struct,
            )
        };
        check(r, "PTRACE_SETFPREGS").map(drop)
    }

    fn write_mem(&self, addr: u64, bytes: &[u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: copies from our buffer into the child's mapped page.
        let r = unsafe { libc::process_vm_writev(self.pid, &local, 1, &remote, 1, 0) };
        check(r as libc::c_long, "process_vm_writev").map(drop)
    }

    fn read_mem(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: copies from the child's mapped page into our buffer of `len` bytes.
        let r = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        check(r as libc::c_long, "process_vm_readv")?;
        Ok(buf)
    }

    /// Runs `case` natively. Returns the outcome and the initial RFLAGS actually in effect
    /// (ptrace cannot change EFLAGS.ID: it keeps what earlier cases left).
    pub fn run(&mut self, case: &Case) -> io::Result<(Outcome, u64)> {
        let mut code = case.code.clone();
        code.resize(0x1000, 0xcc);
        self.write_mem(CODE_ADDR, &code)?;
        self.write_mem(DATA_ADDR, &case.data)?;
        let mut r = self.base_regs;
        let g = &case.regs;
        (r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi) =
            (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        r.rip = CODE_ADDR;
        r.eflags = case.rflags | 0x202;
        r.cs = if case.compat { USER_CS32 } else { USER_CS64 };
        r.ss = USER_DS;
        r.ds = if case.compat { USER_DS } else { 0 };
        r.es = r.ds;
        r.fs_base = 0;
        r.gs_base = 0;
        self.set_regs(&r)?;
        let mut fp = self.get_fpregs()?;
        fp.mxcsr = case.mxcsr;
        for (k, x) in case.xmm.iter().enumerate() {
            for w in 0..4 {
                fp.xmm_space[4 * k + w] = (x >> (32 * w)) as u32;
            }
        }
        fp.cwd = 0x037f;
        fp.swd = 0;
        fp.ftw = 0;
        // The last-instruction pointers start at zero, as on the interpreter's side (FNSTENV
        // stores them).
        fp.fop = 0;
        fp.rip = 0;
        fp.rdp = 0;
        for (k, v) in case.mm.iter().enumerate() {
            fp.st_space[4 * k] = *v as u32;
            fp.st_space[4 * k + 1] = (*v >> 32) as u32;
            fp.st_space[4 * k + 2] = 0xffff;
            fp.st_space[4 * k + 3] = 0;
        }
        if let Some(init) = &case.fpu {
            fp.cwd = init.fcw;
            fp.swd = init.fsw;
            fp.ftw = u16::from(init.ftw);
            for (k, r) in init.st.iter().enumerate() {
                let mut b = [0u8; 16];
                b[..10].copy_from_slice(r);
                for w in 0..4 {
                    fp.st_space[4 * k + w] =
                        u32::from_le_bytes(b[4 * w..4 * w + 4].try_into().unwrap());
                }
            }
        }
        self.set_fpregs(&fp)?;
        let effective_flags = self.get_regs()?.eflags;
        // SAFETY: resumes the stopped tracee without delivering a signal.
        let c = unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid, 0, 0) };
        check(c, "PTRACE_CONT")?;
        let sig = self.wait_stop()?;
        let out = self.get_regs()?;
        let fp = self.get_fpregs()?;
        let xmm: [u128; 16] = std::array::from_fn(|k| {
            (0..4).fold(0u128, |v, w| {
                v | u128::from(fp.xmm_space[4 * k + w]) << (32 * w)
            })
        });
        let exception = match sig {
            libc::SIGILL => Exception::InvalidOpcode,
            libc::SIGFPE => Exception::DivideError,
            libc::SIGSEGV | libc::SIGBUS => Exception::Protection,
            libc::SIGTRAP => Exception::Trap,
            other => Exception::Other(other as u8),
        };
        let mut regs = [
            out.rax, out.rcx, out.rdx, out.rbx, out.rsp, out.rbp, out.rsi, out.rdi, out.r8, out.r9,
            out.r10, out.r11, out.r12, out.r13, out.r14, out.r15,
        ];
        if case.compat {
            // Compatibility-mode code sees 32-bit registers; the upper halves are undefined
            // (the host preserves or clears them depending on the instruction).
            for v in &mut regs {
                *v &= 0xffff_ffff;
            }
        }
        Ok((
            Outcome {
                regs,
                rip: out.rip,
                rflags: out.eflags,
                data: self.read_mem(DATA_ADDR, DATA_SIZE)?,
                exception,
                xmm,
                mxcsr: fp.mxcsr,
                st: std::array::from_fn(|k| {
                    let mut b = [0u8; 10];
                    for w in 0..3 {
                        let word = fp.st_space[4 * k + w].to_le_bytes();
                        let n = if w == 2 { 2 } else { 4 };
                        b[4 * w..4 * w + n].copy_from_slice(&word[..n]);
                    }
                    b
                }),
                fcw: fp.cwd,
                fsw: fp.swd,
                ftw: fp.ftw as u8,
                undefined: None,
            },
            effective_flags,
        ))
    }
}

impl Drop for HostOracle {
    fn drop(&mut self) {
        // SAFETY: kills and reaps our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

fn zeroed_regs() -> libc::user_regs_struct {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}
