//! The ELF handler: `load_elf_binary()` (`fs/binfmt_elf.c`).
//!
//! It runs in two halves, split by the point of no return (`begin_new_exec()`), which the
//! plan (`crate::plan`) passes between them:
//!
//! - `check`: everything that can still fail with an errno: the header and program header
//!   checks ([`header`]), PT_GNU_STACK, PT_INTERP and the interpreter (`interp`),
//!   PT_GNU_PROPERTY (`property`).
//! - `load`: the new mm: `setup_new_exec()`'s mmap layout, `setup_arg_pages()`, the
//!   program's PT_LOADs (`map`), the interpreter's (`load_elf_interp()`), the vDSO, brk,
//!   `MMAP_PAGE_ZERO`, and `create_elf_tables()`. Any failure here kills the process.

pub mod header;
mod interp;
mod map;
mod property;

use alloc::vec::Vec;

pub use header::{
    load_phdrs, maximum_alignment, offset_ok, prot_of, read_exact, total_mapping_size, Elf32Fields,
    Header, Phdr, PhdrsError, EHDR_SIZE, MAX_PHDRS_BYTES, PF_X, PHDR_SIZE, PT_GNU_PROPERTY,
    PT_GNU_STACK, PT_INTERP, PT_LOAD,
};

use crate::arch::Arch;
use crate::auxv::{self, AuxvInputs};
use crate::creds::NewCredentials;
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::mm::{page_align, Backing, Mm, Vma};
use crate::profile::{Profile, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC};
use crate::prot::Prot;
use crate::resolve::{DirPath, Found};
use crate::stack::{self, ArgStrings, StackImage, Tables};
use crate::trace::{Step, Tracer};
use crate::vdso;

use interp::Interp;

/// What `load_elf_binary()` knows at the point of no return.
pub(crate) struct ElfImage<N> {
    /// The program.
    pub file: Found<N>,
    /// Its header.
    pub hdr: Header,
    /// Its program headers.
    pub phdrs: Vec<Phdr>,
    /// Its interpreter, opened and checked.
    pub interp: Option<Interp<N>>,
    /// PT_GNU_STACK's executable bit (`None`: no PT_GNU_STACK).
    pub exec_stack: Option<bool>,
    /// arm64 BTI is on for the segments of the ELF whose note was parsed.
    pub bti: bool,
    /// An ia32 program, loaded by `compat_binfmt_elf` with [`Profile::compat_view`].
    pub compat: bool,
}

impl<N> ElfImage<N> {
    /// The interpreter's path inside the root.
    pub fn interpreter_path(&self) -> Option<&[u8]> {
        self.interp.as_ref().map(|i| i.file.path.as_slice())
    }
}

/// The part of `load_elf_binary()` before the point of no return, for the file `file` whose
/// first bytes parsed as `hdr`.
///
/// # Errors
/// ENOEXEC for a file this kernel's ELF loader refuses; the interpreter's errors.
pub(crate) fn check<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    cwd: &DirPath<F::Node>,
    file: Found<F::Node>,
    hdr: Header,
    trace: &mut Tracer<'_>,
) -> Result<ElfImage<F::Node>> {
    let spec = profile.arch.spec();
    if !hdr.type_ok() {
        return Err(Error::ElfType(hdr.e_type));
    }
    // binfmt_elf refuses the machine (ENOEXEC); compat_binfmt_elf takes it if its ELF32
    // reading gets past the phdr checks (and, on arm64, it is EABI); else ENOEXEC as well.
    let eabi_ok = profile.arch != Arch::Aarch64 || hdr.elf32.e_flags & 0xff00_0000 != 0;
    if spec.compat_machines.contains(&hdr.e_machine) && hdr.elf32.phdrs_ok() && eabi_ok {
        // The native loader refused the machine; compat_binfmt_elf reads the file as ELF32
        // with the compat task's profile.
        if let Some(view) = profile.compat_view() {
            let mut img = check(fs, &view, cwd, file, hdr.as_elf32(), trace)?;
            img.compat = true;
            return Ok(img);
        }
        return Err(Error::CompatElf {
            machine: hdr.e_machine,
        });
    }
    // elf_check_arch_ia32() takes EM_486 as well.
    let machine_ok = hdr.e_machine == spec.e_machine
        || (profile.arch == Arch::I386 && hdr.e_machine == crate::arch::i386::EM_486);
    if !machine_ok {
        return Err(Error::ElfMachine {
            found: hdr.e_machine,
            expected: spec.e_machine,
        });
    }
    if spec.checks_class && hdr.ei_class != object::elf::ELFCLASS64.0 {
        return Err(Error::ElfClass(hdr.ei_class));
    }
    let phdrs_limit = if profile.kernel.rules().phdrs_beyond_a_page {
        MAX_PHDRS_BYTES
    } else {
        usize::try_from(profile.page_size).unwrap_or(MAX_PHDRS_BYTES)
    };
    let phdrs = load_phdrs(fs, &file.node, &hdr, phdrs_limit).map_err(|e| match e {
        PhdrsError::EntSize => Error::PhentSize(hdr.e_phentsize),
        PhdrsError::Count => Error::PhNum(hdr.e_phnum),
        PhdrsError::Short => Error::PhdrsShort {
            offset: hdr.e_phoff,
        },
    })?;
    let exec_stack = phdrs
        .iter()
        .rfind(|p| p.p_type == PT_GNU_STACK)
        .map(|p| p.p_flags & PF_X != 0);
    let mut elf_step = trace.on().then(|| Step::Elf {
        path: file.path.clone(),
        e_type: hdr.e_type,
        phnum: hdr.e_phnum,
        interpreter: None,
        exec_stack,
    });
    // The first PT_INTERP decides; a PT_GNU_PROPERTY before it is the program's note.
    let mut property = None;
    let mut interp = None;
    for p in &phdrs {
        if p.p_type == PT_GNU_PROPERTY {
            property = Some(*p);
            continue;
        }
        if p.p_type != PT_INTERP {
            continue;
        }
        let name = interp::read_name(fs, &file, p)?;
        if let Some(Step::Elf { interpreter, .. }) = &mut elf_step {
            *interpreter = Some(name.clone());
        }
        if let Some(step) = elf_step.take() {
            trace.note(|| step);
        }
        interp = Some(interp::open(
            fs,
            &profile.credentials,
            spec,
            phdrs_limit,
            cwd,
            &name,
            trace,
        )?);
        break;
    }
    if let Some(step) = elf_step {
        trace.note(|| step);
    }
    let mut bti = false;
    if spec.parses_gnu_property {
        // With an interpreter only the interpreter's note is parsed.
        let note = match &interp {
            Some(i) => i
                .phdrs
                .iter()
                .rfind(|p| p.p_type == PT_GNU_PROPERTY)
                .map(|p| (&i.file.node, *p)),
            None => property.map(|p| (&file.node, p)),
        };
        if let Some((node, p)) = note {
            bti = property::parse_properties(fs, node, &p)?;
        }
    }
    Ok(ElfImage {
        file,
        hdr,
        phdrs,
        interp,
        exec_stack,
        bti,
        compat: false,
    })
}

/// What the exec decided at the point of no return (`begin_new_exec()`), for [`load`].
pub(crate) struct Committed<'a> {
    /// The personality after the exec.
    pub personality: u32,
    /// The stack rlimit (`None`: unlimited), after the secure-exec cap.
    pub rlimit: Option<u64>,
    /// The new credentials.
    pub creds: &'a NewCredentials,
    /// `AT_EXECFD`.
    pub execfd: Option<u64>,
    /// binfmt_misc `P`.
    pub preserve_argv0: bool,
    /// The 16 AT_RANDOM bytes, or `None` to draw them.
    pub random: Option<[u8; 16]>,
    /// Extra auxv pairs.
    pub extra_auxv: &'a [(u64, u64)],
}

/// What `load_elf_binary()` built after the point of no return.
pub(crate) struct Loaded {
    /// The first instruction (the interpreter's entry when there is one).
    pub entry: u64,
    /// The auxiliary vector.
    pub auxv: Vec<(u64, u64)>,
    /// The stack from the stack pointer up.
    pub stack: StackImage,
    /// `start_code`, `end_code`, `start_data`, `end_data`.
    pub code_data: [u64; 4],
    /// `start_brk` (= `brk`).
    pub start_brk: u64,
    /// `AT_SYSINFO_EHDR`.
    pub vdso_base: Option<u64>,
    /// Whether the stack is executable.
    pub exec_stack: bool,
}

/// `mm->start_brk` (= `mm->brk`): after the highest segment (`elf_brk`), or for a static-PIE
/// (`static_pie`: an ET_DYN without interpreter, such as ld.so run directly) at
/// `ELF_ET_DYN_BASE`; randomized by `arch_randomize_brk()` when `randomize_va_space` > 1.
fn brk<N: Clone>(mm: &mut Mm<'_, N>, static_pie: bool, elf_brk: u64) -> u64 {
    let profile = mm.profile;
    let (page, rules) = (mm.page, mm.rules);
    let randomized = mm.randomize && profile.randomize_va_space > 1;
    // x86_64's range was 32 MiB before "x86: Increase brk randomness entropy for 64-bit
    // systems" (6.9, and its back-ports).
    let range = if profile.arch == Arch::X86_64 && !rules.x86_brk_1g {
        32 << 20
    } else {
        profile.arch.spec().brk_rnd_range
    };
    let after_image = page_align(elf_brk, page);
    if rules.static_pie_brk_always_moved {
        // 6.15: a static-PIE's brk moves whether or not it is randomized.
        let mut start = if static_pie {
            page_align(profile.elf_et_dyn_base, page)
        } else {
            after_image
        };
        if randomized {
            if !static_pie && rules.brk_gap {
                start = start.saturating_add(page);
            }
            start = mm.randomize_page(start, range);
        }
        start
    } else if randomized {
        // Before: moved only when randomized, to the unaligned ELF_ET_DYN_BASE, which
        // randomize_page() aligns up (shortening its range by as much).
        let start = if static_pie {
            profile.elf_et_dyn_base
        } else if rules.brk_gap {
            after_image.saturating_add(page)
        } else {
            after_image
        };
        mm.randomize_page(start, range)
    } else {
        after_image
    }
}

/// The part of `load_elf_binary()` after the point of no return: builds the new mm in `mm`
/// (already holding the chosen randomization and credentials) and the initial stack.
///
/// # Errors
/// The fatal error the kernel would kill the process with.
pub(crate) fn load<N: Clone>(
    mm: &mut Mm<'_, N>,
    trace: &mut Tracer<'_>,
    img: &ElfImage<N>,
    strings: &ArgStrings,
    execfn: &[u8],
    c: &Committed<'_>,
) -> Result<Loaded> {
    let profile = mm.profile;
    let page = mm.page;
    mm.pick_layout(c.personality, c.rlimit);
    let exec_stack = img
        .exec_stack
        .unwrap_or(c.personality & READ_IMPLIES_EXEC != 0);
    let stack_vma = stack::setup_arg_pages(mm, strings, c.rlimit, exec_stack)?;

    let prog = map::load_program(
        mm,
        trace,
        &img.file,
        &img.hdr,
        &img.phdrs,
        img.interp.is_some(),
    )?;
    let mut interp_base = 0u64;
    let mut entry = prog.entry;
    if let Some(i) = &img.interp {
        interp_base = interp::load(mm, trace, i, prog.load_bias)?;
        entry = interp_base.wrapping_add(i.hdr.e_entry);
    }
    if entry >= profile.task_size {
        return Err(Error::BadEntry(entry));
    }
    let vdso_base = vdso::map(mm, stack_vma.arg_start)?;

    let start_brk = brk(mm, img.hdr.is_dyn() && img.interp.is_none(), prog.elf_brk);

    // MMAP_PAGE_ZERO: the kernel ignores the mapping's failure, which is EPERM below
    // mmap_min_addr without CAP_SYS_RAWIO, so page 0 is then simply absent.
    if c.personality & MMAP_PAGE_ZERO != 0 && mm.may_map_low() {
        mm.map_fixed(Vma {
            start: 0,
            end: page,
            prot: Prot::READ | Prot::EXEC,
            backing: Backing::Anon,
        });
    }

    // create_elf_tables().
    let random = match c.random {
        Some(r) => r,
        None => {
            let mut r = [0u8; 16];
            mm.fill_random(&mut r);
            r
        }
    };
    let tables = Tables {
        strings,
        arg_start: stack_vma.arg_start,
        top: stack_vma.top,
        align: stack::align_stack_kind(mm),
        align_sub: stack::align_stack_rnd(mm),
        platform: profile.platform.as_bytes(),
        random,
        word: profile.arch.word_size(),
    };
    let (platform_addr, random_addr) = tables.string_addrs()?;
    let execfn_len = (execfn.len() as u64).saturating_add(1);
    let auxv = auxv::build(
        profile,
        &AuxvInputs {
            vdso_base,
            phdr_addr: prog.phdr_addr,
            phent: if img.hdr.class32 {
                header::PHDR32_SIZE as u64
            } else {
                PHDR_SIZE as u64
            },
            phnum: img.hdr.e_phnum,
            interp_base,
            preserve_argv0: c.preserve_argv0,
            entry: prog.entry,
            creds: c.creds,
            random_addr,
            execfn_addr: stack_vma.top.saturating_sub(8).saturating_sub(execfn_len),
            platform_addr,
            execfd: c.execfd,
            extra: c.extra_auxv,
        },
    );
    let stack = tables.build(&auxv)?;
    stack::expand_to(mm, &stack_vma, stack.sp, c.rlimit)?;
    // A segment mapped over the stack (MAP_FIXED at its addresses).
    match mm.stack_pages(stack.sp, stack_vma.arg_start, stack_vma.top) {
        Ok(None) => {}
        Ok(Some(addr)) => return Err(Error::StackOverlaid { addr }),
        Err(addr) => return Err(Error::StackReplaced { addr }),
    }
    Ok(Loaded {
        entry,
        auxv,
        stack,
        code_data: [
            prog.start_code,
            prog.end_code,
            prog.start_data,
            prog.end_data,
        ],
        start_brk,
        vdso_base,
        exec_stack,
    })
}
