#!/bin/sh
# The farm's check payload, run by the guest's /init as root with OUT=/out:
#   - progload profile (the guest's captured profile);
#   - progload check --sweep of the guest's userland, recording each exec for the host's
#     cross-plan (--record);
#   - the crafted corpus (a static test binary of crates/progload-host/tests/crafted.rs), when
#     the payload has one for this architecture.
set -u
P=/payload/progload
echo "farm-check: $(uname -r) $(uname -m)"
"$P" profile >"$OUT/profile.json" 2>"$OUT/profile.err"
echo "profile rc=$?"

# Each real directory once (bullseye has /bin and /usr/bin apart; later releases link them).
dirs=""
for d in /usr/bin /usr/sbin /bin /sbin; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then
        dirs="$dirs $d"
    fi
done
cd /
start=$(date +%s)
# shellcheck disable=SC2086 # one word per directory
"$P" check --sweep --json --jobs 2 --record "$OUT/rec" $dirs >"$OUT/sweep.json" 2>"$OUT/sweep.err"
echo "sweep rc=$? in $(( $(date +%s) - start )) s over$dirs"

if [ -x /payload/crafted ]; then
    start=$(date +%s)
    (cd /tmp && PROGLOAD_LOAD_ADDRESS_DIR=/payload/load_address \
        /payload/crafted --test-threads 1 --nocapture >"$OUT/crafted.txt" 2>&1)
    echo "crafted rc=$? in $(( $(date +%s) - start )) s"
fi
