//! binfmt_misc-style rules (`fs/binfmt_misc.c`): parsing the `register` string, matching, and
//! the flags that change argv, `AT_FLAGS`, `AT_EXECFD` and credentials.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;

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
    /// `F`: interpreter opened at registration.
    pub fix_binary: bool,
    /// Whether the rule is enabled.
    pub enabled: bool,
}

/// `MAX_REGISTER_LENGTH`.
pub const MAX_REGISTER_LENGTH: usize = 1920;

fn unescape_hex(s: &[u8]) -> Vec<u8> {
    // string_unescape_inplace(UNESCAPE_HEX): "\xHH" (one or two hex digits) becomes a byte;
    // anything else is kept; a literal NUL ends the string.
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while let Some(&c) = s.get(i) {
        if c == 0 {
            break;
        }
        let at = |k: usize| s.get(i.saturating_add(k)).copied();
        if c == b'\\' && at(1) == Some(b'x') {
            if let Some(h) = at(2).and_then(hex) {
                let (v, used) = match at(3).and_then(hex) {
                    Some(l) => (h.wrapping_shl(4) | l, 4),
                    None => (h, 3),
                };
                out.push(v);
                i = i.saturating_add(used);
                continue;
            }
        }
        out.push(c);
        i = i.saturating_add(1);
    }
    out
}

impl Rule {
    /// Parses a registration string `:name:type:offset:magic:mask:interpreter:flags`, whose
    /// first character is the field delimiter (`create_entry()`).
    ///
    /// # Errors
    /// [`Error::MiscRule`] (EINVAL) for each malformed field.
    pub fn parse(s: &[u8]) -> Result<Rule, Error> {
        if s.len() < 11 || s.len() > MAX_REGISTER_LENGTH {
            return Err(Error::MiscRule("length outside 11..=1920"));
        }
        let Some((&del, rest)) = s.split_first() else {
            return Err(Error::MiscRule("empty"));
        };
        let fields: Vec<&[u8]> = rest.splitn(7, |&c| c == del).collect();
        let &[name, kind, offset, magic, mask, interp, flags] = fields.as_slice() else {
            return Err(Error::MiscRule("fewer than 7 fields"));
        };
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err(Error::MiscRule("bad name"));
        }
        let name = String::from_utf8(name.to_vec()).map_err(|_| Error::MiscRule("bad name"))?;
        let matcher = match kind {
            b"E" => {
                if magic.is_empty() || magic.contains(&b'/') {
                    return Err(Error::MiscRule("bad extension"));
                }
                Matcher::Extension(magic.to_vec())
            }
            b"M" => {
                let offset = if offset.is_empty() {
                    0
                } else {
                    core::str::from_utf8(offset)
                        .ok()
                        .and_then(|o| o.parse::<u32>().ok())
                        .ok_or(Error::MiscRule("bad offset"))? as usize
                };
                let magic = unescape_hex(magic);
                if magic.is_empty() {
                    return Err(Error::MiscRule("empty magic"));
                }
                let mask = if mask.is_empty() {
                    alloc::vec![0xff; magic.len()]
                } else {
                    let m = unescape_hex(mask);
                    if m.len() != magic.len() {
                        return Err(Error::MiscRule("mask and magic differ in length"));
                    }
                    m
                };
                if magic.len() > super::BUF_SIZE
                    || offset
                        .checked_add(magic.len())
                        .is_none_or(|e| e > super::BUF_SIZE)
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
        let flags = flags.strip_suffix(b"\n").unwrap_or(flags);
        for &f in flags {
            match f {
                b'P' => rule.preserve_argv0 = true,
                b'O' => rule.open_binary = true,
                b'C' => {
                    rule.credentials = true;
                    rule.open_binary = true;
                }
                b'F' => rule.fix_binary = true,
                _ => return Err(Error::MiscRule("unknown flag")),
            }
        }
        Ok(rule)
    }

    /// Whether the rule matches a file with header `buf` exec'ed as `interp_path`
    /// (`bprm->interp`).
    pub fn matches(&self, buf: &[u8; super::BUF_SIZE], interp_path: &[u8]) -> bool {
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

/// The newest enabled rule matching (rules are listed oldest first; later ones win).
pub fn find<'a>(
    rules: &'a [Rule],
    buf: &[u8; super::BUF_SIZE],
    interp_path: &[u8],
) -> Option<&'a Rule> {
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
    fn extension_uses_last_dot_of_whole_path() {
        let r = Rule::parse(b":t:E::foo::/bin/x:").unwrap();
        let buf = [0u8; 256];
        assert!(r.matches(&buf, b"./t.foo"));
        assert!(!r.matches(&buf, b"./tfoo"));
    }
}
