//! The options every exec-planning command shares, and what they become: a profile, a
//! filesystem, a `LoadRequest` and an RNG.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use clap::Args;
use progload::binfmt::misc::Rule;
use progload::profile::{Profile, ADDR_NO_RANDOMIZE};
use progload::{Error, LoadRequest, LoadRequestBuilder, SeededRng};
use progload_host::{host_profile, HostFs};

use crate::profile_file;

/// The options of `plan` and `explain`, and what `check` and `run` fill in from their own
/// (`check::CheckExecArgs`, `run::RunArgs`), which leave out what they cannot honour.
#[derive(Args, Clone)]
pub struct ExecArgs {
    /// Host directory used as the root of the exec (`/` inside the plan). Never escaped.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) root: PathBuf,
    /// Working directory inside the root that relative paths resolve from
    /// (default: the current directory when the root is `/`, else `/`).
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<OsString>,
    /// Replace argv[0] (default: PROGRAM as given).
    #[arg(long, value_name = "NAME")]
    pub(crate) argv0: Option<OsString>,
    /// Start from an empty environment instead of inheriting this one.
    #[arg(long)]
    pub(crate) env_clear: bool,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub(crate) env: Vec<OsString>,
    /// Plan as under `setarch -R` (personality ADDR_NO_RANDOMIZE).
    #[arg(long)]
    pub(crate) no_randomize: bool,
    /// Seed the randomness (layout entropy and AT_RANDOM) for a reproducible plan.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// The 16 AT_RANDOM bytes as 32 hex digits.
    #[arg(long, value_name = "HEX32")]
    pub(crate) random_bytes: Option<String>,
    /// Profile: a preset name (x86_64, aarch64) or a JSON file (see `progload profile`).
    /// Default: this host.
    #[arg(long, value_name = "FILE|PRESET")]
    pub(crate) profile: Option<String>,
    /// RLIMIT_STACK for the exec, in bytes or `unlimited` (default: the profile's).
    #[arg(long, value_name = "BYTES")]
    pub(crate) stack_limit: Option<String>,
    /// A binfmt_misc rule `:name:type:offset:magic:mask:interpreter:flags` (repeatable;
    /// later rules win, as newer registrations do). With the host profile the rules
    /// registered in /proc/sys/fs/binfmt_misc apply too, and these come after them.
    #[arg(long = "binfmt-misc", value_name = "RULE")]
    pub(crate) misc: Vec<OsString>,
    /// Look PROGRAM up in $PATH when it has no `/` (as execvp does).
    #[arg(long)]
    pub(crate) path_search: bool,
    /// Plan for another caller: `UID[:GID]` sets the real and effective ids, or
    /// `UID,EUID[:GID,EGID]` sets them apart (numbers only; default: the profile's caller).
    #[arg(long, value_name = "UID[:GID]")]
    pub(crate) user: Option<String>,
    /// The caller's supplementary groups, comma-separated (with --user; default none).
    #[arg(long, value_name = "GID,...", requires = "user")]
    pub(crate) groups: Option<String>,
    /// The caller has set PR_SET_NO_NEW_PRIVS (set-id bits are then ignored).
    #[arg(long)]
    pub(crate) no_new_privs: bool,
    /// The program to execute and its arguments. Everything from PROGRAM on belongs to the
    /// program, options included (as with `env` or `setarch`).
    #[arg(value_name = "PROGRAM [ARGS]", required = true, num_args = 1.., trailing_var_arg = true)]
    pub(crate) command: Vec<OsString>,
}

impl ExecArgs {
    /// PROGRAM.
    pub(crate) fn program(&self) -> &OsString {
        // clap requires at least one value.
        &self.command[0]
    }

    /// The ARGS after PROGRAM.
    pub(crate) fn args(&self) -> &[OsString] {
        self.command.get(1..).unwrap_or(&[])
    }
}

/// A failure of the CLI itself (bad option), not of the exec.
pub(crate) struct Usage(pub(crate) String);

/// The profile of `--profile`, or the host's: with its compat part (a 32-bit probe) when
/// `compat`, so that i386 programs are planned; `progload run`, which cannot run them, leaves
/// it out.
pub(crate) fn load_profile(a: &ExecArgs, compat: bool) -> Result<Profile, Usage> {
    let host = if compat {
        progload_host::host_profile_with_compat
    } else {
        host_profile
    };
    let mut p = match &a.profile {
        None => host().map_err(|e| Usage(format!("cannot read the host profile: {e}")))?,
        Some(name) => match Profile::preset(name) {
            Some(p) => p,
            None => {
                let text = std::fs::read_to_string(name).map_err(|e| {
                    Usage(format!(
                        "--profile {name}: not a preset and not readable: {e}"
                    ))
                })?;
                let f: profile_file::ProfileFile = serde_json::from_str(&text)
                    .map_err(|e| Usage(format!("--profile {name}: {e}")))?;
                Profile::try_from(f).map_err(|e| Usage(format!("--profile {name}: {e}")))?
            }
        },
    };
    if a.no_randomize {
        p.personality |= ADDR_NO_RANDOMIZE;
    }
    if let Some(c) = caller(a, &p.credentials)? {
        p.credentials = c;
    }
    if let Some(s) = &a.stack_limit {
        p.stack_rlimit = if s == "unlimited" || s == "infinity" {
            None
        } else {
            Some(
                s.parse()
                    .map_err(|_| Usage(format!("--stack-limit {s}: not a number of bytes")))?,
            )
        };
    }
    Ok(p)
}

/// A uid or gid: decimal digits, below 4294967295 (which the set*id calls take as "unchanged").
fn id(t: &str) -> Option<u32> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok().filter(|&v| v != u32::MAX)
}

/// The caller's credentials from `--user`, `--groups` and `--no-new-privs`, or `None` when
/// none of them is given.
pub(crate) fn caller(
    a: &ExecArgs,
    base: &progload::profile::Credentials,
) -> Result<Option<progload::profile::Credentials>, Usage> {
    if a.user.is_none() && !a.no_new_privs {
        return Ok(None);
    }
    let mut c = base.clone();
    if let Some(spec) = &a.user {
        let bad = || {
            Usage(format!(
                "--user {spec}: expected UID[:GID] or UID,EUID[:GID,EGID]"
            ))
        };
        let pair = |t: &str| -> Result<(u32, u32), Usage> {
            let mut it = t.split(',');
            let r = id(it.next().unwrap_or("")).ok_or_else(bad)?;
            let e = match it.next() {
                Some(x) => id(x).ok_or_else(bad)?,
                None => r,
            };
            if it.next().is_some() {
                return Err(bad());
            }
            Ok((r, e))
        };
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec.as_str(), None),
        };
        (c.uid, c.euid) = pair(u)?;
        (c.gid, c.egid) = match g {
            Some(g) => pair(g)?,
            None => (c.uid, c.uid),
        };
        c.groups = match &a.groups {
            None => Vec::new(),
            Some(list) if list.is_empty() => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|x| id(x).ok_or_else(|| Usage(format!("--groups {list}: not a list of ids"))))
                .collect::<Result<_, _>>()?,
        };
    }
    c.no_new_privs |= a.no_new_privs;
    Ok(Some(c))
}

pub(crate) fn environment(a: &ExecArgs) -> Vec<Vec<u8>> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = if a.env_clear {
        Vec::new()
    } else {
        std::env::vars_os()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect()
    };
    for kv in &a.env {
        let b = kv.as_bytes();
        let (k, v) = match b.iter().position(|&c| c == b'=') {
            Some(i) => (b[..i].to_vec(), b[i + 1..].to_vec()),
            None => (b.to_vec(), Vec::new()),
        };
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => env.push((k, v)),
        }
    }
    env.into_iter()
        .map(|(mut k, v)| {
            k.push(b'=');
            k.extend_from_slice(&v);
            k
        })
        .collect()
}

fn seed_rng(seed: Option<u64>) -> SeededRng {
    match seed {
        Some(s) => SeededRng::new(s),
        None => {
            let mut buf = [0u8; 32];
            if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
                let _ = std::io::Read::read_exact(&mut f, &mut buf);
            }
            SeededRng::from_seed(buf)
        }
    }
}

/// Everything needed to plan, built from the options.
pub struct Prepared {
    /// The filesystem.
    pub fs: HostFs,
    /// The profile.
    pub profile: Profile,
    /// The request.
    pub request: LoadRequest<progload_host::HostHandle>,
    /// The RNG.
    pub rng: SeededRng,
    /// The program as given.
    pub program: Vec<u8>,
}

/// Why preparing failed: a usage error, or an exec error found while resolving the cwd.
pub(crate) enum PrepError {
    Usage(Usage),
    Exec(Vec<u8>, Error),
}

/// Resolves the program and the profile (with its compat part when `compat`: see
/// [`load_profile`]).
pub(crate) fn prepare(a: &ExecArgs, compat: bool) -> Result<Prepared, PrepError> {
    let profile = load_profile(a, compat).map_err(PrepError::Usage)?;
    let fs = HostFs::new(&a.root)
        .map_err(|e| PrepError::Usage(Usage(format!("--root {}: {e}", a.root.display()))))?;
    let mut program = a.program().as_bytes().to_vec();
    if a.path_search && !program.contains(&b'/') && !program.is_empty() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut found = false;
        for dir in path.as_bytes().split(|&c| c == b':') {
            let mut cand = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            cand.push(b'/');
            cand.extend_from_slice(&program);
            let candidate = a.root.join(std::ffi::OsStr::from_bytes(
                cand.strip_prefix(b"/").unwrap_or(&cand),
            ));
            if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
                program = cand;
                found = true;
                break;
            }
        }
        if !found {
            eprintln!(
                "progload: {}: not found in any directory of PATH ({}); planned as a path relative to the working directory",
                program.escape_ascii(),
                path.as_bytes().escape_ascii()
            );
        }
    }
    let cwd_path: Vec<u8> = match &a.cwd {
        Some(c) => c.as_bytes().to_vec(),
        None if a.root == std::path::Path::new("/") => std::env::current_dir()
            .map(|p| p.into_os_string().into_vec())
            .unwrap_or_else(|_| b"/".to_vec()),
        None => b"/".to_vec(),
    };
    let mut builder = LoadRequestBuilder::new(program.clone())
        .args(a.args().iter().map(|s| s.as_bytes()))
        .envs(environment(a))
        .cwd(cwd_path.clone());
    if let Some(argv0) = &a.argv0 {
        builder = builder.arg0(argv0.as_bytes());
    }
    let mut request = builder
        .build(&fs, &profile)
        .map_err(|e| PrepError::Exec(cwd_path, e))?;
    // This kernel's registered rules when planning for it, then the given ones (newer).
    if a.profile.is_none() {
        request.misc_rules = progload_host::binfmt_misc::registered_rules()
            .map_err(|e| PrepError::Usage(Usage(format!("the host's binfmt_misc rules: {e}"))))?;
    }
    for r in &a.misc {
        let rule = Rule::parse(r.as_bytes())
            .map_err(|e| PrepError::Usage(Usage(format!("--binfmt-misc: {e}"))))?;
        request.misc_rules.push(rule);
    }
    if let Some(h) = &a.random_bytes {
        let bytes = progload::contract::from_hex(h)
            .filter(|b| b.len() == 16)
            .ok_or_else(|| {
                PrepError::Usage(Usage(String::from(
                    "--random-bytes takes exactly 32 hex digits",
                )))
            })?;
        let mut r = [0u8; 16];
        r.copy_from_slice(&bytes);
        request.random_bytes = Some(r);
    }
    Ok(Prepared {
        fs,
        profile,
        request,
        rng: seed_rng(a.seed),
        program,
    })
}
