//! `progload plan`: plan an exec and print the new process image.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use progload::plan;

use crate::args::{prepare, ExecArgs, PrepError, Usage};
use crate::report::{self, fail};
use crate::svg;

#[derive(Args)]
pub(crate) struct PlanArgs {
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
    /// Also draw the planned address space as an SVG picture into FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) exec: ExecArgs,
}

pub(crate) fn run(args: &PlanArgs) -> ExitCode {
    let mut prep = match prepare(&args.exec, true) {
        Ok(p) => p,
        Err(PrepError::Usage(Usage(m))) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
        Err(PrepError::Exec(p, e)) => return fail(&p, &e, args.json),
    };
    match plan(&prep.fs, &prep.profile, &prep.request, &mut prep.rng) {
        Ok(p) => {
            if let Some(file) = &args.svg {
                if let Err(e) = std::fs::write(file, svg::render(&p)) {
                    eprintln!("progload: --svg {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            }
            let mut out = std::io::stdout().lock();
            let text = if args.json {
                report::json(&p).to_string()
            } else {
                report::human(&p)
            };
            let _ = writeln!(out, "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&prep.program, &e, args.json),
    }
}
