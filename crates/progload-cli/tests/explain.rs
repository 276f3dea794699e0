//! `progload explain` names the cause, the errno and a hint for each common failure family.
//! The errno it names is the one the kernel returns for the same file in the same test.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use progload_host::probe::{probe, ProbeOutcome, ProbeRequest};
use progload_testkit::elfbuild::{ElfBuilder, ProgramHeader};
use progload_testkit::progs;

fn explain(path: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .arg("explain")
        .args(extra)
        .arg(path)
        .output()
        .expect("run progload");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn kernel_errno(path: &Path, argv: Vec<Vec<u8>>) -> String {
    kernel_errno_rlimit(path, argv, None)
}

fn kernel_errno_rlimit(
    path: &Path,
    argv: Vec<Vec<u8>>,
    stack_rlimit: Option<Option<u64>>,
) -> String {
    let req = ProbeRequest {
        path: path.as_os_str().as_encoded_bytes().to_vec(),
        argv: Some(argv),
        envp: vec![],
        cwd: None,
        stack_rlimit,
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let outcome = progload_host::probe::retry_busy(|| probe(&req)).unwrap();
    match outcome {
        ProbeOutcome::Refused { errno } => progload::Errno(errno).name().to_string(),
        other => panic!("the kernel did not refuse {}: {other:?}", path.display()),
    }
}

/// `elf` with its `e_ident` padding (bytes 9 to 15, which the kernel's ELF loader ignores) set
/// to the first value that no enabled binfmt_misc rule registered here matches, so that the
/// kernel's verdict, for an exec of `exec_path`, is its ELF loader's whatever is installed.
fn unclaimed(mut elf: Vec<u8>, exec_path: &[u8]) -> Vec<u8> {
    use progload::binfmt::{misc, BUF_SIZE};
    let rules = progload_host::binfmt_misc::registered_rules().unwrap();
    for pad in 0..=u8::MAX {
        elf[9..16].fill(pad);
        let mut buf = [0u8; BUF_SIZE];
        let n = elf.len().min(BUF_SIZE);
        buf[..n].copy_from_slice(&elf[..n]);
        if misc::find(&rules, &buf, exec_path).is_none() {
            return elf;
        }
    }
    panic!("every e_ident padding is claimed by a registered binfmt_misc rule");
}

fn case(path: &Path, extra: &[&str], argv: Vec<Vec<u8>>, needles: &[&str]) {
    let errno = kernel_errno(path, argv);
    let (code, out) = explain(path, extra);
    assert!(code == 126 || code == 127, "{out}");
    assert!(
        out.contains(&format!("execve returns {errno} ")),
        "kernel says {errno}:\n{out}"
    );
    for n in needles {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
}

#[test]
fn failure_families_are_explained() {
    let dir = progs::TempDir::new().unwrap();
    let d = dir.path();
    let p = |n: &str| vec![n.as_bytes().to_vec()];

    // Missing interpreter (a musl binary on a glibc system). The loader's directory cannot
    // exist, so the case holds on a machine with musl installed too.
    let mut musl = ElfBuilder::minimal_x86_64_exec();
    let name = b"/nonexistent-progload-test/ld-musl-x86_64.so.1\0";
    musl.phdrs
        .insert(0, ProgramHeader::interp(0x200, 0x400200, name.len() as u64));
    musl.header.e_phoff = 0x100;
    musl.payload(0x200, name);
    let f = progs::write_executable(d, "musl-app", &musl.build()).unwrap();
    case(
        &f,
        &[],
        p("musl-app"),
        &["ld-musl-x86_64.so.1", "PT_INTERP", "install musl"],
    );

    // A #! line with Windows line endings.
    let f = progs::write_executable(d, "crlf.sh", b"#!/bin/sh\r\necho hi\r\n").unwrap();
    case(
        &f,
        &[],
        p("crlf.sh"),
        &["\\r", "Windows (CRLF)", "dos2unix"],
    );

    // Wrong architecture, in a file no binfmt_misc rule of this machine claims (qemu-user-static
    // registers one for aarch64 ELF files).
    let exec_path = d.join("arm64-app");
    let arm64 = unclaimed(
        ElfBuilder::minimal_aarch64_exec().build(),
        exec_path.as_os_str().as_encoded_bytes(),
    );
    let f = progs::write_executable(d, "arm64-app", &arm64).unwrap();
    case(
        &f,
        &[],
        p("arm64-app"),
        &["aarch64", "e_machine 183", "qemu"],
    );

    // Not executable.
    let f =
        progs::write_executable(d, "noexec", &ElfBuilder::minimal_x86_64_exec().build()).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    case(&f, &[], p("noexec"), &["chmod +x"]);

    // A directory.
    case(d, &[], p("dir"), &["is a directory"]);

    // A symlink loop.
    symlink(d.join("loop-b"), d.join("loop-a")).unwrap();
    symlink(d.join("loop-a"), d.join("loop-b")).unwrap();
    case(&d.join("loop-a"), &[], p("loop-a"), &["symlink loop"]);

    // E2BIG: with a 256 KiB stack limit the arguments may take 128 KiB; two of 64 KiB exceed it.
    let prog = progs::static_exec();
    let big = "a".repeat(65_536);
    let mut argv = p("prog");
    argv.extend((0..2).map(|_| big.as_bytes().to_vec()));
    let errno = kernel_errno_rlimit(&prog, argv, Some(Some(256 << 10)));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_progload"));
    cmd.args([
        "explain",
        "--stack-limit",
        &(256u64 << 10).to_string(),
        "--argv0",
        "prog",
    ])
    .arg(&prog);
    for _ in 0..2 {
        cmd.arg(&big);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(126), "{text}");
    assert!(
        text.contains(&format!("execve returns {errno} ")) && text.contains("ulimit -s"),
        "{text}"
    );

    // ELIBBAD: the interpreter is a text file.
    let text_interp = progs::write_executable(d, "interp.txt", &[b'x'; 100]).unwrap();
    let path = text_interp.as_os_str().as_encoded_bytes();
    let mut bad = ElfBuilder::minimal_x86_64_exec();
    let mut name = path.to_vec();
    name.push(0);
    bad.phdrs
        .insert(0, ProgramHeader::interp(0x200, 0x400200, name.len() as u64));
    bad.header.e_phoff = 0x100;
    bad.payload(0x200, &name);
    let f = progs::write_executable(d, "bad-interp", &bad.build()).unwrap();
    case(&f, &[], p("bad-interp"), &["ELIBBAD", "not a usable ELF"]);
}

#[test]
fn success_lists_the_steps() {
    let dir = progs::TempDir::new().unwrap();
    let script = progs::write_sh_e_script(dir.path(), "s.sh").unwrap();
    let (code, out) = explain(&script, &["--no-randomize"]);
    assert_eq!(code, 0, "{out}");
    for n in [
        "starts with \"#!\"",
        "interpreter \"/bin/sh\"",
        "one argument \"-e\"",
        "is ELF",
        "point of no return",
        "map PT_LOAD",
        "result:",
    ] {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
}

/// A 32-bit i386 program: with the host profile (which describes the compat task) the
/// explanation walks the compat loader to the result; with a preset, which has no compat part,
/// it says the ENOEXEC is progload's limit (the kernel with IA32 emulation runs such
/// programs), not a property of the file.
#[test]
fn a_32_bit_program_is_explained() {
    let dir = progs::TempDir::new().unwrap();
    let elf32 = progload_testkit::elfbuild::minimal_i386_exec();
    let f = progs::write_executable(dir.path(), "elf32", &elf32).unwrap();
    let (code, out) = explain(&f, &[]);
    assert_eq!(code, 0, "{out}");
    for n in ["is ELF", "point of no return", "map PT_LOAD", "result:"] {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
    let (code, out) = explain(&f, &["--profile", "x86_64"]);
    assert_eq!(code, 126, "{out}");
    for n in [
        "32-bit i386 program",
        "compat_binfmt_elf",
        "progload's limit",
    ] {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
}

/// A reader that goes away (`progload explain ... | head -1`) ends progload by SIGPIPE, as
/// other tools end, not with a panic on EPIPE. The read end is closed before progload has
/// even started, so its first write meets the closed pipe.
#[test]
fn a_closed_pipe_ends_it_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["explain", "/usr/bin/true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
}

/// Rust `Debug` renderings that must never reach a user: an `Option`, an errno or protection
/// newtype, a byte-string wrapper, a lossy replacement character.
fn assert_no_debug_text(out: &str) {
    for n in [
        "Some(", "None", "Errno(", "Prot(", "Bytes(", "\\u{", "\u{fffd}",
    ] {
        assert!(!out.contains(n), "{n:?} in:\n{out}");
    }
}

fn explain_json(path: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out) = explain(path, &args);
    assert_no_debug_text(&out);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    (code, serde_json::from_str(&out).expect("one JSON object"))
}

/// `explain --json`: the steps as objects and the result, for a script run by /bin/sh.
#[test]
fn json_lists_the_steps_and_the_result() {
    let dir = progs::TempDir::new().unwrap();
    let script = progs::write_sh_e_script(dir.path(), "s.sh").unwrap();
    let (code, v) = explain_json(&script, &["--no-randomize"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["kernel"].is_string() && v["arch"].is_string(), "{v}");
    let steps = v["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..3], ["open", "script", "open"], "{v}");
    assert!(
        kinds.contains(&"elf") && kinds.contains(&"point_of_no_return"),
        "{v}"
    );
    assert!(kinds.ends_with(&["segment"]), "{v}");
    assert_eq!(steps[0]["role"], "program", "{v}");
    assert_eq!(steps[1]["interpreter"], "/bin/sh", "{v}");
    assert_eq!(steps[1]["argument"], "-e", "{v}");
    assert_eq!(steps[2]["role"], "script_interpreter", "{v}");
    let seg = steps.iter().find(|s| s["step"] == "segment").unwrap();
    assert!(
        seg["prot"].as_str().unwrap().len() == 3 && seg["addr"].is_u64(),
        "{v}"
    );
    let r = &v["result"];
    assert!(
        r["entry"].as_u64().unwrap() > 0 && r["stack_pointer"].is_u64(),
        "{v}"
    );
    assert_eq!(r["argv"][0], "/bin/sh", "{v}");
    assert!(v.get("failure").is_none(), "{v}");
}

/// `explain --json` of a failure: the errno the kernel returns, the cause and the hint, and
/// a `#!` interpreter that is not UTF-8 (bytes 0xff 0xfe) given exactly, as `{"hex": ...}`.
/// The text form shows those bytes escaped, not replaced.
#[test]
fn json_gives_the_failure_with_exact_bytes() {
    let dir = progs::TempDir::new().unwrap();
    let f = progs::write_executable(dir.path(), "latin1.sh", b"#!/bin/sh\xff\xfe\n").unwrap();
    let errno = kernel_errno(&f, vec![b"latin1.sh".to_vec()]);
    let (code, v) = explain_json(&f, &[]);
    assert_eq!(code, 127, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    let fail = &v["failure"];
    assert_eq!(fail["errno"], errno.as_str(), "{v}");
    assert_eq!(fail["code"], 2, "{v}");
    assert_eq!(fail["fatal"], false, "{v}");
    assert!(
        fail["cause"].is_string() && fail["hint"].as_str().unwrap().contains("#!"),
        "{v}"
    );
    let hex = "2f62696e2f7368fffe";
    assert_eq!(
        v["steps"][1]["interpreter"],
        serde_json::json!({"hex": hex}),
        "{v}"
    );
    assert_eq!(
        v["steps"][1]["argv"][0],
        serde_json::json!({"hex": hex}),
        "{v}"
    );
    assert!(v.get("result").is_none(), "{v}");
    let (_, text) = explain(&f, &[]);
    assert_no_debug_text(&text);
    assert!(text.contains("interpreter \"/bin/sh\\xff\\xfe\""), "{text}");
}
