//! The kernel-differential mutation campaign: real programs (gcc builds of every kind, 64- and
//! 32-bit, and minimal crafted ELF files) and `#!` scripts are mutated
//! ([`progload_testkit::mutate`]), each mutant is executed by the live kernel (under ptrace,
//! ADDR_NO_RANDOMIZE, stopped at the first instruction) and planned by progload, and the two
//! must agree: the same image field by field, the same errno, or fatal where the kernel kills.
//!
//! No outcome is written here. `PROGLOAD_MUTANTS` (default 2000) mutants are drawn from
//! `PROGLOAD_MUTANT_SEED` (default 1), starting at index `PROGLOAD_MUTANT_FIRST` (default 0);
//! each is a pure function of the seed and its index, so `PROGLOAD_MUTANT_FIRST=i
//! PROGLOAD_MUTANTS=1` reproduces mutant `i` alone. Every disagreeing mutant is kept under
//! `<target>/progload-mutants/seed-S/` with its description; the test fails listing them.
//! `scripts/mutants.sh` runs the large campaign.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use progload_host::check::{check, CheckRequest, Verdict};
use progload_testkit::elfbuild::{minimal_i386_exec, Arch, ElfBuilder};
use progload_testkit::mutate::{mutant_rng, mutate_elf, mutate_script, Paths};
use progload_testkit::progs::{self, write_executable, Prog, TempDir};
use rand_core::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The files mutants are made from: name and bytes.
fn bases() -> Vec<(String, Vec<u8>)> {
    let arch = Arch::native();
    let mut progs_used = vec![
        Prog::Static,
        Prog::StaticPie,
        Prog::Pie,
        Prog::NoPie,
        Prog::BigBss,
        Prog::PieExecStack,
    ];
    if arch == Arch::X86_64 {
        progs_used.extend([
            Prog::AsmExit,
            Prog::Static32,
            Prog::StaticPie32,
            Prog::Pie32,
            Prog::NoPie32,
        ]);
    }
    let mut out: Vec<(String, Vec<u8>)> = progs_used
        .into_iter()
        .map(|p| {
            let path = progs::build(p).unwrap_or_else(|e| panic!("{e}"));
            (p.name().to_string(), std::fs::read(path).expect("read"))
        })
        .collect();
    out.push((
        "minimal-exec".into(),
        ElfBuilder::minimal_exec_for(arch).build(),
    ));
    out.push((
        "minimal-dyn".into(),
        ElfBuilder::minimal_dyn_for(arch).build(),
    ));
    if arch == Arch::X86_64 {
        out.push(("minimal-i386".into(), minimal_i386_exec()));
    }
    out
}

/// One mutant written into `dir` (with the files it names), and the request to exec it.
fn make_mutant(
    dir: &Path,
    bases: &[(String, Vec<u8>)],
    seed: u64,
    index: u64,
) -> (CheckRequest, String) {
    let mut rng = mutant_rng(seed, index);
    let arch = Arch::native();
    let own = |name: &str| dir.join(name).as_os_str().as_encoded_bytes().to_vec();
    let mutant = own("m");
    // Side files some mutants name: a mutated interpreter, a plain script, a non-executable
    // copy of ld.so, and the mutant itself.
    let (interp, interp_what) = {
        let base = if rng.next_u64() % 2 == 0 {
            ElfBuilder::minimal_dyn_for(arch).build()
        } else {
            std::fs::read(arch.ld_so()).unwrap_or_default()
        };
        mutate_elf(&mut rng, &base, &Paths::default())
    };
    write_executable(dir, "interp", &interp).expect("write");
    write_executable(dir, "inner", b"#!/bin/sh\nexit 0\n").expect("write");
    let noexec = dir.join("noexec");
    if !noexec.exists() {
        std::fs::copy(arch.ld_so(), &noexec).ok();
        std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).ok();
    }
    let paths = Paths {
        interpreters: vec![
            arch.ld_so().as_bytes().to_vec(),
            arch.ld_so().as_bytes().to_vec(),
            b"/lib/ld-linux.so.2".to_vec(),
            b"/bin/sh".to_vec(),
            own("interp"),
            own("interp"),
            own("inner"),
            own("noexec"),
            mutant.clone(),
            dir.as_os_str().as_encoded_bytes().to_vec(),
        ],
    };
    let (bytes, what) = if rng.next_u64() % 8 == 0 {
        mutate_script(&mut rng, &paths)
    } else {
        let (name, base) = &bases[(rng.next_u64() % bases.len() as u64) as usize];
        let (b, w) = mutate_elf(&mut rng, base, &paths);
        (b, format!("{name}: {w}"))
    };
    write_executable(dir, "m", &bytes).expect("write");
    let what = if bytes.starts_with(b"#!") || what.contains("interp =") {
        format!("{what} [interp: {interp_what}]")
    } else {
        what
    };
    let req = CheckRequest {
        path: mutant.clone(),
        argv: Some(vec![mutant, b"x".to_vec()]),
        envp: vec![b"A=1".to_vec()],
        cwd: dir.to_path_buf(),
        stack_rlimit: None,
        misc_rules: Vec::new(),
        credentials: None,
        personality: 0,
    };
    (req, what)
}

/// The short name of a verdict, for the tally.
fn tally_key(v: &Verdict) -> String {
    match v {
        Verdict::Identical => "ran, identical".into(),
        Verdict::IdenticalModuloRandomization => "ran, identical modulo randomization".into(),
        Verdict::SameErrno(e) => format!("refused, same errno {}", e.name()),
        Verdict::BothFatal => "killed, plan fatal".into(),
        Verdict::Differ(_) => "DIFFER".into(),
        Verdict::Mismatch(..) => "MISMATCH".into(),
        Verdict::NotModelled { .. } => "NOT MODELLED".into(),
    }
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Differ(d) => d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n    "),
        Verdict::Mismatch(k, p) => format!("kernel {k}; plan {p}"),
        Verdict::NotModelled { why, kernel } => format!("not modelled ({why}); kernel {kernel}"),
        _ => String::new(),
    }
}

#[test]
fn mutants_agree_with_the_kernel() {
    let count = env_u64("PROGLOAD_MUTANTS", 2000);
    let seed = env_u64("PROGLOAD_MUTANT_SEED", 1);
    let first = env_u64("PROGLOAD_MUTANT_FIRST", 0);
    let profile = progload_host::host_profile_with_compat().expect("host profile");
    let bases = bases();
    let keep: PathBuf = progs::target_dir()
        .join("progload-mutants")
        .join(format!("seed-{seed}"));
    let tally: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as u64;
    std::thread::scope(|s| {
        for w in 0..workers {
            let (bases, profile, keep, tally, failures) =
                (&bases, &profile, &keep, &tally, &failures);
            s.spawn(move || {
                let dir = TempDir::new().expect("temp dir");
                let mut i = first + w;
                while i < first + count {
                    let (req, what) = make_mutant(dir.path(), bases, seed, i);
                    let v = check(&req, profile).expect("probe");
                    *tally.lock().unwrap().entry(tally_key(&v)).or_default() += 1;
                    if !v.agrees() {
                        std::fs::create_dir_all(keep).ok();
                        let kept = keep.join(i.to_string());
                        std::fs::copy(dir.path().join("m"), &kept).ok();
                        std::fs::copy(dir.path().join("interp"), keep.join(format!("{i}.interp")))
                            .ok();
                        let line = format!(
                            "mutant {i} ({what}):\n    {}\n    kept as {}",
                            describe(&v),
                            kept.display()
                        );
                        std::fs::write(keep.join(format!("{i}.txt")), &line).ok();
                        failures.lock().unwrap().push(line);
                    }
                    i += workers;
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{count} mutants (seed {seed}, from {first}) in {:.1} s:",
        started.elapsed().as_secs_f64()
    );
    for (k, n) in &tally {
        eprintln!("  {n:6}  {k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {count} mutants disagree with the kernel (reproduce one with \
         PROGLOAD_MUTANT_SEED={seed} PROGLOAD_MUTANT_FIRST=i PROGLOAD_MUTANTS=1):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
