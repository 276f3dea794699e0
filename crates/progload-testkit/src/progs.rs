//! Real test programs built with the host `gcc`, cached under the cargo target directory, plus
//! helpers for scripts and other executables written into temporary directories.
//!
//! Programs are built into [`cache_dir`] (`<target>/progload-testprogs/`), at most once per
//! process, and reused across processes while the output is at least as new as its source.
//! Each program has its own source file whose first line records the exact `gcc` command, so
//! changing the flags here also triggers a rebuild. Sources and outputs are written to a
//! temporary name and renamed into place, so concurrent test processes never see (or execute)
//! a half-written file. With `PROGLOAD_TESTPROGS_PREBUILT` set, nothing is compiled: the
//! programs are taken from [`cache_dir`] by [`Prog::name`], as a cross build put them there
//! (`scripts/farm/oracle-payload.sh` runs the `build_testprogs` example with
//! `PROGLOAD_TESTPROGS_CC`, the compiler to run instead of `gcc`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The test programs [`build`] knows how to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prog {
    /// Tiny C `main` returning 0, gcc's default (PIE on Debian): `gcc -O1`.
    Pie,
    /// The C program as `ET_EXEC` with `PT_INTERP`: `gcc -O1 -no-pie`.
    NoPie,
    /// The C program static, non-PIE: `gcc -O1 -static -no-pie`.
    Static,
    /// The C program as a static PIE: `gcc -O1 -static-pie`.
    StaticPie,
    /// A static PIE whose file is larger than 2 MiB (a 3 MiB initialised array in `.rodata`).
    BigStaticPie,
    /// The C program as PIE with 2 MiB segment alignment:
    /// `gcc -O1 -Wl,-z,max-page-size=0x200000`.
    PieAlign2M,
    /// The C program as PIE with an executable-stack `PT_GNU_STACK`: `gcc -O1 -z execstack`.
    PieExecStack,
    /// An assembler `_start` that calls `exit(0)`: `gcc -nostdlib -static -no-pie`.
    AsmExit,
    /// A PIE with a 1 MiB bss, mapped anonymously past the file (`vm_brk_flags()`):
    /// `gcc -O1`.
    BigBss,
    /// The C program as an i386 PIE: `gcc -m32 -O1` (needs gcc-multilib).
    Pie32,
    /// i386, `ET_EXEC` with `PT_INTERP`: `gcc -m32 -O1 -no-pie`.
    NoPie32,
    /// i386 static: `gcc -m32 -O1 -static -no-pie`.
    Static32,
    /// i386 static PIE: `gcc -m32 -O1 -static-pie`.
    StaticPie32,
    /// i386 PIE with an executable stack: `gcc -m32 -O1 -z execstack`.
    PieExecStack32,
    /// i386 PIE with 2 MiB segment alignment: `gcc -m32 -O1 -Wl,-z,max-page-size=0x200000`.
    PieAlign2M32,
}

const C_MAIN: &str = "int main(void) { return 0; }\n";

const C_BIG: &str = "\
/* A file image larger than 2 MiB: the initialised array is stored in the file. */
const unsigned char progload_big_blob[3 * 1024 * 1024] = { 1, 2, 3, 4 };
int main(int argc, char **argv) {
    (void)argv;
    /* Read through a volatile pointer so the array is really referenced. */
    const volatile unsigned char *p = progload_big_blob;
    return p[2 * 1024 * 1024 + argc] != 0;
}
";

const C_BIG_BSS: &str = "\
/* A bss of 1 MiB: most of it lies past the file's last page. */
static char progload_big_bss[1024 * 1024];
int main(int argc, char **argv) {
    (void)argv;
    return progload_big_bss[argc * 4096];
}
";

const ASM_EXIT: &str = "\
    .text
    .globl _start
_start:
    mov $60, %eax
    xor %edi, %edi
    syscall
    .section .note.GNU-stack,\"\",@progbits
";

impl Prog {
    /// Every program, in declaration order.
    pub const ALL: [Prog; 15] = [
        Prog::Pie,
        Prog::NoPie,
        Prog::Static,
        Prog::StaticPie,
        Prog::BigStaticPie,
        Prog::PieAlign2M,
        Prog::PieExecStack,
        Prog::AsmExit,
        Prog::BigBss,
        Prog::Pie32,
        Prog::NoPie32,
        Prog::Static32,
        Prog::StaticPie32,
        Prog::PieExecStack32,
        Prog::PieAlign2M32,
    ];

    /// The output file name in [`cache_dir`].
    pub fn name(self) -> &'static str {
        match self {
            Prog::Pie => "pie",
            Prog::NoPie => "no-pie",
            Prog::Static => "static",
            Prog::StaticPie => "static-pie",
            Prog::BigStaticPie => "big-static-pie",
            Prog::PieAlign2M => "pie-align-2m",
            Prog::PieExecStack => "pie-execstack",
            Prog::AsmExit => "asm-exit",
            Prog::BigBss => "big-bss",
            Prog::Pie32 => "pie-m32",
            Prog::NoPie32 => "no-pie-m32",
            Prog::Static32 => "static-m32",
            Prog::StaticPie32 => "static-pie-m32",
            Prog::PieExecStack32 => "pie-execstack-m32",
            Prog::PieAlign2M32 => "pie-align-2m-m32",
        }
    }

    /// The `gcc` flags (besides `-o OUT SRC`).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Prog::Pie | Prog::BigBss => &["-O1"],
            Prog::NoPie => &["-O1", "-no-pie"],
            Prog::Static => &["-O1", "-static", "-no-pie"],
            Prog::StaticPie | Prog::BigStaticPie => &["-O1", "-static-pie"],
            Prog::PieAlign2M => &["-O1", "-Wl,-z,max-page-size=0x200000"],
            Prog::PieExecStack => &["-O1", "-z", "execstack"],
            Prog::AsmExit => &["-nostdlib", "-static", "-no-pie"],
            Prog::Pie32 => &["-m32", "-O1"],
            Prog::NoPie32 => &["-m32", "-O1", "-no-pie"],
            Prog::Static32 => &["-m32", "-O1", "-static", "-no-pie"],
            Prog::StaticPie32 => &["-m32", "-O1", "-static-pie"],
            Prog::PieExecStack32 => &["-m32", "-O1", "-z", "execstack"],
            Prog::PieAlign2M32 => &["-m32", "-O1", "-Wl,-z,max-page-size=0x200000"],
        }
    }

    fn source(self) -> (&'static str, &'static str) {
        match self {
            Prog::BigStaticPie => ("c", C_BIG),
            Prog::AsmExit => ("S", ASM_EXIT),
            Prog::BigBss => ("c", C_BIG_BSS),
            _ => ("c", C_MAIN),
        }
    }

    fn index(self) -> usize {
        Prog::ALL
            .iter()
            .position(|&p| p == self)
            .expect("listed in ALL")
    }
}

/// The directory test programs are built into: `$PROGLOAD_TESTPROGS_DIR` if set, else
/// `<target>/progload-testprogs` where `<target>` is `CARGO_TARGET_DIR` (as seen when this
/// crate was compiled; relative values are taken relative to the workspace root) or the
/// workspace's `target` directory. Created if missing; returned absolute.
pub fn cache_dir() -> io::Result<PathBuf> {
    let dir = match std::env::var_os("PROGLOAD_TESTPROGS_DIR") {
        Some(d) => PathBuf::from(d),
        None => target_dir().join("progload-testprogs"),
    };
    fs::create_dir_all(&dir)?;
    dir.canonicalize()
}

/// The cargo target directory: `CARGO_TARGET_DIR` as seen when this crate was compiled
/// (relative values are taken relative to the workspace root), or the workspace's `target`.
/// Test data fetched by the scripts (`scripts/fetch-debian.sh`) lives under it.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match option_env!("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => workspace.join(t),
        _ => workspace.join("target"),
    }
}

/// Build `prog` (or reuse an up-to-date build) and return its absolute path. The result,
/// including a failure, is computed once per process.
pub fn build(prog: Prog) -> io::Result<PathBuf> {
    static CELLS: [OnceLock<Result<PathBuf, String>>; Prog::ALL.len()] =
        [const { OnceLock::new() }; Prog::ALL.len()];
    CELLS[prog.index()]
        .get_or_init(|| build_uncached(prog).map_err(|e| format!("building {prog:?}: {e}")))
        .clone()
        .map_err(io::Error::other)
}

/// [`build`], panicking with the error message on failure (for tests).
pub fn path(prog: Prog) -> PathBuf {
    build(prog).unwrap_or_else(|e| panic!("{e}"))
}

/// Path of [`Prog::Pie`] (panics if it cannot be built).
pub fn pie() -> PathBuf {
    path(Prog::Pie)
}

/// Path of [`Prog::NoPie`] (panics if it cannot be built).
pub fn no_pie() -> PathBuf {
    path(Prog::NoPie)
}

/// Path of [`Prog::Static`] (panics if it cannot be built).
pub fn static_exec() -> PathBuf {
    path(Prog::Static)
}

/// Path of [`Prog::StaticPie`] (panics if it cannot be built).
pub fn static_pie() -> PathBuf {
    path(Prog::StaticPie)
}

/// Path of [`Prog::BigStaticPie`] (panics if it cannot be built).
pub fn big_static_pie() -> PathBuf {
    path(Prog::BigStaticPie)
}

/// Path of [`Prog::PieAlign2M`] (panics if it cannot be built).
pub fn pie_align_2m() -> PathBuf {
    path(Prog::PieAlign2M)
}

/// Path of [`Prog::PieExecStack`] (panics if it cannot be built).
pub fn pie_execstack() -> PathBuf {
    path(Prog::PieExecStack)
}

/// Path of [`Prog::BigBss`] (panics if it cannot be built).
pub fn big_bss() -> PathBuf {
    path(Prog::BigBss)
}

/// Path of [`Prog::AsmExit`] (panics if it cannot be built).
pub fn asm_exit() -> PathBuf {
    path(Prog::AsmExit)
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Write `contents` to `path` via a temporary file and a rename, unless the file already
/// has exactly these contents (then it is left untouched, keeping its mtime).
fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<()> {
    if fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    let tmp = tmp_name(path);
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path.file_name().expect("file path").to_string_lossy();
    path.with_file_name(format!(".{name}.tmp.{}", unique_suffix()))
}

fn build_uncached(prog: Prog) -> io::Result<PathBuf> {
    let dir = cache_dir()?;
    let out = dir.join(prog.name());
    // Programs built elsewhere with a cross gcc (the kernel farm's guests have no compiler):
    // taken as they are, by name.
    if std::env::var_os("PROGLOAD_TESTPROGS_PREBUILT").is_some() {
        return match fs::metadata(&out) {
            Ok(_) => Ok(out),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!(
                    "PROGLOAD_TESTPROGS_PREBUILT is set but {} is missing: {e}",
                    out.display()
                ),
            )),
        };
    }
    let (ext, body) = prog.source();
    let src = dir.join(format!("{}.{ext}", prog.name()));
    // The recipe goes into the source so that changing it invalidates the build. A C comment
    // is valid in both C and preprocessed assembler (`.S`).
    let mut text = format!("/* gcc {} -o {} */\n", prog.flags().join(" "), prog.name());
    text.push_str(body);
    write_if_changed(&src, text.as_bytes())?;

    let up_to_date = match (fs::metadata(&out), fs::metadata(&src)) {
        (Ok(o), Ok(s)) => o.modified()? >= s.modified()?,
        _ => false,
    };
    if up_to_date {
        return Ok(out);
    }

    let tmp = tmp_name(&out);
    // `PROGLOAD_TESTPROGS_CC`: another compiler of gcc's flags (a cross gcc).
    let cc = std::env::var_os("PROGLOAD_TESTPROGS_CC").unwrap_or_else(|| "gcc".into());
    let result = Command::new(&cc)
        .args(prog.flags())
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .output();
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot run {} (is it installed?): {e}",
                    cc.to_string_lossy()
                ),
            ))
        }
    };
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "gcc {} failed ({}): {}",
            prog.flags().join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    fs::rename(&tmp, &out).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    Ok(out)
}

/// A uniquely named directory under the system temporary directory, removed (recursively)
/// when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create a new empty directory.
    pub fn new() -> io::Result<TempDir> {
        let base = std::env::temp_dir();
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("progload-testkit.{}.{nanos}", unique_suffix()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Write `contents` to `dir/name` with mode 0755 (regardless of the umask) and return the
/// path. The write descriptor is closed before this returns.
///
/// Note: in a multi-threaded test process, a child forked by another thread at the moment
/// the file is open for writing briefly inherits that descriptor, and executing the file in
/// that window fails with `ETXTBSY`; callers that exec the file right away may want to retry
/// on that error.
pub fn write_executable(dir: &Path, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&path)?;
    f.write_all(contents)?;
    f.set_permissions(fs::Permissions::from_mode(0o755))?;
    drop(f);
    Ok(path)
}

/// Body of [`write_sh_script`].
pub const SH_SCRIPT: &str = "#!/bin/sh\nexit 0\n";
/// Body of [`write_sh_e_script`]: an interpreter line with one argument.
pub const SH_E_SCRIPT: &str = "#!/bin/sh -e\nexit 0\n";

/// Write a `#!/bin/sh` script that exits 0 to `dir/name`, mode 0755.
pub fn write_sh_script(dir: &Path, name: &str) -> io::Result<PathBuf> {
    write_executable(dir, name, SH_SCRIPT.as_bytes())
}

/// Write a `#!/bin/sh -e` script (interpreter plus one argument) that exits 0 to
/// `dir/name`, mode 0755.
pub fn write_sh_e_script(dir: &Path, name: &str) -> io::Result<PathBuf> {
    write_executable(dir, name, SH_E_SCRIPT.as_bytes())
}

/// Writes `dir/name`: a static x86_64 ET_EXEC (an r-x page at 0x400000, then a data segment
/// at 0x10000000 with `data` bytes of file contents and one page of bss), the file extended
/// sparsely to its full size. Two files of different `data` differ only in segment sizes.
pub fn write_sized_elf(dir: &Path, name: &str, data: u64) -> io::Result<PathBuf> {
    use crate::elfbuild::{ElfBuilder, ProgramHeader, EM_X86_64, ET_EXEC, PF_R, PF_W, PF_X};
    let mut b = ElfBuilder::new(ET_EXEC, EM_X86_64);
    b.header.e_entry = 0x401000;
    b.phdrs.push(ProgramHeader::load(
        PF_R | PF_X,
        0,
        0x400000,
        0x2000,
        0x2000,
    ));
    b.phdrs.push(ProgramHeader::load(
        PF_R | PF_W,
        0x2000,
        0x1000_0000,
        data,
        data + 0x1000,
    ));
    b.phdrs.push(ProgramHeader::gnu_stack(PF_R | PF_W));
    b.min_len = 0x2000;
    let path = write_executable(dir, name, &b.build())?;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(0x2000 + data)?;
    Ok(path)
}
