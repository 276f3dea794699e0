//! binfmt_misc rules against the live kernel: the same rule is registered with the kernel
//! (binfmt_misc mounted if needed) and given to the plan; the images must be identical.

mod callers;

use progload::binfmt::misc::Rule;
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, SeededRng};
use progload_host::check::compare;
use progload_host::probe::{probe, ProbeOutcome, ProbeRequest};
use progload_host::{host_profile, HostFs};
use progload_testkit::binfmt_misc::register;
use progload_testkit::progs;

fn same(rule_text: &str, name: &str, file: &std::path::Path, argv: &[&str]) {
    let _reg = register(rule_text, name);
    let path = file.as_os_str().as_encoded_bytes().to_vec();
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let req = ProbeRequest {
        path: path.clone(),
        argv: Some(argv.clone()),
        envp: vec![b"A=1".to_vec()],
        cwd: None,
        stack_rlimit: None,
        no_randomize: true,
        personality: 0,
        credentials: None,
    };
    let outcome = progload_host::probe::retry_busy(|| probe(&req)).unwrap();
    let ProbeOutcome::Stopped(kernel) = outcome else {
        panic!("kernel: {outcome:?}")
    };
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let fs = HostFs::new("/").unwrap();
    let mut lr = LoadRequest::new(path, argv, vec![b"A=1".to_vec()]);
    lr.misc_rules
        .push(Rule::parse(rule_text.as_bytes()).unwrap());
    let p = plan(&fs, &profile, &lr, &mut SeededRng::new(0)).unwrap();
    let diffs: Vec<String> = compare(&p, &kernel)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(diffs.is_empty(), "{rule_text}:\n{}", diffs.join("\n"));
}

#[test]
fn extension_and_magic_rules_with_flags() {
    let pid = std::process::id();
    let interp = progs::static_exec();
    let interp = interp.to_str().unwrap();
    let dir = progs::TempDir::new().unwrap();
    let ext = format!("plt{pid}");
    let target =
        progs::write_executable(dir.path(), &format!("t.{ext}"), b"not an executable\n").unwrap();
    // Extension, no flags: argv = [interpreter, path, argv[1..]].
    same(
        &format!(":pl_e{pid}:E::{ext}::{interp}:"),
        &format!("pl_e{pid}"),
        &target,
        &["t", "one", "two"],
    );
    // Preserve argv[0]: argv = [interpreter, path, argv[0], ...] and AT_FLAGS = 1.
    same(
        &format!(":pl_p{pid}:E::{ext}::{interp}:P"),
        &format!("pl_p{pid}"),
        &target,
        &["t", "one"],
    );
    // Open binary: AT_EXECFD.
    same(
        &format!(":pl_o{pid}:E::{ext}::{interp}:O"),
        &format!("pl_o{pid}"),
        &target,
        &["t"],
    );
    // Magic with a mask at an offset.
    let magic = format!("PLM{pid:08x}");
    let body = format!("xx{magic}rest\n");
    let target2 = progs::write_executable(dir.path(), "magic", body.as_bytes()).unwrap();
    let mask = "\\xff".repeat(magic.len() - 1) + "\\x00";
    same(
        &format!(":pl_m{pid}:M:2:{magic}:{mask}:{interp}:"),
        &format!("pl_m{pid}"),
        &target2,
        &["m", "a"],
    );
}

/// `F` opens the interpreter at registration: an unprivileged caller runs a target whose
/// interpreter sits in a directory only root can search. Without `F` the kernel opens it at
/// exec time as the caller, and refuses.
#[test]
fn fix_binary_interpreter_is_opened_by_the_registrant() {
    use std::os::unix::fs::PermissionsExt;

    let (dir, ext, target) = as_user_fixture("plf");
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let interp = closed.join("interp");
    std::fs::copy(progs::static_exec(), &interp).unwrap();
    let interp = interp.to_str().unwrap();
    as_user_with_flags(
        &format!("pl_f{}", std::process::id()),
        &ext,
        interp,
        &target,
        &[("F", "identical"), ("", "refused EACCES")],
    );
}

/// A directory uid 1000 can search, the extension `{tag}{pid}`, and a non-ELF target file
/// `t.{ext}` (mode 0755) in it.
fn as_user_fixture(tag: &str) -> (progs::TempDir, String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = progs::TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ext = format!("{tag}{}", std::process::id());
    let target =
        progs::write_executable(dir.path(), &format!("t.{ext}"), b"not an executable\n").unwrap();
    (dir, ext, target)
}

/// Registers `:{name}{flags}:E::{ext}::{interp}:{flags}` for each `(flags, kind)` in turn and
/// checks that uid 1000 running `target` gets that kind of agreement with the kernel.
fn as_user_with_flags(
    name: &str,
    ext: &str,
    interp: &str,
    target: &std::path::Path,
    cases: &[(&str, &str)],
) {
    let profile = host_profile().unwrap();
    for (flags, want) in cases {
        let name = format!("{name}{flags}");
        let rule_text = format!(":{name}:E::{ext}::{interp}:{flags}");
        let _reg = register(&rule_text, &name);
        let verdict = callers::check_as(
            &profile,
            target.as_os_str().as_encoded_bytes(),
            &callers::user(1000),
            0,
            &[Rule::parse(rule_text.as_bytes()).unwrap()],
        );
        assert_eq!(
            callers::kind(&verdict),
            *want,
            "{rule_text} as uid 1000: {verdict:?}"
        );
    }
}

/// `C` takes the credentials from the binary rather than the interpreter: a setuid (to uid
/// 1001) target run by uid 1000 through an ordinary interpreter is set-id with `C`, and not
/// without it.
#[test]
fn credentials_flag_takes_the_binarys_set_id_bits() {
    use std::os::unix::fs::{chown, PermissionsExt};

    let (dir, ext, target) = as_user_fixture("plc");
    let interp = dir.join("interp");
    std::fs::copy(progs::static_exec(), &interp).unwrap();
    std::fs::set_permissions(&interp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let interp = interp.to_str().unwrap();
    chown(&target, Some(1001), Some(1001)).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o4755)).unwrap();
    as_user_with_flags(
        &format!("pl_c{}", std::process::id()),
        &ext,
        interp,
        &target,
        &[("C", "identical (set-id)"), ("", "identical")],
    );
}
