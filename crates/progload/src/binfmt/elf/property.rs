//! PT_GNU_PROPERTY: `parse_elf_properties()` (`fs/binfmt_elf.c`) with arm64's
//! `arch_parse_elf_property()`, which turns on BTI for the segments of the ELF whose note says
//! so.

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::fs::{read_full, FileSystem};

use super::header::{offset_ok, Phdr};

/// `parse_elf_properties()` + arm64 `arch_parse_elf_property()`: returns whether BTI is on.
pub(crate) fn parse_properties<F: FileSystem + ?Sized>(
    fs: &F,
    node: &F::Node,
    p: &Phdr,
) -> Result<bool> {
    let bad = |why| Error::Property {
        why,
        errno: Errno::ENOEXEC,
    };
    if p.p_filesz > 1024 {
        return Err(bad("note larger than 1 KiB"));
    }
    // kernel_read() failing (EINVAL for an offset past the file-offset limit, or an I/O
    // error) and a short read are all EIO here: parse_elf_properties() tests `n < 16` only.
    let len = p.p_filesz as usize;
    if !offset_ok(p.p_offset, len as u64) {
        return Err(Error::Property {
            why: "bad offset",
            errno: Errno::EIO,
        });
    }
    let mut buf = alloc::vec![0u8; len];
    let n = read_full(fs, node, p.p_offset, &mut buf).map_err(|_| Error::Property {
        why: "read failed",
        errno: Errno::EIO,
    })?;
    if n < 16 {
        return Err(Error::Property {
            why: "short note",
            errno: Errno::EIO,
        });
    }
    let buf = buf.get(..n).unwrap_or(&[]);
    let word = |o: usize| -> u32 {
        buf.get(o..o.saturating_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let (namesz, descsz, ntype) = (word(0), word(4), word(8));
    if ntype != 5 || namesz != 4 || buf.get(12..16) != Some(b"GNU\0") {
        return Err(bad("not a NT_GNU_PROPERTY_TYPE_0 note"));
    }
    let desc_end = 16usize
        .checked_add(descsz as usize)
        .ok_or_else(|| bad("descriptor overruns"))?;
    if desc_end > n {
        return Err(bad("descriptor overruns"));
    }
    let mut off = 16usize;
    let mut last_type: Option<u32> = None;
    let mut bti = false;
    while off < desc_end {
        // off < desc_end here, and off only grows by amounts checked against desc_end.
        if desc_end.saturating_sub(off) < 8 {
            return Err(bad("property header overruns"));
        }
        let (pr_type, pr_datasz) = (word(off), word(off.saturating_add(4)));
        off = off.saturating_add(8);
        let padded = (pr_datasz as usize)
            .checked_next_multiple_of(8)
            .ok_or_else(|| bad("property overruns"))?;
        if padded > desc_end.saturating_sub(off) {
            return Err(bad("property overruns"));
        }
        if last_type.is_some_and(|t| pr_type <= t) {
            return Err(bad("properties not in ascending order"));
        }
        last_type = Some(pr_type);
        if pr_type == crate::arch::aarch64::FEATURE_1_AND {
            if pr_datasz != 4 {
                return Err(bad("FEATURE_1_AND size is not 4"));
            }
            bti = word(off) & crate::arch::aarch64::FEATURE_1_BTI != 0;
        }
        off = off.saturating_add(padded);
    }
    Ok(bti)
}
