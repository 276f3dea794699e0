//! progload: `execve` as a library.
//!
//! Given a filesystem, a [`Profile`] (what differs by kernel, CPU and caller) and a
//! [`LoadRequest`] (program, argv, envp), [`plan()`] computes the process image Linux 6.x would
//! build — mappings, brk, vDSO, initial stack bytes, auxv, registers, credentials, comm — as a
//! plain [`Plan`] value, without touching any address space. [`apply()`] then replays a plan into
//! an [`AddressSpace`], such as the [`SimAddressSpace`].
//!
//! ```
//! use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
//! # let elf = progload::doc_support::tiny_static_elf();
//! let mut fs = MemFs::new();
//! fs.add_file(b"/bin/hello", 0o755, elf);
//! let mut profile = Profile::linux_6_18_x86_64();
//! profile.personality |= progload::profile::ADDR_NO_RANDOMIZE;
//! let req = LoadRequest::new("/bin/hello", vec![b"hello".to_vec()], vec![b"A=1".to_vec()]);
//! let plan = plan(&fs, &profile, &req, &mut SeededRng::new(1)).unwrap();
//! assert_eq!(plan.comm, b"hello");
//! assert_eq!(plan.stack.sp % 16, 0);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod apply;
pub mod arch;
pub mod auxv;
pub mod binfmt;
#[doc(hidden)]
pub mod doc_support;
pub mod errno;
pub mod error;
pub mod fs;
pub mod layout;
pub mod plan;
pub mod profile;
pub mod resolve;
pub mod rng;
pub mod stack;
pub mod trace;
pub mod vdso;

pub use apply::{apply, AddressSpace, MapsLine, SimAddressSpace};
pub use errno::Errno;
pub use error::{Error, Result};
pub use fs::{FileKind, FileSystem, MemFs, Metadata};
pub use plan::{plan, plan_traced, Executable, LoadRequest, Plan};
pub use profile::Profile;
pub use rng::SeededRng;
