//! vDSO images: validation (what gVisor's `PrepareVDSO`/`validateVDSO` rejects) and a minimal
//! placeholder image for presets.

use alloc::vec::Vec;

use object::elf::{
    FileHeader32, FileHeader64, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ET_DYN, ET_EXEC, EV_CURRENT,
    PF_R, PF_X, PT_LOAD,
};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::arch::Arch;

/// Why a vDSO image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VdsoError {
    /// Not a little-endian ELF64 of the profile's machine, type ET_EXEC/ET_DYN, version 1.
    #[error("the vDSO is not a little-endian ELF64 shared object for this machine")]
    Header,
    /// The program header table is malformed or lies outside the image.
    #[error("the vDSO's program headers are malformed or outside the image")]
    ProgramHeaders,
    /// The first PT_LOAD does not start at file offset 0.
    #[error("the vDSO's first PT_LOAD does not start at offset 0")]
    FirstOffset,
    /// A PT_LOAD's file layout differs from its memory layout.
    #[error("a vDSO PT_LOAD's file offset differs from its memory offset")]
    Layout,
    /// A PT_LOAD has bss (p_memsz != p_filesz).
    #[error("a vDSO PT_LOAD has p_memsz != p_filesz")]
    Bss,
    /// A PT_LOAD ends past the image.
    #[error("a vDSO PT_LOAD ends past the image")]
    PastEnd,
    /// PT_LOADs are out of order or share a page.
    #[error("vDSO PT_LOADs are out of order or share a page")]
    Order,
}

/// Checks a vDSO image: header, program headers, and PT_LOADs laid out in the file exactly as
/// in memory, without bss, in order, each on its own pages. An i386 (vdso32) image is ELF32,
/// the others ELF64.
///
/// # Errors
/// The first rule the image breaks.
pub fn validate(image: &[u8], arch: Arch, page: u64) -> Result<(), VdsoError> {
    if arch == Arch::I386 {
        validate_class::<FileHeader32<LE>>(image, arch, page)
    } else {
        validate_class::<FileHeader64<LE>>(image, arch, page)
    }
}

fn validate_class<H: FileHeader<Endian = LE>>(
    image: &[u8],
    arch: Arch,
    page: u64,
) -> Result<(), VdsoError> {
    let (class, ehdr, phent) = if H::is_type_64_sized() {
        (ELFCLASS64, 64, 56)
    } else {
        (ELFCLASS32, 52, 32)
    };
    let raw = image.get(..ehdr).ok_or(VdsoError::Header)?;
    let (h, _) = object::pod::from_bytes::<H>(raw).map_err(|()| VdsoError::Header)?;
    let id = h.e_ident();
    let e_type = h.e_type(LE);
    if id.magic != object::elf::ELFMAG
        || id.class != class
        || id.data != ELFDATA2LSB
        || id.version != EV_CURRENT
        || h.e_machine(LE).0 != arch.spec().e_machine
        || (e_type != ET_EXEC && e_type != ET_DYN)
        || usize::from(h.e_phentsize(LE)) != phent
    {
        return Err(VdsoError::Header);
    }
    let phnum = usize::from(h.e_phnum(LE));
    if phnum == 0 || phnum > 73 {
        return Err(VdsoError::ProgramHeaders);
    }
    let off = usize::try_from(h.e_phoff(LE).into()).map_err(|_| VdsoError::ProgramHeaders)?;
    let table = off
        .checked_add(phnum.saturating_mul(phent))
        .and_then(|end| image.get(off..end))
        .ok_or(VdsoError::ProgramHeaders)?;
    let (phdrs, _) = object::pod::slice_from_bytes::<H::ProgramHeader>(table, phnum)
        .map_err(|()| VdsoError::ProgramHeaders)?;
    let mut first_vaddr = None;
    let mut prev_end: Option<u64> = None;
    for p in phdrs.iter().filter(|p| p.p_type(LE) == PT_LOAD) {
        let (offset, vaddr): (u64, u64) = (p.p_offset(LE).into(), p.p_vaddr(LE).into());
        let (filesz, memsz): (u64, u64) = (p.p_filesz(LE).into(), p.p_memsz(LE).into());
        let base = *first_vaddr.get_or_insert(vaddr);
        if prev_end.is_none() && offset != 0 {
            return Err(VdsoError::FirstOffset);
        }
        let mem_off = vaddr.wrapping_sub(base);
        if mem_off != offset {
            return Err(VdsoError::Layout);
        }
        if memsz != filesz {
            return Err(VdsoError::Bss);
        }
        let end = mem_off.checked_add(memsz).ok_or(VdsoError::PastEnd)?;
        if end > image.len() as u64 {
            return Err(VdsoError::PastEnd);
        }
        if let Some(prev) = prev_end {
            let mask = !page.wrapping_sub(1);
            if mem_off < prev || prev & mask >= mem_off & mask {
                return Err(VdsoError::Order);
            }
        }
        prev_end = Some(end);
    }
    Ok(())
}

/// A minimal valid vDSO image of `pages` pages for `arch` (an ELF header and one r-x PT_LOAD
/// covering the image), for presets that plan without a host.
pub fn placeholder(arch: Arch, pages: u64, page: u64) -> Vec<u8> {
    let len = usize::try_from(pages.max(1).saturating_mul(page)).unwrap_or(0);
    let mut f = alloc::vec![0u8; len];
    let put = |f: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        if let Some(d) = f.get_mut(at..at.saturating_add(bytes.len())) {
            d.copy_from_slice(bytes);
        }
    };
    put(&mut f, 0, &object::elf::ELFMAG);
    if arch == Arch::I386 {
        // ELF32: the header (52 bytes), then one program header.
        put(&mut f, 4, &[ELFCLASS32.0, ELFDATA2LSB.0, EV_CURRENT.0]);
        put(&mut f, 16, &ET_DYN.0.to_le_bytes());
        put(&mut f, 18, &arch.spec().e_machine.to_le_bytes());
        put(&mut f, 20, &1u32.to_le_bytes());
        put(&mut f, 28, &52u32.to_le_bytes());
        put(&mut f, 40, &52u16.to_le_bytes());
        put(&mut f, 42, &32u16.to_le_bytes());
        put(&mut f, 44, &1u16.to_le_bytes());
        let size = u32::try_from(len).unwrap_or(0);
        put(&mut f, 52, &PT_LOAD.0.to_le_bytes());
        put(&mut f, 68, &size.to_le_bytes());
        put(&mut f, 72, &size.to_le_bytes());
        put(&mut f, 76, &(PF_R | PF_X).0.to_le_bytes());
        put(&mut f, 80, &u32::try_from(page).unwrap_or(0).to_le_bytes());
        return f;
    }
    put(&mut f, 4, &[ELFCLASS64.0, ELFDATA2LSB.0, EV_CURRENT.0]);
    put(&mut f, 16, &ET_DYN.0.to_le_bytes());
    put(&mut f, 18, &arch.spec().e_machine.to_le_bytes());
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 32, &64u64.to_le_bytes());
    put(&mut f, 52, &64u16.to_le_bytes());
    put(&mut f, 54, &56u16.to_le_bytes());
    put(&mut f, 56, &1u16.to_le_bytes());
    put(&mut f, 64, &PT_LOAD.0.to_le_bytes());
    put(&mut f, 68, &(PF_R | PF_X).0.to_le_bytes());
    put(&mut f, 96, &(len as u64).to_le_bytes());
    put(&mut f, 104, &(len as u64).to_le_bytes());
    put(&mut f, 112, &page.to_le_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_valid_and_corruptions_are_not() {
        let img = placeholder(Arch::X86_64, 2, 4096);
        assert_eq!(validate(&img, Arch::X86_64, 4096), Ok(()));
        assert_eq!(validate(&img, Arch::Aarch64, 4096), Err(VdsoError::Header));
        let mut bad = img.clone();
        bad[96..104].copy_from_slice(&(3 * 4096u64).to_le_bytes()); // filesz past the end
        assert_eq!(validate(&bad, Arch::X86_64, 4096), Err(VdsoError::Bss));
        let mut bad = img.clone();
        bad[72..80].copy_from_slice(&4096u64.to_le_bytes()); // first p_offset != 0
        assert_eq!(
            validate(&bad, Arch::X86_64, 4096),
            Err(VdsoError::FirstOffset)
        );
        assert_eq!(
            validate(&img[..10], Arch::X86_64, 4096),
            Err(VdsoError::Header)
        );
        let img32 = placeholder(Arch::I386, 1, 4096);
        assert_eq!(validate(&img32, Arch::I386, 4096), Ok(()));
        assert_eq!(validate(&img32, Arch::X86_64, 4096), Err(VdsoError::Header));
        assert_eq!(validate(&img, Arch::I386, 4096), Err(VdsoError::Header));
    }
}
