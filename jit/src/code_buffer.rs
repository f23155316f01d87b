//! Where translated code lives: one fixed-size buffer mapped twice, writable at one address
//! and executable at another (W^X: no page is ever both), so appending a block or patching
//! a chained jump is a plain memory write — never an `mprotect` of the whole buffer, which
//! cost a quarter of the boot time when dynasmrt's assembler re-protected its buffer at
//! every commit.
//!
//! The two views share one anonymous memory file (`memfd_create`); x86 keeps instruction
//! fetches coherent with stores to the same physical pages, whatever the virtual address.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use memmap2::{Mmap, MmapMut, MmapOptions};

pub struct CodeBuffer {
    write: MmapMut,
    exec: Mmap,
    /// The memory file behind both views (its pages are given back on truncation).
    file: File,
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
            file,
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

    /// Forgets everything after `len` bytes (the code kept across flushes), and gives the
    /// memory file's pages past them back: shared memory stays resident until then, so a
    /// guest that keeps making one-shot code would otherwise hold the whole capacity per
    /// vCPU for good.
    pub fn truncate(&mut self, len: usize) {
        let start = len.next_multiple_of(4096);
        if self.len > start {
            // SAFETY: fallocate on a descriptor this buffer owns; punching a hole (size kept)
            // only zeroes the file's range past the code kept, which nothing executes now.
            let r = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    start as libc::off_t,
                    (self.len - start) as libc::off_t,
                )
            };
            if r != 0 {
                log::debug!(
                    "translator: cannot release the code buffer's pages: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        self.len = self.len.min(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn resident(b: &CodeBuffer) -> u64 {
        b.file.metadata().expect("memfd metadata").blocks() * 512
    }

    #[test]
    fn truncation_gives_the_pages_back() {
        let mut b = CodeBuffer::new(1 << 20).expect("code buffer");
        b.append(&[0xc3; 4096]).expect("room");
        let kept = resident(&b);
        b.append(&vec![0x90; 512 << 10]).expect("room");
        assert!(resident(&b) >= kept + (512 << 10));
        b.truncate(4096);
        assert_eq!(b.len(), 4096);
        assert!(
            resident(&b) <= kept,
            "the code past the kept part still takes memory"
        );
        // The kept code is still there, and the buffer takes new code.
        assert_eq!(b.write[0], 0xc3);
        assert_eq!(b.append(&[0xcc]), Some(4096));
    }
}
