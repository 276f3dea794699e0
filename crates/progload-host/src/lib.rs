//! progload on a real Linux host: the host filesystem, the host profile, and the kernel probe.
//!
//! All `unsafe` code of the project lives in this crate.
#![deny(missing_docs)]

pub mod check;
pub mod hostfs;
pub mod probe;
pub mod profile;
pub mod run;

pub use hostfs::{HostFs, HostHandle};
pub use profile::host_profile;
