//! Test support for progload (dev-only, never published).
//!
//! - [`binfmt_misc`]: rules registered with the running kernel for a test.
//! - [`elfbuild`]: a builder for crafted little-endian ELF64 files.
//! - [`mutate`]: structure-aware mutation of executables for the kernel-differential campaign.
//! - [`progs`]: real programs built with the host `gcc` (cached under the target directory),
//!   and helpers for scripts and executables in temporary directories.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod binfmt_misc;
pub mod elfbuild;
pub mod mutate;
pub mod progs;

/// A minimal static x86_64 ET_EXEC at 0x400000 whose code exits with status 0.
pub fn tiny_static_elf() -> Vec<u8> {
    let code: [u8; 12] = [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05, 0, 0, 0];
    let mut f = vec![0u8; 0x78];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(d) = f.get_mut(at..at.saturating_add(bytes.len())) {
            d.copy_from_slice(bytes);
        }
    };
    put(0, b"\x7fELF");
    put(4, &[2, 1, 1]); // ELFCLASS64, little endian, EV_CURRENT
    put(16, &2u16.to_le_bytes()); // ET_EXEC
    put(18, &62u16.to_le_bytes()); // EM_X86_64
    put(20, &1u32.to_le_bytes());
    put(24, &0x400078u64.to_le_bytes()); // e_entry
    put(32, &64u64.to_le_bytes()); // e_phoff
    put(52, &64u16.to_le_bytes()); // e_ehsize
    put(54, &56u16.to_le_bytes()); // e_phentsize
    put(56, &1u16.to_le_bytes()); // e_phnum
    put(64, &1u32.to_le_bytes()); // PT_LOAD
    put(68, &5u32.to_le_bytes()); // R+X
    put(80, &0x400000u64.to_le_bytes()); // p_vaddr
    put(88, &0x400000u64.to_le_bytes()); // p_paddr
    put(96, &0x84u64.to_le_bytes()); // p_filesz
    put(104, &0x84u64.to_le_bytes()); // p_memsz
    put(112, &0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(&code);
    f
}
