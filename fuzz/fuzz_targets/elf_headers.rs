//! ELF header and program header table validation: `Header::parse` on the first bytes of the
//! input and `load_phdrs` over a MemFs file holding the whole input, for the native reading
//! and the compat loader's ELF32 one (`Header::as_elf32`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use progload::binfmt::elf::{self, Header, PhdrsError, MAX_PHDRS_BYTES, PHDR_SIZE};
use progload::binfmt::BUF_SIZE;
use progload::mm::{page_align, page_offset};
use progload::{FileSystem, MemFs};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; BUF_SIZE];
    let n = data.len().min(BUF_SIZE);
    buf[..n].copy_from_slice(&data[..n]);
    let Some(h) = Header::parse(&buf) else {
        assert_ne!(&buf[..4], b"\x7fELF");
        return;
    };
    assert_eq!(&buf[..4], b"\x7fELF");
    let _ = (h.type_ok(), h.is_dyn());

    let mut fs = MemFs::new();
    fs.add_file(b"/f", 0o755, data.to_vec());
    let node = fs.lookup(&fs.root(), b"f").expect("just added");
    // The ELF32 reading: the same bytes as a 32-bit header, and its 32-byte entries widened.
    let h32 = h.as_elf32();
    assert_eq!(Header::parse_elf32(&buf), Some(h32));
    if let Ok(phdrs) = elf::load_phdrs(&fs, &node, &h32, elf::MAX_PHDRS_BYTES) {
        assert_eq!(h32.e_phentsize, 32);
        assert_eq!(phdrs.len(), usize::from(h32.e_phnum));
        for (i, p) in phdrs.iter().enumerate() {
            let at = h32.e_phoff as usize + i * 32;
            let u32_at =
                |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
            assert_eq!(p.p_type, u32_at(0));
            assert_eq!(p.p_offset, u64::from(u32_at(4)));
            assert_eq!(p.p_vaddr, u64::from(u32_at(8)));
            assert_eq!(p.p_filesz, u64::from(u32_at(16)));
            assert_eq!(p.p_memsz, u64::from(u32_at(20)));
            assert_eq!(p.p_flags, u32_at(24));
            assert_eq!(p.p_align, u64::from(u32_at(28)));
        }
    }
    match elf::load_phdrs(&fs, &node, &h, elf::MAX_PHDRS_BYTES) {
        Ok(phdrs) => {
            // The shape the kernel accepts: 56-byte entries, 1..=64 KiB, wholly in the file.
            assert_eq!(usize::from(h.e_phentsize), PHDR_SIZE);
            assert_eq!(phdrs.len(), usize::from(h.e_phnum));
            let size = phdrs.len() * PHDR_SIZE;
            assert!(size > 0 && size <= MAX_PHDRS_BYTES);
            let end = h.e_phoff.checked_add(size as u64).expect("no overflow");
            assert!(end <= data.len() as u64, "table past EOF");
            // Each entry is the bytes at its offset.
            for (i, p) in phdrs.iter().enumerate() {
                let at = h.e_phoff as usize + i * PHDR_SIZE;
                let raw = &data[at..at + PHDR_SIZE];
                let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
                let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap());
                assert_eq!(p.p_type, u32_at(0));
                assert_eq!(p.p_flags, u32_at(4));
                assert_eq!(p.p_offset, u64_at(8));
                assert_eq!(p.p_vaddr, u64_at(16));
                assert_eq!(p.p_filesz, u64_at(32));
                assert_eq!(p.p_memsz, u64_at(40));
                assert_eq!(p.p_align, u64_at(48));
            }
            // The helpers the layout uses never panic on any phdr values.
            for page in [4096u64, 16384, 65536] {
                // Both rules: since 5.18 and before it.
                let _ = elf::total_mapping_size(&phdrs, page, true);
                let _ = elf::total_mapping_size(&phdrs, page, false);
                let _ = elf::maximum_alignment(&phdrs, page);
                for p in &phdrs {
                    let _ = elf::prot_of(p.p_flags);
                    let _ = page_align(p.p_vaddr, page);
                    let _ = page_offset(p.p_offset, page);
                    let _ = elf::offset_ok(p.p_offset, p.p_filesz);
                }
            }
            // PT_INTERP reads are bounded the way load_elf_binary bounds them.
            for p in phdrs.iter().filter(|p| p.p_type == elf::PT_INTERP) {
                if (2..=4096).contains(&p.p_filesz) {
                    let _ = elf::read_exact(&fs, &node, p.p_offset, p.p_filesz as usize);
                }
            }
        }
        Err(PhdrsError::EntSize) => assert_ne!(usize::from(h.e_phentsize), PHDR_SIZE),
        Err(PhdrsError::Count) => {
            let size = usize::from(h.e_phnum) * PHDR_SIZE;
            assert!(size == 0 || size > MAX_PHDRS_BYTES);
        }
        Err(PhdrsError::Short) => {
            let size = u64::from(h.e_phnum) * PHDR_SIZE as u64;
            assert!(
                h.e_phoff
                    .checked_add(size)
                    .is_none_or(|e| e > data.len() as u64)
                    || !elf::offset_ok(h.e_phoff, size)
            );
        }
    }
});
