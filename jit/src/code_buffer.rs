//! Where translated code lives: one fixed-size buffer mapped twice, writable at one address
//! and executable at another (W^X: no page is ever both), so appending a block or patching
//! a chained jump is a plain memory write — never an `mprotect` of the whole buffer, which
//! cost a quarter of the boot time when dynasmrt's assembler re-protected its buffer at
//! every commit.
//!
//! The two views share one anonymous memory file (`memfd_create`); x86 keeps instruction
//! fetches coherent with stores to the same physical pages, whatever the virtual address.

use std::fs::File;
use std::os::fd::FromRawFd;

use memmap2::{Mmap, MmapMut, MmapOptions};

pub struct CodeBuffer {
    write: MmapMut,
    exec: Mmap,
    len: usize,
}

impl CodeBuffer {
    /// A buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> std::io::Result<CodeBuffer> {
        // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new file
        // descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"ferrite-jit".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor memfd_create just returned, owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(capacity as u64)?;
        // SAFETY: the file is private to this buffer (an anonymous memfd nobody else has), so
        // nothing outside changes or truncates it under the mappings.
        let write = unsafe { MmapOptions::new().len(capacity).map_mut(&file)? };
        // SAFETY: as above.
        let exec = unsafe { MmapOptions::new().len(capacity).map_exec(&file)? };
        Ok(CodeBuffer {
            write,
            exec,
            len: 0,
        })
    }

    /// The executable address of the next byte appended.
    pub fn next_addr(&self) -> usize {
        self.exec.as_ptr() as usize + self.len
    }

    /// The executable address of `offset`.
    pub fn addr(&self, offset: usize) -> usize {
        self.exec.as_ptr() as usize + offset
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.write.len()
    }

    /// Appends `code`; its offset, or `None` if the buffer is full.
    pub fn append(&mut self, code: &[u8]) -> Option<usize> {
        let at = self.len;
        let end = at.checked_add(code.len())?;
        self.write.get_mut(at..end)?.copy_from_slice(code);
        self.len = end;
        Some(at)
    }

    /// Rewrites the bytes at executable address `addr` (a chained jump's displacement).
    /// Only between runs of the code: no thread executes this buffer meanwhile.
    pub fn patch(&mut self, addr: usize, bytes: &[u8]) {
        let at = addr.wrapping_sub(self.exec.as_ptr() as usize);
        if let Some(dst) = at
            .checked_add(bytes.len())
            .and_then(|end| self.write.get_mut(at..end))
        {
            dst.copy_from_slice(bytes);
        }
    }

    /// Forgets everything after `len` bytes (the code kept across flushes).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
