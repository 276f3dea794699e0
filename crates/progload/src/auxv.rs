//! Auxiliary vector entry types and names (`include/uapi/linux/auxvec.h`).

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
        _ => return None,
    })
}
