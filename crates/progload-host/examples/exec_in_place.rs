//! Replace this process with another program, as `execve` would, without calling `execve`:
//! same pid, the kernel's exact image (x86_64 Linux).
//!
//! Run: `cargo run -p progload-host --example exec_in_place -- /usr/bin/echo hello`

use progload::LoadRequest;
use progload_host::{host_profile, HostFs};

fn main() {
    let args: Vec<Vec<u8>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_encoded_bytes())
        .collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| b"/usr/bin/echo".to_vec());
    let argv = if args.is_empty() {
        vec![program.clone(), b"hello from exec_in_place".to_vec()]
    } else {
        args
    };
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            kv
        })
        .collect();
    let fs = HostFs::new("/").expect("open /");
    let profile = host_profile().expect("read the host profile");
    let mut req = LoadRequest::new(program, argv, envp);
    let cwd = std::env::current_dir()
        .expect("cwd")
        .into_os_string()
        .into_encoded_bytes();
    let root = progload::resolve::DirPath::root(progload::FileSystem::root(&fs));
    req.cwd = progload::resolve::resolve_dir(&fs, &profile.credentials, &root, &cwd).ok();
    // On success this never returns: the process is now the program.
    let err = match progload_host::run::exec_in_place(&fs, &profile, &req) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("exec failed: {err}");
    std::process::exit(126);
}
