//! A small builder for crafted little-endian ELF64 files.
//!
//! Every header field is a plain public field, so a test can start from a valid file
//! ([`ElfBuilder::minimal_x86_64_exec`] and friends) and break exactly one thing. Nothing is
//! validated and nothing is derived implicitly except where documented (`e_phnum` when left
//! `None`, and the file length).
//!
//! Layout produced by [`ElfBuilder::build`]: the 64-byte ELF header at offset 0, the program
//! header table at `e_phoff` (entries written with a stride of 56 bytes whatever `e_phentsize`
//! says), then every payload at its offset, in insertion order (so payloads may deliberately
//! overwrite the header or the table). The file is as long as the furthest of these, or
//! `min_len` if that is larger; gaps are zero.

/// `e_ident[EI_CLASS]` value for 64-bit objects.
pub const ELFCLASS64: u8 = 2;
/// `e_ident[EI_CLASS]` value for 32-bit objects.
pub const ELFCLASS32: u8 = 1;
/// `e_ident[EI_DATA]` value for little endian.
pub const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]` value for big endian.
pub const ELFDATA2MSB: u8 = 2;
/// `EV_CURRENT`.
pub const EV_CURRENT: u8 = 1;
/// `ELFOSABI_SYSV` (a.k.a. `ELFOSABI_NONE`).
pub const ELFOSABI_SYSV: u8 = 0;
/// `ELFOSABI_GNU` (a.k.a. `ELFOSABI_LINUX`).
pub const ELFOSABI_GNU: u8 = 3;

/// `ET_EXEC`.
pub const ET_EXEC: u16 = 2;
/// `ET_DYN`.
pub const ET_DYN: u16 = 3;
/// `ET_REL`.
pub const ET_REL: u16 = 1;
/// `ET_CORE`.
pub const ET_CORE: u16 = 4;

/// `EM_386`.
pub const EM_386: u16 = 3;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `EM_ARM` (the AArch32 compat machine of arm64).
pub const EM_ARM: u16 = 40;
/// `EM_RISCV`.
pub const EM_RISCV: u16 = 243;
/// `EF_ARM_EABI_VER5` in `e_flags` (what arm64's `compat_elf_check_arch()` wants to see in
/// `EF_ARM_EABI_MASK`).
pub const EF_ARM_EABI_VER5: u32 = 0x0500_0000;
/// `EF_RISCV_RVC | EF_RISCV_FLOAT_ABI_DOUBLE`: the `e_flags` of an lp64d riscv64 program.
pub const EF_RISCV_RVC_DOUBLE: u32 = 0x1 | 0x4;

/// `PT_NULL`.
pub const PT_NULL: u32 = 0;
/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_DYNAMIC`.
pub const PT_DYNAMIC: u32 = 2;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// `PT_TLS`.
pub const PT_TLS: u32 = 7;
/// `PT_GNU_EH_FRAME`.
pub const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
/// `PT_GNU_STACK`.
pub const PT_GNU_STACK: u32 = 0x6474_e551;
/// `PT_GNU_RELRO`.
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
/// `PT_GNU_PROPERTY`.
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;

/// Segment permission: execute.
pub const PF_X: u32 = 1;
/// Segment permission: write.
pub const PF_W: u32 = 2;
/// Segment permission: read.
pub const PF_R: u32 = 4;

/// Size of the ELF64 header.
pub const EHDR_SIZE: u16 = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: u16 = 56;
/// Size of one ELF64 section header.
pub const SHDR_SIZE: u16 = 64;

/// Machine code of `exit(0)` for x86_64: `mov eax, 60; xor edi, edi; syscall`.
pub const X86_64_EXIT0: [u8; 9] = [
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (SYS_exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
];

/// Machine code of `exit(0)` for aarch64: `mov x8, #93; mov x0, #0; svc #0`.
pub const AARCH64_EXIT0: [u8; 12] = [
    0xa8, 0x0b, 0x80, 0xd2, // movz x8, #93 (SYS_exit)
    0x00, 0x00, 0x80, 0xd2, // movz x0, #0
    0x01, 0x00, 0x00, 0xd4, // svc #0
];

/// Machine code of `exit(0)` for riscv64: `li a7, 93; li a0, 0; ecall`.
pub const RISCV64_EXIT0: [u8; 12] = [
    0x93, 0x08, 0xd0, 0x05, // addi a7, zero, 93 (SYS_exit)
    0x13, 0x05, 0x00, 0x00, // addi a0, zero, 0
    0x73, 0x00, 0x00, 0x00, // ecall
];

/// A 64-bit Linux architecture crafted programs are built for: what differs between the
/// x86_64, aarch64 and riscv64 versions of the same crafted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64.
    X86_64,
    /// AArch64.
    Aarch64,
    /// RISC-V 64 (lp64d).
    Riscv64,
}

impl Arch {
    /// The architecture this code was compiled for (x86_64 on anything else, so that the
    /// crafted programs keep their historical shape on other hosts).
    pub const fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "riscv64") {
            Arch::Riscv64
        } else {
            Arch::X86_64
        }
    }

    /// The `e_machine` its 64-bit `elf_check_arch()` accepts.
    pub const fn e_machine(self) -> u16 {
        match self {
            Arch::X86_64 => EM_X86_64,
            Arch::Aarch64 => EM_AARCH64,
            Arch::Riscv64 => EM_RISCV,
        }
    }

    /// `e_flags` of an ordinary program (the kernel checks none of them).
    pub const fn e_flags(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::Aarch64 => 0,
            Arch::Riscv64 => EF_RISCV_RVC_DOUBLE,
        }
    }

    /// A 64-bit machine the kernel refuses: one of the other two architectures (EM_AARCH64 on
    /// x86_64, EM_X86_64 on the others).
    pub const fn foreign_machine(self) -> u16 {
        match self {
            Arch::X86_64 => EM_AARCH64,
            Arch::Aarch64 | Arch::Riscv64 => EM_X86_64,
        }
    }

    /// Position-independent machine code of `exit(0)`.
    pub const fn exit0(self) -> &'static [u8] {
        match self {
            Arch::X86_64 => &X86_64_EXIT0,
            Arch::Aarch64 => &AARCH64_EXIT0,
            Arch::Riscv64 => &RISCV64_EXIT0,
        }
    }

    /// A one-byte filler for code padding (x86 `nop`; 0 elsewhere, where no single byte is an
    /// instruction).
    pub const fn code_pad(self) -> u8 {
        match self {
            Arch::X86_64 => 0x90,
            Arch::Aarch64 | Arch::Riscv64 => 0,
        }
    }

    /// The dynamic loader every Debian system of the architecture has.
    pub const fn ld_so(self) -> &'static str {
        match self {
            Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Aarch64 => "/lib/ld-linux-aarch64.so.1",
            Arch::Riscv64 => "/lib/ld-linux-riscv64-lp64d.so.1",
        }
    }
}

/// The `EM_` name of the machines this module knows (`EM_<number>` for the others).
pub fn machine_name(e_machine: u16) -> String {
    match e_machine {
        EM_386 => "EM_386".into(),
        EM_ARM => "EM_ARM".into(),
        EM_X86_64 => "EM_X86_64".into(),
        EM_AARCH64 => "EM_AARCH64".into(),
        EM_RISCV => "EM_RISCV".into(),
        m => format!("EM_{m}"),
    }
}

/// The ELF64 file header. `e_ident` is the full 16-byte identification array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfHeader {
    /// `e_ident`: magic, class, data, version, OS ABI, ABI version, padding.
    pub e_ident: [u8; 16],
    /// Object file type.
    pub e_type: u16,
    /// Architecture.
    pub e_machine: u16,
    /// Object file version.
    pub e_version: u32,
    /// Entry point virtual address.
    pub e_entry: u64,
    /// Program header table file offset (also where [`ElfBuilder::build`] writes the table).
    pub e_phoff: u64,
    /// Section header table file offset.
    pub e_shoff: u64,
    /// Processor-specific flags.
    pub e_flags: u32,
    /// ELF header size.
    pub e_ehsize: u16,
    /// Program header table entry size.
    pub e_phentsize: u16,
    /// Program header count; `None` writes the number of program headers in the builder.
    pub e_phnum: Option<u16>,
    /// Section header table entry size.
    pub e_shentsize: u16,
    /// Section header count.
    pub e_shnum: u16,
    /// Section header string table index.
    pub e_shstrndx: u16,
}

impl ElfHeader {
    /// A header for a little-endian ELF64 of type `e_type` for `e_machine`, with the
    /// program header table right after the header and no sections.
    pub fn new(e_type: u16, e_machine: u16) -> Self {
        let mut e_ident = [0u8; 16];
        e_ident[..4].copy_from_slice(b"\x7fELF");
        e_ident[4] = ELFCLASS64;
        e_ident[5] = ELFDATA2LSB;
        e_ident[6] = EV_CURRENT;
        e_ident[7] = ELFOSABI_SYSV;
        ElfHeader {
            e_ident,
            e_type,
            e_machine,
            e_version: EV_CURRENT as u32,
            e_entry: 0,
            e_phoff: EHDR_SIZE as u64,
            e_shoff: 0,
            e_flags: 0,
            e_ehsize: EHDR_SIZE,
            e_phentsize: PHDR_SIZE,
            e_phnum: None,
            e_shentsize: SHDR_SIZE,
            e_shnum: 0,
            e_shstrndx: 0,
        }
    }

    /// Set `e_ident[EI_CLASS]`.
    pub fn set_class(&mut self, class: u8) -> &mut Self {
        self.e_ident[4] = class;
        self
    }

    /// Set `e_ident[EI_DATA]`.
    pub fn set_data(&mut self, data: u8) -> &mut Self {
        self.e_ident[5] = data;
        self
    }

    /// Set `e_ident[EI_VERSION]`.
    pub fn set_ident_version(&mut self, version: u8) -> &mut Self {
        self.e_ident[6] = version;
        self
    }

    /// Set `e_ident[EI_OSABI]`.
    pub fn set_osabi(&mut self, osabi: u8) -> &mut Self {
        self.e_ident[7] = osabi;
        self
    }

    /// Set `e_ident[EI_ABIVERSION]`.
    pub fn set_abiversion(&mut self, v: u8) -> &mut Self {
        self.e_ident[8] = v;
        self
    }

    fn write(&self, out: &mut [u8], phnum: u16) {
        out[..16].copy_from_slice(&self.e_ident);
        put16(out, 16, self.e_type);
        put16(out, 18, self.e_machine);
        put32(out, 20, self.e_version);
        put64(out, 24, self.e_entry);
        put64(out, 32, self.e_phoff);
        put64(out, 40, self.e_shoff);
        put32(out, 48, self.e_flags);
        put16(out, 52, self.e_ehsize);
        put16(out, 54, self.e_phentsize);
        put16(out, 56, self.e_phnum.unwrap_or(phnum));
        put16(out, 58, self.e_shentsize);
        put16(out, 60, self.e_shnum);
        put16(out, 62, self.e_shstrndx);
    }
}

/// One ELF64 program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramHeader {
    /// Segment type.
    pub p_type: u32,
    /// Segment flags (`PF_R | PF_W | PF_X`).
    pub p_flags: u32,
    /// File offset.
    pub p_offset: u64,
    /// Virtual address.
    pub p_vaddr: u64,
    /// Physical address.
    pub p_paddr: u64,
    /// Size in the file.
    pub p_filesz: u64,
    /// Size in memory.
    pub p_memsz: u64,
    /// Alignment.
    pub p_align: u64,
}

impl ProgramHeader {
    /// A `PT_LOAD` with `p_paddr = p_vaddr` and 4 KiB alignment.
    pub fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Self {
        ProgramHeader {
            p_type: PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }

    /// A `PT_GNU_STACK` with the given flags (`PF_R | PF_W` for a non-executable stack).
    pub fn gnu_stack(flags: u32) -> Self {
        ProgramHeader {
            p_type: PT_GNU_STACK,
            p_flags: flags,
            p_align: 0x10,
            ..ProgramHeader::default()
        }
    }

    /// A `PT_INTERP` pointing at `len` bytes (including the NUL) at `offset`/`vaddr`.
    pub fn interp(offset: u64, vaddr: u64, len: u64) -> Self {
        ProgramHeader {
            p_type: PT_INTERP,
            p_flags: PF_R,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: len,
            p_memsz: len,
            p_align: 1,
        }
    }

    fn write(&self, out: &mut [u8], at: usize) {
        put32(out, at, self.p_type);
        put32(out, at + 4, self.p_flags);
        put64(out, at + 8, self.p_offset);
        put64(out, at + 16, self.p_vaddr);
        put64(out, at + 24, self.p_paddr);
        put64(out, at + 32, self.p_filesz);
        put64(out, at + 40, self.p_memsz);
        put64(out, at + 48, self.p_align);
    }
}

/// Bytes placed at a file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// File offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A crafted ELF64 file under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfBuilder {
    /// The file header.
    pub header: ElfHeader,
    /// The program header table, written at `header.e_phoff`.
    pub phdrs: Vec<ProgramHeader>,
    /// Bytes placed at file offsets after the header and table are written.
    pub payloads: Vec<Payload>,
    /// Minimum file length (the file is zero-padded up to it).
    pub min_len: u64,
}

/// File offset (and offset from the load address) of the code in the minimal programs: right
/// after the ELF header and two program headers.
pub const MINIMAL_CODE_OFFSET: u64 = EHDR_SIZE as u64 + 2 * PHDR_SIZE as u64;

impl ElfBuilder {
    /// An empty builder (no program headers, no payloads) with [`ElfHeader::new`].
    pub fn new(e_type: u16, e_machine: u16) -> Self {
        ElfBuilder {
            header: ElfHeader::new(e_type, e_machine),
            phdrs: Vec::new(),
            payloads: Vec::new(),
            min_len: 0,
        }
    }

    /// A minimal valid static program: one `R|X` `PT_LOAD` mapping the whole file at `base`
    /// (offset 0), a `PT_GNU_STACK` (`R|W`), and `code` at [`MINIMAL_CODE_OFFSET`], which is
    /// also where `e_entry` points.
    pub fn minimal(e_type: u16, e_machine: u16, base: u64, code: &[u8]) -> Self {
        let mut b = ElfBuilder::new(e_type, e_machine);
        let size = MINIMAL_CODE_OFFSET + code.len() as u64;
        b.header.e_entry = base + MINIMAL_CODE_OFFSET;
        b.phdrs
            .push(ProgramHeader::load(PF_R | PF_X, 0, base, size, size));
        b.phdrs.push(ProgramHeader::gnu_stack(PF_R | PF_W));
        b.payload(MINIMAL_CODE_OFFSET, code);
        b
    }

    /// A static x86_64 `ET_EXEC` loaded at `0x400000` that calls `exit(0)`.
    pub fn minimal_x86_64_exec() -> Self {
        Self::minimal(ET_EXEC, EM_X86_64, 0x40_0000, &X86_64_EXIT0)
    }

    /// The same program as an `ET_DYN` at virtual address 0 without `PT_INTERP`
    /// (static-PIE-like; the code is position independent).
    pub fn minimal_x86_64_dyn() -> Self {
        Self::minimal(ET_DYN, EM_X86_64, 0, &X86_64_EXIT0)
    }

    /// A static aarch64 `ET_EXEC` loaded at `0x400000` that calls `exit(0)`.
    pub fn minimal_aarch64_exec() -> Self {
        Self::minimal(ET_EXEC, EM_AARCH64, 0x40_0000, &AARCH64_EXIT0)
    }

    /// The aarch64 program as an `ET_DYN` at virtual address 0 without `PT_INTERP`.
    pub fn minimal_aarch64_dyn() -> Self {
        Self::minimal(ET_DYN, EM_AARCH64, 0, &AARCH64_EXIT0)
    }

    /// A static `ET_EXEC` for `arch` loaded at `0x400000` that calls `exit(0)`, with the
    /// architecture's usual `e_flags`.
    pub fn minimal_exec_for(arch: Arch) -> Self {
        let mut b = Self::minimal(ET_EXEC, arch.e_machine(), 0x40_0000, arch.exit0());
        b.header.e_flags = arch.e_flags();
        b
    }

    /// The `arch` program as an `ET_DYN` at virtual address 0 without `PT_INTERP`.
    pub fn minimal_dyn_for(arch: Arch) -> Self {
        let mut b = Self::minimal(ET_DYN, arch.e_machine(), 0, arch.exit0());
        b.header.e_flags = arch.e_flags();
        b
    }

    /// Append a program header.
    pub fn phdr(&mut self, ph: ProgramHeader) -> &mut Self {
        self.phdrs.push(ph);
        self
    }

    /// Place `bytes` at file offset `offset` (applied after the header and program headers,
    /// in call order).
    pub fn payload(&mut self, offset: u64, bytes: &[u8]) -> &mut Self {
        self.payloads.push(Payload {
            offset,
            bytes: bytes.to_vec(),
        });
        self
    }

    /// Zero-pad the file to at least `len` bytes.
    pub fn min_len(&mut self, len: u64) -> &mut Self {
        self.min_len = len;
        self
    }

    /// Serialise the file.
    pub fn build(&self) -> Vec<u8> {
        let ph_end = self.header.e_phoff + self.phdrs.len() as u64 * PHDR_SIZE as u64;
        let mut len = (EHDR_SIZE as u64).max(self.min_len);
        if !self.phdrs.is_empty() {
            len = len.max(ph_end);
        }
        for p in &self.payloads {
            len = len.max(p.offset + p.bytes.len() as u64);
        }
        let len = usize::try_from(len).expect("ELF image fits in memory");
        let mut out = vec![0u8; len];
        let phnum = u16::try_from(self.phdrs.len()).unwrap_or(u16::MAX);
        self.header.write(&mut out, phnum);
        for (i, ph) in self.phdrs.iter().enumerate() {
            let at = self.header.e_phoff as usize + i * PHDR_SIZE as usize;
            ph.write(&mut out, at);
        }
        for p in &self.payloads {
            let at = p.offset as usize;
            out[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        out
    }
}

fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A minimal valid static i386 ELF32 `ET_EXEC` at `0x8048000` that calls `exit(0)` through
/// `int 0x80`: one R+X `PT_LOAD` of the whole 93-byte file. Linux with IA32 emulation runs it
/// through `compat_binfmt_elf`.
pub fn minimal_i386_exec() -> Vec<u8> {
    // xor ebx, ebx; mov eax, 1; int 0x80
    const EXIT0: [u8; 9] = [0x31, 0xdb, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xcd, 0x80];
    minimal_elf32_exec(EM_386, 0x0804_8000, 0, &EXIT0)
}

/// A minimal static AArch32 ELF32 `ET_EXEC` at `0x10000` with `e_flags` `flags`: one R+X
/// `PT_LOAD` of the whole file, code `mov r7, #1; mov r0, #0; svc #0` (`exit(0)`). With
/// [`EF_ARM_EABI_VER5`] an arm64 kernel whose CPU runs AArch32 at EL0 takes it through
/// `compat_binfmt_elf`; with 0 `compat_elf_check_arch()` refuses it.
pub fn minimal_arm_exec(flags: u32) -> Vec<u8> {
    const EXIT0: [u8; 12] = [
        0x01, 0x70, 0xa0, 0xe3, // mov r7, #1 (SYS_exit)
        0x00, 0x00, 0xa0, 0xe3, // mov r0, #0
        0x00, 0x00, 0x00, 0xef, // svc #0
    ];
    minimal_elf32_exec(EM_ARM, 0x1_0000, flags, &EXIT0)
}

/// A static ELF32 `ET_EXEC` of `machine` loaded at `base`: the header, one R+X `PT_LOAD` of
/// the whole file, then `code`, where `e_entry` points.
fn minimal_elf32_exec(machine: u16, base: u32, flags: u32, code: &[u8]) -> Vec<u8> {
    const CODE: u32 = 52 + 32;
    let size = CODE + code.len() as u32;
    let mut f = Vec::with_capacity(size as usize);
    f.extend_from_slice(&[
        0x7f,
        b'E',
        b'L',
        b'F',
        ELFCLASS32,
        ELFDATA2LSB,
        EV_CURRENT,
        0,
    ]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&ET_EXEC.to_le_bytes());
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(base + CODE).to_le_bytes()); // e_entry
    f.extend_from_slice(&52u32.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    f.extend_from_slice(&flags.to_le_bytes()); // e_flags
    for v in [52u16, 32, 1, 40, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        f.extend_from_slice(&v.to_le_bytes());
    }
    for v in [PT_LOAD, 0, base, base, size, size, PF_R | PF_X, 0x1000] {
        // p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_land_at_their_offsets() {
        let mut b = ElfBuilder::minimal_x86_64_exec();
        b.header.e_flags = 0x1234_5678;
        b.header.e_shoff = 0x1122_3344_5566_7788;
        b.header.set_osabi(ELFOSABI_GNU).set_abiversion(7);
        let f = b.build();
        assert_eq!(&f[..4], b"\x7fELF");
        assert_eq!(f[4], ELFCLASS64);
        assert_eq!(f[5], ELFDATA2LSB);
        assert_eq!(f[7], ELFOSABI_GNU);
        assert_eq!(f[8], 7);
        assert_eq!(u16::from_le_bytes([f[16], f[17]]), ET_EXEC);
        assert_eq!(u16::from_le_bytes([f[18], f[19]]), EM_X86_64);
        assert_eq!(
            u64::from_le_bytes(f[24..32].try_into().unwrap()),
            0x40_0000 + MINIMAL_CODE_OFFSET
        );
        assert_eq!(u64::from_le_bytes(f[32..40].try_into().unwrap()), 64);
        assert_eq!(
            u64::from_le_bytes(f[40..48].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            u32::from_le_bytes(f[48..52].try_into().unwrap()),
            0x1234_5678
        );
        assert_eq!(u16::from_le_bytes([f[52], f[53]]), 64);
        assert_eq!(u16::from_le_bytes([f[54], f[55]]), 56);
        assert_eq!(u16::from_le_bytes([f[56], f[57]]), 2);
        assert_eq!(
            f.len() as u64,
            MINIMAL_CODE_OFFSET + X86_64_EXIT0.len() as u64
        );
        assert_eq!(&f[MINIMAL_CODE_OFFSET as usize..], &X86_64_EXIT0);
        // First program header: PT_LOAD R|X covering the file.
        let ph = &f[64..120];
        assert_eq!(u32::from_le_bytes(ph[0..4].try_into().unwrap()), PT_LOAD);
        assert_eq!(
            u32::from_le_bytes(ph[4..8].try_into().unwrap()),
            PF_R | PF_X
        );
        assert_eq!(
            u64::from_le_bytes(ph[16..24].try_into().unwrap()),
            0x40_0000
        );
        assert_eq!(
            u64::from_le_bytes(ph[32..40].try_into().unwrap()),
            f.len() as u64
        );
    }

    #[test]
    fn overrides_and_padding() {
        let mut b = ElfBuilder::minimal_x86_64_dyn();
        b.header.e_phnum = Some(0xffff);
        b.header.e_phentsize = 0x40;
        b.header.set_class(ELFCLASS32).set_data(ELFDATA2MSB);
        b.min_len(0x3000).payload(0x2ffe, b"\xaa\xbb");
        let f = b.build();
        assert_eq!(f.len(), 0x3000);
        assert_eq!(u16::from_le_bytes([f[56], f[57]]), 0xffff);
        assert_eq!(u16::from_le_bytes([f[54], f[55]]), 0x40);
        assert_eq!((f[4], f[5]), (ELFCLASS32, ELFDATA2MSB));
        assert_eq!(&f[0x2ffe..], b"\xaa\xbb");
        assert_eq!(u16::from_le_bytes([f[16], f[17]]), ET_DYN);
        assert_eq!(
            u64::from_le_bytes(f[24..32].try_into().unwrap()),
            MINIMAL_CODE_OFFSET
        );
    }

    #[test]
    fn per_arch_programs() {
        for (arch, m, flags) in [
            (Arch::X86_64, EM_X86_64, 0),
            (Arch::Aarch64, EM_AARCH64, 0),
            (Arch::Riscv64, EM_RISCV, EF_RISCV_RVC_DOUBLE),
        ] {
            let f = ElfBuilder::minimal_exec_for(arch).build();
            assert_eq!(u16::from_le_bytes([f[18], f[19]]), m);
            assert_eq!(u32::from_le_bytes(f[48..52].try_into().unwrap()), flags);
            assert_eq!(&f[MINIMAL_CODE_OFFSET as usize..], arch.exit0());
            assert_ne!(arch.foreign_machine(), m);
            let d = ElfBuilder::minimal_dyn_for(arch).build();
            assert_eq!(u16::from_le_bytes([d[16], d[17]]), ET_DYN);
        }
        assert_eq!(
            ElfBuilder::minimal_exec_for(Arch::X86_64),
            ElfBuilder::minimal_x86_64_exec()
        );
        let arm = minimal_arm_exec(EF_ARM_EABI_VER5);
        assert_eq!(u16::from_le_bytes([arm[18], arm[19]]), EM_ARM);
        assert_eq!(
            u32::from_le_bytes(arm[36..40].try_into().unwrap()),
            EF_ARM_EABI_VER5
        );
    }

    #[test]
    fn aarch64_variant() {
        let f = ElfBuilder::minimal_aarch64_exec().build();
        assert_eq!(u16::from_le_bytes([f[18], f[19]]), EM_AARCH64);
        assert_eq!(&f[MINIMAL_CODE_OFFSET as usize..], &AARCH64_EXIT0);
        assert_eq!(
            MINIMAL_CODE_OFFSET % 4,
            0,
            "aarch64 code must be 4-byte aligned"
        );
    }
}
