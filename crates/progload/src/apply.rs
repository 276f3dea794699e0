//! Applying a plan: the [`AddressSpace`] trait backends implement, the simulated address
//! space, and /proc/PID/maps rendering.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::contract::ByteString;
use crate::mm::{Backing, Vma, Vmas};
use crate::plan::Plan;
use crate::prot::Prot;

/// A target address space. Every address and length is page aligned; the plan has already
/// chosen every address, so a backend never places anything itself.
pub trait AddressSpace {
    /// The file handle type (the filesystem's node type).
    type File;
    /// The backend's own error.
    type Error;

    /// Drops every mapping (`exec_mmap`: the old mm goes away).
    ///
    /// # Errors
    /// The backend's.
    fn reset(&mut self) -> Result<(), Self::Error>;
    /// Maps `len` bytes of `file` at `offset` privately at `addr` with `prot` (r/w/x bits).
    ///
    /// `file` is a node of the [`FileSystem`](crate::FileSystem) the plan was made in (the
    /// file's path is in the plan's [`files`](crate::Plan::files)). A backend that copies the
    /// bytes in, as an emulator does, reads them through that filesystem:
    /// [`crate::fs::read_full`]`(&fs, file, offset, &mut buf)` loops over short reads and
    /// returns how many bytes the file had; the rest of a page past the end of the file stays
    /// zero, as in a private mapping. (`progload_host::HostFs`'s nodes are `O_PATH`
    /// descriptors, which cannot be read themselves: its `read_at` reads them.)
    ///
    /// # Errors
    /// The backend's.
    fn map_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file: &Self::File,
        offset: u64,
    ) -> Result<(), Self::Error>;
    /// Maps `len` bytes of anonymous zero memory at `addr`; `name` is the special mapping's
    /// name (`[stack]`, `[vdso]`, ...) or empty.
    ///
    /// # Errors
    /// The backend's.
    fn map_anon(&mut self, addr: u64, len: u64, prot: Prot, name: &str) -> Result<(), Self::Error>;
    /// Writes `data` at `addr` whatever the protection (the loader's own writes).
    ///
    /// # Errors
    /// The backend's.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Self::Error>;
    /// Zeroes `len` bytes at `addr` (the tail of a private file page).
    ///
    /// # Errors
    /// The backend's.
    fn zero(&mut self, addr: u64, len: u64) -> Result<(), Self::Error>;
}

/// Replays `plan` into `space`: reset, map every VMA, zero the bss page tails, write the vDSO
/// image and the stack.
///
/// # Errors
/// The backend's error, unchanged.
pub fn apply<N: Clone, A: AddressSpace<File = N>>(
    plan: &Plan<N>,
    space: &mut A,
) -> Result<(), A::Error> {
    space.reset()?;
    for v in &plan.vmas {
        let len = v.end.saturating_sub(v.start);
        match &v.backing {
            Backing::File { file, offset } => {
                if let Some(f) = plan.files.get(*file) {
                    space.map_file(v.start, len, v.prot, &f.node, *offset)?;
                }
            }
            Backing::Anon => space.map_anon(v.start, len, v.prot, "")?,
            Backing::Stack => space.map_anon(v.start, len, v.prot, "[stack]")?,
            Backing::Special(name) => space.map_anon(v.start, len, v.prot, name)?,
        }
    }
    for &(addr, len) in &plan.zero {
        space.zero(addr, len)?;
    }
    if let (Some(base), Some(image)) = (plan.vdso_base, &plan.vdso_image) {
        space.write(base, image)?;
    }
    space.write(plan.stack.sp, &plan.stack.bytes)?;
    Ok(())
}

/// One /proc/PID/maps line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsLine {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// File offset (0 for anonymous).
    pub offset: u64,
    /// Device (major, minor).
    pub dev: (u32, u32),
    /// Inode.
    pub inode: u64,
    /// The path or name as the kernel prints it (a newline in a path as `\012`), its bytes
    /// exactly; empty for anonymous.
    pub path: Vec<u8>,
}

impl MapsLine {
    /// The line as the kernel prints it (without the newline), bytes that are not UTF-8 shown
    /// as `\xNN`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
            self.start, self.end, self.perms, self.offset, self.dev.0, self.dev.1, self.inode
        );
        if !self.path.is_empty() {
            while s.len() < 73 {
                s.push(' ');
            }
            let _ = write!(s, "{}", ByteString::from(self.path.as_slice()));
        }
        s
    }
}

/// The `[vsyscall]` gate line of x86_64.
pub fn vsyscall_line() -> MapsLine {
    MapsLine {
        start: 0xffff_ffff_ff60_0000,
        end: 0xffff_ffff_ff60_1000,
        perms: String::from("--xp"),
        offset: 0,
        dev: (0, 0),
        inode: 0,
        path: b"[vsyscall]".to_vec(),
    }
}

/// Renders VMAs as /proc/PID/maps lines. `file_info(i)` gives file i's path, device and inode.
/// An anonymous VMA is `[heap]` when it overlaps `[start_brk, brk]`: strictly since 6.6
/// ("mm: introduce vma_is_initial_heap() and vma_is_initial_stack()",
/// [`crate::profile::rules::ExecRules::heap_name_strict`]); before, one that merely touches
/// it (the bss ending at `start_brk`) counts too.
pub fn maps_lines<'a>(
    vmas: impl IntoIterator<Item = &'a Vma>,
    file_info: impl Fn(usize) -> (Vec<u8>, (u32, u32), u64),
    brk: (u64, u64),
    vsyscall: bool,
    heap_name_strict: bool,
) -> Vec<MapsLine> {
    let (start_brk, brk) = brk;
    let mut out: Vec<MapsLine> = vmas
        .into_iter()
        .map(|v| {
            let (offset, dev, inode, path) = match &v.backing {
                Backing::File { file, offset } => {
                    let (p, d, i) = file_info(*file);
                    (*offset, d, i, p)
                }
                Backing::Special(n) => (0, (0, 0), 0, n.as_bytes().to_vec()),
                // show_map_vma() asks "[heap]?" of every anonymous VMA before "[stack]?".
                Backing::Stack | Backing::Anon => {
                    let heap = if heap_name_strict {
                        v.start < brk && v.end > start_brk
                    } else {
                        v.start <= brk && v.end >= start_brk
                    };
                    let name = if heap {
                        "[heap]"
                    } else if v.backing == Backing::Stack {
                        "[stack]"
                    } else {
                        ""
                    };
                    (0, (0, 0), 0, name.as_bytes().to_vec())
                }
            };
            MapsLine {
                start: v.start,
                end: v.end,
                perms: v.perms(),
                offset,
                dev,
                inode,
                path,
            }
        })
        .collect();
    if vsyscall {
        out.push(vsyscall_line());
    }
    out
}

impl<N> Plan<N> {
    /// /proc/PID/maps at the first instruction.
    pub fn maps(&self) -> Vec<MapsLine> {
        maps_lines(
            &self.vmas,
            |i| match self.files.get(i) {
                Some(f) => (maps_path(&f.path), f.meta.dev, f.meta.inode),
                None => (Vec::new(), (0, 0), 0),
            },
            (self.mm.start_brk, self.mm.brk),
            self.vsyscall,
            self.kernel.rules().heap_name_strict,
        )
    }
}

/// A file's path as /proc/PID/maps prints it: `seq_file_path(m, file, "\n")` writes a newline
/// as `\012`, every other byte as it is.
fn maps_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b == b'\n' {
            out.extend_from_slice(b"\\012");
        } else {
            out.push(b);
        }
    }
    out
}

/// A simulated address space: VMAs plus the bytes the loader wrote, never copies of files.
#[derive(Clone, Debug, Default)]
pub struct SimAddressSpace<N> {
    vmas: Vmas,
    files: Vec<N>,
    /// Bytes written by the loader, by address (runs do not overlap).
    written: BTreeMap<u64, Vec<u8>>,
    /// Zeroed ranges of private file pages.
    zeroed: Vec<(u64, u64)>,
}

/// Errors of the simulated address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// An operation touched an address not mapped.
    #[error("address {0:#x} is not mapped")]
    NotMapped(u64),
    /// An address or length was not page aligned.
    #[error("{0:#x} is not page aligned")]
    Unaligned(u64),
}

impl<N: Clone + PartialEq> SimAddressSpace<N> {
    /// An empty address space.
    pub fn new() -> Self {
        SimAddressSpace {
            vmas: Vmas::new(0),
            files: Vec::new(),
            written: BTreeMap::new(),
            zeroed: Vec::new(),
        }
    }

    /// The VMAs.
    pub fn vmas(&self) -> &[Vma] {
        self.vmas.as_slice()
    }

    /// The files mapped, indexed as the VMAs' `Backing::File::file`.
    pub fn files(&self) -> &[N] {
        &self.files
    }

    /// The runs of bytes the loader wrote (the vDSO image, the stack), by address.
    pub fn written(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.written.iter().map(|(&a, d)| (a, d.as_slice()))
    }

    /// The byte ranges of private file pages the loader zeroed: (address, length).
    pub fn zeroed(&self) -> &[(u64, u64)] {
        &self.zeroed
    }

    /// Reads loader-written bytes at `addr` (zero where nothing was written).
    pub fn read_written(&self, addr: u64, buf: &mut [u8]) {
        buf.fill(0);
        let end = addr.saturating_add(buf.len() as u64);
        for (&start, data) in self.written.range(..end) {
            let run_end = start.saturating_add(data.len() as u64);
            if run_end <= addr {
                continue;
            }
            // Both ranges are non-empty intersections, so the offsets are in bounds.
            let (from, to) = (start.max(addr), run_end.min(end));
            let src = data.get(offset(from, start)..offset(to, start));
            let dst = buf.get_mut(offset(from, addr)..offset(to, addr));
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
            }
        }
    }

    /// Applies `plan` atomically: it is replayed on a copy that replaces this address space
    /// only when every step succeeded, so a failure leaves the space as it was.
    ///
    /// # Errors
    /// The first operation the simulated space refused.
    pub fn load(&mut self, plan: &Plan<N>) -> Result<(), SimError> {
        let mut staged = self.clone();
        apply(plan, &mut staged)?;
        *self = staged;
        Ok(())
    }

    /// /proc/PID/maps of the simulated space as a 6.6-or-later kernel names it; `info`
    /// names each file (path, device, inode).
    pub fn maps(
        &self,
        info: impl Fn(&N) -> (Vec<u8>, (u32, u32), u64),
        brk: (u64, u64),
        vsyscall: bool,
    ) -> Vec<MapsLine> {
        maps_lines(
            self.vmas.iter(),
            |i| self.files.get(i).map_or((Vec::new(), (0, 0), 0), &info),
            brk,
            vsyscall,
            true,
        )
    }

    fn check(&self, addr: u64, len: u64) -> Result<(), SimError> {
        let mut at = addr;
        let end = addr.saturating_add(len);
        while at < end {
            let v = self.vmas.find(at).ok_or(SimError::NotMapped(at))?;
            at = v.end;
        }
        Ok(())
    }
}

/// `b - a` as an index (callers guarantee `a <= b`).
fn offset(b: u64, a: u64) -> usize {
    usize::try_from(b.saturating_sub(a)).unwrap_or(usize::MAX)
}

/// The end of a page-aligned range, or why it is not one.
fn range_end(addr: u64, len: u64) -> Result<u64, SimError> {
    if addr % 4096 != 0 || len % 4096 != 0 {
        return Err(SimError::Unaligned(addr));
    }
    addr.checked_add(len).ok_or(SimError::NotMapped(addr))
}

impl<N: Clone + PartialEq> AddressSpace for SimAddressSpace<N> {
    type File = N;
    type Error = SimError;

    fn reset(&mut self) -> Result<(), SimError> {
        *self = SimAddressSpace::new();
        Ok(())
    }

    fn map_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file: &N,
        offset: u64,
    ) -> Result<(), SimError> {
        let end = range_end(addr, len)?;
        let idx = match self.files.iter().position(|f| f == file) {
            Some(i) => i,
            None => {
                self.files.push(file.clone());
                self.files.len().saturating_sub(1)
            }
        };
        self.vmas.map_fixed(Vma {
            start: addr,
            end,
            prot,
            backing: Backing::File { file: idx, offset },
        });
        Ok(())
    }

    fn map_anon(&mut self, addr: u64, len: u64, prot: Prot, name: &str) -> Result<(), SimError> {
        let end = range_end(addr, len)?;
        let backing = match name {
            "" => Backing::Anon,
            "[stack]" => Backing::Stack,
            n => Backing::Special(String::from(n)),
        };
        self.vmas.map_fixed(Vma {
            start: addr,
            end,
            prot,
            backing,
        });
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        self.check(addr, data.len() as u64)?;
        self.written.insert(addr, data.to_vec());
        Ok(())
    }

    fn zero(&mut self, addr: u64, len: u64) -> Result<(), SimError> {
        self.check(addr, len)?;
        self.zeroed.push((addr, len));
        Ok(())
    }
}
