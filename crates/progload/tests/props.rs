//! Property tests: planning never panics, whatever the bytes of the files.
//!
//! 1. A real dynamically linked binary (`/usr/bin/true`) and its real interpreter
//!    (`/lib64/ld-linux-x86-64.so.2`), read from the host at test time into a [`MemFs`] at the
//!    same paths, with random bytes overwritten in the ELF header, the program header table or
//!    anywhere in the file (of either of them).
//! 2. Random `#!` lines (spaces, tabs, NUL, CR and LF heavily weighted), through
//!    `binfmt::script::parse` and through a full plan.
//!
//! Every plan result must be `Ok` or an `Err` carrying a known errno.

use std::sync::{Arc, OnceLock};

use progload::binfmt::{script, BUF_SIZE};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, Error, LoadRequest, MemFs, Plan, Profile, SeededRng};
use proptest::prelude::*;

const TRUE: &str = "/usr/bin/true";
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// `/usr/bin/true` and its interpreter.
type HostFiles = (Arc<[u8]>, Arc<[u8]>);

/// The two host files, read once. `None` when the host does not have them (the file-mutation
/// property is then skipped).
fn host_files() -> Option<&'static HostFiles> {
    static FILES: OnceLock<Option<HostFiles>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let t = std::fs::read(TRUE).ok()?;
            let l = std::fs::read(LD_SO).ok()?;
            Some((Arc::from(t), Arc::from(l)))
        })
        .as_ref()
}

fn profile(no_randomize: bool) -> Profile {
    let mut p = Profile::linux_6_18_x86_64();
    if no_randomize {
        p.personality |= ADDR_NO_RANDOMIZE;
    }
    p
}

/// Checks the contract of a plan result: `Ok` with a sane image, or an error with a real errno.
fn check_result(r: &Result<Plan<usize>, Error>, profile: &Profile) -> Result<(), TestCaseError> {
    match r {
        Ok(p) => {
            prop_assert_eq!(p.stack.sp % 16, 0);
            prop_assert!(p.entry < profile.task_size, "entry {:#x}", p.entry);
        }
        Err(e) => {
            let errno = e.errno();
            prop_assert!(errno.0 > 0, "{e}: errno {errno:?}");
            prop_assert_ne!(errno.name(), "E?", "{}: unknown errno {:?}", e, errno);
        }
    }
    Ok(())
}

/// Where a mutation lands.
#[derive(Clone, Copy, Debug)]
enum Region {
    /// The 64-byte ELF header.
    Header,
    /// The program header table (as `e_phoff`/`e_phnum` of the unmutated file say).
    Phdrs,
    /// Anywhere in the file.
    Anywhere,
}

/// One overwrite: `value` (1 or 8 bytes) at position `pos` (scaled into the region).
#[derive(Clone, Debug)]
struct Mutation {
    interp: bool,
    region: Region,
    pos: usize,
    value: Vec<u8>,
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(0xfff),
        Just(0x1000),
        Just(0x20_0000),
        Just(0x7fff_ffff_f000),
        Just(0x8000_0000_0000),
        Just(i64::MAX as u64),
        Just(1u64 << 63),
        Just(u64::MAX),
        Just(u64::MAX - 0xfff),
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let region = prop_oneof![
        3 => Just(Region::Header),
        4 => Just(Region::Phdrs),
        3 => Just(Region::Anywhere),
    ];
    let value = prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        1 => prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80)].prop_map(|b| vec![b]),
        2 => interesting_u64().prop_map(|v| v.to_le_bytes().to_vec()),
    ];
    (prop::bool::weighted(0.25), region, any::<usize>(), value).prop_map(
        |(interp, region, pos, value)| Mutation {
            interp,
            region,
            pos,
            value,
        },
    )
}

fn u16_at(f: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([f[at], f[at + 1]]))
}

fn u64_at(f: &[u8], at: usize) -> usize {
    u64::from_le_bytes(f[at..at + 8].try_into().unwrap()) as usize
}

fn apply(file: &mut [u8], m: &Mutation) {
    let (start, len) = match m.region {
        Region::Header => (0, 64),
        Region::Phdrs => (u64_at(file, 32), u16_at(file, 56) * 56),
        Region::Anywhere => (0, file.len()),
    };
    let Some(mut at) = start.checked_add(m.pos % len.max(1)) else {
        return;
    };
    if m.value.len() == 8 {
        // Whole 64-bit fields: keep the phdr table's 8-byte alignment.
        at &= !7;
    }
    let end = (at + m.value.len()).min(file.len());
    if at < end {
        file[at..end].copy_from_slice(&m.value[..end - at]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A real binary and its interpreter with random bytes overwritten: plan never panics.
    #[test]
    fn mutated_real_binary_never_panics(
        mutations in prop::collection::vec(mutation(), 1..8),
        no_randomize in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some((t, l)) = host_files() else {
            return Ok(());
        };
        let (mut t, mut l) = (t.to_vec(), l.to_vec());
        for m in &mutations {
            apply(if m.interp { &mut l } else { &mut t }, m);
        }
        let mut fs = MemFs::new();
        fs.add_file(TRUE.as_bytes(), 0o755, t);
        fs.add_file(LD_SO.as_bytes(), 0o755, l);
        let profile = profile(no_randomize);
        let req = LoadRequest::new(TRUE, vec![b"true".to_vec()], vec![b"A=1".to_vec()]);
        let r = plan(&fs, &profile, &req, &mut SeededRng::new(seed));
        check_result(&r, &profile)?;
    }

    /// Random `#!` lines: the parser never panics and what it returns obeys its own rules.
    #[test]
    fn random_shebang_parse_never_panics(line in shebang_line()) {
        let mut buf = [0u8; BUF_SIZE];
        let n = line.len().min(BUF_SIZE);
        buf[..n].copy_from_slice(&line[..n]);
        match script::parse(&buf) {
            Ok(Some(sb)) => {
                prop_assert!(!sb.interpreter.contains(&0));
                prop_assert!(!sb.interpreter.contains(&b'\n'));
                prop_assert!(!sb.interpreter.first().is_some_and(|&c| c == b' ' || c == b'\t'));
                if let Some(a) = &sb.argument {
                    prop_assert!(!a.contains(&0));
                    prop_assert!(!a.contains(&b'\n'));
                }
                // Byte 255 is never part of the line.
                prop_assert!(sb.interpreter.len() + sb.argument.as_ref().map_or(0, Vec::len) <= 253);
            }
            Ok(None) => prop_assert!(false, "a #! line was not recognised"),
            Err(_) => {}
        }
    }

    /// Random `#!` lines through a full plan: never a panic, always Ok or an errno.
    #[test]
    fn random_shebang_plan_never_panics(
        line in shebang_line(),
        no_randomize in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut fs = MemFs::new();
        fs.add_file(b"/s", 0o755, line);
        // Interpreters some lines name: a script, a static program, a directory.
        fs.add_file(b"/i", 0o755, b"#!/t x\n".to_vec());
        fs.add_file(
            b"/t",
            0o755,
            progload_testkit::elfbuild::ElfBuilder::minimal_x86_64_exec().build(),
        );
        fs.add_dir(b"/d", 0o755);
        if let Some((t, l)) = host_files() {
            fs.add_file(TRUE.as_bytes(), 0o755, t.clone());
            fs.add_file(LD_SO.as_bytes(), 0o755, l.clone());
        }
        let profile = profile(no_randomize);
        let req = LoadRequest::new("/s", vec![b"s".to_vec(), b"arg".to_vec()], vec![]);
        let r = plan(&fs, &profile, &req, &mut SeededRng::new(seed));
        check_result(&r, &profile)?;
    }
}

/// One byte of a `#!` line: blanks, NUL, CR and LF heavily weighted.
fn line_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => Just(b' '),
        4 => Just(b'\t'),
        3 => Just(0u8),
        3 => Just(b'\n'),
        3 => Just(b'\r'),
        4 => Just(b'/'),
        4 => prop::sample::select(b"abdist.-".to_vec()),
        2 => any::<u8>(),
    ]
}

/// `#!`, sometimes a plausible interpreter name, then 0..300 random bytes.
fn shebang_line() -> impl Strategy<Value = Vec<u8>> {
    let head = prop_oneof![
        3 => Just(Vec::new()),
        1 => Just(b"/t".to_vec()),
        1 => Just(b"/i".to_vec()),
        1 => Just(b"/s".to_vec()),
        1 => Just(b"/d".to_vec()),
        1 => Just(TRUE.as_bytes().to_vec()),
        1 => Just(b" \t/t".to_vec()),
    ];
    (head, prop::collection::vec(line_byte(), 0..300)).prop_map(|(head, tail)| {
        let mut v = b"#!".to_vec();
        v.extend(head);
        v.extend(tail);
        v
    })
}
