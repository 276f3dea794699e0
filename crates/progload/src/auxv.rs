//! The auxiliary vector: entry types and names (`include/uapi/linux/auxvec.h`) and the vector
//! `create_elf_tables()` (`fs/binfmt_elf.c`) writes, in its order.

use alloc::vec::Vec;

use crate::arch::Arch;
use crate::creds::NewCredentials;
use crate::profile::Profile;

/// End of vector.
pub const AT_NULL: u64 = 0;
/// Entry to ignore.
pub const AT_IGNORE: u64 = 1;
/// File descriptor of the program (binfmt_misc `O`).
pub const AT_EXECFD: u64 = 2;
/// Program headers of the program.
pub const AT_PHDR: u64 = 3;
/// Size of a program header.
pub const AT_PHENT: u64 = 4;
/// Number of program headers.
pub const AT_PHNUM: u64 = 5;
/// Page size.
pub const AT_PAGESZ: u64 = 6;
/// Interpreter base address.
pub const AT_BASE: u64 = 7;
/// Flags.
pub const AT_FLAGS: u64 = 8;
/// Program entry point.
pub const AT_ENTRY: u64 = 9;
/// Real uid.
pub const AT_UID: u64 = 11;
/// Effective uid.
pub const AT_EUID: u64 = 12;
/// Real gid.
pub const AT_GID: u64 = 13;
/// Effective gid.
pub const AT_EGID: u64 = 14;
/// Platform string address.
pub const AT_PLATFORM: u64 = 15;
/// Hardware capabilities.
pub const AT_HWCAP: u64 = 16;
/// Clock ticks per second.
pub const AT_CLKTCK: u64 = 17;
/// Secure mode.
pub const AT_SECURE: u64 = 23;
/// Base platform string address.
pub const AT_BASE_PLATFORM: u64 = 24;
/// Address of 16 random bytes.
pub const AT_RANDOM: u64 = 25;
/// More hardware capabilities.
pub const AT_HWCAP2: u64 = 26;
/// rseq feature size.
pub const AT_RSEQ_FEATURE_SIZE: u64 = 27;
/// rseq alignment.
pub const AT_RSEQ_ALIGN: u64 = 28;
/// Even more hardware capabilities.
pub const AT_HWCAP3: u64 = 29;
/// Still more hardware capabilities.
pub const AT_HWCAP4: u64 = 30;
/// Filename of the program.
pub const AT_EXECFN: u64 = 31;
/// vDSO ELF header address.
pub const AT_SYSINFO_EHDR: u64 = 33;
/// Minimal signal stack size.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// `AT_FLAGS_PRESERVE_ARGV0`.
pub const AT_FLAGS_PRESERVE_ARGV0: u64 = 1;

/// The name glibc's `LD_SHOW_AUXV` prints for an entry type (without `AT_`).
pub fn name(t: u64) -> Option<&'static str> {
    Some(match t {
        AT_NULL => "NULL",
        AT_IGNORE => "IGNORE",
        AT_EXECFD => "EXECFD",
        AT_PHDR => "PHDR",
        AT_PHENT => "PHENT",
        AT_PHNUM => "PHNUM",
        AT_PAGESZ => "PAGESZ",
        AT_BASE => "BASE",
        AT_FLAGS => "FLAGS",
        AT_ENTRY => "ENTRY",
        AT_UID => "UID",
        AT_EUID => "EUID",
        AT_GID => "GID",
        AT_EGID => "EGID",
        AT_PLATFORM => "PLATFORM",
        AT_HWCAP => "HWCAP",
        AT_CLKTCK => "CLKTCK",
        AT_SECURE => "SECURE",
        AT_BASE_PLATFORM => "BASE_PLATFORM",
        AT_RANDOM => "RANDOM",
        AT_HWCAP2 => "HWCAP2",
        AT_RSEQ_FEATURE_SIZE => "RSEQ_FEATURE_SIZE",
        AT_RSEQ_ALIGN => "RSEQ_ALIGN",
        AT_HWCAP3 => "HWCAP3",
        AT_HWCAP4 => "HWCAP4",
        AT_EXECFN => "EXECFN",
        AT_SYSINFO_EHDR => "SYSINFO_EHDR",
        AT_MINSIGSTKSZ => "MINSIGSTKSZ",
        40 => "L1I_CACHESIZE",
        41 => "L1I_CACHEGEOMETRY",
        42 => "L1D_CACHESIZE",
        43 => "L1D_CACHEGEOMETRY",
        44 => "L2_CACHESIZE",
        45 => "L2_CACHEGEOMETRY",
        46 => "L3_CACHESIZE",
        47 => "L3_CACHEGEOMETRY",
        _ => return None,
    })
}

/// What `create_elf_tables()` puts into the vector besides the profile's constants.
#[derive(Clone, Copy, Debug)]
pub struct AuxvInputs<'a> {
    /// `AT_SYSINFO_EHDR`: the vDSO text, if mapped.
    pub vdso_base: Option<u64>,
    /// `AT_PHDR`: the program headers in memory.
    pub phdr_addr: u64,
    /// `AT_PHENT`: the size of one program header.
    pub phent: u64,
    /// `AT_PHNUM`.
    pub phnum: u16,
    /// `AT_BASE`: the interpreter's load address (0 without one).
    pub interp_base: u64,
    /// `AT_FLAGS` has `AT_FLAGS_PRESERVE_ARGV0` (binfmt_misc `P`).
    pub preserve_argv0: bool,
    /// `AT_ENTRY`: the program's entry (not the interpreter's).
    pub entry: u64,
    /// The new credentials (`AT_UID`...`AT_SECURE`).
    pub creds: &'a NewCredentials,
    /// `AT_RANDOM`: the 16 random bytes.
    pub random_addr: u64,
    /// `AT_EXECFN`: the filename string at the stack top.
    pub execfn_addr: u64,
    /// `AT_PLATFORM`: the platform string (used only when the profile has one).
    pub platform_addr: u64,
    /// `AT_EXECFD` (binfmt_misc `O`/`C`).
    pub execfd: Option<u64>,
    /// Extra pairs appended before `AT_NULL`.
    pub extra: &'a [(u64, u64)],
}

/// The vector `create_elf_tables()` builds (`ARCH_DLINFO` first), ending with `AT_NULL`.
pub fn build(profile: &Profile, inp: &AuxvInputs<'_>) -> Vec<(u64, u64)> {
    let mut auxv: Vec<(u64, u64)> = Vec::with_capacity(24usize.saturating_add(inp.extra.len()));
    if let Some(b) = inp.vdso_base {
        // ARCH_DLINFO_IA32: the vdso32's __kernel_vsyscall first.
        if profile.arch == Arch::I386 {
            let entry = profile.compat.as_ref().map_or(0, |c| c.vdso_entry);
            auxv.push((crate::arch::i386::AT_SYSINFO, b.wrapping_add(entry)));
        }
        auxv.push((AT_SYSINFO_EHDR, b));
    }
    // arm64's ARCH_DLINFO writes AT_IGNORE when the signal frame size is unknown; x86's
    // has AT_MINSIGSTKSZ since 5.14.
    // riscv's has its cache entries first, and AT_MINSIGSTKSZ (or AT_IGNORE) since 6.5
    // ("riscv: signal: Report signal frame size to userspace via auxv").
    auxv.extend_from_slice(&profile.cache_auxv);
    let rules = profile.kernel.rules();
    match profile.arch {
        Arch::X86_64 | Arch::I386 if !rules.x86_at_minsigstksz => {}
        Arch::Riscv64 if !rules.riscv_at_minsigstksz => {}
        Arch::Aarch64 | Arch::Riscv64 if profile.minsigstksz == 0 => auxv.push((AT_IGNORE, 0)),
        _ => auxv.push((AT_MINSIGSTKSZ, profile.minsigstksz)),
    }
    auxv.push((AT_HWCAP, profile.hwcap));
    auxv.push((AT_PAGESZ, profile.page_size));
    auxv.push((AT_CLKTCK, profile.clock_ticks));
    auxv.push((AT_PHDR, inp.phdr_addr));
    auxv.push((AT_PHENT, inp.phent));
    auxv.push((AT_PHNUM, u64::from(inp.phnum)));
    auxv.push((AT_BASE, inp.interp_base));
    let flags = if inp.preserve_argv0 && profile.kernel.rules().at_flags_preserve_argv0 {
        AT_FLAGS_PRESERVE_ARGV0
    } else {
        0
    };
    auxv.push((AT_FLAGS, flags));
    auxv.push((AT_ENTRY, inp.entry));
    auxv.push((AT_UID, u64::from(inp.creds.uid)));
    auxv.push((AT_EUID, u64::from(inp.creds.euid)));
    auxv.push((AT_GID, u64::from(inp.creds.gid)));
    auxv.push((AT_EGID, u64::from(inp.creds.egid)));
    auxv.push((AT_SECURE, u64::from(inp.creds.secureexec)));
    auxv.push((AT_RANDOM, inp.random_addr));
    if profile.arch.spec().hwcap2 {
        auxv.push((AT_HWCAP2, profile.hwcap2));
    }
    if let Some(h3) = profile.hwcap3 {
        auxv.push((AT_HWCAP3, h3));
    }
    auxv.push((AT_EXECFN, inp.execfn_addr));
    if !profile.platform.is_empty() {
        auxv.push((AT_PLATFORM, inp.platform_addr));
    }
    if let Some(fd) = inp.execfd {
        auxv.push((AT_EXECFD, fd));
    }
    if let Some((size, align)) = profile.rseq {
        auxv.push((AT_RSEQ_FEATURE_SIZE, size));
        auxv.push((AT_RSEQ_ALIGN, align));
    }
    auxv.extend_from_slice(inp.extra);
    auxv.push((AT_NULL, 0));
    // A compat task's vector is of `elf_addr_t`, 32 bits: the values the kernel computed in
    // 64 bits (AT_ENTRY of a PIE whose e_entry wraps past 4 GiB) are stored truncated.
    if profile.arch.word_size() == 4 {
        for (_, v) in &mut auxv {
            *v &= u64::from(u32::MAX);
        }
    }
    auxv
}
