//! Kernel constants the crate needs that libc 0.2 does not define, each from the uapi header
//! (or ABI document) that defines it. Everything else comes from `libc` or `rustix`.

/// `__USER_CS` (`arch/x86/include/asm/segment.h`): the 64-bit user code segment selector.
#[cfg(target_arch = "x86_64")]
pub(crate) const USER_CS: u64 = 0x33;

/// The x86_64 `syscall` instruction.
#[cfg(target_arch = "x86_64")]
pub(crate) const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

/// `sizeof(sigset_t)` in the kernel (`_NSIG / 8`): what `rt_sigaction` and `rt_sigprocmask`
/// take as their last argument.
pub(crate) const KERNEL_SIGSET_SIZE: u64 = 8;
