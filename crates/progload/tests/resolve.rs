//! Path resolution inside a root: namei rules over an in-memory filesystem.

use progload::fs::FileKind;
use progload::plan::Executable;
use progload::profile::{Credentials, ADDR_NO_RANDOMIZE};
use progload::resolve::DirPath;
use progload::{plan, Errno, FileSystem, LoadRequest, MemFs, Profile, SeededRng};
use progload_testkit::elfbuild::ElfBuilder;

fn fs() -> MemFs {
    let mut fs = MemFs::new();
    let elf = ElfBuilder::minimal_x86_64_exec().build();
    fs.add_file(b"/bin/prog", 0o755, elf.clone());
    fs.add_file(b"/bin/noexec", 0o644, elf.clone());
    fs.add_file(b"/bin/owneronly", 0o700, elf.clone()).uid = 1000;
    fs.add_file(b"/mnt/prog", 0o755, elf.clone()).noexec = true;
    fs.add_file(b"/bin/script", 0o755, &b"#!/bin/prog\n"[..]);
    fs.add_symlink(b"/abs", b"/bin/prog");
    fs.add_symlink(b"/bin/rel", b"prog");
    fs.add_symlink(b"/up", b"../../../../bin/prog");
    fs.add_symlink(b"/loop1", b"/loop2");
    fs.add_symlink(b"/loop2", b"/loop1");
    fs.add_symlink(b"/bindir", b"/bin");
    fs.add_dir(b"/locked", 0o700).uid = 0;
    fs.add_file(b"/locked/prog", 0o755, elf);
    fs.add_special(b"/dev/null", FileKind::CharDevice, 0o666);
    // A chain of links: /c0 -> /c1 -> ... -> /cN -> /bin/prog.
    for i in 0..45 {
        let target = if i == 44 {
            b"/bin/prog".to_vec()
        } else {
            format!("/c{}", i + 1).into_bytes()
        };
        fs.add_symlink(format!("/c{i}").as_bytes(), &target);
    }
    fs
}

fn profile() -> Profile {
    let mut p = Profile::linux_6_18_x86_64();
    p.personality |= ADDR_NO_RANDOMIZE;
    p
}

fn run_with(fs: &MemFs, p: &Profile, req: LoadRequest<usize>) -> Result<Vec<u8>, Errno> {
    plan(fs, p, &req, &mut SeededRng::new(0))
        .map(|p| p.exe)
        .map_err(|e| e.errno())
}

fn run(path: &str) -> Result<Vec<u8>, Errno> {
    run_with(
        &fs(),
        &profile(),
        LoadRequest::new(path, vec![b"x".to_vec()], vec![]),
    )
}

#[test]
fn dotdot_is_clamped_at_the_root_and_links_stay_inside() {
    assert_eq!(run("/../../bin/prog"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/abs"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/bin/rel"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/up"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/bindir/../bin/./prog"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/bindir/prog"), Ok(b"/bin/prog".to_vec()));
}

#[test]
fn symlink_limits() {
    // /c5 is followed by 40 links; /c4 needs 41.
    assert_eq!(run("/c5"), Ok(b"/bin/prog".to_vec()));
    assert_eq!(run("/c4"), Err(Errno::ELOOP));
    assert_eq!(run("/loop1"), Err(Errno::ELOOP));
    let mut req = LoadRequest::new("/abs", vec![b"x".to_vec()], vec![]);
    req.no_follow = true;
    assert_eq!(run_with(&fs(), &profile(), req), Err(Errno::ELOOP));
}

#[test]
fn path_errors() {
    assert_eq!(run(""), Err(Errno::ENOENT));
    assert_eq!(run("/nope"), Err(Errno::ENOENT));
    assert_eq!(run("/bin/prog/x"), Err(Errno::ENOTDIR));
    assert_eq!(run("/bin/prog/"), Err(Errno::ENOTDIR));
    assert_eq!(
        run(&format!("/{}", "a".repeat(256))),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(run(&"/a".repeat(2048)), Err(Errno::ENAMETOOLONG));
    assert_eq!(run("/bin"), Err(Errno::EACCES));
    assert_eq!(run("/bin/"), Err(Errno::EACCES));
    assert_eq!(run("/dev/null"), Err(Errno::EACCES));
    assert_eq!(run("/bin/noexec"), Err(Errno::EACCES));
    assert_eq!(run("/mnt/prog"), Err(Errno::EACCES));
}

#[test]
fn permissions_of_an_unprivileged_caller() {
    let mut p = profile();
    p.credentials = Credentials {
        uid: 1000,
        euid: 1000,
        gid: 1000,
        egid: 1000,
        groups: vec![],
        no_new_privs: false,
    };
    let req = |path: &str| LoadRequest::new(path, vec![b"x".to_vec()], vec![]);
    assert_eq!(run_with(&fs(), &p, req("/locked/prog")), Err(Errno::EACCES));
    assert_eq!(
        run_with(&fs(), &p, req("/bin/owneronly")),
        Ok(b"/bin/owneronly".to_vec())
    );
    p.credentials.euid = 1001;
    assert_eq!(
        run_with(&fs(), &p, req("/bin/owneronly")),
        Err(Errno::EACCES)
    );
}

#[test]
fn relative_paths_use_the_cwd() {
    let fs = fs();
    let p = profile();
    let root = DirPath::root(fs.root());
    let bin = progload::resolve::resolve_dir(&fs, &p.credentials, &root, b"/bin").unwrap();
    let mut req = LoadRequest::new("./prog", vec![b"x".to_vec()], vec![]);
    req.cwd = Some(bin);
    let planned = plan(&fs, &p, &req, &mut SeededRng::new(0)).unwrap();
    assert_eq!(planned.execfn, b"./prog");
    assert_eq!(planned.exe, b"/bin/prog");
    assert_eq!(planned.comm, b"prog");
}

#[test]
fn execveat_forms() {
    let fs = fs();
    let p = profile();
    let root = DirPath::root(fs.root());
    let node = fs
        .lookup(&fs.lookup(&fs.root(), b"bin").unwrap(), b"prog")
        .unwrap();
    let mut req = LoadRequest::new("", vec![b"x".to_vec()], vec![]);
    req.executable = Executable::Fd {
        fd: 3,
        node,
        path: b"/bin/prog".to_vec(),
        name: b"prog".to_vec(),
        cloexec: false,
    };
    let planned = plan(&fs, &p, &req, &mut SeededRng::new(0)).unwrap();
    assert_eq!(
        (planned.execfn.as_slice(), planned.comm.as_slice()),
        (&b"/dev/fd/3"[..], &b"prog"[..])
    );

    let bin = progload::resolve::resolve_dir(&fs, &p.credentials, &root, b"/bin").unwrap();
    req.executable = Executable::At {
        fd: 5,
        dir: bin.clone(),
        path: b"prog".to_vec(),
        cloexec: false,
    };
    let planned = plan(&fs, &p, &req, &mut SeededRng::new(0)).unwrap();
    assert_eq!(
        (planned.execfn.as_slice(), planned.comm.as_slice()),
        (&b"/dev/fd/5/prog"[..], &b"prog"[..])
    );

    // A script through a close-on-exec descriptor cannot be reopened by its interpreter.
    req.executable = Executable::At {
        fd: 5,
        dir: bin,
        path: b"script".to_vec(),
        cloexec: true,
    };
    assert_eq!(
        plan(&fs, &p, &req, &mut SeededRng::new(0))
            .map(|_| ())
            .map_err(|e| e.errno()),
        Err(Errno::ENOENT)
    );
}

/// TOMOYO before its realpath fallback (5.10.227, 6.1.113, 6.12) refuses an execveat whose
/// `/dev/fd/N/PATH` reaches PATH_MAX (ENOENT), after the open succeeded; with the fallback,
/// or without TOMOYO, the exec goes on. (The kernel farm's crafted `pathmax` cases are the
/// oracle: 5.10.223 refuses, 5.10.262 and 6.1.192 run it.)
#[test]
fn tomoyo_refuses_a_dev_fd_name_of_path_max() {
    use progload_testkit::elfbuild::{Arch, ET_EXEC};
    // "/dev/fd/5/" is 10 bytes: a relative path of 4086 makes the name 4096 long.
    let mut rel = Vec::new();
    while rel.len() + 201 < 4086 {
        rel.extend(std::iter::repeat_n(b'd', 200));
        rel.push(b'/');
    }
    let last = 4086 - rel.len();
    let mut shorter = rel.clone();
    rel.extend(std::iter::repeat_n(b'p', last));
    shorter.extend(std::iter::repeat_n(b'q', last - 1));
    assert_eq!((rel.len(), shorter.len()), (4086, 4085));
    let run = |preset: &str, tomoyo: bool, path: &[u8]| {
        let mut p = Profile::preset(preset).unwrap();
        p.tomoyo = tomoyo;
        let arch = if p.arch == progload::arch::Arch::Aarch64 {
            Arch::Aarch64
        } else {
            Arch::X86_64
        };
        let elf = ElfBuilder::minimal(ET_EXEC, arch.e_machine(), 0x40_0000, arch.exit0()).build();
        let mut fs = MemFs::new();
        for file in [&rel, &shorter] {
            let mut abs = b"/".to_vec();
            abs.extend_from_slice(file);
            fs.add_file(&abs, 0o755, elf.clone());
        }
        let mut req = LoadRequest::new("", vec![b"x".to_vec()], vec![]);
        req.executable = Executable::At {
            fd: 5,
            dir: DirPath::root(fs.root()),
            path: path.to_vec(),
            cloexec: false,
        };
        plan(&fs, &p, &req, &mut SeededRng::new(0))
            .map(|_| ())
            .map_err(|e| e.errno())
    };
    assert_eq!(run("aarch64-5.10", true, &rel), Err(Errno::ENOENT));
    assert_eq!(run("aarch64-5.10", true, &shorter), Ok(()));
    assert_eq!(run("aarch64-5.10", false, &rel), Ok(()));
    assert_eq!(run("x86_64-5.10", true, &rel), Ok(()));
    assert_eq!(run("x86_64-6.1", true, &rel), Ok(()));
    // An absolute path is the name itself.
    let mut abs = b"/".to_vec();
    abs.extend_from_slice(&rel);
    assert_eq!(run("aarch64-5.10", true, &abs), Ok(()));
}
