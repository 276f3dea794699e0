//! Kernel probe: exec a program under ptrace and read the image the kernel built.
//!
//! [`probe`] forks, lets the child `execve` the requested program with `PTRACE_TRACEME` in
//! effect, and catches it at the `SIGTRAP` the kernel raises once a traced task has completed
//! `execve` — i.e. before the first user-space instruction of the new image has run. The parent
//! then reads the registers, `/proc/PID/{maps,auxv,stat,comm,exe}` and the initial stack, kills
//! the child and reaps it.
//!
//! This is the *oracle* the planner in the core crate is compared against, so it deliberately
//! shares none of the core crate's types.
//!
//! [`probe_execveat`] does the same through `execveat(2)`, with a descriptor (`AT_FDCWD`, one
//! the caller holds, close-on-exec or not, or a raw number) and the flags word passed as given.
//!
//! Caveats of the method (all documented kernel behaviour):
//! - A traced exec never raises privileges (`LSM_UNSAFE_PTRACE`): set-id bits are ignored and
//!   `AT_SECURE` is whatever a non-set-id exec would give.
//! - The child inherits the caller's credentials, umask, open non-close-on-exec descriptors and
//!   ignored signals except `SIGPIPE`, which is reset to its default (as `std::process` does);
//!   its signal mask is cleared.

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

/// What to execute and in which environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeRequest {
    /// The path string passed to `execve`, exactly (a relative path stays relative and is
    /// resolved against `cwd`).
    pub path: Vec<u8>,
    /// The argument vector; `None` passes a NULL `argv` pointer to `execve`.
    pub argv: Option<Vec<Vec<u8>>>,
    /// The environment strings (`"NAME=value"`, but any bytes without NUL are accepted).
    pub envp: Vec<Vec<u8>>,
    /// Directory the child changes into before `execve`.
    pub cwd: Option<PathBuf>,
    /// `RLIMIT_STACK` soft limit for the child: `None` inherits the caller's limit,
    /// `Some(None)` is `RLIM_INFINITY`, `Some(Some(bytes))` a finite limit. The hard limit is
    /// raised when needed (this requires `CAP_SYS_RESOURCE`).
    pub stack_rlimit: Option<Option<u64>>,
    /// Add `ADDR_NO_RANDOMIZE` to the child's personality (other personality bits are kept).
    pub no_randomize: bool,
    /// Other bits added to the child's personality (e.g. `MMAP_PAGE_ZERO`,
    /// `ADDR_COMPAT_LAYOUT`, `READ_IMPLIES_EXEC`); 0 adds none.
    pub personality: u32,
    /// The credentials the child takes just before `execve` (after `chdir`): supplementary
    /// groups, real and effective gid and uid (each saved id set to the effective one), and
    /// `PR_SET_NO_NEW_PRIVS`. `None` keeps the caller's. Needs `CAP_SETUID`/`CAP_SETGID`.
    pub credentials: Option<progload::profile::Credentials>,
}

impl ProbeRequest {
    /// A request for `path` with `argv = [path]`, an empty environment and everything else
    /// inherited.
    pub fn new(path: impl AsRef<[u8]>) -> Self {
        let path = path.as_ref().to_vec();
        ProbeRequest {
            argv: Some(vec![path.clone()]),
            path,
            ..ProbeRequest::default()
        }
    }
}

/// The descriptor argument of `execveat(2)` for [`probe_execveat`].
#[derive(Debug, Clone, Copy)]
pub enum ProbeDirFd<'a> {
    /// `AT_FDCWD`.
    Cwd,
    /// A descriptor the caller holds open. The child inherits it under the same number
    /// (which is what `/dev/fd/N` in `AT_EXECFN` shows) and sets its close-on-exec flag to
    /// `cloexec` just before the exec; the caller's own flag is left alone.
    Fd {
        /// The descriptor.
        fd: BorrowedFd<'a>,
        /// Whether it is close-on-exec in the child when `execveat` runs.
        cloexec: bool,
    },
    /// A raw number passed unchanged, e.g. one that is not open (`EBADF`) or `-1`.
    Raw(i32),
}

/// How [`probe_execveat`] calls `execveat(dirfd, path, argv, envp, flags)`.
#[derive(Debug, Clone, Copy)]
pub struct ProbeExecveat<'a> {
    /// The descriptor argument.
    pub dirfd: ProbeDirFd<'a>,
    /// The flags argument, passed unchanged (`AT_EMPTY_PATH`, `AT_SYMLINK_NOFOLLOW`, or
    /// anything else, to see the kernel reject it).
    pub flags: i32,
}

/// The result of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum ProbeOutcome {
    /// `execve` succeeded; the image as the kernel built it, before its first instruction.
    Stopped(KernelImage),
    /// `execve` returned an error (before the point of no return); the caller kept running.
    Refused {
        /// The `errno` `execve` failed with.
        errno: i32,
    },
    /// The child was killed (or stopped) by a signal before reaching the post-exec stop,
    /// e.g. the fatal `SIGSEGV` the kernel sends when loading fails after the point of no
    /// return.
    Killed {
        /// The signal number.
        signal: i32,
    },
}

/// x86_64 general-purpose registers as returned by `PTRACE_GETREGS`
/// (`struct user_regs_struct`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct X86Regs {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub cs: u64,
    pub ss: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The syscall number slot (`-1` as `u64` when not in a syscall).
    pub orig_rax: u64,
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapsLine {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions as printed, e.g. `"r-xp"`.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// Device as printed, e.g. `"fe:00"`.
    pub dev: String,
    /// Inode number (0 for anonymous mappings).
    pub inode: u64,
    /// Path or pseudo-name (`"[stack]"`, `"[vdso]"`, ...); `""` for anonymous mappings.
    pub path: String,
}

impl MapsLine {
    /// `end - start`.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the mapping is empty (never true for lines the kernel prints).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `addr` lies in `[start, end)`.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// The `mm_struct` fields visible in `/proc/PID/stat`, plus `brk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmFields {
    /// Field 26 `startcode`.
    pub start_code: u64,
    /// Field 27 `endcode`.
    pub end_code: u64,
    /// Field 28 `startstack`.
    pub start_stack: u64,
    /// Field 45 `start_data`.
    pub start_data: u64,
    /// Field 46 `end_data`.
    pub end_data: u64,
    /// Field 47 `start_brk`.
    pub start_brk: u64,
    /// Field 48 `arg_start`.
    pub arg_start: u64,
    /// Field 49 `arg_end`.
    pub arg_end: u64,
    /// Field 50 `env_start`.
    pub env_start: u64,
    /// Field 51 `env_end`.
    pub env_end: u64,
    /// The current program break, obtained by making the stopped child execute `brk(0)`;
    /// `None` when that was not possible (non-x86_64 code segment, `/proc/PID/mem` not
    /// writable, ...).
    pub brk: Option<u64>,
}

/// The process image the kernel built, read at the post-exec stop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelImage {
    /// Registers at the first instruction.
    pub regs: X86Regs,
    /// `/proc/PID/maps`, in order.
    pub maps: Vec<MapsLine>,
    /// `/proc/PID/auxv` as `(type, value)` pairs, including the terminating `(0, 0)`.
    pub auxv: Vec<(u64, u64)>,
    /// End address of the `[stack]` mapping.
    pub stack_top: u64,
    /// Memory from `regs.rsp` up to `stack_top`.
    pub stack_bytes: Vec<u8>,
    /// `mm_struct` fields.
    pub mm: MmFields,
    /// `/proc/PID/comm` without the trailing newline.
    pub comm: String,
    /// `readlink /proc/PID/exe`.
    pub exe: PathBuf,
    /// `/proc/PID/status` `Uid:`: real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
    /// `/proc/PID/status` `Gid:`: real, effective, saved and filesystem gid.
    pub gids: [u32; 4],
    /// `/proc/PID/status` `NoNewPrivs:`.
    pub no_new_privs: bool,
    /// `/proc/PID/personality`.
    pub personality: u32,
}

impl KernelImage {
    /// The value of the first auxv entry of type `key`.
    pub fn auxv_get(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v)
    }

    /// The `[stack]` mapping.
    pub fn stack_mapping(&self) -> Option<&MapsLine> {
        self.maps.iter().find(|m| m.path == "[stack]")
    }

    /// The mapping containing `addr`.
    pub fn mapping_at(&self, addr: u64) -> Option<&MapsLine> {
        self.maps.iter().find(|m| m.contains(addr))
    }

    /// The bytes of `stack_bytes` at the stack address `addr` onwards, if `addr` is in
    /// `[rsp, stack_top)`.
    pub fn stack_slice(&self, addr: u64) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.regs.rsp)?).ok()?;
        self.stack_bytes.get(off..)
    }

    /// The little-endian word at stack address `addr`.
    pub fn stack_word(&self, addr: u64) -> Option<u64> {
        let b = self.stack_slice(addr)?.get(..8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// The NUL-terminated string at stack address `addr` (without the NUL).
    pub fn stack_cstr(&self, addr: u64) -> Option<&[u8]> {
        let s = self.stack_slice(addr)?;
        let n = s.iter().position(|&b| b == 0)?;
        Some(&s[..n])
    }
}

/// Whether [`probe`] is implemented for the machine this crate was built for
/// (x86_64 Linux).
pub fn probe_native_supported() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
}

/// Execute `req` under ptrace and report what the kernel did.
///
/// `Err` means the probe itself failed (bad request, fork/ptrace/`/proc` failure, or a
/// failure of the child's setup before `execve` such as `chdir`); the outcome of `execve`
/// itself is always an `Ok`. The child is killed and reaped before this returns, on every
/// path.
pub fn probe(req: &ProbeRequest) -> io::Result<ProbeOutcome> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::probe(req)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = req;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel probe is only implemented for x86_64 Linux",
        ))
    }
}

/// [`probe`] through `execveat(2)`: `req.path` is the pathname argument (it may be empty, for
/// `AT_EMPTY_PATH`), resolved against `at.dirfd` as the kernel does; everything else in `req`
/// (argv, envp, cwd, stack limit, personality) applies as for [`probe`].
///
/// # Errors
/// As [`probe`].
#[doc(alias = "execveat")]
pub fn probe_execveat(req: &ProbeRequest, at: &ProbeExecveat<'_>) -> io::Result<ProbeOutcome> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::run_with(req, Some(at), true)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = (req, at);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel probe is only implemented for x86_64 Linux",
        ))
    }
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Runs `attempt` until its outcome is something else than `Refused { errno: ETXTBSY }`, at
/// most 50 times, 20 ms apart. A file this process has just written can be open for writing,
/// for an instant, in a child that another thread forked meanwhile, and the kernel refuses to
/// exec a file open for writing; that refusal is transient. A file that stays busy is still
/// reported as ETXTBSY.
///
/// # Errors
/// The first error of `attempt`.
pub fn retry_busy<E>(
    mut attempt: impl FnMut() -> Result<ProbeOutcome, E>,
) -> Result<ProbeOutcome, E> {
    let mut outcome = attempt()?;
    for _ in 0..50 {
        if !matches!(
            outcome,
            ProbeOutcome::Refused {
                errno: libc::ETXTBSY
            }
        ) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        outcome = attempt()?;
    }
    Ok(outcome)
}

thread_local! {
    static DEADLINE: std::cell::Cell<Option<std::time::Duration>> = const { std::cell::Cell::new(None) };
}

/// [`probe`] bounded in time: a child that neither reaches its first instruction nor fails
/// within `limit` is killed, and the probe reports `Killed { signal: SIGKILL }` (a sweep
/// counts it as timed out).
///
/// # Errors
/// As [`probe`].
pub fn probe_with_timeout(
    req: &ProbeRequest,
    limit: std::time::Duration,
) -> io::Result<ProbeOutcome> {
    DEADLINE.with(|d| d.set(Some(limit)));
    let r = probe(req);
    DEADLINE.with(|d| d.set(None));
    r
}

/// Executes `req` under ptrace up to its first instruction and kills it, without reading the
/// image: the kernel's own exec cost, the reference row of the benchmarks. A successful exec
/// is reported as `Stopped` with an empty (default) image.
///
/// # Errors
/// As [`probe`].
pub fn exec_to_first_instruction(req: &ProbeRequest) -> io::Result<ProbeOutcome> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::run(req, false)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = req;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "x86_64 Linux only",
        ))
    }
}

/// Parse the text of `/proc/PID/maps`.
pub fn parse_maps(text: &str) -> io::Result<Vec<MapsLine>> {
    fn token(s: &str) -> (&str, &str) {
        let s = s.trim_start_matches(' ');
        match s.find(' ') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    }
    let hex = |s: &str, line: &str| {
        u64::from_str_radix(s, 16).map_err(|_| invalid_data(format!("bad maps line: {line:?}")))
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (range, rest) = token(line);
        let (perms, rest) = token(rest);
        let (offset, rest) = token(rest);
        let (dev, rest) = token(rest);
        let (inode, rest) = token(rest);
        let (start, end) = range
            .split_once('-')
            .ok_or_else(|| invalid_data(format!("bad maps line: {line:?}")))?;
        out.push(MapsLine {
            start: hex(start, line)?,
            end: hex(end, line)?,
            perms: perms.to_string(),
            offset: hex(offset, line)?,
            dev: dev.to_string(),
            inode: inode
                .parse()
                .map_err(|_| invalid_data(format!("bad maps line: {line:?}")))?,
            path: rest.trim_start_matches(' ').to_string(),
        });
    }
    Ok(out)
}

/// Parse the bytes of `/proc/PID/auxv` (native-endian 64-bit pairs) up to and including the
/// terminating `(0, 0)`; one is appended if the data lacks it.
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    let mut out = Vec::new();
    for pair in bytes.chunks_exact(16) {
        let (k, v) = (word(&pair[..8]), word(&pair[8..]));
        out.push((k, v));
        if k == 0 {
            return out;
        }
    }
    out.push((0, 0));
    out
}

/// Parse the `mm_struct` fields out of the text of `/proc/PID/stat` (`brk` is left `None`).
pub fn parse_stat_mm(text: &str) -> io::Result<MmFields> {
    // The command name (field 2) is in parentheses and may contain anything, so fields are
    // counted from after the *last* ')'. The first field after it is field 3.
    let close = text
        .rfind(')')
        .ok_or_else(|| invalid_data(format!("bad stat line: {text:?}")))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid_data(format!("stat field {n} missing in {text:?}")))
    };
    Ok(MmFields {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        brk: None,
    })
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::{
        cstring, invalid_data, parse_auxv, parse_maps, parse_stat_mm, KernelImage, ProbeDirFd,
        ProbeExecveat, ProbeOutcome, ProbeRequest, X86Regs,
    };
    use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use rustix::io::Errno;
    use rustix::pipe::{pipe_with, PipeFlags};
    use rustix::process::{
        chdir, getrlimit, kill_process, setrlimit, waitpid, Pid, Resource, Rlimit, Signal,
        WaitOptions, WaitStatus,
    };
    use std::ffi::{c_char, CStr, CString};
    use std::fs::File;
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileExt;
    use std::ptr;

    /// Stages of the child's setup, reported through the error pipe with the errno.
    #[derive(Clone, Copy)]
    #[repr(i32)]
    enum Stage {
        Execve = 0,
        SignalMask = 1,
        Personality = 2,
        StackRlimit = 3,
        Chdir = 4,
        TraceMe = 5,
        DirFdFlags = 6,
        Credentials = 7,
    }

    fn stage_name(stage: i32) -> &'static str {
        match stage {
            0 => "execve",
            1 => "sigprocmask",
            2 => "personality",
            3 => "setrlimit(RLIMIT_STACK)",
            4 => "chdir",
            5 => "ptrace(PTRACE_TRACEME)",
            6 => "fcntl(F_SETFD) on the execveat descriptor",
            7 => "setting the credentials (setgroups, setresgid, setresuid, no_new_privs)",
            _ => "unknown stage",
        }
    }

    /// Everything the child needs, prepared before `fork` so the child never allocates.
    struct ChildPlan<'a> {
        path: &'a CStr,
        /// NULL or a NULL-terminated array of pointers into live `CString`s.
        argv: *const *const c_char,
        /// A NULL-terminated array of pointers into live `CString`s.
        envp: *const *const c_char,
        cwd: Option<&'a CStr>,
        stack_rlimit: Option<Option<u64>>,
        /// Bits to add to the personality.
        personality: u32,
        /// The credentials to take before the exec.
        credentials: Option<ChildCredentials>,
        empty_mask: libc::sigset_t,
        report: BorrowedFd<'a>,
        /// `None`: `execve(path)`; `Some`: `execveat(dirfd, path, ..., flags)`.
        execveat: Option<ChildExecveat>,
    }

    /// The credentials to take, as plain numbers and a pointer to the groups.
    #[derive(Clone, Copy)]
    struct ChildCredentials {
        /// Whether the ids and groups differ from this process's (else only no_new_privs is
        /// set, which needs no privilege).
        change_ids: bool,
        uid: libc::uid_t,
        euid: libc::uid_t,
        gid: libc::gid_t,
        egid: libc::gid_t,
        groups: *const libc::gid_t,
        ngroups: usize,
        no_new_privs: bool,
    }

    /// The `execveat` arguments, as plain numbers.
    #[derive(Clone, Copy)]
    struct ChildExecveat {
        dirfd: i32,
        /// `Some(cloexec)`: set the descriptor's close-on-exec flag to this first.
        set_cloexec: Option<bool>,
        flags: i32,
    }

    /// Runs in the forked child: only async-signal-safe system calls, no allocation, no
    /// unwinding, never returns.
    fn child_main(plan: &ChildPlan<'_>) -> ! {
        fn fail(report: BorrowedFd<'_>, stage: Stage, errno: i32) -> ! {
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&(stage as i32).to_ne_bytes());
            msg[4..].copy_from_slice(&errno.to_ne_bytes());
            // A short or failed write leaves the parent with an incomplete message, which it
            // reports as an error; nothing better can be done here.
            let _ = rustix::io::write(report, &msg);
            // SAFETY: `_exit` terminates the process immediately without running atexit
            // handlers or destructors, which is exactly what a forked child of a possibly
            // multi-threaded process must do.
            unsafe { libc::_exit(127) }
        }
        fn last_errno() -> i32 {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        }
        let report = plan.report;

        // SAFETY: `empty_mask` is an initialised sigset (sigemptyset ran before fork) and the
        // old-mask pointer may be NULL. sigprocmask is async-signal-safe.
        if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &plan.empty_mask, ptr::null_mut()) } != 0 {
            fail(report, Stage::SignalMask, last_errno());
        }
        // SAFETY: resetting a disposition to SIG_DFL has no memory-safety requirements; the
        // Rust runtime ignores SIGPIPE and ignored dispositions survive execve.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };

        if plan.personality != 0 {
            // SAFETY: personality(0xffffffff) only queries the persona; it takes no pointers.
            let cur = unsafe { libc::personality(0xffff_ffff) };
            if cur == -1 {
                fail(report, Stage::Personality, last_errno());
            }
            let new = (cur as u32 | plan.personality) as libc::c_ulong;
            // SAFETY: setting the persona takes no pointers; the value keeps all current bits.
            if unsafe { libc::personality(new) } == -1 {
                fail(report, Stage::Personality, last_errno());
            }
        }

        if let Some(soft) = plan.stack_rlimit {
            let cur = getrlimit(Resource::Stack);
            // Raise the hard limit only when the new soft limit would exceed it.
            let maximum = match (soft, cur.maximum) {
                (_, None) => None,
                (None, Some(_)) => None,
                (Some(s), Some(h)) => Some(s.max(h)),
            };
            let new = Rlimit {
                current: soft,
                maximum,
            };
            if let Err(e) = setrlimit(Resource::Stack, new) {
                fail(report, Stage::StackRlimit, e.raw_os_error());
            }
        }

        if let Some(dir) = plan.cwd {
            if let Err(e) = chdir(dir) {
                fail(report, Stage::Chdir, e.raw_os_error());
            }
        }

        if let Some(ChildExecveat {
            dirfd,
            set_cloexec: Some(cloexec),
            ..
        }) = plan.execveat
        {
            let flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
            // SAFETY: F_SETFD takes an integer argument and no memory; `dirfd` is a descriptor
            // the parent holds open (the child inherited it), and this only changes the child's
            // own descriptor-table entry. fcntl is async-signal-safe.
            if unsafe { libc::fcntl(dirfd, libc::F_SETFD, flags) } == -1 {
                fail(report, Stage::DirFdFlags, last_errno());
            }
        }

        // SAFETY: PTRACE_TRACEME ignores the remaining arguments; no memory is passed.
        if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, ptr::null_mut::<libc::c_void>(), 0) }
            == -1
        {
            fail(report, Stage::TraceMe, last_errno());
        }

        if let Some(c) = plan.credentials.filter(|c| c.change_ids) {
            // After PTRACE_TRACEME, whose tracer credentials are the caller's at that moment
            // (root): a tracer without CAP_SYS_PTRACE would make the kernel downgrade a set-id
            // exec, which a plan does not model. Groups first and uids last: dropping uid 0
            // takes away the right to change groups.
            // SAFETY: `groups` points to `ngroups` gids in a `Vec` owned by the parent's stack
            // frame, which the child's copy of memory still holds; setgroups only reads them.
            // The raw syscalls (here and below) bypass glibc's all-threads setxid machinery.
            if unsafe { libc::syscall(libc::SYS_setgroups, c.ngroups, c.groups) } == -1 {
                fail(report, Stage::Credentials, last_errno());
            }
            // SAFETY: plain integer arguments; the raw syscalls set only this thread's ids,
            // which is the whole process here (the forked child has one thread).
            let r = unsafe { libc::syscall(libc::SYS_setresgid, c.gid, c.egid, c.egid) };
            if r == -1 {
                fail(report, Stage::Credentials, last_errno());
            }
            // SAFETY: as for setresgid.
            let r = unsafe { libc::syscall(libc::SYS_setresuid, c.uid, c.euid, c.euid) };
            if r == -1 {
                fail(report, Stage::Credentials, last_errno());
            }
        }
        if plan.credentials.is_some_and(|c| c.no_new_privs) {
            let zero: libc::c_ulong = 0;
            // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only (full-width zeros:
            // the kernel refuses stray upper bits in the unused ones).
            if unsafe {
                libc::prctl(
                    libc::PR_SET_NO_NEW_PRIVS,
                    1 as libc::c_ulong,
                    zero,
                    zero,
                    zero,
                )
            } == -1
            {
                fail(report, Stage::Credentials, last_errno());
            }
        }

        // The pointers below: `path` is a NUL-terminated string and `argv`/`envp` are NULL or
        // NULL-terminated arrays of pointers to NUL-terminated strings; all of them are owned by
        // the parent's stack frame, which the forked child's copy of memory still contains and
        // which nothing in the child frees. The raw syscalls are used so that a NULL argv
        // reaches the kernel unchanged.
        match plan.execveat {
            // SAFETY: see above; execve takes no other memory.
            None => unsafe {
                libc::syscall(libc::SYS_execve, plan.path.as_ptr(), plan.argv, plan.envp)
            },
            // SAFETY: see above; execveat's descriptor and flags are plain integers.
            Some(at) => unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    at.dirfd,
                    plan.path.as_ptr(),
                    plan.argv,
                    plan.envp,
                    at.flags,
                )
            },
        };
        fail(report, Stage::Execve, last_errno())
    }

    /// Owns the child's pid: kills and reaps it when dropped unless it was already reaped.
    struct ChildGuard {
        pid: Pid,
        reaped: bool,
    }

    impl ChildGuard {
        /// `waitpid` for this child, retrying on EINTR. Marks the child reaped when the status
        /// says it is gone.
        fn wait(&mut self) -> io::Result<WaitStatus> {
            loop {
                match waitpid(Some(self.pid), WaitOptions::empty()) {
                    Ok(Some((_, status))) => {
                        if status.exited() || status.signaled() {
                            self.reaped = true;
                        }
                        return Ok(status);
                    }
                    Ok(None) => continue,
                    Err(Errno::INTR) => continue,
                    Err(e) => {
                        if e == Errno::CHILD {
                            self.reaped = true;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
    }

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            if self.reaped {
                return;
            }
            // SIGKILL ends the child whether it is running, ptrace-stopped or anywhere in
            // between, so the loop below terminates.
            let _ = kill_process(self.pid, Signal::KILL);
            while !self.reaped {
                if self.wait().is_err() {
                    break;
                }
            }
        }
    }

    fn ptrace_getregs(pid: Pid) -> io::Result<libc::user_regs_struct> {
        // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our ptrace-stopped tracee and `regs` is a writable
        // user_regs_struct, exactly what PTRACE_GETREGS writes.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                pid.as_raw_nonzero().get(),
                ptr::null_mut::<libc::c_void>(),
                &mut regs as *mut libc::user_regs_struct,
            )
        };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(regs)
    }

    fn ptrace_setregs(pid: Pid, regs: &libc::user_regs_struct) -> io::Result<()> {
        // SAFETY: `pid` is our ptrace-stopped tracee and `regs` points to a valid
        // user_regs_struct that PTRACE_SETREGS only reads.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGS,
                pid.as_raw_nonzero().get(),
                ptr::null_mut::<libc::c_void>(),
                regs as *const libc::user_regs_struct,
            )
        };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn to_regs(r: &libc::user_regs_struct) -> X86Regs {
        X86Regs {
            rip: r.rip,
            rsp: r.rsp,
            rflags: r.eflags,
            cs: r.cs,
            ss: r.ss,
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            orig_rax: r.orig_rax,
        }
    }

    pub(super) fn probe(req: &ProbeRequest) -> io::Result<ProbeOutcome> {
        run(req, true)
    }

    /// Whether `c`'s ids or groups differ from this process's.
    fn ids_differ(c: &progload::profile::Credentials) -> bool {
        use rustix::process::{getegid, geteuid, getgid, getgroups, getuid};
        let mut groups: Vec<u32> = getgroups()
            .map(|g| g.iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        let mut want = c.groups.clone();
        groups.sort_unstable();
        groups.dedup();
        want.sort_unstable();
        want.dedup();
        (
            getuid().as_raw(),
            geteuid().as_raw(),
            getgid().as_raw(),
            getegid().as_raw(),
        ) != (c.uid, c.euid, c.gid, c.egid)
            || groups != want
    }

    /// Runs the exec; with `read`, reads the image at the first instruction, else only
    /// reaches it (the kernel's exec cost, for benchmarks: `Stopped` is then reported with an
    /// empty image).
    pub(super) fn run(req: &ProbeRequest, read: bool) -> io::Result<ProbeOutcome> {
        run_with(req, None, read)
    }

    /// [`run`], through `execveat` when `at` is given.
    pub(super) fn run_with(
        req: &ProbeRequest,
        at: Option<&ProbeExecveat<'_>>,
        read: bool,
    ) -> io::Result<ProbeOutcome> {
        if req.credentials.as_ref().is_some_and(ids_differ) {
            // Taking other ids needs CAP_SETUID/CAP_SETGID, and without CAP_SYS_PTRACE the
            // kernel would see an unprivileged tracer and downgrade set-id execs.
            const NEEDED: u64 = (1 << 6) | (1 << 7) | (1 << 19);
            let status = std::fs::read_to_string("/proc/thread-self/status")?;
            let eff = status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0);
            if eff & NEEDED != NEEDED {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "probing with other credentials needs CAP_SETUID, CAP_SETGID and CAP_SYS_PTRACE",
                ));
            }
        }
        // Everything the child touches is built here, before fork.
        let path = cstring(&req.path, "path")?;
        let argv: Option<Vec<CString>> = match &req.argv {
            None => None,
            Some(v) => Some(
                v.iter()
                    .map(|a| cstring(a, "argument"))
                    .collect::<io::Result<_>>()?,
            ),
        };
        let envp: Vec<CString> = req
            .envp
            .iter()
            .map(|e| cstring(e, "environment string"))
            .collect::<io::Result<_>>()?;
        let cwd = match &req.cwd {
            None => None,
            Some(d) => Some(cstring(d.as_os_str().as_bytes(), "cwd")?),
        };
        let argv_ptrs: Option<Vec<*const c_char>> = argv.as_ref().map(|v| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(ptr::null()))
                .collect()
        });
        let envp_ptrs: Vec<*const c_char> = envp
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(ptr::null()))
            .collect();
        // SAFETY: sigset_t is plain old data; sigemptyset fully initialises it.
        let mut empty_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `empty_mask` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut empty_mask) };

        let (report_rd, report_wr): (OwnedFd, OwnedFd) = pipe_with(PipeFlags::CLOEXEC)?;
        let plan = ChildPlan {
            path: &path,
            argv: argv_ptrs.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
            envp: envp_ptrs.as_ptr(),
            cwd: cwd.as_deref(),
            stack_rlimit: req.stack_rlimit,
            personality: req.personality
                | if req.no_randomize {
                    libc::ADDR_NO_RANDOMIZE as u32
                } else {
                    0
                },
            credentials: req.credentials.as_ref().map(|c| ChildCredentials {
                change_ids: ids_differ(c),
                uid: c.uid,
                euid: c.euid,
                gid: c.gid,
                egid: c.egid,
                groups: c.groups.as_ptr(),
                ngroups: c.groups.len(),
                no_new_privs: c.no_new_privs,
            }),
            empty_mask,
            report: report_wr.as_fd(),
            execveat: at.map(|at| {
                let (dirfd, set_cloexec) = match at.dirfd {
                    ProbeDirFd::Cwd => (libc::AT_FDCWD, None),
                    ProbeDirFd::Fd { fd, cloexec } => (fd.as_raw_fd(), Some(cloexec)),
                    ProbeDirFd::Raw(n) => (n, None),
                };
                ChildExecveat {
                    dirfd,
                    set_cloexec,
                    flags: at.flags,
                }
            }),
        };

        // SAFETY: fork has no memory-safety preconditions. The child only runs `child_main`,
        // which uses async-signal-safe system calls on data prepared above and ends in
        // execve or _exit, so the usual fork-in-a-threaded-process hazards (locks held by
        // other threads, allocator state) cannot be hit.
        let raw = unsafe { libc::fork() };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        if raw == 0 {
            child_main(&plan);
        }
        let mut child = ChildGuard {
            pid: Pid::from_raw(raw).expect("fork returned a positive pid"),
            reaped: false,
        };
        drop(report_wr);

        // With a deadline (probe_with_timeout), a watchdog kills the child through a pidfd
        // (immune to pid reuse) if it has not stopped or exited in time.
        let watchdog = super::DEADLINE.with(|d| d.get()).and_then(|limit| {
            let pidfd =
                rustix::process::pidfd_open(child.pid, rustix::process::PidfdFlags::empty())
                    .ok()?;
            let done =
                std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
            let flag = done.clone();
            let handle = std::thread::spawn(move || {
                let (lock, cvar) = &*flag;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, timeout) = cvar
                    .wait_timeout_while(guard, limit, |finished| !*finished)
                    .unwrap_or_else(|e| e.into_inner());
                if timeout.timed_out() && !*guard {
                    let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
                }
            });
            Some((done, handle))
        });
        let status = child.wait();
        if let Some((done, handle)) = watchdog {
            *done.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            done.1.notify_all();
            let _ = handle.join();
        }
        let status = status?;
        if let Some(sig) = status.stopping_signal() {
            if sig != libc::SIGTRAP {
                return Ok(ProbeOutcome::Killed { signal: sig });
            }
            let image = if read {
                read_image(&mut child)?
            } else {
                KernelImage::default()
            };
            return Ok(ProbeOutcome::Stopped(image));
        }
        if let Some(sig) = status.terminating_signal() {
            return Ok(ProbeOutcome::Killed { signal: sig });
        }
        // The child exited: it must have reported why through the pipe.
        let mut msg = [0u8; 8];
        let mut got = 0;
        while got < msg.len() {
            match rustix::io::read(&report_rd, &mut msg[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if got != msg.len() {
            return Err(io::Error::other(format!(
                "probe child exited ({status:?}) without reporting an execve error"
            )));
        }
        let stage = i32::from_ne_bytes(msg[..4].try_into().expect("4 bytes"));
        let errno = i32::from_ne_bytes(msg[4..].try_into().expect("4 bytes"));
        if stage == Stage::Execve as i32 {
            return Ok(ProbeOutcome::Refused { errno });
        }
        let err = io::Error::from_raw_os_error(errno);
        Err(io::Error::new(
            err.kind(),
            format!("probe child setup failed in {}: {err}", stage_name(stage)),
        ))
    }

    fn read_image(child: &mut ChildGuard) -> io::Result<KernelImage> {
        let pid = child.pid;
        let proc_dir = format!("/proc/{}", pid.as_raw_nonzero());
        let proc = |name: &str| format!("{proc_dir}/{name}");

        let raw_regs = ptrace_getregs(pid)?;
        let regs = to_regs(&raw_regs);
        let maps = parse_maps(&std::fs::read_to_string(proc("maps"))?)?;
        let auxv = parse_auxv(&std::fs::read(proc("auxv"))?);
        let mut mm = parse_stat_mm(&std::fs::read_to_string(proc("stat"))?)?;
        let mut comm = std::fs::read_to_string(proc("comm"))?;
        if comm.ends_with('\n') {
            comm.pop();
        }
        let exe = std::fs::read_link(proc("exe"))?;
        let status = std::fs::read_to_string(proc("status"))?;
        let ids = |key: &str| -> io::Result<[u32; 4]> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .ok_or_else(|| invalid_data(format!("no {key} in status")))?;
            let v: Vec<u32> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid_data(format!("{key} {line:?}: {e}")))?;
            v.try_into()
                .map_err(|_| invalid_data(format!("{key} {line:?}: not 4 ids")))
        };
        let (uids, gids) = (ids("Uid:")?, ids("Gid:")?);
        let no_new_privs = status.lines().any(|l| {
            l.strip_prefix("NoNewPrivs:")
                .is_some_and(|v| v.trim() == "1")
        });
        let pers = std::fs::read_to_string(proc("personality"))?;
        let personality = u32::from_str_radix(pers.trim(), 16)
            .map_err(|e| invalid_data(format!("personality {pers:?}: {e}")))?;

        let stack = maps
            .iter()
            .find(|m| m.path == "[stack]")
            .ok_or_else(|| invalid_data("no [stack] mapping".into()))?;
        let stack_top = stack.end;
        if !(stack.start <= regs.rsp && regs.rsp <= stack_top) {
            return Err(invalid_data(format!(
                "rsp {:#x} outside [stack] {:#x}-{:#x}",
                regs.rsp, stack.start, stack.end
            )));
        }
        let len = usize::try_from(stack_top - regs.rsp)
            .map_err(|_| invalid_data("stack too large".into()))?;
        let mut stack_bytes = vec![0u8; len];
        let mem = File::open(proc("mem"))?;
        mem.read_exact_at(&mut stack_bytes, regs.rsp)?;
        drop(mem);

        // Last, because it runs code in the child.
        mm.brk = inject_brk0(child, &raw_regs, &proc("mem"));

        Ok(KernelImage {
            regs,
            maps,
            auxv,
            stack_top,
            stack_bytes,
            mm,
            comm,
            exe,
            uids,
            gids,
            no_new_privs,
            personality,
        })
    }

    /// Make the stopped child execute `brk(0)` (which returns the current break and changes
    /// nothing) by placing a `syscall` instruction at `rip` and single-stepping it; the
    /// original bytes and registers are restored afterwards. Any failure gives `None`.
    fn inject_brk0(
        child: &mut ChildGuard,
        regs: &libc::user_regs_struct,
        mem_path: &str,
    ) -> Option<u64> {
        let pid = child.pid;
        const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];
        const USER_CS_64: u64 = 0x33;
        if regs.cs != USER_CS_64 {
            // Not 64-bit code: `syscall` would not mean the same thing.
            return None;
        }
        let mem = File::options().read(true).write(true).open(mem_path).ok()?;
        let mut saved = [0u8; 2];
        mem.read_exact_at(&mut saved, regs.rip).ok()?;
        mem.write_all_at(&SYSCALL_INSN, regs.rip).ok()?;

        let result = (|| {
            let mut call = *regs;
            call.rax = libc::SYS_brk as u64;
            call.rdi = 0;
            call.orig_rax = u64::MAX;
            ptrace_setregs(pid, &call).ok()?;
            // SAFETY: `pid` is our ptrace-stopped tracee; SINGLESTEP takes no memory
            // arguments (data 0 = deliver no signal).
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_SINGLESTEP,
                    pid.as_raw_nonzero().get(),
                    ptr::null_mut::<libc::c_void>(),
                    ptr::null_mut::<libc::c_void>(),
                )
            };
            if r == -1 {
                return None;
            }
            let status = child.wait().ok()?;
            if status.stopping_signal() != Some(libc::SIGTRAP) {
                // Stopped by something else, or gone: the caller's guard deals with it.
                return None;
            }
            let after = ptrace_getregs(pid).ok()?;
            if after.rip != regs.rip + SYSCALL_INSN.len() as u64 {
                return None;
            }
            Some(after.rax)
        })();

        if child.reaped {
            return None;
        }
        // Best effort: the child is killed right after this anyway.
        let _ = mem.write_all_at(&saved, regs.rip);
        let _ = ptrace_setregs(pid, regs);
        result
    }
}
