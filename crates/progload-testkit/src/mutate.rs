//! Structure-aware mutation of executables for the kernel-differential campaign
//! (`crates/progload-host/tests/mutants.rs`).
//!
//! [`mutate_elf`] takes a valid ELF file (64- or 32-bit, little endian) and applies one to
//! three mutations: a header or program header field set to an interesting value, a nearby
//! value, a random one, or another entry's value; program headers swapped, duplicated or turned
//! into `PT_LOAD`s; the `PT_INTERP` string replaced; the file truncated; bytes flipped.
//! [`mutate_script`] writes a `#!` file from pieces chosen near the kernel's limits.
//!
//! Everything is a pure function of the RNG, so a mutant is reproduced from its seed alone.
//! Field offsets come from `object`'s ELF structures, never from typed-in numbers.

use core::mem::{offset_of, size_of};

use object::elf::{FileHeader32, FileHeader64, ProgramHeader32, ProgramHeader64};
use object::LittleEndian as LE;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The RNG of one mutant: ChaCha8 seeded from the campaign seed and the mutant's index.
pub fn mutant_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&index.to_le_bytes());
    s[16..24].copy_from_slice(b"progload");
    ChaCha8Rng::from_seed(s)
}

fn below(rng: &mut impl Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[below(rng, items.len())]
}

/// A field of a header: its name, byte offset from the header's start, and width.
#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    off: usize,
    width: usize,
}

/// The fields of an ELF structure `$ty`: names, offsets and widths, all read off `object`'s
/// definition (a zeroed value gives each field's width).
macro_rules! fields {
    ($ty:ty: $($f:ident),* $(,)?) => {{
        let zero = [0u8; size_of::<$ty>()];
        let (h, _) = object::pod::from_bytes::<$ty>(&zero).expect("an unaligned ELF struct");
        vec![$(Field {
            name: stringify!($f),
            off: offset_of!($ty, $f),
            width: core::mem::size_of_val(&h.$f),
        }),*]
    }};
}

fn ehdr64() -> Vec<Field> {
    fields!(FileHeader64<LE>: e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
        e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx)
}
fn ehdr32() -> Vec<Field> {
    fields!(FileHeader32<LE>: e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
        e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx)
}
fn phdr64() -> Vec<Field> {
    fields!(ProgramHeader64<LE>: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz,
        p_align)
}
fn phdr32() -> Vec<Field> {
    fields!(ProgramHeader32<LE>: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags,
        p_align)
}

/// The layout of the file being mutated.
struct Layout {
    ehdr: Vec<Field>,
    phdr: Vec<Field>,
    phdr_size: usize,
}

impl Layout {
    fn of(file: &[u8]) -> Layout {
        if file.get(4) == Some(&1) {
            Layout {
                ehdr: ehdr32(),
                phdr: phdr32(),
                phdr_size: size_of::<ProgramHeader32<LE>>(),
            }
        } else {
            Layout {
                ehdr: ehdr64(),
                phdr: phdr64(),
                phdr_size: size_of::<ProgramHeader64<LE>>(),
            }
        }
    }

    fn field(fields: &[Field], name: &str) -> Field {
        *fields.iter().find(|f| f.name == name).expect("known field")
    }

    /// `e_phoff` and `e_phnum` as the file says (before mutation of the table).
    fn table(&self, file: &[u8]) -> (usize, usize) {
        let phoff = get(file, Self::field(&self.ehdr, "e_phoff"));
        let phnum = get(file, Self::field(&self.ehdr, "e_phnum"));
        (phoff as usize, phnum as usize)
    }

    /// The program headers wholly inside the file: their offsets.
    fn phdrs(&self, file: &[u8]) -> Vec<usize> {
        let (phoff, phnum) = self.table(file);
        (0..phnum.min(64))
            .map(|i| phoff.saturating_add(i * self.phdr_size))
            .filter(|&o| o.saturating_add(self.phdr_size) <= file.len())
            .collect()
    }
}

fn get(file: &[u8], f: Field) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = file.get(f.off..f.off + f.width) {
        b[..f.width].copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

fn get_at(file: &[u8], base: usize, f: Field) -> u64 {
    get(
        file,
        Field {
            off: base + f.off,
            ..f
        },
    )
}

fn set_at(file: &mut [u8], base: usize, f: Field, v: u64) {
    let at = base + f.off;
    if let Some(s) = file.get_mut(at..at + f.width) {
        s.copy_from_slice(&v.to_le_bytes()[..f.width]);
    }
}

fn mask(width: usize, v: u64) -> u64 {
    if width >= 8 {
        v
    } else {
        v & ((1u64 << (width * 8)) - 1)
    }
}

/// Values at the edges the loader checks: page sizes, alignments, the user address space
/// limits of x86_64, arm64 and riscv64, the 32-bit limits, and overflow.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    0x10,
    0x38,
    0x40,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xfff,
    0x1000,
    0x1001,
    0x2000,
    0x8000,
    0xffff,
    0x1_0000,
    0x10_0000,
    0x1f_ffff,
    0x20_0000,
    0x40_0000,
    0x4000_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xc000_0000,
    0xffff_e000,
    0xffff_f000,
    0xffff_ffff,
    0x1_0000_0000,
    0x10_0000_0000, // 64 GiB
    0x55_5555_4000,
    0x40_0000_0000,
    0x7f_ffff_f000,
    0x8000_0000_0000,
    0x7fff_ffff_e000,
    0x7fff_ffff_f000,
    0x7fff_ffff_ffff,
    0xffff_ffff_ffff,
    0x1_0000_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_f000,
    u64::MAX,
];

/// Offsets near a current value.
const DELTAS: &[u64] = &[
    1, 2, 8, 0x10, 0x100, 0xfff, 0x1000, 0x2000, 0x1_0000, 0x20_0000,
];

/// A new value for a field of `width` bytes now holding `v`; `peers` are the same field's
/// values in the other program headers.
fn new_value(rng: &mut impl Rng, width: usize, v: u64, peers: &[u64]) -> (u64, String) {
    let (n, how) = match below(rng, 7) {
        0 | 1 => (*pick(rng, INTERESTING), "interesting"),
        2 => (v.wrapping_add(*pick(rng, DELTAS)), "plus"),
        3 => (v.wrapping_sub(*pick(rng, DELTAS)), "minus"),
        4 => (v ^ (1u64 << below(rng, width * 8)), "bitflip"),
        5 if !peers.is_empty() => (*pick(rng, peers), "peer"),
        5 => (v.wrapping_mul(2), "double"),
        _ => (rng.next_u64() >> below(rng, 64), "random"),
    };
    let n = mask(width, n);
    (n, format!("{how} {v:#x} -> {n:#x}"))
}

/// Paths a mutant may name as its interpreter (`PT_INTERP`) or `#!` interpreter, supplied by
/// the campaign: real interpreters, a mutated one, scripts, directories, missing names.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    /// Candidate interpreter paths (each without the terminating NUL).
    pub interpreters: Vec<Vec<u8>>,
}

impl Paths {
    /// One of the interpreters, or a missing path when there are none.
    fn any(&self, rng: &mut impl Rng) -> Vec<u8> {
        self.interpreters
            .get(below(rng, self.interpreters.len()))
            .cloned()
            .unwrap_or_else(|| b"/nonexistent".to_vec())
    }
}

/// One mutation of `file` in place; returns what it did, or `None` when the chosen mutation
/// does not apply to this file (the caller draws again).
fn mutate_once(rng: &mut impl Rng, file: &mut Vec<u8>, paths: &Paths) -> Option<String> {
    let lay = Layout::of(file);
    let phdrs = lay.phdrs(file);
    match below(rng, 20) {
        // A program header field (most of the loader's checks are there).
        0..=9 => {
            let &base = phdrs.get(below(rng, phdrs.len()))?;
            let i = phdrs.iter().position(|&b| b == base)?;
            // Bias towards the fields the loader computes with.
            let f = if below(rng, 3) == 0 {
                *pick(rng, &lay.phdr)
            } else {
                Layout::field(
                    &lay.phdr,
                    pick::<&str>(
                        rng,
                        &[
                            "p_offset", "p_vaddr", "p_filesz", "p_memsz", "p_align", "p_flags",
                        ],
                    ),
                )
            };
            let v = get_at(file, base, f);
            let peers: Vec<u64> = phdrs
                .iter()
                .filter(|&&b| b != base)
                .map(|&b| get_at(file, b, f))
                .collect();
            let (n, how) = if f.name == "p_type" && below(rng, 2) == 0 {
                let t = *pick(
                    rng,
                    &[
                        0u64,
                        1,
                        2,
                        3,
                        4,
                        6,
                        7,
                        0x6474_e550,
                        0x6474_e551,
                        0x6474_e553,
                        0x7000_0003,
                    ],
                );
                (t, format!("type {v:#x} -> {t:#x}"))
            } else if f.name == "p_flags" && below(rng, 2) == 0 {
                let fl = below(rng, 8) as u64;
                (fl, format!("flags {v:#x} -> {fl:#x}"))
            } else {
                new_value(rng, f.width, v, &peers)
            };
            set_at(file, base, f, n);
            Some(format!("phdr[{i}].{} {how}", f.name))
        }
        // An ELF header field.
        10..=12 => {
            let f = *pick(rng, &lay.ehdr);
            let v = get(file, f);
            let (n, how) = new_value(rng, f.width, v, &[]);
            set_at(file, 0, f, n);
            Some(format!("ehdr.{} {how}", f.name))
        }
        // An e_ident byte.
        13 => {
            let at = below(rng, 16);
            let v = *pick(rng, &[0u8, 1, 2, 3, 0x7f, 0xff]);
            *file.get_mut(at)? = v;
            Some(format!("e_ident[{at}] = {v:#x}"))
        }
        // Two program headers swapped, or one copied over another.
        14 => {
            if phdrs.len() < 2 {
                return None;
            }
            let a = below(rng, phdrs.len());
            let b = below(rng, phdrs.len());
            if a == b {
                return None;
            }
            let (pa, pb) = (phdrs[a], phdrs[b]);
            let ea: Vec<u8> = file[pa..pa + lay.phdr_size].to_vec();
            let eb: Vec<u8> = file[pb..pb + lay.phdr_size].to_vec();
            if below(rng, 2) == 0 {
                file[pa..pa + lay.phdr_size].copy_from_slice(&eb);
                file[pb..pb + lay.phdr_size].copy_from_slice(&ea);
                Some(format!("phdr[{a}] <-> phdr[{b}]"))
            } else {
                file[pa..pa + lay.phdr_size].copy_from_slice(&eb);
                Some(format!("phdr[{a}] = phdr[{b}]"))
            }
        }
        // A program header that is not PT_LOAD becomes one, somewhere near the others.
        15 => {
            let t = Layout::field(&lay.phdr, "p_type");
            let others: Vec<usize> = phdrs
                .iter()
                .copied()
                .filter(|&b| get_at(file, b, t) != 1)
                .collect();
            let &base = others.get(below(rng, others.len()))?;
            let i = phdrs.iter().position(|&b| b == base)?;
            let loads: Vec<usize> = phdrs
                .iter()
                .copied()
                .filter(|&b| get_at(file, b, t) == 1)
                .collect();
            let f = |n| Layout::field(&lay.phdr, n);
            let near = loads
                .get(below(rng, loads.len()))
                .map(|&l| get_at(file, l, f("p_vaddr")))
                .unwrap_or(0x40_0000);
            let page = 0x1000u64;
            let vaddr = near
                .wrapping_add((below(rng, 64) as u64).wrapping_sub(16).wrapping_mul(page))
                & !(page - 1)
                | (below(rng, 4) as u64 * 0x10);
            let filesz = *pick(rng, &[0u64, 1, 0x10, 0x800, 0x1000, 0x3000]);
            let memsz = filesz + *pick(rng, &[0u64, 1, 0x1000, 0x2345, 0x10_0000]);
            let off = vaddr & (page - 1);
            set_at(file, base, t, 1);
            set_at(file, base, f("p_flags"), below(rng, 8) as u64);
            set_at(file, base, f("p_offset"), off);
            set_at(file, base, f("p_vaddr"), vaddr);
            set_at(file, base, f("p_filesz"), filesz);
            set_at(file, base, f("p_memsz"), memsz);
            set_at(file, base, f("p_align"), page);
            Some(format!(
                "phdr[{i}] = LOAD vaddr {vaddr:#x} filesz {filesz:#x} memsz {memsz:#x}"
            ))
        }
        // The PT_INTERP string replaced.
        16 => {
            let t = Layout::field(&lay.phdr, "p_type");
            let &base = phdrs.iter().find(|&&b| get_at(file, b, t) == 3)?;
            let off = get_at(file, base, Layout::field(&lay.phdr, "p_offset")) as usize;
            let mut name: Vec<u8> = match below(rng, 6) {
                0 => b"/nonexistent/ld.so".to_vec(),
                1 => b"/".to_vec(),
                2 => Vec::new(),
                3 => vec![b'a'; *pick(rng, &[255usize, 256, 4095, 4096])],
                _ => paths.any(rng),
            };
            let unterminated = below(rng, 8) == 0;
            if !unterminated {
                name.push(0);
            }
            let end = off.checked_add(name.len())?;
            if end > 1 << 20 {
                return None;
            }
            if end > file.len() {
                file.resize(end, 0);
            }
            file[off..end].copy_from_slice(&name);
            let len = name.len() as u64;
            set_at(file, base, Layout::field(&lay.phdr, "p_filesz"), len);
            Some(format!(
                "interp = {:?}{}",
                String::from_utf8_lossy(name.strip_suffix(&[0]).unwrap_or(&name)),
                if unterminated { " (no NUL)" } else { "" }
            ))
        }
        // Truncation: in the program header table, or anywhere.
        17 => {
            let (phoff, phnum) = lay.table(file);
            let at = if below(rng, 2) == 0 && phoff < file.len() {
                phoff + below(rng, (phnum * lay.phdr_size).max(1))
            } else {
                below(rng, file.len())
            };
            if at >= file.len() {
                return None;
            }
            file.truncate(at);
            Some(format!("truncated at {at:#x}"))
        }
        // Bytes flipped in the headers, or anywhere.
        _ => {
            let span = if below(rng, 2) == 0 {
                let (phoff, phnum) = lay.table(file);
                phoff.saturating_add(phnum * lay.phdr_size).min(file.len())
            } else {
                file.len()
            };
            if span == 0 {
                return None;
            }
            let n = 1 + below(rng, 4);
            let mut at = Vec::new();
            for _ in 0..n {
                let i = below(rng, span);
                file[i] ^= 1 << below(rng, 8);
                at.push(format!("{i:#x}"));
            }
            Some(format!("bit flips at {}", at.join(",")))
        }
    }
}

/// A mutant of the ELF file `base`: one to three mutations; returns the bytes and a
/// description of each mutation.
pub fn mutate_elf(rng: &mut impl Rng, base: &[u8], paths: &Paths) -> (Vec<u8>, String) {
    let mut file = base.to_vec();
    let n = 1 + below(rng, 3).min(below(rng, 3));
    let mut what = Vec::new();
    let mut tries = 0;
    while what.len() < n && tries < 32 {
        tries += 1;
        if let Some(w) = mutate_once(rng, &mut file, paths) {
            what.push(w);
        }
    }
    (file, what.join("; "))
}

/// A `#!` script built from pieces near the kernel's limits (BINPRM_BUF_SIZE, blanks,
/// missing newline, NUL and non-UTF-8 bytes, interpreters of every kind from `paths`).
pub fn mutate_script(rng: &mut impl Rng, paths: &Paths) -> (Vec<u8>, String) {
    let mut line: Vec<u8> = b"#!".to_vec();
    let blank = |rng: &mut ChaCha8Rng| -> Vec<u8> {
        let n = below(rng, 3);
        (0..n).map(|_| *pick(rng, b" \t")).collect()
    };
    let mut r = ChaCha8Rng::seed_from_u64(rng.next_u64());
    line.extend(blank(&mut r));
    let interp: Vec<u8> = match below(&mut r, 8) {
        0 => b"/nonexistent/sh".to_vec(),
        1 => Vec::new(),
        2 => b"sh".to_vec(),
        _ => paths.any(&mut r),
    };
    line.extend(&interp);
    let nargs = below(&mut r, 3);
    for _ in 0..nargs {
        line.extend(blank(&mut r));
        line.push(b' ');
        let arg: &[u8] = pick::<&[u8]>(
            &mut r,
            &[
                &b"-e"[..],
                b"x",
                b"\xff\xfe",
                b"--",
                b"a\x00b",
                b"\r",
                b"\xc3\xa9",
            ],
        );
        line.extend(arg);
    }
    line.extend(blank(&mut r));
    // Pad to a length around the 256-byte buffer the kernel reads.
    if below(&mut r, 3) == 0 {
        let target = *pick(&mut r, &[126usize, 127, 128, 253, 254, 255, 256, 257, 300]);
        let fill = *pick(&mut r, b" ax");
        while line.len() < target {
            line.push(fill);
        }
    }
    let ending: &[u8] = pick::<&[u8]>(&mut r, &[&b"\n"[..], b"\n", b"\n", b"", b"\r\n", b"\x00"]);
    line.extend(ending);
    line.extend(b"exit 0\n");
    let what = format!("script {:?}", String::from_utf8_lossy(&line));
    (line, what)
}
