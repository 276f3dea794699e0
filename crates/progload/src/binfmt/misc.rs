//! binfmt_misc-style rules (`fs/binfmt_misc.c`): parsing the `register` string, matching, and
//! the flags that change argv, `AT_FLAGS`, `AT_EXECFD` and credentials.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;

use super::handler::{OpenAs, Rewrite, RewriteSource, BUF_SIZE};

/// How a rule recognises a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// `M`: `(buf[offset + i] ^ magic[i]) & mask[i] == 0` for every i.
    Magic {
        /// Offset into the 256-byte header.
        offset: usize,
        /// Magic bytes.
        magic: Vec<u8>,
        /// Mask bytes (same length as `magic`; all 0xff when absent).
        mask: Vec<u8>,
    },
    /// `E`: the text after the last `.` of the exec path equals this.
    Extension(Vec<u8>),
}

/// A binfmt_misc rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name.
    pub name: String,
    /// How it matches.
    pub matcher: Matcher,
    /// The interpreter path.
    pub interpreter: Vec<u8>,
    /// `P`: keep argv\[0\] (and report `AT_FLAGS_PRESERVE_ARGV0`).
    pub preserve_argv0: bool,
    /// `O`: pass the binary as an open fd (`AT_EXECFD`).
    pub open_binary: bool,
    /// `C`: credentials from the binary (implies `O`).
    pub credentials: bool,
    /// `F`: interpreter opened at registration (by root, from the root directory), so the
    /// caller's permissions and cwd do not apply to it.
    pub fix_binary: bool,
    /// Whether the rule is enabled.
    pub enabled: bool,
}

/// `MAX_REGISTER_LENGTH`.
pub const MAX_REGISTER_LENGTH: usize = 1920;

/// `string_unescape_inplace(s, UNESCAPE_HEX)` (`lib/string_helpers.c`): the string ends at
/// its first NUL; `\xH` or `\xHH` becomes a byte; a backslash followed by anything else is
/// kept together with that next byte, which is not examined again (`\\x41` stays 5 bytes).
fn unescape_hex(s: &[u8]) -> Vec<u8> {
    let s = s.split(|&c| c == 0).next().unwrap_or(&[]);
    let mut out = Vec::with_capacity(s.len());
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut i = 0usize;
    while let Some(&c) = s.get(i) {
        if c == b'\\' && s.get(i.saturating_add(1)).is_some() {
            i = i.saturating_add(1);
            let at = |k: usize| s.get(i.saturating_add(k)).copied();
            if at(0) == Some(b'x') {
                if let Some(h) = at(1).and_then(hex) {
                    let (v, used) = match at(2).and_then(hex) {
                        Some(l) => (h.wrapping_shl(4) | l, 3),
                        None => (h, 2),
                    };
                    out.push(v);
                    i = i.saturating_add(used);
                    continue;
                }
            }
            out.push(b'\\');
        }
        if let Some(&c) = s.get(i) {
            out.push(c);
        }
        i = i.saturating_add(1);
    }
    out
}

/// `strchr(p, del)` then `*p++ = '\0'` in `create_entry()`: the field from `*p` up to the next
/// delimiter, which must come before any NUL (the C string would end there).
fn strchr_field<'a>(buf: &'a [u8], p: &mut usize, del: u8) -> Option<&'a [u8]> {
    let rest = buf.get(*p..)?;
    let end = rest.iter().position(|&c| c == del || c == 0)?;
    if rest.get(end) != Some(&del) {
        return None;
    }
    *p = p.saturating_add(end).saturating_add(1);
    rest.get(..end)
}

/// `scanarg()` (`fs/binfmt_misc.c`): the field up to the next delimiter, where `\x` must be
/// followed by two hex digits (which are skipped even when one is the delimiter). NULs are
/// allowed in the field.
fn scanarg<'a>(buf: &'a [u8], p: &mut usize, del: u8) -> Option<&'a [u8]> {
    let start = *p;
    let mut s = start;
    loop {
        let c = *buf.get(s)?;
        s = s.saturating_add(1);
        if c == del {
            break;
        }
        if c == b'\\' && buf.get(s) == Some(&b'x') {
            for _ in 0..2 {
                s = s.saturating_add(1);
                if !buf.get(s)?.is_ascii_hexdigit() {
                    return None;
                }
            }
            s = s.saturating_add(1);
        }
    }
    *p = s;
    buf.get(start..s.saturating_sub(1))
}

/// `kstrtoint(s, 10, &offset)` with the `offset < 0` check of `create_entry()`: an optional
/// `+` (or a `-` with value 0), decimal digits, an optional trailing newline, at most
/// `INT_MAX`.
fn parse_offset(f: &[u8]) -> Option<usize> {
    let (neg, digits) = match f.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, f),
    };
    let digits = digits.strip_suffix(b"\n").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)?
            .checked_add(u32::from(d.wrapping_sub(b'0')))?;
    }
    if v > i32::MAX as u32 || (neg && v != 0) {
        return None;
    }
    usize::try_from(v).ok()
}

impl Rule {
    /// Parses a registration string `:name:type:offset:magic:mask:interpreter:flags`, whose
    /// first character is the field delimiter.
    ///
    /// Mirrors `fs/binfmt_misc.c: create_entry()`, which works on C strings: the name, the
    /// `E` fields, the offset and the interpreter end at the delimiter and may not contain a
    /// NUL; the magic and mask are read by `scanarg()` (NULs allowed, `\x` must be followed by
    /// two hex digits) and decoded up to their first NUL; a mask whose first byte is NUL is no
    /// mask. The name is kept as text (`from_utf8_lossy`): the kernel takes any bytes but only
    /// uses it to name the rule's file.
    ///
    /// # Errors
    /// [`Error::MiscRule`] (EINVAL) for each malformed field.
    #[doc(alias = "create_entry")]
    pub fn parse(s: &[u8]) -> Result<Rule, Error> {
        if s.len() < 11 || s.len() > MAX_REGISTER_LENGTH {
            return Err(Error::MiscRule("length outside 11..=1920"));
        }
        let Some((&del, rest)) = s.split_first() else {
            return Err(Error::MiscRule("empty"));
        };
        // create_entry() pads the buffer with 8 delimiters to simplify parsing.
        let mut buf = Vec::with_capacity(rest.len().saturating_add(8));
        buf.extend_from_slice(rest);
        buf.extend_from_slice(&[del; 8]);
        let mut p = 0usize;
        let name = strchr_field(&buf, &mut p, del).ok_or(Error::MiscRule("bad name"))?;
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err(Error::MiscRule("bad name"));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let kind = buf.get(p).copied();
        if buf.get(p.saturating_add(1)) != Some(&del) {
            return Err(Error::MiscRule("type is neither E nor M"));
        }
        p = p.saturating_add(2);
        let matcher = match kind {
            Some(b'E') => {
                let bad = Error::MiscRule("bad extension");
                strchr_field(&buf, &mut p, del).ok_or(bad.clone())?;
                let ext = strchr_field(&buf, &mut p, del).ok_or(bad.clone())?;
                if ext.is_empty() || ext.contains(&b'/') {
                    return Err(bad);
                }
                let ext = ext.to_vec();
                strchr_field(&buf, &mut p, del).ok_or(bad)?;
                Matcher::Extension(ext)
            }
            Some(b'M') => {
                let bad_offset = Error::MiscRule("bad offset");
                let offset = strchr_field(&buf, &mut p, del).ok_or(bad_offset.clone())?;
                let offset = if offset.is_empty() {
                    0
                } else {
                    parse_offset(offset).ok_or(bad_offset)?
                };
                let magic = scanarg(&buf, &mut p, del).ok_or(Error::MiscRule("bad magic"))?;
                if magic.first().is_none_or(|&c| c == 0) {
                    return Err(Error::MiscRule("empty magic"));
                }
                let magic = unescape_hex(magic);
                let mask = scanarg(&buf, &mut p, del).ok_or(Error::MiscRule("bad mask"))?;
                let mask = if mask.first().is_none_or(|&c| c == 0) {
                    alloc::vec![0xff; magic.len()]
                } else {
                    let m = unescape_hex(mask);
                    if m.len() != magic.len() {
                        return Err(Error::MiscRule("mask and magic differ in length"));
                    }
                    m
                };
                if magic.len() > BUF_SIZE
                    || offset.checked_add(magic.len()).is_none_or(|e| e > BUF_SIZE)
                {
                    return Err(Error::MiscRule("magic beyond the 256-byte header"));
                }
                Matcher::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            _ => return Err(Error::MiscRule("type is neither E nor M")),
        };
        let interp = strchr_field(&buf, &mut p, del).ok_or(Error::MiscRule("bad interpreter"))?;
        if interp.is_empty() {
            return Err(Error::MiscRule("empty interpreter"));
        }
        let mut rule = Rule {
            name,
            matcher,
            interpreter: interp.to_vec(),
            preserve_argv0: false,
            open_binary: false,
            credentials: false,
            fix_binary: false,
            enabled: true,
        };
        // check_special_flags(), then an optional newline, then the end of the string.
        loop {
            match buf.get(p) {
                Some(b'P') => rule.preserve_argv0 = true,
                Some(b'O') => rule.open_binary = true,
                Some(b'C') => {
                    rule.credentials = true;
                    rule.open_binary = true;
                }
                Some(b'F') => rule.fix_binary = true,
                _ => break,
            }
            p = p.saturating_add(1);
        }
        if buf.get(p) == Some(&b'\n') {
            p = p.saturating_add(1);
        }
        if p != rest.len() {
            return Err(Error::MiscRule("unknown flag"));
        }
        Ok(rule)
    }

    /// Whether the rule matches a file with header `buf` exec'ed as `interp_path`
    /// (`bprm->interp`).
    pub fn matches(&self, buf: &[u8; BUF_SIZE], interp_path: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        match &self.matcher {
            Matcher::Extension(ext) => match interp_path.iter().rposition(|&c| c == b'.') {
                Some(dot) => interp_path.get(dot.saturating_add(1)..) == Some(ext.as_slice()),
                None => false,
            },
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => magic.iter().zip(mask).enumerate().all(|(i, (m, k))| {
                buf.get(offset.saturating_add(i))
                    .is_some_and(|b| (b ^ m) & k == 0)
            }),
        }
    }
}

impl Rule {
    /// What `load_misc_binary()` does to the exec when this rule matches.
    pub fn rewrite(&self) -> Rewrite {
        Rewrite {
            source: RewriteSource::Misc(self.name.clone()),
            interpreter: self.interpreter.clone(),
            argument: None,
            preserve_argv0: self.preserve_argv0,
            // `F`: the kernel opened the interpreter when the rule was registered (with the
            // registrant's credentials, root and cwd) and clones that file now, so the
            // caller's cwd and permissions play no part.
            open_as: if self.fix_binary {
                OpenAs::Registrant
            } else {
                OpenAs::Caller
            },
            execfd: self.open_binary,
            credentials_from_program: self.credentials,
        }
    }
}

/// The newest enabled rule matching (rules are listed oldest first; later ones win).
pub fn find<'a>(rules: &'a [Rule], buf: &[u8; BUF_SIZE], interp_path: &[u8]) -> Option<&'a Rule> {
    rules.iter().rev().find(|r| r.matches(buf, interp_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_magic_with_escapes() {
        let r = Rule::parse(b":qemu:M::\\x7fELF\\x02::/usr/bin/qemu:OC").unwrap();
        assert_eq!(
            r.matcher,
            Matcher::Magic {
                offset: 0,
                magic: b"\x7fELF\x02".to_vec(),
                mask: alloc::vec![0xff; 5]
            }
        );
        assert!(r.open_binary && r.credentials && !r.preserve_argv0);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(Rule::parse(b":a:X::abc::/bin/x:").is_err());
        assert!(Rule::parse(b":a/b:E::abc::/bin/x:").is_err());
        assert!(Rule::parse(b":a:M:250:\\x01\\x02\\x03\\x04\\x05\\x06\\x07::/bin/x:").is_err());
        assert!(Rule::parse(b":a:E::abc::/bin/x:A").is_err());
    }

    #[test]
    fn c_string_rules_of_create_entry() {
        // A NUL before the delimiter ends the name's C string: EINVAL.
        assert!(Rule::parse(b":a\0b:E::abc::/bin/x:").is_err());
        assert!(Rule::parse(b":a:E::abc::/bin\0/x:").is_err());
        // scanarg(): \x needs two hex digits.
        assert!(Rule::parse(b":a:M::\\x7::/bin/x:").is_err());
        // kstrtoint(): "-0" and a trailing newline are fine.
        assert!(Rule::parse(b":a:M:-0:ab::/bin/x:").is_ok());
        let r = Rule::parse(b":a:M:3\n:ab::/bin/x:").unwrap();
        assert!(matches!(r.matcher, Matcher::Magic { offset: 3, .. }));
        // A backslash keeps the next byte: "\\\\x41" is 5 bytes, not "\\A".
        let r = Rule::parse(b":a:M::\\\\x41::/bin/x:").unwrap();
        assert!(matches!(r.matcher, Matcher::Magic { ref magic, .. } if magic == b"\\\\x41"));
        // A mask starting with a NUL byte is no mask.
        let r = Rule::parse(b":a:M::ab:\0zz:/bin/x:").unwrap();
        assert!(matches!(r.matcher, Matcher::Magic { ref mask, .. } if mask == &[0xff, 0xff]));
        // Any name bytes but NUL and '/'.
        assert!(Rule::parse(b":py\xff:E::py::/usr/bin/python3:").is_ok());
    }

    #[test]
    fn extension_uses_last_dot_of_whole_path() {
        let r = Rule::parse(b":t:E::foo::/bin/x:").unwrap();
        let buf = [0u8; 256];
        assert!(r.matches(&buf, b"./t.foo"));
        assert!(!r.matches(&buf, b"./tfoo"));
    }
}
