//! The helper's side (x86_64): attach to the replaced process with `ptrace`, replay the
//! [`Script`] by injecting each syscall at the temporary `syscall` instruction, set the
//! initial registers and vector state, detach.

use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;

use super::error::RunError;
use super::script::{nr, Expect, Script, Step};

const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
const NT_X86_XSTATE: libc::c_int = 0x202;
const RSEQ_FLAG_UNREGISTER: u64 = 1;
/// `__USER_CS` / `__USER_DS`.
const USER_CS: u64 = 0x33;
const USER_DS: u64 = 0x2b;
/// `rflags` after exec: IF and the reserved bit 1.
const INITIAL_RFLAGS: u64 = 0x202;

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Default)]
struct RseqConfig {
    pointer: u64,
    size: u32,
    signature: u32,
    flags: u32,
    pad: u32,
}

/// Why the helper gave up before the point of no return, as it reports it to the caller.
enum Failure {
    /// `what` (a `ptrace` request, or a syscall injected into the caller) failed with this
    /// errno.
    Errno(String, i32),
    /// An injected syscall returned `got` where the script needs `expected`.
    Value {
        what: String,
        got: u64,
        expected: u64,
    },
}

impl Failure {
    /// The report: a tag byte, then the errno (4 bytes) or the two values (16 bytes), then
    /// `what`.
    fn encode(&self) -> Vec<u8> {
        let mut msg = Vec::new();
        let what = match self {
            Failure::Errno(what, errno) => {
                msg.push(0);
                msg.extend_from_slice(&errno.to_le_bytes());
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
pub(super) fn decode_report(msg: &[u8]) -> RunError {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes).ok();
    match msg.split_first() {
        Some((0, rest)) if rest.len() >= 4 => {
            let (errno, what) = rest.split_at(4);
            let errno = errno.try_into().map(i32::from_le_bytes).ok();
            if let Some(errno) = errno.and_then(super::script::errno_from_raw) {
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

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The helper process's body. Never returns.
pub(super) fn main(script: &Script, go: RawFd, report: RawFd) -> ! {
    close_others(go, report);
    let code = match run(script, go) {
        Ok(()) => 0,
        Err(failure) => {
            let msg = failure.encode();
            // SAFETY: `report` is the helper's end of the pipe, open in this process;
            // `msg` is a valid buffer of the given length.
            unsafe { libc::write(report, msg.as_ptr().cast(), msg.len()) };
            1
        }
    };
    // SAFETY: ends the helper without running destructors of state copied from the caller.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor but the two pipe ends, so that the helper holds none of the
/// caller's files or pipes open.
fn close_others(a: RawFd, b: RawFd) {
    let (lo, hi) = (a.min(b) as u32, a.max(b) as u32);
    let ranges = [
        (0u32, lo.checked_sub(1)),
        (lo + 1, hi.checked_sub(1)),
        (hi + 1, Some(u32::MAX)),
    ];
    for (first, last) in ranges {
        if let Some(last) = last {
            if first <= last {
                // SAFETY: close_range only closes descriptors of this process, none of which
                // is used by this code except the two kept.
                unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
            }
        }
    }
}

struct Tracee {
    pid: libc::pid_t,
    gadget: u64,
    /// The registers at the attach stop, restored on an early failure.
    base: libc::user_regs_struct,
    /// Signals that arrived meanwhile; delivered at detach.
    pending: Vec<i32>,
    /// Whether a syscall changed the process (the point of no return is passed).
    committed: bool,
}

enum Stop {
    /// The tracee stopped with this wait status.
    Stopped(i32),
    /// It is gone.
    Gone,
}

impl Tracee {
    fn ptrace(&self, req: libc::c_uint, addr: usize, data: usize) -> Result<libc::c_long, i32> {
        // SAFETY: every request used here takes either no pointer or a pointer to a live
        // buffer of the size the request writes or reads (see the callers).
        let r = unsafe { libc::ptrace(req, self.pid, addr, data) };
        if r == -1 {
            let e = last_errno();
            if e != 0 {
                return Err(e);
            }
        }
        Ok(r)
    }

    fn wait(&self) -> Stop {
        let mut status = 0;
        loop {
            // SAFETY: waits for our tracee; `status` is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
            if r == self.pid {
                break;
            }
            if last_errno() != libc::EINTR {
                return Stop::Gone;
            }
        }
        if libc::WIFSTOPPED(status) {
            Stop::Stopped(status)
        } else {
            Stop::Gone
        }
    }

    fn getregs(&self) -> Result<libc::user_regs_struct, i32> {
        // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        self.ptrace(
            libc::PTRACE_GETREGS,
            0,
            &mut regs as *mut libc::user_regs_struct as usize,
        )?;
        Ok(regs)
    }

    fn setregs(&self, regs: &libc::user_regs_struct) -> Result<(), i32> {
        self.ptrace(
            libc::PTRACE_SETREGS,
            0,
            regs as *const libc::user_regs_struct as usize,
        )?;
        Ok(())
    }

    /// Runs one syscall in the tracee; returns `rax`.
    fn syscall(&mut self, nr: u64, args: [u64; 6]) -> Result<u64, Failure> {
        let mut r = self.base;
        r.rip = self.gadget;
        r.rax = nr;
        r.orig_rax = u64::MAX; // no syscall restart on resume
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        self.setregs(&r)
            .map_err(|e| Failure::Errno(String::from("PTRACE_SETREGS"), e))?;
        loop {
            self.ptrace(libc::PTRACE_SINGLESTEP, 0, 0)
                .map_err(|e| Failure::Errno(String::from("PTRACE_SINGLESTEP"), e))?;
            let status = match self.wait() {
                Stop::Stopped(s) => s,
                Stop::Gone => {
                    return Err(Failure::Errno(
                        String::from("the process died during the exec"),
                        libc::ESRCH,
                    ))
                }
            };
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if event == 0 && sig != libc::SIGTRAP {
                self.pending.push(sig);
            }
            let now = self
                .getregs()
                .map_err(|e| Failure::Errno(String::from("PTRACE_GETREGS"), e))?;
            if now.rip == self.gadget + 2 {
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
        let _ = self.setregs(&r);
        let _ = self.ptrace(libc::PTRACE_DETACH, 0, libc::SIGSEGV as usize);
        // SAFETY: kill only signals the tracee, whose image is already gone.
        unsafe { libc::kill(self.pid, libc::SIGSEGV) };
        // SAFETY: ends the helper.
        unsafe { libc::_exit(1) }
    }

    /// Before the point of no return: put the registers back and let the caller run on.
    fn release(&self) {
        let _ = self.setregs(&self.base);
        let sig = self.pending.first().copied().unwrap_or(0);
        let _ = self.ptrace(libc::PTRACE_DETACH, 0, sig as usize);
    }

    /// The vector state of a fresh exec: x87 control word 0x37f, MXCSR 0x1f80, every x87,
    /// SSE and AVX register zero (`fpu_flush_thread`).
    fn reset_fpu(&self) {
        let mut buf = vec![0u8; 1 << 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // The iovec points to `buf`, alive for both calls; the kernel trims iov_len.
        if self
            .ptrace(
                libc::PTRACE_GETREGSET,
                NT_X86_XSTATE as usize,
                &mut iov as *mut libc::iovec as usize,
            )
            .is_err()
            || iov.iov_len < 576
        {
            return;
        }
        let len = iov.iov_len;
        let old_bv = u64::from_le_bytes(buf[512..520].try_into().unwrap_or([0; 8]));
        let mxcsr_mask: [u8; 4] = buf[28..32].try_into().unwrap_or([0; 4]);
        let sw_reserved: Vec<u8> = buf[464..512].to_vec();
        buf[..576].fill(0);
        buf[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        buf[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        buf[28..32].copy_from_slice(&mxcsr_mask);
        buf[464..512].copy_from_slice(&sw_reserved);
        // FP and SSE from this buffer, every other user component to its init state, PKRU
        // (bit 9) as it is.
        let bv = 0x3 | (old_bv & (1 << 9));
        buf[512..520].copy_from_slice(&bv.to_le_bytes());
        iov.iov_len = len;
        let _ = self.ptrace(
            libc::PTRACE_SETREGSET,
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec as usize,
        );
    }

    /// Sets the registers of `START_THREAD` and detaches: the program runs.
    fn start(&self, entry: u64, sp: u64) -> Result<(), Failure> {
        // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.rip = entry;
        r.rsp = sp;
        r.eflags = INITIAL_RFLAGS;
        r.cs = USER_CS;
        r.ss = USER_DS;
        r.orig_rax = u64::MAX;
        self.setregs(&r)
            .map_err(|e| Failure::Errno(String::from("PTRACE_SETREGS"), e))?;
        self.reset_fpu();
        let mut pending = self.pending.iter();
        let first = pending.next().copied().unwrap_or(0);
        self.ptrace(libc::PTRACE_DETACH, 0, first as usize)
            .map_err(|e| Failure::Errno(String::from("PTRACE_DETACH"), e))?;
        for &sig in pending {
            // SAFETY: re-sends a signal that arrived during the exec to the process.
            unsafe { libc::kill(self.pid, sig) };
        }
        Ok(())
    }
}

fn run(script: &Script, go: RawFd) -> Result<(), Failure> {
    let mut b = [0u8; 1];
    // SAFETY: reads one byte into a valid buffer from our pipe end.
    if unsafe { libc::read(go, b.as_mut_ptr().cast(), 1) } != 1 {
        return Err(Failure::Errno(
            String::from("the caller went away"),
            libc::ESRCH,
        ));
    }
    let pid = script.pid;
    let mut t = Tracee {
        pid,
        gadget: script.gadget,
        // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
        base: unsafe { std::mem::zeroed() },
        pending: Vec::new(),
        committed: false,
    };
    t.ptrace(libc::PTRACE_SEIZE, 0, libc::PTRACE_O_EXITKILL as usize)
        .map_err(|e| Failure::Errno(String::from("PTRACE_SEIZE"), e))?;
    let early = |t: &Tracee, f: Failure| {
        t.release();
        f
    };
    t.ptrace(libc::PTRACE_INTERRUPT, 0, 0)
        .map_err(|e| early(&t, Failure::Errno(String::from("PTRACE_INTERRUPT"), e)))?;
    loop {
        match t.wait() {
            Stop::Gone => return Err(Failure::Errno(String::from("the caller died"), libc::ESRCH)),
            Stop::Stopped(status) => {
                if status >> 16 == libc::PTRACE_EVENT_STOP {
                    break;
                }
                // A signal-delivery stop before our interrupt: keep the signal for later.
                t.pending.push(libc::WSTOPSIG(status));
                t.ptrace(libc::PTRACE_CONT, 0, 0)
                    .map_err(|e| early(&t, Failure::Errno(String::from("PTRACE_CONT"), e)))?;
            }
        }
    }
    t.base = t
        .getregs()
        .map_err(|e| early(&t, Failure::Errno(String::from("PTRACE_GETREGS"), e)))?;
    let mem = File::options()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map_err(|e| {
            early(
                &t,
                Failure::Errno(
                    format!("opening /proc/{pid}/mem"),
                    e.raw_os_error().unwrap_or(libc::EIO),
                ),
            )
        })?;

    // rseq_execve(): the registration points into memory about to go away.
    let mut rseq = RseqConfig::default();
    let got = t.ptrace(
        PTRACE_GET_RSEQ_CONFIGURATION,
        std::mem::size_of::<RseqConfig>(),
        &mut rseq as *mut RseqConfig as usize,
    );
    if got.is_ok() && rseq.pointer != 0 {
        step(
            &mut t,
            nr::RSEQ,
            [
                rseq.pointer,
                rseq.size as u64,
                RSEQ_FLAG_UNREGISTER,
                rseq.signature as u64,
                0,
                0,
            ],
            "rseq unregister",
            Expect::Ok,
        )?;
    }
    for s in &script.steps {
        match s {
            Step::Sys {
                nr,
                args,
                what,
                expect,
            } => step(&mut t, *nr, *args, what, *expect)?,
            Step::Write { addr, bytes } => {
                if let Err(e) = mem.write_all_at(bytes, *addr) {
                    let _ = e;
                    t.die();
                }
            }
        }
    }
    t.start(script.entry, script.sp).map_err(|_| t.die())
}

/// One injected syscall; a failure before anything changed is returned (the caller goes on
/// unchanged), after that the process dies.
fn step(
    t: &mut Tracee,
    nr: u64,
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
            _ => Failure::Errno(String::from(what), (rax as i64).wrapping_neg() as i32),
        });
    }
    if !err {
        t.committed = true;
    }
    Ok(())
}
