//! `progload plan --svg`: the picture for /usr/bin/ls, a static non-PIE and a script is
//! written, rendered to PNG (rsvg-convert, which .ci/run installs) and checked for its labels.
//! The PNGs are left in target/progload-svg/ to be looked at.

use std::path::PathBuf;
use std::process::Command;

use progload_testkit::progs;

fn render(name: &str, program: &str, args: &[&str]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/progload-svg");
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join(format!("{name}.svg"));
    let png = dir.join(format!("{name}.png"));
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "plan",
            "--no-randomize",
            "--env-clear",
            "-e",
            "A=1",
            "--svg",
        ])
        .arg(&svg)
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "[stack]",
        "[vdso]",
        "auxv:",
        "AT_RANDOM: 16 bytes",
        "argv strings",
        "platform string",
        "brk",
        "sp = ",
    ] {
        assert!(text.contains(label), "{name}: no {label:?}");
    }
    let st = Command::new("rsvg-convert")
        .arg(&svg)
        .arg("-o")
        .arg(&png)
        .status();
    let st = st.expect(
        "rsvg-convert must be installed (Debian package librsvg2-bin; .ci/run installs it)",
    );
    assert!(st.success(), "{name}: the SVG does not render");
    let png_bytes = std::fs::read(&png).unwrap();
    assert!(
        png_bytes.starts_with(b"\x89PNG") && png_bytes.len() > 10_000,
        "{name}: empty picture"
    );
}

#[test]
fn pictures_render() {
    render("ls", "/usr/bin/ls", &["-la"]);
    render("static", progs::static_exec().to_str().unwrap(), &["x"]);
    let dir = progs::TempDir::new().unwrap();
    let script = progs::write_sh_e_script(dir.path(), "script.sh").unwrap();
    render("script", script.to_str().unwrap(), &["one", "two"]);
}
