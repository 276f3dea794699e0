//! The probe's child, from `fork` to `execve`: it sets up what the request asks for (signal
//! mask, personality, stack limit, cwd, tracer, credentials) with async-signal-safe system
//! calls only, on data prepared before the fork, and never allocates.

use std::ffi::CStr;
use std::os::fd::{BorrowedFd, RawFd};

use rustix::io::{Errno, FdFlags};
use rustix::process::{chdir, getrlimit, setrlimit, Gid, Resource, Rlimit, Uid};

use crate::sys::process::{self, ExecArgs};
use crate::sys::ptrace;

/// Stages of the child's setup, reported through the error pipe with the errno.
#[derive(Clone, Copy)]
#[repr(i32)]
pub(super) enum Stage {
    Execve = 0,
    SignalMask = 1,
    Personality = 2,
    StackRlimit = 3,
    Chdir = 4,
    TraceMe = 5,
    DirFdFlags = 6,
    Credentials = 7,
}

/// What the parent shows for a reported stage.
pub(super) fn stage_name(stage: i32) -> &'static str {
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
pub(super) struct ChildPlan<'a> {
    /// The path, argv and envp of the exec.
    pub(super) exec: &'a ExecArgs,
    pub(super) cwd: Option<&'a CStr>,
    pub(super) stack_rlimit: Option<Option<u64>>,
    /// Bits to add to the personality.
    pub(super) personality: u32,
    /// The credentials to take before the exec.
    pub(super) credentials: Option<ChildCredentials<'a>>,
    /// The write end of the error pipe.
    pub(super) report: BorrowedFd<'a>,
    /// `None`: `execve(path)`; `Some`: `execveat(dirfd, path, ..., flags)`.
    pub(super) execveat: Option<ChildExecveat<'a>>,
}

/// The credentials to take.
#[derive(Clone, Copy)]
pub(super) struct ChildCredentials<'a> {
    /// Whether the ids and groups differ from this process's (else only no_new_privs is
    /// set, which needs no privilege).
    pub(super) change_ids: bool,
    pub(super) uid: Uid,
    pub(super) euid: Uid,
    pub(super) gid: Gid,
    pub(super) egid: Gid,
    pub(super) groups: &'a [Gid],
    pub(super) no_new_privs: bool,
}

/// The `execveat` arguments.
#[derive(Clone, Copy)]
pub(super) struct ChildExecveat<'a> {
    /// The descriptor argument, as a number (it need not be open).
    pub(super) dirfd: RawFd,
    /// The caller's descriptor and the close-on-exec flag to give it first.
    pub(super) set_cloexec: Option<(BorrowedFd<'a>, bool)>,
    pub(super) flags: i32,
}

/// Runs in the forked child: only async-signal-safe system calls, no allocation, no
/// unwinding; ends in the exec or in `_exit(127)` after reporting the failing stage.
pub(super) fn child_main(plan: &ChildPlan<'_>) -> ! {
    let (stage, errno) = match setup(plan) {
        Err(failure) => failure,
        Ok(()) => (Stage::Execve, exec(plan)),
    };
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as i32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.raw_os_error().to_ne_bytes());
    // A short or failed write leaves the parent with an incomplete message, which it reports
    // as an error; nothing better can be done here.
    let _ = rustix::io::write(plan.report, &msg);
    process::exit_now(127)
}

fn setup(plan: &ChildPlan<'_>) -> Result<(), (Stage, Errno)> {
    let at = |stage: Stage| move |e: Errno| (stage, e);
    process::set_signal_mask(0).map_err(at(Stage::SignalMask))?;
    // The Rust runtime ignores SIGPIPE, and ignored dispositions survive execve.
    process::default_sigpipe();
    if plan.personality != 0 {
        let cur = process::personality().map_err(at(Stage::Personality))?;
        process::set_personality(cur | plan.personality).map_err(at(Stage::Personality))?;
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
        setrlimit(Resource::Stack, new).map_err(at(Stage::StackRlimit))?;
    }
    if let Some(dir) = plan.cwd {
        chdir(dir).map_err(at(Stage::Chdir))?;
    }
    if let Some((fd, cloexec)) = plan.execveat.and_then(|at| at.set_cloexec) {
        // Only the child's own descriptor-table entry changes.
        let flags = if cloexec {
            FdFlags::CLOEXEC
        } else {
            FdFlags::empty()
        };
        rustix::io::fcntl_setfd(fd, flags).map_err(at(Stage::DirFdFlags))?;
    }
    ptrace::traceme().map_err(at(Stage::TraceMe))?;
    if let Some(c) = plan.credentials {
        take_credentials(&c).map_err(at(Stage::Credentials))?;
    }
    Ok(())
}

/// After `PTRACE_TRACEME`, whose tracer credentials are the caller's at that moment (root): a
/// tracer without CAP_SYS_PTRACE would make the kernel downgrade a set-id exec, which a plan
/// does not model. Groups first and uids last: dropping uid 0 takes away the right to change
/// groups. The calls set only this thread's ids (no glibc all-threads setxid), which is the
/// whole process here: the forked child has one thread. Each saved id is the effective one.
fn take_credentials(c: &ChildCredentials<'_>) -> Result<(), Errno> {
    if c.change_ids {
        rustix::thread::set_thread_groups(c.groups)?;
        rustix::thread::set_thread_res_gid(c.gid, c.egid, c.egid)?;
        rustix::thread::set_thread_res_uid(c.uid, c.euid, c.euid)?;
    }
    if c.no_new_privs {
        rustix::thread::set_no_new_privs(true)?;
    }
    Ok(())
}

/// The exec itself; returns only on failure.
fn exec(plan: &ChildPlan<'_>) -> Errno {
    match plan.execveat {
        None => plan.exec.execve(),
        Some(at) => plan.exec.execveat(at.dirfd, at.flags),
    }
}
