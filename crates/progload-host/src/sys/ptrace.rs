//! The `ptrace` requests of the probe (a traced child stopped after `execve`) and of the exec
//! helper (the process it rebuilds), x86_64.

use rustix::io::Errno;
use rustix::process::Pid;

use super::{last_errno, syscall_result};

#[cfg(target_arch = "x86_64")]
/// The general-purpose registers (`struct user_regs_struct`).
pub(crate) type Regs = libc::user_regs_struct;

#[cfg(target_arch = "x86_64")]
/// Registers all zero.
pub(crate) fn zeroed_regs() -> Regs {
    // SAFETY: user_regs_struct is plain old data (integers only); all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// The type of a ptrace request number: glibc declares it unsigned, musl signed.
#[cfg(not(target_env = "musl"))]
type Request = libc::c_uint;
#[cfg(target_env = "musl")]
type Request = libc::c_int;

/// `ptrace(req, pid, addr, data)` for requests whose `addr` and `data` are integers, or
/// pointers the caller made valid for the request.
fn request(req: Request, pid: Pid, addr: usize, data: usize) -> Result<(), Errno> {
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

/// `PTRACE_SEIZE` with `options` (`PTRACE_O_*`).
pub(crate) fn seize(pid: Pid, options: libc::c_int) -> Result<(), Errno> {
    request(libc::PTRACE_SEIZE, pid, 0, options as usize)
}

/// `PTRACE_INTERRUPT` of a seized tracee.
pub(crate) fn interrupt(pid: Pid) -> Result<(), Errno> {
    request(libc::PTRACE_INTERRUPT, pid, 0, 0)
}

/// `PTRACE_CONT`, delivering `sig` (0: none).
pub(crate) fn cont(pid: Pid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_CONT, pid, 0, sig as usize)
}

/// `PTRACE_SINGLESTEP`, delivering `sig` (0: none).
pub(crate) fn singlestep(pid: Pid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_SINGLESTEP, pid, 0, sig as usize)
}

/// `PTRACE_DETACH`, delivering `sig` (0: none).
pub(crate) fn detach(pid: Pid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_DETACH, pid, 0, sig as usize)
}

#[cfg(target_arch = "x86_64")]
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

#[cfg(target_arch = "x86_64")]
/// `PTRACE_SETREGS`.
pub(crate) fn setregs(pid: Pid, regs: &Regs) -> Result<(), Errno> {
    // `regs` is a valid user_regs_struct, which PTRACE_SETREGS only reads.
    request(libc::PTRACE_SETREGS, pid, 0, regs as *const Regs as usize)
}

/// `PTRACE_GETREGSET` of `NT_PRSTATUS`: the general-purpose registers as the architecture's
/// `struct user_regs_struct` lays them out, one word each.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn get_prstatus(pid: Pid) -> Result<Vec<u64>, Errno> {
    let mut words = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: words.as_mut_ptr().cast(),
        iov_len: std::mem::size_of_val(&words),
    };
    // The iovec points to `words`, alive and writable for its whole length; the kernel writes
    // at most `iov_len` bytes there and trims `iov_len` to what it wrote.
    request(
        libc::PTRACE_GETREGSET,
        pid,
        libc::NT_PRSTATUS as usize,
        &mut iov as *mut libc::iovec as usize,
    )?;
    let n = (iov.iov_len / 8).min(words.len());
    Ok(words[..n].to_vec())
}

#[cfg(target_arch = "x86_64")]
/// `PTRACE_GETREGSET` of `NT_X86_XSTATE` into `buf`; returns the length the kernel wrote.
pub(crate) fn get_xstate(pid: Pid, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // The iovec points to `buf`, alive and writable for its whole length; the kernel writes
    // at most `iov_len` bytes there and trims `iov_len`.
    request(
        libc::PTRACE_GETREGSET,
        pid,
        super::abi::NT_X86_XSTATE as usize,
        &mut iov as *mut libc::iovec as usize,
    )?;
    Ok(iov.iov_len)
}

#[cfg(target_arch = "x86_64")]
/// `PTRACE_SETREGSET` of `NT_X86_XSTATE` from `buf`.
pub(crate) fn set_xstate(pid: Pid, buf: &[u8]) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // The iovec points to `buf`, alive for its whole length; PTRACE_SETREGSET only reads it.
    request(
        libc::PTRACE_SETREGSET,
        pid,
        super::abi::NT_X86_XSTATE as usize,
        &mut iov as *mut libc::iovec as usize,
    )
}

#[cfg(target_arch = "x86_64")]
/// `PTRACE_GET_RSEQ_CONFIGURATION`: the tracee's rseq registration (pointer 0: none).
pub(crate) fn rseq_configuration(pid: Pid) -> Result<super::abi::RseqConfiguration, Errno> {
    let mut conf = super::abi::RseqConfiguration::default();
    // `addr` is the size of `conf`, which the kernel writes at most.
    request(
        super::abi::PTRACE_GET_RSEQ_CONFIGURATION as Request,
        pid,
        std::mem::size_of::<super::abi::RseqConfiguration>(),
        &mut conf as *mut super::abi::RseqConfiguration as usize,
    )?;
    Ok(conf)
}
