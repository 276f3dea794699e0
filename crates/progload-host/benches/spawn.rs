//! `progload run` / `spawn` against the kernel's exec for `/bin/true`, side by side in one
//! run.
//!
//! - `spawn_true/progload_spawn`: [`progload_host::run::spawn`] of `/bin/true` (plan with a
//!   warm host profile, fork, userland exec in the child through the ptrace helper), then
//!   `waitpid` for its exit.
//! - `spawn_true/std_command`: `std::process::Command::new("/bin/true").status()` (the
//!   kernel's `execve` in a vfork'd child, then wait): the reference row.
//! - `whole_process/progload_run_true`: `progload run /bin/true` as a process, started and
//!   waited for with `Command::status` (execve of progload, its startup, the plan, the
//!   userland exec, `/bin/true`).
//! - `whole_process/true`: `/bin/true` the same way: the reference row.
//!
//! The `progload` binary is `$PROGLOAD`, else `progload` in the target directory of this
//! bench (`cargo build --release -p progload-cli` first); without it the whole-process group
//! is skipped with a message.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use progload::LoadRequest;
use progload_host::run::spawn;
use progload_host::{host_profile, HostFs};

fn progload_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROGLOAD") {
        return Some(PathBuf::from(p));
    }
    // target/<profile>/deps/spawn-HASH → target/<profile>/progload
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("progload");
    p.exists().then_some(p)
}

fn benches(c: &mut Criterion) {
    let fs = HostFs::new("/").expect("host fs");
    let profile = host_profile().expect("host profile");
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    let req = LoadRequest::new("/bin/true", vec![b"/bin/true".to_vec()], env);

    let mut g = c.benchmark_group("spawn_true");
    g.bench_function("progload_spawn", |b| {
        b.iter(|| {
            let pid = spawn(&fs, &profile, &req).expect("spawn");
            let mut status = 0;
            // SAFETY: reaps the child spawn() just started; `status` is a valid pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        })
    });
    g.bench_function("std_command", |b| {
        b.iter(|| {
            let st = Command::new("/bin/true").status().expect("/bin/true");
            assert!(st.success());
        })
    });
    g.finish();

    let Some(progload) = progload_bin() else {
        eprintln!(
            "SKIPPED whole_process: no progload binary (set PROGLOAD, or run \
             `cargo build --release -p progload-cli` first)"
        );
        return;
    };
    let mut g = c.benchmark_group("whole_process");
    g.bench_function("progload_run_true", |b| {
        b.iter(|| {
            let st = Command::new(&progload)
                .args(["run", "/bin/true"])
                .status()
                .expect("progload run");
            assert!(st.success());
        })
    });
    g.bench_function("true", |b| {
        b.iter(|| {
            let st = Command::new("/bin/true").status().expect("/bin/true");
            assert!(st.success());
        })
    });
    g.finish();
}

criterion_group!(spawn_benches, benches);
criterion_main!(spawn_benches);
