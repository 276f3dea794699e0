//! What a format handler sees and what an interpreter handler returns: the header buffer
//! (`bprm->buf`) and the [`Rewrite`] a `#!` line or a binfmt_misc rule makes of the exec.

use alloc::string::String;
use alloc::vec::Vec;

/// `BINPRM_BUF_SIZE`: the bytes of the file a handler sees.
pub const BUF_SIZE: usize = 256;

/// Whose permissions, root and cwd open a rewrite's interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAs {
    /// The caller's, relative to its cwd (`open_exec()` in the handler).
    Caller,
    /// The registrant's: binfmt_misc `F` opened the interpreter when the rule was written.
    /// Modelled as root, from the plan's root.
    Registrant,
}

/// Which handler made a rewrite (what `progload explain` tells).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteSource {
    /// A `#!` line (`load_script()`).
    Script,
    /// The binfmt_misc rule of this name (`load_misc_binary()`).
    Misc(String),
}

/// An interpreter rewrite: the handler's argv edits and the interpreter it runs instead.
///
/// Applied to argv as both handlers do: `argv[0]` is replaced by the filename (kept with
/// binfmt_misc `P`), then the optional argument and the interpreter are put in front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Who made it.
    pub source: RewriteSource,
    /// The interpreter to run, as written.
    pub interpreter: Vec<u8>,
    /// The single optional argument of a `#!` line.
    pub argument: Option<Vec<u8>>,
    /// binfmt_misc `P`: `argv[0]` is kept and `AT_FLAGS_PRESERVE_ARGV0` set.
    pub preserve_argv0: bool,
    /// Whose permissions open the interpreter.
    pub open_as: OpenAs,
    /// binfmt_misc `O`/`C`: the program is passed as an open descriptor (`AT_EXECFD`).
    pub execfd: bool,
    /// binfmt_misc `C`: the credentials come from the program, not the interpreter.
    pub credentials_from_program: bool,
}
