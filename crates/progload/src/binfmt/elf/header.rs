//! ELF header and program header validation, as `load_elf_binary()` and `load_elf_phdrs()` in
//! `fs/binfmt_elf.c` do it, over `object`'s raw ELF64 structures.

use alloc::vec::Vec;

use object::elf::{FileHeader32, FileHeader64, ProgramHeader32, ProgramHeader64, ET_DYN, ET_EXEC};
use object::LittleEndian as LE;

use crate::errno::Errno;
use crate::fs::{read_full, FileSystem};
use crate::mm::{page_align, page_start};
use crate::prot::Prot;

/// `PT_LOAD`.
pub const PT_LOAD: u32 = object::elf::PT_LOAD.0;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = object::elf::PT_INTERP.0;
/// `PT_GNU_STACK`.
pub const PT_GNU_STACK: u32 = object::elf::PT_GNU_STACK.0;
/// `PT_GNU_PROPERTY`.
pub const PT_GNU_PROPERTY: u32 = object::elf::PT_GNU_PROPERTY.0;
/// `PF_X`.
pub const PF_X: u32 = object::elf::PF_X.0;
/// `PF_W`.
pub const PF_W: u32 = object::elf::PF_W.0;
/// `PF_R`.
pub const PF_R: u32 = object::elf::PF_R.0;

/// Size of an ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header (`sizeof(struct elf_phdr)`).
pub const PHDR_SIZE: usize = 56;
/// Size of an ELF32 file header (what the compat loader reads of an interpreter).
pub const EHDR32_SIZE: usize = 52;
/// Size of an ELF32 program header.
pub const PHDR32_SIZE: usize = 32;
/// Largest program header table the kernel reads.
pub const MAX_PHDRS_BYTES: usize = 65_536;

/// The ELF header fields the loader uses. Little-endian fields, whatever `EI_DATA` says: the
/// kernel reads them natively and does not check `EI_CLASS`, `EI_DATA` or `e_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `e_type`.
    pub e_type: u16,
    /// `e_machine`.
    pub e_machine: u16,
    /// `e_entry`.
    pub e_entry: u64,
    /// `e_phoff`.
    pub e_phoff: u64,
    /// `e_phentsize`.
    pub e_phentsize: u16,
    /// `e_phnum`.
    pub e_phnum: u16,
    /// `e_ident[EI_CLASS]`, which only riscv's `elf_check_arch()` looks at.
    pub ei_class: u8,
    /// The same bytes read as an ELF32 header, for the compat loader (which, like the native
    /// one, never looks at `EI_CLASS`).
    pub elf32: Elf32Fields,
    /// The fields above are the ELF32 reading ([`Header::as_elf32`]): the compat loader's.
    pub class32: bool,
}

/// The ELF32 fields `compat_binfmt_elf` checks before it loads anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elf32Fields {
    /// `e_flags` (offset 0x24).
    pub e_flags: u32,
    /// `e_entry` (offset 0x18).
    pub e_entry: u32,
    /// `e_phoff` (offset 0x1c).
    pub e_phoff: u32,
    /// `e_phentsize` (offset 0x2a).
    pub e_phentsize: u16,
    /// `e_phnum` (offset 0x2c).
    pub e_phnum: u16,
}

impl Elf32Fields {
    /// `load_elf_phdrs()` of the compat loader gets past its ENOEXEC checks: 32-byte entries,
    /// a table of 1 to 64 KiB.
    pub fn phdrs_ok(&self) -> bool {
        self.e_phentsize == 32 && (1..=2048).contains(&self.e_phnum)
    }
}

fn le32(b: Option<&[u8]>) -> u32 {
    b.and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

fn le16(b: Option<&[u8]>) -> u16 {
    b.and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(0, u16::from_le_bytes)
}

impl Header {
    /// The header as the compat loader reads it: the same bytes as an ELF32 header.
    pub fn as_elf32(&self) -> Header {
        Header {
            e_entry: u64::from(self.elf32.e_entry),
            e_phoff: u64::from(self.elf32.e_phoff),
            e_phentsize: self.elf32.e_phentsize,
            e_phnum: self.elf32.e_phnum,
            class32: true,
            ..*self
        }
    }

    /// Reads an ELF32 header (at least [`EHDR32_SIZE`] bytes: the compat loader's
    /// interpreter), read as [`Header::as_elf32`]; `None` when the magic is not ELF.
    pub fn parse_elf32(buf: &[u8]) -> Option<Header> {
        let raw = buf.get(..EHDR32_SIZE)?;
        let (h, _) = object::pod::from_bytes::<FileHeader32<LE>>(raw).ok()?;
        if h.e_ident.magic != object::elf::ELFMAG {
            return None;
        }
        Some(Header {
            e_type: h.e_type.get(LE).0,
            e_machine: h.e_machine.get(LE).0,
            e_entry: u64::from(h.e_entry.get(LE)),
            e_phoff: u64::from(h.e_phoff.get(LE)),
            e_phentsize: h.e_phentsize.get(LE),
            e_phnum: h.e_phnum.get(LE),
            ei_class: h.e_ident.class.0,
            elf32: Elf32Fields {
                e_flags: h.e_flags.get(LE).0,
                e_entry: h.e_entry.get(LE),
                e_phoff: h.e_phoff.get(LE),
                e_phentsize: h.e_phentsize.get(LE),
                e_phnum: h.e_phnum.get(LE),
            },
            class32: true,
        })
    }

    /// Reads the header from the first bytes of a file; `None` when the magic is not ELF.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let raw = buf.get(..EHDR_SIZE)?;
        let (h, _) = object::pod::from_bytes::<FileHeader64<LE>>(raw).ok()?;
        if h.e_ident.magic != object::elf::ELFMAG {
            return None;
        }
        Some(Header {
            e_type: h.e_type.get(LE).0,
            e_machine: h.e_machine.get(LE).0,
            e_entry: h.e_entry.get(LE),
            e_phoff: h.e_phoff.get(LE),
            e_phentsize: h.e_phentsize.get(LE),
            e_phnum: h.e_phnum.get(LE),
            ei_class: h.e_ident.class.0,
            elf32: Elf32Fields {
                e_flags: le32(raw.get(0x24..0x28)),
                e_entry: le32(raw.get(0x18..0x1c)),
                e_phoff: le32(raw.get(0x1c..0x20)),
                e_phentsize: le16(raw.get(0x2a..0x2c)),
                e_phnum: le16(raw.get(0x2c..0x2e)),
            },
            class32: false,
        })
    }

    /// `e_type` is ET_EXEC or ET_DYN.
    pub fn type_ok(&self) -> bool {
        self.e_type == ET_EXEC.0 || self.e_type == ET_DYN.0
    }

    /// `e_type` is ET_DYN.
    pub fn is_dyn(&self) -> bool {
        self.e_type == ET_DYN.0
    }
}

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Phdr {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub p_flags: u32,
    /// `p_offset`.
    pub p_offset: u64,
    /// `p_vaddr`.
    pub p_vaddr: u64,
    /// `p_filesz`.
    pub p_filesz: u64,
    /// `p_memsz`.
    pub p_memsz: u64,
    /// `p_align`.
    pub p_align: u64,
}

/// Why `load_elf_phdrs()` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhdrsError {
    /// `e_phentsize` is not 56.
    EntSize,
    /// The table is empty or larger than 64 KiB.
    Count,
    /// The table could not be read whole.
    Short,
}

/// Checks whether a file offset range is readable per `rw_verify_area` (non-negative as a
/// `loff_t`, end not overflowing it).
pub fn offset_ok(offset: u64, len: u64) -> bool {
    offset <= i64::MAX as u64
        && offset
            .checked_add(len)
            .is_some_and(|e| e <= i64::MAX as u64)
}

/// `load_elf_phdrs()`: validate the table's shape and read it: at most 64 KiB, and at most
/// `max_bytes` (a page before 6.17: [`crate::profile::rules::ExecRules::phdrs_beyond_a_page`]).
///
/// # Errors
/// See [`PhdrsError`].
pub fn load_phdrs<F: FileSystem + ?Sized>(
    fs: &F,
    node: &F::Node,
    h: &Header,
    max_bytes: usize,
) -> Result<Vec<Phdr>, PhdrsError> {
    let entsize = if h.class32 { PHDR32_SIZE } else { PHDR_SIZE };
    if usize::from(h.e_phentsize) != entsize {
        return Err(PhdrsError::EntSize);
    }
    let size = usize::from(h.e_phnum).saturating_mul(entsize);
    if size == 0 || size > MAX_PHDRS_BYTES || size > max_bytes {
        return Err(PhdrsError::Count);
    }
    if !offset_ok(h.e_phoff, size as u64) {
        return Err(PhdrsError::Short);
    }
    let mut buf = alloc::vec![0u8; size];
    match read_full(fs, node, h.e_phoff, &mut buf) {
        Ok(n) if n == size => {}
        _ => return Err(PhdrsError::Short),
    }
    if h.class32 {
        let (raw, _) =
            object::pod::slice_from_bytes::<ProgramHeader32<LE>>(&buf, usize::from(h.e_phnum))
                .map_err(|()| PhdrsError::Short)?;
        return Ok(raw
            .iter()
            .map(|p| Phdr {
                p_type: p.p_type.get(LE).0,
                p_flags: p.p_flags.get(LE).0,
                p_offset: u64::from(p.p_offset.get(LE)),
                p_vaddr: u64::from(p.p_vaddr.get(LE)),
                p_filesz: u64::from(p.p_filesz.get(LE)),
                p_memsz: u64::from(p.p_memsz.get(LE)),
                p_align: u64::from(p.p_align.get(LE)),
            })
            .collect());
    }
    let (raw, _) =
        object::pod::slice_from_bytes::<ProgramHeader64<LE>>(&buf, usize::from(h.e_phnum))
            .map_err(|()| PhdrsError::Short)?;
    Ok(raw
        .iter()
        .map(|p| Phdr {
            p_type: p.p_type.get(LE).0,
            p_flags: p.p_flags.get(LE).0,
            p_offset: p.p_offset.get(LE),
            p_vaddr: p.p_vaddr.get(LE),
            p_filesz: p.p_filesz.get(LE),
            p_memsz: p.p_memsz.get(LE),
            p_align: p.p_align.get(LE),
        })
        .collect())
}

/// Reads exactly `len` bytes at `offset` (`elf_read`): a short read is EIO.
///
/// # Errors
/// EINVAL for an offset the kernel rejects, EIO for a short read, or the filesystem's error.
pub fn read_exact<F: FileSystem + ?Sized>(
    fs: &F,
    node: &F::Node,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, Errno> {
    if !offset_ok(offset, len as u64) {
        return Err(Errno::EINVAL);
    }
    let mut buf = alloc::vec![0u8; len];
    let n = read_full(fs, node, offset, &mut buf)?;
    if n != len {
        return Err(Errno::EIO);
    }
    Ok(buf)
}

/// `total_mapping_size()`: from the lowest PT_LOAD page to the highest segment end (0 without
/// PT_LOAD); before 5.18 (`spans_all` false:
/// [`crate::profile::rules::ExecRules::total_size_spans_all`]), from the page of the first
/// PT_LOAD in table order to the end of the last one.
pub fn total_mapping_size(phdrs: &[Phdr], page: u64, spans_all: bool) -> u64 {
    if !spans_all {
        let mut loads = phdrs.iter().filter(|p| p.p_type == PT_LOAD);
        let Some(first) = loads.next() else {
            return 0;
        };
        let last = loads.next_back().unwrap_or(first);
        return last
            .p_vaddr
            .wrapping_add(last.p_memsz)
            .wrapping_sub(page_start(first.p_vaddr, page));
    }
    let mut min = u64::MAX;
    let mut max = 0u64;
    let mut any = false;
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        min = min.min(page_start(p.p_vaddr, page));
        max = max.max(p.p_vaddr.wrapping_add(p.p_memsz));
        any = true;
    }
    if any {
        max.wrapping_sub(min)
    } else {
        0
    }
}

/// `maximum_alignment()`: the largest power-of-two `p_align` of the PT_LOADs, page aligned.
pub fn maximum_alignment(phdrs: &[Phdr], page: u64) -> u64 {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_align.is_power_of_two())
        .map(|p| page_align(p.p_align, page))
        .max()
        .unwrap_or(0)
}

/// `make_prot()`: r/w/x bits from `p_flags`.
pub fn prot_of(p_flags: u32) -> Prot {
    let mut prot = Prot::empty();
    if p_flags & PF_R != 0 {
        prot |= Prot::READ;
    }
    if p_flags & PF_W != 0 {
        prot |= Prot::WRITE;
    }
    if p_flags & PF_X != 0 {
        prot |= Prot::EXEC;
    }
    prot
}
