//! Debian's i386 programs on this x86_64 kernel (`compat_binfmt_elf`): every executable of
//! busybox-static, coreutils and bash for i386 (`scripts/fetch-debian.sh i386` unpacks them
//! into `<target>/i386-debian/root`; `PROGLOAD_I386_ROOT` overrides the place), and a `#!`
//! script whose interpreter is the i386 bash, each exec'd by the kernel under ptrace
//! (ADDR_NO_RANDOMIZE, stopped at the first instruction) and planned with the host profile's
//! compat part: maps, entry, sp, auxv, stack bytes, mm fields, comm, registers.
//!
//! The dynamic programs name `/lib/ld-linux.so.2`, which both sides resolve in this machine's
//! root (Debian's libc6-i386, installed with gcc-multilib by `.ci/run`).

use std::path::{Path, PathBuf};

use progload_host::check::{check, CheckRequest, Verdict};

fn tree() -> PathBuf {
    let root = match std::env::var_os("PROGLOAD_I386_ROOT") {
        Some(r) => PathBuf::from(r),
        None => progload_testkit::progs::target_dir().join("i386-debian/root"),
    };
    assert!(
        root.join("bin/busybox").exists() && root.join("bin/bash").exists(),
        "no Debian i386 tree at {}: run scripts/fetch-debian.sh i386",
        root.display()
    );
    root
}

/// The ELF executables (not links) of `dir`, sorted.
fn executables(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if std::fs::read(&p).is_ok_and(|b| b.starts_with(b"\x7fELF")) {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn debian_i386_programs_match_the_kernel() {
    let root = tree();
    let profile = progload_host::host_profile_with_compat().expect("host profile");
    assert!(
        profile.compat.is_some(),
        "this x86_64 kernel must run i386 programs for the compat profile"
    );
    let mut files = Vec::new();
    for d in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        files.extend(executables(&root.join(d)));
    }
    // A script whose interpreter is the i386 bash.
    let tmp = progload_testkit::progs::TempDir::new().unwrap();
    let script = tmp.path().join("i386-script");
    let bash = root.join("bin/bash");
    std::fs::write(
        &script,
        [b"#!", bash.as_os_str().as_encoded_bytes(), b"\necho hi\n"].concat(),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    files.push(script);
    assert!(files.len() > 100, "only {} executables", files.len());

    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut bad = Vec::new();
    for f in &files {
        let path = f.as_os_str().as_encoded_bytes().to_vec();
        let req = CheckRequest {
            argv: Some(vec![path.clone(), b"--version".to_vec()]),
            path,
            envp: vec![b"A=1".to_vec()],
            cwd: std::path::PathBuf::from("/"),
            stack_rlimit: None,
            misc_rules: Vec::new(),
            credentials: None,
            personality: 0,
        };
        let v = check(&req, &profile).expect("probe");
        let key = match &v {
            Verdict::Identical => "identical".to_string(),
            Verdict::IdenticalModuloRandomization => "identical (set-id)".to_string(),
            Verdict::SameErrno(e) => format!("refused {e:?}"),
            other => {
                bad.push(format!("{}: {other:?}", f.display()));
                "DISAGREE".to_string()
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    println!("{} i386 executables: {counts:?}", files.len());
    assert!(
        bad.is_empty(),
        "{} of {} disagree:\n{}",
        bad.len(),
        files.len(),
        bad.join("\n")
    );
    assert!(
        counts.get("identical").copied().unwrap_or(0) > 100,
        "too few identical: {counts:?}"
    );
}
