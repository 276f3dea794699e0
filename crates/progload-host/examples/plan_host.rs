//! Plan an exec on this machine exactly as its kernel would, with this process's profile,
//! and print the image: maps, entry, stack pointer, auxv.
//!
//! Run: `cargo run -p progload-host --example plan_host -- /usr/bin/true arg`

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, SeededRng};
use progload_host::{host_profile, HostFs};

fn main() {
    let args: Vec<Vec<u8>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_encoded_bytes())
        .collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| b"/usr/bin/true".to_vec());
    let argv = if args.is_empty() {
        vec![program.clone()]
    } else {
        args
    };
    let fs = HostFs::new("/").expect("open /");
    let mut profile = host_profile().expect("read the host profile");
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new(program, argv, vec![b"A=1".to_vec()]);
    match plan(&fs, &profile, &req, &mut SeededRng::new(1)) {
        Ok(p) => {
            for line in p.maps() {
                println!("{}", line.render());
            }
            println!(
                "entry {:#x}, stack pointer {:#x}, brk {:#x}",
                p.entry, p.stack.sp, p.mm.start_brk
            );
            for (k, v) in &p.auxv {
                println!("AT_{:<18} {v:#x}", progload::auxv::name(*k).unwrap_or("?"));
            }
        }
        Err(e) => {
            eprintln!("execve would fail with {}: {e}", e.errno());
            std::process::exit(1);
        }
    }
}
