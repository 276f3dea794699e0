//! The calling thread's rseq registration (x86_64), which an exec must undo
//! (`rseq_execve`) while the registered area still exists.

use super::abi::{ARCH_GET_FS, RSEQ_FLAG_UNREGISTER};

/// glibc's rseq signature on x86_64 (`RSEQ_SIG` of `sysdeps/unix/sysv/linux/x86/bits/rseq.h`),
/// which the kernel checks at unregistration.
pub(crate) const RSEQ_SIG: u32 = 0x5305_3053;

/// A registration: the area's address and length, and the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The area (`struct rseq`).
    pub(crate) ptr: u64,
    /// Its registered length.
    pub(crate) len: u32,
    /// The signature it was registered with.
    pub(crate) sig: u32,
}

/// An area is registered that is neither glibc's nor absent.
#[derive(Debug)]
pub(crate) struct Unidentified;

/// `rseq(ptr, len, flags, sig)`: the result, or `-errno`.
///
/// Only called with `flags` 0 on an area that stays alive while registered (it is unregistered
/// right after, by the callers below), or with `RSEQ_FLAG_UNREGISTER`.
fn rseq(ptr: u64, len: u32, flags: u64, sig: u32) -> i64 {
    // SAFETY: rseq either checks the arguments against the current registration (no memory
    // access), registers `ptr` (only when nothing is registered; the callers pass glibc's own
    // area of this thread or a live scratch area, and unregister it at once), or unregisters
    // the registration equal to the arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rseq,
            ptr as libc::c_long,
            len as libc::c_long,
            flags as libc::c_long,
            sig as libc::c_long,
        )
    };
    if r < 0 {
        -i64::from(super::last_errno().raw_os_error())
    } else {
        r as i64
    }
}

/// glibc's `__rseq_offset` and `__rseq_size` (glibc 2.35 and later), if it exports them.
fn glibc_rseq_area() -> Option<(i64, u32)> {
    // SAFETY: dlsym only looks the names up; the results are checked for NULL and point to
    // glibc's constants of the documented types (`ptrdiff_t` and `unsigned int`).
    unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr());
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr());
        if off.is_null() || size.is_null() {
            None
        } else {
            Some((
                *(off as *const isize) as i64,
                *(size as *const libc::c_uint),
            ))
        }
    }
}

/// The FS base of the calling thread (its TLS block).
fn fs_base() -> u64 {
    let mut fs = 0u64;
    // SAFETY: ARCH_GET_FS writes the FS base, 8 bytes, to `fs`.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_FS, &mut fs as *mut u64) };
    fs
}

/// The thread's rseq registration, found from glibc's `__rseq_offset`/`__rseq_size` and
/// confirmed with the kernel: a registration call with the same arguments answers `EBUSY`
/// exactly when they are the registered ones.
pub(crate) fn registration() -> Result<Option<Registration>, Unidentified> {
    let mut candidates = Vec::new();
    if let Some((off, size)) = glibc_rseq_area() {
        let ptr = fs_base().wrapping_add(off as u64);
        for len in [size.max(32), 32] {
            if !candidates.contains(&(ptr, len)) {
                candidates.push((ptr, len));
            }
        }
    }
    for &(ptr, len) in &candidates {
        match rseq(ptr, len, 0, RSEQ_SIG) {
            r if r == -i64::from(libc::EBUSY) => {
                return Ok(Some(Registration {
                    ptr,
                    len,
                    sig: RSEQ_SIG,
                }))
            }
            0 => {
                // Nothing was registered: undo the registration just made.
                rseq(ptr, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
                return Ok(None);
            }
            _ => {}
        }
    }
    // No candidate: either nothing is registered, or something unknown is. A registration
    // attempt with a scratch area tells (EINVAL: another area is registered).
    #[repr(C, align(32))]
    struct Area([u8; 32]);
    let area = Box::new(Area([0; 32]));
    let ptr = &*area as *const Area as u64;
    match rseq(ptr, 32, 0, RSEQ_SIG) {
        0 => {
            rseq(ptr, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
            Ok(None)
        }
        r if r == -i64::from(libc::ENOSYS) => Ok(None),
        _ => Err(Unidentified),
    }
}
