//! i386 programs on an x86_64 kernel (`compat_binfmt_elf`, `CONFIG_IA32_EMULATION`):
//! `arch/x86/include/asm/{elf.h,processor.h}`, `arch/x86/kernel/process_64.c`
//! (`set_personality_ia32()`, `start_thread_ia32()`), `arch/x86/entry/vdso/vma.c`.
//!
//! After `SET_PERSONALITY` the task has `TIF_ADDR32` and `TS_COMPAT`, so everything the loader
//! maps from then on sees the 32-bit `TASK_SIZE` and the compat mmap bases.

use super::{AlignStack, ArchSpec};

/// `EM_386`.
pub const EM_386: u16 = 3;
/// `EM_486`, which `elf_check_arch_ia32()` accepts too.
pub const EM_486: u16 = 6;
/// `IA32_PAGE_OFFSET`: `TASK_SIZE` and `STACK_TOP` of an ia32 task.
pub const TASK_SIZE: u64 = 0xffff_e000;
/// `__USER32_CS`.
pub const USER32_CS: u64 = 0x23;
/// `__USER32_DS` (also loaded into `ds` and `es` by `start_thread_ia32()`).
pub const USER32_DS: u64 = 0x2b;
/// `AT_SYSINFO`: the vDSO's `__kernel_vsyscall` entry.
pub const AT_SYSINFO: u64 = 32;
/// `vm.mmap_rnd_compat_bits` default (`CONFIG_ARCH_MMAP_RND_COMPAT_BITS`).
pub const MMAP_RND_COMPAT_BITS: u32 = 8;

/// `__TASK_UNMAPPED_BASE(IA32_PAGE_OFFSET)` = `PAGE_ALIGN(TASK_SIZE / 3)`: the legacy base.
pub const TASK_UNMAPPED_BASE: u64 = 0x5555_5000;
/// `COMPAT_ELF_ET_DYN_BASE` = `TASK_UNMAPPED_BASE + 16 MiB`.
pub const ELF_ET_DYN_BASE: u64 = TASK_UNMAPPED_BASE + 0x100_0000;

/// The i386-on-x86_64 description.
pub const SPEC: ArchSpec = ArchSpec {
    e_machine: EM_386,
    compat_machines: &[],
    mmap_rnd_bits: MMAP_RND_COMPAT_BITS,
    // __STACK_RND_MASK(1): 0x7ff pages (8 MiB).
    stack_rnd_mask: 0x7ff,
    // arch_randomize_brk(): 32 MiB for an ia32 task, on every release.
    brk_rnd_range: 32 << 20,
    align_stack: AlignStack::Below8k,
    legacy_on_unlimited_stack: false,
    checks_class: false,
    hwcap2: true,
    // set_personality_ia32() keeps the caller's READ_IMPLIES_EXEC, and
    // elf_read_implies_exec() sets it for a program without PT_GNU_STACK.
    clears_read_implies_exec: false,
    data_exec_follows_personality: true,
    parses_gnu_property: false,
    // COMPAT_ELF_PLATFORM.
    platform: "i686",
};
