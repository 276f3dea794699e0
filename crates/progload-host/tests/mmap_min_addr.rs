//! `vm.mmap_min_addr` above a page (65536, the default of many distributions) against the
//! kernel: a non-fixed hint below it is raised to it (`round_hint_to_min`), and a fixed
//! mapping below it needs CAP_SYS_RAWIO (else the exec is killed). The test sets the sysctl
//! for its own duration (it is the only test in this binary, so nothing else runs meanwhile)
//! and restores it.
//!
//! Needs root.

mod callers;

use std::os::unix::fs::PermissionsExt;

use progload_testkit::elfbuild::{
    ElfBuilder, ProgramHeader, EM_X86_64, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, X86_64_EXIT0,
};
use progload_testkit::progs::{self, TempDir};

const SYSCTL: &str = "/proc/sys/vm/mmap_min_addr";

/// Puts the sysctl back on drop.
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// A static ET_EXEC at `base` with a PT_INTERP naming `interp` (if any): one R+X PT_LOAD of
/// the whole 0x300-byte file, the exit(0) code at 0x180 and the interpreter name at 0x200.
fn exec_at(base: u64, interp: Option<&str>) -> Vec<u8> {
    const CODE: u64 = 0x180;
    const NAME: u64 = 0x200;
    const LEN: u64 = 0x300;
    let mut b = ElfBuilder::new(ET_EXEC, EM_X86_64);
    b.header.e_entry = base + CODE;
    b.phdr(ProgramHeader::load(PF_R | PF_X, 0, base, LEN, LEN));
    b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
    if let Some(name) = interp {
        let mut bytes = name.as_bytes().to_vec();
        bytes.push(0);
        b.phdr(ProgramHeader::interp(NAME, base + NAME, bytes.len() as u64));
        b.payload(NAME, &bytes);
    }
    b.payload(CODE, &X86_64_EXIT0).min_len(LEN);
    b.build()
}

#[test]
fn hints_below_mmap_min_addr_match_the_kernel() {
    callers::require_root("it sets vm.mmap_min_addr");
    let old = std::fs::read_to_string(SYSCTL).unwrap();
    let _restore = Restore(old.clone());
    std::fs::write(SYSCTL, "65536").unwrap();

    let tmp = TempDir::new().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = progs::write_executable(tmp.path(), name, bytes).unwrap();
        p.into_os_string().into_string().unwrap()
    };
    // ET_DYN interpreters whose first PT_LOAD asks for 0x2000 (below the limit: raised to
    // 0x10000) and 0x20000 (kept).
    let low = write(
        "interp-low",
        &ElfBuilder::minimal(ET_DYN, EM_X86_64, 0x2000, &X86_64_EXIT0).build(),
    );
    let high = write(
        "interp-high",
        &ElfBuilder::minimal(ET_DYN, EM_X86_64, 0x2_0000, &X86_64_EXIT0).build(),
    );
    let programs = [
        (
            "interp hint 0x2000",
            write("main-low", &exec_at(0x40_0000, Some(&low))),
        ),
        (
            "interp hint 0x20000",
            write("main-high", &exec_at(0x40_0000, Some(&high))),
        ),
        (
            "ET_EXEC at 0x1000",
            write("exec-low", &exec_at(0x1000, None)),
        ),
        (
            "ET_EXEC at 0x10000",
            write("exec-at-min", &exec_at(0x1_0000, None)),
        ),
        ("/usr/bin/true", "/usr/bin/true".to_string()),
        (
            "static",
            write("static", &std::fs::read(progs::static_exec()).unwrap()),
        ),
    ];
    // The profile the matrix reads has the raised limit in force.
    assert_eq!(progload_host::host_profile().unwrap().mmap_min_addr, 65536);
    let files: Vec<(&str, Vec<u8>)> = programs
        .iter()
        .map(|(name, path)| (*name, path.clone().into_bytes()))
        .collect();
    let m = callers::Matrix::run(&files, &callers::root_and_user(), 0);
    m.assert_all_agree();
    // Everything runs but the fixed mapping below the limit without CAP_SYS_RAWIO.
    m.assert_kinds(|f, c| {
        if f == "ET_EXEC at 0x1000" && c == "user" {
            "killed"
        } else {
            "identical"
        }
    });
}
