//! Valid ELF templates (built with `progload_testkit::elfbuild`) and fuzzer-chosen edits of
//! their header and program header fields, applied as byte patches so that no edit can make
//! the builder itself allocate or panic.

use arbitrary::Arbitrary;
use progload_testkit::elfbuild::{
    ElfBuilder, ProgramHeader, AARCH64_EXIT0, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, PF_R, PF_W,
    PF_X, PT_GNU_PROPERTY, PT_NOTE, PT_PHDR, X86_64_EXIT0,
};

/// Largest crafted file (bytes).
pub const MAX_FILE: usize = 1 << 16;

/// The shape of a template.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A PIE with `PT_INTERP` (the common dynamically linked program).
    DynInterp,
    /// A static `ET_EXEC` at 0x400000.
    StaticExec,
    /// A static PIE (`ET_DYN` without `PT_INTERP`).
    StaticPie,
    /// A non-PIE `ET_EXEC` with `PT_INTERP`.
    ExecInterp,
    /// An interpreter (`ld.so`-like `ET_DYN` at 0).
    Interp,
}

/// A template: a valid ELF for the architecture, of some shape.
#[derive(Arbitrary, Clone, Debug)]
pub struct Template {
    /// The shape.
    pub kind: Kind,
    /// `p_align` of the PT_LOADs is 2 MiB (the `maximum_alignment` path) instead of 4 KiB.
    pub big_align: bool,
    /// Bytes of bss after the data segment's file part, in pages plus a remainder.
    pub bss: u16,
    /// `PT_GNU_STACK`: absent, `RW`, or `RWX`.
    pub gnu_stack: u8,
    /// A `PT_GNU_PROPERTY` note with these `GNU_PROPERTY_AARCH64_FEATURE_1_AND` bits.
    pub property: Option<u8>,
    /// Also emit `PT_PHDR` and a `PT_NOTE`.
    pub extra_headers: bool,
}

/// Machine of the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// x86_64.
    X86_64,
    /// aarch64.
    Aarch64,
}

impl Machine {
    /// `e_machine`.
    pub fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 => EM_X86_64,
            Machine::Aarch64 => EM_AARCH64,
        }
    }

    /// The usual interpreter path.
    pub fn ld_so(self) -> &'static [u8] {
        match self {
            Machine::X86_64 => b"/lib64/ld-linux-x86-64.so.2",
            Machine::Aarch64 => b"/lib/ld-linux-aarch64.so.1",
        }
    }

    fn exit0(self) -> &'static [u8] {
        match self {
            Machine::X86_64 => &X86_64_EXIT0,
            Machine::Aarch64 => &AARCH64_EXIT0,
        }
    }
}

/// Builds a template. `interp` is the `PT_INTERP` string (without NUL) for the kinds that
/// have one.
pub fn build(t: &Template, m: Machine, interp: &[u8]) -> Vec<u8> {
    let (e_type, base, has_interp) = match t.kind {
        Kind::DynInterp => (ET_DYN, 0, true),
        Kind::StaticExec => (ET_EXEC, 0x40_0000, false),
        Kind::StaticPie => (ET_DYN, 0, false),
        Kind::ExecInterp => (ET_EXEC, 0x40_0000, true),
        Kind::Interp => (ET_DYN, 0, false),
    };
    let align = if t.big_align { 0x20_0000 } else { 0x1000 };
    let mut b = ElfBuilder::new(e_type, m.e_machine());
    let mut phnum = 2u64; // text + data loads
    if has_interp {
        phnum += 1;
    }
    if t.gnu_stack % 3 != 0 {
        phnum += 1;
    }
    if t.property.is_some() {
        phnum += 1;
    }
    if t.extra_headers {
        phnum += 2;
    }
    let ph_end = 64 + 56 * phnum;
    let mut at = ph_end;
    let interp_at = at;
    let interp_len = interp.len().min(4000) as u64 + 1;
    if has_interp {
        let mut s = interp[..interp_len as usize - 1].to_vec();
        s.push(0);
        b.payload(interp_at, &s);
        at += interp_len;
    }
    at = at.next_multiple_of(8);
    let note_at = at;
    if let Some(bits) = t.property {
        // NT_GNU_PROPERTY_TYPE_0 "GNU" with one FEATURE_1_AND property.
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&16u32.to_le_bytes());
        n.extend_from_slice(&5u32.to_le_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&0xc000_0000u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&u32::from(bits).to_le_bytes());
        n.extend_from_slice(&0u32.to_le_bytes());
        b.payload(note_at, &n);
        at += n.len() as u64;
    }
    at = at.next_multiple_of(4);
    let code_at = at;
    b.payload(code_at, m.exit0());
    let text_end = code_at + m.exit0().len() as u64;
    b.header.e_entry = base + code_at;

    // Data: a few bytes right after the text, at the next page of the address space, with
    // p_offset ≡ p_vaddr (mod page) as linkers lay it out.
    let data_off = text_end;
    let data_vaddr = base + align.max(0x1000) * 2 + (data_off % 0x1000);
    let data_len = 16u64;
    b.payload(data_off, &[0x5a; 16]);
    let bss = u64::from(t.bss / 256) * 0x1000 + u64::from(t.bss % 256) * 8;

    if t.extra_headers {
        b.phdr(ProgramHeader {
            p_type: PT_PHDR,
            p_flags: PF_R,
            p_offset: 64,
            p_vaddr: base + 64,
            p_paddr: base + 64,
            p_filesz: ph_end - 64,
            p_memsz: ph_end - 64,
            p_align: 8,
        });
    }
    if has_interp {
        b.phdr(ProgramHeader::interp(
            interp_at,
            base + interp_at,
            interp_len,
        ));
    }
    let mut text = ProgramHeader::load(PF_R | PF_X, 0, base, text_end, text_end);
    text.p_align = align;
    b.phdr(text);
    let mut data = ProgramHeader::load(PF_R | PF_W, data_off, data_vaddr, data_len, data_len + bss);
    data.p_align = align;
    b.phdr(data);
    if t.extra_headers {
        b.phdr(ProgramHeader {
            p_type: PT_NOTE,
            p_flags: PF_R,
            p_offset: note_at,
            p_vaddr: base + note_at,
            p_paddr: base + note_at,
            p_filesz: if t.property.is_some() { 32 } else { 0 },
            p_memsz: if t.property.is_some() { 32 } else { 0 },
            p_align: 8,
        });
    }
    if t.property.is_some() {
        b.phdr(ProgramHeader {
            p_type: PT_GNU_PROPERTY,
            p_flags: PF_R,
            p_offset: note_at,
            p_vaddr: base + note_at,
            p_paddr: base + note_at,
            p_filesz: 32,
            p_memsz: 32,
            p_align: 8,
        });
    }
    match t.gnu_stack % 3 {
        1 => {
            b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W));
        }
        2 => {
            b.phdr(ProgramHeader::gnu_stack(PF_R | PF_W | PF_X));
        }
        _ => {}
    }
    b.build()
}

/// A value for a field: a table of interesting values, small numbers, pages, or anything.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Val {
    /// One of [`INTERESTING`].
    Interesting(u8),
    /// A small number.
    Small(u16),
    /// A number of 4 KiB pages.
    Pages(u32),
    /// The current value plus a small signed delta.
    Delta(i16),
    /// Any value.
    Raw(u64),
}

/// Values that sit on the boundaries the loader checks.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0xf,
    0x10,
    0x38,
    0x40,
    0x78,
    0xfff,
    0x1000,
    0x1001,
    0x2000,
    0x1_0000,
    0x1_0001,
    0x20_0000,
    0x40_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x5555_5555_4000,
    0x7fff_ffff_e000,
    0x7fff_ffff_f000,
    0x7fff_ffff_ffff,
    0x8000_0000_0000,
    0xaaaa_aaaa_a000,
    0xffff_ffff_f000,
    0x1_0000_0000_0000,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 0x1000,
    u64::MAX - 0xfff,
    u64::MAX,
    // p_type values
    0x6474_e550,
    0x6474_e551,
    0x6474_e552,
    0x6474_e553,
    0x7000_0000,
    // AArch64 feature bits
    0xc000_0000,
];

impl Val {
    /// The value given the field's current value.
    pub fn get(self, current: u64) -> u64 {
        match self {
            Val::Interesting(i) => INTERESTING[usize::from(i) % INTERESTING.len()],
            Val::Small(v) => u64::from(v),
            Val::Pages(p) => u64::from(p) << 12,
            Val::Delta(d) => current.wrapping_add(d as i64 as u64),
            Val::Raw(v) => v,
        }
    }
}

/// An ELF header field.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum HeaderField {
    /// `e_type`.
    Type,
    /// `e_machine`.
    Machine,
    /// `e_entry`.
    Entry,
    /// `e_phoff`.
    Phoff,
    /// `e_phentsize`.
    Phentsize,
    /// `e_phnum`.
    Phnum,
    /// One `e_ident` byte (magic, class, data...).
    Ident(u8),
}

/// A program header field.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum PhdrField {
    /// `p_type`.
    Type,
    /// `p_flags`.
    Flags,
    /// `p_offset`.
    Offset,
    /// `p_vaddr`.
    Vaddr,
    /// `p_filesz`.
    Filesz,
    /// `p_memsz`.
    Memsz,
    /// `p_align`.
    Align,
}

/// One edit of a built file.
#[derive(Arbitrary, Clone, Debug)]
pub enum Edit {
    /// Set a header field.
    Header(HeaderField, Val),
    /// Set a field of program header `index` (modulo the count, or past the table).
    Phdr(u8, PhdrField, Val),
    /// Copy program header `from` over program header `to`.
    DupPhdr(u8, u8),
    /// Write bytes at an offset.
    Bytes(u16, Vec<u8>),
    /// Cut the file to this length.
    Truncate(u16),
    /// Pad the file with zeros to this length.
    Extend(u16),
}

fn rd(f: &[u8], at: usize, len: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(src) = at.checked_add(len).and_then(|end| f.get(at..end)) {
        v[..len].copy_from_slice(src);
    }
    u64::from_le_bytes(v)
}

fn wr(f: &mut Vec<u8>, at: usize, len: usize, v: u64) {
    let Some(end) = at.checked_add(len).filter(|&e| e <= MAX_FILE) else {
        return;
    };
    if f.len() < end {
        f.resize(end, 0);
    }
    f[at..end].copy_from_slice(&v.to_le_bytes()[..len]);
}

/// Applies `edits` to `f` (keeping it at most [`MAX_FILE`] bytes).
pub fn apply(f: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let phoff = usize::try_from(rd(f, 32, 8)).unwrap_or(usize::MAX);
        let phnum = rd(f, 56, 2) as usize;
        let phdr_at = |i: u8| {
            let i = if phnum > 0 && i < 0x80 {
                usize::from(i) % phnum
            } else {
                usize::from(i & 0x7f)
            };
            phoff.saturating_add(i * 56)
        };
        match e {
            Edit::Header(field, val) => {
                let (at, len) = match field {
                    HeaderField::Type => (16, 2),
                    HeaderField::Machine => (18, 2),
                    HeaderField::Entry => (24, 8),
                    HeaderField::Phoff => (32, 8),
                    HeaderField::Phentsize => (54, 2),
                    HeaderField::Phnum => (56, 2),
                    HeaderField::Ident(i) => (usize::from(i % 16), 1),
                };
                let v = val.get(rd(f, at, len));
                wr(f, at, len, v);
            }
            Edit::Phdr(i, field, val) => {
                let (off, len) = match field {
                    PhdrField::Type => (0, 4),
                    PhdrField::Flags => (4, 4),
                    PhdrField::Offset => (8, 8),
                    PhdrField::Vaddr => (16, 8),
                    PhdrField::Filesz => (32, 8),
                    PhdrField::Memsz => (40, 8),
                    PhdrField::Align => (48, 8),
                };
                let at = phdr_at(*i).saturating_add(off);
                let v = val.get(rd(f, at, len));
                wr(f, at, len, v);
            }
            Edit::DupPhdr(from, to) => {
                let (a, b) = (phdr_at(*from), phdr_at(*to));
                if let Some(src) = f.get(a..a.saturating_add(56)).map(<[u8]>::to_vec) {
                    for (k, chunk) in src.chunks(8).enumerate() {
                        wr(
                            f,
                            b.saturating_add(k * 8),
                            chunk.len(),
                            rd(chunk, 0, chunk.len()),
                        );
                    }
                }
            }
            Edit::Bytes(at, bytes) => {
                let at = usize::from(*at);
                let end = (at + bytes.len()).min(MAX_FILE);
                if end > at {
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    f[at..end].copy_from_slice(&bytes[..end - at]);
                }
            }
            Edit::Truncate(n) => f.truncate(usize::from(*n)),
            Edit::Extend(n) => {
                let n = usize::from(*n);
                if f.len() < n {
                    f.resize(n, 0);
                }
            }
        }
    }
}
