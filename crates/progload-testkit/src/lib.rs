//! Test support for progload (dev-only, never published).
//!
//! - [`elfbuild`]: a builder for crafted little-endian ELF64 files.
//! - [`progs`]: real programs built with the host `gcc` (cached under the target directory),
//!   and helpers for scripts and executables in temporary directories.
#![deny(missing_docs)]

pub mod elfbuild;
pub mod progs;
