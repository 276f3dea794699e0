//! Tests of the kernel probe. They only check internal consistency of what the kernel built
//! (no addresses are hard-coded), plus the register values fixed by the x86_64 ABI.

use progload_host::probe::{
    probe, probe_native_supported, KernelImage, ProbeOutcome, ProbeRequest,
};
use progload_testkit::elfbuild::{ElfBuilder, ProgramHeader};
use progload_testkit::progs::{self, TempDir};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const AT_PHDR: u64 = 3;
const AT_BASE: u64 = 7;
const AT_ENTRY: u64 = 9;
const AT_EXECFN: u64 = 31;

/// Probe, retrying while a freshly written file is busy (see `retry_busy`).
fn run(req: &ProbeRequest) -> ProbeOutcome {
    progload_host::probe::retry_busy(|| probe(req)).expect("probe failed")
}

fn stopped(req: &ProbeRequest) -> KernelImage {
    match run(req) {
        ProbeOutcome::Stopped(img) => img,
        other => panic!("expected a stop, got {other:?}"),
    }
}

fn e_entry(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    u64::from_le_bytes(b[24..32].try_into().unwrap())
}

/// The argv/envp pointer arrays as seen on the initial stack.
fn stack_vectors(img: &KernelImage) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let rsp = img.regs.rsp;
    let argc = img.stack_word(rsp).unwrap();
    let mut argv = Vec::new();
    for i in 0..argc {
        let p = img.stack_word(rsp + 8 + 8 * i).unwrap();
        argv.push(img.stack_cstr(p).unwrap().to_vec());
    }
    assert_eq!(img.stack_word(rsp + 8 + 8 * argc), Some(0), "argv NULL");
    let mut envp = Vec::new();
    let mut at = rsp + 16 + 8 * argc;
    loop {
        let p = img.stack_word(at).unwrap();
        if p == 0 {
            break;
        }
        envp.push(img.stack_cstr(p).unwrap().to_vec());
        at += 8;
    }
    (argv, envp)
}

/// Checks that hold for every successful exec.
fn check_common(img: &KernelImage, execfn: &[u8]) {
    let r = &img.regs;
    // Stack.
    let stack = img.stack_mapping().expect("[stack]");
    assert_eq!(img.stack_top, stack.end);
    assert!(stack.contains(r.rsp));
    assert_eq!(r.rsp, img.mm.start_stack);
    assert_eq!(r.rsp % 16, 0, "rsp is 16-byte aligned at entry");
    assert_eq!(img.stack_bytes.len() as u64, img.stack_top - r.rsp);
    assert_eq!(&img.stack_bytes[img.stack_bytes.len() - 8..], &[0u8; 8]);
    // Code.
    let text = img.mapping_at(r.rip).expect("rip is mapped");
    assert!(text.perms.starts_with("r-x"), "rip in {text:?}");
    // auxv.
    assert_eq!(img.auxv.last(), Some(&(0, 0)));
    let fnaddr = img.auxv_get(AT_EXECFN).expect("AT_EXECFN");
    assert_eq!(img.stack_cstr(fnaddr), Some(execfn));
    // execfn is the topmost string, right below the 8 zero bytes.
    assert_eq!(fnaddr + execfn.len() as u64 + 1, img.stack_top - 8);
    let phdr = img.auxv_get(AT_PHDR).unwrap();
    assert!(img.mapping_at(phdr).is_some(), "AT_PHDR mapped");
    // mm fields bracket the argument and environment strings.
    let (argv, envp) = stack_vectors(img);
    let joined = |v: &[Vec<u8>]| {
        v.iter()
            .flat_map(|s| s.iter().copied().chain([0]))
            .collect::<Vec<u8>>()
    };
    let args = img.stack_slice(img.mm.arg_start).unwrap();
    let args = &args[..(img.mm.arg_end - img.mm.arg_start) as usize];
    assert_eq!(args, joined(&argv).as_slice());
    let env = img.stack_slice(img.mm.env_start).unwrap();
    let env = &env[..(img.mm.env_end - img.mm.env_start) as usize];
    assert_eq!(env, joined(&envp).as_slice());
    assert_eq!(img.mm.env_end, fnaddr);
    // Registers fixed by the ABI / start_thread.
    assert_eq!(r.rflags, 0x202);
    assert_eq!(r.cs, 0x33);
    assert_eq!(r.ss, 0x2b);
    assert_eq!(
        (r.ds, r.es, r.fs, r.gs, r.fs_base, r.gs_base),
        (0, 0, 0, 0, 0, 0)
    );
    for (name, v) in [
        ("rax", r.rax),
        ("rbx", r.rbx),
        ("rcx", r.rcx),
        ("rdx", r.rdx),
        ("rsi", r.rsi),
        ("rdi", r.rdi),
        ("rbp", r.rbp),
        ("r8", r.r8),
        ("r9", r.r9),
        ("r10", r.r10),
        ("r11", r.r11),
        ("r12", r.r12),
        ("r13", r.r13),
        ("r14", r.r14),
        ("r15", r.r15),
    ] {
        assert_eq!(v, 0, "{name}");
    }
    // brk(0) right after exec returns the initial break.
    assert_eq!(img.mm.brk, Some(img.mm.start_brk));
}

#[test]
fn usr_bin_true_is_consistent() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.argv = Some(vec![
        b"/usr/bin/true".to_vec(),
        b"x".to_vec(),
        b"yy".to_vec(),
    ]);
    req.envp = vec![b"A=1".to_vec(), b"BB=22".to_vec()];
    let img = stopped(&req);
    check_common(&img, b"/usr/bin/true");

    let argc = u64::from_le_bytes(img.stack_bytes[0..8].try_into().unwrap());
    assert_eq!(argc, 3);
    let (argv, envp) = stack_vectors(&img);
    assert_eq!(Some(argv), req.argv);
    assert_eq!(envp, req.envp);
    assert_eq!(img.comm, b"true");
    assert_eq!(img.exe, std::fs::canonicalize("/usr/bin/true").unwrap());

    // Dynamically linked: the kernel starts the interpreter, at AT_BASE + its e_entry, and
    // tells it where the program's entry point is.
    let base = img.auxv_get(AT_BASE).unwrap();
    assert_ne!(base, 0);
    let interp = img.mapping_at(base).expect("interpreter mapped at AT_BASE");
    assert_eq!(interp.offset, 0);
    assert_eq!(img.mapping_at(img.regs.rip).unwrap().path, interp.path);
    assert_eq!(
        img.regs.rip,
        base + e_entry(Path::new(OsStr::from_bytes(&interp.path)))
    );
    let entry = img.auxv_get(AT_ENTRY).unwrap();
    let main = img.mapping_at(entry).expect("AT_ENTRY mapped");
    assert_eq!(Path::new(OsStr::from_bytes(&main.path)), img.exe);
    assert!(img.mm.start_code <= entry && entry < img.mm.end_code);
}

#[test]
fn static_program_starts_at_its_entry() {
    if !probe_native_supported() {
        return;
    }
    let path = progs::asm_exit();
    let img = stopped(&ProbeRequest::new(path.as_os_str().as_bytes()));
    check_common(&img, path.as_os_str().as_bytes());
    assert_eq!(img.auxv_get(AT_BASE), Some(0));
    assert_eq!(img.auxv_get(AT_ENTRY), Some(img.regs.rip));
    assert_eq!(img.regs.rip, e_entry(&path));
    assert_eq!(img.comm, b"asm-exit");
    assert_eq!(img.exe, path);
}

#[test]
fn missing_file_is_enoent() {
    let out = probe(&ProbeRequest::new("/nonexistent/progload-probe-test")).unwrap();
    assert_eq!(
        out,
        ProbeOutcome::Refused {
            errno: libc::ENOENT
        }
    );
}

#[test]
fn directory_is_eacces() {
    let out = probe(&ProbeRequest::new("/usr/bin")).unwrap();
    assert_eq!(
        out,
        ProbeOutcome::Refused {
            errno: libc::EACCES
        }
    );
}

#[test]
fn null_argv_gives_one_empty_argument() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.argv = None;
    let img = stopped(&req);
    check_common(&img, b"/usr/bin/true");
    assert_eq!(
        u64::from_le_bytes(img.stack_bytes[0..8].try_into().unwrap()),
        1
    );
    let (argv, envp) = stack_vectors(&img);
    assert_eq!(argv, vec![Vec::<u8>::new()]);
    assert!(envp.is_empty());
}

#[test]
fn stack_rlimit_bounds_the_stack_vma() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.stack_rlimit = Some(Some(100 * 1024));
    let img = stopped(&req);
    check_common(&img, b"/usr/bin/true");
    assert_eq!(img.stack_mapping().unwrap().len(), 100 * 1024);
}

#[test]
fn unlimited_stack_rlimit_is_accepted() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.stack_rlimit = Some(None);
    let img = stopped(&req);
    check_common(&img, b"/usr/bin/true");
}

#[test]
fn no_randomize_is_deterministic() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.no_randomize = true;
    let a = stopped(&req);
    let b = stopped(&req);
    assert_eq!(a.regs, b.regs);
    assert_eq!(a.maps, b.maps);
    assert_eq!(a.mm, b.mm);
    // Everything on the stack except the 16 AT_RANDOM bytes is identical too.
    assert_eq!(a.stack_bytes.len(), b.stack_bytes.len());
    let random = a.auxv_get(25).unwrap() - a.regs.rsp;
    let differ: Vec<usize> = (0..a.stack_bytes.len())
        .filter(|&i| a.stack_bytes[i] != b.stack_bytes[i])
        .collect();
    assert!(
        differ
            .iter()
            .all(|&i| (random..random + 16).contains(&(i as u64))),
        "{differ:?}"
    );
}

#[test]
fn relative_path_with_cwd_stays_relative() {
    if !probe_native_supported() {
        return;
    }
    let mut req = ProbeRequest::new("./true");
    req.cwd = Some("/usr/bin".into());
    let img = stopped(&req);
    check_common(&img, b"./true");
    assert_eq!(img.comm, b"true");
}

#[test]
fn missing_cwd_is_a_probe_error() {
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.cwd = Some("/nonexistent/progload-probe-test".into());
    let err = probe(&req).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn nul_in_path_is_invalid_input() {
    let err = probe(&ProbeRequest::new(b"/usr/bin/tr\0ue")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn scripts_run_their_interpreter() {
    if !probe_native_supported() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let plain = progs::write_sh_script(dir.path(), "plain-script").unwrap();
    let with_arg = progs::write_sh_e_script(dir.path(), "arg-script").unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();

    let p = plain.as_os_str().as_bytes();
    let img = stopped(&ProbeRequest::new(p));
    check_common(&img, p);
    let (argv, _) = stack_vectors(&img);
    assert_eq!(argv, vec![b"/bin/sh".to_vec(), p.to_vec()]);
    assert_eq!(img.exe, sh);
    assert_eq!(img.comm, b"plain-script");

    let p = with_arg.as_os_str().as_bytes();
    let img = stopped(&ProbeRequest::new(p));
    check_common(&img, p);
    let (argv, _) = stack_vectors(&img);
    assert_eq!(argv, vec![b"/bin/sh".to_vec(), b"-e".to_vec(), p.to_vec()]);
    assert_eq!(img.exe, sh);
}

#[test]
fn failure_after_point_of_no_return_is_sigsegv() {
    if !probe_native_supported() {
        return;
    }
    // An interpreter without PT_LOAD makes load_elf_interp fail after begin_new_exec.
    let dir = TempDir::new().unwrap();
    let mut interp = ElfBuilder::minimal_x86_64_dyn();
    interp
        .phdrs
        .retain(|p| p.p_type != progload_testkit::elfbuild::PT_LOAD);
    let interp_path = progs::write_executable(dir.path(), "no-load.so", &interp.build()).unwrap();

    let mut main = ElfBuilder::minimal_x86_64_exec();
    let mut name = interp_path.as_os_str().as_bytes().to_vec();
    name.push(0);
    let at = 0x200;
    main.payload(at, &name);
    main.phdr(ProgramHeader::interp(at, 0x40_0000 + at, name.len() as u64));
    // The table grew by one entry and would run into the code: move it out of the way.
    main.header.e_phoff = 0x100;
    let main_path = progs::write_executable(dir.path(), "needs-bad-interp", &main.build()).unwrap();

    let out = run(&ProbeRequest::new(main_path.as_os_str().as_bytes()));
    assert_eq!(
        out,
        ProbeOutcome::Killed {
            signal: libc::SIGSEGV
        }
    );
}

#[test]
fn probes_leave_no_children_behind() {
    // /proc/<tid>/children lists the children of this thread (the forking thread is the
    // parent); every probe above and here must have reaped its child.
    let tid = unsafe_free_gettid();
    let children = format!("/proc/self/task/{tid}/children");
    if std::fs::metadata(&children).is_err() {
        return;
    }
    let _ = probe(&ProbeRequest::new("/usr/bin/true")).unwrap();
    let _ = probe(&ProbeRequest::new("/nonexistent")).unwrap();
    let mut req = ProbeRequest::new("/usr/bin/true");
    req.cwd = Some("/nonexistent".into());
    let _ = probe(&req).unwrap_err();
    assert_eq!(std::fs::read_to_string(&children).unwrap().trim(), "");
}

fn unsafe_free_gettid() -> i32 {
    // The last path component of /proc/thread-self is "<pid>/task/<tid>".
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}
