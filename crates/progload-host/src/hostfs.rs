//! The host filesystem seen through a root directory, one component at a time, so that
//! progload's own path walk (with its root confinement) decides every step.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use progload::fs::{FileKind, FileSystem, Metadata};
use progload::Errno;
use rustix::fs::{FileType, OFlags, StatVfsMountFlags};

/// A file or directory of the host, held by an `O_PATH` descriptor.
#[derive(Debug)]
pub struct HostNode {
    fd: OwnedFd,
    reader: OnceLock<Result<OwnedFd, Errno>>,
}

impl PartialEq for HostNode {
    fn eq(&self, other: &Self) -> bool {
        match (rustix::fs::fstat(&self.fd), rustix::fs::fstat(&other.fd)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }
}

impl AsFd for HostNode {
    /// The `O_PATH` descriptor holding the object.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A handle on a host object.
pub type HostHandle = Arc<HostNode>;

/// The host filesystem below a root directory. Lookups use `openat(O_PATH | O_NOFOLLOW)` of a
/// single name in a directory descriptor, so no path the host kernel resolves can leave it.
#[derive(Debug, Clone)]
pub struct HostFs {
    root: HostHandle,
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno(e.raw_os_error())
}

/// Filesystems whose `get_unmapped_area` is `thp_get_unmapped_area` (2 MiB alignment of
/// large file mappings): ext2/3/4, xfs, btrfs, with transparent huge pages configured.
#[allow(clippy::useless_conversion)] // f_type's width differs between architectures
fn thp_filesystem(f_type: impl Into<i64>) -> bool {
    let f_type: i64 = f_type.into();
    const EXT4: i64 = 0xef53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683e;
    matches!(f_type, EXT4 | XFS | BTRFS)
        && Path::new("/sys/kernel/mm/transparent_hugepage").exists()
}

impl HostFs {
    /// The filesystem rooted at host directory `root`.
    ///
    /// # Errors
    /// The host's error opening `root`.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            root.as_ref(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(HostFs {
            root: Arc::new(HostNode {
                fd,
                reader: OnceLock::new(),
            }),
        })
    }

    fn reader<'a>(&self, node: &'a HostNode) -> Result<&'a OwnedFd, Errno> {
        node.reader
            .get_or_init(|| {
                // Re-open the O_PATH descriptor for reading through /proc/self/fd.
                let path = crate::proc::Proc::fd_path(std::os::fd::AsRawFd::as_raw_fd(&node.fd));
                rustix::fs::open(
                    path.as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    rustix::fs::Mode::empty(),
                )
                .map_err(errno)
            })
            .as_ref()
            .map_err(|e| *e)
    }
}

impl FileSystem for HostFs {
    type Node = HostHandle;

    fn root(&self) -> HostHandle {
        self.root.clone()
    }

    fn lookup(&self, dir: &HostHandle, name: &[u8]) -> Result<HostHandle, Errno> {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let fd = rustix::fs::openat(
            dir.fd.as_fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Arc::new(HostNode {
            fd,
            reader: OnceLock::new(),
        }))
    }

    fn metadata(&self, node: &HostHandle) -> Result<Metadata, Errno> {
        metadata_of(&node.fd)
    }

    fn readlink(&self, node: &HostHandle) -> Result<Vec<u8>, Errno> {
        let target = rustix::fs::readlinkat(&node.fd, "", Vec::new()).map_err(errno)?;
        Ok(target.into_bytes())
    }

    fn read_at(&self, node: &HostHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let fd = self.reader(node)?;
        rustix::io::pread(fd, buf, offset).map_err(errno)
    }
}

/// The [`Metadata`] of any open descriptor (`fstat`, plus the mount flags and filesystem type
/// of regular files): what [`HostFs`] reports for its nodes.
///
/// # Errors
/// The host's errno from `fstat`.
pub fn metadata_of(fd: impl AsFd) -> Result<Metadata, Errno> {
    let fd = fd.as_fd();
    let st = rustix::fs::fstat(fd).map_err(errno)?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::CharacterDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::Unknown => FileKind::Regular,
    };
    // Mount flags and the filesystem type only matter for files that may be executed or
    // mapped; directories and links skip the two extra system calls.
    let (noexec, nosuid, thp) = if kind == FileKind::Regular {
        match (rustix::fs::fstatvfs(fd), rustix::fs::fstatfs(fd)) {
            (Ok(vfs), Ok(fs)) => (
                vfs.f_flag.contains(StatVfsMountFlags::NOEXEC),
                vfs.f_flag.contains(StatVfsMountFlags::NOSUID),
                thp_filesystem(fs.f_type),
            ),
            _ => (false, false, false),
        }
    } else {
        (false, false, false)
    };
    Ok(Metadata {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        dev: (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)),
        inode: st.st_ino,
        noexec,
        nosuid,
        thp_aligned: thp,
        write_busy: false,
    })
}
