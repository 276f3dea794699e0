//! Crafted files against the live kernel: one file per check of `execve` (ELF header and
//! program header checks before the point of no return, PT_INTERP and the interpreter,
//! segment checks after it, path walk, `#!`, argument limits).
//!
//! No outcome is typed in here. Every case is executed by the kernel (under ptrace, with
//! ADDR_NO_RANDOMIZE, same argv/envp/cwd/RLIMIT_STACK) and planned by progload, and the two
//! must agree:
//! - kernel `Refused{errno}` ⇔ plan `Err(e)` with `e.errno() == errno` and `!e.is_fatal()`;
//! - kernel `Killed{SIGSEGV}` ⇔ plan `Err(e)` with `e.is_fatal()`;
//! - kernel `Stopped(image)` ⇔ plan `Ok(p)` with `compare(&p, &image)` empty.
//!
//! The cases form one table; the test prints every case's outcome and per-family counts, and
//! fails listing every case where plan and kernel disagree.
//!
//! Besides the families written from the Linux reference, the table mirrors upstream suites
//! case by case (each case named after the upstream test): gVisor's `exec_binary.cc` and
//! `exec.cc`, the derived cases of the gVisor reference (§8.1), Asterinas' `execve_err.c`, and
//! the kernel's own `tools/testing/selftests/exec` (`binfmt_script.py`, `execveat.c`,
//! `non-regular.c`, `null-argv.c`, `recursion-depth.c`, `load_address.c`). Only the expected
//! outcomes differ from upstream: they come from this kernel, in this run. The upstream cases
//! that cannot be expressed as a plan request, or that test something other than the loader,
//! are listed in each module's `EXCLUDED` with the reason, and printed at the end.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use progload::fs::{FileSystem, Metadata};
use progload::plan::Executable;
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::resolve::DirPath;
use progload::{plan, Errno, LoadRequest, Profile, SeededRng};
use progload_host::check::compare;
use progload_host::probe::{
    probe, probe_execveat, probe_native_supported, ProbeDirFd, ProbeExecveat, ProbeOutcome,
    ProbeRequest,
};
use progload_host::{HostFs, HostHandle};
use progload_testkit::elfbuild::{
    machine_name, minimal_arm_exec, Arch, ElfBuilder, ProgramHeader, EF_ARM_EABI_VER5, EM_386,
    EM_ARM, ET_CORE, ET_DYN, ET_EXEC, ET_REL, PF_R, PF_W, PF_X, PT_GNU_PROPERTY, PT_GNU_STACK,
    PT_INTERP, PT_LOAD, PT_NOTE,
};
use progload_testkit::progs::{write_executable, TempDir};

/// Load address of the crafted ET_EXEC programs.
const BASE: u64 = 0x40_0000;
/// File offset (and offset from the load address) of the `exit(0)` code.
const CODE: u64 = 0x400;
/// File offset where PT_INTERP strings are placed.
const STR: u64 = 0x800;
/// Length of the crafted programs (one page, all mapped by the first PT_LOAD).
const LEN: u64 = 0x1000;
/// The architecture the test runs on: every crafted program is built for it (its `e_machine`,
/// `e_flags` and `exit(0)` code), and the "wrong machine" cases use another one.
const ARCH: Arch = Arch::native();
/// The ld.so every Debian system of [`ARCH`] has.
const LD_SO: &str = ARCH.ld_so();

/// The running kernel's profile, read once.
fn host() -> &'static Profile {
    static HOST: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
    HOST.get_or_init(|| progload_host::host_profile_with_compat().expect("host profile"))
}

/// The binfmt_misc rules registered with the running kernel (qemu-user's, on some machines),
/// read once: the kernel runs files through them, so every plan takes the same ones.
fn registered_misc_rules() -> &'static [progload::binfmt::misc::Rule] {
    static RULES: std::sync::OnceLock<Vec<progload::binfmt::misc::Rule>> =
        std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        progload_host::binfmt_misc::registered_rules().expect("the host's binfmt_misc rules")
    })
}

/// `TASK_SIZE` of a 64-bit task on the running kernel (x86_64 4-level: 0x7fff_ffff_f000; arm64
/// 48-bit VA: 2^48; riscv64: 2^39, 2^48 or 2^56 by the MMU mode).
fn task_size() -> u64 {
    host().task_size
}

/// `STACK_TOP` on the running kernel: the end of `[stack]` without randomization (= TASK_SIZE
/// on x86_64 and arm64; riscv64's stack stays in the 2^47 window).
fn stack_top() -> u64 {
    host().stack_top
}

#[path = "crafted/asterinas.rs"]
mod asterinas;
#[path = "crafted/elf32.rs"]
mod elf32;
#[path = "crafted/gvisor.rs"]
mod gvisor;
#[path = "crafted/mutants.rs"]
mod mutants;
#[path = "crafted/selftests.rs"]
mod selftests;

/// One exec to run on both sides.
struct Case {
    family: &'static str,
    name: String,
    path: Vec<u8>,
    argv: Option<Vec<Vec<u8>>>,
    envp: Vec<Vec<u8>>,
    rlimit: Option<Option<u64>>,
    cwd: PathBuf,
    via: Via,
}

/// How the kernel is asked: `execve(path)` or `execveat(dirfd, path, flags)`.
#[derive(Clone)]
enum Via {
    Execve,
    At { dirfd: AtFd, flags: i32 },
}

/// The descriptor argument of an `execveat` case.
#[derive(Clone)]
enum AtFd {
    /// `AT_FDCWD`.
    Cwd,
    /// A number that is not an open descriptor.
    Raw(i32),
    /// An open descriptor, close-on-exec or not when the exec runs.
    Open(Arc<OpenFd>, bool),
}

/// A descriptor a case execs through, with what the plan side needs to name the same object.
#[derive(Debug)]
struct OpenFd {
    fd: OwnedFd,
    /// The directory a relative path is walked from, resolved when the descriptor was opened
    /// (before any rename or unlink the case makes); `Err` is the errno `resolve_dir` gives
    /// when the descriptor is not a directory (ENOTDIR).
    dir: Result<DirPath<TestNode>, Errno>,
}

impl OpenFd {
    /// A descriptor no path names (a memfd, a socket...).
    fn object(fd: OwnedFd) -> Arc<OpenFd> {
        Arc::new(OpenFd {
            fd,
            dir: Err(Errno::ENOTDIR),
        })
    }

    /// What `/proc/PID/maps` shows for the object now (`readlink /proc/self/fd/N`), and its
    /// dentry name (the last component, without a ` (deleted)` suffix).
    fn shown_and_name(&self) -> (Vec<u8>, Vec<u8>) {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .map(|p| bytes(&p))
            .unwrap_or_default();
        let base = link.strip_suffix(b" (deleted)").unwrap_or(&link);
        let name = base.rsplit(|&b| b == b'/').next().unwrap_or(base).to_vec();
        (link, name)
    }
}

impl Case {
    fn argv(mut self, argv: Option<Vec<Vec<u8>>>) -> Self {
        self.argv = argv;
        self
    }

    fn envp(mut self, envp: Vec<Vec<u8>>) -> Self {
        self.envp = envp;
        self
    }

    fn rlimit(mut self, r: Option<u64>) -> Self {
        self.rlimit = Some(r);
        self
    }

    fn via(mut self, via: Via) -> Self {
        self.via = via;
        self
    }

    fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The plan side's filesystem: the host, plus objects known only by an open descriptor.

/// A node of [`TestFs`].
#[derive(Clone, Debug)]
enum TestNode {
    /// Found by a path walk in the host filesystem.
    Host(HostHandle),
    /// An open descriptor (an unlinked file, a memfd, a pipe, a socket...): what
    /// `execveat(fd, "", AT_EMPTY_PATH)` executes. Never a directory a walk enters.
    Fd(Arc<OpenFd>),
}

/// The host filesystem rooted at `/`, whose nodes can also be open descriptors, so that
/// `Executable::Fd` can name objects no path reaches.
struct TestFs {
    host: HostFs,
}

fn fd_metadata(fd: &OwnedFd) -> Result<Metadata, Errno> {
    progload_host::hostfs::metadata_of(fd)
}

impl FileSystem for TestFs {
    type Node = TestNode;

    fn root(&self) -> TestNode {
        TestNode::Host(self.host.root())
    }

    fn lookup(&self, dir: &TestNode, name: &[u8]) -> Result<TestNode, Errno> {
        match dir {
            TestNode::Host(h) => self.host.lookup(h, name).map(TestNode::Host),
            TestNode::Fd(_) => Err(Errno::ENOTDIR),
        }
    }

    fn metadata(&self, node: &TestNode) -> Result<Metadata, Errno> {
        match node {
            TestNode::Host(h) => self.host.metadata(h),
            TestNode::Fd(o) => fd_metadata(&o.fd),
        }
    }

    fn readlink(&self, node: &TestNode) -> Result<Vec<u8>, Errno> {
        match node {
            TestNode::Host(h) => self.host.readlink(h),
            TestNode::Fd(_) => Err(Errno::EINVAL),
        }
    }

    fn read_at(&self, node: &TestNode, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match node {
            TestNode::Host(h) => self.host.read_at(h, offset, buf),
            TestNode::Fd(o) => {
                // Reopen for reading (the descriptor may be O_PATH, or a deleted file).
                let e = |e: rustix::io::Errno| Errno(e.raw_os_error());
                let f = rustix::fs::open(
                    format!("/proc/self/fd/{}", o.fd.as_raw_fd()).as_str(),
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(e)?;
                rustix::io::pread(&f, buf, offset).map_err(e)
            }
        }
    }
}

/// The case table and the directory its files live in.
struct Table {
    dir: TempDir,
    cases: Vec<Case>,
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn show(b: &[u8]) -> String {
    if b.len() > 90 {
        format!("{}…({} bytes)", String::from_utf8_lossy(&b[..60]), b.len())
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

impl Table {
    fn new() -> Self {
        Table {
            dir: TempDir::new().expect("temp dir"),
            cases: Vec::new(),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` with `contents` and mode 0755.
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        write_executable(self.dir(), name, contents).expect("write file")
    }

    /// Writes `name` with `contents` and `mode`.
    fn file_mode(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let p = self.file(name, contents);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    /// Adds a case executing `path` with argv `[path]`, envp `["A=1"]`, cwd the table's dir.
    fn case(&mut self, family: &'static str, name: impl Into<String>, path: impl AsRef<[u8]>) {
        let c = self.make(family, name, path);
        self.cases.push(c);
    }

    fn make(&self, family: &'static str, name: impl Into<String>, path: impl AsRef<[u8]>) -> Case {
        let path = path.as_ref().to_vec();
        Case {
            family,
            name: name.into(),
            argv: Some(vec![path.clone()]),
            path,
            envp: vec![b"A=1".to_vec()],
            rlimit: None,
            cwd: self.dir().to_path_buf(),
            via: Via::Execve,
        }
    }

    /// Opens `path` with `flags` (always close-on-exec in this process) and resolves it as a
    /// directory for the plan side.
    fn open(&self, fs: &TestFs, path: impl AsRef<Path>, flags: rustix::fs::OFlags) -> Arc<OpenFd> {
        let path = path.as_ref();
        let fd = rustix::fs::open(
            path,
            flags | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o755),
        )
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Arc::new(OpenFd {
            fd,
            dir: resolve_dir(fs, &bytes(path)),
        })
    }

    /// Writes an ELF file and adds a case executing it.
    fn elf(&mut self, family: &'static str, name: &str, file: &str, b: &ElfBuilder) -> PathBuf {
        let p = self.file(file, &b.build());
        self.case(family, name, bytes(&p));
        p
    }
}

/// A static program for `e_type` (ET_EXEC at [`BASE`], anything else at 0): a `R|X` PT_LOAD
/// mapping the whole one-page file, a `R|W` PT_GNU_STACK, then `extra`; `exit(0)` at [`CODE`].
fn prog(e_type: u16, extra: &[ProgramHeader]) -> ElfBuilder {
    let base = if e_type == ET_EXEC { BASE } else { 0 };
    let mut b = native(e_type);
    b.header.e_entry = base + CODE;
    b.phdr(ProgramHeader::load(PF_R | PF_X, 0, base, LEN, LEN));
    b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
    for p in extra {
        b.phdr(*p);
    }
    b.payload(CODE, ARCH.exit0());
    b.min_len(LEN);
    b
}

/// An empty builder for [`ARCH`]: its `e_machine` and usual `e_flags`.
fn native(e_type: u16) -> ElfBuilder {
    let mut b = ElfBuilder::new(e_type, ARCH.e_machine());
    b.header.e_flags = ARCH.e_flags();
    b
}

/// [`prog`] with a PT_INTERP whose bytes (`name`, NUL included by the caller) sit at [`STR`].
fn with_interp(e_type: u16, name: &[u8]) -> ElfBuilder {
    let base = if e_type == ET_EXEC { BASE } else { 0 };
    let mut b = prog(
        e_type,
        &[ProgramHeader::interp(STR, base + STR, name.len() as u64)],
    );
    b.payload(STR, name);
    b
}

/// `b` built, then `e_phoff` patched to `phoff` (the builder would write the table there).
fn with_phoff(b: &ElfBuilder, phoff: u64) -> Vec<u8> {
    let mut f = b.build();
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f
}

fn nul(s: impl AsRef<[u8]>) -> Vec<u8> {
    let mut v = s.as_ref().to_vec();
    v.push(0);
    v
}

/// A program header of type `p_type` with nothing else set.
fn ph(p_type: u32) -> ProgramHeader {
    ProgramHeader {
        p_type,
        ..ProgramHeader::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// §1.7 steps 1–5: magic, e_type, e_machine, fields not checked, program header table shape.
fn elf_header_cases(t: &mut Table) {
    const F: &str = "elf-header";
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_ident[0] = 0x7e;
    t.elf(F, "bad magic", "bad-magic", &b);
    t.case(F, "empty file", bytes(&t.file("empty", b"")));
    t.case(
        F,
        "text file",
        bytes(&t.file("text", b"hello, world\nthis is not a program\n")),
    );
    t.case(
        F,
        "3-byte file \"\\x7fEL\"",
        bytes(&t.file("short-magic", b"\x7fEL")),
    );
    t.case(
        F,
        "ELF magic, 63-byte file",
        bytes(&t.file("elf-63", &prog(ET_EXEC, &[]).build()[..63])),
    );
    for (name, ty) in [
        ("e_type ET_REL", ET_REL),
        ("e_type ET_CORE", ET_CORE),
        ("e_type 0", 0),
        ("e_type 0xfe00 (ET_LOOS)", 0xfe00),
    ] {
        let mut b = prog(ET_EXEC, &[]);
        b.header.e_type = ty;
        t.elf(F, name, &format!("type-{ty}"), &b);
    }
    // EM_386 is x86_64's compat machine (compat_binfmt_elf takes it, then its ELF32 reading of
    // this ELF64 file fails the phdr checks); elsewhere it is one more foreign machine.
    for (name, m) in [
        ("e_machine EM_386".to_string(), EM_386),
        (
            format!("e_machine {}", machine_name(ARCH.foreign_machine())),
            ARCH.foreign_machine(),
        ),
        ("e_machine 0".to_string(), 0),
    ] {
        let mut b = prog(ET_EXEC, &[]);
        b.header.e_machine = m;
        t.elf(F, &name, &format!("machine-{m}"), &b);
    }
    if ARCH == Arch::Aarch64 {
        arm_compat_cases(t);
    }
    let mut b = prog(ET_EXEC, &[]);
    b.header.set_class(1);
    t.elf(F, "EI_CLASS=1 (not checked: runs)", "class-1", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.set_data(2);
    t.elf(F, "EI_DATA=2 (not checked: runs)", "data-2", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.set_osabi(0x42);
    t.elf(F, "EI_OSABI=0x42 (not checked: runs)", "osabi-42", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.set_ident_version(0);
    b.header.e_version = 7;
    b.header.e_ehsize = 12;
    b.header.e_flags = 0xdead_beef;
    t.elf(
        F,
        "EI_VERSION/e_version/e_ehsize/e_flags junk (runs)",
        "junk-fields",
        &b,
    );
    for (name, size) in [
        ("e_phentsize 0x40", 0x40u16),
        ("e_phentsize 0", 0),
        ("e_phentsize 55", 55),
    ] {
        let mut b = prog(ET_EXEC, &[]);
        b.header.e_phentsize = size;
        t.elf(F, name, &format!("phentsize-{size}"), &b);
    }
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_phnum = Some(0);
    t.elf(F, "e_phnum 0", "phnum-0", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_phnum = Some(1171);
    t.elf(F, "e_phnum 1171 (65576 bytes > 64 KiB)", "phnum-1171", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_phnum = Some(0xffff);
    t.elf(F, "e_phnum 0xffff", "phnum-ffff", &b);
    // 1170 * 56 = 65520 bytes: the largest table the kernel reads; put it after the code.
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_phoff = LEN;
    b.payloads.clear();
    b.payload(CODE, ARCH.exit0());
    b.phdrs.resize(1170, ProgramHeader::default());
    t.elf(
        F,
        "e_phnum 1170 (65520 bytes, the largest table): runs",
        "phnum-1170",
        &b,
    );
    for (name, file, phoff) in [
        ("phdr table past EOF", "phoff-past-eof", 0x10_0000u64),
        ("phdr table right at EOF", "phoff-at-eof", LEN),
        ("e_phoff near 2^64", "phoff-huge", 0xffff_ffff_ffff_ff00),
        (
            "e_phoff + size overflows loff_t",
            "phoff-loff-overflow",
            0x7fff_ffff_ffff_ffe0,
        ),
        (
            "e_phoff negative as loff_t",
            "phoff-negative",
            0x8000_0000_0000_0000,
        ),
    ] {
        let f = with_phoff(&prog(ET_EXEC, &[]), phoff);
        t.case(F, name, bytes(&t.file(file, &f)));
    }
    // The builder writes the table at e_phoff: the first entry fits, the second is cut off.
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_phoff = LEN - 56;
    let mut f = b.build();
    f.truncate(LEN as usize);
    t.case(
        F,
        "phdr table straddles EOF",
        bytes(&t.file("phoff-straddle", &f)),
    );
    // PT_GNU_PROPERTY is not parsed on x86_64 and riscv64 (no CONFIG_ARCH_USE_GNU_PROPERTY);
    // arm64 parses it (parse_elf_properties(): a note larger than its buffer is ENOEXEC).
    let mut prop = ph(PT_GNU_PROPERTY);
    prop.p_offset = STR;
    prop.p_filesz = 0x2000;
    let mut b = prog(ET_EXEC, &[prop]);
    b.payload(STR, b"junk note");
    let name = match ARCH {
        Arch::X86_64 => "malformed PT_GNU_PROPERTY (ignored on x86_64)",
        Arch::Aarch64 => "malformed PT_GNU_PROPERTY (parsed on aarch64)",
        Arch::Riscv64 => "malformed PT_GNU_PROPERTY (ignored on riscv64)",
    };
    t.elf(F, name, "bad-property", &b);
}

/// arm64 only: its compat machine is EM_ARM, taken by `compat_binfmt_elf` when the ELF32
/// `e_flags` carry an EABI version (`compat_elf_check_arch()`), like EM_386 on x86_64.
fn arm_compat_cases(t: &mut Table) {
    const F: &str = "elf-header";
    // The ELF64 file with EM_ARM and EABI5 where an ELF32 header keeps e_flags (offset 36, the
    // high half of the ELF64 e_phoff): the compat loader takes the machine, then its ELF32
    // reading fails the phdr checks (e_phentsize 0); the native one refuses the machine.
    let mut f = prog(ET_EXEC, &[]).build();
    f[18..20].copy_from_slice(&EM_ARM.to_le_bytes());
    f[36..40].copy_from_slice(&EF_ARM_EABI_VER5.to_le_bytes());
    t.case(
        F,
        "e_machine EM_ARM, EABI5 in the ELF32 e_flags (compat machine, bad ELF32 phdrs)",
        bytes(&t.file("machine-arm-elf64", &f)),
    );
    // A real AArch32 program without EABI flags: compat_elf_check_arch() refuses it.
    t.case(
        F,
        "ELF32 EM_ARM without EABI flags (compat refuses)",
        bytes(&t.file("machine-arm-noeabi", &minimal_arm_exec(0))),
    );
    // The same program with EABI5 is not a case: the compat loader is not modelled (the plan
    // refuses it), while a kernel whose CPU runs AArch32 at EL0 runs it.
}

/// §1.7 step 6–9: PT_INTERP and the interpreter's checks; §2.5 / §1.9 the fatal ones.
fn interp_cases(t: &mut Table) {
    const F: &str = "pt-interp";
    let dir = t.dir().to_path_buf();
    // A valid crafted interpreter: a static ET_DYN at 0.
    let good = t.file("interp-ok", &prog(ET_DYN, &[]).build());
    let good_name = nul(bytes(&good));

    t.elf(
        F,
        "crafted interpreter (ET_EXEC main)",
        "i-ok-exec",
        &with_interp(ET_EXEC, &good_name),
    );
    t.elf(
        F,
        "crafted interpreter (ET_DYN main)",
        "i-ok-dyn",
        &with_interp(ET_DYN, &good_name),
    );
    t.elf(
        F,
        "ld.so as interpreter",
        "i-ldso",
        &with_interp(ET_EXEC, &nul(LD_SO)),
    );
    t.elf(
        F,
        "relative PT_INTERP (resolved from cwd)",
        "i-relative",
        &with_interp(ET_EXEC, b"interp-ok\0"),
    );

    let mut b = prog(ET_EXEC, &[ProgramHeader::interp(STR, BASE + STR, 1)]);
    b.payload(STR, b"\0");
    t.elf(F, "PT_INTERP size 1", "i-size-1", &b);
    let mut b = prog(ET_EXEC, &[ProgramHeader::interp(STR, BASE + STR, 0)]);
    b.payload(STR, b"\0");
    t.elf(F, "PT_INTERP size 0", "i-size-0", &b);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(0x1000, BASE + 0x1000, 4097)],
    );
    b.payload(0x1000, &[0; 4097]);
    t.elf(F, "PT_INTERP size 4097", "i-size-4097", &b);
    // The longest name, 4095 bytes: the interpreter's path padded with slashes.
    let mut long = bytes(&dir);
    long.resize(4095 - b"/interp-ok".len(), b'/');
    long.extend_from_slice(b"/interp-ok");
    assert_eq!(long.len(), 4095);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(0x1000, BASE + 0x1000, 4096)],
    );
    b.payload(0x1000, &nul(&long));
    t.elf(
        F,
        "PT_INTERP size 4096, 4095-byte path (runs)",
        "i-size-4096",
        &b,
    );
    let mut b = prog(ET_EXEC, &[ProgramHeader::interp(0x2000, BASE + 0x2000, 16)]);
    b.min_len(LEN);
    t.elf(F, "PT_INTERP past EOF", "i-past-eof", &b);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(LEN - 8, BASE + LEN - 8, 16)],
    );
    b.payload(LEN - 8, &LD_SO.as_bytes()[..8]);
    t.elf(F, "PT_INTERP straddles EOF", "i-straddle-eof", &b);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(0x7fff_ffff_ffff_fff8, 0, 16)],
    );
    b.min_len(LEN);
    t.elf(
        F,
        "PT_INTERP offset + size overflows loff_t",
        "i-loff-overflow",
        &b,
    );
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(0x8000_0000_0000_0000, 0, 16)],
    );
    b.min_len(LEN);
    t.elf(
        F,
        "PT_INTERP negative loff_t offset",
        "i-negative-offset",
        &b,
    );
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::interp(0x7fff_ffff_0000_0000, 0, 16)],
    );
    b.min_len(LEN);
    t.elf(
        F,
        "PT_INTERP offset far past EOF (valid loff_t)",
        "i-far-offset",
        &b,
    );
    t.elf(
        F,
        "PT_INTERP not NUL-terminated",
        "i-no-nul",
        &with_interp(ET_EXEC, LD_SO.as_bytes()),
    );
    let mut name = nul(LD_SO);
    name.extend_from_slice(b"garbage\0");
    t.elf(
        F,
        "PT_INTERP with embedded NUL (name ends there)",
        "i-embedded-nul",
        &with_interp(ET_EXEC, &name),
    );
    t.elf(
        F,
        "PT_INTERP \"\\0\\0\" (empty name)",
        "i-empty",
        &with_interp(ET_EXEC, b"\0\0"),
    );
    t.elf(
        F,
        "PT_INTERP \"/\" (the root directory)",
        "i-root",
        &with_interp(ET_EXEC, b"/\0"),
    );
    t.elf(
        F,
        "missing interpreter",
        "i-missing",
        &with_interp(ET_EXEC, b"/nonexistent/ld.so\0"),
    );

    let noexec = t.file_mode("interp-noexec", &prog(ET_DYN, &[]).build(), 0o644);
    t.elf(
        F,
        "interpreter without x bit",
        "i-noexec",
        &with_interp(ET_EXEC, &nul(bytes(&noexec))),
    );
    std::fs::create_dir(dir.join("interp-dir")).unwrap();
    t.elf(
        F,
        "interpreter is a directory",
        "i-dir",
        &with_interp(ET_EXEC, &nul(bytes(&dir.join("interp-dir")))),
    );
    t.elf(
        F,
        "interpreter is /dev/null",
        "i-devnull",
        &with_interp(ET_EXEC, b"/dev/null\0"),
    );
    let text12 = t.file("interp-text12", b"hello world\n");
    t.elf(
        F,
        "interpreter: 12-byte text file",
        "i-text12",
        &with_interp(ET_EXEC, &nul(bytes(&text12))),
    );
    let elf63 = t.file("interp-elf63", &prog(ET_DYN, &[]).build()[..63]);
    t.elf(
        F,
        "interpreter: 63 bytes of a valid ELF",
        "i-elf63",
        &with_interp(ET_EXEC, &nul(bytes(&elf63))),
    );
    let empty = t.file("interp-empty", b"");
    t.elf(
        F,
        "interpreter: empty file",
        "i-interp-empty",
        &with_interp(ET_EXEC, &nul(bytes(&empty))),
    );
    let text64 = t.file("interp-text64", &[b'x'; 64]);
    t.elf(
        F,
        "interpreter: 64-byte text file",
        "i-text64",
        &with_interp(ET_EXEC, &nul(bytes(&text64))),
    );
    let script = t.file(
        "interp-script",
        format!("#!{}\n{}\n", good.display(), "#".repeat(80)).as_bytes(),
    );
    t.elf(
        F,
        "interpreter: a #! script",
        "i-script",
        &with_interp(ET_EXEC, &nul(bytes(&script))),
    );

    let variant = |t: &mut Table, name: &str, file: &str, edit: &dyn Fn(&mut ElfBuilder)| {
        let mut ib = prog(ET_DYN, &[]);
        edit(&mut ib);
        let ip = t.file(file, &ib.build());
        t.elf(
            F,
            name,
            &format!("main-{file}"),
            &with_interp(ET_EXEC, &nul(bytes(&ip))),
        );
    };
    variant(t, "interpreter: wrong e_machine", "interp-machine", &|b| {
        b.header.e_machine = ARCH.foreign_machine()
    });
    variant(
        t,
        "interpreter: e_phentsize 0x40",
        "interp-phentsize",
        &|b| b.header.e_phentsize = 0x40,
    );
    variant(t, "interpreter: e_phnum 0", "interp-phnum0", &|b| {
        b.header.e_phnum = Some(0)
    });
    let ip = t.file("interp-phoff", &with_phoff(&prog(ET_DYN, &[]), 0x10_0000));
    t.elf(
        F,
        "interpreter: phdrs past EOF",
        "main-interp-phoff",
        &with_interp(ET_EXEC, &nul(bytes(&ip))),
    );
    variant(t, "interpreter: bad magic", "interp-magic", &|b| {
        b.header.e_ident[1] = b'e'
    });
    variant(
        t,
        "interpreter: EI_CLASS=1 (not checked)",
        "interp-class",
        &|b| {
            b.header.set_class(1);
        },
    );
    variant(t, "interpreter: ET_REL (fatal)", "interp-rel", &|b| {
        b.header.e_type = ET_REL
    });
    variant(t, "interpreter: ET_CORE (fatal)", "interp-core", &|b| {
        b.header.e_type = ET_CORE
    });
    variant(
        t,
        "interpreter: no PT_LOAD (fatal)",
        "interp-noload",
        &|b| {
            b.phdrs[0] = ph(PT_NOTE);
        },
    );
    variant(
        t,
        "interpreter: only an empty PT_LOAD (fatal)",
        "interp-emptyload",
        &|b| {
            b.phdrs[0].p_filesz = 0;
            b.phdrs[0].p_memsz = 0;
        },
    );
    variant(
        t,
        "interpreter: entry >= TASK_SIZE (fatal)",
        "interp-entry",
        &|b| {
            b.header.e_entry = task_size();
        },
    );
    variant(
        t,
        "interpreter: ET_EXEC at 0x10000000 (runs)",
        "interp-exec",
        &|b| {
            b.header.e_type = ET_EXEC;
            b.header.e_entry = 0x1000_0000 + CODE;
            b.phdrs[0].p_vaddr = 0x1000_0000;
        },
    );
    variant(
        t,
        "interpreter: p_filesz > p_memsz (fatal)",
        "interp-filesz",
        &|b| {
            b.phdrs[0].p_memsz = 0x100;
        },
    );
    variant(
        t,
        "interpreter: p_offset/p_vaddr misaligned (fatal)",
        "interp-misaligned",
        &|b| {
            b.phdrs[0].p_offset = 0x10;
        },
    );
    variant(
        t,
        "interpreter: its own PT_INTERP (ignored)",
        "interp-interp",
        &|b| {
            b.phdrs.push(ProgramHeader::interp(STR, STR, 10));
            b.payload(STR, b"/nowhere\0\0");
        },
    );

    // Only the first PT_INTERP counts.
    let mut b = with_interp(ET_EXEC, &good_name);
    b.phdr(ProgramHeader::interp(STR + 0x100, BASE + STR + 0x100, 1));
    t.elf(
        F,
        "second PT_INTERP (bad size) ignored",
        "i-second-ignored",
        &b,
    );
    let mut b = with_interp(ET_EXEC, b"/nonexistent\0");
    b.phdr(ProgramHeader::interp(
        STR + 0x100,
        BASE + STR + 0x100,
        good_name.len() as u64,
    ));
    b.payload(STR + 0x100, &good_name);
    t.elf(
        F,
        "first PT_INTERP missing, second valid",
        "i-first-missing",
        &b,
    );

    // PT_GNU_STACK: the last one wins.
    let b = prog(ET_EXEC, &[ProgramHeader::gnu_stack(PF_R | PF_W | PF_X)]);
    t.elf(
        F,
        "PT_GNU_STACK RW then RWX (exec stack)",
        "stack-rw-rwx",
        &b,
    );
    let mut b = prog(ET_EXEC, &[ProgramHeader::gnu_stack(PF_R | PF_W)]);
    b.phdrs[1].p_flags = PF_R | PF_W | PF_X;
    t.elf(
        F,
        "PT_GNU_STACK RWX then RW (no exec stack)",
        "stack-rwx-rw",
        &b,
    );
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[1] = ph(PT_NOTE);
    t.elf(F, "no PT_GNU_STACK", "stack-none", &b);
    let mut b = with_interp(ET_DYN, &good_name);
    b.phdrs[1].p_flags = PF_R | PF_W | PF_X;
    t.elf(
        F,
        "PT_GNU_STACK RWX with an interpreter",
        "stack-rwx-interp",
        &b,
    );
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[1].p_type = PT_GNU_STACK;
    b.phdrs[1].p_flags = PF_X;
    t.elf(F, "PT_GNU_STACK X only", "stack-x", &b);
}

/// §2.4 / §1.9: the PT_LOAD checks, all after the point of no return.
fn segment_cases(t: &mut Table) {
    const F: &str = "segments";
    // Static-PIE alignment probe (ET_DYN, no PT_INTERP, p_align > page) whose first PT_LOAD
    // maps no file bytes: the kernel's probe is elf_load() at address 0 of that segment.
    for (memsz, file) in [
        (0x1000, "s-dyn-align-bss-first"),
        (0, "s-dyn-align-empty-first"),
    ] {
        let mut bss = ProgramHeader::load(PF_R | PF_W, 0, 0, 0, memsz);
        bss.p_align = 0x20_0000;
        let mut code = ProgramHeader::load(PF_R | PF_X, 0, 0x20_0000, LEN, LEN);
        code.p_align = 0x20_0000;
        let mut b = native(ET_DYN);
        b.header.e_entry = 0x20_0000 + CODE;
        b.phdr(bss)
            .phdr(code)
            .phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
        b.payload(CODE, ARCH.exit0()).min_len(LEN);
        let name = format!("static-PIE aligned 2 MiB, first PT_LOAD filesz 0 memsz {memsz:#x}");
        t.elf(F, &name, file, &b);
    }
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_memsz = 0x800;
    t.elf(F, "p_filesz > p_memsz", "s-filesz-gt-memsz", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_vaddr = task_size();
    b.header.e_entry = BASE + CODE;
    t.elf(F, "first PT_LOAD at TASK_SIZE", "s-vaddr-tasksize", &b);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::load(PF_R, 0, task_size() + 0x1000, 0, 0)],
    );
    b.header.e_entry = BASE + CODE;
    t.elf(
        F,
        "empty PT_LOAD with p_vaddr >= TASK_SIZE",
        "s-empty-above",
        &b,
    );
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::load(PF_R, 0, u64::MAX - 0xfff, 0, 0)],
    );
    b.header.e_entry = BASE + CODE;
    t.elf(F, "empty PT_LOAD with p_vaddr near 2^64", "s-empty-top", &b);
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            0x1000_0000,
            0,
            task_size(),
        )],
    );
    t.elf(F, "p_vaddr + p_memsz > TASK_SIZE (bss)", "s-end-above", &b);
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            0x1000_0000,
            0,
            u64::MAX,
        )],
    );
    t.elf(F, "p_memsz = 2^64-1", "s-memsz-max", &b);
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            // 0x7fff_f000_0000 on x86_64.
            stack_top() - 0xfff_f000,
            0x10,
            0x20,
        )],
    );
    t.elf(
        F,
        "PT_LOAD inside the stack gap region (runs)",
        "s-high",
        &b,
    );
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            // 0x7fff_fffd_e000 on x86_64: [stack] is 0x21000 bytes long here.
            stack_top() - 0x2_1000,
            0x10,
            0x10,
        )],
    );
    // (Over the top page instead, the arguments are replaced and no VMA is labelled [stack],
    // which the probe cannot read.)
    t.elf(
        F,
        "PT_LOAD over the lowest stack page (MAP_FIXED)",
        "s-over-stack",
        &b,
    );
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_vaddr = BASE + 0x10;
    t.elf(
        F,
        "p_offset 0, p_vaddr 0x400010 (misaligned)",
        "s-misaligned",
        &b,
    );
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0x100,
            0x60_0800,
            0x100,
            0x100,
        )],
    );
    t.elf(F, "second PT_LOAD misaligned", "s-misaligned-2", &b);
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0x100,
            0x60_0100,
            0x100,
            0x3000,
        )],
    );
    t.elf(
        F,
        "second PT_LOAD unaligned but congruent, with bss",
        "s-congruent",
        &b,
    );
    let mut b = prog(ET_DYN, &[]);
    b.phdrs[0] = ph(PT_NOTE);
    t.elf(F, "ET_DYN without PT_LOAD", "s-dyn-noload", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0] = ph(PT_NOTE);
    t.elf(F, "ET_EXEC without PT_LOAD", "s-exec-noload", &b);
    let mut b = prog(ET_DYN, &[]);
    b.phdrs[0].p_filesz = 0;
    b.phdrs[0].p_memsz = 0;
    t.elf(
        F,
        "ET_DYN with only an empty PT_LOAD",
        "s-dyn-emptyload",
        &b,
    );
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(PF_R | PF_W, 0, BASE, 0x800, 0x2000)],
    );
    t.elf(F, "two overlapping ET_EXEC segments", "s-overlap", &b);
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            BASE - 0x1000,
            0x1000,
            0x1000,
        )],
    );
    t.elf(
        F,
        "overlapping segment below the first",
        "s-overlap-below",
        &b,
    );
    let b = prog(
        ET_DYN,
        &[ProgramHeader::load(PF_R | PF_W, 0, 0, 0x800, 0x2000)],
    );
    t.elf(F, "two overlapping ET_DYN segments", "s-dyn-overlap", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_vaddr = 0;
    b.header.e_entry = CODE;
    t.elf(F, "segment at 0 (below mmap_min_addr)", "s-zero", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_vaddr = 0x1000;
    b.header.e_entry = 0x1000 + CODE;
    t.elf(F, "segment at 0x1000 (= mmap_min_addr)", "s-page1", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_entry = task_size();
    t.elf(F, "entry = TASK_SIZE", "s-entry-tasksize", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_entry = task_size() - 1;
    t.elf(F, "entry = TASK_SIZE - 1 (runs)", "s-entry-below", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_entry = 0xffff_ffff_8000_0000;
    t.elf(F, "entry in kernel space", "s-entry-kernel", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.header.e_entry = 0;
    t.elf(F, "entry 0 (runs; faults later)", "s-entry-0", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_filesz = 0x10_0000;
    b.phdrs[0].p_memsz = 0x10_0000;
    t.elf(F, "p_filesz beyond EOF", "s-filesz-past-eof", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_offset = 0x100_0000;
    b.phdrs[0].p_vaddr = BASE;
    t.elf(F, "p_offset beyond EOF", "s-offset-past-eof", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_offset = 0xffff_ffff_ffff_f000;
    t.elf(F, "p_offset near 2^64", "s-offset-huge", &b);
    let mut b = prog(ET_EXEC, &[]);
    b.phdrs[0].p_flags = 0;
    t.elf(F, "PT_LOAD with no permissions", "s-prot-none", &b);
    let mut b = prog(
        ET_EXEC,
        &[ProgramHeader::load(
            PF_R | PF_W | PF_X,
            0,
            0x60_0000,
            0x10,
            0x2000,
        )],
    );
    b.header.e_entry = BASE + CODE;
    t.elf(F, "RWX segment with bss", "s-rwx-bss", &b);
    // padzero() on a file page past EOF faults (no page to clear); that is fatal only for a
    // writable segment (Asterinas' memsz_larger_than_filesz is the writable case).
    let b = prog(
        ET_EXEC,
        &[ProgramHeader::load(PF_R, 0, 0x60_0000, 0x1fff, 0x2000)],
    );
    t.elf(
        F,
        "read-only PT_LOAD whose padzero page is past EOF (runs)",
        "s-padzero-eof-ro",
        &b,
    );
    for (name, file, align) in [
        ("ET_DYN p_align 0 (runs)", "s-align-0", 0u64),
        ("ET_DYN p_align 3 (not a power of two)", "s-align-3", 3),
        ("ET_DYN p_align 2 MiB", "s-align-2m", 0x20_0000),
        ("ET_DYN p_align 2^63", "s-align-huge", 1 << 63),
    ] {
        let mut b = prog(ET_DYN, &[]);
        b.phdrs[0].p_align = align;
        t.elf(F, name, file, &b);
    }
    let mut b = prog(ET_DYN, &[]);
    b.phdrs[0].p_offset = 0x10;
    b.phdrs[0].p_vaddr = 0x10;
    b.phdrs[0].p_filesz = LEN - 0x10;
    b.phdrs[0].p_memsz = LEN - 0x10;
    t.elf(
        F,
        "ET_DYN first p_vaddr not page aligned",
        "s-dyn-unaligned",
        &b,
    );
    // 0x7fff_0000_0000 on x86_64.
    let high = task_size() - 0xffff_f000;
    let mut b = prog(ET_DYN, &[]);
    b.phdrs[0].p_vaddr = high;
    b.header.e_entry = high + CODE;
    t.elf(
        F,
        &format!("ET_DYN linked high ({high:#x})"),
        "s-dyn-high",
        &b,
    );
    let b = prog(
        ET_DYN,
        &[ProgramHeader::load(
            PF_R | PF_W,
            0,
            // 0x7fff_ffff_0000 on x86_64.
            task_size() - 0xf000,
            0x10,
            0x10,
        )],
    );
    t.elf(
        F,
        "ET_DYN spanning nearly all of user space",
        "s-dyn-span",
        &b,
    );
}

/// §1.3: path walk and `may_open()`.
fn path_cases(t: &mut Table) {
    const F: &str = "path";
    let dir = t.dir().to_path_buf();
    let elf = t.file("p-elf", &prog(ET_EXEC, &[]).build());
    t.case(F, "the valid static program (runs)", bytes(&elf));
    t.case(F, "missing file (ENOENT)", bytes(&dir.join("nonexistent")));
    t.case(F, "missing directory", bytes(&dir.join("nodir/p-elf")));
    t.case(F, "empty path", b"");
    t.case(F, "through a file (ENOTDIR)", bytes(&elf.join("x")));
    let mut trailing = bytes(&elf);
    trailing.push(b'/');
    t.case(F, "trailing slash on a file", trailing);
    let mut dot = bytes(&elf);
    dot.extend_from_slice(b"/.");
    t.case(F, "file/.", dot);
    t.case(
        F,
        "component of 256 bytes",
        bytes(&dir.join("a".repeat(256))),
    );
    t.case(
        F,
        "component of 255 bytes (missing)",
        bytes(&dir.join("a".repeat(255))),
    );
    for len in [4095usize, 4096, 5000] {
        let mut p = bytes(&dir);
        p.resize(len - b"/p-elf".len(), b'/');
        p.extend_from_slice(b"/p-elf");
        assert_eq!(p.len(), len);
        t.case(F, format!("path of {len} bytes (slashes)"), p);
    }
    let mut p = bytes(&dir);
    while p.len() + 2 + 6 <= 4095 {
        p.extend_from_slice(b"/.");
    }
    p.extend_from_slice(b"/p-elf");
    t.case(F, format!("path of {} bytes (/./)", p.len()), p);
    t.case(F, "relative ./p-elf from cwd", b"./p-elf");
    t.case(F, "relative p-elf from cwd", b"p-elf");
    t.case(F, "dir/../p-elf", bytes(&dir.join("nodir2/../p-elf")));
    std::fs::create_dir(dir.join("sub")).unwrap();
    t.case(F, "existing sub/../p-elf", bytes(&dir.join("sub/../p-elf")));
    t.case(F, "/.. climbs no higher than /", {
        let mut p = b"/../../..".to_vec();
        p.extend_from_slice(&bytes(&elf));
        p
    });

    let link = |from: &str, to: &[u8]| {
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(to), dir.join(from)).unwrap();
        bytes(&dir.join(from))
    };
    t.case(F, "symlink to the program", link("l-ok", &bytes(&elf)));
    t.case(F, "relative symlink", link("l-rel", b"p-elf"));
    t.case(F, "dangling symlink", link("l-dangling", b"nothing-here"));
    link("loop-a", b"loop-b");
    t.case(F, "symlink loop (ELOOP)", link("loop-b", b"loop-a"));
    t.case(F, "self symlink", link("loop-self", b"loop-self"));
    t.case(F, "symlink to a directory", link("l-dir", b"sub"));
    // Chains of exactly 40 and 41 links.
    for n in [40usize, 41] {
        let mut target = b"p-elf".to_vec();
        for i in (0..n).rev() {
            let name = format!("chain{n}-{i}");
            target = link(&name, &target);
        }
        t.case(F, format!("chain of {n} symlinks"), target);
    }
    // A directory symlink used mid-path.
    link("l-sub", b"sub");
    let mut p = bytes(&dir.join("l-sub"));
    p.extend_from_slice(b"/../p-elf");
    t.case(F, "symlink/.. (physical parent)", p);

    t.case(F, "a directory (EACCES)", bytes(&dir));
    t.case(F, "/", b"/");
    t.case(F, "/dev/null (EACCES)", b"/dev/null");
    t.case(F, "/dev/zero", b"/dev/zero");
    let noexec = t.file_mode("p-noexec", &prog(ET_EXEC, &[]).build(), 0o644);
    t.case(F, "chmod -x (EACCES even for root)", bytes(&noexec));
    let other = t.file_mode("p-other-x", &prog(ET_EXEC, &[]).build(), 0o601);
    t.case(F, "only the other-x bit (root: runs)", bytes(&other));
    let xonly = t.file_mode("p-xonly", &prog(ET_EXEC, &[]).build(), 0o111);
    t.case(F, "execute-only file (runs)", bytes(&xonly));
    let fifo = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o755),
        0,
    )
    .expect("mkfifo");
    t.case(F, "a FIFO (EACCES)", bytes(&fifo));
    let sock = dir.join("sock");
    // The socket inode stays after the listener is closed.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.case(F, "a socket (EACCES)", bytes(&sock));
}

/// §4.1: `#!`.
fn script_cases(t: &mut Table) {
    const F: &str = "script";
    let dir = t.dir().to_path_buf();
    let elf = t.file("sh-elf", &prog(ET_EXEC, &[]).build());
    let e = elf.display().to_string();
    let script = |t: &mut Table, name: &str, file: &str, body: &[u8]| {
        let p = t.file(file, body);
        t.case(F, name, bytes(&p));
        p
    };
    script(t, "#!elf (runs)", "sc-ok", format!("#!{e}\n").as_bytes());
    script(
        t,
        "#!elf with one argument",
        "sc-arg",
        format!("#!{e} -x\n").as_bytes(),
    );
    script(
        t,
        "argument keeps inner blanks",
        "sc-blanks",
        format!("#!{e}  a1   a2  \t\n").as_bytes(),
    );
    script(
        t,
        "leading blanks before the name",
        "sc-lead",
        format!("#! \t {e}\n").as_bytes(),
    );
    script(
        t,
        "NUL ends the argument",
        "sc-nul-arg",
        format!("#!{e} a\0b c\n").as_bytes(),
    );
    script(
        t,
        "NUL ends the name",
        "sc-nul-name",
        format!("#!{e}\0junk\n").as_bytes(),
    );
    script(
        t,
        "relative interpreter (from cwd)",
        "sc-rel",
        b"#!sh-elf\n",
    );
    script(
        t,
        "CRLF line (ENOENT)",
        "sc-crlf",
        format!("#!{e}\r\n").as_bytes(),
    );
    script(
        t,
        "CRLF after an argument",
        "sc-crlf-arg",
        format!("#!{e} x\r\n").as_bytes(),
    );
    script(t, "bare #! (EACCES: cwd)", "sc-bare", b"#!");
    script(t, "#!\\n", "sc-bare-nl", b"#!\n");
    script(t, "#!   \\n (ENOEXEC)", "sc-blank", b"#!   \n");
    script(t, "#! then 254 spaces, no newline", "sc-all-blank", &{
        let mut v = b"#!".to_vec();
        v.resize(256, b' ');
        v
    });
    let mut long = b"#!/".to_vec();
    long.extend(std::iter::repeat_n(b'x', 300));
    script(
        t,
        "long line without terminator (ENOEXEC)",
        "sc-long",
        &long,
    );
    let mut long = format!("#!{e} ").into_bytes();
    long.extend(std::iter::repeat_n(b'A', 300));
    script(t, "long argument cut at byte 255", "sc-long-arg", &long);
    let mut long = format!("#!{e}\t").into_bytes();
    long.resize(300, b'\t');
    script(t, "long blank tail without newline", "sc-long-blank", &long);
    let mut long = format!("#!{e} ").into_bytes();
    long.resize(255, b'B');
    long.push(b' ');
    long.extend(std::iter::repeat_n(b'C', 10));
    script(t, "space exactly at byte 255", "sc-space-255", &long);
    script(
        t,
        "missing interpreter (ENOENT)",
        "sc-missing",
        b"#!/nonexistent/interp\n",
    );
    script(
        t,
        "interpreter is a directory",
        "sc-dir",
        format!("#!{}\n", dir.display()).as_bytes(),
    );
    let nox = t.file_mode("sh-noexec", &prog(ET_EXEC, &[]).build(), 0o644);
    script(
        t,
        "interpreter without x bit",
        "sc-noexec",
        format!("#!{}\n", nox.display()).as_bytes(),
    );
    let text = t.file("sh-text", b"just text\n");
    script(
        t,
        "interpreter is a text file",
        "sc-text",
        format!("#!{}\n", text.display()).as_bytes(),
    );
    let bad_elf = {
        let mut b = prog(ET_EXEC, &[]);
        b.header.e_machine = ARCH.foreign_machine();
        t.file("sh-badelf", &b.build())
    };
    script(
        t,
        "interpreter is a foreign ELF",
        "sc-badelf",
        format!("#!{}\n", bad_elf.display()).as_bytes(),
    );
    let pie = t.file("sh-pie", &with_interp(ET_DYN, &nul(LD_SO)).build());
    script(
        t,
        "interpreter is a PIE with ld.so",
        "sc-pie",
        format!("#!{} arg\n", pie.display()).as_bytes(),
    );
    let self_path = dir.join("sc-self");
    script(
        t,
        "script whose interpreter is itself (ELOOP)",
        "sc-self",
        format!("#!{}\n", self_path.display()).as_bytes(),
    );

    // Chains: s1 -> s2 -> ... -> sN -> ELF, i.e. N rewrites.
    for n in [4usize, 5, 6, 7] {
        let mut next = e.clone();
        for i in (1..=n).rev() {
            let p = t.file(
                &format!("chain{n}-s{i}"),
                format!("#!{next} lvl{i}\n").as_bytes(),
            );
            next = p.display().to_string();
        }
        t.case(F, format!("{n} nested scripts"), next.as_bytes());
    }

    let ok = dir.join("sc-ok");
    let c = t.make(F, "NULL argv to a script", bytes(&ok)).argv(None);
    t.cases.push(c);
    let c = t.make(F, "NULL argv to an ELF", bytes(&elf)).argv(None);
    t.cases.push(c);
    let c = t
        .make(F, "empty argv to a script", bytes(&ok))
        .argv(Some(vec![]));
    t.cases.push(c);
    let c = t
        .make(F, "script with extra arguments", bytes(&ok))
        .argv(Some(vec![b"zero".to_vec(), b"one".to_vec(), b"".to_vec()]))
        .envp(vec![]);
    t.cases.push(c);
}

/// `bprm_stack_limits()` (§5.1): the byte limit for RLIMIT_STACK `rlim`.
fn arg_limit(rlim: Option<u64>) -> u64 {
    const STK_LIM: u64 = 8 << 20;
    const ARG_MAX: u64 = 131_072;
    (STK_LIM / 4 * 3)
        .min(rlim.unwrap_or(u64::MAX) / 4)
        .max(ARG_MAX)
}

/// What the strings may occupy: the limit less one pointer per argv (at least 1) and envp
/// entry.
fn string_budget(rlim: Option<u64>, argc: usize, envc: usize) -> u64 {
    arg_limit(rlim) - 8 * (argc.max(1) + envc) as u64
}

fn strings_size<'a>(it: impl IntoIterator<Item = &'a Vec<u8>>) -> u64 {
    it.into_iter().map(|s| s.len() as u64 + 1).sum()
}

/// §5.1: MAX_ARG_STRLEN and the total limit, at its exact boundary.
fn e2big_cases(t: &mut Table) {
    const F: &str = "e2big";
    let elf = bytes(&t.file("a-elf", &prog(ET_EXEC, &[]).build()));
    for (name, len) in [
        ("argv string of 131071 bytes", 131_071usize),
        ("argv string of 131072 bytes", 131_072),
    ] {
        let c = t
            .make(F, name, &elf)
            .argv(Some(vec![elf.clone(), vec![b'a'; len]]));
        t.cases.push(c);
    }
    for (name, len) in [
        ("envp string of 131071 bytes", 131_071usize),
        ("envp string of 131072 bytes", 131_072),
    ] {
        let mut env = b"X=".to_vec();
        env.resize(len, b'e');
        let c = t.make(F, name, &elf).envp(vec![env]);
        t.cases.push(c);
    }
    // A 131072-byte execfn (through a path) cannot exist (PATH_MAX), so only argv/envp.

    // The exact total: fill with maximal strings, then one string of the remaining size.
    for (label, rlim, big) in [
        ("8 MiB", Some(8u64 << 20), 15usize),
        ("256 KiB", Some(256 << 10), 0),
        ("unlimited", None, 47),
    ] {
        let envp = vec![b"A=1".to_vec()];
        let mut argv = vec![elf.clone()];
        argv.extend(std::iter::repeat_n(vec![b'b'; 131_071], big));
        let argc = argv.len() + 1;
        let budget = string_budget(rlim, argc, envp.len());
        let used = (elf.len() as u64 + 1) + strings_size(&envp) + strings_size(&argv);
        let l = budget - used - 1;
        assert!(l < 131_072, "{label}: filler {l} too long");
        for (what, n) in [("L", l), ("L+1", l + 1)] {
            let mut a = argv.clone();
            a.push(vec![b'c'; n as usize]);
            let c = t
                .make(
                    F,
                    format!("{label} stack: total at limit, {what} = {n}"),
                    &elf,
                )
                .argv(Some(a))
                .envp(envp.clone())
                .rlimit(rlim);
            t.cases.push(c);
        }
    }
    // Many small strings: the pointer array counts too.
    let rlim = Some(256u64 << 10);
    let budget = string_budget(rlim, 1, 0);
    // Each empty env string costs 8 (pointer) + 1 (NUL); execfn and argv[0] the rest.
    let fixed = 2 * (elf.len() as u64 + 1);
    let n = (budget - fixed) / 9;
    for (what, count) in [("N", n), ("N+1", n + 1)] {
        let c = t
            .make(
                F,
                format!("256 KiB stack: {what} = {count} empty env strings"),
                &elf,
            )
            .envp(vec![Vec::new(); count as usize])
            .rlimit(rlim);
        t.cases.push(c);
    }
    // The script rewrite pushes strings too: a script at the limit.
    let script = t.file(
        "a-script",
        format!("#!{}\n", String::from_utf8_lossy(&elf)).as_bytes(),
    );
    let sp = bytes(&script);
    let budget = string_budget(rlim, 2, 1);
    let used = 2 * (sp.len() as u64 + 1) + 4;
    let l = budget - used - 1;
    for (what, n) in [
        ("L", l),
        ("L-interp", l - elf.len() as u64 - 1),
        ("L-interp+1", l - elf.len() as u64),
    ] {
        let c = t
            .make(
                F,
                format!("256 KiB stack: script with filler {what} = {n}"),
                &sp,
            )
            .argv(Some(vec![sp.clone(), vec![b'd'; n as usize]]))
            .rlimit(rlim);
        t.cases.push(c);
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison.

fn describe(o: &ProbeOutcome) -> String {
    match o {
        ProbeOutcome::Stopped(_) => "runs".to_string(),
        ProbeOutcome::Refused { errno } => format!("refused {}", Errno(*errno).name()),
        ProbeOutcome::Killed { signal } => format!("killed by signal {signal}"),
    }
}

fn probe_once(req: &ProbeRequest, via: &Via) -> Result<ProbeOutcome, String> {
    let r = match via {
        Via::Execve => probe(req),
        Via::At { dirfd, flags } => {
            let dirfd = match dirfd {
                AtFd::Cwd => ProbeDirFd::Cwd,
                AtFd::Raw(n) => ProbeDirFd::Raw(*n),
                AtFd::Open(o, cloexec) => ProbeDirFd::Fd {
                    fd: o.fd.as_fd(),
                    cloexec: *cloexec,
                },
            };
            probe_execveat(
                req,
                &ProbeExecveat {
                    dirfd,
                    flags: *flags,
                },
            )
        }
    };
    r.map_err(|e| format!("probe failed: {e}"))
}

fn probe_retrying(req: &ProbeRequest, via: &Via) -> Result<ProbeOutcome, String> {
    progload_host::probe::retry_busy(|| probe_once(req, via))
}

/// `resolve_dir` of an absolute host path on the plan side.
fn resolve_dir(fs: &TestFs, path: &[u8]) -> Result<DirPath<TestNode>, Errno> {
    let root = DirPath::root(fs.root());
    let creds = progload::profile::Credentials::root();
    progload::resolve::resolve_dir(fs, &creds, &root, path).map_err(|e| e.errno())
}

/// The plan-side request form of `case.via`, or the errno the plan side meets building it
/// (a relative walk from a descriptor that is not a directory: ENOTDIR).
fn executable(case: &Case) -> Result<(Executable<TestNode>, bool), Errno> {
    let (dirfd, flags) = match &case.via {
        Via::Execve => return Ok((Executable::Path(case.path.clone()), false)),
        Via::At { dirfd, flags } => (dirfd, *flags),
    };
    assert_eq!(
        flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW),
        0,
        "{}: a plan request has no other execveat flags",
        case.name
    );
    let no_follow = flags & libc::AT_SYMLINK_NOFOLLOW != 0;
    let path = &case.path;
    if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        let AtFd::Open(o, cloexec) = dirfd else {
            panic!("{}: AT_EMPTY_PATH needs an open descriptor", case.name)
        };
        let (shown, name) = o.shown_and_name();
        return Ok((
            Executable::Fd {
                fd: o.fd.as_raw_fd(),
                node: TestNode::Fd(o.clone()),
                path: shown,
                name,
                cloexec: *cloexec,
            },
            no_follow,
        ));
    }
    if path.first() == Some(&b'/') || path.is_empty() {
        // The descriptor is ignored for an absolute path; an empty one is ENOENT.
        return Ok((Executable::Path(path.clone()), no_follow));
    }
    match dirfd {
        AtFd::Cwd => Ok((Executable::Path(path.clone()), no_follow)),
        AtFd::Raw(_) => panic!("{}: a relative path needs a real descriptor", case.name),
        AtFd::Open(o, cloexec) => Ok((
            Executable::At {
                fd: o.fd.as_raw_fd(),
                dir: o.dir.clone()?,
                path: path.clone(),
                cloexec: *cloexec,
            },
            no_follow,
        )),
    }
}

/// Runs `case` on the kernel and through `plan`; `Ok(kernel outcome)` when they agree,
/// `Err(explanation)` when they do not.
fn check_case(case: &Case, base: &Profile, fs: &TestFs) -> Result<String, String> {
    let req = ProbeRequest {
        path: case.path.clone(),
        argv: case.argv.clone(),
        envp: case.envp.clone(),
        cwd: Some(case.cwd.clone()),
        stack_rlimit: case.rlimit,
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let kernel = probe_retrying(&req, &case.via)?;
    let kdesc = describe(&kernel);

    let mut profile = base.clone();
    profile.personality |= ADDR_NO_RANDOMIZE;
    if let Some(r) = case.rlimit {
        profile.stack_rlimit = r;
    }
    let (exe, no_follow) = match executable(case) {
        Ok(x) => x,
        Err(errno) => {
            // The request cannot even be formed: the kernel must refuse with the same errno.
            return match kernel {
                ProbeOutcome::Refused { errno: k } if k == errno.0 => {
                    Ok(format!("{kdesc} (plan side: no request, {})", errno.name()))
                }
                _ => Err(format!(
                    "kernel {kdesc}, plan side cannot form the request: {}",
                    errno.name()
                )),
            };
        }
    };
    let mut lr = LoadRequest::new(Vec::new(), Vec::new(), case.envp.clone());
    lr.misc_rules = registered_misc_rules().to_vec();
    lr.executable = exe;
    lr.no_follow = no_follow;
    lr.argv = case.argv.clone();
    lr.cwd = Some(
        resolve_dir(fs, &bytes(&case.cwd))
            .map_err(|e| format!("cannot resolve the cwd: {}", e.name()))?,
    );
    let planned = std::panic::catch_unwind(AssertUnwindSafe(|| {
        plan(fs, &profile, &lr, &mut SeededRng::new(0))
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("kernel {kdesc}, plan PANICKED: {msg}")
    })?;

    match (&kernel, &planned) {
        (ProbeOutcome::Stopped(k), Ok(p)) => {
            let diffs = compare(p, k);
            if diffs.is_empty() {
                Ok(kdesc)
            } else {
                let mut s = format!("both run, but the images differ in {} fields:", diffs.len());
                for d in diffs.iter().take(12) {
                    s.push_str(&format!("\n        {d}"));
                }
                Err(s)
            }
        }
        (ProbeOutcome::Refused { errno }, Err(e)) if e.errno().0 == *errno && !e.is_fatal() => {
            Ok(kdesc)
        }
        (ProbeOutcome::Killed { signal }, Err(e)) if *signal == libc::SIGSEGV && e.is_fatal() => {
            Ok(format!("{kdesc} (plan: fatal {})", e.errno().name()))
        }
        (_, Ok(_)) => Err(format!("kernel {kdesc}, plan Ok")),
        (_, Err(e)) => Err(format!(
            "kernel {kdesc}, plan {} {} ({e})",
            if e.is_fatal() { "fatal" } else { "refused" },
            e.errno().name()
        )),
    }
}

#[test]
fn crafted_files_match_the_kernel() {
    if !probe_native_supported() {
        eprintln!("skipped: the kernel probe needs x86_64, aarch64 or riscv64 Linux");
        return;
    }
    let mut t = Table::new();
    elf_header_cases(&mut t);
    interp_cases(&mut t);
    segment_cases(&mut t);
    path_cases(&mut t);
    script_cases(&mut t);
    e2big_cases(&mut t);
    elf32::cases(&mut t);
    mutants::cases(&mut t);
    let fs = TestFs {
        host: HostFs::new("/").expect("host fs"),
    };
    gvisor::cases(&mut t, &fs);
    asterinas::cases(&mut t);
    selftests::cases(&mut t, &fs);

    let profile = host().clone();
    let mut families: Vec<(&str, usize, usize)> = Vec::new();
    let mut failures = Vec::new();
    for case in &t.cases {
        let result = check_case(case, &profile, &fs);
        let (mark, text) = match &result {
            Ok(k) => ("ok  ", k.clone()),
            Err(e) => ("FAIL", e.clone()),
        };
        eprintln!("{mark} [{}] {}: {text}", case.family, case.name);
        match families.iter_mut().find(|f| f.0 == case.family) {
            Some(f) => {
                f.1 += 1;
                f.2 += usize::from(result.is_err());
            }
            None => families.push((case.family, 1, usize::from(result.is_err()))),
        }
        if let Err(e) = result {
            failures.push(format!(
                "[{}] {} ({}): {e}",
                case.family,
                case.name,
                show(&case.path)
            ));
        }
    }
    eprintln!("\nfamily                       cases  mismatches");
    for (f, n, bad) in &families {
        eprintln!("{f:<28} {n:>5}  {bad:>10}");
    }
    eprintln!(
        "{:<28} {:>5}  {:>10}",
        "total",
        t.cases.len(),
        failures.len()
    );
    let excluded: Vec<_> = [
        gvisor::EXCLUDED,
        asterinas::EXCLUDED,
        selftests::EXCLUDED,
        &elf32::excluded(),
    ]
    .concat();
    eprintln!(
        "\ncases not in the table ({} entries; upstream ones that are not a loader question or \
         not expressible as a plan request, and what this kernel does that is not modelled):",
        excluded.len()
    );
    for (family, case, why) in &excluded {
        eprintln!("  [{family}] {case}: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} crafted cases differ between plan and kernel:\n{}",
        failures.len(),
        t.cases.len(),
        failures.join("\n")
    );
}
