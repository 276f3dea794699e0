//! The one error type of the core: a variant per check site, each knowing its errno and whether
//! the kernel would meet it after the point of no return (`fatal`).

use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::errno::Errno;

/// A byte string shown lossily (paths and arguments are bytes, not UTF-8).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\r' => f.write_str("\\r")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Bytes(b.to_vec())
    }
}

/// Why a path could not be opened for execution (mirrors `fs/namei.c` and `may_open()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathProblem {
    /// The path is the empty string (`ENOENT`).
    Empty,
    /// The path is `PATH_MAX` (4096) bytes or longer including its NUL (`ENAMETOOLONG`).
    TooLong,
    /// A component is longer than `NAME_MAX` (255) bytes (`ENAMETOOLONG`).
    ComponentTooLong(Bytes),
    /// A component does not exist (`ENOENT`).
    NotFound(Bytes),
    /// A component used as a directory is not one (`ENOTDIR`).
    NotDirectory(Bytes),
    /// A directory on the way lacks search permission (`EACCES`).
    SearchDenied(Bytes),
    /// More than 40 symbolic links were followed (`ELOOP`).
    TooManyLinks,
    /// The final component is a symbolic link and links were not to be followed (`ELOOP`).
    FinalSymlink,
    /// The file is a directory (`EACCES`).
    IsDirectory,
    /// The file is a device, FIFO or socket (`EACCES`).
    NotRegular,
    /// No execute bit applies to the caller, or none is set at all (`EACCES`).
    NoExecPermission,
    /// The file lies on a `noexec` mount (`EACCES`).
    NoExecMount,
    /// The file is open for writing (`ETXTBSY`).
    TextBusy,
    /// The file descriptor the path is relative to is not open (`EBADF`).
    BadFd,
    /// The filesystem reported an error of its own.
    Filesystem(Errno),
}

impl PathProblem {
    /// The errno the kernel returns for this problem.
    pub fn errno(&self) -> Errno {
        match self {
            PathProblem::Empty | PathProblem::NotFound(_) => Errno::ENOENT,
            PathProblem::TooLong | PathProblem::ComponentTooLong(_) => Errno::ENAMETOOLONG,
            PathProblem::NotDirectory(_) => Errno::ENOTDIR,
            PathProblem::TooManyLinks | PathProblem::FinalSymlink => Errno::ELOOP,
            PathProblem::SearchDenied(_)
            | PathProblem::IsDirectory
            | PathProblem::NotRegular
            | PathProblem::NoExecPermission
            | PathProblem::NoExecMount => Errno::EACCES,
            PathProblem::TextBusy => Errno::ETXTBSY,
            PathProblem::BadFd => Errno::EBADF,
            PathProblem::Filesystem(e) => *e,
        }
    }
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Empty => write!(f, "the path is empty"),
            PathProblem::TooLong => write!(f, "the path is 4096 bytes or longer"),
            PathProblem::ComponentTooLong(c) => {
                write!(f, "component \"{c}\" is longer than 255 bytes")
            }
            PathProblem::NotFound(c) => write!(f, "\"{c}\" does not exist"),
            PathProblem::NotDirectory(c) => write!(f, "\"{c}\" is not a directory"),
            PathProblem::SearchDenied(c) => write!(f, "no search permission on directory \"{c}\""),
            PathProblem::TooManyLinks => write!(f, "more than 40 symbolic links on the way"),
            PathProblem::FinalSymlink => {
                write!(f, "the file is a symbolic link and links are not followed")
            }
            PathProblem::IsDirectory => write!(f, "the file is a directory"),
            PathProblem::NotRegular => write!(f, "the file is not a regular file"),
            PathProblem::NoExecPermission => write!(f, "no execute permission"),
            PathProblem::NoExecMount => write!(f, "the file is on a noexec mount"),
            PathProblem::TextBusy => write!(f, "the file is open for writing"),
            PathProblem::BadFd => write!(f, "the file descriptor is not open"),
            PathProblem::Filesystem(e) => write!(f, "the filesystem failed: {e}"),
        }
    }
}

/// Why a `#!` line was not accepted (mirrors `fs/binfmt_script.c: load_script()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptProblem {
    /// Only spaces and tabs follow `#!` in the 256-byte buffer.
    Blank,
    /// No newline in the buffer and no space, tab or NUL after the interpreter name: the
    /// name may be truncated.
    Truncated,
    /// Nothing follows `#!` on the line.
    NoInterpreter,
}

impl fmt::Display for ScriptProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScriptProblem::Blank => "only blanks follow #! in the first 256 bytes",
            ScriptProblem::Truncated => {
                "the interpreter name may be cut off at 256 bytes (no newline, no blank after it)"
            }
            ScriptProblem::NoInterpreter => "nothing follows #! on the line",
        })
    }
}

/// What is wrong with an ELF interpreter (`ELIBBAD` cases of `load_elf_binary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpProblem {
    /// Its first four bytes are not `\x7fELF`.
    BadMagic,
    /// Its `e_machine` is not this architecture's.
    WrongMachine(u16),
    /// Its program header table is unusable (bad `e_phentsize`/`e_phnum` or short).
    BadProgramHeaders,
}

impl fmt::Display for InterpProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpProblem::BadMagic => f.write_str("it does not start with \\x7fELF"),
            InterpProblem::WrongMachine(m) => {
                write!(f, "its ELF machine {m} is not this architecture's")
            }
            InterpProblem::BadProgramHeaders => f.write_str("its program header table is unusable"),
        }
    }
}

/// The error of planning an exec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A path could not be opened for execution.
    #[error("{path}: {problem}")]
    Path {
        /// The path as given.
        path: Bytes,
        /// What went wrong.
        problem: PathProblem,
    },
    /// Reading the file failed.
    #[error("reading {path} failed: {errno}")]
    Read {
        /// The file.
        path: Bytes,
        /// The filesystem's error.
        errno: Errno,
    },
    /// No binary format recognised the file.
    #[error("no binary format recognises the file (not ELF, no #!, no matching binfmt_misc rule)")]
    UnknownFormat,
    /// A sixth interpreter rewrite (`#!`/binfmt_misc) was needed.
    #[error("more than 5 levels of interpreters (#! or binfmt_misc)")]
    TooManyRewrites,
    /// A script or binfmt_misc rule met a close-on-exec file descriptor path (`/dev/fd/N`).
    #[error("the script is only reachable through a close-on-exec file descriptor")]
    PathInaccessible,
    /// TOMOYO could not look up `bprm->filename` (the `/dev/fd/N/PATH` of an execveat with a
    /// directory descriptor, at least `PATH_MAX` long) and refused the exec (ENOENT, before
    /// 6.12, 6.1.113 and 5.10.227).
    #[error("the security module TOMOYO cannot look up the exec's name {0} (PATH_MAX or longer)")]
    LsmNameLookup(Bytes),
    /// The `#!` line is malformed.
    #[error("bad #! line: {0}")]
    Script(ScriptProblem),
    /// `e_type` is not ET_EXEC or ET_DYN.
    #[error("ELF type {0} is neither ET_EXEC (2) nor ET_DYN (3)")]
    ElfType(u16),
    /// A 32-bit ELF of this machine's compat architecture (i386 on x86_64, Arm on arm64) that
    /// the profile cannot plan: Linux loads it through `compat_binfmt_elf` when 32-bit
    /// emulation is on, and progload plans i386 programs only with a profile that has its
    /// compat part ([`crate::Profile::compat`], captured from a 32-bit process on the
    /// machine); AArch32 is not modelled. The plan refuses it with ENOEXEC, as a kernel
    /// without that emulation would.
    #[error("32-bit ELF (machine {machine}): Linux runs it through compat_binfmt_elf (32-bit emulation), which this profile does not describe (i386: capture it with `progload profile` on the machine; AArch32: not modelled)")]
    CompatElf {
        /// The file's e_machine.
        machine: u16,
    },
    /// `e_machine` is not the profile's architecture.
    #[error("ELF machine {found} is not this architecture's ({expected})")]
    ElfMachine {
        /// The file's e_machine.
        found: u16,
        /// The profile's.
        expected: u16,
    },
    /// `EI_CLASS` is not ELFCLASS64 where `elf_check_arch()` requires it (riscv64).
    #[error("ELF class {0} is not ELFCLASS64 (2), which this architecture's loader requires")]
    ElfClass(u8),
    /// `e_phentsize` is not the size of a program header.
    #[error("e_phentsize is {0}, not 56")]
    PhentSize(u16),
    /// `e_phnum` is 0 or the table exceeds 64 KiB.
    #[error("e_phnum {0} gives an empty or over-64-KiB program header table")]
    PhNum(u16),
    /// The program header table lies beyond the end of the file.
    #[error("the program header table (offset {offset:#x}) lies past the end of the file")]
    PhdrsShort {
        /// e_phoff.
        offset: u64,
    },
    /// PT_INTERP's size is outside 2..=4096.
    #[error("PT_INTERP size {0} is outside 2..=4096")]
    InterpSize(u64),
    /// PT_INTERP's bytes lie beyond the end of the file.
    #[error("PT_INTERP (offset {offset:#x}) lies past the end of the file")]
    InterpShort {
        /// p_offset.
        offset: u64,
    },
    /// PT_INTERP's last byte is not NUL.
    #[error("the PT_INTERP string is not NUL-terminated")]
    InterpNotTerminated,
    /// The interpreter named by PT_INTERP could not be opened.
    #[error("interpreter {path}: {problem}")]
    InterpOpen {
        /// The interpreter path.
        path: Bytes,
        /// Why.
        problem: PathProblem,
    },
    /// The interpreter is shorter than an ELF header.
    #[error("interpreter {0} is shorter than an ELF header")]
    InterpHeaderShort(Bytes),
    /// The interpreter is not a usable ELF file.
    #[error("interpreter {path} is not usable: {problem}")]
    InterpBad {
        /// The interpreter path.
        path: Bytes,
        /// Why.
        problem: InterpProblem,
    },
    /// PT_GNU_PROPERTY is malformed (aarch64).
    #[error("PT_GNU_PROPERTY is malformed: {why}")]
    Property {
        /// What is wrong.
        why: &'static str,
        /// ENOEXEC, or EIO for a short read.
        errno: Errno,
    },
    /// A string is longer than MAX_ARG_STRLEN.
    #[error("an argument or environment string is longer than {limit} bytes")]
    ArgTooLong {
        /// MAX_ARG_STRLEN.
        limit: u64,
    },
    /// The arguments and environment do not fit the limit derived from RLIMIT_STACK.
    #[error("arguments and environment exceed {limit} bytes (a quarter of the stack limit)")]
    ArgsTooBig {
        /// The byte limit.
        limit: u64,
    },
    /// A PT_LOAD fails the kernel's range checks (fatal).
    #[error("PT_LOAD #{index} lies outside the user address space or has p_filesz > p_memsz")]
    SegmentRange {
        /// Index in the program header table.
        index: usize,
    },
    /// An ELF has no PT_LOAD with a size (fatal for ET_DYN and interpreters).
    #[error("{0} has no loadable segment")]
    NoLoad(Bytes),
    /// The interpreter's `e_type` is not ET_EXEC/ET_DYN (fatal).
    #[error("interpreter {0} is neither ET_EXEC nor ET_DYN")]
    InterpType(Bytes),
    /// A fixed mapping collides with one already made (EEXIST, fatal).
    #[error("segment at {addr:#x} requested but the memory is mapped already")]
    MapCollision {
        /// The address.
        addr: u64,
    },
    /// A mapping's file offset and address disagree modulo the page size (EINVAL, fatal).
    #[error("PT_LOAD #{index}: p_offset and p_vaddr disagree modulo the page size")]
    Misaligned {
        /// Index in the program header table.
        index: usize,
    },
    /// A fixed mapping lies below vm.mmap_min_addr (EPERM, fatal).
    #[error("mapping at {addr:#x} is below vm.mmap_min_addr")]
    BelowMinAddr {
        /// The address.
        addr: u64,
    },
    /// No room in the address space (ENOMEM, fatal).
    #[error("no room for a mapping of {len:#x} bytes")]
    NoSpace {
        /// The length.
        len: u64,
    },
    /// The overcommit policy refuses an accounted mapping (a writable file segment, a bss)
    /// of this length (ENOMEM, fatal).
    #[error("the overcommit policy (vm.overcommit_memory, RAM and swap) refuses a mapping of {len:#x} bytes")]
    Overcommit {
        /// The length.
        len: u64,
    },
    /// A segment's file range overflows the file offset type (EOVERFLOW, fatal).
    #[error("PT_LOAD #{index}: the file range overflows the largest file offset")]
    OffsetOverflow {
        /// Index in the program header table.
        index: usize,
    },
    /// Zeroing the tail of a writable segment's last file page faults: the page lies past the
    /// end of the file (EFAULT, fatal).
    #[error("the bss of the segment at {addr:#x} starts in a page past the end of the file")]
    PadZeroFault {
        /// The segment's address.
        addr: u64,
    },
    /// The entry point lies outside the user address space (EINVAL, fatal).
    #[error("entry point {0:#x} lies outside the user address space")]
    BadEntry(u64),
    /// The stack cannot be set up (ENOMEM/EFAULT, fatal).
    #[error("the stack cannot be set up")]
    Stack,
    /// A segment mapped over the stack left a page `create_elf_tables()` must write (or read
    /// the argument strings from) that it cannot: not writable, past the end of its file, or
    /// not readable (EFAULT or EINVAL, fatal).
    #[error("a segment replaced the stack page at {addr:#x}, which create_elf_tables() cannot write or read")]
    StackReplaced {
        /// The page.
        addr: u64,
    },
    /// A segment mapped over the stack's tables or strings leaves a page the kernel can use:
    /// the process then starts with the file's bytes where its arguments were, which is not
    /// modelled (ENOEXEC here; the kernel runs it).
    #[error("a segment is mapped over the stack at {addr:#x}: the kernel then starts the program with the file's bytes in place of its argument strings, which progload does not model")]
    StackOverlaid {
        /// The page.
        addr: u64,
    },
    /// A second binfmt_misc `O`/`C` rewrite, or any rewrite after one (ENOEXEC).
    #[error("a binfmt_misc rule with O or C was followed by another interpreter")]
    SecondExecFd,
    /// The profile is unusable (see [`crate::Profile::validate`]) (EINVAL).
    #[error("bad profile: {0}")]
    BadProfile(&'static str),
    /// A binfmt_misc rule is malformed (registration error, EINVAL).
    #[error("binfmt_misc rule: {0}")]
    MiscRule(&'static str),
}

impl Error {
    /// The path `path` did not resolve, for `problem`.
    pub(crate) fn path(path: &[u8], problem: PathProblem) -> Error {
        Error::Path {
            path: Bytes(path.to_vec()),
            problem,
        }
    }

    /// The errno `execve(2)` returns for this error (for fatal errors: the one the kernel
    /// met before it killed the process).
    pub fn errno(&self) -> Errno {
        match self {
            Error::Path { problem, .. } | Error::InterpOpen { problem, .. } => problem.errno(),
            Error::Read { errno, .. } | Error::Property { errno, .. } => *errno,
            Error::UnknownFormat
            | Error::Script(_)
            | Error::ElfType(_)
            | Error::ElfMachine { .. }
            | Error::ElfClass(_)
            | Error::CompatElf { .. }
            | Error::StackOverlaid { .. }
            | Error::PhentSize(_)
            | Error::PhNum(_)
            | Error::PhdrsShort { .. }
            | Error::InterpSize(_)
            | Error::InterpNotTerminated
            | Error::SecondExecFd => Errno::ENOEXEC,
            Error::TooManyRewrites => Errno::ELOOP,
            Error::PathInaccessible | Error::LsmNameLookup(_) => Errno::ENOENT,
            Error::InterpShort { .. } | Error::InterpHeaderShort(_) => Errno::EIO,
            Error::InterpBad { .. } => Errno::ELIBBAD,
            Error::ArgTooLong { .. } | Error::ArgsTooBig { .. } => Errno::E2BIG,
            Error::SegmentRange { .. }
            | Error::NoLoad(_)
            | Error::Misaligned { .. }
            | Error::BadEntry(_)
            | Error::MiscRule(_)
            | Error::BadProfile(_) => Errno::EINVAL,
            Error::InterpType(_) => Errno::EPERM,
            Error::PadZeroFault { .. } => Errno::EFAULT,
            Error::MapCollision { .. } => Errno::EEXIST,
            Error::BelowMinAddr { .. } => Errno::EPERM,
            Error::NoSpace { .. } | Error::Overcommit { .. } | Error::Stack => Errno::ENOMEM,
            Error::StackReplaced { .. } => Errno::EFAULT,
            Error::OffsetOverflow { .. } => Errno::EOVERFLOW,
        }
    }

    /// Whether the kernel meets this error after the point of no return, where it kills the
    /// process with SIGSEGV instead of returning from `execve`.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::SegmentRange { .. }
            | Error::NoLoad(_)
            | Error::InterpType(_)
            | Error::MapCollision { .. }
            | Error::Misaligned { .. }
            | Error::BelowMinAddr { .. }
            | Error::NoSpace { .. }
            | Error::Overcommit { .. }
            | Error::BadEntry(_)
            | Error::PadZeroFault { .. }
            | Error::OffsetOverflow { .. }
            | Error::StackReplaced { .. }
            | Error::Stack => true,
            Error::Path { .. }
            | Error::Read { .. }
            | Error::UnknownFormat
            | Error::TooManyRewrites
            | Error::PathInaccessible
            | Error::LsmNameLookup(_)
            | Error::Script(_)
            | Error::ElfType(_)
            | Error::CompatElf { .. }
            | Error::StackOverlaid { .. }
            | Error::ElfMachine { .. }
            | Error::ElfClass(_)
            | Error::PhentSize(_)
            | Error::PhNum(_)
            | Error::PhdrsShort { .. }
            | Error::InterpSize(_)
            | Error::InterpShort { .. }
            | Error::InterpNotTerminated
            | Error::InterpOpen { .. }
            | Error::InterpHeaderShort(_)
            | Error::InterpBad { .. }
            | Error::Property { .. }
            | Error::ArgTooLong { .. }
            | Error::ArgsTooBig { .. }
            | Error::SecondExecFd
            | Error::BadProfile(_)
            | Error::MiscRule(_) => false,
        }
    }
}

/// The result type of the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;
