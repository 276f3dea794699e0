//! The plan as a readable report and as the JSON contract; a failed exec as a message or a
//! JSON failure object, with the shell's exit status.

use std::fmt::Write as _;
use std::process::ExitCode;

use progload::contract::ByteString;
use progload::{Errno, Error};

use progload::Plan;
use serde_json::Value;

/// Bytes as text, invalid UTF-8 shown as `\xNN` (lossless, as in `check`'s differences).
pub(crate) fn text(b: &[u8]) -> String {
    ByteString::from(b).to_string()
}

/// Bytes quoted: a Rust-style string literal when they are UTF-8, else every byte outside
/// printable ASCII as `\xNN`.
fn quoted(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("\"{}\"", b.escape_ascii()),
    }
}

/// The JSON contract of `progload plan --json` (see the README): the plan's
/// [`progload::PlanRecord`] with `"ok": true`.
pub fn json<N>(p: &Plan<N>) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert(String::from("ok"), Value::Bool(true));
    }
    v
}

/// The readable report: maps like /proc/PID/maps, auxv like LD_SHOW_AUXV, registers, mm
/// fields, argv/envp, interpreter and credentials.
pub fn human<N>(p: &Plan<N>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "exe:          {}", text(&p.exe));
    let _ = writeln!(
        s,
        "interpreter:  {}",
        p.interpreter
            .as_ref()
            .map_or_else(|| String::from("(none)"), |i| text(i))
    );
    let _ = writeln!(s, "execfn:       {}", text(&p.execfn));
    let _ = writeln!(s, "comm:         {}", text(&p.comm));
    let _ = writeln!(s, "entry:        {:#x}", p.entry);
    let _ = writeln!(s, "stack ptr:    {:#x}", p.stack.sp);
    let _ = writeln!(
        s,
        "layout:       {}{}",
        if p.randomized {
            "randomized"
        } else {
            "not randomized"
        },
        if p.exec_stack {
            ", executable stack"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "\nargv:");
    for (i, a) in p.argv.iter().enumerate() {
        let _ = writeln!(s, "  [{i}] {}", quoted(a));
    }
    let _ = writeln!(s, "envp: {} strings", p.envp.len());
    for e in p.envp.iter().take(8) {
        let _ = writeln!(s, "  {}", quoted(e));
    }
    if p.envp.len() > 8 {
        let _ = writeln!(s, "  ... {} more", p.envp.len() - 8);
    }
    let _ = writeln!(s, "\nmaps (/proc/PID/maps at the first instruction):");
    for m in p.maps() {
        let _ = writeln!(s, "  {}", m.render());
    }
    let _ = writeln!(s, "\nauxv:");
    for &(k, v) in &p.auxv {
        let name = progload::auxv::name(k).map_or_else(|| format!("{k}"), |n| format!("AT_{n}"));
        let shown = match k {
            progload::auxv::AT_EXECFN | progload::auxv::AT_PLATFORM => {
                let off = v.wrapping_sub(p.stack.sp) as usize;
                let tail = p.stack.bytes.get(off..).unwrap_or(&[]);
                let end = tail.iter().position(|&c| c == 0).unwrap_or(0);
                format!("{v:#x} {}", quoted(&tail[..end]))
            }
            progload::auxv::AT_PAGESZ
            | progload::auxv::AT_CLKTCK
            | progload::auxv::AT_PHENT
            | progload::auxv::AT_PHNUM
            | progload::auxv::AT_UID
            | progload::auxv::AT_EUID
            | progload::auxv::AT_GID
            | progload::auxv::AT_EGID
            | progload::auxv::AT_SECURE => format!("{v}"),
            _ => format!("{v:#x}"),
        };
        let _ = writeln!(s, "  {name:<22} {shown}");
    }
    let _ = writeln!(s, "\nregisters (all others 0):");
    for (n, v) in p.registers.named() {
        if v != 0 {
            let _ = writeln!(s, "  {n:<8} {v:#x}");
        }
    }
    let m = &p.mm;
    let _ = writeln!(s, "\nmm:");
    for (n, v) in [
        ("start_code", m.start_code),
        ("end_code", m.end_code),
        ("start_data", m.start_data),
        ("end_data", m.end_data),
        ("start_brk", m.start_brk),
        ("brk", m.brk),
        ("start_stack", m.start_stack),
        ("arg_start", m.arg_start),
        ("arg_end", m.arg_end),
        ("env_start", m.env_start),
        ("env_end", m.env_end),
    ] {
        let _ = writeln!(s, "  {n:<12} {v:#x}");
    }
    let c = &p.credentials;
    let _ = writeln!(
        s,
        "\ncredentials:  uid={} euid={} suid={} gid={} egid={} sgid={} secure={}{}",
        c.uid,
        c.euid,
        c.suid,
        c.gid,
        c.egid,
        c.sgid,
        u8::from(c.secureexec),
        if c.no_new_privs { " no_new_privs" } else { "" }
    );
    s
}

/// Exit status for an exec error, as shells use: 127 not found, 126 found but not executable.
pub(crate) fn exit_for(e: &Error) -> u8 {
    exit_for_errno(e.errno())
}

/// 127 for ENOENT (not found), 126 otherwise (found but cannot execute), as shells do.
pub(crate) fn exit_for_errno(errno: Errno) -> u8 {
    if errno == Errno::ENOENT {
        127
    } else {
        126
    }
}

pub(crate) fn fail(program: &[u8], e: &Error, json: bool) -> ExitCode {
    report_failure(program, e.errno(), e.is_fatal(), &e.to_string(), json)
}

/// Prints an exec failure (`progload: PROGRAM: <strerror> (<ERRNO>): <why>`, or the JSON
/// failure object) and returns the shell-style exit status.
pub(crate) fn report_failure(
    program: &[u8],
    errno: Errno,
    fatal: bool,
    message: &str,
    json: bool,
) -> ExitCode {
    if json {
        let v = serde_json::json!({
            "ok": false,
            "errno": errno.name(),
            "code": errno.0,
            "fatal": fatal,
            "message": message,
        });
        println!("{v}");
    } else {
        let fatal = if fatal {
            " [after the point of no return: the kernel kills the process with SIGSEGV]"
        } else {
            ""
        };
        eprintln!(
            "progload: {}: {} ({}): {message}{fatal}",
            text(program),
            errno.text(),
            errno.name()
        );
    }
    ExitCode::from(exit_for_errno(errno))
}
