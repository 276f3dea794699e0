//! Each kernel preset against the profile `progload profile` captured in the matching Debian
//! kernel booted by the farm (`scripts/farm/check.sh` writes them to
//! `target/farm/KERNEL/profile.json`; the copies in `tests/farm-profiles/` are those
//! captures). They must be equal in every field a preset can know: all but the CPU's hwcaps
//! and platform, the signal frame size, riscv64's cache sizes and the vDSO image's bytes.

use std::process::Command;

#[test]
fn presets_equal_the_profiles_captured_in_the_booted_kernels() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/farm-profiles");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let kernel = path.file_stem().unwrap().to_str().unwrap().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_progload"))
            .args(["profile", "--preset", &kernel, "--compare"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "preset {kernel} differs from the profile captured in its kernel:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked.push(kernel);
    }
    checked.sort();
    // Every LTS preset of the farm has its capture.
    for k in [
        "aarch64-5.10",
        "aarch64-6.1",
        "aarch64-6.12",
        "riscv64-6.12",
        "riscv64-6.12-sv39",
        "riscv64-6.12-sv48",
        "x86_64-5.10",
        "x86_64-6.1",
        "x86_64-6.12",
    ] {
        assert!(
            checked.iter().any(|c| c == k),
            "no capture for {k}: {checked:?}"
        );
    }
}

/// The comparison does fail on a difference: a 5.10 capture is not a 6.1 preset.
#[test]
fn a_capture_of_another_kernel_differs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/farm-profiles");
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args(["profile", "--preset", "x86_64-6.1", "--compare"])
        .arg(dir.join("x86_64-5.10.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kernel: preset"), "{text}");
}
