//! What the pipeline did, step by step: the material of `progload explain`.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a file was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The program passed to execve.
    Program,
    /// The interpreter named on a `#!` line.
    ScriptInterpreter,
    /// The interpreter of a binfmt_misc rule.
    MiscInterpreter,
    /// The ELF interpreter named by PT_INTERP.
    ElfInterpreter,
}

/// One step the kernel takes for this exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A path was resolved and the file opened for execution.
    Opened {
        /// Why.
        role: Role,
        /// The path as given.
        given: Vec<u8>,
        /// The resolved path inside the root.
        path: Vec<u8>,
        /// Each symbolic link followed: (where the link is, what it points to).
        links: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A binfmt_misc rule matched and rewrote argv.
    MiscRule {
        /// The rule's name.
        name: String,
        /// Its interpreter.
        interpreter: Vec<u8>,
        /// argv after the rewrite.
        argv: Vec<Vec<u8>>,
    },
    /// A `#!` line matched and rewrote argv.
    Script {
        /// The interpreter as written.
        interpreter: Vec<u8>,
        /// The single optional argument.
        argument: Option<Vec<u8>>,
        /// argv after the rewrite.
        argv: Vec<Vec<u8>>,
    },
    /// The ELF loader took the file.
    Elf {
        /// Its path.
        path: Vec<u8>,
        /// ET_EXEC (2) or ET_DYN (3).
        e_type: u16,
        /// Number of program headers.
        phnum: u16,
        /// Its PT_INTERP, if any.
        interpreter: Option<Vec<u8>>,
        /// Executable stack requested by PT_GNU_STACK (`None`: no PT_GNU_STACK).
        exec_stack: Option<bool>,
    },
    /// The point of no return: from here the kernel kills the process on error.
    PointOfNoReturn,
    /// A PT_LOAD was mapped.
    Segment {
        /// The file.
        path: Vec<u8>,
        /// Index in its program header table.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
        /// Where the segment's first byte landed.
        addr: u64,
        /// Its protection.
        prot: crate::prot::Prot,
    },
}

/// Where steps go when the caller asked for them (`plan_traced`); nothing is built otherwise,
/// so `plan()` allocates only what the plan holds.
pub(crate) struct Tracer<'a>(pub(crate) Option<&'a mut Vec<Step>>);

impl Tracer<'_> {
    /// Whether steps are recorded.
    pub(crate) fn on(&self) -> bool {
        self.0.is_some()
    }

    /// Records the step `step` builds, if steps are recorded.
    pub(crate) fn note(&mut self, step: impl FnOnce() -> Step) {
        if let Some(t) = self.0.as_mut() {
            t.push(step());
        }
    }
}
