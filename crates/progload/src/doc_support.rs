//! Tiny inputs for documentation examples (not part of the API).

use alloc::vec::Vec;

/// A minimal static x86_64 ET_EXEC at 0x400000 whose code exits with status 0.
pub fn tiny_static_elf() -> Vec<u8> {
    let code: [u8; 12] = [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05, 0, 0, 0];
    let mut f = alloc::vec![0u8; 0x78];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&0x400078u64.to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    ph[16..24].copy_from_slice(&0x400000u64.to_le_bytes()); // p_vaddr
    ph[24..32].copy_from_slice(&0x400000u64.to_le_bytes()); // p_paddr
    ph[32..40].copy_from_slice(&(0x78u64 + 12).to_le_bytes()); // p_filesz
    ph[40..48].copy_from_slice(&(0x78u64 + 12).to_le_bytes()); // p_memsz
    ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(&code);
    f
}
