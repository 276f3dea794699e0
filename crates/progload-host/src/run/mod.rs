//! Userland exec in place: replace the calling process with a planned image, without
//! `execve`, `execveat`, `fexecve` or a memfd exec anywhere on the path.
//!
//! # Mechanism
//!
//! The process to be replaced (P) cannot tear down its own address space while running in
//! it: whatever code performs the last `munmap` would have to survive it, and whatever sets
//! the final registers would have to leave no trace (a trampoline page, a signal frame, a
//! clobbered `rcx`/`r11`). So P does all the work that can fail *before* the point of no
//! return itself, while it still owns its memory, and leaves the destructive part to a
//! helper that drives P from the outside with `ptrace`:
//!
//! 1. **P prepares** ([`exec_plan_in_place`], module `caller`): it checks it is single-threaded, opens every
//!    file of the plan (through the `O_PATH` descriptors of [`crate::HostFs`]),
//!    reads its own `/proc/self/maps`, signal actions, close-on-exec descriptors,
//!    credentials and personality, and maps two temporary pages at an address that is free
//!    now and free in the plan: an `r-x` page holding one `syscall` instruction and an `rw-`
//!    page holding the syscall arguments (`struct sigaction`s, `stack_t`, `prctl_mm_map` and
//!    the auxv, comm). It compiles everything into a `Script` (module `script`): a list of
//!    syscalls to run in P and of memory writes.
//! 2. **P forks the helper** (H) by a double fork, the first one a raw `clone` with no exit
//!    signal, so that P gets no `SIGCHLD` and keeps no zombie: H ends up a child of init, not
//!    of P, and the new program never sees it. P names H with `PR_SET_PTRACER` (Yama) and
//!    blocks in `read` on a pipe.
//! 3. **H rebuilds P** (module `ptrace_helper`): `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, then each step is
//!    one syscall injected into P: registers set to `rip` = the temporary `syscall`
//!    instruction, `orig_rax = -1` (no syscall restart), then `PTRACE_SINGLESTEP`, which
//!    stops right after the syscall. In order: rseq unregistered (as `rseq_execve`), robust
//!    list and `clear_child_tid` cleared (as `exec_mm_release`), every mapping of P unmapped
//!    except the temporary pages and the vDSO/vvar, `munlockall`, the vDSO/vvar moved with
//!    `mremap` to the planned addresses (the kernel allows it: `vdso_mremap` updates
//!    `mm->context.vdso`; it must be P that calls it), `PR_SET_MM_MAP` (start_code..env_end,
//!    start_brk, brk, the auxv shown by /proc/PID/auxv, and `exe_fd`, i.e.
//!    `PR_SET_MM_EXE_FILE`: done before the new files are mapped so that the "old exe still
//!    mapped" rule cannot trip), every planned VMA mapped at its fixed address (files
//!    `MAP_PRIVATE` from the descriptors P opened, anonymous memory, the stack with
//!    `MAP_GROWSDOWN`), then H writes the `padzero` ranges and the stack bytes through
//!    `/proc/P/mem`; signal handlers reset (handled → `SIG_DFL`, ignored kept, flags and
//!    masks cleared, as `flush_signal_handlers`; the blocked mask and pending signals are
//!    untouched), `sigaltstack` disabled, personality, `PR_SET_NAME`, credentials (only
//!    when the plan changes them), close-on-exec descriptors closed and, last, `munmap` of
//!    the two temporary pages — the syscall returns into unmapped memory, but the
//!    single-step trap stops P before it fetches anything. H then sets the registers of
//!    `START_THREAD` (entry, stack pointer, `rflags` 0x202, every other register, FS/GS base
//!    and selectors 0), resets the x87/SSE/AVX state through `NT_X86_XSTATE` (`fcw` 0x37f,
//!    `mxcsr` 0x1f80, all vector registers zero), detaches and exits.
//!
//! Nothing of progload is left: no mapping (the temporary pages go last), no descriptor, no
//! child, no signal frame below the stack pointer, no register value.
//!
//! The point of no return is H's first injected syscall. Before it, any failure (P
//! multi-threaded, a file that cannot be opened, no free place for the temporary pages, the
//! vDSO layout of the plan not matching the kernel's, `ptrace` refused) is returned to the
//! caller with P unchanged. After it, H makes P die of `SIGSEGV`, as the kernel does.
//!
//! Why not a self-unmapping trampoline: the last instruction that unmaps the loader's code
//! cannot be in that code, and jumping to the entry leaves `rcx`/`r11` (or a signal frame
//! for `rt_sigreturn`) behind; the `ptrace` helper leaves nothing and needs no executable
//! *and* writable page at any time.
//!
//! # When P is already traced (a debugger, strace, a `PTRACE_TRACEME` parent)
//!
//! No helper can attach to a traced process, so P replays the same script itself (module
//! `self_replay`); nothing is forked or cloned, so a tracer that follows forks sees no extra
//! process. The non-traced path above is unchanged.
//!
//! 1. P prepares as above, plus: `/proc/self/mem` opened (the writes go through it, as the
//!    helper's do: `FOLL_FORCE`, whatever the protection), its rseq registration identified
//!    (glibc's `__rseq_offset`/`__rseq_size`, confirmed by the kernel's `EBUSY`), a
//!    `syscall` instruction `G` found in the planned vDSO (else in an executable file page
//!    of the image), and `process_madvise(PIDFD_SELF)` checked to work. The temporary code
//!    page holds a small interpreter instead of one `syscall`; the data pages hold the step
//!    table and the bytes to write.
//! 2. P blocks every signal and calls the interpreter, which runs the table (the same
//!    steps, then `ARCH_SET_FS`/`ARCH_SET_GS` 0, the `rt_sigreturn` frame written just below
//!    the initial stack pointer, a 15-byte trampoline and its iovec written copy-on-write
//!    into `G`'s page, the exec `SIGTRAP` queued, the close-on-exec descriptors closed),
//!    using no stack. A failure before any change returns the error with P unchanged (mask
//!    restored); after one, P dies of `SIGSEGV`.
//! 3. The interpreter jumps to the trampoline, in the new image: `munmap` of the temporary
//!    pages; `process_madvise(PIDFD_SELF, {page of G, 15}, MADV_DONTNEED)`, which drops the
//!    modified copy of the page (its file or vDSO contents come back) and returns 15 =
//!    `__NR_rt_sigreturn`; execution goes on at `G`, now the image's own `syscall`:
//!    `rt_sigreturn` loads every register from the frame (entry, stack pointer, `rflags`
//!    0x202, all others 0), resets the x87/SSE/AVX state (`fpstate` NULL), disables the
//!    alternate stack and restores the caller's signal mask. On the way out to the entry,
//!    the pending `SIGTRAP` (`SI_USER`, from the process itself: `send_sig(SIGTRAP,
//!    current, 0)` as the kernel's legacy exec report) stops P in a signal-delivery-stop.
//!
//! What a tracer sees, and the residual differences from a kernel exec:
//!
//! - A `PTRACE_TRACEME`/`PTRACE_ATTACH` tracer without `PTRACE_O_TRACEEXEC`: the `SIGTRAP`
//!   stop at the entry with the kernel's registers and mappings, except `orig_rax`, -1
//!   instead of 59 (the stop follows `rt_sigreturn`, not `execve`).
//! - A `PTRACE_O_TRACEEXEC` tracer (gdb) gets no `PTRACE_EVENT_EXEC` (only the kernel can
//!   report one): it gets that same `SIGTRAP` signal-delivery-stop instead, where the kernel
//!   shows the event stop (with `rax` still `-ENOSYS` inside `execve`). gdb reports
//!   "Program received signal SIGTRAP" at the entry (`_start` of ld.so or of the program)
//!   and still believes the old program is loaded: `file /proc/PID/exe` loads the new
//!   one's symbols, after which breakpoints and shared libraries work. With gdb's default
//!   `disable-randomization on` this works; with it off, gdb's libthread_db (loaded for
//!   progload's libc) fails at the stop ("Cannot find user-level thread"): set
//!   `libthread-db-search-path` to an empty directory first.
//! - A tracer that stops P at every syscall (strace; detected before the point of no
//!   return: `getppid` calls that cost voluntary context switches) gets no `SIGTRAP`,
//!   which it would pass on and kill the program with: it sees the whole rebuild syscall by
//!   syscall, ending with `rt_sigreturn` returning to the entry. A seized tracer without
//!   syscall stops gets the `SIGTRAP`, which the kernel would not send it.
//! - 304 bytes below the initial stack pointer hold the `rt_sigreturn` frame (the entry,
//!   the stack pointer, `rflags`, `cs`/`ss`, `SS_DISABLE`, the signal mask); the kernel
//!   leaves zeros there. When they cross into the next page down, that page is resident.
//! - The exec `SIGTRAP` is queued a few syscalls before the end: a tracer detaching in
//!   that window leaves the program a `SIGTRAP` with its default action.
//! - After the point of no return the tracer sees the `SIGSEGV` signal-delivery-stop (the
//!   kernel's `force_fatal_sig` skips the tracer).
//! - Needs `process_madvise(PIDFD_SELF, MADV_DONTNEED)` (Linux 6.15 or later) and a
//!   `syscall` instruction (bytes `0f 05`) in the vDSO or the image's code; otherwise the
//!   error is returned before the point of no return.
//!
//! # Root, working directory, privileges
//!
//! [`RunOptions`] name the program's root and working directory; P enters them as its last
//! step before the point of no return (module `root`), once every file is open, its maps,
//! descriptors and `/proc/self/mem` (for the helper) read or opened. Setting
//! `/proc/PID/exe` needs `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN`: a caller without them
//! gets [`RunError::NeedsExeCapability`] before anything changes, unless it gives a root,
//! which it then enters in a new user namespace holding those capabilities (dropped at the
//! end of the script).
//!
//! # Limits
//!
//! - x86_64 only; elsewhere every function returns [`RunError::Unsupported`].
//! - P must be single-threaded (the kernel's `de_thread` is not emulated).
//! - `mm->mmap_base` cannot be set from user space: mappings the *new program* makes later
//!   (ld.so loading libc, malloc arenas) are placed below the caller's `mmap_base`, which was
//!   chosen when the caller itself was exec'd. With randomization off, run the caller under
//!   `setarch -R` too to get the kernel's exact later placements.
//! - POSIX timers (`timer_create`) of the caller are not deleted.
//!
//! # Modules
//!
//! The graph is one-way: `script` (the operations, pure data, and `compile`) depends on no
//! other module of `run` but `error`; the two runners, `ptrace_helper` (from outside) and
//! `self_replay` (from inside), depend on `script`; `caller` (the preparation in P) too;
//! the drivers here use them all. Their system calls go through the crate's `sys` module.

#[cfg(target_arch = "x86_64")]
mod caller;
mod error;
#[cfg(target_arch = "x86_64")]
mod ptrace_helper;
mod root;
#[cfg(target_arch = "x86_64")]
mod script;
#[cfg(target_arch = "x86_64")]
mod self_replay;

use std::convert::Infallible;

use progload::{LoadRequest, Plan, Profile, SeededRng};

pub use self::error::RunError;
pub use self::root::RunOptions;

use crate::{HostFs, HostHandle};

/// A process id.
pub type Pid = i32;

fn os_rng() -> SeededRng {
    let mut seed = [0u8; 32];
    // A failure leaves zeros, which still gives a valid (if predictable) seed.
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut seed);
    }
    SeededRng::from_seed(seed)
}

/// Restores the default action of `SIGPIPE`, which the Rust runtime ignores at startup.
///
/// A kernel exec keeps ignored signals ignored, and so does [`exec_plan_in_place`]. A Rust
/// program that execs on behalf of a user (as `std::process::Command` does in its children)
/// usually wants the program to start with the default `SIGPIPE` instead: call this first.
pub fn default_sigpipe() {
    crate::sys::process::default_sigpipe();
}

/// The descriptor number a binfmt_misc `O`/`C` exec in place installs `AT_EXECFD` at: the
/// lowest one the program does not inherit open, as a kernel exec picks it in a process whose
/// only descriptors are those it passes on (put it in [`LoadRequest::execfd`]). The calling
/// process's own close-on-exec descriptors do not count: they are gone after the exec.
pub fn free_execfd() -> u64 {
    (0..)
        .find(|&fd| !crate::sys::process::is_inherited(fd))
        .map_or(0, |fd| fd as u64)
}

/// Replaces the calling process with `request`, as `execve` would, without `execve`.
///
/// Plans the exec (layout entropy and AT_RANDOM from the OS) and applies it with
/// [`exec_plan_in_place`].
///
/// # Errors
/// The planning error `execve` would return, or a failure before the point of no return;
/// the caller is then unchanged. It never returns on success.
#[doc(alias = "execve")]
pub fn exec_in_place(
    fs: &HostFs,
    profile: &Profile,
    request: &LoadRequest<HostHandle>,
) -> Result<Infallible, RunError> {
    let plan = progload::plan(fs, profile, request, &mut os_rng())?;
    exec_plan_in_place(&plan)
}

/// Replaces the calling process with the image `plan` describes (see the module docs for
/// the mechanism). `plan` must come from a [`HostFs`] and the host profile.
///
/// # Errors
/// A failure before the point of no return; the caller is then unchanged. After it, the
/// process is killed with `SIGSEGV`. It never returns on success.
#[doc(alias = "execve")]
pub fn exec_plan_in_place(plan: &Plan<HostHandle>) -> Result<Infallible, RunError> {
    exec_plan_in_place_with(plan, &RunOptions::default())
}

/// [`exec_plan_in_place`], the program starting in the root and working directory of
/// `options` (entered last before the point of no return; see [`RunOptions`]).
///
/// # Errors
/// As [`exec_plan_in_place`]; also a root the caller can enter neither with `chroot` nor in a
/// new user namespace. The caller may then be in that namespace or in another working
/// directory, its image unchanged.
#[doc(alias = "execve")]
pub fn exec_plan_in_place_with(
    plan: &Plan<HostHandle>,
    options: &RunOptions<'_>,
) -> Result<Infallible, RunError> {
    refuse_compat(plan)?;
    #[cfg(target_arch = "x86_64")]
    {
        let entry = root::decide(options)?;
        if caller::is_traced() {
            // A debugger holds P: no helper can attach; P rebuilds itself.
            exec_replaying(plan, options, entry)
        } else {
            exec_with_helper(plan, options, entry)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (plan, options);
        Err(RunError::Unsupported(String::from(
            "userland exec is implemented for x86_64 only",
        )))
    }
}

/// Why an ia32 program cannot be run in place: the process would be left a 64-bit task (its
/// mm, syscall ABI and signal frames stay 64-bit; only the kernel's exec makes a compat task),
/// with no vdso32 to enter the kernel through. `progload run` says the same when its profile
/// cannot even plan the program.
pub fn i386_refusal() -> RunError {
    RunError::Unsupported(String::from(
        "an i386 program needs a 32-bit (compat) task, which only the kernel's execve makes; \
         plan it, or compare it with the kernel (progload check)",
    ))
}

/// An ia32 plan is refused before anything changes ([`i386_refusal`]).
fn refuse_compat(plan: &Plan<HostHandle>) -> Result<(), RunError> {
    if plan.arch == progload::arch::Arch::I386 {
        return Err(i386_refusal());
    }
    Ok(())
}

/// The script of `plan` for the prepared caller `p` with its temporary pages `temp`: the state
/// the exec changes is read last, just before compiling.
#[cfg(target_arch = "x86_64")]
fn compile(
    plan: &Plan<HostHandle>,
    p: &caller::Caller,
    temp: &crate::sys::pages::TempPages,
    entry: root::Entry,
) -> Result<script::Script, RunError> {
    let state = caller::state()?;
    let fds = p.fds();
    let inputs = script::Inputs {
        temp: caller::temp_range(temp),
        specials: &p.specials,
        files: &fds,
        state: &state,
        drop_capabilities: entry.drop_capabilities,
    };
    script::compile(plan, &inputs)
}

/// The untraced path: P prepares, compiles the script, and a ptrace helper replays it.
#[cfg(target_arch = "x86_64")]
fn exec_with_helper(
    plan: &Plan<HostHandle>,
    options: &RunOptions<'_>,
    entry: root::Entry,
) -> Result<Infallible, RunError> {
    use crate::sys::abi::PAGE;
    use crate::sys::pages::Code;
    let p = caller::Caller::prepare(plan, caller::Runner::PtraceHelper)?;
    let temp = p.map_temp(plan, 2 * PAGE, Code::Syscall, |range| {
        script::argument_blocks(plan, range, p.exe)
    })?;
    let mut script = compile(plan, &p, &temp, entry)?;
    let channel = ptrace_helper::Channel::open()?;
    script.close_on_exec(&caller::close_on_exec_fds()?, p.execfd());
    script.unmap_temporary();
    root::enter(options, entry)?;
    // `p` (the plan's files) and `temp` stay alive until the helper has used them.
    channel.run(&script)
}

/// The traced path: P prepares, compiles the script, and replays it itself.
#[cfg(target_arch = "x86_64")]
fn exec_replaying(
    plan: &Plan<HostHandle>,
    options: &RunOptions<'_>,
    entry: root::Entry,
) -> Result<Infallible, RunError> {
    use crate::sys::pages::Code;
    let p = caller::Caller::prepare(plan, caller::Runner::SelfReplay)?;
    let replay = self_replay::SelfReplay::prepare(plan, &p.maps, &p.files)?;
    let temp = p.map_temp(plan, replay.temp_len(), Code::Interpreter, |range| {
        let mut data = script::argument_blocks(plan, range, p.exe)?;
        replay.fill_data(&mut data, range, plan);
        Ok(data)
    })?;
    let mut script = compile(plan, &p, &temp, entry)?;
    replay.extend(&mut script, plan);
    script.close_on_exec(&caller::close_on_exec_fds()?, p.execfd());
    root::enter(options, entry)?;
    replay.run(&script, &temp)
}

/// Starts `request` in a new process, as `fork` + `execve` would, without `execve`: forks,
/// replaces the child with [`exec_plan_in_place`], and returns the child's pid once the
/// child is past its point of no return.
///
/// # Errors
/// The planning error (found before forking) or the child's failure before its point of no
/// return (the child has then exited and been reaped).
#[doc(alias = "posix_spawn")]
pub fn spawn(
    fs: &HostFs,
    profile: &Profile,
    request: &LoadRequest<HostHandle>,
) -> Result<Pid, RunError> {
    let plan = progload::plan(fs, profile, request, &mut os_rng())?;
    spawn_plan(&plan)
}

/// [`spawn`] for an already computed plan.
///
/// # Errors
/// As [`spawn`].
pub fn spawn_plan(plan: &Plan<HostHandle>) -> Result<Pid, RunError> {
    spawn_plan_with(plan, &RunOptions::default())
}

/// [`spawn_plan`], the child starting in the root and working directory of `options`.
///
/// # Errors
/// As [`spawn`].
pub fn spawn_plan_with(plan: &Plan<HostHandle>, options: &RunOptions<'_>) -> Result<Pid, RunError> {
    refuse_compat(plan)?;
    #[cfg(target_arch = "x86_64")]
    {
        spawn_child(plan, options)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (plan, options);
        Err(RunError::Unsupported(String::from(
            "userland exec is implemented for x86_64 only",
        )))
    }
}

/// Forks; the child replaces itself with `plan`; returns its pid once it is past its point
/// of no return (the report pipe, close-on-exec, is closed by its script).
#[cfg(target_arch = "x86_64")]
fn spawn_child(plan: &Plan<HostHandle>, options: &RunOptions<'_>) -> Result<Pid, RunError> {
    use std::os::fd::AsRawFd;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RunError::host("pipe", e))?;
    let read_end = r.as_raw_fd() as u32;
    // The child runs `exec_plan_in_place` (which allocates, as glibc allows after fork: its
    // allocator is reset for the child), then writes its error and exits.
    let child = crate::sys::process::fork(|| {
        let _ = crate::sys::process::close_range(read_end, read_end);
        let e = match exec_plan_in_place_with(plan, options) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        let mut msg = e.errno().0.to_le_bytes().to_vec();
        msg.extend_from_slice(e.to_string().as_bytes());
        let _ = rustix::io::write(&w, &msg);
        127
    })
    .map_err(|e| RunError::host("fork", e))?;
    drop(w);
    let mut msg = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = ptrace_helper::read_some(&r, &mut buf, "reading from the child")?;
        if n == 0 {
            break;
        }
        msg.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
    if msg.is_empty() {
        return Ok(child.as_raw_nonzero().get());
    }
    // The child failed and exited: reap it.
    let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
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
