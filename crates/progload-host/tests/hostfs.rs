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
            .all(|m| m.path.is_empty() || m.path.starts_with(b"[") || m.path == b"/bin/prog"));
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

#[test]
fn deep_paths_and_names_at_the_limits() {
    let dir = progs::TempDir::new().unwrap();
    let root = dir.path();
    let prog = progs::static_exec();
    // 255-byte names work, 256-byte components are ENAMETOOLONG.
    let long = "n".repeat(255);
    std::fs::create_dir_all(root.join(&long)).unwrap();
    std::fs::copy(&prog, root.join(&long).join("p")).unwrap();
    // A deep tree: 150 levels of "d" (a path of 300+ bytes) with the program at the bottom,
    // and /proc/self/fd- and /proc/self/root-style links pointing out of the root.
    let mut deep = root.to_path_buf();
    for _ in 0..150 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::copy(&prog, deep.join("p")).unwrap();
    symlink("/proc/self/fd/0", root.join("fd0")).unwrap();
    symlink("/proc/self/root/etc/passwd", root.join("selfroot")).unwrap();
    let fs = HostFs::new(root).unwrap();
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let go = |path: &str| {
        let req = LoadRequest::new(path, vec![b"x".to_vec()], vec![]);
        plan(&fs, &profile, &req, &mut SeededRng::new(0))
            .map(|p| p.exe.clone())
            .map_err(|e| e.errno())
    };
    assert_eq!(
        go(&format!("/{long}/p")),
        Ok(format!("/{long}/p").into_bytes())
    );
    assert_eq!(go(&format!("/{long}n/p")), Err(Errno::ENAMETOOLONG));
    let deep_path = format!("{}/p", "/d".repeat(150));
    assert_eq!(go(&deep_path), Ok(deep_path.clone().into_bytes()));
    // 4095 bytes is the longest path; 4096 is ENAMETOOLONG (checked before any lookup).
    let dots = |n: usize| format!("{}{}", "/.".repeat((n - deep_path.len()) / 2), deep_path);
    assert_eq!(dots(4094).len(), 4094);
    assert_eq!(go(&dots(4094)), Ok(deep_path.clone().into_bytes()));
    assert_eq!(
        go(&format!("/{}", dots(4094))),
        Ok(deep_path.clone().into_bytes())
    );
    assert_eq!(go(&format!("//{}", dots(4094))), Err(Errno::ENAMETOOLONG));
    // Links into the host's /proc resolve inside the root, where there is no /proc.
    assert_eq!(go("/fd0"), Err(Errno::ENOENT));
    assert_eq!(go("/selfroot"), Err(Errno::ENOENT));
}
