//! The `/proc` files the crate reads, parsed in one place: by the probe (the image of a
//! traced child), by the host profile and by the exec in place (the calling process's own
//! maps, status, personality and descriptors).

// The probe and the exec in place, which read most of these, are x86_64 only.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::fs::File;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use rustix::thread::CapabilitySet;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapsLine {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions as printed, e.g. `"r-xp"`.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// Device as printed, e.g. `"fe:00"`.
    pub dev: String,
    /// Inode number (0 for anonymous mappings).
    pub inode: u64,
    /// Path or pseudo-name (`[stack]`, `[vdso]`, ...) as the kernel printed it, its bytes
    /// exactly (a newline in a path is `\012`); empty for anonymous mappings.
    pub path: Vec<u8>,
}

impl MapsLine {
    /// `end - start`.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the mapping is empty (never true for lines the kernel prints).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `addr` lies in `[start, end)`.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// The `mm_struct` fields visible in `/proc/PID/stat`, plus `brk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmFields {
    /// Field 26 `startcode`.
    pub start_code: u64,
    /// Field 27 `endcode`.
    pub end_code: u64,
    /// Field 28 `startstack`.
    pub start_stack: u64,
    /// Field 45 `start_data`.
    pub start_data: u64,
    /// Field 46 `end_data`.
    pub end_data: u64,
    /// Field 47 `start_brk`.
    pub start_brk: u64,
    /// Field 48 `arg_start`.
    pub arg_start: u64,
    /// Field 49 `arg_end`.
    pub arg_end: u64,
    /// Field 50 `env_start`.
    pub env_start: u64,
    /// Field 51 `env_end`.
    pub env_end: u64,
    /// The current program break, obtained by making the stopped child execute `brk(0)`;
    /// `None` when that was not possible (non-x86_64 code segment, `/proc/PID/mem` not
    /// writable, ...).
    pub brk: Option<u64>,
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parse `/proc/PID/maps`, paths as the bytes the kernel printed.
///
/// # Errors
/// `InvalidData` for a line that is not as the kernel prints them.
pub fn parse_maps(text: &[u8]) -> io::Result<Vec<MapsLine>> {
    fn token(s: &[u8]) -> (&[u8], &[u8]) {
        let s = trim_spaces(s);
        match s.iter().position(|&b| b == b' ') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, b""),
        }
    }
    fn trim_spaces(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|&&b| b == b' ').count();
        &s[n..]
    }
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let bad = || {
            invalid_data(format!(
                "bad maps line: {:?}",
                line.escape_ascii().to_string()
            ))
        };
        let field = |s| std::str::from_utf8(s).map_err(|_| bad());
        let hex = |s| u64::from_str_radix(field(s)?, 16).map_err(|_| bad());
        let (range, rest) = token(line);
        let (perms, rest) = token(rest);
        let (offset, rest) = token(rest);
        let (dev, rest) = token(rest);
        let (inode, rest) = token(rest);
        let dash = range.iter().position(|&b| b == b'-').ok_or_else(bad)?;
        out.push(MapsLine {
            start: hex(&range[..dash])?,
            end: hex(&range[dash + 1..])?,
            perms: field(perms)?.to_string(),
            offset: hex(offset)?,
            dev: field(dev)?.to_string(),
            inode: field(inode)?.parse().map_err(|_| bad())?,
            path: trim_spaces(rest).to_vec(),
        });
    }
    Ok(out)
}

/// Parse the bytes of `/proc/PID/auxv` (native-endian 64-bit pairs) up to and including the
/// terminating `(0, 0)`; one is appended if the data lacks it.
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    parse_auxv_words(bytes, 8)
}

/// [`parse_auxv`] of a process whose words are `word` bytes (4: an ia32 process, whose
/// `saved_auxv` the compat loader filled with 32-bit words).
pub fn parse_auxv_words(bytes: &[u8], word: usize) -> Vec<(u64, u64)> {
    let read = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        u64::from_le_bytes(w)
    };
    let word = if word == 4 { 4 } else { 8 };
    let mut out = Vec::new();
    for pair in bytes.chunks_exact(2 * word) {
        let (k, v) = (read(&pair[..word]), read(&pair[word..]));
        out.push((k, v));
        if k == 0 {
            return out;
        }
    }
    out.push((0, 0));
    out
}

/// Parse the `mm_struct` fields out of the text of `/proc/PID/stat` (`brk` is left `None`).
///
/// # Errors
/// `InvalidData` when a field is missing or not a number.
pub fn parse_stat_mm(text: &str) -> io::Result<MmFields> {
    // The command name (field 2) is in parentheses and may contain anything, so fields are
    // counted from after the *last* ')'. The first field after it is field 3.
    let close = text
        .rfind(')')
        .ok_or_else(|| invalid_data(format!("bad stat line: {text:?}")))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid_data(format!("stat field {n} missing in {text:?}")))
    };
    Ok(MmFields {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        brk: None,
    })
}

/// The text of `/proc/PID/status`, looked up by field name.
#[derive(Debug, Clone)]
pub(crate) struct Status(String);

impl Status {
    pub(crate) fn new(text: String) -> Status {
        Status(text)
    }

    /// The value of `name:` (trimmed), if the field is there.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    }

    /// A list of ids (`Uid`, `Gid`, `Groups`); `None` when the field is missing or one of
    /// them is not a number.
    pub(crate) fn ids(&self, name: &str) -> Option<Vec<u32>> {
        self.field(name)?
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect()
    }

    /// A decimal number (`TracerPid`, `voluntary_ctxt_switches`).
    pub(crate) fn number(&self, name: &str) -> Option<u64> {
        self.field(name)?.parse().ok()
    }

    /// A capability set (`CapEff`, `CapBnd`, printed in hexadecimal); empty when the field
    /// is missing.
    pub(crate) fn capabilities(&self, name: &str) -> CapabilitySet {
        self.field(name)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .map_or(CapabilitySet::empty(), CapabilitySet::from_bits_retain)
    }

    /// A `0`/`1` flag (`NoNewPrivs`).
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.field(name) == Some("1")
    }
}

/// A process (or thread) directory of `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proc {
    /// `/proc/self`: the calling process.
    Current,
    /// `/proc/thread-self`: the calling thread (credentials are per thread).
    CurrentThread,
    /// `/proc/PID`.
    Pid(i32),
}

impl Proc {
    /// The path of `name` in this directory.
    pub(crate) fn path(self, name: &str) -> String {
        match self {
            Proc::Current => format!("/proc/self/{name}"),
            Proc::CurrentThread => format!("/proc/thread-self/{name}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{name}"),
        }
    }

    /// A text file (bytes that are not UTF-8 become U+FFFD; `maps` is read as bytes).
    fn text(self, name: &str) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&std::fs::read(self.path(name))?).into_owned())
    }

    /// `maps`.
    pub(crate) fn maps(self) -> io::Result<Vec<MapsLine>> {
        parse_maps(&std::fs::read(self.path("maps"))?)
    }

    /// `auxv`, with its terminating `(0, 0)`.
    pub(crate) fn auxv(self) -> io::Result<Vec<(u64, u64)>> {
        Ok(parse_auxv(&std::fs::read(self.path("auxv"))?))
    }

    /// `auxv` of a process whose words are `word` bytes.
    pub(crate) fn auxv_words(self, word: usize) -> io::Result<Vec<(u64, u64)>> {
        Ok(parse_auxv_words(&std::fs::read(self.path("auxv"))?, word))
    }

    /// The `mm_struct` fields of `stat`.
    pub(crate) fn stat_mm(self) -> io::Result<MmFields> {
        parse_stat_mm(&self.text("stat")?)
    }

    /// `status`.
    pub(crate) fn status(self) -> io::Result<Status> {
        Ok(Status::new(self.text("status")?))
    }

    /// `personality` (printed in hexadecimal).
    pub(crate) fn personality(self) -> io::Result<u32> {
        let text = self.text("personality")?;
        u32::from_str_radix(text.trim(), 16)
            .map_err(|e| invalid_data(format!("personality {text:?}: {e}")))
    }

    /// `comm`, without its newline.
    pub(crate) fn comm(self) -> io::Result<Vec<u8>> {
        let mut comm = std::fs::read(self.path("comm"))?;
        if comm.ends_with(b"\n") {
            comm.pop();
        }
        Ok(comm)
    }

    /// The target of `exe`.
    pub(crate) fn exe(self) -> io::Result<PathBuf> {
        std::fs::read_link(self.path("exe"))
    }

    /// `buf.len()` bytes of memory at `addr`, through `mem`.
    pub(crate) fn read_mem(self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        File::open(self.path("mem"))?.read_exact_at(buf, addr)
    }

    /// `mem`, open for reading and writing (writes go through whatever the protection).
    pub(crate) fn open_mem(self) -> io::Result<File> {
        File::options()
            .read(true)
            .write(true)
            .open(self.path("mem"))
    }

    /// The open descriptors listed in `fd`, in increasing order (the directory's own
    /// descriptor, closed once listed, included).
    pub(crate) fn fds(self) -> io::Result<Vec<RawFd>> {
        let mut fds: Vec<RawFd> = std::fs::read_dir(self.path("fd"))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort_unstable();
        Ok(fds)
    }

    /// The number of threads, from `task`.
    pub(crate) fn thread_count(self) -> io::Result<usize> {
        Ok(std::fs::read_dir(self.path("task"))?.count())
    }

    /// The `/proc/self/fd/N` path that reopens descriptor `fd` of the calling process.
    pub(crate) fn fd_path(fd: RawFd) -> String {
        Proc::Current.path(&format!("fd/{fd}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_need_the_colon() {
        let s = Status::new(
            "Uid:\t0\t1\t2\t3\nUidX:\t9\nCapEff:\t0000000000080000\nNoNewPrivs:\t1\n".into(),
        );
        assert_eq!(s.ids("Uid"), Some(vec![0, 1, 2, 3]));
        assert!(s.capabilities("CapEff").contains(CapabilitySet::SYS_PTRACE));
        assert!(!s.capabilities("CapEff").contains(CapabilitySet::SYS_CHROOT));
        assert!(s.flag("NoNewPrivs"));
        assert_eq!(s.field("Gid"), None);
    }

    #[test]
    fn maps_paths_keep_their_bytes() {
        let text =
            b"00400000-00401000 r-xp 00000000 fe:01 42                         /d/a\xff\\012b\n\
00401000-00402000 rw-p 00000000 00:00 0 \n\
7ffc0000-7ffc1000 rw-p 00000000 00:00 0                          [stack]\n";
        let maps = parse_maps(text).unwrap();
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].path, b"/d/a\xff\\012b");
        assert_eq!((maps[0].dev.as_str(), maps[0].inode), ("fe:01", 42));
        assert!(maps[1].path.is_empty());
        assert_eq!(maps[2].path, b"[stack]");
        // Two paths that differ only in their invalid bytes stay different.
        let other = parse_maps(b"0-1000 r--p 00000000 fe:01 42 /d/a\xfe\\012b\n").unwrap();
        assert_ne!(other[0].path, maps[0].path);
        assert!(parse_maps(b"zz-1000 r--p 0 fe:01 42 /x\n").is_err());
    }

    #[test]
    fn own_maps_and_auxv_parse() {
        let maps = Proc::Current.maps().unwrap();
        assert!(maps.iter().any(|m| m.path == b"[stack]"));
        assert_eq!(Proc::Current.auxv().unwrap().last(), Some(&(0, 0)));
        assert!(Proc::Current.thread_count().unwrap() >= 1);
    }
}
