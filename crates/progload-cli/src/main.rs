//! `progload`: plan an exec exactly as Linux would, and show it.

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
use progload_host::host_profile;

use crate::args::ExecArgs;
use crate::check::CheckArgs;
use crate::plan::PlanArgs;

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
    Check(Box<CheckArgs>),
    /// Replace this process with PROGRAM as `execve` would, by a userland exec: no execve
    /// call, same pid, the kernel's exact image.
    Run(Box<ExecArgs>),
    /// Tell, step by step, what the kernel does for this exec, and on failure why, with the
    /// errno and a hint.
    Explain(Box<ExecArgs>),
    /// Print a profile (the host's by default) as JSON, for `--profile FILE`.
    Profile {
        /// A preset name (x86_64, aarch64) instead of the host.
        #[arg(long)]
        preset: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Profile { preset } => {
            let p = match preset {
                Some(name) => match Profile::preset(&name) {
                    Some(p) => p,
                    None => {
                        eprintln!("progload: unknown preset {name} (x86_64, aarch64)");
                        return ExitCode::from(2);
                    }
                },
                None => match host_profile() {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("progload: cannot read the host profile: {e}");
                        return ExitCode::from(1);
                    }
                },
            };
            let f = profile_file::ProfileFile::from(&p);
            println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
            ExitCode::SUCCESS
        }
    }
}
