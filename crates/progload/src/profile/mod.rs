//! Everything that differs by kernel version and build, CPU or calling process, as one input
//! value, and presets of it ([`presets`]).

pub mod presets;
pub mod rules;
pub mod version;

pub use version::KernelVersion;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::arch::Arch;

/// `ADDR_NO_RANDOMIZE` personality bit.
pub const ADDR_NO_RANDOMIZE: u32 = 0x004_0000;
/// `MMAP_PAGE_ZERO` personality bit.
pub const MMAP_PAGE_ZERO: u32 = 0x010_0000;
/// `ADDR_COMPAT_LAYOUT` personality bit.
pub const ADDR_COMPAT_LAYOUT: u32 = 0x020_0000;
/// `READ_IMPLIES_EXEC` personality bit.
pub const READ_IMPLIES_EXEC: u32 = 0x040_0000;
/// `PER_CLEAR_ON_SETID`: bits a set-id exec clears.
pub const PER_CLEAR_ON_SETID: u32 =
    READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT | MMAP_PAGE_ZERO;

/// The calling process's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Real uid.
    pub uid: u32,
    /// Effective uid (also used as fsuid for permission checks).
    pub euid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
}

impl Credentials {
    /// root with no supplementary groups.
    pub fn root() -> Self {
        Credentials {
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            groups: Vec::new(),
            no_new_privs: false,
        }
    }
}

/// One special mapping of the vDSO block (`[vvar]`, `[vvar_vclock]`, `[vdso]`), in address order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VdsoPart {
    /// The name shown in /proc/PID/maps.
    pub name: String,
    /// Its length in pages.
    pub pages: u64,
    /// Its protection.
    pub prot: crate::prot::Prot,
}

/// The vDSO the kernel maps: its data pages and its text image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vdso {
    /// The data pages, in address order, placed below the text.
    pub data: Vec<VdsoPart>,
    /// The vDSO ELF image (whole pages), mapped `[vdso]` r-x; `AT_SYSINFO_EHDR` points at it.
    pub image: Arc<[u8]>,
}

impl Vdso {
    /// A vDSO from its data pages and a validated image.
    ///
    /// # Errors
    /// When the image fails [`crate::vdso::image::validate`].
    pub fn new(
        data: Vec<VdsoPart>,
        image: Arc<[u8]>,
        arch: Arch,
        page: u64,
    ) -> Result<Self, crate::vdso::image::VdsoError> {
        crate::vdso::image::validate(&image, arch, page)?;
        Ok(Vdso { data, image })
    }

    /// Number of pages of the text image.
    pub fn text_pages(&self, page_size: u64) -> u64 {
        let len = self.image.len() as u64;
        let whole = len.checked_div(page_size).unwrap_or(0);
        let part = len.checked_rem(page_size).is_some_and(|r| r != 0);
        whole.saturating_add(u64::from(part)).max(1)
    }
}

/// What differs by kernel, CPU and calling process: the input that makes a plan exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The architecture.
    pub arch: Arch,
    /// The kernel release planned for: rules that changed between releases follow it.
    pub kernel: KernelVersion,
    /// `PAGE_SIZE` (= `ELF_EXEC_PAGESIZE`, `AT_PAGESZ`).
    pub page_size: u64,
    /// `TASK_SIZE` for a 64-bit task.
    pub task_size: u64,
    /// `STACK_TOP`.
    pub stack_top: u64,
    /// `STACK_TOP_MAX` (where the strings are first copied).
    pub stack_top_max: u64,
    /// `ELF_ET_DYN_BASE`.
    pub elf_et_dyn_base: u64,
    /// `TASK_UNMAPPED_BASE` (the legacy bottom-up base).
    pub task_unmapped_base: u64,
    /// `AT_HWCAP`.
    pub hwcap: u64,
    /// `AT_HWCAP2`.
    pub hwcap2: u64,
    /// `AT_HWCAP3`, emitted when present (arm64 6.18).
    pub hwcap3: Option<u64>,
    /// riscv64's cache entries (`AT_L1I_CACHESIZE` ... `AT_L3_CACHEGEOMETRY`), in vector
    /// order; empty on other architectures.
    pub cache_auxv: Vec<(u64, u64)>,
    /// arm64's PSTATE at the first instruction: `PSR_SSBS_BIT` (0x1000) when the Spectre-v4
    /// mitigation lets the new task speculate store bypass (the default, dynamic policy),
    /// 0 when it is forced on; 0 on other architectures.
    pub pstate: u64,
    /// `AT_MINSIGSTKSZ`; on arm64 and riscv64 a 0 emits `AT_IGNORE`.
    pub minsigstksz: u64,
    /// `ELF_PLATFORM` string (`AT_PLATFORM`).
    pub platform: String,
    /// `AT_CLKTCK` (USER_HZ).
    pub clock_ticks: u64,
    /// `AT_RSEQ_FEATURE_SIZE` and `AT_RSEQ_ALIGN`, when `CONFIG_RSEQ`.
    pub rseq: Option<(u64, u64)>,
    /// The vDSO, when enabled.
    pub vdso: Option<Vdso>,
    /// Whether `[vsyscall]` shows in /proc/PID/maps.
    pub vsyscall: bool,
    /// RLIMIT_STACK soft limit in bytes; `None` is unlimited.
    pub stack_rlimit: Option<u64>,
    /// `vm.mmap_min_addr`.
    pub mmap_min_addr: u64,
    /// `stack_guard_gap` in bytes.
    pub stack_guard_gap: u64,
    /// `vm.legacy_va_layout`.
    pub legacy_va_layout: bool,
    /// `kernel.randomize_va_space` (0, 1 or 2).
    pub randomize_va_space: u8,
    /// Bits of mmap randomization (`vm.mmap_rnd_bits`).
    pub mmap_rnd_bits: u32,
    /// The calling process's personality (e.g. [`ADDR_NO_RANDOMIZE`]).
    pub personality: u32,
    /// The calling process's credentials.
    pub credentials: Credentials,
    /// CAP_SYS_RAWIO is in the caller's bounding set: the new process may then map below
    /// `mmap_min_addr` when its effective uid is 0 (file and ambient capabilities are not
    /// modelled).
    pub cap_sys_rawio: bool,
    /// The TOMOYO security module is active (`tomoyo` in /sys/kernel/security/lsm; Debian
    /// and Ubuntu kernels enable it beside AppArmor even with no policy loaded). Before
    /// [`ExecRules::tomoyo_realpath_fallback`](rules::ExecRules::tomoyo_realpath_fallback)
    /// it refuses with ENOENT an exec whose `bprm->filename` it cannot look up.
    pub tomoyo: bool,
    /// The memory overcommit policy and the machine's memory, which decide whether the
    /// loader's accounted mappings (writable file segments, the bss) succeed; `None`: not
    /// modelled, every mapping is allowed (the presets; a kernel with overcommit_memory 1).
    pub overcommit: Option<Overcommit>,
    /// What the kernel gives a 32-bit (ia32) program, on an x86_64 kernel with IA32
    /// emulation; `None` where that is not known (a preset, a host where no 32-bit process
    /// could be probed): 32-bit programs are then not modelled.
    pub compat: Option<Compat>,
}

/// `vm.overcommit_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvercommitPolicy {
    /// 0, `OVERCOMMIT_GUESS`: a single request larger than RAM plus swap fails.
    Guess,
    /// 1, `OVERCOMMIT_ALWAYS`: nothing fails.
    Always,
    /// 2, `OVERCOMMIT_NEVER`: the committed total must stay below the commit limit.
    Never,
}

impl OvercommitPolicy {
    /// The sysctl's value (0, 1, 2).
    pub fn value(self) -> u8 {
        match self {
            OvercommitPolicy::Guess => 0,
            OvercommitPolicy::Always => 1,
            OvercommitPolicy::Never => 2,
        }
    }

    /// The policy of a sysctl value.
    pub fn from_value(v: u8) -> Option<Self> {
        match v {
            0 => Some(OvercommitPolicy::Guess),
            1 => Some(OvercommitPolicy::Always),
            2 => Some(OvercommitPolicy::Never),
            _ => None,
        }
    }
}

/// What `__vm_enough_memory()` (mm/util.c, the same from 5.2 to 6.18) reads: the policy, the
/// machine's memory and, for [`OvercommitPolicy::Never`], the commit state. The loader's
/// accounted mappings are the writable private file segments (their whole length, and the
/// whole image when an ET_DYN's first segment is writable) and every bss `vm_brk_flags()`
/// maps; when one fails the kernel kills the process (ENOMEM after the point of no return).
///
/// The page counts are in pages of the profile's page size. Guess and Always depend only on
/// the machine's RAM and swap; Never also on `committed_pages`, the machine's `Committed_AS`
/// when the profile was taken, which changes with every process: a Never plan is exact only
/// while that figure holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overcommit {
    /// `vm.overcommit_memory`.
    pub policy: OvercommitPolicy,
    /// `totalram_pages()` (/proc/meminfo `MemTotal`).
    pub ram_pages: u64,
    /// `total_swap_pages` (`SwapTotal`).
    pub swap_pages: u64,
    /// `vm_commit_limit()` (`CommitLimit`: from `vm.overcommit_kbytes` or
    /// `vm.overcommit_ratio`, plus swap).
    pub commit_limit_pages: u64,
    /// `vm_committed_as` (`Committed_AS`) before the exec.
    pub committed_pages: u64,
    /// `vm.admin_reserve_kbytes`, in pages: kept back from a task without CAP_SYS_ADMIN.
    pub admin_reserve_pages: u64,
    /// `vm.user_reserve_kbytes`, in pages: at most this (or 1/32 of the task's size) is kept
    /// back from every task.
    pub user_reserve_pages: u64,
}

impl Overcommit {
    /// `__vm_enough_memory()`: whether a request of `pages` succeeds after `charged` pages
    /// this exec already committed, for a new mm of `total_vm` pages whose task has
    /// CAP_SYS_ADMIN or not.
    pub fn allows(&self, pages: u64, charged: u64, total_vm: u64, cap_sys_admin: bool) -> bool {
        match self.policy {
            OvercommitPolicy::Always => true,
            OvercommitPolicy::Guess => pages <= self.ram_pages.saturating_add(self.swap_pages),
            OvercommitPolicy::Never => {
                let mut allowed = self.commit_limit_pages;
                if !cap_sys_admin {
                    allowed = allowed.saturating_sub(self.admin_reserve_pages);
                }
                allowed = allowed.saturating_sub((total_vm / 32).min(self.user_reserve_pages));
                let committed = self
                    .committed_pages
                    .saturating_add(charged)
                    .saturating_add(pages);
                committed < allowed
            }
        }
    }
}

/// The values of an ia32 task on an x86_64 kernel that the 64-bit profile does not give
/// (`compat_binfmt_elf`; the layout constants are in [`crate::arch::i386`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compat {
    /// `vm.mmap_rnd_compat_bits`.
    pub mmap_rnd_bits: u32,
    /// `AT_HWCAP` of a compat task.
    pub hwcap: u64,
    /// `AT_HWCAP2` of a compat task.
    pub hwcap2: u64,
    /// `AT_MINSIGSTKSZ` of a compat task (from 5.14).
    pub minsigstksz: u64,
    /// The vdso32 (`[vvar]`... and `[vdso]`), when `vdso32_enabled`.
    pub vdso: Option<Vdso>,
    /// The offset of `__kernel_vsyscall` in the vdso32 image (`AT_SYSINFO` is the vDSO's base
    /// plus this).
    pub vdso_entry: u64,
}

impl Profile {
    /// Whether the exec randomizes (`PF_RANDOMIZE`), before set-id adjustments.
    pub fn randomizes(&self) -> bool {
        self.personality & ADDR_NO_RANDOMIZE == 0 && self.randomize_va_space != 0
    }

    /// Checks the bounds that make a profile usable, so that planning never overflows on a
    /// profile value: a power-of-two page size of 4–64 KiB; page-aligned `stack_top` of at
    /// least 64 GiB (room for the stack randomization); `stack_top <= stack_top_max` and
    /// `stack_top <= task_size`; `elf_et_dyn_base`, `task_unmapped_base` and `mmap_min_addr`
    /// below `stack_top`; a vDSO of at most 1024 pages; a guard gap of at most 4 GiB.
    ///
    /// # Errors
    /// The first bound broken, in words.
    pub fn validate(&self) -> Result<(), &'static str> {
        let page = self.page_size;
        if !page.is_power_of_two() || !(4096..=65536).contains(&page) {
            return Err("page_size must be a power of two between 4 KiB and 64 KiB");
        }
        if self.stack_top & page.wrapping_sub(1) != 0 || self.stack_top < 1 << 36 {
            return Err("stack_top must be page aligned and at least 64 GiB");
        }
        if self.stack_top > self.stack_top_max || self.stack_top > self.task_size {
            return Err("stack_top must not exceed stack_top_max or task_size");
        }
        if self.elf_et_dyn_base >= self.stack_top
            || self.task_unmapped_base >= self.stack_top
            || self.mmap_min_addr >= self.stack_top
        {
            return Err(
                "elf_et_dyn_base, task_unmapped_base and mmap_min_addr must lie below stack_top",
            );
        }
        if let Some(v) = &self.vdso {
            let pages = v
                .data
                .iter()
                .try_fold(v.text_pages(page), |acc, d| acc.checked_add(d.pages));
            if pages.is_none_or(|p| p > 1024) {
                return Err("the vDSO block must be at most 1024 pages");
            }
        }
        if self.stack_guard_gap > 1 << 32 || self.mmap_rnd_bits > 40 {
            return Err("stack_guard_gap must be at most 4 GiB and mmap_rnd_bits at most 40");
        }
        if let Some(c) = &self.compat {
            let pages = c.vdso.as_ref().map_or(Some(0), |v| {
                v.data
                    .iter()
                    .try_fold(v.text_pages(page), |acc, d| acc.checked_add(d.pages))
            });
            if pages.is_none_or(|p| p > 1024) || c.mmap_rnd_bits > 16 {
                return Err("the compat vDSO must be at most 1024 pages and the compat mmap_rnd_bits at most 16");
            }
            if c.vdso
                .as_ref()
                .is_some_and(|v| c.vdso_entry >= v.image.len() as u64)
            {
                return Err("the compat vDSO entry must lie inside its image");
            }
        }
        Ok(())
    }

    /// The profile an ia32 program is loaded with: this x86_64 profile after
    /// `set_personality_ia32()` (`TIF_ADDR32`, `TS_COMPAT`): the 32-bit `TASK_SIZE` and stack
    /// top, the compat `ELF_ET_DYN_BASE`, legacy base, mmap randomization, hwcaps, platform
    /// and vDSO, and no `[vsyscall]`. `STACK_TOP_MAX` stays: the arguments were copied before
    /// the personality changed. `None` without [`Profile::compat`] or on another architecture.
    pub fn compat_view(&self) -> Option<Profile> {
        let c = self.compat.as_ref()?;
        if self.arch != Arch::X86_64 {
            return None;
        }
        Some(Profile {
            arch: Arch::I386,
            task_size: crate::arch::i386::TASK_SIZE,
            stack_top: crate::arch::i386::TASK_SIZE,
            elf_et_dyn_base: crate::arch::i386::ELF_ET_DYN_BASE,
            task_unmapped_base: crate::arch::i386::TASK_UNMAPPED_BASE,
            mmap_rnd_bits: c.mmap_rnd_bits,
            hwcap: c.hwcap,
            hwcap2: c.hwcap2,
            hwcap3: None,
            cache_auxv: Vec::new(),
            minsigstksz: c.minsigstksz,
            platform: String::from(crate::arch::i386::SPEC.platform),
            vdso: c.vdso.clone(),
            vsyscall: false,
            ..self.clone()
        })
    }

    /// `MAX_ARG_STRLEN`: 32 pages.
    pub fn max_arg_strlen(&self) -> u64 {
        self.page_size.saturating_mul(32)
    }
}
