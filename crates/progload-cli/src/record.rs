//! Recorded kernel outcomes: `check --sweep --record DIR` writes, for every exec it checks,
//! the request and what the kernel did (the whole image at the first instruction, or the
//! errno, or the signal) as one JSON file; `check --replay DIR` judges plans against them
//! later, on any machine, with the recording machine's profile and files (`--profile`,
//! `--root`).
//!
//! Byte strings (paths, argv, envp) are JSON strings when they are UTF-8, else
//! `{"hex": "..."}`.

use std::path::{Path, PathBuf};

use progload::contract::{from_hex, to_hex, ByteString};
use progload::profile::Credentials;
use progload_host::check::CheckRequest;
use progload_host::probe::{KernelImage, MapsLine, MmFields, ProbeOutcome};
use serde::Deserialize;
use serde_json::{json, Value};

/// The version of the record format, written into each record.
const FORMAT: u64 = 1;

/// A byte string as JSON: a string when it is UTF-8, else `{"hex": ...}` (the contract's
/// [`ByteString`]).
pub fn bytes_json(b: &[u8]) -> Value {
    json!(ByteString(b.to_vec()))
}

fn bytes_from(v: &Value) -> Result<Vec<u8>, String> {
    ByteString::deserialize(v)
        .map(|b| b.0)
        .map_err(|_| format!("bad byte string {v}"))
}

fn list_from(v: &Value) -> Result<Vec<Vec<u8>>, String> {
    v.as_array()
        .ok_or_else(|| format!("not a list: {v}"))?
        .iter()
        .map(bytes_from)
        .collect()
}

fn u64_of(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("missing number {key}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string {key}"))
}

fn pairs_from(v: &Value) -> Result<Vec<(u64, u64)>, String> {
    let bad = || format!("not a list of pairs: {v}");
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([a, b]) => Some((a.as_u64()?, b.as_u64()?)),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)
}

fn credentials_json(c: &Credentials) -> Value {
    json!({"uid": c.uid, "euid": c.euid, "gid": c.gid, "egid": c.egid, "groups": c.groups,
           "no_new_privs": c.no_new_privs})
}

fn credentials_from(v: &Value) -> Result<Credentials, String> {
    let id = |k: &str| u64_of(v, k).and_then(|x| u32::try_from(x).map_err(|e| e.to_string()));
    Ok(Credentials {
        uid: id("uid")?,
        euid: id("euid")?,
        gid: id("gid")?,
        egid: id("egid")?,
        groups: v
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(|x| x.as_u64()?.try_into().ok())
                    .collect()
            })
            .unwrap_or_default(),
        no_new_privs: v.get("no_new_privs").and_then(Value::as_bool) == Some(true),
    })
}

fn image_json(k: &KernelImage) -> Value {
    let maps: Vec<Value> = k
        .maps
        .iter()
        .map(|m| {
            json!({"start": m.start, "end": m.end, "perms": m.perms, "offset": m.offset,
                   "dev": m.dev, "inode": m.inode, "path": bytes_json(&m.path)})
        })
        .collect();
    let mm = &k.mm;
    json!({
        "registers": k.registers,
        "pc": k.pc,
        "sp": k.sp,
        "maps": maps,
        "auxv": k.auxv,
        "stack_top": k.stack_top,
        "stack_hex": to_hex(&k.stack_bytes),
        "mm": {"start_code": mm.start_code, "end_code": mm.end_code, "start_stack": mm.start_stack,
               "start_data": mm.start_data, "end_data": mm.end_data, "start_brk": mm.start_brk,
               "arg_start": mm.arg_start, "arg_end": mm.arg_end, "env_start": mm.env_start,
               "env_end": mm.env_end, "brk": mm.brk},
        "comm": bytes_json(&k.comm),
        "exe": bytes_json(k.exe.as_os_str().as_encoded_bytes()),
        "uids": k.uids,
        "gids": k.gids,
        "no_new_privs": k.no_new_privs,
        "personality": k.personality,
    })
}

fn image_from(v: &Value) -> Result<KernelImage, String> {
    let registers = v
        .get("registers")
        .and_then(Value::as_array)
        .ok_or("missing registers")?
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([n, x]) => Some((n.as_str()?.to_string(), x.as_u64()?)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("bad registers")?;
    let maps = v
        .get("maps")
        .and_then(Value::as_array)
        .ok_or("missing maps")?
        .iter()
        .map(|m| {
            Ok(MapsLine {
                start: u64_of(m, "start")?,
                end: u64_of(m, "end")?,
                perms: str_of(m, "perms")?.to_string(),
                offset: u64_of(m, "offset")?,
                dev: str_of(m, "dev")?.to_string(),
                inode: u64_of(m, "inode")?,
                path: bytes_from(m.get("path").ok_or("missing path")?)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mm = v.get("mm").ok_or("missing mm")?;
    let ids = |k: &str| -> Result<[u32; 4], String> {
        let a: Vec<u32> = v
            .get(k)
            .and_then(Value::as_array)
            .ok_or(format!("missing {k}"))?
            .iter()
            .filter_map(|x| x.as_u64()?.try_into().ok())
            .collect();
        a.try_into().map_err(|_| format!("{k}: not 4 ids"))
    };
    let exe = bytes_from(v.get("exe").ok_or("missing exe")?)?;
    Ok(KernelImage {
        registers,
        pc: u64_of(v, "pc")?,
        sp: u64_of(v, "sp")?,
        maps,
        auxv: pairs_from(v.get("auxv").ok_or("missing auxv")?)?,
        stack_top: u64_of(v, "stack_top")?,
        stack_bytes: from_hex(str_of(v, "stack_hex")?).ok_or("bad stack_hex")?,
        mm: MmFields {
            start_code: u64_of(mm, "start_code")?,
            end_code: u64_of(mm, "end_code")?,
            start_stack: u64_of(mm, "start_stack")?,
            start_data: u64_of(mm, "start_data")?,
            end_data: u64_of(mm, "end_data")?,
            start_brk: u64_of(mm, "start_brk")?,
            arg_start: u64_of(mm, "arg_start")?,
            arg_end: u64_of(mm, "arg_end")?,
            env_start: u64_of(mm, "env_start")?,
            env_end: u64_of(mm, "env_end")?,
            brk: mm.get("brk").and_then(Value::as_u64),
        },
        comm: bytes_from(v.get("comm").ok_or("missing comm")?)?,
        exe: PathBuf::from(std::ffi::OsString::from(
            String::from_utf8(exe).map_err(|_| "exe is not UTF-8")?,
        )),
        uids: ids("uids")?,
        gids: ids("gids")?,
        no_new_privs: v.get("no_new_privs").and_then(Value::as_bool) == Some(true),
        personality: u32::try_from(u64_of(v, "personality")?).map_err(|e| e.to_string())?,
        ..KernelImage::default()
    })
}

/// One recorded exec: the request as `check` ran it, the recording kernel's release, whether
/// its tracer could trace set-id execs, and the outcome.
pub fn record_json(
    req: &CheckRequest,
    kernel: &str,
    tracer_may_trace_set_id: bool,
    outcome: &ProbeOutcome,
) -> Value {
    let outcome = match outcome {
        ProbeOutcome::Stopped(k) => json!({"stopped": image_json(k)}),
        ProbeOutcome::Refused { errno } => json!({"refused": errno}),
        ProbeOutcome::Killed { signal } => json!({"killed": signal}),
    };
    json!({
        "format": FORMAT,
        "kernel": kernel,
        "boot_id": boot_id(),
        "tracer_may_trace_set_id": tracer_may_trace_set_id,
        "path": bytes_json(&req.path),
        "argv": req.argv.as_ref().map(|a| a.iter().map(|s| bytes_json(s)).collect::<Vec<_>>()),
        "envp": req.envp.iter().map(|s| bytes_json(s)).collect::<Vec<_>>(),
        "cwd": bytes_json(req.cwd.as_os_str().as_encoded_bytes()),
        "stack_rlimit": match req.stack_rlimit {
            None => json!("inherit"),
            Some(None) => json!("unlimited"),
            Some(Some(b)) => json!(b),
        },
        "personality": req.personality,
        "credentials": req.credentials.as_ref().map(credentials_json),
        "outcome": outcome,
    })
}

/// A record read back.
pub struct Record {
    /// The request.
    pub request: CheckRequest,
    /// The recording kernel's release.
    pub kernel: String,
    /// Whether the recording tracer could trace set-id execs.
    pub tracer_may_trace_set_id: bool,
    /// The recording machine's boot (`/proc/sys/kernel/random/boot_id`), which tells whether a
    /// replay runs where the files' device and inode numbers still mean the same.
    pub boot_id: Option<String>,
    /// What the kernel did.
    pub outcome: ProbeOutcome,
}

/// Parses a record written by [`record_json`].
///
/// # Errors
/// A description of what is missing or malformed.
pub fn record_from(v: &Value) -> Result<Record, String> {
    if v.get("format").and_then(Value::as_u64) != Some(FORMAT) {
        return Err(format!("not a format-{FORMAT} record"));
    }
    let o = v.get("outcome").ok_or("missing outcome")?;
    let outcome = if let Some(k) = o.get("stopped") {
        ProbeOutcome::Stopped(image_from(k)?)
    } else if let Some(e) = o.get("refused").and_then(Value::as_i64) {
        ProbeOutcome::Refused {
            errno: i32::try_from(e).map_err(|e| e.to_string())?,
        }
    } else if let Some(s) = o.get("killed").and_then(Value::as_i64) {
        ProbeOutcome::Killed {
            signal: i32::try_from(s).map_err(|e| e.to_string())?,
        }
    } else {
        return Err(format!("bad outcome {o}"));
    };
    let cwd = bytes_from(v.get("cwd").ok_or("missing cwd")?)?;
    let request = CheckRequest {
        path: bytes_from(v.get("path").ok_or("missing path")?)?,
        argv: match v.get("argv") {
            None | Some(Value::Null) => None,
            Some(a) => Some(list_from(a)?),
        },
        envp: list_from(v.get("envp").ok_or("missing envp")?)?,
        cwd: PathBuf::from(String::from_utf8(cwd).map_err(|_| "cwd is not UTF-8")?),
        stack_rlimit: match v.get("stack_rlimit") {
            Some(Value::String(s)) if s == "unlimited" => Some(None),
            Some(Value::Number(n)) => Some(Some(n.as_u64().ok_or("bad stack_rlimit")?)),
            _ => None,
        },
        misc_rules: Vec::new(),
        credentials: match v.get("credentials") {
            None | Some(Value::Null) => None,
            Some(c) => Some(credentials_from(c)?),
        },
        personality: u32::try_from(u64_of(v, "personality")?).map_err(|e| e.to_string())?,
    };
    Ok(Record {
        request,
        kernel: str_of(v, "kernel")?.to_string(),
        tracer_may_trace_set_id: v.get("tracer_may_trace_set_id").and_then(Value::as_bool)
            == Some(true),
        boot_id: v.get("boot_id").and_then(Value::as_str).map(str::to_string),
        outcome,
    })
}

/// This machine's boot id.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The record files of a directory (`*.json`), sorted.
///
/// # Errors
/// When the directory cannot be read.
pub fn record_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}
