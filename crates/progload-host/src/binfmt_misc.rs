//! The host's registered binfmt_misc rules, read from `/proc/sys/fs/binfmt_misc`.
//!
//! Each entry file there shows a rule as `entry_status()` (`fs/binfmt_misc.c`) prints it:
//! `enabled`/`disabled`, `interpreter PATH`, `flags: POCF`, then `extension .EXT` or `offset N`,
//! `magic HEX` and `mask HEX`. The directory lists the newest registration first, which is
//! also the order the kernel tries them in; [`registered_rules`] returns them oldest first,
//! the order [`progload::LoadRequest::misc_rules`] takes.
//!
//! Not modelled: an `F` rule's interpreter is the file the kernel opened at registration;
//! the plan opens the path it was registered with, from the root, now.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use progload::binfmt::misc::{Matcher, Rule};

/// Where binfmt_misc is mounted on a systemd host (and where `check` registers rules).
pub const MOUNT: &str = "/proc/sys/fs/binfmt_misc";

/// The rules registered with this kernel, oldest first, with their enabled state. Empty when
/// binfmt_misc is not mounted, or when its `status` says `disabled` (the kernel then matches
/// no rule).
///
/// # Errors
/// When an entry cannot be read or does not parse.
pub fn registered_rules() -> io::Result<Vec<Rule>> {
    registered_rules_in(Path::new(MOUNT))
}

/// [`registered_rules`] of a binfmt_misc mounted at `dir`.
///
/// # Errors
/// When an entry cannot be read or does not parse.
pub fn registered_rules_in(dir: &Path) -> io::Result<Vec<Rule>> {
    match fs::read(dir.join("status")) {
        Ok(s) if s.trim_ascii() == b"enabled" => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut rules = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "status" || name == "register" {
            continue;
        }
        let text = match fs::read(entry.path()) {
            Ok(t) => t,
            // Unregistered since readdir listed it (`echo -1 > NAME`): no longer a rule.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let rule = parse_entry(&name.to_string_lossy(), &text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a binfmt_misc entry",
                    dir.join(name.as_bytes().escape_ascii().to_string())
                        .display()
                ),
            )
        })?;
        rules.push(rule);
    }
    // readdir lists the newest first.
    rules.reverse();
    Ok(rules)
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

/// A rule from the text of its entry file.
pub fn parse_entry(name: &str, text: &[u8]) -> Option<Rule> {
    let mut enabled = None;
    let mut interpreter = None;
    let mut flags: &[u8] = b"";
    let mut extension = None;
    let mut offset = 0usize;
    let mut magic = None;
    let mut mask = None;
    for line in text.split(|&c| c == b'\n') {
        if line == b"enabled" || line == b"disabled" {
            enabled = Some(line == b"enabled");
        } else if let Some(v) = line.strip_prefix(b"interpreter ") {
            interpreter = Some(v.to_vec());
        } else if let Some(v) = line.strip_prefix(b"flags: ") {
            flags = v;
        } else if line == b"flags:" {
            flags = b"";
        } else if let Some(v) = line.strip_prefix(b"extension .") {
            extension = Some(v.to_vec());
        } else if let Some(v) = line.strip_prefix(b"offset ") {
            offset = std::str::from_utf8(v).ok()?.parse().ok()?;
        } else if let Some(v) = line.strip_prefix(b"magic ") {
            magic = Some(unhex(v)?);
        } else if let Some(v) = line.strip_prefix(b"mask ") {
            mask = Some(unhex(v)?);
        }
    }
    let matcher = match (extension, magic) {
        (Some(e), None) => Matcher::Extension(e),
        (None, Some(magic)) => {
            let mask = mask.unwrap_or_else(|| vec![0xff; magic.len()]);
            if mask.len() != magic.len() {
                return None;
            }
            Matcher::Magic {
                offset,
                magic,
                mask,
            }
        }
        _ => return None,
    };
    let has = |c: u8| flags.contains(&c);
    Some(Rule {
        name: name.to_string(),
        matcher,
        interpreter: interpreter?,
        preserve_argv0: has(b'P'),
        // The kernel shows `O` for a `C` rule too (C implies O).
        open_binary: has(b'O') || has(b'C'),
        credentials: has(b'C'),
        fix_binary: has(b'F'),
        enabled: enabled?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_as_the_kernel_prints_them() {
        let r = parse_entry(
            "qemu-aarch64",
            b"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        assert!(r.enabled && r.preserve_argv0 && r.open_binary && r.credentials && r.fix_binary);
        assert_eq!(r.interpreter, b"/usr/bin/qemu-aarch64-static");
        match &r.matcher {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => {
                assert_eq!(*offset, 0);
                assert_eq!(magic.len(), 20);
                assert_eq!(mask.len(), 20);
                assert_eq!(magic[..4], *b"\x7fELF");
            }
            m => panic!("{m:?}"),
        }
        let r = parse_entry(
            "jar",
            b"disabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        )
        .unwrap();
        assert!(!r.enabled && !r.open_binary);
        assert_eq!(r.matcher, Matcher::Extension(b"jar".to_vec()));
        assert!(parse_entry("x", b"enabled\nflags: \n").is_none());
    }
}
