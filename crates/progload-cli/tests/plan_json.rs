//! `progload plan --json` against the live kernel: the acceptance cases of the core issue,
//! run through the binary exactly as a user would, compared with a ptrace'd kernel exec of
//! the same file, argv and envp. No expected value is typed in.

use std::process::Command;

use progload_host::probe::{probe, KernelImage, ProbeOutcome, ProbeRequest};
use progload_testkit::progs;
use serde_json::Value;

fn plan_json(program: &str, extra: &[&str]) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "plan",
            "--json",
            "--no-randomize",
            "--env-clear",
            "-e",
            "A=1",
        ])
        .args(extra)
        .arg(program)
        .arg("x")
        .output()
        .expect("run progload");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.code().unwrap_or(-1))
}

fn kernel(program: &str, rlimit: Option<Option<u64>>) -> KernelImage {
    let req = ProbeRequest {
        path: program.as_bytes().to_vec(),
        argv: Some(vec![program.as_bytes().to_vec(), b"x".to_vec()]),
        envp: vec![b"A=1".to_vec()],
        cwd: None,
        stack_rlimit: rlimit,
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let outcome = progload_host::probe::retry_busy(|| probe(&req)).expect("probe");
    match outcome {
        ProbeOutcome::Stopped(k) => k,
        other => panic!("kernel did not run {program}: {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn same(program: &str, rlimit: Option<Option<u64>>) {
    let extra: Vec<String> = match rlimit {
        None => vec![],
        Some(None) => vec!["--stack-limit".into(), "unlimited".into()],
        Some(Some(n)) => vec!["--stack-limit".into(), n.to_string()],
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (v, code) = plan_json(program, &extra);
    assert_eq!(code, 0, "{v}");
    let k = kernel(program, rlimit);
    let mut diffs = Vec::new();
    let mut check = |what: &str, kv: Value, pv: &Value| {
        if &kv != pv {
            diffs.push(format!("{what}: kernel {kv} / plan {pv}"));
        }
    };
    check("entry", k.regs.rip.into(), &v["entry"]);
    check("stack_pointer", k.regs.rsp.into(), &v["stack_pointer"]);
    let kmaps: Vec<Value> = k
        .maps
        .iter()
        .map(|m| {
            let (major, minor) = m.dev.split_once(':').unwrap();
            let dev = [major, minor].map(|x| u32::from_str_radix(x, 16).unwrap());
            serde_json::json!({"start": m.start, "end": m.end, "perms": m.perms, "offset": m.offset,
                "dev": dev, "inode": m.inode, "path": progload::contract::ByteString(m.path.clone())})
        })
        .collect();
    // The kernel does not say what a mapping is: compare everything else.
    let mut pmaps = v["maps"].clone();
    for m in pmaps.as_array_mut().into_iter().flatten() {
        m.as_object_mut().unwrap().remove("kind");
    }
    check("maps", Value::Array(kmaps), &pmaps);
    let kaux: Vec<Value> = k
        .auxv
        .iter()
        .map(|&(a, b)| serde_json::json!([a, b]))
        .collect();
    check("auxv", Value::Array(kaux), &v["auxv"]);
    check("stack.top", k.stack_top.into(), &v["stack"]["top"]);
    // Stack bytes, with the 16 AT_RANDOM bytes taken from the kernel's side.
    let mut pbytes = v["stack"]["bytes"].as_str().unwrap_or("").to_string();
    if let Some(r) = k.auxv_get(progload::auxv::AT_RANDOM) {
        let off = ((r - k.regs.rsp) * 2) as usize;
        if let (Some(kr), true) = (k.stack_slice(r), pbytes.len() >= off + 32) {
            pbytes.replace_range(off..off + 32, &hex(&kr[..16]));
        }
    }
    check(
        "stack.bytes",
        hex(&k.stack_bytes).into(),
        &Value::String(pbytes),
    );
    let mm = &k.mm;
    for (name, kv) in [
        ("start_code", mm.start_code),
        ("end_code", mm.end_code),
        ("start_data", mm.start_data),
        ("end_data", mm.end_data),
        ("start_brk", mm.start_brk),
        ("start_stack", mm.start_stack),
        ("arg_start", mm.arg_start),
        ("arg_end", mm.arg_end),
        ("env_start", mm.env_start),
        ("env_end", mm.env_end),
    ] {
        check(&format!("mm.{name}"), kv.into(), &v["mm"][name]);
    }
    if let Some(b) = mm.brk {
        check("mm.brk", b.into(), &v["mm"]["brk"]);
    }
    check(
        "comm",
        String::from_utf8(k.comm.clone()).unwrap().into(),
        &v["comm"],
    );
    assert!(diffs.is_empty(), "{program}:\n{}", diffs.join("\n"));
}

fn s(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn acceptance_programs() {
    for p in [
        "/usr/bin/true".to_string(),
        s(progs::pie()),
        s(progs::static_exec()),
        s(progs::static_pie()),
        s(progs::big_static_pie()),
        "/lib64/ld-linux-x86-64.so.2".to_string(),
        s(progs::pie_align_2m()),
        s(progs::pie_execstack()),
    ] {
        same(&p, None);
    }
}

#[test]
fn acceptance_scripts() {
    let dir = progs::TempDir::new().unwrap();
    same(
        &s(progs::write_sh_script(dir.path(), "plain.sh").unwrap()),
        None,
    );
    same(
        &s(progs::write_sh_e_script(dir.path(), "witharg.sh").unwrap()),
        None,
    );
}

#[test]
fn acceptance_stack_limits() {
    for r in [Some(100 * 1024), Some(1 << 30), None] {
        same("/usr/bin/true", Some(r));
        same(&s(progs::static_pie()), Some(r));
    }
}

#[test]
fn failures_report_errno_and_exit_status() {
    let (v, code) = plan_json("/nonexistent/prog", &[]);
    assert_eq!(
        (code, v["ok"].clone(), v["errno"].clone(), v["code"].clone()),
        (127, false.into(), "ENOENT".into(), 2.into())
    );
    let (v, code) = plan_json("/etc/passwd", &[]);
    assert_eq!(
        (code, v["errno"].clone(), v["fatal"].clone()),
        (126, "EACCES".into(), false.into())
    );
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["plan", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("progload: /: Permission denied (EACCES): "),
        "{err}"
    );
}

/// Byte strings that are not UTF-8 (an argument with a Latin-1 byte) come out as
/// `{"hex": ...}` with every byte; UTF-8 ones stay strings.
#[test]
fn non_utf8_arguments_are_kept_as_hex() {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "plan",
            "--json",
            "--no-randomize",
            "--env-clear",
            "/usr/bin/true",
        ])
        .arg(std::ffi::OsStr::from_bytes(b"caf\xe9"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["argv"][0], "/usr/bin/true", "{v}");
    assert_eq!(v["argv"][1], serde_json::json!({"hex": "636166e9"}), "{v}");
    assert!(v["zero"].is_array(), "{v}");
}

/// A progload option after PROGRAM belongs to the program: planned as its argument, with a
/// one-line warning on stderr; a word that is not an option of the subcommand gets none.
#[test]
fn an_option_after_program_is_warned_about() {
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "plan",
            "--json",
            "/usr/bin/true",
            "--svg",
            "x.svg",
            "--color",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("--svg comes after PROGRAM"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["argv"][1], "--svg");
    assert_eq!(v["argv"][2], "x.svg");
}

/// `--path-search` of a name in no directory of PATH says so, naming PATH.
#[test]
fn a_path_search_failure_mentions_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["plan", "--path-search", "progload-no-such-program-xyz"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("not found in any directory of PATH (/usr/bin:/bin)"),
        "{err}"
    );
}
