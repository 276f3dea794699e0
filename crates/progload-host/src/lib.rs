//! progload on a real Linux host.
//!
//! All `unsafe` code of the project lives in this crate.
#![deny(missing_docs)]

pub mod probe;
