//! The program's root and working directory ([`RunOptions`]), entered by the calling process
//! as its last step before the point of no return, once it has opened and read everything
//! it needs outside them.
//!
//! A caller with `CAP_SYS_CHROOT` enters the root with `chroot`. One without it (any
//! unprivileged user) first makes a new user and mount namespace, as `unshare
//! --map-user=$(id -u) --map-group=$(id -g) -m` does: its own uid and gid mapped to
//! themselves, `setgroups` denied. In that namespace it holds every capability, which both
//! `chroot` and `PR_SET_MM_MAP`'s `exe_fd` need; the script drops them all at its end (a
//! kernel exec by a non-zero uid leaves none), unless the caller is uid 0.

use std::os::fd::BorrowedFd;

use rustix::thread::CapabilitySet;

use super::error::RunError;

/// Where the program starts, besides its image.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions<'a> {
    /// The directory that becomes the program's `/`, as after `chroot(DIR)`: the program,
    /// its interpreters and every file it opens later are found there. Typically the root of
    /// the [`crate::HostFs`] the plan was made with.
    pub root: Option<BorrowedFd<'a>>,
    /// The directory the program starts in (default: `root` when one is given, else the
    /// caller's). With `root`, a directory inside it.
    pub cwd: Option<BorrowedFd<'a>>,
}

/// How the options are entered, decided before anything changes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// A new user and mount namespace is made first (no `CAP_SYS_CHROOT`).
    pub(super) user_namespace: bool,
    /// The script drops every capability at its end (the namespace's, held by a non-zero
    /// uid).
    pub(super) drop_capabilities: bool,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
/// Decides how `options` are entered and checks, before anything changes, that the exec can
/// set `/proc/PID/exe`.
///
/// # Errors
/// [`RunError::NeedsExeCapability`] when the caller lacks `CAP_CHECKPOINT_RESTORE` and
/// `CAP_SYS_ADMIN` and no namespace will give them.
pub(super) fn decide(options: &RunOptions<'_>) -> Result<Entry, RunError> {
    let caps = rustix::thread::capabilities(None)
        .map_err(|e| RunError::host("capget", e))?
        .effective;
    let user_namespace = options.root.is_some() && !caps.contains(CapabilitySet::SYS_CHROOT);
    let may_set_exe = user_namespace
        || caps.intersects(CapabilitySet::CHECKPOINT_RESTORE | CapabilitySet::SYS_ADMIN);
    if !may_set_exe {
        return Err(RunError::NeedsExeCapability);
    }
    let euid = rustix::process::geteuid().as_raw();
    Ok(Entry {
        user_namespace,
        drop_capabilities: user_namespace && euid != 0,
    })
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
/// Enters `options` as `entry` says. Nothing of the image has changed yet; a failure is
/// returned (the caller may then be in the new namespace, or its cwd changed).
pub(super) fn enter(options: &RunOptions<'_>, entry: Entry) -> Result<(), RunError> {
    if entry.user_namespace {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        crate::sys::process::unshare_user_and_mount().map_err(|e| {
            RunError::host(
                "unshare(CLONE_NEWUSER | CLONE_NEWNS) (a caller without CAP_SYS_CHROOT \
                 enters the root in a new user namespace)",
                e,
            )
        })?;
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| {
                let errno = rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO);
                RunError::host(format!("writing /proc/self/{file}"), errno)
            })
        };
        write("setgroups", String::from("deny"))?;
        write("uid_map", format!("{uid} {uid} 1\n"))?;
        write("gid_map", format!("{gid} {gid} 1\n"))?;
    }
    if let Some(root) = options.root {
        rustix::process::fchdir(root).map_err(|e| RunError::host("fchdir to the root", e))?;
        rustix::process::chroot(".").map_err(|e| RunError::host("chroot", e))?;
    }
    if let Some(dir) = options.cwd.or(options.root) {
        rustix::process::fchdir(dir)
            .map_err(|e| RunError::host("fchdir to the working directory", e))?;
    }
    Ok(())
}
