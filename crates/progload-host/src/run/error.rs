//! The error of a userland exec that failed before its point of no return.

use progload::Errno;

/// Why a userland exec failed before its point of no return. The caller is unchanged.
///
/// [`RunError::errno`] is the errno the failure carries: the kernel's for every failed system
/// call (never replaced by another), `execve`'s for planning errors, and a fixed one,
/// documented on each variant, where no system call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Planning failed (the error `execve` would return, or a fatal one).
    #[error(transparent)]
    Plan(#[from] progload::Error),
    /// A system call of the calling process failed while it prepared the exec (opening a
    /// file of the plan, reading `/proc/self`, a pipe, a fork, ...).
    #[error("{what} failed")]
    Host {
        /// What was being done.
        what: String,
        /// The kernel's errno.
        #[source]
        errno: rustix::io::Errno,
    },
    /// A `/proc` file of the calling process is not as the kernel writes it; errno `EINVAL`.
    #[error("{path} does not read as the kernel writes it")]
    Unparsable {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The exec cannot be done in place (architecture, threads, kernel features, ...); errno
    /// `EINVAL`.
    #[error("cannot exec in place: {0}")]
    Unsupported(String),
    /// The plan changes the credentials (a set-id program) and the calling process is not
    /// privileged to take them; errno `EPERM`.
    #[error("a set-id exec in place changes the credentials, which needs an effective uid of 0")]
    NeedsPrivilege,
    /// Setting `/proc/PID/exe` to the program (`PR_SET_MM_MAP`'s `exe_fd`) needs
    /// `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN`, which the calling process lacks; errno
    /// `EPERM`.
    #[error(
        "an exec in place sets /proc/PID/exe, which needs CAP_CHECKPOINT_RESTORE or \
         CAP_SYS_ADMIN: run as root, or with a root directory (progload run --root DIR, \
         also --root /), which an unprivileged caller enters in a new user namespace"
    )]
    NeedsExeCapability,
    /// A step of the rebuild failed before anything changed: a `ptrace` request of the
    /// helper, or a system call run in the calling process (by the helper or by the
    /// self-replay). The caller goes on unchanged.
    #[error("{what} failed before the point of no return")]
    Step {
        /// The step.
        what: String,
        /// The kernel's errno.
        #[source]
        errno: rustix::io::Errno,
    },
    /// A system call of the rebuild returned another value than the plan needs (an `mmap`
    /// not at its fixed address) before anything changed; errno `EINVAL`.
    #[error("{what} returned {got:#x} instead of {expected:#x}")]
    StepResult {
        /// The step.
        what: String,
        /// Its result.
        got: u64,
        /// The value the plan needs.
        expected: u64,
    },
    /// A failure reported by a spawned child before its point of no return (the child has
    /// exited and been reaped).
    #[error("{message}")]
    Reported {
        /// The child's message (the `Display` of its own `RunError`).
        message: String,
        /// The errno of the child's `RunError`.
        errno: Errno,
    },
}

// The constructors serve the x86_64 exec in place only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl RunError {
    /// A failed system call of the preparation.
    pub(crate) fn host(what: impl Into<String>, errno: rustix::io::Errno) -> Self {
        RunError::Host {
            what: what.into(),
            errno,
        }
    }

    /// A failed read of the `/proc` file `path`: the kernel's errno, or [`RunError::Unparsable`]
    /// when the read succeeded but the text does not parse.
    pub(crate) fn proc(path: &str, e: std::io::Error) -> Self {
        match rustix::io::Errno::from_io_error(&e) {
            Some(errno) => RunError::host(format!("reading {path}"), errno),
            None => RunError::Unparsable {
                path: path.to_string(),
                source: e,
            },
        }
    }

    /// The errno this failure maps to (`execve`'s for planning errors).
    pub fn errno(&self) -> Errno {
        match self {
            RunError::Plan(e) => e.errno(),
            RunError::Host { errno, .. } | RunError::Step { errno, .. } => {
                Errno(errno.raw_os_error())
            }
            RunError::Reported { errno, .. } => *errno,
            RunError::NeedsPrivilege | RunError::NeedsExeCapability => Errno::EPERM,
            RunError::Unparsable { .. }
            | RunError::Unsupported(_)
            | RunError::StepResult { .. } => Errno::EINVAL,
        }
    }

    /// Whether the kernel would have killed the process instead (a planning error found
    /// after its point of no return).
    pub fn is_fatal(&self) -> bool {
        matches!(self, RunError::Plan(e) if e.is_fatal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_the_kernels_and_display_a_sentence() {
        let e = RunError::host("opening a file of the plan", rustix::io::Errno::ACCESS);
        assert_eq!(e.errno(), Errno::EACCES);
        assert_eq!(e.to_string(), "opening a file of the plan failed");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("Permission denied (os error 13)"));
        let e = RunError::proc("/proc/self/maps", std::io::Error::from_raw_os_error(2));
        assert_eq!(e.errno(), Errno::ENOENT);
        let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad maps line");
        let e = RunError::proc("/proc/self/maps", bad);
        assert_eq!(e.errno(), Errno::EINVAL);
        assert_eq!(
            e.to_string(),
            "/proc/self/maps does not read as the kernel writes it"
        );
        assert_eq!(RunError::NeedsPrivilege.errno(), Errno::EPERM);
    }
}
