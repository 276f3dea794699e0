//! ELF32 files for `compat_binfmt_elf` (i386 on x86_64): a small ELF32 writer and mutations of
//! its header, program headers, segments and PT_INTERP. On other architectures EM_386 is not a
//! compat machine, and every case is the kernel's ENOEXEC (or what the native loader makes of
//! the bytes).

use super::*;

const F: &str = "elf32";
const BASE: u32 = 0x0804_8000;
const EM_386: u16 = 3;
const EM_486: u16 = 6;
const PT_NULL: u32 = 0;
const PT_LOAD32: u32 = 1;
const PT_INTERP32: u32 = 3;
const PT_GNU_STACK32: u32 = 0x6474_e551;
/// `mov $1, %eax; xor %ebx, %ebx; int $0x80`.
const EXIT0: [u8; 9] = [0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xdb, 0xcd, 0x80];

#[derive(Clone, Copy)]
struct Ph32 {
    p_type: u32,
    p_offset: u32,
    p_vaddr: u32,
    p_filesz: u32,
    p_memsz: u32,
    p_flags: u32,
    p_align: u32,
}

/// An ELF32 program: header fields, program headers, and the bytes after them (code at the
/// first byte, then `tail`).
#[derive(Clone)]
struct Elf32 {
    class: u8,
    e_type: u16,
    e_machine: u16,
    e_entry: u32,
    e_phoff: u32,
    e_phentsize: u16,
    e_phnum: Option<u16>,
    phdrs: Vec<Ph32>,
    tail: Vec<u8>,
    /// The file is cut to this many bytes.
    truncate: Option<usize>,
}

impl Elf32 {
    /// A static ET_EXEC at [`BASE`]: one R+X PT_LOAD of the first page and a RW
    /// PT_GNU_STACK; the code follows the two program headers (entry).
    fn exec() -> Elf32 {
        let code = 52 + 2 * 32;
        Elf32 {
            class: 1,
            e_type: ET_EXEC,
            e_machine: EM_386,
            e_entry: BASE + code,
            e_phoff: 52,
            e_phentsize: 32,
            e_phnum: None,
            phdrs: vec![
                Ph32 {
                    p_type: PT_LOAD32,
                    p_offset: 0,
                    p_vaddr: BASE,
                    p_filesz: 0x1000,
                    p_memsz: 0x1000,
                    p_flags: 5,
                    p_align: 0x1000,
                },
                Ph32 {
                    p_type: PT_GNU_STACK32,
                    p_offset: 0,
                    p_vaddr: 0,
                    p_filesz: 0,
                    p_memsz: 0,
                    p_flags: 6,
                    p_align: 16,
                },
            ],
            tail: Vec::new(),
            truncate: None,
        }
    }

    /// The same as an ET_DYN linked at 0 (a static PIE).
    fn dyn0() -> Elf32 {
        let mut e = Elf32::exec();
        e.e_type = ET_DYN;
        e.phdrs[0].p_vaddr = 0;
        e.e_entry = 52 + 2 * 32;
        e
    }

    /// Where the code starts in the file (after the program headers as written).
    fn code_offset(&self) -> usize {
        52 + self.phdrs.len() * 32
    }

    fn build(&self) -> Vec<u8> {
        let mut f = vec![0x7f, b'E', b'L', b'F', self.class, 1, 1, 0];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&self.e_type.to_le_bytes());
        f.extend_from_slice(&self.e_machine.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&self.e_entry.to_le_bytes());
        f.extend_from_slice(&self.e_phoff.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        let phnum = self.e_phnum.unwrap_or(self.phdrs.len() as u16);
        for v in [52u16, self.e_phentsize, phnum, 40, 0, 0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        for p in &self.phdrs {
            for v in [
                p.p_type, p.p_offset, p.p_vaddr, p.p_vaddr, p.p_filesz, p.p_memsz, p.p_flags,
                p.p_align,
            ] {
                f.extend_from_slice(&v.to_le_bytes());
            }
        }
        f.extend_from_slice(&EXIT0);
        f.extend_from_slice(&self.tail);
        // A page of file at least, so that the first PT_LOAD's file range exists.
        if f.len() < 0x1000 {
            f.resize(0x1000, 0);
        }
        if let Some(n) = self.truncate {
            f.truncate(n);
        }
        f
    }
}

fn load(vaddr: u32, offset: u32, filesz: u32, memsz: u32, flags: u32) -> Ph32 {
    Ph32 {
        p_type: PT_LOAD32,
        p_offset: offset,
        p_vaddr: vaddr,
        p_filesz: filesz,
        p_memsz: memsz,
        p_flags: flags,
        p_align: 0x1000,
    }
}

/// A segment that ends at `TASK_SIZE` lies over the top of the stack. Before 5.16 the first
/// PT_LOAD of an ET_EXEC is mapped `MAP_FIXED` and its bss by `vm_brk()`, which replace the
/// stack pages holding the argument strings: `create_elf_tables()` then measures the strings
/// it finds there (zeros), which the plan does not model.
const OVER_THE_STACK: &str = "PT_LOAD at 0xffffc000, ending at TASK_SIZE";

/// The cases left out on this kernel, with the reason.
pub(super) fn excluded() -> Vec<(&'static str, &'static str, &'static str)> {
    if host().kernel.rules().first_load_noreplace {
        Vec::new()
    } else {
        vec![(
            F,
            OVER_THE_STACK,
            "before 5.16 the MAP_FIXED segment and its vm_brk() bss replace the stack's string pages, and create_elf_tables() measures what is left (not modelled)",
        )]
    }
}

/// Writes `e` as the next numbered file and adds a case executing it.
fn add(t: &mut Table, name: &str, e: &Elf32) {
    let n = t.cases.len();
    let p = t.file(&format!("elf32-{n}"), &e.build());
    t.case(F, name.to_string(), bytes(&p));
}

pub(super) fn cases(t: &mut Table) {
    let base = Elf32::exec();
    add(t, "i386 static ET_EXEC", &base);
    add(t, "i386 static ET_DYN at 0", &Elf32::dyn0());

    // The header.
    for (name, e_type) in [
        ("e_type ET_NONE", 0u16),
        ("e_type ET_REL", 1),
        ("e_type ET_CORE", 4),
        ("e_type 0xfe00", 0xfe00),
    ] {
        let mut e = base.clone();
        e.e_type = e_type;
        add(t, name, &e);
    }
    for (name, m) in [
        ("e_machine EM_486", EM_486),
        ("e_machine 0", 0),
        ("e_machine EM_X86_64 in an ELF32", 62),
        ("e_machine EM_ARM", 40),
        ("e_machine EM_AARCH64", 183),
    ] {
        let mut e = base.clone();
        e.e_machine = m;
        add(t, name, &e);
    }
    for (name, class) in [
        ("EI_CLASS ELFCLASS64", 2u8),
        ("EI_CLASS 0", 0),
        ("EI_CLASS 7", 7),
    ] {
        let mut e = base.clone();
        e.class = class;
        add(t, name, &e);
    }
    for ent in [0u16, 31, 33, 56, 64] {
        let mut e = base.clone();
        e.e_phentsize = ent;
        add(t, &format!("e_phentsize {ent}"), &e);
    }
    for (name, num) in [
        ("e_phnum 0", 0u16),
        ("e_phnum 3 (past the table: the code's bytes)", 3),
        ("e_phnum 128 (4 KiB table)", 128),
        ("e_phnum 129 (over a page)", 129),
        ("e_phnum 2048 (64 KiB, past the file)", 2048),
        ("e_phnum 2049 (over 64 KiB)", 2049),
    ] {
        let mut e = base.clone();
        e.e_phnum = Some(num);
        add(t, name, &e);
    }
    for (name, off) in [
        ("e_phoff 0 (the header read as phdrs)", 0u32),
        ("e_phoff 1 (misaligned)", 1),
        ("e_phoff at the end of the file", 0x1000),
        ("e_phoff 0xffffffff", 0xffff_ffff),
    ] {
        let mut e = base.clone();
        e.e_phoff = off;
        add(t, name, &e);
    }
    for (name, entry) in [
        ("e_entry 0", 0u32),
        ("e_entry outside the segments", 0x1000_0000),
        ("e_entry 0xffffdfff (below TASK_SIZE)", 0xffff_dfff),
        ("e_entry 0xffffe000 (= TASK_SIZE)", 0xffff_e000),
        ("e_entry 0xffffffff", 0xffff_ffff),
    ] {
        let mut e = base.clone();
        e.e_entry = entry;
        add(t, name, &e);
    }
    let mut e = base.clone();
    e.truncate = Some(52 + 20);
    add(t, "file cut inside the program headers", &e);
    let mut e = base.clone();
    e.truncate = Some(40);
    add(
        t,
        "file cut inside the ELF32 header (shorter than 64 bytes)",
        &e,
    );

    // Segments and 32-bit address limits.
    for (name, phs) in [
        (
            OVER_THE_STACK,
            vec![load(0xffff_c000, 0, 0x1000, 0x2000, 5)],
        ),
        (
            "PT_LOAD at 0xffffd000 ending past TASK_SIZE",
            vec![load(0xffff_d000, 0, 0x1000, 0x2000, 5)],
        ),
        (
            "PT_LOAD at 0xfffff000",
            vec![load(0xffff_f000, 0, 0x1000, 0x1000, 5)],
        ),
        (
            "p_memsz 0xffffffff",
            vec![load(BASE, 0, 0x1000, 0xffff_ffff, 7)],
        ),
        // (A bss below the guests' 2 GiB of RAM: the overcommit heuristic is not modelled.)
        (
            "p_memsz 0x40000000",
            vec![load(BASE, 0, 0x1000, 0x4000_0000, 7)],
        ),
        ("p_filesz > p_memsz", vec![load(BASE, 0, 0x1000, 0x800, 5)]),
        (
            "p_filesz past the end of the file",
            vec![load(BASE, 0, 0x10_0000, 0x10_0000, 5)],
        ),
        (
            "p_offset past the end of the file",
            vec![load(BASE, 0x10_0000, 0x1000, 0x1000, 5)],
        ),
        (
            "p_offset and p_vaddr disagree in the page",
            vec![load(BASE + 0x10, 0x20, 0x1000, 0x1000, 5)],
        ),
        ("PT_LOAD at page 0", vec![load(0, 0, 0x1000, 0x1000, 5)]),
        (
            "PT_LOAD at 0x1000 (below mmap_min_addr)",
            vec![load(0x1000, 0, 0x1000, 0x1000, 5)],
        ),
        ("a bss of 1 MiB", vec![load(BASE, 0, 0x1000, 0x10_1000, 7)]),
        (
            "a writable data segment with bss in its last page",
            vec![
                load(BASE, 0, 0x1000, 0x1000, 5),
                load(BASE + 0x1000, 0, 0x800, 0x3000, 6),
            ],
        ),
        (
            "two PT_LOADs on the same page",
            vec![
                load(BASE, 0, 0x800, 0x800, 5),
                load(BASE + 0x800, 0x800, 0x800, 0x800, 6),
            ],
        ),
        (
            "PT_LOADs out of order",
            vec![
                load(BASE + 0x10_0000, 0, 0x1000, 0x1000, 6),
                load(BASE, 0, 0x1000, 0x1000, 5),
            ],
        ),
        (
            "PT_LOAD of 0 bytes first",
            vec![
                load(BASE - 0x1000, 0, 0, 0, 4),
                load(BASE, 0, 0x1000, 0x1000, 5),
            ],
        ),
        ("no PT_LOAD", vec![]),
        (
            "PT_LOAD with p_align 0x200000",
            vec![Ph32 {
                p_align: 0x20_0000,
                ..load(BASE, 0, 0x1000, 0x1000, 5)
            }],
        ),
        (
            "PT_LOAD read-only (no X)",
            vec![load(BASE, 0, 0x1000, 0x1000, 4)],
        ),
    ] {
        if excluded().iter().any(|x| x.1 == name) {
            continue;
        }
        let mut e = base.clone();
        e.phdrs.splice(0..1, phs);
        add(t, name, &e);
    }
    // Segments of a static ET_DYN near the top.
    for (name, vaddr, memsz) in [
        ("ET_DYN PT_LOAD at 0", 0u32, 0x1000u32),
        (
            "ET_DYN spanning 3 GiB (read-only, not accounted)",
            0,
            0xc000_0000,
        ),
        ("ET_DYN of 0xfffff000 bytes", 0, 0xffff_f000),
    ] {
        let mut e = Elf32::dyn0();
        // Read-only and all file-backed (past the file's end): no memory is accounted.
        e.phdrs[0] = load(vaddr, 0, memsz, memsz, 5);
        add(t, name, &e);
    }

    // PT_GNU_STACK: executable, or missing (READ_IMPLIES_EXEC for an ia32 program).
    let mut e = base.clone();
    e.phdrs[1].p_flags = 7;
    add(t, "PT_GNU_STACK RWX", &e);
    let mut e = base.clone();
    e.phdrs[1].p_type = PT_NULL;
    add(t, "no PT_GNU_STACK (READ_IMPLIES_EXEC)", &e);
    let mut e = base.clone();
    e.phdrs.push(load(BASE + 0x1000, 0, 0x1000, 0x3000, 6));
    e.phdrs[1].p_type = PT_NULL;
    e.e_entry = BASE + e.code_offset() as u32;
    add(t, "no PT_GNU_STACK with a data segment and bss", &e);

    // PT_INTERP.
    let dir = t.dir().to_path_buf();
    let interp_static = t.file("elf32-interp-exec", &base.build());
    let interp_dyn = t.file("elf32-interp-dyn", &Elf32::dyn0().build());
    let not_elf = t.file("elf32-interp-text", b"#!/bin/sh\n");
    let mut i64 = native(ET_DYN);
    i64.header.e_entry = CODE;
    let interp64 = t.file("elf32-interp-elf64", &i64.build());
    let mut arm = base.clone();
    arm.e_machine = 40;
    let interp_arm = t.file("elf32-interp-arm", &arm.build());
    let mut bad_ph = Elf32::dyn0();
    bad_ph.e_phentsize = 56;
    let interp_badph = t.file("elf32-interp-bad-phdrs", &bad_ph.build());
    let mut short = base.build();
    short.truncate(48);
    let interp_short = t.file("elf32-interp-short", &short);
    let with_interp = |name: &[u8], size: Option<u32>| {
        let mut e = base.clone();
        let at = 0x800u32;
        let len = size.unwrap_or(name.len() as u32 + 1);
        e.phdrs.insert(
            0,
            Ph32 {
                p_type: PT_INTERP32,
                p_offset: at,
                p_vaddr: BASE + at,
                p_filesz: len,
                p_memsz: len,
                p_flags: 4,
                p_align: 1,
            },
        );
        e.e_entry = BASE + e.code_offset() as u32;
        let pad = at as usize - e.code_offset() - EXIT0.len();
        e.tail = vec![0; pad];
        e.tail.extend_from_slice(name);
        e.tail.push(0);
        e
    };
    for (name, interp) in [
        (
            "PT_INTERP: an ELF32 ET_EXEC interpreter",
            bytes(&interp_static),
        ),
        ("PT_INTERP: an ELF32 ET_DYN interpreter", bytes(&interp_dyn)),
        (
            "PT_INTERP: the system's /lib/ld-linux.so.2 (or ENOENT)",
            b"/lib/ld-linux.so.2".to_vec(),
        ),
        (
            "PT_INTERP: an ELF64 interpreter (ELIBBAD)",
            bytes(&interp64),
        ),
        (
            "PT_INTERP: an ELF32 EM_ARM interpreter (ELIBBAD)",
            bytes(&interp_arm),
        ),
        (
            "PT_INTERP: interpreter with 56-byte phdrs (ELIBBAD)",
            bytes(&interp_badph),
        ),
        (
            "PT_INTERP: interpreter shorter than an ELF32 header (EIO)",
            bytes(&interp_short),
        ),
        ("PT_INTERP: a text file", bytes(&not_elf)),
        (
            "PT_INTERP: missing file",
            bytes(&dir.join("no-such-interp")),
        ),
        ("PT_INTERP: a directory", bytes(&dir)),
    ] {
        add(t, name, &with_interp(&interp, None));
    }
    add(t, "PT_INTERP of 1 byte", &with_interp(b"", Some(1)));
    // From the mutation campaign: a PIE with an interpreter whose e_entry plus the load bias
    // passes 4 GiB. The kernel adds them in 64 bits, and stores AT_ENTRY as a 32-bit word.
    for entry in [0xffff_f000u32, 0xffff_ffff] {
        let mut e = with_interp(&bytes(&interp_dyn), None);
        e.e_type = ET_DYN;
        for p in &mut e.phdrs {
            if p.p_type != PT_GNU_STACK32 {
                p.p_vaddr = p.p_vaddr.wrapping_sub(BASE);
            }
        }
        e.e_entry = entry;
        add(
            t,
            &format!("ET_DYN with an interpreter, e_entry {entry:#x}"),
            &e,
        );
    }
    let mut e = with_interp(&bytes(&interp_static), None);
    e.tail.pop();
    e.tail.push(b'x');
    add(t, "PT_INTERP not NUL-terminated", &e);
    add(
        t,
        "PT_INTERP of 0x10000 bytes (over PATH_MAX)",
        &with_interp(&bytes(&interp_static), Some(0x1_0000)),
    );
    // A script whose interpreter is an ia32 program.
    let script = t.file(
        "elf32-script",
        &[b"#!", bytes(&interp_static).as_slice(), b" -x\n"].concat(),
    );
    t.case(
        F,
        "#! script whose interpreter is an ia32 program",
        bytes(&script),
    );
}
