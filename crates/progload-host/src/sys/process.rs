//! Process primitives: fork, clone, `_exit`, signals, personality, descriptors, `execve`.

use std::ffi::{c_char, CString};
use std::os::fd::{BorrowedFd, RawFd};

use rustix::io::Errno;
use rustix::process::Pid;

use super::{last_errno, syscall_result};

/// Forks; the child runs `child` and then ends with `_exit` of what it returned, without
/// running any destructor of the state it copied. Returns the child's pid in the parent.
///
/// Contract (not checked): in a child of a multi-threaded process only the calling thread
/// exists, so `child` must not wait for a lock another thread held at the fork. Each caller
/// says why its child keeps to that: the probe's child makes async-signal-safe system calls
/// only, the children of `run` allocate (glibc's allocator is reset for the child by its own
/// fork handlers) and are forked from single-threaded helpers or from `spawn`.
pub(crate) fn fork(child: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: fork has no memory-safety precondition in the parent; the child gets a copy of
    // this address space in which the references `child` captured stay valid, runs `child`
    // (see the contract above) and never returns from this function.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => exit_now(child()),
        p if p < 0 => Err(last_errno()),
        p => Ok(Pid::from_raw(p).expect("fork returned a positive pid")),
    }
}

/// [`fork`] through a raw `clone` with no exit signal: the parent gets no `SIGCHLD` for the
/// child, which a plain `waitpid` does not see either (wait for it with `__WALL`).
pub(crate) fn clone_without_exit_signal(child: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: clone with flags 0 (no CLONE_VM, no exit signal) and no new stack is fork: the
    // child gets a copy of the address space and continues on its own copy of this stack; it
    // runs `child` under the contract of `fork` and ends in `_exit`, never returning here.
    let r = unsafe { libc::syscall(libc::SYS_clone, 0 as libc::c_long, 0, 0, 0, 0) };
    match syscall_result(r)? {
        0 => exit_now(child()),
        p => Ok(Pid::from_raw(p as i32).expect("clone returned a positive pid")),
    }
}

/// `_exit(code)`: ends the process at once, without atexit handlers or destructors (what a
/// forked child must do).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; it has no precondition.
    unsafe { libc::_exit(code) }
}

/// `kill(pid, sig)` for any signal number (rustix only names the standard signals).
pub(crate) fn kill(pid: Pid, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches no memory of this process.
    let r = unsafe { libc::kill(pid.as_raw_nonzero().get(), sig) };
    syscall_result(r.into()).map(drop)
}

/// `close_range(first, last, 0)`: closes the descriptors in `[first, last]`.
pub(crate) fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes integers only. Closing descriptors is not a memory-safety
    // matter: an `OwnedFd` still naming a closed number only gets EBADF later.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
    syscall_result(r).map(drop)
}

/// The descriptor flags of `fd`, `None` when it is not open.
fn fd_flags(fd: RawFd) -> Option<rustix::io::FdFlags> {
    // SAFETY: the descriptor is only borrowed for one fcntl(F_GETFD); if it is not open the
    // call fails with EBADF and nothing else happens.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(fd).ok()
}

/// Whether descriptor `fd` is open and close-on-exec.
pub(crate) fn is_close_on_exec(fd: RawFd) -> bool {
    fd_flags(fd).is_some_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
}

/// Whether descriptor `fd` is open and survives an exec (not close-on-exec).
pub(crate) fn is_inherited(fd: RawFd) -> bool {
    fd_flags(fd).is_some_and(|f| !f.contains(rustix::io::FdFlags::CLOEXEC))
}

/// The calling process's personality (`personality(0xffffffff)` queries without changing).
pub(crate) fn personality() -> Result<u32, Errno> {
    // SAFETY: personality takes an integer; 0xffffffff only queries the persona.
    let r = unsafe { libc::personality(0xffff_ffff) };
    syscall_result(r.into()).map(|p| p as u32)
}

/// Sets the calling process's personality.
pub(crate) fn set_personality(persona: u32) -> Result<(), Errno> {
    // SAFETY: personality takes an integer and changes no memory.
    let r = unsafe { libc::personality(libc::c_ulong::from(persona)) };
    syscall_result(r.into()).map(drop)
}

/// Restores the default action of `SIGPIPE`, which the Rust runtime ignores at startup.
pub(crate) fn default_sigpipe() {
    // SAFETY: installs the default action for SIGPIPE; no handler code is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The calling thread's blocked-signal mask (the kernel's 64-bit set).
pub(crate) fn signal_mask() -> u64 {
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask with a NULL new set only writes the current mask, 8 bytes, to
    // `old`, which is 8 bytes long.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            std::ptr::null::<u64>(),
            &mut old as *mut u64,
            super::abi::KERNEL_SIGSET_SIZE as libc::c_long,
        )
    };
    old
}

/// Sets the calling thread's blocked-signal mask (the kernel ignores `SIGKILL`/`SIGSTOP`).
pub(crate) fn set_signal_mask(mask: u64) -> Result<(), Errno> {
    // SAFETY: rt_sigprocmask reads the 8-byte set from `mask` and writes nothing (NULL old
    // set).
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            super::abi::KERNEL_SIGSET_SIZE as libc::c_long,
        )
    };
    syscall_result(r).map(drop)
}

/// A signal action as the kernel's `rt_sigaction` reports it (x86_64 `struct sigaction`).
#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SigAction {
    /// The handler: `SIG_DFL` (0), `SIG_IGN` (1) or an address.
    pub(crate) handler: u64,
    /// `SA_*` flags.
    pub(crate) flags: u64,
    /// The restorer (`SA_RESTORER`).
    pub(crate) restorer: u64,
    /// The signals blocked while the handler runs.
    pub(crate) mask: u64,
}

/// The current action of signal `sig`, changing nothing.
pub(crate) fn signal_action(sig: u64) -> Result<SigAction, Errno> {
    let mut old = SigAction::default();
    // SAFETY: rt_sigaction with a NULL new action only writes the current action to `old`, a
    // `SigAction` of the kernel's layout, with the kernel's sigset size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as libc::c_long,
            std::ptr::null::<SigAction>(),
            &mut old as *mut SigAction,
            super::abi::KERNEL_SIGSET_SIZE as libc::c_long,
        )
    };
    syscall_result(r).map(|_| old)
}

/// The arguments of an `execve`, built before a fork so that the child does not allocate:
/// the path and NULL-terminated pointer arrays into strings this struct owns.
pub(crate) struct ExecArgs {
    path: CString,
    _strings: Vec<CString>,
    /// `None`: a NULL `argv` pointer.
    argv: Option<Vec<*const c_char>>,
    envp: Vec<*const c_char>,
}

impl ExecArgs {
    /// `argv` `None` passes a NULL `argv` pointer to the kernel.
    pub(crate) fn new(path: CString, argv: Option<Vec<CString>>, envp: Vec<CString>) -> ExecArgs {
        let terminated = |v: &[CString]| -> Vec<*const c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        // The pointers point into the strings' heap buffers, which do not move when the
        // `CString`s are moved into `_strings` below.
        let argv_ptrs = argv.as_deref().map(terminated);
        let envp_ptrs = terminated(&envp);
        let mut strings = argv.unwrap_or_default();
        strings.extend(envp);
        ExecArgs {
            path,
            _strings: strings,
            argv: argv_ptrs,
            envp: envp_ptrs,
        }
    }

    fn argv(&self) -> *const *const c_char {
        self.argv.as_ref().map_or(std::ptr::null(), |v| v.as_ptr())
    }

    /// `execve(path, argv, envp)` by the raw system call (so that a NULL `argv` reaches the
    /// kernel unchanged). Returns only on failure, with the errno.
    pub(crate) fn execve(&self) -> Errno {
        // SAFETY: `path` is a NUL-terminated string and `argv`/`envp` are NULL or
        // NULL-terminated arrays of pointers to NUL-terminated strings, all owned by `self`,
        // which outlives the call. execve reads them and takes no other memory.
        unsafe {
            libc::syscall(
                libc::SYS_execve,
                self.path.as_ptr(),
                self.argv(),
                self.envp.as_ptr(),
            )
        };
        last_errno()
    }

    /// `execveat(dirfd, path, argv, envp, flags)`, as [`ExecArgs::execve`]. `dirfd` is any
    /// number, open or not.
    pub(crate) fn execveat(&self, dirfd: RawFd, flags: i32) -> Errno {
        // SAFETY: as for execve; the descriptor and the flags are plain integers.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                dirfd,
                self.path.as_ptr(),
                self.argv(),
                self.envp.as_ptr(),
                flags,
            )
        };
        last_errno()
    }
}

/// `getresuid(2)` and `getresgid(2)`: the real, effective and saved uid, then gid.
pub(crate) fn resids() -> Result<([u32; 3], [u32; 3]), Errno> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: each pointer is to a live local `uid_t`/`gid_t` that the call only writes.
    let u = unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    if u != 0 {
        return Err(last_errno());
    }
    // SAFETY: as above.
    let g = unsafe { libc::getresgid(&mut rg, &mut eg, &mut sg) };
    if g != 0 {
        return Err(last_errno());
    }
    Ok(([r, e, s], [rg, eg, sg]))
}

/// `unshare(CLONE_NEWUSER | CLONE_NEWNS)`: a new user namespace (this process holds every
/// capability in it) and a new mount namespace.
pub(crate) fn unshare_user_and_mount() -> Result<(), Errno> {
    use rustix::thread::UnshareFlags;
    // SAFETY: the only hazard of unshare_unsafe is `CLONE_FILES` (threads seeing descriptors
    // of another table); these flags leave the descriptor table shared as it is.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }
}
