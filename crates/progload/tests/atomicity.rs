//! Failure atomicity: a failed plan or a failed apply leaves a `SimAddressSpace` exactly as
//! it was.

use progload::mm::{Backing, Vma};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng, SimAddressSpace};
use progload_testkit::elfbuild::ElfBuilder;
use proptest::prelude::*;

fn base() -> (MemFs, Profile, SimAddressSpace<usize>) {
    let mut fs = MemFs::new();
    fs.add_file(b"/ok", 0o755, ElfBuilder::minimal_x86_64_exec().build());
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new("/ok", vec![b"ok".to_vec()], vec![]);
    let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
    let mut sim = SimAddressSpace::new();
    sim.load(&p).unwrap();
    (fs, profile, sim)
}

#[test]
fn a_failing_apply_changes_nothing() {
    let (fs, profile, mut sim) = base();
    let before = sim.vmas().to_vec();
    let req = LoadRequest::new("/ok", vec![b"again".to_vec()], vec![]);
    let mut p = plan(&fs, &profile, &req, &mut SeededRng::new(1)).unwrap();
    // A zero range outside every mapping: the space refuses it half-way through the replay.
    p.zero.push((0x1000, 16));
    p.vmas.push(Vma {
        start: 0x7000_0000_0000,
        end: 0x7000_0000_1000,
        prot: progload::Prot::READ,
        backing: Backing::Anon,
    });
    assert!(sim.load(&p).is_err());
    assert_eq!(sim.vmas(), &before[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random corruptions of a valid ELF: either the plan applies cleanly and the space shows
    /// exactly the plan's maps, or it fails and the space is untouched.
    #[test]
    fn failed_loads_leave_the_space_unchanged(edits in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
        let (mut fs, profile, mut sim) = base();
        let mut bytes = ElfBuilder::minimal_x86_64_exec().build();
        for (at, v) in edits {
            if let Some(b) = bytes.get_mut(at) {
                *b = v;
            }
        }
        fs.add_file(b"/mutant", 0o755, bytes);
        let before = sim.vmas().to_vec();
        let req = LoadRequest::new("/mutant", vec![b"m".to_vec()], vec![]);
        match plan(&fs, &profile, &req, &mut SeededRng::new(3)) {
            Ok(p) => {
                sim.load(&p).unwrap();
                let info = |_: &usize| (b"/mutant".to_vec(), p.files[0].meta.dev, p.files[0].meta.inode);
                prop_assert_eq!(sim.maps(info, (p.mm.start_brk, p.mm.brk), p.vsyscall), p.maps());
            }
            Err(_) => prop_assert_eq!(sim.vmas(), &before[..]),
        }
    }
}
