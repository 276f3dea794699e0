//! The ptrace-helper runner (x86_64), for an untraced caller: a helper process H, forked
//! twice so that it is nobody's child the new program could see, attaches to the caller P
//! with `ptrace`, replays the [`Script`] by injecting each syscall at the temporary
//! `syscall` instruction, sets the initial registers and vector state, and detaches.
//!
//! P's side is [`Channel`]: the pipes to H, the double fork, and waiting for H's report (H
//! only reports a failure before the point of no return; on success P never runs again).

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, WaitOptions, WaitStatus};

use super::error::RunError;
use super::script::{syscall, Expect, Script, Step};
use crate::sys::abi::{RSEQ_FLAG_UNREGISTER, SYSCALL_INSN, USER_CS, USER_DS};
use crate::sys::process;
use crate::sys::ptrace::{self, Regs};

/// The length of the XSAVE area the helper reads (enough for every x86 component).
const XSTATE_BUF: usize = 1 << 16;
/// The legacy FXSAVE region plus the XSAVE header: the part `reset_fpu` rewrites.
const XSAVE_LEGACY_AND_HEADER: usize = 576;
/// `XFEATURE_MASK_FP | XFEATURE_MASK_SSE`: the components taken from the buffer.
const XFEATURES_FP_SSE: u64 = 0x3;
/// `XFEATURE_PKRU`'s bit: the protection keys register, kept as it is.
const XFEATURE_PKRU_BIT: u32 = 9;
/// The x87 control word and MXCSR after `fpu_flush_thread`.
const FCW_INIT: u16 = 0x37f;
const MXCSR_INIT: u32 = 0x1f80;

/// Reads into `buf`, retrying on `EINTR`.
pub(super) fn read_some(fd: &OwnedFd, buf: &mut [u8], what: &str) -> Result<usize, RunError> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(RunError::host(what, e)),
        }
    }
}

/// The caller's ends of the pipes to the helper, and the helper's.
pub(super) struct Channel {
    /// Helper → caller: the helper's pid, then a failure report.
    from_helper: OwnedFd,
    to_caller: OwnedFd,
    /// Caller → helper: go (the ptracer is named).
    go_r: OwnedFd,
    go_w: OwnedFd,
    /// The caller's `/proc/self/mem`, opened by the caller (before it enters another root,
    /// where no `/proc` may exist) for the helper's writes.
    mem: OwnedFd,
}

impl Channel {
    /// The pipes. Opened before the script's close-on-exec step is listed, so that the
    /// script closes them in the new image.
    pub(super) fn open() -> Result<Channel, RunError> {
        let pipe =
            || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| RunError::host("pipe", e));
        let (from_helper, to_caller) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let mem = rustix::fs::open(
            "/proc/self/mem",
            OFlags::RDWR | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RunError::host("opening /proc/self/mem", e))?;
        Ok(Channel {
            from_helper,
            to_caller,
            go_r,
            go_w,
            mem,
        })
    }

    /// Forks the helper, names it the ptracer, lets it go, and waits: returns only on a
    /// failure before the point of no return, with the caller unchanged.
    pub(super) fn run(self, script: &Script) -> Result<Infallible, RunError> {
        let Channel {
            from_helper,
            to_caller,
            go_r,
            go_w,
            mem,
        } = self;
        // First fork: a raw clone with no exit signal, so no SIGCHLD reaches the caller; the
        // caller is single-threaded (checked when it prepared), the children only fork,
        // write to a pipe and replay. The helper ends up a child of init.
        let h1 = process::clone_without_exit_signal(|| {
            let h2 = process::fork(|| helper_main(script, &go_r, &to_caller, mem));
            // The helper's pid, or the fork's negated errno.
            let msg = match h2 {
                Ok(pid) => pid.as_raw_nonzero().get(),
                Err(e) => -e.raw_os_error(),
            };
            let _ = rustix::io::write(&to_caller, &msg.to_le_bytes());
            0
        })
        .map_err(|e| RunError::host("clone of the helper's parent", e))?;
        drop(to_caller);
        drop(go_r);
        let _ = wait_all(h1);
        let mut buf = [0u8; 4];
        if read_some(&from_helper, &mut buf, "reading from the helper")? != 4 {
            return Err(RunError::Unsupported(String::from(
                "the helper process did not start",
            )));
        }
        let h2 = i32::from_le_bytes(buf);
        let h2 = match Pid::from_raw(h2) {
            Some(pid) => pid,
            None => {
                return Err(match h2.checked_neg().and_then(errno_from_raw) {
                    Some(errno) => RunError::host("fork of the helper", errno),
                    None => RunError::Unsupported(String::from("the helper process did not start")),
                })
            }
        };
        let _ = rustix::process::set_ptracer(rustix::process::PTracer::ProcessID(h2));
        rustix::io::write(&go_w, &[1]).map_err(|e| RunError::host("starting the helper", e))?;

        // From here the helper drives us; we only come back if it failed before the point of
        // no return, with its report.
        let mut report = [0u8; 1024];
        let n = read_some(&from_helper, &mut report, "reading from the helper")?;
        let _ = rustix::process::set_ptracer(rustix::process::PTracer::None);
        Err(decode_report(report.get(..n).unwrap_or(&[])))
    }
}

/// `waitpid(pid, __WALL)`, retrying on `EINTR`: waits for any kind of child (a clone child
/// with no exit signal, a tracee).
fn wait_all(pid: Pid) -> Option<WaitStatus> {
    let all = WaitOptions::from_bits_retain(libc::__WALL as u32);
    loop {
        match rustix::process::waitpid(Some(pid), all) {
            Ok(Some((_, status))) => return Some(status),
            Ok(None) | Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// `raw` as an errno, if it is one (1..4096).
fn errno_from_raw(raw: i32) -> Option<Errno> {
    (1..4096)
        .contains(&raw)
        .then(|| Errno::from_raw_os_error(raw))
}

/// Why the helper gave up before the point of no return, as it reports it to the caller.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// `what` (a `ptrace` request, or a syscall injected into the caller) failed.
    Errno(String, Errno),
    /// An injected syscall returned `got` where the script needs `expected`.
    Value {
        what: String,
        got: u64,
        expected: u64,
    },
}

fn failed(what: &str) -> impl FnOnce(Errno) -> Failure + '_ {
    move |e| Failure::Errno(String::from(what), e)
}

impl Failure {
    /// The report: a tag byte, then the errno (4 bytes) or the two values (16 bytes), then
    /// `what`.
    fn encode(&self) -> Vec<u8> {
        let mut msg = Vec::new();
        let what = match self {
            Failure::Errno(what, errno) => {
                msg.push(0);
                msg.extend_from_slice(&errno.raw_os_error().to_le_bytes());
                what
            }
            Failure::Value {
                what,
                got,
                expected,
            } => {
                msg.push(1);
                msg.extend_from_slice(&got.to_le_bytes());
                msg.extend_from_slice(&expected.to_le_bytes());
                what
            }
        };
        msg.extend_from_slice(what.as_bytes());
        msg
    }
}

/// The caller's reading of the helper's report (`Failure::encode`); an empty or garbled one
/// means the helper went away without replacing the caller.
fn decode_report(msg: &[u8]) -> RunError {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes).ok();
    match msg.split_first() {
        Some((0, rest)) if rest.len() >= 4 => {
            let (errno, what) = rest.split_at(4);
            let errno = errno.try_into().map(i32::from_le_bytes).ok();
            if let Some(errno) = errno.and_then(errno_from_raw) {
                return RunError::Step {
                    what: text(what),
                    errno,
                };
            }
        }
        Some((1, rest)) if rest.len() >= 16 => {
            if let (Some(got), Some(expected)) = (word(&rest[..8]), word(&rest[8..16])) {
                return RunError::StepResult {
                    what: text(&rest[16..]),
                    got,
                    expected,
                };
            }
        }
        _ => {}
    }
    RunError::Unsupported(String::from(
        "the helper process exited without replacing this process",
    ))
}

/// The helper process's body; returns its exit code.
fn helper_main(script: &Script, go: &OwnedFd, report: &OwnedFd, mem: OwnedFd) -> i32 {
    close_others(&[go.as_raw_fd(), report.as_raw_fd(), mem.as_raw_fd()]);
    match replay(script, go, File::from(mem)) {
        Ok(()) => 0,
        Err(failure) => {
            let _ = rustix::io::write(report, &failure.encode());
            1
        }
    }
}

/// Closes every descriptor but `keep` (the two pipe ends and the caller's memory), so that
/// the helper holds none of the caller's files or pipes open.
fn close_others(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().map(|&fd| fd as u32).collect();
    keep.sort_unstable();
    let mut first = 0u32;
    for fd in keep {
        if let Some(last) = fd.checked_sub(1) {
            if first <= last {
                let _ = process::close_range(first, last);
            }
        }
        first = fd.saturating_add(1);
    }
    let _ = process::close_range(first, u32::MAX);
}

struct Tracee {
    pid: Pid,
    gadget: u64,
    /// The registers at the attach stop, restored on an early failure.
    base: Regs,
    /// Signals that arrived meanwhile; delivered at detach.
    pending: Vec<i32>,
    /// Whether a syscall changed the process (the point of no return is passed).
    committed: bool,
}

impl Tracee {
    /// The next stop of the tracee, or `None` when it is gone.
    fn wait(&self) -> Option<WaitStatus> {
        wait_all(self.pid).filter(|s| s.stopped())
    }

    /// Runs one syscall in the tracee; returns `rax`.
    fn syscall(&mut self, nr: libc::c_long, args: [u64; 6]) -> Result<u64, Failure> {
        let mut r = self.base;
        r.rip = self.gadget;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX; // no syscall restart on resume
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        ptrace::setregs(self.pid, &r).map_err(failed("PTRACE_SETREGS"))?;
        loop {
            ptrace::singlestep(self.pid, 0).map_err(failed("PTRACE_SINGLESTEP"))?;
            let status = self
                .wait()
                .ok_or_else(|| failed("the process died during the exec")(Errno::SRCH))?;
            let sig = status.stopping_signal().unwrap_or(0);
            let event = status.as_raw() >> 16;
            if event == 0 && sig != libc::SIGTRAP {
                self.pending.push(sig);
            }
            let now = ptrace::getregs(self.pid).map_err(failed("PTRACE_GETREGS"))?;
            if now.rip == self.gadget + SYSCALL_INSN.len() as u64 {
                return Ok(now.rax);
            }
        }
    }

    /// After the point of no return: the process dies of SIGSEGV, as under the kernel.
    fn die(&self) -> ! {
        let mut r = self.base;
        r.rip = 0;
        r.rsp = 0;
        r.orig_rax = u64::MAX;
        let _ = ptrace::setregs(self.pid, &r);
        let _ = ptrace::detach(self.pid, libc::SIGSEGV);
        let _ = process::kill(self.pid, libc::SIGSEGV);
        process::exit_now(1)
    }

    /// Before the point of no return: put the registers back and let the caller run on.
    fn release(&self) {
        let _ = ptrace::setregs(self.pid, &self.base);
        let sig = self.pending.first().copied().unwrap_or(0);
        let _ = ptrace::detach(self.pid, sig);
    }

    /// The vector state of a fresh exec: x87 control word 0x37f, MXCSR 0x1f80, every x87,
    /// SSE and AVX register zero (`fpu_flush_thread`).
    fn reset_fpu(&self) {
        let mut buf = vec![0u8; XSTATE_BUF];
        let len = match ptrace::get_xstate(self.pid, &mut buf) {
            Ok(len) if len >= XSAVE_LEGACY_AND_HEADER => len,
            _ => return,
        };
        let old_bv = u64::from_le_bytes(buf[512..520].try_into().unwrap_or([0; 8]));
        let mxcsr_mask: [u8; 4] = buf[28..32].try_into().unwrap_or([0; 4]);
        let sw_reserved: Vec<u8> = buf[464..512].to_vec();
        buf[..XSAVE_LEGACY_AND_HEADER].fill(0);
        buf[0..2].copy_from_slice(&FCW_INIT.to_le_bytes());
        buf[24..28].copy_from_slice(&MXCSR_INIT.to_le_bytes());
        buf[28..32].copy_from_slice(&mxcsr_mask);
        buf[464..512].copy_from_slice(&sw_reserved);
        // FP and SSE from this buffer, every other user component to its init state, PKRU as
        // it is.
        let bv = XFEATURES_FP_SSE | (old_bv & (1 << XFEATURE_PKRU_BIT));
        buf[512..520].copy_from_slice(&bv.to_le_bytes());
        let _ = ptrace::set_xstate(self.pid, &buf[..len]);
    }

    /// Sets the registers of `START_THREAD` and detaches: the program runs.
    fn start(&self, entry: u64, sp: u64, rflags: u64) -> Result<(), Failure> {
        let mut r = ptrace::zeroed_regs();
        r.rip = entry;
        r.rsp = sp;
        r.eflags = rflags;
        r.cs = USER_CS;
        r.ss = USER_DS;
        r.orig_rax = u64::MAX;
        ptrace::setregs(self.pid, &r).map_err(failed("PTRACE_SETREGS"))?;
        self.reset_fpu();
        let mut pending = self.pending.iter();
        let first = pending.next().copied().unwrap_or(0);
        ptrace::detach(self.pid, first).map_err(failed("PTRACE_DETACH"))?;
        for &sig in pending {
            // Re-sends a signal that arrived during the exec.
            let _ = process::kill(self.pid, sig);
        }
        Ok(())
    }
}

/// Attaches to the caller and stops it: `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, keeping the
/// signals that arrive before the interrupt stop.
fn attach(script: &Script) -> Result<Tracee, Failure> {
    let pid = Pid::from_raw(script.pid).ok_or_else(|| failed("the caller's pid")(Errno::SRCH))?;
    let mut t = Tracee {
        pid,
        gadget: script.gadget(),
        base: ptrace::zeroed_regs(),
        pending: Vec::new(),
        committed: false,
    };
    ptrace::seize(pid, libc::PTRACE_O_EXITKILL).map_err(failed("PTRACE_SEIZE"))?;
    let early = |t: &Tracee, f: Failure| {
        t.release();
        f
    };
    ptrace::interrupt(pid).map_err(|e| early(&t, failed("PTRACE_INTERRUPT")(e)))?;
    loop {
        let status = t
            .wait()
            .ok_or_else(|| failed("the caller died")(Errno::SRCH))?;
        if status.as_raw() >> 16 == libc::PTRACE_EVENT_STOP {
            break;
        }
        // A signal-delivery stop before our interrupt: keep the signal for later.
        t.pending.push(status.stopping_signal().unwrap_or(0));
        ptrace::cont(pid, 0).map_err(|e| early(&t, failed("PTRACE_CONT")(e)))?;
    }
    t.base = ptrace::getregs(pid).map_err(|e| early(&t, failed("PTRACE_GETREGS")(e)))?;
    Ok(t)
}

/// The helper's work: wait for the go, attach, unregister rseq, replay the steps, start the
/// program.
fn replay(script: &Script, go: &OwnedFd, mem: File) -> Result<(), Failure> {
    let mut b = [0u8; 1];
    if rustix::io::read(go, &mut b) != Ok(1) {
        return Err(failed("the caller went away")(Errno::SRCH));
    }
    let mut t = attach(script)?;

    // rseq_execve(): the registration points into memory about to go away.
    if let Ok(rseq) = ptrace::rseq_configuration(t.pid) {
        if rseq.rseq_abi_pointer != 0 {
            let unregister = syscall(
                libc::SYS_rseq,
                [
                    rseq.rseq_abi_pointer,
                    rseq.rseq_abi_size as u64,
                    RSEQ_FLAG_UNREGISTER,
                    rseq.signature as u64,
                    0,
                    0,
                ],
                "rseq unregister",
                Expect::Ok,
            );
            run_step(&mut t, &mem, &unregister)?;
        }
    }
    for s in &script.steps {
        run_step(&mut t, &mem, s)?;
    }
    t.start(script.entry, script.sp, script.rflags)
        .map_err(|_| t.die())
}

fn run_step(t: &mut Tracee, mem: &File, s: &Step) -> Result<(), Failure> {
    match s {
        Step::Sys {
            nr,
            args,
            what,
            expect,
        } => inject(t, *nr, *args, what, *expect),
        Step::Write { addr, bytes } => {
            if mem.write_all_at(bytes, *addr).is_err() {
                t.die();
            }
            Ok(())
        }
    }
}

/// One injected syscall; a failure before anything changed is returned (the caller goes on
/// unchanged), after that the process dies.
fn inject(
    t: &mut Tracee,
    nr: libc::c_long,
    args: [u64; 6],
    what: &str,
    expect: Expect,
) -> Result<(), Failure> {
    let rax = match t.syscall(nr, args) {
        Ok(v) => v,
        Err(f) => {
            if t.committed {
                t.die();
            }
            t.release();
            return Err(f);
        }
    };
    let err = rax > (-4096i64) as u64;
    let ok = match expect {
        Expect::Ok => !err,
        Expect::Value(v) => rax == v,
        Expect::Any => true,
    };
    if !ok {
        if t.committed {
            t.die();
        }
        t.release();
        return Err(match expect {
            Expect::Value(expected) if !err => Failure::Value {
                what: String::from(what),
                got: rax,
                expected,
            },
            // Not accepted and not a value mismatch: an error result, -4095..-1.
            _ => Failure::Errno(
                String::from(what),
                Errno::from_raw_os_error((rax as i64).wrapping_neg() as i32),
            ),
        });
    }
    if !err {
        t.committed = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let f = Failure::Errno(String::from("PTRACE_SEIZE"), Errno::PERM);
        match decode_report(&f.encode()) {
            RunError::Step { what, errno } => {
                assert_eq!((what.as_str(), errno), ("PTRACE_SEIZE", Errno::PERM))
            }
            other => panic!("{other:?}"),
        }
        let f = Failure::Value {
            what: String::from("mmap of the new image"),
            got: 0x1000,
            expected: 0x2000,
        };
        assert!(matches!(
            decode_report(&f.encode()),
            RunError::StepResult {
                got: 0x1000,
                expected: 0x2000,
                ..
            }
        ));
        assert!(matches!(decode_report(&[]), RunError::Unsupported(_)));
        assert!(matches!(
            decode_report(&[0, 0, 0, 0, 0]),
            RunError::Unsupported(_)
        ));
    }
}
