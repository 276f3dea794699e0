#!/usr/bin/env bash
# Long fuzzing campaign: runs the given targets (default: all) one after the other, each until
# 10 million executions or one hour, at the lowest CPU priority with one job and one worker,
# growing fuzz/corpus/<target>/ (generate it first with fuzz/seed.sh). Run `cargo +nightly
# fuzz build` (or fuzz/smoke.sh) before. Logs and a summary go to $LOGDIR (default /tmp/progload-fuzz-campaign).
#
# Usage: fuzz/campaign.sh [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
fuzz=$(pwd)
logdir=${LOGDIR:-/tmp/progload-fuzz-campaign}
runs=${RUNS:-10000000}
secs=${SECS:-3600}
host=$(rustc -vV | sed -n 's/^host: //p')
bin="$fuzz/target/$host/release"
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(shebang elf_headers misc_rules plan stack)
mkdir -p "$logdir"
for t in "${targets[@]}"; do
    d="$logdir/$t"
    rm -rf "$d"
    mkdir -p "$d" "$fuzz/artifacts/$t" "$fuzz/corpus/$t"
    t0=$(date +%s)
    # -jobs=1 runs the fuzzer in a child whose output goes to $d/fuzz-0.log.
    (cd "$d" && nice -n 19 "$bin/$t" "$fuzz/corpus/$t" -dict="$fuzz/dict/elf.dict" \
        -jobs=1 -workers=1 -runs="$runs" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=3072 -malloc_limit_mb=512 -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$t/" >"$d/driver.log" 2>&1)
    rc=$?
    wall=$(( $(date +%s) - t0 ))
    log="$d/fuzz-0.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    crashes=$(grep -cE 'Test unit written|==ERROR|panicked' "$log")
    echo "$t rc=$rc execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} wall=${wall}s crashes=$crashes" \
        | tee -a "$logdir/summary.txt"
done
