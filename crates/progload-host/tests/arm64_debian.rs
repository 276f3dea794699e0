//! Real Debian arm64 binaries planned with the aarch64 preset (Linux 6.18, 4 KiB pages,
//! 48-bit VA, `ADDR_NO_RANDOMIZE`), over a `HostFs` rooted at the unpacked packages, so that
//! PT_INTERP `/lib/ld-linux-aarch64.so.1` resolves inside that tree.
//!
//! No arm64 kernel runs here. The oracle is the arm64 rules of the Linux reference (§2.7
//! layout, §3.1/§3.2 stack and auxv, §3.5 registers) evaluated on each binary's own program
//! headers, read by the small parser below: every expected address is derived, none is typed
//! in except where the reference states the value outright (and then the derivation is
//! checked against it).
//!
//! The binaries come from `scripts/fetch-arm64.sh` (busybox-static, coreutils and libc6 for
//! arm64, unpacked into `<target>/arm64-debian/root`; `PROGLOAD_ARM64_ROOT` overrides the
//! place). CI runs that script first. Every test here skips, loudly, only when that tree is
//! absent.

use std::path::{Path, PathBuf};

use progload::auxv::*;
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MapsLine, Plan, Profile, SeededRng};
use progload_host::{HostFs, HostHandle};

/// `STACK_TOP` = `DEFAULT_MAP_WINDOW_64` (§2.7: no page subtracted).
const STACK_TOP: u64 = 1 << 48;
/// `ELF_ET_DYN_BASE` = 2/3 of the 48-bit window.
const ELF_ET_DYN_BASE: u64 = 2 * STACK_TOP / 3;
const PAGE: u64 = 4096;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// The unpacked tree, or `None` (after saying so) when `scripts/fetch-arm64.sh` has not run.
fn tree(test: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("PROGLOAD_ARM64_ROOT") {
        Some(r) => PathBuf::from(r),
        None => progload_testkit::progs::target_dir().join("arm64-debian/root"),
    };
    if root.join("bin/busybox").exists() && root.join("lib/ld-linux-aarch64.so.1").exists() {
        Some(root)
    } else {
        // Straight to the process's stderr, past the test harness's capture, so the skip
        // shows in a normal `cargo test` run.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no Debian arm64 tree at {} (run scripts/fetch-arm64.sh)",
            root.display()
        );
        None
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal ELF64 reader for the expectations (independent of the core's parser).

#[derive(Debug, Clone, Copy)]
struct Ph {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_align: u64,
}

#[derive(Debug)]
struct Elf {
    e_type: u16,
    e_machine: u16,
    e_entry: u64,
    e_phoff: u64,
    phdrs: Vec<Ph>,
    interp: Option<Vec<u8>>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn read_elf(path: &Path) -> Elf {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{}", path.display());
    let e_phoff = u64_at(&b, 32);
    let phnum = usize::from(u16_at(&b, 56));
    let phdrs: Vec<Ph> = (0..phnum)
        .map(|i| {
            let o = e_phoff as usize + 56 * i;
            Ph {
                p_type: u32_at(&b, o),
                p_flags: u32_at(&b, o + 4),
                p_offset: u64_at(&b, o + 8),
                p_vaddr: u64_at(&b, o + 16),
                p_filesz: u64_at(&b, o + 32),
                p_memsz: u64_at(&b, o + 40),
                p_align: u64_at(&b, o + 48),
            }
        })
        .collect();
    let interp = phdrs.iter().find(|p| p.p_type == PT_INTERP).map(|p| {
        let s = &b[p.p_offset as usize..(p.p_offset + p.p_filesz) as usize];
        s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()
    });
    Elf {
        e_type: u16_at(&b, 16),
        e_machine: u16_at(&b, 18),
        e_entry: u64_at(&b, 24),
        e_phoff,
        phdrs,
        interp,
    }
}

impl Elf {
    fn loads(&self) -> impl Iterator<Item = &Ph> {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// `maximum_alignment()`: the largest power-of-two p_align, page-aligned.
    fn max_align(&self) -> u64 {
        self.loads()
            .map(|p| p.p_align)
            .filter(|a| a.is_power_of_two())
            .max()
            .map_or(0, page_align)
    }

    /// `total_mapping_size()`, page-aligned.
    fn span(&self) -> u64 {
        let lo = self.loads().map(|p| page_start(p.p_vaddr)).min().unwrap();
        let hi = self.loads().map(|p| p.p_vaddr + p.p_memsz).max().unwrap();
        page_align(hi - lo)
    }

    fn first_vaddr(&self) -> u64 {
        self.loads().next().unwrap().p_vaddr
    }

    /// The `elf_brk` (highest `p_vaddr + p_memsz`).
    fn brk_end(&self) -> u64 {
        self.loads().map(|p| p.p_vaddr + p.p_memsz).max().unwrap()
    }

    /// `phdr_addr`: where the loaded program header table is (unbiased).
    fn phdr_vaddr(&self) -> u64 {
        self.loads()
            .filter(|p| p.p_offset <= self.e_phoff && self.e_phoff < p.p_offset + p.p_filesz)
            .last()
            .map_or(0, |p| self.e_phoff - p.p_offset + p.p_vaddr)
    }

    /// §2.4 per segment, at `bias`: the file mapping and the anonymous bss pages, as
    /// `(start, end, perms, offset, is_file)`; a later segment mapped over an earlier page is
    /// not modelled (these binaries have none).
    fn segment_maps(&self, bias: u64) -> Vec<(u64, u64, String, u64, bool)> {
        let mut v = Vec::new();
        for p in self.loads() {
            let perms = format!(
                "{}{}{}p",
                if p.p_flags & PF_R != 0 { 'r' } else { '-' },
                if p.p_flags & PF_W != 0 { 'w' } else { '-' },
                if p.p_flags & PF_X != 0 { 'x' } else { '-' },
            );
            let start = page_start(bias + p.p_vaddr);
            let file_end = page_align(bias + p.p_vaddr + p.p_filesz);
            v.push((
                start,
                file_end,
                perms,
                p.p_offset - (p.p_vaddr % PAGE),
                true,
            ));
            let bss_end = page_align(bias + p.p_vaddr + p.p_memsz);
            if bss_end > file_end {
                // vm_brk_flags(): always read+write, exec only with PF_X.
                let perms = if p.p_flags & PF_X != 0 {
                    "rwxp"
                } else {
                    "rw-p"
                };
                v.push((file_end, bss_end, perms.to_string(), 0, false));
            }
        }
        v
    }
}

fn page_start(v: u64) -> u64 {
    v & !(PAGE - 1)
}
fn page_align(v: u64) -> u64 {
    (v + PAGE - 1) & !(PAGE - 1)
}

// ---------------------------------------------------------------------------------------------

fn profile(stack: Option<u64>) -> Profile {
    let mut p = Profile::linux_6_18_aarch64();
    p.personality |= ADDR_NO_RANDOMIZE;
    p.stack_rlimit = stack;
    p
}

/// §2.7 generic `mmap_base` without randomization: `STACK_TOP - clamp(rlim + guard gap,
/// 128 MiB, STACK_TOP/6*5)`, page-aligned.
fn mmap_base(p: &Profile) -> u64 {
    let rlim = p.stack_rlimit.unwrap();
    let gap = (rlim + p.stack_guard_gap).clamp(128 << 20, STACK_TOP / 6 * 5);
    page_align(STACK_TOP - gap)
}

struct Run {
    plan: Plan<HostHandle>,
    maps: Vec<MapsLine>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    execfn: Vec<u8>,
}

fn run(root: &Path, profile: &Profile, path: &str, argv: &[&str], envp: &[&str]) -> Run {
    let fs = HostFs::new(root).unwrap();
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = envp.iter().map(|a| a.as_bytes().to_vec()).collect();
    let req = LoadRequest::new(path, argv.clone(), envp.clone());
    let plan = plan(&fs, profile, &req, &mut SeededRng::new(7))
        .unwrap_or_else(|e| panic!("planning {path}: {e}"));
    let maps = plan.maps();
    for m in &maps {
        eprintln!("  {}", m.render());
    }
    Run {
        plan,
        maps,
        argv,
        envp,
        execfn: path.as_bytes().to_vec(),
    }
}

impl Run {
    fn aux(&self, t: u64) -> u64 {
        self.plan
            .auxv
            .iter()
            .find(|a| a.0 == t)
            .unwrap_or_else(|| panic!("no auxv entry {t}"))
            .1
    }

    fn find(&self, path: &str) -> &MapsLine {
        self.maps
            .iter()
            .find(|m| m.path == path.as_bytes())
            .unwrap_or_else(|| panic!("no {path} mapping"))
    }

    fn word(&self, addr: u64) -> u64 {
        let o = (addr - self.plan.stack.sp) as usize;
        u64::from_le_bytes(self.plan.stack.bytes[o..o + 8].try_into().unwrap())
    }

    fn stack_bytes(&self, addr: u64, len: usize) -> &[u8] {
        let o = (addr - self.plan.stack.sp) as usize;
        &self.plan.stack.bytes[o..o + len]
    }

    /// The segment mappings of `elf` at `bias`, with `path` for the file parts.
    fn assert_segments(&self, elf: &Elf, bias: u64, path: &str) {
        for (start, end, perms, offset, is_file) in elf.segment_maps(bias) {
            let want = if is_file { path } else { "" };
            assert!(
                self.maps.iter().any(|m| m.start == start
                    && m.end == end
                    && m.perms == perms
                    && (!is_file || m.offset == offset)
                    && m.path == want.as_bytes()),
                "expected {start:x}-{end:x} {perms} {offset:x} {want:?}"
            );
        }
    }

    /// §2.6 arm64: `[vvar]` (4 pages, r--p) directly followed by `[vdso]` (the image's pages,
    /// r-xp); AT_SYSINFO_EHDR is the `[vdso]` start. Returns the block `(start, end)`.
    fn assert_vdso(&self, profile: &Profile) -> (u64, u64) {
        let vdso = profile.vdso.as_ref().unwrap();
        let vvar_pages: u64 = vdso.data.iter().map(|d| d.pages).sum();
        assert_eq!(vvar_pages, 4, "6.18 maps 4 [vvar] pages");
        let vvar = self.find("[vvar]");
        let text = self.find("[vdso]");
        assert_eq!(vvar.perms, "r--p");
        assert_eq!(text.perms, "r-xp");
        assert_eq!(vvar.end - vvar.start, 4 * PAGE);
        assert_eq!(vvar.end, text.start);
        assert_eq!(text.end - text.start, vdso.text_pages(PAGE) * PAGE);
        assert_eq!(self.aux(AT_SYSINFO_EHDR), text.start);
        (vvar.start, text.end)
    }

    /// §3.1, §3.2, §3.5: the string area, platform, random bytes, auxv (23 entries and
    /// AT_NULL in 6.18 order), pointer arrays, sp and the registers.
    fn assert_stack_auxv_regs(&self, profile: &Profile, elf: &Elf, bias: u64, base: u64) {
        let p = &self.plan;
        let s = &p.stack;
        assert_eq!(s.top, STACK_TOP);
        assert_eq!(profile.stack_top, STACK_TOP);
        // Strings: argv, envp, execfn, contiguous, ending 8 bytes below the top.
        let mut strings = Vec::new();
        for a in self.argv.iter().chain(&self.envp).chain([&self.execfn]) {
            strings.extend_from_slice(a);
            strings.push(0);
        }
        let arg_start = STACK_TOP - 8 - strings.len() as u64;
        assert_eq!(s.arg_start, arg_start);
        assert_eq!(self.stack_bytes(arg_start, strings.len()), &strings[..]);
        assert_eq!(self.stack_bytes(STACK_TOP - 8, 8), &[0; 8]);
        let env_start = arg_start + self.argv.iter().map(|a| a.len() as u64 + 1).sum::<u64>();
        assert_eq!(s.arg_end, env_start);
        let execfn_addr = STACK_TOP - 8 - self.execfn.len() as u64 - 1;
        assert_eq!(s.env_end, execfn_addr);
        assert_eq!(
            (p.mm.arg_start, p.mm.arg_end, p.mm.env_start, p.mm.env_end),
            (arg_start, env_start, env_start, execfn_addr)
        );
        // Below: align 16, "aarch64\0", 16 random bytes.
        let platform = (arg_start & !15) - 8;
        assert_eq!(self.stack_bytes(platform, 8), b"aarch64\0");
        let random = platform - 16;
        // auxv, in the 6.18 arm64 order.
        let types: Vec<u64> = p.auxv.iter().map(|a| a.0).collect();
        assert_eq!(
            types,
            [
                AT_SYSINFO_EHDR,
                AT_MINSIGSTKSZ,
                AT_HWCAP,
                AT_PAGESZ,
                AT_CLKTCK,
                AT_PHDR,
                AT_PHENT,
                AT_PHNUM,
                AT_BASE,
                AT_FLAGS,
                AT_ENTRY,
                AT_UID,
                AT_EUID,
                AT_GID,
                AT_EGID,
                AT_SECURE,
                AT_RANDOM,
                AT_HWCAP2,
                AT_HWCAP3,
                AT_EXECFN,
                AT_PLATFORM,
                AT_RSEQ_FEATURE_SIZE,
                AT_RSEQ_ALIGN,
                AT_NULL,
            ]
        );
        let expect = [
            (AT_MINSIGSTKSZ, profile.minsigstksz),
            (AT_HWCAP, profile.hwcap),
            (AT_PAGESZ, PAGE),
            (AT_CLKTCK, 100),
            (AT_PHDR, bias + elf.phdr_vaddr()),
            (AT_PHENT, 56),
            (AT_PHNUM, elf.phdrs.len() as u64),
            (AT_BASE, base),
            (AT_FLAGS, 0),
            (AT_ENTRY, bias + elf.e_entry),
            (AT_UID, 0),
            (AT_EUID, 0),
            (AT_GID, 0),
            (AT_EGID, 0),
            (AT_SECURE, 0),
            (AT_RANDOM, random),
            (AT_HWCAP2, profile.hwcap2),
            (AT_HWCAP3, profile.hwcap3.unwrap()),
            (AT_EXECFN, execfn_addr),
            (AT_PLATFORM, platform),
            (AT_RSEQ_FEATURE_SIZE, 28),
            (AT_RSEQ_ALIGN, 32),
        ];
        for (t, v) in expect {
            assert_eq!(self.aux(t), v, "auxv {}", name(t).unwrap_or("?"));
        }
        // sp = (p_random - auxv words - (argc + envc + 3) words) & ~15.
        let argc = self.argv.len() as u64;
        let envc = self.envp.len() as u64;
        let sp = (random - 8 * 2 * p.auxv.len() as u64 - 8 * (argc + envc + 3)) & !15;
        assert_eq!(s.sp, sp);
        assert_eq!(p.mm.start_stack, sp);
        // argc, argv[], NULL, envp[], NULL, auxv pairs.
        assert_eq!(self.word(sp), argc);
        let mut at = sp + 8;
        let mut str_at = arg_start;
        for a in self.argv.iter().chain([&Vec::new()]).chain(&self.envp) {
            if a.is_empty() && at == sp + 8 + 8 * argc {
                assert_eq!(self.word(at), 0, "argv NULL");
            } else {
                assert_eq!(self.word(at), str_at);
                str_at += a.len() as u64 + 1;
            }
            at += 8;
        }
        assert_eq!(self.word(at), 0, "envp NULL");
        at += 8;
        for &(t, v) in &p.auxv {
            assert_eq!((self.word(at), self.word(at + 8)), (t, v));
            at += 16;
        }
        // Registers: pc, sp, pstate the profile's; x0-x30 0.
        assert_eq!(p.registers.pc, p.entry);
        for (n, v) in p.registers.named() {
            match n {
                "pc" => assert_eq!(v, p.entry),
                "sp" => assert_eq!(v, sp),
                "pstate" => assert_eq!(v, profile.pstate),
                _ => assert_eq!(v, 0, "register {n}"),
            }
        }
        // [stack]: the strings' pages plus the 128 KiB expansion (8 MiB limit).
        let stack = self.find("[stack]");
        assert_eq!(stack.end, STACK_TOP);
        assert_eq!(stack.perms, "rw-p");
        if profile.stack_rlimit == Some(8 << 20) {
            assert_eq!(stack.start, page_start(arg_start) - 0x20000);
        }
    }

    /// The mm fields §2.4 derives from the program headers.
    fn assert_mm(&self, elf: &Elf, bias: u64, brk: u64) {
        let mm = &self.plan.mm;
        let x: Vec<&Ph> = elf.loads().filter(|p| p.p_flags & PF_X != 0).collect();
        let start_code = x.iter().map(|p| p.p_vaddr).min().unwrap();
        let end_code = x.iter().map(|p| p.p_vaddr + p.p_filesz).max().unwrap();
        let start_data = elf.loads().map(|p| p.p_vaddr).max().unwrap();
        let end_data = elf.loads().map(|p| p.p_vaddr + p.p_filesz).max().unwrap();
        assert_eq!(
            (mm.start_code, mm.end_code, mm.start_data, mm.end_data),
            (
                bias + start_code,
                bias + end_code,
                bias + start_data,
                bias + end_data
            )
        );
        assert_eq!((mm.start_brk, mm.brk), (brk, brk));
    }
}

/// The highest gap below `top` between the mappings other than the vDSO block that fits
/// `len`: where a top-down `get_unmapped_area` puts the vDSO once everything else is placed.
fn highest_hole(maps: &[MapsLine], top: u64, len: u64) -> (u64, u64) {
    let mut taken: Vec<(u64, u64)> = maps
        .iter()
        .filter(|m| m.path != b"[vvar]" && m.path != b"[vdso]" && m.start < top)
        .map(|m| (m.start, m.end.min(top)))
        .collect();
    taken.sort();
    let mut best = None;
    let mut prev_end = PAGE;
    for &(s, e) in &taken {
        if s >= prev_end && s - prev_end >= len {
            best = Some((prev_end, s));
        }
        prev_end = prev_end.max(e);
    }
    if top - prev_end >= len {
        best = Some((prev_end, top));
    }
    best.unwrap()
}

#[test]
fn debian_arm64_static_busybox_skips_if_not_fetched() {
    let Some(root) = tree("debian_arm64_static_busybox_skips_if_not_fetched") else {
        return;
    };
    let elf = read_elf(&root.join("bin/busybox"));
    assert_eq!(
        (elf.e_type, elf.e_machine),
        (2, 183),
        "a static ET_EXEC for aarch64"
    );
    assert!(elf.interp.is_none());
    let profile = profile(Some(8 << 20));
    let r = run(
        &root,
        &profile,
        "/bin/busybox",
        &["busybox", "true"],
        &["A=1", "PATH=/bin"],
    );
    let p = &r.plan;
    assert_eq!(p.exe, b"/bin/busybox");
    assert_eq!(p.comm, b"busybox");
    assert!(p.interpreter.is_none());
    // ET_EXEC: p_vaddr as is.
    r.assert_segments(&elf, 0, "/bin/busybox");
    assert_eq!(p.entry, elf.e_entry);
    // mmap_base (0xfffff8000000 with 8 MiB, §2.7); the vDSO block right below it.
    let base = mmap_base(&profile);
    assert_eq!(base, 0xffff_f800_0000);
    assert_eq!(p.mmap_base, base);
    let (vs, ve) = r.assert_vdso(&profile);
    assert_eq!(ve, base);
    assert_eq!(vs, base - 5 * PAGE);
    r.assert_mm(&elf, 0, page_align(elf.brk_end()));
    r.assert_stack_auxv_regs(&profile, &elf, 0, 0);
    assert_eq!(
        r.maps.len(),
        elf.segment_maps(0).len() + 3,
        "segments, [vvar], [vdso], [stack]"
    );
    assert!(r.maps.iter().all(|m| m.path != b"[vsyscall]"));
}

#[test]
fn debian_arm64_dynamic_coreutils_skips_if_not_fetched() {
    let Some(root) = tree("debian_arm64_dynamic_coreutils_skips_if_not_fetched") else {
        return;
    };
    let elf = read_elf(&root.join("bin/ls"));
    assert_eq!((elf.e_type, elf.e_machine), (3, 183), "a PIE for aarch64");
    assert_eq!(
        elf.interp.as_deref(),
        Some(&b"/lib/ld-linux-aarch64.so.1"[..])
    );
    let ld_path = "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1";
    let ld = read_elf(&root.join(&ld_path[1..]));
    let profile = profile(Some(8 << 20));
    let r = run(
        &root,
        &profile,
        "/bin/ls",
        &["ls", "-l", "/"],
        &["A=1", "LANG=C"],
    );
    let p = &r.plan;
    assert_eq!(p.exe, b"/bin/ls");
    assert_eq!(p.interpreter.as_deref(), Some(ld_path.as_bytes()));
    // PIE base = ELF_PAGESTART((ELF_ET_DYN_BASE & ~(maxalign-1)) - first_vaddr).
    let align = elf.max_align();
    assert_eq!(align, 0x10000, "binutils' aarch64 default");
    let bias = page_start((ELF_ET_DYN_BASE & !(align - 1)).wrapping_sub(elf.first_vaddr()));
    assert_eq!(bias, 0xaaaa_aaaa_0000, "§2.7 prediction for p_align 64 KiB");
    r.assert_segments(&elf, bias, "/bin/ls");
    r.assert_mm(&elf, bias, page_align(bias + elf.brk_end()));
    // The interpreter: the highest hole under mmap_base fitting its span, so it ends there.
    let base = mmap_base(&profile);
    let ld_base = base - ld.span();
    assert_eq!(ld.first_vaddr(), 0);
    r.assert_segments(&ld, ld_base, ld_path);
    let ld_maps: Vec<&MapsLine> = r
        .maps
        .iter()
        .filter(|m| m.path == ld_path.as_bytes())
        .collect();
    assert_eq!(ld_maps.first().unwrap().start, ld_base);
    assert_eq!(
        r.maps
            .iter()
            .filter(|m| m.start >= ld_base
                && m.end <= base
                && m.path != b"[vvar]"
                && m.path != b"[vdso]")
            .map(|m| m.end)
            .max(),
        Some(base),
        "the interpreter ends at mmap_base"
    );
    assert_eq!(p.entry, ld_base + ld.e_entry);
    // The vDSO: the highest hole that fits the 5-page block, here inside ld.so's own
    // 64 KiB-alignment hole (§2.7 "Interpreter holes matter").
    let (vs, ve) = r.assert_vdso(&profile);
    let (_, hole_top) = highest_hole(&r.maps, base, ve - vs);
    assert_eq!(ve, hole_top);
    assert!(ld_base < vs && ve < base, "inside ld.so's span");
    r.assert_stack_auxv_regs(&profile, &elf, bias, ld_base);
}

#[test]
fn debian_arm64_ld_so_run_directly_skips_if_not_fetched() {
    let Some(root) = tree("debian_arm64_ld_so_run_directly_skips_if_not_fetched") else {
        return;
    };
    let ld_path = "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1";
    let ld = read_elf(&root.join(&ld_path[1..]));
    let profile = profile(Some(8 << 20));
    let r = run(
        &root,
        &profile,
        "/lib/ld-linux-aarch64.so.1",
        &["ld.so", "--version"],
        &[],
    );
    // ET_DYN without PT_INTERP and p_align > PAGE_SIZE: probe top-down under mmap_base, then
    // align down to p_align (§2.4, §2.7 static-PIE).
    let align = ld.max_align();
    assert!(align > PAGE);
    let probe = mmap_base(&profile) - ld.span();
    let bias = probe & !(align - 1);
    r.assert_segments(&ld, bias, ld_path);
    // brk moves to ELF_ET_DYN_BASE (0xaaaaaaaab000, §2.7).
    assert_eq!(page_align(ELF_ET_DYN_BASE), 0xaaaa_aaaa_b000);
    r.assert_mm(&ld, bias, page_align(ELF_ET_DYN_BASE));
    r.assert_vdso(&profile);
    r.assert_stack_auxv_regs(&profile, &ld, bias, 0);
}

#[test]
fn debian_arm64_unlimited_stack_is_bottom_up_skips_if_not_fetched() {
    let Some(root) = tree("debian_arm64_unlimited_stack_is_bottom_up_skips_if_not_fetched") else {
        return;
    };
    let ld_path = "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1";
    let ld = read_elf(&root.join(&ld_path[1..]));
    let elf = read_elf(&root.join("bin/ls"));
    let profile = profile(None);
    let r = run(&root, &profile, "/bin/ls", &["ls"], &[]);
    // mmap_is_legacy(): RLIMIT_STACK = RLIM_INFINITY, bottom-up from TASK_UNMAPPED_BASE.
    let legacy = page_align(STACK_TOP / 4);
    assert_eq!(legacy, 0x4000_0000_0000);
    r.assert_segments(&ld, legacy, ld_path);
    assert_eq!(r.aux(AT_BASE), legacy);
    // The vDSO takes the lowest hole above the base that fits: inside ld.so's hole.
    let (vs, ve) = r.assert_vdso(&profile);
    let ld_text_end = page_align(legacy + ld.loads().next().unwrap().p_memsz);
    assert_eq!(vs, ld_text_end);
    assert!(ve <= legacy + ld.span());
    // The PIE itself is placed at ELF_ET_DYN_BASE as before.
    let bias = page_start((ELF_ET_DYN_BASE & !(elf.max_align() - 1)) - elf.first_vaddr());
    r.assert_segments(&elf, bias, "/bin/ls");
}
