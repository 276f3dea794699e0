//! The crafted and gcc-built programs are accepted and run by the real kernel.

use progload_testkit::elfbuild::ElfBuilder;
use progload_testkit::progs::{self, Prog, TempDir};
use std::path::Path;
use std::process::{Command, ExitStatus};

/// Run `path` with no arguments, retrying on ETXTBSY (another test thread may have forked
/// while the file was open for writing).
fn run(path: &Path) -> ExitStatus {
    let mut tries = 0;
    loop {
        match Command::new(path).env_clear().status() {
            Ok(s) => return s,
            Err(e) if e.raw_os_error() == Some(libc_etxtbsy()) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("spawning {}: {e}", path.display()),
        }
    }
}

fn libc_etxtbsy() -> i32 {
    26 // ETXTBSY on Linux (all architectures)
}

fn is_x86_64_linux() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
}

#[test]
fn minimal_static_exec_runs() {
    if !is_x86_64_linux() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let bytes = ElfBuilder::minimal_x86_64_exec().build();
    let p = progs::write_executable(dir.path(), "exit0-exec", &bytes).unwrap();
    let status = run(&p);
    assert!(status.success(), "{status}");
}

#[test]
fn minimal_static_dyn_runs() {
    if !is_x86_64_linux() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let bytes = ElfBuilder::minimal_x86_64_dyn().build();
    let p = progs::write_executable(dir.path(), "exit0-dyn", &bytes).unwrap();
    let status = run(&p);
    assert!(status.success(), "{status}");
}

#[test]
fn exit_code_is_really_from_the_crafted_code() {
    // Guard against a vacuous pass: patching the exit code to 7 must be observed.
    if !is_x86_64_linux() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let mut b = ElfBuilder::minimal_x86_64_exec();
    // mov eax,60; mov edi,7; syscall
    let code = [0xb8, 0x3c, 0, 0, 0, 0xbf, 7, 0, 0, 0, 0x0f, 0x05];
    let off = progload_testkit::elfbuild::MINIMAL_CODE_OFFSET;
    b.payloads.clear();
    b.payload(off, &code);
    let len = off + code.len() as u64;
    b.phdrs[0].p_filesz = len;
    b.phdrs[0].p_memsz = len;
    let p = progs::write_executable(dir.path(), "exit7", &b.build()).unwrap();
    assert_eq!(run(&p).code(), Some(7));
}

#[test]
fn gcc_programs_build_and_run() {
    if !is_x86_64_linux() {
        return;
    }
    for prog in Prog::ALL {
        let p = progs::build(prog).unwrap();
        assert!(p.is_absolute(), "{}", p.display());
        let status = run(&p);
        assert!(status.success(), "{prog:?}: {status}");
    }
    // Built once per process: the same path again, no rebuild.
    assert_eq!(progs::build(Prog::Pie).unwrap(), progs::pie());
    let big = std::fs::metadata(progs::big_static_pie()).unwrap().len();
    assert!(big > 2 * 1024 * 1024, "big static-pie is only {big} bytes");
}

#[test]
fn gcc_programs_have_the_expected_elf_type() {
    if !is_x86_64_linux() {
        return;
    }
    let e_type = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        u16::from_le_bytes([b[16], b[17]])
    };
    let has_interp = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes([b[56], b[57]]) as usize;
        (0..phnum).any(|i| {
            let at = phoff + i * 56;
            u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == 3
        })
    };
    use progload_testkit::elfbuild::{ET_DYN, ET_EXEC};
    assert_eq!(e_type(&progs::pie()), ET_DYN);
    assert!(has_interp(&progs::pie()));
    assert_eq!(e_type(&progs::no_pie()), ET_EXEC);
    assert!(has_interp(&progs::no_pie()));
    assert_eq!(e_type(&progs::static_exec()), ET_EXEC);
    assert!(!has_interp(&progs::static_exec()));
    assert_eq!(e_type(&progs::static_pie()), ET_DYN);
    assert!(!has_interp(&progs::static_pie()));
    assert_eq!(e_type(&progs::asm_exit()), ET_EXEC);
    assert!(!has_interp(&progs::asm_exit()));
}

#[test]
fn scripts_run() {
    let dir = TempDir::new().unwrap();
    let a = progs::write_sh_script(dir.path(), "a.sh").unwrap();
    let b = progs::write_sh_e_script(dir.path(), "b.sh").unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [&a, &b] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert!(run(p).success());
    }
    assert!(std::fs::read(&b).unwrap().starts_with(b"#!/bin/sh -e\n"));
    let kept = dir.path().to_path_buf();
    drop(dir);
    assert!(!kept.exists());
}
