//! Randomization on: the same code as the deterministic layout, with entropy from the
//! injected RNG. One seed reproduces a layout; different seeds move it.

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
use progload_testkit::elfbuild;

fn layout(
    fs: &MemFs,
    profile: &Profile,
    path: &str,
    seed: u64,
) -> (Vec<(u64, u64)>, u64, u64, u64) {
    let req = LoadRequest::new(path, vec![path.as_bytes().to_vec()], vec![b"A=1".to_vec()]);
    let p = plan(fs, profile, &req, &mut SeededRng::new(seed)).expect("plan");
    let maps = p.maps().iter().map(|m| (m.start, m.end)).collect();
    (maps, p.stack.sp, p.mm.start_brk, p.entry)
}

fn fs() -> MemFs {
    let mut fs = MemFs::new();
    fs.add_file(
        b"/static",
        0o755,
        elfbuild::ElfBuilder::minimal_x86_64_exec().build(),
    );
    fs.add_file(
        b"/pie",
        0o755,
        elfbuild::ElfBuilder::minimal_x86_64_dyn().build(),
    );
    fs
}

#[test]
fn one_seed_reproduces_two_seeds_differ() {
    let fs = fs();
    let profile = Profile::linux_6_18_x86_64();
    assert_eq!(profile.personality & ADDR_NO_RANDOMIZE, 0);
    for path in ["/static", "/pie"] {
        let a = layout(&fs, &profile, path, 1);
        let b = layout(&fs, &profile, path, 1);
        let c = layout(&fs, &profile, path, 2);
        assert_eq!(a, b, "{path}: same seed, same layout");
        assert_ne!(a.0, c.0, "{path}: maps must move with the seed");
        assert_ne!(a.1, c.1, "{path}: stack must move with the seed");
        assert_ne!(a.2, c.2, "{path}: brk must move with the seed");
    }
}

#[test]
fn no_randomize_ignores_the_seed() {
    let fs = fs();
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    for path in ["/static", "/pie"] {
        assert_eq!(
            layout(&fs, &profile, path, 1),
            layout(&fs, &profile, path, 2)
        );
    }
}

#[test]
fn randomized_pie_keeps_kernel_alignment_and_ranges() {
    let fs = fs();
    let profile = Profile::linux_6_18_x86_64();
    for seed in 0..64 {
        let (maps, sp, brk, entry) = layout(&fs, &profile, "/pie", seed);
        let first = maps[0].0;
        // ET_DYN without PT_INTERP loads top-down under a randomized mmap_base.
        assert_eq!(first % 4096, 0);
        assert!(first < profile.stack_top);
        assert_eq!(sp % 16, 0);
        // brk moved to ELF_ET_DYN_BASE, then randomized within 1 GiB.
        assert!(
            brk >= profile.elf_et_dyn_base && brk < profile.elf_et_dyn_base + (1 << 30) + 4096,
            "{brk:#x}"
        );
        assert!(entry >= first);
    }
}
