//! AArch64, planned with a profile from any host. No arm64 kernel runs here, so the oracle is
//! the set of observations of a real arm64 kernel (Debian 6.1.192, 4 KiB pages, 48-bit VA,
//! booted under qemu-system-aarch64) recorded in the project's Linux reference (§2.7, §3.3).
//! The profile mirrors that kernel: 2 vvar pages, a 1-page vDSO, no AT_RSEQ_*, no AT_HWCAP3.

use std::sync::Arc;

use progload::auxv::*;
use progload::profile::{Vdso, VdsoPart, ADDR_NO_RANDOMIZE};
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
use progload_testkit::elfbuild::{
    ElfBuilder, ProgramHeader, EM_AARCH64, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X,
};

fn linux_6_1_arm64() -> Profile {
    let mut p = Profile::linux_6_18_aarch64();
    p.personality |= ADDR_NO_RANDOMIZE;
    p.rseq = None;
    p.hwcap3 = None;
    p.hwcap = 0xfdff_ffff;
    p.hwcap2 = 0x3_ffff;
    p.minsigstksz = 0x2700;
    p.vdso = Some(
        Vdso::new(
            vec![VdsoPart {
                name: "[vvar]".into(),
                pages: 2,
                prot: progload::Prot::READ,
            }],
            Arc::from(progload::vdso::placeholder(
                progload::arch::Arch::Aarch64,
                1,
                4096,
            )),
            progload::arch::Arch::Aarch64,
            4096,
        )
        .unwrap(),
    );
    p
}

fn aux(p: &progload::Plan<usize>, t: u64) -> u64 {
    p.auxv.iter().find(|a| a.0 == t).map(|a| a.1).unwrap()
}

/// §3.3: the static `dump64` (3 program headers, entry 0x40010c), argv `/bin/dump64 x yy`,
/// envp `A=1 BB=22`: sp 0xfffffffffe20, AT_RANDOM …ffb8, AT_PLATFORM …ffc8, AT_EXECFN …ffec,
/// vDSO at 0xfffff7fff000 with [vvar] fffff7ffd000-fffff7fff000.
#[test]
fn static_exec_stack_and_vdso_match_the_recorded_kernel() {
    let mut b = ElfBuilder::new(ET_EXEC, EM_AARCH64);
    b.header.e_entry = 0x40010c;
    b.phdrs
        .push(ProgramHeader::load(PF_R | PF_X, 0, 0x400000, 0x120, 0x120));
    b.phdrs.push(ProgramHeader::load(
        PF_R | PF_W,
        0x120,
        0x410120,
        0x10,
        0x20,
    ));
    b.phdrs.push(ProgramHeader::gnu_stack(PF_R | PF_W));
    b.min_len = 0x200;
    let mut fs = MemFs::new();
    fs.add_file(b"/bin/dump64", 0o755, b.build());
    let req = LoadRequest::new(
        "/bin/dump64",
        vec![b"/bin/dump64".to_vec(), b"x".to_vec(), b"yy".to_vec()],
        vec![b"A=1".to_vec(), b"BB=22".to_vec()],
    );
    let p = plan(&fs, &linux_6_1_arm64(), &req, &mut SeededRng::new(0)).unwrap();
    assert_eq!(p.stack.sp, 0xffff_ffff_fe20);
    assert_eq!(p.entry, 0x40010c);
    assert_eq!(aux(&p, AT_RANDOM), 0xffff_ffff_ffb8);
    assert_eq!(aux(&p, AT_PLATFORM), 0xffff_ffff_ffc8);
    assert_eq!(aux(&p, AT_EXECFN), 0xffff_ffff_ffec);
    assert_eq!(aux(&p, AT_SYSINFO_EHDR), 0xffff_f7ff_f000);
    assert_eq!(aux(&p, AT_PHDR), 0x400040);
    assert_eq!(p.auxv.len(), 21, "20 entries and AT_NULL on 6.1");
    let maps = p.maps();
    let vvar = maps.iter().find(|m| m.path == b"[vvar]").unwrap();
    assert_eq!((vvar.start, vvar.end), (0xffff_f7ff_d000, 0xffff_f7ff_f000));
    let stack = maps.iter().find(|m| m.path == b"[stack]").unwrap();
    assert_eq!(
        (stack.start, stack.end),
        (0xffff_fffd_f000, 0x1_0000_0000_0000)
    );
    assert!(maps.iter().all(|m| m.path != b"[vsyscall]"));
    // Registers: pc, sp, pstate (SSBS, as the farm's arm64 guests show), everything else 0.
    assert!(p
        .registers
        .named()
        .iter()
        .all(|&(n, v)| v == 0 || n == "pc" || n == "sp" || n == "pstate"));
}

fn static_pie(total: u64, align: u64) -> Vec<u8> {
    let mut b = ElfBuilder::new(ET_DYN, EM_AARCH64);
    b.header.e_entry = 0x100;
    let mut l = ProgramHeader::load(PF_R | PF_X, 0, 0, total, total);
    l.p_align = align;
    b.phdrs.push(l);
    b.phdrs.push(ProgramHeader::gnu_stack(PF_R | PF_W));
    b.min_len = total;
    b.build()
}

/// §2.7: static-PIE with p_align 64 KiB and total 0xa8000 lands at fffff7f50000 (probe at
/// 0xfffff8000000 - 0xa8000, aligned down); with p_align 2 MiB and 0x408000 at fffff7a00000;
/// brk at 0xaaaaaaaab000 (tmpfs root: no THP alignment).
#[test]
fn static_pie_alignment_matches_the_recorded_kernel() {
    let profile = linux_6_1_arm64();
    for (total, align, base) in [
        (0xa8000, 0x10000, 0xffff_f7f5_0000u64),
        (0x408000, 0x200000, 0xffff_f7a0_0000),
    ] {
        let mut fs = MemFs::new();
        fs.add_file(b"/sp", 0o755, static_pie(total, align));
        let req = LoadRequest::new("/sp", vec![b"/sp".to_vec()], vec![]);
        let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
        assert_eq!(p.maps()[0].start, base, "p_align {align:#x}");
        assert_eq!(p.mm.start_brk, 0xaaaa_aaaa_b000);
    }
}

/// §2.7: with an unlimited stack, arm64 uses the legacy bottom-up layout: the static
/// program's [vvar] is at 0x400000000000.
#[test]
fn unlimited_stack_is_legacy_bottom_up() {
    let mut profile = linux_6_1_arm64();
    profile.stack_rlimit = None;
    let mut fs = MemFs::new();
    fs.add_file(b"/s", 0o755, ElfBuilder::minimal_aarch64_exec().build());
    let req = LoadRequest::new("/s", vec![b"/s".to_vec()], vec![]);
    let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
    let vvar = p.maps().into_iter().find(|m| m.path == b"[vvar]").unwrap();
    assert_eq!(vvar.start, 0x4000_0000_0000);
}

#[test]
fn x86_64_binary_is_enoexec_for_aarch64() {
    let mut fs = MemFs::new();
    fs.add_file(b"/x", 0o755, ElfBuilder::minimal_x86_64_exec().build());
    let req = LoadRequest::new("/x", vec![b"/x".to_vec()], vec![]);
    let e = plan(&fs, &linux_6_1_arm64(), &req, &mut SeededRng::new(0)).unwrap_err();
    assert_eq!(e.errno(), progload::Errno::ENOEXEC);
}
