//! Path resolution inside a root, with Linux's namei rules (`fs/namei.c`: `link_path_walk`,
//! `may_lookup`, `may_open`), and the exec-specific open checks of `do_open_execat()`.

use alloc::vec::Vec;

use crate::errno::Errno;
use crate::error::{Bytes, PathProblem};
use crate::fs::{FileKind, FileSystem, Metadata};
use crate::profile::Credentials;

/// `PATH_MAX`.
pub const PATH_MAX: usize = 4096;
/// `NAME_MAX`.
pub const NAME_MAX: usize = 255;
/// `MAXSYMLINKS`.
pub const MAX_SYMLINKS: u32 = 40;

/// A directory position: the node and the chain of names from the root that reached it, so
/// `..` goes to the physical parent and can never climb above the root.
#[derive(Clone, Debug)]
pub struct DirPath<N> {
    chain: Vec<(N, Vec<u8>)>,
    root: N,
}

impl<N: Clone> DirPath<N> {
    /// The root directory.
    pub fn root(root: N) -> Self {
        DirPath {
            chain: Vec::new(),
            root,
        }
    }

    /// The directory's node.
    pub fn node(&self) -> &N {
        self.chain.last().map_or(&self.root, |(n, _)| n)
    }

    /// The absolute path of the directory inside the root, e.g. `/usr/bin`.
    pub fn path(&self) -> Vec<u8> {
        if self.chain.is_empty() {
            return b"/".to_vec();
        }
        let mut p = Vec::new();
        for (_, name) in &self.chain {
            p.push(b'/');
            p.extend_from_slice(name);
        }
        p
    }

    fn at_root(&self) -> Self {
        DirPath {
            chain: Vec::new(),
            root: self.root.clone(),
        }
    }
}

/// An object found by a walk.
#[derive(Clone, Debug)]
pub struct Found<N> {
    /// Its node.
    pub node: N,
    /// Its metadata.
    pub meta: Metadata,
    /// Its absolute path inside the root after following links (what /proc/PID/maps prints).
    pub path: Vec<u8>,
    /// Its own name (the dentry name).
    pub name: Vec<u8>,
    /// The directory it was found in.
    pub parent: DirPath<N>,
    /// Each symbolic link followed on the way: (where the link is, what it points to).
    pub links: Vec<(Vec<u8>, Vec<u8>)>,
}

fn may_exec(meta: &Metadata, creds: &Credentials) -> bool {
    if creds.euid == 0 {
        // CAP_DAC_OVERRIDE: directories always, files when any execute bit is set.
        return meta.kind == FileKind::Directory || meta.mode & 0o111 != 0;
    }
    let bits = if meta.uid == creds.euid {
        meta.mode >> 6
    } else if meta.gid == creds.egid || creds.groups.contains(&meta.gid) {
        meta.mode >> 3
    } else {
        meta.mode
    };
    bits & 1 != 0
}

/// Walks `path` from `start` (or the root when absolute). `follow_last` follows a final
/// symbolic link (a trailing `/` always does). Returns the object without any open checks.
///
/// # Errors
/// ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP and EACCES (search permission) as namei returns them.
pub fn walk<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    start: &DirPath<F::Node>,
    path: &[u8],
    follow_last: bool,
) -> Result<Found<F::Node>, PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() >= PATH_MAX {
        return Err(PathProblem::TooLong);
    }
    let mut dir = if path.first() == Some(&b'/') {
        start.at_root()
    } else {
        start.clone()
    };
    // Components still to walk, last one on top.
    let mut todo: Vec<Vec<u8>> = Vec::new();
    push_components(&mut todo, path);
    let mut links = 0u32;
    let mut followed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let Some(comp) = todo.pop() else {
            // Path was only slashes (or `.`): the result is the directory itself.
            return dir_found(fs, &dir).map(|f| f.with_links(followed));
        };
        let last = todo.is_empty();
        let dir_meta = fs.metadata(dir.node()).map_err(PathProblem::Filesystem)?;
        if !may_exec(&dir_meta, creds) {
            return Err(PathProblem::SearchDenied(Bytes(dir.path())));
        }
        // After the search permission, as the filesystem's ->lookup() is what refuses it.
        if comp.len() > NAME_MAX {
            return Err(PathProblem::ComponentTooLong(Bytes(comp)));
        }
        if comp == b"." || comp == b".." {
            if comp == b".." {
                dir.chain.pop();
            }
            if last {
                return dir_found(fs, &dir).map(|f| f.with_links(followed));
            }
            continue;
        }
        let node = fs.lookup(dir.node(), &comp).map_err(|e| match e {
            Errno::ENOENT => PathProblem::NotFound(Bytes(comp.clone())),
            Errno::ENOTDIR => PathProblem::NotDirectory(Bytes(dir.path())),
            other => PathProblem::Filesystem(other),
        })?;
        let meta = fs.metadata(&node).map_err(PathProblem::Filesystem)?;
        if meta.kind == FileKind::Symlink && (!last || follow_last) {
            if links >= MAX_SYMLINKS {
                return Err(PathProblem::TooManyLinks);
            }
            links = links.saturating_add(1);
            let target = fs.readlink(&node).map_err(PathProblem::Filesystem)?;
            followed.push((join(&dir.path(), &comp), target.clone()));
            if target.is_empty() {
                return Err(PathProblem::NotFound(Bytes(comp)));
            }
            if target.first() == Some(&b'/') {
                dir = dir.at_root();
            }
            push_components(&mut todo, &target);
            if todo.is_empty() {
                // A link to "/": the root itself.
                if last {
                    return dir_found(fs, &dir).map(|f| f.with_links(followed));
                }
            }
            continue;
        }
        if last {
            let path = join(&dir.path(), &comp);
            return Ok(Found {
                node,
                meta,
                path,
                name: comp,
                parent: dir,
                links: followed,
            });
        }
        if meta.kind != FileKind::Directory {
            return Err(PathProblem::NotDirectory(Bytes(comp)));
        }
        dir.chain.push((node, comp));
    }
}

fn dir_found<F: FileSystem + ?Sized>(
    fs: &F,
    dir: &DirPath<F::Node>,
) -> Result<Found<F::Node>, PathProblem> {
    let meta = fs.metadata(dir.node()).map_err(PathProblem::Filesystem)?;
    let name = dir
        .chain
        .last()
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| b"/".to_vec());
    let mut parent = dir.clone();
    parent.chain.pop();
    Ok(Found {
        node: dir.node().clone(),
        meta,
        path: dir.path(),
        name,
        parent,
        links: Vec::new(),
    })
}

impl<N> Found<N> {
    fn with_links(mut self, links: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        self.links = links;
        self
    }
}

/// `dir/name` for an absolute directory path.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = dir.to_vec();
    if path.len() > 1 {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// Pushes the components of `path` so that the first one is on top; a trailing `/` becomes a
/// final `.` (the object must be a directory, and a final link is followed).
fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    let mut comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if path.len() > 1 && path.last() == Some(&b'/') && !comps.is_empty() {
        comps.push(b".");
    }
    for c in comps.into_iter().rev() {
        todo.push(c.to_vec());
    }
}

/// Resolves a directory (for a working directory): the path must name a searchable directory.
///
/// # Errors
/// As [`walk`], plus ENOTDIR when the object is not a directory.
pub fn resolve_dir<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    start: &DirPath<F::Node>,
    path: &[u8],
) -> Result<DirPath<F::Node>, PathProblem> {
    let found = walk(fs, creds, start, path, true)?;
    if found.meta.kind != FileKind::Directory {
        return Err(PathProblem::NotDirectory(Bytes(found.path)));
    }
    let mut dir = found.parent;
    if found.path != b"/" {
        dir.chain.push((found.node, found.name));
    } else {
        dir = dir.at_root();
    }
    Ok(dir)
}

/// The checks `do_open_execat()` and `may_open()` make on the file to execute.
///
/// # Errors
/// ELOOP for a final symlink, EACCES for a directory, device, FIFO, socket, a file without an
/// applicable execute bit or on a noexec mount, ETXTBSY for a file open for writing.
pub fn check_exec<N>(found: &Found<N>, creds: &Credentials) -> Result<(), PathProblem> {
    match found.meta.kind {
        FileKind::Symlink => return Err(PathProblem::FinalSymlink),
        FileKind::Directory => return Err(PathProblem::IsDirectory),
        FileKind::Regular => {}
        _ => return Err(PathProblem::NotRegular),
    }
    if !may_exec(&found.meta, creds) {
        return Err(PathProblem::NoExecPermission);
    }
    if found.meta.noexec {
        return Err(PathProblem::NoExecMount);
    }
    if found.meta.write_busy {
        return Err(PathProblem::TextBusy);
    }
    Ok(())
}

/// `open_exec()`: walk `path` from `cwd` following links and make the exec checks.
///
/// # Errors
/// See [`walk`] and [`check_exec`].
pub fn open_exec<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    cwd: &DirPath<F::Node>,
    path: &[u8],
    follow_last: bool,
) -> Result<Found<F::Node>, PathProblem> {
    let found = walk(fs, creds, cwd, path, follow_last)?;
    check_exec(&found, creds)?;
    Ok(found)
}

/// `open_exec()` (`fs/exec.c`) of a name the kernel itself supplies: the `#!` interpreter, the
/// PT_INTERP path, a binfmt_misc interpreter. Resolved from `cwd`, following links.
///
/// Unlike a path passed to `execve`, such a name goes through `getname_kernel()`, which has no
/// empty-name check: an empty name walks no component and opens the starting directory itself,
/// which `may_open()` refuses with EACCES (a file holding just `#!`, or PT_INTERP `"\0\0"`).
///
/// # Errors
/// See [`walk`] and [`check_exec`].
#[doc(alias = "open_exec")]
#[doc(alias = "getname_kernel")]
pub fn open_exec_kernel<F: FileSystem + ?Sized>(
    fs: &F,
    creds: &Credentials,
    cwd: &DirPath<F::Node>,
    path: &[u8],
) -> Result<Found<F::Node>, PathProblem> {
    let found = if path.is_empty() {
        dir_found(fs, cwd)?
    } else {
        walk(fs, creds, cwd, path, true)?
    };
    check_exec(&found, creds)?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;

    fn root_creds() -> Credentials {
        crate::profile::Profile::linux_6_18_x86_64().credentials
    }

    #[test]
    fn empty_name_from_execve_is_enoent() {
        let fs = MemFs::new();
        let cwd = DirPath::root(fs.root());
        let e = open_exec(&fs, &root_creds(), &cwd, b"", true).unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
    }

    #[test]
    fn empty_kernel_name_opens_the_cwd_and_is_eacces() {
        let mut fs = MemFs::new();
        fs.add_dir(b"/work", 0o755);
        let root = DirPath::root(fs.root());
        let cwd = resolve_dir(&fs, &root_creds(), &root, b"/work").unwrap();
        let e = open_exec_kernel(&fs, &root_creds(), &cwd, b"").unwrap_err();
        assert_eq!(e, PathProblem::IsDirectory);
        assert_eq!(e.errno(), Errno::EACCES);
    }
}
