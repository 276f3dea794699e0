//! Test support for progload.
