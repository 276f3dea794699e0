//! A host directory as the root: links and `..` that point out of it resolve inside it.

use std::os::unix::fs::symlink;

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, Errno, LoadRequest, SeededRng};
use progload_host::{host_profile, HostFs};
use progload_testkit::progs;

#[test]
fn root_cannot_be_escaped() {
    let dir = progs::TempDir::new().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(progs::static_exec(), root.join("bin/prog")).unwrap();
    symlink("/", root.join("esc")).unwrap();
    symlink("../../../../../..", root.join("bin/up")).unwrap();
    symlink("/usr/bin/true", root.join("abs")).unwrap();
    symlink("/proc/self/root/usr/bin/true", root.join("procroot")).unwrap();
    let fs = HostFs::new(root).unwrap();
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let go = |path: &str| {
        let req = LoadRequest::new(path, vec![b"x".to_vec()], vec![]);
        plan(&fs, &profile, &req, &mut SeededRng::new(0))
            .map(|p| (p.exe.clone(), p.maps()))
            .map_err(|e| e.errno())
    };
    for inside in [
        "/bin/prog",
        "/esc/bin/prog",
        "/bin/up/bin/prog",
        "/../../bin/prog",
        "/esc/esc/../bin/prog",
    ] {
        let (exe, maps) = go(inside).unwrap_or_else(|e| panic!("{inside}: {e}"));
        assert_eq!(exe, b"/bin/prog", "{inside}");
        assert!(maps
            .iter()
            .all(|m| m.path.is_empty() || m.path.starts_with('[') || m.path == "/bin/prog"));
    }
    // These name host files outside the root: inside it they do not exist.
    for outside in [
        "/abs",
        "/esc/usr/bin/true",
        "/bin/up/usr/bin/true",
        "/procroot",
    ] {
        assert_eq!(go(outside).map(|_| ()), Err(Errno::ENOENT), "{outside}");
    }
}
