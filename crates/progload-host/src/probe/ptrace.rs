//! The probe's parent: it forks the child (module `child`), waits for the `SIGTRAP` the
//! kernel raises once a traced task has completed `execve`, reads the image from the
//! registers and `/proc/PID`, and kills and reaps the child on every path.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{kill_process, waitpid, Gid, Pid, Signal, Uid, WaitOptions, WaitStatus};
use rustix::thread::CapabilitySet;

use super::child::{child_main, stage_name, ChildCredentials, ChildExecveat, ChildPlan, Stage};
use super::image::{KernelImage, ProbeDirFd, ProbeExecveat, ProbeOutcome, ProbeRequest, X86Regs};
use crate::proc::Proc;
#[cfg(target_arch = "x86_64")]
use crate::sys::abi::{INT80_INSN, NR32_BRK, SYSCALL_INSN, USER32_CS, USER_CS};
use crate::sys::process::{self as sys_process, ExecArgs};
use crate::sys::ptrace as sys_ptrace;
#[cfg(target_arch = "x86_64")]
use crate::sys::ptrace::Regs;

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Owns the child's pid: kills and reaps it when dropped unless it was already reaped.
struct ChildGuard {
    pid: Pid,
    reaped: bool,
}

impl ChildGuard {
    /// `waitpid` for this child, retrying on EINTR. Marks the child reaped when the status
    /// says it is gone.
    fn wait(&mut self) -> io::Result<WaitStatus> {
        loop {
            match waitpid(Some(self.pid), WaitOptions::empty()) {
                Ok(Some((_, status))) => {
                    if status.exited() || status.signaled() {
                        self.reaped = true;
                    }
                    return Ok(status);
                }
                Ok(None) => continue,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    if e == Errno::CHILD {
                        self.reaped = true;
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SIGKILL ends the child whether it is running, ptrace-stopped or anywhere in
        // between, so the loop below terminates.
        let _ = kill_process(self.pid, Signal::KILL);
        while !self.reaped {
            if self.wait().is_err() {
                break;
            }
        }
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("the kernel probe reads the registers of x86_64, aarch64 and riscv64 only");

/// `struct user_regs_struct` of x86_64 (`arch/x86/include/asm/user_64.h`), with `eflags`
/// named `rflags` as the plan names it.
#[cfg(target_arch = "x86_64")]
const REG_NAMES: &[&str] = &[
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];
#[cfg(target_arch = "x86_64")]
const PC: &str = "rip";
#[cfg(target_arch = "x86_64")]
const SP: &str = "rsp";
/// `struct user_pt_regs` of arm64 (`arch/arm64/include/uapi/asm/ptrace.h`).
#[cfg(target_arch = "aarch64")]
const REG_NAMES: &[&str] = &[
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "sp", "pc", "pstate",
];
/// `struct user_regs_struct` of riscv (`arch/riscv/include/uapi/asm/ptrace.h`).
#[cfg(target_arch = "riscv64")]
const REG_NAMES: &[&str] = &[
    "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5",
    "t6",
];
#[cfg(not(target_arch = "x86_64"))]
const PC: &str = "pc";
#[cfg(not(target_arch = "x86_64"))]
const SP: &str = "sp";

/// `r` as words in [`REG_NAMES`] order.
#[cfg(target_arch = "x86_64")]
fn x86_words(r: &Regs) -> Vec<u64> {
    vec![
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

#[cfg(target_arch = "x86_64")]
fn to_regs(r: &Regs) -> X86Regs {
    X86Regs {
        rip: r.rip,
        rsp: r.rsp,
        rflags: r.eflags,
        cs: r.cs,
        ss: r.ss,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        orig_rax: r.orig_rax,
    }
}

/// Whether `c`'s ids or groups differ from this process's.
fn ids_differ(c: &progload::profile::Credentials) -> bool {
    use rustix::process::{getegid, geteuid, getgid, getgroups, getuid};
    let mut groups: Vec<u32> = getgroups()
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    let mut want = c.groups.clone();
    groups.sort_unstable();
    groups.dedup();
    want.sort_unstable();
    want.dedup();
    (
        getuid().as_raw(),
        geteuid().as_raw(),
        getgid().as_raw(),
        getegid().as_raw(),
    ) != (c.uid, c.euid, c.gid, c.egid)
        || groups != want
}

/// Taking other ids needs CAP_SETUID/CAP_SETGID, and without CAP_SYS_PTRACE the kernel would
/// see an unprivileged tracer and downgrade set-id execs.
fn check_privilege(req: &ProbeRequest) -> io::Result<()> {
    if !req.credentials.as_ref().is_some_and(ids_differ) {
        return Ok(());
    }
    let needed = CapabilitySet::SETUID | CapabilitySet::SETGID | CapabilitySet::SYS_PTRACE;
    if Proc::CurrentThread
        .status()?
        .capabilities("CapEff")
        .contains(needed)
    {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "probing with other credentials needs CAP_SETUID, CAP_SETGID and CAP_SYS_PTRACE",
        ))
    }
}

/// What the child's plan borrows, built before the fork.
struct Prepared {
    exec: ExecArgs,
    cwd: Option<CString>,
    groups: Vec<Gid>,
}

fn prepare(req: &ProbeRequest) -> io::Result<Prepared> {
    let path = cstring(&req.path, "path")?;
    let argv: Option<Vec<CString>> = match &req.argv {
        None => None,
        Some(v) => Some(
            v.iter()
                .map(|a| cstring(a, "argument"))
                .collect::<io::Result<_>>()?,
        ),
    };
    let envp: Vec<CString> = req
        .envp
        .iter()
        .map(|e| cstring(e, "environment string"))
        .collect::<io::Result<_>>()?;
    let cwd = match &req.cwd {
        None => None,
        Some(d) => Some(cstring(d.as_os_str().as_bytes(), "cwd")?),
    };
    let groups = req.credentials.as_ref().map_or_else(Vec::new, |c| {
        c.groups.iter().map(|&g| Gid::from_raw(g)).collect()
    });
    Ok(Prepared {
        exec: ExecArgs::new(path, argv, envp),
        cwd,
        groups,
    })
}

fn child_plan<'a>(
    req: &ProbeRequest,
    at: Option<&ProbeExecveat<'a>>,
    prepared: &'a Prepared,
    report: &'a OwnedFd,
) -> ChildPlan<'a> {
    ChildPlan {
        exec: &prepared.exec,
        cwd: prepared.cwd.as_deref(),
        stack_rlimit: req.stack_rlimit,
        personality: req.personality
            | if req.no_randomize {
                libc::ADDR_NO_RANDOMIZE as u32
            } else {
                0
            },
        credentials: req.credentials.as_ref().map(|c| ChildCredentials {
            change_ids: ids_differ(c),
            uid: Uid::from_raw(c.uid),
            euid: Uid::from_raw(c.euid),
            gid: Gid::from_raw(c.gid),
            egid: Gid::from_raw(c.egid),
            groups: &prepared.groups,
            no_new_privs: c.no_new_privs,
        }),
        report: report.as_fd(),
        execveat: at.map(|at| {
            let (dirfd, set_cloexec) = match at.dirfd {
                ProbeDirFd::Cwd => (libc::AT_FDCWD, None),
                ProbeDirFd::Fd { fd, cloexec } => (fd.as_raw_fd(), Some((fd, cloexec))),
                ProbeDirFd::Raw(n) => (n, None),
            };
            ChildExecveat {
                dirfd,
                set_cloexec,
                flags: at.flags,
            }
        }),
    }
}

/// With a deadline, a watchdog thread kills the child through a pidfd (immune to pid reuse)
/// if it has not stopped or exited in time; the returned guard stops the watchdog.
fn watchdog(pid: Pid, limit: Duration) -> Option<Watchdog> {
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let flag = done.clone();
    let handle = std::thread::spawn(move || {
        let (lock, cvar) = &*flag;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, timeout) = cvar
            .wait_timeout_while(guard, limit, |finished| !*finished)
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() && !*guard {
            let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
        }
    });
    Some(Watchdog { done, handle })
}

type Flag = std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>;

struct Watchdog {
    done: Flag,
    handle: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn stop(self) {
        *self.done.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.1.notify_all();
        let _ = self.handle.join();
    }
}

/// Runs the exec (through `execveat` when `at` is given); with `read`, reads the image at
/// the first instruction, else only reaches it (the kernel's exec cost, for benchmarks:
/// `Stopped` is then reported with an empty image). With `deadline`, a child that has neither
/// stopped nor exited in time is killed (`Killed { signal: SIGKILL }`).
pub(super) fn run_with(
    req: &ProbeRequest,
    at: Option<&ProbeExecveat<'_>>,
    read: bool,
    deadline: Option<Duration>,
) -> io::Result<ProbeOutcome> {
    check_privilege(req)?;
    // Everything the child touches is built here, before fork.
    let prepared = prepare(req)?;
    let (report_rd, report_wr): (OwnedFd, OwnedFd) = pipe_with(PipeFlags::CLOEXEC)?;
    let plan = child_plan(req, at, &prepared, &report_wr);

    // The child only runs `child_main`, which uses async-signal-safe system calls on data
    // prepared above and ends in execve or _exit, so the usual fork-in-a-threaded-process
    // hazards (locks held by other threads, allocator state) cannot be hit.
    let pid = sys_process::fork(|| child_main(&plan))?;
    let mut child = ChildGuard { pid, reaped: false };
    drop(report_wr);

    let watchdog = deadline.and_then(|limit| watchdog(child.pid, limit));
    let status = child.wait();
    if let Some(w) = watchdog {
        w.stop();
    }
    let status = status?;
    if let Some(sig) = status.stopping_signal() {
        if sig != libc::SIGTRAP {
            return Ok(ProbeOutcome::Killed { signal: sig });
        }
        let image = if read {
            read_image(&mut child)?
        } else {
            KernelImage::default()
        };
        return Ok(ProbeOutcome::Stopped(image));
    }
    if let Some(sig) = status.terminating_signal() {
        return Ok(ProbeOutcome::Killed { signal: sig });
    }
    child_report(&report_rd, status)
}

/// The child exited: it must have reported why through the pipe.
fn child_report(report: &OwnedFd, status: WaitStatus) -> io::Result<ProbeOutcome> {
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        match rustix::io::read(report, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if got != msg.len() {
        return Err(io::Error::other(format!(
            "probe child exited ({status:?}) without reporting an execve error"
        )));
    }
    let stage = i32::from_ne_bytes(msg[..4].try_into().expect("4 bytes"));
    let errno = i32::from_ne_bytes(msg[4..].try_into().expect("4 bytes"));
    if stage == Stage::Execve as i32 {
        return Ok(ProbeOutcome::Refused { errno });
    }
    let err = io::Error::from_raw_os_error(errno);
    Err(io::Error::new(
        err.kind(),
        format!("probe child setup failed in {}: {err}", stage_name(stage)),
    ))
}

/// `Uid:`/`Gid:` of `/proc/PID/status`: real, effective, saved and filesystem id.
fn four_ids(status: &crate::proc::Status, name: &str) -> io::Result<[u32; 4]> {
    let ids = status
        .ids(name)
        .ok_or_else(|| invalid_data(format!("no {name}: ids in status")))?;
    ids.try_into()
        .map_err(|_| invalid_data(format!("{name}: not 4 ids in status")))
}

fn read_image(child: &mut ChildGuard) -> io::Result<KernelImage> {
    let pid = child.pid;
    let proc = Proc::Pid(pid.as_raw_nonzero().get());

    // x86_64: PTRACE_GETREGS, whose 64-bit layout also serves a 32-bit tracee (its
    // NT_PRSTATUS is the 32-bit one).
    #[cfg(target_arch = "x86_64")]
    let raw_regs = sys_ptrace::getregs(pid)?;
    #[cfg(target_arch = "x86_64")]
    let (regs, words) = (to_regs(&raw_regs), x86_words(&raw_regs));
    #[cfg(not(target_arch = "x86_64"))]
    let (regs, words) = (X86Regs::default(), sys_ptrace::get_prstatus(pid)?);
    let registers: Vec<(String, u64)> = REG_NAMES
        .iter()
        .map(|n| n.to_string())
        .zip(words.iter().copied())
        .collect();
    let named = |n: &str| registers.iter().find(|(k, _)| k == n).map(|&(_, v)| v);
    let (pc, sp) = match (named(PC), named(SP)) {
        (Some(pc), Some(sp)) => (pc, sp),
        _ => return Err(invalid_data("the tracee's registers are incomplete".into())),
    };
    let maps = proc.maps()?;
    // An ia32 task (x86_64's 32-bit code selector) has 32-bit auxv words.
    #[cfg(target_arch = "x86_64")]
    let auxv = if raw_regs.cs == USER32_CS {
        proc.auxv_words(4)?
    } else {
        proc.auxv()?
    };
    #[cfg(not(target_arch = "x86_64"))]
    let auxv = proc.auxv()?;
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut mm = proc.stat_mm()?;
    let comm = proc.comm()?;
    let exe = proc.exe()?;
    let status = proc.status()?;
    let (uids, gids) = (four_ids(&status, "Uid")?, four_ids(&status, "Gid")?);
    let no_new_privs = status.flag("NoNewPrivs");
    let personality = proc.personality()?;

    // The stack is the mapping holding sp; maps may label it [heap] (a brk that touches it
    // before 6.6's strict test) rather than [stack].
    let stack = maps
        .iter()
        .find(|m| m.start <= sp && sp < m.end)
        .ok_or_else(|| invalid_data(format!("no mapping holds sp {sp:#x}")))?;
    let stack_top = stack.end;
    let len =
        usize::try_from(stack_top - sp).map_err(|_| invalid_data("stack too large".into()))?;
    let mut stack_bytes = vec![0u8; len];
    proc.read_mem(sp, &mut stack_bytes)?;
    let vdso_image = maps.iter().find(|m| m.path == b"[vdso]").and_then(|m| {
        let mut bytes = vec![0u8; usize::try_from(m.end - m.start).ok()?];
        proc.read_mem(m.start, &mut bytes).ok()?;
        Some(bytes)
    });

    // Last, because it runs code in the child. Elsewhere than x86_64 the break is not read:
    // right after an exec it always equals start_brk.
    #[cfg(target_arch = "x86_64")]
    {
        mm.brk = inject_brk0(child, &raw_regs, proc);
    }

    Ok(KernelImage {
        regs,
        registers,
        pc,
        sp,
        maps,
        auxv,
        stack_top,
        stack_bytes,
        mm,
        comm,
        exe,
        uids,
        gids,
        no_new_privs,
        personality,
        vdso_image,
    })
}

/// Make the stopped child execute `brk(0)` (which returns the current break and changes
/// nothing) by placing a `syscall` instruction at `rip` and single-stepping it; the original
/// bytes and registers are restored afterwards. Any failure gives `None`.
#[cfg(target_arch = "x86_64")]
fn inject_brk0(child: &mut ChildGuard, regs: &Regs, proc: Proc) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let pid = child.pid;
    // brk(0) by `syscall` in 64-bit code, by `int $0x80` in an ia32 task.
    let (insn, nr) = match regs.cs {
        USER_CS => (SYSCALL_INSN, libc::SYS_brk as u64),
        USER32_CS => (INT80_INSN, NR32_BRK),
        _ => return None,
    };
    let mem = proc.open_mem().ok()?;
    let mut saved = [0u8; 2];
    mem.read_exact_at(&mut saved, regs.rip).ok()?;
    mem.write_all_at(&insn, regs.rip).ok()?;

    let result = (|| {
        let mut call = *regs;
        call.rax = nr;
        call.rdi = 0;
        call.rbx = 0;
        call.orig_rax = u64::MAX;
        sys_ptrace::setregs(pid, &call).ok()?;
        sys_ptrace::singlestep(pid, 0).ok()?;
        let status = child.wait().ok()?;
        if status.stopping_signal() != Some(libc::SIGTRAP) {
            // Stopped by something else, or gone: the caller's guard deals with it.
            return None;
        }
        let after = sys_ptrace::getregs(pid).ok()?;
        if after.rip != regs.rip + insn.len() as u64 {
            return None;
        }
        Some(after.rax)
    })();

    if child.reaped {
        return None;
    }
    // Best effort: the child is killed right after this anyway.
    let _ = mem.write_all_at(&saved, regs.rip);
    let _ = sys_ptrace::setregs(pid, regs);
    result
}
