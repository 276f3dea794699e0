//! progload: `execve` as a library.
//!
//! Given a filesystem, a [`Profile`] (what differs by kernel, CPU and caller) and a
//! [`LoadRequest`] (program, argv, envp), [`plan()`] computes the process image Linux 6.x would
//! build — mappings, brk, vDSO, initial stack bytes, auxv, registers, credentials, comm — as a
//! plain [`Plan`] value, without touching any address space. [`apply()`] then replays a plan into
//! an [`AddressSpace`], such as the [`SimAddressSpace`].
//!
//! The crate is `#![no_std]` (with `alloc`) and `#![forbid(unsafe_code)]`; it never panics on
//! file contents and allocates at most what the kernel's own limits allow. The host side (a
//! real filesystem as a root, the host's profile, the kernel oracle, exec in place) is the
//! `progload-host` crate.
//!
//! # Guide
//!
//! ## Plan an exec and inspect it
//!
//! ```
//! use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
//! # let elf = progload_testkit::tiny_static_elf();
//! let mut fs = MemFs::new();
//! fs.add_file(b"/bin/hello", 0o755, elf);
//! let mut profile = Profile::linux_6_18_x86_64();
//! profile.personality |= progload::profile::ADDR_NO_RANDOMIZE; // as `setarch -R`
//! let req = LoadRequest::new("/bin/hello", vec![b"hello".to_vec()], vec![b"A=1".to_vec()]);
//! let plan = plan(&fs, &profile, &req, &mut SeededRng::new(1)).unwrap();
//!
//! assert_eq!(plan.comm, b"hello");
//! assert_eq!(plan.entry, 0x400078); // e_entry of this ET_EXEC
//! assert_eq!(plan.stack.sp % 16, 0);
//! for line in plan.maps() {
//!     println!("{}", line.render()); // exactly as /proc/PID/maps at the first instruction
//! }
//! let at_entry = plan.auxv.iter().find(|a| a.0 == progload::auxv::AT_ENTRY);
//! assert_eq!(at_entry, Some(&(progload::auxv::AT_ENTRY, 0x400078)));
//! ```
//!
//! ## Errors carry the kernel's errno
//!
//! Every [`Error`] knows the errno `execve` returns, and whether the kernel would meet it only
//! after the point of no return, where it kills the process instead ([`Error::is_fatal`]).
//!
//! ```
//! use progload::{plan, Errno, LoadRequest, MemFs, Profile, SeededRng};
//! let mut fs = MemFs::new();
//! fs.add_file(b"/script", 0o755, &b"#!/no/such/interpreter\n"[..]);
//! fs.add_file(b"/notes.txt", 0o644, &b"hello\n"[..]);
//! let profile = Profile::linux_6_18_x86_64();
//! let run = |path: &str| {
//!     let req = LoadRequest::new(path, vec![path.as_bytes().to_vec()], vec![]);
//!     plan(&fs, &profile, &req, &mut SeededRng::new(0)).map(|_| ()).map_err(|e| e.errno())
//! };
//! assert_eq!(run("/script"), Err(Errno::ENOENT)); // the interpreter is missing
//! assert_eq!(run("/notes.txt"), Err(Errno::EACCES)); // no execute bit
//! assert_eq!(run("/missing"), Err(Errno::ENOENT));
//! ```
//!
//! ## Load it into the simulated address space
//!
//! [`SimAddressSpace`] records mappings and the bytes the loader writes (never copies of file
//! contents) and renders /proc/PID/maps; [`SimAddressSpace::load`] is atomic.
//!
//! ```
//! use progload::{plan, LoadRequest, MemFs, Profile, SeededRng, SimAddressSpace};
//! # let elf = progload_testkit::tiny_static_elf();
//! let mut fs = MemFs::new();
//! fs.add_file(b"/bin/hello", 0o755, elf);
//! let profile = Profile::linux_6_18_x86_64(); // randomized: the seed picks the layout
//! let req = LoadRequest::new("/bin/hello", vec![b"hello".to_vec()], vec![]);
//! let plan = plan(&fs, &profile, &req, &mut SeededRng::new(7)).unwrap();
//! let mut space = SimAddressSpace::new();
//! space.load(&plan).unwrap();
//! let mut argc = [0u8; 8];
//! space.read_written(plan.stack.sp, &mut argc);
//! assert_eq!(u64::from_le_bytes(argc), 1);
//! assert_eq!(space.vmas().len(), plan.vmas.len());
//! ```
//!
//! ## Bring your own filesystem and address space
//!
//! A filesystem implements [`FileSystem`] — five calls, one directory entry at a time
//! (`root`, `lookup`, `metadata`, `readlink`, `read_at`); the core walks paths itself, with
//! Linux's namei rules, so no implementation can be escaped. An address space implements
//! [`AddressSpace`] (`reset`, `map_file`, `map_anon`, `write`, `zero`) and receives only
//! fixed, page-aligned addresses. `examples/emulator.rs` is a complete emulator-style
//! backend: a filesystem of its own and a flat guest memory that copies file pages in, as an
//! emulator would; run it with `cargo run -p progload --example emulator`.
//!
//! ## Plan for another machine
//!
//! A [`Profile`] holds everything that varies by kernel build, CPU and calling process
//! (architecture, page size, hwcaps, vDSO, stack limit, credentials, randomization...).
//! Presets plan for Linux 6.18 on x86_64 and aarch64 from any host; `progload-host`'s
//! `host_profile()` reads the host's own.
//!
//! ```
//! use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
//! # let mut elf = progload_testkit::tiny_static_elf();
//! # elf[18] = 183; // e_machine = EM_AARCH64
//! let mut fs = MemFs::new();
//! fs.add_file(b"/bin/arm", 0o755, elf);
//! let mut profile = Profile::linux_6_18_aarch64();
//! profile.personality |= progload::profile::ADDR_NO_RANDOMIZE;
//! let req = LoadRequest::new("/bin/arm", vec![b"arm".to_vec()], vec![]);
//! let plan = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
//! assert_eq!(plan.stack.top, 1 << 48); // arm64 STACK_TOP
//! ```
//!
//! ## Exec in place
//!
//! Replacing the calling process with a plan, without `execve`, is
//! `progload_host::run::exec_in_place` (x86_64 Linux); `spawn` does it in a forked child.
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
pub mod contract;
pub mod creds;
pub mod errno;
pub mod error;
pub mod fs;
pub mod mm;
pub mod plan;
pub mod profile;
pub mod prot;
pub mod request;
pub mod resolve;
pub mod rng;
pub mod stack;
pub mod trace;
pub mod vdso;

pub use apply::{apply, AddressSpace, MapsLine, SimAddressSpace};
pub use contract::PlanRecord;
pub use errno::Errno;
pub use error::{Error, Result};
pub use fs::{FileKind, FileSystem, MemFs, Metadata};
pub use plan::{plan, plan_traced, Executable, LoadRequest, LoadRequestBuilder, Plan};
pub use profile::Profile;
pub use prot::Prot;
/// The `rand_core` whose [`rand_core::Rng`] [`plan()`] takes (any RNG of `rand` 0.10 is one).
pub use rand_core;
pub use rng::SeededRng;
