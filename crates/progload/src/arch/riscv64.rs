//! RISC-V 64 (`arch/riscv/include/asm/{elf.h,processor.h,pgtable.h}`, generic `mm/util.c`).
//!
//! The VA mode (sv39, sv48, sv57) is picked at boot from what the hardware offers; since 6.6
//! ("riscv: mm: Restrict address space for sv39,sv48,sv57") `STACK_TOP` and `ELF_ET_DYN_BASE`
//! derive from `DEFAULT_MAP_WINDOW`, at most 2^47, so sv48 and sv57 machines share one
//! layout but for `TASK_SIZE` (`Profile::with_riscv64_paging`).

use super::{AlignStack, ArchSpec};

/// `EM_RISCV`.
pub const EM_RISCV: u16 = 243;
/// `AT_L1I_CACHESIZE`; the cache entries run to `AT_L3_CACHEGEOMETRY` (47) in pairs of size
/// and geometry (`ways << 16 | line size`).
pub const AT_L1I_CACHESIZE: u64 = 40;
/// `AT_L3_CACHEGEOMETRY`, the last cache entry.
pub const AT_L3_CACHEGEOMETRY: u64 = 47;

/// The RISC-V 64 description.
pub const SPEC: ArchSpec = ArchSpec {
    e_machine: EM_RISCV,
    // rv32 compat (COMPAT_ELF_ET_DYN_BASE...) is not modelled; Debian's kernel does not
    // enable it.
    compat_machines: &[],
    mmap_rnd_bits: 18,
    // 5.15 on ("riscv: Use the generic STACK_RND_MASK"... 0x3ffff >> (PAGE_SHIFT - 12)).
    stack_rnd_mask: 0x3_ffff,
    brk_rnd_range: 1 << 30,
    // 6.12 on ("riscv: Randomize lower bits of stack address"); identity before.
    align_stack: AlignStack::BelowPage,
    legacy_on_unlimited_stack: true,
    clears_read_implies_exec: false,
    data_exec_follows_personality: false,
    parses_gnu_property: false,
    checks_class: true,
    hwcap2: false,
    // riscv defines no ELF_PLATFORM: no AT_PLATFORM and no platform string.
    platform: "",
};
