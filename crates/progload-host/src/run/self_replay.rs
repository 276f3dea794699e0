//! The self-replay runner (x86_64), for a caller a debugger already traces: no helper can
//! attach, so the caller replays the [`Script`] itself, from an interpreter in the temporary
//! code page, and finishes with a trampoline that leaves nothing behind (see the module docs
//! of `run` for the whole sequence and its residual differences).
//!
//! [`SelfReplay::prepare`] finds everything the replay needs before the point of no return
//! (a `syscall` instruction of the new image to finish on, the rseq registration, whether
//! the tracer stops at every syscall); [`SelfReplay::extend`] adds its first and last steps
//! to the script and [`SelfReplay::run`] lowers the script into the interpreter's table and
//! runs it.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};

use progload::mm::Backing;
use progload::{Plan, Prot};
use rustix::io::Errno;

use super::error::RunError;
use super::script::{
    put, put_u64s, syscall, Expect, Script, Step, TempRange, OFF_FINAL, OFF_SIGINFO,
};
use crate::proc::{MapsLine, Proc};
use crate::sys::abi::{
    ARCH_SET_FS, ARCH_SET_GS, PAGE, PIDFD_SELF, RSEQ_FLAG_UNREGISTER, SYSCALL_INSN, USER_CS,
    USER_DS,
};
use crate::sys::pages::{
    self, MadviseCheck, TempPages, ENTRY, KIND_ANY, KIND_END, KIND_OK, KIND_VALUE,
};
use crate::sys::process;
use crate::sys::rseq::{self, Registration};
use crate::HostHandle;

/// `sizeof(struct ucontext)` on x86_64: what `rt_sigreturn` reads, at the stack pointer.
const UCONTEXT_SIZE: u64 = 304;
/// Offset of `uc_stack.ss_flags` in `struct ucontext`.
const UC_STACK_FLAGS: usize = 24;
/// Offset of `uc_mcontext` (`struct sigcontext`) in `struct ucontext`.
const UC_MCONTEXT: usize = 40;
/// Offsets of `rsp`, `rip`, `eflags`, `cs` and `ss` in `struct sigcontext`.
const SC_RSP: usize = 120;
const SC_RIP: usize = 128;
const SC_EFLAGS: usize = 136;
const SC_CS: usize = 144;
const SC_SS: usize = 150;
/// Offset of `uc_sigmask` in `struct ucontext`.
const UC_SIGMASK: usize = 296;
/// The trampoline's length, which is also what its `process_madvise` returns: the number of
/// `rt_sigreturn`, run by the image's own `syscall` right after it.
const TRAMPOLINE_LEN: u64 = libc::SYS_rt_sigreturn as u64;

/// The trampoline, written (copy-on-write, through `/proc/self/mem`) right before a
/// `syscall` instruction `G` of the new image, in a page whose file (or vDSO) contents are
/// restored by the trampoline's own last syscall:
///
/// ```text
/// syscall                  munmap(temporary pages)          (registers from the interpreter)
/// mov $440, %eax           process_madvise(PIDFD_SELF, {page of G, 15}, 1, MADV_DONTNEED)
/// mov %r13, %rdi             drops the modified page and returns 15 = __NR_rt_sigreturn
/// mov %r12, %rsi
/// syscall
/// G: syscall (the image's own bytes)   rt_sigreturn: every register from the frame
/// ```
const TRAMPOLINE: [u8; TRAMPOLINE_LEN as usize] = {
    let nr = (libc::SYS_process_madvise as u32).to_le_bytes();
    [
        0x0f, 0x05, // syscall
        0xb8, nr[0], nr[1], nr[2], nr[3], // mov $__NR_process_madvise, %eax
        0x4c, 0x89, 0xef, // mov %r13, %rdi
        0x4c, 0x89, 0xe6, // mov %r12, %rsi
        0x0f, 0x05, // syscall
    ]
};

/// Where the trampoline goes: `G` (a `syscall` of the new image) and the iovec, in the same
/// page.
#[derive(Clone, Copy, Debug)]
struct Gadget {
    /// The final address of the `syscall` instruction.
    syscall: u64,
    /// The final address of the 16-byte iovec.
    iovec: u64,
}

/// The self-replay's state, computed before the point of no return.
#[derive(Debug)]
pub(super) struct SelfReplay {
    /// `/proc/self/mem`, for the writes (whatever the protection, as the helper's); closed
    /// by the script with the other close-on-exec descriptors.
    mem: OwnedFd,
    /// The rseq registration to undo.
    rseq: Option<Registration>,
    gadget: Gadget,
    /// Whether to raise the exec `SIGTRAP`.
    trap: bool,
    /// The signal mask to restore (the caller's).
    mask: u64,
    /// Bytes reserved after the two first temporary pages for the table and the written
    /// bytes.
    bulk: u64,
}

/// Searches `bytes` (the final contents at `base`) for a `syscall` instruction with room
/// for the trampoline before it and the iovec in the same page.
fn find_gadget(bytes: &[u8], base: u64, avoid: &[(u64, u64)]) -> Option<Gadget> {
    let tramp = TRAMPOLINE_LEN;
    for (i, w) in bytes.windows(2).enumerate() {
        if w != SYSCALL_INSN {
            continue;
        }
        let g = base + i as u64;
        let page = g & !(PAGE - 1);
        let off = g - page;
        if off < tramp || off + 2 > PAGE {
            continue;
        }
        if avoid.iter().any(|&(s, l)| s < page + PAGE && page < s + l) {
            continue;
        }
        let iov = if off - tramp >= 16 {
            0
        } else {
            let a = (off + 2 + 7) & !7;
            if a + 16 > PAGE {
                continue;
            }
            a
        };
        return Some(Gadget {
            syscall: g,
            iovec: page + iov,
        });
    }
    None
}

/// Finds the gadget in the vDSO (always mapped and the same everywhere), else in an
/// executable file mapping of the plan.
fn gadget(
    plan: &Plan<HostHandle>,
    maps: &[MapsLine],
    files: &[OwnedFd],
) -> Result<Gadget, RunError> {
    let planned_vdso = plan
        .vmas
        .iter()
        .find(|v| matches!(&v.backing, Backing::Special(n) if n == "[vdso]"));
    if let (Some(v), Some(cur)) = (planned_vdso, maps.iter().find(|m| m.path == b"[vdso]")) {
        if cur.len() == v.end - v.start {
            let mut bytes = vec![0u8; cur.len() as usize];
            if Proc::Current.read_mem(cur.start, &mut bytes).is_ok() {
                if let Some(g) = find_gadget(&bytes, v.start, &[]) {
                    return Ok(g);
                }
            }
        }
    }
    for v in &plan.vmas {
        let Backing::File { file, offset } = &v.backing else {
            continue;
        };
        if !v.prot.contains(Prot::EXEC) {
            continue;
        }
        let Some(fd) = files.get(*file) else { continue };
        let len = (v.end - v.start).min(64 << 20);
        let mut buf = vec![0u8; len as usize];
        let n = rustix::io::pread(fd, &mut buf, *offset).unwrap_or(0);
        // Only whole file pages: a page the kernel zero-pads would not come back as it is.
        let whole = n as u64 & !(PAGE - 1);
        if let Some(g) = find_gadget(&buf[..whole as usize], v.start, &plan.zero) {
            return Ok(g);
        }
    }
    Err(RunError::Unsupported(String::from(
        "no syscall instruction in the new image for the traced exec to finish on",
    )))
}

/// `process_madvise(PIDFD_SELF, {page, 15}, 1, MADV_DONTNEED, 0)` must return 15 (Linux
/// 6.15: `PIDFD_SELF`; 6.13: any advice on oneself). Checked on a scratch page.
fn check_process_madvise() -> Result<(), RunError> {
    match pages::check_process_madvise(TRAMPOLINE_LEN) {
        Err(e) => Err(RunError::host("mmap of a scratch page", e)),
        Ok(MadviseCheck::Works) => Ok(()),
        Ok(MadviseCheck::Failed(errno)) => Err(RunError::host(
            "process_madvise(PIDFD_SELF, MADV_DONTNEED), which a traced exec in place needs \
             (Linux 6.15 or later),",
            errno,
        )),
        Ok(MadviseCheck::NoEffect) => Err(RunError::Unsupported(String::from(
            "a traced exec in place needs process_madvise(PIDFD_SELF, MADV_DONTNEED) to drop \
             the page (Linux 6.15 or later)",
        ))),
    }
}

fn voluntary_switches() -> Option<u64> {
    Proc::Current
        .status()
        .ok()?
        .number("voluntary_ctxt_switches")
}

/// Whether the tracer stops P at every syscall (strace): each syscall-stop is a voluntary
/// context switch, and `getppid` never sleeps otherwise.
fn syscall_stops() -> bool {
    let Some(before) = voluntary_switches() else {
        return false;
    };
    for _ in 0..8 {
        let _ = rustix::process::getppid();
    }
    voluntary_switches().is_some_and(|after| after >= before + 8)
}

impl SelfReplay {
    /// Everything the replay needs, found before the point of no return: `/proc/self/mem`,
    /// the gadget, a working `process_madvise`, the rseq registration, the tracer's kind.
    pub(super) fn prepare(
        plan: &Plan<HostHandle>,
        maps: &[MapsLine],
        files: &[OwnedFd],
    ) -> Result<SelfReplay, RunError> {
        let mem = rustix::fs::open(
            "/proc/self/mem",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RunError::host("opening /proc/self/mem", e))?;
        let gadget = gadget(plan, maps, files)?;
        check_process_madvise()?;
        let rseq = rseq::registration().map_err(|_| {
            RunError::Unsupported(String::from(
                "an rseq area is registered that progload cannot identify",
            ))
        })?;
        let trap = !syscall_stops();
        let fds = Proc::Current.fds().map_or(64, |f| f.len()) as u64;
        let written: u64 = plan.stack.bytes.len() as u64
            + plan.zero.iter().map(|&(_, l)| l).sum::<u64>()
            + UCONTEXT_SIZE
            + TRAMPOLINE_LEN
            + 16;
        let entries = 256 + 2 * plan.vmas.len() as u64 + plan.zero.len() as u64 + 2 * fds;
        let bulk = (written + entries * ENTRY + 2 * PAGE) & !(PAGE - 1);
        Ok(SelfReplay {
            mem,
            rseq,
            gadget,
            trap,
            mask: process::signal_mask(),
            bulk,
        })
    }

    /// The temporary pages' length: code, argument blocks, table and written bytes.
    pub(super) fn temp_len(&self) -> u64 {
        2 * PAGE + self.bulk
    }

    fn frame_addr(plan: &Plan<HostHandle>) -> u64 {
        (plan.stack.sp - UCONTEXT_SIZE) & !15
    }

    /// Adds to the data page the `SIGTRAP` siginfo (as `send_sig(SIGTRAP, current, 0)` fills
    /// it: `SI_USER`, this pid, the new real uid) and the interpreter's final block.
    pub(super) fn fill_data(
        &self,
        data: &mut [u8; PAGE as usize],
        temp: TempRange,
        plan: &Plan<HostHandle>,
    ) {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        put(data, OFF_SIGINFO, &libc::SIGTRAP.to_le_bytes());
        put(data, OFF_SIGINFO + 16, &pid.to_le_bytes());
        put(data, OFF_SIGINFO + 20, &plan.credentials.uid.to_le_bytes());
        put_u64s(
            data,
            OFF_FINAL,
            &[
                temp.addr,
                temp.len,
                Self::frame_addr(plan),
                self.gadget.iovec,
                self.gadget.syscall - TRAMPOLINE_LEN,
                PIDFD_SELF as u64,
                u64::MAX,
            ],
        );
    }

    /// Adds the replay's own steps to the script: first `rseq_execve()` (while the
    /// registered area still exists), last the FS/GS bases, the `rt_sigreturn` frame below
    /// the initial stack pointer, the trampoline and its iovec, and the exec `SIGTRAP`
    /// (blocked until the frame's mask is restored).
    pub(super) fn extend(&self, script: &mut Script, plan: &Plan<HostHandle>) {
        let first = self.rseq.iter().map(|r| {
            syscall(
                libc::SYS_rseq,
                [
                    r.ptr,
                    r.len as u64,
                    RSEQ_FLAG_UNREGISTER,
                    r.sig as u64,
                    0,
                    0,
                ],
                "rseq unregister",
                Expect::Ok,
            )
        });
        script.steps.splice(0..0, first);
        let last = self.last_steps(plan, script.temp);
        script.steps.extend(last);
    }

    fn last_steps(&self, plan: &Plan<HostHandle>, temp: TempRange) -> Vec<Step> {
        let mut uc = vec![0u8; UCONTEXT_SIZE as usize];
        // uc_stack: SS_DISABLE (rt_sigreturn restores the alternate stack from it).
        uc[UC_STACK_FLAGS..UC_STACK_FLAGS + 4].copy_from_slice(&libc::SS_DISABLE.to_le_bytes());
        let sc = |off: usize| UC_MCONTEXT + off;
        uc[sc(SC_RSP)..sc(SC_RSP) + 8].copy_from_slice(&plan.stack.sp.to_le_bytes());
        uc[sc(SC_RIP)..sc(SC_RIP) + 8].copy_from_slice(&plan.entry.to_le_bytes());
        uc[sc(SC_EFLAGS)..sc(SC_EFLAGS) + 8].copy_from_slice(&plan.registers.flags.to_le_bytes());
        uc[sc(SC_CS)..sc(SC_CS) + 2].copy_from_slice(&(USER_CS as u16).to_le_bytes());
        uc[sc(SC_SS)..sc(SC_SS) + 2].copy_from_slice(&(USER_DS as u16).to_le_bytes());
        // fpstate NULL: the x87/SSE/AVX state is reset to its initial values.
        uc[UC_SIGMASK..UC_SIGMASK + 8].copy_from_slice(&self.mask.to_le_bytes());
        let page = self.gadget.syscall & !(PAGE - 1);
        let mut iov = page.to_le_bytes().to_vec();
        iov.extend_from_slice(&TRAMPOLINE_LEN.to_le_bytes());
        let mut steps = vec![
            syscall(
                libc::SYS_arch_prctl,
                [ARCH_SET_FS, 0, 0, 0, 0, 0],
                "arch_prctl(ARCH_SET_FS)",
                Expect::Ok,
            ),
            syscall(
                libc::SYS_arch_prctl,
                [ARCH_SET_GS, 0, 0, 0, 0, 0],
                "arch_prctl(ARCH_SET_GS)",
                Expect::Ok,
            ),
            Step::Write {
                addr: Self::frame_addr(plan),
                bytes: uc,
            },
            Step::Write {
                addr: self.gadget.syscall - TRAMPOLINE_LEN,
                bytes: TRAMPOLINE.to_vec(),
            },
            Step::Write {
                addr: self.gadget.iovec,
                bytes: iov,
            },
        ];
        if self.trap {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
            steps.push(syscall(
                libc::SYS_rt_tgsigqueueinfo,
                [
                    pid,
                    pid,
                    libc::SIGTRAP as u64,
                    temp.data() + OFF_SIGINFO,
                    0,
                    0,
                ],
                "queueing the exec SIGTRAP",
                Expect::Ok,
            ));
        }
        steps
    }

    /// Runs the script (with the replay's steps and the close-on-exec step added) from the
    /// interpreter: returns only on a failure before any change, with the caller's signal
    /// mask restored; after a change the process dies of `SIGSEGV`.
    pub(super) fn run(self, script: &Script, temp: &TempPages) -> Result<Infallible, RunError> {
        let (table, lowered) = lower(script, temp, self.mem.as_raw_fd())?;
        let fin = temp.addr() + PAGE + OFF_FINAL;
        // No handler of progload's may run on a half-built image: block every signal. The
        // frame restores `mask`; signals arriving meanwhile stay pending, as across execve.
        let _ = process::set_signal_mask(u64::MAX);
        let rax = temp.run_interpreter(table, fin);
        let _ = process::set_signal_mask(self.mask);
        let Some(rax) = rax else {
            return Err(RunError::Unsupported(String::from(
                "the temporary pages do not hold the interpreter",
            )));
        };
        // The interpreter stored the failing entry's index in the final block's word 6.
        let index = temp.read_u64(fin + 48).unwrap_or(u64::MAX) as usize;
        let (what, expect) = lowered
            .get(index)
            .copied()
            .unwrap_or(("the traced exec", Expect::Ok));
        let what = String::from(what);
        let err = rax > (-4096i64) as u64;
        Err(match expect {
            Expect::Value(expected) if !err => RunError::StepResult {
                what,
                got: rax,
                expected,
            },
            _ if err => RunError::Step {
                what,
                errno: Errno::from_raw_os_error((rax as i64).wrapping_neg() as i32),
            },
            _ => RunError::Unsupported(format!("{what} returned {rax:#x} in the traced exec")),
        })
    }
}

/// What each entry of the interpreter's table does and how its result is checked.
type Lowered = (&'static str, Expect);

/// Lowers the script into the interpreter's table (memory writes become `pwrite64` on
/// `/proc/self/mem`, from copies in the temporary pages). Returns the table's address and
/// each entry's description.
fn lower(script: &Script, temp: &TempPages, mem: i32) -> Result<(u64, Vec<Lowered>), RunError> {
    let table = temp.addr() + 2 * PAGE;
    let table_end = table + (script.steps.len() as u64 + 1) * ENTRY;
    let mut src = table_end;
    let mut lowered = Vec::with_capacity(script.steps.len());
    let mut entry = table;
    let too_small = |_| {
        RunError::Unsupported(String::from(
            "the temporary pages are too small for the image's bytes",
        ))
    };
    let mut push = |words: [u64; 10]| -> Result<(), RunError> {
        if entry + ENTRY > table_end {
            return Err(RunError::Unsupported(String::from("step table overflow")));
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        temp.write(entry, &bytes).map_err(too_small)?;
        entry += ENTRY;
        Ok(())
    };
    for s in &script.steps {
        match s {
            Step::Sys {
                nr,
                args,
                what,
                expect,
            } => {
                let (kind, value) = match expect {
                    Expect::Ok => (KIND_OK, 0),
                    Expect::Value(v) => (KIND_VALUE, *v),
                    Expect::Any => (KIND_ANY, 0),
                };
                let [a, b, c, d, e, f] = *args;
                push([*nr as u64, a, b, c, d, e, f, kind, value, 0])?;
                lowered.push((*what, *expect));
            }
            Step::Write { addr, bytes } => {
                let len = bytes.len() as u64;
                temp.write(src, bytes).map_err(too_small)?;
                push([
                    libc::SYS_pwrite64 as u64,
                    mem as u64,
                    src,
                    len,
                    *addr,
                    0,
                    0,
                    KIND_VALUE,
                    len,
                    0,
                ])?;
                lowered.push((
                    "writing the new image through /proc/self/mem",
                    Expect::Value(len),
                ));
                src += len;
            }
        }
    }
    push([0, 0, 0, 0, 0, 0, 0, KIND_END, 0, 0])?;
    Ok((table, lowered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_is_the_documented_instructions() {
        assert_eq!(TRAMPOLINE.len() as u64, TRAMPOLINE_LEN);
        assert_eq!(TRAMPOLINE_LEN, 15);
        assert_eq!(&TRAMPOLINE[..2], &SYSCALL_INSN);
        assert_eq!(&TRAMPOLINE[13..], &SYSCALL_INSN);
        assert_eq!(
            u32::from_le_bytes(TRAMPOLINE[3..7].try_into().unwrap()),
            440
        );
        assert!(pages::interpreter().len() < 512);
    }

    #[test]
    fn gadget_search_keeps_the_trampoline_and_iovec_in_one_page() {
        let mut bytes = vec![0u8; 2 * PAGE as usize];
        bytes[5..7].copy_from_slice(&SYSCALL_INSN); // too close to the page start
        bytes[PAGE as usize + 20..PAGE as usize + 22].copy_from_slice(&SYSCALL_INSN);
        let g = find_gadget(&bytes, 0x10000, &[]).unwrap();
        assert_eq!(g.syscall, 0x10000 + PAGE + 20);
        // Only 5 bytes before the trampoline: the iovec goes after the syscall.
        assert_eq!(g.iovec, 0x10000 + PAGE + 24);
        assert!(find_gadget(&bytes, 0x10000, &[(0x10000 + PAGE, 1)]).is_none());
    }
}
