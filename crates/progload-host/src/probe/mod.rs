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

//!
//! The module's parts: `image` (the request and outcome types), `child` (the forked child up
//! to its `execve`) and `ptrace` (the parent: fork, wait, read the image); the `/proc` parsers
//! are shared with the rest of the crate.

mod child;
mod image;
mod ptrace;

use std::io;

pub use self::image::{
    KernelImage, ProbeDirFd, ProbeExecveat, ProbeOutcome, ProbeRequest, X86Regs,
};
pub use crate::proc::{parse_auxv, parse_maps, parse_stat_mm, MapsLine, MmFields};

/// Whether [`probe`] is implemented for the machine this crate was built for
/// (x86_64, aarch64 and riscv64 Linux).
pub fn probe_native_supported() -> bool {
    cfg!(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64"
        )
    ))
}

/// Execute `req` under ptrace and report what the kernel did.
///
/// `Err` means the probe itself failed (bad request, fork/ptrace/`/proc` failure, or a
/// failure of the child's setup before `execve` such as `chdir`); the outcome of `execve`
/// itself is always an `Ok`. The child is killed and reaped before this returns, on every
/// path.
pub fn probe(req: &ProbeRequest) -> io::Result<ProbeOutcome> {
    ptrace::run_with(req, None, true, None)
}

/// [`probe`] through `execveat(2)`: `req.path` is the pathname argument (it may be empty, for
/// `AT_EMPTY_PATH`), resolved against `at.dirfd` as the kernel does; everything else in `req`
/// (argv, envp, cwd, stack limit, personality) applies as for [`probe`].
///
/// # Errors
/// As [`probe`].
#[doc(alias = "execveat")]
pub fn probe_execveat(req: &ProbeRequest, at: &ProbeExecveat<'_>) -> io::Result<ProbeOutcome> {
    ptrace::run_with(req, Some(at), true, None)
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
    ptrace::run_with(req, None, true, Some(limit))
}

/// Executes `req` under ptrace up to its first instruction and kills it, without reading the
/// image: the kernel's own exec cost, the reference row of the benchmarks. A successful exec
/// is reported as `Stopped` with an empty (default) image.
///
/// # Errors
/// As [`probe`].
pub fn exec_to_first_instruction(req: &ProbeRequest) -> io::Result<ProbeOutcome> {
    ptrace::run_with(req, None, false, None)
}
