//! Literal ports of the kernel's C parsers, used as differential oracles.
//!
//! Each function follows the C code statement by statement, with C string semantics (a string
//! ends at its first NUL, `strchr` stops at a NUL, `strnchr` stops at a NUL). They are kept
//! deliberately close to the C rather than idiomatic, so that a reader can check them against
//! the source line by line.

/// `BINPRM_BUF_SIZE`.
pub const BUF_SIZE: usize = 256;

fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// `next_non_spacetab(first, last)`.
fn next_non_spacetab(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| !spacetab(buf[i]))
}

/// `next_terminator(first, last)`.
fn next_terminator(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| spacetab(buf[i]) || buf[i] == 0)
}

/// The C string starting at `from`.
fn cstr(buf: &[u8], from: usize) -> Vec<u8> {
    buf[from..]
        .iter()
        .take_while(|&&c| c != 0)
        .copied()
        .collect()
}

/// Outcome of [`load_script`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// The buffer does not start with `#!`: the next handler is tried.
    NotMine,
    /// `-ENOEXEC` from the parser.
    NoExec,
    /// The interpreter name and the optional argument, as `copy_string_kernel` would push them.
    Line(Vec<u8>, Option<Vec<u8>>),
}

/// `fs/binfmt_script.c: load_script()`, the parsing half (up to the `copy_string_kernel` calls).
pub fn load_script(input: &[u8; BUF_SIZE]) -> Script {
    let mut buf = *input;
    if buf[0] != b'#' || buf[1] != b'!' {
        return Script::NotMine;
    }
    let buf_end = BUF_SIZE - 1;
    // i_end = strnchr(bprm->buf, sizeof(bprm->buf), '\n'): stops at a NUL.
    let mut i_end = None;
    for (i, &c) in buf.iter().enumerate() {
        if c == b'\n' {
            i_end = Some(i);
            break;
        }
        if c == 0 {
            break;
        }
    }
    let mut i_end = match i_end {
        Some(i) => i,
        None => {
            let Some(first) = next_non_spacetab(&buf, 2, buf_end) else {
                return Script::NoExec;
            };
            if next_terminator(&buf, first, buf_end).is_none() {
                return Script::NoExec;
            }
            buf_end
        }
    };
    while spacetab(buf[i_end - 1]) {
        i_end -= 1;
    }
    let i_name = match next_non_spacetab(&buf, 2, i_end) {
        Some(i) if i != i_end => i,
        _ => return Script::NoExec,
    };
    let i_sep = next_terminator(&buf, i_name, i_end);
    let i_arg = match i_sep {
        Some(sep) if buf[sep] != 0 => next_non_spacetab(&buf, sep, i_end),
        _ => None,
    };
    buf[i_end] = 0;
    let arg = i_arg.map(|a| {
        buf[i_sep.expect("i_arg implies i_sep")] = 0;
        cstr(&buf, a)
    });
    Script::Line(cstr(&buf, i_name), arg)
}

/// A binfmt_misc entry as `create_entry()` leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `e->name`.
    pub name: Vec<u8>,
    /// `Magic` flag set (type `M`).
    pub magic_type: bool,
    /// `e->offset`.
    pub offset: usize,
    /// `e->magic` (decoded for `M`, the extension for `E`).
    pub magic: Vec<u8>,
    /// `e->mask` (decoded), `None` when absent.
    pub mask: Option<Vec<u8>>,
    /// `e->interpreter`.
    pub interpreter: Vec<u8>,
    /// `P`.
    pub preserve_argv0: bool,
    /// `O` (or implied by `C`).
    pub open_binary: bool,
    /// `C`.
    pub credentials: bool,
    /// `F`.
    pub open_file: bool,
}

/// `strchr(p, c)` over `buf`: the index of the first `c`, `None` at a NUL first (a NUL `c`
/// finds the terminator).
fn strchr(buf: &[u8], from: usize, c: u8) -> Option<usize> {
    for (i, &b) in buf.iter().enumerate().skip(from) {
        if b == c {
            return Some(i);
        }
        if b == 0 {
            return None;
        }
    }
    None
}

/// `scanarg()`.
fn scanarg(buf: &mut [u8], mut s: usize, del: u8) -> Option<usize> {
    loop {
        let c = *buf.get(s)?;
        s += 1;
        if c == del {
            break;
        }
        if c == b'\\' && buf.get(s) == Some(&b'x') {
            s += 1;
            let d1 = *buf.get(s)?;
            s += 1;
            if !d1.is_ascii_hexdigit() {
                return None;
            }
            let d2 = *buf.get(s)?;
            s += 1;
            if !d2.is_ascii_hexdigit() {
                return None;
            }
        }
    }
    buf[s - 1] = 0;
    Some(s)
}

fn hex_to_bin(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `string_unescape_inplace(s, UNESCAPE_HEX)` on the C string at `from`: the decoded bytes.
pub fn unescape_hex(buf: &[u8], from: usize) -> Vec<u8> {
    let src = {
        let mut v = cstr(buf, from);
        v.push(0);
        v
    };
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut size = usize::MAX;
    while src[i] != 0 && {
        size -= 1;
        size != 0
    } {
        if src[i] == b'\\' && src[i + 1] != 0 && size > 1 {
            i += 1;
            size -= 1;
            // unescape_hex(&src, &out)
            if src[i] == b'x' {
                if let Some(d) = hex_to_bin(src[i + 1]) {
                    let mut num = d;
                    let mut q = i + 2;
                    if let Some(d2) = hex_to_bin(src[q]) {
                        q += 1;
                        num = (num << 4) | d2;
                    }
                    out.push(num);
                    i = q;
                    continue;
                }
            }
            out.push(b'\\');
        }
        out.push(src[i]);
        i += 1;
    }
    out
}

/// `kstrtoint(s, 10, &res)`.
fn kstrtoint(s: &[u8]) -> Option<i32> {
    fn kstrtoull_raw(s: &[u8]) -> Option<u64> {
        let mut v: u64 = 0;
        let mut n = 0;
        for &c in s {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let mut rest = &s[n..];
        if rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        if !rest.is_empty() {
            return None;
        }
        Some(v)
    }
    let v: i64 = if s.first() == Some(&b'-') {
        let t = kstrtoull_raw(&s[1..])?;
        let neg = (t as i64).wrapping_neg();
        if neg > 0 {
            return None;
        }
        neg
    } else {
        let s = s.strip_prefix(b"+").unwrap_or(s);
        let t = kstrtoull_raw(s)?;
        if (t as i64) < 0 {
            return None;
        }
        t as i64
    };
    i32::try_from(v).ok()
}

/// `MAX_REGISTER_LENGTH`.
pub const MAX_REGISTER_LENGTH: usize = 1920;

/// `fs/binfmt_misc.c: create_entry()`: `None` is `-EINVAL`.
pub fn create_entry(input: &[u8]) -> Option<Entry> {
    let count = input.len();
    if !(11..=MAX_REGISTER_LENGTH).contains(&count) {
        return None;
    }
    let del = input[0];
    let mut buf = input.to_vec();
    buf.extend_from_slice(&[del; 8]);
    let mut p = 1usize;

    let name_at = p;
    let s = strchr(&buf, p, del)?;
    buf[s] = 0;
    p = s + 1;
    let name = cstr(&buf, name_at);
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return None;
    }

    let magic_type = match buf[p] {
        b'E' => false,
        b'M' => true,
        _ => return None,
    };
    p += 1;
    if buf[p] != del {
        return None;
    }
    p += 1;

    let (offset, magic, mask);
    if magic_type {
        let s = strchr(&buf, p, del)?;
        buf[s] = 0;
        let mut off = 0i32;
        if p != s {
            off = kstrtoint(&cstr(&buf, p))?;
            if off < 0 {
                return None;
            }
        }
        p = s;
        if buf[p] != 0 {
            return None;
        }
        p += 1;

        let magic_at = p;
        p = scanarg(&mut buf, p, del)?;
        if buf[magic_at] == 0 {
            return None;
        }
        let mask_at = p;
        p = scanarg(&mut buf, p, del)?;
        let has_mask = buf[mask_at] != 0;

        let m = unescape_hex(&buf, magic_at);
        let size = m.len();
        let k = if has_mask {
            let k = unescape_hex(&buf, mask_at);
            if k.len() != size {
                return None;
            }
            Some(k)
        } else {
            None
        };
        if size > BUF_SIZE || ((BUF_SIZE - size) as i64) < i64::from(off) {
            return None;
        }
        offset = off as usize;
        magic = m;
        mask = k;
    } else {
        let s = strchr(&buf, p, del)?;
        buf[s] = 0;
        p = s + 1;

        let magic_at = p;
        let s = strchr(&buf, p, del)?;
        buf[s] = 0;
        p = s + 1;
        let ext = cstr(&buf, magic_at);
        if ext.is_empty() || ext.contains(&b'/') {
            return None;
        }

        let s = strchr(&buf, p, del)?;
        buf[s] = 0;
        p = s + 1;
        offset = 0;
        magic = ext;
        mask = None;
    }

    let interp_at = p;
    let s = strchr(&buf, p, del)?;
    buf[s] = 0;
    p = s + 1;
    let interpreter = cstr(&buf, interp_at);
    if interpreter.is_empty() {
        return None;
    }

    let mut e = Entry {
        name,
        magic_type,
        offset,
        magic,
        mask,
        interpreter,
        preserve_argv0: false,
        open_binary: false,
        credentials: false,
        open_file: false,
    };
    loop {
        match buf.get(p) {
            Some(b'P') => e.preserve_argv0 = true,
            Some(b'O') => e.open_binary = true,
            Some(b'C') => {
                e.credentials = true;
                e.open_binary = true;
            }
            Some(b'F') => e.open_file = true,
            _ => break,
        }
        p += 1;
    }
    if buf.get(p) == Some(&b'\n') {
        p += 1;
    }
    if p != count {
        return None;
    }
    Some(e)
}

/// `search_binfmt_handler()` for one enabled entry: whether it matches `buf` exec'ed as
/// `interp` (`bprm->interp`, a C string).
pub fn entry_matches(e: &Entry, buf: &[u8; BUF_SIZE], interp: &[u8]) -> bool {
    let interp: Vec<u8> = interp.iter().take_while(|&&c| c != 0).copied().collect();
    if !e.magic_type {
        let Some(dot) = interp.iter().rposition(|&c| c == b'.') else {
            return false;
        };
        // strcmp(e->magic, p + 1)
        return e.magic == interp[dot + 1..];
    }
    let s = &buf[e.offset..];
    match &e.mask {
        Some(mask) => (0..e.magic.len()).all(|j| (s[j] ^ e.magic[j]) & mask[j] == 0),
        None => (0..e.magic.len()).all(|j| s[j] ^ e.magic[j] == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> [u8; BUF_SIZE] {
        let mut out = [0u8; BUF_SIZE];
        out[..s.len()].copy_from_slice(s);
        out
    }

    #[test]
    fn script_port_basics() {
        assert_eq!(
            load_script(&b(b"#!/x  arg1   arg2  \n")),
            Script::Line(b"/x".to_vec(), Some(b"arg1   arg2".to_vec()))
        );
        assert_eq!(load_script(&b(b"#!   \n")), Script::NoExec);
        assert_eq!(load_script(&b(b"#!")), Script::Line(Vec::new(), None));
        assert_eq!(load_script(&b(b"ELF")), Script::NotMine);
    }

    #[test]
    fn misc_port_basics() {
        let e = create_entry(b":qemu:M::\\x7fELF\\x02::/usr/bin/qemu:OC").unwrap();
        assert_eq!(e.magic, b"\x7fELF\x02");
        assert!(e.mask.is_none() && e.open_binary && e.credentials);
        assert!(create_entry(b":a:M::\\x7::/bin/x:").is_none());
        assert_eq!(create_entry(b":a:M:-0:ab::/bin/x:").unwrap().offset, 0);
        assert_eq!(create_entry(b":a:M:3\n:ab::/bin/x:").unwrap().offset, 3);
        assert!(create_entry(b":a:E::x::/bin/x:\n").is_some());
        assert!(create_entry(b":a\0b:E::x::/bin/x:").is_none());
    }
}
