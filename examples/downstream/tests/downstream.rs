//! progload used as a downstream crate would use it: planned with `rand::rng()` of the current
//! rand, a request from the builder, the file bytes copied into this process's memory, the plan
//! serialized with the `serde` feature and read back.

use std::os::unix::fs::FileExt;

use progload::mm::Backing;
use progload::{apply, plan, LoadRequestBuilder, PlanRecord};
use progload_downstream::OwnMemory;
use progload_host::{host_profile, HostFs};
use progload_testkit::progs;

#[test]
fn plans_with_rand_builds_with_the_builder_copies_bytes_and_serializes() {
    let program = progs::static_pie();
    let path = program.to_str().unwrap();
    let fs = HostFs::new("/").unwrap();
    let profile = host_profile().unwrap();
    let dir = program.parent().unwrap().to_str().unwrap();
    let req = LoadRequestBuilder::new(format!(
        "./{}",
        program.file_name().unwrap().to_str().unwrap()
    ))
    .arg("hello")
    .host_env()
    .cwd(dir)
    .build(&fs, &profile)
    .unwrap();
    assert_eq!(req.envp.len(), std::env::vars_os().count());
    let mut rng = rand::rng();
    let p = plan(&fs, &profile, &req, &mut rng).unwrap();
    assert_eq!(p.exe, path.as_bytes());

    let mut mem = OwnMemory::new(&fs);
    apply(&p, &mut mem).unwrap();
    // Every file-backed page holds the file's bytes (but the padzero tails).
    let file = std::fs::File::open(&program).unwrap();
    let mut checked = 0;
    for v in &p.vmas {
        if let Backing::File { offset, .. } = v.backing {
            let len = usize::try_from(v.end - v.start).unwrap().min(4096);
            let mut want = vec![0; len];
            let n = file.read_at(&mut want, offset).unwrap();
            let got = mem.read(v.start, n).unwrap();
            let zeroed = p
                .zero
                .iter()
                .any(|&(a, _)| a >= v.start && a < v.start + 4096);
            if !zeroed {
                assert_eq!(got, &want[..n], "{:#x}", v.start);
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "{checked} file pages checked");
    let header = p
        .vmas
        .iter()
        .find(|v| matches!(v.backing, Backing::File { offset: 0, .. }))
        .unwrap();
    assert_eq!(mem.read(header.start, 4), Some(&b"\x7fELF"[..]));
    let argc = mem.read(p.stack.sp, 8).unwrap();
    assert_eq!(u64::from_ne_bytes(argc.try_into().unwrap()), 2);

    let json = serde_json::to_string(&p).unwrap();
    let back: PlanRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p.record());
    assert_eq!(back.argv[1].0, b"hello");
}
