//! The kernel's own exec selftests (`tools/testing/selftests/exec/` in the 6.18 tree):
//! `binfmt_script.py`, `execveat.c`, `non-regular.c`, `null-argv.c`, `recursion-depth.c` and
//! `load_address.c`, rebuilt case by case. Upstream checks a fixed expectation (and, for runs,
//! the child's exit status); here the expectation is this kernel's outcome in this run, and
//! a run is compared in full with the plan.

use super::*;
use rustix::fs::OFlags;

const FS: &str = "selftest-binfmt-script";
const FX: &str = "selftest-execveat";
const FN: &str = "selftest-non-regular";
const FA: &str = "selftest-null-argv";
const FR: &str = "selftest-recursion-depth";
const FL: &str = "selftest-load-address";

/// The upstream cases not in the table, with the reason.
pub(super) const EXCLUDED: &[(&str, &str, &str)] = &[
    (
        FX,
        "execveat(fd, NULL, AT_EMPTY_PATH) → EFAULT",
        "a NULL pathname pointer is a user-memory fault; a plan request always has a name",
    ),
    (
        FX,
        "execveat(dot_dfd, \"execveat\", 0xFFFF) → EINVAL",
        "a LoadRequest has no raw flags word (see gVisor's ExecveatTest.InvalidFlags)",
    ),
    (
        FX,
        "execveat(99, \"\", AT_EMPTY_PATH) and execveat(99, \"execveat\", 0) → EBADF",
        "the plan has no descriptor table: an Executable names an object, not a number to \
         look up (an absolute path with the nonsense descriptor 99 is run)",
    ),
];

/// `BINPRM_BUF_SIZE`.
const SIZE: usize = 256;
/// `getconf NAME_MAX .`
const NAME_MAX: usize = 255;

const PERL: &str = "#!/usr/bin/perl
print \"Executed interpreter! Args:\\n\";
print \"0 : '$0'\\n\";
$counter = 1;
foreach my $a (@ARGV) {
    print \"$counter : '$a'\\n\";
    $counter++;
}
";

/// One `test()` of binfmt_script.py: a `#!` line of `size` bytes (without the newline) naming
/// `root + middle + target`, the middle filled so the line has exactly that size, and the
/// target (a perl script) created when named.
#[allow(clippy::too_many_arguments)]
fn script_test(
    t: &mut Table,
    name: &str,
    size: usize,
    leading: &str,
    root: &str,
    target: &str,
    fill: u8,
    arg: &str,
    newline: &str,
) {
    let hashbang = "#!";
    let mut remaining =
        size - hashbang.len() - leading.len() - root.len() - target.len() - arg.len();
    let mut middle = Vec::new();
    while remaining >= NAME_MAX {
        middle.extend(std::iter::repeat_n(fill, NAME_MAX - 1));
        middle.push(b'/');
        remaining -= NAME_MAX;
    }
    middle.extend(std::iter::repeat_n(fill, remaining));
    let base = t.dir().join("bs");
    let mut dirpath = root.as_bytes().to_vec();
    dirpath.extend_from_slice(&middle);
    if !target.is_empty() {
        let dir = base.join(std::ffi::OsStr::from_bytes(&dirpath));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bin = dirpath.clone();
        bin.extend_from_slice(target.as_bytes());
        let bin = base.join(std::ffi::OsStr::from_bytes(&bin));
        if !bin.exists() {
            std::fs::write(&bin, PERL).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut buf = format!("{hashbang}{leading}").into_bytes();
    buf.extend_from_slice(&dirpath);
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(arg.as_bytes());
    buf.extend_from_slice(newline.as_bytes());
    if !newline.is_empty() {
        buf.extend_from_slice(b"echo this is not really perl\n");
    }
    let script = format!("binfmt_script-{name}");
    t.file(&format!("bs/{script}"), &buf);
    let path = format!("./{script}");
    let c = t.make(FS, name, path.as_bytes()).cwd(base);
    t.cases.push(c);
}

fn binfmt_script(t: &mut Table) {
    std::fs::create_dir(t.dir().join("bs")).unwrap();
    // (name, size, leading, root, target, fill, arg, newline)
    type T = (
        &'static str,
        usize,
        &'static str,
        &'static str,
        &'static str,
        u8,
        &'static str,
        &'static str,
    );
    let d = ("", "./", "/perl", b'A', "", "\n");
    let tests: Vec<T> = vec![
        // Fail.
        ("too-big", SIZE + 80, d.0, d.1, d.2, d.3, d.4, d.5),
        ("exact", SIZE, d.0, d.1, d.2, d.3, d.4, d.5),
        ("exact-space", SIZE, " ", d.1, d.2, d.3, d.4, d.5),
        ("whitespace-too-big", SIZE + 71, d.0, "", "", b' ', d.4, d.5),
        ("truncated", SIZE + 17, "                   ", d.1, d.2, d.3, d.4, d.5),
        ("empty", 2, d.0, "", "", b'A', d.4, ""),
        ("spaces", SIZE - 1, d.0, "", "", b' ', d.4, ""),
        ("newline-prefix", SIZE - 1, "\n", "", "", b' ', d.4, d.5),
        // Ok.
        (
            "test.pl",
            439,
            " ",
            "./nix/store/bwav8kz8b3y471wjsybgzw84mrh4js9-perl-5.28.1/bin",
            d.2,
            d.3,
            " -I/nix/store/x6yyav38jgr924nkna62q3pkp0dgmzlx-perl5.28.1-File-Slurp-9999.25/lib/perl5/site_perl -I/nix/store/ha8v67sl8dac92r9z07vzr4gv1y9nwqz-perl5.28.1-Net-DBus-1.1.0/lib/perl5/site_perl -I/nix/store/dcrkvnjmwh69ljsvpbdjjdnqgwx90a9d-perl5.28.1-XML-Parser-2.44/lib/perl5/site_perl -I/nix/store/rmji88k2zz7h4zg97385bygcydrf2q8h-perl5.28.1-XML-Twig-3.52/lib/perl5/site_perl",
            d.5,
        ),
        ("one-under", SIZE - 1, d.0, d.1, d.2, d.3, d.4, d.5),
        ("two-under", SIZE - 2, d.0, d.1, d.2, d.3, d.4, d.5),
        ("exact-trunc-whitespace", SIZE, d.0, d.1, d.2, d.3, " ", d.5),
        ("exact-trunc-arg", SIZE, d.0, d.1, d.2, d.3, " f", d.5),
        ("one-under-full-arg", SIZE - 1, d.0, d.1, d.2, d.3, " f", d.5),
        ("one-under-no-nl", SIZE - 1, d.0, d.1, d.2, d.3, d.4, ""),
        ("half-under-no-nl", SIZE / 2, d.0, d.1, d.2, d.3, d.4, ""),
        ("one-under-trunc-arg", SIZE - 1, d.0, d.1, d.2, d.3, " ", d.5),
        ("one-under-leading", SIZE - 1, " ", d.1, d.2, d.3, d.4, d.5),
        ("one-under-leading-trunc-arg", SIZE - 1, " ", d.1, d.2, d.3, " ", d.5),
        ("two-under-no-nl", SIZE - 2, d.0, d.1, d.2, d.3, d.4, ""),
        ("two-under-trunc-arg", SIZE - 2, d.0, d.1, d.2, d.3, " ", d.5),
        ("two-under-leading", SIZE - 2, " ", d.1, d.2, d.3, d.4, d.5),
        ("two-under-leading-trunc-arg", SIZE - 2, " ", d.1, d.2, d.3, " ", d.5),
        // The same four at half the buffer (upstream reuses the names).
        ("two-under-no-nl (half)", SIZE / 2, d.0, d.1, d.2, d.3, d.4, ""),
        ("two-under-trunc-arg (half)", SIZE / 2, d.0, d.1, d.2, d.3, " ", d.5),
        ("two-under-leading (half)", SIZE / 2, " ", d.1, d.2, d.3, d.4, d.5),
        ("two-under-lead-trunc-arg (half)", SIZE / 2, " ", d.1, d.2, d.3, " ", d.5),
    ];
    assert_eq!(tests.len(), 27);
    for (name, size, leading, root, target, fill, arg, newline) in tests {
        let file = name.replace(' ', "").replace(['(', ')'], "-");
        script_test(t, &file, size, leading, root, target, fill, arg, newline);
        t.cases.last_mut().unwrap().name = name.to_string();
    }
}

fn execveat(t: &mut Table, fs: &TestFs) {
    let dir = t.dir().join("xa");
    std::fs::create_dir(&dir).unwrap();
    let p = |name: &str| dir.join(name);
    let w = |t: &Table, name: &str, body: &[u8], mode: u32| {
        t.file_mode(&format!("xa/{name}"), body, mode)
    };
    let elf = prog(ET_EXEC, &[]).build();
    const SCRIPT: &[u8] = b"#!/bin/bash\nexit $*\n";
    let exe = w(t, "execveat", &elf, 0o755);
    std::os::unix::fs::symlink("execveat", p("execveat.symlink")).unwrap();
    w(t, "execveat.denatured", &elf, 0o644);
    w(t, "script", SCRIPT, 0o755);
    w(t, "Makefile", b"all:\n", 0o644);
    std::fs::create_dir(p("subdir")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o755),
        0,
    )
    .unwrap();
    for name in [
        "execveat.ephemeral",
        "execveat.ephemeral2",
        "execveat.path.ephemeral",
    ] {
        w(t, name, &elf, 0o755);
    }
    for name in ["script.ephemeral", "script.ephemeral2"] {
        w(t, name, SCRIPT, 0o755);
    }
    for d in ["subdir.ephemeral", "subdir.ephemeral2"] {
        std::fs::create_dir(p(d)).unwrap();
        w(t, &format!("{d}/script"), SCRIPT, 0o755);
    }

    let o = |path: &Path, flags: OFlags| t.open(fs, path, flags);
    let subdir_dfd = o(&p("subdir"), OFlags::DIRECTORY | OFlags::RDONLY);
    let dot_dfd = o(&dir, OFlags::DIRECTORY | OFlags::RDONLY);
    let root_dfd = o(Path::new("/"), OFlags::DIRECTORY | OFlags::RDONLY);
    let dot_dfd_path = o(&dir, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::PATH);
    let fd = o(&p("execveat"), OFlags::RDONLY);
    let fd_path = o(&p("execveat"), OFlags::RDONLY | OFlags::PATH);
    let fd_symlink = o(&p("execveat.symlink"), OFlags::RDONLY);
    let fd_denatured = o(&p("execveat.denatured"), OFlags::RDONLY);
    let fd_denatured_path = o(&p("execveat.denatured"), OFlags::RDONLY | OFlags::PATH);
    let fd_script = o(&p("script"), OFlags::RDONLY);
    let fd_ephemeral = o(&p("execveat.ephemeral"), OFlags::RDONLY);
    let fd_ephemeral2 = o(&p("execveat.ephemeral2"), OFlags::RDONLY);
    let fd_ephemeral_path = o(&p("execveat.path.ephemeral"), OFlags::RDONLY | OFlags::PATH);
    let fd_script_ephemeral = o(&p("script.ephemeral"), OFlags::RDONLY);
    let fd_script_ephemeral2 = o(&p("script.ephemeral2"), OFlags::RDONLY);
    let subdir_dfd_ephemeral = o(&p("subdir.ephemeral"), OFlags::DIRECTORY | OFlags::RDONLY);
    let subdir_dfd_ephemeral2 = o(&p("subdir.ephemeral2"), OFlags::DIRECTORY | OFlags::RDONLY);

    // The renames and unlinks upstream makes between checks; each state has its own file.
    std::fs::rename(p("execveat.ephemeral"), p("execveat.moved")).unwrap();
    std::fs::rename(p("execveat.ephemeral2"), p("execveat.moved2")).unwrap();
    std::fs::remove_file(p("execveat.moved2")).unwrap();
    std::fs::remove_file(p("execveat.path.ephemeral")).unwrap();
    std::fs::rename(p("script.ephemeral"), p("script.moved")).unwrap();
    std::fs::rename(p("script.ephemeral2"), p("script.moved2")).unwrap();
    std::fs::remove_file(p("script.moved2")).unwrap();
    std::fs::rename(p("subdir.ephemeral"), p("subdir.moved")).unwrap();
    std::fs::rename(p("subdir.ephemeral2"), p("subdir.moved2")).unwrap();
    std::fs::remove_file(p("subdir.moved2/script")).unwrap();
    std::fs::remove_dir(p("subdir.moved2")).unwrap();

    let fullname = bytes(&exe);
    let fullname_symlink = bytes(&p("execveat.symlink"));
    let fullname_script = bytes(&p("script"));
    const E: i32 = libc::AT_EMPTY_PATH;
    const N: i32 = libc::AT_SYMLINK_NOFOLLOW;
    let open = |f: &Arc<OpenFd>| AtFd::Open(f.clone(), false);
    let cloexec = |f: &Arc<OpenFd>| AtFd::Open(f.clone(), true);
    let check: Vec<(&str, AtFd, Vec<u8>, i32)> = vec![
        (
            "subdir_dfd, \"../execveat\"",
            open(&subdir_dfd),
            b"../execveat".to_vec(),
            0,
        ),
        (
            "dot_dfd, \"execveat\"",
            open(&dot_dfd),
            b"execveat".to_vec(),
            0,
        ),
        (
            "dot_dfd_path, \"execveat\"",
            open(&dot_dfd_path),
            b"execveat".to_vec(),
            0,
        ),
        ("AT_FDCWD, fullname", AtFd::Cwd, fullname.clone(), 0),
        (
            "99, fullname (dirfd ignored)",
            AtFd::Raw(99),
            fullname.clone(),
            0,
        ),
        ("fd, \"\", AT_EMPTY_PATH", open(&fd), Vec::new(), E),
        (
            "fd_cloexec, \"\", AT_EMPTY_PATH",
            cloexec(&fd),
            Vec::new(),
            E,
        ),
        (
            "fd_path (O_PATH), \"\", AT_EMPTY_PATH",
            open(&fd_path),
            Vec::new(),
            E,
        ),
        (
            "fd_ephemeral (renamed), \"\", AT_EMPTY_PATH",
            open(&fd_ephemeral),
            Vec::new(),
            E,
        ),
        (
            "fd_ephemeral (deleted), \"\", AT_EMPTY_PATH",
            open(&fd_ephemeral2),
            Vec::new(),
            E,
        ),
        (
            "fd_ephemeral_path (O_PATH, deleted), \"\", AT_EMPTY_PATH",
            open(&fd_ephemeral_path),
            Vec::new(),
            E,
        ),
        ("fd, \"\", 0 (ENOENT)", open(&fd), Vec::new(), 0),
        (
            "dot_dfd, \"execveat.symlink\"",
            open(&dot_dfd),
            b"execveat.symlink".to_vec(),
            0,
        ),
        (
            "dot_dfd_path, \"execveat.symlink\"",
            open(&dot_dfd_path),
            b"execveat.symlink".to_vec(),
            0,
        ),
        (
            "AT_FDCWD, fullname_symlink",
            AtFd::Cwd,
            fullname_symlink.clone(),
            0,
        ),
        (
            "fd_symlink, \"\", AT_EMPTY_PATH",
            open(&fd_symlink),
            Vec::new(),
            E,
        ),
        (
            "fd_symlink, \"\", AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW",
            open(&fd_symlink),
            Vec::new(),
            E | N,
        ),
        (
            "dot_dfd, \"execveat.symlink\", AT_SYMLINK_NOFOLLOW (ELOOP)",
            open(&dot_dfd),
            b"execveat.symlink".to_vec(),
            N,
        ),
        (
            "dot_dfd_path, \"execveat.symlink\", AT_SYMLINK_NOFOLLOW (ELOOP)",
            open(&dot_dfd_path),
            b"execveat.symlink".to_vec(),
            N,
        ),
        (
            "AT_FDCWD, fullname_symlink, AT_SYMLINK_NOFOLLOW (ELOOP)",
            AtFd::Cwd,
            fullname_symlink,
            N,
        ),
        (
            "dot_dfd, \"pipe\" (EACCES)",
            open(&dot_dfd),
            b"pipe".to_vec(),
            0,
        ),
        (
            "subdir_dfd, \"../script\"",
            open(&subdir_dfd),
            b"../script".to_vec(),
            0,
        ),
        ("dot_dfd, \"script\"", open(&dot_dfd), b"script".to_vec(), 0),
        (
            "dot_dfd_path, \"script\"",
            open(&dot_dfd_path),
            b"script".to_vec(),
            0,
        ),
        ("AT_FDCWD, fullname_script", AtFd::Cwd, fullname_script, 0),
        (
            "fd_script, \"\", AT_EMPTY_PATH",
            open(&fd_script),
            Vec::new(),
            E,
        ),
        (
            "fd_script, \"\", AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW",
            open(&fd_script),
            Vec::new(),
            E | N,
        ),
        (
            "fd_script_cloexec, \"\", AT_EMPTY_PATH (ENOENT)",
            cloexec(&fd_script),
            Vec::new(),
            E,
        ),
        (
            "dot_dfd_cloexec, \"script\" (ENOENT)",
            cloexec(&dot_dfd),
            b"script".to_vec(),
            0,
        ),
        (
            "fd_script_ephemeral (renamed), \"\", AT_EMPTY_PATH",
            open(&fd_script_ephemeral),
            Vec::new(),
            E,
        ),
        (
            "fd_script_ephemeral (deleted), \"\", AT_EMPTY_PATH",
            open(&fd_script_ephemeral2),
            Vec::new(),
            E,
        ),
        (
            "subdir_dfd_ephemeral (renamed), \"../script\"",
            open(&subdir_dfd_ephemeral),
            b"../script".to_vec(),
            0,
        ),
        (
            "subdir_dfd_ephemeral (renamed), \"script\"",
            open(&subdir_dfd_ephemeral),
            b"script".to_vec(),
            0,
        ),
        (
            "subdir_dfd_ephemeral (removed), \"../script\"",
            open(&subdir_dfd_ephemeral2),
            b"../script".to_vec(),
            0,
        ),
        (
            "subdir_dfd_ephemeral (removed), \"script\" (ENOENT)",
            open(&subdir_dfd_ephemeral2),
            b"script".to_vec(),
            0,
        ),
        (
            "dot_dfd, \"no-such-file\"",
            open(&dot_dfd),
            b"no-such-file".to_vec(),
            0,
        ),
        (
            "dot_dfd_path, \"no-such-file\"",
            open(&dot_dfd_path),
            b"no-such-file".to_vec(),
            0,
        ),
        (
            "AT_FDCWD, \"no-such-file\"",
            AtFd::Cwd,
            b"no-such-file".to_vec(),
            0,
        ),
        (
            "dot_dfd, \"\", AT_EMPTY_PATH (a directory)",
            open(&dot_dfd),
            Vec::new(),
            E,
        ),
        (
            "dot_dfd, \"Makefile\" (not executable)",
            open(&dot_dfd),
            b"Makefile".to_vec(),
            0,
        ),
        (
            "fd_denatured, \"\", AT_EMPTY_PATH",
            open(&fd_denatured),
            Vec::new(),
            E,
        ),
        (
            "fd_denatured_path (O_PATH), \"\", AT_EMPTY_PATH",
            open(&fd_denatured_path),
            Vec::new(),
            E,
        ),
        (
            "fd, \"execveat\" (ENOTDIR)",
            open(&fd),
            b"execveat".to_vec(),
            0,
        ),
    ];
    for (name, dirfd, path, flags) in check {
        let c = t
            .make(FX, name, &path)
            .argv(Some(vec![b"execveat".to_vec(), b"99".to_vec()]))
            .envp(vec![b"IN_TEST=yes".to_vec()])
            .cwd(&dir)
            .via(Via::At { dirfd, flags });
        t.cases.push(c);
    }

    // check_execveat_pathmax(): a copy at a path just under PATH_MAX (4094 bytes), run by an
    // O_RDONLY descriptor and by a path relative to "/".
    const XX_DIR_LEN: usize = 200;
    let cwd = bytes(&dir);
    let count = (4096 - 3 - cwd.len()) / XX_DIR_LEN;
    let mut long = cwd.clone();
    long.push(b'/');
    for _ in 0..count {
        long.extend(std::iter::repeat_n(b'x', XX_DIR_LEN - 1));
        long.push(b'/');
        std::fs::create_dir(std::ffi::OsStr::from_bytes(&long)).unwrap();
    }
    let len = (4096 - 3 - cwd.len()) - count * XX_DIR_LEN;
    for (src, last, is_script) in [(&elf[..], b'y', false), (SCRIPT, b'z', true)] {
        let mut path = long.clone();
        path.extend(std::iter::repeat_n(last, len.max(1)));
        assert_eq!(path.len(), 4094);
        let pb = PathBuf::from(std::ffi::OsStr::from_bytes(&path));
        write_executable(
            pb.parent().unwrap(),
            pb.file_name().unwrap().to_str().unwrap(),
            src,
        )
        .unwrap();
        let what = if is_script { "script" } else { "execveat" };
        let lfd = t.open(fs, &pb, OFlags::RDONLY);
        for (name, dirfd, p, flags) in [
            (
                format!("pathmax({what}): fd on a 4094-byte path, \"\", AT_EMPTY_PATH"),
                AtFd::Open(lfd, false),
                Vec::new(),
                E,
            ),
            (
                format!("pathmax({what}): root_dfd, the 4093-byte relative path"),
                open(&root_dfd),
                path[1..].to_vec(),
                0,
            ),
        ] {
            let c = t
                .make(FX, name, &p)
                .argv(Some(vec![b"execveat".to_vec(), b"99".to_vec()]))
                .envp(vec![b"IN_TEST=yes".to_vec()])
                .cwd(&dir)
                .via(Via::At { dirfd, flags });
            t.cases.push(c);
        }
    }
}

fn non_regular(t: &mut Table, fs: &TestFs) {
    let dir = t.dir().join("nr");
    std::fs::create_dir(&dir).unwrap();
    let add = |t: &mut Table, name: &str, path: &Path| {
        let c = t.make(FN, name, bytes(path));
        t.cases.push(c);
    };
    let link = dir.join("S_IFLNK.test");
    std::os::unix::fs::symlink("/usr/bin/true", &link).unwrap();
    add(t, "S_IFLNK: execv() of a link to /usr/bin/true", &link);
    let c = t
        .make(FN, "S_IFLNK with AT_SYMLINK_NOFOLLOW", bytes(&link))
        .via(Via::At {
            dirfd: AtFd::Cwd,
            flags: libc::AT_SYMLINK_NOFOLLOW,
        });
    t.cases.push(c);
    let lfd = t.open(fs, &link, OFlags::PATH | OFlags::NOFOLLOW);
    let c = t
        .make(FN, "S_IFLNK through an O_PATH|O_NOFOLLOW descriptor", b"")
        .via(Via::At {
            dirfd: AtFd::Open(lfd, false),
            flags: libc::AT_EMPTY_PATH,
        });
    t.cases.push(c);
    let d = dir.join("S_IFDIR.test");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    add(t, "S_IFDIR", &d);
    for (name, kind, dev) in [
        (
            "S_IFBLK (7:0, /dev/loop0)",
            rustix::fs::FileType::BlockDevice,
            rustix::fs::makedev(7, 0),
        ),
        (
            "S_IFCHR (1:5, /dev/zero)",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(1, 5),
        ),
        ("S_IFIFO", rustix::fs::FileType::Fifo, 0),
    ] {
        let p = dir.join(format!("{}.test", &name[..7]));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            kind,
            rustix::fs::Mode::from_raw_mode(0o755),
            dev,
        )
        .unwrap();
        add(t, name, &p);
    }
    // fexecve(socket): execveat(fd, "", AT_EMPTY_PATH).
    let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let sfd: OwnedFd = sock.into();
    let c = t
        .make(FN, "S_IFSOCK: fexecve() of a socket", b"")
        .argv(Some(vec![b" magic socket ".to_vec()]))
        .envp(vec![])
        .via(Via::At {
            dirfd: AtFd::Open(OpenFd::object(sfd), false),
            flags: libc::AT_EMPTY_PATH,
        });
    t.cases.push(c);
}

fn null_argv(t: &mut Table) {
    let elf = bytes(&t.file("null-argv", &prog(ET_EXEC, &[]).build()));
    let envp = vec![b"A=1".to_vec(), b"HOME=/root".to_vec()];
    for (name, argv, env) in [
        ("execve(p, {\"\"}, NULL)", Some(vec![Vec::new()]), vec![]),
        ("execve(p, NULL, NULL)", None, vec![]),
        ("execve(p, NULL, envp)", None, envp.clone()),
        ("execve(p, {}, NULL)", Some(vec![]), vec![]),
        ("execve(p, {}, envp)", Some(vec![]), envp.clone()),
    ] {
        let c = t
            .make(FA, format!("{name} (a NULL envp passes no strings)"), &elf)
            .argv(argv)
            .envp(env);
        t.cases.push(c);
    }
}

fn recursion_depth(t: &mut Table) {
    let p = t.dir().join("1");
    t.file("1", format!("#!{}\n", p.display()).as_bytes());
    let c = t
        .make(
            FR,
            "#! pointing at itself, execve(p, NULL, NULL)",
            bytes(&p),
        )
        .argv(None)
        .envp(vec![]);
    t.cases.push(c);
}

/// load_address.c, built as PIE and static-PIE with three `max-page-size` values. Where no
/// compiler runs (the kernel farm's guests), `PROGLOAD_LOAD_ADDRESS_DIR` names a directory
/// holding the six programs already built (`load_address.KIND.ALIGN`).
fn load_address(t: &mut Table) {
    let dir = t.dir().join("la");
    std::fs::create_dir(&dir).unwrap();
    let src = dir.join("load_address.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let prebuilt = std::env::var_os("PROGLOAD_LOAD_ADDRESS_DIR").map(std::path::PathBuf::from);
    for (kind, flag) in [("pie", "-pie"), ("static-pie", "-static-pie")] {
        for align in ["0x1000", "0x200000", "0x1000000"] {
            let name = format!("load_address.{kind}.{align}");
            if let Some(pre) = &prebuilt {
                let c = t.make(
                    FL,
                    format!("{kind}, max-page-size {align}"),
                    bytes(&pre.join(name)),
                );
                t.cases.push(c);
                continue;
            }
            let out = dir.join(name);
            let status = std::process::Command::new("cc")
                .args(["-O1", "-fPIE", flag])
                .arg(format!("-Wl,-z,max-page-size={align}"))
                .arg("-o")
                .arg(&out)
                .arg(&src)
                .status()
                .expect("running cc");
            assert!(status.success(), "cc {flag} max-page-size={align} failed");
            let c = t.make(FL, format!("{kind}, max-page-size {align}"), bytes(&out));
            t.cases.push(c);
        }
    }
}

pub(super) fn cases(t: &mut Table, fs: &TestFs) {
    binfmt_script(t);
    execveat(t, fs);
    non_regular(t, fs);
    null_argv(t);
    recursion_depth(t);
    load_address(t);
}
