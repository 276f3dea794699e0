//! `#!` scripts, exactly as `fs/binfmt_script.c: load_script()` reads the 256-byte buffer.

use alloc::vec::Vec;

use crate::error::ScriptProblem;

use super::handler::{OpenAs, Rewrite, RewriteSource, BUF_SIZE};

/// A parsed `#!` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter path, exactly as written.
    pub interpreter: Vec<u8>,
    /// The optional single argument (everything after the first blank, trailing blanks trimmed).
    pub argument: Option<Vec<u8>>,
}

impl Shebang {
    /// What `load_script()` does to the exec: `argv[0]` becomes the filename, preceded by
    /// the argument and the interpreter, opened as the caller.
    pub fn rewrite(self) -> Rewrite {
        Rewrite {
            source: RewriteSource::Script,
            interpreter: self.interpreter,
            argument: self.argument,
            preserve_argv0: false,
            open_as: OpenAs::Caller,
            execfd: false,
            credentials_from_program: false,
        }
    }
}

fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// First index in `[first, last]` (inclusive) whose byte is not a space or tab.
fn next_non_spacetab(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| buf.get(i).is_some_and(|&c| !spacetab(c)))
}

/// First index in `[first, last]` (inclusive) whose byte is a space, tab or NUL.
fn next_terminator(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| buf.get(i).is_some_and(|&c| spacetab(c) || c == 0))
}

/// Parses the first 256 bytes of a file (zero padded when shorter). `Ok(None)` when the
/// file does not start with `#!` (the next handler is tried).
///
/// # Errors
/// A [`ScriptProblem`] (the kernel's ENOEXEC cases).
pub fn parse(buf: &[u8; BUF_SIZE]) -> Result<Option<Shebang>, ScriptProblem> {
    if !buf.starts_with(b"#!") {
        return Ok(None);
    }
    let buf_end = BUF_SIZE - 1;
    let mut i_end = match buf.iter().position(|&c| c == b'\n') {
        Some(i) => i,
        None => {
            let first = next_non_spacetab(buf, 2, buf_end).ok_or(ScriptProblem::Blank)?;
            if next_terminator(buf, first, buf_end).is_none() {
                return Err(ScriptProblem::Truncated);
            }
            buf_end
        }
    };
    while let Some(prev) = i_end.checked_sub(1).filter(|&p| p >= 2) {
        if !buf.get(prev).copied().is_some_and(spacetab) {
            break;
        }
        i_end = prev;
    }
    let i_name = match next_non_spacetab(buf, 2, i_end) {
        Some(i) if i != i_end => i,
        _ => return Err(ScriptProblem::NoInterpreter),
    };
    let i_sep = next_terminator(buf, i_name, i_end);
    let i_arg = match i_sep {
        Some(sep) if buf.get(sep) != Some(&0) => next_non_spacetab(buf, sep, i_end),
        _ => None,
    };
    // The kernel writes NULs at i_end and (with an argument) at i_sep; each string then runs
    // to its first NUL.
    let until_nul = |from: usize, end: usize| -> Vec<u8> {
        let s = buf.get(from..end).unwrap_or(&[]);
        s.split(|&c| c == 0).next().unwrap_or(&[]).to_vec()
    };
    let name_end = match (i_arg, i_sep) {
        (Some(_), Some(sep)) => sep,
        _ => i_end,
    };
    let interpreter = until_nul(i_name, name_end);
    let argument = i_arg.map(|a| until_nul(a, i_end));
    Ok(Some(Shebang {
        interpreter,
        argument,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(s: &[u8]) -> [u8; 256] {
        let mut b = [0u8; 256];
        let n = s.len().min(256);
        b[..n].copy_from_slice(&s[..n]);
        b
    }

    #[test]
    fn one_argument_keeps_inner_blanks() {
        let r = parse(&buf(b"#!/x  arg1   arg2  \n")).unwrap().unwrap();
        assert_eq!(r.interpreter, b"/x");
        assert_eq!(r.argument.as_deref(), Some(&b"arg1   arg2"[..]));
    }

    #[test]
    fn nul_ends_argument() {
        let r = parse(&buf(b"#!/x a\0b c\n")).unwrap().unwrap();
        assert_eq!(r.argument.as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn bare_hash_bang_names_empty_interpreter() {
        let r = parse(&buf(b"#!")).unwrap().unwrap();
        assert_eq!(r.interpreter, b"");
        assert_eq!(r.argument, None);
    }

    #[test]
    fn long_line_without_terminator_is_truncated() {
        let mut v = b"#!/".to_vec();
        v.extend(core::iter::repeat_n(b'x', 300));
        assert_eq!(parse(&buf(&v)), Err(ScriptProblem::Truncated));
    }

    #[test]
    fn long_argument_is_cut_at_byte_255() {
        let mut v = b"#!/opt/abc/elfecho ".to_vec();
        v.extend(core::iter::repeat_n(b'A', 300));
        let r = parse(&buf(&v)).unwrap().unwrap();
        assert_eq!(r.argument.unwrap().len(), 236);
    }

    #[test]
    fn blank_line_is_rejected() {
        assert_eq!(parse(&buf(b"#!   \n")), Err(ScriptProblem::NoInterpreter));
    }
}
