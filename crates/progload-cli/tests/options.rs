//! Each subcommand offers only the options it honours: `check` has no randomness options and
//! no `--path-search` (the kernel's exec runs with ADDR_NO_RANDOMIZE and gets PROGRAM as
//! given) and takes `--root` only for `--replay`; `run` has no caller options (`--user`,
//! `--groups`, `--no-new-privs`, `--stack-limit`: the program runs as this process) and
//! refuses `--profile` in one line. Passing a left-out option is a usage error (exit 2), not
//! a PROGRAM named like an option.

use std::process::{Command, Output};

fn progload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(args)
        .output()
        .expect("run progload")
}

fn help(sub: &str) -> String {
    let out = progload(&[sub, "--help"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The long options `--help` lists.
fn listed(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-e, ").unwrap_or(l);
            let name = l.strip_prefix("--")?;
            Some(name.split([' ', '=']).next().unwrap_or("").to_string())
        })
        .collect()
}

fn usage_error(args: &[&str]) -> String {
    let out = progload(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    err
}

#[test]
fn check_offers_no_option_it_ignores() {
    let h = help("check");
    let opts = listed(&h);
    for gone in ["seed", "random-bytes", "no-randomize", "path-search"] {
        assert!(
            !opts.iter().any(|o| o == gone),
            "check --help lists --{gone}:\n{h}"
        );
        let flag = format!("--{gone}");
        let mut args = vec!["check", &flag];
        args.extend(match gone {
            "seed" => Some("1"),
            "random-bytes" => Some("00112233445566778899aabbccddeeff"),
            _ => None,
        });
        args.push("/usr/bin/true");
        let err = usage_error(&args);
        assert!(err.contains(&format!("'--{gone}'")), "{err}");
    }
    for kept in [
        "root",
        "cwd",
        "argv0",
        "env-clear",
        "env",
        "profile",
        "stack-limit",
        "binfmt-misc",
        "user",
        "groups",
        "no-new-privs",
    ] {
        assert!(
            opts.iter().any(|o| o == kept),
            "check --help lacks --{kept}:\n{h}"
        );
    }
    // --root is the files of a replay; a live check execs in this process's root.
    let err = usage_error(&["check", "--root", "/", "/usr/bin/true"]);
    assert!(err.contains("--replay"), "{err}");
    // Options of one mode are refused in the others.
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let d = dir.path().to_str().unwrap();
    usage_error(&["check", "--record", d, "/usr/bin/true"]);
    usage_error(&["check", "--jobs", "3", "/usr/bin/true"]);
    let err = usage_error(&["check", "--replay", "--cwd", "/", d]);
    assert!(err.contains("--cwd"), "{err}");
}

#[test]
fn run_offers_no_option_it_cannot_honour() {
    let h = help("run");
    let opts = listed(&h);
    for (gone, value) in [
        ("user", Some("1000")),
        ("groups", Some("4")),
        ("no-new-privs", None),
        ("stack-limit", Some("1000000")),
        ("profile", Some("x86_64")),
    ] {
        assert!(
            !opts.iter().any(|o| o == gone),
            "run --help lists --{gone}:\n{h}"
        );
        if gone == "profile" {
            continue;
        }
        let flag = format!("--{gone}");
        let mut args = vec!["run", &flag];
        args.extend(value);
        args.push("/usr/bin/true");
        let err = usage_error(&args);
        assert!(err.contains(&format!("'--{gone}'")), "{err}");
    }
    for kept in [
        "root",
        "cwd",
        "argv0",
        "env-clear",
        "env",
        "no-randomize",
        "seed",
        "random-bytes",
        "binfmt-misc",
        "path-search",
    ] {
        assert!(
            opts.iter().any(|o| o == kept),
            "run --help lacks --{kept}:\n{h}"
        );
    }
}

/// `run --profile` says, in one line, that run needs the host profile.
#[test]
fn run_with_a_profile_says_it_needs_the_host_profile() {
    for p in ["aarch64", "x86_64"] {
        let err = usage_error(&["run", "--profile", p, "/usr/bin/true"]);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("run needs the host profile"), "{err}");
    }
}

/// `run --cwd DIR`: the plan resolves PROGRAM from DIR, and the program starts in DIR.
#[test]
fn run_starts_the_program_in_its_cwd() {
    let dir = progload_testkit::progs::TempDir::new().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::copy("/usr/bin/pwd", d.join("mypwd")).unwrap();
    let out = progload(&["run", "--cwd", d.to_str().unwrap(), "./mypwd"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        d.to_str().unwrap()
    );
}
