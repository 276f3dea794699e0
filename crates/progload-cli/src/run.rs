//! `progload run`: replace this process with PROGRAM by a userland exec (no `execve`).

use std::io::Write;
use std::process::ExitCode;

use progload::plan;
use progload_host::run::{default_sigpipe, exec_plan_in_place, RunError};

use crate::args::{prepare, ExecArgs, PrepError, Usage};
use crate::report::report_failure;

fn fail(program: &[u8], e: &RunError) -> ExitCode {
    report_failure(program, e.errno(), e.is_fatal(), &e.to_string(), false)
}

/// Plans `execve(PROGRAM, ...)` and performs it in place. Returns only on failure: 127 when
/// the program is not found, 126 otherwise, 2 for usage errors.
pub fn run(args: &ExecArgs) -> ExitCode {
    if args.user.is_some() || args.no_new_privs {
        eprintln!(
            "progload: run execs as this process: change its credentials first (e.g. setpriv); --user and --no-new-privs are for plan, check and explain"
        );
        return ExitCode::from(2);
    }
    let mut prep = match prepare(args, false) {
        Ok(p) => p,
        Err(PrepError::Usage(Usage(m))) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
        Err(PrepError::Exec(p, e)) => return fail(&p, &RunError::Plan(e)),
    };
    let p = match plan(&prep.fs, &prep.profile, &prep.request, &mut prep.rng) {
        Ok(p) => p,
        // The kernel would run an i386 program; progload run cannot (see
        // exec_plan_in_place): say so rather than the profile's ENOEXEC.
        Err(progload::Error::CompatElf { machine: 3 | 6 }) => {
            return fail(&prep.program, &progload_host::run::i386_refusal())
        }
        Err(e) => return fail(&prep.program, &RunError::Plan(e)),
    };
    // Nothing should be buffered, but a kernel exec would drop it: flush.
    let _ = std::io::stdout().flush();
    // As std::process::Command does for its children: the program starts with the default
    // SIGPIPE action, not the one the Rust runtime set for progload.
    default_sigpipe();
    match exec_plan_in_place(&p) {
        Ok(never) => match never {},
        Err(e) => fail(&prep.program, &e),
    }
}
