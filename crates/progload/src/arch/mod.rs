//! Architecture descriptions: the constants and rules of `arch/*/include/asm` that differ.

pub mod aarch64;
pub mod i386;
pub mod riscv64;
pub mod x86_64;

use alloc::vec::Vec;

/// A CPU architecture progload can plan for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64 (native 64-bit tasks).
    X86_64,
    /// AArch64 (native 64-bit tasks).
    Aarch64,
    /// RISC-V 64 (native 64-bit tasks).
    Riscv64,
    /// i386 programs on an x86_64 kernel (compat tasks). A profile's `arch` is never this:
    /// [`crate::Profile::compat_view`] derives the compat task's profile from an x86_64 one.
    I386,
}

/// What `arch_align_stack()` does to a stack address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignStack {
    /// Subtracts a random amount below 8 KiB (when randomizing), then rounds down to 16
    /// bytes (x86).
    Below8k,
    /// Subtracts a random amount below a page (when randomizing), then rounds down to 16
    /// bytes (arm64; riscv since 6.12).
    BelowPage,
    /// Nothing: the generic identity (riscv before 6.12).
    Identity,
}

/// The per-architecture constants of the exec path.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    /// `e_machine` accepted by `elf_check_arch`.
    pub e_machine: u16,
    /// 32-bit `e_machine`s the kernel's `compat_binfmt_elf` takes (not modelled; x32,
    /// also EM_X86_64, is left out: the 6.18 reference kernel refuses it with ENOEXEC).
    pub compat_machines: &'static [u16],
    /// Bits of mmap randomization (`mmap_rnd_bits` default).
    pub mmap_rnd_bits: u32,
    /// `STACK_RND_MASK` (in pages).
    pub stack_rnd_mask: u64,
    /// Range of `arch_randomize_brk` in bytes.
    pub brk_rnd_range: u64,
    /// What `arch_align_stack()` does (on the newest kernel; see
    /// [`crate::profile::rules::ExecRules::riscv_align_stack`]).
    pub align_stack: AlignStack,
    /// Whether an unlimited RLIMIT_STACK selects the legacy bottom-up layout (generic
    /// `mmap_is_legacy`; x86 does not).
    pub legacy_on_unlimited_stack: bool,
    /// Whether `SET_PERSONALITY()` clears `READ_IMPLIES_EXEC` for a native ELF (x86_64 and
    /// arm64 do; riscv64 keeps the generic `set_personality()`, so a caller's
    /// `READ_IMPLIES_EXEC` stays: observed in the riscv64 6.12 guest of the kernel farm).
    pub clears_read_implies_exec: bool,
    /// Whether `VM_DATA_DEFAULT_FLAGS` follows `READ_IMPLIES_EXEC` (`VM_DATA_FLAGS_TSK_EXEC`:
    /// x86, arm64), so that a bss mapped by `vm_brk_flags()` becomes executable with it;
    /// riscv64 uses `VM_DATA_FLAGS_NON_EXEC`.
    pub data_exec_follows_personality: bool,
    /// Whether the kernel parses PT_GNU_PROPERTY (`CONFIG_ARCH_USE_GNU_PROPERTY`).
    pub parses_gnu_property: bool,
    /// Whether `elf_check_arch()` also requires `EI_CLASS` to be ELFCLASS64 (riscv, since its
    /// compat support in 5.19; x86 and arm64 look at `e_machine` only).
    pub checks_class: bool,
    /// Whether `ELF_HWCAP2` is defined, so that the vector has `AT_HWCAP2`.
    pub hwcap2: bool,
    /// The default `ELF_PLATFORM` string (empty: none, no `AT_PLATFORM`).
    pub platform: &'static str,
}

impl Arch {
    /// The architecture's constants.
    pub fn spec(self) -> &'static ArchSpec {
        match self {
            Arch::X86_64 => &x86_64::SPEC,
            Arch::Aarch64 => &aarch64::SPEC,
            Arch::Riscv64 => &riscv64::SPEC,
            Arch::I386 => &i386::SPEC,
        }
    }

    /// The name used in profiles and reports.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::I386 => "i386",
        }
    }

    /// The size of a word of the new process (`elf_addr_t`): argv, envp and auxv entries.
    pub fn word_size(self) -> u64 {
        match self {
            Arch::I386 => 4,
            Arch::X86_64 | Arch::Aarch64 | Arch::Riscv64 => 8,
        }
    }

    /// Parses a name as given by [`Arch::name`].
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "riscv64" => Some(Arch::Riscv64),
            "i386" => Some(Arch::I386),
            _ => None,
        }
    }
}

/// The initial registers (`ELF_PLAT_INIT` + `START_THREAD`); every register not listed is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// The architecture.
    pub arch: Arch,
    /// rip / pc.
    pub pc: u64,
    /// rsp / sp.
    pub sp: u64,
    /// The flags register: x86_64's rflags, arm64's pstate (0 on riscv64).
    pub flags: u64,
}

impl Registers {
    /// Every register with its value, in the kernel's `user_regs_struct` naming.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        match self.arch {
            Arch::X86_64 | Arch::I386 => {
                let (cs, ds, seg) = if self.arch == Arch::I386 {
                    (i386::USER32_CS, i386::USER32_DS, i386::USER32_DS)
                } else {
                    (x86_64::USER_CS, x86_64::USER_DS, 0)
                };
                let mut v: Vec<(&'static str, u64)> = [
                    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax",
                    "rcx", "rdx", "rsi", "rdi",
                ]
                .iter()
                .map(|&n| (n, 0))
                .collect();
                v.extend_from_slice(&[
                    ("rip", self.pc),
                    ("cs", cs),
                    ("rflags", self.flags),
                    ("rsp", self.sp),
                    ("ss", ds),
                    ("fs_base", 0),
                    ("gs_base", 0),
                    ("ds", seg),
                    ("es", seg),
                    ("fs", 0),
                    ("gs", 0),
                ]);
                v
            }
            Arch::Aarch64 => {
                const X: [&str; 31] = [
                    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
                    "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22",
                    "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30",
                ];
                let mut v: Vec<(&'static str, u64)> = X.iter().map(|&n| (n, 0)).collect();
                v.extend_from_slice(&[("sp", self.sp), ("pc", self.pc), ("pstate", self.flags)]);
                v
            }
            // riscv's start_thread() sets only pc and sp, and execve's return sets a0 to 0:
            // the other registers keep the values the caller had at execve.
            Arch::Riscv64 => alloc::vec![("pc", self.pc), ("sp", self.sp), ("a0", 0)],
        }
    }
}
