//! Shared code of the progload fuzz targets: ELF templates and edits, the `plan` target's
//! structured scenario, plan invariants, and literal ports of the kernel's parsers used as
//! differential oracles.

pub mod check;
pub mod elf;
pub mod inputs;
pub mod kernel;
pub mod scenario;
