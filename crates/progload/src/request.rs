//! The request: what one exec is given besides the filesystem and the profile
//! ([`LoadRequest`]), and a builder for it ([`LoadRequestBuilder`]).

use alloc::vec::Vec;

use crate::binfmt::misc::Rule;
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::profile::Profile;
use crate::resolve::{self, DirPath};

/// The descriptor number binfmt_misc `O`/`C` install when the caller says nothing: the lowest
/// free one in a process holding only stdin, stdout and stderr.
pub const DEFAULT_EXECFD: u64 = 3;

/// What to execute (the `execve`/`execveat` forms).
#[derive(Clone, Debug)]
pub enum Executable<N> {
    /// `execve(path)` / `execveat(AT_FDCWD, path)`: resolved against the request's cwd.
    Path(Vec<u8>),
    /// `execveat(fd, "", AT_EMPTY_PATH)`: an already open file. execfn is `/dev/fd/<fd>`.
    Fd {
        /// The descriptor number the caller holds.
        fd: i32,
        /// The file.
        node: N,
        /// Its path inside the root (what /proc/PID/maps shows).
        path: Vec<u8>,
        /// Its dentry name (becomes `comm`).
        name: Vec<u8>,
        /// The descriptor is close-on-exec (scripts then fail with ENOENT).
        cloexec: bool,
    },
    /// `execveat(dirfd, path, 0)`: a path relative to an open directory. execfn is
    /// `/dev/fd/<fd>/<path>` for a relative path, the path itself for an absolute one.
    At {
        /// The directory descriptor number.
        fd: i32,
        /// The directory.
        dir: DirPath<N>,
        /// The path.
        path: Vec<u8>,
        /// The descriptor is close-on-exec.
        cloexec: bool,
    },
}

/// Everything one exec takes besides the filesystem and the profile.
#[derive(Clone, Debug)]
pub struct LoadRequest<N> {
    /// The program.
    pub executable: Executable<N>,
    /// argv; `None` is a NULL argv pointer (the kernel then passes `[""]`).
    pub argv: Option<Vec<Vec<u8>>>,
    /// envp.
    pub envp: Vec<Vec<u8>>,
    /// The working directory relative paths (and `#!` interpreters) resolve from; `None` is
    /// the filesystem's root (never the calling process's directory). To name it by path,
    /// use [`LoadRequestBuilder::cwd`].
    pub cwd: Option<DirPath<N>>,
    /// `AT_SYMLINK_NOFOLLOW`: a final symlink is ELOOP.
    pub no_follow: bool,
    /// binfmt_misc rules in registration order (the newest matching one wins).
    pub misc_rules: Vec<Rule>,
    /// The 16 AT_RANDOM bytes; `None` draws them from the RNG.
    pub random_bytes: Option<[u8; 16]>,
    /// Extra auxv pairs appended before AT_NULL (as gVisor's `extraAuxv`).
    pub extra_auxv: Vec<(u64, u64)>,
    /// The descriptor number binfmt_misc `O`/`C` would install (the lowest free one).
    pub execfd: u64,
}

impl<N> LoadRequest<N> {
    /// A request for `path` with `argv` and `envp`, everything else default.
    pub fn new(path: impl Into<Vec<u8>>, argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> Self {
        LoadRequest {
            executable: Executable::Path(path.into()),
            argv: Some(argv),
            envp,
            cwd: None,
            no_follow: false,
            misc_rules: Vec::new(),
            random_bytes: None,
            extra_auxv: Vec::new(),
            execfd: DEFAULT_EXECFD,
        }
    }
}

/// Builds a [`LoadRequest`] step by step: argv\[0\] defaults to the path, the environment can
/// be the calling process's, and the working directory is a path resolved when the request is
/// built.
///
/// ```
/// use progload::{plan, LoadRequestBuilder, MemFs, Profile, SeededRng};
/// # let elf = progload_testkit::tiny_static_elf();
/// let mut fs = MemFs::new();
/// fs.add_file(b"/usr/bin/hello", 0o755, elf);
/// let profile = Profile::linux_6_18_x86_64();
/// let req = LoadRequestBuilder::new("./hello")
///     .arg("--loud")
///     .env("LANG=C")
///     .cwd("/usr/bin")
///     .build(&fs, &profile)
///     .unwrap();
/// assert_eq!(req.argv, Some(vec![b"./hello".to_vec(), b"--loud".to_vec()]));
/// let plan = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
/// assert_eq!(plan.exe, b"/usr/bin/hello");
///
/// // A working directory that does not resolve is the error the exec would give for it.
/// let err = LoadRequestBuilder::new("./hello").cwd("/nowhere").build(&fs, &profile);
/// assert_eq!(err.unwrap_err().errno(), progload::Errno::ENOENT);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LoadRequestBuilder {
    path: Vec<u8>,
    argv0: Option<Vec<u8>>,
    args: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    no_follow: bool,
    misc_rules: Vec<Rule>,
    random_bytes: Option<[u8; 16]>,
    extra_auxv: Vec<(u64, u64)>,
    execfd: u64,
}

impl LoadRequestBuilder {
    /// A request to execute `path` (`execve(path)`), with argv `[path]` and an empty
    /// environment until told otherwise.
    pub fn new(path: impl Into<Vec<u8>>) -> Self {
        LoadRequestBuilder {
            path: path.into(),
            argv0: None,
            args: Vec::new(),
            envp: Vec::new(),
            cwd: None,
            no_follow: false,
            misc_rules: Vec::new(),
            random_bytes: None,
            extra_auxv: Vec::new(),
            execfd: DEFAULT_EXECFD,
        }
    }

    /// argv\[0\] (default: the path as given).
    pub fn arg0(mut self, arg0: impl Into<Vec<u8>>) -> Self {
        self.argv0 = Some(arg0.into());
        self
    }

    /// Appends one argument after argv\[0\].
    pub fn arg(mut self, arg: impl Into<Vec<u8>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments after argv\[0\].
    pub fn args<A: Into<Vec<u8>>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends one environment string (`KEY=VALUE`, or any bytes: the kernel does not parse
    /// them).
    pub fn env(mut self, kv: impl Into<Vec<u8>>) -> Self {
        self.envp.push(kv.into());
        self
    }

    /// Appends environment strings.
    pub fn envs<A: Into<Vec<u8>>>(mut self, envs: impl IntoIterator<Item = A>) -> Self {
        self.envp.extend(envs.into_iter().map(Into::into));
        self
    }

    /// Appends the calling process's environment, in its order, bytes as they are.
    #[cfg(all(feature = "std", unix))]
    pub fn host_env(mut self) -> Self {
        use std::os::unix::ffi::OsStrExt;
        for (k, v) in std::env::vars_os() {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            self.envp.push(kv);
        }
        self
    }

    /// The working directory: a path inside the filesystem, resolved by [`build`](Self::build)
    /// with the profile's credentials (default: the root).
    pub fn cwd(mut self, path: impl Into<Vec<u8>>) -> Self {
        self.cwd = Some(path.into());
        self
    }

    /// `AT_SYMLINK_NOFOLLOW`: a final symlink is ELOOP.
    pub fn no_follow(mut self, no_follow: bool) -> Self {
        self.no_follow = no_follow;
        self
    }

    /// Adds a binfmt_misc rule, newer than those added before.
    pub fn misc_rule(mut self, rule: Rule) -> Self {
        self.misc_rules.push(rule);
        self
    }

    /// The 16 AT_RANDOM bytes (default: drawn from the RNG given to [`plan()`](crate::plan())).
    pub fn random_bytes(mut self, bytes: [u8; 16]) -> Self {
        self.random_bytes = Some(bytes);
        self
    }

    /// Appends an auxv pair before AT_NULL.
    pub fn extra_auxv(mut self, key: u64, value: u64) -> Self {
        self.extra_auxv.push((key, value));
        self
    }

    /// The descriptor number a binfmt_misc `O`/`C` rule would install (default
    /// [`DEFAULT_EXECFD`]).
    pub fn execfd(mut self, fd: u64) -> Self {
        self.execfd = fd;
        self
    }

    /// The request, with its working directory resolved in `fs` from the root.
    ///
    /// # Errors
    /// [`Error::Path`] for a working directory that does not resolve to a directory the
    /// profile's credentials may search: the error (and errno) the exec of a relative path
    /// would meet there.
    pub fn build<F: FileSystem + ?Sized>(
        self,
        fs: &F,
        profile: &Profile,
    ) -> Result<LoadRequest<F::Node>> {
        let cwd = match &self.cwd {
            Some(path) => {
                let root = DirPath::root(fs.root());
                Some(
                    resolve::resolve_dir(fs, &profile.credentials, &root, path)
                        .map_err(|e| Error::path(path, e))?,
                )
            }
            None => None,
        };
        let mut argv = Vec::with_capacity(self.args.len().saturating_add(1));
        argv.push(self.argv0.unwrap_or_else(|| self.path.clone()));
        argv.extend(self.args);
        Ok(LoadRequest {
            executable: Executable::Path(self.path),
            argv: Some(argv),
            envp: self.envp,
            cwd,
            no_follow: self.no_follow,
            misc_rules: self.misc_rules,
            random_bytes: self.random_bytes,
            extra_auxv: self.extra_auxv,
            execfd: self.execfd,
        })
    }
}
