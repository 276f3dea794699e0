//! Personality flags against the kernel: MMAP_PAGE_ZERO, READ_IMPLIES_EXEC and
//! ADDR_COMPAT_LAYOUT (the legacy bottom-up layout), alone and together, for PIE, non-PIE,
//! static, static-PIE, executable-stack and `#!` programs, as root and as an unprivileged
//! caller (no CAP_SYS_RAWIO: page 0 cannot be mapped), and for a setuid-root copy (whose
//! exec clears these flags). Each case is the kernel's exec under ptrace against the plan,
//! field by field, including /proc/PID/personality.
//!
//! Needs root (the unprivileged caller is taken with setresuid).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use progload::profile::{Credentials, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC};
use progload_host::check::{check, CheckRequest, Verdict};
use progload_testkit::progs::{self, TempDir};

#[test]
fn personality_flags_match_the_kernel() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root: the kernel's child must take other credentials"
    );
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
    let user = Credentials {
        uid: 1000,
        euid: 1000,
        gid: 1000,
        egid: 1000,
        groups: vec![],
        no_new_privs: false,
    };
    let callers = [("root", Credentials::root()), ("user", user)];

    let profile = progload_host::host_profile().unwrap();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (pname, path) in &programs {
        for (fname, bits) in flag_sets {
            for (cname, c) in &callers {
                let req = CheckRequest {
                    path: path.clone().into_os_string().into_encoded_bytes(),
                    argv: Some(vec![b"prog".to_vec()]),
                    envp: vec![b"A=1".to_vec()],
                    cwd: "/".into(),
                    stack_rlimit: None,
                    misc_rules: vec![],
                    credentials: Some(c.clone()),
                    personality: bits,
                };
                let verdict = check(&req, &profile).unwrap();
                let kind = match &verdict {
                    Verdict::Identical => "identical",
                    Verdict::IdenticalModuloRandomization => "identical (set-id, randomized)",
                    _ if verdict.agrees() => "same failure",
                    _ => "DISAGREE",
                };
                *kinds.entry(kind).or_default() += 1;
                if !verdict.agrees() {
                    failures.push(format!("{pname} with {fname} as {cname}: {verdict:?}"));
                }
            }
        }
    }
    let total = programs.len() * flag_sets.len() * callers.len();
    println!("{total} cases: {kinds:?}");
    assert!(
        failures.is_empty(),
        "{} of {total} disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every program runs for every caller: a refusal here would mean the matrix tests less
    // than it claims.
    assert_eq!(
        kinds.get("identical").copied().unwrap_or(0)
            + kinds
                .get("identical (set-id, randomized)")
                .copied()
                .unwrap_or(0),
        total,
        "{kinds:?}"
    );
}
