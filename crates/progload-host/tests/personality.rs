//! Personality flags against the kernel: MMAP_PAGE_ZERO, READ_IMPLIES_EXEC and
//! ADDR_COMPAT_LAYOUT (the legacy bottom-up layout), alone and together, for PIE, non-PIE,
//! static, static-PIE, executable-stack, big-bss and `#!` programs, as root and as an unprivileged
//! caller (no CAP_SYS_RAWIO: page 0 cannot be mapped), and for a setuid-root copy (whose
//! exec clears these flags). Each case is the kernel's exec under ptrace against the plan,
//! field by field, including /proc/PID/personality.
//!
//! Needs root (the unprivileged caller is taken with setresuid).

mod callers;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use progload::profile::{ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC};
use progload_testkit::progs::{self, TempDir};

#[test]
fn personality_flags_match_the_kernel() {
    callers::require_root("the kernel's child must take other credentials");
    let tmp = TempDir::new().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let setuid = tmp.join("setuid-true");
    std::fs::copy("/usr/bin/true", &setuid).unwrap();
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let script = progs::write_sh_script(tmp.path(), "script").unwrap();

    // Copies in the 0755 directory, so that uid 1000 reaches them wherever the build is.
    let copy = |name: &str, src: PathBuf| -> PathBuf {
        let dst = tmp.join(name);
        std::fs::copy(src, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    };
    let programs: Vec<(&str, PathBuf)> = vec![
        ("pie", PathBuf::from("/usr/bin/true")),
        ("no-pie", copy("no-pie", progs::no_pie())),
        ("static", copy("static", progs::static_exec())),
        ("static-pie", copy("static-pie", progs::static_pie())),
        ("execstack", copy("execstack", progs::pie_execstack())),
        ("big-bss", copy("big-bss", progs::big_bss())),
        ("script", script),
        ("setuid-root", setuid),
    ];
    let flag_sets = [
        ("none", 0),
        ("MMAP_PAGE_ZERO", MMAP_PAGE_ZERO),
        ("READ_IMPLIES_EXEC", READ_IMPLIES_EXEC),
        ("ADDR_COMPAT_LAYOUT", ADDR_COMPAT_LAYOUT),
        (
            "all three",
            MMAP_PAGE_ZERO | READ_IMPLIES_EXEC | ADDR_COMPAT_LAYOUT,
        ),
    ];
    let who = callers::root_and_user();
    let files: Vec<(&str, Vec<u8>)> = programs
        .iter()
        .map(|(name, path)| (*name, path.clone().into_os_string().into_encoded_bytes()))
        .collect();
    for (fname, bits) in flag_sets {
        println!("{fname}:");
        let m = callers::Matrix::run(&files, &who, bits);
        m.assert_all_agree();
        // Every program runs for every caller (the setuid copy set-id): a refusal would mean
        // the matrix tests less than it claims.
        m.assert_kinds(|f, _| {
            if f == "setuid-root" {
                "identical (set-id)"
            } else {
                "identical"
            }
        });
    }
}
