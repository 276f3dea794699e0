//! The calling process's side of an exec in place (x86_64), before the point of no return:
//! the checks, the files it opens, what it reads of itself (maps, signal actions, ids,
//! personality, close-on-exec descriptors) and the temporary pages it maps. Every failure
//! here leaves the caller as it was.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use progload::arch::Arch;
use progload::Plan;

use super::error::RunError;
use super::script::{self, CallerState, Special, TempRange};
use crate::proc::{MapsLine, Proc};
use crate::sys::abi::PAGE;
use crate::sys::pages::{Code, PagesError, TempPages};
use crate::sys::process;
use crate::HostHandle;

/// Who replays the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Runner {
    /// A helper process, over `ptrace` (the caller must not be traced).
    PtraceHelper,
    /// The caller itself, from the interpreter in the temporary code page (it is traced).
    SelfReplay,
}

/// Whether a tracer (a debugger, strace, a `PTRACE_TRACEME` parent) holds this process.
pub(super) fn is_traced() -> bool {
    Proc::Current
        .status()
        .is_ok_and(|s| s.number("TracerPid").is_some_and(|pid| pid != 0))
}

/// What the caller holds and knows once the plan is checked against it.
pub(super) struct Caller {
    /// The plan's files (`plan.files` order), opened for mapping; they stay open until the
    /// script has mapped them (the script's close-on-exec step closes them).
    pub(super) files: Vec<OwnedFd>,
    /// The executable's descriptor (one of `files`).
    pub(super) exe: RawFd,
    /// `/proc/self/maps`.
    pub(super) maps: Vec<MapsLine>,
    /// The special mappings the plan keeps.
    pub(super) specials: Vec<Special>,
    /// binfmt_misc `O`/`C`: the program, opened for reading, and the descriptor number
    /// `AT_EXECFD` names.
    pub(super) execfd: Option<(OwnedFd, RawFd)>,
}

fn open_node(node: &HostHandle) -> Result<OwnedFd, RunError> {
    let path = Proc::fd_path(node.as_fd().as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RunError::host("opening a file of the plan", e))
}

impl Caller {
    /// Checks that the plan can be applied in place by `runner`, opens its files and reads
    /// this process's maps.
    pub(super) fn prepare(plan: &Plan<HostHandle>, runner: Runner) -> Result<Caller, RunError> {
        let unsupported = |why: &str| Err(RunError::Unsupported(String::from(why)));
        if plan.arch != Arch::X86_64 || plan.page_size != PAGE {
            return unsupported("the plan is not for x86_64 with 4 KiB pages");
        }
        if Proc::Current.thread_count().unwrap_or(1) > 1 {
            return unsupported("the calling process has several threads");
        }
        if runner == Runner::PtraceHelper && is_traced() {
            return unsupported(
                "the calling process is being traced (a debugger): the helper cannot attach",
            );
        }
        // The files, opened here so that a failure leaves the caller as it was.
        let files: Vec<OwnedFd> = plan
            .files
            .iter()
            .map(|f| open_node(&f.node))
            .collect::<Result<_, _>>()?;
        let exe = plan
            .files
            .iter()
            .position(|f| f.path == plan.exe)
            .and_then(|i| files.get(i))
            .ok_or_else(|| RunError::Unsupported(String::from("the executable is not mapped")))?
            .as_raw_fd();
        let maps = Proc::Current
            .maps()
            .map_err(|e| RunError::proc("/proc/self/maps", e))?;
        let specials = script::specials(plan, &maps)?;
        let execfd = match (plan.execfd, &plan.execfd_file) {
            (None, _) => None,
            (Some(n), Some(file)) => {
                let to = RawFd::try_from(n)
                    .ok()
                    .filter(|&fd| !process::is_inherited(fd))
                    .ok_or_else(|| {
                        RunError::Unsupported(format!(
                            "AT_EXECFD {n} is not a free descriptor number for the program \
                             (one it inherits is open there)"
                        ))
                    })?;
                Some((open_node(&file.node)?, to))
            }
            (Some(_), None) => return unsupported("the plan's AT_EXECFD names no file"),
        };
        Ok(Caller {
            files,
            exe,
            maps,
            specials,
            execfd,
        })
    }

    /// The descriptors of the plan's files.
    pub(super) fn fds(&self) -> Vec<RawFd> {
        self.files.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// The `AT_EXECFD` installation: (the program's descriptor here, its number there).
    pub(super) fn execfd(&self) -> Option<(RawFd, RawFd)> {
        self.execfd.as_ref().map(|(fd, to)| (fd.as_raw_fd(), *to))
    }

    /// Maps the temporary pages (`len` bytes) free now and outside every planned VMA, fills
    /// the data page with `data`, and installs `code` in the code page.
    pub(super) fn map_temp(
        &self,
        plan: &Plan<HostHandle>,
        len: u64,
        code: Code,
        data: impl FnOnce(TempRange) -> Result<[u8; PAGE as usize], RunError>,
    ) -> Result<TempPages, RunError> {
        let mut pages = map_outside(plan, len)?;
        let bytes = data(temp_range(&pages))?;
        let out_of_bounds =
            |_| RunError::Unsupported(String::from("the temporary pages are too small"));
        pages
            .write(pages.addr() + PAGE, &bytes)
            .map_err(out_of_bounds)?;
        pages.install(code).map_err(|e| match e {
            PagesError::Sys(e) => RunError::host("mprotect of the temporary code page", e),
            PagesError::OutOfBounds => {
                RunError::Unsupported(String::from("the temporary code does not fit in a page"))
            }
        })?;
        Ok(pages)
    }
}

/// Where `pages` are.
pub(super) fn temp_range(pages: &TempPages) -> TempRange {
    TempRange {
        addr: pages.addr(),
        len: pages.len(),
    }
}

/// Maps `len` bytes free now and outside every planned VMA: where the kernel chooses, else at
/// hints every 4 GiB over the lower half of the address space.
fn map_outside(plan: &Plan<HostHandle>, len: u64) -> Result<TempPages, RunError> {
    let planned: Vec<(u64, u64)> = plan.vmas.iter().map(|v| (v.start, v.end)).collect();
    let try_at = |hint: Option<u64>| -> Option<TempPages> {
        let pages = TempPages::map(hint, len).ok()?;
        let range = (pages.addr(), pages.addr() + len);
        // An overlapping mapping is dropped, i.e. unmapped, here.
        (!planned.iter().any(|&r| r.0 < range.1 && range.0 < r.1)).then_some(pages)
    };
    let mut found = try_at(None);
    let mut hint = 1u64 << 32;
    while found.is_none() && hint < (1u64 << 46) {
        found = try_at(Some(hint));
        hint += 1u64 << 32;
    }
    found.ok_or_else(|| {
        RunError::Unsupported(String::from(
            "no free place for the temporary pages outside the planned image",
        ))
    })
}

/// The signal actions that `flush_signal_handlers` changes: `(signal, ignored)`.
fn signals_to_reset() -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    for sig in 1..=64u64 {
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        let Ok(old) = process::signal_action(sig) else {
            continue;
        };
        let ignored = old.handler == libc::SIG_IGN as u64;
        let clean =
            (old.handler == libc::SIG_DFL as u64 || ignored) && old.flags == 0 && old.mask == 0;
        if !clean {
            out.push((sig, ignored));
        }
    }
    out
}

/// The state of the calling process that the exec changes: signal actions, ids,
/// personality.
pub(super) fn state() -> Result<CallerState, RunError> {
    let signals = signals_to_reset();
    let ([r, e, s], [rg, eg, sg]) =
        process::resids().map_err(|e| RunError::host("getresuid/getresgid", e))?;
    let personality =
        process::personality().map_err(|e| RunError::host("personality (query)", e))?;
    Ok(CallerState {
        pid: rustix::process::getpid().as_raw_nonzero().get(),
        signals,
        ids: [r, e, s, rg, eg, sg],
        personality,
    })
}

/// The descriptors with `FD_CLOEXEC`, in increasing order (listed last, once every
/// descriptor of the exec, pipes included, exists).
pub(super) fn close_on_exec_fds() -> Result<Vec<RawFd>, RunError> {
    let fds = Proc::Current
        .fds()
        .map_err(|e| RunError::proc("/proc/self/fd", e))?;
    // The directory's own descriptor is closed now, so fcntl fails on it and drops it.
    Ok(fds
        .into_iter()
        .filter(|&fd| process::is_close_on_exec(fd))
        .collect())
}
