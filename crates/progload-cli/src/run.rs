//! `progload run`: replace this process with PROGRAM by a userland exec (no `execve`).

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use progload::plan;
use progload::FileSystem;
use progload_host::run::{
    default_sigpipe, exec_plan_in_place_with, free_execfd, RunError, RunOptions,
};

use crate::args::{prepare, ExecArgs, PrepError, Usage};
use crate::report::report_failure;

/// The options of `run`: those of `plan` that this process can honour. Not the caller's
/// credentials (`--user`, `--groups`, `--no-new-privs`) nor its stack limit
/// (`--stack-limit`): the program runs as this process, with its ids and its RLIMIT_STACK
/// (change them first: setpriv, prlimit). Not `--profile` either: the program runs on this
/// kernel.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// Host directory that becomes the program's `/`, as after `chroot DIR`: PROGRAM, its
    /// interpreters and every file the program opens later are found in it. A caller without
    /// CAP_SYS_CHROOT enters it in a new user and mount namespace (its uid and gid mapped to
    /// themselves).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Working directory inside the root: relative paths resolve from it, and the program
    /// starts in it (default: the current directory when the root is `/`, else `/`).
    #[arg(long, value_name = "DIR")]
    cwd: Option<OsString>,
    /// Replace argv[0] (default: PROGRAM as given).
    #[arg(long, value_name = "NAME")]
    argv0: Option<OsString>,
    /// Start from an empty environment instead of inheriting this one.
    #[arg(long)]
    env_clear: bool,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<OsString>,
    /// Run as under `setarch -R` (personality ADDR_NO_RANDOMIZE, which the program keeps).
    #[arg(long)]
    no_randomize: bool,
    /// Seed the randomness (layout entropy and AT_RANDOM) for a reproducible layout.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The 16 AT_RANDOM bytes as 32 hex digits.
    #[arg(long, value_name = "HEX32")]
    random_bytes: Option<String>,
    /// Refused: run plans with this host's profile (it runs the program on this kernel).
    #[arg(long, value_name = "FILE|PRESET", hide = true)]
    profile: Option<String>,
    /// A binfmt_misc rule `:name:type:offset:magic:mask:interpreter:flags` (repeatable;
    /// later rules win, as newer registrations do), after the rules registered in
    /// /proc/sys/fs/binfmt_misc: the program runs through its interpreter as if the rule
    /// were registered.
    #[arg(long = "binfmt-misc", value_name = "RULE")]
    misc: Vec<OsString>,
    /// Look PROGRAM up in $PATH when it has no `/` (as execvp does).
    #[arg(long)]
    path_search: bool,
    /// The program to execute and its arguments. Everything from PROGRAM on belongs to the
    /// program, options included (as with `env` or `setarch`).
    #[arg(value_name = "PROGRAM [ARGS]", required = true, num_args = 1.., trailing_var_arg = true)]
    command: Vec<OsString>,
}

impl RunArgs {
    /// The options as `plan` takes them: the caller as this process is.
    fn exec_args(&self) -> ExecArgs {
        ExecArgs {
            root: self.root.clone().unwrap_or_else(|| PathBuf::from("/")),
            cwd: self.cwd.clone(),
            argv0: self.argv0.clone(),
            env_clear: self.env_clear,
            env: self.env.clone(),
            no_randomize: self.no_randomize,
            seed: self.seed,
            random_bytes: self.random_bytes.clone(),
            profile: None,
            stack_limit: None,
            misc: self.misc.clone(),
            path_search: self.path_search,
            user: None,
            groups: None,
            no_new_privs: false,
            command: self.command.clone(),
        }
    }
}

fn fail(program: &[u8], e: &RunError) -> ExitCode {
    report_failure(program, e.errno(), e.is_fatal(), &e.to_string(), false)
}

/// Plans `execve(PROGRAM, ...)` and performs it in place. Returns only on failure: 127 when
/// the program is not found, 126 otherwise, 2 for usage errors.
pub(crate) fn run(args: &RunArgs) -> ExitCode {
    if let Some(p) = &args.profile {
        eprintln!(
            "progload: run --profile {p}: run needs the host profile, because it runs the program on this kernel (plan, check and explain take --profile)"
        );
        return ExitCode::from(2);
    }
    let a = args.exec_args();
    let mut prep = match prepare(&a, false) {
        Ok(p) => p,
        Err(PrepError::Usage(Usage(m))) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
        Err(PrepError::Exec(p, e)) => return fail(&p, &RunError::Plan(e)),
    };
    // binfmt_misc O/C: AT_EXECFD is the lowest descriptor the program does not inherit.
    prep.request.execfd = free_execfd();
    let p = match plan(&prep.fs, &prep.profile, &prep.request, &mut prep.rng) {
        Ok(p) => p,
        // The kernel would run an i386 program; progload run cannot (see
        // exec_plan_in_place): say so rather than the profile's ENOEXEC.
        Err(progload::Error::CompatElf { machine: 3 | 6 }) => {
            return fail(&prep.program, &progload_host::run::i386_refusal())
        }
        Err(e) => return fail(&prep.program, &RunError::Plan(e)),
    };
    // The plan resolved PROGRAM from the working directory the options name: the program
    // starts there too, as it would after `cd DIR` and an exec, and with --root in that root
    // (the directories the plan resolved, entered through their descriptors).
    let root = prep.fs.root();
    let options = RunOptions {
        root: args.root.is_some().then(|| root.as_fd()),
        cwd: if a.cwd.is_some() || args.root.is_some() {
            prep.request.cwd.as_ref().map(|c| c.node().as_fd())
        } else {
            None
        },
    };
    // Nothing should be buffered, but a kernel exec would drop it: flush.
    let _ = std::io::stdout().flush();
    // As std::process::Command does for its children: the program starts with the default
    // SIGPIPE action, not the one the Rust runtime set for progload.
    default_sigpipe();
    match exec_plan_in_place_with(&p, &options) {
        Ok(never) => match never {},
        Err(e) => fail(&prep.program, &e),
    }
}
