//! The small filesystem interface the core walks paths over, and an in-memory implementation.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::Errno;

/// The type of a filesystem object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
}

/// What the loader needs to know about a filesystem object (`struct kstat` plus mount flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The object's type.
    pub kind: FileKind,
    /// Permission bits including set-uid (0o4000), set-gid (0o2000) and sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device number as /proc/PID/maps shows it (major, minor).
    pub dev: (u32, u32),
    /// Inode number.
    pub inode: u64,
    /// The mount is `noexec`.
    pub noexec: bool,
    /// The mount is `nosuid`.
    pub nosuid: bool,
    /// The filesystem aligns large file mappings to 2 MiB (`thp_get_unmapped_area`: ext4, xfs,
    /// btrfs with CONFIG_TRANSPARENT_HUGEPAGE).
    pub thp_aligned: bool,
    /// The file is open for writing somewhere (exec fails with ETXTBSY).
    pub write_busy: bool,
}

/// A filesystem the core resolves paths in. Implementations never resolve paths themselves:
/// they answer for one directory entry at a time, so every filesystem gets the same namei
/// semantics and the root cannot be escaped.
pub trait FileSystem {
    /// A handle on one object.
    type Node: Clone;

    /// The root directory of this filesystem (the exec's `/`).
    fn root(&self) -> Self::Node;
    /// Looks `name` (one component, never `.`, `..` or containing `/`) up in directory `dir`,
    /// without following a symbolic link. `ENOENT` when absent.
    fn lookup(&self, dir: &Self::Node, name: &[u8]) -> Result<Self::Node, Errno>;
    /// The object's metadata.
    fn metadata(&self, node: &Self::Node) -> Result<Metadata, Errno>;
    /// The target of a symbolic link.
    fn readlink(&self, node: &Self::Node) -> Result<Vec<u8>, Errno>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short at EOF).
    fn read_at(&self, node: &Self::Node, offset: u64, buf: &mut [u8]) -> Result<usize, Errno>;
}

impl<F: FileSystem + ?Sized> FileSystem for &F {
    type Node = F::Node;
    fn root(&self) -> Self::Node {
        (**self).root()
    }
    fn lookup(&self, dir: &Self::Node, name: &[u8]) -> Result<Self::Node, Errno> {
        (**self).lookup(dir, name)
    }
    fn metadata(&self, node: &Self::Node) -> Result<Metadata, Errno> {
        (**self).metadata(node)
    }
    fn readlink(&self, node: &Self::Node) -> Result<Vec<u8>, Errno> {
        (**self).readlink(node)
    }
    fn read_at(&self, node: &Self::Node, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        (**self).read_at(node, offset, buf)
    }
}

/// Reads exactly `buf.len()` bytes at `offset` unless the file ends first; returns the count.
pub fn read_full<F: FileSystem + ?Sized>(
    fs: &F,
    node: &F::Node,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or(Errno::EINVAL)?;
        let rest = buf.get_mut(done..).ok_or(Errno::EINVAL)?;
        let n = fs.read_at(node, at, rest)?;
        if n == 0 {
            break;
        }
        done = done.saturating_add(n.min(rest.len()));
    }
    Ok(done)
}

/// File contents of a [`MemFs`] regular file: bytes, or a sparse size with a few byte runs.
#[derive(Clone, Debug)]
enum Content {
    Bytes(Arc<[u8]>),
    Dir(BTreeMap<Vec<u8>, usize>),
    Link(Vec<u8>),
    Other,
}

#[derive(Clone, Debug)]
struct MemNode {
    meta: Metadata,
    content: Content,
}

/// An in-memory filesystem: for tests, fuzzing, and embedders with files in memory.
#[derive(Clone, Debug)]
pub struct MemFs {
    nodes: Vec<MemNode>,
}

impl Default for MemFs {
    fn default() -> Self {
        Self::new()
    }
}

impl MemFs {
    /// An empty filesystem with a root directory (mode 0755, owned by root).
    pub fn new() -> Self {
        MemFs {
            nodes: alloc::vec![Self::node(
                FileKind::Directory,
                0o755,
                0,
                Content::Dir(BTreeMap::new())
            )],
        }
    }

    fn node(kind: FileKind, mode: u32, size: u64, content: Content) -> MemNode {
        MemNode {
            meta: Metadata {
                kind,
                mode,
                uid: 0,
                gid: 0,
                size,
                dev: (0, 0x2a),
                inode: 0,
                noexec: false,
                nosuid: false,
                thp_aligned: false,
                write_busy: false,
            },
            content,
        }
    }

    fn add(&mut self, path: &[u8], mut node: MemNode) -> usize {
        let mut dir = 0usize;
        let mut comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let last = comps.pop().unwrap_or(b"");
        for c in comps {
            dir = self.ensure_dir(dir, c);
        }
        let idx = self.nodes.len();
        node.meta.inode = (idx as u64).saturating_add(1);
        self.nodes.push(node);
        if let Some(MemNode {
            content: Content::Dir(map),
            ..
        }) = self.nodes.get_mut(dir)
        {
            map.insert(last.to_vec(), idx);
        }
        idx
    }

    fn ensure_dir(&mut self, dir: usize, name: &[u8]) -> usize {
        if let Some(MemNode {
            content: Content::Dir(map),
            ..
        }) = self.nodes.get(dir)
        {
            if let Some(&i) = map.get(name) {
                return i;
            }
        }
        let idx = self.nodes.len();
        let mut n = Self::node(FileKind::Directory, 0o755, 0, Content::Dir(BTreeMap::new()));
        n.meta.inode = (idx as u64).saturating_add(1);
        self.nodes.push(n);
        if let Some(MemNode {
            content: Content::Dir(map),
            ..
        }) = self.nodes.get_mut(dir)
        {
            map.insert(name.to_vec(), idx);
        }
        idx
    }

    /// The metadata of node `i`, which the caller has just added.
    #[allow(clippy::indexing_slicing)] // `i` is the index `add` just pushed
    fn meta_at(&mut self, i: usize) -> &mut Metadata {
        &mut self.nodes[i].meta
    }

    /// Adds a regular file with `mode` (creating parent directories), replacing any entry.
    pub fn add_file(
        &mut self,
        path: &[u8],
        mode: u32,
        data: impl Into<Arc<[u8]>>,
    ) -> &mut Metadata {
        let data = data.into();
        let n = Self::node(
            FileKind::Regular,
            mode,
            data.len() as u64,
            Content::Bytes(data),
        );
        let i = self.add(path, n);
        self.meta_at(i)
    }

    /// Adds a directory with `mode`.
    pub fn add_dir(&mut self, path: &[u8], mode: u32) -> &mut Metadata {
        let i = self.add(
            path,
            Self::node(FileKind::Directory, mode, 0, Content::Dir(BTreeMap::new())),
        );
        self.meta_at(i)
    }

    /// Adds a symbolic link to `target`.
    pub fn add_symlink(&mut self, path: &[u8], target: &[u8]) -> &mut Metadata {
        let n = Self::node(
            FileKind::Symlink,
            0o777,
            target.len() as u64,
            Content::Link(target.to_vec()),
        );
        let i = self.add(path, n);
        self.meta_at(i)
    }

    /// Adds a non-regular, non-directory object (device, FIFO, socket).
    pub fn add_special(&mut self, path: &[u8], kind: FileKind, mode: u32) -> &mut Metadata {
        let i = self.add(path, Self::node(kind, mode, 0, Content::Other));
        self.meta_at(i)
    }
}

impl FileSystem for MemFs {
    type Node = usize;

    fn root(&self) -> usize {
        0
    }

    fn lookup(&self, dir: &usize, name: &[u8]) -> Result<usize, Errno> {
        match self.nodes.get(*dir).map(|n| &n.content) {
            Some(Content::Dir(map)) => map.get(name).copied().ok_or(Errno::ENOENT),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::EBADF),
        }
    }

    fn metadata(&self, node: &usize) -> Result<Metadata, Errno> {
        self.nodes
            .get(*node)
            .map(|n| n.meta.clone())
            .ok_or(Errno::EBADF)
    }

    fn readlink(&self, node: &usize) -> Result<Vec<u8>, Errno> {
        match self.nodes.get(*node).map(|n| &n.content) {
            Some(Content::Link(t)) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read_at(&self, node: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.nodes.get(*node).map(|n| &n.content) {
            Some(Content::Bytes(data)) => {
                let Ok(off) = usize::try_from(offset) else {
                    return Ok(0);
                };
                let Some(src) = data.get(off..) else {
                    return Ok(0);
                };
                let n = src.len().min(buf.len());
                buf.get_mut(..n)
                    .ok_or(Errno::EIO)?
                    .copy_from_slice(src.get(..n).ok_or(Errno::EIO)?);
                Ok(n)
            }
            Some(Content::Dir(_)) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }
}
