//! gVisor's exec tests (reference `gvisor-loader.md` §6.1 `exec_binary.cc`, §6.2 `exec.cc`)
//! and the cases the reference derives from gVisor's loader code (§8.1), rebuilt here the way
//! gVisor builds them. Each case is named after its upstream test.

use super::*;
use progload_testkit::elfbuild::ELFCLASS32;

const FB: &str = "gvisor-exec-binary";
const FE: &str = "gvisor-exec";
const FD: &str = "gvisor-derived";

/// `EM_PPC64`.
const EM_PPC64: u16 = 21;
/// `AT_EMPTY_PATH`.
const EMPTY: i32 = libc::AT_EMPTY_PATH;
/// `AT_SYMLINK_NOFOLLOW`.
const NOFOLLOW: i32 = libc::AT_SYMLINK_NOFOLLOW;

/// The upstream cases not in the table, with the reason.
pub(super) const EXCLUDED: &[(&str, &str, &str)] = &[
    (
        FE,
        "ExecveatTest.InvalidFlags (flags 0xFFFF → EINVAL)",
        "a LoadRequest has no raw flags word: it models AT_SYMLINK_NOFOLLOW (no_follow) and \
         AT_EMPTY_PATH (Executable::Fd); rejecting other bits is the syscall layer's job",
    ),
    (
        FE,
        "ExecveatTest.UnshareFiles",
        "CLONE_FILES/descriptor-table semantics, not the loader",
    ),
    (
        FE,
        "ExecTest.WithSiblingThread / FromSiblingThread",
        "de_thread() (other threads killed, the leader's pid taken over), not the loader",
    ),
    (
        FE,
        "ExecStateTest.HandlerReset / IgnorePreserved / SignalMask / ItimerPreserved",
        "signal and timer state across exec, not the loader",
    ),
    (
        FE,
        "ExecTest.CloexecNormalFile / CloexecEventfd",
        "close-on-exec of the caller's descriptors, not the loader",
    ),
    (
        FE,
        "GetpriorityTest.ExecveMaintainsPriority, ExecTest.Setpgid",
        "scheduling and process-group state, not the loader",
    ),
    (
        FE,
        "ExecTest.SUIDExecGainsUID / SGIDExecGainsGID / ...DoesntGainUID* (5 tests)",
        "a traced exec never gains privileges (LSM_UNSAFE_PTRACE), so the probe cannot \
         observe a set-id exec; set-id files are compared by the whole-machine sweep \
         (crates/progload-cli/tests/check.rs) in everything the kernel does not randomize",
    ),
    (
        FE,
        "ExecTest.ReadProcMemAfterExecFromChild",
        "/proc/PID/mem access rules after exec, not the loader",
    ),
    (
        FE,
        "ProcSelfExe.ChangesAcrossExecve",
        "not a separate case: /proc/PID/exe is compared in every case that runs",
    ),
    (
        FD,
        "chmod 0111 (exec only), unprivileged caller → EACCES",
        "the probe execs with the test's own credentials (root); the root variant is \
         ElfTest.NoRead",
    ),
    (
        FD,
        "script with 6 / 5 levels of #!, execveat cloexec descriptor on a script, chmod 0644",
        "the same exec as ElfTest/InterpreterScriptTest.MaxRecursion, \
         ExecveatTest.InterpreterScriptWithCloexec*, ElfTest.NoExecute (run there)",
    ),
];

/// gVisor's `kPtraceCode` is 65 bytes on amd64; only its length shapes the image (the probe
/// stops before the first instruction), so it is `exit(0)` padded to 65 bytes here (with `nop`s
/// on x86_64), whatever the architecture.
fn ptrace_code() -> Vec<u8> {
    let mut c = ARCH.exit0().to_vec();
    c.resize(65, ARCH.code_pad());
    c
}

/// A phdr with only the fields gVisor's fixtures set (p_align and p_paddr stay 0).
fn gph(p_type: u32, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> ProgramHeader {
    ProgramHeader {
        p_type,
        p_flags: flags,
        p_offset: offset,
        p_vaddr: vaddr,
        p_filesz: filesz,
        p_memsz: memsz,
        ..ProgramHeader::default()
    }
}

/// gVisor's `ElfBinary<64>`: the header, the phdrs right after it, then `data`.
#[derive(Clone)]
struct Gv {
    b: ElfBuilder,
    data: Vec<u8>,
}

impl Gv {
    /// `StandardElf()`: PT_GNU_STACK RW, then a R|X PT_LOAD of the code at 0x40000.
    fn standard() -> Gv {
        let code = ptrace_code();
        let mut b = native(ET_EXEC);
        b.header.e_entry = 0x40000;
        b.phdr(gph(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0));
        b.phdr(gph(
            PT_LOAD,
            PF_R | PF_X,
            0,
            0x40000,
            code.len() as u64,
            code.len() as u64,
        ));
        Gv { b, data: code }
    }

    fn offset(&self) -> u64 {
        64 + 56 * self.b.phdrs.len() as u64
    }

    /// `UpdateOffsets()`: every phdr's offset and address, and the entry, move past the
    /// header and table; e_phnum is the table's length.
    fn update_offsets(&mut self) -> &mut Self {
        let off = self.offset();
        self.b.header.e_entry += off;
        self.b.header.e_phnum = None;
        for p in &mut self.b.phdrs {
            p.p_offset = p.p_offset.wrapping_add(off);
            p.p_vaddr = p.p_vaddr.wrapping_add(off);
        }
        self
    }

    /// `AddInterpreter(bytes)`: append to `data` and insert a PT_INTERP at the front
    /// pointing at them (offset relative to `data`, fixed by a later `update_offsets`).
    fn add_interpreter(&mut self, bytes: &[u8]) -> &mut Self {
        let at = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        let len = bytes.len() as u64;
        self.b.phdrs.insert(0, gph(PT_INTERP, 0, at, 0, len, len));
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut b = self.b.clone();
        b.payloads.clear();
        let off = 64 + 56 * b.phdrs.len() as u64;
        b.payload(off, &self.data);
        b.min_len(off + self.data.len() as u64);
        b.build()
    }

    fn text(&mut self) -> &mut ProgramHeader {
        let i = self
            .b
            .phdrs
            .iter()
            .position(|p| p.p_type == PT_LOAD)
            .unwrap();
        &mut self.b.phdrs[i]
    }
}

/// The interpreter of `ElfTest.ELFInterpreter`: an ET_DYN StandardElf whose text segment is
/// rewritten to cover the headers, R|W|X.
fn gv_interp() -> Gv {
    let mut i = Gv::standard();
    i.b.header.e_type = ET_DYN;
    i.b.header.e_entry = 0;
    i.update_offsets();
    let len = 65 + 0xb0;
    *i.text() = gph(PT_LOAD, PF_R | PF_W | PF_X, 0, 0, len, len);
    i
}

/// An exec with an empty environment, as gVisor's `ForkAndExec(path, {path}, {})`.
fn gcase(t: &mut Table, family: &'static str, name: &str, path: impl AsRef<[u8]>) {
    let c = t.make(family, name, path).envp(vec![]);
    t.cases.push(c);
}

fn gfile(t: &mut Table, file: &str, g: &Gv) -> PathBuf {
    t.file(file, &g.build())
}

fn exec_binary(t: &mut Table) {
    let dir = t.dir().join("gv");
    std::fs::create_dir(&dir).unwrap();
    let f = |name: &str| format!("gv/{name}");

    let mut g = Gv::standard();
    g.update_offsets();
    let std_path = gfile(t, &f("standard"), &g);
    gcase(t, FB, "ElfTest.Execute", bytes(&std_path));

    let mut g = Gv::standard();
    g.data.clear();
    g.update_offsets();
    let p = gfile(t, &f("missing-text"), &g);
    gcase(t, FB, "ElfTest.MissingText (text past EOF)", bytes(&p));

    for (name, file, flags) in [
        ("ElfTest.DataSegment", "data-segment", PF_R | PF_W),
        (
            "ElfTest.ExtraMemPages (R|W|X data)",
            "extra-mem",
            PF_R | PF_W | PF_X,
        ),
    ] {
        let mut g = Gv::standard();
        g.data.resize(6144, 0);
        g.b.phdr(gph(PT_LOAD, flags, 4096, 0x41000, 2048, 6144));
        g.update_offsets();
        let p = gfile(t, &f(file), &g);
        gcase(t, FB, name, bytes(&p));
    }

    let mut g = Gv::standard();
    g.b.phdr(gph(PT_LOAD, PF_R, 0, 0x41000, 0, 4096));
    g.update_offsets();
    g.b.phdrs[2].p_vaddr = 0x41000;
    let p = gfile(t, &f("anon-only"), &g);
    gcase(t, FB, "ElfTest.AnonOnlySegment", bytes(&p));

    let mut g = Gv::standard();
    g.text().p_offset += 1;
    g.update_offsets();
    let p = gfile(t, &f("unaligned-offset"), &g);
    gcase(t, FB, "ElfTest.UnalignedOffset", bytes(&p));

    let mut g = Gv::standard();
    let mut dup = *g.text();
    dup.p_flags = PF_R | PF_W | PF_X;
    g.b.phdr(dup);
    g.update_offsets();
    let p = gfile(t, &f("overlapping"), &g);
    gcase(t, FB, "ElfTest.DirectlyOverlappingSegments", bytes(&p));

    let mut g = Gv::standard();
    g.b.phdr(gph(PT_LOAD, PF_R | PF_X, 0, 0x20000, 65, 65));
    g.update_offsets();
    let p = gfile(t, &f("out-of-order"), &g);
    gcase(t, FB, "ElfTest.OutOfOrderSegments", bytes(&p));

    let mut g = Gv::standard();
    g.update_offsets();
    let p = t.file(&f("phoff-oob"), &with_phoff(&g.b_with_data(), 0x10_0000));
    gcase(t, FB, "ElfTest.OutOfBoundsPhdrs", bytes(&p));

    let mut g = Gv::standard();
    g.data.clear();
    g.update_offsets();
    g.b.header.e_phnum = Some(3);
    let p = gfile(t, &f("missing-phdr"), &g);
    gcase(t, FB, "ElfTest.MissingPhdr", bytes(&p));

    let p = t.file(&f("missing-header"), b"\x7fELF");
    gcase(t, FB, "ElfTest.MissingHeader", bytes(&p));

    // PIE: the text segment rewritten to start at 0 and cover the headers.
    let mut g = Gv::standard();
    g.b.header.e_type = ET_DYN;
    g.data.resize(6144, 0);
    g.b.header.e_entry = 0;
    g.b.phdr(gph(PT_LOAD, PF_R | PF_W, 4096, 0x20000, 2048, 6144));
    g.update_offsets();
    let len = 65 + 0xe8;
    *g.text() = gph(PT_LOAD, PF_R | PF_X, 0, 0, len, len);
    let p = gfile(t, &f("pie"), &g);
    gcase(t, FB, "ElfTest.PIE", bytes(&p));

    let mut g = Gv::standard();
    g.b.header.e_type = ET_DYN;
    g.data.resize(6144, 0);
    g.b.phdr(gph(PT_LOAD, PF_R | PF_W, 4096, 0x60000, 2048, 6144));
    g.update_offsets();
    let p = gfile(t, &f("pie-nonzero"), &g);
    gcase(t, FB, "ElfTest.PIENonZeroStart", bytes(&p));

    let mut g = Gv::standard();
    g.b.header.e_type = ET_DYN;
    g.data.resize(6144, 0);
    g.b.phdr(gph(PT_LOAD, PF_R | PF_W, 4096, 0x20000, 2048, 6144));
    g.update_offsets();
    let p = gfile(t, &f("pie-out-of-order"), &g);
    gcase(t, FB, "ElfTest.PIEOutOfOrderSegments", bytes(&p));

    let mut g = Gv::standard();
    g.b.header.e_type = ET_DYN;
    let memsz = g.text().p_memsz;
    g.text().p_vaddr = 0xffff_ffff_ffff_f000 - memsz;
    g.update_offsets();
    let p = gfile(t, &f("pie-overflow"), &g);
    gcase(t, FB, "ElfTest.PIEOverflow", bytes(&p));

    // Interpreters.
    let interp = gfile(t, &f("interp"), &gv_interp());
    let mut g = Gv::standard();
    let at = g.data.len() as u64;
    let name = nul(bytes(&interp));
    g.data.extend_from_slice(&name);
    let len = name.len() as u64;
    g.b.phdr(gph(PT_INTERP, 0, at, 0, len, len));
    g.update_offsets();
    let p = gfile(t, &f("with-interp"), &g);
    gcase(t, FB, "ElfTest.ELFInterpreter (PT_INTERP last)", bytes(&p));

    let mut si = Gv::standard();
    si.text().p_flags = PF_R | PF_W | PF_X;
    si.update_offsets();
    let static_interp = gfile(t, &f("static-interp"), &si);
    for (i, (label, suffix)) in [
        ("\\0", &b"\0"[..]),
        ("\\0b\\0", &b"\0b\0"[..]),
        ("\\0b", &b"\0b"[..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut g = Gv::standard();
        let mut seg = bytes(&static_interp);
        seg.extend_from_slice(suffix);
        g.add_interpreter(&seg);
        g.update_offsets();
        let p = gfile(t, &f(&format!("static-interp-{i}")), &g);
        gcase(
            t,
            FB,
            &format!("ElfInterpreterStaticTest/{i} (ET_EXEC interpreter over the binary, path + \"{label}\")"),
            bytes(&p),
        );
    }

    for (i, (label, seg)) in [
        ("\"/f/b\\0\"", &b"/f/b\0"[..]),
        ("\"/f/b\"", &b"/f/b"[..]),
        ("\"\\0\"", &b"\0"[..]),
        ("\"\\0\\0\"", &b"\0\0"[..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut g = Gv::standard();
        g.add_interpreter(seg);
        g.update_offsets();
        let p = gfile(t, &f(&format!("bad-interp-{i}")), &g);
        gcase(
            t,
            FB,
            &format!("ElfInterpreterBadPathTest/{i} ({label})"),
            bytes(&p),
        );
    }

    let mut g = Gv::standard();
    g.add_interpreter(b"gv/interp\0");
    g.update_offsets();
    let p = gfile(t, &f("relative-interp"), &g);
    gcase(t, FB, "ElfTest.ELFInterpreterRelative", bytes(&p));

    let mut wi = gv_interp();
    wi.b.header.e_machine = EM_PPC64;
    let wrong = gfile(t, &f("interp-ppc64"), &wi);
    let mut g = Gv::standard();
    g.add_interpreter(&nul(bytes(&wrong)));
    g.update_offsets();
    let p = gfile(t, &f("wrong-arch"), &g);
    gcase(
        t,
        FB,
        "ElfTest.ELFInterpreterWrongArch (EM_PPC64)",
        bytes(&p),
    );

    let mut g = Gv::standard();
    g.update_offsets();
    let p = t.file_mode(&f("no-execute"), &g.build(), 0o644);
    gcase(t, FB, "ElfTest.NoExecute (0644)", bytes(&p));
    let p = t.file_mode(&f("no-read"), &g.build(), 0o111);
    gcase(t, FB, "ElfTest.NoRead (0111, root)", bytes(&p));

    let ni = t.file_mode(&f("interp-noexec"), &gv_interp().build(), 0o644);
    gcase(
        t,
        FB,
        "ElfTest.ElfInterpreterNoExecute (execs the interpreter)",
        bytes(&ni),
    );
    let mut g = Gv::standard();
    g.add_interpreter(&nul(bytes(&ni)));
    g.update_offsets();
    let p = gfile(t, &f("to-noexec-interp"), &g);
    gcase(
        t,
        FB,
        "ElfTest.ElfInterpreterNoExecute, as meant: PT_INTERP to a 0644 file",
        bytes(&p),
    );

    // InterpreterScriptTest: the binary is StandardElf.
    let bin = std_path.display().to_string();
    let script =
        |t: &mut Table, file: &str, body: &[u8], mode: u32| t.file_mode(&f(file), body, mode);
    let p = script(t, "script", format!("#!{bin}").as_bytes(), 0o755);
    gcase(
        t,
        FB,
        "InterpreterScriptTest.Execute (no newline)",
        bytes(&p),
    );
    let p = script(t, "script-ws", format!("#! \t  \t{bin}").as_bytes(), 0o755);
    gcase(t, FB, "InterpreterScriptTest.Whitespace", bytes(&p));
    let p = script(t, "script-noexec", format!("#!{bin}").as_bytes(), 0o644);
    gcase(
        t,
        FB,
        "InterpreterScriptTest.InterpreterScriptNoExecute",
        bytes(&p),
    );
    let nb = t.file_mode(&f("bin-noexec"), &g_standard_bytes(), 0o644);
    let p = script(
        t,
        "script-bin-noexec",
        format!("#!{}", nb.display()).as_bytes(),
        0o755,
    );
    gcase(t, FB, "InterpreterScriptTest.BinaryNoExecute", bytes(&p));
    let mut prev = bin.clone();
    let mut levels = Vec::new();
    for i in 1..=6 {
        let p = script(
            t,
            &format!("script{i}"),
            format!("#!{prev}").as_bytes(),
            0o755,
        );
        prev = p.display().to_string();
        levels.push(p);
    }
    gcase(
        t,
        FB,
        "InterpreterScriptTest.MaxRecursion (6 scripts: ELOOP)",
        bytes(&levels[5]),
    );
    gcase(
        t,
        FB,
        "InterpreterScriptTest.MaxRecursion (5 scripts: runs)",
        bytes(&levels[4]),
    );
    let p = script(t, "script-rel", b"#!gv/standard", 0o755);
    gcase(t, FB, "InterpreterScriptTest.RelativePath", bytes(&p));
    let p = script(
        t,
        "script-unclean",
        format!("#!/tmp/../{bin}").as_bytes(),
        0o755,
    );
    gcase(t, FB, "InterpreterScriptTest.UncleanPath", bytes(&p));
    std::os::unix::fs::symlink(t.dir().join("gv/script"), dir.join("script-link")).unwrap();
    gcase(
        t,
        FB,
        "InterpreterScriptTest.Symlink",
        bytes(&dir.join("script-link")),
    );
    std::os::unix::fs::symlink(dir.join("link2"), dir.join("link1")).unwrap();
    std::os::unix::fs::symlink(dir.join("link1"), dir.join("link2")).unwrap();
    let p = script(
        t,
        "script-loop",
        format!("#!{}", dir.join("link1").display()).as_bytes(),
        0o755,
    );
    gcase(t, FB, "InterpreterScriptTest.SymlinkLoop", bytes(&p));
    gcase(t, FB, "ExecveTest.SymlinkLoop", bytes(&dir.join("link1")));
    gcase(t, FB, "ExecveTest.Directory (/tmp)", b"/tmp");
    let mut p = bytes(&std_path);
    p.push(b'/');
    gcase(t, FB, "ExecveTest.BinaryAsDirectory", p);
    gcase(
        t,
        FB,
        "ExecveTest.BrkAfterBinary (brk(0) compared as in every case)",
        bytes(&std_path),
    );
}

fn g_standard_bytes() -> Vec<u8> {
    let mut g = Gv::standard();
    g.update_offsets();
    g.build()
}

impl Gv {
    /// The builder with `data` as its payload (for patching the built bytes).
    fn b_with_data(&self) -> ElfBuilder {
        let mut b = self.b.clone();
        b.payloads.clear();
        let off = 64 + 56 * b.phdrs.len() as u64;
        b.payload(off, &self.data);
        b
    }
}

fn exec_cc(t: &mut Table, fs: &TestFs) {
    let dir = t.dir().join("gx");
    std::fs::create_dir(&dir).unwrap();
    let f = |name: &str| format!("gx/{name}");
    let bin = t.file(&f("basic_workload"), &g_standard_bytes());
    let b = bytes(&bin);
    let s = |v: &[&str]| v.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
    let with = |t: &mut Table, name: &str, argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>| {
        let c = t.make(FE, name, &b).argv(Some(argv)).envp(envp);
        t.cases.push(c);
    };
    let arg0 = |rest: &[&str]| {
        let mut v = vec![b.clone()];
        v.extend(s(rest));
        v
    };
    gcase(t, FE, "ExecTest.EmptyPath", b"");
    with(t, "ExecTest.Basic", arg0(&[]), vec![]);
    with(t, "ExecTest.OneArg", arg0(&["1"]), vec![]);
    with(
        t,
        "ExecTest.FiveArg",
        arg0(&["1", "2", "3", "4", "5"]),
        vec![],
    );
    with(t, "ExecTest.OneEnv", arg0(&[]), s(&["1"]));
    with(
        t,
        "ExecTest.FiveEnv",
        arg0(&[]),
        s(&["1", "2", "3", "4", "5"]),
    );
    with(t, "ExecTest.OneArgOneEnv", arg0(&["arg"]), s(&["env"]));

    let exit_script = t.file(&f("exit_script.sh"), b"#!/bin/bash\nexit $1\n");
    let es = bytes(&exit_script);
    let c = t
        .make(FE, "ExecTest.InterpreterScript (#!/bin/bash)", &es)
        .argv(Some(vec![es.clone(), b"25".to_vec()]))
        .envp(vec![]);
    t.cases.push(c);

    // Scripts whose interpreter is a link to the workload.
    std::os::unix::fs::symlink(&bin, dir.join("link")).unwrap();
    let link = dir.join("link").display().to_string();
    let sc = |t: &mut Table, file: &str, body: &[u8]| bytes(&t.file(&f(file), body));
    let p = sc(t, "argsplit", format!("#!{link} foo bar").as_bytes());
    gcase(t, FE, "ExecTest.InterpreterScriptArgSplit", &p);
    let p = sc(t, "argv0", format!("#!{link}").as_bytes());
    let c = t
        .make(FE, "ExecTest.InterpreterScriptArgvZero", &p)
        .argv(Some(s(&["REPLACED"])))
        .envp(vec![]);
    t.cases.push(c);
    let c = t
        .make(FE, "ExecTest.InterpreterScriptArgvZeroRelative", "gx/argv0")
        .argv(Some(s(&["REPLACED"])))
        .envp(vec![]);
    t.cases.push(c);
    let c = t
        .make(FE, "ExecTest.InterpreterScriptArgvZeroAdded", &p)
        .argv(Some(vec![]))
        .envp(vec![]);
    t.cases.push(c);
    let p = sc(t, "argnul", format!("#!{link} foo\0bar").as_bytes());
    gcase(t, FE, "ExecTest.InterpreterScriptArgNUL", &p);
    let p = sc(t, "trailing-ws", format!("#!{link}  \n").as_bytes());
    gcase(t, FE, "ExecTest.InterpreterScriptTrailingWhitespace", &p);
    let p = sc(t, "arg-ws", format!("#!{link}  foo").as_bytes());
    gcase(t, FE, "ExecTest.InterpreterScriptArgWhitespace", &p);
    let p = sc(t, "nopath", b"#!\n\n");
    gcase(t, FE, "ExecTest.InterpreterScriptNoPath", &p);
    sc(t, "execfn", format!("#!{link} PrintExecFn").as_bytes());
    gcase(t, FE, "ExecTest.ExecFn (relative script path)", "gx/execfn");
    let state = t.file(&f("exec_state_workload"), &g_standard_bytes());
    gcase(
        t,
        FE,
        "ExecTest.ExecName (comm truncated to 15)",
        bytes(&state),
    );
    let p = sc(
        t,
        "exec_name_script_long",
        format!("#!{link} PrintExecName").as_bytes(),
    );
    gcase(t, FE, "ExecTest.ExecNameScript", &p);
    gcase(t, FE, "ExecTest.NotFound", b"/file/does/not/exist");
    let p = t.file_mode(&f("empty-0644"), b"", 0o644);
    gcase(t, FE, "ExecTest.NoExecPerm (empty 0644 file)", bytes(&p));

    // Chains of symlinks: 41 to the binary; 21 to a `#!/bin/echo` script.
    let chain = |t: &mut Table, prefix: &str, n: usize, target: &Path| {
        let mut next = target.to_path_buf();
        for i in (0..n).rev() {
            let l = t.dir().join(f(&format!("{prefix}{i}")));
            std::os::unix::fs::symlink(&next, &l).unwrap();
            next = l;
        }
        next
    };
    let head = chain(t, "limit", 41, &bin);
    gcase(
        t,
        FE,
        "ExecTest.SymlinkLimitExceeded (41 links)",
        bytes(&head),
    );
    let echo = t.file(&f("echo-script"), b"#!/bin/echo\n");
    let head = chain(t, "refresh", 21, &echo);
    gcase(
        t,
        FE,
        "ExecTest.SymlinkLimitRefreshedForInterpreter (21 links to #!/bin/echo)",
        bytes(&head),
    );

    // ExecveatTest.
    let at = |t: &mut Table, name: &str, dirfd: AtFd, path: &[u8], flags: i32| {
        let c = t
            .make(FE, name, path)
            .argv(Some(vec![b.clone()]))
            .envp(vec![])
            .via(Via::At { dirfd, flags });
        t.cases.push(c);
    };
    use rustix::fs::OFlags;
    let parent = t.open(fs, &dir, OFlags::DIRECTORY | OFlags::RDONLY);
    let bin_fd = t.open(fs, &bin, OFlags::RDONLY);
    let bin_path_fd = t.open(fs, &bin, OFlags::PATH);
    at(t, "ExecveatTest.BasicWithFDCWD", AtFd::Cwd, &b, 0);
    at(
        t,
        "ExecveatTest.Basic",
        AtFd::Open(parent.clone(), false),
        b"basic_workload",
        0,
    );
    at(
        t,
        "ExecveatTest.FDNotADirectory",
        AtFd::Open(bin_fd.clone(), false),
        b"basic_workload",
        0,
    );
    at(t, "ExecveatTest.AbsolutePathWithFDCWD", AtFd::Cwd, &b, 0);
    at(
        t,
        "ExecveatTest.AbsolutePath (dirfd -1)",
        AtFd::Raw(-1),
        &b,
        0,
    );
    at(
        t,
        "ExecveatTest.EmptyPathBasic (O_PATH fd)",
        AtFd::Open(bin_path_fd.clone(), false),
        b"",
        EMPTY,
    );
    at(
        t,
        "ExecveatTest.EmptyPathWithDirFD",
        AtFd::Open(parent.clone(), false),
        b"",
        EMPTY,
    );
    at(
        t,
        "ExecveatTest.EmptyPathWithoutEmptyPathFlag",
        AtFd::Open(bin_path_fd.clone(), false),
        b"",
        0,
    );
    at(
        t,
        "ExecveatTest.AbsolutePathWithEmptyPathFlag",
        AtFd::Open(parent.clone(), false),
        &b,
        EMPTY,
    );
    at(
        t,
        "ExecveatTest.RelativePathWithEmptyPathFlag",
        AtFd::Open(parent.clone(), false),
        b"basic_workload",
        EMPTY,
    );
    at(
        t,
        "ExecveatTest.SymlinkNoFollowWithRelativePath",
        AtFd::Open(parent.clone(), false),
        b"link",
        NOFOLLOW,
    );
    at(
        t,
        "ExecveatTest.SymlinkNoFollowWithAbsolutePath",
        AtFd::Cwd,
        link.as_bytes(),
        NOFOLLOW,
    );
    let link_fd = t.open(fs, dir.join("link"), OFlags::RDONLY);
    at(
        t,
        "ExecveatTest.SymlinkNoFollowAndEmptyPath",
        AtFd::Open(link_fd, false),
        b"",
        EMPTY | NOFOLLOW,
    );
    std::os::unix::fs::symlink("/bin", dir.join("bin-link")).unwrap();
    at(
        t,
        "ExecveatTest.SymlinkNoFollowIgnoreSymlinkAncestor (<link to /bin>/echo)",
        AtFd::Cwd,
        &bytes(&dir.join("bin-link/echo")),
        NOFOLLOW,
    );
    let bin_dir = t.open(fs, "/bin", OFlags::DIRECTORY | OFlags::RDONLY);
    at(
        t,
        "ExecveatTest.SymlinkNoFollowWithNormalFile (dirfd /bin, \"echo\")",
        AtFd::Open(bin_dir, false),
        b"echo",
        NOFOLLOW,
    );
    at(
        t,
        "ExecveatTest.BasicWithCloexecFD",
        AtFd::Open(bin_fd.clone(), true),
        b"",
        EMPTY | NOFOLLOW,
    );
    let script_fd = t.open(fs, &exit_script, OFlags::RDONLY);
    at(
        t,
        "ExecveatTest.InterpreterScriptWithCloexecFD",
        AtFd::Open(script_fd, true),
        b"",
        EMPTY,
    );
    at(
        t,
        "ExecveatTest.InterpreterScriptWithCloexecDirFD",
        AtFd::Open(parent.clone(), true),
        b"exit_script.sh",
        0,
    );
    let memfd = rustix::fs::memfd_create("script", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&memfd, b"#!/bin/sh\necho $0 >&2\n").unwrap();
    let memfd = OpenFd::object(memfd);
    let c = t
        .make(FE, "ExecveatTest.MemfdScript", b"")
        .argv(Some(s(&["script_name"])))
        .envp(vec![])
        .via(Via::At {
            dirfd: AtFd::Open(memfd, false),
            flags: EMPTY,
        });
    t.cases.push(c);
}

/// §8.1, "change from StandardElf unless stated".
fn derived(t: &mut Table) {
    std::fs::create_dir(t.dir().join("gd")).unwrap();
    let f = |name: &str| format!("gd/{name}");
    let raw = |t: &mut Table, name: &str, file: &str, body: &[u8]| {
        let p = t.file(&f(file), body);
        gcase(t, FD, name, bytes(&p));
    };
    let elf = |t: &mut Table, name: &str, file: &str, edit: &dyn Fn(&mut Gv)| {
        let mut g = Gv::standard();
        g.update_offsets();
        edit(&mut g);
        let p = gfile(t, &f(file), &g);
        gcase(t, FD, name, bytes(&p));
    };
    raw(t, "empty (0-byte) file, mode 0755", "empty", b"");
    raw(t, "3-byte file \"abc\"", "abc", b"abc");
    raw(t, "file \"#!\"", "hb", b"#!");
    raw(t, "file \"#!\\n\"", "hb-nl", b"#!\n");
    raw(t, "file \"#! \\t\\n\"", "hb-blank", b"#! \t\n");
    elf(t, "EI_CLASS = ELFCLASS32", "class32", &|g| {
        g.b.header.set_class(ELFCLASS32);
    });
    elf(t, "EI_DATA = ELFDATA2MSB", "msb", &|g| {
        g.b.header.set_data(2);
    });
    elf(t, "EI_VERSION = 0", "ei-version-0", &|g| {
        g.b.header.set_ident_version(0);
    });
    elf(t, "e_version = 0", "e-version-0", &|g| {
        g.b.header.e_version = 0
    });
    elf(t, "EI_OSABI = 3 (GNU/Linux)", "osabi-3", &|g| {
        g.b.header.set_osabi(3);
    });
    elf(t, "e_machine = EM_386", "em386", &|g| {
        g.b.header.e_machine = EM_386
    });
    elf(t, "e_machine = EM_PPC64", "ppc64", &|g| {
        g.b.header.e_machine = EM_PPC64
    });
    let other = ARCH.foreign_machine();
    elf(
        t,
        &format!("e_machine = {} (the other arch)", machine_name(other)),
        &machine_name(other).to_lowercase()["em_".len()..],
        &|g| g.b.header.e_machine = other,
    );
    for (name, ty) in [("ET_REL", ET_REL), ("ET_CORE", ET_CORE), ("ET_NONE", 0)] {
        elf(
            t,
            &format!("e_type = {name}"),
            &format!("type-{ty}"),
            &|g| g.b.header.e_type = ty,
        );
    }
    for size in [32u16, 0, 64] {
        elf(
            t,
            &format!("e_phentsize = {size}"),
            &format!("phentsize-{size}"),
            &|g| g.b.header.e_phentsize = size,
        );
    }
    elf(t, "e_phnum = 0", "phnum-0", &|g| {
        g.b.header.e_phnum = Some(0)
    });
    for n in [73usize, 74] {
        let mut g = Gv::standard();
        g.b.phdrs.resize(n, ProgramHeader::default());
        g.update_offsets();
        let p = gfile(t, &f(&format!("phnum-{n}")), &g);
        gcase(t, FD, &format!("e_phnum = {n} (all readable)"), bytes(&p));
    }
    let mut g = Gv::standard();
    g.update_offsets();
    let p = t.file(
        &f("phoff-negative"),
        &with_phoff(&g.b_with_data(), 0x8000_0000_0000_0000),
    );
    gcase(t, FD, "e_phoff = 0x8000000000000000", bytes(&p));

    // PT_INTERP.
    let good = gfile(t, &f("interp"), &gv_interp());
    let with = |t: &mut Table, name: &str, file: &str, seg: &[u8], edit: &dyn Fn(&mut Gv)| {
        let mut g = Gv::standard();
        g.add_interpreter(seg);
        g.update_offsets();
        edit(&mut g);
        let p = gfile(t, &f(file), &g);
        gcase(t, FD, name, bytes(&p));
    };
    with(
        t,
        "PT_INTERP with p_filesz = 4097",
        "i-4097",
        &nul(bytes(&good)),
        &|g| g.b.phdrs[0].p_filesz = 4097,
    );
    with(
        t,
        "PT_INTERP with p_offset past EOF",
        "i-eof",
        &nul(bytes(&good)),
        &|g| g.b.phdrs[0].p_offset = 0x10_0000,
    );
    with(
        t,
        "PT_INTERP path is a directory",
        "i-dir",
        b"/tmp\0",
        &|_| {},
    );
    let ni = t.file_mode(&f("interp-0644"), &gv_interp().build(), 0o644);
    with(
        t,
        "PT_INTERP target has mode 0644",
        "i-0644",
        &nul(bytes(&ni)),
        &|_| {},
    );
    let si = t.file(
        &f("interp-script"),
        format!("#!{}\n", good.display()).as_bytes(),
    );
    with(
        t,
        "PT_INTERP target is a #! script",
        "i-script",
        &nul(bytes(&si)),
        &|_| {},
    );
    let mut c32 = gv_interp();
    c32.b.header.set_class(ELFCLASS32);
    let c32 = gfile(t, &f("interp-class32"), &c32);
    with(
        t,
        "PT_INTERP target is ELFCLASS32",
        "i-class32",
        &nul(bytes(&c32)),
        &|_| {},
    );
    let tr = t.file(&f("interp-10"), &gv_interp().build()[..10]);
    with(
        t,
        "PT_INTERP target truncated to 10 bytes",
        "i-10",
        &nul(bytes(&tr)),
        &|_| {},
    );
    let mut ii = Gv::standard();
    ii.b.header.e_type = ET_DYN;
    ii.b.header.e_entry = 0;
    ii.add_interpreter(b"/nowhere\0");
    ii.update_offsets();
    let len = 0xe8 + 65 + 10;
    *ii.text() = gph(PT_LOAD, PF_R | PF_W | PF_X, 0, 0, len, len);
    let ii = gfile(t, &f("interp-interp"), &ii);
    with(
        t,
        "PT_INTERP target itself has a PT_INTERP",
        "i-interp",
        &nul(bytes(&ii)),
        &|_| {},
    );
    let mut g = Gv::standard();
    g.add_interpreter(&nul(bytes(&good)));
    g.add_interpreter(b"/bogus/path\0");
    g.update_offsets();
    let p = gfile(t, &f("i-two"), &g);
    gcase(
        t,
        FD,
        "two PT_INTERPs, first bogus path, second valid",
        bytes(&p),
    );

    // PT_LOAD.
    elf(t, "PT_LOAD p_filesz > p_memsz", "filesz-gt-memsz", &|g| {
        g.text().p_memsz = 1
    });
    elf(t, "ET_DYN without PT_LOAD", "dyn-noload", &|g| {
        g.b.header.e_type = ET_DYN;
        g.text().p_type = PT_NOTE;
    });
    elf(
        t,
        "ET_DYN with a single PT_LOAD of memsz 0",
        "dyn-memsz0",
        &|g| {
            g.b.header.e_type = ET_DYN;
            g.text().p_filesz = 0;
            g.text().p_memsz = 0;
        },
    );
    elf(t, "ET_EXEC without PT_LOAD", "exec-noload", &|g| {
        g.text().p_type = PT_NOTE
    });
    elf(t, "ET_EXEC PT_LOAD at p_vaddr 0", "vaddr-0", &|g| {
        g.text().p_vaddr = 0xb0;
        g.b.header.e_entry = 0xb0;
    });
    elf(
        t,
        "PT_LOAD p_vaddr + p_memsz overflows 2^64",
        "vaddr-overflow",
        &|g| g.text().p_memsz = u64::MAX - 0x40000,
    );
    elf(
        t,
        "two PT_LOADs sharing a page, the second starting at the first's end",
        "shared-page",
        &|g| {
            let end = g.text().p_vaddr + g.text().p_memsz;
            let off = g.text().p_offset + g.text().p_filesz;
            g.b.phdr(gph(PT_LOAD, PF_R | PF_W, off, end, 0x10, 0x100));
        },
    );
    // An ET_EXEC interpreter whose bss lands on the main binary's pages.
    let mut bi = Gv::standard();
    bi.text().p_flags = PF_R | PF_W | PF_X;
    bi.b.phdr(gph(PT_LOAD, PF_R | PF_W, 0, 0x40000, 0, 0x2000));
    bi.update_offsets();
    bi.b.phdrs[2].p_vaddr = 0x40000;
    let bi = gfile(t, &f("interp-bss"), &bi);
    let mut g = Gv::standard();
    g.add_interpreter(&nul(bytes(&bi)));
    g.update_offsets();
    let p = gfile(t, &f("interp-bss-main"), &g);
    gcase(
        t,
        FD,
        "ET_EXEC interpreter whose bss overlaps the main binary's pages",
        bytes(&p),
    );

    // #!.
    let mut long = b"#!/".to_vec();
    long.extend(std::iter::repeat_n(b'x', 140));
    raw(
        t,
        "#! line of 143 bytes (> 127) without newline",
        "long-line",
        &long,
    );
    let p = t.file(&f("sh-x"), b"#!/bin/sh -x  \nexit 0\n");
    gcase(
        t,
        FD,
        "#!/bin/sh -x  \\n (one argument \"-x  \")",
        bytes(&p),
    );

    // Argument sizes (gVisor counts 2 MiB per vector; Linux a quarter of RLIMIT_STACK).
    let bin = t.file(&f("bin"), &g_standard_bytes());
    let b = bytes(&bin);
    for (name, len) in [
        ("argv string of 131072 bytes + NUL", 131_072usize),
        ("argv string of 131071 bytes + NUL", 131_071),
    ] {
        let c = t
            .make(FD, name, &b)
            .argv(Some(vec![b.clone(), vec![b'a'; len]]))
            .envp(vec![]);
        t.cases.push(c);
    }
    // Exactly 2 MiB of argv strings (len + 1 each), then one more string; and 2 MiB crossed
    // in the middle of the last string.
    let two_mib = 2usize << 20;
    let mut argv = vec![b.clone()];
    let mut used = b.len() + 1;
    while used + 131_072 <= two_mib {
        argv.push(vec![b'b'; 131_071]);
        used += 131_072;
    }
    if used < two_mib {
        argv.push(vec![b'c'; two_mib - used - 1]);
    }
    let mut more = argv.clone();
    more.push(b"x".to_vec());
    let c = t
        .make(
            FD,
            "argv strings totalling exactly 2 MiB, then one more",
            &b,
        )
        .argv(Some(more))
        .envp(vec![])
        .rlimit(Some(8 << 20));
    t.cases.push(c);
    let mut cross = argv;
    cross.last_mut().unwrap().extend_from_slice(&[b'd'; 100]);
    let c = t
        .make(
            FD,
            "argv total crossing 2 MiB in the middle of a string",
            &b,
        )
        .argv(Some(cross))
        .envp(vec![])
        .rlimit(Some(8 << 20));
    t.cases.push(c);
    let c = t
        .make(FD, "RLIMIT_STACK = 0", &b)
        .envp(vec![])
        .rlimit(Some(0));
    t.cases.push(c);
}

pub(super) fn cases(t: &mut Table, fs: &TestFs) {
    exec_binary(t);
    exec_cc(t, fs);
    derived(t);
}
