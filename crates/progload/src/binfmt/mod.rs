//! Binary format handlers and the handler loop: `search_binary_handler()` and
//! `exec_binprm()` (`fs/exec.c`).
//!
//! The kernel offers the file's first [`BUF_SIZE`] bytes to each handler in turn: binfmt_misc
//! rules ([`misc`]), `#!` scripts ([`script`]), ELF ([`elf`]). The first two make a
//! [`Rewrite`] (an interpreter and argv edits), after which the loop starts over with the
//! interpreter, at most 5 times; ELF ends the loop.

pub mod elf;
pub mod handler;
pub mod misc;
pub mod script;

use alloc::vec::Vec;

pub use handler::{OpenAs, Rewrite, RewriteSource, BUF_SIZE};

use crate::error::{Bytes, Error, Result};
use crate::fs::{read_full, FileSystem};
use crate::profile::{Credentials, Profile};
use crate::resolve::{self, DirPath, Found};
use crate::stack::ArgStrings;
use crate::trace::{Role, Step, Tracer};

use elf::{ElfImage, Header};
use misc::Rule;

/// What the handler loop leaves for the point of no return.
pub(crate) struct Handled<N> {
    /// The ELF finally executed.
    pub elf: ElfImage<N>,
    /// binfmt_misc `P` applied.
    pub preserve_argv0: bool,
    /// binfmt_misc `O`/`C` applied: the program is passed open (`AT_EXECFD`).
    pub execfd: bool,
    /// binfmt_misc `C`: the file whose set-id bits decide the credentials.
    pub credentials_from: Option<Found<N>>,
    /// binfmt_misc `O`/`C`: the file passed open (`bprm->executable`), the one the rule
    /// matched.
    pub executable: Option<Found<N>>,
}

/// Where the handlers resolve paths: the plan's root and the caller's cwd.
pub(crate) struct Dirs<'a, N> {
    /// The root.
    pub root: &'a DirPath<N>,
    /// The working directory.
    pub cwd: &'a DirPath<N>,
}

/// `prepare_binprm()`: the first [`BUF_SIZE`] bytes, zero padded.
fn read_header<F: FileSystem + ?Sized>(fs: &F, f: &Found<F::Node>) -> Result<[u8; BUF_SIZE]> {
    let mut buf = [0u8; BUF_SIZE];
    read_full(fs, &f.node, 0, &mut buf).map_err(|errno| Error::Read {
        path: Bytes(f.path.clone()),
        errno,
    })?;
    Ok(buf)
}

/// Opens the interpreter a rewrite names, the way `open_exec()` does for it (following
/// links), and records it in the trace.
pub(crate) fn open_interpreter<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    dir: &DirPath<F::Node>,
    name: &[u8],
    role: Role,
    trace: &mut Tracer<'_>,
) -> Result<Found<F::Node>> {
    let f = resolve::open_exec_kernel(fs, creds, dir, name)
        .map_err(|problem| Error::path(name, problem))?;
    trace.note(|| Step::Opened {
        role,
        given: name.to_vec(),
        path: f.path.clone(),
        links: f.links.clone(),
    });
    Ok(f)
}

/// Applies `rw` to argv: `argv[0]` replaced by `filename` (kept with `P`), then the argument
/// and the interpreter in front.
fn edit_argv(strings: &mut ArgStrings, rw: &Rewrite, filename: &[u8]) -> Result<()> {
    if !rw.preserve_argv0 {
        strings.remove_arg_zero();
    }
    strings.push_front(filename)?;
    if let Some(arg) = &rw.argument {
        strings.push_front(arg)?;
    }
    strings.push_front(&rw.interpreter)
}

/// The step `progload explain` shows for `rw`, with argv after it.
fn rewrite_step(rw: &Rewrite, strings: &ArgStrings) -> Step {
    let argv: Vec<Vec<u8>> = strings.argv.iter().cloned().collect();
    match &rw.source {
        RewriteSource::Misc(name) => Step::MiscRule {
            name: name.clone(),
            interpreter: rw.interpreter.clone(),
            argv,
        },
        RewriteSource::Script => Step::Script {
            interpreter: rw.interpreter.clone(),
            argument: rw.argument.clone(),
            argv,
        },
    }
}

/// The handler loop for `file` (opened from `filename`, the exec's `bprm->filename`):
/// rewrites argv in `strings` and ends at the ELF that runs. `inaccessible` is an fd exec
/// through a close-on-exec descriptor, which no interpreter can open.
///
/// # Errors
/// ELOOP after 5 rewrites, ENOEXEC when no handler takes a file, a second `O`/`C`, and the
/// errors of each handler and of opening each interpreter.
#[allow(clippy::too_many_arguments)] // the exec's state at this step, as bprm holds it
pub(crate) fn search<F: FileSystem + ?Sized>(
    fs: &F,
    profile: &Profile,
    rules: &[Rule],
    dirs: &Dirs<'_, F::Node>,
    file: Found<F::Node>,
    filename: &[u8],
    inaccessible: bool,
    strings: &mut ArgStrings,
    trace: &mut Tracer<'_>,
) -> Result<Handled<F::Node>> {
    let mut cur = file;
    let mut interp_name = filename.to_vec();
    let (mut preserve_argv0, mut execfd, mut execfd_taken) = (false, false, false);
    let mut credentials_from = None;
    let mut executable = None;
    let mut depth = 0u32;
    loop {
        if depth > 5 {
            return Err(Error::TooManyRewrites);
        }
        depth = depth.saturating_add(1);
        let buf = read_header(fs, &cur)?;
        let rw = if let Some(rule) = misc::find(rules, &buf, &interp_name) {
            rule.rewrite()
        } else {
            match script::parse(&buf) {
                Ok(Some(shebang)) => shebang.rewrite(),
                Err(problem) => return Err(Error::Script(problem)),
                Ok(None) => {
                    let hdr = Header::parse(&buf).ok_or(Error::UnknownFormat)?;
                    let elf = elf::check(fs, profile, dirs.cwd, cur, hdr, trace)?;
                    return Ok(Handled {
                        elf,
                        preserve_argv0,
                        execfd,
                        credentials_from,
                        executable,
                    });
                }
            }
        };
        if inaccessible {
            return Err(Error::PathInaccessible);
        }
        preserve_argv0 |= rw.preserve_argv0;
        execfd |= rw.execfd;
        edit_argv(strings, &rw, &interp_name)?;
        interp_name.clone_from(&rw.interpreter);
        trace.note(|| rewrite_step(&rw, strings));
        let role = match rw.source {
            RewriteSource::Script => Role::ScriptInterpreter,
            RewriteSource::Misc(_) => Role::MiscInterpreter,
        };
        let root_creds;
        let (creds, dir) = match rw.open_as {
            OpenAs::Caller => (&profile.credentials, dirs.cwd),
            OpenAs::Registrant => {
                root_creds = Credentials::root();
                (&root_creds, dirs.root)
            }
        };
        let next = open_interpreter(fs, creds, dir, &rw.interpreter, role, trace)?;
        if rw.credentials_from_program {
            credentials_from = Some(cur.clone());
        }
        if rw.execfd && executable.is_none() {
            executable = Some(cur.clone());
        }
        cur = next;
        if execfd {
            // The program (`bprm->executable`) can be passed once; any later rewrite would
            // need a second one.
            if execfd_taken {
                return Err(Error::SecondExecFd);
            }
            execfd_taken = true;
        }
    }
}
