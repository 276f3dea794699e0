//! Credentials against the kernel: callers with different real/effective ids, supplementary
//! groups and no_new_privs exec files with set-id bits, owners and modes. For each pair the
//! kernel's child takes the credentials (setgroups, setresgid, setresuid, PR_SET_NO_NEW_PRIVS)
//! and execs under ptrace; the plan gets the same credentials in its profile. Everything is
//! compared: the errno, or the image including AT_UID/AT_EUID/AT_GID/AT_EGID/AT_SECURE, the
//! four uids and gids of /proc/PID/status, NoNewPrivs and the personality (a set-id exec
//! clears ADDR_NO_RANDOMIZE), or the kill after the point of no return.
//!
//! Needs root (CAP_SETUID, CAP_SETGID, CAP_CHOWN), like the rest of the kernel oracle.

mod callers;

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use progload::profile::Credentials;
use progload_testkit::elfbuild::{Arch, ElfBuilder, ProgramHeader, ET_DYN, PF_R, PF_W};
use progload_testkit::progs::TempDir;

const USER: u32 = 1000;
const OTHER: u32 = 1001;
const GROUP: u32 = 1234;

fn creds(uid: u32, euid: u32, gid: u32, egid: u32, groups: &[u32], nnp: bool) -> Credentials {
    Credentials {
        uid,
        euid,
        gid,
        egid,
        groups: groups.to_vec(),
        no_new_privs: nnp,
    }
}

/// Copies `src` to `dir/name` with the given owner and mode (set after chown, which clears
/// set-id bits).
fn install(dir: &Path, name: &str, src: &Path, owner: (u32, u32), mode: u32) -> Vec<u8> {
    let path = dir.join(name);
    std::fs::copy(src, &path).unwrap();
    chown(&path, Some(owner.0), Some(owner.1)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.into_os_string().into_encoded_bytes()
}

#[test]
fn credentials_and_set_id_bits_match_the_kernel() {
    callers::require_root("the kernel's child must take other credentials");
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let true_bin = Path::new("/usr/bin/true");
    let script = dir.join("script.src");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    install(&closed, "inside", true_bin, (0, 0), 0o755);

    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("plain", install(dir, "plain", true_bin, (0, 0), 0o755)),
        (
            "setuid-root",
            install(dir, "suid0", true_bin, (0, 0), 0o4755),
        ),
        (
            "setgid-root",
            install(dir, "sgid0", true_bin, (0, 0), 0o2755),
        ),
        (
            "setuid-user",
            install(dir, "suidu", true_bin, (USER, USER), 0o4755),
        ),
        (
            "setgid-user",
            install(dir, "sgidu", true_bin, (USER, USER), 0o2755),
        ),
        (
            "setuid+setgid-other",
            install(dir, "ugido", true_bin, (OTHER, OTHER), 0o6755),
        ),
        (
            "setgid-without-group-x",
            install(dir, "sgidnx", true_bin, (0, GROUP), 0o2745),
        ),
        (
            "group-only",
            install(dir, "grp", true_bin, (0, GROUP), 0o750),
        ),
        ("exec-only", install(dir, "xonly", true_bin, (0, 0), 0o711)),
        (
            "owner-no-x",
            install(dir, "ownernx", true_bin, (USER, 0), 0o655),
        ),
        (
            "setuid-script",
            install(dir, "suidsh", &script, (0, 0), 0o4755),
        ),
    ];
    // A plain script whose interpreter is setuid to another user: the credentials come from
    // the file finally loaded, the interpreter.
    let sh = install(dir, "sh-suid", Path::new("/bin/sh"), (OTHER, OTHER), 0o4755);
    let via = dir.join("via-suid-sh");
    std::fs::write(&via, [b"#!", &sh[..], b"\nexit 0\n"].concat()).unwrap();
    std::fs::set_permissions(&via, std::fs::Permissions::from_mode(0o755)).unwrap();
    files.push((
        "script with setuid interpreter",
        via.into_os_string().into_encoded_bytes(),
    ));
    // A static-PIE aligned to 2 MiB whose first PT_LOAD is bss only: the kernel's alignment
    // probe maps that bss at address 0, which needs CAP_SYS_RAWIO (else the exec is killed).
    let arch = Arch::native();
    let mut b = ElfBuilder::minimal(ET_DYN, arch.e_machine(), 0x20_0000, arch.exit0());
    for ph in &mut b.phdrs {
        ph.p_align = 0x20_0000;
    }
    let mut bss = ProgramHeader::load(PF_R | PF_W, 0, 0, 0, 0x1000);
    bss.p_align = 0x20_0000;
    b.phdrs.insert(0, bss);
    let bss_first = dir.join("bss-first.src");
    std::fs::write(&bss_first, b.build()).unwrap();
    files.push((
        "static-pie-bss-at-0",
        install(dir, "bssfirst", &bss_first, (0, 0), 0o755),
    ));
    // The same as setuid root: the mappings are made with the new credentials, whose
    // euid 0 has CAP_SYS_RAWIO.
    files.push((
        "setuid-root-static-pie-bss-at-0",
        install(dir, "bssfirst-suid", &bss_first, (0, 0), 0o4755),
    ));
    let inside = closed.join("inside").into_os_string().into_encoded_bytes();
    files.push(("in-0700-dir", inside));
    let mut long = closed.into_os_string().into_encoded_bytes();
    long.push(b'/');
    long.extend(std::iter::repeat_n(b'a', 300));
    files.push(("long-name-in-0700-dir", long));

    let who = [
        ("root", creds(0, 0, 0, 0, &[], false)),
        ("user", creds(USER, USER, USER, USER, &[], false)),
        ("user+group", creds(USER, USER, USER, USER, &[GROUP], false)),
        ("user euid=0", creds(USER, 0, USER, USER, &[], false)),
        ("user egid=0", creds(USER, USER, USER, 0, &[], false)),
        ("root euid=user", creds(0, USER, 0, 0, &[], false)),
        ("user nnp", creds(USER, USER, USER, USER, &[], true)),
        ("user euid=0 nnp", creds(USER, 0, USER, USER, &[], true)),
        ("user egid=0 nnp", creds(USER, USER, USER, 0, &[], true)),
        ("root nnp", creds(0, 0, 0, 0, &[], true)),
        ("root egid=user", creds(0, 0, 0, USER, &[], false)),
        (
            "user euid=other",
            creds(USER, OTHER, USER, USER, &[], false),
        ),
        (
            "user egid=other",
            creds(USER, USER, USER, OTHER, &[], false),
        ),
        (
            "other euid=user",
            creds(OTHER, USER, USER, USER, &[], false),
        ),
        ("user gid=other", creds(USER, USER, OTHER, USER, &[], false)),
        // A setgid exec to a group the caller is already in does not count as a change.
        (
            "user egid=other in group user",
            creds(USER, USER, USER, OTHER, &[USER], false),
        ),
        (
            "user egid=other in group other",
            creds(USER, USER, USER, OTHER, &[OTHER], false),
        ),
        ("root euid=user nnp", creds(0, USER, 0, 0, &[], true)),
        ("root egid=user nnp", creds(0, 0, 0, USER, &[], true)),
        (
            "user euid=other nnp",
            creds(USER, OTHER, USER, USER, &[], true),
        ),
        (
            "user egid=other nnp",
            creds(USER, USER, USER, OTHER, &[], true),
        ),
    ];

    let m = callers::Matrix::run(&files, &who, 0);
    m.assert_all_agree();
    // The matrix reaches set-id execs, plain execs, refusals and kills; otherwise it shows
    // little.
    let kinds = m.kinds();
    for k in [
        "identical",
        "identical (set-id)",
        "refused EACCES",
        "killed",
    ] {
        assert!(kinds.contains_key(k), "no case was {k}: {kinds:?}");
    }
}
