//! Kernel constants the crate needs that libc 0.2 does not define, each from the uapi header
//! (or ABI document) that defines it. Everything else comes from `libc` or `rustix`.

/// The x86_64 page size, the only one the exec in place supports.
pub(crate) const PAGE: u64 = 4096;

/// `NT_X86_XSTATE` (`include/uapi/linux/elf.h`): the regset of the XSAVE area.
#[cfg(target_arch = "x86_64")]
pub(crate) const NT_X86_XSTATE: libc::c_int = 0x202;

/// `ARCH_SET_GS` (`arch/x86/include/uapi/asm/prctl.h`).
#[cfg(target_arch = "x86_64")]
pub(crate) const ARCH_SET_GS: u64 = 0x1001;
/// `ARCH_SET_FS` (`arch/x86/include/uapi/asm/prctl.h`).
#[cfg(target_arch = "x86_64")]
pub(crate) const ARCH_SET_FS: u64 = 0x1002;
/// `ARCH_GET_FS` (`arch/x86/include/uapi/asm/prctl.h`).
#[cfg(target_arch = "x86_64")]
pub(crate) const ARCH_GET_FS: u64 = 0x1003;

/// `RSEQ_FLAG_UNREGISTER` (`include/uapi/linux/rseq.h`).
pub(crate) const RSEQ_FLAG_UNREGISTER: u64 = 1;

/// `PIDFD_SELF_THREAD` (`include/uapi/linux/pidfd.h`, Linux 6.15), also named `PIDFD_SELF`:
/// the calling thread, for `process_madvise`.
pub(crate) const PIDFD_SELF: i64 = -10000;

/// `__USER_CS` (`arch/x86/include/asm/segment.h`): the 64-bit user code segment selector.
#[cfg(target_arch = "x86_64")]
pub(crate) const USER_CS: u64 = 0x33;
/// `__USER_DS` (`arch/x86/include/asm/segment.h`): the user data (and stack) segment selector.
#[cfg(target_arch = "x86_64")]
pub(crate) const USER_DS: u64 = 0x2b;
/// The x86_64 `syscall` instruction.
#[cfg(target_arch = "x86_64")]
pub(crate) const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];
/// `__USER32_CS`: the selector of an ia32 task's code.
#[cfg(target_arch = "x86_64")]
pub(crate) const USER32_CS: u64 = 0x23;
/// The i386 `int $0x80` instruction (the same length as `syscall`).
#[cfg(target_arch = "x86_64")]
pub(crate) const INT80_INSN: [u8; 2] = [0xcd, 0x80];
/// i386's `__NR_brk` (`arch/x86/entry/syscalls/syscall_32.tbl`).
#[cfg(target_arch = "x86_64")]
pub(crate) const NR32_BRK: u64 = 45;

/// `sizeof(sigset_t)` in the kernel (`_NSIG / 8`): what `rt_sigaction` and `rt_sigprocmask`
/// take as their last argument.
pub(crate) const KERNEL_SIGSET_SIZE: u64 = 8;

/// `PTRACE_GET_RSEQ_CONFIGURATION` (`include/uapi/linux/ptrace.h`, 5.13): not in every libc
/// crate target (musl lacks it).
pub(crate) const PTRACE_GET_RSEQ_CONFIGURATION: u32 = 0x420f;

/// `struct ptrace_rseq_configuration` (`include/uapi/linux/ptrace.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RseqConfiguration {
    /// The registered `struct rseq` (0: none).
    pub rseq_abi_pointer: u64,
    /// Its registered size.
    pub rseq_abi_size: u32,
    /// The abort signature.
    pub signature: u32,
    /// Registration flags.
    pub flags: u32,
    /// Padding.
    pub pad: u32,
}
