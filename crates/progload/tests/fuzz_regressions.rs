//! Regression tests for what the fuzz targets in `fuzz/` found, each input inlined as bytes
//! or values (the target, the finding and the fix are named on each test).

use progload::binfmt::misc::{Matcher, Rule};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::stack::{ArgStrings, Tables};
use progload::{plan, Error, LoadRequest, MemFs, Profile, SeededRng, SimAddressSpace};
use progload_testkit::elfbuild::{ElfBuilder, ProgramHeader, EM_X86_64, ET_EXEC, PF_R, PF_W, PF_X};

/// `misc_rules`: a name with bytes that are not UTF-8 was refused, while `create_entry()`
/// accepts any name bytes but NUL and `/`. Fixed by parsing as the kernel does
/// (`Rule::parse` mirrors `create_entry()`), keeping the name as lossy text.
#[test]
fn misc_rule_name_need_not_be_utf8() {
    let input: &[u8] = &[
        58, 112, 121, 255, 255, 255, 255, 58, 69, 58, 58, 112, 121, 58, 58, 47, 117, 115, 114, 47,
        98, 105, 110, 47, 112, 121, 116, 104, 111, 110, 51, 58, 80, 10,
    ];
    let r = Rule::parse(input).expect("the kernel registers this rule");
    assert_eq!(r.matcher, Matcher::Extension(b"py".to_vec()));
    assert_eq!(r.interpreter, b"/usr/bin/python3");
    assert!(r.preserve_argv0);
    assert_eq!(r.name, "py\u{fffd}\u{fffd}\u{fffd}\u{fffd}");
}

/// `misc_rules` (the same fix): the other C-string rules of `create_entry()` that the
/// differential target checks, one input each.
#[test]
fn misc_rule_c_string_semantics() {
    // A NUL inside the interpreter ends its C string before the delimiter: EINVAL.
    assert!(Rule::parse(b":n:E::py::/bin/\0sh:").is_err());
    // scanarg(): "\x" must be followed by two hex digits.
    assert!(Rule::parse(b":n:M::\\x4::/bin/sh:").is_err());
    // kstrtoint(): "-0" is offset 0.
    assert!(matches!(
        Rule::parse(b":n:M:-0:MZ::/bin/sh:").map(|r| r.matcher),
        Ok(Matcher::Magic { offset: 0, .. })
    ));
}

/// `stack`: `Tables::build` with a string area far below the stack top allocated the whole
/// distance (here about 506 PiB) for the stack image, and aborted. Fixed by requiring the
/// kernel's layout, where the strings end 8 bytes below the top (`Error::Stack` otherwise).
#[test]
fn stack_strings_far_below_top_are_refused() {
    let argv = [Vec::new(), Vec::new()];
    let envp = [Vec::new(), Vec::new()];
    let strings = ArgStrings::new(Some(&argv), &envp, b"", Some(8 << 20), 32 * 4096).unwrap();
    let t = Tables {
        strings: &strings,
        arg_start: 0x0007_0707_0707_0707,
        top: 0x0707_7fff_ffff_f000,
        align: progload::arch::AlignStack::Below8k,
        align_sub: 0,
        platform: b"",
        random: [0; 16],
        word: 8,
    };
    let auxv = [(0x0707_0000_0000_0707, 0x0107_0000_0000_0707), (0, 0)];
    assert_eq!(t.build(&auxv).unwrap_err(), Error::Stack);

    // The kernel's layout still builds.
    let top = 0x7fff_ffff_f000;
    let t = Tables {
        arg_start: top - 8 - strings.used(),
        top,
        ..t
    };
    let img = t.build(&auxv).unwrap();
    assert_eq!(img.sp % 16, 0);
    assert_eq!(img.bytes.len() as u64, top - img.sp);
}

/// `plan`: a non-PIE program whose bss made `padzero()` clear the tail of its data page, and
/// an `ET_EXEC` interpreter at the same address whose `total_size` reservation (then tail
/// unmap) removed that page. The plan still listed the zeroing, so replaying it failed
/// (`SimAddressSpace::load`: `NotMapped`). The fuzzer's input, rebuilt with the ELF builder.
/// Fixed by forgetting a page's `padzero()` when a later mapping replaces or removes it.
#[test]
fn padzero_of_a_page_the_interpreter_unmapped_is_forgotten() {
    let mut main = ElfBuilder::new(ET_EXEC, EM_X86_64);
    main.header.e_entry = 0x40_0100;
    main.phdr(ProgramHeader::interp(0x180, 0x40_0180, 11))
        .phdr(ProgramHeader::load(PF_R | PF_X, 0, 0x40_0000, 0x200, 0x200))
        .phdr(ProgramHeader::load(
            PF_R | PF_W,
            0x200,
            0x40_2200,
            0x10,
            0x100,
        ))
        .payload(0x180, b"/lib/ld.so\0")
        .min_len(0x210);
    let mut interp = ElfBuilder::new(ET_EXEC, EM_X86_64);
    interp.header.e_entry = 0x40_0080;
    interp
        .phdr(ProgramHeader::load(PF_R | PF_X, 0, 0x40_0000, 0x100, 0x100))
        .phdr(ProgramHeader::load(
            PF_R | PF_W,
            0x1000,
            0x80_0000,
            0x10,
            0x10,
        ))
        .min_len(0x1010);
    let mut fs = MemFs::new();
    fs.add_file(b"/bin/prog", 0o755, main.build());
    fs.add_file(b"/lib/ld.so", 0o755, interp.build());
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new("/bin/prog", vec![b"prog".to_vec()], vec![]);
    let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).expect("the kernel runs it");
    for &(addr, len) in &p.zero {
        let v = p
            .vmas
            .iter()
            .find(|v| v.start <= addr && addr + len <= v.end);
        assert!(
            v.is_some_and(|v| v.prot.contains(progload::Prot::WRITE)),
            "zeroing {addr:#x}+{len:#x} outside a writable mapping: {:?}",
            p.vmas
        );
    }
    assert!(!p.zero.iter().any(|&(a, _)| a == 0x40_2210));
    SimAddressSpace::new().load(&p).expect("the plan replays");
}
