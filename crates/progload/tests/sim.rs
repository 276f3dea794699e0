//! Applying plans to the simulated address space.

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng, SimAddressSpace};
use progload_testkit::elfbuild::ElfBuilder;

fn setup() -> (MemFs, Profile) {
    let mut fs = MemFs::new();
    fs.add_file(
        b"/bin/static",
        0o755,
        ElfBuilder::minimal_x86_64_exec().build(),
    );
    fs.add_file(b"/bin/pie", 0o755, ElfBuilder::minimal_x86_64_dyn().build());
    fs.add_file(b"/bin/script", 0o755, &b"#!/bin/static -x\n"[..]);
    let mut p = Profile::linux_6_18_x86_64();
    p.personality |= ADDR_NO_RANDOMIZE;
    (fs, p)
}

#[test]
fn applied_space_shows_the_plans_maps_and_bytes() {
    let (fs, profile) = setup();
    for path in ["/bin/static", "/bin/pie", "/bin/script"] {
        let req = LoadRequest::new(
            path,
            vec![path.as_bytes().to_vec(), b"arg".to_vec()],
            vec![b"A=1".to_vec()],
        );
        let p = plan(&fs, &profile, &req, &mut SeededRng::new(7)).unwrap();
        let mut sim = SimAddressSpace::new();
        sim.load(&p).unwrap();
        let info = |n: &usize| {
            let f = p.files.iter().find(|f| f.node == *n).unwrap();
            (f.path.clone(), f.meta.dev, f.meta.inode)
        };
        assert_eq!(
            sim.maps(info, (p.mm.start_brk, p.mm.brk), p.vsyscall),
            p.maps(),
            "{path}"
        );
        let mut stack = vec![0u8; p.stack.bytes.len()];
        sim.read_written(p.stack.sp, &mut stack);
        assert_eq!(stack, p.stack.bytes);
        let image = p.vdso_image.clone().unwrap();
        let mut vdso = vec![0u8; image.len()];
        sim.read_written(p.vdso_base.unwrap(), &mut vdso);
        assert_eq!(&vdso[..], &image[..]);
    }
}

#[test]
fn failed_plan_leaves_the_space_unchanged() {
    let (mut fs, profile) = setup();
    fs.add_file(b"/bin/broken", 0o755, &b"\x7fELF garbage"[..]);
    let ok = LoadRequest::new("/bin/static", vec![b"s".to_vec()], vec![]);
    let p = plan(&fs, &profile, &ok, &mut SeededRng::new(1)).unwrap();
    let mut sim = SimAddressSpace::new();
    sim.load(&p).unwrap();
    let before = sim.vmas().to_vec();
    for bad in ["/bin/broken", "/bin/missing", "/bin"] {
        let req = LoadRequest::new(bad, vec![b"x".to_vec()], vec![]);
        let r = plan(&fs, &profile, &req, &mut SeededRng::new(1));
        assert!(r.is_err(), "{bad}");
        assert_eq!(sim.vmas(), &before[..]);
    }
}
