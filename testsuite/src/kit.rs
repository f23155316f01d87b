//! The test-kernel kit: Multiboot images assembled in Rust.
//!
//! Every kernel is a flat Multiboot "a.out kludge" image loaded at [`LOAD_ADDR`] and entered in
//! 32-bit protected mode. It installs its own GDT ([`GDT`]), switches to the mode under test,
//! prints over COM1 and ends with a write to the isa-debug-exit port at [`DEBUG_EXIT_PORT`]:
//! 0 means pass, anything else fail (the process exits with `(value << 1) | 1`).

use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, Code as Op, Instruction, Register};

pub const LOAD_ADDR: u32 = 0x10_0000;
pub const COM1: u16 = 0x3f8;
/// The port the test machine maps isa-debug-exit at (`iobase=0xf4,iosize=0x04`, as most
/// QEMU-based test suites use).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const PASS: u32 = 0;
/// The test cannot run on this machine (it printed why, in a line starting with "SKIP:").
/// 77 as in automake and kvm-unit-tests, `ferrite test`'s default skip code.
pub const SKIP: u32 = 77;

/// Scratch structures at fixed physical addresses (fresh RAM is zero).
pub const TSS_ADDR: u32 = 0x18_0000;
pub const IDT_ADDR: u32 = 0x18_1000;
/// Paging structures: PML4 / page directory at 0x200000 and the following pages.
pub const PAGE_TABLES: u32 = 0x20_0000;
pub const KERNEL_STACK: u32 = 0x17_f000;
pub const USER_STACK: u32 = 0x17_0000;
/// Where the real-mode stub is copied (it must run below 64 KiB).
pub const REAL_MODE_BASE: u32 = 0x8000;

/// Selectors of the kit's GDT. The layout is Linux's (`__KERNEL_CS` 0x10, `__KERNEL_DS` 0x18,
/// `__USER32_CS` 0x23, `__USER_DS` 0x2b, `__USER_CS` 0x33), so one STAR value serves SYSCALL and
/// SYSRET, and PVM, which insists on the host's user selectors, accepts it.
pub mod sel {
    pub const CODE32: u16 = 0x08;
    pub const CODE64: u16 = 0x10;
    pub const DATA32: u16 = 0x18;
    pub const USER_CODE32: u16 = 0x20 | 3;
    pub const USER_DATA: u16 = 0x28 | 3;
    pub const USER_CODE64: u16 = 0x30 | 3;
    pub const CODE16: u16 = 0x38;
    pub const DATA16: u16 = 0x40;
    pub const TSS: u16 = 0x48;
    /// A writable data segment that is not present.
    pub const NOT_PRESENT: u16 = 0x58;
    /// A read-only data segment.
    pub const READ_ONLY: u16 = 0x60;
    /// An execute-only code segment.
    pub const EXEC_ONLY: u16 = 0x68;
    /// A slot kernels fill at run time (a call gate).
    pub const SPARE: u16 = 0x70;
    /// One past the last descriptor: beyond the GDT limit.
    pub const BEYOND_GDT: u16 = 0x78;
    /// MSR_STAR: SYSCALL loads CS = 0x10, SS = 0x18; SYSRET CS = 0x33 (0x23 for 32-bit), SS = 0x2b.
    pub const STAR: u64 = (0x23 << 48) | (0x10 << 32);
}

/// Descriptor bytes: (base, limit, access byte, flags nibble).
const fn desc(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xffff)
        | ((base as u64 & 0xff_ffff) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xf) << 48)
        | (((flags as u64) & 0xf) << 52)
        | (((base as u64) >> 24) << 56)
}

/// The kit's GDT (the TSS descriptor points at [`TSS_ADDR`], 64-bit form, 0x68 bytes).
pub const GDT: [u64; 15] = [
    0,
    desc(0, 0xfffff, 0x9b, 0xc),     // 0x08 code32
    desc(0, 0xfffff, 0x9b, 0xa),     // 0x10 code64
    desc(0, 0xfffff, 0x93, 0xc),     // 0x18 data
    desc(0, 0xfffff, 0xfb, 0xc),     // 0x20 user code32
    desc(0, 0xfffff, 0xf3, 0xc),     // 0x28 user data
    desc(0, 0xfffff, 0xfb, 0xa),     // 0x30 user code64
    desc(0, 0xffff, 0x9b, 0x0),      // 0x38 code16
    desc(0, 0xffff, 0x93, 0x0),      // 0x40 data16
    desc(TSS_ADDR, 0x67, 0x89, 0x0), // 0x48 TSS (available)
    0,                               // 0x50 upper half of the 64-bit TSS descriptor
    desc(0, 0xfffff, 0x13, 0xc),     // 0x58 data, not present
    desc(0, 0xfffff, 0x91, 0xc),     // 0x60 data, read-only
    desc(0, 0xfffff, 0x99, 0xc),     // 0x68 code, execute-only
    0,                               // 0x70 spare (written at run time)
];

pub type Asm = CodeAssembler;

/// Offsets inside the image of the code for other bitnesses.
pub const REAL_MODE_IMAGE_OFFSET: u32 = 0x4000;
pub const LONG_MODE_IMAGE_OFFSET: u32 = 0x8000;
/// The 64-bit code runs where it is loaded.
pub const LONG_MODE_ADDR: u32 = LOAD_ADDR + LONG_MODE_IMAGE_OFFSET;

pub(crate) fn check(r: Result<(), IcedError>) {
    r.expect("test kernel assembly is static and must assemble");
}

/// A position in the code whose address other code needs as a number (iced's label operands
/// are RIP-relative, which 16- and 32-bit code lacks). Kernels are built twice: the first pass
/// measures every symbol's address, the second emits them as immediates; instruction sizes do
/// not depend on the values, so both passes lay out the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sym(usize);

/// Code of one bitness, assembled for a fixed address, with its own string table and print
/// routine.
pub struct Code {
    pub a: Asm,
    bits: u32,
    syms: Vec<CodeLabel>,
    prev: Vec<u64>,
    strings: Vec<(Sym, Vec<u8>)>,
    print_fn: CodeLabel,
}

impl Code {
    pub(crate) fn new(bits: u32, prev: Vec<u64>) -> Self {
        let mut a = CodeAssembler::new(bits).expect("valid bitness");
        let print_fn = a.create_label();
        Code {
            a,
            bits,
            syms: Vec::new(),
            prev,
            strings: Vec::new(),
            print_fn,
        }
    }

    /// The print routine (string at SI/ESI/RSI), for code that sets the pointer itself.
    pub fn print_fn(&self) -> CodeLabel {
        self.print_fn
    }

    /// A fresh branch label.
    pub fn label(&mut self) -> CodeLabel {
        self.a.create_label()
    }

    /// Binds `l` here. (Each label takes an empty instruction, so labels can follow each
    /// other: iced allows one label per instruction.)
    pub fn here(&mut self, l: &mut CodeLabel) {
        check(self.a.set_label(l));
        check(self.a.zero_bytes());
    }

    /// A new symbol (bind it with [`Code::bind`]).
    pub fn sym(&mut self) -> Sym {
        let l = self.a.create_label();
        self.syms.push(l);
        Sym(self.syms.len() - 1)
    }

    pub fn bind(&mut self, s: Sym) {
        let mut l = self.syms[s.0];
        self.here(&mut l);
        self.syms[s.0] = l;
    }

    /// The symbol's address (0 during the measuring pass).
    pub fn addr(&self, s: Sym) -> u32 {
        self.prev.get(s.0).copied().unwrap_or(0) as u32
    }

    /// Interns a NUL-terminated string.
    pub fn string(&mut self, s: &str) -> Sym {
        let sym = self.sym();
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.strings.push((sym, b));
        sym
    }

    /// Prints `s` on COM1 (the string pointer register is clobbered).
    pub fn print(&mut self, s: &str) {
        let sym = self.string(s);
        let addr = self.addr(sym);
        if self.bits == 16 {
            check(self.a.mov(si, addr));
        } else {
            check(self.a.mov(esi, addr));
        }
        check(self.a.call(self.print_fn));
    }

    /// Prints EAX as eight hex digits (all registers preserved but flags).
    pub fn print_eax_hex(&mut self) {
        let buf = self.string("00000000");
        let addr = self.addr(buf);
        let (mut digit, mut num) = (self.label(), self.label());
        if self.bits == 64 {
            check(self.a.push(rax));
            check(self.a.push(rbx));
            check(self.a.push(rcx));
        } else {
            check(self.a.push(eax));
            check(self.a.push(ebx));
            check(self.a.push(ecx));
        }
        check(self.a.mov(ebx, addr + 7)); // zero-extends to RBX in 64-bit code
        check(self.a.mov(ecx, 8u32));
        self.here(&mut digit);
        if self.bits == 64 {
            check(self.a.push(rax));
        } else {
            check(self.a.push(eax));
        }
        check(self.a.and(eax, 0xf));
        check(self.a.add(eax, i32::from(b'0')));
        check(self.a.cmp(eax, i32::from(b'9')));
        check(self.a.jbe(num));
        check(self.a.add(eax, 7));
        self.here(&mut num);
        if self.bits == 64 {
            check(self.a.mov(byte_ptr(rbx), al));
            check(self.a.pop(rax));
        } else {
            check(self.a.mov(byte_ptr(ebx), al));
            check(self.a.pop(eax));
        }
        check(self.a.shr(eax, 4));
        check(self.a.dec(ebx));
        check(self.a.dec(ecx));
        check(self.a.jne(digit));
        if self.bits == 64 {
            check(self.a.pop(rcx));
            check(self.a.pop(rbx));
            check(self.a.pop(rax));
        } else {
            check(self.a.pop(ecx));
            check(self.a.pop(ebx));
            check(self.a.pop(eax));
        }
        check(self.a.mov(esi, addr));
        check(self.a.call(self.print_fn));
    }

    /// Ends the test: writes `value` to isa-debug-exit, then halts for good.
    pub fn exit(&mut self, value: u32) {
        check(self.a.mov(eax, value));
        check(self.a.mov(dx, u32::from(DEBUG_EXIT_PORT)));
        check(self.a.out(dx, eax));
        let mut l = self.label();
        self.here(&mut l);
        check(self.a.cli());
        check(self.a.hlt());
        check(self.a.jmp(l));
    }

    /// If the zero flag is clear, prints `msg` and fails with `value`.
    pub fn fail_unless_zero(&mut self, msg: &str, value: u32) {
        let mut ok = self.label();
        check(self.a.je(ok));
        self.print(msg);
        self.exit(value);
        self.here(&mut ok);
    }

    /// Emits the print routine and the strings and assembles at `addr`; returns the bytes and
    /// every symbol's address.
    pub(crate) fn assemble(mut self, addr: u64) -> (Vec<u8>, Vec<u64>) {
        // print: string at [SI/ESI/RSI], polled transmit (LSR bit 5) as real UARTs need.
        let mut pf = self.print_fn;
        check(self.a.set_label(&mut pf));
        let (mut next, mut wait, mut done) = (self.label(), self.label(), self.label());
        stack_op(&mut self.a, self.bits, true, 0);
        stack_op(&mut self.a, self.bits, true, 1);
        self.here(&mut next);
        match self.bits {
            16 => check(self.a.mov(ah, byte_ptr(si))),
            32 => check(self.a.mov(ah, byte_ptr(esi))),
            _ => check(self.a.mov(ah, byte_ptr(rsi))),
        }
        check(self.a.test(ah, ah));
        check(self.a.je(done));
        check(self.a.mov(dx, u32::from(COM1 + 5)));
        self.here(&mut wait);
        check(self.a.in_(al, dx));
        check(self.a.test(al, 0x20));
        check(self.a.je(wait));
        check(self.a.mov(al, ah));
        check(self.a.mov(dx, u32::from(COM1)));
        check(self.a.out(dx, al));
        match self.bits {
            16 => check(self.a.inc(si)),
            32 => check(self.a.inc(esi)),
            _ => check(self.a.inc(rsi)),
        }
        check(self.a.jmp(next));
        self.here(&mut done);
        stack_op(&mut self.a, self.bits, false, 1);
        stack_op(&mut self.a, self.bits, false, 0);
        check(self.a.ret());
        for (sym, b) in std::mem::take(&mut self.strings) {
            self.bind(sym);
            check(self.a.db(&b));
        }
        let r = self
            .a
            .assemble_options(addr, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
            .expect("test kernel assembles");
        let addrs = self
            .syms
            .iter()
            .map(|l| r.label_ip(l).unwrap_or(0))
            .collect();
        (r.inner.code_buffer, addrs)
    }
}

/// Pushes or pops AX/DX in the natural stack width of a mode.
fn stack_op(a: &mut Asm, bits: u32, push: bool, reg: usize) {
    let r = match (bits, reg) {
        (16, 0) => Register::AX,
        (16, _) => Register::DX,
        (32, 0) => Register::EAX,
        (32, _) => Register::EDX,
        (_, 0) => Register::RAX,
        (_, _) => Register::RDX,
    };
    let code = match (bits, push) {
        (16, true) => Op::Push_r16,
        (16, false) => Op::Pop_r16,
        (32, true) => Op::Push_r32,
        (32, false) => Op::Pop_r32,
        (_, true) => Op::Push_r64,
        (_, false) => Op::Pop_r64,
    };
    check(a.add_instruction(Instruction::with1(code, r).expect("valid operand")));
}

/// Symbol addresses of each part from the measuring pass.
#[derive(Clone, Default)]
struct Measured {
    c16: Vec<u64>,
    c32: Vec<u64>,
    c64: Vec<u64>,
}

/// A kernel: the 32-bit entry code (with the Multiboot header and the kit's GDT), 16-bit code
/// (copied to [`REAL_MODE_BASE`] by [`Kernel::copy_real_mode_code`]) and 64-bit code (run in
/// place at [`LONG_MODE_ADDR`]). Unused parts are left out of the image.
pub struct Kernel {
    pub c32: Code,
    pub c16: Code,
    pub c64: Code,
    gdt: Sym,
    gdtr: Sym,
}

impl Kernel {
    /// Builds a kernel: `body` emits the test after the common entry code (Multiboot header;
    /// EAX/EBX from the loader saved in EDI/EBP; the kit's GDT loaded and every segment
    /// register reloaded; the stack at [`KERNEL_STACK`]).
    pub fn build(body: impl Fn(&mut Kernel)) -> Vec<u8> {
        // Immediates that hold addresses can change an instruction's size (imm8 vs imm32),
        // so repeat until the layout is stable; it settles in two or three passes.
        let mut measured = Measured::default();
        for _pass in 0..6 {
            let mut k = Kernel::start(&measured);
            body(&mut k);
            let (img, m) = k.finish();
            if m.c16 == measured.c16 && m.c32 == measured.c32 && m.c64 == measured.c64 {
                return img;
            }
            measured = m;
        }
        panic!("test kernel layout does not converge");
    }

    fn start(m: &Measured) -> Self {
        let mut c = Code::new(32, m.c32.clone());
        let (gdt, gdtr, reload) = (c.sym(), c.sym(), c.sym());
        let magic = 0x1bad_b002u32;
        let flags = 1u32 << 16;
        check(c.a.dd(&[
            magic,
            flags,
            0u32.wrapping_sub(magic.wrapping_add(flags)),
            LOAD_ADDR, // header_addr
            LOAD_ADDR, // load_addr
            0,         // load_end_addr: the whole file
            0,         // bss_end_addr: none
            LOAD_ADDR + 32,
        ]));
        check(c.a.mov(edi, eax));
        check(c.a.mov(ebp, ebx));
        check(c.a.lgdt(ptr(c.addr(gdtr))));
        check(c.a.jmp_far(sel::CODE32, c.addr(reload)));
        c.bind(reload);
        check(c.a.mov(eax, u32::from(sel::DATA32)));
        for s in [ds, es, fs, gs, ss] {
            check(c.a.mov(s, ax));
        }
        check(c.a.mov(esp, KERNEL_STACK));
        Kernel {
            c32: c,
            c16: Code::new(16, m.c16.clone()),
            c64: Code::new(64, m.c64.clone()),
            gdt,
            gdtr,
        }
    }

    /// The linear address of the GDT entry for `selector` (valid in the final pass).
    pub fn gdt_entry(&self, selector: u16) -> u32 {
        self.c32.addr(self.gdt) + u32::from(selector & !7)
    }

    /// Emits 32-bit code that copies the 16-bit part down to [`REAL_MODE_BASE`].
    pub fn copy_real_mode_code(&mut self) {
        let a = &mut self.c32.a;
        check(a.cld());
        check(a.mov(esi, LOAD_ADDR + REAL_MODE_IMAGE_OFFSET));
        check(a.mov(edi, REAL_MODE_BASE));
        check(a.mov(ecx, 0x4000u32));
        check(a.rep().movsb());
    }

    fn finish(mut self) -> (Vec<u8>, Measured) {
        self.c32.bind(self.gdt);
        check(self.c32.a.dq(&GDT));
        self.c32.bind(self.gdtr);
        check(self.c32.a.dw(&[(GDT.len() * 8 - 1) as u16]));
        let gdt_addr = self.c32.addr(self.gdt);
        check(self.c32.a.dd(&[gdt_addr]));
        let (mut img, c32) = self.c32.assemble(u64::from(LOAD_ADDR));
        let mut m = Measured {
            c32,
            ..Default::default()
        };
        let place = |img: &mut Vec<u8>, offset: u32, code: Vec<u8>, limit: usize| {
            assert!(
                img.len() <= offset as usize,
                "32-bit code overlaps the next part"
            );
            assert!(code.len() <= limit, "code part too large");
            img.resize(offset as usize, 0);
            img.extend_from_slice(&code);
        };
        if !self.c16.a.instructions().is_empty() {
            let (code, syms) = self.c16.assemble(u64::from(REAL_MODE_BASE));
            place(&mut img, REAL_MODE_IMAGE_OFFSET, code, 0x4000);
            m.c16 = syms;
        }
        if !self.c64.a.instructions().is_empty() {
            let (code, syms) = self.c64.assemble(u64::from(LONG_MODE_ADDR));
            place(&mut img, LONG_MODE_IMAGE_OFFSET, code, 0x8000);
            m.c64 = syms;
        }
        (img, m)
    }
}

/// Wraps a kit kernel image (a Multiboot a.out-kludge image for [`LOAD_ADDR`]) into an ELF32
/// executable whose Multiboot header lacks the a.out flag, so loaders take the ELF path.
pub fn to_multiboot_elf(image: &[u8]) -> Vec<u8> {
    let mut img = image.to_vec();
    let magic = 0x1bad_b002u32;
    img[4..8].copy_from_slice(&0u32.to_le_bytes());
    img[8..12].copy_from_slice(&0u32.wrapping_sub(magic).to_le_bytes());
    const DATA: usize = 0x1000;
    let mut f = vec![0u8; DATA];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // 32-bit
    f[5] = 1; // little-endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..28].copy_from_slice(&(LOAD_ADDR + 32).to_le_bytes()); // entry
    f[28..32].copy_from_slice(&52u32.to_le_bytes()); // phoff
    f[40..42].copy_from_slice(&52u16.to_le_bytes()); // ehsize
    f[42..44].copy_from_slice(&32u16.to_le_bytes()); // phentsize
    f[44..46].copy_from_slice(&1u16.to_le_bytes()); // phnum
    let ph = 52;
    let words = [
        1u32,
        DATA as u32,
        LOAD_ADDR,
        LOAD_ADDR,
        img.len() as u32,
        img.len() as u32,
        7,
        0x1000,
    ];
    for (i, w) in words.iter().enumerate() {
        f[ph + 4 * i..ph + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    // The Multiboot header must sit in the first 8 KiB of the file: at DATA + 0 it does.
    f.extend_from_slice(&img);
    f
}

/// Where a bzImage's protected-mode part loads, and its 64-bit entry point.
pub const BZIMAGE_LOAD: u32 = 0x10_0000;
pub const BZIMAGE_ENTRY64: u32 = BZIMAGE_LOAD + 0x200;

/// Builds a Linux bzImage (boot protocol 2.15, 64-bit entry) whose 64-bit entry runs the code
/// `body` emits. The loader enters it in long mode with RSI pointing at `boot_params`.
pub fn build_bzimage(body: impl Fn(&mut Code)) -> Vec<u8> {
    let mut prev = Vec::new();
    for _pass in 0..6 {
        let mut c = Code::new(64, prev.clone());
        body(&mut c);
        let (code, syms) = c.assemble(u64::from(BZIMAGE_ENTRY64));
        if syms == prev {
            return bzimage_around(&code);
        }
        prev = syms;
    }
    panic!("bzImage layout does not converge");
}

fn bzimage_around(code64: &[u8]) -> Vec<u8> {
    let mut setup = vec![0u8; 0x400]; // boot sector + one setup sector
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(&mut setup, 0x1f1, &[1]); // setup_sects
    put(&mut setup, 0x1fe, &0xaa55u16.to_le_bytes());
    put(&mut setup, 0x202, b"HdrS");
    put(&mut setup, 0x206, &0x020fu16.to_le_bytes()); // protocol 2.15
    put(&mut setup, 0x211, &[0x01]); // LOADED_HIGH
    put(&mut setup, 0x214, &BZIMAGE_LOAD.to_le_bytes()); // code32_start
    put(&mut setup, 0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(&mut setup, 0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
    put(&mut setup, 0x236, &1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    put(&mut setup, 0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(&mut setup, 0x258, &u64::from(BZIMAGE_LOAD).to_le_bytes()); // pref_address
    put(&mut setup, 0x260, &0x10_0000u32.to_le_bytes()); // init_size
                                                         // Protected-mode part: a 32-bit entry at +0 that just halts (this kernel is 64-bit only),
                                                         // the 64-bit entry at +0x200.
    let mut pm = vec![0xf4u8, 0xeb, 0xfd]; // hlt; jmp $-1
    pm.resize(0x200, 0);
    pm.extend_from_slice(code64);
    setup.extend_from_slice(&pm);
    setup
}

/// Wraps a kit kernel image into an ELF64 executable with a Xen PVH entry note
/// (XEN_ELFNOTE_PHYS32_ENTRY) pointing at the kit's 32-bit entry, and without the Multiboot
/// header, so loaders take the PVH path.
pub fn to_pvh_elf(image: &[u8]) -> Vec<u8> {
    // Loaders (QEMU's, Ferrite's) prefer a Multiboot header to the PVH note: remove it.
    let mut image = image.to_vec();
    image[..4].fill(0);
    let image = &image[..];
    const PHOFF: usize = 64;
    const NOTE_AT: usize = PHOFF + 2 * 56;
    const DATA: usize = 0x1000;
    let mut f = vec![0u8; DATA];
    let put = |f: &mut Vec<u8>, at: usize, v: &[u8]| f[at..at + v.len()].copy_from_slice(v);
    put(&mut f, 0, b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little-endian
    f[6] = 1;
    put(&mut f, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut f, 18, &62u16.to_le_bytes()); // EM_X86_64
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 24, &u64::from(LOAD_ADDR + 32).to_le_bytes()); // e_entry
    put(&mut f, 32, &(PHOFF as u64).to_le_bytes()); // e_phoff
    put(&mut f, 52, &64u16.to_le_bytes()); // e_ehsize
    put(&mut f, 54, &56u16.to_le_bytes()); // e_phentsize
    put(&mut f, 56, &2u16.to_le_bytes()); // e_phnum
                                          // The note: namesz 4 "Xen\0", descsz 4, type 18, the 32-bit entry.
    let mut note = Vec::new();
    for v in [4u32, 4, 18] {
        note.extend_from_slice(&v.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(LOAD_ADDR + 32).to_le_bytes());
    put(&mut f, NOTE_AT, &note);
    let phdr = |kind: u32, flags: u32, off: u64, addr: u64, size: u64, align: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [off, addr, addr, size, size, align] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    let load = phdr(
        1,
        7,
        DATA as u64,
        u64::from(LOAD_ADDR),
        image.len() as u64,
        0x1000,
    );
    let notes = phdr(4, 4, NOTE_AT as u64, 0, note.len() as u64, 4);
    put(&mut f, PHOFF, &load);
    put(&mut f, PHOFF + 56, &notes);
    f.extend_from_slice(image);
    f
}

/// Size of the firmware images [`build_rom`] makes.
pub const ROM_SIZE: usize = 64 << 10;

/// Builds a 64 KiB firmware image for `-bios`: the reset vector (offset 0xFFF0, reached at
/// F000:FFF0 with CS based at 0xFFFF0000) jumps to offset 0, where the 16-bit code `body`
/// emits runs in real mode with no stack and DS = 0.
pub fn build_rom(body: impl Fn(&mut Code)) -> Vec<u8> {
    let mut prev = Vec::new();
    for _pass in 0..6 {
        let mut c = Code::new(16, prev.clone());
        body(&mut c);
        let (code, syms) = c.assemble(0);
        if syms == prev {
            assert!(code.len() <= 0xfff0, "ROM code too large");
            let mut rom = vec![0xffu8; ROM_SIZE];
            rom[..code.len()].copy_from_slice(&code);
            // JMP rel16 from 0xFFF3 back to 0: 0xFFF3 + 0x000D wraps to 0.
            rom[0xfff0..0xfff3].copy_from_slice(&[0xe9, 0x0d, 0x00]);
            return rom;
        }
        prev = syms;
    }
    panic!("ROM layout does not converge");
}
