//! Binary format handlers, in the kernel's order: binfmt_misc rules, `#!` scripts, ELF.

pub mod elf;
pub mod misc;
pub mod script;

/// `BINPRM_BUF_SIZE`: the bytes of the file a handler sees.
pub const BUF_SIZE: usize = 256;
