//! `progload plan --svg FILE`: a picture of the planned address space.
//!
//! Left: every mapping from the top of the address space down, each band's height growing
//! with the logarithm of its size and both its addresses shown, and the huge unmapped gaps
//! folded into short, labelled breaks: the gap below x86_64's `[vsyscall]` is named (it is
//! the non-canonical hole and kernel space, not unmapped user memory), and in a randomized
//! plan the stack's random offset below `STACK_TOP` is a break of its own. Right: the top
//! of the stack zoomed in, byte ranges to scale within the panel —
//! argc, the argv/envp pointer arrays, auxv, the padding, AT_RANDOM bytes, the platform
//! string, `arch_align_stack()`'s random offset (or the 16-byte alignment) and the string
//! area (argv, envp, execfn).

// SVG fragments are written as multi-line raw strings, each ending its last element with a newline.
#![allow(clippy::write_with_newline)]

use std::fmt::Write as _;

use crate::report::text;
use progload::Plan;

const W: f64 = 1440.0;
const MAP_X: f64 = 230.0;
const MAP_W: f64 = 330.0;
const ZOOM_X: f64 = 1010.0;
const ZOOM_W: f64 = 200.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn size_text(n: u64) -> String {
    const U: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in U {
        if n >= unit {
            let v = n as f64 / unit as f64;
            return if v >= 100.0 {
                format!("{v:.0} {name}")
            } else {
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{n} B")
}

fn color(path: &str, perms: &str, exe: &str, interp: Option<&str>) -> &'static str {
    match path {
        "[stack]" => "#f4c27a",
        "[vdso]" => "#b39ddb",
        p if p.starts_with("[vvar") => "#d1c4e9",
        "[vsyscall]" => "#cfd8dc",
        "" if perms.contains('x') => "#ef9a9a",
        "" => "#e0e0e0",
        p if p == exe => {
            if perms.contains('x') {
                "#64b5f6"
            } else if perms.contains('w') {
                "#90caf9"
            } else {
                "#bbdefb"
            }
        }
        p if Some(p) == interp => {
            if perms.contains('x') {
                "#81c784"
            } else if perms.contains('w') {
                "#a5d6a7"
            } else {
                "#c8e6c9"
            }
        }
        _ => "#fff59d",
    }
}

/// One horizontal band of the left column.
enum Band {
    Map {
        start: u64,
        end: u64,
        perms: String,
        path: String,
        offset: u64,
    },
    Gap {
        start: u64,
        end: u64,
        /// What the gap is: "unmapped 1.2 GiB", the random stack offset, the hole below
        /// `[vsyscall]`.
        label: String,
    },
}

/// `STACK_TOP` of the plan's task before `randomize_stack_top()`, when the stack top is a
/// random offset below one of the architecture's values (`STACK_RND_MASK` pages at most, plus
/// `arch_align_stack()`'s part): x86_64 `DEFAULT_MAP_WINDOW`, arm64 `DEFAULT_MAP_WINDOW_64`,
/// riscv64 sv39's 2^38 or sv48/sv57's 2^47 window, ia32 `IA32_PAGE_OFFSET`.
fn unrandomized_stack_top<N>(plan: &Plan<N>) -> Option<u64> {
    use progload::arch::{aarch64, i386, x86_64, Arch};
    let candidates: &[u64] = match plan.arch {
        Arch::X86_64 => &[x86_64::DEFAULT_MAP_WINDOW],
        Arch::Aarch64 => &[aarch64::DEFAULT_MAP_WINDOW_64],
        Arch::Riscv64 => &[1 << 38, 1 << 47],
        Arch::I386 => &[i386::TASK_SIZE],
    };
    let page = plan.page_size;
    let most = (plan.arch.spec().stack_rnd_mask + 1)
        .saturating_mul(page)
        .saturating_add(8192 + page);
    let top = plan.stack.top;
    candidates
        .iter()
        .copied()
        .find(|&c| c >= top && c - top <= most)
}

/// The random stack offset `[stack top, STACK_TOP)` of a randomized plan, as a gap band.
fn stack_offset_gap<N>(plan: &Plan<N>) -> Option<Band> {
    let c = unrandomized_stack_top(plan).filter(|&c| plan.randomized && c > plan.stack.top)?;
    Some(Band::Gap {
        start: plan.stack.top,
        end: c,
        label: format!("random stack offset: {}", size_text(c - plan.stack.top)),
    })
}

/// The gap bands, highest first, between a mapping `above` and the one below that ends at
/// `start`: the random stack offset above `[stack]` is its own band, and what lies below
/// `[vsyscall]` (the non-canonical hole and the kernel's half of the address space, not
/// user memory) is said rather than measured.
fn gaps<N>(plan: &Plan<N>, start: u64, end: u64, above: &str, below: &str) -> Vec<Band> {
    let mut out = Vec::new();
    let mut low = start;
    let offset = if below == "[stack]" {
        stack_offset_gap(plan)
    } else {
        None
    };
    let offset = offset.filter(|g| matches!(g, Band::Gap { end: e, .. } if *e <= end));
    if let Some(Band::Gap { end: e, .. }) = &offset {
        low = *e;
    }
    if low < end {
        let label = if above == "[vsyscall]" {
            String::from("gap to [vsyscall] (not user space)")
        } else {
            format!("unmapped {}", size_text(end - low))
        };
        out.push(Band::Gap {
            start: low,
            end,
            label,
        });
    }
    out.extend(offset);
    out
}

/// The SVG document for `plan`.
pub fn render<N>(plan: &Plan<N>) -> String {
    let exe = text(&plan.exe);
    let interp = plan.interpreter.as_ref().map(|i| text(i));
    let mut maps = plan.maps();
    maps.sort_by_key(|m| std::cmp::Reverse(m.start));
    // Highest first, with the gaps between them (and above the highest, the random stack
    // offset when the stack is the highest mapping).
    let mut bands = Vec::new();
    let mut prev: Option<&progload::MapsLine> = None;
    for m in &maps {
        match prev {
            Some(p) if m.end < p.start => {
                bands.extend(gaps(plan, m.end, p.start, &text(&p.path), &text(&m.path)));
            }
            None if m.path == b"[stack]" => bands.extend(stack_offset_gap(plan)),
            _ => {}
        }
        bands.push(Band::Map {
            start: m.start,
            end: m.end,
            perms: m.perms.clone(),
            path: text(&m.path),
            offset: m.offset,
        });
        prev = Some(m);
    }
    let height_of = |b: &Band| match b {
        Band::Map { start, end, .. } => {
            let pages = ((end - start) / plan.page_size).max(1) as f64;
            (22.0 + 7.0 * pages.log2()).min(110.0)
        }
        Band::Gap { .. } => 26.0,
    };
    let top = 80.0;
    let total: f64 = bands.iter().map(height_of).sum();
    let zoom_h = 560.0;
    let h = (top + total + 40.0).max(90.0 + zoom_h + 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h:.0}" viewBox="0 0 {W} {h:.0}" font-family="DejaVu Sans Mono, monospace" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="28" font-size="16" font-weight="bold">{}</text>
<text x="20" y="48" fill="#555">entry {:#x} · stack pointer {:#x} · brk {:#x} · {}</text>
<text x="20" y="62" fill="#555">runs {} · argv {}</text>
"##,
        esc(&format!("progload plan: {}", text(&plan.execfn))),
        plan.entry,
        plan.stack.sp,
        plan.mm.start_brk,
        if plan.randomized {
            "randomized"
        } else {
            "not randomized"
        },
        esc(&exe),
        esc(&format!(
            "[{}]",
            plan.argv
                .iter()
                .map(|a| format!("\"{}\"", progload::error::Bytes(a.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    );
    let mut y = top;
    let mut stack_band: Option<(f64, f64)> = None;
    let mut brk_drawn = false;
    for (i, b) in bands.iter().enumerate() {
        let bh = height_of(b);
        match b {
            Band::Gap { start, end, label } => {
                let _ = write!(
                    s,
                    r##"<path d="M{x0} {y1} l20 -6 l20 12 l20 -12 l20 12 l20 -12 l20 12 l20 -12 l20 12 l20 -12 l20 12 l20 -12 l10 6" stroke="#999" fill="none"/>
<text x="{tx}" y="{ty}" fill="#777">{}</text>
"##,
                    esc(label),
                    x0 = MAP_X,
                    y1 = y + bh / 2.0,
                    tx = MAP_X + MAP_W + 12.0,
                    ty = y + bh / 2.0 + 4.0
                );
                // Its upper address, unless the mapping above shows it as its lower one.
                if !matches!(bands.get(i.wrapping_sub(1)), Some(Band::Map { .. })) {
                    let _ = write!(
                        s,
                        r##"<text x="{lx}" y="{ty:.1}" text-anchor="end" fill="#333">{end:#014x}</text>
"##,
                        lx = MAP_X - 8.0,
                        ty = y + 10.0
                    );
                }
                if !brk_drawn && plan.mm.start_brk >= *start && plan.mm.start_brk < *end {
                    let _ = write!(
                        s,
                        r##"<text x="{tx}" y="{ty}" fill="#c62828">← brk {:#x}</text>
"##,
                        plan.mm.start_brk,
                        tx = MAP_X + MAP_W + 160.0,
                        ty = y + bh / 2.0 + 4.0
                    );
                    brk_drawn = true;
                }
            }
            Band::Map {
                start,
                end,
                perms,
                path,
                offset,
            } => {
                let fill = color(path, perms, &exe, interp.as_deref());
                let name = match path.as_str() {
                    "" => String::from("anonymous (bss)"),
                    p if p == exe => format!("{} · program", p.rsplit('/').next().unwrap_or(p)),
                    p if Some(p) == interp.as_deref() => {
                        format!("{} · interpreter", p.rsplit('/').next().unwrap_or(p))
                    }
                    p => p.to_string(),
                };
                let _ = write!(
                    s,
                    r##"<rect x="{MAP_X}" y="{y:.1}" width="{MAP_W}" height="{bh:.1}" fill="{fill}" stroke="#333" stroke-width="0.6"/>
<text x="{nx}" y="{ny:.1}">{1} {0}</text>
<text x="{lx}" y="{ty:.1}" text-anchor="end" fill="#333">{2:#014x}</text>
<text x="{rx}" y="{ny:.1}" fill="#555">{3}{4}</text>
"##,
                    esc(&name),
                    perms,
                    end,
                    size_text(end - start),
                    if path.starts_with('/') {
                        format!(", file offset {offset:#x}")
                    } else {
                        String::new()
                    },
                    nx = MAP_X + 8.0,
                    ny = y + bh / 2.0 + 4.0,
                    lx = MAP_X - 8.0,
                    ty = y + 10.0,
                    rx = MAP_X + MAP_W + 12.0
                );
                // Its lower address, just below it, where no adjacent mapping below shows it:
                // above a folded gap, and at the bottom.
                if !matches!(bands.get(i + 1), Some(Band::Map { .. })) {
                    let _ = write!(
                        s,
                        r##"<text x="{lx}" y="{ty:.1}" text-anchor="end" fill="#333">{start:#014x}</text>
"##,
                        lx = MAP_X - 8.0,
                        ty = y + bh + 10.0
                    );
                }
                if path == "[stack]" {
                    stack_band = Some((y, bh));
                }
                if !brk_drawn && plan.mm.start_brk == *end {
                    let _ = write!(
                        s,
                        r##"<text x="{tx}" y="{ty:.1}" fill="#c62828">← brk {:#x}</text>
"##,
                        plan.mm.start_brk,
                        tx = MAP_X + MAP_W + 160.0,
                        ty = y - 4.0
                    );
                    brk_drawn = true;
                }
            }
        }
        y += bh;
    }
    // The stack zoom.
    if let Some((sy, sh)) = stack_band {
        render_stack(&mut s, plan, sy, sh, zoom_h);
    }
    s.push_str("</svg>\n");
    s
}

fn render_stack<N>(s: &mut String, plan: &Plan<N>, sy: f64, sh: f64, zoom_h: f64) {
    let _ = sh;
    let st = &plan.stack;
    let argc = plan.argv.len() as u64;
    let envc = plan.envp.len() as u64;
    let sp = st.sp;
    let argv_ptrs = sp + 8;
    let envp_ptrs = argv_ptrs + 8 * (argc + 1);
    let auxv = envp_ptrs + 8 * (envc + 1);
    let auxv_end = auxv + 16 * plan.auxv.len() as u64;
    let execfn = plan.mm.env_end;
    let off = usize::try_from(st.platform_addr.saturating_sub(sp)).unwrap_or(usize::MAX);
    let platform_len =
        st.bytes
            .get(off..)
            .map_or(0, |b| b.iter().position(|&c| c == 0).map_or(0, |n| n + 1)) as u64;
    // Between the strings and the platform string: arch_align_stack()'s random offset (up
    // to 8 KiB on x86, a page on arm64 and riscv64) when randomized, then the rounding down
    // to 16 bytes.
    let gap = st.arg_start.saturating_sub(st.platform_addr + platform_len);
    let below_strings = if plan.randomized && gap >= 16 {
        format!("random offset: {gap} bytes")
    } else {
        format!("16-byte alignment: {gap} bytes")
    };
    let parts: Vec<(u64, u64, String, &str)> = vec![
        (sp, argv_ptrs, "argc".into(), "#ffe0b2"),
        (
            argv_ptrs,
            envp_ptrs,
            format!("argv[{argc}] pointers + NULL"),
            "#ffcc80",
        ),
        (
            envp_ptrs,
            auxv,
            format!("envp[{envc}] pointers + NULL"),
            "#ffb74d",
        ),
        (
            auxv,
            auxv_end,
            format!("auxv: {} pairs incl. AT_NULL", plan.auxv.len()),
            "#ffa726",
        ),
        (
            auxv_end,
            st.random_addr,
            "padding (16-byte rounding)".into(),
            "#eeeeee",
        ),
        (
            st.random_addr,
            st.random_addr + 16,
            "AT_RANDOM: 16 bytes".into(),
            "#ef5350",
        ),
        (
            st.random_addr + 16,
            st.platform_addr,
            String::new(),
            "#eeeeee",
        ),
        (
            st.platform_addr,
            st.platform_addr + platform_len,
            "platform string (AT_PLATFORM)".into(),
            "#ce93d8",
        ),
        (
            st.platform_addr + platform_len,
            st.arg_start,
            below_strings,
            "#eeeeee",
        ),
        (
            st.arg_start,
            st.arg_end,
            format!("argv strings ({} bytes)", st.arg_end - st.arg_start),
            "#a5d6a7",
        ),
        (
            st.arg_end,
            execfn,
            format!("envp strings ({} bytes)", execfn - st.arg_end),
            "#80cbc4",
        ),
        (execfn, st.top - 8, "execfn (AT_EXECFN)".into(), "#90caf9"),
        (st.top - 8, st.top, "8 zero bytes".into(), "#eeeeee"),
    ];
    let parts: Vec<_> = parts.into_iter().filter(|(a, b, _, _)| b > a).collect();
    // Heights: proportional to bytes, with a floor so every part stays readable.
    let min_h = 18.0;
    let total_bytes: u64 = parts.iter().map(|(a, b, _, _)| b - a).sum();
    let spare = (zoom_h - min_h * parts.len() as f64).max(0.0);
    let zy = 90.0;
    let mut y = zy + zoom_h;
    let _ = write!(
        s,
        r##"<text x="{ZOOM_X}" y="{ty}" font-weight="bold">top of [stack], {} bytes from sp to the top</text>
<path d="M{x1} {y1:.1} L{xm} {y1:.1} L{xm} {zy} L{ZOOM_X} {zy}" stroke="#e0a040" stroke-dasharray="4 3" fill="none"/>
"##,
        st.top - sp,
        ty = zy - 12.0,
        x1 = MAP_X + MAP_W + 90.0,
        y1 = sy + sh / 2.0,
        xm = ZOOM_X - 110.0
    );
    // Draw from the lowest address (bottom) up.
    for (a, b, label, fill) in &parts {
        let hh = min_h + spare * (b - a) as f64 / total_bytes.max(1) as f64;
        y -= hh;
        let _ = write!(
            s,
            r##"<rect x="{ZOOM_X}" y="{y:.1}" width="{ZOOM_W}" height="{hh:.1}" fill="{fill}" stroke="#333" stroke-width="0.5"/>
<text x="{tx}" y="{ly:.1}">{}</text>
<text x="{ax}" y="{ay:.1}" text-anchor="end" fill="#555">{:#x}</text>
"##,
            esc(label),
            a,
            tx = ZOOM_X + ZOOM_W + 10.0,
            ly = y + hh / 2.0 + 4.0,
            ax = ZOOM_X - 6.0,
            ay = y + hh - 3.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{ax}" y="{ay:.1}" text-anchor="end" fill="#555">{:#x}</text>
<text x="{ZOOM_X}" y="{by:.1}" fill="#c62828">sp = {:#x} (16-byte aligned)</text>
"##,
        st.top,
        sp,
        ax = ZOOM_X - 6.0,
        ay = zy - 3.0,
        by = zy + zoom_h + 18.0
    );
}
