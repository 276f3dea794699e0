//! `progload explain`: each step the kernel takes for this exec, in words, and on failure the
//! errno, the exact cause and a concrete hint.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use progload::error::{Bytes, PathProblem, ScriptProblem};
use progload::trace::{Role, Step};
use progload::{plan_traced, Errno, Error};
use serde_json::{json, Value};

use crate::args::{load_profile, prepare, ExecArgs, PrepError, Usage};
use crate::record::bytes_json;
use crate::report::exit_for;

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// Print one JSON object instead of the text: the steps, and the result or the failure
    /// with its errno, cause and hint.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) exec: ExecArgs,
}

/// A byte string as text, control characters and bytes that are not UTF-8 escaped.
fn s(b: &[u8]) -> String {
    Bytes(b.to_vec()).to_string()
}

/// A byte string in double quotes, control characters and bytes that are not UTF-8 escaped
/// (`"/bin/sh\r"`).
fn q(b: &[u8]) -> String {
    format!("\"{}\"", Bytes(b.to_vec()))
}

fn argv_list(argv: &[Vec<u8>]) -> String {
    let items: Vec<String> = argv.iter().map(|a| q(a)).collect();
    format!("[{}]", items.join(", "))
}

/// The architecture an `e_machine` value names.
pub fn machine_name(m: u16) -> &'static str {
    match m {
        3 => "i386",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "32-bit ARM",
        62 => "x86_64",
        183 => "aarch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => "an unknown machine",
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Program => "the program",
        Role::ScriptInterpreter => "the #! interpreter",
        Role::MiscInterpreter => "the binfmt_misc interpreter",
        Role::ElfInterpreter => "the ELF interpreter (PT_INTERP)",
    }
}

/// The steps in words, numbered.
pub fn describe(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let _ = match step {
            Step::Opened { role, given, path, links } => {
                let mut line = format!("{n:>2}. open {} {}", role_name(*role), q(given));
                if given != path {
                    let _ = write!(line, " → {}", s(path));
                }
                for (link, target) in links {
                    let _ = write!(line, "\n      symlink {} -> {}", s(link), s(target));
                }
                writeln!(out, "{line}")
            }
            Step::MiscRule { name, interpreter, argv } => writeln!(
                out,
                "{n:>2}. binfmt_misc rule {} matches: run {}; argv becomes {}",
                q(name.as_bytes()),
                q(interpreter),
                argv_list(argv)
            ),
            Step::Script { interpreter, argument, argv } => writeln!(
                out,
                "{n:>2}. the file starts with \"#!\": interpreter {}{}; argv becomes {}",
                q(interpreter),
                argument.as_ref().map_or_else(String::new, |a| format!(", one argument {}", q(a))),
                argv_list(argv)
            ),
            Step::Elf { path, e_type, phnum, interpreter, exec_stack } => writeln!(
                out,
                "{n:>2}. {} is ELF ({}, {phnum} program headers){}{}",
                s(path),
                match e_type {
                    2 => "ET_EXEC: fixed addresses",
                    3 if interpreter.is_some() => "ET_DYN with an interpreter: a PIE",
                    3 => "ET_DYN without an interpreter: static-PIE or a loader run directly",
                    _ => "unknown type",
                },
                interpreter.as_ref().map_or_else(|| String::from(", no interpreter"), |i| format!(", interpreter {}", q(i))),
                match exec_stack {
                    Some(true) => ", executable stack (PT_GNU_STACK RWX)",
                    Some(false) => "",
                    None => ", no PT_GNU_STACK (non-executable stack on 64-bit)",
                }
            ),
            Step::PointOfNoReturn => writeln!(
                out,
                "{n:>2}. credentials computed; point of no return (errors from here kill the process)"
            ),
            Step::Segment { path, index, vaddr, filesz, memsz, addr, prot: p } => writeln!(
                out,
                "{n:>2}. map PT_LOAD #{index} of {} ({}, p_vaddr {vaddr:#x}, {filesz:#x} bytes from the file, {memsz:#x} in memory) at {addr:#x}",
                s(path),
                p
            ),
        };
    }
    out
}

/// The role of the last file the pipeline was opening when `e` happened.
fn failing_role(steps: &[Step]) -> Role {
    match steps.last() {
        Some(Step::Script { .. }) => Role::ScriptInterpreter,
        Some(Step::MiscRule { .. }) => Role::MiscInterpreter,
        _ => Role::Program,
    }
}

fn path_hint(problem: &PathProblem, raw: &[u8], role: Role, root: &str) -> String {
    let path = &progload::error::Bytes(raw.to_vec()).to_string();
    let inside = if root == "/" {
        String::new()
    } else {
        format!(" in root {root}")
    };
    match problem {
        PathProblem::NotFound(_) if role == Role::ScriptInterpreter && raw.ends_with(b"\r") => format!(
            "the #! line ends in \\r: the file has Windows (CRLF) line endings, so the kernel looks for \"{path}\" (with the carriage return). Convert it: dos2unix, or sed -i 's/\\r$//'"
        ),
        PathProblem::NotFound(c) if role == Role::ScriptInterpreter => format!(
            "the #! line names \"{path}\", which does not exist{inside} (component \"{c}\" is missing): install that interpreter or fix the #! line (e.g. #!/usr/bin/env NAME)"
        ),
        PathProblem::NotFound(c) => format!("\"{path}\" does not exist{inside}: component \"{c}\" is missing"),
        PathProblem::NoExecPermission => format!("{path} has no execute bit that applies: chmod +x {path}"),
        PathProblem::IsDirectory => format!("{path} is a directory, not a program"),
        PathProblem::NotRegular => format!("{path} is a device, FIFO or socket: only regular files can be executed"),
        PathProblem::NoExecMount => format!("{path} is on a filesystem mounted noexec: remount it without noexec or copy the file elsewhere"),
        PathProblem::TooManyLinks => format!("following {path} meets more than 40 symbolic links: there is a symlink loop (check with namei -l {path})"),
        PathProblem::FinalSymlink => format!("{path} is a symbolic link and links were not to be followed (AT_SYMLINK_NOFOLLOW)"),
        PathProblem::NotDirectory(c) => format!("{c:?} is used as a directory in {path} but is not one"),
        PathProblem::SearchDenied(d) => format!("no search (x) permission on directory {d}"),
        PathProblem::ComponentTooLong(_) => "a path component is longer than 255 bytes".into(),
        PathProblem::TooLong => "the path is 4096 bytes or longer".into(),
        PathProblem::Empty => "the path is empty".into(),
        PathProblem::TextBusy => format!("{path} is open for writing by some process; close it first"),
        PathProblem::BadFd => "the file descriptor is not open".into(),
        PathProblem::Filesystem(e) => format!("the filesystem reported {}", e.name()),
    }
}

/// The cause of `e` and a concrete hint.
pub fn hint(e: &Error, steps: &[Step], root: &str) -> String {
    let inside = if root == "/" {
        String::new()
    } else {
        format!(" in root {root}")
    };
    match e {
        Error::Path { path, problem } => path_hint(problem, &path.0, failing_role(steps), root),
        Error::InterpOpen { path, problem: PathProblem::NotFound(_) } => {
            let p = path.to_string();
            let what = if p.contains("musl") {
                "install musl there, or use a glibc build"
            } else if p.contains("ld-linux") {
                "install the matching glibc (libc6 for this architecture) there, or use a static build"
            } else {
                "install it there, or build the program statically"
            };
            format!("the ELF interpreter {p} (PT_INTERP) does not exist{inside}: {what}. The kernel reports this as ENOENT although the program itself exists")
        }
        Error::InterpOpen { path, problem } => {
            format!("the ELF interpreter {path}: {}", path_hint(problem, &path.0, Role::ElfInterpreter, root))
        }
        Error::CompatElf { machine } => format!(
            "this is a 32-bit {} program: Linux loads it through compat_binfmt_elf when 32-bit emulation is available (CONFIG_IA32_EMULATION / AArch32 support); progload plans i386 programs with a profile that describes the compat task (the host's, or `progload profile` of the machine: presets do not), and AArch32 not at all, so this ENOEXEC is progload's limit and the kernel may well run it",
            machine_name(*machine)
        ),
        Error::ElfMachine { found, expected } => format!(
            "this ELF is for {} (e_machine {found}) but the machine is {} (e_machine {expected}): run it under an emulator (qemu-user via a binfmt_misc rule) or use a build for {}",
            machine_name(*found),
            machine_name(*expected),
            machine_name(*expected)
        ),
        Error::ElfType(1) => "this is a relocatable object (ET_REL, a .o file): link it into an executable first".into(),
        Error::ElfType(4) => "this is a core dump (ET_CORE), not a program".into(),
        Error::ElfType(t) => format!("ELF type {t} is neither ET_EXEC nor ET_DYN: not a program"),
        Error::UnknownFormat => "the file is not ELF, has no #! line, and matches no binfmt_misc rule: if it is a shell script, add a first line such as #!/bin/sh".into(),
        Error::Script(ScriptProblem::Truncated) => "the #! line has no newline or blank within the first 256 bytes: the interpreter path would be cut; shorten it (e.g. #!/usr/bin/env NAME)".into(),
        Error::Script(_) => "the #! line names no interpreter".into(),
        Error::TooManyRewrites => "more than 5 interpreters in a row (#! or binfmt_misc): a script probably names itself or a chain of scripts as its interpreter".into(),
        Error::LsmNameLookup(_) => "this kernel's TOMOYO module names the program by /dev/fd/N/PATH and refuses it when that reaches PATH_MAX (4096 bytes): use a shorter path relative to the directory descriptor, or an absolute one (fixed in 6.12, 6.1.113, 5.10.227)".into(),
        Error::PathInaccessible => "the script was opened through a close-on-exec file descriptor, which its interpreter cannot reopen: clear FD_CLOEXEC".into(),
        Error::ArgsTooBig { limit } => format!(
            "argv and envp together exceed {limit} bytes (a quarter of RLIMIT_STACK, at most 6 MiB, at least 128 KiB, minus 8 bytes per pointer): pass fewer or shorter arguments (xargs), trim the environment, or raise ulimit -s"
        ),
        Error::ArgTooLong { limit } => format!("one argument or environment string is longer than {limit} bytes (MAX_ARG_STRLEN); pass it through a file or stdin"),
        Error::InterpBad { path, .. } => format!("the ELF interpreter {path} is not a usable ELF for this machine (ELIBBAD): a wrong or corrupt loader is installed at that path"),
        Error::InterpHeaderShort(p) => format!("the ELF interpreter {p} is shorter than an ELF header (EIO)"),
        Error::PhentSize(_) | Error::PhNum(_) | Error::PhdrsShort { .. } | Error::InterpSize(_) | Error::InterpShort { .. } | Error::InterpNotTerminated => {
            "the ELF headers are corrupt or the file is truncated: re-copy or rebuild it".into()
        }
        other if other.is_fatal() => format!(
            "the kernel accepts the file but fails after the point of no return ({other}); it then kills the process with SIGSEGV"
        ),
        other => other.to_string(),
    }
}

fn role_json(r: Role) -> &'static str {
    match r {
        Role::Program => "program",
        Role::ScriptInterpreter => "script_interpreter",
        Role::MiscInterpreter => "binfmt_misc_interpreter",
        Role::ElfInterpreter => "elf_interpreter",
    }
}

fn list_json(l: &[Vec<u8>]) -> Value {
    l.iter().map(|a| bytes_json(a)).collect()
}

/// The steps as JSON objects, each with its `step` kind; byte strings as in the JSON
/// contract (a string when UTF-8, else `{"hex": ...}`).
pub fn steps_json(steps: &[Step]) -> Vec<Value> {
    steps
        .iter()
        .map(|step| match step {
            Step::Opened { role, given, path, links } => json!({
                "step": "open",
                "role": role_json(*role),
                "given": bytes_json(given),
                "path": bytes_json(path),
                "symlinks": links.iter().map(|(l, t)| json!({"link": bytes_json(l), "target": bytes_json(t)})).collect::<Vec<_>>(),
            }),
            Step::MiscRule { name, interpreter, argv } => json!({
                "step": "binfmt_misc",
                "rule": name,
                "interpreter": bytes_json(interpreter),
                "argv": list_json(argv),
            }),
            Step::Script { interpreter, argument, argv } => json!({
                "step": "script",
                "interpreter": bytes_json(interpreter),
                "argument": argument.as_ref().map(|a| bytes_json(a)),
                "argv": list_json(argv),
            }),
            Step::Elf { path, e_type, phnum, interpreter, exec_stack } => json!({
                "step": "elf",
                "path": bytes_json(path),
                "e_type": e_type,
                "kind": match e_type {
                    2 => "exec",
                    3 if interpreter.is_some() => "pie",
                    3 => "dyn_without_interpreter",
                    _ => "unknown",
                },
                "phnum": phnum,
                "interpreter": interpreter.as_ref().map(|i| bytes_json(i)),
                // null: no PT_GNU_STACK.
                "exec_stack": exec_stack,
            }),
            Step::PointOfNoReturn => json!({"step": "point_of_no_return"}),
            Step::Segment { path, index, vaddr, filesz, memsz, addr, prot } => json!({
                "step": "segment",
                "path": bytes_json(path),
                "index": index,
                "vaddr": vaddr,
                "filesz": filesz,
                "memsz": memsz,
                "addr": addr,
                "prot": prot.to_string(),
            }),
        })
        .collect()
}

/// The failure object of `explain --json`.
fn failure_json(e: &Error, cause: String, hint: String) -> Value {
    let errno = e.errno();
    json!({
        "errno": errno.name(),
        "code": errno.0,
        "text": errno.text(),
        "fatal": e.is_fatal(),
        "cause": cause,
        "hint": hint,
    })
}

pub(crate) fn run(args: &ExplainArgs) -> ExitCode {
    let a = &args.exec;
    let mut prep = match prepare(a, true) {
        Ok(p) => p,
        Err(PrepError::Usage(Usage(m))) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
        Err(PrepError::Exec(p, e)) => {
            let cause = format!("the working directory {} cannot be used: {e}", s(&p));
            if args.json {
                // prepare() read the profile before it resolved the working directory.
                let profile = load_profile(a, true).ok();
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "kernel": profile.as_ref().map(|p| p.kernel.to_string()),
                        "arch": profile.as_ref().map(|p| p.arch.name()),
                        "steps": [],
                        "failure": failure_json(&e, cause, hint(&e, &[], &a.root.display().to_string())),
                    })
                );
            } else {
                println!("{cause}");
            }
            return ExitCode::from(exit_for(&e));
        }
    };
    let root = a.root.display().to_string();
    let mut steps = Vec::new();
    let result = plan_traced(
        &prep.fs,
        &prep.profile,
        &prep.request,
        &mut prep.rng,
        &mut steps,
    );
    if args.json {
        let mut v = json!({
            "ok": result.is_ok(),
            "kernel": prep.profile.kernel.to_string(),
            "arch": prep.profile.arch.name(),
            "steps": steps_json(&steps),
        });
        let code = match &result {
            Ok(p) => {
                v["result"] = json!({
                    "entry": p.entry,
                    "stack_pointer": p.stack.sp,
                    "exe": bytes_json(&p.exe),
                    "interpreter": p.interpreter.as_ref().map(|i| bytes_json(i)),
                    "argv": list_json(&p.argv),
                    "comm": bytes_json(&p.comm),
                    "mappings": p.vmas.len(),
                });
                ExitCode::SUCCESS
            }
            Err(e) => {
                v["failure"] = failure_json(e, e.to_string(), hint(e, &steps, &root));
                ExitCode::from(exit_for(e))
            }
        };
        println!("{v}");
        return code;
    }
    println!(
        "planning for Linux {} on {}",
        prep.profile.kernel,
        prep.profile.arch.name()
    );
    print!("{}", describe(&steps));
    match result {
        Ok(p) => {
            println!(
                "result: the program starts at {:#x} with the stack pointer at {:#x}; comm {}; {} mappings",
                p.entry,
                p.stack.sp,
                q(&p.comm),
                p.vmas.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let errno: Errno = e.errno();
            let fatal = if e.is_fatal() {
                " (fatal: the process is killed with SIGSEGV)"
            } else {
                ""
            };
            println!(
                "failed: execve returns {} ({}){fatal}",
                errno.name(),
                errno.text()
            );
            println!("cause: {e}");
            println!("hint: {}", hint(&e, &steps, &root));
            ExitCode::from(exit_for(&e))
        }
    }
}
