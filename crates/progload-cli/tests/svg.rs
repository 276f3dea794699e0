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

/// The SVG of `plan PROGRAM` with `opts`, and the plan's maps as `[start, end)` pairs.
fn svg_and_maps(opts: &[&str], program: &str) -> (String, Vec<(u64, u64)>) {
    let dir = progs::TempDir::new().unwrap();
    let svg = dir.path().join("p.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .arg("plan")
        .args(opts)
        .args(["--json", "--env-clear", "-e", "A=1", "--svg"])
        .arg(&svg)
        .arg(program)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let maps = v["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["start"].as_u64().unwrap(), m["end"].as_u64().unwrap()))
        .collect();
    (std::fs::read_to_string(&svg).unwrap(), maps)
}

/// The sizes of the `unmapped N TiB` labels.
fn unmapped_tib(svg: &str) -> Vec<f64> {
    svg.split(">unmapped ")
        .skip(1)
        .filter_map(|t| t.split('<').next()?.strip_suffix(" TiB")?.parse().ok())
        .collect()
}

/// Every band shows both its addresses (the lower one too where a folded gap follows it);
/// the gap below x86_64's [vsyscall] (the non-canonical hole and kernel space) is named,
/// not measured as "unmapped 16777088 TiB"; a randomized plan labels the stack's random
/// offsets: below STACK_TOP (randomize_stack_top) and below the strings (arch_align_stack).
#[test]
fn gaps_addresses_and_random_offsets_are_labelled() {
    let (fixed, maps) = svg_and_maps(&["--no-randomize"], "/usr/bin/ls");
    for &(start, end) in &maps {
        for a in [start, end] {
            assert!(fixed.contains(&format!(">{a:#014x}<")), "no address {a:#x}");
        }
    }
    for tib in unmapped_tib(&fixed) {
        assert!(tib < 1024.0, "unmapped {tib} TiB");
    }
    assert!(!fixed.contains(">random"), "a plan without randomization");
    assert!(fixed.contains(">16-byte alignment: "), "no alignment part");
    if cfg!(target_arch = "x86_64") {
        assert!(fixed.contains(">gap to [vsyscall] (not user space)<"));
    }

    let (random, maps) = svg_and_maps(&["--seed", "1"], "/usr/bin/ls");
    for &(start, end) in &maps {
        for a in [start, end] {
            assert!(
                random.contains(&format!(">{a:#014x}<")),
                "no address {a:#x}"
            );
        }
    }
    assert!(
        random.contains(">random stack offset: "),
        "no random stack offset"
    );
    assert!(
        random.contains(">random offset: "),
        "no arch_align_stack offset"
    );
    if cfg!(target_arch = "x86_64") {
        // The offset band reaches up to STACK_TOP (DEFAULT_MAP_WINDOW with 4-level paging).
        assert!(random.contains(">0x7ffffffff000<"), "no STACK_TOP");
    }
    for tib in unmapped_tib(&random) {
        assert!(tib < 1024.0, "unmapped {tib} TiB");
    }
}
