//! `progload run`: the same output and exit status as a direct (kernel) exec, the same image
//! at the first instruction, and no execve-family call on the way (checked with a seccomp
//! filter that kills the process on any execve but the one that starts progload).

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use progload_testkit::progs::{write_executable, TempDir};

const PROGLOAD: &str = env!("CARGO_BIN_EXE_progload");

/// Test programs, built once per test process into one temporary directory.
struct Progs {
    _dir: TempDir,
    path: PathBuf,
}

const C_PROC_SELF: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
static void dump(const char *name) {
    char b[65536]; int fd = open(name, O_RDONLY); ssize_t n = read(fd, b, sizeof b); close(fd);
    printf("%s (%zd):", name, n);
    for (ssize_t i = 0; i < n; i++) printf(b[i] >= 32 && b[i] < 127 ? "%c" : "\\x%02x", (unsigned char)b[i]);
    printf("\n");
}
int main(void) {
    char b[4096]; ssize_t n = readlink("/proc/self/exe", b, sizeof b - 1);
    b[n > 0 ? n : 0] = 0; printf("exe %s\n", b);
    dump("/proc/self/cmdline"); dump("/proc/self/environ"); dump("/proc/self/comm");
    int fd = open("/proc/self/auxv", O_RDONLY); unsigned long a[256]; n = read(fd, a, sizeof a); close(fd);
    for (int i = 0; i * 16 < n; i++) if (a[2 * i] != 25) printf("auxv %lu %#lx\n", a[2 * i], a[2 * i + 1]);
    fd = open("/proc/self/stat", O_RDONLY); n = read(fd, b, sizeof b - 1); close(fd); b[n] = 0;
    int f = 1; for (char *p = b; *p; p++) if (*p == ' ') { f++;
        if ((f >= 26 && f <= 28) || (f >= 45 && f <= 51)) { printf(" stat%d=", f);
            for (char *q = p + 1; *q && *q != ' '; q++) putchar(*q); } }
    printf("\n");
    dump("/proc/self/maps");
    return 0;
}
"#;

const C_THREADS: &str = r#"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
static volatile sig_atomic_t got;
static void handler(int s) { got = s; }
static void *work(void *a) { long v = (long)a; for (int i = 0; i < 100000; i++) v = v * 3 % 1000003; return (void *)v; }
int main(void) {
    char st[4096]; int fd = open("/proc/self/stat", O_RDONLY); ssize_t n = read(fd, st, sizeof st - 1); close(fd); st[n] = 0;
    unsigned long start_brk = 0; int f = 1;
    for (char *p = st; *p; p++) if (*p == ' ' && ++f == 47) start_brk = strtoul(p + 1, 0, 10);
    char *b0 = sbrk(0);
    printf("brk at start == start_brk: %d\n", (unsigned long)b0 == start_brk);
    char *b1 = sbrk(1 << 20); memset(b1, 7, 1 << 20);
    printf("sbrk grew by %ld\n", (char *)sbrk(0) - b0);
    char *m = malloc(8 << 20); memset(m, 1, 8 << 20); free(m);
    pthread_t t[4]; long sum = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)(i + 1));
    for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    printf("threads sum %ld\n", sum);
    signal(SIGUSR1, handler); raise(SIGUSR1); printf("handled %d\n", got);
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR2); sigprocmask(SIG_BLOCK, &s, 0); raise(SIGUSR2);
    sigpending(&s); printf("pending USR2 %d\n", sigismember(&s, SIGUSR2));
    return 5;
}
"#;

/// `_start` stores every register, RFLAGS, MXCSR, the x87 control word and FS/GS base, then
/// writes them and the stack from rsp to 0x7ffffffff000 (randomization off) to stdout.
const ASM_DUMP: &str = r#"
    .text
    .globl _start
_start:
    mov %rax, regs+0(%rip)
    mov %rbx, regs+8(%rip)
    mov %rcx, regs+16(%rip)
    mov %rdx, regs+24(%rip)
    mov %rsi, regs+32(%rip)
    mov %rdi, regs+40(%rip)
    mov %rbp, regs+48(%rip)
    mov %rsp, regs+56(%rip)
    mov %r8, regs+64(%rip)
    mov %r9, regs+72(%rip)
    mov %r10, regs+80(%rip)
    mov %r11, regs+88(%rip)
    mov %r12, regs+96(%rip)
    mov %r13, regs+104(%rip)
    mov %r14, regs+112(%rip)
    mov %r15, regs+120(%rip)
    pushfq
    pop %rax
    mov %rax, regs+128(%rip)
    stmxcsr regs+136(%rip)
    fnstcw regs+144(%rip)
    movq %xmm0, %rax
    mov %rax, regs+152(%rip)
    mov $158, %eax
    mov $0x1003, %edi
    lea regs+160(%rip), %rsi
    syscall
    mov $158, %eax
    mov $0x1004, %edi
    lea regs+168(%rip), %rsi
    syscall
    mov $1, %eax
    mov $1, %edi
    lea regs(%rip), %rsi
    mov $176, %edx
    syscall
    mov $1, %eax
    mov $1, %edi
    mov regs+56(%rip), %rsi
    mov $0x7ffffffff000, %rdx
    sub %rsi, %rdx
    syscall
    mov $60, %eax
    xor %edi, %edi
    syscall
    .bss
    .align 16
regs: .skip 176
    .section .note.GNU-stack,"",@progbits
"#;

fn gcc(dir: &Path, name: &str, ext: &str, src: &str, flags: &[&str]) {
    let src_path = dir.join(format!("{name}.{ext}"));
    std::fs::write(&src_path, src).expect("write source");
    let out = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(dir.join(name))
        .arg(&src_path)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn progs() -> &'static Path {
    static P: OnceLock<Progs> = OnceLock::new();
    &P.get_or_init(|| {
        let dir = TempDir::new().expect("temp dir");
        let d = dir.path();
        gcc(d, "proc-self", "c", C_PROC_SELF, &["-O1"]);
        gcc(
            d,
            "proc-self-static",
            "c",
            C_PROC_SELF,
            &["-O1", "-static", "-no-pie"],
        );
        gcc(
            d,
            "proc-self-static-pie",
            "c",
            C_PROC_SELF,
            &["-O1", "-static-pie"],
        );
        gcc(d, "proc-self-no-pie", "c", C_PROC_SELF, &["-O1", "-no-pie"]);
        gcc(d, "threads", "c", C_THREADS, &["-O1", "-pthread"]);
        gcc(
            d,
            "dump",
            "S",
            ASM_DUMP,
            &["-nostdlib", "-static", "-no-pie"],
        );
        gcc(
            d,
            "big-bss",
            "c",
            "static char big[300 << 20]; int main(void) { big[5] = 1; return big[7]; }\n",
            &["-O1", "-static", "-no-pie"],
        );
        write_executable(
            d,
            "script",
            b"#!/bin/sh -e\necho \"script: $0 [$1] [$2] $#\"\nexit 4\n",
        )
        .expect("script");
        std::fs::write(d.join("words"), "pear\napple\nfig\nbanana\n").expect("words");
        let path = d.to_path_buf();
        Progs { _dir: dir, path }
    })
    .path
}

fn prog(name: &str) -> String {
    progs().join(name).to_string_lossy().into_owned()
}

/// Runs `argv` directly, and through `progload run`, with the same small environment and
/// optionally with randomization off for both (progload itself and the program).
fn both(argv: &[&str], no_randomize: bool) -> (Output, Output) {
    let env = [("A", "1"), ("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];
    let setup = |c: &mut Command| {
        c.env_clear().envs(env).current_dir(progs());
        if no_randomize {
            // SAFETY: personality() is async-signal-safe and only changes the child.
            unsafe {
                c.pre_exec(|| {
                    libc::personality(0x0040000);
                    Ok(())
                });
            }
        }
    };
    let mut direct = Command::new(argv[0]);
    direct.args(&argv[1..]);
    setup(&mut direct);
    let mut via = Command::new(PROGLOAD);
    via.arg("run");
    if no_randomize {
        via.arg("--no-randomize");
    }
    via.arg("--").args(argv);
    setup(&mut via);
    (
        direct.output().expect("direct run"),
        via.output().expect("progload run"),
    )
}

fn assert_same(argv: &[&str], no_randomize: bool) -> Output {
    let (k, u) = both(argv, no_randomize);
    let show = |o: &Output| {
        format!(
            "status {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        k.status == u.status && k.stdout == u.stdout && k.stderr == u.stderr,
        "{argv:?} differs\n--- direct:\n{}\n--- progload run:\n{}",
        show(&k),
        show(&u)
    );
    u
}

#[test]
fn coreutils_same_as_direct() {
    let words = prog("words");
    // `ls -la /` would show /tmp, whose time changes as tests run in parallel.
    assert_same(&["/bin/ls", "-la", "/usr"], false);
    assert_same(&["/bin/ls", "/"], false);
    assert_same(&["/bin/cat", &words], false);
    assert_same(&["/usr/bin/sort", &words], false);
    let out = assert_same(&["/usr/bin/env"], false);
    assert!(String::from_utf8_lossy(&out.stdout).contains("A=1"));
    assert_same(&["/bin/ls", "/nonexistent-dir"], false);
}

#[test]
fn shell_pipes_and_script_same_as_direct() {
    let out = assert_same(
        &[
            "/bin/sh",
            "-c",
            "echo hello world | tr a-z A-Z | sed s/O/0/g; ls / | sort | head -3; exit 3",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(3));
    let out = assert_same(&[&prog("script"), "one two", "three"], false);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[one two] [three] 2"));
}

#[test]
fn interpreters_same_as_direct() {
    assert_same(
        &[
            "/usr/bin/python3",
            "-c",
            "import sys, os; print(sys.argv, os.getpid() > 0, sorted(os.environ)); sys.exit(6)",
        ],
        false,
    );
    assert_same(
        &[
            "/usr/bin/perl",
            "-e",
            "print qq(perl @ARGV\\n); exit 2",
            "x",
        ],
        false,
    );
    for git in ["/usr/bin/git", "/usr/local/bin/git"] {
        if Path::new(git).exists() {
            assert_same(&[git, "--version"], false);
        }
    }
}

#[test]
fn test_programs_same_as_direct() {
    for p in [
        "proc-self",
        "proc-self-static",
        "proc-self-static-pie",
        "proc-self-no-pie",
    ] {
        // With randomization off for both, everything the program prints about itself
        // (exe, cmdline, environ, comm, auxv but AT_RANDOM, mm fields, maps) is equal.
        assert_same(&[&prog(p), "arg 1", "arg2"], true);
    }
    let out = assert_same(&[&prog("threads")], false);
    assert_eq!(out.status.code(), Some(5));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("brk at start == start_brk: 1"), "{text}");
    assert!(text.contains("handled 10"), "{text}");
    assert!(text.contains("pending USR2 1"), "{text}");
}

/// Splits a dump of the asm program into registers and stack, with the 16 AT_RANDOM bytes
/// (which the kernel draws itself) zeroed.
fn registers_and_stack(out: &[u8]) -> (Vec<u64>, Vec<u8>) {
    assert!(out.len() > 176, "short dump: {} bytes", out.len());
    let regs: Vec<u64> = out[..176]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let rsp = regs[7];
    let mut stack = out[176..].to_vec();
    let word = |i: usize| u64::from_le_bytes(stack[8 * i..8 * i + 8].try_into().unwrap());
    let argc = word(0) as usize;
    let mut i = argc + 2;
    while word(i) != 0 {
        i += 1;
    }
    i += 1;
    let mut random = None;
    while word(i) != 0 {
        if word(i) == 25 {
            random = Some(word(i + 1));
        }
        i += 2;
    }
    let at = (random.expect("AT_RANDOM") - rsp) as usize;
    stack[at..at + 16].fill(0);
    (regs, stack)
}

#[test]
fn registers_auxv_and_stack_at_entry_equal_kernel() {
    let (k, u) = both(&[&prog("dump"), "x", "yy"], true);
    assert!(k.status.success() && u.status.success(), "{k:?} {u:?}");
    let (kr, ks) = registers_and_stack(&k.stdout);
    let (ur, us) = registers_and_stack(&u.stdout);
    let names = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rflags", "mxcsr", "fcw", "xmm0", "fs_base", "gs_base",
    ];
    for ((n, a), b) in names.iter().zip(&kr).zip(&ur) {
        assert_eq!(a, b, "{n}: kernel {a:#x}, progload run {b:#x}");
    }
    assert_eq!(ks.len(), us.len(), "stack sizes");
    assert!(ks == us, "stack bytes differ");
}

#[test]
fn maps_at_main_equal_kernel_with_randomization_off() {
    // A static program's maps at main are the kernel's image plus the brk heap of its TLS:
    // they show the layout, [vvar]/[vdso] moves and brk.
    let out = assert_same(&[&prog("proc-self-static")], true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[vdso]") && text.contains("[stack]") && text.contains("[heap]"));
    assert!(!text.contains(PROGLOAD), "{text}");
}

#[test]
fn failure_after_the_point_of_no_return_is_sigsegv() {
    // Under a 200 MB RLIMIT_AS the 300 MB bss cannot be mapped: the kernel finds out after
    // its point of no return and kills the process with SIGSEGV; so does progload run.
    let limited = |argv: &[&str]| {
        Command::new("/bin/sh")
            .args(["-c", "ulimit -v 204800; exec \"$@\"", "sh"])
            .args(argv)
            .status()
            .unwrap()
    };
    use std::os::unix::process::ExitStatusExt;
    let k = limited(&[&prog("big-bss")]);
    let u = limited(&[PROGLOAD, "run", &prog("big-bss")]);
    assert_eq!(k.signal(), Some(libc::SIGSEGV), "kernel: {k:?}");
    assert_eq!(u.signal(), Some(libc::SIGSEGV), "progload run: {u:?}");
}

#[test]
fn errors_exit_127_and_126() {
    let out = Command::new(PROGLOAD)
        .args(["run", "/nonexistent/prog"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENOENT"));
    let dir = TempDir::new().unwrap();
    let f = dir.join("notexec");
    std::fs::write(&f, "hello").unwrap();
    let out = Command::new(PROGLOAD).arg("run").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EACCES"));
}

/// An i386 program, which the kernel runs, is refused before anything changes, saying why.
#[test]
fn an_i386_program_is_refused_with_the_reason() {
    let dir = TempDir::new().unwrap();
    let f = dir.join("elf32");
    std::fs::write(&f, progload_testkit::elfbuild::minimal_i386_exec()).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(PROGLOAD).arg("run").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(
        err.contains("an i386 program needs a 32-bit (compat) task"),
        "{err}"
    );
    // The kernel runs it (exit 0).
    let k = Command::new(&f).status().unwrap();
    assert_eq!(k.code(), Some(0));
}

/// Runs `progload run ARGS` in a child whose seccomp filter kills the process on every
/// execve-family call except the execve of progload itself, recognised by its path pointer
/// at a fixed unusual address. Returns the wait status and stdout.
fn under_seccomp(args: &[&str]) -> (i32, Vec<u8>) {
    const MAGIC: u64 = 0x1337_0000_0000;
    let path = CString::new(PROGLOAD).unwrap();
    let cargs: Vec<CString> = std::iter::once("progload")
        .chain(args.iter().copied())
        .map(|a| CString::new(a).unwrap())
        .collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envs: Vec<CString> = ["PATH=/usr/bin:/bin", "A=1"]
        .iter()
        .map(|e| CString::new(*e).unwrap())
        .collect();
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let kill = 0x8000_0000u32; // SECCOMP_RET_KILL_PROCESS
    let allow = 0x7fff_0000u32;
    let filter = [
        ins(LD_W_ABS, 0, 0, 4),                 // 0: arch
        ins(JEQ_K, 1, 0, 0xc000_003e),          // 1: AUDIT_ARCH_X86_64?
        ins(RET_K, 0, 0, kill),                 // 2
        ins(LD_W_ABS, 0, 0, 0),                 // 3: nr
        ins(JEQ_K, 5, 0, 59),                   // 4: execve → 10
        ins(JEQ_K, 3, 0, 322),                  // 5: execveat → kill
        ins(JEQ_K, 2, 0, 0x4000_0000 | 520),    // 6: x32 execve → kill
        ins(JEQ_K, 1, 0, 0x4000_0000 | 545),    // 7: x32 execveat → kill
        ins(RET_K, 0, 0, allow),                // 8
        ins(RET_K, 0, 0, kill),                 // 9
        ins(LD_W_ABS, 0, 0, 16),                // 10: args[0] low half
        ins(JEQ_K, 0, 3, MAGIC as u32),         // 11
        ins(LD_W_ABS, 0, 0, 20),                // 12: args[0] high half
        ins(JEQ_K, 0, 1, (MAGIC >> 32) as u32), // 13
        ins(RET_K, 0, 0, allow),                // 14
        ins(RET_K, 0, 0, kill),                 // 15
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes async-signal-safe calls on memory prepared before the
    // fork, then execs or exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: see above; every pointer refers to memory prepared before the fork.
        unsafe {
            libc::dup2(fds[1], 1);
            let page = libc::mmap(
                MAGIC as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            if page as u64 != MAGIC {
                libc::_exit(90);
            }
            let bytes = path.as_bytes_with_nul();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), page as *mut u8, bytes.len());
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog) != 0
            {
                libc::_exit(91);
            }
            libc::execve(page as *const libc::c_char, argv.as_ptr(), envp.as_ptr());
            libc::_exit(92);
        }
    }
    // SAFETY: closes our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reads into a valid buffer from our read end.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: closes our read end.
    unsafe { libc::close(fds[0]) };
    let mut status = 0;
    // SAFETY: reaps our child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    (status, out)
}

#[test]
fn no_execve_family_call_under_seccomp() {
    for p in ["proc-self-static", "proc-self", "proc-self-static-pie"] {
        let (status, out) = under_seccomp(&["run", &prog(p), "hello"]);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{p}: wait status {status:#x} (SIGSYS would be an execve)"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("hello") && text.contains(&prog(p)), "{text}");
    }
    // The filter does catch an execve made after progload's start: the shell's.
    let (status, out) = under_seccomp(&["run", "/bin/sh", "-c", "/bin/true; echo rc=$?"]);
    let text = String::from_utf8_lossy(&out);
    assert!(
        libc::WIFEXITED(status) && text.contains(&format!("rc={}", 128 + libc::SIGSYS)),
        "wait status {status:#x}, output {text}"
    );
}

#[test]
fn progload_leaves_nothing_behind() {
    // The shell's own descriptors, signal state and maps: the same as after a kernel exec
    // (no descriptor, mapping or blocked/ignored signal of progload's).
    let out = assert_same(
        &[
            "/bin/sh",
            "-c",
            "cd /proc/$$ && echo fd/*; grep -c target/debug/progload maps; \
             grep -E '^(SigIgn|SigCgt|SigPnd|ShdPnd)' status",
        ],
        false,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n0\n"));
}

#[test]
fn ld_so_run_directly_same_as_direct() {
    let ld = "/lib64/ld-linux-x86-64.so.2";
    if !Path::new(ld).exists() {
        eprintln!("SKIPPED ld_so_run_directly_same_as_direct: no {ld} on this host");
        return;
    }
    let out = assert_same(&[ld, "/usr/bin/true"], false);
    assert!(out.status.success());
    assert_same(&[ld, "/bin/sh", "-c", "echo via ld.so; exit 9"], false);
    // The library addresses ld.so prints depend on the layout: randomization off for both.
    let out = assert_same(&[ld, "--list", "/usr/bin/true"], true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libc.so.6 =>"), "{text}");
}

#[test]
fn nested_scripts_three_levels_same_as_direct() {
    // level1 → level2 → level3 → /bin/sh: the kernel's argv rewriting at each level, and
    // /proc/self/exe (the final interpreter) and comm (the first file's name).
    let dir = TempDir::new().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    write_executable(
        dir.path(),
        "level3",
        b"#!/bin/sh -e\necho \"$0|$*|$#\"; readlink /proc/$$/exe; cat /proc/$$/comm; exit 7\n",
    )
    .unwrap();
    write_executable(
        dir.path(),
        "level2",
        format!("#!{d}/level3 two\nnot run\n").as_bytes(),
    )
    .unwrap();
    write_executable(
        dir.path(),
        "level1",
        format!("#!{d}/level2  one  \nnot run\n").as_bytes(),
    )
    .unwrap();
    let out = assert_same(&[&format!("{d}/level1"), "x y", "z"], false);
    assert_eq!(out.status.code(), Some(7));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "{d}/level3|two {d}/level2 one {d}/level1 x y z|6\n"
        )),
        "{text}"
    );
    assert!(text.contains("\nlevel1\n"), "{text}");
}

/// How the test tracer attaches to the process it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attach {
    /// The child calls PTRACE_TRACEME (no options): the kernel's legacy exec SIGTRAP.
    TraceMe,
    /// The parent seizes the child with PTRACE_O_TRACEEXEC: PTRACE_EVENT_EXEC stops.
    SeizeTraceExec,
}

/// One ptrace stop of the traced child.
struct TraceStop {
    /// `status >> 8` of the wait status (signal, plus the event in bits 8..16).
    what: i32,
    si_code: i32,
    si_pid: i32,
    regs: libc::user_regs_struct,
    maps: String,
}

struct TraceRun {
    stops: Vec<TraceStop>,
    status: i32,
    stdout: Vec<u8>,
    pid: i32,
}

/// Starts `argv` under a minimal ptrace tracer (this test process), randomization off,
/// records every stop (registers, siginfo, /proc/PID/maps) and resumes it: SIGTRAP is
/// suppressed, other signals are passed on. Returns the stops, the wait status and stdout.
fn trace_run(argv: &[&str], attach: Attach) -> TraceRun {
    let cargs: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut cargv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    cargv.push(std::ptr::null());
    let envs: Vec<CString> = ["PATH=/usr/bin:/bin", "A=1"]
        .iter()
        .map(|e| CString::new(*e).unwrap())
        .collect();
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (mut out, mut go) = ([0; 2], [0; 2]);
    // SAFETY: pipe2 writes two descriptors into each array.
    unsafe {
        assert_eq!(libc::pipe2(out.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    // SAFETY: the child only makes async-signal-safe calls on memory prepared before the
    // fork, then execs or exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: see above.
        unsafe {
            libc::dup2(out[1], 1);
            libc::personality(0x0040000);
            if attach == Attach::TraceMe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            } else {
                let mut b = 0u8;
                libc::read(go[0], (&mut b as *mut u8).cast(), 1);
            }
            libc::execve(cargv[0], cargv.as_ptr(), envp.as_ptr());
            libc::_exit(92);
        }
    }
    // SAFETY: closes our copies of the child's ends; the seize happens before the child
    // is let go, so it is traced from its exec on.
    unsafe {
        libc::close(out[1]);
        libc::close(go[0]);
        if attach == Attach::SeizeTraceExec {
            let opts = libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
            assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, child, 0, opts), 0);
            libc::write(go[1], b"g".as_ptr().cast(), 1);
        }
        libc::close(go[1]);
    }
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a valid buffer from our read end.
            let n = unsafe { libc::read(out[0], buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            v.extend_from_slice(&buf[..n as usize]);
        }
        // SAFETY: closes our read end.
        unsafe { libc::close(out[0]) };
        v
    });
    let mut stops = Vec::new();
    let status = loop {
        let mut status = 0;
        // SAFETY: waits for our traced child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(child, &mut status, libc::__WALL) };
        assert_eq!(r, child, "waitpid");
        if !libc::WIFSTOPPED(status) {
            break status;
        }
        // SAFETY: plain old data, filled by the kernel below.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: GETREGS and GETSIGINFO write the structures given; the child is stopped.
        unsafe {
            libc::ptrace(libc::PTRACE_GETREGS, child, 0, &mut regs);
            libc::ptrace(libc::PTRACE_GETSIGINFO, child, 0, &mut si);
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        stops.push(TraceStop {
            what: status >> 8,
            si_code: si.si_code,
            // SAFETY: si_pid is valid for the SI_USER/SI_TKILL signals this test sends.
            si_pid: unsafe { si.si_pid() },
            regs,
            maps: std::fs::read_to_string(format!("/proc/{child}/maps")).unwrap_or_default(),
        });
        let pass = if event != 0 || sig == libc::SIGTRAP {
            0
        } else {
            sig
        };
        // SAFETY: resumes our stopped tracee.
        unsafe { libc::ptrace(libc::PTRACE_CONT, child, 0, pass) };
    };
    TraceRun {
        stops,
        status,
        stdout: reader.join().unwrap(),
        pid: child,
    }
}

/// The registers a tracer reads, as (name, value) pairs, `orig_rax` left out.
fn named_regs(r: &libc::user_regs_struct) -> Vec<(&'static str, u64)> {
    vec![
        ("r15", r.r15),
        ("r14", r.r14),
        ("r13", r.r13),
        ("r12", r.r12),
        ("rbp", r.rbp),
        ("rbx", r.rbx),
        ("r11", r.r11),
        ("r10", r.r10),
        ("r9", r.r9),
        ("r8", r.r8),
        ("rax", r.rax),
        ("rcx", r.rcx),
        ("rdx", r.rdx),
        ("rsi", r.rsi),
        ("rdi", r.rdi),
        ("rip", r.rip),
        ("cs", r.cs),
        ("eflags", r.eflags),
        ("rsp", r.rsp),
        ("ss", r.ss),
        ("fs_base", r.fs_base),
        ("gs_base", r.gs_base),
        ("ds", r.ds),
        ("es", r.es),
        ("fs", r.fs),
        ("gs", r.gs),
    ]
}

/// Compares the registers (but `skip`) and the mappings at two stops.
fn assert_stop_equals_kernel(kernel: &TraceStop, ours: &TraceStop, skip: &[&str]) {
    for ((n, a), (_, b)) in named_regs(&kernel.regs).iter().zip(named_regs(&ours.regs)) {
        if !skip.contains(n) {
            assert_eq!(*a, b, "{n} at the stop: kernel {a:#x}, progload run {b:#x}");
        }
    }
    assert_eq!(kernel.maps, ours.maps, "/proc/PID/maps at the stop");
    assert!(!ours.maps.contains(PROGLOAD), "{}", ours.maps);
}

#[test]
fn traceme_tracer_gets_the_exec_sigtrap_at_the_entry() {
    let dump = prog("dump");
    let k = trace_run(&[&dump, "x", "yy"], Attach::TraceMe);
    let u = trace_run(
        &[PROGLOAD, "run", "--no-randomize", &dump, "x", "yy"],
        Attach::TraceMe,
    );
    // The kernel: one SIGTRAP (SI_USER from the process itself) at the program's entry.
    assert_eq!(k.stops.len(), 1, "kernel stops");
    assert_eq!(k.stops[0].what, libc::SIGTRAP);
    // progload run: its own exec's SIGTRAP, then the same SIGTRAP at the entry.
    assert_eq!(u.stops.len(), 2, "progload run stops");
    let (ks, us) = (&k.stops[0], &u.stops[1]);
    assert_eq!(us.what, libc::SIGTRAP);
    assert_eq!((ks.si_code, us.si_code), (libc::SI_USER, libc::SI_USER));
    assert_eq!((ks.si_pid, us.si_pid), (k.pid, u.pid));
    assert_stop_equals_kernel(ks, us, &[]);
    // The kernel's stop is at the exit of execve, ours at the exit of rt_sigreturn.
    assert_eq!(ks.regs.orig_rax, libc::SYS_execve as u64);
    assert_eq!(us.regs.orig_rax, u64::MAX);
    // And the program sees the same registers and stack at its first instruction.
    assert_eq!(k.status, u.status);
    assert!(libc::WIFEXITED(u.status) && libc::WEXITSTATUS(u.status) == 0);
    let (kr, kst) = registers_and_stack(&k.stdout);
    let (ur, ust) = registers_and_stack(&u.stdout);
    assert_eq!(kr, ur, "registers at entry");
    assert!(kst == ust, "stack at entry");
}

#[test]
fn traceexec_tracer_gets_a_sigtrap_instead_of_the_exec_event() {
    let prog = prog("proc-self-static");
    let k = trace_run(&[&prog], Attach::SeizeTraceExec);
    let u = trace_run(
        &[PROGLOAD, "run", "--no-randomize", &prog],
        Attach::SeizeTraceExec,
    );
    let exec_event = libc::SIGTRAP | (libc::PTRACE_EVENT_EXEC << 8);
    // The kernel: a PTRACE_EVENT_EXEC stop, no signal.
    assert_eq!(k.stops.len(), 1);
    assert_eq!(k.stops[0].what, exec_event);
    // progload run: the event for its own exec, then a SIGTRAP signal-delivery-stop at the
    // entry, with the registers and mappings of the kernel's event stop.
    assert_eq!(u.stops.len(), 2);
    assert_eq!(u.stops[0].what, exec_event);
    assert_eq!(u.stops[1].what, libc::SIGTRAP);
    assert_eq!(u.stops[1].si_code, libc::SI_USER);
    // The event stop is inside execve: rax still holds -ENOSYS there (the program starts
    // with 0, as ours shows).
    assert_eq!(k.stops[0].regs.rax, (-libc::ENOSYS) as u64);
    assert_eq!(u.stops[1].regs.rax, 0);
    assert_stop_equals_kernel(&k.stops[0], &u.stops[1], &["rax"]);
    assert_eq!(k.status, u.status);
    // The program's view of itself (exe, cmdline, environ, auxv, mm fields, maps) too.
    let strip_random = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("auxv 25 "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip_random(&k.stdout), strip_random(&u.stdout));
}

/// `program` found on PATH, or a loud skip message.
fn tool(program: &str, test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIPPED {test}: {program} is not installed");
    }
    found
}

#[test]
fn gdb_reaches_the_entry_and_loads_symbols_from_proc_pid_exe() {
    let Some(gdb) = tool(
        "gdb",
        "gdb_reaches_the_entry_and_loads_symbols_from_proc_pid_exe",
    ) else {
        return;
    };
    for (name, entry_symbol) in [
        ("proc-self-static", "_start in section .text of "),
        (
            "proc-self",
            "_start in section .text of /lib64/ld-linux-x86-64.so.2",
        ),
    ] {
        let p = prog(name);
        let out = Command::new(&gdb)
            .args(["-nx", "-batch"])
            .args(["-ex", "run"])
            .args(["-ex", "info proc mappings"])
            .args(["-ex", "info registers rip rcx r11 eflags"])
            .args([
                "-ex",
                "python gdb.execute('file /proc/%d/exe' % gdb.selected_inferior().pid)",
            ])
            .args(["-ex", "info symbol $pc"])
            .args(["-ex", "break main"])
            .args(["-ex", "continue"])
            .args(["-ex", "info symbol $pc"])
            .args(["-ex", "continue"])
            .arg("--args")
            .args([PROGLOAD, "run", &p, "gdb-arg"])
            .env("PATH", "/usr/bin:/bin")
            .current_dir(progs())
            .output()
            .expect("run gdb");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("Python scripting is not supported") {
            eprintln!("SKIPPED gdb test: this gdb has no Python to name /proc/PID/exe");
            return;
        }
        // Stopped at the entry by the exec SIGTRAP, with the program's mappings only.
        assert!(
            text.contains("Program received signal SIGTRAP"),
            "{name}: {text}"
        );
        let (maps, _) = text
            .split_once("rip ")
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(
            maps.contains(&p) && !maps.contains(PROGLOAD),
            "{name}: {text}"
        );
        assert!(text.contains("rcx            0x0"), "{name}: {text}");
        assert!(text.contains("eflags         0x202"), "{name}: {text}");
        // The symbols come from /proc/PID/exe: the entry, then main.
        let want = if entry_symbol.ends_with("of ") {
            format!("{entry_symbol}{p}")
        } else {
            entry_symbol.to_string()
        };
        assert!(text.contains(&want), "{name}: want {want:?} in {text}");
        assert!(text.contains("Breakpoint 1, "), "{name}: {text}");
        assert!(text.contains("main in section .text"), "{name}: {text}");
        assert!(text.contains("gdb-arg"), "{name}: {text}");
        assert!(text.contains("exited normally"), "{name}: {text}");
    }
}

#[test]
fn strace_sees_the_rebuild_and_the_program_runs() {
    let Some(strace) = tool("strace", "strace_sees_the_rebuild_and_the_program_runs") else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = dir.join("log");
    // Builtins only: the one execve in the log must be progload's own.
    let argv = [
        "/bin/sh",
        "-c",
        "echo traced; read c < /proc/$$/comm; echo $c; exit 3",
    ];
    let direct = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let via = Command::new(&strace)
        .args(["-f", "-o"])
        .arg(&log)
        .args([PROGLOAD, "run"])
        .args(argv)
        .output()
        .unwrap();
    assert_eq!(direct.stdout, via.stdout);
    assert_eq!(direct.status.code(), via.status.code());
    let log = std::fs::read_to_string(&log).unwrap();
    // strace stops at every syscall: progload raises no SIGTRAP (strace would pass it on),
    // and the rebuild is in the log, ending with rt_sigreturn into the program.
    assert!(!log.contains("--- SIGTRAP"), "{log}");
    assert_eq!(log.matches("execve(").count(), 1, "{log}");
    assert!(log.contains("process_madvise(") && log.contains("rt_sigreturn("));
}

#[test]
fn traced_programs_same_as_direct() {
    // The traced path (P rebuilds itself) against the kernel under the same tracer:
    // everything the programs print about themselves, their exit status.
    let strip_random = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("auxv 25 "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cases: Vec<Vec<String>> = vec![
        vec![prog("proc-self"), "a b".into(), "c".into()],
        vec![prog("proc-self-static")],
        vec![prog("proc-self-static-pie")],
        vec![prog("proc-self-no-pie"), "x".into()],
        vec![prog("threads")],
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo a | tr a b; read c < /proc/$$/comm; echo $c; exit 4".into(),
        ],
        vec![
            "/usr/bin/python3".into(),
            "-c".into(),
            "print(6 * 7)".into(),
        ],
        vec![prog("script"), "one".into(), "two".into()],
    ];
    for argv in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let k = trace_run(&argv, Attach::TraceMe);
        let mut via = vec![PROGLOAD, "run", "--no-randomize"];
        via.extend(&argv);
        let u = trace_run(&via, Attach::TraceMe);
        assert_eq!(k.status, u.status, "{argv:?}");
        assert_eq!(strip_random(&k.stdout), strip_random(&u.stdout), "{argv:?}");
        let last = u.stops.iter().rfind(|s| s.what == libc::SIGTRAP);
        assert!(last.is_some(), "{argv:?}: no SIGTRAP stop");
    }
}
