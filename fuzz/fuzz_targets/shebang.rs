//! The `#!` parser on a 256-byte buffer, checked against a literal port of
//! `fs/binfmt_script.c: load_script()`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use progload::binfmt::{script, BUF_SIZE};
use progload_fuzz::kernel::{self, Script};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; BUF_SIZE];
    // Most inputs should be #! lines: a leading 0xff byte means "use the bytes as they are".
    let (raw, body) = match data.split_first() {
        Some((0xff, rest)) => (true, rest),
        _ => (false, data),
    };
    let body: Vec<u8> = if raw {
        body.to_vec()
    } else {
        let mut v = b"#!".to_vec();
        v.extend_from_slice(body);
        v
    };
    let n = body.len().min(BUF_SIZE);
    buf[..n].copy_from_slice(&body[..n]);

    let ours = script::parse(&buf);
    let theirs = kernel::load_script(&buf);
    match (&ours, &theirs) {
        (Ok(None), Script::NotMine) | (Err(_), Script::NoExec) => {}
        (Ok(Some(sb)), Script::Line(name, arg)) => {
            assert_eq!(
                &sb.interpreter, name,
                "interpreter differs from the kernel's"
            );
            assert_eq!(&sb.argument, arg, "argument differs from the kernel's");
        }
        _ => panic!("progload {ours:?} but the kernel {theirs:?}"),
    }
    if let Ok(Some(sb)) = &ours {
        assert!(!sb.interpreter.contains(&0));
        assert!(sb.argument.as_ref().is_none_or(|a| !a.contains(&0)));
        assert!(sb.interpreter.len() + sb.argument.as_ref().map_or(0, Vec::len) <= 253);
    }
});
