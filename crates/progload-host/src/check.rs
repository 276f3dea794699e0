//! Field-by-field comparison of a plan with the image the kernel built (the probe's result).

use std::fmt;

use progload::auxv::AT_RANDOM;
use progload::contract::{to_hex, ByteString};
use progload::Plan;

use crate::probe::KernelImage;
use crate::proc::MapsLine;

/// One field where the plan and the kernel disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Which field (e.g. `maps[3].perms`, `auxv[AT_PHDR]`, `stack[+0x1a8]`).
    pub field: String,
    /// The kernel's value.
    pub kernel: String,
    /// The plan's value.
    pub plan: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: kernel {} / plan {}",
            self.field, self.kernel, self.plan
        )
    }
}

struct Diffs(Vec<Difference>);

/// How a compared value is written in a [`Difference`]: numbers in hex, text as it is, byte
/// strings with their non-UTF-8 bytes as `\xNN` (so nothing is lost).
trait Shown: PartialEq {
    fn show(&self) -> String;
}

impl Shown for u64 {
    fn show(&self) -> String {
        format!("{self:#x}")
    }
}

impl Shown for u32 {
    fn show(&self) -> String {
        format!("{self:#x}")
    }
}

impl Shown for usize {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Shown for bool {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Shown for &str {
    fn show(&self) -> String {
        (*self).to_string()
    }
}

impl Shown for String {
    fn show(&self) -> String {
        self.clone()
    }
}

impl Shown for &[u8] {
    fn show(&self) -> String {
        progload::contract::ByteString(self.to_vec()).to_string()
    }
}

impl Shown for [u32; 4] {
    fn show(&self) -> String {
        self.map(|x| x.to_string()).join(", ")
    }
}

impl Diffs {
    fn cmp<T: Shown>(&mut self, field: impl Into<String>, kernel: T, plan: T) {
        if kernel != plan {
            self.0.push(Difference {
                field: field.into(),
                kernel: kernel.show(),
                plan: plan.show(),
            });
        }
    }

    /// What both comparisons check of one maps line: permissions, offset and path.
    fn map_shape(&mut self, i: usize, km: &MapsLine, pm: &progload::apply::MapsLine) {
        self.cmp(
            format!("maps[{i}].perms"),
            km.perms.as_str(),
            pm.perms.as_str(),
        );
        self.cmp(format!("maps[{i}].offset"), km.offset, pm.offset);
        self.cmp(
            format!("maps[{i}].path"),
            km.path.as_slice(),
            pm.path.as_slice(),
        );
    }

    /// The credentials and personality the process runs with after the exec.
    fn credentials<N>(&mut self, plan: &Plan<N>, k: &KernelImage) {
        let c = &plan.credentials;
        self.cmp(
            "uids (real, effective, saved, fs)",
            k.uids,
            [c.uid, c.euid, c.suid, c.fsuid],
        );
        self.cmp(
            "gids (real, effective, saved, fs)",
            k.gids,
            [c.gid, c.egid, c.sgid, c.fsgid],
        );
        self.cmp("no_new_privs", k.no_new_privs, c.no_new_privs);
        self.cmp("personality", k.personality, plan.personality);
    }

    /// The auxv pairs in order: every type, and every value but those `skip_value` names.
    fn auxv(&mut self, kernel: &[(u64, u64)], plan: &[(u64, u64)], skip_value: fn(u64) -> bool) {
        self.cmp("auxv.len", kernel.len(), plan.len());
        for (i, (ka, pa)) in kernel.iter().zip(plan).enumerate() {
            if ka.0 != pa.0 {
                self.cmp(format!("auxv[{i}].type"), auxv_name(ka.0), auxv_name(pa.0));
            } else if !skip_value(ka.0) {
                self.cmp(format!("auxv[{i}] {}", auxv_name(ka.0)), ka.1, pa.1);
            }
        }
    }
}

fn auxv_name(t: u64) -> String {
    progload::auxv::name(t).map_or_else(|| format!("{t}"), |n| format!("AT_{n}"))
}

/// Compares everything "bit-exact" covers: every maps line, entry, stack pointer and the
/// other initial registers, every auxv pair, the stack bytes except the 16 AT_RANDOM bytes,
/// the mm fields, comm and the executable's path.
pub fn compare<N>(plan: &Plan<N>, k: &KernelImage) -> Vec<Difference> {
    compare_files(plan, k, true)
}

/// [`compare`], with the device and inode numbers of file mappings compared only when
/// `file_ids` (they belong to the filesystem the kernel ran from, which a copy of its files
/// under `--root` stands in for with numbers of its own).
pub fn compare_files<N>(plan: &Plan<N>, k: &KernelImage, file_ids: bool) -> Vec<Difference> {
    let mut d = Diffs(Vec::new());
    let maps = plan.maps();
    d.cmp("maps.len", k.maps.len(), maps.len());
    for (i, (km, pm)) in k.maps.iter().zip(&maps).enumerate() {
        d.cmp(format!("maps[{i}].start"), km.start, pm.start);
        d.cmp(format!("maps[{i}].end"), km.end, pm.end);
        d.map_shape(i, km, pm);
        if file_ids && !pm.path.is_empty() && !pm.path.starts_with(b"[") {
            d.cmp(
                format!("maps[{i}].dev"),
                km.dev.clone(),
                format!("{:02x}:{:02x}", pm.dev.0, pm.dev.1),
            );
            d.cmp(format!("maps[{i}].inode"), km.inode, pm.inode);
        }
    }
    for (i, km) in k.maps.iter().enumerate().skip(maps.len()) {
        d.cmp(
            format!("maps[{i}]"),
            format!(
                "{:x}-{:x} {}",
                km.start,
                km.end,
                ByteString(km.path.clone())
            ),
            String::from("(none)"),
        );
    }
    for (i, pm) in maps.iter().enumerate().skip(k.maps.len()) {
        d.cmp(
            format!("maps[{i}]"),
            String::from("(none)"),
            format!(
                "{:x}-{:x} {}",
                pm.start,
                pm.end,
                ByteString(pm.path.clone())
            ),
        );
    }

    d.cmp("entry (pc)", k.pc, plan.entry);
    d.cmp("stack_pointer (sp)", k.sp, plan.stack.sp);
    for (name, value) in plan.registers.named() {
        if matches!(name, "rip" | "rsp" | "pc" | "sp") {
            continue; // compared above
        }
        match k.register(name) {
            Some(kv) => d.cmp(format!("registers.{name}"), kv, value),
            None => d.cmp(
                format!("registers.{name}"),
                String::from("(none)"),
                format!("{value:#x}"),
            ),
        }
    }

    d.auxv(&k.auxv, &plan.auxv, |_| false);

    d.cmp("stack.top", k.stack_top, plan.stack.top);
    d.cmp("stack.len", k.stack_bytes.len(), plan.stack.bytes.len());
    let random = plan.stack.random_addr;
    let mut first_bad: Option<usize> = None;
    let mut bad = 0usize;
    for (i, (kb, pb)) in k.stack_bytes.iter().zip(&plan.stack.bytes).enumerate() {
        let addr = plan.stack.sp + i as u64;
        if addr >= random && addr < random + 16 && k.auxv_get(AT_RANDOM) == Some(random) {
            continue;
        }
        if kb != pb {
            bad += 1;
            first_bad.get_or_insert(i);
        }
    }
    if let Some(i) = first_bad {
        let end = (i + 16)
            .min(k.stack_bytes.len())
            .min(plan.stack.bytes.len());
        d.0.push(Difference {
            field: format!("stack[sp+{i:#x}] ({bad} bytes differ)"),
            kernel: to_hex(&k.stack_bytes[i..end]),
            plan: to_hex(&plan.stack.bytes[i..end]),
        });
    }

    let m = &k.mm;
    let pm = &plan.mm;
    d.cmp("mm.start_code", m.start_code, pm.start_code);
    d.cmp("mm.end_code", m.end_code, pm.end_code);
    d.cmp("mm.start_data", m.start_data, pm.start_data);
    d.cmp("mm.end_data", m.end_data, pm.end_data);
    d.cmp("mm.start_brk", m.start_brk, pm.start_brk);
    if let Some(brk) = m.brk {
        d.cmp("mm.brk", brk, pm.brk);
    }
    d.cmp("mm.start_stack", m.start_stack, pm.start_stack);
    d.cmp("mm.arg_start", m.arg_start, pm.arg_start);
    d.cmp("mm.arg_end", m.arg_end, pm.arg_end);
    d.cmp("mm.env_start", m.env_start, pm.env_start);
    d.cmp("mm.env_end", m.env_end, pm.env_end);
    d.cmp("comm", k.comm.as_slice(), plan.comm.as_slice());
    d.credentials(plan, k);
    d.cmp(
        "exe",
        k.exe.as_os_str().as_encoded_bytes(),
        plan.exe.as_slice(),
    );
    d.0
}

/// What the kernel did with an exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelOutcome {
    /// Reached the first instruction.
    Ran,
    /// `execve` returned this errno.
    Refused(progload::Errno),
    /// The process was killed by this signal (after the point of no return).
    Killed(i32),
}

/// What the plan said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    /// A plan.
    Planned,
    /// An error with its errno, and whether it is fatal.
    Failed(progload::Errno, bool, String),
}

impl std::fmt::Display for KernelOutcome {
    /// A sentence: `ran to the first instruction`, `refused it with ENOEXEC (Exec format
    /// error)`, `killed the process with signal 11 (SIGSEGV)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelOutcome::Ran => write!(f, "ran to the first instruction"),
            KernelOutcome::Refused(e) => write!(f, "refused it with {} ({})", e.name(), e.text()),
            KernelOutcome::Killed(s) => write!(
                f,
                "killed the process with signal {s} ({})",
                signal_name(*s)
            ),
        }
    }
}

impl std::fmt::Display for PlanOutcome {
    /// A sentence: `planned it`, `refuses it with ENOEXEC: ...`, `fails after the point of
    /// no return with EINVAL (the kernel kills): ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanOutcome::Planned => write!(f, "planned it"),
            PlanOutcome::Failed(e, false, why) => write!(f, "refuses it with {}: {why}", e.name()),
            PlanOutcome::Failed(e, true, why) => write!(
                f,
                "fails after the point of no return with {} (the kernel kills): {why}",
                e.name()
            ),
        }
    }
}

/// `SIGSEGV`, ... for the signals an exec can end with; `signal N` for others.
fn signal_name(s: i32) -> String {
    match s {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGABRT => "SIGABRT".into(),
        _ => format!("signal {s}"),
    }
}

/// The verdict of one differential check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel ran it and the plan is identical field by field.
    Identical,
    /// The plan was randomized (a set-id exec clears ADDR_NO_RANDOMIZE): everything that does
    /// not depend on the random draws is identical (shapes of the maps, auxv values other than
    /// addresses, strings, credentials, comm).
    IdenticalModuloRandomization,
    /// Both refused with the same errno.
    SameErrno(progload::Errno),
    /// The kernel killed the process and the plan's error is fatal.
    BothFatal,
    /// The kernel ran it and fields differ.
    Differ(Vec<Difference>),
    /// The outcomes disagree (ran vs refused, or different errnos).
    Mismatch(KernelOutcome, PlanOutcome),
    /// progload does not model this exec, whatever the kernel did (shown here): neither
    /// agreement nor a disagreement. A 32-bit program the profile has no compat part for
    /// (`Error::CompatElf`), a segment over the stack's strings (`Error::StackOverlaid`), or a
    /// set-id exec probed by a tracer without CAP_SYS_PTRACE, which the kernel downgrades.
    NotModelled {
        /// Why.
        why: String,
        /// What the kernel did.
        kernel: KernelOutcome,
    },
}

impl Verdict {
    /// Whether the plan agrees with the kernel.
    pub fn agrees(&self) -> bool {
        !matches!(
            self,
            Verdict::Differ(_) | Verdict::Mismatch(..) | Verdict::NotModelled { .. }
        )
    }
}

/// How long the kernel's exec may take to reach the first instruction before a check gives up
/// on it (it is then reported as killed by SIGKILL, an outcome mismatch).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One exec to check: the kernel runs it with the calling process's root (`/`).
#[derive(Clone, Debug)]
pub struct CheckRequest {
    /// The path as passed to execve.
    pub path: Vec<u8>,
    /// argv (`None`: a NULL argv).
    pub argv: Option<Vec<Vec<u8>>>,
    /// envp.
    pub envp: Vec<Vec<u8>>,
    /// The working directory (host path).
    pub cwd: std::path::PathBuf,
    /// RLIMIT_STACK for both sides; `None` keeps this process's.
    pub stack_rlimit: Option<Option<u64>>,
    /// binfmt_misc rules given to the plan besides those registered with the kernel, which
    /// [`check`] adds itself (for a comparison, these must be registered too).
    pub misc_rules: Vec<progload::binfmt::misc::Rule>,
    /// The caller's credentials for both sides; `None` keeps this process's (the kernel's
    /// child takes them with setresuid and friends, see [`crate::probe::ProbeRequest::credentials`]).
    pub credentials: Option<progload::profile::Credentials>,
    /// Personality bits added on both sides (besides `ADDR_NO_RANDOMIZE`, always added).
    pub personality: u32,
}

/// Structure-only comparison for randomized plans.
pub fn compare_unrandomized_parts<N>(plan: &Plan<N>, k: &KernelImage) -> Vec<Difference> {
    use progload::auxv::*;
    let mut d = Diffs(Vec::new());
    let maps = plan.maps();
    d.cmp("maps.len", k.maps.len(), maps.len());
    for (i, (km, pm)) in k.maps.iter().zip(&maps).enumerate() {
        d.cmp(
            format!("maps[{i}].size"),
            km.end - km.start,
            pm.end - pm.start,
        );
        d.map_shape(i, km, pm);
    }
    // Addresses are randomized; every other value must match.
    d.auxv(&k.auxv, &plan.auxv, |t| {
        matches!(
            t,
            AT_SYSINFO_EHDR | AT_PHDR | AT_BASE | AT_ENTRY | AT_RANDOM | AT_EXECFN | AT_PLATFORM
        )
    });
    let kstr = k
        .stack_slice(k.mm.arg_start)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let off = plan.mm.arg_start.wrapping_sub(plan.stack.sp) as usize;
    let pstr = plan
        .stack
        .bytes
        .get(off..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    d.cmp("stack strings", to_hex(&kstr), to_hex(&pstr));
    d.cmp("comm", k.comm.as_slice(), plan.comm.as_slice());
    d.credentials(plan, k);
    d.cmp(
        "exe",
        k.exe.as_os_str().as_encoded_bytes(),
        plan.exe.as_slice(),
    );
    d.0
}

/// Runs the kernel's exec of `req` under ptrace (ADDR_NO_RANDOMIZE) and plans the same exec
/// with `profile` (whose personality gets ADDR_NO_RANDOMIZE too), and compares.
///
/// # Errors
/// When the probe itself fails (not when the exec fails).
pub fn check(req: &CheckRequest, profile: &progload::Profile) -> std::io::Result<Verdict> {
    check_recorded(req, profile).map(|(v, _)| v)
}

/// [`check`], also returning what the kernel did, to be judged again elsewhere with
/// [`verdict`] (a recorded sweep planned from another machine's profile and files).
///
/// # Errors
/// When the probe itself fails (not when the exec fails).
pub fn check_recorded(
    req: &CheckRequest,
    profile: &progload::Profile,
) -> std::io::Result<(Verdict, crate::probe::ProbeOutcome)> {
    use crate::probe::{probe_with_timeout, ProbeRequest};
    let probe = |r: &ProbeRequest| probe_with_timeout(r, PROBE_TIMEOUT);
    let preq = ProbeRequest {
        path: req.path.clone(),
        argv: req.argv.clone(),
        envp: req.envp.clone(),
        cwd: Some(req.cwd.clone()),
        stack_rlimit: req.stack_rlimit,
        no_randomize: true,
        personality: req.personality,
        credentials: req.credentials.clone(),
    };
    let outcome = crate::probe::retry_busy(|| probe(&preq))?;
    // The kernel's exec used every rule registered with it: the plan takes them, with the
    // request's own ones (already registered, or given to see the difference) after them.
    let mut req = req.clone();
    let mut rules = crate::binfmt_misc::registered_rules()?;
    for r in req.misc_rules.drain(..) {
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    req.misc_rules = rules;
    let req = &req;
    let fs = crate::HostFs::new("/")?;
    let judge = Judge {
        fs: &fs,
        // The probe's child enters the cwd before taking the credentials.
        cwd_credentials: &crate::profile::current_credentials()?,
        tracer_may_trace_set_id: crate::profile::can_trace_set_id()?,
        same_files: true,
    };
    let v = verdict(req, profile, &judge, outcome.clone())?;
    Ok((v, outcome))
}

/// Where and how a kernel outcome is judged: the files of the plan (the kernel's root), the
/// credentials the working directory is resolved with (the prober's), and whether the prober
/// could trace a set-id exec without the kernel downgrading it (CAP_SYS_PTRACE).
pub struct Judge<'a> {
    /// The root the exec ran in.
    pub fs: &'a crate::HostFs,
    /// The credentials the working directory was entered with.
    pub cwd_credentials: &'a progload::profile::Credentials,
    /// Whether the prober had CAP_SYS_PTRACE.
    pub tracer_may_trace_set_id: bool,
    /// Whether `fs` is the filesystem the kernel ran from, so that the device and inode
    /// numbers of file mappings are compared too (see [`compare_files`]).
    pub same_files: bool,
}

/// Plans `req` with `profile` over `judge.fs` and compares the plan with `outcome`, the
/// kernel's exec of the same request.
///
/// # Errors
/// When the working directory cannot be resolved in the root.
pub fn verdict(
    req: &CheckRequest,
    profile: &progload::Profile,
    judge: &Judge<'_>,
    outcome: crate::probe::ProbeOutcome,
) -> std::io::Result<Verdict> {
    use crate::probe::ProbeOutcome;
    let fs = judge.fs;
    let mut profile = profile.clone();
    profile.personality |= progload::profile::ADDR_NO_RANDOMIZE | req.personality;
    if let Some(r) = req.stack_rlimit {
        profile.stack_rlimit = r;
    }
    let root = progload::resolve::DirPath::root(progload::FileSystem::root(fs));
    let cwd = progload::resolve::resolve_dir(
        fs,
        judge.cwd_credentials,
        &root,
        req.cwd.as_os_str().as_encoded_bytes(),
    )
    .map_err(|e| std::io::Error::other(format!("cwd: {e}")))?;
    if let Some(c) = &req.credentials {
        profile.credentials = c.clone();
    }
    let mut lr = progload::LoadRequest::new(req.path.clone(), Vec::new(), req.envp.clone());
    lr.argv = req.argv.clone();
    lr.cwd = Some(cwd);
    lr.misc_rules = req.misc_rules.clone();
    let planned = progload::plan(fs, &profile, &lr, &mut progload::SeededRng::new(0));
    let kernel_outcome = match &outcome {
        ProbeOutcome::Stopped(_) => KernelOutcome::Ran,
        ProbeOutcome::Refused { errno } => KernelOutcome::Refused(progload::Errno(*errno)),
        ProbeOutcome::Killed { signal } => KernelOutcome::Killed(*signal),
    };
    let plan_outcome = match &planned {
        Ok(_) => PlanOutcome::Planned,
        Err(e) => PlanOutcome::Failed(e.errno(), e.is_fatal(), e.to_string()),
    };
    if let Err(e @ (progload::Error::CompatElf { .. } | progload::Error::StackOverlaid { .. })) =
        &planned
    {
        return Ok(Verdict::NotModelled {
            why: e.to_string(),
            kernel: kernel_outcome,
        });
    }
    if let Ok(p) = &planned {
        let c = &p.credentials;
        let old = &profile.credentials;
        let changes = c.euid != old.euid || c.egid != old.egid;
        if changes && !judge.tracer_may_trace_set_id {
            return Ok(Verdict::NotModelled {
                why: "a set-id exec under a tracer without CAP_SYS_PTRACE, which the kernel downgrades".into(),
                kernel: kernel_outcome,
            });
        }
    }
    Ok(match (outcome, planned) {
        (ProbeOutcome::Stopped(k), Ok(p)) => {
            let diffs = if p.randomized {
                compare_unrandomized_parts(&p, &k)
            } else {
                compare_files(&p, &k, judge.same_files)
            };
            match (diffs.is_empty(), p.randomized) {
                (true, false) => Verdict::Identical,
                (true, true) => Verdict::IdenticalModuloRandomization,
                (false, _) => Verdict::Differ(diffs),
            }
        }
        (ProbeOutcome::Refused { errno }, Err(e)) if !e.is_fatal() && e.errno().0 == errno => {
            Verdict::SameErrno(e.errno())
        }
        (ProbeOutcome::Killed { signal }, Err(e)) if e.is_fatal() && signal == libc::SIGSEGV => {
            Verdict::BothFatal
        }
        _ => Verdict::Mismatch(kernel_outcome, plan_outcome),
    })
}
