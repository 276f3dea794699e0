//! The whole pipeline: `progload::plan` over an in-memory filesystem, profile and request
//! built from a structured scenario (see `progload_fuzz::scenario`), for the x86_64 and
//! aarch64 presets. Successful plans must be consistent process images and replay into the
//! simulated address space; errors must carry an errno the kernel can return.
#![no_main]

use libfuzzer_sys::fuzz_target;
use progload::{plan, SeededRng};
use progload_fuzz::check;
use progload_fuzz::scenario::{unframe, Scenario};

fuzz_target!(|data: &[u8]| {
    let (cfg, blobs) = unframe(data);
    let sc = Scenario::decode(cfg);
    let b = sc.build(&blobs);
    let r = plan(&b.fs, &b.profile, &b.req, &mut SeededRng::new(b.seed));
    match &r {
        Ok(p) => check::check_plan(p, &b.profile, &b.fs, b.by_fd),
        Err(e) => check::check_error(e),
    }
    // Planning is a function of its inputs.
    let again = plan(&b.fs, &b.profile, &b.req, &mut SeededRng::new(b.seed));
    match (&r, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.vmas, b.vmas);
            assert_eq!(a.stack, b.stack);
            assert_eq!(a.auxv, b.auxv);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("two plans of the same input differ: {r:?} / {again:?}"),
    }
});
