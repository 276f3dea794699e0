//! The pipeline: request → resolve → format dispatch → ELF → layout → stack, producing a
//! [`Plan`]. Mirrors `do_execveat_common()`, `bprm_execve()`, `exec_binprm()` (`fs/exec.c`)
//! and `load_elf_binary()` (`fs/binfmt_elf.c`).

use alloc::string::String;
use alloc::vec::Vec;

use rand_core::RngCore;

use crate::arch::Arch;
use crate::auxv::*;
use crate::binfmt::elf::{
    self, Header, Phdr, PhdrsError, PF_X, PT_GNU_PROPERTY, PT_GNU_STACK, PT_INTERP, PT_LOAD,
};
use crate::binfmt::misc::{self, Rule};
use crate::binfmt::{script, BUF_SIZE};
use crate::errno::Errno;
use crate::error::{Bytes, Error, InterpProblem, PathProblem, Result};
use crate::fs::{read_full, FileSystem, Metadata};
use crate::mm::{Backing, Search, Vma, Vmas};
use crate::prot::Prot;
use crate::profile::{
    Credentials, Profile, ADDR_COMPAT_LAYOUT, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO,
    PER_CLEAR_ON_SETID, READ_IMPLIES_EXEC,
};
use crate::resolve::{self, DirPath, Found};
use crate::stack::{ArgStrings, StackImage, Tables};
use crate::trace::{Role, Step};

/// What to execute (the `execve`/`execveat` forms).
#[derive(Clone, Debug)]
pub enum Executable<N> {
    /// `execve(path)` / `execveat(AT_FDCWD, path)`: resolved against the request's cwd.
    Path(Vec<u8>),
    /// `execveat(fd, "", AT_EMPTY_PATH)`: an already open file. execfn is `/dev/fd/<fd>`.
    Fd {
        /// The descriptor number the caller holds.
        fd: i32,
        /// The file.
        node: N,
        /// Its path inside the root (what /proc/PID/maps shows).
        path: Vec<u8>,
        /// Its dentry name (becomes `comm`).
        name: Vec<u8>,
        /// The descriptor is close-on-exec (scripts then fail with ENOENT).
        cloexec: bool,
    },
    /// `execveat(dirfd, path, 0)`: a path relative to an open directory. execfn is
    /// `/dev/fd/<fd>/<path>` for a relative path, the path itself for an absolute one.
    At {
        /// The directory descriptor number.
        fd: i32,
        /// The directory.
        dir: DirPath<N>,
        /// The path.
        path: Vec<u8>,
        /// The descriptor is close-on-exec.
        cloexec: bool,
    },
}

/// Everything one exec takes besides the filesystem and the profile.
#[derive(Clone, Debug)]
pub struct LoadRequest<N> {
    /// The program.
    pub executable: Executable<N>,
    /// argv; `None` is a NULL argv pointer (the kernel then passes `[""]`).
    pub argv: Option<Vec<Vec<u8>>>,
    /// envp.
    pub envp: Vec<Vec<u8>>,
    /// The working directory relative paths (and `#!` interpreters) resolve from; `None` is
    /// the root.
    pub cwd: Option<DirPath<N>>,
    /// `AT_SYMLINK_NOFOLLOW`: a final symlink is ELOOP.
    pub no_follow: bool,
    /// binfmt_misc rules in registration order (the newest matching one wins).
    pub misc_rules: Vec<Rule>,
    /// The 16 AT_RANDOM bytes; `None` draws them from the RNG.
    pub random_bytes: Option<[u8; 16]>,
    /// Extra auxv pairs appended before AT_NULL (as gVisor's `extraAuxv`).
    pub extra_auxv: Vec<(u64, u64)>,
    /// The descriptor number binfmt_misc `O`/`C` would install (the lowest free one).
    pub execfd: u64,
}

impl<N> LoadRequest<N> {
    /// A request for `path` with `argv` and `envp`, everything else default.
    pub fn new(path: impl Into<Vec<u8>>, argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> Self {
        LoadRequest {
            executable: Executable::Path(path.into()),
            argv: Some(argv),
            envp,
            cwd: None,
            no_follow: false,
            misc_rules: Vec::new(),
            random_bytes: None,
            extra_auxv: Vec::new(),
            execfd: 3,
        }
    }
}

/// A file the plan maps.
#[derive(Clone, Debug)]
pub struct PlanFile<N> {
    /// The file.
    pub node: N,
    /// Its path inside the root, as /proc/PID/maps shows it.
    pub path: Vec<u8>,
    /// Its metadata.
    pub meta: Metadata,
}

/// The `mm_struct` fields /proc/PID/stat shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// The credentials after the exec (`bprm->cred`) and `AT_SECURE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewCredentials {
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// `bprm->secureexec` (AT_SECURE).
    pub secureexec: bool,
    /// The exec is set-id or gains capabilities (personality bits are cleared).
    pub privileged: bool,
    /// The new process has CAP_SYS_RAWIO in effect (it may map below `mmap_min_addr`).
    pub cap_sys_rawio: bool,
    /// `no_new_privs` stays set.
    pub no_new_privs: bool,
}

/// The initial registers (`ELF_PLAT_INIT` + `START_THREAD`); every register not listed is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// The architecture.
    pub arch: Arch,
    /// rip / pc.
    pub pc: u64,
    /// rsp / sp.
    pub sp: u64,
}

impl Registers {
    /// Every register with its value, in the kernel's `user_regs_struct` naming.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        match self.arch {
            Arch::X86_64 => {
                let mut v: Vec<(&'static str, u64)> = [
                    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax",
                    "rcx", "rdx", "rsi", "rdi",
                ]
                .iter()
                .map(|&n| (n, 0))
                .collect();
                v.extend_from_slice(&[
                    ("rip", self.pc),
                    ("cs", crate::arch::x86_64::USER_CS),
                    ("rflags", crate::arch::x86_64::INITIAL_RFLAGS),
                    ("rsp", self.sp),
                    ("ss", crate::arch::x86_64::USER_DS),
                    ("fs_base", 0),
                    ("gs_base", 0),
                    ("ds", 0),
                    ("es", 0),
                    ("fs", 0),
                    ("gs", 0),
                ]);
                v
            }
            Arch::Aarch64 => {
                const X: [&str; 31] = [
                    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
                    "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22",
                    "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30",
                ];
                let mut v: Vec<(&'static str, u64)> = X.iter().map(|&n| (n, 0)).collect();
                v.extend_from_slice(&[("sp", self.sp), ("pc", self.pc), ("pstate", 0)]);
                v
            }
        }
    }
}

/// The new process image: everything `execve` would build, as a plain value.
#[derive(Clone, Debug)]
pub struct Plan<N> {
    /// The architecture.
    pub arch: Arch,
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
    /// Whether the layout was randomized.
    pub randomized: bool,
    /// `mmap_base`.
    pub mmap_base: u64,
    /// AArch64 BTI was enabled for the segments of the ELF whose note was used.
    pub bti: bool,
}

/// An opened file during format dispatch.
struct Opened<N> {
    found: Found<N>,
}

fn read_header<F: FileSystem + ?Sized>(fs: &F, f: &Found<F::Node>) -> Result<[u8; BUF_SIZE]> {
    let mut buf = [0u8; BUF_SIZE];
    read_full(fs, &f.node, 0, &mut buf).map_err(|errno| Error::Read {
        path: Bytes(f.path.clone()),
        errno,
    })?;
    Ok(buf)
}

fn opened<N>(role: Role, given: &[u8], f: &Found<N>) -> Step {
    Step::Opened {
        role,
        given: given.to_vec(),
        path: f.path.clone(),
        links: f.links.clone(),
    }
}

/// Opens the interpreter a binfmt_misc rule or a `#!` line names, the way `open_exec()` does
/// for them (relative to the caller's cwd, following links), and records it in the trace.
fn open_interpreter<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    cwd: &DirPath<F::Node>,
    name: &[u8],
    role: Role,
    trace: &mut Trace<'_>,
) -> Result<Found<F::Node>> {
    let f = resolve::open_exec_kernel(fs, creds, cwd, name).map_err(|e| path_err(name, e))?;
    trace.note(|| opened(role, name, &f));
    Ok(f)
}

fn path_err(path: &[u8], problem: PathProblem) -> Error {
    Error::Path {
        path: Bytes(path.to_vec()),
        problem,
    }
}

/// The parsed ELF stage's output: what `load_elf_binary` knows at the point of no return.
struct ElfImage<N> {
    file: Found<N>,
    hdr: Header,
    phdrs: Vec<Phdr>,
    interp: Option<(Found<N>, Header, Vec<Phdr>)>,
    exec_stack: Option<bool>,
    bti: bool,
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
    rng: &mut dyn RngCore,
) -> Result<Plan<F::Node>> {
    plan_inner(fs, profile, req, rng, Trace(None))
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
    rng: &mut dyn RngCore,
    trace: &mut Vec<Step>,
) -> Result<Plan<F::Node>> {
    plan_inner(fs, profile, req, rng, Trace(Some(trace)))
}

/// Where steps go when the caller asked for them (`plan_traced`); nothing is built otherwise,
/// so `plan()` allocates only what the plan holds.
struct Trace<'a>(Option<&'a mut Vec<Step>>);

impl Trace<'_> {
    fn on(&self) -> bool {
        self.0.is_some()
    }

    fn note(&mut self, step: impl FnOnce() -> Step) {
        if let Some(t) = self.0.as_mut() {
            t.push(step());
        }
    }
}

fn plan_inner<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    req: &LoadRequest<F::Node>,
    rng: &mut dyn RngCore,
    mut trace: Trace<'_>,
) -> Result<Plan<F::Node>> {
    profile.validate().map_err(Error::BadProfile)?;
    let creds = &profile.credentials;
    let root = DirPath::root(fs.root());
    let cwd = req.cwd.clone().unwrap_or_else(|| root.clone());

    // alloc_bprm(): open the file and name it.
    let (found, execfn, comm_name, inaccessible) = match &req.executable {
        Executable::Path(p) => {
            let f = resolve::open_exec(fs, creds, &cwd, p, !req.no_follow)
                .map_err(|e| path_err(p, e))?;
            (f, p.clone(), None, false)
        }
        Executable::Fd {
            fd,
            node,
            path,
            name,
            cloexec,
        } => {
            let meta = fs
                .metadata(node)
                .map_err(|e| path_err(path, PathProblem::Filesystem(e)))?;
            let f = Found {
                links: Vec::new(),
                node: node.clone(),
                meta,
                path: path.clone(),
                name: name.clone(),
                parent: root.clone(),
            };
            resolve::check_exec(&f, creds).map_err(|e| path_err(path, e))?;
            let execfn = alloc::format!("/dev/fd/{fd}").into_bytes();
            (f, execfn, Some(name.clone()), *cloexec)
        }
        Executable::At {
            fd,
            dir,
            path,
            cloexec,
        } => {
            let f = resolve::open_exec(fs, creds, dir, path, !req.no_follow)
                .map_err(|e| path_err(path, e))?;
            if path.first() == Some(&b'/') {
                (f, path.clone(), None, false)
            } else {
                let mut execfn = alloc::format!("/dev/fd/{fd}/").into_bytes();
                execfn.extend_from_slice(path);
                (f, execfn, None, *cloexec)
            }
        }
    };

    trace.note(|| Step::Opened {
        role: Role::Program,
        given: match &req.executable {
            Executable::Path(p) | Executable::At { path: p, .. } => p.clone(),
            Executable::Fd { .. } => execfn.clone(),
        },
        path: found.path.clone(),
        links: found.links.clone(),
    });

    // Count, limit and copy the strings.
    let mut strings = ArgStrings::new(
        req.argv.as_deref(),
        &req.envp,
        &execfn,
        profile.stack_rlimit,
        profile.max_arg_strlen(),
    )?;

    // exec_binprm(): the handler loop.
    let mut cur = Opened { found };
    let mut interp_name = execfn.clone();
    let mut have_execfd = false;
    let mut executable: Option<Found<F::Node>> = None;
    let mut creds_from: Option<Found<F::Node>> = None;
    let mut preserve_argv0 = false;
    let mut depth = 0u32;
    let elf_image = loop {
        if depth > 5 {
            return Err(Error::TooManyRewrites);
        }
        depth = depth.saturating_add(1);
        let buf = read_header(fs, &cur.found)?;
        let next = if let Some(rule) = misc::find(&req.misc_rules, &buf, &interp_name) {
            if inaccessible {
                return Err(Error::PathInaccessible);
            }
            if rule.preserve_argv0 {
                preserve_argv0 = true;
            } else {
                strings.remove_arg_zero();
            }
            if rule.open_binary {
                have_execfd = true;
            }
            strings.push_front(&interp_name)?;
            strings.push_front(&rule.interpreter)?;
            interp_name = rule.interpreter.clone();
            trace.note(|| Step::MiscRule {
                name: rule.name.clone(),
                interpreter: rule.interpreter.clone(),
                argv: strings.argv.iter().cloned().collect(),
            });
            // `F`: the kernel opened the interpreter when the rule was registered (with the
            // registrant's credentials, root and cwd) and clones that file now, so the
            // caller's cwd and permissions play no part. Modelled as opening it now, as root,
            // from the plan's root: with a chroot-like root (`--root`) or a relative path
            // this can differ from what the registrant opened.
            let root_creds;
            let (open_creds, open_dir) = if rule.fix_binary {
                root_creds = Credentials::root();
                (&root_creds, &root)
            } else {
                (creds, &cwd)
            };
            let f = open_interpreter(
                fs,
                open_creds,
                open_dir,
                &rule.interpreter,
                Role::MiscInterpreter,
                &mut trace,
            )?;
            if rule.credentials {
                creds_from = Some(cur.found.clone());
            }
            f
        } else {
            match script::parse(&buf) {
                Ok(Some(sb)) => {
                    if inaccessible {
                        return Err(Error::PathInaccessible);
                    }
                    strings.remove_arg_zero();
                    strings.push_front(&interp_name)?;
                    if let Some(arg) = &sb.argument {
                        strings.push_front(arg)?;
                    }
                    strings.push_front(&sb.interpreter)?;
                    interp_name = sb.interpreter.clone();
                    trace.note(|| Step::Script {
                        interpreter: sb.interpreter.clone(),
                        argument: sb.argument.clone(),
                        argv: strings.argv.iter().cloned().collect(),
                    });
                    open_interpreter(
                        fs,
                        creds,
                        &cwd,
                        &sb.interpreter,
                        Role::ScriptInterpreter,
                        &mut trace,
                    )?
                }
                Err(problem) => return Err(Error::Script(problem)),
                Ok(None) => {
                    let Some(hdr) = Header::parse(&buf) else {
                        return Err(Error::UnknownFormat);
                    };
                    break load_elf_headers(fs, profile, &cwd, cur.found, hdr, &mut trace)?;
                }
            }
        };
        let prev = core::mem::replace(&mut cur, Opened { found: next });
        if have_execfd {
            if executable.is_some() {
                return Err(Error::SecondExecFd);
            }
            executable = Some(prev.found);
        }
    };

    // begin_new_exec(): credentials, then the point of no return.
    let cred_file = creds_from.as_ref().unwrap_or(&elf_image.file);
    let new_creds = compute_credentials(profile, &cred_file.meta);
    let mut personality = profile.personality;
    if new_creds.privileged {
        personality &= !PER_CLEAR_ON_SETID;
    }
    personality &= !READ_IMPLIES_EXEC;
    let mut rlimit = profile.stack_rlimit;
    if new_creds.secureexec {
        rlimit = Some(rlimit.unwrap_or(u64::MAX).min(crate::stack::STK_LIM));
    }
    let comm = {
        // An fd exec names the task after the dentry of the file finally executed
        // (`bprm->file`: after a `#!` or binfmt_misc rewrite, the interpreter).
        let name = comm_name
            .map(|_| elf_image.file.name.clone())
            .unwrap_or_else(|| {
                let base = execfn.rsplit(|&c| c == b'/').next().unwrap_or(&[]);
                base.to_vec()
            });
        name.into_iter().take(15).collect::<Vec<u8>>()
    };
    let randomize = personality & ADDR_NO_RANDOMIZE == 0 && profile.randomize_va_space != 0;
    let execfd = have_execfd.then_some(req.execfd);
    let _ = executable;
    trace.note(|| Step::PointOfNoReturn);

    let b: Builder<'_, F> = Builder {
        trace,
        profile,
        page: profile.page_size,
        rng,
        randomize,
        vmas: Vmas::new(profile.stack_guard_gap),
        files: Vec::new(),
        zero: Vec::new(),
        search: Search {
            low: 0,
            high: 0,
            top_down: true,
            task_size: profile.task_size,
        },
        legacy_base: 0,
        rawio: new_creds.cap_sys_rawio,
    };
    b.layout(
        elf_image,
        strings,
        LayoutInputs {
            personality,
            rlimit,
            creds: new_creds,
            comm,
            execfd,
            preserve_argv0,
            random: req.random_bytes,
            extra_auxv: &req.extra_auxv,
            execfn,
        },
    )
}

/// The part of `load_elf_binary()` before the point of no return.
fn load_elf_headers<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    cwd: &DirPath<F::Node>,
    file: Found<F::Node>,
    hdr: Header,
    trace: &mut Trace<'_>,
) -> Result<ElfImage<F::Node>> {
    let spec = profile.arch.spec();
    if !hdr.type_ok() {
        return Err(Error::ElfType(hdr.e_type));
    }
    // binfmt_elf refuses the machine (ENOEXEC); compat_binfmt_elf takes it if its ELF32
    // reading gets past the phdr checks (and, on arm64, it is EABI); else ENOEXEC as well.
    let eabi_ok = profile.arch != Arch::Aarch64 || hdr.elf32.e_flags & 0xff00_0000 != 0;
    if spec.compat_machines.contains(&hdr.e_machine) && hdr.elf32.phdrs_ok() && eabi_ok {
        return Err(Error::CompatElf {
            machine: hdr.e_machine,
        });
    }
    if hdr.e_machine != spec.e_machine {
        return Err(Error::ElfMachine {
            found: hdr.e_machine,
            expected: spec.e_machine,
        });
    }
    let phdrs = elf::load_phdrs(fs, &file.node, &hdr).map_err(|e| match e {
        PhdrsError::EntSize => Error::PhentSize(hdr.e_phentsize),
        PhdrsError::Count => Error::PhNum(hdr.e_phnum),
        PhdrsError::Short => Error::PhdrsShort {
            offset: hdr.e_phoff,
        },
    })?;
    let mut exec_stack = None;
    for p in &phdrs {
        if p.p_type == PT_GNU_STACK {
            exec_stack = Some(p.p_flags & PF_X != 0);
        }
    }
    let mut property: Option<(bool, Phdr)> = None;
    let mut interp = None;
    let mut elf_step = trace.on().then(|| Step::Elf {
        path: file.path.clone(),
        e_type: hdr.e_type,
        phnum: hdr.e_phnum,
        interpreter: None,
        exec_stack,
    });
    for p in &phdrs {
        if p.p_type == PT_GNU_PROPERTY {
            property = Some((false, *p));
            continue;
        }
        if p.p_type != PT_INTERP {
            continue;
        }
        if p.p_filesz > resolve::PATH_MAX as u64 || p.p_filesz < 2 {
            return Err(Error::InterpSize(p.p_filesz));
        }
        let bytes =
            elf::read_exact(fs, &file.node, p.p_offset, p.p_filesz as usize).map_err(|errno| {
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
        let name = bytes.get(..end).unwrap_or(&[]).to_vec();
        if let Some(Step::Elf { interpreter, .. }) = &mut elf_step {
            *interpreter = Some(name.clone());
        }
        if let Some(step) = elf_step.take() {
            trace.note(|| step);
        }
        let f =
            resolve::open_exec_kernel(fs, &profile.credentials, cwd, &name).map_err(|problem| {
                Error::InterpOpen {
                    path: Bytes(name.clone()),
                    problem,
                }
            })?;
        let ih = elf::read_exact(fs, &f.node, 0, elf::EHDR_SIZE).map_err(|errno| {
            if errno == Errno::EIO {
                Error::InterpHeaderShort(Bytes(name.clone()))
            } else {
                Error::Read {
                    path: Bytes(name.clone()),
                    errno,
                }
            }
        })?;
        trace.note(|| opened(Role::ElfInterpreter, &name, &f));
        interp = Some((name, f, ih));
        break;
    }
    if let Some(step) = elf_step {
        trace.note(|| step);
    }
    let interp = match interp {
        None => None,
        Some((name, f, raw)) => {
            let bad = |problem| Error::InterpBad {
                path: Bytes(name.clone()),
                problem,
            };
            let ih = Header::parse(&raw).ok_or_else(|| bad(InterpProblem::BadMagic))?;
            if ih.e_machine != spec.e_machine {
                return Err(bad(InterpProblem::WrongMachine(ih.e_machine)));
            }
            let iph = elf::load_phdrs(fs, &f.node, &ih)
                .map_err(|_| bad(InterpProblem::BadProgramHeaders))?;
            for p in &iph {
                if p.p_type == PT_GNU_PROPERTY {
                    property = Some((true, *p));
                }
            }
            Some((f, ih, iph))
        }
    };
    if interp.is_some() && property.is_some_and(|(from_interp, _)| !from_interp) {
        // With an interpreter only the interpreter's note is parsed.
        property = None;
    }
    let mut bti = false;
    if spec.parses_gnu_property {
        if let Some((from_interp, p)) = property {
            let node = if from_interp {
                interp.as_ref().map(|(f, _, _)| &f.node)
            } else {
                Some(&file.node)
            };
            if let Some(node) = node {
                bti = parse_properties(fs, node, &p)?;
            }
        }
    }
    Ok(ElfImage {
        file,
        hdr,
        phdrs,
        interp,
        exec_stack,
        bti,
    })
}

/// `parse_elf_properties()` + arm64 `arch_parse_elf_property()`: returns whether BTI is on.
fn parse_properties<F: FileSystem + ?Sized>(fs: &F, node: &F::Node, p: &Phdr) -> Result<bool> {
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
    if !elf::offset_ok(p.p_offset, len as u64) {
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

/// `bprm_fill_uid()` and `cap_bprm_creds_from_file()`.
fn compute_credentials(profile: &Profile, meta: &Metadata) -> NewCredentials {
    let old = &profile.credentials;
    let (mut euid, mut egid) = (old.euid, old.egid);
    let mut per_clear = false;
    if !meta.nosuid && !old.no_new_privs {
        if meta.mode & 0o4000 != 0 {
            euid = meta.uid;
            per_clear = true;
        }
        if meta.mode & 0o2000 != 0 && meta.mode & 0o010 != 0 {
            egid = meta.gid;
            per_clear = true;
        }
    }
    let (uid, gid) = (old.uid, old.gid);
    let old_caps = old.euid == 0 || old.uid == 0;
    let new_caps = euid == 0 || uid == 0;
    let gained = new_caps && !old_caps;
    // The kernel downgrades euid/egid to the real ids only when an id changes (or capabilities
    // are gained) under no_new_privs or an unprivileged tracer. no_new_privs already kept the
    // set-id bits out above, so nothing changes and a caller's differing real and effective
    // ids survive the exec (6.18, observed: tests/credentials.rs). A tracer is not modelled.
    // AT_SECURE: an effective id differing from the old real one, or changed by the exec
    // (a new egid counts as changed only if the caller was not already in that group:
    // in_group_p(), i.e. the old egid or a supplementary group).
    // (The capability rule, a non-root uid with euid 0, is a case of the first.)
    let is_setid = euid != old.uid || egid != old.gid;
    let changed = euid != old.euid || (egid != old.egid && !old.groups.contains(&egid));
    let secureexec = is_setid || changed;
    NewCredentials {
        uid,
        euid,
        suid: euid,
        fsuid: euid,
        gid,
        egid,
        sgid: egid,
        fsgid: egid,
        secureexec,
        privileged: per_clear || gained,
        no_new_privs: old.no_new_privs,
        // The segments are mapped after commit_creds(): the new effective capabilities
        // decide, which a new euid 0 takes from the bounding set (handle_privileged_root()).
        cap_sys_rawio: euid == 0 && profile.cap_sys_rawio,
    }
}

struct LayoutInputs<'a> {
    personality: u32,
    rlimit: Option<u64>,
    creds: NewCredentials,
    comm: Vec<u8>,
    execfd: Option<u64>,
    preserve_argv0: bool,
    random: Option<[u8; 16]>,
    extra_auxv: &'a [(u64, u64)],
    execfn: Vec<u8>,
}

struct Builder<'a, F: FileSystem + ?Sized> {
    profile: &'a Profile,
    page: u64,
    rng: &'a mut dyn RngCore,
    trace: Trace<'a>,
    randomize: bool,
    vmas: Vmas,
    files: Vec<PlanFile<F::Node>>,
    zero: Vec<(u64, u64)>,
    search: Search,
    legacy_base: u64,
    /// The new credentials' CAP_SYS_RAWIO.
    rawio: bool,
}

/// What a fatal mapping failure maps to.
fn map_err(e: Errno, addr: u64, len: u64, index: usize) -> Error {
    match e {
        Errno::EEXIST => Error::MapCollision { addr },
        Errno::EPERM => Error::BelowMinAddr { addr },
        Errno::EINVAL => Error::Misaligned { index },
        Errno::EFAULT => Error::PadZeroFault { addr },
        _ => Error::NoSpace { len },
    }
}

impl<F: FileSystem + ?Sized> Builder<'_, F> {
    fn rnd(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// `arch_mmap_rnd()`.
    fn mmap_rnd(&mut self) -> u64 {
        if !self.randomize {
            return 0;
        }
        let bits = self.profile.mmap_rnd_bits.min(63);
        (self.rnd() & (1u64 << bits).wrapping_sub(1)).wrapping_mul(self.page)
    }

    fn add_file(&mut self, f: &Found<F::Node>) -> usize {
        if let Some(i) = self
            .files
            .iter()
            .position(|p| p.path == f.path && p.meta.inode == f.meta.inode)
        {
            return i;
        }
        self.files.push(PlanFile {
            node: f.node.clone(),
            path: f.path.clone(),
            meta: f.meta.clone(),
        });
        self.files.len().saturating_sub(1)
    }

    /// `vm_mmap()` of a private file mapping. `fixed` is MAP_FIXED, `noreplace`
    /// MAP_FIXED_NOREPLACE; returns the address.
    #[allow(clippy::too_many_arguments)] // mirrors vm_mmap()'s own parameter list
    fn mmap_file(
        &mut self,
        file: usize,
        addr: u64,
        len: u64,
        prot: Prot,
        off: u64,
        fixed: bool,
        noreplace: bool,
    ) -> core::result::Result<u64, Errno> {
        if elf::page_offset(off, self.page) != 0 {
            return Err(Errno::EINVAL);
        }
        let len = elf::page_align(len, self.page);
        if len == 0 || len > self.profile.task_size {
            return Err(Errno::ENOMEM);
        }
        // do_mmap(): file_mmap_ok() limits a regular file's range to MAX_LFS_FILESIZE.
        if off.checked_add(len).is_none() || off > (i64::MAX as u64).saturating_sub(len) {
            return Err(Errno::EOVERFLOW);
        }
        let addr = if fixed || noreplace {
            if elf::page_offset(addr, self.page) != 0 {
                return Err(Errno::EINVAL);
            }
            addr
        } else {
            // round_hint_to_min(): a non-zero hint below mmap_min_addr is raised to it.
            let addr = match elf::page_start(addr, self.page) {
                0 => 0,
                hint if hint < self.profile.mmap_min_addr => {
                    elf::page_align(self.profile.mmap_min_addr, self.page)
                }
                hint => hint,
            };
            let thp = self.files.get(file).is_some_and(|f| f.meta.thp_aligned);
            let found = if thp {
                self.vmas
                    .get_unmapped_area_thp(addr, len, off, &self.search, self.legacy_base)
            } else {
                self.vmas
                    .get_unmapped_area(addr, len, &self.search, self.legacy_base)
            };
            found.ok_or(Errno::ENOMEM)?
        };
        // len <= task_size was checked above.
        let Some(end) = addr
            .checked_add(len)
            .filter(|&e| e <= self.profile.task_size)
        else {
            return Err(Errno::ENOMEM);
        };
        if addr < self.profile.mmap_min_addr && !self.rawio {
            return Err(Errno::EPERM);
        }
        if noreplace && self.vmas.overlaps(addr, end) {
            return Err(Errno::EEXIST);
        }
        self.map_fixed(Vma {
            start: addr,
            end,
            prot,
            backing: Backing::File { file, offset: off },
        });
        Ok(addr)
    }

    /// `MAP_FIXED` of `vma` in the new mm, forgetting the `padzero()` of any page it replaces.
    fn map_fixed(&mut self, vma: Vma) {
        self.forget_zeroed(vma.start, vma.end);
        self.vmas.map_fixed(vma);
    }

    /// `munmap` of `[start, end)`, forgetting the `padzero()` of any page it removes.
    fn unmap(&mut self, start: u64, end: u64) {
        self.forget_zeroed(start, end);
        self.vmas.unmap(start, end);
    }

    /// Drops the recorded `padzero()` ranges inside `[start, end)`. Mirrors the kernel, where
    /// `padzero()` clears bytes of the private page mapped at that moment: a later mapping
    /// that replaces or removes the page (`load_elf_interp()`'s MAP_FIXED over the program,
    /// `elf_map()`'s unmap of the reservation tail) takes the cleared bytes with it, so the
    /// plan must not zero whatever is mapped there in the end.
    fn forget_zeroed(&mut self, start: u64, end: u64) {
        self.zero
            .retain(|&(addr, len)| addr.saturating_add(len) <= start || addr >= end);
    }

    /// `vm_brk_flags()`: anonymous rw pages (plus x) at a fixed address.
    fn brk_map(&mut self, start: u64, len: u64, exec: bool) -> core::result::Result<(), Errno> {
        let len = elf::page_align(len, self.page);
        if len == 0 {
            return Ok(());
        }
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if end > self.profile.task_size {
            return Err(Errno::ENOMEM);
        }
        if start < self.profile.mmap_min_addr && !self.rawio {
            return Err(Errno::EPERM);
        }
        let prot = Prot::rw_maybe_x(exec);
        self.map_fixed(Vma {
            start,
            end,
            prot,
            backing: Backing::Anon,
        });
        Ok(())
    }

    /// `elf_map()`: map a segment's file part; with `total_size`, reserve the whole image
    /// first and unmap what follows the segment.
    #[allow(clippy::too_many_arguments)]
    fn elf_map(
        &mut self,
        file: usize,
        addr: u64,
        p: &Phdr,
        prot: Prot,
        fixed: bool,
        noreplace: bool,
        total_size: u64,
    ) -> core::result::Result<u64, Errno> {
        let page = self.page;
        let size = p.p_filesz.wrapping_add(elf::page_offset(p.p_vaddr, page));
        let off = p.p_offset.wrapping_sub(elf::page_offset(p.p_vaddr, page));
        let addr = elf::page_start(addr, page);
        let size = elf::page_align(size, page);
        if size == 0 {
            return Ok(addr);
        }
        if total_size != 0 {
            let total = elf::page_align(total_size, page);
            let map_addr = self.mmap_file(file, addr, total, prot, off, fixed, noreplace)?;
            self.unmap(
                map_addr.saturating_add(size),
                map_addr.saturating_add(total),
            );
            Ok(map_addr)
        } else {
            self.mmap_file(file, addr, size, prot, off, fixed, noreplace)
        }
    }

    /// `elf_load()`: one PT_LOAD with its bss.
    #[allow(clippy::too_many_arguments)]
    fn elf_load(
        &mut self,
        file: usize,
        addr: u64,
        p: &Phdr,
        prot: Prot,
        fixed: bool,
        noreplace: bool,
        total_size: u64,
    ) -> core::result::Result<u64, Errno> {
        let page = self.page;
        let (map_addr, zero_start, zero_end);
        if p.p_filesz != 0 {
            map_addr = self.elf_map(file, addr, p, prot, fixed, noreplace, total_size)?;
            let base = map_addr.wrapping_add(elf::page_offset(p.p_vaddr, page));
            zero_start = base.wrapping_add(p.p_filesz);
            zero_end = base.wrapping_add(p.p_memsz);
            if p.p_memsz > p.p_filesz {
                // padzero(): clear_user() to the end of the page; it only takes effect (and
                // only matters) when the page is writable. Mirrors fs/binfmt_elf.c: elf_load():
                // a page wholly past the end of the file faults (SIGBUS), and that fault is
                // fatal (-EFAULT) for a writable segment and ignored otherwise.
                let in_page = elf::page_offset(zero_start, page);
                if in_page != 0 && prot.contains(Prot::WRITE) {
                    let map_off = p.p_offset.wrapping_sub(elf::page_offset(p.p_vaddr, page));
                    let page_off = map_off
                        .wrapping_add(elf::page_start(zero_start, page).wrapping_sub(map_addr));
                    let size = self.files.get(file).map_or(0, |f| f.meta.size);
                    if page_off >= elf::page_align(size, page) {
                        return Err(Errno::EFAULT);
                    }
                    self.zero.push((zero_start, page.saturating_sub(in_page)));
                }
            }
        } else {
            map_addr = elf::page_start(addr, page);
            zero_start = map_addr;
            zero_end = zero_start
                .wrapping_add(elf::page_offset(p.p_vaddr, page))
                .wrapping_add(p.p_memsz);
        }
        if p.p_memsz > p.p_filesz {
            let zs = elf::page_align(zero_start, page);
            let ze = elf::page_align(zero_end, page);
            self.brk_map(zs, ze.wrapping_sub(zs), prot.contains(Prot::EXEC))?;
        }
        Ok(map_addr)
    }

    fn layout(
        mut self,
        img: ElfImage<F::Node>,
        strings: ArgStrings,
        inp: LayoutInputs<'_>,
    ) -> Result<Plan<F::Node>> {
        let profile = self.profile;
        let page = self.page;
        let spec = profile.arch.spec();

        // arch_pick_mmap_layout().
        let unlimited = inp.rlimit.is_none();
        let legacy = inp.personality & ADDR_COMPAT_LAYOUT != 0
            || profile.legacy_va_layout
            || (spec.legacy_on_unlimited_stack && unlimited);
        let rnd = self.mmap_rnd();
        let task = profile.stack_top;
        let legacy_base = profile.task_unmapped_base.wrapping_add(rnd);
        let mmap_base = if legacy {
            legacy_base
        } else {
            let mut gap = inp.rlimit.unwrap_or(u64::MAX);
            let mut pad = profile.stack_guard_gap;
            if self.randomize {
                pad = pad.saturating_add(spec.stack_rnd_mask.saturating_mul(page));
            }
            if let Some(g) = gap.checked_add(pad) {
                gap = g;
            }
            let gap_min = 128 << 20;
            let gap_max = (task / 6).saturating_mul(5);
            let gap = gap.clamp(gap_min, gap_max);
            // gap <= task/6*5 and rnd < 2^40 pages of a profile that passed validate().
            elf::page_align(task.saturating_sub(gap).saturating_sub(rnd), page)
        };
        self.legacy_base = legacy_base;
        self.search = Search {
            low: page.max(profile.mmap_min_addr),
            high: if legacy { profile.task_size } else { mmap_base },
            top_down: !legacy,
            task_size: profile.task_size,
        };
        if legacy {
            self.search.low = mmap_base;
        }

        // setup_arg_pages().
        let mut stack_top = elf::page_align(profile.stack_top, page);
        if self.randomize {
            let r = (self.rnd() & spec.stack_rnd_mask).saturating_mul(page);
            stack_top = stack_top.saturating_sub(r);
        }
        if self.randomize {
            let range = if spec.align_stack_rnd_8k { 8192 } else { page };
            stack_top = stack_top.saturating_sub(self.rnd().checked_rem(range).unwrap_or(0));
        }
        stack_top = elf::page_align(stack_top & !0xf, page);
        let top_max = profile.stack_top_max;
        let used = strings.used();
        // The strings are at most 6 MiB (the E2BIG budget) and stack_top_max >= stack_top >=
        // 64 GiB (validate()), so the subtractions below stay far from zero.
        let p_min = top_max.saturating_sub(8).saturating_sub(strings.max_used());
        let vm_start0 = elf::page_start(p_min, page).min(top_max.saturating_sub(page));
        let vm_size0 = top_max.saturating_sub(vm_start0);
        if stack_top < profile.mmap_min_addr
            || vm_size0 >= stack_top.saturating_sub(profile.mmap_min_addr)
        {
            return Err(Error::Stack);
        }
        let shift = top_max.saturating_sub(stack_top);
        let mut vm_start = vm_start0.saturating_sub(shift);
        let vm_end = stack_top;
        let arg_start = top_max
            .saturating_sub(8)
            .saturating_sub(used)
            .saturating_sub(shift);
        let stack_size = vm_end.saturating_sub(vm_start);
        let rlim_stack = inp.rlimit.unwrap_or(u64::MAX) & !page.wrapping_sub(1);
        let stack_expand = 131_072u64;
        let stack_base = if stack_size.saturating_add(stack_expand) > rlim_stack {
            vm_end.saturating_sub(rlim_stack)
        } else {
            vm_start.saturating_sub(stack_expand)
        };
        if stack_base < vm_start {
            vm_start = stack_base;
        }
        let exec_stack = img
            .exec_stack
            .unwrap_or(inp.personality & READ_IMPLIES_EXEC != 0);
        let stack_prot = Prot::rw_maybe_x(exec_stack);
        self.map_fixed(Vma {
            start: vm_start,
            end: vm_end,
            prot: stack_prot,
            backing: Backing::Stack,
        });

        // The main binary's PT_LOADs.
        let file_idx = self.add_file(&img.file);
        let interp_present = img.interp.is_some();
        let mut load_bias = 0u64;
        let mut total_size = 0u64;
        let mut first = true;
        let mut phdr_addr = 0u64;
        let (mut start_code, mut end_code, mut start_data, mut end_data, mut elf_brk) =
            (u64::MAX, 0u64, 0u64, 0u64, 0u64);
        let alignment = elf::maximum_alignment(&img.phdrs, page);
        for (index, p) in img.phdrs.iter().enumerate() {
            if p.p_type != PT_LOAD {
                continue;
            }
            let prot = elf::prot_of(p.p_flags);
            let vaddr = p.p_vaddr;
            let (mut fixed, mut noreplace) = (false, false);
            if !first {
                fixed = true;
            } else if !img.hdr.is_dyn() {
                noreplace = true;
            } else {
                if interp_present {
                    load_bias = profile.elf_et_dyn_base;
                    if self.randomize {
                        load_bias = load_bias.wrapping_add(self.mmap_rnd());
                    }
                    if alignment != 0 {
                        load_bias &= !alignment.wrapping_sub(1);
                    }
                    noreplace = true;
                } else if alignment > page {
                    total_size = elf::total_mapping_size(&img.phdrs, page);
                    let size = elf::page_align(total_size, page);
                    let off = p.p_offset.wrapping_sub(elf::page_offset(vaddr, page));
                    let probe = if p.p_filesz == 0 {
                        // The probe is elf_load() at address 0, then unmapped: with no file
                        // bytes that is the bss at page 0 (vm_brk_flags, whose refusal is
                        // fatal), or nothing; either way the answer is 0.
                        let (vmas, zero) = (self.vmas.clone(), self.zero.len());
                        let got = self.elf_load(file_idx, 0, p, prot, false, false, total_size);
                        self.vmas = vmas;
                        self.zero.truncate(zero);
                        got.map_err(|e| map_err(e, 0, p.p_memsz, index))?
                    } else {
                        self.probe(file_idx, size, off)
                            .ok_or(Error::NoSpace { len: size })?
                    };
                    load_bias = probe & !alignment.wrapping_sub(1);
                    noreplace = true;
                } else {
                    load_bias = 0;
                }
                load_bias = elf::page_start(load_bias.wrapping_sub(vaddr), page);
                total_size = elf::total_mapping_size(&img.phdrs, page);
                if total_size == 0 {
                    return Err(Error::NoLoad(Bytes(img.file.path.clone())));
                }
            }
            let addr = load_bias.wrapping_add(vaddr);
            // Only the first PT_LOAD reserves the whole image (`total_size` is per iteration).
            let total = if first { total_size } else { 0 };
            let got = self
                .elf_load(file_idx, addr, p, prot, fixed, noreplace, total)
                .map_err(|e| map_err(e, addr, p.p_memsz, index))?;
            // Mirrors fs/binfmt_elf.c: load_elf_binary(): `BAD_ADDR(error)` on an address
            // that is not an error value (an empty PT_LOAD at or above TASK_SIZE) is -EINVAL.
            if got >= profile.task_size {
                return Err(Error::SegmentRange { index });
            }
            if first {
                first = false;
                if img.hdr.is_dyn() {
                    load_bias = load_bias.wrapping_add(
                        got.wrapping_sub(elf::page_start(load_bias.wrapping_add(vaddr), page)),
                    );
                }
            }
            self.trace.note(|| Step::Segment {
                path: img.file.path.clone(),
                index,
                vaddr,
                filesz: p.p_filesz,
                memsz: p.p_memsz,
                addr: load_bias.wrapping_add(vaddr),
                prot,
            });
            if p.p_offset <= img.hdr.e_phoff
                && img.hdr.e_phoff < p.p_offset.wrapping_add(p.p_filesz)
            {
                phdr_addr = img.hdr.e_phoff.wrapping_sub(p.p_offset).wrapping_add(vaddr);
            }
            let k = vaddr;
            if p.p_flags & PF_X != 0 && k < start_code {
                start_code = k;
            }
            if start_data < k {
                start_data = k;
            }
            let ts = profile.task_size;
            if k >= ts
                || p.p_filesz > p.p_memsz
                || ts.checked_sub(p.p_memsz).is_none_or(|room| room < k)
            {
                return Err(Error::SegmentRange { index });
            }
            // The range check above bounds vaddr + p_memsz (>= p_filesz) by TASK_SIZE.
            let k = vaddr.saturating_add(p.p_filesz);
            if p.p_flags & PF_X != 0 && end_code < k {
                end_code = k;
            }
            if end_data < k {
                end_data = k;
            }
            let k = vaddr.saturating_add(p.p_memsz);
            if k > elf_brk {
                elf_brk = k;
            }
        }
        let e_entry = img.hdr.e_entry.wrapping_add(load_bias);
        phdr_addr = phdr_addr.wrapping_add(load_bias);
        elf_brk = elf_brk.wrapping_add(load_bias);
        start_code = start_code.wrapping_add(load_bias);
        end_code = end_code.wrapping_add(load_bias);
        start_data = start_data.wrapping_add(load_bias);
        end_data = end_data.wrapping_add(load_bias);

        // The interpreter.
        let mut interp_load_addr = 0u64;
        let mut entry = e_entry;
        let mut interpreter = None;
        if let Some((ifile, ih, iph)) = &img.interp {
            let base = self.load_interp(ifile, ih, iph, load_bias)?;
            interp_load_addr = base;
            entry = base.wrapping_add(ih.e_entry);
            if entry >= profile.task_size {
                return Err(Error::BadEntry(entry));
            }
            interpreter = Some(ifile.path.clone());
        } else if entry >= profile.task_size {
            return Err(Error::BadEntry(entry));
        }

        // The vDSO (ARCH_SETUP_ADDITIONAL_PAGES).
        let mut vdso_base = None;
        if let Some(v) = &profile.vdso {
            let data_pages: u64 = v.data.iter().map(|d| d.pages).sum();
            // validate() bounds the vDSO block to 1024 pages.
            let len = data_pages
                .saturating_add(v.text_pages(page))
                .saturating_mul(page);
            let base = self
                .vmas
                .get_unmapped_area(0, len, &self.search, self.legacy_base)
                .ok_or(Error::NoSpace { len })?;
            let mut at = base;
            for d in &v.data {
                let end = at.saturating_add(d.pages.saturating_mul(page));
                self.map_fixed(Vma {
                    start: at,
                    end,
                    prot: d.prot,
                    backing: Backing::Special(d.name.clone()),
                });
                at = end;
            }
            let end = at.saturating_add(v.text_pages(page).saturating_mul(page));
            self.map_fixed(Vma {
                start: at,
                end,
                prot: Prot::READ | Prot::EXEC,
                backing: Backing::Special(String::from("[vdso]")),
            });
            vdso_base = Some(at);
        }

        // brk.
        let mut brk_moved = false;
        if img.hdr.is_dyn() && !interp_present {
            elf_brk = profile.elf_et_dyn_base;
            brk_moved = true;
        }
        let mut start_brk = elf::page_align(elf_brk, page);
        if self.randomize && profile.randomize_va_space > 1 {
            if !brk_moved {
                start_brk = start_brk.saturating_add(page);
            }
            start_brk = self.randomize_page(start_brk, spec.brk_rnd_range);
        }

        // MMAP_PAGE_ZERO: the kernel ignores the mapping's failure, which is EPERM below
        // mmap_min_addr without CAP_SYS_RAWIO, so page 0 is then simply absent.
        let page_zero_allowed = profile.mmap_min_addr == 0 || self.rawio;
        if inp.personality & MMAP_PAGE_ZERO != 0 && page_zero_allowed {
            self.map_fixed(Vma {
                start: 0,
                end: page,
                prot: Prot::READ | Prot::EXEC,
                backing: Backing::Anon,
            });
        }

        // create_elf_tables().
        let random = match inp.random {
            Some(r) => r,
            None => {
                let mut r = [0u8; 16];
                self.rng.fill_bytes(&mut r);
                r
            }
        };
        let align_sub = if self.randomize {
            let range = if spec.align_stack_rnd_8k { 8192 } else { page };
            self.rnd().checked_rem(range).unwrap_or(0)
        } else {
            0
        };
        let tables = Tables {
            strings: &strings,
            arg_start,
            top: stack_top,
            align_sub,
            platform: profile.platform.as_bytes(),
            random,
        };
        let (platform_addr, random_addr) = tables.string_addrs()?;
        let execfn_len = (inp.execfn.len() as u64).saturating_add(1);
        let execfn_addr = stack_top.saturating_sub(8).saturating_sub(execfn_len);
        let mut auxv: Vec<(u64, u64)> = Vec::new();
        if let Some(b) = vdso_base {
            auxv.push((AT_SYSINFO_EHDR, b));
        }
        if profile.arch == Arch::Aarch64 && profile.minsigstksz == 0 {
            auxv.push((AT_IGNORE, 0));
        } else {
            auxv.push((AT_MINSIGSTKSZ, profile.minsigstksz));
        }
        auxv.push((AT_HWCAP, profile.hwcap));
        auxv.push((AT_PAGESZ, page));
        auxv.push((AT_CLKTCK, profile.clock_ticks));
        auxv.push((AT_PHDR, phdr_addr));
        auxv.push((AT_PHENT, elf::PHDR_SIZE as u64));
        auxv.push((AT_PHNUM, u64::from(img.hdr.e_phnum)));
        auxv.push((AT_BASE, interp_load_addr));
        auxv.push((
            AT_FLAGS,
            if inp.preserve_argv0 {
                AT_FLAGS_PRESERVE_ARGV0
            } else {
                0
            },
        ));
        auxv.push((AT_ENTRY, e_entry));
        auxv.push((AT_UID, u64::from(inp.creds.uid)));
        auxv.push((AT_EUID, u64::from(inp.creds.euid)));
        auxv.push((AT_GID, u64::from(inp.creds.gid)));
        auxv.push((AT_EGID, u64::from(inp.creds.egid)));
        auxv.push((AT_SECURE, u64::from(inp.creds.secureexec)));
        auxv.push((AT_RANDOM, random_addr));
        auxv.push((AT_HWCAP2, profile.hwcap2));
        if let Some(h3) = profile.hwcap3 {
            auxv.push((AT_HWCAP3, h3));
        }
        auxv.push((AT_EXECFN, execfn_addr));
        if !profile.platform.is_empty() {
            auxv.push((AT_PLATFORM, platform_addr));
        }
        if let Some(fd) = inp.execfd {
            auxv.push((AT_EXECFD, fd));
        }
        if let Some((size, align)) = profile.rseq {
            auxv.push((AT_RSEQ_FEATURE_SIZE, size));
            auxv.push((AT_RSEQ_ALIGN, align));
        }
        auxv.extend_from_slice(inp.extra_auxv);
        auxv.push((AT_NULL, 0));
        let stack = tables.build(&auxv)?;
        // find_extend_vma(): grow the stack VMA down to cover sp.
        if stack.sp < vm_start {
            let new_start = elf::page_start(stack.sp, page);
            if inp
                .rlimit
                .is_some_and(|r| vm_end.saturating_sub(new_start) > r)
            {
                return Err(Error::Stack);
            }
            self.vmas.set_bounds(vm_start, new_start, vm_end);
        }

        let mm = MmFields {
            start_code,
            end_code,
            start_data,
            end_data,
            start_brk,
            brk: start_brk,
            start_stack: stack.sp,
            arg_start: stack.arg_start,
            arg_end: stack.arg_end,
            env_start: stack.arg_end,
            env_end: stack.env_end,
        };
        let registers = Registers {
            arch: profile.arch,
            pc: entry,
            sp: stack.sp,
        };
        Ok(Plan {
            arch: profile.arch,
            page_size: page,
            vmas: self.vmas.as_slice().to_vec(),
            files: self.files,
            vsyscall: profile.vsyscall,
            zero: self.zero,
            vdso_base,
            vdso_image: profile.vdso.as_ref().map(|v| v.image.clone()),
            entry,
            registers,
            auxv,
            mm,
            argv: strings.argv.iter().cloned().collect(),
            envp: strings.envp.clone(),
            execfn: inp.execfn,
            comm: inp.comm,
            interpreter,
            exe: img.file.path.clone(),
            credentials: inp.creds,
            personality: inp.personality,
            exec_stack,
            execfd: inp.execfd,
            randomized: self.randomize,
            mmap_base,
            bti: img.bti,
            stack,
        })
    }

    /// The static-PIE alignment probe: where a non-fixed mapping of the whole image would go.
    fn probe(&self, file: usize, size: u64, off: u64) -> Option<u64> {
        let thp = self.files.get(file).is_some_and(|f| f.meta.thp_aligned);
        if thp {
            self.vmas
                .get_unmapped_area_thp(0, size, off, &self.search, self.legacy_base)
        } else {
            self.vmas
                .get_unmapped_area(0, size, &self.search, self.legacy_base)
        }
    }

    /// `randomize_page()`.
    fn randomize_page(&mut self, start: u64, range: u64) -> u64 {
        let page = self.page;
        let (mut start, mut range) = (start, range);
        if elf::page_offset(start, page) != 0 {
            let aligned = elf::page_align(start, page);
            range = range.saturating_sub(aligned.saturating_sub(start));
            start = aligned;
        }
        range = range.min(u64::MAX.saturating_sub(start));
        let pages = range.checked_div(page).unwrap_or(0);
        if pages == 0 {
            return start;
        }
        start.saturating_add(
            self.rnd()
                .checked_rem(pages)
                .unwrap_or(0)
                .saturating_mul(page),
        )
    }

    /// `load_elf_interp()`: returns the interpreter's load address.
    fn load_interp(
        &mut self,
        f: &Found<F::Node>,
        ih: &Header,
        iph: &[Phdr],
        no_base: u64,
    ) -> Result<u64> {
        let page = self.page;
        if !ih.type_ok() {
            return Err(Error::InterpType(Bytes(f.path.clone())));
        }
        let file = self.add_file(f);
        let mut total_size = elf::total_mapping_size(iph, page);
        if total_size == 0 {
            return Err(Error::NoLoad(Bytes(f.path.clone())));
        }
        let mut load_addr = 0u64;
        let mut load_addr_set = false;
        for (index, p) in iph.iter().enumerate() {
            if p.p_type != PT_LOAD {
                continue;
            }
            let prot = elf::prot_of(p.p_flags);
            let vaddr = p.p_vaddr;
            let mut fixed = false;
            if !ih.is_dyn() || load_addr_set {
                fixed = true;
            } else if no_base != 0 {
                load_addr = vaddr.wrapping_neg();
            }
            let addr = load_addr.wrapping_add(vaddr);
            let map_addr = self
                .elf_load(file, addr, p, prot, fixed, false, total_size)
                .map_err(|e| map_err(e, addr, p.p_memsz, index))?;
            total_size = 0;
            // Mirrors fs/binfmt_elf.c: load_elf_interp() returning such an address, which
            // load_elf_binary() then rejects with `BAD_ADDR(elf_entry)` → -EINVAL.
            if map_addr >= self.profile.task_size {
                return Err(Error::SegmentRange { index });
            }
            if !load_addr_set && ih.is_dyn() {
                load_addr = map_addr.wrapping_sub(elf::page_start(vaddr, page));
                load_addr_set = true;
            }
            self.trace.note(|| Step::Segment {
                path: f.path.clone(),
                index,
                vaddr,
                filesz: p.p_filesz,
                memsz: p.p_memsz,
                addr: load_addr.wrapping_add(vaddr),
                prot,
            });
            let k = load_addr.wrapping_add(vaddr);
            let ts = self.profile.task_size;
            if k >= ts
                || p.p_filesz > p.p_memsz
                || ts.checked_sub(p.p_memsz).is_none_or(|room| room < k)
            {
                return Err(Error::NoSpace { len: p.p_memsz });
            }
        }
        Ok(load_addr)
    }
}
