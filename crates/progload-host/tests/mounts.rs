//! Mount options against the kernel: programs, interpreters and `#!` scripts on `noexec` and
//! `nosuid` tmpfs mounts, run by root and by uid 1000. `noexec` refuses the exec (EACCES),
//! also for a PT_INTERP or `#!` interpreter there; `nosuid` keeps set-id bits from applying.
//! Each case is the kernel's exec under ptrace against the plan (errno, or the whole image
//! including the ids of /proc/PID/status and AT_SECURE).
//!
//! Needs root (mount, chown, setresuid).

mod callers;

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use progload_testkit::progs::{self, TempDir};

/// A tmpfs mounted with `opts` at `dir/name`, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path, name: &str, opts: &str) -> Mount {
        let at = dir.join(name);
        std::fs::create_dir(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{opts},mode=755"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -o {opts} {}: {st}", at.display());
        Mount(at)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Removes a file on drop.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn install(src: &Path, dst: PathBuf, mode: u32) -> String {
    std::fs::copy(src, &dst).unwrap();
    chown(&dst, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).unwrap();
    dst.into_os_string().into_string().unwrap()
}

fn script(dst: PathBuf, interpreter: &str) -> String {
    std::fs::write(&dst, format!("#!{interpreter}\nexit 0\n")).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst.into_os_string().into_string().unwrap()
}

#[test]
fn noexec_and_nosuid_mounts_match_the_kernel() {
    callers::require_root("it mounts tmpfs");
    let tmp = TempDir::new().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let noexec = Mount::new(tmp.path(), "noexec", "noexec");
    let nosuid = Mount::new(tmp.path(), "nosuid", "nosuid");
    let plain = Mount::new(tmp.path(), "plain", "exec,suid");
    let true_bin = Path::new("/usr/bin/true");
    let dynamic = progs::pie();

    // An interpreter (ld.so's copy) on the noexec mount, named by a program elsewhere.
    let ldso = install(
        Path::new("/lib64/ld-linux-x86-64.so.2"),
        noexec.0.join("ld.so"),
        0o755,
    );
    // A program whose PT_INTERP names that copy, through a short link in /tmp (the name must
    // fit in place of the original one).
    let link = PathBuf::from(format!("/tmp/pl-ld-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&ldso, &link).unwrap();
    let _unlink = Unlink(link.clone());
    let interp_on_noexec = {
        let mut bytes = std::fs::read(&dynamic).unwrap();
        let old = b"/lib64/ld-linux-x86-64.so.2\0";
        let at = bytes
            .windows(old.len())
            .position(|w| w == old)
            .expect("PT_INTERP string");
        let new = link.as_os_str().as_encoded_bytes();
        assert!(new.len() < old.len(), "{}", link.display());
        bytes[at..at + new.len()].copy_from_slice(new);
        bytes[at + new.len()] = 0;
        let p = plain.0.join("interp-on-noexec");
        std::fs::write(&p, &bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.into_os_string().into_string().unwrap()
    };

    let files: Vec<(&str, String)> = vec![
        (
            "program on noexec",
            install(true_bin, noexec.0.join("true"), 0o755),
        ),
        ("script on noexec", script(noexec.0.join("s"), "/bin/sh")),
        (
            "script with interpreter on noexec",
            script(plain.0.join("s-noexec-interp"), &ldso),
        ),
        (
            "setuid on nosuid",
            install(true_bin, nosuid.0.join("suid"), 0o4755),
        ),
        (
            "setgid on nosuid",
            install(true_bin, nosuid.0.join("sgid"), 0o2755),
        ),
        (
            "setuid on plain",
            install(true_bin, plain.0.join("suid"), 0o4755),
        ),
        (
            "program on nosuid",
            install(true_bin, nosuid.0.join("true"), 0o755),
        ),
        ("PT_INTERP on noexec", interp_on_noexec),
    ];
    let files: Vec<(&str, Vec<u8>)> = files
        .into_iter()
        .map(|(name, path)| (name, path.into_bytes()))
        .collect();
    let m = callers::Matrix::run(&files, &callers::root_and_user(), 0);
    m.assert_all_agree();
    // What each case is about: noexec refuses, nosuid runs without set-id, a set-id file on
    // a plain mount is set-id.
    m.assert_kinds(|f, _| {
        if f.contains("noexec") {
            "refused EACCES"
        } else if f == "setuid on plain" {
            "identical (set-id)"
        } else {
            "identical"
        }
    });
    drop((noexec, nosuid, plain));
}
