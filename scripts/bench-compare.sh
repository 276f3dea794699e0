#!/usr/bin/env bash
# Benchmarks two builds side by side: the criterion benches `plan` and `spawn` of progload-host
# from BASE (a git revision) and from the working tree, run alternately (base, new, base, new)
# in one script, so that both see the same machine state. Prints, per benchmark, the median
# estimate of each build in each round and the new/base ratio of their means.
#
#   scripts/bench-compare.sh BASE [FILTER]      (FILTER: a criterion filter, default "plan/ls|spawn_true")
#
# BENCH_ROUNDS sets the rounds (default 3). `spawn_true/std_command` (the kernel's execve through
# std) is the same code in both builds: the ratio of `progload_spawn` to it is printed per build
# too, which takes out what the machine's load does to both.
#
# The BASE build is cached under ${XDG_CACHE_HOME:-~/.cache}/progload/bench/<commit>.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 BASE [FILTER]" >&2; exit 2; }
base="$(git -C "$here" rev-parse --verify "$1^{commit}")"
filter="${2:-plan/ls|spawn_true}"

# The bench executables of a tree (plan, spawn) built in release mode, and its progload.
bench_bins() {
    local tree="$1" target="$2"
    (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build -q --release -p progload-cli >&2 &&
        CARGO_TARGET_DIR="$target" cargo bench -q -p progload-host --no-run --message-format=json 2>/dev/null) |
        python3 "$here/scripts/cargo-executables.py" bench
}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/progload/bench/$base"
mkdir -p "$cache"
if [ ! -f "$cache/bins" ]; then
    wt="$(mktemp -d)"
    git -C "$here" worktree add -q --detach "$wt" "$base"
    bench_bins "$wt" "$cache/target" >"$cache/bins"
    git -C "$here" worktree remove --force "$wt"
fi
new_target="${CARGO_TARGET_DIR:-$here/target}"
mapfile -t new_bins < <(bench_bins "$here" "$new_target")
mapfile -t old_bins <"$cache/bins"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
run() { # build-name round
    local name="$1" round="$2" b
    local -n bins="$3"
    for b in "${bins[@]}"; do
        PROGLOAD="$(dirname "$(dirname "$b")")/progload" "$b" --bench "$filter" \
            --warm-up-time 1 --measurement-time 4 --noplot 2>/dev/null |
            awk -v who="$name" -v r="$round" '
                /^[a-z_]+\/[^ ]+/ { bench = $1 }
                /time:/ { gsub(/\[|\]/, "");
                          for (i = 1; i <= NF; i++) if ($i == "time:") t = i;
                          v = $(t + 3); u = $(t + 4);
                          f = (u == "ns") ? 1e-3 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : 1;
                          if (bench != "") print who, r, bench, v * f; bench = "" }'
    done >>"$out/results"
}
for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
    run base "$round" old_bins
    run new "$round" new_bins
done
python3 - "$out/results" "$base" <<'EOF'
import collections, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    who, rnd, bench, us = line.split()
    rows[bench][who].append(float(us))
print(f"base {sys.argv[2][:12]} vs working tree; medians in µs per round")
print(f"| benchmark | base | new | new / base |")
print(f"|---|---|---|---|")
for bench in sorted(rows):
    b, n = rows[bench]["base"], rows[bench]["new"]
    if not b or not n:
        continue
    mb, mn = sum(b) / len(b), sum(n) / len(n)
    print(f"| {bench} | {' / '.join(f'{x:.1f}' for x in b)} | {' / '.join(f'{x:.1f}' for x in n)} | {mn / mb:.2f} |")
ctl = rows.get("spawn_true/std_command", {})
run = rows.get("spawn_true/progload_spawn", {})
if ctl.get("base") and ctl.get("new") and run.get("base") and run.get("new"):
    rb = sum(run["base"]) / sum(ctl["base"])
    rn = sum(run["new"]) / sum(ctl["new"])
    print(f"\nprogload_spawn / std_command: base {rb:.2f}, new {rn:.2f}, new / base {rn / rb:.2f}")
EOF
