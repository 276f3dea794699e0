//! The `plan` target's structured input: a whole exec scenario (filesystem, profile, request)
//! described by an `arbitrary`-derived [`Scenario`], plus raw file blobs.
//!
//! Input framing (so that real binaries can be seeds without going through `arbitrary`):
//!
//! ```text
//! [cfg_len: u16 LE][cfg: cfg_len bytes, decoded as a Scenario][blob]*
//! blob = [len: u32 LE][len bytes]   (the last blob takes whatever remains)
//! ```
//!
//! An empty `cfg` decodes to the default scenario: exec `/bin/prog` with argv `["prog"]`, where
//! `/bin/prog` is blob 0 (or a valid template when there is no blob) and the architecture's
//! `ld.so` path holds blob 1 (or a valid template interpreter). So `[0, 0] ++ len ++ true ++
//! ld.so` plans the real `/usr/bin/true` with its real interpreter.

use arbitrary::{Arbitrary, Unstructured};
use progload::fs::FileKind;
use progload::plan::Executable;
use progload::profile::{
    Credentials, ADDR_COMPAT_LAYOUT, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC,
};
use progload::resolve::{self, DirPath};
use progload::{FileSystem, LoadRequest, MemFs, Profile};

use crate::elf::{self, Edit, Machine, Template};

/// At most this many blobs.
pub const MAX_BLOBS: usize = 4;

/// Splits a framed input into the config bytes and the blobs.
pub fn unframe(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return (&[], Vec::new());
    };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (cfg, mut rest) = rest.split_at(len);
    let mut blobs = Vec::new();
    while !rest.is_empty() && blobs.len() < MAX_BLOBS {
        let Some((n, tail)) = rest.split_first_chunk::<4>() else {
            blobs.push(rest);
            break;
        };
        let n = (u32::from_le_bytes(*n) as usize).min(tail.len());
        let (blob, tail) = tail.split_at(n);
        blobs.push(blob);
        rest = tail;
    }
    (cfg, blobs)
}

/// The inverse of [`unframe`] (for the seed generator).
pub fn frame(cfg: &[u8], blobs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(cfg.len() as u16).to_le_bytes());
    out.extend_from_slice(cfg);
    for b in blobs {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// Names path components are drawn from (collisions make links, loops and `..` interesting).
pub const NAMES: &[&[u8]] = &[
    b"bin",
    b"lib",
    b"lib64",
    b"usr",
    b"prog",
    b"sh",
    b"x",
    b"t.foo",
    b"ld-linux-x86-64.so.2",
    b"ld-linux-aarch64.so.1",
    b"proc",
    b"self",
    b"root",
    b"fd",
    b"3",
    b"a.out",
];

/// One path component.
#[derive(Arbitrary, Clone, Debug)]
pub enum Comp {
    /// One of [`NAMES`].
    Name(u8),
    /// `.`.
    Dot,
    /// `..`.
    DotDot,
    /// `len` copies of a byte (NAME_MAX boundaries at 255/256).
    Long(u16, u8),
    /// Any bytes.
    Raw(Vec<u8>),
}

/// `v` up to its first NUL: what a C string argument holds.
pub fn cstring(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(n) = v.iter().position(|&c| c == 0) {
        v.truncate(n);
    }
    v
}

/// A path.
#[derive(Arbitrary, Clone, Debug)]
pub struct PathSpec {
    /// Relative instead of absolute.
    pub relative: bool,
    /// The components.
    pub comps: Vec<Comp>,
    /// A trailing `/`.
    pub trailing_slash: bool,
    /// Doubled slashes between components.
    pub double_slash: bool,
}

impl PathSpec {
    /// The path's bytes (at most 8 KiB).
    pub fn bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        if !self.relative {
            p.push(b'/');
        }
        for (i, c) in self.comps.iter().enumerate() {
            if i > 0 {
                p.push(b'/');
                if self.double_slash {
                    p.push(b'/');
                }
            }
            match c {
                Comp::Name(n) => p.extend_from_slice(NAMES[usize::from(*n) % NAMES.len()]),
                Comp::Dot => p.push(b'.'),
                Comp::DotDot => p.extend_from_slice(b".."),
                Comp::Long(n, b) => p.extend(std::iter::repeat_n(*b, usize::from(*n % 600))),
                Comp::Raw(r) => p.extend_from_slice(r),
            }
            if p.len() > 8192 {
                break;
            }
        }
        if self.trailing_slash {
            p.push(b'/');
        }
        // A path reaches the kernel as a C string.
        cstring(p)
    }
}

/// What a regular file holds.
#[derive(Arbitrary, Clone, Debug)]
pub enum Content {
    /// Blob `n` of the input (a template when there is no such blob).
    Blob(u8),
    /// A valid template ELF, then edits.
    Elf {
        /// The template.
        template: Template,
        /// `PT_INTERP` path instead of the architecture's `ld.so`.
        interp: Option<PathSpec>,
        /// The other architecture's `e_machine`.
        foreign: bool,
        /// Edits of the built file.
        edits: Vec<Edit>,
    },
    /// A `#!` script.
    Script {
        /// The interpreter.
        interp: PathSpec,
        /// The optional argument.
        arg: Option<Vec<u8>>,
        /// Blanks between the parts: 0 one space, 1 tabs, 2 many spaces, 3 none.
        blanks: u8,
        /// End of line: 0 `\n`, 1 `\r\n`, 2 none, 3 NUL.
        eol: u8,
        /// Pad the line to this length with `x` (the 256-byte buffer boundary).
        pad_to: Option<u16>,
    },
    /// Bytes as given.
    Raw(Vec<u8>),
}

/// Extra metadata of an entry.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Meta {
    /// Owner: 0 root, 1 the caller (uid 1000), 2 another user.
    pub owner: u8,
    /// The mount is noexec.
    pub noexec: bool,
    /// The mount is nosuid.
    pub nosuid: bool,
    /// The file is open for writing.
    pub write_busy: bool,
    /// THP-aligned filesystem.
    pub thp: bool,
}

/// One filesystem entry added after the defaults (later entries replace earlier ones).
#[derive(Arbitrary, Clone, Debug)]
pub enum Entry {
    /// A regular file.
    File(PathSpec, u16, Content, Meta),
    /// A directory.
    Dir(PathSpec, u16, Meta),
    /// A symbolic link.
    Symlink(PathSpec, PathSpec),
    /// A symlink with raw target bytes.
    SymlinkRaw(PathSpec, Vec<u8>),
    /// A device, FIFO or socket.
    Special(PathSpec, u8, u16),
}

/// An argv/envp string.
#[derive(Arbitrary, Clone, Debug)]
pub enum Arg {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` copies of a byte (up to 300 KiB: over MAX_ARG_STRLEN), `repeat` times.
    Fill(u32, u8, u8),
}

/// A string vector.
#[derive(Arbitrary, Clone, Debug)]
pub enum Args {
    /// The default (`["prog"]` for argv, `["A=1"]` for envp).
    Default,
    /// A NULL pointer (argv) / empty (envp).
    Null,
    /// These strings.
    List(Vec<Arg>),
}

/// Most total bytes of generated argv+envp.
pub const MAX_ARG_BYTES: usize = 8 << 20;

impl Args {
    fn build(&self, default: &[u8], budget: &mut usize) -> Option<Vec<Vec<u8>>> {
        match self {
            Args::Default => Some(vec![default.to_vec()]),
            Args::Null => None,
            Args::List(l) => {
                let mut out = Vec::new();
                for a in l {
                    match a {
                        Arg::Bytes(b) => {
                            *budget = budget.saturating_sub(b.len());
                            out.push(cstring(b.clone()));
                        }
                        Arg::Fill(len, byte, repeat) => {
                            let len = (*len as usize) % (300 << 10);
                            for _ in 0..=*repeat % 64 {
                                if len > *budget {
                                    break;
                                }
                                *budget -= len;
                                // A C string: a NUL fill byte gives an empty string.
                                out.push(if *byte == 0 {
                                    Vec::new()
                                } else {
                                    vec![*byte; len]
                                });
                            }
                        }
                    }
                }
                Some(out)
            }
        }
    }
}

/// RLIMIT_STACK.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Rlimit {
    /// The profile's (8 MiB).
    Default,
    /// Unlimited.
    Unlimited,
    /// One of a few boundaries.
    Interesting(u8),
    /// Any value.
    Raw(u64),
}

const RLIMITS: &[u64] = &[
    0,
    1,
    4096,
    100 << 10,
    128 << 10,
    512 << 10,
    (512 << 10) + 4096,
    1 << 20,
    8 << 20,
    24 << 20,
    1 << 30,
    1 << 40,
    u64::MAX,
];

/// What to exec.
#[derive(Arbitrary, Clone, Debug)]
pub enum Exec {
    /// `/bin/prog`.
    Default,
    /// `execve(path)`.
    Path(PathSpec),
    /// `execveat(fd, "", AT_EMPTY_PATH)` on node `node` of the filesystem.
    Fd {
        /// The node (MemFs index; may not exist).
        node: u8,
        /// Its path as given.
        path: PathSpec,
        /// close-on-exec.
        cloexec: bool,
        /// The descriptor number.
        fd: i8,
    },
    /// `execveat(dirfd, path, 0)` with the directory resolved from `dir`.
    At {
        /// The directory.
        dir: PathSpec,
        /// The path.
        path: PathSpec,
        /// close-on-exec.
        cloexec: bool,
        /// The descriptor number.
        fd: i8,
    },
}

/// A binfmt_misc rule.
#[derive(Arbitrary, Clone, Debug)]
pub enum RuleSpec {
    /// Magic rule built from parts.
    Magic {
        /// Offset.
        offset: u8,
        /// Magic bytes (escaped as `\xHH`).
        magic: Vec<u8>,
        /// Mask bytes.
        mask: Option<Vec<u8>>,
        /// Interpreter.
        interp: PathSpec,
        /// Flags P, O, C, F as bits.
        flags: u8,
        /// Disabled.
        disabled: bool,
    },
    /// Extension rule.
    Ext {
        /// Extension.
        ext: Comp,
        /// Interpreter.
        interp: PathSpec,
        /// Flags.
        flags: u8,
    },
    /// A raw registration string.
    Raw(Vec<u8>),
}

impl RuleSpec {
    fn register_string(&self) -> Vec<u8> {
        let flags = |f: u8| {
            let mut s = Vec::new();
            for (bit, c) in [(1, b'P'), (2, b'O'), (4, b'C'), (8, b'F')] {
                if f & bit != 0 {
                    s.push(c);
                }
            }
            s
        };
        let esc = |b: &[u8]| {
            let mut s = Vec::new();
            for &c in b {
                s.extend_from_slice(format!("\\x{c:02x}").as_bytes());
            }
            s
        };
        match self {
            RuleSpec::Magic {
                offset,
                magic,
                mask,
                interp,
                flags: f,
                ..
            } => {
                let mut s = b":fz:M:".to_vec();
                s.extend_from_slice(offset.to_string().as_bytes());
                s.push(b':');
                s.extend(esc(magic));
                s.push(b':');
                if let Some(m) = mask {
                    s.extend(esc(m));
                }
                s.push(b':');
                s.extend(interp.bytes());
                s.push(b':');
                s.extend(flags(*f));
                s
            }
            RuleSpec::Ext {
                ext,
                interp,
                flags: f,
            } => {
                let mut s = b":fz:E::".to_vec();
                let p = PathSpec {
                    relative: true,
                    comps: vec![ext.clone()],
                    trailing_slash: false,
                    double_slash: false,
                };
                s.extend(p.bytes());
                s.extend_from_slice(b"::");
                s.extend(interp.bytes());
                s.push(b':');
                s.extend(flags(*f));
                s
            }
            RuleSpec::Raw(r) => r.clone(),
        }
    }
}

/// The whole scenario.
#[derive(Arbitrary, Clone, Debug)]
pub struct Scenario {
    /// aarch64 instead of x86_64.
    pub aarch64: bool,
    /// `/bin/prog`.
    pub main: Content,
    /// The architecture's `ld.so` (default: blob 1 or a template interpreter).
    pub ld_so: Option<Content>,
    /// More entries.
    pub entries: Vec<Entry>,
    /// What to exec.
    pub exec: Exec,
    /// argv.
    pub argv: Args,
    /// envp.
    pub envp: Args,
    /// The working directory (resolved; ignored when it does not resolve).
    pub cwd: Option<PathSpec>,
    /// AT_SYMLINK_NOFOLLOW.
    pub no_follow: bool,
    /// RLIMIT_STACK.
    pub rlimit: Rlimit,
    /// Personality bits: ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT,
    /// READ_IMPLIES_EXEC, and "randomize off" (bit 4 inverted: randomization is on when set).
    pub personality: u8,
    /// Caller: 0 root, 1 uid 1000 in group 1000, 2 uid 1000 with no_new_privs.
    pub caller: u8,
    /// Profile tweaks: legacy layout, randomize_va_space, mmap_min_addr, no vDSO,
    /// no CAP_SYS_RAWIO.
    pub tweaks: u8,
    /// binfmt_misc rules.
    pub rules: Vec<RuleSpec>,
    /// The RNG seed.
    pub seed: u64,
    /// AT_RANDOM bytes.
    pub random: Option<[u8; 16]>,
    /// Extra auxv pairs.
    pub extra_auxv: Vec<(u64, u64)>,
    /// The AT_EXECFD number.
    pub execfd: u8,
    /// The kernel release planned for: 6.18, 6.12, 6.1 or 5.10 (the presets' releases), so
    /// that every version rule is exercised. Last, so that the seeds (which end before it)
    /// decode as 6.18.
    pub kernel: u8,
}

/// Everything `plan()` takes.
pub struct Built {
    /// The filesystem.
    pub fs: MemFs,
    /// The profile.
    pub profile: Profile,
    /// The request.
    pub req: LoadRequest<usize>,
    /// The seed.
    pub seed: u64,
    /// The executable was given as an open file (its path is the caller's, not resolved).
    pub by_fd: bool,
}

fn machine(aarch64: bool) -> Machine {
    if aarch64 {
        Machine::Aarch64
    } else {
        Machine::X86_64
    }
}

fn default_template(kind: elf::Kind) -> Template {
    Template {
        kind,
        big_align: false,
        bss: 0x180,
        gnu_stack: 1,
        property: None,
        extra_headers: true,
    }
}

fn content_bytes(c: &Content, m: Machine, blobs: &[&[u8]], fallback: elf::Kind) -> Vec<u8> {
    match c {
        Content::Blob(n) => match blobs.get(usize::from(*n)) {
            Some(b) if !b.is_empty() => b.to_vec(),
            _ => elf::build(&default_template(fallback), m, m.ld_so()),
        },
        Content::Elf {
            template,
            interp,
            foreign,
            edits,
        } => {
            let m2 = if *foreign {
                machine(m == Machine::X86_64)
            } else {
                m
            };
            let ip = interp
                .as_ref()
                .map_or_else(|| m.ld_so().to_vec(), PathSpec::bytes);
            let mut f = elf::build(template, m2, &ip);
            elf::apply(&mut f, edits);
            f
        }
        Content::Script {
            interp,
            arg,
            blanks,
            eol,
            pad_to,
        } => {
            let blank: &[u8] = match blanks % 4 {
                0 => b" ",
                1 => b"\t\t",
                2 => b"    ",
                _ => b"",
            };
            let mut s = b"#!".to_vec();
            s.extend_from_slice(blank);
            s.extend(interp.bytes());
            if let Some(a) = arg {
                s.extend_from_slice(blank);
                s.extend_from_slice(a);
            }
            if let Some(n) = pad_to {
                let n = usize::from(*n) % 600;
                if s.len() < n {
                    s.resize(n, b'x');
                }
            }
            match eol % 4 {
                0 => s.push(b'\n'),
                1 => s.extend_from_slice(b"\r\n"),
                2 => {}
                _ => s.push(0),
            }
            s.extend_from_slice(b"exit 0\n");
            s
        }
        Content::Raw(r) => r.clone(),
    }
}

fn set_meta(md: &mut progload::Metadata, meta: &Meta) {
    let (uid, gid) = match meta.owner % 3 {
        0 => (0, 0),
        1 => (1000, 1000),
        _ => (1001, 1001),
    };
    md.uid = uid;
    md.gid = gid;
    md.noexec = meta.noexec;
    md.nosuid = meta.nosuid;
    md.write_busy = meta.write_busy;
    md.thp_aligned = meta.thp;
}

impl Scenario {
    /// Decodes the config part of a framed input (never fails: missing data gives defaults).
    pub fn decode(cfg: &[u8]) -> Scenario {
        let mut u = Unstructured::new(cfg);
        Scenario::arbitrary(&mut u).unwrap_or_else(|_| {
            Scenario::arbitrary(&mut Unstructured::new(&[])).expect("empty input decodes")
        })
    }

    /// Builds the filesystem, profile and request.
    pub fn build(&self, blobs: &[&[u8]]) -> Built {
        let m = machine(self.aarch64);
        let release = ["6.18", "6.12", "6.1", "5.10"][usize::from(self.kernel % 4)];
        let arch = if self.aarch64 { "aarch64" } else { "x86_64" };
        let mut profile =
            Profile::preset(&format!("{arch}-{release}")).expect("every preset name exists");
        // The next bit of the release gives an x86_64 profile a compat part (a placeholder
        // vdso32), so that i386 files are planned through compat_binfmt_elf.
        if !self.aarch64 && self.kernel & 4 != 0 {
            let page = profile.page_size;
            profile.compat = Some(progload::profile::Compat {
                mmap_rnd_bits: 8,
                hwcap: profile.hwcap,
                hwcap2: profile.hwcap2,
                minsigstksz: profile.minsigstksz,
                vdso: progload::profile::Vdso::new(
                    vec![progload::profile::VdsoPart {
                        name: "[vvar]".into(),
                        pages: 4,
                        prot: progload::Prot::READ,
                    }],
                    std::sync::Arc::from(progload::vdso::placeholder(
                        progload::arch::Arch::I386,
                        1,
                        page,
                    )),
                    progload::arch::Arch::I386,
                    page,
                )
                .ok(),
                vdso_entry: 0x400,
            });
        }

        // Caller.
        let caller = self.caller % 3;
        if caller != 0 {
            profile.credentials = Credentials {
                uid: 1000,
                euid: 1000,
                gid: 1000,
                egid: 1000,
                groups: vec![1000, 27],
                no_new_privs: caller == 2,
            };
        }
        // Personality and profile tweaks.
        let p = self.personality;
        profile.personality = 0;
        for (bit, flag) in [
            (1, ADDR_NO_RANDOMIZE),
            (2, MMAP_PAGE_ZERO),
            (4, ADDR_COMPAT_LAYOUT),
            (8, READ_IMPLIES_EXEC),
        ] {
            if p & bit != 0 {
                profile.personality |= flag;
            }
        }
        if p & 0x10 == 0 {
            // Mostly deterministic layouts: randomization only when asked for.
            profile.personality |= ADDR_NO_RANDOMIZE;
        }
        let t = self.tweaks;
        profile.legacy_va_layout = t & 1 != 0;
        profile.randomize_va_space = (t >> 1) % 3;
        profile.mmap_min_addr = [4096, 65536, 0, 4096][usize::from((t >> 3) & 3)];
        if t & 0x20 != 0 {
            profile.vdso = None;
        }
        profile.cap_sys_rawio = t & 0x40 == 0;
        profile.stack_rlimit = match self.rlimit {
            Rlimit::Default => profile.stack_rlimit,
            Rlimit::Unlimited => None,
            Rlimit::Interesting(i) => Some(RLIMITS[usize::from(i) % RLIMITS.len()]),
            Rlimit::Raw(v) => Some(v),
        };

        // Filesystem.
        let mut fs = MemFs::new();
        let main = content_bytes(&self.main, m, blobs, elf::Kind::DynInterp);
        fs.add_file(b"/bin/prog", 0o755, main);
        let ld = match &self.ld_so {
            None => content_bytes(&Content::Blob(1), m, blobs, elf::Kind::Interp),
            Some(c) => content_bytes(c, m, blobs, elf::Kind::Interp),
        };
        fs.add_file(m.ld_so(), 0o755, ld);
        let sh = elf::build(&default_template(elf::Kind::StaticExec), m, b"");
        fs.add_file(b"/bin/sh", 0o755, sh);
        fs.add_dir(b"/tmp", 0o1777);
        for e in self.entries.iter().take(32) {
            match e {
                Entry::File(path, mode, c, meta) => {
                    let data = content_bytes(c, m, blobs, elf::Kind::StaticPie);
                    let md = fs.add_file(&path.bytes(), u32::from(*mode) & 0o7777, data);
                    set_meta(md, meta);
                }
                Entry::Dir(path, mode, meta) => {
                    let md = fs.add_dir(&path.bytes(), u32::from(*mode) & 0o7777);
                    set_meta(md, meta);
                }
                Entry::Symlink(path, target) => {
                    fs.add_symlink(&path.bytes(), &target.bytes());
                }
                Entry::SymlinkRaw(path, target) => {
                    fs.add_symlink(&path.bytes(), &cstring(target.clone()));
                }
                Entry::Special(path, kind, mode) => {
                    let kind = match kind % 4 {
                        0 => FileKind::CharDevice,
                        1 => FileKind::BlockDevice,
                        2 => FileKind::Fifo,
                        _ => FileKind::Socket,
                    };
                    fs.add_special(&path.bytes(), kind, u32::from(*mode) & 0o7777);
                }
            }
        }

        // Request.
        let mut budget = MAX_ARG_BYTES;
        let argv = self.argv.build(b"prog", &mut budget);
        let envp = self.envp.build(b"A=1", &mut budget).unwrap_or_default();
        let root = DirPath::root(fs.root());
        let creds = profile.credentials.clone();
        let resolve_dir = |p: &PathSpec| resolve::resolve_dir(&fs, &creds, &root, &p.bytes()).ok();
        let cwd = self.cwd.as_ref().and_then(resolve_dir);
        let mut by_fd = false;
        let executable = match &self.exec {
            Exec::Default => Executable::Path(b"/bin/prog".to_vec()),
            Exec::Path(p) => Executable::Path(p.bytes()),
            Exec::Fd {
                node,
                path,
                cloexec,
                fd,
            } => {
                by_fd = true;
                let path = path.bytes();
                let name = path.rsplit(|&c| c == b'/').next().unwrap_or(&[]).to_vec();
                Executable::Fd {
                    fd: i32::from(*fd),
                    node: usize::from(*node),
                    path,
                    name,
                    cloexec: *cloexec,
                }
            }
            Exec::At {
                dir,
                path,
                cloexec,
                fd,
            } => match resolve_dir(dir) {
                Some(d) => Executable::At {
                    fd: i32::from(*fd),
                    dir: d,
                    path: path.bytes(),
                    cloexec: *cloexec,
                },
                None => Executable::Path(path.bytes()),
            },
        };
        let mut rules = Vec::new();
        for r in self.rules.iter().take(8) {
            if let Ok(mut rule) = progload::binfmt::misc::Rule::parse(&r.register_string()) {
                if let RuleSpec::Magic { disabled: true, .. } = r {
                    rule.enabled = false;
                }
                rules.push(rule);
            }
        }
        let req = LoadRequest {
            executable,
            argv,
            envp,
            cwd,
            no_follow: self.no_follow,
            misc_rules: rules,
            random_bytes: self.random,
            extra_auxv: self.extra_auxv.iter().take(8).copied().collect(),
            execfd: u64::from(self.execfd),
        };
        Built {
            fs,
            profile,
            req,
            seed: self.seed,
            by_fd,
        }
    }
}
