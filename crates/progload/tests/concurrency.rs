//! The core holds no global state: many threads planning at once with one shared profile and
//! filesystem give exactly the plans one thread gives.

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
use progload_testkit::elfbuild::ElfBuilder;

type Summary = (u64, u64, Vec<String>, Vec<(u64, u64)>, Vec<u8>);

fn summary(fs: &MemFs, profile: &Profile, path: &str, seed: u64) -> Summary {
    let req = LoadRequest::new(
        path,
        vec![path.as_bytes().to_vec(), b"x".to_vec()],
        vec![b"A=1".to_vec()],
    );
    let p = plan(fs, profile, &req, &mut SeededRng::new(seed)).unwrap();
    (
        p.entry,
        p.stack.sp,
        p.maps().iter().map(|m| m.render()).collect(),
        p.auxv.clone(),
        p.stack.bytes.clone(),
    )
}

#[test]
fn threads_plan_like_one_thread() {
    let mut fs = MemFs::new();
    fs.add_file(b"/static", 0o755, ElfBuilder::minimal_x86_64_exec().build());
    fs.add_file(b"/pie", 0o755, ElfBuilder::minimal_x86_64_dyn().build());
    fs.add_file(b"/true", 0o755, std::fs::read("/usr/bin/true").unwrap());
    fs.add_file(
        b"/lib64/ld-linux-x86-64.so.2",
        0o755,
        std::fs::read("/lib64/ld-linux-x86-64.so.2").unwrap(),
    );
    fs.add_file(b"/script", 0o755, &b"#!/static -a\n"[..]);
    let mut fixed = Profile::linux_6_18_x86_64();
    fixed.personality |= ADDR_NO_RANDOMIZE;
    let random = Profile::linux_6_18_x86_64();
    let paths = ["/static", "/pie", "/true", "/script"];
    let jobs: Vec<(&Profile, &str, u64)> = paths
        .iter()
        .flat_map(|&p| (0..8u64).flat_map(move |s| [(0usize, p, s), (1, p, s)]))
        .map(|(which, p, s)| (if which == 0 { &fixed } else { &random }, p, s))
        .collect();
    let expected: Vec<Summary> = jobs
        .iter()
        .map(|&(pr, p, s)| summary(&fs, pr, p, s))
        .collect();
    let got: Vec<Vec<Summary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    jobs.iter()
                        .map(|&(pr, p, s)| summary(&fs, pr, p, s))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in got {
        assert_eq!(g, expected);
    }
}
