//! The script of an exec in place (x86_64): the sequence of operations, system calls to run in
//! the process being replaced and bytes to write into it, that turns that process into the
//! planned image. [`compile`] builds it from the plan and a snapshot of the calling process;
//! it is pure data, which the two runners replay: module `ptrace_helper` from outside,
//! module `self_replay` from inside.
//!
//! The temporary pages the script runs from are a code page (the helper's `syscall`
//! instruction, or the self-replay's interpreter), then a data page holding the syscall
//! arguments at the `OFF_*` offsets ([`argument_blocks`]), then, for the self-replay only,
//! the interpreter's table and the bytes it writes.

use std::os::fd::RawFd;

use progload::mm::Backing;
use progload::{Plan, Prot};

use super::error::RunError;
use crate::proc::MapsLine;
use crate::sys::abi::PAGE;
use crate::HostHandle;

/// `TASK_SIZE` with 4-level paging (`(1 << 47) - PAGE_SIZE`): the end of the user address
/// space munmap accepts.
const TASK_SIZE: u64 = (1 << 47) - PAGE;

/// Offsets of the argument blocks in the temporary data page: a `struct sigaction` with
/// `SIG_DFL`, one with `SIG_IGN`, a `stack_t`, the `prctl_mm_map`, the auxv, the comm.
const OFF_SIG_DFL: u64 = 0;
const OFF_SIG_IGN: u64 = 32;
const OFF_STACK_T: u64 = 64;
const OFF_MM_MAP: u64 = 128;
const OFF_AUXV: u64 = 256;
const OFF_COMM: u64 = 1024;
/// `capset`'s header (`_LINUX_CAPABILITY_VERSION_3`, pid 0), then its two zeroed data
/// structs.
const OFF_CAP_HEADER: u64 = 1040;
const OFF_CAP_DATA: u64 = 1048;
/// The self-replay's blocks: the `SIGTRAP` siginfo and the interpreter's final block.
pub(super) const OFF_SIGINFO: u64 = 1088;
pub(super) const OFF_FINAL: u64 = 1280;
/// `sizeof(struct prctl_mm_map)`: twelve addresses, then `auxv_size` and `exe_fd` (32-bit).
const MM_MAP_SIZE: u64 = 12 * 8 + 4 + 4;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `sizeof(struct robust_list_head)` on x86_64, which `set_robust_list` checks.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

/// How a runner judges a syscall's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// Any non-error result.
    Ok,
    /// Exactly this value (mmap's address).
    Value(u64),
    /// Failures are ignored (closing a descriptor that may already be closed, ...).
    Any,
}

/// One operation of the rebuild.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// A syscall run in the process being replaced.
    Sys {
        /// The syscall number (`libc::SYS_*`).
        nr: libc::c_long,
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

/// A [`Step::Sys`].
pub(super) fn syscall(
    nr: libc::c_long,
    args: [u64; 6],
    what: &'static str,
    expect: Expect,
) -> Step {
    Step::Sys {
        nr,
        args,
        what,
        expect,
    }
}

/// Where the temporary pages are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TempRange {
    /// The first address: the code page.
    pub(super) addr: u64,
    /// The length of all the pages.
    pub(super) len: u64,
}

impl TempRange {
    /// The data page (the argument blocks).
    pub(super) fn data(&self) -> u64 {
        self.addr + PAGE
    }

    fn end(&self) -> u64 {
        self.addr + self.len
    }
}

/// What a runner replays.
#[derive(Debug)]
pub(super) struct Script {
    /// The process being replaced.
    pub(super) pid: i32,
    /// The temporary pages; the helper's `syscall` instruction is at their start.
    pub(super) temp: TempRange,
    /// The steps, in order.
    pub(super) steps: Vec<Step>,
    /// The first instruction.
    pub(super) entry: u64,
    /// The initial stack pointer.
    pub(super) sp: u64,
    /// The initial rflags.
    pub(super) rflags: u64,
}

impl Script {
    /// Where the helper points `rip` for each injected syscall.
    pub(super) fn gadget(&self) -> u64 {
        self.temp.addr
    }

    /// Appends the installation of the binfmt_misc `AT_EXECFD` descriptor, `execfd` = (the
    /// caller's descriptor of the program, its number in the new image), as `dup3(from, to,
    /// 0)` (open for reading, not close-on-exec, as the kernel installs it), then the closing
    /// of `fds` (the close-on-exec descriptors, listed once every descriptor of the exec
    /// exists), but the installed one.
    pub(super) fn close_on_exec(&mut self, fds: &[RawFd], execfd: Option<(RawFd, RawFd)>) {
        if let Some((from, to)) = execfd {
            self.steps.push(syscall(
                libc::SYS_dup3,
                [from as u64, to as u64, 0, 0, 0, 0],
                "dup3 of AT_EXECFD",
                Expect::Value(to as u64),
            ));
        }
        for &fd in fds.iter().filter(|&&fd| Some(fd) != execfd.map(|e| e.1)) {
            self.steps.push(syscall(
                libc::SYS_close,
                [fd as u64, 0, 0, 0, 0, 0],
                "close",
                Expect::Any,
            ));
        }
    }

    /// Appends the unmapping of the temporary pages (the helper's last step: the syscall
    /// returns into unmapped memory, but the single-step trap stops the process first).
    pub(super) fn unmap_temporary(&mut self) {
        self.steps.push(syscall(
            libc::SYS_munmap,
            [self.temp.addr, self.temp.len, 0, 0, 0, 0],
            "munmap of the temporary pages",
            Expect::Ok,
        ));
    }
}

/// A special mapping (vDSO, vvar) the plan keeps: where it is now, its length, where the plan
/// puts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Special {
    pub(super) current: u64,
    pub(super) len: u64,
    pub(super) planned: u64,
}

/// The special mappings the plan keeps, which must be the kernel's, same names and sizes.
pub(super) fn specials(
    plan: &Plan<HostHandle>,
    maps: &[MapsLine],
) -> Result<Vec<Special>, RunError> {
    let mut specials = Vec::new();
    for v in &plan.vmas {
        if let Backing::Special(name) = &v.backing {
            let cur = maps
                .iter()
                .find(|m| m.path == name.as_bytes())
                .ok_or_else(|| {
                    RunError::Unsupported(format!("this process has no {name} to move"))
                })?;
            if cur.len() != v.end - v.start {
                return Err(RunError::Unsupported(format!(
                    "{name} is {:#x} bytes here, {:#x} in the plan",
                    cur.len(),
                    v.end - v.start
                )));
            }
            specials.push(Special {
                current: cur.start,
                len: cur.len(),
                planned: v.start,
            });
        }
    }
    Ok(specials)
}

/// The calling process's state the exec changes, read before the point of no return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CallerState {
    /// Its pid.
    pub(super) pid: i32,
    /// The signal actions `flush_signal_handlers` changes: `(signal, ignored)`.
    pub(super) signals: Vec<(u64, bool)>,
    /// Real, effective and saved uid, then real, effective and saved gid.
    pub(super) ids: [u32; 6],
    /// Its personality.
    pub(super) personality: u32,
}

/// What [`compile`] needs besides the plan.
pub(super) struct Inputs<'a> {
    /// The temporary pages, kept mapped.
    pub(super) temp: TempRange,
    /// The special mappings to move.
    pub(super) specials: &'a [Special],
    /// The descriptors of the plan's files (`plan.files`, same order), open in the caller.
    pub(super) files: &'a [RawFd],
    /// The caller's state.
    pub(super) state: &'a CallerState,
    /// Every capability is dropped at the end (those of a user namespace the caller made).
    pub(super) drop_capabilities: bool,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Copies `bytes` to offset `off` of `buf` (nothing if it does not fit).
pub(super) fn put(buf: &mut [u8; PAGE as usize], off: u64, bytes: &[u8]) {
    let off = off as usize;
    if let Some(dst) = buf.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Copies `words` (little-endian) to offset `off` of `buf`.
pub(super) fn put_u64s(buf: &mut [u8; PAGE as usize], off: u64, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        put(buf, off + 8 * i as u64, &w.to_le_bytes());
    }
}

/// The temporary data page: the argument blocks of the script's syscalls. `exe` is the
/// descriptor of the executable (for `PR_SET_MM_MAP`'s `exe_fd`).
pub(super) fn argument_blocks(
    plan: &Plan<HostHandle>,
    temp: TempRange,
    exe: RawFd,
) -> Result<[u8; PAGE as usize], RunError> {
    let mut data = [0u8; PAGE as usize];
    put_u64s(&mut data, OFF_SIG_DFL, &[libc::SIG_DFL as u64, 0, 0, 0]);
    put_u64s(&mut data, OFF_SIG_IGN, &[libc::SIG_IGN as u64, 0, 0, 0]);
    put(&mut data, OFF_STACK_T + 8, &libc::SS_DISABLE.to_le_bytes());
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
    put(
        &mut data,
        OFF_CAP_HEADER,
        &LINUX_CAPABILITY_VERSION_3.to_le_bytes(),
    );
    Ok(data)
}

/// The plan's credentials: real, effective, saved uid, then gid.
fn planned_ids(plan: &Plan<HostHandle>) -> [u32; 6] {
    let c = &plan.credentials;
    [c.uid, c.euid, c.suid, c.gid, c.egid, c.sgid]
}

/// Compiles `plan` into the script that rebuilds the calling process: the old image
/// unmapped, the special mappings moved, the mm fields, the new image mapped and written, the
/// process state reset as `execve` resets it. The runners add their own first and last
/// steps, and the close-on-exec descriptors are closed last ([`Script::close_on_exec`]).
///
/// # Errors
/// A set-id plan the caller is not privileged to take, or no parking place for the vDSO.
pub(super) fn compile(plan: &Plan<HostHandle>, inputs: &Inputs<'_>) -> Result<Script, RunError> {
    let state = inputs.state;
    let new_ids = planned_ids(plan);
    if new_ids != state.ids && state.ids[1] != 0 {
        return Err(RunError::NeedsPrivilege);
    }
    let mut steps = Vec::new();
    let keep = unmap_old_image(&mut steps, inputs);
    // exec_mm_release(): no robust list, no clear_child_tid; a fresh mm has no def_flags.
    steps.push(syscall(
        libc::SYS_set_robust_list,
        [0, ROBUST_LIST_HEAD_SIZE, 0, 0, 0, 0],
        "set_robust_list",
        Expect::Any,
    ));
    steps.push(syscall(
        libc::SYS_set_tid_address,
        [0; 6],
        "set_tid_address",
        Expect::Any,
    ));
    steps.push(syscall(
        libc::SYS_munlockall,
        [0; 6],
        "munlockall",
        Expect::Any,
    ));
    move_specials(&mut steps, plan, inputs.specials, &keep)?;
    if state.personality != plan.personality {
        steps.push(syscall(
            libc::SYS_personality,
            [plan.personality as u64, 0, 0, 0, 0, 0],
            "personality",
            Expect::Any,
        ));
    }
    // mm fields, auxv and /proc/PID/exe, before the new files are mapped (the old exe must
    // no longer be mapped, and the new one may be the same file).
    steps.push(syscall(
        libc::SYS_prctl,
        [
            libc::PR_SET_MM as u64,
            libc::PR_SET_MM_MAP as u64,
            inputs.temp.data() + OFF_MM_MAP,
            MM_MAP_SIZE,
            0,
            0,
        ],
        "prctl(PR_SET_MM_MAP)",
        Expect::Ok,
    ));
    map_new_image(&mut steps, plan, inputs.files);
    reset_process_state(&mut steps, inputs.temp, state);
    if new_ids != state.ids {
        let c = &plan.credentials;
        let id = |i: u32| i as u64;
        steps.push(syscall(
            libc::SYS_setresgid,
            [id(c.gid), id(c.egid), id(c.sgid), 0, 0, 0],
            "setresgid",
            Expect::Ok,
        ));
        steps.push(syscall(
            libc::SYS_setresuid,
            [id(c.uid), id(c.euid), id(c.suid), 0, 0, 0],
            "setresuid",
            Expect::Ok,
        ));
    }
    if inputs.drop_capabilities {
        // What cap_bprm_creds_from_file() leaves a non-zero uid running a file without
        // capabilities: nothing permitted, effective or inheritable.
        steps.push(syscall(
            libc::SYS_capset,
            [
                inputs.temp.data() + OFF_CAP_HEADER,
                inputs.temp.data() + OFF_CAP_DATA,
                0,
                0,
                0,
                0,
            ],
            "capset (dropping the user namespace's capabilities)",
            Expect::Ok,
        ));
    }
    Ok(Script {
        pid: state.pid,
        temp: inputs.temp,
        steps,
        entry: plan.entry,
        sp: plan.stack.sp,
        rflags: plan.registers.flags,
    })
}

/// Unmaps everything but the temporary pages and the special mappings the plan keeps;
/// returns the kept ranges, sorted.
fn unmap_old_image(steps: &mut Vec<Step>, inputs: &Inputs<'_>) -> Vec<(u64, u64)> {
    let mut keep: Vec<(u64, u64)> = vec![(inputs.temp.addr, inputs.temp.end())];
    keep.extend(
        inputs
            .specials
            .iter()
            .map(|s| (s.current, s.current + s.len)),
    );
    keep.sort_unstable();
    let mut at = 0u64;
    let mut unmap = |from: u64, to: u64| {
        steps.push(syscall(
            libc::SYS_munmap,
            [from, to - from, 0, 0, 0, 0],
            "munmap of the old image",
            Expect::Ok,
        ));
    };
    for &(s, e) in &keep {
        if s > at {
            unmap(at, s);
        }
        at = at.max(e);
    }
    if at < TASK_SIZE {
        unmap(at, TASK_SIZE);
    }
    keep
}

/// Moves the vDSO and vvar pages with `mremap`, through a parking place when a destination
/// overlaps one of the current special mappings.
fn move_specials(
    steps: &mut Vec<Step>,
    plan: &Plan<HostHandle>,
    specials: &[Special],
    keep: &[(u64, u64)],
) -> Result<(), RunError> {
    let mut moves: Vec<Special> = specials
        .iter()
        .copied()
        .filter(|s| s.current != s.planned)
        .collect();
    let park = moves.iter().any(|m| {
        specials.iter().any(|s| {
            overlaps(
                (m.planned, m.planned + m.len),
                (s.current, s.current + s.len),
            )
        })
    });
    let mut remap = |from: u64, len: u64, to: u64, what: &'static str| {
        steps.push(syscall(
            libc::SYS_mremap,
            [
                from,
                len,
                len,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                to,
                0,
            ],
            what,
            Expect::Value(to),
        ));
    };
    if park {
        let lo = moves.iter().map(|m| m.current).min().unwrap_or(0);
        let hi = moves.iter().map(|m| m.current + m.len).max().unwrap_or(0);
        let span = hi - lo;
        let mut avoid: Vec<(u64, u64)> = plan.vmas.iter().map(|v| (v.start, v.end)).collect();
        avoid.extend_from_slice(keep);
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
            let parked = base + (m.current - lo);
            remap(m.current, m.len, parked, "mremap of the vDSO (parking)");
            m.current = parked;
        }
    }
    for m in &moves {
        remap(m.current, m.len, m.planned, "mremap of the vDSO");
    }
    Ok(())
}

/// `PROT_*` of a planned VMA.
fn prot_bits(prot: Prot) -> u64 {
    let mut bits = 0;
    for (p, b) in [
        (Prot::READ, libc::PROT_READ),
        (Prot::WRITE, libc::PROT_WRITE),
        (Prot::EXEC, libc::PROT_EXEC),
    ] {
        if prot.contains(p) {
            bits |= b;
        }
    }
    bits as u64
}

/// Maps every planned VMA at its fixed address, then writes the `padzero` ranges and the
/// stack.
fn map_new_image(steps: &mut Vec<Step>, plan: &Plan<HostHandle>, files: &[RawFd]) {
    let fixed = (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64;
    let anon = libc::MAP_ANONYMOUS as u64;
    for v in &plan.vmas {
        let (flags, fd, off) = match &v.backing {
            Backing::File { file, offset } => {
                let fd = files.get(*file).copied().unwrap_or(-1);
                (fixed, fd as i64 as u64, *offset)
            }
            Backing::Anon => (fixed | anon, u64::MAX, 0),
            Backing::Stack => (fixed | anon | libc::MAP_GROWSDOWN as u64, u64::MAX, 0),
            Backing::Special(_) => continue,
        };
        steps.push(syscall(
            libc::SYS_mmap,
            [v.start, v.end - v.start, prot_bits(v.prot), flags, fd, off],
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
}

/// `flush_signal_handlers()`, the alternate stack, comm.
fn reset_process_state(steps: &mut Vec<Step>, temp: TempRange, state: &CallerState) {
    for &(sig, ignored) in &state.signals {
        let act = temp.data() + if ignored { OFF_SIG_IGN } else { OFF_SIG_DFL };
        steps.push(syscall(
            libc::SYS_rt_sigaction,
            [sig, act, 0, crate::sys::abi::KERNEL_SIGSET_SIZE, 0, 0],
            "rt_sigaction",
            Expect::Ok,
        ));
    }
    steps.push(syscall(
        libc::SYS_sigaltstack,
        [temp.data() + OFF_STACK_T, 0, 0, 0, 0, 0],
        "sigaltstack",
        Expect::Any,
    ));
    steps.push(syscall(
        libc::SYS_prctl,
        [libc::PR_SET_NAME as u64, temp.data() + OFF_COMM, 0, 0, 0, 0],
        "prctl(PR_SET_NAME)",
        Expect::Ok,
    ));
}
