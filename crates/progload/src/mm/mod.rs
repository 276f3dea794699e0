//! The new mm (`mm_struct` after `exec_mmap()`): its VMA model.

pub mod vmas;

pub use vmas::{Backing, Search, Vma, Vmas, HUGE_SIZE};
