//! x86_64 (`arch/x86/include/asm/{elf.h,processor.h,page_64_types.h}`, `arch/x86/mm/mmap.c`).

use super::{AlignStack, ArchSpec};

/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `DEFAULT_MAP_WINDOW` with 4-level paging = `STACK_TOP` = `TASK_SIZE`.
pub const DEFAULT_MAP_WINDOW: u64 = (1 << 47) - 4096;
/// `__USER_CS`.
pub const USER_CS: u64 = 0x33;
/// `__USER_DS`.
pub const USER_DS: u64 = 0x2b;
/// Initial RFLAGS: IF plus the reserved bit 1, as `start_thread_common()` sets them since
/// 6.9 ([`crate::profile::rules::ExecRules::x86_rflags_fixed_bit`]).
pub const INITIAL_RFLAGS: u64 = 0x202;
/// Initial RFLAGS before: IF alone (ptrace reports the fixed bit as the kernel stored it).
pub const INITIAL_RFLAGS_OLD: u64 = 0x200;

/// The x86_64 description.
pub const SPEC: ArchSpec = ArchSpec {
    e_machine: EM_X86_64,
    // EM_386, EM_486 (elf_check_arch_ia32).
    compat_machines: &[3, 6],
    mmap_rnd_bits: 28,
    stack_rnd_mask: 0x3f_ffff,
    brk_rnd_range: 1 << 30,
    align_stack: AlignStack::Below8k,
    legacy_on_unlimited_stack: false,
    checks_class: false,
    hwcap2: true,
    clears_read_implies_exec: true,
    data_exec_follows_personality: true,
    parses_gnu_property: false,
    platform: "x86_64",
};
