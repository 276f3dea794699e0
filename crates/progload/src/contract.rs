//! The plan as plain data: [`PlanRecord`], what `progload plan --json` prints (the JSON
//! contract, see the README) and what an emulator needs to build the memory from it alone,
//! together with the files: every mapping with its file path and offset, the ranges the
//! kernel zeroes, the vDSO image and the stack bytes.
//!
//! [`Plan::record()`] builds it. With the `serde` feature every type here is `Serialize` and
//! `Deserialize` (and [`Plan`] is `Serialize`, as its record), so the contract can be read back
//! into the same types:
//!
//! - a byte string ([`ByteString`]: argv, envp, execfn, comm, paths) is a JSON string when it is
//!   valid UTF-8, else `{"hex": "<its bytes in hex>"}`: nothing is replaced;
//! - a byte image ([`HexBytes`]: the stack, the vDSO) is a string of hex digits;
//! - pairs (auxv, zero ranges, device numbers) are two-element arrays.
//!
//! To rebuild the memory from a record: for each map in order, map `end - start` bytes of
//! zeroes with its permissions; for a [`MapKind::File`] map, copy the file at `path` from
//! `offset` (bytes past the end of the file stay zero); then zero the [`PlanRecord::zero`]
//! ranges, write the vDSO bytes at its base and the stack bytes at the stack pointer. A
//! [`MapKind::Gate`] map (`[vsyscall]`) is the kernel's, not part of the mm.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::mm::Backing;
use crate::plan::{MmFields, Plan};

/// A byte string that serializes losslessly: a JSON string when valid UTF-8, else
/// `{"hex": "..."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(pub Vec<u8>);

/// Bytes that serialize as one string of lower-case hex digits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl From<&[u8]> for ByteString {
    fn from(b: &[u8]) -> Self {
        ByteString(b.to_vec())
    }
}

impl fmt::Display for ByteString {
    /// The bytes with non-UTF-8 sequences shown as `\xNN` (as `escape_ascii` does for them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for &b in bytes {
        for nibble in [b >> 4, b & 15] {
            s.extend(char::from_digit(u32::from(nibble), 16));
        }
    }
    s
}

/// The bytes of hex text (upper or lower case), or `None` if it is not an even number of hex
/// digits.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// What a mapping is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum MapKind {
    /// A private mapping of the file at `path`, from `offset`.
    File,
    /// Anonymous zero pages (bss, brk; `path` is `[heap]` where /proc/PID/maps says so).
    Anonymous,
    /// The stack.
    Stack,
    /// A special mapping: the vDSO, vvar and their kin (`path` names it).
    Special,
    /// The x86_64 `[vsyscall]` page: the kernel's gate, outside the mm.
    Gate,
}

/// One mapping, as /proc/PID/maps shows it, with its kind and its exact path bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MapRecord {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// File offset (0 unless a file mapping).
    pub offset: u64,
    /// Device (major, minor) of the file.
    pub dev: (u32, u32),
    /// Inode of the file.
    pub inode: u64,
    /// The file's path inside the root, the special mapping's name, or empty.
    pub path: ByteString,
    /// What the mapping is.
    pub kind: MapKind,
}

/// The vDSO: where it is and the bytes written there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VdsoRecord {
    /// `AT_SYSINFO_EHDR`.
    pub base: u64,
    /// The image.
    pub bytes: HexBytes,
}

/// The initial stack.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StackRecord {
    /// The end of the `[stack]` VMA.
    pub top: u64,
    /// The bytes from the stack pointer to `top`.
    pub bytes: HexBytes,
}

/// The new credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CredentialsRecord {
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// `AT_SECURE`.
    pub secure: bool,
    /// `no_new_privs`.
    pub no_new_privs: bool,
}

/// The plan as plain data: the JSON contract of `progload plan --json`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PlanRecord {
    /// The architecture (`x86_64`, `i386`, `aarch64`, `riscv64`).
    pub arch: String,
    /// The kernel release the plan is for.
    pub kernel: String,
    /// The page size.
    pub page_size: u64,
    /// The first instruction.
    pub entry: u64,
    /// The initial stack pointer.
    pub stack_pointer: u64,
    /// /proc/PID/maps at the first instruction, in address order.
    pub maps: Vec<MapRecord>,
    /// Byte ranges of private file pages the kernel zeroes (`padzero`): (address, length).
    pub zero: Vec<(u64, u64)>,
    /// The vDSO, when one is mapped.
    pub vdso: Option<VdsoRecord>,
    /// The stack.
    pub stack: StackRecord,
    /// The auxiliary vector, ending with AT_NULL.
    pub auxv: Vec<(u64, u64)>,
    /// The initial registers, by name.
    pub registers: BTreeMap<String, u64>,
    /// /proc/PID/stat's mm fields.
    pub mm: MmFields,
    /// argv after `#!` and binfmt_misc rewrites.
    pub argv: Vec<ByteString>,
    /// The environment.
    pub envp: Vec<ByteString>,
    /// `AT_EXECFN`.
    pub execfn: ByteString,
    /// `comm`.
    pub comm: ByteString,
    /// The ELF interpreter's path inside the root.
    pub interpreter: Option<ByteString>,
    /// The ELF file the process runs (/proc/PID/exe).
    pub exe: ByteString,
    /// The new credentials.
    pub credentials: CredentialsRecord,
    /// The personality after the exec.
    pub personality: u32,
    /// Whether the stack is executable.
    pub exec_stack: bool,
    /// `AT_EXECFD`, when a binfmt_misc `O`/`C` rule applied.
    pub execfd: Option<u64>,
    /// The file open at `execfd`: the program the rule matched, its path inside the root.
    pub execfd_path: Option<ByteString>,
    /// Whether the layout was randomized.
    pub randomized: bool,
    /// `mmap_base`.
    pub mmap_base: u64,
    /// AArch64 BTI was enabled for the program's segments.
    pub bti: bool,
}

impl<N> Plan<N> {
    /// The plan as plain data (the JSON contract).
    pub fn record(&self) -> PlanRecord {
        let lines = self.maps();
        let maps = lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                let (kind, path) = match self.vmas.get(i).map(|v| &v.backing) {
                    Some(Backing::File { file, .. }) => {
                        (MapKind::File, self.files.get(*file).map(|f| f.path.clone()))
                    }
                    Some(Backing::Anon) => (MapKind::Anonymous, None),
                    Some(Backing::Stack) => (MapKind::Stack, None),
                    Some(Backing::Special(_)) => (MapKind::Special, None),
                    None => (MapKind::Gate, None),
                };
                MapRecord {
                    start: line.start,
                    end: line.end,
                    perms: line.perms,
                    offset: line.offset,
                    dev: line.dev,
                    inode: line.inode,
                    path: ByteString(path.unwrap_or(line.path)),
                    kind,
                }
            })
            .collect();
        let c = &self.credentials;
        PlanRecord {
            arch: String::from(self.arch.name()),
            kernel: alloc::format!("{}", self.kernel),
            page_size: self.page_size,
            entry: self.entry,
            stack_pointer: self.stack.sp,
            maps,
            zero: self.zero.clone(),
            vdso: match (self.vdso_base, &self.vdso_image) {
                (Some(base), Some(image)) => Some(VdsoRecord {
                    base,
                    bytes: HexBytes(image.to_vec()),
                }),
                _ => None,
            },
            stack: StackRecord {
                top: self.stack.top,
                bytes: HexBytes(self.stack.bytes.clone()),
            },
            auxv: self.auxv.clone(),
            registers: self
                .registers
                .named()
                .into_iter()
                .map(|(n, v)| (String::from(n), v))
                .collect(),
            mm: self.mm,
            argv: self.argv.iter().map(|a| ByteString(a.clone())).collect(),
            envp: self.envp.iter().map(|a| ByteString(a.clone())).collect(),
            execfn: ByteString(self.execfn.clone()),
            comm: ByteString(self.comm.clone()),
            interpreter: self.interpreter.clone().map(ByteString),
            exe: ByteString(self.exe.clone()),
            credentials: CredentialsRecord {
                uid: c.uid,
                euid: c.euid,
                suid: c.suid,
                fsuid: c.fsuid,
                gid: c.gid,
                egid: c.egid,
                sgid: c.sgid,
                fsgid: c.fsgid,
                secure: c.secureexec,
                no_new_privs: c.no_new_privs,
            },
            personality: self.personality,
            exec_stack: self.exec_stack,
            execfd: self.execfd,
            execfd_path: self
                .execfd_file
                .as_ref()
                .map(|f| ByteString(f.path.clone())),
            randomized: self.randomized,
            mmap_base: self.mmap_base,
            bti: self.bti,
        }
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::{from_hex, to_hex, ByteString, HexBytes, Plan};
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt;
    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for ByteString {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match core::str::from_utf8(&self.0) {
                Ok(text) => s.serialize_str(text),
                Err(_) => {
                    let mut m = s.serialize_map(Some(1))?;
                    m.serialize_entry("hex", &to_hex(&self.0))?;
                    m.end()
                }
            }
        }
    }

    struct ByteStringVisitor;

    impl<'de> Visitor<'de> for ByteStringVisitor {
        type Value = ByteString;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a string or {"hex": "<hex digits>"}"#)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteString, E> {
            Ok(ByteString(v.as_bytes().to_vec()))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByteString, A::Error> {
            let mut bytes: Option<Vec<u8>> = None;
            while let Some(key) = map.next_key::<String>()? {
                if key != "hex" || bytes.is_some() {
                    return Err(de::Error::custom(r#"expected exactly one key, "hex""#));
                }
                let text: String = map.next_value()?;
                bytes =
                    Some(from_hex(&text).ok_or_else(|| de::Error::custom("\"hex\" is not hex"))?);
            }
            bytes
                .map(ByteString)
                .ok_or_else(|| de::Error::missing_field("hex"))
        }
    }

    impl<'de> Deserialize<'de> for ByteString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ByteStringVisitor)
        }
    }

    impl Serialize for HexBytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&to_hex(&self.0))
        }
    }

    impl<'de> Deserialize<'de> for HexBytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = String::deserialize(d)?;
            from_hex(&text)
                .map(HexBytes)
                .ok_or_else(|| de::Error::custom("not an even number of hex digits"))
        }
    }

    /// A plan serializes as its [`Plan::record()`].
    impl<N> Serialize for Plan<N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.record().serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_odd_or_non_hex_text() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&all)), Some(all));
        assert_eq!(from_hex("ABcd"), Some(alloc::vec![0xab, 0xcd]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None);
    }

    #[test]
    fn display_escapes_only_invalid_bytes() {
        let s = ByteString(b"a\xff\xfeb\xc3\xa9".to_vec());
        assert_eq!(alloc::format!("{s}"), "a\\xff\\xfeb\u{e9}");
    }
}
