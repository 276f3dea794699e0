//! binfmt_misc: `Rule::parse` of a registration string and `Rule::matches`/`misc::find`,
//! checked against literal ports of `create_entry()` and `search_binfmt_handler()`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use progload::binfmt::misc::{self, Matcher, Rule};
use progload::binfmt::BUF_SIZE;
use progload_fuzz::inputs::MiscInput as Input;
use progload_fuzz::kernel;

fuzz_target!(|input: Input| {
    let mut buf = [0u8; BUF_SIZE];
    let n = input.header.len().min(BUF_SIZE);
    buf[..n].copy_from_slice(&input.header[..n]);
    // bprm->interp is a C string.
    let path: Vec<u8> = input
        .path
        .iter()
        .take_while(|&&c| c != 0)
        .copied()
        .collect();

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for (i, s) in input.rules.iter().take(8).enumerate() {
        let r = Rule::parse(s);
        let k = kernel::create_entry(s);
        match (r, k) {
            (Ok(mut r), Some(k)) => {
                assert_eq!(r.interpreter, k.interpreter, "interpreter of {s:?}");
                assert_eq!(r.name, String::from_utf8_lossy(&k.name), "name of {s:?}");
                assert_eq!(
                    (r.preserve_argv0, r.open_binary, r.credentials, r.fix_binary),
                    (k.preserve_argv0, k.open_binary, k.credentials, k.open_file),
                    "flags of {s:?}"
                );
                match &r.matcher {
                    Matcher::Magic {
                        offset,
                        magic,
                        mask,
                    } => {
                        assert!(k.magic_type, "{s:?} is an extension rule for the kernel");
                        assert_eq!(*offset, k.offset, "offset of {s:?}");
                        assert_eq!(magic, &k.magic, "magic of {s:?}");
                        assert_eq!(mask.len(), magic.len());
                        assert!(offset + magic.len() <= BUF_SIZE);
                        let kmask = k.mask.clone().unwrap_or_else(|| vec![0xff; k.magic.len()]);
                        assert_eq!(mask, &kmask, "mask of {s:?}");
                    }
                    Matcher::Extension(ext) => {
                        assert!(!k.magic_type, "{s:?} is a magic rule for the kernel");
                        assert_eq!(ext, &k.magic, "extension of {s:?}");
                    }
                }
                let enabled = input.disabled & (1 << i) == 0;
                r.enabled = enabled;
                ours.push(r);
                theirs.push((k, enabled));
            }
            (Err(e), None) => {
                assert_eq!(e.errno(), progload::Errno::EINVAL);
            }
            (r, k) => panic!("{s:?}: progload {r:?}, kernel {k:?}"),
        }
    }
    for (r, (k, enabled)) in ours.iter().zip(&theirs) {
        let want = *enabled && kernel::entry_matches(k, &buf, &path);
        assert_eq!(r.matches(&buf, &path), want, "match of {r:?}");
    }
    // The newest enabled matching rule wins.
    let found = misc::find(&ours, &buf, &path).map(|r| r as *const Rule);
    let want = ours
        .iter()
        .zip(&theirs)
        .rev()
        .find(|(_, (k, en))| *en && kernel::entry_matches(k, &buf, &path))
        .map(|(r, _)| r as *const Rule);
    assert_eq!(found, want);
});
