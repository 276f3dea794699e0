//! Writes the seed corpora of every fuzz target: `cargo run --example seed -- [DIR]`
//! (default `corpus`, relative to the fuzz directory; `fuzz/seed.sh` runs it).
//!
//! Seeds come from real binaries of this machine (their first 8 KiB: the headers, program
//! headers and PT_INTERP string are all the loader reads), from the valid templates of
//! `progload_fuzz::elf` for both architectures, and from hand-picked `#!` lines, binfmt_misc
//! rules and stack inputs. Structured seeds are encoded with `progload_fuzz::inputs::Enc` and
//! checked to decode back to the intended value.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use progload_fuzz::elf::{self, Edit, HeaderField, Kind, Machine, PhdrField, Template, Val};
use progload_fuzz::inputs::{Enc, MiscInput, StackInput, StackOp};
use progload_fuzz::scenario::{frame, Content, Scenario};

const REAL: &[&str] = &[
    "/usr/bin/true",
    "/lib64/ld-linux-x86-64.so.2",
    "/bin/sh",
    "/usr/bin/env",
    "/usr/bin/ls",
    // An i386 program (planned when the scenario gives the profile a compat part).
    "/usr/libexec/valgrind/none-x86-linux",
];

const KINDS: [Kind; 5] = [
    Kind::DynInterp,
    Kind::StaticExec,
    Kind::StaticPie,
    Kind::ExecInterp,
    Kind::Interp,
];

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        Out { dir, n: 0 }
    }
    fn put(&mut self, name: &str, data: &[u8]) {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::write(self.dir.join(format!("seed-{name}")), data).expect("write seed");
        self.n += 1;
    }
}

fn real_files() -> Vec<(String, Vec<u8>)> {
    REAL.iter()
        .filter_map(|p| {
            let mut d = std::fs::read(p).ok()?;
            d.truncate(8192);
            Some((p.rsplit('/').next().unwrap_or(p).to_string(), d))
        })
        .collect()
}

fn template(kind: Kind, big_align: bool, property: Option<u8>, gnu_stack: u8) -> Template {
    Template {
        kind,
        big_align,
        bss: 0x180,
        gnu_stack,
        property,
        extra_headers: true,
    }
}

fn crafted() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for m in [Machine::X86_64, Machine::Aarch64] {
        for (ki, k) in KINDS.iter().enumerate() {
            for big in [false, true] {
                let prop = (m == Machine::Aarch64).then_some(1);
                let t = template(*k, big, prop, 1);
                let f = elf::build(&t, m, m.ld_so());
                out.push((format!("{m:?}-kind{ki}-big{big}"), f));
            }
        }
        // Boundary edits of the header and table.
        let base = elf::build(&template(Kind::DynInterp, false, None, 1), m, m.ld_so());
        let edits: Vec<(&str, Vec<Edit>)> = vec![
            (
                "phnum0",
                vec![Edit::Header(HeaderField::Phnum, Val::Small(0))],
            ),
            (
                "phnum1170",
                vec![Edit::Header(HeaderField::Phnum, Val::Small(1170))],
            ),
            (
                "phnum1171",
                vec![Edit::Header(HeaderField::Phnum, Val::Small(1171))],
            ),
            (
                "phentsize64",
                vec![Edit::Header(HeaderField::Phentsize, Val::Small(64))],
            ),
            (
                "phoff-eof",
                vec![Edit::Header(HeaderField::Phoff, Val::Small(0x4000))],
            ),
            (
                "phoff-huge",
                vec![Edit::Header(HeaderField::Phoff, Val::Raw(u64::MAX - 8))],
            ),
            (
                "type-rel",
                vec![Edit::Header(HeaderField::Type, Val::Small(1))],
            ),
            (
                "interp-noterm",
                vec![Edit::Phdr(1, PhdrField::Filesz, Val::Delta(-1))],
            ),
            (
                "interp-huge",
                vec![Edit::Phdr(1, PhdrField::Filesz, Val::Small(4097))],
            ),
            (
                "load-vaddr-top",
                vec![Edit::Phdr(2, PhdrField::Vaddr, Val::Raw(0x7fff_ffff_f000))],
            ),
            (
                "load-memsz-huge",
                vec![Edit::Phdr(3, PhdrField::Memsz, Val::Raw(u64::MAX))],
            ),
            (
                "load-filesz-gt-memsz",
                vec![Edit::Phdr(3, PhdrField::Filesz, Val::Small(0x5000))],
            ),
            (
                "load-misaligned",
                vec![Edit::Phdr(3, PhdrField::Offset, Val::Delta(1))],
            ),
            ("load-dup", vec![Edit::DupPhdr(2, 3)]),
            (
                "align-huge",
                vec![Edit::Phdr(2, PhdrField::Align, Val::Raw(1 << 40))],
            ),
            ("truncated", vec![Edit::Truncate(200)]),
        ];
        for (name, e) in edits {
            let mut f = base.clone();
            elf::apply(&mut f, &e);
            out.push((format!("{m:?}-{name}"), f));
        }
    }
    out
}

fn check_decodes<'a, T: Arbitrary<'a> + PartialEq + std::fmt::Debug>(bytes: &'a [u8], want: &T) {
    let got = T::arbitrary_take_rest(Unstructured::new(bytes)).expect("decodes");
    assert_eq!(
        &got, want,
        "seed encoding does not decode to the intended value"
    );
}

fn enc_vecs(e: &mut Enc, v: &[Vec<u8>]) {
    for s in v {
        e.more().bytes(s);
    }
    e.end();
}

fn misc_seed(rules: &[&[u8]], disabled: u8, header: &[u8], path: &[u8]) -> Vec<u8> {
    let want = MiscInput {
        rules: rules.iter().map(|r| r.to_vec()).collect(),
        disabled,
        header: header.to_vec(),
        path: path.to_vec(),
    };
    let mut e = Enc::default();
    enc_vecs(&mut e, &want.rules);
    e.u8(disabled).bytes(header).bytes(path);
    check_decodes(&e.0, &want);
    e.0
}

fn stack_seed(want: &StackInput) -> Vec<u8> {
    let mut e = Enc::default();
    e.some(want.argv.is_some());
    if let Some(a) = &want.argv {
        enc_vecs(&mut e, a);
    }
    enc_vecs(&mut e, &want.envp);
    e.some(want.fill.is_some());
    if let Some((l, b, c)) = want.fill {
        e.u32(l).u8(b).u8(c);
    }
    e.bytes(&want.execfn).some(want.rlimit.is_some());
    if let Some(r) = want.rlimit {
        e.u64(r);
    }
    e.u8(want.max_strlen_pages);
    for op in &want.ops {
        e.more();
        match op {
            StackOp::PushFront(v) => e.variant(0, 2).bytes(v),
            StackOp::RemoveArgZero => e.variant(1, 2),
        };
    }
    e.end()
        .u64(want.top)
        .u16(want.gap)
        .some(want.raw_arg_start.is_some());
    if let Some(a) = want.raw_arg_start {
        e.u64(a);
    }
    e.u16(want.align_sub)
        .bytes(&want.platform)
        .raw(&want.random);
    for &(k, v) in &want.auxv {
        e.more().u64(k).u64(v);
    }
    e.end();
    check_decodes(&e.0, want);
    e.0
}

/// A scenario prefix: architecture and `/bin/prog` = a template (other fields default).
fn plan_elf_cfg(aarch64: bool, kind: u32, big: bool, property: Option<u8>) -> Vec<u8> {
    let mut e = Enc::default();
    e.bool(aarch64).variant(1, 4); // Content::Elf
    e.variant(kind, 5)
        .bool(big)
        .u16(0x180)
        .u8(1)
        .some(property.is_some());
    if let Some(p) = property {
        e.u8(p);
    }
    e.bool(true); // extra_headers
    e.some(false).bool(false).end(); // interp, foreign, edits
    let sc = Scenario::decode(&e.0);
    assert_eq!(sc.aarch64, aarch64);
    assert!(
        matches!(&sc.main, Content::Elf { template, .. } if template.kind == KINDS[kind as usize])
    );
    e.0
}

/// `/bin/prog` = `#!/bin/sh -e`.
fn plan_script_cfg(aarch64: bool) -> Vec<u8> {
    let mut e = Enc::default();
    e.bool(aarch64).variant(2, 4); // Content::Script
    e.bool(false); // absolute
    e.more()
        .variant(0, 5)
        .u8(0)
        .more()
        .variant(0, 5)
        .u8(5)
        .end(); // /bin/sh
    e.bool(false).bool(false);
    e.some(true).bytes(b"-e").u8(0).u8(0).some(false);
    let sc = Scenario::decode(&e.0);
    assert!(matches!(&sc.main, Content::Script { .. }));
    e.0
}

/// `/bin/prog` = raw "MZ..." with a binfmt_misc rule sending it to `/bin/sh`.
fn plan_misc_cfg(rule: &[u8]) -> Vec<u8> {
    let mut e = Enc::default();
    e.bool(false)
        .variant(3, 4)
        .bytes(b"MZ\x90\x00\x03\x00\x00\x00");
    e.some(false).end(); // ld_so, entries
    e.variant(0, 4).variant(0, 3).variant(0, 3); // exec, argv, envp
    e.some(false).bool(false).variant(0, 4); // cwd, no_follow, rlimit
    e.u8(0).u8(0).u8(0); // personality, caller, tweaks
    e.more().variant(2, 3).bytes(rule).end(); // rules: [Raw(rule)]
    let sc = Scenario::decode(&e.0);
    assert_eq!(sc.rules.len(), 1);
    e.0
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let real = real_files();
    let crafted = crafted();

    // elf_headers: real headers and crafted files.
    let mut o = Out::new(&root, "elf_headers");
    for (n, d) in real.iter().chain(&crafted) {
        o.put(n, d);
    }
    println!("elf_headers: {} seeds", o.n);

    // shebang: the target prepends "#!" unless the first byte is 0xff.
    let mut o = Out::new(&root, "shebang");
    let long = |n: usize, eol: &[u8]| {
        let mut v = b"/bin/".to_vec();
        v.resize(n, b'x');
        v.extend_from_slice(eol);
        v
    };
    let lines: Vec<Vec<u8>> = vec![
        b"/bin/sh\n".to_vec(),
        b"/bin/sh -e\n".to_vec(),
        b" /usr/bin/env  python3 -u  \n".to_vec(),
        b"\t/x\targ1   arg2\t \n".to_vec(),
        b"/x\r\n".to_vec(),
        b"/x a\0b c\n".to_vec(),
        b"/x\0\n".to_vec(),
        b"   \n".to_vec(),
        b"".to_vec(),
        long(253, b"\n"),
        long(254, b""),
        long(260, b""),
        long(200, b" arg"),
        b"\xff#!/bin/sh\n".to_vec(),
        b"\xff\x7fELF\x02\x01\x01".to_vec(),
    ];
    for (i, l) in lines.iter().enumerate() {
        o.put(&format!("line{i}"), l);
    }
    println!("shebang: {} seeds", o.n);

    // misc_rules.
    let mut o = Out::new(&root, "misc_rules");
    let elf_hdr = crafted[0].1.clone();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "qemu",
            misc_seed(
                &[b":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64:OCF"],
                0,
                &elf_hdr,
                b"/bin/prog",
            ),
        ),
        (
            "ext",
            misc_seed(&[b":py:E::py::/usr/bin/python3:P\n"], 0, b"print(1)\n", b"./t.py"),
        ),
        (
            "two",
            misc_seed(
                &[b":a:M:2:\\x01\\x02:\\xff\\x0f:/bin/a:", b"|b|M|0|MZ||/bin/b|O"],
                1,
                b"MZ\x01\x02",
                b"x.exe",
            ),
        ),
        ("offset", misc_seed(&[b":o:M:250:abcdef::/i:"], 0, &[0x61; 256], b"o")),
        ("bad", misc_seed(&[b":a:X::abc::/bin/x:", b":a/b:E::abc::/bin/x:"], 0, b"", b"")),
    ];
    for (n, s) in &seeds {
        o.put(n, s);
    }
    println!("misc_rules: {} seeds", o.n);

    // stack.
    let mut o = Out::new(&root, "stack");
    let base = StackInput {
        argv: Some(vec![b"prog".to_vec(), b"-v".to_vec()]),
        envp: vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()],
        fill: None,
        execfn: b"/bin/prog".to_vec(),
        rlimit: Some(8 << 20),
        max_strlen_pages: 32,
        ops: vec![],
        top: 0x7fff_ffff_f000,
        gap: 0,
        raw_arg_start: None,
        align_sub: 0,
        platform: b"x86_64".to_vec(),
        random: [7; 16],
        auxv: vec![(6, 4096), (25, 0)],
    };
    o.put("plain", &stack_seed(&base));
    let mut s = base.clone();
    s.fill = Some((131_071, b'A', 15));
    o.put("big-args", &stack_seed(&s));
    let mut s = base.clone();
    s.argv = None;
    s.rlimit = None;
    s.ops = vec![
        StackOp::RemoveArgZero,
        StackOp::PushFront(b"/bin/prog".to_vec()),
        StackOp::PushFront(b"-e".to_vec()),
        StackOp::PushFront(b"/bin/sh".to_vec()),
    ];
    o.put("script-rewrite", &stack_seed(&s));
    let mut s = base.clone();
    s.rlimit = Some(100 << 10);
    s.align_sub = 0x1ff0;
    s.platform = b"aarch64".to_vec();
    s.top = 0x1_0000_0000_0000;
    o.put("small-rlimit", &stack_seed(&s));
    println!("stack: {} seeds", o.n);

    // plan: real binaries with their interpreter, and templates of both architectures.
    let mut o = Out::new(&root, "plan");
    let by_name = |n: &str| real.iter().find(|(k, _)| k == n).map(|(_, d)| d.as_slice());
    if let (Some(t), Some(l)) = (by_name("true"), by_name("ld-linux-x86-64.so.2")) {
        o.put("true+ld.so", &frame(&[], &[t, l]));
        o.put("ld.so-direct", &frame(&[], &[l]));
    }
    for (n, d) in &real {
        if let Some(l) = by_name("ld-linux-x86-64.so.2") {
            o.put(&format!("real-{n}"), &frame(&[], &[d, l]));
        }
    }
    o.put("default-template", &frame(&[], &[]));
    for aarch64 in [false, true] {
        for kind in 0..5 {
            for big in [false, true] {
                let prop = aarch64.then_some(1);
                let cfg = plan_elf_cfg(aarch64, kind, big, prop);
                o.put(
                    &format!("tmpl-a{aarch64}-k{kind}-big{big}"),
                    &frame(&cfg, &[]),
                );
            }
        }
        o.put(
            &format!("script-a{aarch64}"),
            &frame(&plan_script_cfg(aarch64), &[]),
        );
    }
    o.put(
        "misc-magic",
        &frame(&plan_misc_cfg(b":dos:M::MZ::/bin/sh:"), &[]),
    );
    o.put(
        "misc-preserve",
        &frame(&plan_misc_cfg(b":dos:M::MZ::/bin/sh:PO"), &[]),
    );
    // A few pseudo-random scenarios (deterministic).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..16 {
        let cfg: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        o.put(&format!("random{i}"), &frame(&cfg, &[]));
    }
    println!("plan: {} seeds", o.n);
}
