//! `progload run` through binfmt_misc rules with `O` and `C`: the interpreter gets the
//! program open at `AT_EXECFD`, and with `C` the program's set-id bits decide the credentials,
//! as in a kernel exec of the same file from the same parent (compared with one).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use progload_testkit::binfmt_misc::register;
use progload_testkit::progs::{write_executable, TempDir};

const PROGLOAD: &str = env!("CARGO_BIN_EXE_progload");

/// The interpreter: AT_EXECFD, what it is open on (path, offset, flags but the kernel's
/// internal FMODE_EXEC bit 040, which an open from user space cannot set; see the README),
/// its first bytes, the ids and argv.
const INTERP_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    long fd = getauxval(AT_EXECFD);
    char path[256] = {0}, name[64], info[512] = {0}, head[8] = {0};
    snprintf(name, sizeof name, "/proc/self/fd/%ld", fd);
    readlink(name, path, sizeof path - 1);
    snprintf(name, sizeof name, "/proc/self/fdinfo/%ld", fd);
    int f = open(name, O_RDONLY); read(f, info, sizeof info - 1); close(f);
    char *flags = strstr(info, "flags:");
    unsigned long fl = flags ? strtoul(flags + 6, 0, 8) : 0;
    ssize_t n = pread(fd, head, 5, 0);
    printf("execfd %ld -> %s flags %lo (write %d) head %zd [%s]\n", fd, path, fl & ~040ul,
           (int)(fcntl(fd, F_GETFL) & O_ACCMODE), n, head);
    printf("cloexec %d\n", fcntl(fd, F_GETFD));
    uid_t r, e, s; gid_t rg, eg, sg;
    getresuid(&r, &e, &s); getresgid(&rg, &eg, &sg);
    printf("uid %u %u %u gid %u %u %u secure %lu\n", r, e, s, rg, eg, sg, getauxval(AT_SECURE));
    for (int i = 0; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
    return 0;
}
"#;

fn build_interp(dir: &Path) -> String {
    let src = dir.join("interp.c");
    std::fs::write(&src, INTERP_C).unwrap();
    let out_path = dir.join("interp");
    let out = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&out_path)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_path.to_str().unwrap().to_string()
}

/// The program's output run by the kernel and through `progload run`, from the same parent.
fn both(program: &Path) -> (String, String) {
    let text = |out: std::process::Output, who: &str| {
        assert!(
            out.status.success(),
            "{who}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let kernel = text(
        Command::new(program).env_clear().output().unwrap(),
        "kernel",
    );
    let ours = text(
        Command::new(PROGLOAD)
            .arg("run")
            .arg(program)
            .env_clear()
            .output()
            .unwrap(),
        "progload run",
    );
    (kernel, ours)
}

#[test]
fn open_binary_rule_passes_the_program_at_execfd() {
    let dir = TempDir::new().unwrap();
    let interp = build_interp(dir.path());
    let ext = format!("plorunO{}", std::process::id());
    let name = format!("progload-run-o-{}", std::process::id());
    let _rule = register(&format!(":{name}:E::{ext}::{interp}:O"), &name);
    let prog = write_executable(dir.path(), &format!("data.{ext}"), b"hello world\n").unwrap();
    let (kernel, ours) = both(&prog);
    assert!(kernel.starts_with("execfd 3 -> "), "{kernel}");
    assert!(kernel.contains("head 5 [hello]"), "{kernel}");
    assert_eq!(ours, kernel);
}

#[test]
fn credentials_rule_takes_the_programs_set_id_bits() {
    let dir = TempDir::new().unwrap();
    let interp = build_interp(dir.path());
    let ext = format!("plorunC{}", std::process::id());
    let name = format!("progload-run-c-{}", std::process::id());
    let _rule = register(&format!(":{name}:E::{ext}::{interp}:C"), &name);
    let prog = write_executable(dir.path(), &format!("data.{ext}"), b"set-id data\n").unwrap();
    std::os::unix::fs::chown(&prog, Some(1234), Some(2345)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let (kernel, ours) = both(&prog);
    assert!(
        kernel.contains("uid 0 1234 1234 gid 0 2345 2345 secure 1"),
        "{kernel}"
    );
    assert_eq!(ours, kernel);
}
