//! Presets: profiles for a kernel release and architecture, for planning with no host at all
//! (or for another machine than this one).
//!
//! A preset knows what follows from the release and the architecture with the configuration
//! Debian builds its kernels with (4 KiB pages, 4-level paging / 48-bit VA, `CONFIG_RSEQ`,
//! `CONFIG_COMPAT_BRK` off, vsyscall emulation on x86_64). It cannot know what depends on the
//! machine or the build: the CPU's hwcaps and platform string, the signal frame size
//! (`AT_MINSIGSTKSZ`), the vDSO image (a placeholder of the right shape stands in for it), the
//! caller's stack limit and credentials (8 MiB, root), and the sysctls (defaults). The
//! profile `progload profile` prints on a machine carries those exactly.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::{Credentials, KernelVersion, Profile, Vdso, VdsoPart};
use crate::arch::{aarch64, riscv64, x86_64, Arch};
use crate::prot::Prot;
use crate::vdso::image::placeholder;

/// The preset names and the kernel each plans for: Debian 11 (bullseye), 12 (bookworm) and
/// 13 (trixie) with their security updates, and Linux 6.18.
pub const PRESETS: &[(&str, Arch, KernelVersion)] = &[
    ("x86_64-5.10", Arch::X86_64, KernelVersion::new(5, 10, 262)),
    ("x86_64-6.1", Arch::X86_64, KernelVersion::new(6, 1, 192)),
    ("x86_64-6.12", Arch::X86_64, KernelVersion::new(6, 12, 118)),
    ("x86_64-6.18", Arch::X86_64, KernelVersion::new(6, 18, 0)),
    // Debian 11's arm64 kernel: bullseye-security lists newer ones, but the archive serves
    // 5.10.223 (bullseye 11.11) as the newest.
    (
        "aarch64-5.10",
        Arch::Aarch64,
        KernelVersion::new(5, 10, 223),
    ),
    ("aarch64-6.1", Arch::Aarch64, KernelVersion::new(6, 1, 192)),
    (
        "aarch64-6.12",
        Arch::Aarch64,
        KernelVersion::new(6, 12, 118),
    ),
    ("aarch64-6.18", Arch::Aarch64, KernelVersion::new(6, 18, 0)),
    (
        "riscv64-6.12",
        Arch::Riscv64,
        KernelVersion::new(6, 12, 118),
    ),
    (
        "riscv64-6.12-sv48",
        Arch::Riscv64,
        KernelVersion::new(6, 12, 118),
    ),
    (
        "riscv64-6.12-sv39",
        Arch::Riscv64,
        KernelVersion::new(6, 12, 118),
    ),
];

/// The riscv64 paging mode a preset name asks for (`riscv64-6.12-sv39`), in VA bits: sv57
/// (qemu's default) unless the name ends in `-sv39` or `-sv48`.
fn riscv64_va_bits(name: &str) -> u32 {
    if name.ends_with("-sv39") {
        39
    } else if name.ends_with("-sv48") {
        48
    } else {
        57
    }
}

/// Names that stand for another preset: the bare architecture is its newest kernel.
const ALIASES: &[(&str, &str)] = &[
    ("x86_64", "x86_64-6.18"),
    ("linux-6.18-x86_64", "x86_64-6.18"),
    ("aarch64", "aarch64-6.18"),
    ("arm64", "aarch64-6.18"),
    ("linux-6.18-aarch64", "aarch64-6.18"),
    ("riscv64", "riscv64-6.12"),
];

fn part(name: &str, pages: u64) -> VdsoPart {
    VdsoPart {
        name: String::from(name),
        pages,
        prot: Prot::READ,
    }
}

/// The pages of the arm64 vDSO image (build-dependent): 2 in Debian's 6.12 (6.12.118, as the
/// farm's guest maps it), 1 in its 5.10.223 and 6.1.192, and 1 for 6.18 (not booted here).
fn aarch64_vdso_pages(kernel: KernelVersion) -> u64 {
    if kernel.since(6, 12) && !kernel.since(6, 13) {
        2
    } else {
        1
    }
}

/// `AT_RSEQ_FEATURE_SIZE`/`AT_RSEQ_ALIGN`: emitted since 6.3 ("rseq: Introduce feature size
/// and alignment ELF auxiliary vector entries"); `struct rseq` is 28 bytes through 6.18.
fn rseq(kernel: KernelVersion) -> Option<(u64, u64)> {
    kernel.since(6, 3).then_some((28, 32))
}

impl Profile {
    /// Linux 6.18 on x86_64 (the [`Profile::linux_x86_64`] preset of 6.18).
    pub fn linux_6_18_x86_64() -> Self {
        Self::linux_x86_64(KernelVersion::new(6, 18, 0))
    }

    /// Linux 6.18 on AArch64 (the [`Profile::linux_aarch64`] preset of 6.18).
    pub fn linux_6_18_aarch64() -> Self {
        Self::linux_aarch64(KernelVersion::new(6, 18, 0))
    }

    /// Linux `kernel` on x86_64 with 4-level paging and Debian's configuration up to 6.12
    /// (no `[vsyscall]`, `mmap_min_addr` 65536), upstream defaults after: 8 MiB stack,
    /// randomization on, root, a 2-page placeholder vDSO image, and the vvar pages of that
    /// release: one 4-page `[vvar]` up to 6.12; 2 pages of `[vvar]` and 2 of `[vvar_vclock]`
    /// from 6.13 ("x86/vdso: Split virtual clock pages into dedicated mapping"); 4 and 2 from
    /// 6.15 (the generic vDSO datastore).
    pub fn linux_x86_64(kernel: KernelVersion) -> Self {
        let page = 4096;
        // Debian's kernels (the LTS presets) are built with LEGACY_VSYSCALL_NONE, so maps has
        // no [vsyscall] line, and DEFAULT_MMAP_MIN_ADDR 65536; the 6.18 preset is a kernel
        // with the upstream defaults (vsyscall emulation, 4096).
        let debian = !kernel.since(6, 13);
        let data = if kernel.since(6, 15) {
            vec![part("[vvar]", 4), part("[vvar_vclock]", 2)]
        } else if kernel.since(6, 13) {
            vec![part("[vvar]", 2), part("[vvar_vclock]", 2)]
        } else {
            vec![part("[vvar]", 4)]
        };
        Profile {
            arch: Arch::X86_64,
            kernel,
            page_size: page,
            task_size: x86_64::DEFAULT_MAP_WINDOW,
            stack_top: x86_64::DEFAULT_MAP_WINDOW,
            stack_top_max: x86_64::DEFAULT_MAP_WINDOW,
            elf_et_dyn_base: x86_64::DEFAULT_MAP_WINDOW / 3 * 2,
            task_unmapped_base: (x86_64::DEFAULT_MAP_WINDOW / 3).next_multiple_of(page),
            hwcap: 0x178b_fbff,
            hwcap2: 0x2,
            hwcap3: None,
            cache_auxv: Vec::new(),
            pstate: 0,
            minsigstksz: 0xd30,
            platform: String::from("x86_64"),
            clock_ticks: 100,
            rseq: rseq(kernel),
            vdso: Some(Vdso {
                data,
                image: Arc::from(placeholder(Arch::X86_64, 2, page)),
            }),
            vsyscall: !debian,
            stack_rlimit: Some(8 << 20),
            mmap_min_addr: if debian { 65536 } else { 4096 },
            stack_guard_gap: 256 * page,
            legacy_va_layout: false,
            randomize_va_space: 2,
            mmap_rnd_bits: 28,
            personality: 0,
            credentials: Credentials::root(),
            cap_sys_rawio: true,
            // Debian's CONFIG_LSM lists tomoyo, which stacks beside AppArmor.
            tomoyo: true,
            // The vdso32 image and its entry are a build's: a preset plans no 32-bit program.
            overcommit: None,
            compat: None,
        }
    }

    /// Linux `kernel` on AArch64 with 4 KiB pages, 48-bit VA and Debian's configuration:
    /// 8 MiB stack, randomization on, root, a 1-page placeholder vDSO image, `[vvar]` of 2
    /// pages (4 from 6.15), and `AT_HWCAP3` from 6.13 ("arm64: Support AT_HWCAP3").
    pub fn linux_aarch64(kernel: KernelVersion) -> Self {
        let page = 4096;
        let top = aarch64::DEFAULT_MAP_WINDOW_64;
        // Debian builds 6.12 for 52-bit VA (LPA2): TASK_SIZE 2^52, the window stays 2^48.
        let task = if kernel.since(6, 12) && !kernel.since(6, 13) {
            aarch64::TASK_SIZE_52
        } else {
            top
        };
        let vvar = if kernel.since(6, 15) { 4 } else { 2 };
        Profile {
            arch: Arch::Aarch64,
            kernel,
            page_size: page,
            task_size: task,
            stack_top: top,
            stack_top_max: task,
            elf_et_dyn_base: 2 * top / 3,
            task_unmapped_base: (top / 4).next_multiple_of(page),
            hwcap: 0xfdff_ffff,
            hwcap2: 0x3_ffff,
            hwcap3: kernel.since(6, 13).then_some(0),
            cache_auxv: Vec::new(),
            pstate: aarch64::PSR_SSBS_BIT,
            minsigstksz: 0x2700,
            platform: String::from("aarch64"),
            clock_ticks: 100,
            rseq: rseq(kernel),
            vdso: Some(Vdso {
                data: vec![part("[vvar]", vvar)],
                image: Arc::from(placeholder(Arch::Aarch64, aarch64_vdso_pages(kernel), page)),
            }),
            vsyscall: false,
            stack_rlimit: Some(8 << 20),
            mmap_min_addr: 4096,
            stack_guard_gap: 256 * page,
            legacy_va_layout: false,
            randomize_va_space: 2,
            mmap_rnd_bits: 18,
            personality: 0,
            credentials: Credentials::root(),
            cap_sys_rawio: true,
            // Debian's CONFIG_LSM lists tomoyo, which stacks beside AppArmor.
            tomoyo: true,
            // The vdso32 image and its entry are a build's: a preset plans no 32-bit program.
            overcommit: None,
            compat: None,
        }
    }

    /// Linux `kernel` (6.6 or later) on RISC-V 64 with 4 KiB pages, sv57 paging (what qemu
    /// offers; [`Profile::with_riscv64_paging`] sets another mode) and Debian's configuration: 8 MiB stack, randomization on, root, a 2-page placeholder vDSO
    /// image below a `[vvar]` of 2 pages (4 from 6.15), the cache entries of a machine that
    /// describes no caches (all 0, as under qemu), and the hwcaps of an RV64IMAFDC CPU.
    /// Since 6.6 ("riscv: mm: Restrict address space for sv39,sv48,sv57") the stack top and
    /// `ELF_ET_DYN_BASE` derive from a 2^47 window, and the legacy base from 2^39.
    pub fn linux_riscv64(kernel: KernelVersion) -> Self {
        let page = 4096;
        let vvar = if kernel.since(6, 15) { 4 } else { 2 };
        let caches = (riscv64::AT_L1I_CACHESIZE..=riscv64::AT_L3_CACHEGEOMETRY)
            .map(|t| (t, 0))
            .collect();
        Profile {
            arch: Arch::Riscv64,
            kernel,
            page_size: page,
            // with_riscv64_paging() below sets the four of them.
            task_size: 0,
            stack_top: 0,
            stack_top_max: 0,
            elf_et_dyn_base: 0,
            task_unmapped_base: ((1u64 << 39) / 3).next_multiple_of(page),
            hwcap: 0x112d,
            hwcap2: 0,
            hwcap3: None,
            cache_auxv: caches,
            pstate: 0,
            minsigstksz: 0x4c0,
            platform: String::new(),
            clock_ticks: 100,
            rseq: rseq(kernel),
            vdso: Some(Vdso {
                data: vec![part("[vvar]", vvar)],
                image: Arc::from(placeholder(Arch::Riscv64, 1, page)),
            }),
            vsyscall: false,
            stack_rlimit: Some(8 << 20),
            mmap_min_addr: 4096,
            stack_guard_gap: 256 * page,
            legacy_va_layout: false,
            randomize_va_space: 2,
            mmap_rnd_bits: 18,
            personality: 0,
            credentials: Credentials::root(),
            cap_sys_rawio: true,
            // Debian's CONFIG_LSM lists tomoyo, which stacks beside AppArmor.
            tomoyo: true,
            // The vdso32 image and its entry are a build's: a preset plans no 32-bit program.
            overcommit: None,
            compat: None,
        }
        .with_riscv64_paging(57)
    }

    /// This riscv64 profile with the layout of a paging mode, given as VA bits (39, 48 or 57;
    /// the mode the kernel picked at boot, `mmu` in /proc/cpuinfo): `TASK_SIZE` (and
    /// `STACK_TOP_MAX`) is half the VA space, 2^38, 2^47 or 2^56
    /// (`PGDIR_SIZE * PTRS_PER_PGD / 2`), while since 6.6 ("riscv: mm: Restrict address space
    /// for sv39,sv48,sv57") the stack top and `ELF_ET_DYN_BASE` (2/3 of it) derive from
    /// `DEFAULT_MAP_WINDOW`, which is capped at sv48's 2^47. Other values count as sv48.
    #[must_use]
    pub fn with_riscv64_paging(mut self, va_bits: u32) -> Self {
        // 2^(bits-1) for the task size, 2^(min(bits, 48)-1) for the window.
        const SV39: u64 = 1 << 38;
        const SV48: u64 = 1 << 47;
        let (task_size, window, et_dyn_base) = match va_bits {
            39 => (SV39, SV39, SV39 / 3 * 2),
            57 => (1 << 56, SV48, SV48 / 3 * 2),
            _ => (SV48, SV48, SV48 / 3 * 2),
        };
        self.task_size = task_size;
        self.stack_top = window;
        self.stack_top_max = task_size;
        self.elf_et_dyn_base = et_dyn_base;
        self
    }

    /// A preset by name: one of [`PRESETS`] (`x86_64-6.1`, `aarch64-6.12`, ...), or an alias:
    /// `x86_64`, `aarch64` (`arm64`) for the newest kernel.
    pub fn preset(name: &str) -> Option<Self> {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |&(_, to)| to);
        let &(_, arch, kernel) = PRESETS.iter().find(|(n, _, _)| *n == name)?;
        Some(match arch {
            Arch::X86_64 => Self::linux_x86_64(kernel),
            Arch::Aarch64 => Self::linux_aarch64(kernel),
            Arch::Riscv64 => Self::linux_riscv64(kernel).with_riscv64_paging(riscv64_va_bits(name)),
            // No preset is a compat task's kernel (PRESETS has none).
            Arch::I386 => return None,
        })
    }

    /// Every preset name, aliases included.
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS
            .iter()
            .map(|p| p.0)
            .chain(ALIASES.iter().map(|a| a.0))
            .collect()
    }
}
