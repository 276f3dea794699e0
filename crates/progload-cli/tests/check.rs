//! `progload check` and the whole-machine sweep: every executable in /usr/bin, /usr/sbin and
//! /usr/local/bin, plus ld.so and libc.so.6 run directly, with two argv/envp variants, must
//! agree with the kernel — 100 %, no allow-list.
//!
//! Set-id files are not skipped: as root their exec is still set-id (the kernel clears
//! ADDR_NO_RANDOMIZE and randomizes them), so the plan must predict that, and everything not
//! drawn at random (the shape of every mapping, every non-address auxv value including
//! AT_SECURE and the new ids, the strings, comm, exe) is compared. The sweep is repeated as
//! unprivileged callers (`--user`).

use std::process::Command;

use serde_json::Value;

fn progload(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(args)
        .output()
        .expect("run progload");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The verdict: what follows the `kernel: Linux ...` line.
fn verdict_line(out: &str) -> &str {
    out.trim().lines().last().unwrap_or("")
}

#[test]
fn check_true_is_identical() {
    let (code, out) = progload(&["check", "/usr/bin/true"]);
    assert_eq!((code, verdict_line(&out)), (0, "identical"));
    assert!(out.starts_with("kernel: Linux "), "{out}");
}

#[test]
fn a_wrong_profile_is_reported() {
    let (code, profile) = progload(&["profile"]);
    assert_eq!(code, 0);
    let mut v: Value = serde_json::from_str(&profile).unwrap();
    // The kernel side keeps this process's stack limit; only the plan gets 1 GiB.
    v["stack_rlimit"] = Value::from(1u64 << 30);
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let file = dir.join("wrong.json");
    std::fs::write(&file, v.to_string()).unwrap();
    let (code, out) = progload(&[
        "check",
        "--profile",
        file.to_str().unwrap(),
        "/usr/bin/true",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("fields differ") && out.contains("maps[") && out.contains("AT_BASE"),
        "{out}"
    );
}

/// `progload check --sweep --json EXTRA... DIRS...`, which must exit 0 (no disagreement).
fn sweep_dirs(extra: &[&str], dirs: &[&str]) -> Value {
    let mut args = vec!["check", "--sweep", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(dirs);
    let (code, out) = progload(&args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    eprintln!(
        "sweep {extra:?} {dirs:?}: {}",
        serde_json::json!({"files": v["files"], "counts": v["counts"], "seconds": v["seconds"]})
    );
    assert_eq!(code, 0, "{:#}", v["failures"]);
    assert!(v["files"].as_u64().unwrap() > 100);
    v
}

fn sweep(extra: &[&str]) -> Value {
    let v = sweep_dirs(extra, &["/usr/bin", "/usr/sbin", "/usr/local/bin"]);
    // /usr/bin and friends hold no 32-bit program here: nothing may be excused.
    assert_eq!(v["not_modelled"], serde_json::json!([]), "{v:#}");
    v
}

#[test]
fn whole_machine_sweep_inherited_environment() {
    let v = sweep(&[]);
    assert!(v["files"].as_u64().unwrap() > 100);
}

#[test]
fn whole_machine_sweep_custom_argv0_and_environment() {
    let v = sweep(&[
        "--env-clear",
        "-e",
        "A=1",
        "-e",
        "LONGER_VARIABLE=some value",
        "--argv0",
        "renamed-program",
    ]);
    assert!(v["files"].as_u64().unwrap() > 100);
}

/// The same sweep for callers other than root: uid 1000 (set-id files now raise privileges,
/// and permissions apply), uid 1000 with euid 0, uid 1000 with no_new_privs (set-id bits
/// ignored), and nobody with two supplementary groups. The kernel's child takes these ids.
#[test]
fn whole_machine_sweep_as_other_callers() {
    for caller in [
        &["--user", "1000"][..],
        &["--user", "1000,0"],
        &["--user", "1000", "--no-new-privs"],
        &["--user", "65534:65534", "--groups", "4,27"],
    ] {
        let v = sweep(caller);
        assert!(v["files"].as_u64().unwrap() > 100);
    }
}

/// Libraries and helper programs run directly (ET_DYN without PT_INTERP, many alignments),
/// the i386 ones (valgrind's x86 tools, perf helpers) included: every one agrees and none is
/// left as not modelled.
#[test]
fn library_directories_sweep() {
    let v = sweep_dirs(
        &["--env-clear", "-e", "A=1"],
        &["/usr/lib", "/usr/libexec", "/usr/local/lib"],
    );
    assert_eq!(v["not_modelled"].as_array().unwrap().len(), 0, "{v}");
}

/// A 32-bit i386 ELF is planned with the host profile's compat part and agrees with the
/// kernel; a preset, which has no compat part, refuses to plan it (ENOEXEC, saying why).
#[test]
fn a_32_bit_program_is_planned_with_the_host_profile() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let elf32 = progload_testkit::elfbuild::minimal_i386_exec();
    let path = progload_testkit::progs::write_executable(dir.path(), "elf32", &elf32).unwrap();
    let (code, out) = progload(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(verdict_line(&out), "identical", "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["plan", "--profile", "x86_64"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("32-bit ELF (machine 3)"), "{err}");
}

#[test]
fn loader_and_libc_run_directly() {
    for prog in [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        for extra in [&[][..], &["--env-clear", "-e", "A=1"][..]] {
            let mut args = vec!["check"];
            args.extend_from_slice(extra);
            args.push(prog);
            args.push("--version");
            let (code, out) = progload(&args);
            assert_eq!(
                (code, verdict_line(&out)),
                (0, "identical"),
                "{prog} {extra:?}"
            );
        }
    }
}

/// `check --sweep --record` writes what the kernel did; `check --replay` judges the plans
/// against it again (identical here, same machine), and a record whose kernel image is
/// changed by one page is reported as differing: the replay compares, it does not trust.
#[test]
fn recorded_sweep_replays_and_a_tampered_record_differs() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for p in ["/usr/bin/true", "/usr/bin/ls"] {
        std::fs::copy(p, bin.join(p.rsplit('/').next().unwrap())).unwrap();
    }
    let rec = dir.join("rec");
    let (code, _) = progload(&[
        "check",
        "--sweep",
        "--record",
        rec.to_str().unwrap(),
        bin.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let (code, out) = progload(&["check", "--replay", "--json", rec.to_str().unwrap()]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (code, v["counts"]["identical"].as_u64()),
        (0, Some(2)),
        "{out}"
    );

    let first = rec.join("00000.json");
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    let top = r["outcome"]["stopped"]["stack_top"].as_u64().unwrap();
    r["outcome"]["stopped"]["stack_top"] = (top - 4096).into();
    std::fs::write(&first, r.to_string()).unwrap();
    let (code, out) = progload(&["check", "--replay", "--json", rec.to_str().unwrap()]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (code, v["counts"]["differing"].as_u64()),
        (1, Some(1)),
        "{out}"
    );
    assert_eq!(
        v["differing_fields"]["stack.top"].as_u64(),
        Some(1),
        "{out}"
    );
}

/// `check --sweep` of a missing directory or of a file is a usage error (exit 2, saying
/// which), not a sweep of 0 files.
#[test]
fn sweep_of_a_missing_directory_or_a_file_fails() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let missing = dir.path().join("missing");
    let file = progload_testkit::progs::write_executable(dir.path(), "f", b"#!/bin/sh\n").unwrap();
    for (path, says) in [(&missing, "No such file"), (&file, "is not one")] {
        let out = Command::new(env!("CARGO_BIN_EXE_progload"))
            .args(["check", "--sweep"])
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(says) && err.contains(path.to_str().unwrap()),
            "{err}"
        );
    }
    // Without an operand, the usage names the directories.
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["check", "--sweep"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("check --sweep [OPTIONS] DIR..."), "{err}");
}

/// Outcomes are sentences in text and structured in JSON, never Rust `Debug` text: an i386
/// program checked with a preset (no compat part) is not modelled, and the kernel ran it.
#[test]
fn outcomes_are_sentences_and_json_fields() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let elf32 = progload_testkit::elfbuild::minimal_i386_exec();
    let path = progload_testkit::progs::write_executable(dir.path(), "elf32", &elf32).unwrap();
    let p = path.to_str().unwrap();
    let (code, out) = progload(&["check", "--profile", "x86_64", p]);
    assert_eq!(code, 1, "{out}");
    assert!(
        verdict_line(&out).ends_with("(the kernel ran to the first instruction)"),
        "{out}"
    );
    let (_, out) = progload(&["check", "--json", "--profile", "x86_64", p]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verdict"], "not_modelled", "{v}");
    assert_eq!(
        v["kernel_outcome"],
        serde_json::json!({"outcome": "ran"}),
        "{v}"
    );
}

/// The host's registered rules apply to plain `plan` and `check` (an `E` and an `M` rule),
/// and `check --binfmt-misc` refuses a rule the kernel does not have.
#[test]
fn host_binfmt_misc_rules_are_planned_and_checked() {
    let id = std::process::id();
    let (e_name, m_name) = (format!("plE{id}"), format!("plM{id}"));
    let ext = format!("plx{id}");
    let magic = format!("PLMAGIC{id}");
    use progload_testkit::binfmt_misc::register;
    let _e = register(&format!(":{e_name}:E::{ext}::/bin/sh:"), &e_name);
    let _m = register(&format!(":{m_name}:M::{magic}::/bin/sh:P"), &m_name);
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let by_ext =
        progload_testkit::progs::write_executable(dir.path(), &format!("a.{ext}"), b"exit 0\n")
            .unwrap();
    let by_magic = progload_testkit::progs::write_executable(
        dir.path(),
        "b",
        format!("{magic}\nexit 0\n").as_bytes(),
    )
    .unwrap();
    for f in [&by_ext, &by_magic] {
        let f = f.to_str().unwrap();
        let (code, out) = progload(&["plan", "--json", "--no-randomize", f]);
        assert_eq!(code, 0, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["argv"][0], "/bin/sh", "{out}");
        let (code, out) = progload(&["check", f]);
        assert_eq!((code, verdict_line(&out)), (0, "identical"), "{out}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "check",
            "--binfmt-misc",
            ":plUnregistered:M::NOPE::/bin/sh:",
        ])
        .arg(&by_magic)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no such rule registered"), "{err}");
}

/// A bss larger than this machine's RAM and swap (64 GiB at least): under the default
/// overcommit policy the kernel kills the exec, and `plan` says so (exit 126, the overcommit
/// refusal); `check` finds both fatal.
#[test]
fn a_bss_beyond_ram_and_swap_is_fatal() {
    use progload_testkit::elfbuild::{Arch, ElfBuilder, ProgramHeader, PF_R, PF_W};
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    let size = ((kb("MemTotal:") + kb("SwapTotal:")) * 1024 + (1 << 30)).max(1 << 36);
    let mut b = ElfBuilder::minimal_exec_for(Arch::native());
    // In place of its PT_GNU_STACK (a third entry would lie under the code).
    b.phdrs[1] = ProgramHeader::load(PF_R | PF_W, 0, 0x1000_0000, 0, size);
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let f = progload_testkit::progs::write_executable(dir.path(), "big-bss", &b.build()).unwrap();
    let f = f.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["plan", "--no-randomize", f])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let err = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    if overcommit.trim() == "1" {
        assert_eq!(out.status.code(), Some(0), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(126), "{err}");
        assert!(err.contains("overcommit") && err.contains("kills"), "{err}");
    }
    let (code, out) = progload(&["check", f]);
    assert_eq!(code, 0, "{out}");
}

/// A sweep reports its wall time: `N files in S s` in the text, `seconds` in the JSON.
#[test]
fn sweep_reports_its_wall_time() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    std::fs::copy("/usr/bin/true", dir.path().join("true")).unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out) = progload(&["check", "--sweep", d]);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("1 files in "))
        .unwrap_or_else(|| panic!("no wall time in:\n{out}"));
    let secs = line
        .strip_prefix("1 files in ")
        .and_then(|r| r.strip_suffix(" s"))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(secs.is_some_and(|s| s >= 0.0), "{line}");
    let (code, out) = progload(&["check", "--sweep", "--json", d]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"], 1, "{v}");
    assert!(v["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{v}");
}
