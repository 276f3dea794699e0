//! The temporary pages of the exec in place (x86_64): one code page, which holds either one
//! `syscall` instruction (for the ptrace helper) or the interpreter of the self-replay, then
//! writable pages for the syscall arguments, the interpreter's table and the bytes it writes.

use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use super::abi::{PAGE, SYSCALL_INSN};

/// The size of one entry of the interpreter's table: `nr`, six arguments, kind, expected
/// value, padding (ten 64-bit words).
pub(crate) const ENTRY: u64 = 80;
/// Entry kinds, as the interpreter reads them: the end of the table.
pub(crate) const KIND_END: u64 = 0;
/// The result must not be an error.
pub(crate) const KIND_OK: u64 = 1;
/// The result must be exactly the entry's expected value.
pub(crate) const KIND_VALUE: u64 = 2;
/// Any result; an error does not count as a change.
pub(crate) const KIND_ANY: u64 = 3;

// The interpreter, copied into the temporary code page and called there as
// `extern "C" fn(table: *const [u64; 10], fin: *mut [u64; 7]) -> u64`.
//
// It runs the table's syscalls in order and checks each result against the entry's kind
// (KIND_OK: not an error, KIND_VALUE: exactly the expected value, KIND_ANY: anything; an
// ignored error does not count as a change). On a failure before any change, it stores the
// entry's index in `fin[6]` and returns the syscall's result; after a change it makes the
// process die of SIGSEGV (a jump to address 0 with no stack). It uses no stack once the loop
// runs (the old stack is unmapped by the table) and no memory but the table and `fin`, both
// in the temporary pages.
//
// At the end of the table, it loads the trampoline's registers from `fin` — rax = munmap,
// rdi/rsi = the temporary pages (fin[0], fin[1]), rsp = the rt_sigreturn frame (fin[2]),
// r12 = the iovec (fin[3]), rbx = the trampoline (fin[4]), r13 = PIDFD_SELF (fin[5]),
// rdx = 1, r10 = MADV_DONTNEED, r8 = 0 — and jumps to the trampoline.
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
    "    cmp ${any}, %rbx",
    "    je 3f",
    "    cmp ${value}, %rbx",
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
    "    add ${entry}, %r12",
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
    "    mov ${dontneed}, %r10d",
    "    xor %r8d, %r8d",
    "    mov ${munmap}, %eax",
    "    jmp *%rbx",
    "progload_run_interp_end:",
    ".popsection",
    any = const KIND_ANY,
    value = const KIND_VALUE,
    entry = const ENTRY,
    dontneed = const libc::MADV_DONTNEED,
    munmap = const libc::SYS_munmap,
    options(att_syntax)
);

extern "C" {
    static progload_run_interp_start: u8;
    static progload_run_interp_end: u8;
}

/// The interpreter's machine code (position independent: only relative jumps inside it).
pub(crate) fn interpreter() -> &'static [u8] {
    // SAFETY: both symbols are defined by the global_asm! block above, in this order in the
    // same section, so they delimit the interpreter's bytes in the (read-only, always mapped)
    // text of this binary.
    unsafe {
        let start = std::ptr::addr_of!(progload_run_interp_start);
        let end = std::ptr::addr_of!(progload_run_interp_end);
        std::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// What the code page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    /// One `syscall` instruction, where the helper points `rip` for each injected syscall.
    Syscall,
    /// The self-replay's interpreter.
    Interpreter,
}

/// Why the temporary pages refused an operation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PagesError {
    /// A range outside the writable pages, or code that does not fit in the code page.
    OutOfBounds,
    /// A system call failed.
    Sys(Errno),
}

/// Fresh anonymous private pages, owned by this value and unmapped when it is dropped: the
/// code page first (read-write until [`TempPages::install`] makes it `r-x`), then the writable
/// pages.
#[derive(Debug)]
pub(crate) struct TempPages {
    addr: u64,
    len: u64,
    code: Option<Code>,
}

impl Drop for TempPages {
    fn drop(&mut self) {
        // SAFETY: the pages at `addr` were mapped by `TempPages::map`, are owned by this value
        // and nothing else refers to them.
        let _ = unsafe { rustix::mm::munmap(self.addr as *mut _, self.len as usize) };
    }
}

impl TempPages {
    /// Maps `len` bytes (a multiple of the page size, at least two pages), read-write, at
    /// `hint` exactly (`MAP_FIXED_NOREPLACE`: never over an existing mapping) or, with no hint,
    /// where the kernel chooses.
    pub(crate) fn map(hint: Option<u64>, len: u64) -> Result<TempPages, PagesError> {
        if len < 2 * PAGE || len % PAGE != 0 {
            return Err(PagesError::OutOfBounds);
        }
        let flags = match hint {
            Some(_) => MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
            None => MapFlags::PRIVATE,
        };
        // SAFETY: a fresh anonymous private mapping; with a hint it is MAP_FIXED_NOREPLACE, so
        // it never replaces an existing mapping. Nothing refers to it but the returned value.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                hint.unwrap_or(0) as *mut _,
                len as usize,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )
        }
        .map_err(PagesError::Sys)?;
        Ok(TempPages {
            addr: p as u64,
            len,
            code: None,
        })
    }

    /// The first address (the code page).
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether `[at, at + n)` lies in the writable pages (all but the code page).
    fn writable(&self, at: u64, n: u64) -> bool {
        at >= self.addr + PAGE && at.checked_add(n).is_some_and(|e| e <= self.addr + self.len)
    }

    /// Copies `bytes` to address `at` of the writable pages.
    pub(crate) fn write(&self, at: u64, bytes: &[u8]) -> Result<(), PagesError> {
        if !self.writable(at, bytes.len() as u64) {
            return Err(PagesError::OutOfBounds);
        }
        // SAFETY: [at, at + len) lies in the writable pages (checked above), mapped
        // read-write by `map` and owned by `self`; `bytes` is a distinct allocation.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
        Ok(())
    }

    /// The 64-bit word at address `at` of the writable pages.
    pub(crate) fn read_u64(&self, at: u64) -> Option<u64> {
        if !self.writable(at, 8) || at % 8 != 0 {
            return None;
        }
        // SAFETY: `at` is an aligned address of the writable pages (checked above), mapped
        // and owned by `self`.
        Some(unsafe { std::ptr::read_volatile(at as *const u64) })
    }

    /// Writes `code` into the code page (the rest `int3`) and makes that page `r-x`.
    pub(crate) fn install(&mut self, code: Code) -> Result<(), PagesError> {
        let bytes = match code {
            Code::Syscall => &SYSCALL_INSN[..],
            Code::Interpreter => interpreter(),
        };
        let mut page = [0xccu8; PAGE as usize];
        page.get_mut(..bytes.len())
            .ok_or(PagesError::OutOfBounds)?
            .copy_from_slice(bytes);
        if self.code.is_some() {
            return Err(PagesError::OutOfBounds);
        }
        // SAFETY: the code page is mapped read-write by `map` (no code was installed yet),
        // page-sized and owned by `self`; the source is a local array of exactly one page.
        unsafe { std::ptr::copy_nonoverlapping(page.as_ptr(), self.addr as *mut u8, page.len()) };
        // SAFETY: changes the protection of our own code page only.
        unsafe {
            rustix::mm::mprotect(
                self.addr as *mut _,
                PAGE as usize,
                MprotectFlags::READ | MprotectFlags::EXEC,
            )
        }
        .map_err(PagesError::Sys)?;
        self.code = Some(code);
        Ok(())
    }

    /// Runs the interpreter on the table at `table` with the final block at `fin` (seven
    /// words), both in the writable pages. It returns only on a failure before any change of
    /// the process, with the failing syscall's result (the entry's index is then in `fin[6]`);
    /// after a change it kills the process with `SIGSEGV`, and at the end of a table it jumps
    /// to the trampoline `fin` names, never to return. `None`: the code page does not hold the
    /// interpreter, or a block is outside the writable pages.
    pub(crate) fn run_interpreter(&self, table: u64, fin: u64) -> Option<u64> {
        if self.code != Some(Code::Interpreter)
            || !self.writable(table, ENTRY)
            || !self.writable(fin, 7 * 8)
        {
            return None;
        }
        // SAFETY: the code page holds the interpreter (installed by `install`, r-x), position
        // independent; it follows the C ABI with two pointer arguments, both in the writable
        // pages (checked above) and alive while `self` is borrowed. It reads the table entries
        // up to their KIND_END entry, which the callers write; it returns only on a failure
        // before any change, with the process as it was, and otherwise never returns.
        Some(unsafe {
            let interp: unsafe extern "C" fn(u64, u64) -> u64 =
                std::mem::transmute(self.addr as usize as *const ());
            interp(table, fin)
        })
    }
}

/// How `process_madvise(PIDFD_SELF, MADV_DONTNEED)` behaved on a scratch page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MadviseCheck {
    /// It returned the length and dropped the page's contents.
    Works,
    /// It failed with this errno (an older kernel: `PIDFD_SELF` is Linux 6.15).
    Failed(Errno),
    /// It returned something else, or left the contents.
    NoEffect,
}

/// Tries `process_madvise(PIDFD_SELF, {page, len}, 1, MADV_DONTNEED, 0)` on a scratch page:
/// it must return `len` and drop the page's contents. `Err`: the scratch page could not be
/// mapped.
pub(crate) fn check_process_madvise(len: u64) -> Result<MadviseCheck, Errno> {
    let page = TempPages::map(None, 2 * PAGE).map_err(|e| match e {
        PagesError::Sys(e) => e,
        PagesError::OutOfBounds => Errno::INVAL,
    })?;
    let at = page.addr() + PAGE;
    page.write(at, &[1]).map_err(|_| Errno::INVAL)?;
    let iov = [at, len];
    // SAFETY: process_madvise reads one iovec from `iov` (alive) and drops the contents of the
    // scratch page, which only `page` refers to.
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            super::abi::PIDFD_SELF,
            iov.as_ptr(),
            1 as libc::c_long,
            libc::MADV_DONTNEED as libc::c_long,
            0 as libc::c_long,
        )
    };
    let errno = super::last_errno();
    let cleared = page.read_u64(at).is_some_and(|w| w == 0);
    Ok(if r == len as libc::c_long && cleared {
        MadviseCheck::Works
    } else if r < 0 {
        MadviseCheck::Failed(errno)
    } else {
        MadviseCheck::NoEffect
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps the interpreter and `entries` (ended by a KIND_END entry) in temporary pages:
    /// the table in the third page, the final block in the second.
    fn load(entries: &[[u64; 10]]) -> TempPages {
        let mut temp = TempPages::map(None, 3 * PAGE).unwrap();
        temp.install(Code::Interpreter).unwrap();
        let mut all = entries.to_vec();
        all.push([0, 0, 0, 0, 0, 0, 0, KIND_END, 0, 0]);
        let bytes: Vec<u8> = all.iter().flatten().flat_map(|w| w.to_ne_bytes()).collect();
        temp.write(temp.addr() + 2 * PAGE, &bytes).unwrap();
        temp
    }

    /// Runs a loaded table; returns the interpreter's result and the failing index.
    fn run(temp: &TempPages) -> (u64, u64) {
        let fin = temp.addr() + PAGE + 1280;
        let rax = temp.run_interpreter(temp.addr() + 2 * PAGE, fin).unwrap();
        (rax, temp.read_u64(fin + 48).unwrap())
    }

    fn close_bad(kind: u64) -> [u64; 10] {
        [libc::SYS_close as u64, u64::MAX, 0, 0, 0, 0, 0, kind, 0, 0]
    }

    fn getppid(kind: u64, value: u64) -> [u64; 10] {
        [libc::SYS_getppid as u64, 0, 0, 0, 0, 0, 0, kind, value, 0]
    }

    #[test]
    fn failure_before_any_change_returns_with_the_index_and_errno() {
        // An ignored error does not count as a change; the next one fails.
        let temp = load(&[close_bad(KIND_ANY), close_bad(KIND_OK)]);
        let (rax, index) = run(&temp);
        assert_eq!(rax as i64, -i64::from(libc::EBADF));
        assert_eq!(index, 1);
        // A result other than the expected value fails too.
        let temp = load(&[getppid(KIND_VALUE, u64::MAX - 5)]);
        let (rax, index) = run(&temp);
        assert_eq!(rax, u64::from(std::os::unix::process::parent_id()));
        assert_eq!(index, 0);
    }

    #[test]
    fn failure_after_a_change_is_sigsegv() {
        // getppid succeeds (a change, as far as the interpreter knows), then close fails.
        let temp = load(&[getppid(KIND_ANY, 0), close_bad(KIND_OK)]);
        // The child only calls the interpreter (no allocation) and exits with 3 if it
        // returned (a test failure).
        let child = super::super::process::fork(|| {
            let _ = run(&temp);
            3
        })
        .unwrap();
        let (_, status) =
            rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty())
                .unwrap()
                .unwrap();
        assert_eq!(
            status.terminating_signal(),
            Some(libc::SIGSEGV),
            "status {status:?}"
        );
    }

    #[test]
    fn writes_stay_in_the_writable_pages() {
        let mut p = TempPages::map(None, 3 * PAGE).unwrap();
        assert_eq!(p.write(p.addr(), &[1]), Err(PagesError::OutOfBounds));
        assert_eq!(
            p.write(p.addr() + 3 * PAGE - 1, &[1, 2]),
            Err(PagesError::OutOfBounds)
        );
        p.write(p.addr() + PAGE, &7u64.to_ne_bytes()).unwrap();
        assert_eq!(p.read_u64(p.addr() + PAGE), Some(7));
        assert_eq!(
            p.run_interpreter(p.addr() + PAGE, p.addr() + 2 * PAGE),
            None
        );
        p.install(Code::Syscall).unwrap();
        assert_eq!(
            p.run_interpreter(p.addr() + PAGE, p.addr() + 2 * PAGE),
            None
        );
        assert_eq!(p.install(Code::Interpreter), Err(PagesError::OutOfBounds));
    }
}
