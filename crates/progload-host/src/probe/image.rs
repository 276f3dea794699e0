//! What the probe takes and what it reports: the request, the `execveat` arguments, the
//! outcome and the image the kernel built.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use crate::proc::{MapsLine, MmFields};

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

/// The descriptor argument of `execveat(2)` for [`probe_execveat`](super::probe_execveat).
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

/// How [`probe_execveat`](super::probe_execveat) calls `execveat(dirfd, path, argv, envp, flags)`.
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

/// The process image the kernel built, read at the post-exec stop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelImage {
    /// x86_64's registers at the first instruction (all zero on other architectures: see
    /// [`Self::registers`]).
    pub regs: X86Regs,
    /// The registers at the first instruction, named as the architecture's
    /// `struct user_regs_struct` names them (x86_64 `rip`, `rsp`, `rflags`, ...; aarch64
    /// `x0`..`x30`, `sp`, `pc`, `pstate`; riscv64 `pc`, `ra`, `sp`, ...), in its order.
    pub registers: Vec<(String, u64)>,
    /// The program counter at the first instruction.
    pub pc: u64,
    /// The stack pointer at the first instruction.
    pub sp: u64,
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
    /// `/proc/PID/comm` without the trailing newline (the bytes the task holds).
    pub comm: Vec<u8>,
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
    /// The bytes of the `[vdso]` mapping, when it has one (not kept in records).
    pub vdso_image: Option<Vec<u8>>,
}

impl KernelImage {
    /// The register named `name` (see [`Self::registers`]).
    pub fn register(&self, name: &str) -> Option<u64> {
        self.registers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// The value of the first auxv entry of type `key`.
    pub fn auxv_get(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v)
    }

    /// The `[stack]` mapping.
    pub fn stack_mapping(&self) -> Option<&MapsLine> {
        self.maps.iter().find(|m| m.path == b"[stack]")
    }

    /// The mapping containing `addr`.
    pub fn mapping_at(&self, addr: u64) -> Option<&MapsLine> {
        self.maps.iter().find(|m| m.contains(addr))
    }

    /// The bytes of `stack_bytes` at the stack address `addr` onwards, if `addr` is in
    /// `[rsp, stack_top)`.
    pub fn stack_slice(&self, addr: u64) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.sp)?).ok()?;
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
