//! The crate's only `unsafe` code: small safe functions over the system calls and memory
//! operations that neither std nor rustix offers safely, each `unsafe` block with a
//! `// SAFETY:` comment saying why it is sound. The rest of the crate is safe code (the crate
//! root denies `unsafe_code`).
//!
//! - `abi`: the kernel constants the crate needs that libc does not define.
//! - `process`: fork, clone, `_exit`, signals, personality, close-on-exec, `execve`.
//! - `ptrace`: the `ptrace` requests of the probe (every architecture) and of the exec helper
//!   (x86_64).
//! - `pages`: the temporary pages of the exec in place and the code they hold: one `syscall`
//!   instruction, or the interpreter of the self-replay (x86_64).
//! - `rseq`: the calling thread's rseq registration (x86_64).

// Only the x86_64 probe and exec in place use these (elsewhere they report `Unsupported`).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

pub(crate) mod abi;
pub(crate) mod process;

#[cfg(target_arch = "x86_64")]
pub(crate) mod pages;
pub(crate) mod ptrace;
#[cfg(target_arch = "x86_64")]
pub(crate) mod rseq;

use rustix::io::Errno;

/// Whether one page at `addr` can be mapped (`MAP_FIXED_NOREPLACE`, no access), then unmaps
/// it: tells whether the address space reaches that high.
pub(crate) fn can_map_page_at(addr: usize) -> bool {
    use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};
    let page = rustix::param::page_size();
    // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping: it maps a fresh inaccessible page
    // at `addr` only where nothing is mapped, and fails otherwise; nothing refers to it.
    let got = unsafe {
        mmap_anonymous(
            addr as *mut core::ffi::c_void,
            page,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
        )
    };
    match got {
        Ok(p) => {
            // SAFETY: `p` is the page mapped just above, used by nothing.
            let _ = unsafe { munmap(p, page) };
            p as usize == addr
        }
        Err(_) => false,
    }
}

/// The errno a failed libc call left behind.
fn last_errno() -> Errno {
    let raw = std::io::Error::last_os_error().raw_os_error();
    // A libc call that reports a failure always sets errno to a value in 1..4096; `EIO`
    // stands only for a libc that would not.
    raw.filter(|e| (1..4096).contains(e))
        .map_or(Errno::IO, Errno::from_raw_os_error)
}

/// The result of a raw `syscall(2)`: `-1` is a failure with errno set.
fn syscall_result(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r == -1 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}
