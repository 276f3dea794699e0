//! Plan cost against the kernel's own exec, in one run.
//!
//! - `plan/*`: one plan from a warm host profile (static, PIE + interpreter, `#!` script, ls).
//! - `plan_apply/*`: plan + apply into `SimAddressSpace` for a 4 KiB ELF and a 1 GiB sparse
//!   ELF of the same shape (the simulated space must not touch file bytes).
//! - `plan_usr_bin/all`: plan every ELF in /usr/bin once (throughput).
//! - `kernel/*`: fork + execve + ptrace stop at the first instruction of the same binaries:
//!   the reference row.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, SeededRng, SimAddressSpace};
use progload_host::probe::{exec_to_first_instruction, ProbeOutcome, ProbeRequest};
use progload_host::{host_profile, HostFs};
use progload_testkit::progs;

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

fn sized_elf(dir: &Path, name: &str, data: u64) -> PathBuf {
    progs::write_sized_elf(dir, name, data).unwrap()
}

fn elfs_in(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
                && std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF"))
        })
        .collect();
    v.sort();
    v
}

fn benches(c: &mut Criterion) {
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let fs = HostFs::new("/").unwrap();
    let dir = progs::TempDir::new().unwrap();
    let script = progs::write_sh_script(dir.path(), "script.sh").unwrap();
    let small = sized_elf(dir.path(), "small", 0x1000);
    let huge = sized_elf(dir.path(), "huge", 1 << 30);
    let cases: Vec<(&str, PathBuf)> = vec![
        ("static", progs::static_exec()),
        ("pie_interp", progs::pie()),
        ("script", script),
        ("ls", PathBuf::from("/usr/bin/ls")),
    ];

    let mut g = c.benchmark_group("plan");
    for (name, path) in &cases {
        let req = LoadRequest::new(bytes(path), vec![bytes(path)], vec![b"A=1".to_vec()]);
        g.bench_function(*name, |b| {
            let mut rng = SeededRng::new(1);
            b.iter(|| black_box(plan(&fs, &profile, &req, &mut rng).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("kernel");
    for (name, path) in &cases {
        let req = ProbeRequest {
            path: bytes(path),
            argv: Some(vec![bytes(path)]),
            envp: vec![b"A=1".to_vec()],
            cwd: None,
            stack_rlimit: None,
            no_randomize: true,
            personality: 0,
            credentials: None,
        };
        g.bench_function(*name, |b| {
            b.iter(|| {
                let r = exec_to_first_instruction(&req).unwrap();
                assert!(matches!(r, ProbeOutcome::Stopped(_)));
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("plan_apply");
    for (name, path) in [("4KiB", &small), ("1GiB_sparse", &huge)] {
        let req = LoadRequest::new(bytes(path), vec![bytes(path)], vec![]);
        g.bench_function(name, |b| {
            let mut rng = SeededRng::new(1);
            b.iter(|| {
                let p = plan(&fs, &profile, &req, &mut rng).unwrap();
                let mut sim = SimAddressSpace::new();
                sim.load(&p).unwrap();
                black_box(sim)
            })
        });
    }
    g.finish();

    let all = elfs_in("/usr/bin");
    let reqs: Vec<_> = all
        .iter()
        .map(|p| LoadRequest::new(bytes(p), vec![bytes(p)], vec![]))
        .collect();
    let mut g = c.benchmark_group("plan_usr_bin");
    g.throughput(Throughput::Elements(reqs.len() as u64));
    g.sample_size(10);
    g.bench_function("all", |b| {
        let mut rng = SeededRng::new(1);
        b.iter(|| {
            for r in &reqs {
                let _ = black_box(plan(&fs, &profile, r, &mut rng));
            }
        })
    });
    g.finish();
}

criterion_group!(plan_benches, benches);
criterion_main!(plan_benches);
