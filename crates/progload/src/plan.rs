//! The plan: the [`Plan`] a request yields, and [`plan()`], which runs the exec the way
//! `do_execveat_common()` → `bprm_execve()` → `exec_binprm()` do (`fs/exec.c`):
//!
//! 1. open the file and name the exec (`alloc_bprm()`: execfn, comm) — [`crate::resolve`];
//! 2. count and copy argv/envp against the stack limit — [`crate::stack::ArgStrings`];
//! 3. the handler loop: binfmt_misc, `#!`, ELF checks — [`crate::binfmt`];
//! 4. the point of no return (`begin_new_exec()`): credentials ([`crate::creds`]),
//!    personality, comm;
//! 5. `load_elf_binary()`'s second half: the new mm, the stack, auxv — [`crate::binfmt::elf`];
//! 6. the plan, assembled from what they returned.

use alloc::vec::Vec;

use rand_core::Rng;

use crate::arch::Arch;
use crate::binfmt::{self, elf};
use crate::error::{Bytes, Error, PathProblem, Result};
use crate::fs::FileSystem;
use crate::mm::{Mm, Vma};
use crate::profile::{Profile, ADDR_NO_RANDOMIZE, PER_CLEAR_ON_SETID, READ_IMPLIES_EXEC};
use crate::resolve::{self, DirPath, Found};
use crate::stack::{ArgStrings, StackImage};
use crate::trace::{Role, Step, Tracer};
use crate::{creds, stack};

pub use crate::arch::Registers;
pub use crate::creds::NewCredentials;
pub use crate::mm::PlanFile;
pub use crate::request::{Executable, LoadRequest, LoadRequestBuilder};

/// The `mm_struct` fields /proc/PID/stat shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MmFields {
    /// `start_code`.
    pub start_code: u64,
    /// `end_code`.
    pub end_code: u64,
    /// `start_data`.
    pub start_data: u64,
    /// `end_data`.
    pub end_data: u64,
    /// `start_brk`.
    pub start_brk: u64,
    /// `brk`.
    pub brk: u64,
    /// `start_stack`.
    pub start_stack: u64,
    /// `arg_start`.
    pub arg_start: u64,
    /// `arg_end`.
    pub arg_end: u64,
    /// `env_start`.
    pub env_start: u64,
    /// `env_end`.
    pub env_end: u64,
}

/// The new process image: everything `execve` would build, as a plain value.
#[derive(Clone, Debug)]
pub struct Plan<N> {
    /// The architecture.
    pub arch: Arch,
    /// The kernel release the plan is for (the profile's).
    pub kernel: crate::profile::KernelVersion,
    /// The page size.
    pub page_size: u64,
    /// Files the mappings refer to (index = `Backing::File::file`).
    pub files: Vec<PlanFile<N>>,
    /// The VMAs at the first instruction, in address order, merged as the kernel merges them.
    pub vmas: Vec<Vma>,
    /// Whether `[vsyscall]` is shown after the VMAs.
    pub vsyscall: bool,
    /// Byte ranges of private file pages the kernel zeroes (`padzero`).
    pub zero: Vec<(u64, u64)>,
    /// Address of the vDSO text (`AT_SYSINFO_EHDR`), if mapped.
    pub vdso_base: Option<u64>,
    /// The vDSO image written there.
    pub vdso_image: Option<alloc::sync::Arc<[u8]>>,
    /// The first instruction.
    pub entry: u64,
    /// The initial registers.
    pub registers: Registers,
    /// The auxiliary vector, ending with AT_NULL.
    pub auxv: Vec<(u64, u64)>,
    /// The stack bytes from the stack pointer to the stack top.
    pub stack: StackImage,
    /// /proc/PID/stat's mm fields.
    pub mm: MmFields,
    /// The final argv (after `#!`/binfmt_misc rewrites).
    pub argv: Vec<Vec<u8>>,
    /// The environment.
    pub envp: Vec<Vec<u8>>,
    /// `AT_EXECFN`.
    pub execfn: Vec<u8>,
    /// `comm` (at most 15 bytes).
    pub comm: Vec<u8>,
    /// The ELF interpreter (PT_INTERP) path as resolved inside the root.
    pub interpreter: Option<Vec<u8>>,
    /// The ELF file the process runs (what /proc/PID/exe shows).
    pub exe: Vec<u8>,
    /// The new credentials.
    pub credentials: NewCredentials,
    /// The personality after the exec.
    pub personality: u32,
    /// Whether the stack is executable (PT_GNU_STACK).
    pub exec_stack: bool,
    /// `AT_EXECFD`, when a binfmt_misc `O`/`C` rule applied.
    pub execfd: Option<u64>,
    /// The file installed at [`execfd`](Self::execfd), open for reading: the program the
    /// rule matched (`bprm->executable`).
    pub execfd_file: Option<PlanFile<N>>,
    /// Whether the layout was randomized.
    pub randomized: bool,
    /// `mmap_base`.
    pub mmap_base: u64,
    /// AArch64 BTI was enabled for the segments of the ELF whose note was used.
    pub bti: bool,
}

/// Plans `execve` of `req` in `fs` under `profile`; randomness (layout entropy when
/// randomizing, and AT_RANDOM unless given) comes from `rng`.
///
/// # Errors
/// The [`Error`] the kernel would meet, with its errno; [`Error::is_fatal`] tells whether the
/// kernel would have killed the process instead of returning it.
#[doc(alias = "execve")]
#[doc(alias = "load_elf_binary")]
pub fn plan<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    req: &LoadRequest<F::Node>,
    rng: &mut dyn Rng,
) -> Result<Plan<F::Node>> {
    plan_inner(fs, profile, req, rng, Tracer(None))
}

/// [`plan()`], recording in `trace` each step taken — also the steps before a failure, so a
/// caller can tell how far the exec got (what `progload explain` shows).
///
/// # Errors
/// As [`plan()`].
pub fn plan_traced<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    req: &LoadRequest<F::Node>,
    rng: &mut dyn Rng,
    trace: &mut Vec<Step>,
) -> Result<Plan<F::Node>> {
    plan_inner(fs, profile, req, rng, Tracer(Some(trace)))
}

/// The program opened by `alloc_bprm()`: the file, `bprm->filename` (execfn), whether the
/// task is named after the file's dentry (an fd exec), and whether no interpreter can reach
/// it (a close-on-exec descriptor).
struct Program<N> {
    found: Found<N>,
    execfn: Vec<u8>,
    named_by_dentry: bool,
    inaccessible: bool,
}

/// `alloc_bprm()` with `do_open_execat()`: opens the program of `req` and names the exec.
fn open_program<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    req: &LoadRequest<F::Node>,
    root: &DirPath<F::Node>,
    cwd: &DirPath<F::Node>,
) -> Result<Program<F::Node>> {
    let creds = &profile.credentials;
    let follow = !req.no_follow;
    Ok(match &req.executable {
        Executable::Path(p) => Program {
            found: resolve::open_exec(fs, creds, cwd, p, follow).map_err(|e| Error::path(p, e))?,
            execfn: p.clone(),
            named_by_dentry: false,
            inaccessible: false,
        },
        Executable::Fd {
            fd: _,
            node,
            path,
            name,
            cloexec,
        } => {
            let meta = fs
                .metadata(node)
                .map_err(|e| Error::path(path, PathProblem::Filesystem(e)))?;
            let found = Found {
                links: Vec::new(),
                node: node.clone(),
                meta,
                path: path.clone(),
                name: name.clone(),
                parent: root.clone(),
            };
            resolve::check_exec(&found, creds).map_err(|e| Error::path(path, e))?;
            Program {
                found,
                execfn: execfn_of(&req.executable),
                // Before 6.14 (6.1.129, 6.6.78, 6.12.14), comm was the last component of
                // "/dev/fd/N": the number.
                named_by_dentry: profile.kernel.rules().fd_exec_comm_from_dentry,
                inaccessible: *cloexec,
            }
        }
        Executable::At {
            fd: _,
            dir,
            path,
            cloexec,
        } => {
            let found = resolve::open_exec(fs, creds, dir, path, follow)
                .map_err(|e| Error::path(path, e))?;
            Program {
                found,
                execfn: execfn_of(&req.executable),
                named_by_dentry: false,
                inaccessible: *cloexec && path.first() != Some(&b'/'),
            }
        }
    })
}

/// `bprm->filename` as `alloc_bprm()` names the exec: the path, `/dev/fd/N` for an open file,
/// `/dev/fd/N/PATH` for a relative path under a directory descriptor.
fn execfn_of<N>(executable: &Executable<N>) -> Vec<u8> {
    match executable {
        Executable::Path(p) => p.clone(),
        Executable::Fd { fd, .. } => alloc::format!("/dev/fd/{fd}").into_bytes(),
        Executable::At { path, .. } if path.first() == Some(&b'/') => path.clone(),
        Executable::At { fd, path, .. } => {
            let mut execfn = alloc::format!("/dev/fd/{fd}/").into_bytes();
            execfn.extend_from_slice(path);
            execfn
        }
    }
}

/// `comm` as `begin_new_exec()` sets it (`__set_task_comm()`, at most 15 bytes): the last
/// component of execfn, or for an fd exec the dentry name of the file finally executed
/// (`bprm->file`: after a `#!` or binfmt_misc rewrite, the interpreter).
fn comm_of<N>(program: &Program<N>, executed: &Found<N>) -> Vec<u8> {
    let name = if program.named_by_dentry {
        executed.name.as_slice()
    } else {
        program.execfn.rsplit(|&c| c == b'/').next().unwrap_or(&[])
    };
    name.iter().copied().take(15).collect()
}

/// What `begin_new_exec()` and `setup_new_exec()` decide for the new process.
struct NewExec {
    creds: NewCredentials,
    personality: u32,
    /// The stack rlimit (`None`: unlimited), capped at `_STK_LIM` for a secure exec.
    rlimit: Option<u64>,
    /// `PF_RANDOMIZE`.
    randomize: bool,
}

/// `begin_new_exec()` and `SET_PERSONALITY()`: the new credentials from the file with `meta`,
/// the personality (`PER_CLEAR_ON_SETID` cleared for a privileged exec; `READ_IMPLIES_EXEC`
/// cleared for a 64-bit ELF where `SET_PERSONALITY()` does it), the stack rlimit and
/// randomization.
fn begin_new_exec(profile: &Profile, meta: &crate::fs::Metadata) -> NewExec {
    let creds = creds::compute(profile, meta);
    let mut personality = profile.personality;
    if creds.privileged {
        personality &= !PER_CLEAR_ON_SETID;
    }
    if profile.arch.spec().clears_read_implies_exec {
        personality &= !READ_IMPLIES_EXEC;
    }
    let mut rlimit = profile.stack_rlimit;
    if creds.secureexec {
        rlimit = Some(rlimit.unwrap_or(u64::MAX).min(stack::STK_LIM));
    }
    let randomize = personality & ADDR_NO_RANDOMIZE == 0 && profile.randomize_va_space != 0;
    NewExec {
        creds,
        personality,
        rlimit,
        randomize,
    }
}

fn plan_inner<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    req: &LoadRequest<F::Node>,
    rng: &mut dyn Rng,
    mut trace: Tracer<'_>,
) -> Result<Plan<F::Node>> {
    profile.validate().map_err(Error::BadProfile)?;
    let root = DirPath::root(fs.root());
    let cwd = req.cwd.clone().unwrap_or_else(|| root.clone());

    // Count, limit and copy the strings: after opening the file since 6.8 ("execve: open
    // the executable file before doing anything else"), so a path error wins over E2BIG;
    // before it, first.
    let count = || {
        ArgStrings::new(
            req.argv.as_deref(),
            &req.envp,
            &execfn_of(&req.executable),
            profile.stack_rlimit,
            profile.max_arg_strlen(),
        )
    };
    let open_first = profile.kernel.rules().open_before_strings;
    let early = if open_first { None } else { Some(count()?) };
    let program = open_program(fs, profile, req, &root, &cwd)?;
    trace.note(|| Step::Opened {
        role: Role::Program,
        given: match &req.executable {
            Executable::Path(p) | Executable::At { path: p, .. } => p.clone(),
            Executable::Fd { .. } => program.execfn.clone(),
        },
        path: program.found.path.clone(),
        links: program.found.links.clone(),
    });

    let mut strings = match early {
        Some(s) => s,
        None => count()?,
    };

    // search_binary_handler()'s first security_bprm_check(): TOMOYO looks up bprm->filename
    // (kern_path, so getname_kernel()'s PATH_MAX applies) and, before its realpath fallback,
    // refuses the exec when that fails. A `/dev/fd/N/...` name that does not resolve in the
    // caller's /dev and /proc (a root without them) is not modelled.
    if profile.tomoyo
        && !profile.kernel.rules().tomoyo_realpath_fallback
        && program.execfn.len() >= resolve::PATH_MAX
    {
        return Err(Error::LsmNameLookup(Bytes(program.execfn.clone())));
    }

    let handled = binfmt::search(
        fs,
        profile,
        &req.misc_rules,
        &binfmt::Dirs {
            root: &root,
            cwd: &cwd,
        },
        program.found.clone(),
        &program.execfn,
        program.inaccessible,
        &mut strings,
        &mut trace,
    )?;
    let img = &handled.elf;
    // An ia32 program is loaded with the compat task's profile (set_personality_ia32()).
    let compat_profile;
    let profile = if img.compat {
        compat_profile = profile.compat_view().ok_or(Error::BadProfile(
            "an ia32 program needs the profile's compat part",
        ))?;
        &compat_profile
    } else {
        profile
    };

    // begin_new_exec(): credentials, then the point of no return.
    let cred_file = handled.credentials_from.as_ref().unwrap_or(&img.file);
    let mut new = begin_new_exec(profile, &cred_file.meta);
    // elf_read_implies_exec(): an ia32 program without PT_GNU_STACK.
    if profile.arch == Arch::I386 && img.exec_stack.is_none() {
        new.personality |= READ_IMPLIES_EXEC;
    }
    let comm = comm_of(&program, &img.file);
    let execfd = handled.execfd.then_some(req.execfd);
    trace.note(|| Step::PointOfNoReturn);
    let (new_creds, personality, rlimit, randomize) =
        (new.creds, new.personality, new.rlimit, new.randomize);

    let mut mm = Mm::new(profile, rng, randomize, new_creds.cap_sys_rawio);
    mm.cap_sys_admin = new_creds.cap_sys_admin;
    let loaded = elf::load(
        &mut mm,
        &mut trace,
        img,
        &strings,
        &program.execfn,
        &elf::Committed {
            personality,
            rlimit,
            creds: &new_creds,
            execfd,
            preserve_argv0: handled.preserve_argv0,
            random: req.random_bytes,
            extra_auxv: &req.extra_auxv,
        },
    )?;

    let [start_code, end_code, start_data, end_data] = loaded.code_data;
    let stack = loaded.stack;
    Ok(Plan {
        arch: profile.arch,
        kernel: profile.kernel,
        page_size: mm.page,
        vmas: mm.vmas.as_slice().to_vec(),
        vsyscall: profile.vsyscall,
        vdso_base: loaded.vdso_base,
        vdso_image: profile.vdso.as_ref().map(|v| v.image.clone()),
        entry: loaded.entry,
        registers: Registers {
            arch: profile.arch,
            pc: loaded.entry,
            sp: stack.sp,
            flags: match profile.arch {
                Arch::X86_64 | Arch::I386 if profile.kernel.rules().x86_rflags_fixed_bit => {
                    crate::arch::x86_64::INITIAL_RFLAGS
                }
                Arch::X86_64 | Arch::I386 => crate::arch::x86_64::INITIAL_RFLAGS_OLD,
                Arch::Aarch64 => profile.pstate,
                Arch::Riscv64 => 0,
            },
        },
        auxv: loaded.auxv,
        mm: MmFields {
            start_code,
            end_code,
            start_data,
            end_data,
            start_brk: loaded.start_brk,
            brk: loaded.start_brk,
            start_stack: stack.sp,
            arg_start: stack.arg_start,
            arg_end: stack.arg_end,
            env_start: stack.arg_end,
            env_end: stack.env_end,
        },
        argv: strings.argv.into_iter().collect(),
        envp: strings.envp,
        execfn: program.execfn,
        comm,
        interpreter: img.interpreter_path().map(<[u8]>::to_vec),
        exe: img.file.path.clone(),
        credentials: new_creds,
        personality,
        exec_stack: loaded.exec_stack,
        execfd,
        execfd_file: execfd.and(handled.executable).map(|f| PlanFile {
            node: f.node,
            path: f.path,
            meta: f.meta,
        }),
        randomized: randomize,
        mmap_base: mm.mmap_base,
        bti: img.bti,
        stack,
        zero: mm.zero,
        files: mm.files,
    })
}
