//! `progload check`: the plan against the live kernel, for one program or a sweep.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::Args;
use progload_host::check::{
    check, check_recorded, verdict, CheckRequest, Judge, KernelOutcome, PlanOutcome, Verdict,
};
use serde_json::json;

use crate::args::{caller, environment, load_profile, ExecArgs, Usage};

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Print JSON instead of the report.
    #[arg(long)]
    pub(crate) json: bool,
    /// Check every executable regular file under the directories given as operands.
    #[arg(long)]
    pub(crate) sweep: bool,
    /// Parallel checks in a sweep.
    #[arg(long, default_value_t = 2, requires = "sweep")]
    pub(crate) jobs: usize,
    /// With --sweep: also write each exec's request and the kernel's outcome (its whole image
    /// at the first instruction) into DIR, one JSON file per program, for --replay.
    #[arg(long, value_name = "DIR", requires = "sweep")]
    pub(crate) record: Option<PathBuf>,
    /// Judge plans against recorded kernel outcomes instead of the live kernel: the operands
    /// are directories written by --record. Plan with the recording machine's profile
    /// (--profile FILE) and files (--root DIR); the requests are the recorded ones.
    #[arg(long, conflicts_with_all = [
        "sweep", "cwd", "argv0", "env_clear", "env", "stack_limit", "misc", "user", "groups",
        "no_new_privs",
    ])]
    pub(crate) replay: bool,
    #[command(flatten)]
    pub(crate) exec: CheckExecArgs,
}

/// The exec options of `check`: those of `plan` that the kernel's exec is given too. Not the
/// randomness (`--no-randomize`, `--seed`, `--random-bytes`): the kernel's exec runs with
/// ADDR_NO_RANDOMIZE and draws its own AT_RANDOM bytes; nor `--path-search`: the kernel gets
/// PROGRAM as given.
#[derive(Args)]
pub(crate) struct CheckExecArgs {
    /// With --replay: the host directory holding the recording machine's files, used as `/`
    /// for the plans (default `/`). A live check runs the kernel's exec in this process's root.
    #[arg(long, value_name = "DIR", requires = "replay")]
    root: Option<PathBuf>,
    /// The working directory of the exec, for both the kernel and the plan (default: the
    /// current directory).
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
    /// The profile the plan is made with: a preset name (x86_64, aarch64) or a JSON file (see
    /// `progload profile`). Default: this host.
    #[arg(long, value_name = "FILE|PRESET")]
    profile: Option<String>,
    /// RLIMIT_STACK for the kernel's exec and the plan, in bytes or `unlimited` (default:
    /// this process's).
    #[arg(long, value_name = "BYTES")]
    stack_limit: Option<String>,
    /// A binfmt_misc rule `:name:type:offset:magic:mask:interpreter:flags` that this kernel
    /// has registered (repeatable). The kernel's exec uses every registered rule, and so does
    /// the plan: a rule the kernel does not have is refused.
    #[arg(long = "binfmt-misc", value_name = "RULE")]
    misc: Vec<OsString>,
    /// Exec for another caller, in the kernel and in the plan: `UID[:GID]` sets the real and
    /// effective ids, or `UID,EUID[:GID,EGID]` sets them apart (numbers only).
    #[arg(long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// The caller's supplementary groups, comma-separated (with --user; default none).
    #[arg(long, value_name = "GID,...", requires = "user")]
    groups: Option<String>,
    /// The caller sets PR_SET_NO_NEW_PRIVS before the exec (set-id bits are then ignored).
    #[arg(long)]
    no_new_privs: bool,
    /// The program to execute and its arguments (with --sweep or --replay: directories).
    /// Everything from PROGRAM on belongs to the program, options included (as with `env` or
    /// `setarch`).
    #[arg(
        value_name = "PROGRAM [ARGS] | DIR",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    command: Vec<OsString>,
}

impl CheckArgs {
    /// The exec options as `plan` takes them, the randomness and the PATH search left at
    /// their defaults.
    pub(crate) fn exec_args(&self) -> ExecArgs {
        let e = &self.exec;
        ExecArgs {
            root: e.root.clone().unwrap_or_else(|| PathBuf::from("/")),
            cwd: e.cwd.clone(),
            argv0: e.argv0.clone(),
            env_clear: e.env_clear,
            env: e.env.clone(),
            no_randomize: false,
            seed: None,
            random_bytes: None,
            profile: e.profile.clone(),
            stack_limit: e.stack_limit.clone(),
            misc: e.misc.clone(),
            path_search: false,
            user: e.user.clone(),
            groups: e.groups.clone(),
            no_new_privs: e.no_new_privs,
            command: e.command.clone(),
        }
    }
}

fn request(a: &ExecArgs, path: Vec<u8>, args: &[Vec<u8>]) -> Result<CheckRequest, Usage> {
    // `--root` is for --replay only (clap sees to it): the kernel's exec runs in this
    // process's root.
    let cwd = match &a.cwd {
        Some(c) => PathBuf::from(c),
        None => std::env::current_dir().map_err(|e| Usage(format!("current directory: {e}")))?,
    };
    let mut argv = vec![a
        .argv0
        .as_ref()
        .map_or_else(|| path.clone(), |s| s.as_bytes().to_vec())];
    argv.extend(args.iter().cloned());
    let stack_rlimit = match &a.stack_limit {
        None => None,
        Some(s) if s == "unlimited" || s == "infinity" => Some(None),
        Some(s) => {
            Some(Some(s.parse().map_err(|_| {
                Usage(format!("--stack-limit {s}: not a number"))
            })?))
        }
    };
    // The kernel's exec uses the rules registered with it, and only those: `check()` gives
    // them to the plan, so a rule given here must be one of them.
    let mut misc_rules = Vec::new();
    let registered = if a.misc.is_empty() {
        Vec::new()
    } else {
        progload_host::binfmt_misc::registered_rules()
            .map_err(|e| Usage(format!("the host's binfmt_misc rules: {e}")))?
    };
    for r in &a.misc {
        let rule = progload::binfmt::misc::Rule::parse(r.as_bytes())
            .map_err(|e| Usage(format!("--binfmt-misc: {e}")))?;
        if !registered.contains(&rule) {
            return Err(Usage(format!(
                "--binfmt-misc {}: this kernel has no such rule registered, and check compares \
                 with the kernel's exec, which uses only its registered rules (register it with \
                 `echo '{}' > {}/register`, or plan it without check)",
                rule.name,
                r.to_string_lossy(),
                progload_host::binfmt_misc::MOUNT
            )));
        }
        misc_rules.push(rule);
    }
    Ok(CheckRequest {
        path,
        argv: Some(argv),
        envp: environment(a),
        cwd,
        stack_rlimit,
        misc_rules,
        personality: 0,
        credentials: caller(a, &load_profile(a, true)?.credentials)?,
    })
}

fn verdict_json(v: &Verdict) -> serde_json::Value {
    match v {
        Verdict::Identical => json!({"verdict": "identical"}),
        Verdict::IdenticalModuloRandomization => {
            json!({"verdict": "identical_modulo_randomization"})
        }
        Verdict::SameErrno(e) => json!({"verdict": "same_errno", "errno": e.name()}),
        Verdict::BothFatal => json!({"verdict": "both_fatal"}),
        Verdict::NotModelled { why, kernel } => {
            json!({"verdict": "not_modelled", "why": why, "kernel_outcome": kernel_json(kernel)})
        }
        Verdict::Differ(d) => {
            json!({"verdict": "differ", "differences": d.iter().map(|x| json!({"field": x.field, "kernel": x.kernel, "plan": x.plan})).collect::<Vec<_>>()})
        }
        Verdict::Mismatch(k, p) => {
            json!({"verdict": "mismatch", "kernel_outcome": kernel_json(k), "plan_outcome": plan_json(p)})
        }
    }
}

/// `{"outcome": "ran"}`, `{"outcome": "refused", "errno": "ENOEXEC"}`,
/// `{"outcome": "killed", "signal": 11}`.
fn kernel_json(k: &KernelOutcome) -> serde_json::Value {
    match k {
        KernelOutcome::Ran => json!({"outcome": "ran"}),
        KernelOutcome::Refused(e) => json!({"outcome": "refused", "errno": e.name()}),
        KernelOutcome::Killed(s) => json!({"outcome": "killed", "signal": s}),
    }
}

/// `{"outcome": "planned"}` or `{"outcome": "failed", "errno": "EINVAL", "fatal": true,
/// "error": "..."}`.
fn plan_json(p: &PlanOutcome) -> serde_json::Value {
    match p {
        PlanOutcome::Planned => json!({"outcome": "planned"}),
        PlanOutcome::Failed(e, fatal, why) => {
            json!({"outcome": "failed", "errno": e.name(), "fatal": fatal, "error": why})
        }
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Identical => "identical".into(),
        Verdict::IdenticalModuloRandomization => {
            "identical (the exec is set-id, so the kernel randomizes it: compared all but the random addresses)".into()
        }
        Verdict::SameErrno(e) => format!("identical: both refuse with {} ({})", e.name(), e.text()),
        Verdict::BothFatal => "identical: both kill the process after the point of no return (SIGSEGV)".into(),
        Verdict::Differ(d) => {
            let mut s = format!("{} fields differ:", d.len());
            for x in d {
                s.push_str(&format!("\n  {x}"));
            }
            s
        }
        Verdict::Mismatch(k, p) => format!("outcomes differ: the kernel {k}; the plan {p}"),
        Verdict::NotModelled { why, kernel } => format!("not modelled: {why} (the kernel {kernel})"),
    }
}

/// The kernel a check compares against (the live one, as the profile names it).
fn kernel_line(p: &progload::Profile) -> String {
    format!("kernel: Linux {} on {}", p.kernel, p.arch.name())
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let exec = args.exec_args();
    let profile = match load_profile(&exec, true) {
        Ok(p) => p,
        Err(Usage(m)) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
    };
    if args.sweep {
        return sweep(args, &exec, &profile);
    }
    if args.replay {
        return replay(args, &exec, &profile);
    }
    let a = &exec;
    let rest: Vec<Vec<u8>> = a.args().iter().map(|s| s.as_bytes().to_vec()).collect();
    let req = match request(a, a.program().as_bytes().to_vec(), &rest) {
        Ok(r) => r,
        Err(Usage(m)) => {
            eprintln!("progload: {m}");
            return ExitCode::from(2);
        }
    };
    match check(&req, &profile) {
        Ok(v) => {
            if args.json {
                let mut j = verdict_json(&v);
                j["kernel"] = json!(profile.kernel.to_string());
                j["arch"] = json!(profile.arch.name());
                println!("{j}");
            } else {
                println!("{}", kernel_line(&profile));
                println!("{}", verdict_text(&v));
            }
            if v.agrees() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("progload: check failed: {e}");
            ExitCode::from(2)
        }
    }
}

/// Every regular file with an execute bit under `dir` (symlinks not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            if e.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
            {
                out.push(p);
            }
        }
    }
}

fn sweep(args: &CheckArgs, a: &ExecArgs, profile: &progload::Profile) -> ExitCode {
    let mut files = Vec::new();
    for d in &a.command {
        // Each argument must be a directory: a missing one or a file is a usage error, not
        // "0 files".
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => walk(Path::new(d), &mut files),
            Ok(_) => {
                eprintln!(
                    "progload: check --sweep takes directories: {} is not one (check it without --sweep)",
                    Path::new(d).display()
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("progload: check --sweep {}: {e}", Path::new(d).display());
                return ExitCode::from(2);
            }
        }
    }
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(PathBuf, Result<Verdict, String>)>> = Mutex::new(Vec::new());
    let tty = std::io::stderr().is_terminal() && !args.json;
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let r = request(a, f.as_os_str().as_bytes().to_vec(), &[])
                    .map_err(|Usage(m)| m)
                    .and_then(|req| match &args.record {
                        None => check(&req, profile).map_err(|e| e.to_string()),
                        Some(dir) => check_and_record(&req, profile, dir, i),
                    });
                let mut res = results.lock().unwrap_or_else(|e| e.into_inner());
                res.push((f.clone(), r));
                if tty {
                    eprint!("\r\x1b[K[{}/{}] {}", res.len(), files.len(), f.display());
                }
            });
        }
    });
    if tty {
        eprintln!();
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    summarize(args, results, started)
}

/// [`check_recorded`], then the request and the kernel's outcome written to `dir/NNNNN.json`.
fn check_and_record(
    req: &CheckRequest,
    profile: &progload::Profile,
    dir: &Path,
    index: usize,
) -> Result<Verdict, String> {
    let (v, outcome) = check_recorded(req, profile).map_err(|e| e.to_string())?;
    let traces = progload_host::profile::can_trace_set_id().map_err(|e| e.to_string())?;
    let rec = crate::record::record_json(req, &profile.kernel.to_string(), traces, &outcome);
    let file = dir.join(format!("{index:05}.json"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&file, rec.to_string()))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(v)
}

/// `check --replay DIR...`: every recorded exec judged against a plan from `profile` over
/// `--root`.
fn replay(args: &CheckArgs, a: &ExecArgs, profile: &progload::Profile) -> ExitCode {
    let fs = match progload_host::HostFs::new(&a.root) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("progload: --root {}: {e}", a.root.display());
            return ExitCode::from(2);
        }
    };
    let mut files = Vec::new();
    for d in &a.command {
        match crate::record::record_files(Path::new(d)) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("progload: {}: {e}", Path::new(d).display());
                return ExitCode::from(2);
            }
        }
    }
    if files.is_empty() {
        eprintln!("progload: check --replay: no records (*.json) in the directories given");
        return ExitCode::from(2);
    }
    let started = std::time::Instant::now();
    // The recording prober entered each working directory as root.
    let root_creds = progload::profile::Credentials::root();
    let results = files
        .iter()
        .map(|f| {
            let r = std::fs::read_to_string(f)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                .and_then(|v| crate::record::record_from(&v))
                .and_then(|rec| {
                    if rec.kernel != profile.kernel.to_string() {
                        return Err(format!(
                            "recorded on Linux {}, but the profile plans for {} (give the \
                             recording machine's profile with --profile)",
                            rec.kernel, profile.kernel
                        ));
                    }
                    let judge = Judge {
                        fs: &fs,
                        cwd_credentials: &root_creds,
                        tracer_may_trace_set_id: rec.tracer_may_trace_set_id,
                        // The same machine's own files only when replayed over its root.
                        same_files: a.root == Path::new("/")
                            && rec.boot_id.is_some()
                            && rec.boot_id == crate::record::boot_id(),
                    };
                    let name = PathBuf::from(std::ffi::OsStr::from_bytes(&rec.request.path));
                    verdict(&rec.request, profile, &judge, rec.outcome)
                        .map(|v| (name, v))
                        .map_err(|e| e.to_string())
                });
            match r {
                Ok((name, v)) => (name, Ok(v)),
                Err(e) => (f.clone(), Err(e)),
            }
        })
        .collect();
    summarize(args, results, started)
}

/// The summary of a sweep or a replay: counts by outcome and by differing field, the
/// failures; exit 1 when any plan disagrees.
fn summarize(
    args: &CheckArgs,
    mut results: Vec<(PathBuf, Result<Verdict, String>)>,
    started: std::time::Instant,
) -> ExitCode {
    results.sort_by(|x, y| x.0.cmp(&y.0));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    // Execs progload does not model (32-bit programs): listed, not counted as failures.
    let mut not_modelled = Vec::new();
    for (f, r) in &results {
        let key = match r {
            Ok(Verdict::Identical) => "identical",
            Ok(Verdict::IdenticalModuloRandomization) => "identical_modulo_randomization",
            Ok(Verdict::SameErrno(_)) => "refused_with_same_errno",
            Ok(Verdict::BothFatal) => "both_fatal",
            Ok(Verdict::Differ(d)) => {
                for x in d {
                    let field = x.field.split(['[', ' ']).next().unwrap_or("").to_string();
                    *by_field.entry(field).or_default() += 1;
                }
                bad.push((f, r));
                "differing"
            }
            Ok(Verdict::NotModelled { .. }) => {
                not_modelled.push((f, r));
                "not_modelled"
            }
            Ok(Verdict::Mismatch(..)) => {
                bad.push((f, r));
                "mismatched_outcome"
            }
            Err(_) => {
                bad.push((f, r));
                "probe_error"
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let list: Vec<_> = bad
            .iter()
            .map(|(f, r)| {
                let v = match r {
                    Ok(v) => verdict_json(v),
                    Err(e) => json!({"verdict": "probe_error", "error": e}),
                };
                json!({"file": crate::record::bytes_json(f.as_os_str().as_encoded_bytes()), "result": v})
            })
            .collect();
        println!(
            "{}",
            json!({"files": results.len(), "counts": counts, "differing_fields": by_field, "failures": list,
                "not_modelled": not_modelled.iter().map(|(f, _)| crate::record::bytes_json(f.as_os_str().as_encoded_bytes())).collect::<Vec<_>>(),
                "seconds": secs})
        );
    } else {
        let mut out = std::io::stdout().lock();
        for (f, r) in not_modelled.iter().chain(&bad) {
            let text = match r {
                Ok(v) => verdict_text(v),
                Err(e) => format!("probe error: {e}"),
            };
            let _ = writeln!(out, "{}: {text}", f.display());
        }
        let _ = writeln!(out, "{} files in {secs:.1} s", results.len());
        for (k, v) in &counts {
            let _ = writeln!(out, "  {k}: {v}");
        }
        for (k, v) in &by_field {
            let _ = writeln!(out, "  differing field {k}: {v}");
        }
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
