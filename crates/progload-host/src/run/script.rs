//! The replaced process's side (x86_64): everything that can fail is done here, before the
//! point of no return, and compiled into a [`Script`] of syscalls and memory writes that the
//! helper replays inside this process over `ptrace`.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use progload::arch::Arch;
use progload::mm::Backing;
use progload::Plan;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::pipe::PipeFlags;

use super::{helper, inplace, Pid, RunError};
use crate::proc::{MapsLine, Proc};
use crate::HostHandle;

/// The page size (x86_64).
pub(super) const PAGE: u64 = 4096;
/// `TASK_SIZE` with 4-level paging: the end of the user address space munmap accepts.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// x86_64 syscall numbers used by the script.
pub(super) mod nr {
    pub const CLOSE: u64 = 3;
    pub const MMAP: u64 = 9;
    pub const MUNMAP: u64 = 11;
    pub const RT_SIGACTION: u64 = 13;
    pub const MREMAP: u64 = 25;
    pub const SETRESUID: u64 = 117;
    pub const SETRESGID: u64 = 119;
    pub const SIGALTSTACK: u64 = 131;
    pub const PERSONALITY: u64 = 135;
    pub const MUNLOCKALL: u64 = 152;
    pub const PRCTL: u64 = 157;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const RSEQ: u64 = 334;
    pub const PWRITE64: u64 = 18;
    pub const ARCH_PRCTL: u64 = 158;
    pub const RT_TGSIGQUEUEINFO: u64 = 297;
}

const PR_SET_NAME: u64 = 15;
const PR_SET_MM: u64 = 35;
const PR_SET_MM_MAP: u64 = 14;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const SS_DISABLE: i32 = 2;

/// Offsets of the argument blocks in the temporary data page.
const OFF_SIG_DFL: u64 = 0;
const OFF_SIG_IGN: u64 = 32;
const OFF_STACK_T: u64 = 64;
const OFF_MM_MAP: u64 = 128;
const OFF_AUXV: u64 = 256;
const OFF_COMM: u64 = 1024;
/// The traced path's blocks (module `inplace`): the `SIGTRAP` siginfo and the final block.
pub(super) const OFF_SIGINFO: u64 = 1088;
pub(super) const OFF_FINAL: u64 = 1280;
/// `sizeof(struct prctl_mm_map)`.
const MM_MAP_SIZE: u64 = 104;

/// How the helper judges an injected syscall's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// Any non-error result.
    Ok,
    /// Exactly this value (mmap's address).
    Value(u64),
    /// Failures are ignored (closing a descriptor that may already be closed, ...).
    Any,
}

/// One step of the rebuild.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// A syscall injected into the replaced process.
    Sys {
        /// The syscall number.
        nr: u64,
        /// Its six arguments.
        args: [u64; 6],
        /// What it does, for error messages.
        what: &'static str,
        /// How its result is checked.
        expect: Expect,
    },
    /// Bytes written through `/proc/PID/mem` (whatever the protection).
    Write {
        /// Address.
        addr: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// What the helper replays.
#[derive(Debug)]
pub(super) struct Script {
    /// The traced path's state (module `inplace`), or `None` on the helper path.
    pub traced: Option<inplace::Traced>,
    /// The replaced process.
    pub pid: Pid,
    /// Address of the `syscall` instruction in the temporary code page.
    pub gadget: u64,
    /// The steps, in order; the last one unmaps the temporary pages.
    pub steps: Vec<Step>,
    /// The first instruction.
    pub entry: u64,
    /// The initial stack pointer.
    pub sp: u64,
}

pub(super) fn sys(nr: u64, args: [u64; 6], what: &'static str, expect: Expect) -> Step {
    Step::Sys {
        nr,
        args,
        what,
        expect,
    }
}

fn read_maps() -> Result<Vec<MapsLine>, RunError> {
    Proc::Current
        .maps()
        .map_err(|e| RunError::proc("/proc/self/maps", e))
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The temporary pages: `r-x` code (one `syscall`, or the interpreter of the traced path),
/// then `rw-` data (the argument blocks), then, on the traced path only, the step table and
/// the bytes it writes.
pub(super) struct Temp {
    pub(super) addr: u64,
    pub(super) len: u64,
}

impl Drop for Temp {
    fn drop(&mut self) {
        // SAFETY: the pages at `addr` were mapped by `Temp::map` and nothing refers to them
        // outside this struct.
        let _ = unsafe { rustix::mm::munmap(self.addr as *mut _, self.len as usize) };
    }
}

impl Temp {
    /// Maps `len` bytes (at least two pages) free now and outside every planned VMA
    /// (`avoid`).
    pub(super) fn map(avoid: &[(u64, u64)], len: u64) -> Result<Temp, RunError> {
        let try_at = |hint: u64, flags: MapFlags| -> Option<u64> {
            // SAFETY: a fresh anonymous private mapping; with a hint it is
            // MAP_FIXED_NOREPLACE, so it never replaces an existing mapping.
            let p = unsafe {
                rustix::mm::mmap_anonymous(
                    hint as *mut _,
                    len as usize,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | flags,
                )
            }
            .ok()? as u64;
            if avoid.iter().any(|&r| overlaps(r, (p, p + len))) {
                // SAFETY: the mapping was just created above and is not referenced.
                let _ = unsafe { rustix::mm::munmap(p as *mut _, len as usize) };
                return None;
            }
            Some(p)
        };
        let mut found = try_at(0, MapFlags::empty());
        // Fall back to hints every 4 GiB over the lower half of the address space.
        let mut hint = 1u64 << 32;
        while found.is_none() && hint < (1u64 << 46) {
            found = try_at(hint, MapFlags::FIXED_NOREPLACE);
            hint += 1u64 << 32;
        }
        let addr = found.ok_or_else(|| {
            RunError::Unsupported(String::from(
                "no free place for the temporary pages outside the planned image",
            ))
        })?;
        Ok(Temp { addr, len })
    }

    fn gadget(&self) -> u64 {
        self.addr
    }

    pub(super) fn data(&self) -> u64 {
        self.addr + PAGE
    }

    /// Writes the code page (`code`, then `int3`s), the data page, and makes the code page
    /// `r-x`.
    pub(super) fn fill(
        &self,
        code_bytes: &[u8],
        data: &[u8; PAGE as usize],
    ) -> Result<(), RunError> {
        let mut code = [0xccu8; PAGE as usize];
        if code_bytes.len() > code.len() {
            return Err(RunError::Unsupported(String::from(
                "the temporary code does not fit in a page",
            )));
        }
        code[..code_bytes.len()].copy_from_slice(code_bytes);
        // SAFETY: both pages were mapped read-write by `map`, are page-sized, and are owned by
        // this struct; the sources are local arrays of exactly one page.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.addr as *mut u8, PAGE as usize);
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.data() as *mut u8, PAGE as usize);
        }
        // SAFETY: changes the protection of our own code page only.
        unsafe {
            rustix::mm::mprotect(
                self.addr as *mut _,
                PAGE as usize,
                MprotectFlags::READ | MprotectFlags::EXEC,
            )
        }
        .map_err(|e| RunError::host("mprotect of the temporary page", e))
    }
}

pub(super) fn put(buf: &mut [u8; PAGE as usize], off: u64, bytes: &[u8]) {
    let off = off as usize;
    if let Some(dst) = buf.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

pub(super) fn put_u64s(buf: &mut [u8; PAGE as usize], off: u64, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        put(buf, off + 8 * i as u64, &w.to_le_bytes());
    }
}

/// `struct sigaction` as the kernel's `rt_sigaction` takes it.
#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
struct KSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// The signal actions that `flush_signal_handlers` changes: `(signal, ignored)`.
fn signals_to_reset() -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    for sig in 1..=64u64 {
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        let mut old = KSigaction::default();
        // SAFETY: rt_sigaction with a NULL new action only writes the current action to
        // `old`, a KSigaction of the kernel's layout, sigsetsize 8.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                std::ptr::null::<KSigaction>(),
                &mut old as *mut KSigaction,
                8 as libc::c_long,
            )
        };
        if r != 0 {
            continue;
        }
        let ignored = old.handler == 1;
        let clean = (old.handler == 0 || ignored) && old.flags == 0 && old.mask == 0;
        if !clean {
            out.push((sig, ignored));
        }
    }
    out
}

/// Descriptors with `FD_CLOEXEC`, in increasing order.
pub(super) fn cloexec_fds() -> Result<Vec<RawFd>, RunError> {
    let fds = Proc::Current
        .fds()
        .map_err(|e| RunError::proc("/proc/self/fd", e))?;
    // The directory's own descriptor is closed now, so fcntl fails on it and drops it.
    Ok(fds
        .into_iter()
        .filter(|&fd| {
            // SAFETY: the descriptor is only borrowed for this fcntl; if it is not open the
            // call fails with EBADF and nothing else happens.
            let b = unsafe { BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_getfd(b).is_ok_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
        })
        .collect())
}

fn thread_count() -> usize {
    Proc::Current.thread_count().unwrap_or(1)
}

pub(super) fn traced() -> bool {
    Proc::Current
        .status()
        .is_ok_and(|s| s.number("TracerPid").is_some_and(|pid| pid != 0))
}

fn open_node(node: &HostHandle) -> Result<OwnedFd, RunError> {
    let path = Proc::fd_path(std::os::fd::AsFd::as_fd(&**node).as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RunError::host("opening a file of the plan", e))
}

/// Everything prepared in the replaced process: the script and the resources that must stay
/// alive (or be released on failure).
pub(super) struct Prepared {
    pub(super) script: Script,
    pub(super) temp: Temp,
    _files: Vec<OwnedFd>,
}

/// Who replays the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// The helper process, over `ptrace` (P must not be traced).
    Helper,
    /// P itself, from the interpreter in the temporary code page (P is traced).
    Traced,
}

pub(super) fn prepare(plan: &Plan<HostHandle>, mode: Mode) -> Result<Prepared, RunError> {
    if plan.arch != Arch::X86_64 || plan.page_size != PAGE {
        return Err(RunError::Unsupported(String::from(
            "the plan is not for x86_64 with 4 KiB pages",
        )));
    }
    if plan.execfd.is_some() {
        return Err(RunError::Unsupported(String::from(
            "binfmt_misc O/C (AT_EXECFD) is not supported",
        )));
    }
    if thread_count() > 1 {
        return Err(RunError::Unsupported(String::from(
            "the calling process has several threads",
        )));
    }
    if mode == Mode::Helper && traced() {
        return Err(RunError::Unsupported(String::from(
            "the calling process is being traced (a debugger): the helper cannot attach",
        )));
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

    // The special mappings the plan keeps must be the kernel's, same names and sizes.
    let maps = read_maps()?;
    let mut specials = Vec::new(); // (current start, len, planned start)
    for v in &plan.vmas {
        if let Backing::Special(name) = &v.backing {
            let cur = maps.iter().find(|m| &m.path == name).ok_or_else(|| {
                RunError::Unsupported(format!("this process has no {name} to move"))
            })?;
            if cur.len() != v.end - v.start {
                return Err(RunError::Unsupported(format!(
                    "{name} is {:#x} bytes here, {:#x} in the plan",
                    cur.end - cur.start,
                    v.end - v.start
                )));
            }
            specials.push((cur.start, cur.end - cur.start, v.start));
        }
    }

    let traced = match mode {
        Mode::Helper => None,
        Mode::Traced => Some(inplace::Traced::new(plan, &maps, &files)?),
    };

    let planned: Vec<(u64, u64)> = plan.vmas.iter().map(|v| (v.start, v.end)).collect();
    let temp = Temp::map(&planned, traced.as_ref().map_or(2 * PAGE, |t| t.temp_len()))?;

    // The argument blocks.
    let mut data = [0u8; PAGE as usize];
    put_u64s(&mut data, OFF_SIG_IGN, &[1, 0, 0, 0]);
    put(&mut data, OFF_STACK_T + 8, &SS_DISABLE.to_le_bytes());
    let auxv: Vec<u64> = plan.auxv.iter().flat_map(|&(k, v)| [k, v]).collect();
    if OFF_AUXV + 8 * auxv.len() as u64 > OFF_COMM {
        return Err(RunError::Unsupported(String::from("auxv too long")));
    }
    let mm = &plan.mm;
    put_u64s(
        &mut data,
        OFF_MM_MAP,
        &[
            mm.start_code,
            mm.end_code,
            mm.start_data,
            mm.end_data,
            mm.start_brk,
            mm.brk,
            mm.start_stack,
            mm.arg_start,
            mm.arg_end,
            mm.env_start,
            mm.env_end,
            temp.data() + OFF_AUXV,
        ],
    );
    put(
        &mut data,
        OFF_MM_MAP + 96,
        &((8 * auxv.len()) as u32).to_le_bytes(),
    );
    put(&mut data, OFF_MM_MAP + 100, &(exe as u32).to_le_bytes());
    put_u64s(&mut data, OFF_AUXV, &auxv);
    let comm = plan.comm.get(..15).unwrap_or(&plan.comm);
    put(&mut data, OFF_COMM, comm);
    match &traced {
        None => temp.fill(&[0x0f, 0x05], &data)?,
        Some(t) => {
            t.fill_data(&mut data, &temp, plan);
            temp.fill(inplace::code(), &data)?;
        }
    }

    // Process state the exec changes.
    let signals = signals_to_reset();
    let mut cur_ids = [0u32; 6];
    // SAFETY: getresuid/getresgid write three ids each to the valid pointers given.
    unsafe {
        let [r, e, s, rg, eg, sg] = &mut cur_ids;
        libc::getresuid(r, e, s);
        libc::getresgid(rg, eg, sg);
    }
    let c = &plan.credentials;
    let new_ids = [c.uid, c.euid, c.suid, c.gid, c.egid, c.sgid];
    if new_ids != cur_ids && cur_ids[1] != 0 {
        return Err(RunError::NeedsPrivilege);
    }
    // SAFETY: personality(0xffffffff) only queries the persona.
    let persona = unsafe { libc::personality(0xffff_ffff) } as u32;

    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let mut steps = traced.as_ref().map_or_else(Vec::new, |t| t.first_steps());

    // Unmap everything but the temporary pages and the special mappings the plan keeps.
    let mut keep: Vec<(u64, u64)> = vec![(temp.addr, temp.addr + temp.len)];
    keep.extend(specials.iter().map(|&(s, len, _)| (s, s + len)));
    keep.sort_unstable();
    let mut at = 0u64;
    for &(s, e) in &keep {
        if s > at {
            steps.push(sys(
                nr::MUNMAP,
                [at, s - at, 0, 0, 0, 0],
                "munmap of the old image",
                Expect::Ok,
            ));
        }
        at = at.max(e);
    }
    if at < TASK_SIZE {
        steps.push(sys(
            nr::MUNMAP,
            [at, TASK_SIZE - at, 0, 0, 0, 0],
            "munmap of the old image",
            Expect::Ok,
        ));
    }
    // exec_mm_release(): no robust list, no clear_child_tid; a fresh mm has no def_flags.
    steps.push(sys(
        nr::SET_ROBUST_LIST,
        [0, 24, 0, 0, 0, 0],
        "set_robust_list",
        Expect::Any,
    ));
    steps.push(sys(
        nr::SET_TID_ADDRESS,
        [0; 6],
        "set_tid_address",
        Expect::Any,
    ));
    steps.push(sys(nr::MUNLOCKALL, [0; 6], "munlockall", Expect::Any));

    // Move the vDSO and vvar pages, through a parking place when a destination overlaps
    // one of the current special mappings.
    let moves: Vec<(u64, u64, u64)> = specials
        .iter()
        .copied()
        .filter(|&(s, _, d)| s != d)
        .collect();
    let park = moves.iter().any(|&(_, len, d)| {
        specials
            .iter()
            .any(|&(s, l, _)| overlaps((d, d + len), (s, s + l)))
    });
    let mut moves = moves;
    if park {
        let lo = moves.iter().map(|m| m.0).min().unwrap_or(0);
        let hi = moves.iter().map(|m| m.0 + m.1).max().unwrap_or(0);
        let span = hi - lo;
        let mut avoid = planned.clone();
        avoid.extend_from_slice(&keep);
        let mut base = 1u64 << 40;
        while avoid.iter().any(|&r| overlaps(r, (base, base + span))) {
            base += 1u64 << 32;
            if base >= 1u64 << 46 {
                return Err(RunError::Unsupported(String::from(
                    "no parking place for the vDSO",
                )));
            }
        }
        for m in &mut moves {
            let parked = base + (m.0 - lo);
            steps.push(sys(
                nr::MREMAP,
                [m.0, m.1, m.1, MREMAP_MAYMOVE | MREMAP_FIXED, parked, 0],
                "mremap of the vDSO (parking)",
                Expect::Value(parked),
            ));
            m.0 = parked;
        }
    }
    for &(s, len, d) in &moves {
        steps.push(sys(
            nr::MREMAP,
            [s, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, d, 0],
            "mremap of the vDSO",
            Expect::Value(d),
        ));
    }

    if persona != plan.personality {
        steps.push(sys(
            nr::PERSONALITY,
            [plan.personality as u64, 0, 0, 0, 0, 0],
            "personality",
            Expect::Any,
        ));
    }
    // mm fields, auxv and /proc/PID/exe, before the new files are mapped (the old exe must
    // no longer be mapped, and the new one may be the same file).
    steps.push(sys(
        nr::PRCTL,
        [
            PR_SET_MM,
            PR_SET_MM_MAP,
            temp.data() + OFF_MM_MAP,
            MM_MAP_SIZE,
            0,
            0,
        ],
        "prctl(PR_SET_MM_MAP)",
        Expect::Ok,
    ));

    // The new image.
    for v in &plan.vmas {
        let len = v.end - v.start;
        let prot = u64::from(v.prot.bits());
        let (flags, fd, off) = match &v.backing {
            Backing::File { file, offset } => {
                let fd = files.get(*file).map_or(-1, |f| f.as_raw_fd());
                (MAP_PRIVATE | MAP_FIXED, fd as i64 as u64, *offset)
            }
            Backing::Anon => (MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, u64::MAX, 0),
            Backing::Stack => (
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN,
                u64::MAX,
                0,
            ),
            Backing::Special(_) => continue,
        };
        steps.push(sys(
            nr::MMAP,
            [v.start, len, prot, flags, fd, off],
            "mmap of the new image",
            Expect::Value(v.start),
        ));
    }
    for &(addr, len) in &plan.zero {
        steps.push(Step::Write {
            addr,
            bytes: vec![0; len as usize],
        });
    }
    steps.push(Step::Write {
        addr: plan.stack.sp,
        bytes: plan.stack.bytes.clone(),
    });

    // flush_signal_handlers(), the alternate stack, comm.
    for &(sig, ignored) in &signals {
        let act = temp.data() + if ignored { OFF_SIG_IGN } else { OFF_SIG_DFL };
        steps.push(sys(
            nr::RT_SIGACTION,
            [sig, act, 0, 8, 0, 0],
            "rt_sigaction",
            Expect::Ok,
        ));
    }
    steps.push(sys(
        nr::SIGALTSTACK,
        [temp.data() + OFF_STACK_T, 0, 0, 0, 0, 0],
        "sigaltstack",
        Expect::Any,
    ));
    steps.push(sys(
        nr::PRCTL,
        [PR_SET_NAME, temp.data() + OFF_COMM, 0, 0, 0, 0],
        "prctl(PR_SET_NAME)",
        Expect::Ok,
    ));
    if new_ids != cur_ids {
        let id = |i: u32| i as u64;
        steps.push(sys(
            nr::SETRESGID,
            [id(c.gid), id(c.egid), id(c.sgid), 0, 0, 0],
            "setresgid",
            Expect::Ok,
        ));
        steps.push(sys(
            nr::SETRESUID,
            [id(c.uid), id(c.euid), id(c.suid), 0, 0, 0],
            "setresuid",
            Expect::Ok,
        ));
    }

    if let Some(t) = &traced {
        steps.extend(t.last_steps(plan, &temp));
    }

    Ok(Prepared {
        script: Script {
            traced,
            pid,
            gadget: temp.gadget(),
            steps,
            entry: plan.entry,
            sp: plan.stack.sp,
        },
        temp,
        _files: files,
    })
}

/// Appends the close-on-exec closes and (on the helper path) the final unmap of the temporary
/// pages. Done last in the caller, once every descriptor of the exec (pipes included) exists.
pub(super) fn finish_script(script: &mut Script, temp: &Temp) -> Result<(), RunError> {
    for fd in cloexec_fds()? {
        script.steps.push(sys(
            nr::CLOSE,
            [fd as u64, 0, 0, 0, 0, 0],
            "close",
            Expect::Any,
        ));
    }
    if script.traced.is_none() {
        script.steps.push(sys(
            nr::MUNMAP,
            [script.gadget, temp.len, 0, 0, 0, 0],
            "munmap of the temporary pages",
            Expect::Ok,
        ));
    }
    Ok(())
}

pub(super) fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, RunError> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RunError::host("reading from the helper", e)),
        }
    }
}

/// Replaces the calling process with `plan`.
pub(super) fn exec(plan: &Plan<HostHandle>) -> Result<Infallible, RunError> {
    if traced() {
        // A debugger holds P: no helper can attach; P rebuilds itself.
        return inplace::exec(plan);
    }
    let mut prepared = prepare(plan, Mode::Helper)?;
    // Pipes: helper → us (its pid, then an error report), us → helper (go).
    let (from_helper, helper_w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| RunError::host("pipe", e))?;
    let (go_r, go_w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| RunError::host("pipe", e))?;
    finish_script(&mut prepared.script, &prepared.temp)?;
    let script = &prepared.script;

    // First fork: a raw clone with exit signal 0, so no SIGCHLD reaches us.
    // SAFETY: clone without CLONE_VM (flags 0) is fork: the child gets a copy of this
    // single-threaded process (checked in `prepare`) and never returns from this function:
    // it only forks, writes to a pipe and calls _exit.
    let h1 = unsafe { libc::syscall(libc::SYS_clone, 0 as libc::c_long, 0, 0, 0, 0) };
    if h1 < 0 {
        return Err(RunError::host("clone of the helper's parent", last_errno()));
    }
    if h1 == 0 {
        // SAFETY: plain fork of a single-threaded process.
        let h2 = unsafe { libc::fork() };
        if h2 == 0 {
            helper::main(script, go_r.as_raw_fd(), helper_w.as_raw_fd());
        }
        // The helper's pid, or the fork's negated errno.
        let msg = if h2 < 0 {
            -last_errno().raw_os_error()
        } else {
            h2
        }
        .to_le_bytes();
        let _ = rustix::io::write(&helper_w, &msg);
        // SAFETY: _exit ends this helper process without running any destructor of the
        // copied state.
        unsafe { libc::_exit(0) };
    }
    drop(helper_w);
    drop(go_r);
    let mut status = 0;
    // SAFETY: waits for (and reaps) our own clone child; `status` is a valid out pointer.
    let _ = unsafe { libc::waitpid(h1 as libc::pid_t, &mut status, libc::__WALL) };
    let mut buf = [0u8; 4];
    if read_some(&from_helper, &mut buf)? != 4 {
        return Err(RunError::Unsupported(String::from(
            "the helper process did not start",
        )));
    }
    let h2 = i32::from_le_bytes(buf);
    let h2 = match rustix::process::Pid::from_raw(h2) {
        Some(pid) => pid,
        None => match h2.checked_neg().and_then(errno_from_raw) {
            Some(errno) => return Err(RunError::host("fork of the helper", errno)),
            None => {
                return Err(RunError::Unsupported(String::from(
                    "the helper process did not start",
                )))
            }
        },
    };
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::ProcessID(h2));
    rustix::io::write(&go_w, &[1]).map_err(|e| RunError::host("starting the helper", e))?;

    // From here the helper drives us; we only come back if it failed before the point of no
    // return, with its report.
    let mut report = [0u8; 1024];
    let n = read_some(&from_helper, &mut report)?;
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::None);
    Err(helper::decode_report(report.get(..n).unwrap_or(&[])))
}

/// Forks; the child replaces itself with `plan`; returns its pid once it is past its point of
/// no return.
pub(super) fn spawn(plan: &Plan<HostHandle>) -> Result<Pid, RunError> {
    let (r, w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| RunError::host("pipe", e))?;
    // SAFETY: fork; the child only runs `exec` (which allocates, as glibc allows after fork)
    // and then writes its error and calls _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(RunError::host("fork", last_errno()));
    }
    if child == 0 {
        drop(r);
        let e = match exec(plan) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        let mut msg = e.errno().0.to_le_bytes().to_vec();
        msg.extend_from_slice(e.to_string().as_bytes());
        let _ = rustix::io::write(&w, &msg);
        // SAFETY: ends the child without running the parent's copied destructors.
        unsafe { libc::_exit(127) };
    }
    drop(w);
    let mut msg = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = read_some(&r, &mut buf)?;
        if n == 0 {
            break;
        }
        msg.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
    if msg.is_empty() {
        return Ok(child);
    }
    let mut status = 0;
    // SAFETY: reaps our own child, which has failed and exited; `status` is a valid pointer.
    let _ = unsafe { libc::waitpid(child, &mut status, 0) };
    let Some((errno, message)) = msg.split_first_chunk::<4>() else {
        return Err(RunError::Unsupported(String::from(
            "the child exited with a truncated report",
        )));
    };
    Err(RunError::Reported {
        message: String::from_utf8_lossy(message).into_owned(),
        errno: progload::Errno(i32::from_le_bytes(*errno)),
    })
}

/// The errno a failed libc call left behind.
fn last_errno() -> rustix::io::Errno {
    let raw = std::io::Error::last_os_error().raw_os_error();
    raw.and_then(errno_from_raw)
        .unwrap_or(rustix::io::Errno::IO)
}

/// `raw` as an errno, if it is one (1..4096).
pub(super) fn errno_from_raw(raw: i32) -> Option<rustix::io::Errno> {
    (1..4096)
        .contains(&raw)
        .then(|| rustix::io::Errno::from_raw_os_error(raw))
}
