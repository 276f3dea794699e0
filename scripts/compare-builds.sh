#!/usr/bin/env bash
# Compares the plans of two builds of progload: `progload plan --json` of every executable
# regular file in the given directories (default /usr/bin), from the build of BASE (a git
# revision) and from the working tree, must be byte-identical. Two passes: randomization off
# (`--no-randomize`; set-id programs are randomized all the same, from `--seed 7`), and
# randomization on with the same seed, so a change in the order the plan draws randomness
# shows too. Failed plans are compared as well (their JSON error object and exit status).
#
#   scripts/compare-builds.sh BASE [DIR...]
#
# The BASE build is cached under ${XDG_CACHE_HOME:-~/.cache}/progload/builds/<commit>. Prints
# one line per differing program and a summary; exits 1 if any plan differs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 BASE [DIR...]" >&2; exit 2; }
base="$(git -C "$here" rev-parse --verify "$1^{commit}")"
shift
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(/usr/bin)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/progload/builds/$base"
old="$cache/progload"
if [ ! -x "$old" ]; then
    mkdir -p "$cache"
    wt="$(mktemp -d)"
    git -C "$here" worktree add -q --detach "$wt" "$base"
    (cd "$wt" && CARGO_TARGET_DIR="$cache/target" cargo build -q --release -p progload-cli)
    cp "$cache/target/release/progload" "$old"
    git -C "$here" worktree remove --force "$wt"
    rm -rf "$cache/target"
fi
(cd "$here" && cargo build -q --release -p progload-cli)
new="${CARGO_TARGET_DIR:-$here/target}/release/progload"

common=(plan --json --env-clear -e A=1 -e LANG=C --random-bytes 000102030405060708090a0b0c0d0e0f)
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
total=0
differ=0
while IFS= read -r -d '' f; do
    for mode in "--no-randomize --seed 7" "--seed 7"; do
        total=$((total + 1))
        # shellcheck disable=SC2086 # mode is one or two words on purpose
        a_status=0; "$old" "${common[@]}" $mode "$f" one two >"$out/a" 2>/dev/null || a_status=$?
        # shellcheck disable=SC2086
        b_status=0; "$new" "${common[@]}" $mode "$f" one two >"$out/b" 2>/dev/null || b_status=$?
        if [ "$a_status" != "$b_status" ] || ! cmp -s "$out/a" "$out/b"; then
            differ=$((differ + 1))
            echo "DIFFERS ($mode): $f (exit $a_status vs $b_status)"
        fi
    done
done < <(find "${dirs[@]}" -maxdepth 1 -type f -perm -u+x -print0 | sort -z)
echo "compare-builds: $total plans of $((total / 2)) programs in ${dirs[*]}: $((total - differ)) identical, $differ differ (base $base)"
[ "$differ" -eq 0 ]
