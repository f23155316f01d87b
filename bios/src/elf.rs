//! A minimal ELF reader for 32- and 64-bit program headers (Multiboot kernels are usually
//! ELF32, which linux-loader does not read).

pub fn is_elf(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
}

/// A loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

const PT_LOAD: u32 = 1;

/// Parses an x86 little-endian ELF executable's PT_LOAD segments; every offset and size is
/// checked against the file.
pub fn parse(image: &[u8]) -> Result<ElfImage, String> {
    if !is_elf(image) {
        return Err("no ELF magic".into());
    }
    let class = *image.get(4).ok_or("truncated ELF header")?;
    if image.get(5) != Some(&1) {
        return Err("not a little-endian ELF file".into());
    }
    let is64 = match class {
        1 => false,
        2 => true,
        _ => return Err(format!("unknown ELF class {class}")),
    };
    let trunc = || "truncated ELF header".to_string();
    let (entry, phoff, phentsize, phnum) = if is64 {
        (
            u64_at(image, 24).ok_or_else(trunc)?,
            u64_at(image, 32).ok_or_else(trunc)?,
            u16_at(image, 54).ok_or_else(trunc)?,
            u16_at(image, 56).ok_or_else(trunc)?,
        )
    } else {
        (
            u64::from(u32_at(image, 24).ok_or_else(trunc)?),
            u64::from(u32_at(image, 28).ok_or_else(trunc)?),
            u16_at(image, 42).ok_or_else(trunc)?,
            u16_at(image, 44).ok_or_else(trunc)?,
        )
    };
    let min_entsize = if is64 { 56 } else { 32 };
    if phnum > 0 && usize::from(phentsize) < min_entsize {
        return Err(format!("program header entry size {phentsize} too small"));
    }
    let mut segments = Vec::new();
    for i in 0..u64::from(phnum) {
        let base = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or("program header offset overflows")?;
        let ph = image
            .get(base..base + min_entsize)
            .ok_or("program headers run past the end of the file")?;
        let seg = if is64 {
            if u32_at(ph, 0) != Some(PT_LOAD) {
                continue;
            }
            Segment {
                offset: u64_at(ph, 8).unwrap_or(0),
                vaddr: u64_at(ph, 16).unwrap_or(0),
                paddr: u64_at(ph, 24).unwrap_or(0),
                filesz: u64_at(ph, 32).unwrap_or(0),
                memsz: u64_at(ph, 40).unwrap_or(0),
            }
        } else {
            if u32_at(ph, 0) != Some(PT_LOAD) {
                continue;
            }
            let f = |o| u64::from(u32_at(ph, o).unwrap_or(0));
            Segment {
                offset: f(4),
                vaddr: f(8),
                paddr: f(12),
                filesz: f(16),
                memsz: f(20),
            }
        };
        let end = seg.offset.checked_add(seg.filesz);
        if end.is_none_or(|e| e > image.len() as u64) {
            return Err(format!("segment {i} runs past the end of the file"));
        }
        if seg.filesz > seg.memsz {
            return Err(format!("segment {i} has filesz > memsz"));
        }
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err("no loadable segments".into());
    }
    Ok(ElfImage { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-segment ELF32 executable: the header, one program header, then `code`.
    pub fn tiny_elf32(paddr: u32, code: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 84];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes());
        f[24..28].copy_from_slice(&paddr.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&1u16.to_le_bytes());
        let ph = 52;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        f[ph + 4..ph + 8].copy_from_slice(&84u32.to_le_bytes());
        f[ph + 8..ph + 12].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 12..ph + 16].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 16..ph + 20].copy_from_slice(&(code.len() as u32).to_le_bytes());
        f[ph + 20..ph + 24].copy_from_slice(&(code.len() as u32 + 16).to_le_bytes());
        f.extend_from_slice(code);
        f
    }

    #[test]
    fn parses_a_tiny_elf32() {
        let img = tiny_elf32(0x100000, &[0x90; 10]);
        let e = parse(&img).unwrap();
        assert_eq!(e.entry, 0x100000);
        assert_eq!(e.segments[0].filesz, 10);
        assert_eq!(e.segments[0].memsz, 26);
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let img = tiny_elf32(0x100000, &[0x90; 10]);
        for n in 0..img.len() - 10 {
            assert!(parse(&img[..n]).is_err(), "prefix of {n} bytes");
        }
    }
}
