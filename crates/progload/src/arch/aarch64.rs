//! AArch64 (`arch/arm64/include/asm/{elf.h,processor.h,memory.h}`, generic `mm/util.c`).

use super::{AlignStack, ArchSpec};

/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `DEFAULT_MAP_WINDOW_64` with 48-bit VA = `STACK_TOP`.
pub const DEFAULT_MAP_WINDOW_64: u64 = 1 << 48;
/// `TASK_SIZE_64` with 52-bit VA (`CONFIG_ARM64_VA_BITS_52`, Debian's 6.12 build).
pub const TASK_SIZE_52: u64 = 1 << 52;
/// `PSR_SSBS_BIT`: speculative store bypass allowed (`spectre_v4_enable_task_mitigation()`).
pub const PSR_SSBS_BIT: u64 = 0x1000;
/// `GNU_PROPERTY_AARCH64_FEATURE_1_AND`.
pub const FEATURE_1_AND: u32 = 0xc000_0000;
/// `GNU_PROPERTY_AARCH64_FEATURE_1_BTI`.
pub const FEATURE_1_BTI: u32 = 1;

/// The AArch64 description.
pub const SPEC: ArchSpec = ArchSpec {
    e_machine: EM_AARCH64,
    // EM_ARM (AArch32 compat).
    compat_machines: &[40],
    mmap_rnd_bits: 18,
    stack_rnd_mask: 0x3_ffff,
    brk_rnd_range: 1 << 30,
    align_stack: AlignStack::BelowPage,
    legacy_on_unlimited_stack: true,
    checks_class: false,
    hwcap2: true,
    clears_read_implies_exec: true,
    data_exec_follows_personality: true,
    parses_gnu_property: true,
    platform: "aarch64",
};
