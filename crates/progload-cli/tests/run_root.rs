//! `progload run --root DIR` and `--cwd`: the program runs with DIR as its `/` (entered with
//! `chroot` by root, in a new user namespace by anyone else) and starts in `--cwd`; the
//! program, its `#!` interpreter, ld.so and the libraries it loads all come from DIR. The root
//! is a busybox-only tree (Debian's amd64 busybox-static, fetched by
//! `scripts/fetch-debian.sh amd64`) plus a gcc-built program whose library exists only there.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use progload_testkit::progs::{target_dir, write_executable, TempDir};

const PROGLOAD: &str = env!("CARGO_BIN_EXE_progload");
const NOBODY: u32 = 65534;
const MARKER: &str = "a library found only in the root";

/// Prints the ids and the effective and permitted capability sets (capget, as hex).
const CREDS_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>
int main(void) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = { 0 };
    if (syscall(SYS_capget, &h, d) != 0) return 1;
    printf("uid %u euid %u gid %u egid %u CapEff %08x%08x CapPrm %08x%08x\n", getuid(), geteuid(),
           getgid(), getegid(), d[1].effective, d[0].effective, d[1].permitted, d[0].permitted);
    return 0;
}
"#;

fn busybox() -> PathBuf {
    let p = match std::env::var_os("PROGLOAD_AMD64_ROOT") {
        Some(r) => PathBuf::from(r),
        None => target_dir().join("amd64-debian/root"),
    }
    .join("bin/busybox");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/fetch-debian.sh amd64` (scripts/test.sh does)",
        p.display()
    );
    p
}

fn gcc(args: &[&str]) {
    let out = Command::new("gcc").args(args).output().expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_resolved(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(std::fs::canonicalize(from).unwrap(), to).unwrap();
}

/// The root: busybox and its applets in /bin, /etc, a `#!/bin/sh` script, and a dynamic
/// program with ld.so, libc and its own library, which exists nowhere else.
fn tree(work: &Path) -> PathBuf {
    let r = work.join("root");
    for d in [
        "bin",
        "etc",
        "lib/x86_64-linux-gnu",
        "lib64",
        "only-in-root",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox(), r.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "pwd", "echo", "cat"] {
        symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    std::fs::write(r.join("etc/hostname"), "in-the-root\n").unwrap();
    write_executable(
        &r.join("bin"),
        "greet.sh",
        b"#!/bin/sh\necho \"script $0 in $(pwd)\"\ncat /etc/hostname\n",
    )
    .unwrap();

    let lib_c = work.join("lib.c");
    std::fs::write(
        &lib_c,
        format!("const char *root_marker(void) {{ return \"{MARKER}\"; }}\n"),
    )
    .unwrap();
    let lib = r.join("lib/libprogloadroot.so");
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        lib.to_str().unwrap(),
        lib_c.to_str().unwrap(),
    ]);
    let main_c = work.join("main.c");
    std::fs::write(
        &main_c,
        "#include <stdio.h>\nconst char *root_marker(void);\n\
         int main(void) { puts(root_marker()); return 0; }\n",
    )
    .unwrap();
    let creds_c = work.join("creds.c");
    std::fs::write(&creds_c, CREDS_C).unwrap();
    let creds = r.join("bin/creds");
    gcc(&[
        "-O1",
        "-o",
        creds.to_str().unwrap(),
        creds_c.to_str().unwrap(),
    ]);
    let prog = r.join("bin/rootlib");
    gcc(&[
        "-o",
        prog.to_str().unwrap(),
        main_c.to_str().unwrap(),
        "-L",
        r.join("lib").to_str().unwrap(),
        "-lprogloadroot",
    ]);
    // ld.so at the program's PT_INTERP, libc where ld.so looks for it.
    copy_resolved(
        Path::new("/lib64/ld-linux-x86-64.so.2"),
        &r.join("lib64/ld-linux-x86-64.so.2"),
    );
    let libc = Command::new("gcc")
        .arg("-print-file-name=libc.so.6")
        .output()
        .unwrap();
    let libc = String::from_utf8(libc.stdout).unwrap();
    copy_resolved(
        Path::new(libc.trim()),
        &r.join("lib/x86_64-linux-gnu/libc.so.6"),
    );
    // Searchable by an unprivileged user.
    for d in [work, r.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    r
}

fn run(root: &Path, uid: Option<u32>, args: &[&str]) -> Output {
    let mut c = Command::new(PROGLOAD);
    c.arg("run").arg("--root").arg(root).args(args);
    c.env_clear().env("PATH", "/bin");
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    c.output().expect("run progload")
}

fn stdout_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The five cases of the issue, as the caller `uid` (None: this process, root).
fn cases(root: &Path, uid: Option<u32>) {
    let mut want: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    want.sort();
    let ls = stdout_of(&run(root, uid, &["/bin/ls", "-1", "/"]), "ls /");
    assert_eq!(ls.lines().collect::<Vec<_>>(), want, "ls / lists the root");

    let pwd = stdout_of(&run(root, uid, &["--cwd", "/etc", "/bin/pwd"]), "pwd");
    assert_eq!(pwd, "/etc\n");
    // A relative PROGRAM resolves from --cwd inside the root, and starts there.
    let pwd = stdout_of(&run(root, uid, &["--cwd", "/bin", "./pwd"]), "./pwd");
    assert_eq!(pwd, "/bin\n");
    // Without --cwd, the program starts in the root's `/`.
    let pwd = stdout_of(&run(root, uid, &["/bin/pwd"]), "pwd at /");
    assert_eq!(pwd, "/\n");

    let lib = stdout_of(&run(root, uid, &["/bin/rootlib"]), "rootlib");
    assert_eq!(lib, format!("{MARKER}\n"));

    let script = stdout_of(&run(root, uid, &["/bin/greet.sh"]), "greet.sh");
    assert_eq!(script, "script /bin/greet.sh in /\nin-the-root\n");
}

#[test]
fn root_runs_in_its_root_with_chroot() {
    let work = TempDir::new().unwrap();
    let root = tree(work.path());
    // The library exists only in the root: the host cannot run the program.
    let direct = Command::new(root.join("bin/rootlib")).output().unwrap();
    assert!(
        !direct.status.success(),
        "the host found libprogloadroot.so"
    );
    cases(&root, None);
    // As root the capabilities are this process's (a kernel exec by uid 0 keeps them all).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let creds = stdout_of(&run(&root, None, &["/bin/creds"]), "creds");
    let ids = |name: &str| {
        let v: Vec<String> = field(name).split_whitespace().map(String::from).collect();
        (v[0].clone(), v[1].clone())
    };
    let (uid, euid) = ids("Uid:");
    let (gid, egid) = ids("Gid:");
    assert_eq!(
        creds,
        format!(
            "uid {uid} euid {euid} gid {gid} egid {egid} CapEff {} CapPrm {}\n",
            field("CapEff:"),
            field("CapPrm:")
        )
    );
}

/// Whether this kernel lets an unprivileged user make a user namespace (the sysctls that
/// refuse it: Debian's, the generic limit, Ubuntu's AppArmor restriction).
fn unprivileged_user_namespaces() -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v != "0")
        && read("/proc/sys/user/max_user_namespaces").is_none_or(|v| v != "0")
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_none_or(|v| v != "1")
}

#[test]
fn an_unprivileged_user_runs_in_the_root_in_a_user_namespace() {
    let work = TempDir::new().unwrap();
    let root = tree(work.path());
    if unprivileged_user_namespaces() {
        cases(&root, Some(NOBODY));
        // The program keeps the caller's ids and none of the namespace's capabilities, as
        // after a kernel exec by a non-zero uid.
        let creds = stdout_of(&run(&root, Some(NOBODY), &["/bin/creds"]), "creds");
        assert_eq!(
            creds,
            "uid 65534 euid 65534 gid 65534 egid 65534 CapEff 0000000000000000 \
             CapPrm 0000000000000000\n"
        );
    } else {
        let out = run(&root, Some(NOBODY), &["/bin/pwd"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{err}");
        assert!(err.contains("unshare"), "{err}");
    }
}

/// Without a root, an unprivileged caller cannot set /proc/PID/exe: the error comes before the
/// point of no return (exit 126 with the reason), not a SIGSEGV after it.
#[test]
fn an_unprivileged_run_without_a_root_fails_before_the_point_of_no_return() {
    let out = Command::new(PROGLOAD)
        .args(["run", "/bin/true"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(
        err.contains("EPERM") && err.contains("CAP_CHECKPOINT_RESTORE") && err.contains("--root"),
        "{err}"
    );
}
