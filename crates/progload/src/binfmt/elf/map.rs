//! Mapping an ELF's PT_LOADs: `elf_map()`, `elf_load()` and the PT_LOAD loop of
//! `load_elf_binary()` (`fs/binfmt_elf.c`), which picks the load bias (ET_EXEC at its
//! addresses, ET_DYN with an interpreter at `ELF_ET_DYN_BASE`, a static-PIE where a probe
//! mapping lands) and computes the `mm` code and data bounds.

use crate::error::{Bytes, Error, Result};
use crate::mm::{page_align, page_offset, page_start, MapError, Mm};
use crate::prot::Prot;
use crate::resolve::Found;
use crate::trace::{Step, Tracer};

use super::header::{maximum_alignment, prot_of, total_mapping_size, Header, Phdr, PF_X, PT_LOAD};

/// The error a failed mapping of PT_LOAD `index` at `addr` (`len` bytes) is, after the point
/// of no return.
pub(super) fn map_error(e: MapError, addr: u64, len: u64, index: usize) -> Error {
    match e {
        MapError::Exists => Error::MapCollision { addr },
        MapError::BelowMinAddr => Error::BelowMinAddr { addr },
        MapError::Misaligned => Error::Misaligned { index },
        MapError::OffsetOverflow => Error::OffsetOverflow { index },
        MapError::PadZeroFault => Error::PadZeroFault { addr },
        MapError::NoMemory => Error::NoSpace { len },
        MapError::Overcommit => Error::Overcommit { len },
    }
}

/// How a segment is placed: `MAP_FIXED`, `MAP_FIXED_NOREPLACE`, or a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// `MAP_FIXED`.
    Fixed,
    /// `MAP_FIXED_NOREPLACE`.
    NoReplace,
    /// A hint (`get_unmapped_area()` decides).
    Hint,
}

impl Placement {
    fn flags(self) -> (bool, bool) {
        (self == Placement::Fixed, self == Placement::NoReplace)
    }
}

/// `elf_map()`: maps a segment's file part; with `total_size`, reserves the whole image first
/// and unmaps what follows the segment. Returns the mapping's address.
pub(super) fn elf_map<N: Clone>(
    mm: &mut Mm<'_, N>,
    file: usize,
    addr: u64,
    p: &Phdr,
    prot: Prot,
    how: Placement,
    total_size: u64,
) -> core::result::Result<u64, MapError> {
    let page = mm.page;
    let (fixed, noreplace) = how.flags();
    let size = p.p_filesz.wrapping_add(page_offset(p.p_vaddr, page));
    let off = p.p_offset.wrapping_sub(page_offset(p.p_vaddr, page));
    let addr = page_start(addr, page);
    let size = page_align(size, page);
    if size == 0 {
        return Ok(addr);
    }
    if total_size != 0 {
        let total = page_align(total_size, page);
        let map_addr = mm.mmap_file(file, addr, total, prot, off, fixed, noreplace)?;
        mm.unmap(
            map_addr.saturating_add(size),
            map_addr.saturating_add(total),
        );
        Ok(map_addr)
    } else {
        mm.mmap_file(file, addr, size, prot, off, fixed, noreplace)
    }
}

/// `elf_load()`: one PT_LOAD with its bss (`padzero()` of the last file page when it is
/// writable, then `vm_brk_flags()` for the whole pages beyond). Returns the mapping's address.
pub(super) fn elf_load<N: Clone>(
    mm: &mut Mm<'_, N>,
    file: usize,
    addr: u64,
    p: &Phdr,
    how: Placement,
    total_size: u64,
) -> core::result::Result<u64, MapError> {
    let page = mm.page;
    let prot = prot_of(p.p_flags);
    let (map_addr, zero_start, zero_end);
    if p.p_filesz != 0 {
        map_addr = elf_map(mm, file, addr, p, prot, how, total_size)?;
        let base = map_addr.wrapping_add(page_offset(p.p_vaddr, page));
        zero_start = base.wrapping_add(p.p_filesz);
        zero_end = base.wrapping_add(p.p_memsz);
        if p.p_memsz > p.p_filesz {
            // padzero(): clear_user() to the end of the page; it only takes effect (and
            // only matters) when the page is writable. Mirrors fs/binfmt_elf.c: elf_load():
            // a page wholly past the end of the file faults (SIGBUS), and that fault is
            // fatal (-EFAULT) for a writable segment and ignored otherwise; the 6.1.140 and
            // 6.6.92 back-ports ignore it always.
            let in_page = page_offset(zero_start, page);
            if in_page != 0 && prot.contains(Prot::WRITE) {
                let map_off = p.p_offset.wrapping_sub(page_offset(p.p_vaddr, page));
                let page_off =
                    map_off.wrapping_add(page_start(zero_start, page).wrapping_sub(map_addr));
                if page_off < page_align(mm.file_size(file), page) {
                    mm.pad_zero(zero_start, page.saturating_sub(in_page));
                } else if mm.rules.padzero_fault_fatal {
                    return Err(MapError::PadZeroFault);
                }
            }
        }
    } else {
        map_addr = page_start(addr, page);
        zero_start = map_addr;
        zero_end = zero_start
            .wrapping_add(page_offset(p.p_vaddr, page))
            .wrapping_add(p.p_memsz);
    }
    if p.p_memsz > p.p_filesz {
        let zs = page_align(zero_start, page);
        let ze = page_align(zero_end, page);
        mm.brk_map(zs, ze.wrapping_sub(zs), prot.contains(Prot::EXEC))?;
    }
    Ok(map_addr)
}

/// What the PT_LOAD loops before 6.7 track for the bss: the highest file end (`elf_bss`), the
/// highest segment end (`elf_brk`, `last_bss`) and the protection of the segment that reached
/// it (`bss_prot`), all at the addresses given to [`Self::note`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BssExtent {
    /// The highest `p_vaddr + p_filesz`.
    pub file_end: u64,
    /// The highest `p_vaddr + p_memsz`.
    pub end: u64,
    /// The protection of the segment that first reached `end`.
    pub prot: Prot,
}

impl BssExtent {
    /// Counts PT_LOAD `p`, placed at `start` (the caller has range-checked it).
    pub fn note(&mut self, start: u64, p: &Phdr) {
        self.file_end = self.file_end.max(start.saturating_add(p.p_filesz));
        let end = start.saturating_add(p.p_memsz);
        if end > self.end {
            self.end = end;
            self.prot = prot_of(p.p_flags);
        }
    }
}

/// The bss before 6.7 ([`crate::profile::rules::ExecRules::elf_load_program`]): anonymous
/// pages from the page after the highest file end `bss` to the page end of the highest
/// segment end `brk` (`set_brk()` of `load_elf_binary()`, the tail of `load_elf_interp()`),
/// executable when the segment that reaches `brk` is.
pub(super) fn map_bss<N: Clone>(
    mm: &mut Mm<'_, N>,
    bss: u64,
    brk: u64,
    prot: Prot,
) -> core::result::Result<(), MapError> {
    let (start, end) = (page_align(bss, mm.page), page_align(brk, mm.page));
    if end > start {
        mm.brk_map(start, end.wrapping_sub(start), prot.contains(Prot::EXEC))?;
    }
    Ok(())
}

/// `padzero()` before 6.7: clears the rest of the page at `addr`; `Err` when that faults.
pub(super) fn pad_zero_old<N: Clone>(
    mm: &mut Mm<'_, N>,
    addr: u64,
    limit: u64,
) -> core::result::Result<(), MapError> {
    let in_page = page_offset(addr, mm.page);
    if in_page == 0 {
        return Ok(());
    }
    let len = mm.page.wrapping_sub(in_page).min(limit);
    mm.clear_user(addr, len)
}

/// Mirrors the range check of `load_elf_binary()` and `load_elf_interp()`: a segment at `k`
/// (its address in the address space being checked) must lie below `TASK_SIZE` with its
/// whole `p_memsz`, and `p_filesz <= p_memsz`.
pub(super) fn segment_in_range(k: u64, p: &Phdr, task_size: u64) -> bool {
    k < task_size
        && p.p_filesz <= p.p_memsz
        && task_size
            .checked_sub(p.p_memsz)
            .is_some_and(|room| room >= k)
}

/// What the PT_LOAD loop of `load_elf_binary()` leaves: the load bias and the bounds it
/// computes, already biased.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Loaded {
    /// `load_bias`.
    pub load_bias: u64,
    /// `e_entry + load_bias`.
    pub entry: u64,
    /// `AT_PHDR`.
    pub phdr_addr: u64,
    /// `start_code`.
    pub start_code: u64,
    /// `end_code`.
    pub end_code: u64,
    /// `start_data`.
    pub start_data: u64,
    /// `end_data`.
    pub end_data: u64,
    /// `elf_brk`: the end of the highest segment.
    pub elf_brk: u64,
}

/// How the first PT_LOAD of an ET_EXEC or of an ET_DYN with an interpreter is mapped:
/// `MAP_FIXED_NOREPLACE` since 5.16, `MAP_FIXED` before
/// ([`crate::profile::rules::ExecRules::first_load_noreplace`]).
fn first_placement<N: Clone>(mm: &Mm<'_, N>) -> Placement {
    if mm.rules.first_load_noreplace {
        Placement::NoReplace
    } else {
        Placement::Fixed
    }
}

/// The load bias of the first PT_LOAD `p` (index `index`) of an ET_DYN, before the mapping
/// (`load_elf_binary()`): `ELF_ET_DYN_BASE` (randomized, aligned) with an interpreter; for a
/// static-PIE aligned above a page, where a probe mapping of the whole image lands; else 0.
/// Returns (bias, `total_size`, placement).
fn dyn_bias<N: Clone>(
    mm: &mut Mm<'_, N>,
    hdr_phdrs: &[Phdr],
    file: usize,
    p: &Phdr,
    index: usize,
    has_interp: bool,
) -> Result<(u64, Placement)> {
    let page = mm.page;
    let alignment = maximum_alignment(hdr_phdrs, page);
    let mut how = Placement::Hint;
    let mut load_bias;
    let spans_all = mm.rules.total_size_spans_all;
    if has_interp {
        load_bias = mm.profile.elf_et_dyn_base;
        if mm.randomize {
            load_bias = load_bias.wrapping_add(mm.mmap_rnd());
        }
        if alignment != 0 {
            load_bias &= !alignment.wrapping_sub(1);
        }
        how = first_placement(mm);
    } else if alignment > page && mm.rules.static_pie_alignment {
        let total_size = total_mapping_size(hdr_phdrs, page, spans_all);
        let size = page_align(total_size, page);
        let off = p.p_offset.wrapping_sub(page_offset(p.p_vaddr, page));
        let probe = if p.p_filesz == 0 {
            // The probe is elf_load() at address 0, then unmapped: with no file bytes that
            // is the bss at page 0 (vm_brk_flags, whose refusal is fatal), or nothing;
            // either way the answer is 0.
            mm.tentatively(|mm| elf_load(mm, file, 0, p, Placement::Hint, total_size))
                .map_err(|e| map_error(e, 0, p.p_memsz, index))?
        } else {
            mm.get_unmapped_area(Some(file), 0, size, off)
                .ok_or(Error::NoSpace { len: size })?
        };
        load_bias = probe & !alignment.wrapping_sub(1);
        how = Placement::NoReplace;
    } else {
        load_bias = 0;
    }
    Ok((page_start(load_bias.wrapping_sub(p.p_vaddr), page), how))
}

/// The PT_LOAD loop of `load_elf_binary()` for the program `file` (`hdr`, `phdrs`), with or
/// without an interpreter.
///
/// # Errors
/// The fatal error the kernel meets mapping a segment, or a segment out of range.
pub(super) fn load_program<N: Clone>(
    mm: &mut Mm<'_, N>,
    trace: &mut Tracer<'_>,
    file: &Found<N>,
    hdr: &Header,
    phdrs: &[Phdr],
    has_interp: bool,
) -> Result<Loaded> {
    let page = mm.page;
    let task_size = mm.profile.task_size;
    let file_idx = mm.add_file(&file.node, &file.path, &file.meta);
    let mut load_bias = 0u64;
    let mut first = true;
    let mut phdr_addr = 0u64;
    let (mut start_code, mut end_code, mut start_data, mut end_data) = (u64::MAX, 0u64, 0u64, 0u64);
    // The highest segment end (elf_brk) and, for the bss before 6.7, the highest file end.
    let per_segment = mm.rules.elf_load_program;
    let mut extent = BssExtent::default();
    let mut last_index = 0;
    for (index, p) in phdrs.iter().enumerate() {
        if p.p_type != PT_LOAD {
            continue;
        }
        last_index = index;
        let vaddr = p.p_vaddr;
        if !per_segment && extent.end > extent.file_end {
            // A PT_LOAD with p_memsz > p_filesz came before this one: set_brk() its bss,
            // then clear the rest of its last file page, ignoring a fault.
            let (bss, brk) = (
                load_bias.wrapping_add(extent.file_end),
                load_bias.wrapping_add(extent.end),
            );
            map_bss(mm, bss, brk, extent.prot)
                .map_err(|e| map_error(e, bss, brk.wrapping_sub(bss), index))?;
            let _ = pad_zero_old(mm, bss, extent.end.wrapping_sub(extent.file_end));
        }
        // Only the first PT_LOAD reserves the whole image.
        let mut total_size = 0u64;
        let how = if !first {
            Placement::Fixed
        } else if !hdr.is_dyn() {
            first_placement(mm)
        } else {
            let (bias, how) = dyn_bias(mm, phdrs, file_idx, p, index, has_interp)?;
            load_bias = bias;
            total_size = total_mapping_size(phdrs, page, mm.rules.total_size_spans_all);
            if total_size == 0 {
                return Err(Error::NoLoad(Bytes(file.path.clone())));
            }
            how
        };
        let addr = load_bias.wrapping_add(vaddr);
        let got = if per_segment {
            elf_load(mm, file_idx, addr, p, how, total_size)
        } else {
            elf_map(mm, file_idx, addr, p, prot_of(p.p_flags), how, total_size)
        }
        .map_err(|e| map_error(e, addr, p.p_memsz, index))?;
        let first_load = first;
        // Mirrors fs/binfmt_elf.c: load_elf_binary(): `BAD_ADDR(error)` on an address
        // that is not an error value (an empty PT_LOAD at or above TASK_SIZE) is -EINVAL.
        if got >= task_size {
            return Err(Error::SegmentRange { index });
        }
        if first {
            first = false;
            if hdr.is_dyn() {
                load_bias = load_bias.wrapping_add(
                    got.wrapping_sub(page_start(load_bias.wrapping_add(vaddr), page)),
                );
            }
        }
        trace.note(|| Step::Segment {
            path: file.path.clone(),
            index,
            vaddr,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
            addr: load_bias.wrapping_add(vaddr),
            prot: prot_of(p.p_flags),
        });
        if mm.rules.at_phdr_from_containing_load {
            if p.p_offset <= hdr.e_phoff && hdr.e_phoff < p.p_offset.wrapping_add(p.p_filesz) {
                phdr_addr = hdr.e_phoff.wrapping_sub(p.p_offset).wrapping_add(vaddr);
            }
        } else if first_load {
            // Before 5.18 (5.10.110): `load_addr + e_phoff`, load_addr being the first
            // PT_LOAD's p_vaddr - p_offset.
            phdr_addr = vaddr.wrapping_sub(p.p_offset).wrapping_add(hdr.e_phoff);
        }
        let exec = p.p_flags & PF_X != 0;
        if exec && vaddr < start_code {
            start_code = vaddr;
        }
        if start_data < vaddr {
            start_data = vaddr;
        }
        if !segment_in_range(vaddr, p, task_size) {
            return Err(Error::SegmentRange { index });
        }
        // The range check above bounds vaddr + p_memsz (>= p_filesz) by TASK_SIZE.
        let k = vaddr.saturating_add(p.p_filesz);
        if exec && end_code < k {
            end_code = k;
        }
        if end_data < k {
            end_data = k;
        }
        extent.note(vaddr, p);
    }
    if !per_segment {
        // set_brk() of the last bss, then padzero(), whose fault is fatal here (EFAULT).
        let (bss, brk) = (
            load_bias.wrapping_add(extent.file_end),
            load_bias.wrapping_add(extent.end),
        );
        map_bss(mm, bss, brk, extent.prot)
            .map_err(|e| map_error(e, bss, brk.wrapping_sub(bss), last_index))?;
        if bss != brk {
            pad_zero_old(mm, bss, u64::MAX).map_err(|e| map_error(e, bss, 0, last_index))?;
        }
    }
    Ok(Loaded {
        load_bias,
        entry: hdr.e_entry.wrapping_add(load_bias),
        phdr_addr: phdr_addr.wrapping_add(load_bias),
        start_code: start_code.wrapping_add(load_bias),
        end_code: end_code.wrapping_add(load_bias),
        start_data: start_data.wrapping_add(load_bias),
        end_data: end_data.wrapping_add(load_bias),
        elf_brk: extent.end.wrapping_add(load_bias),
    })
}
