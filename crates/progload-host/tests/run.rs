//! The library side of the userland exec: `spawn`, `exec_in_place` and the process state
//! after the jump (signals, descriptors, alternate stack, comm) compared with a kernel exec
//! from the same state.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use progload::{Errno, LoadRequest};
use progload_host::run::{exec_in_place, spawn, RunError};
use progload_host::{host_profile, HostFs};
use progload_testkit::progs::TempDir;

/// Prints the process state an exec resets or keeps (not SigQ: it counts the signals
/// queued for the whole user, which the tests running in parallel change).
const C_STATE: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char line[512]; FILE *f = fopen("/proc/self/status", "r");
    while (fgets(line, sizeof line, f))
        if ((!strncmp(line, "Sig", 3) && strncmp(line, "SigQ", 4)) || !strncmp(line, "ShdPnd", 6) || !strncmp(line, "Name", 4)) fputs(line, stdout);
    fclose(f);
    for (int s = 1; s < 32; s++) {
        struct sigaction sa; sigaction(s, 0, &sa);
        if (sa.sa_handler != SIG_DFL || sa.sa_flags) printf("sig %d handler %p flags %#x\n", s, (void *)sa.sa_handler, sa.sa_flags);
    }
    stack_t ss; sigaltstack(0, &ss); printf("altstack %p %zu %d\n", ss.ss_sp, ss.ss_size, ss.ss_flags);
    DIR *d = opendir("/proc/self/fd"); struct dirent *e; int dfd = dirfd(d);
    while ((e = readdir(d))) if (e->d_name[0] != '.' && atoi(e->d_name) != dfd) printf("fd %s\n", e->d_name);
    printf("argv %s\n", argv[argc - 1]);
    return 0;
}
"#;

fn state_prog() -> &'static Path {
    static P: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &P.get_or_init(|| {
        let dir = TempDir::new().expect("temp dir");
        let src = dir.join("state.c");
        std::fs::write(&src, C_STATE).unwrap();
        let out = dir.join("state");
        let st = Command::new("gcc")
            .args(["-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("gcc");
        assert!(st.success());
        (dir, out)
    })
    .1
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// In a forked child: sets up signal state, descriptors, an alternate stack and comm, then
/// execs `prog` with the kernel (`kernel == true`) or in place; returns its stdout. With
/// `traced`, the child is traced by this process (PTRACE_TRACEME), which suppresses the exec
/// SIGTRAP and passes other signals on.
fn run_from_state(prog: &Path, kernel: bool, traced: bool) -> String {
    let path = CString::new(prog.as_os_str().as_encoded_bytes()).unwrap();
    let argv0 = path.clone();
    let arg1 = CString::new("last-arg").unwrap();
    let argv = [argv0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let env = CString::new("A=1").unwrap();
    let envp = [env.as_ptr(), std::ptr::null()];
    let fs = HostFs::new("/").unwrap();
    let profile = host_profile().unwrap();
    let req = LoadRequest::new(
        prog.as_os_str().as_encoded_bytes().to_vec(),
        vec![
            prog.as_os_str().as_encoded_bytes().to_vec(),
            b"last-arg".to_vec(),
        ],
        vec![b"A=1".to_vec()],
    );
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: the child changes only its own state, then execs or exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: plain libc calls on the child's own state with valid arguments.
        unsafe {
            if traced {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            }
            libc::dup2(fds[1], 1);
            libc::dup2(null.as_raw_fd(), 7); // inherited
            libc::fcntl(7, libc::F_SETFD, 0); // (dup2 keeps the flag if `null` is fd 7)
            libc::dup2(null.as_raw_fd(), 8);
            libc::fcntl(8, libc::F_SETFD, libc::FD_CLOEXEC); // closed by the exec
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
            sa.sa_sigaction = libc::SIG_IGN;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGWINCH);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::raise(libc::SIGHUP);
            let stack = libc::mmap(
                std::ptr::null_mut(),
                65536,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            let ss = libc::stack_t {
                ss_sp: stack,
                ss_flags: 0,
                ss_size: 65536,
            };
            libc::sigaltstack(&ss, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_NAME, c"renamed".as_ptr());
            if kernel {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(120);
            }
        }
        let _ = exec_in_place(&fs, &profile, &req);
        // SAFETY: ends the child after a failed exec.
        unsafe { libc::_exit(121) };
    }
    // SAFETY: closes our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    let mut traps = 0;
    if traced {
        // The output is small: it fits in the pipe while we drive the tracee to its end.
        loop {
            // SAFETY: waits for our traced child; `status` is a valid out pointer.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            if !libc::WIFSTOPPED(status) {
                break;
            }
            let sig = libc::WSTOPSIG(status);
            traps += usize::from(sig == libc::SIGTRAP);
            let pass = if sig == libc::SIGTRAP { 0 } else { sig };
            // SAFETY: resumes our stopped tracee.
            unsafe { libc::ptrace(libc::PTRACE_CONT, child, 0, pass) };
        }
        assert_eq!(traps, 1, "kernel={kernel}: one exec SIGTRAP");
    }
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
    // SAFETY: closes our read end and reaps the child.
    unsafe {
        libc::close(fds[0]);
        if !traced {
            libc::waitpid(child, &mut status, 0);
        }
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "kernel={kernel}: status {status:#x}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn process_state_after_exec_equals_kernel() {
    let prog = state_prog();
    let k = run_from_state(prog, true, false);
    let u = run_from_state(prog, false, false);
    assert_eq!(k, u, "kernel exec vs exec_in_place");
    check_state(&u);
}

#[test]
fn process_state_after_traced_exec_equals_kernel() {
    // The traced path (P rebuilds itself, no helper): same state as the kernel's exec
    // under the same tracer.
    let prog = state_prog();
    let k = run_from_state(prog, true, true);
    let u = run_from_state(prog, false, true);
    assert_eq!(k, u, "traced: kernel exec vs exec_in_place");
    check_state(&u);
}

fn check_state(u: &str) {
    // The kernel's rules, visible in the output: the handler was reset, the ignored signal
    // kept (flags cleared), the mask and the pending SIGHUP kept, the alternate stack
    // disabled, fd 8 (close-on-exec) closed, fd 7 kept, comm from the file name.
    assert!(u.contains("SigBlk:\t0000000008000001"), "{u}");
    assert!(u.contains("ShdPnd:\t0000000000000001") || u.contains("SigPnd:\t0000000000000001"));
    assert!(u.contains("sig 12 handler 0x1 flags 0"), "{u}");
    assert!(!u.contains("sig 10 "), "{u}");
    assert!(u.contains("altstack (nil) 0 2"), "{u}");
    assert!(u.contains("fd 7\n") && !u.contains("fd 8\n"), "{u}");
    assert!(u.contains("Name:\tstate\n"), "{u}");
}

#[test]
fn spawn_returns_the_pid_and_the_program_runs() {
    let fs = HostFs::new("/").unwrap();
    let profile = host_profile().unwrap();
    let req = LoadRequest::new(
        "/bin/sh",
        vec![b"sh".to_vec(), b"-c".to_vec(), b"exit 42".to_vec()],
        vec![],
    );
    let pid = spawn(&fs, &profile, &req).expect("spawn");
    let mut status = 0;
    // SAFETY: reaps the spawned child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 42);
}

#[test]
fn errors_come_back_before_the_point_of_no_return() {
    let fs = HostFs::new("/").unwrap();
    let profile = host_profile().unwrap();
    let req = LoadRequest::new("/nonexistent/x", vec![b"x".to_vec()], vec![]);
    match spawn(&fs, &profile, &req) {
        Err(e @ RunError::Plan(_)) => assert_eq!(e.errno(), Errno::ENOENT),
        other => panic!("{other:?}"),
    }
    // In place: the caller gets the error and goes on.
    // SAFETY: the child only calls exec_in_place and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let r = exec_in_place(&fs, &profile, &req);
        let code = match r {
            Err(e) if e.errno() == Errno::ENOENT => 33,
            _ => 34,
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: reaps the child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 33);
}
