//! binfmt_misc rules registered with the running kernel for the length of a test.

use std::io::Write;
use std::path::Path;

/// Where the rules are registered (mounted there by [`register`] when it is not).
pub const MISC: &str = "/proc/sys/fs/binfmt_misc";

/// A rule registered with the kernel, removed on drop.
pub struct Registered(String);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{MISC}/{}", self.0))
        {
            let _ = f.write_all(b"-1");
        }
    }
}

/// Registers `rule` (the `register` syntax) whose name is `name`, mounting binfmt_misc first
/// if needed (needs root). Panics when either fails.
pub fn register(rule: &str, name: &str) -> Registered {
    // The tests of one binary run in parallel: one of them mounts binfmt_misc if needed.
    static MOUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = MOUNT.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new(&format!("{MISC}/register")).exists() {
        let st = std::process::Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc", MISC])
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "cannot mount binfmt_misc (needs root)"
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("{MISC}/register"))
        .expect("open register");
    f.write_all(rule.as_bytes())
        .unwrap_or_else(|e| panic!("register {rule}: {e}"));
    Registered(name.to_string())
}
