#!/usr/bin/env bash
# The large kernel-differential mutation campaign (crates/progload-host/tests/mutants.rs):
# PROGLOAD_MUTANTS mutants (default 20000) for each SEED (default 1 2 3 4 5), each executed by
# the live kernel and planned by progload; every outcome must agree. Prints each seed's tally;
# disagreeing mutants are kept under target/progload-mutants/seed-SEED/. Exit 1 if any seed
# disagrees.
#
#   scripts/mutants.sh [SEED...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${PROGLOAD_MUTANTS:-20000}"
seeds=("$@")
[ "${#seeds[@]}" -gt 0 ] || seeds=(1 2 3 4 5)
cargo test -q -p progload-host --test mutants --no-run
fail=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for s in "${seeds[@]}"; do
    set +e
    PROGLOAD_MUTANT_SEED="$s" PROGLOAD_MUTANTS="$n" \
        cargo test -q -p progload-host --test mutants -- --nocapture >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^[0-9]+ mutants \(seed|^ +[0-9]+  ' "$log" || true
    if [ "$rc" -ne 0 ]; then
        fail=1
        grep -A3 '^mutant\|panicked' "$log" | head -60
    fi
done
exit "$fail"
