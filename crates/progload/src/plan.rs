//! The plan: the request, the [`Plan`] it yields, and [`plan()`], which runs the exec the way
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
use crate::binfmt::{self, elf, misc::Rule};
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
    /// the filesystem's root (never the calling process's directory). To name it by path,
    /// use [`LoadRequestBuilder::cwd`].
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

/// Builds a [`LoadRequest`] step by step: argv\[0\] defaults to the path, the environment can
/// be the calling process's, and the working directory is a path resolved when the request is
/// built.
///
/// ```
/// use progload::{plan, LoadRequestBuilder, MemFs, Profile, SeededRng};
/// # let elf = progload_testkit::tiny_static_elf();
/// let mut fs = MemFs::new();
/// fs.add_file(b"/usr/bin/hello", 0o755, elf);
/// let profile = Profile::linux_6_18_x86_64();
/// let req = LoadRequestBuilder::new("./hello")
///     .arg("--loud")
///     .env("LANG=C")
///     .cwd("/usr/bin")
///     .build(&fs, &profile)
///     .unwrap();
/// assert_eq!(req.argv, Some(vec![b"./hello".to_vec(), b"--loud".to_vec()]));
/// let plan = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
/// assert_eq!(plan.exe, b"/usr/bin/hello");
///
/// // A working directory that does not resolve is the error the exec would give for it.
/// let err = LoadRequestBuilder::new("./hello").cwd("/nowhere").build(&fs, &profile);
/// assert_eq!(err.unwrap_err().errno(), progload::Errno::ENOENT);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LoadRequestBuilder {
    path: Vec<u8>,
    argv0: Option<Vec<u8>>,
    args: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    no_follow: bool,
    misc_rules: Vec<Rule>,
    random_bytes: Option<[u8; 16]>,
    extra_auxv: Vec<(u64, u64)>,
    execfd: u64,
}

impl LoadRequestBuilder {
    /// A request to execute `path` (`execve(path)`), with argv `[path]` and an empty
    /// environment until told otherwise.
    pub fn new(path: impl Into<Vec<u8>>) -> Self {
        LoadRequestBuilder {
            path: path.into(),
            argv0: None,
            args: Vec::new(),
            envp: Vec::new(),
            cwd: None,
            no_follow: false,
            misc_rules: Vec::new(),
            random_bytes: None,
            extra_auxv: Vec::new(),
            execfd: 3,
        }
    }

    /// argv\[0\] (default: the path as given).
    pub fn arg0(mut self, arg0: impl Into<Vec<u8>>) -> Self {
        self.argv0 = Some(arg0.into());
        self
    }

    /// Appends one argument after argv\[0\].
    pub fn arg(mut self, arg: impl Into<Vec<u8>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments after argv\[0\].
    pub fn args<A: Into<Vec<u8>>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends one environment string (`KEY=VALUE`, or any bytes: the kernel does not parse
    /// them).
    pub fn env(mut self, kv: impl Into<Vec<u8>>) -> Self {
        self.envp.push(kv.into());
        self
    }

    /// Appends environment strings.
    pub fn envs<A: Into<Vec<u8>>>(mut self, envs: impl IntoIterator<Item = A>) -> Self {
        self.envp.extend(envs.into_iter().map(Into::into));
        self
    }

    /// Appends the calling process's environment, in its order, bytes as they are.
    #[cfg(all(feature = "std", unix))]
    pub fn host_env(mut self) -> Self {
        use std::os::unix::ffi::OsStrExt;
        for (k, v) in std::env::vars_os() {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            self.envp.push(kv);
        }
        self
    }

    /// The working directory: a path inside the filesystem, resolved by [`build`](Self::build)
    /// with the profile's credentials (default: the root).
    pub fn cwd(mut self, path: impl Into<Vec<u8>>) -> Self {
        self.cwd = Some(path.into());
        self
    }

    /// `AT_SYMLINK_NOFOLLOW`: a final symlink is ELOOP.
    pub fn no_follow(mut self, no_follow: bool) -> Self {
        self.no_follow = no_follow;
        self
    }

    /// Adds a binfmt_misc rule, newer than those added before.
    pub fn misc_rule(mut self, rule: Rule) -> Self {
        self.misc_rules.push(rule);
        self
    }

    /// The 16 AT_RANDOM bytes (default: drawn from the RNG given to [`plan()`]).
    pub fn random_bytes(mut self, bytes: [u8; 16]) -> Self {
        self.random_bytes = Some(bytes);
        self
    }

    /// Appends an auxv pair before AT_NULL.
    pub fn extra_auxv(mut self, key: u64, value: u64) -> Self {
        self.extra_auxv.push((key, value));
        self
    }

    /// The descriptor number a binfmt_misc `O`/`C` rule would install (default 3).
    pub fn execfd(mut self, fd: u64) -> Self {
        self.execfd = fd;
        self
    }

    /// The request, with its working directory resolved in `fs` from the root.
    ///
    /// # Errors
    /// [`Error::Path`] for a working directory that does not resolve to a directory the
    /// profile's credentials may search: the error (and errno) the exec of a relative path
    /// would meet there.
    pub fn build<F: FileSystem + ?Sized>(
        self,
        fs: &F,
        profile: &Profile,
    ) -> Result<LoadRequest<F::Node>> {
        let cwd = match &self.cwd {
            Some(path) => {
                let root = DirPath::root(fs.root());
                Some(
                    resolve::resolve_dir(fs, &profile.credentials, &root, path)
                        .map_err(|e| path_err(path, e))?,
                )
            }
            None => None,
        };
        let mut argv = Vec::with_capacity(self.args.len().saturating_add(1));
        argv.push(self.argv0.unwrap_or_else(|| self.path.clone()));
        argv.extend(self.args);
        Ok(LoadRequest {
            executable: Executable::Path(self.path),
            argv: Some(argv),
            envp: self.envp,
            cwd,
            no_follow: self.no_follow,
            misc_rules: self.misc_rules,
            random_bytes: self.random_bytes,
            extra_auxv: self.extra_auxv,
            execfd: self.execfd,
        })
    }
}

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

fn path_err(path: &[u8], problem: PathProblem) -> Error {
    Error::Path {
        path: Bytes(path.to_vec()),
        problem,
    }
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
            found: resolve::open_exec(fs, creds, cwd, p, follow).map_err(|e| path_err(p, e))?,
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
                .map_err(|e| path_err(path, PathProblem::Filesystem(e)))?;
            let found = Found {
                links: Vec::new(),
                node: node.clone(),
                meta,
                path: path.clone(),
                name: name.clone(),
                parent: root.clone(),
            };
            resolve::check_exec(&found, creds).map_err(|e| path_err(path, e))?;
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
            let found =
                resolve::open_exec(fs, creds, dir, path, follow).map_err(|e| path_err(path, e))?;
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
        randomized: randomize,
        mmap_base: mm.mmap_base,
        bti: img.bti,
        stack,
        zero: mm.zero,
        files: mm.files,
    })
}
