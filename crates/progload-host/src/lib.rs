//! progload on a real Linux host: the host filesystem, the host profile, the kernel probe
//! (the oracle), the differential check, and exec in place.
//!
//! All `unsafe` code of the project lives in this crate, in its private `sys` module (safe
//! wrappers over the system calls neither std nor rustix offers safely), each block with a
//! `// SAFETY:` comment; the rest of the crate denies it.
//!
//! # Plan an exec on this machine
//!
//! [`HostFs`] makes a host directory the root of the exec (walked one `openat(O_PATH |
//! O_NOFOLLOW)` at a time by progload's own namei, so it cannot be escaped);
//! [`host_profile`] reads what this kernel, CPU and process would put into an exec.
//!
//! ```
//! use progload::profile::ADDR_NO_RANDOMIZE;
//! use progload::{plan, LoadRequest, SeededRng};
//! use progload_host::{host_profile, HostFs};
//!
//! let fs = HostFs::new("/").unwrap();
//! let mut profile = host_profile().unwrap();
//! profile.personality |= ADDR_NO_RANDOMIZE;
//! let req = LoadRequest::new("/usr/bin/true", vec![b"true".to_vec()], vec![]);
//! let plan = plan(&fs, &profile, &req, &mut SeededRng::new(1)).unwrap();
//! assert!(plan.interpreter.is_some()); // a dynamic PIE on a typical distribution
//! ```
//!
//! # Compare a plan with the kernel
//!
//! [`probe::probe`] execs a program under ptrace and reads the image at its first
//! instruction; [`check::check`] plans the same exec and compares field by field.
//!
//! ```
//! use progload_host::check::{check, CheckRequest, Verdict};
//!
//! let req = CheckRequest {
//!     path: b"/usr/bin/true".to_vec(),
//!     argv: Some(vec![b"true".to_vec()]),
//!     envp: vec![b"A=1".to_vec()],
//!     cwd: "/".into(),
//!     stack_rlimit: None,
//!     misc_rules: vec![],
//!     credentials: None,
//!     personality: 0,
//! };
//! let verdict = check(&req, &progload_host::host_profile().unwrap()).unwrap();
//! assert_eq!(verdict, Verdict::Identical);
//! ```
//!
//! # Exec in place
//!
//! [`run::exec_in_place`] replaces the calling process with the program, without `execve`;
//! [`run::spawn`] does it in a forked child and returns its pid.
//!
//! ```no_run
//! use progload::LoadRequest;
//! use progload_host::{host_profile, HostFs};
//!
//! let fs = HostFs::new("/").unwrap();
//! let req = LoadRequest::new("/usr/bin/echo", vec![b"echo".to_vec(), b"hi".to_vec()], vec![]);
//! let pid = progload_host::run::spawn(&fs, &host_profile().unwrap(), &req).unwrap();
//! # let _ = pid;
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod binfmt_misc;
pub mod check;
pub mod hostfs;
pub mod probe;
mod proc;
pub mod profile;
pub mod run;
#[allow(unsafe_code)]
mod sys;

pub use hostfs::{HostFs, HostHandle};
pub use profile::{host_profile, host_profile_with_compat};
