//! The ELF interpreter (PT_INTERP): reading its name, opening it with `open_exec()` and
//! checking it, as `load_elf_binary()` does before the point of no return, and mapping it,
//! as `load_elf_interp()` does after (`fs/binfmt_elf.c`).

use alloc::vec::Vec;

use crate::arch::ArchSpec;
use crate::errno::Errno;
use crate::error::{Bytes, Error, InterpProblem, Result};
use crate::fs::FileSystem;
use crate::mm::{page_start, Mm};
use crate::profile::Credentials;
use crate::resolve::{self, DirPath, Found};
use crate::trace::{Role, Step, Tracer};

use super::header::{
    self, prot_of, total_mapping_size, Header, Phdr, EHDR32_SIZE, EHDR_SIZE, PT_LOAD,
};
use super::map::{
    elf_load, elf_map, map_bss, map_error, pad_zero_old, segment_in_range, BssExtent, Placement,
};

/// An opened, checked interpreter.
#[derive(Clone, Debug)]
pub(crate) struct Interp<N> {
    /// The file.
    pub file: Found<N>,
    /// Its header.
    pub hdr: Header,
    /// Its program headers.
    pub phdrs: Vec<Phdr>,
}

/// Reads the name PT_INTERP `p` of `file` holds (without its NUL).
///
/// # Errors
/// ENOEXEC for a size outside 2..=`PATH_MAX` or a missing NUL, EIO for a short read.
pub(super) fn read_name<F: FileSystem + ?Sized>(
    fs: &F,
    file: &Found<F::Node>,
    p: &Phdr,
) -> Result<Vec<u8>> {
    if p.p_filesz > resolve::PATH_MAX as u64 || p.p_filesz < 2 {
        return Err(Error::InterpSize(p.p_filesz));
    }
    // p_filesz <= PATH_MAX was checked above.
    let len = usize::try_from(p.p_filesz).unwrap_or(usize::MAX);
    let bytes = header::read_exact(fs, &file.node, p.p_offset, len).map_err(|errno| {
        if errno == Errno::EIO {
            Error::InterpShort { offset: p.p_offset }
        } else {
            Error::Read {
                path: Bytes(file.path.clone()),
                errno,
            }
        }
    })?;
    if bytes.last() != Some(&0) {
        return Err(Error::InterpNotTerminated);
    }
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    Ok(bytes.get(..end).unwrap_or(&[]).to_vec())
}

/// Opens the interpreter `name` (`open_exec()`, relative to the caller's cwd), reads its ELF
/// header and program headers, and checks them: the `ELIBBAD` cases.
///
/// # Errors
/// The path error of opening it, EIO when it is shorter than an ELF header, ELIBBAD when it
/// is not an ELF of this machine with usable program headers.
#[allow(clippy::too_many_arguments)] // the state of load_elf_binary() at this step
pub(super) fn open<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    spec: &ArchSpec,
    phdrs_limit: usize,
    cwd: &DirPath<F::Node>,
    name: &[u8],
    trace: &mut Tracer<'_>,
) -> Result<Interp<F::Node>> {
    let file =
        resolve::open_exec_kernel(fs, creds, cwd, name).map_err(|problem| Error::InterpOpen {
            path: Bytes(name.to_vec()),
            problem,
        })?;
    // The compat loader reads an ELF32 header.
    let compat = spec.e_machine == crate::arch::i386::EM_386;
    let ehdr_size = if compat { EHDR32_SIZE } else { EHDR_SIZE };
    let raw = header::read_exact(fs, &file.node, 0, ehdr_size).map_err(|errno| {
        if errno == Errno::EIO {
            Error::InterpHeaderShort(Bytes(name.to_vec()))
        } else {
            Error::Read {
                path: Bytes(name.to_vec()),
                errno,
            }
        }
    })?;
    trace.note(|| Step::Opened {
        role: Role::ElfInterpreter,
        given: name.to_vec(),
        path: file.path.clone(),
        links: file.links.clone(),
    });
    let bad = |problem| Error::InterpBad {
        path: Bytes(name.to_vec()),
        problem,
    };
    let hdr = if compat {
        Header::parse_elf32(&raw)
    } else {
        Header::parse(&raw)
    }
    .ok_or_else(|| bad(InterpProblem::BadMagic))?;
    let machine_ok =
        hdr.e_machine == spec.e_machine || (compat && hdr.e_machine == crate::arch::i386::EM_486);
    if !machine_ok || (spec.checks_class && hdr.ei_class != object::elf::ELFCLASS64.0) {
        return Err(bad(InterpProblem::WrongMachine(hdr.e_machine)));
    }
    let phdrs = header::load_phdrs(fs, &file.node, &hdr, phdrs_limit)
        .map_err(|_| bad(InterpProblem::BadProgramHeaders))?;
    Ok(Interp { file, hdr, phdrs })
}

/// `load_elf_interp()`: maps the interpreter's PT_LOADs (an ET_DYN where a non-fixed mapping
/// of its whole image lands, an ET_EXEC at its addresses) and returns its load address.
/// `no_base` is the program's load bias (non-zero: the interpreter is run as a program's
/// interpreter rather than directly).
///
/// # Errors
/// The fatal error the kernel meets.
pub(super) fn load<N: Clone>(
    mm: &mut Mm<'_, N>,
    trace: &mut Tracer<'_>,
    interp: &Interp<N>,
    no_base: u64,
) -> Result<u64> {
    let page = mm.page;
    let (f, ih, iph) = (&interp.file, &interp.hdr, &interp.phdrs);
    if !ih.type_ok() {
        return Err(Error::InterpType(Bytes(f.path.clone())));
    }
    let file = mm.add_file(&f.node, &f.path, &f.meta);
    let mut total_size = total_mapping_size(iph, page, mm.rules.total_size_spans_all);
    if total_size == 0 {
        return Err(Error::NoLoad(Bytes(f.path.clone())));
    }
    let mut load_addr = 0u64;
    let mut load_addr_set = false;
    // Before 6.7: the highest file end and segment end, and the protection reaching it.
    let per_segment = mm.rules.elf_load_interp;
    let mut extent = BssExtent::default();
    let mut last_index = 0;
    for (index, p) in iph.iter().enumerate() {
        if p.p_type != PT_LOAD {
            continue;
        }
        last_index = index;
        let vaddr = p.p_vaddr;
        let mut how = Placement::Hint;
        if !ih.is_dyn() || load_addr_set {
            how = Placement::Fixed;
        } else if no_base != 0 {
            load_addr = vaddr.wrapping_neg();
        }
        let addr = load_addr.wrapping_add(vaddr);
        let map_addr = if per_segment {
            elf_load(mm, file, addr, p, how, total_size)
        } else {
            elf_map(mm, file, addr, p, prot_of(p.p_flags), how, total_size)
        }
        .map_err(|e| map_error(e, addr, p.p_memsz, index))?;
        total_size = 0;
        // Mirrors fs/binfmt_elf.c: load_elf_interp() returning such an address, which
        // load_elf_binary() then rejects with `BAD_ADDR(elf_entry)` → -EINVAL.
        if map_addr >= mm.profile.task_size {
            return Err(Error::SegmentRange { index });
        }
        if !load_addr_set && ih.is_dyn() {
            load_addr = map_addr.wrapping_sub(page_start(vaddr, page));
            load_addr_set = true;
        }
        trace.note(|| Step::Segment {
            path: f.path.clone(),
            index,
            vaddr,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
            addr: load_addr.wrapping_add(vaddr),
            prot: prot_of(p.p_flags),
        });
        if !segment_in_range(load_addr.wrapping_add(vaddr), p, mm.profile.task_size) {
            return Err(Error::NoSpace { len: p.p_memsz });
        }
        extent.note(load_addr.wrapping_add(vaddr), p);
    }
    if !per_segment {
        // padzero() of the highest file end (fatal when it faults), then the bss pages.
        let (bss, end) = (extent.file_end, extent.end);
        pad_zero_old(mm, bss, u64::MAX).map_err(|e| map_error(e, bss, 0, last_index))?;
        map_bss(mm, bss, end, extent.prot)
            .map_err(|e| map_error(e, bss, end.wrapping_sub(bss), last_index))?;
    }
    Ok(load_addr)
}
