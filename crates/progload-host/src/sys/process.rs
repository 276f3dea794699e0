//! Process primitives: fork, clone, `_exit`, signals, personality, descriptors, `execve`.

use std::ffi::{c_char, CString};
use std::os::fd::RawFd;

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

/// `_exit(code)`: ends the process at once, without atexit handlers or destructors (what a
/// forked child must do).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; it has no precondition.
    unsafe { libc::_exit(code) }
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
