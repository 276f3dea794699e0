//! Plan an exec from an in-memory filesystem with a preset profile, load it into the
//! simulated address space, and print /proc/PID/maps and the auxv as the kernel would show
//! them. Runs on any host.
//!
//! Run: `cargo run -p progload --example sim`

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng, SimAddressSpace};

fn main() {
    let mut fs = MemFs::new();
    fs.add_file(
        b"/usr/bin/hello",
        0o755,
        progload_testkit::tiny_static_elf(),
    );
    fs.add_symlink(b"/bin", b"usr/bin");
    fs.add_file(b"/usr/bin/greet", 0o755, &b"#!/bin/hello --loud\n"[..]);
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new(
        "/bin/greet",
        vec![b"greet".to_vec(), b"you".to_vec()],
        vec![b"A=1".to_vec()],
    );
    let plan = plan(&fs, &profile, &req, &mut SeededRng::new(1)).expect("plan");
    let mut space = SimAddressSpace::new();
    space.load(&plan).expect("load");
    println!(
        "argv: {:?}",
        plan.argv
            .iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
    println!(
        "exe {} · comm {}",
        String::from_utf8_lossy(&plan.exe),
        String::from_utf8_lossy(&plan.comm)
    );
    for line in plan.maps() {
        println!("{}", line.render());
    }
    for (k, v) in &plan.auxv {
        println!("AT_{:<18} {v:#x}", progload::auxv::name(*k).unwrap_or("?"));
    }
}
