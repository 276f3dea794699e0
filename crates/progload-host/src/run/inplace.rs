//! The traced path (x86_64): when a debugger already traces P, no helper can attach, so P
//! replays the [`Script`] itself, from an interpreter copied into the temporary code page,
//! and finishes with a trampoline that leaves nothing behind (see the module docs of
//! `run` for the whole sequence and its residual differences).

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};

use progload::mm::Backing;
use progload::Plan;
use progload::Prot;

use super::script::{
    self, nr, put, put_u64s, sys, Expect, Mode, Script, Step, Temp, OFF_FINAL, OFF_SIGINFO, PAGE,
};
use super::RunError;
use crate::proc::{MapsLine, Proc};
use crate::HostHandle;

/// `PIDFD_SELF` (`PIDFD_SELF_THREAD`): the calling thread, for `process_madvise`.
const PIDFD_SELF: i64 = -10000;
const SYS_PROCESS_MADVISE: u64 = 440;
const MADV_DONTNEED: u64 = 4;
const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const RSEQ_SIG: u32 = 0x5305_3053;
const RSEQ_FLAG_UNREGISTER: u64 = 1;
/// `sizeof(struct ucontext)` on x86_64: what `rt_sigreturn` reads, at the stack pointer.
const UCONTEXT_SIZE: u64 = 304;
/// Offset of `uc_mcontext` (`struct sigcontext`) in `struct ucontext`.
const UC_MCONTEXT: usize = 40;
/// Offset of `uc_sigmask` in `struct ucontext`.
const UC_SIGMASK: usize = 296;
/// The trampoline's length: it ends right before the `syscall` instruction it returns to.
const TRAMPOLINE_LEN: u64 = 15;
/// One entry of the step table: `nr`, six arguments, kind, expected value, padding.
const ENTRY: u64 = 80;
/// Entry kinds, as the interpreter reads them.
const KIND_END: u64 = 0;
const KIND_OK: u64 = 1;
const KIND_VALUE: u64 = 2;
const KIND_ANY: u64 = 3;

// The interpreter, copied into the temporary code page and called there as
// `extern "C" fn(table: *const [u64; 10], fin: *mut [u64; 7]) -> u64`.
//
// It runs the table's syscalls in order and checks each result against the entry's kind
// (1: not an error, 2: exactly the expected value, 3: anything; an ignored error does not
// count as a change). On a failure before any change, it stores the entry's index in
// `fin[6]` and returns the syscall's result; after a change it makes the process die of
// SIGSEGV (a jump to address 0 with no stack). It uses no stack once the loop runs (the old
// stack is unmapped by the table) and no memory but the table and `fin`, both in the
// temporary pages.
//
// At the end of the table, it loads the trampoline's registers from `fin` — rax = munmap,
// rdi/rsi = the temporary pages, rsp = the rt_sigreturn frame, r12 = the iovec, r13 =
// PIDFD_SELF, rdx = 1, r10 = MADV_DONTNEED, r8 = 0 — and jumps to the trampoline.
std::arch::global_asm!(
    ".pushsection .text.progload_run_interp,\"ax\",@progbits",
    ".globl progload_run_interp_start",
    ".hidden progload_run_interp_start",
    ".globl progload_run_interp_end",
    ".hidden progload_run_interp_end",
    ".p2align 4",
    "progload_run_interp_start:",
    "    push %rbx",
    "    push %rbp",
    "    push %r12",
    "    push %r13",
    "    push %r14",
    "    push %r15",
    "    mov %rdi, %r12",
    "    mov %rsi, %r13",
    "    xor %r14d, %r14d",
    "    xor %ebp, %ebp",
    "1:",
    "    mov 56(%r12), %rbx",
    "    test %rbx, %rbx",
    "    jz 5f",
    "    mov 0(%r12), %rax",
    "    mov 8(%r12), %rdi",
    "    mov 16(%r12), %rsi",
    "    mov 24(%r12), %rdx",
    "    mov 32(%r12), %r10",
    "    mov 40(%r12), %r8",
    "    mov 48(%r12), %r9",
    "    syscall",
    "    cmp $3, %rbx",
    "    je 3f",
    "    cmp $2, %rbx",
    "    jne 2f",
    "    cmp 64(%r12), %rax",
    "    jne 4f",
    "    jmp 3f",
    "2:",
    "    cmp $-4096, %rax",
    "    ja 4f",
    "3:",
    "    cmp $-4096, %rax",
    "    ja 6f",
    "    mov $1, %r14d",
    "6:",
    "    add $80, %r12",
    "    inc %rbp",
    "    jmp 1b",
    "4:",
    "    test %r14, %r14",
    "    jnz 7f",
    "    mov %rbp, 48(%r13)",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %rbp",
    "    pop %rbx",
    "    ret",
    "7:",
    "    xor %eax, %eax",
    "    mov %rax, %rsp",
    "    jmp *%rax",
    "5:",
    "    mov 0(%r13), %rdi",
    "    mov 8(%r13), %rsi",
    "    mov 16(%r13), %rsp",
    "    mov 24(%r13), %r12",
    "    mov 32(%r13), %rbx",
    "    mov 40(%r13), %r13",
    "    mov $1, %edx",
    "    mov $4, %r10d",
    "    xor %r8d, %r8d",
    "    mov $11, %eax",
    "    jmp *%rbx",
    "progload_run_interp_end:",
    ".popsection",
    options(att_syntax)
);

extern "C" {
    static progload_run_interp_start: u8;
    static progload_run_interp_end: u8;
}

/// The interpreter's machine code (position independent: only relative jumps inside it).
pub(super) fn code() -> &'static [u8] {
    // SAFETY: both symbols are defined by the global_asm! block above, in this order in the
    // same section, so they delimit the interpreter's bytes in the (read-only, always
    // mapped) text of this binary.
    unsafe {
        let start = std::ptr::addr_of!(progload_run_interp_start);
        let end = std::ptr::addr_of!(progload_run_interp_end);
        std::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

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
const TRAMPOLINE: [u8; TRAMPOLINE_LEN as usize] = [
    0x0f, 0x05, // syscall
    0xb8, 0xb8, 0x01, 0x00, 0x00, // mov $440, %eax
    0x4c, 0x89, 0xef, // mov %r13, %rdi
    0x4c, 0x89, 0xe6, // mov %r12, %rsi
    0x0f, 0x05, // syscall
];

/// Where the trampoline goes: `G` (a `0f 05` of the new image) and the iovec, in the same
/// page.
#[derive(Clone, Copy, Debug)]
struct Gadget {
    /// The final address of the `syscall` instruction.
    syscall: u64,
    /// The final address of the 16-byte iovec.
    iovec: u64,
}

/// The traced path's state, computed before the point of no return.
#[derive(Debug)]
pub(super) struct Traced {
    /// `/proc/self/mem`, for the writes (whatever the protection, as the helper's); closed
    /// by the script with the other close-on-exec descriptors.
    mem: OwnedFd,
    /// The rseq registration to undo: pointer, length, signature.
    rseq: Option<(u64, u32, u32)>,
    gadget: Gadget,
    /// Whether to raise the exec `SIGTRAP`.
    trap: bool,
    /// The signal mask to restore (the caller's).
    mask: u64,
    /// Bytes reserved after the two first temporary pages for the table and the written
    /// bytes.
    bulk: u64,
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Searches `bytes` (the final contents at `base`) for a `syscall` instruction with room
/// for the trampoline before it and the iovec in the same page.
fn find_gadget(bytes: &[u8], base: u64, avoid: &[(u64, u64)]) -> Option<Gadget> {
    let tramp = TRAMPOLINE_LEN;
    for (i, w) in bytes.windows(2).enumerate() {
        if w != [0x0f, 0x05] {
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
    if let (Some(v), Some(cur)) = (planned_vdso, maps.iter().find(|m| m.path == "[vdso]")) {
        if cur.end - cur.start == v.end - v.start {
            // SAFETY: [vdso] is mapped readable in this process for its whole range, and is
            // never unmapped or written while this borrow lives.
            let bytes = unsafe {
                std::slice::from_raw_parts(cur.start as *const u8, (cur.end - cur.start) as usize)
            };
            if let Some(g) = find_gadget(bytes, v.start, &[]) {
                return Ok(g);
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
    // SAFETY: a fresh anonymous private page, unmapped below; nothing else refers to it.
    let page = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            PAGE as usize,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE,
        )
    }
    .map_err(|e| RunError::host("mmap", e))?;
    // SAFETY: the page is mapped read-write above.
    unsafe { *(page as *mut u8) = 1 };
    let iov = [page as u64, TRAMPOLINE_LEN];
    // SAFETY: process_madvise reads one iovec from `iov` (alive) and drops the scratch
    // page's contents.
    let r = unsafe {
        libc::syscall(
            SYS_PROCESS_MADVISE as libc::c_long,
            PIDFD_SELF,
            iov.as_ptr(),
            1 as libc::c_long,
            MADV_DONTNEED as libc::c_long,
            0 as libc::c_long,
        )
    };
    let errno = last_errno();
    // SAFETY: the page is still mapped (DONTNEED keeps the mapping).
    let cleared = unsafe { *(page as *const u8) } == 0;
    // SAFETY: unmaps the scratch page mapped above.
    let _ = unsafe { rustix::mm::munmap(page, PAGE as usize) };
    if r == TRAMPOLINE_LEN as libc::c_long && cleared {
        Ok(())
    } else if let Some(errno) = (r < 0).then_some(errno).and_then(script::errno_from_raw) {
        Err(RunError::host(
            "process_madvise(PIDFD_SELF, MADV_DONTNEED), which a traced exec in place needs \
             (Linux 6.15 or later),",
            errno,
        ))
    } else {
        Err(RunError::Unsupported(String::from(
            "a traced exec in place needs process_madvise(PIDFD_SELF, MADV_DONTNEED) to drop \
             the page (Linux 6.15 or later)",
        )))
    }
}

fn sys_rseq(ptr: u64, len: u32, flags: u64, sig: u32) -> i64 {
    // SAFETY: rseq either checks the arguments against the current registration (no memory
    // access), registers `ptr` (only when nothing is registered; undone by the caller), or
    // unregisters the registration equal to the arguments.
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
        -(last_errno() as i64)
    } else {
        r as i64
    }
}

/// The thread's rseq registration, found from glibc's `__rseq_offset`/`__rseq_size`
/// (glibc 2.35 and later) and confirmed with the kernel: a registration call with the same
/// arguments answers `EBUSY` exactly when they are the registered ones.
fn rseq_registration() -> Result<Option<(u64, u32, u32)>, RunError> {
    // SAFETY: dlsym only looks the names up; the results are checked for NULL below and
    // point to glibc's constants of the documented types.
    let (off, size) = unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr());
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr());
        if off.is_null() || size.is_null() {
            (None, 0)
        } else {
            (
                Some(*(off as *const isize) as i64),
                *(size as *const libc::c_uint),
            )
        }
    };
    let mut candidates = Vec::new();
    if let Some(off) = off {
        let mut fs = 0u64;
        // SAFETY: ARCH_GET_FS writes the FS base to `fs`.
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_FS, &mut fs as *mut u64) };
        let ptr = fs.wrapping_add(off as u64);
        for len in [size.max(32), 32] {
            if !candidates.contains(&(ptr, len)) {
                candidates.push((ptr, len));
            }
        }
    }
    for &(ptr, len) in &candidates {
        match sys_rseq(ptr, len, 0, RSEQ_SIG) {
            r if r == -(libc::EBUSY as i64) => return Ok(Some((ptr, len, RSEQ_SIG))),
            0 => {
                // Nothing was registered: undo the registration just made.
                sys_rseq(ptr, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
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
    match sys_rseq(ptr, 32, 0, RSEQ_SIG) {
        0 => {
            sys_rseq(ptr, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
            Ok(None)
        }
        r if r == -(libc::ENOSYS as i64) => Ok(None),
        _ => Err(RunError::Unsupported(String::from(
            "an rseq area is registered that progload cannot identify",
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
        // SAFETY: getppid has no arguments and no effect.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    voluntary_switches().is_some_and(|after| after >= before + 8)
}

fn current_mask() -> u64 {
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask with a NULL new set only writes the current mask (8 bytes) to
    // `old`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            std::ptr::null::<u64>(),
            &mut old as *mut u64,
            8 as libc::c_long,
        )
    };
    old
}

fn set_mask(mask: u64) {
    // SAFETY: rt_sigprocmask reads the 8-byte set from `mask` (SIGKILL and SIGSTOP are
    // ignored by the kernel).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8 as libc::c_long,
        )
    };
}

impl Traced {
    pub(super) fn new(
        plan: &Plan<HostHandle>,
        maps: &[MapsLine],
        files: &[OwnedFd],
    ) -> Result<Traced, RunError> {
        let mem = rustix::fs::open(
            "/proc/self/mem",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RunError::host("opening /proc/self/mem", e))?;
        let gadget = gadget(plan, maps, files)?;
        check_process_madvise()?;
        let rseq = rseq_registration()?;
        let trap = !syscall_stops();
        let fds = Proc::Current.fds().map_or(64, |f| f.len()) as u64;
        let written: u64 = plan.stack.bytes.len() as u64
            + plan.zero.iter().map(|&(_, l)| l).sum::<u64>()
            + UCONTEXT_SIZE
            + TRAMPOLINE_LEN
            + 16;
        let entries = 256 + 2 * plan.vmas.len() as u64 + plan.zero.len() as u64 + 2 * fds;
        let bulk = (written + entries * ENTRY + 2 * PAGE) & !(PAGE - 1);
        Ok(Traced {
            mem,
            rseq,
            gadget,
            trap,
            mask: current_mask(),
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

    /// The `SIGTRAP` siginfo (as `send_sig(SIGTRAP, current, 0)` fills it: `SI_USER`, this
    /// pid, the new real uid) and the interpreter's final block.
    pub(super) fn fill_data(
        &self,
        data: &mut [u8; PAGE as usize],
        temp: &Temp,
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

    /// `rseq_execve()`: first, while the registered area still exists.
    pub(super) fn first_steps(&self) -> Vec<Step> {
        self.rseq
            .iter()
            .map(|&(ptr, len, sig)| {
                sys(
                    nr::RSEQ,
                    [ptr, len as u64, RSEQ_FLAG_UNREGISTER, sig as u64, 0, 0],
                    "rseq unregister",
                    Expect::Ok,
                )
            })
            .collect()
    }

    /// After the new image and the process state: FS/GS base 0, the `rt_sigreturn` frame
    /// below the initial stack pointer, the trampoline and its iovec, and the exec
    /// `SIGTRAP` (blocked until the frame's mask is restored).
    pub(super) fn last_steps(&self, plan: &Plan<HostHandle>, temp: &Temp) -> Vec<Step> {
        let mut uc = vec![0u8; UCONTEXT_SIZE as usize];
        // uc_stack: SS_DISABLE (rt_sigreturn restores the alternate stack from it).
        uc[24..28].copy_from_slice(&2i32.to_le_bytes());
        let sc = UC_MCONTEXT;
        uc[sc + 120..sc + 128].copy_from_slice(&plan.stack.sp.to_le_bytes()); // rsp
        uc[sc + 128..sc + 136].copy_from_slice(&plan.entry.to_le_bytes()); // rip
        uc[sc + 136..sc + 144].copy_from_slice(&0x202u64.to_le_bytes()); // eflags
        uc[sc + 144..sc + 146].copy_from_slice(&0x33u16.to_le_bytes()); // cs
        uc[sc + 150..sc + 152].copy_from_slice(&0x2bu16.to_le_bytes()); // ss
                                                                        // fpstate NULL: the x87/SSE/AVX state is reset to its initial values.
        uc[UC_SIGMASK..UC_SIGMASK + 8].copy_from_slice(&self.mask.to_le_bytes());
        let page = self.gadget.syscall & !(PAGE - 1);
        let mut iov = page.to_le_bytes().to_vec();
        iov.extend_from_slice(&TRAMPOLINE_LEN.to_le_bytes());
        let mut steps = vec![
            sys(
                nr::ARCH_PRCTL,
                [ARCH_SET_FS, 0, 0, 0, 0, 0],
                "arch_prctl(ARCH_SET_FS)",
                Expect::Ok,
            ),
            sys(
                nr::ARCH_PRCTL,
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
            steps.push(sys(
                nr::RT_TGSIGQUEUEINFO,
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
}

/// What each entry of the interpreter's table does and how its result is checked.
type Lowered = (&'static str, Expect);

/// Lowers the script into the interpreter's table (memory writes become `pwrite64` on
/// `/proc/self/mem`, from copies in the temporary pages). Returns the table's address and
/// each entry's description.
fn lower(script: &Script, temp: &Temp, mem: i32) -> Result<(u64, Vec<Lowered>), RunError> {
    let table = temp.addr + 2 * PAGE;
    let end = temp.addr + temp.len;
    let mut src = table + (script.steps.len() as u64 + 1) * ENTRY;
    let mut whats = Vec::with_capacity(script.steps.len());
    let mut entry = table;
    let mut push = |words: [u64; 10]| -> Result<(), RunError> {
        if entry + ENTRY > table + (script.steps.len() as u64 + 1) * ENTRY {
            return Err(RunError::Unsupported(String::from("step table overflow")));
        }
        // SAFETY: `entry` lies in the table area of the temporary pages, mapped read-write
        // by `Temp::map` and owned by `temp`; the 80 bytes fit (checked above).
        unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), entry as *mut u64, 10) };
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
                push([*nr, a, b, c, d, e, f, kind, value, 0])?;
                whats.push((*what, *expect));
            }
            Step::Write { addr, bytes } => {
                let len = bytes.len() as u64;
                if src + len > end {
                    return Err(RunError::Unsupported(String::from(
                        "the temporary pages are too small for the image's bytes",
                    )));
                }
                // SAFETY: [src, src + len) lies in the temporary pages (checked above),
                // mapped read-write and owned by `temp`; `bytes` is a distinct allocation.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), src as *mut u8, bytes.len())
                };
                push([
                    nr::PWRITE64,
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
                whats.push((
                    "writing the new image through /proc/self/mem",
                    Expect::Value(len),
                ));
                src += len;
            }
        }
    }
    push([0, 0, 0, 0, 0, 0, 0, KIND_END, 0, 0])?;
    Ok((table, whats))
}

/// Replaces the calling process, traced, with `plan`: P runs the script itself.
pub(super) fn exec(plan: &Plan<HostHandle>) -> Result<Infallible, RunError> {
    let mut prepared = script::prepare(plan, Mode::Traced)?;
    script::finish_script(&mut prepared.script, &prepared.temp)?;
    let traced =
        prepared.script.traced.as_ref().ok_or_else(|| {
            RunError::Unsupported(String::from("not prepared for the traced path"))
        })?;
    let (table, whats) = lower(&prepared.script, &prepared.temp, traced.mem.as_raw_fd())?;
    let fin = prepared.temp.data() + OFF_FINAL;
    let mask = traced.mask;

    // No handler of progload's may run on a half-built image: block every signal. The
    // frame restores `mask`; signals arriving meanwhile stay pending, as across execve.
    set_mask(u64::MAX);
    // SAFETY: the temporary code page holds the interpreter (`code()`), position
    // independent and made r-x by `Temp::fill`; it follows the C ABI with two pointer
    // arguments (the table and the final block, both in the temporary pages, alive) and
    // returns only on a failure before any change, with the process as it was.
    let rax = unsafe {
        let interp: unsafe extern "C" fn(u64, u64) -> u64 =
            std::mem::transmute(prepared.temp.addr as usize as *const ());
        interp(table, fin)
    };
    set_mask(mask);
    // SAFETY: the final block is in the temporary data page, mapped read-write; the
    // interpreter stored the failing entry's index in its word 6.
    let index = unsafe { *((fin + 48) as *const u64) } as usize;
    let (what, expect) = whats
        .get(index)
        .copied()
        .unwrap_or(("the traced exec", Expect::Ok));
    let what = String::from(what);
    let errno = (rax > (-4096i64) as u64)
        .then(|| (rax as i64).wrapping_neg() as i32)
        .and_then(script::errno_from_raw);
    Err(match (errno, expect) {
        (Some(errno), _) => RunError::Step { what, errno },
        (None, Expect::Value(expected)) => RunError::StepResult {
            what,
            got: rax,
            expected,
        },
        (None, _) => RunError::Unsupported(format!("{what} failed in the traced exec")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps the interpreter and `entries` (ended by a KIND_END entry) in temporary pages.
    fn load(entries: &[[u64; 10]]) -> Temp {
        let temp = Temp::map(&[], 3 * PAGE).unwrap();
        temp.fill(code(), &[0u8; PAGE as usize]).unwrap();
        let mut all = entries.to_vec();
        all.push([0, 0, 0, 0, 0, 0, 0, KIND_END, 0, 0]);
        // SAFETY: the table page (the third) is mapped read-write by Temp::map; the entries
        // fit in it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                all.as_ptr(),
                (temp.addr + 2 * PAGE) as *mut [u64; 10],
                all.len(),
            )
        };
        temp
    }

    /// Runs a loaded table; returns the interpreter's result and the failing index.
    fn run(temp: &Temp) -> (u64, u64) {
        let fin = temp.data() + OFF_FINAL;
        // SAFETY: the code page holds the interpreter (r-x), the table ends with KIND_END
        // only after entries that fail before any change (see the tests), so the call
        // returns; both pointers are in the temporary pages.
        unsafe {
            let interp: unsafe extern "C" fn(u64, u64) -> u64 =
                std::mem::transmute(temp.addr as usize as *const ());
            let rax = interp(temp.addr + 2 * PAGE, fin);
            (rax, *((fin + 48) as *const u64))
        }
    }

    fn close_bad(kind: u64) -> [u64; 10] {
        [nr::CLOSE, u64::MAX, 0, 0, 0, 0, 0, kind, 0, 0]
    }

    #[test]
    fn failure_before_any_change_returns_with_the_index_and_errno() {
        // An ignored error does not count as a change; the next one fails.
        let temp = load(&[close_bad(KIND_ANY), close_bad(KIND_OK)]);
        let (rax, index) = run(&temp);
        assert_eq!(rax as i64, -(libc::EBADF as i64));
        assert_eq!(index, 1);
        // A result other than the expected value fails too.
        let temp = load(&[[
            libc::SYS_getppid as u64,
            0,
            0,
            0,
            0,
            0,
            0,
            KIND_VALUE,
            u64::MAX - 5,
            0,
        ]]);
        let (rax, index) = run(&temp);
        assert_eq!(rax, std::os::unix::process::parent_id() as u64);
        assert_eq!(index, 0);
    }

    #[test]
    fn failure_after_a_change_is_sigsegv() {
        // getppid succeeds (a change, as far as the interpreter knows), then close fails.
        let temp = load(&[
            [libc::SYS_getppid as u64, 0, 0, 0, 0, 0, 0, KIND_ANY, 0, 0],
            close_bad(KIND_OK),
        ]);
        // SAFETY: the child only calls the interpreter (no allocation) and exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let _ = run(&temp);
            // SAFETY: ends the child if the interpreter returned (a test failure).
            unsafe { libc::_exit(3) };
        }
        let mut status = 0;
        // SAFETY: reaps our child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "status {status:#x}"
        );
    }

    #[test]
    fn trampoline_is_the_documented_instructions() {
        assert_eq!(TRAMPOLINE.len() as u64, TRAMPOLINE_LEN);
        assert_eq!(&TRAMPOLINE[..2], &[0x0f, 0x05]);
        assert_eq!(&TRAMPOLINE[13..], &[0x0f, 0x05]);
        assert_eq!(
            u32::from_le_bytes(TRAMPOLINE[3..7].try_into().unwrap()),
            440
        );
        assert!(code().len() < 512);
    }

    #[test]
    fn gadget_search_keeps_the_trampoline_and_iovec_in_one_page() {
        let mut bytes = vec![0u8; 2 * PAGE as usize];
        bytes[5..7].copy_from_slice(&[0x0f, 0x05]); // too close to the page start
        bytes[PAGE as usize + 20..PAGE as usize + 22].copy_from_slice(&[0x0f, 0x05]);
        let g = find_gadget(&bytes, 0x10000, &[]).unwrap();
        assert_eq!(g.syscall, 0x10000 + PAGE + 20);
        // Only 5 bytes before the trampoline: the iovec goes after the syscall.
        assert_eq!(g.iovec, 0x10000 + PAGE + 24);
        assert!(find_gadget(&bytes, 0x10000, &[(0x10000 + PAGE, 1)]).is_none());
    }
}
