#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target and runs each for a bounded time (default
# 30 s, at most 60) from freshly generated seeds. Fails on any crash, panic, timeout, leak or
# out-of-memory; the failing input is left in fuzz/artifacts/<target>/.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and the nightly toolchain; without a
# toolchain named nightly, the default one is used with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs
# the -Z sanitizer flags).
# Usage: fuzz/smoke.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
if [ "$secs" -gt 60 ]; then secs=60; fi
targets=(elf_headers shebang misc_rules plan stack)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
    exit 1
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

start=$(date +%s)
"${fuzz[@]}" build

# Seeds into a scratch directory, so the smoke run leaves no corpus behind.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./seed.sh "$work/corpus" >/dev/null
echo "fuzz smoke: build and seeds took $(( $(date +%s) - start )) s"

failed=()
for t in "${targets[@]}"; do
    log="$work/$t.log"
    t0=$(date +%s)
    if "${fuzz[@]}" run "$t" "$work/corpus/$t" -- \
        -dict=dict/elf.dict -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 >"$log" 2>&1; then
        stats=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1 || true)
        echo "fuzz smoke: $t ok in $(( $(date +%s) - t0 )) s: ${stats:-?}"
    else
        echo "fuzz smoke: $t FAILED; its output:" >&2
        tail -n 60 "$log" >&2
        failed+=("$t")
    fi
done
echo "fuzz smoke: total $(( $(date +%s) - start )) s"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz smoke: failed targets: ${failed[*]}" >&2
    exit 1
fi
