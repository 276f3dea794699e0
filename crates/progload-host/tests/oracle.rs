//! The live kernel as the oracle: each case execs a program under ptrace with
//! ADDR_NO_RANDOMIZE, stops at its first instruction, and compares the kernel's image with
//! progload's plan field by field. No expected address is written here.

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, SeededRng};
use progload_host::check::compare;
use progload_host::probe::{probe, ProbeOutcome, ProbeRequest};
use progload_host::{host_profile, HostFs};
use progload_testkit::progs;

struct Case {
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    rlimit: Option<Option<u64>>,
    cwd: Option<std::path::PathBuf>,
}

impl Case {
    fn new(path: impl AsRef<[u8]>) -> Self {
        let path = path.as_ref().to_vec();
        Case {
            argv: vec![path.clone(), b"x".to_vec()],
            path,
            env: vec![b"A=1".to_vec()],
            rlimit: None,
            cwd: None,
        }
    }
}

fn run(case: &Case) -> Vec<String> {
    let req = ProbeRequest {
        path: case.path.clone(),
        argv: Some(case.argv.clone()),
        envp: case.env.clone(),
        cwd: case.cwd.clone(),
        stack_rlimit: case.rlimit,
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let outcome = progload_host::probe::retry_busy(|| probe(&req)).expect("probe");
    let kernel = match outcome {
        ProbeOutcome::Stopped(k) => k,
        other => panic!(
            "kernel did not run {:?}: {other:?}",
            String::from_utf8_lossy(&case.path)
        ),
    };
    let mut profile = progload_host::host_profile_with_compat().expect("host profile");
    profile.personality |= ADDR_NO_RANDOMIZE;
    if let Some(r) = case.rlimit {
        profile.stack_rlimit = r;
    }
    let fs = HostFs::new("/").unwrap();
    let mut lr = LoadRequest::new(case.path.clone(), case.argv.clone(), case.env.clone());
    if let Some(cwd) = &case.cwd {
        let root = progload::resolve::DirPath::root(progload::FileSystem::root(&fs));
        lr.cwd = Some(
            progload::resolve::resolve_dir(
                &fs,
                &profile.credentials,
                &root,
                cwd.as_os_str().as_encoded_bytes(),
            )
            .unwrap(),
        );
    }
    let p = plan(&fs, &profile, &lr, &mut SeededRng::new(0)).expect("plan");
    compare(&p, &kernel)
        .into_iter()
        .map(|d| d.to_string())
        .collect()
}

fn assert_same(case: Case) {
    let diffs = run(&case);
    assert!(
        diffs.is_empty(),
        "{} differs from the kernel:\n{}",
        String::from_utf8_lossy(&case.path),
        diffs.join("\n")
    );
}

#[test]
fn usr_bin_true() {
    assert_same(Case::new("/usr/bin/true"));
}

#[test]
fn pie_with_interpreter() {
    assert_same(Case::new(progs::pie().as_os_str().as_encoded_bytes()));
}

#[test]
fn non_pie_with_interpreter() {
    assert_same(Case::new(progs::no_pie().as_os_str().as_encoded_bytes()));
}

#[test]
fn static_non_pie() {
    assert_same(Case::new(
        progs::static_exec().as_os_str().as_encoded_bytes(),
    ));
}

#[test]
fn static_pie() {
    assert_same(Case::new(
        progs::static_pie().as_os_str().as_encoded_bytes(),
    ));
}

#[test]
fn big_static_pie() {
    assert_same(Case::new(
        progs::big_static_pie().as_os_str().as_encoded_bytes(),
    ));
}

#[test]
fn max_page_size_2m() {
    assert_same(Case::new(
        progs::pie_align_2m().as_os_str().as_encoded_bytes(),
    ));
}

#[test]
fn execstack() {
    assert_same(Case::new(
        progs::pie_execstack().as_os_str().as_encoded_bytes(),
    ));
}

#[test]
fn asm_static() {
    assert_same(Case::new(progs::asm_exit().as_os_str().as_encoded_bytes()));
}

#[test]
fn ld_so_directly() {
    let mut c = Case::new("/lib64/ld-linux-x86-64.so.2");
    c.argv = vec![c.path.clone(), b"/usr/bin/true".to_vec()];
    assert_same(c);
}

#[test]
fn sh_script() {
    let dir = progs::TempDir::new().unwrap();
    let p = progs::write_sh_script(dir.path(), "s.sh").unwrap();
    assert_same(Case::new(p.as_os_str().as_encoded_bytes()));
}

#[test]
fn script_with_argument() {
    let dir = progs::TempDir::new().unwrap();
    let p = progs::write_sh_e_script(dir.path(), "s.sh").unwrap();
    assert_same(Case::new(p.as_os_str().as_encoded_bytes()));
}

#[test]
fn relative_path_with_cwd() {
    let mut c = Case::new("./true");
    c.cwd = Some("/usr/bin".into());
    assert_same(c);
}

#[test]
fn ulimit_variants() {
    for r in [Some(100 * 1024), Some(1 << 30), None] {
        for prog in [progs::pie(), progs::static_pie()] {
            let mut c = Case::new(prog.as_os_str().as_encoded_bytes());
            c.rlimit = Some(r);
            let diffs = run(&c);
            assert!(
                diffs.is_empty(),
                "rlimit {r:?} {}:\n{}",
                prog.display(),
                diffs.join("\n")
            );
        }
    }
}

#[test]
fn big_argument_and_no_env() {
    let mut c = Case::new("/usr/bin/true");
    c.argv.push(vec![b'a'; 100_000]);
    c.env.clear();
    assert_same(c);
}

/// The comparison can fail: a plan made with a different stack limit than the kernel's run
/// differs in its maps (the interpreter moves with mmap_base).
#[test]
fn wrong_profile_is_detected() {
    let req = ProbeRequest {
        path: b"/usr/bin/true".to_vec(),
        argv: Some(vec![b"/usr/bin/true".to_vec()]),
        envp: vec![],
        cwd: None,
        stack_rlimit: Some(Some(8 << 20)),
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let ProbeOutcome::Stopped(kernel) = probe(&req).unwrap() else {
        panic!("probe")
    };
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    profile.stack_rlimit = Some(1 << 30);
    let fs = HostFs::new("/").unwrap();
    let lr = LoadRequest::new(
        b"/usr/bin/true".to_vec(),
        vec![b"/usr/bin/true".to_vec()],
        vec![],
    );
    let p = plan(&fs, &profile, &lr, &mut SeededRng::new(0)).unwrap();
    let diffs = compare(&p, &kernel);
    assert!(
        diffs.iter().any(|d| d.field.starts_with("maps[")),
        "{diffs:?}"
    );
    assert!(
        diffs.iter().any(|d| d.field.contains("AT_BASE")),
        "{diffs:?}"
    );
    // And with the right limit there is nothing to report, maps included.
    profile.stack_rlimit = Some(8 << 20);
    let p = plan(&fs, &profile, &lr, &mut SeededRng::new(0)).unwrap();
    assert_eq!(compare(&p, &kernel), vec![]);
    assert!(kernel.maps.len() >= 8, "{:?}", kernel.maps);
    assert_eq!(p.maps().len(), kernel.maps.len());
}

/// i386 programs on this x86_64 kernel (`compat_binfmt_elf`): gcc -m32 builds of every kind,
/// each planned with the profile's compat part (the vdso32 and compat values a probe of a
/// 32-bit program captured) and compared with the kernel's ia32 task.
#[test]
fn i386_programs() {
    let compat = progload_host::host_profile_with_compat()
        .expect("host profile")
        .compat;
    assert!(
        compat.is_some(),
        "this x86_64 kernel must run i386 programs (IA32 emulation) for the compat profile"
    );
    for prog in [
        progs::Prog::Static32,
        progs::Prog::StaticPie32,
        progs::Prog::Pie32,
        progs::Prog::NoPie32,
        progs::Prog::PieExecStack32,
        progs::Prog::PieAlign2M32,
    ] {
        assert_same(Case::new(progs::path(prog).as_os_str().as_encoded_bytes()));
    }
}

/// Bytes that are not UTF-8 and a newline in the program's directory and name: the kernel
/// prints the newline in /proc/PID/maps as `\012` and keeps the other bytes in maps, exe and
/// comm as they are.
#[test]
fn odd_bytes_in_paths() {
    use std::os::unix::ffi::OsStrExt;
    let dir = progs::TempDir::new().unwrap();
    let sub = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"new\nline\xff"));
    std::fs::create_dir(&sub).unwrap();
    for prog in [progs::pie(), progs::static_exec()] {
        let to = sub.join(std::ffi::OsStr::from_bytes(b"pro\xfeg\n"));
        std::fs::copy(&prog, &to).unwrap();
        assert_same(Case::new(to.as_os_str().as_encoded_bytes()));
    }
}
