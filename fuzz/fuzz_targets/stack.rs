//! The initial stack: `ArgStrings` (the E2BIG accounting, `#!` rewrites) and `Tables::build`
//! with fuzzer strings, limits and addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use progload::stack::{ArgStrings, Tables};
use progload::Error;
use progload_fuzz::inputs::{StackInput as Input, StackOp as Op};

fn cstring(v: &[u8]) -> Vec<u8> {
    v.iter().take_while(|&&c| c != 0).copied().collect()
}

fuzz_target!(|input: Input| {
    let argv = input
        .argv
        .as_ref()
        .map(|a| a.iter().map(|s| cstring(s)).collect::<Vec<_>>());
    let mut envp: Vec<Vec<u8>> = input.envp.iter().map(|s| cstring(s)).collect();
    if let Some((len, byte, count)) = input.fill {
        let len = len as usize % (300 << 10);
        for _ in 0..count % 64 {
            // A C string: a NUL fill byte gives an empty string.
            envp.push(if byte == 0 {
                Vec::new()
            } else {
                vec![byte; len]
            });
        }
    }
    let execfn = cstring(&input.execfn);
    let max_strlen = u64::from(input.max_strlen_pages.max(1)) * 4096;
    let mut s = match ArgStrings::new(argv.as_deref(), &envp, &execfn, input.rlimit, max_strlen) {
        Ok(s) => s,
        Err(e) => {
            assert!(
                matches!(e, Error::ArgsTooBig { .. } | Error::ArgTooLong { .. }),
                "{e:?}"
            );
            return;
        }
    };
    assert!(!s.argv.is_empty(), "argc is 0");
    for op in input.ops.iter().take(16) {
        match op {
            Op::PushFront(v) => {
                let v = cstring(v);
                let before = s.used();
                match s.push_front(&v) {
                    Ok(()) => assert_eq!(s.used(), before + v.len() as u64 + 1),
                    Err(e) => {
                        assert!(matches!(
                            e,
                            Error::ArgsTooBig { .. } | Error::ArgTooLong { .. }
                        ));
                        assert_eq!(s.used(), before);
                    }
                }
            }
            Op::RemoveArgZero => s.remove_arg_zero(),
        }
    }
    let bytes = s.bytes();
    assert_eq!(
        bytes.len() as u64,
        s.used(),
        "used() is the string area's size"
    );
    assert!(s.max_used() >= s.used());
    // The budget: never more than 6 MiB of strings.
    assert!(s.max_used() <= 6 << 20);

    let top = input.top & !0xfff;
    let consistent = top
        .checked_sub(8)
        .and_then(|t| t.checked_sub(s.used()))
        .and_then(|t| t.checked_sub(u64::from(input.gap)));
    let Some(arg_start) = input.raw_arg_start.or(consistent) else {
        return;
    };
    let mut auxv: Vec<(u64, u64)> = input.auxv.iter().take(64).copied().collect();
    auxv.push((0, 0));
    let t = Tables {
        strings: &s,
        arg_start,
        top,
        // The low bit of the offset picks the identity arch_align_stack() (riscv before 6.12).
        align: if input.align_sub & 1 == 1 {
            progload::arch::AlignStack::Identity
        } else {
            progload::arch::AlignStack::Below8k
        },
        align_sub: u64::from(input.align_sub) % 8192,
        platform: &cstring(&input.platform),
        random: input.random,
        // The next bit picks 32-bit words (an ia32 program).
        word: if input.align_sub & 2 == 2 { 4 } else { 8 },
    };
    let consistent = arg_start
        .checked_add(s.used())
        .and_then(|e| e.checked_add(8))
        == Some(top);
    let img = match t.build(&auxv) {
        Ok(img) => img,
        Err(e) => {
            assert_eq!(e, Error::Stack);
            return;
        }
    };
    assert!(
        consistent,
        "a stack whose strings do not end 8 bytes below the top"
    );
    assert_eq!(img.sp % 16, 0);
    assert_eq!(img.top, top);
    assert_eq!(img.bytes.len() as u64, top - img.sp);
    let w = t.word as usize;
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(&img.bytes[i * w..i * w + w]);
        u64::from_le_bytes(b)
    };
    assert_eq!(word(0), s.argv.len() as u64);
    let in_image = |a: u64| a >= img.sp && a < top;
    if in_image(arg_start) && arg_start + s.used() <= top {
        let off = (arg_start - img.sp) as usize;
        assert_eq!(
            &img.bytes[off..off + bytes.len()],
            &bytes[..],
            "string area"
        );
    }
    assert!(img.random_addr >= img.sp && img.random_addr + 16 <= top || !in_image(arg_start));
});
