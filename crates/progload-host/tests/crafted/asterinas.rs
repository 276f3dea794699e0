//! Asterinas' `execve_err.c` (`test/initramfs/src/apps/process/execve/`), replayed step by
//! step: the C test mutates one static `struct custom_elf` (header, three program headers, a
//! 128-byte buffer; 360 bytes), execs it with a NULL argv and envp after each mutation, and
//! undoes the mutation. Left-overs are part of the state, as upstream (a popped PT_INTERP
//! stays in the table past `e_phnum`, the buffer keeps the last interpreter path). Each exec
//! here is its own file, named after the upstream test.
//!
//! For the failures past the point of no return, Asterinas reads the errno the kernel's
//! `execve` returned through `PTRACE_SYSCALL`; here the kernel's SIGSEGV is matched with a
//! fatal plan error (the errno is not compared).

use super::*;

const F: &str = "asterinas-execve-err";

/// Nothing upstream is left out.
pub(super) const EXCLUDED: &[(&str, &str, &str)] = &[];

/// `offsetof(struct custom_elf, buf)`.
const BUF: u64 = 64 + 3 * 56;
/// `sizeof(struct custom_elf)`.
const SIZE: u64 = BUF + 128;
const BASE_ADDRESS: u64 = 0x10000;
const PAGE: u64 = 0x1000;
/// `ud2` and the NUL of the C string literal (upstream's x86 bytes on every architecture: the
/// probe stops before the first instruction, so they are only data).
const UD2: &[u8] = b"\x0f\x0b\0";

struct Custom {
    b: ElfBuilder,
    buf: [u8; 128],
    n: usize,
}

impl Custom {
    /// `init_exec`.
    fn new() -> Custom {
        let mut b = native(ET_EXEC);
        b.header.e_entry = BASE_ADDRESS + BUF;
        b.header.e_ehsize = 0;
        b.header.e_shentsize = 0;
        b.header.e_phnum = Some(1);
        b.phdrs = vec![ProgramHeader::default(); 3];
        b.phdrs[0] = ProgramHeader {
            p_type: PT_LOAD,
            p_flags: PF_R | PF_W | PF_X,
            p_offset: 0,
            p_vaddr: BASE_ADDRESS,
            p_filesz: PAGE,
            p_memsz: PAGE,
            ..ProgramHeader::default()
        };
        Custom {
            b,
            buf: [0; 128],
            n: 0,
        }
    }

    fn phnum(&self) -> u16 {
        self.b.header.e_phnum.unwrap()
    }

    fn set_phnum(&mut self, n: u16) {
        self.b.header.e_phnum = Some(n);
    }

    /// `do_execve()`: writes the struct to a file of its own and adds the case.
    fn exec(&mut self, t: &mut Table, name: &str) {
        self.n += 1;
        // The struct's table is always at offset 64, whatever e_phoff says.
        let mut b = self.b.clone();
        let phoff = b.header.e_phoff;
        b.header.e_phoff = 64;
        b.payload(BUF, &self.buf);
        b.min_len(SIZE);
        let mut f = b.build();
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        assert_eq!(f.len() as u64, SIZE);
        let p = t.file(&format!("ast/{:02}-exe", self.n), &f);
        let c = t.make(F, name, bytes(&p)).argv(None).envp(vec![]);
        t.cases.push(c);
    }

    /// `do_execve_good()`.
    fn exec_good(&mut self, t: &mut Table, name: &str) {
        self.buf[..UD2.len()].copy_from_slice(UD2);
        self.exec(t, name);
    }

    /// `push_interp()`: the next phdr becomes a PT_INTERP of the path copied into `buf`
    /// (`strncpy`, so zero-padded); its other fields keep what they had.
    fn push_interp(&mut self, path: &[u8]) -> usize {
        let i = usize::from(self.phnum());
        assert!(i < 3);
        self.set_phnum(self.phnum() + 1);
        let p = &mut self.b.phdrs[i];
        p.p_type = PT_INTERP;
        p.p_offset = BUF;
        p.p_filesz = path.len() as u64 + 1;
        self.buf = [0; 128];
        let n = path.len().min(127);
        self.buf[..n].copy_from_slice(&path[..n]);
        i
    }

    fn pop_interp(&mut self) {
        self.set_phnum(self.phnum() - 1);
    }
}

pub(super) fn cases(t: &mut Table) {
    std::fs::create_dir(t.dir().join("ast")).unwrap();
    let mut e = Custom::new();

    e.exec_good(t, "good_exec");
    for i in 0..4 {
        e.b.header.e_ident[i] += 1;
        e.exec(t, &format!("bad_magic (e_ident[{i}] + 1)"));
        e.b.header.e_ident[i] -= 1;
    }
    e.b.header.e_machine += 1;
    e.exec(
        t,
        &format!("bad_machine ({} + 1)", machine_name(ARCH.e_machine())),
    );
    e.b.header.e_machine -= 1;
    e.b.header.e_type = ET_CORE;
    e.exec(t, "bad_type (ET_CORE)");
    e.b.header.e_type = ET_EXEC;
    e.b.header.e_phoff = SIZE;
    e.exec(t, "bad_phoff (= file size)");
    e.b.header.e_phoff = 64;
    e.b.header.e_phentsize += 1;
    e.exec(t, "bad_phentsize (57)");
    e.b.header.e_phentsize -= 2;
    e.exec(t, "bad_phentsize (55)");
    e.b.header.e_phentsize += 1;
    e.set_phnum(0);
    e.exec(t, "bad_phnum (0)");
    e.set_phnum(1);

    let i = e.push_interp(b"/dev/zero");
    e.b.phdrs[i].p_filesz = 0x100_0000;
    e.exec(t, "interp_too_long (p_filesz 16 MiB)");
    e.pop_interp();

    let i = e.push_interp(b"/dev/zero");
    e.b.phdrs[i].p_filesz -= 1;
    e.exec(t, "interp_missing_nul");
    e.pop_interp();

    let i = e.push_interp(b"/dev/zero");
    e.b.phdrs[i].p_offset = SIZE - 1;
    e.exec(t, "interp_trunc_eof (p_offset = size - 1)");
    e.pop_interp();

    let i = e.push_interp(b"/dev/zero");
    e.b.phdrs[i].p_offset = u64::MAX - 10;
    for j in 9..=12 {
        e.b.phdrs[i].p_filesz = j;
        e.exec(
            t,
            &format!("interp_overflow_end (p_offset 2^64-11, p_filesz {j})"),
        );
    }
    e.pop_interp();

    e.push_interp(&bytes(&t.dir().join("ast/file_doesnt_exist")));
    e.exec(t, "interp_doesnt_exist");
    e.pop_interp();

    e.push_interp(b"/dev/zero");
    e.exec(t, "interp_bad_perm (/dev/zero)");
    e.pop_interp();

    // interp_bad_format: the library is first the 2 bytes "#!", then truncated (extended) to
    // a page. Two files of equal name length stand for the two states.
    let lib_a = t.file("ast/my_lib_a", b"#!");
    let lib_b = t.file("ast/my_lib_b", b"#!");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lib_b)
        .and_then(|f| f.set_len(PAGE))
        .unwrap();
    e.push_interp(&bytes(&lib_a));
    e.exec(t, "interp_bad_format (\"#!\", 2 bytes)");
    let n = bytes(&lib_b).len();
    e.buf[..n].copy_from_slice(&bytes(&lib_b));
    e.exec(t, "interp_bad_format (\"#!\" truncated to a page)");
    e.push_interp(&bytes(&lib_b));
    e.exec(t, "interp_bad_format (two PT_INTERPs)");
    e.pop_interp();
    e.pop_interp();

    // Past the point of no return.
    e.b.phdrs[0].p_offset += 1;
    e.exec(t, "unaglined_offset (p_offset 1)");
    e.b.phdrs[0].p_offset -= 1;
    e.b.phdrs[0].p_vaddr += 1;
    e.exec(t, "unaligned_vaddr (p_vaddr 0x10001)");
    e.b.phdrs[0].p_vaddr -= 1;
    let old = e.b.phdrs[0].p_offset;
    // (~0 & ~(PAGE_SIZE - 1)) + (p_offset & (PAGE_SIZE - 1)), as upstream writes it.
    e.b.phdrs[0].p_offset = !(PAGE - 1) + (old & (PAGE - 1));
    e.exec(t, "overflow_offset_plus_filesz (p_offset 2^64 - 4096)");
    e.b.phdrs[0].p_offset -= PAGE;
    e.exec(t, "overflow_offset_plus_filesz (p_offset 2^64 - 8192)");
    e.b.phdrs[0].p_offset = old;
    let old = e.b.phdrs[0].p_memsz;
    e.b.phdrs[0].p_memsz = u64::MAX - e.b.phdrs[0].p_vaddr;
    for k in 0..3 {
        e.exec(
            t,
            &format!("overflow_vaddr_plus_memsz (p_memsz 2^64 - 1 - p_vaddr + {k})"),
        );
        e.b.phdrs[0].p_memsz = e.b.phdrs[0].p_memsz.wrapping_add(1);
    }
    e.b.phdrs[0].p_memsz = old;
    let old = e.b.phdrs[0].p_vaddr;
    e.b.phdrs[0].p_vaddr = PAGE;
    e.exec(t, "underflow_vaddr (p_vaddr 0x1000)");
    e.b.phdrs[0].p_vaddr = old;
    e.b.phdrs[0].p_filesz += PAGE - 1;
    e.b.phdrs[0].p_memsz += PAGE;
    e.exec(
        t,
        "memsz_larger_than_filesz (p_filesz 0x1fff past EOF, p_memsz 0x2000)",
    );
    e.b.phdrs[0].p_memsz -= PAGE;
    e.b.phdrs[0].p_filesz -= PAGE - 1;
    e.b.phdrs[0].p_memsz -= 1;
    e.exec(t, "filesz_larger_than_memsz");
    e.b.phdrs[0].p_memsz += 1;

    // ET_DYN.
    e.b.header.e_type = ET_DYN;
    e.exec_good(t, "good_dyn");
    for align in [2048u64, 2047] {
        e.b.phdrs[0].p_align = align;
        e.exec_good(t, &format!("bad_align (p_align {align})"));
    }
    e.b.phdrs[0].p_align = 0;
    for shift in [21u32, 42, 63] {
        e.b.phdrs[0].p_align = 1 << shift;
        e.exec_good(t, &format!("large_align (p_align 2^{shift})"));
    }
    e.b.phdrs[0].p_align = 0;
}
