//! `progload`: plan an exec exactly as Linux would, and show it.

#![forbid(unsafe_code)]

mod args;
mod check;
mod explain;
mod plan;
mod profile_file;
mod record;
mod report;
mod run;
mod svg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use progload::profile::Profile;

use crate::args::ExecArgs;
use crate::check::CheckArgs;
use crate::explain::ExplainArgs;
use crate::plan::PlanArgs;
use crate::run::RunArgs;

#[derive(Parser)]
#[command(
    name = "progload",
    version,
    about = "execve as a library: plan the exact process image Linux would build"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plan `execve(PROGRAM, [PROGRAM, ARGS...], env)` and print the new process image.
    Plan(Box<PlanArgs>),
    /// Exec PROGRAM under ptrace (ADDR_NO_RANDOMIZE, stopped at its first instruction) and
    /// compare the kernel's image with the plan, field by field. Exit 0 only when identical.
    /// With `--sweep`, the operands are directories and every executable file under them is
    /// checked.
    #[command(override_usage = "progload check [OPTIONS] PROGRAM [ARGS]...\n       \
                                progload check --sweep [OPTIONS] DIR...\n       \
                                progload check --replay [OPTIONS] DIR...")]
    Check(Box<CheckArgs>),
    /// Replace this process with PROGRAM as `execve` would, by a userland exec: no execve
    /// call, same pid, the kernel's exact image.
    Run(Box<RunArgs>),
    /// Tell, step by step, what the kernel does for this exec, and on failure why, with the
    /// errno and a hint.
    Explain(Box<ExplainArgs>),
    /// Print a profile (the host's by default) as JSON, for `--profile FILE`.
    ///
    /// A preset (`--preset`) knows what follows from a kernel release and architecture with
    /// the configuration Debian builds that kernel with. It cannot know what depends on the
    /// machine: the CPU's hwcaps (AT_HWCAP, AT_HWCAP2, AT_HWCAP3) and platform string, the
    /// signal frame size (AT_MINSIGSTKSZ), riscv64's cache sizes, the exact vDSO image of the
    /// build (a placeholder of the right size stands in for it), the caller's stack limit and
    /// credentials (8 MiB, root), the sysctls (their defaults), whether the TOMOYO security
    /// module is active (Debian's kernels: yes), the memory and overcommit policy (absent: no
    /// mapping is refused) and the compat (ia32) part (absent: 32-bit programs are not
    /// modelled). The profile printed on a machine carries all of them: plan for that machine
    /// with it.
    Profile {
        /// A preset instead of the host: x86_64-5.10, x86_64-6.1, x86_64-6.12, x86_64-6.18,
        /// aarch64-5.10, aarch64-6.1, aarch64-6.12, aarch64-6.18, riscv64-6.12 (sv57 paging, as
        /// under qemu), riscv64-6.12-sv48, riscv64-6.12-sv39; x86_64 and aarch64 (arm64) name
        /// the newest.
        #[arg(long)]
        preset: Option<String>,
        /// Compare the profile with the one in FILE (a machine's `progload profile`) in every
        /// field a preset can know, print the differences, and exit 1 if there are any.
        #[arg(long, value_name = "FILE")]
        compare: Option<std::path::PathBuf>,
    },
}

/// A one-line warning for each ARG after PROGRAM that names an option of the subcommand
/// (`progload plan ls --svg x.svg`): everything from PROGRAM on belongs to the program, so it
/// is not progload's option. Not for `run`, whose programs take such words as their own.
fn warn_options_after_program(sub: &str, a: &ExecArgs) {
    use clap::CommandFactory;
    let cli = Cli::command();
    let Some(cmd) = cli.find_subcommand(sub) else {
        return;
    };
    let longs: Vec<&str> = cmd.get_arguments().filter_map(|o| o.get_long()).collect();
    for arg in a.args() {
        let Some(name) = arg.to_str().and_then(|s| s.strip_prefix("--")) else {
            continue;
        };
        let name = name.split('=').next().unwrap_or(name);
        if longs.contains(&name) {
            eprintln!(
                "progload: warning: --{name} comes after PROGRAM, so it is an argument of the program, not an option of progload (put it before PROGRAM)"
            );
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Like other command-line tools, end quietly when the reader of the output goes away
    // (`progload explain ... | head`) rather than failing on EPIPE; `run` gives the program
    // the default action itself.
    if !matches!(cli.command, Command::Run(_)) {
        progload_host::run::default_sigpipe();
    }
    match &cli.command {
        Command::Plan(a) => warn_options_after_program("plan", &a.exec),
        Command::Check(a) => warn_options_after_program("check", &a.exec_args()),
        Command::Explain(a) => warn_options_after_program("explain", &a.exec),
        Command::Run(_) | Command::Profile { .. } => {}
    }
    match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Profile { preset, compare } => {
            let p = match preset {
                Some(name) => match Profile::preset(&name) {
                    Some(p) => p,
                    None => {
                        eprintln!(
                            "progload: unknown preset {name} (one of {})",
                            Profile::preset_names().join(", ")
                        );
                        return ExitCode::from(2);
                    }
                },
                None => match progload_host::host_profile_with_compat() {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("progload: cannot read the host profile: {e}");
                        return ExitCode::from(1);
                    }
                },
            };
            if let Some(file) = compare {
                return profile_file::compare(&p, &file);
            }
            let f = profile_file::ProfileFile::from(&p);
            println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
            ExitCode::SUCCESS
        }
    }
}
