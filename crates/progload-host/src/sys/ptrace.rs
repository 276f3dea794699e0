//! The `ptrace` requests of the probe (a traced child stopped after `execve`) and of the exec
//! helper (the process it rebuilds), x86_64.

use rustix::io::Errno;
use rustix::process::Pid;

use super::{last_errno, syscall_result};

/// The general-purpose registers (`struct user_regs_struct`).
pub(crate) type Regs = libc::user_regs_struct;

/// Registers all zero.
pub(crate) fn zeroed_regs() -> Regs {
    // SAFETY: user_regs_struct is plain old data (integers only); all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `ptrace(req, pid, addr, data)` for requests whose `addr` and `data` are integers, or
/// pointers the caller made valid for the request.
fn request(req: libc::c_uint, pid: Pid, addr: usize, data: usize) -> Result<(), Errno> {
    // SAFETY: every caller below passes integer arguments, or pointers to live buffers of the
    // size the request reads or writes (see each caller).
    let r = unsafe { libc::ptrace(req, pid.as_raw_nonzero().get(), addr, data) };
    syscall_result(r).map(drop)
}

/// `PTRACE_TRACEME`: the parent becomes this process's tracer.
pub(crate) fn traceme() -> Result<(), Errno> {
    // SAFETY: PTRACE_TRACEME ignores its other arguments; no memory is passed.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_TRACEME,
            0,
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    };
    if r == -1 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `PTRACE_SINGLESTEP`, delivering `sig` (0: none).
pub(crate) fn singlestep(pid: Pid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_SINGLESTEP, pid, 0, sig as usize)
}

/// `PTRACE_GETREGS`.
pub(crate) fn getregs(pid: Pid) -> Result<Regs, Errno> {
    let mut regs = zeroed_regs();
    // `regs` is a writable user_regs_struct, exactly what PTRACE_GETREGS writes.
    request(
        libc::PTRACE_GETREGS,
        pid,
        0,
        &mut regs as *mut Regs as usize,
    )?;
    Ok(regs)
}

/// `PTRACE_SETREGS`.
pub(crate) fn setregs(pid: Pid, regs: &Regs) -> Result<(), Errno> {
    // `regs` is a valid user_regs_struct, which PTRACE_SETREGS only reads.
    request(libc::PTRACE_SETREGS, pid, 0, regs as *const Regs as usize)
}
