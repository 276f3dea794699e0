//! Randomization on: over 200 kernel execs and 200 plans (seeds 0..200) of the same PIE, static
//! non-PIE and static-PIE, 64-bit and i386 (the compat mmap base, stack, brk and ET_DYN
//! base of an ia32 task), each randomized quantity (PIE base, interpreter base, vDSO, stack
//! top, brk) must show the same alignment, the same number of random bits and the same range
//! as the kernel's. The figures are printed (`--nocapture`) for the README.

use progload::auxv::{AT_BASE, AT_SYSINFO_EHDR};
use progload::{plan, LoadRequest, SeededRng};
use progload_host::probe::{probe, KernelImage, ProbeOutcome, ProbeRequest};
use progload_host::{host_profile_with_compat, HostFs};
use progload_testkit::progs;

const RUNS: u64 = 200;

#[derive(Debug)]
struct Stats {
    min: u64,
    max: u64,
    align_bits: u32,
    random_bits: u32,
    distinct: usize,
}

fn stats(v: &[u64]) -> Stats {
    let min = *v.iter().min().unwrap();
    let max = *v.iter().max().unwrap();
    let or_diff = v.iter().fold(0u64, |a, &x| a | (x - min));
    let mut d = v.to_vec();
    d.sort_unstable();
    d.dedup();
    Stats {
        min,
        max,
        align_bits: if or_diff == 0 {
            64
        } else {
            or_diff.trailing_zeros()
        },
        random_bits: 64 - (max - min).leading_zeros(),
        distinct: d.len(),
    }
}

type Sample = Vec<(&'static str, u64)>;

fn kernel_sample(k: &KernelImage) -> Sample {
    let stack = k.maps.iter().find(|m| m.path == b"[stack]").unwrap();
    let mut s = vec![
        ("first mapping", k.maps[0].start),
        ("vdso", k.auxv_get(AT_SYSINFO_EHDR).unwrap()),
        ("stack top", stack.end),
        ("stack pointer", k.regs.rsp),
        ("brk", k.mm.start_brk),
    ];
    if let Some(b) = k.auxv_get(AT_BASE).filter(|&b| b != 0) {
        s.push(("interpreter", b));
    }
    s
}

fn plan_sample(p: &progload::Plan<progload_host::HostHandle>) -> Sample {
    let maps = p.maps();
    let stack = maps.iter().find(|m| m.path == b"[stack]").unwrap();
    let mut s = vec![
        ("first mapping", maps[0].start),
        ("vdso", p.vdso_base.unwrap()),
        ("stack top", stack.end),
        ("stack pointer", p.stack.sp),
        ("brk", p.mm.start_brk),
    ];
    if let Some(b) = p
        .auxv
        .iter()
        .find(|a| a.0 == AT_BASE)
        .map(|a| a.1)
        .filter(|&b| b != 0)
    {
        s.push(("interpreter", b));
    }
    s
}

fn column(samples: &[Sample], name: &str) -> Vec<u64> {
    samples
        .iter()
        .map(|s| s.iter().find(|(n, _)| *n == name).unwrap().1)
        .collect()
}

#[test]
fn randomized_layouts_match_the_kernels_distribution() {
    let profile = host_profile_with_compat().unwrap();
    assert!(
        profile.randomizes(),
        "the test process must run with randomization on"
    );
    let fs = HostFs::new("/").unwrap();
    let mut failures = Vec::new();
    for prog in [
        progs::pie(),
        progs::static_exec(),
        progs::static_pie(),
        progs::path(progs::Prog::Pie32),
        progs::path(progs::Prog::Static32),
        progs::path(progs::Prog::StaticPie32),
    ] {
        let path = prog.as_os_str().as_encoded_bytes().to_vec();
        let argv = vec![path.clone()];
        let mut ks = Vec::new();
        for _ in 0..RUNS {
            let req = ProbeRequest {
                path: path.clone(),
                argv: Some(argv.clone()),
                envp: vec![],
                cwd: None,
                stack_rlimit: None,
                no_randomize: false,
                personality: 0,
                credentials: None,
            };
            match probe(&req).unwrap() {
                ProbeOutcome::Stopped(k) => ks.push(kernel_sample(&k)),
                other => panic!("{other:?}"),
            }
        }
        let mut ps = Vec::new();
        for seed in 0..RUNS {
            let req = LoadRequest::new(path.clone(), argv.clone(), vec![]);
            let p = plan(&fs, &profile, &req, &mut SeededRng::new(seed)).unwrap();
            assert!(p.randomized);
            ps.push(plan_sample(&p));
        }
        for (name, _) in &ks[0] {
            let (k, p) = (stats(&column(&ks, name)), stats(&column(&ps, name)));
            eprintln!(
                "{:<16} {:<14} kernel {:#014x}..{:#014x} align 2^{} random bits {} distinct {} | plan {:#014x}..{:#014x} align 2^{} random bits {} distinct {}",
                prog.file_name().unwrap().to_string_lossy(),
                name,
                k.min, k.max, k.align_bits, k.random_bits, k.distinct,
                p.min, p.max, p.align_bits, p.random_bits, p.distinct
            );
            // Same alignment and the same number of random bits (±1 for sampling), and
            // overlapping ranges of comparable width.
            let span = |s: &Stats| (s.max - s.min).max(1) as f64;
            let overlap = k.max.min(p.max).saturating_sub(k.min.max(p.min)) as f64;
            let ok = k.align_bits == p.align_bits
                && k.random_bits.abs_diff(p.random_bits) <= 1
                && (k.distinct == 1) == (p.distinct == 1)
                && (k.distinct == 1 && k.min == p.min || overlap >= 0.5 * span(&k).min(span(&p)));
            if !ok {
                failures.push(format!(
                    "{} {name}: kernel {k:x?} plan {p:x?}",
                    prog.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
